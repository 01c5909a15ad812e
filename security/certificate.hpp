// X.509 identities of an overlay (OpenSSL): the overlay's root, node certificates that carry the
// node's Node-ID, user certificates that bind an address-of-record to a key, certificate requests,
// and the check every peer makes of a certificate it is shown. Sans-I/O: no files, no clock (the
// caller passes the time), no randomness (serial numbers and keys come from the caller).
//
// Names in certificates (RFC 6940 §11.3 and §13.3, adapted):
//   node: subjectAltName URI "reload://<32 hex digits>@<overlay>/"; the Node-ID must be the first
//         128 bits of SHA-256 over the raw Ed25519 public key, with a CA as without one;
//   user: subjectAltName URI "sip:<user>@<overlay>";
//   root: CN "<overlay> overlay root", basicConstraints CA:TRUE.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dht/node_id.hpp"
#include "core/result.hpp"
#include "security/crypto.hpp"

using X509 = struct x509_st;  // OpenSSL's, kept out of this header

namespace p2psip::security {

enum class CertKind : std::uint8_t { Root, Node, User };

/// What a certificate says, read from it (and not yet checked: see TrustAnchor::verify).
struct CertInfo {
  CertKind kind = CertKind::Node;
  std::string overlay;
  std::optional<dht::NodeId> node_id;  ///< node certificates: the Node-ID written in it
  std::string aor;                     ///< user certificates: "sip:user@overlay"
  PublicKey public_key{};
  std::int64_t not_before = 0, not_after = 0;  ///< Unix seconds
  std::uint64_t serial = 0;
  std::string subject;  ///< the CN
  bool self_signed = false;
};

/// A parsed certificate; copies share the underlying OpenSSL object.
class Certificate {
 public:
  /// From DER bytes or from the first CERTIFICATE block of a PEM text. Errors name the problem:
  /// not a certificate, not an Ed25519 key, no overlay name, more than one identity...
  static Result<Certificate, std::string> from_der(std::string_view der);
  static Result<Certificate, std::string> from_pem(std::string_view pem);
  [[nodiscard]] std::string der() const;
  [[nodiscard]] std::string pem() const;
  [[nodiscard]] const CertInfo& info() const { return info_; }
  [[nodiscard]] X509* x509() const { return x509_.get(); }

 private:
  static Result<Certificate, std::string> adopt(X509* x);
  std::shared_ptr<X509> x509_;
  CertInfo info_;
};

/// Validity period, in Unix seconds.
struct Validity {
  std::int64_t not_before = 0, not_after = 0;
};

/// Each returns the certificate as read back from its DER, or what stops it being one (an
/// overlay or user name that does not fit in a URI, for instance).
using Issued = Result<Certificate, std::string>;
/// The overlay's root: self-signed, CA:TRUE.
Issued make_root(const KeyPair& ca_key, std::string_view overlay, std::uint64_t serial, const Validity& v);
/// A node certificate for `subject`, its Node-ID derived from the key (the requester has no say).
Issued issue_node(const KeyPair& ca_key, const Certificate& ca, const PublicKey& subject, std::uint64_t serial,
                  const Validity& v);
/// A user certificate binding sip:<user>@<overlay> to `subject`; refused unless valid_user_name.
Issued issue_user(const KeyPair& ca_key, const Certificate& ca, const PublicKey& subject, std::string_view user,
                  std::uint64_t serial, const Validity& v);
/// Development mode (no CA): a node certificate signed by its own key; its Node-ID is still the
/// key's digest. Accepted only by a TrustAnchor made with self_signed_mode().
Issued self_signed_node(const KeyPair& key, std::string_view overlay, std::uint64_t serial, const Validity& v);
/// The general form behind the four above, for tests that need a certificate no honest CA would
/// write (another node's Node-ID, a foreign overlay): `issuer` null means self-signed.
Issued issue_raw(const KeyPair& signer, const Certificate* issuer, const PublicKey& subject, std::string_view cn,
                 const std::vector<std::string>& san_uris, bool is_ca, std::uint64_t serial, const Validity& v);

/// An overlay name: 1 to 63 characters of letters, digits, '-' and '.' (a host name's).
bool valid_overlay_name(std::string_view overlay);
/// A user name the CA accepts: 1 to 64 characters of RFC 3261's unreserved set minus '%' escapes
/// (letters, digits, "-_.!~*'()"), so that the AOR needs no escaping.
bool valid_user_name(std::string_view user);

/// A certificate signing request: what `p2psip identity new` writes and `p2psip ca issue` reads.
struct CertRequest {
  CertKind kind = CertKind::Node;
  std::string overlay;
  std::string user;  ///< user requests: the name asked for
  PublicKey public_key{};
};
/// PEM text of a request signed by `key` (proof that the requester holds it).
std::string make_request(const KeyPair& key, const CertRequest& r);
/// Reads a request and checks its signature; errors name the problem.
Result<CertRequest, std::string> parse_request(std::string_view pem);

/// Why a certificate was refused.
enum class CertError : std::uint8_t {
  None,
  WrongOverlay,   ///< issued for another overlay
  UnknownIssuer,  ///< not issued by this overlay's root (a foreign root, or self-signed in CA mode)
  BadSignature,   ///< the issuer's signature does not verify
  NotYetValid,
  Expired,
  NodeIdMismatch,  ///< the Node-ID written in it is not the digest of its key
  WrongKind,       ///< a user certificate where a node's was needed, or the reverse
  NotAllowed,      ///< a CA certificate presented as a peer's, or similar misuse
};
std::string_view to_string(CertError e);

struct Verdict {
  CertError error = CertError::None;
  std::string detail;  ///< for logs and SIP reason phrases
  [[nodiscard]] bool ok() const { return error == CertError::None; }
};

/// What a node trusts: its overlay's root (CA mode), or self-signed node certificates whose Node-ID
/// is their key's digest (development mode, explicitly chosen).
class TrustAnchor {
 public:
  static TrustAnchor ca(Certificate root);
  static TrustAnchor self_signed_mode(std::string overlay);
  [[nodiscard]] bool development() const { return !root_; }
  [[nodiscard]] const std::string& overlay() const { return overlay_; }
  [[nodiscard]] const std::optional<Certificate>& root() const { return root_; }
  /// Checks `cert` at Unix time `now_s` as the certificate of a peer (kind Node) or of a user (kind
  /// User): issuer and signature, validity period, overlay, kind, and the Node-ID rule.
  [[nodiscard]] Verdict verify(const Certificate& cert, CertKind expected, std::int64_t now_s) const;

 private:
  std::optional<Certificate> root_;
  std::string overlay_;
};

/// PEM of an Ed25519 private key (PKCS#8), and back. Errors name the problem.
std::string private_key_pem(const KeyPair& key);
Result<KeyPair, std::string> parse_private_key(std::string_view pem);

}  // namespace p2psip::security
