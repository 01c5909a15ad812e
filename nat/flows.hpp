// A client's flows (RFC 5626 on the overlay): a node that others cannot reach — behind a symmetric
// NAT, on a network that blocks UDP, or started as a client — keeps `flows` outbound flows to
// different relay peers, each registered with the same instance and its own reg-id, keeps each
// alive (STUN Binding every 24-29 s on UDP, §4.4.2), and re-forms a failed one with §4.5's back-off.
// Sans-I/O: what to register where is decided here and carried out by the overlay through
// FlowTransport; keep-alives go through the StunClient; time comes in through advance(now).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/address.hpp"
#include "core/environment.hpp"
#include "core/time.hpp"
#include "nat/stun_client.hpp"

namespace p2psip::nat {

struct FlowConfig {
  std::size_t flows = 2;  ///< RFC 5626 §4.2: two flows, to two different peers
  /// The registration lifetime asked of a relay (refreshed at 80 %): the keep-alives hold the NAT
  /// binding, so a long one costs nothing but a late cleanup at a relay that lost us.
  std::uint32_t expires_s = 3600;
  Duration keepalive_min = seconds(24);  ///< UDP: a STUN keep-alive every 24-29 s (§4.4.2)
  Duration keepalive_max = seconds(29);
  Duration stream_keepalive_min = seconds(95);  ///< TCP and TLS: every 95-120 s (§4.4.1)
  Duration stream_keepalive_max = seconds(120);
  Duration pong_timeout = seconds(10);         ///< §4.4.1: a ping's pong is due within 10 s
  Duration backoff_all_failed = seconds(30);   ///< §4.5: base time when every flow has failed
  Duration backoff_some_failed = seconds(90);  ///< §4.5: base time while some flow works
  Duration backoff_max = seconds(1800);        ///< §4.5: max-time
  Duration register_timeout = seconds(32);     ///< a registration unanswered this long has failed
};

/// What carries a flow's registration: the overlay sends it (a REGISTER to the relay) and reports
/// the outcome through FlowSet::registered / refused / failed.
class FlowTransport {
 public:
  virtual ~FlowTransport() = default;
  /// Registers flow `reg_id` at `relay` for `expires_s` (0: removes it). False when it could not
  /// be sent at all (nothing more is heard of it then).
  virtual bool register_flow(const Endpoint& relay, std::uint32_t reg_id, std::uint32_t expires_s, Instant now) = 0;
  /// A keep-alive on a stream flow (TCP, TLS), where STUN cannot go: RFC 5626 §4.4.1's CRLFCRLF
  /// ping down the flow's connection; the relay's CRLF pong comes back as FlowSet::pong().
  /// reported through FlowSet::probe_result. False when it could not be sent.
  virtual bool ping_flow(const Endpoint& relay, Instant now) = 0;
};

enum class FlowState : std::uint8_t {
  Idle,         ///< no relay yet (none known, or waiting out a back-off)
  Registering,  ///< a registration is on its way
  Active,       ///< registered, kept alive
};
std::string_view flow_state_name(FlowState s);

struct FlowStatus {
  std::uint32_t reg_id = 0;
  FlowState state = FlowState::Idle;
  std::optional<Endpoint> relay;
  std::string relay_id;            ///< the relay's Node-ID as it answered (hex), once registered
  std::string relay_uri;           ///< what names this flow to callers (the relay's Path URI)
  std::optional<Endpoint> mapped;  ///< where the relay sees us (the keep-alives' answers)
  std::uint32_t failures = 0;      ///< consecutive (§4.5)
  Instant since{};
};

struct FlowStats {
  std::uint64_t registrations = 0, refusals = 0, failures = 0, keepalives = 0, mapping_changes = 0;
  std::uint64_t pongs = 0;  ///< stream flows' pings answered
};

class FlowSet {
 public:
  /// `keepalive` sends the STUN keep-alives (the client's overlay socket's); both must outlive this.
  FlowSet(FlowTransport& transport, StunClient& keepalive, Environment& env, FlowConfig cfg = {});
  ~FlowSet();
  FlowSet(const FlowSet&) = delete;
  FlowSet& operator=(const FlowSet&) = delete;

