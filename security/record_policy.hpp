// Signed records and who may write what (RFC 6940 §7.3 and §13, adapted): every record carries its
// writer's certificate and signature over a canonical msgpack encoding, with the writer's time;
// storing peers admit only records whose signer may write them and that are newer than what they
// hold; fetching peers believe only records that verify. A storing peer can therefore withhold a
// registration but never forge one.
//
// Who may write (by the record's name):
//   "sip:user@overlay"   USER-MATCH: a user certificate for exactly that address of record;
//   32 hex digits        NODE-MATCH: the certificate of the node with that Node-ID;
//   "turn-service:HEX:D" NODE-MULTIPLE (RFC 6940 §7.3.4, §9): the certificate of node HEX, D in
//                        1..20 (a TURN-SERVICE entry: node/peer/turn_service.hpp);
//   any other name       any certificate of the overlay, and an entry once written only by the
//                        same key (a first-writer rule of this overlay's, not RELOAD's).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/environment.hpp"
#include "dht/messages.hpp"
#include "security/certificate.hpp"
#include "security/certificate_cache.hpp"
#include "security/crypto.hpp"

namespace p2psip::security {

/// The bytes a record's signature covers: a msgpack array ["p2psip-record/1", k (bin 16), n, d,
/// v (bin), o, w (int), l (uint)], each element in msgpack-c's smallest encoding. The storing
/// peer's time `t` is not covered (it stamps it), the writer's time `w` is.
std::string record_signing_bytes(const dht::Record& r);

/// The highest iteration of a TURN-SERVICE entry (RFC 6940 §9: NODE-MULTIPLE, at most 20).
inline constexpr int kMaxTurnServiceIteration = 20;
/// A TURN-SERVICE entry's name, "turn-service:HEX:D": the announcing node and the iteration D.
struct TurnServiceName {
  dht::NodeId node;
  int iteration = 0;
};
[[nodiscard]] std::optional<TurnServiceName> parse_turn_service_name(std::string_view name);
[[nodiscard]] std::string turn_service_name(const dht::NodeId& node, int iteration);

/// What a node or user writes with: its key, certificate (DER) and the provider that signs.
struct Writer {
  KeyPair key;
  std::string cert_der;
  const CryptoProvider* crypto = nullptr;
  /// Signs `r` as written at `written_at` (its written_at_us field: µs since the epoch).
  void sign(dht::Record& r, WallTime written_at) const;
};

struct RecordPolicyConfig {
  std::int64_t max_clock_skew_s = 600;  ///< records written further in the future are refused
  /// Checked certificates remembered (security/certificate_cache.hpp), so that a node serving many
  /// users does not parse and chain-check a user's certificate at every refresh.
  std::size_t certificate_cache = 65536;
};

struct RecordPolicyStats {
  std::uint64_t admitted = 0, refused = 0, believed = 0, disbelieved = 0;
  std::uint64_t signatures_checked = 0, certificates_checked = 0;
};

class RecordPolicy final : public dht::RecordGuard {
 public:
  /// `env` supplies the wall clock (wall_time) and takes log lines; both must outlive the policy.
  RecordPolicy(TrustAnchor trust, const CryptoProvider& crypto, Environment& env, RecordPolicyConfig config = {});
  /// The same, with a certificate cache shared with the node's other checks (its peers' messages).
  RecordPolicy(std::shared_ptr<CertificateCache> certificates, const CryptoProvider& crypto, Environment& env,
               RecordPolicyConfig config = {});

  dht::Refusal admit(const dht::Record& r, const dht::Record* held, Instant now, bool own = false) override;
  bool believe(const dht::Record& r, Instant now) override;

  /// Who may write a record of this name, as the refusals name it ("USER-MATCH", ...).
  [[nodiscard]] static std::string_view rule_for(std::string_view name);
  [[nodiscard]] RecordPolicyStats stats() const;
  /// Remembers `cert` as checked and good without checking it: for the identities this node made
  /// or checked itself (its users' at start, development users as they are made).
  void vouch(const Certificate& cert) { certs_->vouch(cert); }
  [[nodiscard]] const TrustAnchor& trust() const { return certs_->trust(); }
  [[nodiscard]] const std::shared_ptr<CertificateCache>& certificates() const { return certs_; }

 private:
  /// The record's signer, write rule and (unless `own`) signature, at wall time `now_s`; a refusal or {}.
  dht::Refusal check(const dht::Record& r, std::int64_t now_s, bool own = false);

  std::shared_ptr<CertificateCache> certs_;
  const CryptoProvider& crypto_;
  Environment& env_;
  RecordPolicyConfig cfg_;
  RecordPolicyStats stats_;
};

}  // namespace p2psip::security
