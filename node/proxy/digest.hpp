// Digest authentication of phones (RFC 3261 §22 and §25.1's credentials, with RFC 7616's
// computations; SHA-256 as RFC 8760 adds it to SIP, MD5 for phones that know nothing else).
// A registrar challenges with 401 and WWW-Authenticate, a proxy with 407 and Proxy-Authenticate;
// both offer SHA-256 first and MD5 second (RFC 8760 §2.4), with qop "auth", and require qop.
//
// Nonces are "<issued µs, 16 hex><HMAC-SHA256(secret, issued), first 16 hex>": the node keeps
// no state to issue one, knows its age, and refuses ones it did not make. Within a nonce's life
// each nonce-count must be higher than the last one taken (RFC 7616 §3.4.5), so a response cannot
// be replayed. Sans-I/O: the caller gives the time; the secret comes from the environment.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/environment.hpp"
#include "core/result.hpp"
#include "node/sip/message.hpp"

namespace p2psip::proxy {

enum class DigestAlgorithm : std::uint8_t { Md5, Sha256 };
std::string_view algorithm_name(DigestAlgorithm a);  ///< "MD5", "SHA-256"
/// "MD5" or "SHA-256", case-insensitive; absent means MD5 (RFC 3261 §25.1).
std::optional<DigestAlgorithm> algorithm_from_name(std::string_view name);
/// "SHA-256,MD5" and the like; nullopt on an unknown or repeated name, or an empty list.
std::optional<std::vector<DigestAlgorithm>> algorithms_from_list(std::string_view list);

/// H(data) in lower-case hex.
std::string digest_hash(DigestAlgorithm a, std::string_view data);
/// HA1 = H(user ":" realm ":" password): what a server keeps instead of the password.
std::string digest_ha1(DigestAlgorithm a, std::string_view user, std::string_view realm, std::string_view password);
/// The request-digest (RFC 7616 §3.4.1): with `qop` "auth", H(HA1:nonce:nc:cnonce:qop:H(method:uri));
/// with no qop (RFC 2069's form, for the test vectors), H(HA1:nonce:H(method:uri)).
std::string digest_response(DigestAlgorithm a, std::string_view ha1, std::string_view nonce, std::string_view method,
                            std::string_view uri, std::string_view qop, std::string_view nc, std::string_view cnonce);

/// A user's stored secrets: HA1 under each algorithm, never the password.
struct DigestSecret {
  std::string md5_ha1, sha256_ha1;
  /// Both HA1s of `password`.
  static DigestSecret of(std::string_view user, std::string_view realm, std::string_view password);
  [[nodiscard]] const std::string& ha1(DigestAlgorithm a) const {
    return a == DigestAlgorithm::Md5 ? md5_ha1 : sha256_ha1;
  }
};

/// The text of a user's `digest` file (what `p2psip identity password` writes and `--users` reads):
///   # p2psip digest secrets of sip:alice@demo (realm demo)
///   MD5 <32 hex digits>
///   SHA-256 <64 hex digits>
std::string format_digest_file(std::string_view aor, std::string_view realm, const DigestSecret& secret);
/// Reads such a text; the error names the line that is wrong.
Result<DigestSecret, std::string> parse_digest_file(std::string_view text);

/// The parameters of an Authorization or Proxy-Authorization value ("Digest username=..., ...").
struct DigestCredentials {
  std::string username, realm, nonce, uri, response, cnonce, qop, nc, opaque;
  DigestAlgorithm algorithm = DigestAlgorithm::Md5;
};
/// Parses one value; nullopt when it is not a Digest credential or a parameter is malformed.
std::optional<DigestCredentials> parse_digest_credentials(std::string_view value);

struct DigestConfig {
  std::string realm;  ///< the overlay's name: what phones show as their domain
  /// What a challenge offers, in order of preference (RFC 8760 §2.4: SHA-256 first). Phones that
  /// read only the first challenge and know only MD5 (sipp 3.6, older handsets) need MD5 first.
  std::vector<DigestAlgorithm> algorithms{DigestAlgorithm::Sha256, DigestAlgorithm::Md5};
  Duration nonce_lifetime = seconds(300);  ///< older nonces are answered stale=true (a new challenge)
  std::size_t max_nonces = 65536;          ///< nonces whose counts are remembered; beyond: the oldest forgotten
};

/// What check() found.
struct DigestOutcome {
  enum class Kind : std::uint8_t {
    Ok,         ///< authenticated as `user`
    Challenge,  ///< no credentials for this realm: answer 401/407 with challenges()
    Stale,      ///< credentials under an old nonce: challenge again with stale=true
    Refused,    ///< wrong user, password, nonce or count: challenge again (and log `reason`)
  };
  Kind kind = Kind::Challenge;
  std::string user;
  std::string reason;
};

class DigestAuthenticator {
 public:
  /// `secret_of(user)` gives a user's secrets, or null when the user has none (it cannot log in).
  /// The HMAC key for nonces is drawn from `env`'s random stream.
  DigestAuthenticator(DigestConfig config, std::function<const DigestSecret*(std::string_view user)> secret_of,
                      Environment& env);

  /// The values of a challenge's WWW-Authenticate or Proxy-Authenticate fields, one per algorithm
  /// offered, in the configured order.
  [[nodiscard]] std::vector<std::string> challenges(Instant now, bool stale = false) const;
  /// Checks the credentials in `header` (Authorization or Proxy-Authorization) of `request`.
  DigestOutcome check(const sip::Message& request, sip::HeaderId header, Instant now);

  [[nodiscard]] const DigestConfig& config() const { return cfg_; }

 private:
  [[nodiscard]] std::string nonce_at(Instant issued) const;
  /// When a nonce of ours was issued; nullopt for one we did not make.
  [[nodiscard]] std::optional<Instant> issued(std::string_view nonce) const;

  DigestConfig cfg_;
  std::function<const DigestSecret*(std::string_view)> secret_of_;
  std::string key_;                                        ///< 32 random octets
  std::unordered_map<std::string, std::uint64_t> counts_;  ///< nonce -> highest nonce-count taken
};

}  // namespace p2psip::proxy
