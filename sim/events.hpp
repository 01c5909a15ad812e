// The kinds of the simulator's events (Engine::push's `kind`), and who pushes each.
#pragma once

#include <cstdint>

namespace p2psip::sim {

enum class EventKind : std::uint8_t {
  Deliver,   ///< network: a message arrives (arg: its flight)
  Timer,     ///< population: a node's next_wakeup has come
  Start,     ///< population: the initial population's next start (host: its index)
  Depart,    ///< population: a session ends (arg 0), or a graceful leave's process exits (arg 1)
  Arrive,    ///< population: a newcomer joins (scripted joins)
  Scripted,  ///< the scenario's events (arg: its index)
  Heal,      ///< network: a partition ends
  Workload,  ///< workload: the overlay-wide stream's next operation (arg: kind), or a scripted one
  NodeWork,  ///< workload: a joined node's own next operation (arg: kind)
  Sample,    ///< metrics: the end of a time-series interval
  Call,      ///< telephony: a phone's next call (host: its host)
  Ice,       ///< ICE model: a host's agent reports on a session (arg: the report's slot)
};

constexpr std::uint8_t kind(EventKind k) {
  return static_cast<std::uint8_t>(k);
}

}  // namespace p2psip::sim
