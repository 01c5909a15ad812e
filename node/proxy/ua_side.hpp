// The UA side of a node: what a local softphone sees as its SIP server. Sans-I/O, driven like the
// overlay node (its own transaction layer, fed by the driver of the UA listening address).
//
// Registrar (RFC 3261 §10.3): REGISTER for sip:user@OVERLAY is evaluated against this node's
// bindings (node/proxy/registrar.hpp), the node's entry for the AOR is stored in the overlay
// (node/proxy/registration.hpp) and only then is the change committed and answered 200 with the
// current bindings. A store that fails is answered 503 with Retry-After and changes nothing. While
// a user has bindings here the entry is stored again before its overlay lifetime runs out; when
// the last binding goes (Expires 0, "*", or expiry) the entry is removed from the overlay.
// REGISTERs for one AOR are handled one at a time, in order of arrival.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "node/overlay/overlay_node.hpp"
#include "node/proxy/registrar.hpp"
#include "node/proxy/registration.hpp"
#include "node/sip/transaction.hpp"

namespace p2psip::proxy {

struct UaSideConfig {
  RegistrarConfig registrar;
  /// Lifetime of this node's registration entries in the overlay; they are stored again at 80 %
  /// of it while the user stays registered, so a node that dies leaves nothing behind for longer.
  std::uint32_t entry_lifetime_s = 300;
  /// After a failed store: the Retry-After given to the phone, and the wait before a refresh retries.
  std::uint32_t retry_after_s = 10;
  std::size_t max_waiting_per_aor = 8;  ///< REGISTERs queued behind one in progress; beyond: 503
  sip::TimerConfig timers;
  sip::Limits limits;
};

struct UaSideStats {
  std::uint64_t registers = 0, registers_ok = 0, registers_rejected = 0, queries = 0;
  std::uint64_t entries_stored = 0, entries_removed = 0, store_failures = 0, refreshes = 0;
  std::uint64_t requests_rejected = 0;
};

class UaSide : public sip::TransactionUser {
 public:
  /// `env` sends on the UA listening address; `overlay` stores and looks up registrations.
  UaSide(Environment& env, overlay::OverlayNode& overlay, UaSideConfig config);

  // Driver entry points (as overlay::OverlayNode's).
  void receive_datagram(std::string_view bytes, const Endpoint& from, Instant now);
  void receive(const sip::Message& m, const Endpoint& from, Instant now);
  void answer_malformed(std::string_view raw, const sip::ParseError& e, const Endpoint& from);
  void advance(Instant now);
  [[nodiscard]] Instant next_wakeup() const;

  /// Removes every entry this node has in the overlay (before a graceful leave); bindings stay.
  /// withdrawn() turns true once every removal has been answered or has failed.
  void withdraw_all(Instant now);
  [[nodiscard]] bool withdrawn() const { return withdrawing_ == 0; }

  [[nodiscard]] const Registrar& registrar() const { return registrar_; }
  [[nodiscard]] const UaSideStats& stats() const { return stats_; }
  [[nodiscard]] const sip::TransactionLayer& transactions() const { return layer_; }
  [[nodiscard]] const UaSideConfig& config() const { return cfg_; }
  /// AORs whose overlay entry a store has put in place and not yet removed.
  [[nodiscard]] std::size_t published() const;

  // sip::TransactionUser
  void on_request(sip::TransactionId id, const sip::Message& request, const Endpoint& from, Instant now) override;
  void on_ack(sip::TransactionId, const sip::Message&, const Endpoint&, Instant) override {}
  void on_response(sip::TransactionId, const sip::Message&, Instant) override {}
  void on_timeout(sip::TransactionId, Instant) override {}
  void on_transport_error(sip::TransactionId, Instant) override {}

 private:
  /// A REGISTER waiting for its turn (txn != 0), or a store of the current bindings (txn == 0:
  /// refresh, or removal once none is left).
  struct Job {
    sip::TransactionId txn = 0;
    sip::Message request;
    Endpoint from;
  };
  struct Publication {
    bool in_flight = false;  ///< a store for this AOR is under way
    bool running = false;    ///< run_jobs is working through `jobs`
    bool stored = false;     ///< an entry is in the overlay (as far as this node knows)
    Instant refresh_at = kInstantMax;
    std::deque<Job> jobs;
  };

  void handle_register(sip::TransactionId id, const sip::Message& request, const Endpoint& from, Instant now);
  void run_jobs(const std::string& aor, Instant now);
  /// Stores (or removes, when `bindings` is empty) this node's entry for `aor`; `done` gets the
  /// outcome's status and reason, possibly before store() returns.
  void store(const std::string& aor, const std::vector<Binding>& bindings, Instant now,
             std::function<void(int, const std::string&, Instant)> done);
  /// This node's entry for `aor`, as a removal (lifetime 0, no value).
  [[nodiscard]] dht::Record entry(const std::string& aor) const;
  void set_refresh(const std::string& aor, Publication& p, Instant at);
  void forget_if_idle(const std::string& aor);
  std::string tag();

  UaSideConfig cfg_;
  Environment& env_;
  overlay::OverlayNode& overlay_;
  sip::TransactionLayer layer_;
  Registrar registrar_;
  UaSideStats stats_;
  std::map<std::string, Publication, std::less<>> pubs_;
  std::set<std::pair<Instant, std::string>> refresh_queue_;
  std::size_t withdrawing_ = 0;
};

}  // namespace p2psip::proxy
