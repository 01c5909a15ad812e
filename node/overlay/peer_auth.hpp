// Authenticated overlay peers (docs/SECURITY.md, "Authenticated peers"; docs/PROTOCOL.md,
// "Signed messages"). A node signs every overlay message it sends with its key; a node checks
// every overlay message it receives against the sender's certificate before the Chord core sees
// it, so a peer whose claimed Node-ID is not its certificate's, or whose certificate the overlay
// does not trust, never reaches a routing table. Over TLS links the handshake does the same for
// the whole connection (check_link), and messages are not signed one by one.
//
//   DHT-Signature: ed25519;t=<writer's Unix time, µs>;sig=<base64url of 64 bytes>[;want]
//   DHT-Certificate: <base64 of the signer's certificate, DER>
//
// The signature covers "p2psip-msg/1" CRLF, t, CRLF, and the message as serialized without those
// two fields. The certificate travels until the receiver is known to hold it (it answered one of
// our signed requests); `want` asks the receiver to send its own back. Answers to what fails
// follow RFC 8224's codes: 428 unsigned, 436 certificate unknown here (send it), 437 certificate
// refused, 438 signature wrong, 403 a Node-ID that is not the certificate's or a stale time.
// Sans-I/O: the environment gives the wall clock.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>

#include "core/environment.hpp"
#include "core/rate_limiter.hpp"
#include "core/result.hpp"
#include "dht/node_id.hpp"
#include "node/sip/message.hpp"
#include "security/certificate_cache.hpp"
#include "security/crypto.hpp"

namespace p2psip::overlay {

inline constexpr std::string_view kSignatureHeader = "DHT-Signature";
inline constexpr std::string_view kCertificateHeader = "DHT-Certificate";

struct PeerAuthConfig {
  /// A signed message's time must lie within this of the receiver's clock (RFC 8224 §6.2.1's
  /// freshness). Replays of a UDP request inside it meet the server transaction, which lingers
  /// 64*T1 (32 s) and absorbs them.
  Duration freshness = seconds(30);
  /// Peers remembered as holding this node's certificate (forgotten all at once beyond it).
  std::size_t told_capacity = 4096;
};

/// The outcome of a check: 0 when the message is authentic; otherwise the SIP status and reason
/// phrase that refuse it (a request is answered with them; a response is logged and dropped).
struct AuthVerdict {
  int status = 0;
  std::string reason;
  [[nodiscard]] bool ok() const { return status == 0; }
};

struct PeerAuthStats {
  std::uint64_t signed_messages = 0, verified = 0, refused = 0;
  std::uint64_t certificates_sent = 0, certificates_learned = 0, links_accepted = 0, links_refused = 0;
};

class PeerAuthenticator {
 public:
  /// `key` and `cert` are this node's; `certificates` is the node's cache of checked certificates
  /// (shared with its record policy); `crypto` signs and verifies. All must outlive this object.
  PeerAuthenticator(security::KeyPair key, const security::Certificate& cert,
                    std::shared_ptr<security::CertificateCache> certificates, const security::CryptoProvider& crypto,
                    Environment& env, PeerAuthConfig config = {});

  /// Signs a request to the peer `to` (null: a peer known only by its address, as a bootstrap).
  /// Carries this node's certificate unless `to` is known to hold it, and asks for `to`'s when this
  /// node holds none. Returns whether the certificate was carried.
  bool sign_request(sip::Message& m, const dht::NodeId* to, Instant now);
  /// Signs a response to `request`, carrying this node's certificate when the request asked for it.
  void sign_response(sip::Message& m, const sip::Message& request, Instant now);

  /// Checks that `m` was signed, recently, by the holder of the certificate of `signer` (a request's
  /// DHT-PeerID, or the peer a request went to for its response): the certificate carried in the
  /// message, or the one remembered for `signer`. With `signer` null (an answer from a peer known
  /// only by its address) the message must carry a certificate, and `signed_by` receives its
  /// Node-ID. A carried certificate that checks out is remembered.
  AuthVerdict check(const sip::Message& m, const dht::NodeId* signer, Instant now, dht::NodeId* signed_by = nullptr);
  /// A TLS peer's certificate (DER): the Node-ID it proves, or why it is refused (logged).
  Result<dht::NodeId, AuthVerdict> check_link(std::string_view cert_der, Instant now);

  /// `peer` verified a message of ours: it holds our certificate.
  void told(const dht::NodeId& peer);
  /// `peer` said it does not hold our certificate (436): carry it next time.
  void forget_told(const dht::NodeId& peer) { told_.erase(peer); }
  /// Logs the refusal of a message from `from` claiming to be `peer` (zero: of a TLS peer at
  /// `from`), once per address per minute.
  void log_refusal(const dht::NodeId& peer, const Endpoint& from, const AuthVerdict& v, Instant now);

  [[nodiscard]] const dht::NodeId& id() const { return id_; }
  [[nodiscard]] const PeerAuthStats& stats() const { return stats_; }
  [[nodiscard]] const std::shared_ptr<security::CertificateCache>& certificates() const { return certs_; }

 private:
  void sign(sip::Message& m, Instant now, bool carry, bool want);

  security::KeyPair key_;
  std::string cert_b64_;  ///< this node's certificate as DHT-Certificate carries it
  dht::NodeId id_;
  std::shared_ptr<security::CertificateCache> certs_;
  const security::CryptoProvider& crypto_;
  Environment& env_;
  PeerAuthConfig cfg_;
  PeerAuthStats stats_;
  std::unordered_set<dht::NodeId, dht::NodeIdHash> told_;
  LogOnce<Endpoint, EndpointHash> logged_{seconds(60)};
};

/// The bytes a message signature covers (see above), for the signer and the checker alike.
std::string message_signing_bytes(const sip::Message& m, std::string_view time);

}  // namespace p2psip::overlay
