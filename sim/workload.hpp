// The workload model and its oracle: lookups, puts and gets started at joined honest nodes
// (overlay-wide Poisson streams, per-node streams, and scripted operations), each judged against
// what the simulation knows to be true: the responsible node from the population's ring, the value
// a get must find from the puts that succeeded.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "sim/engine.hpp"
#include "sim/population.hpp"
#include "sim/results.hpp"
#include "sim/scenario.hpp"

namespace p2psip::sim {

class Workload {
 public:
  enum class Kind : std::uint8_t { Lookup, Put, Get, Script };

  Workload(const Scenario& sc, Engine& engine, Population& population, Metrics& metrics);

  /// Schedules the scripted operations and the overlay-wide streams' first arrivals.
  void schedule();
  /// A Workload event: the overlay-wide stream of `kind` starts its next operation (or, for
  /// Script, operation `arg` of the scenario's script).
  void overlay_wide(Kind kind, std::uint64_t arg);
  /// A host has joined: its own streams begin (per-node rates).
  void node_joined(std::uint32_t host);
  /// A NodeWork event: host `host`'s stream of `kind` starts its next operation.
  void node_work(std::uint32_t host, Kind kind);

  /// What a forger knows of keys: the names of those stored, by id.
  [[nodiscard]] const std::string* name_of(dht::NodeId key) const {
    auto it = names_.find(key);
    return it == names_.end() ? nullptr : &it->second;
  }

 private:
  /// One put that succeeded: what a get of it must find (a dictionary entry under `name`).
  struct Stored {
    std::string name, dkey, value;
  };
  [[nodiscard]] double per_node_rate(Kind kind) const;
  [[nodiscard]] Duration exponential_gap(double rate);  ///< a Poisson process's next gap
  [[nodiscard]] std::optional<std::uint32_t> random_honest_joined();
  /// Starts one operation of `kind` (not Script) at host `from`.
  void issue(Kind kind, std::uint32_t from);
  void route(std::uint32_t from, dht::RouteOp op, const std::string& key, std::optional<std::string> expect,
             std::string dkey = {});

  const Scenario& sc_;
  Engine& engine_;
  Population& population_;
  Metrics& metrics_;
  Rng rng_;
  Instant end_;                                                          ///< no new operations from here on (the drain)
  std::vector<Stored> stored_;                                           // puts that succeeded
  std::unordered_map<dht::NodeId, std::string, dht::NodeIdHash> names_;  // what a forger knows of keys
};

}  // namespace p2psip::sim
