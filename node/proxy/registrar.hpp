// The registrar's bindings (RFC 3261 §10.3), sans-I/O: address-of-record -> contacts of the
// softphones registered at this node. It decides what a REGISTER does (query, add, refresh,
// remove, the "*" removal, 423 for too brief an interval, 500 for an out-of-order CSeq) without
// applying it, so that the caller can publish the new state in the overlay first and commit it
// only once that succeeded (a REGISTER is all or nothing, §10.3 step 6).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/address.hpp"
#include "core/string_hash.hpp"
#include "core/time.hpp"
#include "node/sip/message.hpp"

namespace p2psip::proxy {

struct RegistrarConfig {
  std::string domain = "p2psip.local";    ///< the overlay: the only domain whose AORs are served
  std::uint32_t min_expires = 60;         ///< shorter non-zero intervals get 423 with Min-Expires
  std::uint32_t max_expires = 3600;       ///< longer intervals are shortened to this
  std::uint32_t default_expires = 3600;   ///< when neither the Contact nor Expires gives one
  std::size_t max_bindings_per_aor = 16;  ///< beyond: 403 Too Many Bindings
  std::size_t max_aors = 100000;          ///< beyond: 503 Registrar Full
  /// Count the bindings per source address, for has_source(): a UA side bound off loopback reaches
  /// phones only where they registered from.
  bool track_sources = false;
};

/// One contact of an AOR (RFC 3261 §10.2.1).
struct Binding {
  std::string contact;  ///< the Contact URI as registered (addr-spec, no <>)
  std::string q;        ///< the q parameter as written, empty when none
  std::string call_id;
  std::uint32_t cseq = 0;
  Instant expires{};
  Endpoint source;  ///< where the REGISTER came from (the softphone's socket)
};

/// What a REGISTER asks for, evaluated against the current bindings.
struct RegisterPlan {
  int status = 200;  ///< 200, or the error to answer (400, 403, 404, 423, 500, 503)
  std::string reason;
  std::uint32_t min_expires = 0;  ///< for 423
  std::string aor;                ///< canonical "sip:user@domain"
  bool query = false;             ///< no Contact: nothing changes (§10.2.3)
  std::vector<Binding> after;     ///< the AOR's bindings once the request is applied
};

class Registrar {
 public:
  /// Sizes the AOR table for max_aors up front (up to kPresized): growing a hash table past
  /// a hundred thousand users rehashes every entry at once, a stall of a hundred milliseconds
  /// that overflows the UDP buffer (Kamailio's usrloc has a fixed table size for the same reason).
  explicit Registrar(RegistrarConfig config) : cfg_(std::move(config)) {
    aors_.reserve(std::min(cfg_.max_aors, kPresized));
  }
  static constexpr std::size_t kPresized = std::size_t{1} << 20;

  /// The canonical AOR of a To (or request) URI, "sip:user@domain" with the user unescaped and the
  /// domain in lower case (§10.3 step 5), or nullopt when it is not a sip/sips URI with a user.
  static std::optional<std::string> canonical_aor(std::string_view uri_text);
  /// The user of a canonical AOR ("alice" of "sip:alice@domain"); empty when it has none.
  static std::string_view user_of(std::string_view aor);

  /// Evaluates a (valid) REGISTER received from `from` at `now`; changes nothing.
  [[nodiscard]] RegisterPlan evaluate(const sip::Message& request, const Endpoint& from, Instant now) const;
  /// Makes a successful plan's bindings the AOR's (dropping those expired by `now`).
  void commit(const RegisterPlan& plan, Instant now);

  /// The AOR's live bindings (empty when none).
  [[nodiscard]] std::vector<Binding> bindings(std::string_view aor, Instant now) const;
  /// The 200 answer to `request` listing `bindings` with their remaining expiry (§10.3 step 8).
  [[nodiscard]] static sip::Message make_ok(const sip::Message& request, const std::vector<Binding>& bindings,
                                            Instant now, std::string_view to_tag);

  /// Drops expired bindings; returns the AORs that lost their last binding.
  std::vector<std::string> expire(Instant now);
  /// The earliest binding expiry, kInstantMax when none.
  [[nodiscard]] Instant next_expiry() const;
  [[nodiscard]] std::size_t aors() const { return aors_.size(); }
  /// Bindings held, all AORs together.
  [[nodiscard]] std::size_t size() const { return bindings_; }
  [[nodiscard]] const RegistrarConfig& config() const { return cfg_; }
  /// Whether a live binding was registered from `source` (its address and port, any transport).
  /// Always false unless the config tracks sources.
  [[nodiscard]] bool has_source(const Endpoint& source) const;
  /// The first `limit` AORs with bindings, in order (a pass over every AOR).
  [[nodiscard]] std::vector<std::string> aor_list(std::size_t limit) const;

 private:
  RegistrarConfig cfg_;
  /// Hashed: a REGISTER finds its AOR with one probe however many users the node serves.
  std::unordered_map<std::string, std::vector<Binding>, StringHash, std::equal_to<>> aors_;
  std::size_t bindings_ = 0;
  /// Each AOR under its earliest binding expiry: next_expiry() and expire() without a full scan.
  std::set<std::pair<Instant, std::string>> expiry_order_;
  /// Bindings per source (transport UDP whatever it was): with track_sources only.
  std::unordered_map<Endpoint, std::uint32_t, EndpointHash> sources_;
  void count_source(const Binding& b, int delta);
  void count_sources(const std::vector<Binding>& bindings, int delta);
};

}  // namespace p2psip::proxy
