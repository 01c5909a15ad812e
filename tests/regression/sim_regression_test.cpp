// The simulator-regression tier: scenarios whose figures were measured once with a fixed seed and
// are held to budgets, each named here with what it was when set. A change that makes the overlay
// route worse, send more or lose its defences shows here; a change that moves a figure for a good
// reason moves its budget, with the new measurement beside it. Unlike the unit tests, these say
// "at least this good", not "exactly this behaviour", and they take seconds each (ctest label
// sim-regression).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "sim/report.hpp"
#include "sim/simulator.hpp"

namespace p2psip::sim {
namespace {

// ---- a join storm ---------------------------------------------------------------------------------

/// 3000 nodes joining within 3 s (SimGrid's Chord scenario's rate), TCP links, one finger lookup
/// per 20 s round, lookups from 40 s on, seed 1.
constexpr std::size_t kStormNodes = 3000;
/// Lookups that must find the responsible node: 0.97 (measured 0.9836 when the budget was set,
/// 2026-12-06; 0.66 before answers taught fingers).
constexpr double kStormLookupSuccessFloor = 0.97;
/// Mean hops: the Chord paper's 1/2 log2 N plus 1.5 (7.28 here; measured 6.19; 9.6 before).
const double kStormHopsCeiling = 0.5 * std::log2(static_cast<double>(kStormNodes)) + 1.5;
/// Messages in the whole 100 s: 650 000 (measured 535 003; 885 000 before).
constexpr std::uint64_t kStormMessageBudget = 650000;

TEST(SimRegression, RingFormedInAJoinStormRoutesInLogarithmicHopsWithinAMinute) {
  // No node has fingers yet after the storm, routes crawl along successor lists and the finger
  // lookups would take minutes. Every answer coming back teaches the peers on its way a finger, and
  // a successor pointer the storm left far off is repaired in a few steps. Before both, lookups
  // from 40 s on were 66 % right, 576 nodes had a wrong neighbour at 100 s, and the ring sent
  // 885 000 messages.
  Scenario s;
  s.nodes = kStormNodes;
  s.duration_s = 100;
  s.join_rate = 1000;
  s.transport = Transport::Tcp;
  s.chord.stabilize_interval = seconds(20);
  s.chord.fingers_per_round = 1;
  s.workload_start_s = 40;
  s.drain_s = 10;
  s.lookups_per_s = 100;
  Simulator sim(s);
  while (sim.run_until(sim.now_s() + 50)) {
  }
  const Summary sum = summarize(sim);
  std::printf(
      "join storm: lookups right %.4f (floor %.2f), hops mean %.2f (ceiling %.2f), messages %llu (budget %llu)\n",
      sum.lookup_success_rate, kStormLookupSuccessFloor, sum.hops_mean, kStormHopsCeiling,
      static_cast<unsigned long long>(sim.results().messages), static_cast<unsigned long long>(kStormMessageBudget));
  std::vector<std::string> details;
  EXPECT_EQ(sim.ring_errors(&details), 0u) << (details.empty() ? "" : details[0]);
  EXPECT_GT(sim.results().lookups.issued, 4000u);
  EXPECT_GE(sum.lookup_success_rate, kStormLookupSuccessFloor);
  EXPECT_LT(sum.hops_mean, kStormHopsCeiling);
  EXPECT_LT(sim.results().messages, kStormMessageBudget);
}

// ---- attacks --------------------------------------------------------------------------------------

/// 60 nodes with identities, a tenth of them malicious, puts at 2/s and gets at 10/s from 150 s
/// to 380 s, seed 1.
Scenario attacked(Scenario::Attack mode, bool defences) {
  Scenario s;
  s.nodes = 60;
  s.duration_s = 400;
  s.join_rate = 10;
  s.chord.stabilize_interval = seconds(5);
  s.chord.fingers_per_round = 4;
  s.drain_s = 20;
  s.security = true;
  s.malicious_fraction = 0.1;
  s.attack = mode;
  s.workload_start_s = 150;
  s.lookups_per_s = 0;
  s.puts_per_s = 2;
  s.gets_per_s = 10;
  if (!defences) {
    s.chord.fetch_attempts = 1;
    s.chord.plausible_gaps = 0;
  }
  return s;
}

double get_rate(Simulator& sim) {
  while (sim.run_until(sim.now_s() + 50)) {
  }
  const Results& r = sim.results();
  return r.gets.done ? static_cast<double>(r.gets.ok) / static_cast<double>(r.gets.done) : 0;
}

/// Gets that find the real entry with forgers about: 0.98 (measured 0.9970 when set, 2026-12-06).
constexpr double kForgedGetFloor = 0.98;
/// What the defences (three tries, the plausibility check) are worth against forgers: without
/// them at least this much less (measured 0.5526 less: 0.4443 without them).
constexpr double kForgeDefenceGain = 0.03;
/// Gets that succeed with droppers about: 0.99 (measured 1.0000).
constexpr double kDroppedGetFloor = 0.99;

TEST(SimRegression, ForgingNodesCannotStopVerifiedFetches) {
  // Forgers claim the keys routed to them and serve records of their making: the asker believes
  // none of them, and finds the real entry past them (a replica, or the honest responsible peer).
  Simulator on(attacked(Scenario::Attack::Forge, true));
  Simulator off(attacked(Scenario::Attack::Forge, false));
  const double rate_on = get_rate(on);
  const double rate_off = get_rate(off);
  std::printf("forgers: gets right %.4f with the defences (floor %.2f), %.4f without (gain %.4f, floor %.2f)\n",
              rate_on, kForgedGetFloor, rate_off, rate_on - rate_off, kForgeDefenceGain);
  ASSERT_GE(on.results().malicious_nodes, 3u);
  ASSERT_GT(on.results().gets.done, 1000u);
  EXPECT_GT(on.results().attacks_forged, 100u);
  EXPECT_GE(rate_on, kForgedGetFloor);
  EXPECT_LT(rate_off, rate_on - kForgeDefenceGain);  // one try and no plausibility check: a good share lost
  EXPECT_EQ(on.results().gets.wrong, 0u);            // a forgery is never taken for the real entry
}

TEST(SimRegression, DroppingNodesAreRoutedAround) {
  Simulator sim(attacked(Scenario::Attack::Drop, true));
  const double rate = get_rate(sim);
  std::printf("droppers: gets right %.4f (floor %.2f)\n", rate, kDroppedGetFloor);
  EXPECT_GE(rate, kDroppedGetFloor);
  EXPECT_GT(sim.results().attacks_dropped, 100u);
}

}  // namespace
}  // namespace p2psip::sim
