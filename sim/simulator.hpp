// The discrete-event simulator: real overlay nodes (node/overlay's OverlayNode, with its Chord core,
// SIP codec and transaction layer) exchanging their real serialized messages over a modelled
// network, on one virtual clock. Events are ordered by (time, sequence), so a scenario and seed give
// the same run every time. Nothing here reads a clock or touches a socket; the caller runs it in
// slices (run_until) and measures wall time itself.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "node/overlay/overlay_node.hpp"
#include "node/peer/peer.hpp"
#include "security/certificate.hpp"
#include "security/crypto.hpp"
#include "sim/event_queue.hpp"
#include "sim/random.hpp"
#include "sim/scenario.hpp"

namespace p2psip::sim {

/// One time-series row: what happened during (t_s - interval, t_s].
struct IntervalRow {
  double t_s = 0;
  std::size_t live = 0, joined = 0;
  std::uint64_t lookups = 0, lookups_ok = 0, hops_sum = 0;
  std::uint64_t messages = 0, bytes = 0, lost = 0;
  std::uint64_t joins = 0, departures = 0;
  std::size_t transactions = 0;  ///< SIP transactions held by all nodes at t_s
};

/// Outcome counts of one kind of workload operation.
struct OpCounts {
  std::uint64_t issued = 0, done = 0, ok = 0, wrong = 0, failed = 0;
};

struct Results {
  OpCounts lookups, puts, gets;
  std::vector<std::uint64_t> hops_histogram;  ///< completed, correct lookups by overlay hops
  std::vector<float> latency_ms;              ///< completed, correct lookups, in completion order
  std::vector<float> join_s;                  ///< time from start to joined, per node that joined
  std::uint64_t messages = 0, bytes = 0, lost = 0, partitioned = 0, undeliverable = 0;
  std::uint64_t events = 0;
  std::uint64_t abandoned = 0;  ///< operations whose initiating node died before they finished
  double node_seconds = 0;      ///< integral of the live population over time
  std::uint64_t joins = 0, failures = 0, leaves = 0;
  std::size_t peak_live = 0;
  /// Transaction-layer counters of nodes that have died (live ones are added by totals()).
  std::uint64_t retransmissions = 0, timeouts = 0;
  std::vector<IntervalRow> series;
  // Attacks ([attack]): requests malicious nodes dropped or answered with forgeries, and the
  // fetches' tries (ChordConfig::fetch_attempts) summed over the gets that finished.
  std::uint64_t malicious_nodes = 0, attacks_dropped = 0, attacks_forged = 0, get_attempts = 0;
};

/// Per-node figures, in the order nodes were created.
struct NodeReport {
  std::string id_hex;
  bool alive = false, joined = false;
  std::uint64_t messages_sent = 0, bytes_sent = 0;
  double alive_s = 0;
  double join_s = -1;  ///< from start to joined (-1: never joined)
};

class Simulator {
 public:
  explicit Simulator(Scenario scenario);
  ~Simulator();
  Simulator(const Simulator&) = delete;
  Simulator& operator=(const Simulator&) = delete;

  /// Log lines of traced nodes (by creation index) go to `sink` with the simulated time.
  using LogSink = std::function<void(double t_s, std::uint32_t node, LogLevel level, std::string_view text)>;
  void trace(std::vector<std::uint32_t> nodes, LogSink sink) {
    traced_ = std::move(nodes);
    sink_ = std::move(sink);
  }

  /// Processes events up to simulated time `until_s` (capped at the scenario's duration). Returns
  /// false once the run is complete.
  bool run_until(double until_s);
  [[nodiscard]] double now_s() const { return static_cast<double>(now_.time_since_epoch().count()) / 1e6; }
  [[nodiscard]] bool finished() const { return finished_; }
  /// Ends the run at the simulated time reached (the driver's answer to SIGINT or SIGTERM): the
  /// last interval is sampled as far as it got, and the results stand for [0, now_s()].
  void stop();
  /// Whether stop() ended the run before the scenario's duration.
  [[nodiscard]] bool stopped_early() const { return stopped_early_; }
  [[nodiscard]] const Results& results() const { return results_; }
  [[nodiscard]] const Scenario& scenario() const { return sc_; }
  /// The hop timeout the nodes run with (the scenario's, or the overlay default), in ms.
  [[nodiscard]] double hop_timeout_ms() const {
    return static_cast<double>(to_millis(overlay::effective_hop_timeout(config_)));
  }
  [[nodiscard]] std::size_t live_nodes() const { return live_; }
  [[nodiscard]] std::size_t joined_nodes() const { return joined_list_.size(); }
  [[nodiscard]] std::size_t nodes_created() const;
  [[nodiscard]] std::vector<NodeReport> node_reports() const;
  /// SIP transactions held by all live nodes now (their state is most of a node's memory).
  [[nodiscard]] std::size_t transactions() const;
  /// Retransmissions sent and transaction timeouts, over all nodes that ever ran.
  [[nodiscard]] std::pair<std::uint64_t, std::uint64_t> retransmissions_and_timeouts() const;
  /// Checks every joined node's successor and predecessor against the ring of joined nodes;
  /// returns the number of nodes whose first successor or predecessor is wrong, and describes each
  /// in `details` when given.
  [[nodiscard]] std::size_t ring_errors(std::vector<std::string>* details = nullptr) const;

  struct Slot;          // one simulated host (defined in simulator.cpp)
  struct NodeSecurity;  // a host's identity and checks, with [security] (simulator.cpp)

