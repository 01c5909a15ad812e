// The adversary model ([attack]): which hosts are malicious (decided as each is made, on a stream
// of its own) and what they do to the lookups and fetches routed to them: drop them without a word,
// or answer them with a forgery (they claim the key; for a fetch, a record of their own making
// signed with their own key, or 404 when they do not know the key's name). They keep the ring's
// maintenance up, so that they stay in it and keep receiving requests, and handle stores honestly.
#pragma once

#include <cstdint>

#include "sim/ice_model.hpp"
#include "sim/network.hpp"
#include "sim/population.hpp"
#include "sim/results.hpp"
#include "sim/scenario.hpp"
#include "sim/workload.hpp"

namespace p2psip::sim {

class Adversary {
 public:
  Adversary(const Scenario& sc, Engine& engine, Population& population, const Workload& workload, Metrics& metrics,
            IceModel& ice)
      : sc_(sc),
        engine_(engine),
        population_(population),
        workload_(workload),
        metrics_(metrics),
        ice_(ice),
        rng_(sc.seed, 4) {}

  /// Host `index`, just made, becomes malicious or not (the one that starts the ring, its
  /// operator's, is honest).
  void decide(Host& host, std::uint32_t index);
  /// A message reached malicious host `to`: true when it attacked it (dropped it, or answered with
  /// a forgery), false to let the host's peer handle it.
  bool intercept(std::uint32_t to, const InFlight& f);

 private:
  const Scenario& sc_;
  Engine& engine_;
  Population& population_;
  const Workload& workload_;
  Metrics& metrics_;
  IceModel& ice_;  ///< a forgery for a request that came over an ICE link goes back over it
  Rng rng_;        // who is malicious, and nothing else
};

}  // namespace p2psip::sim
