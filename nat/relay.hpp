// A relay peer's clients (RFC 6940 §3.2.1's clients, RFC 5626's flows, RFC 7264's relay peer): a
// node that others cannot reach keeps an outbound flow to a public peer, which remembers where the
// flow's packets come from (the client's NAT binding) and sends the client's traffic back along it.
// This table is the relay's side: who may hold a flow, for how long, and at most how many clients.
// Sans-I/O; the overlay carries the registrations (docs/PROTOCOL.md, "Client flows").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/address.hpp"
#include "core/time.hpp"

namespace p2psip::nat {

struct RelayConfig {
  std::size_t max_clients = 200;     ///< distinct clients at once; more are refused 503 (Retry-After)
  std::size_t flows_per_client = 4;  ///< flows (instance, reg-id) one client may hold here
  std::uint32_t max_expires = 3600;  ///< a registration's lifetime is cut to this
  std::uint32_t min_expires = 60;    ///< shorter ones are raised to this
  /// What a refused client is told to wait (RFC 3261 §21.5.4's Retry-After), before trying this
  /// relay again.
  std::uint32_t retry_after_s = 300;
  /// The keep-alive interval the relay asks of its clients (RFC 5626 §5.4's Flow-Timer): STUN on
  /// UDP flows at 80-100 % of it.
  std::uint32_t flow_timer_s = 29;
  /// The same for stream flows (TCP, TLS): RFC 5626 §4.4.1's 95-120 s.
  std::uint32_t stream_flow_timer_s = 120;
};

/// One client flow: a client (its Node-ID in hex), the instance and reg-id it registered with, and
/// where its packets come from.
struct ClientFlow {
  std::string client;    ///< the client's Node-ID, hex
  std::string instance;  ///< RFC 5626 +sip.instance
  std::uint32_t reg_id = 0;
  Endpoint flow;      ///< the source of the registration: the client's NAT binding
  std::string token;  ///< names the flow in the relay's URI (Path), opaque to others
  Instant expires{};
  Instant registered{};
};

struct RelayStats {
  std::uint64_t registrations = 0, refreshes = 0, refused_full = 0, removed = 0, expired = 0, replaced = 0;
};

class RelayTable {
 public:
  explicit RelayTable(RelayConfig cfg = {}) : cfg_(cfg) {}

  struct Admission {
    bool accepted = false;
    std::uint32_t expires_s = 0;       ///< granted (accepted)
    std::uint32_t retry_after_s = 0;   ///< refused: when to try again
    const ClientFlow* flow = nullptr;  ///< accepted: the flow as now held (valid until the table changes)
  };
  /// A client registers (or refreshes) flow (`instance`, `reg_id`) from `source`, asking for
  /// `expires_s` seconds; 0 removes the flow. A new flow of a new client beyond max_clients, or
  /// beyond flows_per_client, is refused. The same instance and reg-id from a new address replace
  /// the old flow (RFC 5626 §6: the client moved). `token` is used for a new flow only (the caller
  /// draws it from its secure source).
  Admission admit(const std::string& client, const std::string& instance, std::uint32_t reg_id, const Endpoint& source,
                  std::uint32_t expires_s, const std::string& token, Instant now);
  /// The client's live flows, newest registration first (the one to use first).
  [[nodiscard]] std::vector<const ClientFlow*> flows_of(const std::string& client) const;
  [[nodiscard]] const ClientFlow* by_token(const std::string& token) const;
  /// Whether `source` is a live flow of some client (its packets may be relayed).
  [[nodiscard]] const ClientFlow* by_source(const Endpoint& source) const;
  /// Drops the flows whose registrations have run out.
  void expire(Instant now);
  [[nodiscard]] Instant next_expiry() const;
  /// Distinct clients with a live flow here.
  [[nodiscard]] std::size_t clients() const;
  [[nodiscard]] std::size_t flows() const { return flows_.size(); }
  [[nodiscard]] const RelayStats& stats() const { return stats_; }
  [[nodiscard]] const RelayConfig& config() const { return cfg_; }

 private:
  RelayConfig cfg_;
  std::vector<ClientFlow> flows_;  // a relay holds hundreds at most: a vector searched in place
  RelayStats stats_;
};

}  // namespace p2psip::nat