 private:
  enum class EventType : std::uint8_t {
    Deliver,
    Timer,
    Start,
    Depart,
    Arrive,
    Scripted,
    Heal,
    Workload,  ///< the overlay-wide workload (arg: the kind) or a scripted operation
    NodeWork,  ///< a joined node's own next operation (arg: the kind)
    Sample
  };
  struct Event {
    Instant at;
    std::uint64_t seq;
    EventType type;
    std::uint32_t node;
    std::uint64_t arg;
    bool operator>(const Event& o) const { return at != o.at ? at > o.at : seq > o.seq; }
  };
  struct EarlierEvent {
    bool operator()(const Event& a, const Event& b) const { return b > a; }
  };
  struct EventTime {  // in microseconds, the calendar queue's ticks
    std::uint64_t operator()(const Event& e) const {
      return static_cast<std::uint64_t>(e.at.time_since_epoch().count());
    }
  };
  struct InFlight {
    std::string bytes;
    Endpoint from;
    std::uint32_t from_node = 0;
    std::uint32_t to = 0;
    Transport transport = Transport::Udp;
  };
  /// One put that succeeded: what a get of it must find (a dictionary entry under `name`).
  struct Stored {
    std::string name, dkey, value;
  };
  enum class WorkKind : std::uint8_t { Lookup, Put, Get, Script };

  friend class SimHost;
  void push(Instant at, EventType type, std::uint32_t node = 0, std::uint64_t arg = 0);
  /// Schedules the initial population's start `i` (none past the last).
  void push_start(std::size_t i);
  /// `take`, when given, is the buffer `bytes` views, which the flight takes instead of a copy.
  bool transmit(std::uint32_t from, const Endpoint& to, std::string_view bytes, std::string* take = nullptr);
  void process(const Event& e);
  /// Asks for the memory the next events will touch (see simulator.cpp).
  void prefetch(const Event* after_next, const Event* next) const;
  void deliver(std::uint64_t slot);
  void timer(std::uint32_t node, Instant at);
  void touched(std::uint32_t node);
  std::uint32_t create_node(std::optional<dht::NodeId> id);
  void start_node(std::uint32_t node);
  void spawn(std::optional<dht::NodeId> id);  ///< create, start and (with churn) give a session
  void kill(std::uint32_t node, bool graceful);
  void schedule_departure(std::uint32_t node);
  void scripted(const ScriptedEvent& ev);
  void workload(WorkKind kind, std::uint64_t arg);
  /// The per-node rates: a node that has just joined draws its first operation of each kind.
  void begin_node_work(std::uint32_t node);
  void node_work(std::uint32_t node, WorkKind kind);
  [[nodiscard]] double per_node_rate(WorkKind kind) const;
  /// Starts one operation of `kind` (not Script) at node `from`.
  void issue(WorkKind kind, std::uint32_t from);
  /// A Poisson process's next gap at `rate` per second, drawn from the workload's stream.
  [[nodiscard]] Duration exponential_gap(double rate);
  void route(std::uint32_t from, dht::RouteOp op, const std::string& key, std::optional<std::string> expect,
             std::string dkey = {});
  /// A routed request reached malicious node `to`: true when the attacker took it (dropped it, or
  /// answered with a forgery), false to let the node handle it.
  bool attacked(std::uint32_t to, const InFlight& f);
  [[nodiscard]] std::optional<std::uint32_t> random_honest_joined();
  void sample();
  void finish();  ///< accounts the last interval and marks the run complete
  void account_time();
  [[nodiscard]] std::optional<std::uint32_t> random_joined();
  [[nodiscard]] std::optional<dht::NodeId> responsible(dht::NodeId key) const;
  [[nodiscard]] Endpoint address(std::uint32_t node) const;
  [[nodiscard]] Duration delay(std::uint32_t from, std::uint32_t to);
  [[nodiscard]] Instant at_s(double s) const { return Instant(Duration(static_cast<std::int64_t>(s * 1e6))); }

  void log(std::uint32_t node, LogLevel level, std::string_view text);

  Scenario sc_;
  std::vector<std::uint32_t> traced_;
  LogSink sink_;
  overlay::OverlayConfig config_;
  Rng rng_;        // network model: loss
  Rng churn_rng_;  // sessions, failures, bootstrap choice
  Rng work_rng_;   // workload
  std::deque<Slot> slots_;
  /// Where each host is (by creation index): every message reads both ends' places, so they are
  /// kept together, apart from the rest of each host's state.
  struct Place {
    float x = 0, y = 0;  // on the unit square
    std::int64_t access_us = 0;
  };
  std::vector<Place> places_;
  CalendarQueue<Event, EarlierEvent, EventTime> heap_;  // buckets of 1.024 ms, 33.5 s of them
  std::uint64_t seq_ = 0;
  std::vector<InFlight> flight_;
  std::vector<std::uint64_t> flight_free_;
  Instant now_{};
  Instant end_{};
  Instant work_end_{};
  Instant last_account_{};
  bool finished_ = false;
  bool stopped_early_ = false;
  std::size_t live_ = 0;
  std::vector<std::uint32_t> joined_list_;
  std::map<dht::NodeId, std::uint32_t> ring_;  // joined live nodes by id: the oracle for correctness
  bool partitioned_ = false;
  Results results_;
  IntervalRow row_;
  std::vector<Stored> stored_;                                           // puts that succeeded
  std::unordered_map<dht::NodeId, std::string, dht::NodeIdHash> names_;  // what a forger knows of keys
  // [security]: the simulation's CA and the provider every node signs with.
  std::unique_ptr<security::CryptoProvider> crypto_;
  security::KeyPair ca_key_{};
  std::optional<security::Certificate> root_;
  Rng attack_rng_;  // who is malicious
};

}  // namespace p2psip::sim