  /// The peers that may serve as relays (public peers: the bootstrap, peers relays name), in
  /// order of preference. Flows without a relay pick from them at once.
  void set_candidates(std::vector<Endpoint> relays, Instant now);
  /// The outcome of a registration sent for `reg_id` (ignored unless it is the one awaited).
  /// `relay_id`, `relay_uri`: who answered and the URI that names the flow; `expires_s`: granted;
  /// `flow_timer_s`: the relay's Flow-Timer (0: none); `alternates`: other peers the relay names
  /// (its successors), kept as later candidates.
  void registered(std::uint32_t reg_id, const std::string& relay_id, const std::string& relay_uri,
                  std::uint32_t expires_s, std::uint32_t flow_timer_s, Instant now,
                  const std::vector<Endpoint>& alternates = {});
  /// A pong came back on the connection to `relay` (the answer to FlowTransport::ping_flow); a
  /// ping without one within pong_timeout fails its flow.
  void pong(const Endpoint& relay, Instant now);
  /// Refused (503): that relay is not asked again for `retry_after_s`; another is tried at once.
  void refused(std::uint32_t reg_id, std::uint32_t retry_after_s, Instant now);
  /// No answer, or a failure answer: the flow has failed (§4.5 back-off).
  void failed(std::uint32_t reg_id, Instant now);
  /// `relay` left a request unanswered: its flow's keep-alive goes at once (a dead relay is found
  /// in one keep-alive's time, not at the next one).
  void suspect(const Endpoint& relay, Instant now);
  /// The connection to `relay` closed (a stream flow): that flow has failed at once (RFC 5626
  /// §4.4.1: a flow over TCP or TLS fails when its connection does).
  void connection_lost(const Endpoint& relay, Instant now);
  /// The network changed under us (address change): every flow is re-formed at once, with the
  /// same reg-ids (RFC 5626 §4.4's "re-register the flows").
  void network_changed(Instant now);
  /// Removes every registration (a graceful shutdown).
  void close(Instant now);

  void advance(Instant now);
  [[nodiscard]] Instant next_wakeup() const;

  [[nodiscard]] const std::vector<FlowStatus>& status() const { return flows_; }
  /// The relays of the active flows, as callers should be told (their URIs), first registered first.
  [[nodiscard]] std::vector<std::string> relay_uris() const;
  /// The active flows' relays (where this client's own requests go).
  [[nodiscard]] std::vector<Endpoint> relays() const;
  [[nodiscard]] bool any_active() const;
  /// The relays it may pick from: those handed to set_candidates and those its relays named.
  [[nodiscard]] const std::vector<Endpoint>& candidates() const { return candidates_; }
  /// Changes whenever relays() or relay_uris() may have: a flow came up or went, or its URI changed.
  [[nodiscard]] std::uint64_t version() const { return version_; }
  [[nodiscard]] const FlowStats& stats() const { return stats_; }

 private:
  struct Timing {
    Instant next = kInstantMax;              ///< Idle: retry; Registering: give up; Active: keep-alive
    Instant refresh = kInstantMax;           ///< Active: re-register before the registration runs out
    Instant refresh_deadline = kInstantMax;  ///< a refresh on its way: its answer is due by then
    Duration keepalive{};
    std::optional<StunTransactionId> probe;  ///< a keep-alive in flight
    bool stream_probe = false;               ///< a stream flow's ping in flight
    Instant pong_due = kInstantMax;          ///< ...whose pong is due by then
    std::uint32_t generation = 0;
  };
  void start_registration(std::size_t i, Instant now);
  void set_state(FlowStatus& f, FlowState s);  ///< counts the change in version_
  void fail(std::size_t i, Instant now);
  void keepalive(std::size_t i, Instant now);
  /// The keep-alive interval's bounds for flow i (its relay's Flow-Timer, or the transport's).
  [[nodiscard]] std::pair<Duration, Duration> keepalive_range(std::size_t i) const;
  std::optional<Endpoint> pick_relay(std::size_t i, Instant now) const;
  Duration jitter(Duration lo, Duration hi);
  std::size_t index_of(std::uint32_t reg_id) const;

  FlowTransport& transport_;
  StunClient& stun_;
  Environment& env_;
  FlowConfig cfg_;
  std::vector<FlowStatus> flows_;
  std::vector<Timing> timing_;
  std::vector<Endpoint> candidates_;
  std::vector<std::pair<Endpoint, Instant>> refused_until_;
  FlowStats stats_;
  bool closed_ = false;
  std::uint64_t version_ = 0;
};

}  // namespace p2psip::nat
