// The discrete-event simulator: real peers (node/peer, the object `p2psip node` runs, with its
// overlay node, Chord core, SIP codec and transaction layer) exchanging their real serialized
// messages over a modelled network, on one virtual clock. It is assembled from small models, each
// in its own file:
//
//   engine.hpp      virtual time and the pending events, in (time, sequence) order
//   network.hpp     places, delays, loss, partitions, messages in flight
//   nat_model.hpp   NAT routers (RFC 4787) and what ICE finds through two of them
//   ice_model.hpp   the peers' ICE agents, whose links carry messages to peers behind cone NATs
//   population.hpp  the hosts and their peers, joins, churn, scripted failures, identities, the ring oracle
//   workload.hpp    lookups, puts and gets, and the oracle that judges them
//   adversary.hpp   malicious hosts that drop or forge
//   phones.hpp      phones on some hosts that register and call each other through their nodes
//   results.hpp     what is measured (report.hpp writes it out)
//
// A scenario and seed give the same run every time. Nothing here reads a clock or touches a
// socket; the caller runs it in slices (run_until) and measures wall time itself.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "sim/adversary.hpp"
#include "sim/engine.hpp"
#include "sim/ice_model.hpp"
#include "sim/network.hpp"
#include "sim/phones.hpp"
#include "sim/population.hpp"
#include "sim/results.hpp"
#include "sim/scenario.hpp"
#include "sim/workload.hpp"

namespace p2psip::sim {

class Simulator {
 public:
  explicit Simulator(Scenario scenario);
  ~Simulator();
  Simulator(const Simulator&) = delete;
  Simulator& operator=(const Simulator&) = delete;

  /// Log lines of traced nodes (by creation index) go to `sink` with the simulated time.
  using LogSink = Population::LogSink;
  void trace(std::vector<std::uint32_t> nodes, LogSink sink) { population_.trace(std::move(nodes), std::move(sink)); }

  /// Processes events up to simulated time `until_s` (capped at the scenario's duration). Returns
  /// false once the run is complete.
  bool run_until(double until_s);
  [[nodiscard]] double now_s() const { return static_cast<double>(engine_.now().time_since_epoch().count()) / 1e6; }
  [[nodiscard]] bool finished() const { return finished_; }
  /// Ends the run at the simulated time reached (the driver's answer to SIGINT or SIGTERM): the
  /// last interval is sampled as far as it got, and the results stand for [0, now_s()].
  void stop();
  /// Whether stop() ended the run before the scenario's duration.
  [[nodiscard]] bool stopped_early() const { return stopped_early_; }
  [[nodiscard]] const Results& results() const { return metrics_.results; }
  [[nodiscard]] const Scenario& scenario() const { return sc_; }
  /// The hop timeout the nodes run with (the scenario's, or the overlay default), in ms.
  [[nodiscard]] double hop_timeout_ms() const {
    return static_cast<double>(to_millis(overlay::effective_hop_timeout(config_)));
  }
  [[nodiscard]] std::size_t live_nodes() const { return population_.live(); }
  [[nodiscard]] std::size_t joined_nodes() const { return population_.joined(); }
  [[nodiscard]] std::size_t nodes_created() const { return population_.created(); }
  [[nodiscard]] std::vector<NodeReport> node_reports() const { return population_.node_reports(engine_.now()); }
  [[nodiscard]] NatReport nat_report() const { return population_.nat_report(); }
  /// SIP transactions held by all live nodes now (their state is most of a node's memory).
  [[nodiscard]] std::size_t transactions() const { return population_.transactions(); }
  /// Retransmissions sent and transaction timeouts, over all nodes that ever ran.
  [[nodiscard]] std::pair<std::uint64_t, std::uint64_t> retransmissions_and_timeouts() const {
    return population_.retransmissions_and_timeouts();
  }
  /// Checks every joined node's successor and predecessor against the ring of joined nodes;
  /// returns the number of nodes whose first successor or predecessor is wrong, and describes each
  /// in `details` when given.
  [[nodiscard]] std::size_t ring_errors(std::vector<std::string>* details = nullptr) const {
    return population_.ring_errors(details);
  }
  /// The hosts and their peers, as the run has them now (tests look inside).
  [[nodiscard]] const Population& population() const { return population_; }

 private:
  static overlay::OverlayConfig peer_settings(const Scenario& sc);
  void process(const Event& e);
  void deliver(std::uint64_t flight);
  void ice_report(std::uint64_t slot);
  /// Asks for the memory the next events will touch (see simulator.cpp).
  void prefetch(const Event* after_next, const Event* next) const;
  void scripted(const ScriptedEvent& ev);
  void sample();
  void finish();  ///< accounts the last interval and marks the run complete
  [[nodiscard]] static Instant at_s(double s) { return Instant(Duration(static_cast<std::int64_t>(s * 1e6))); }

  Scenario sc_;
  overlay::OverlayConfig config_;  ///< every peer's overlay settings
  Engine engine_;
  Metrics metrics_;
  Network network_;
  IceModel ice_;
  Population population_;
  Workload workload_;
  Adversary adversary_;
  Telephony telephony_;
  Instant end_{};
  bool finished_ = false;
  bool stopped_early_ = false;
};

}  // namespace p2psip::sim
