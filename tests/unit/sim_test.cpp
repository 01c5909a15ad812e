// The simulator's models and engine: distributions, scenario files, determinism, and the overlay
// behaving as it must on a simulated network (ring, lookups, failures, churn, partitions).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <set>
#include <vector>

#include "sim/event_queue.hpp"
#include "sim/report.hpp"
#include "sim/simulator.hpp"

namespace p2psip::sim {
namespace {

double sample_mean(const Distribution& d, std::uint64_t seed, int n = 200000) {
  Rng rng(seed);
  double sum = 0;
  for (int i = 0; i < n; ++i) sum += d.sample(rng);
  return sum / n;
}

TEST(SimDistribution, ParsesEveryKindAndSamplesItsMean) {
  for (const char* text : {"constant(5)", "uniform(1, 9)", "exponential(600)", "pareto(300, 2.5)",
                           "weibull(scale=3600, shape=0.5)", "lognormal(1.5, 0.5)", "7"}) {
    std::string error;
    auto d = parse_distribution(text, error);
    ASSERT_TRUE(d) << text << ": " << error;
    const double mean = d->mean();
    EXPECT_NEAR(sample_mean(*d, 11), mean, mean * 0.03) << text;
  }
}

TEST(SimDistribution, RefusesWhatCannotBeSampled) {
  for (const char* text : {"exponential(-1)", "pareto(1)", "weibull(1, 0)", "uniform(5, 1)", "normal(1, 2)",
                           "exponential(x)", "constant(-3)", "exponential(1"}) {
    std::string error;
    EXPECT_FALSE(parse_distribution(text, error)) << text;
    EXPECT_FALSE(error.empty()) << text;
  }
}

TEST(SimRng, StreamsAreReproducibleAndIndependent) {
  Rng a(42, 7), b(42, 7), c(42, 8);
  for (int i = 0; i < 100; ++i) {
    const auto x = a.next();
    EXPECT_EQ(x, b.next());
    EXPECT_NE(x, c.next());
  }
  Rng r(1);
  for (int i = 0; i < 10000; ++i) {
    const double u = r.uniform();
    EXPECT_GE(u, 0.0);
    EXPECT_LT(u, 1.0);
    EXPECT_LT(r.below(7), 7u);
  }
}

TEST(SimScenario, ReadsEverySectionAndNamesBadKeys) {
  Scenario s;
  std::string error;
  const std::string text = R"TOML(
nodes = 64
duration = 300
seed = 9
[network]
access_ms = "uniform(1, 3)"
loss = 0.01
[chord]
stabilize = 10
successors = 4
replicas = 1
finger_rounds = 6
learn_fingers = false
[churn]
session = "weibull(600, 0.5)"
[workload]
lookups_per_s = 2.5
lookups_per_node_per_s = 0.1
gets_per_node_per_s = 0.02
[[event]]
at = 100
fail = 0.5
[[event]]
at = 200
partition = 30
)TOML";
  ASSERT_TRUE(apply_toml(text, "test", ".", s, error)) << error;
  EXPECT_EQ(s.nodes, 64u);
  EXPECT_EQ(s.seed, 9u);
  EXPECT_EQ(s.access_ms.kind, Distribution::Kind::Uniform);
  EXPECT_EQ(s.chord.stabilize_interval, seconds(10));
  EXPECT_EQ(s.chord.successors, 4u);
  EXPECT_EQ(s.chord.finger_rounds, 6u);
  EXPECT_FALSE(s.chord.learn_fingers);
  EXPECT_EQ(s.lookups_per_s, 2.5);
  EXPECT_EQ(s.lookups_per_node_per_s, 0.1);
  EXPECT_EQ(s.gets_per_node_per_s, 0.02);
  EXPECT_EQ(s.puts_per_node_per_s, 0.0);
  ASSERT_TRUE(s.session_s);
  EXPECT_EQ(s.session_s->kind, Distribution::Kind::Weibull);
  ASSERT_EQ(s.events.size(), 2u);
  EXPECT_EQ(s.events[1].kind, ScriptedEvent::Kind::Partition);

  for (const char* bad : {"nodes = 0", "colour = 3", "[chord]\nsuccessor = 3", "[network]\nloss = 2",
                          "[[event]]\nat = 5", "[[event]]\nat = 5\nfail = 0.1\njoin = 0.1", "nodes = \"many\"",
                          "[churn]\nsession = \"exponential(0)\"", "duration = ", "[chord]\nfinger_rounds = 0",
                          "[workload]\nlookups_per_node_per_s = -0.1", "[workload]\nputs_per_node_per_s = 5000"}) {
    Scenario t;
    std::string why;
    EXPECT_FALSE(apply_toml(bad, "bad.toml", ".", t, why)) << bad;
    EXPECT_NE(why.find("bad.toml"), std::string::npos) << why;
  }
  Scenario t;
  t.chord.successors = 2;
  t.chord.replicas = 3;
  EXPECT_FALSE(validate(t, error));
  EXPECT_NE(error.find("replicas"), std::string::npos);

  Scenario links;
  ASSERT_TRUE(apply_toml("[network]\ntransport = \"tcp\"", "links.toml", ".", links, error)) << error;
  EXPECT_EQ(links.transport, Transport::Tcp);
  EXPECT_FALSE(apply_toml("[network]\ntransport = \"sctp\"", "links.toml", ".", links, error));
  EXPECT_NE(error.find("network.transport"), std::string::npos) << error;
  links.loss = 0.1;
  EXPECT_FALSE(validate(links, error));  // a stream loses nothing: loss with TCP links is refused
  EXPECT_NE(error.find("network.loss"), std::string::npos) << error;
}

Scenario small(std::size_t nodes, double duration) {
  Scenario s;
  s.nodes = nodes;
  s.duration_s = duration;
  s.join_rate = 10;
  s.chord.stabilize_interval = seconds(5);
  s.chord.fingers_per_round = 4;
  s.workload_start_s = duration / 2;
  s.drain_s = 20;
  s.lookups_per_s = 4;
  return s;
}

TEST(SimEventQueue, PopsInTheOrderOfTheComparisonWhateverThePushOrder) {
  // Keys as the simulator's: (time, sequence), never equal; times repeat so that ties are broken
  // by the sequence. Pops interleave with pushes, as events schedule later events.
  struct Key {
    std::uint64_t at, seq;
  };
  struct Before {
    bool operator()(const Key& a, const Key& b) const { return a.at != b.at ? a.at < b.at : a.seq < b.seq; }
  };
  p2psip::sim::QuadHeap<Key, Before> heap;
  std::vector<Key> reference;
  std::uint64_t state = 12345, seq = 0;
  auto next = [&] {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return state >> 33;
  };
  std::vector<Key> popped;
  for (int round = 0; round < 2000; ++round) {
    const std::uint64_t pushes = next() % 5;
    for (std::uint64_t i = 0; i < pushes; ++i) {
      Key k{next() % 64, seq++};
      heap.push(k);
      reference.push_back(k);
    }
    const std::uint64_t pops = next() % 4;
    for (std::uint64_t i = 0; i < pops && !heap.empty(); ++i) {
      auto first = std::min_element(reference.begin(), reference.end(), Before{});
      ASSERT_EQ(heap.top().seq, first->seq);
      // second(): what the next pop after this one gives, as long as nothing is pushed between.
      const Key* second = heap.second();
      ASSERT_EQ(second == nullptr, reference.size() < 2);
      if (second != nullptr) {
        std::vector<Key> rest(reference);
        rest.erase(rest.begin() + (first - reference.begin()));
        ASSERT_EQ(second->seq, std::min_element(rest.begin(), rest.end(), Before{})->seq);
      }
      Key k = heap.pop();
      ASSERT_EQ(k.seq, first->seq);
      ASSERT_EQ(k.at, first->at);
      reference.erase(first);
      popped.push_back(k);
    }
    ASSERT_EQ(heap.size(), reference.size());
  }
  while (!heap.empty()) {
    auto first = std::min_element(reference.begin(), reference.end(), Before{});
    ASSERT_EQ(heap.pop().seq, first->seq);
    reference.erase(first);
  }
  EXPECT_TRUE(reference.empty());
  EXPECT_GT(popped.size(), 1000U);
}

/// Drives a calendar queue and a std::set with the same pushes and pops: each pop and each non-null
/// second() must be the set's. Delays mix the current bucket, the wheel, beyond it and long quiet
/// gaps, with now and then a push before the last pop's time.
template <unsigned kWidthBits, unsigned kBucketBits>
void calendar_queue_agrees_with_a_set(std::uint64_t seed, std::uint64_t span) {
  struct Key {
    std::uint64_t at, seq;
  };
  struct Before {
    bool operator()(const Key& a, const Key& b) const { return a.at != b.at ? a.at < b.at : a.seq < b.seq; }
  };
  struct TimeOf {
    std::uint64_t operator()(const Key& k) const { return k.at; }
  };
  p2psip::sim::CalendarQueue<Key, Before, TimeOf, kWidthBits, kBucketBits> q;
  std::set<Key, Before> reference;
  std::uint64_t state = seed, seq = 0, now = 0;
  std::size_t seconds_checked = 0;
  auto next = [&] {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return state >> 33;
  };
  for (int round = 0; round < 20000; ++round) {
    const std::uint64_t pushes = next() % 4;
    for (std::uint64_t i = 0; i < pushes; ++i) {
      const std::uint64_t kind = next() % 100;
      std::uint64_t at = now;
      if (kind < 40) {
        at += next() % 4;  // the current bucket or the next
      } else if (kind < 85) {
        at += next() % span;  // within the wheel
      } else if (kind < 98) {
        at += span + next() % (4 * span);  // beyond it
      } else if (now > 0) {
        at = now - 1 - next() % std::min<std::uint64_t>(now, 3);  // before the last pop
      }
      Key k{at, seq++};
      q.push(k);
      reference.insert(k);
    }
    const std::uint64_t pops = round % 500 < 450 ? next() % 4 : 8;  // now and then drain
    for (std::uint64_t i = 0; i < pops && !reference.empty(); ++i) {
      ASSERT_FALSE(q.empty());
      ASSERT_EQ(q.top().seq, reference.begin()->seq) << "round " << round;
      if (const Key* second = q.second()) {
        ASSERT_GE(reference.size(), 2u);
        ASSERT_EQ(second->seq, std::next(reference.begin())->seq) << "round " << round;
        ++seconds_checked;
      }
      const Key k = q.pop();
      ASSERT_EQ(k.seq, reference.begin()->seq) << "round " << round;
      reference.erase(reference.begin());
      now = std::max(now, k.at);
    }
    ASSERT_EQ(q.size(), reference.size());
    if (reference.empty() && next() % 8 == 0) now += 50 * span;  // a quiet gap: the queue jumps
  }
  while (!reference.empty()) {
    ASSERT_EQ(q.pop().seq, reference.begin()->seq);
    reference.erase(reference.begin());
  }
  EXPECT_TRUE(q.empty());
  EXPECT_GT(seconds_checked, 1000u);
}

TEST(SimEventQueue, CalendarQueuePopsAsTheComparisonOrders) {
  // A tiny wheel (4 ticks a bucket, 16 buckets) wraps and migrates all the time; the simulator's
  // sizes (1024 ticks, 32768 buckets) with delays from microseconds to minutes.
  calendar_queue_agrees_with_a_set<2, 4>(1, 64);
  calendar_queue_agrees_with_a_set<2, 4>(2, 7);
  calendar_queue_agrees_with_a_set<10, 15>(3, 40000000);
  calendar_queue_agrees_with_a_set<10, 15>(4, 3000);
}

TEST(Simulator, SmallRingIsCorrectAndEveryLookupFindsTheResponsibleNode) {
  Simulator sim(small(48, 200));
  while (sim.run_until(sim.now_s() + 10)) {
  }
  const Results& r = sim.results();
  EXPECT_EQ(sim.live_nodes(), 48u);
  EXPECT_EQ(sim.joined_nodes(), 48u);
  EXPECT_EQ(sim.ring_errors(), 0u);
  EXPECT_GT(r.lookups.issued, 200u);
  EXPECT_EQ(r.lookups.ok, r.lookups.issued);
  const Summary s = summarize(sim);
  EXPECT_EQ(s.lookup_success_rate, 1.0);
  EXPECT_GT(s.hops_mean, 1.0);
  EXPECT_LT(s.hops_mean, 5.0);
  EXPECT_GT(r.messages, 1000u);
  EXPECT_EQ(r.lost, 0u);
  // Every message took at least the modelled network delay: latencies are not zero.
  EXPECT_GT(s.latency_ms_p50, 10.0);
}

TEST(Simulator, AStoppedRunCountsOnlyTheLookupsThatEnded) {
  // stop() (SIGINT to `p2psip sim`) leaves lookups in flight: they have no outcome yet, and must
  // not count as wrong. The run is complete up to the time reached.
  Scenario sc = small(48, 400);
  sc.lookups_per_s = 200;  // a few hundred in flight at any moment
  Simulator sim(sc);
  sim.run_until(300);
  sim.stop();
  EXPECT_TRUE(sim.finished());
  EXPECT_TRUE(sim.stopped_early());
  EXPECT_FALSE(sim.run_until(400));
  EXPECT_DOUBLE_EQ(sim.now_s(), 300.0);
  const Results& r = sim.results();
  EXPECT_GT(r.lookups.issued, r.lookups.done) << "no lookup was in flight at the stop";
  EXPECT_GT(r.lookups.done, 10000u);
  EXPECT_EQ(r.lookups.ok, r.lookups.done);
  EXPECT_EQ(summarize(sim).lookup_success_rate, 1.0);
  EXPECT_NE(summary_json(sim, HostFigures{}).find("\"stopped_early\": true"), std::string::npos);
}

TEST(Simulator, ConcurrentJoinsLeaveNoLoopyRing) {
  // 300 nodes joining at 50/s: with this seed, stabilization alone left 30 nodes in a sparse second
  // cycle (a "loopy" ring) that it never repairs; the successor check must leave none.
  Scenario s;
  s.nodes = 300;
  s.duration_s = 600;
  s.seed = 4;
  s.join_rate = 50;
  s.lookups_per_s = 0;
  Simulator sim(s);
  while (sim.run_until(sim.now_s() + 50)) {
  }
  EXPECT_EQ(sim.joined_nodes(), 300u);
  std::vector<std::string> details;
  EXPECT_EQ(sim.ring_errors(&details), 0u) << (details.empty() ? "" : details.front());
}

TEST(Simulator, SameSeedSameRunOtherSeedOtherRun) {
  auto run = [](std::uint64_t seed) {
    Scenario s = small(40, 120);
    s.seed = seed;
    s.loss = 0.02;
    s.session_s = Distribution{Distribution::Kind::Exponential, 200, 0};
    Simulator sim(s);
    while (sim.run_until(sim.now_s() + 7)) {
    }
    return summary_json(sim, HostFigures{});
  };
  const std::string a = run(5);
  EXPECT_EQ(a, run(5));
  EXPECT_NE(a, run(6));
}

TEST(Simulator, HalfTheNodesFailingAtOnceIsSurvivedWithLongSuccessorLists) {
  Scenario s = small(64, 300);
  s.chord.successors = 12;
  s.events.push_back(ScriptedEvent{ScriptedEvent::Kind::Fail, 150, 0.5, 0});
  s.workload_start_s = 100;
  Simulator sim(s);
  sim.run_until(149);
  ASSERT_EQ(sim.live_nodes(), 64u);
  sim.run_until(151);
  EXPECT_EQ(sim.live_nodes(), 32u);
  EXPECT_EQ(sim.results().failures, 32u);
  while (sim.run_until(sim.now_s() + 10)) {
  }
  EXPECT_EQ(sim.ring_errors(), 0u);  // stabilization repaired the ring
  const Results& r = sim.results();
  EXPECT_GE(static_cast<double>(r.lookups.ok), 0.95 * static_cast<double>(r.lookups.issued - r.abandoned));
}

TEST(Simulator, PartitionDropsCrossingMessagesUntilItHeals) {
  Scenario s = small(32, 200);
  s.events.push_back(ScriptedEvent{ScriptedEvent::Kind::Partition, 100, 0, 30});
  Simulator sim(s);
  sim.run_until(99);
  EXPECT_EQ(sim.results().partitioned, 0u);
  sim.run_until(130.5);  // the cut lasts from 100 s to 130 s
  const auto during = sim.results().partitioned;
  EXPECT_GT(during, 0u);
  sim.run_until(200);
  EXPECT_EQ(sim.results().partitioned, during);  // healed: nothing more dropped
}

TEST(Simulator, ChurnKeepsThePopulationAndJoinEventsGrowIt) {
  Scenario s = small(50, 400);
  s.session_s = Distribution{Distribution::Kind::Exponential, 100, 0};
  s.churn_start_s = 50;
  s.events.push_back(ScriptedEvent{ScriptedEvent::Kind::Join, 300, 0.2, 0});
  Simulator sim(s);
  sim.run_until(299);
  EXPECT_EQ(sim.live_nodes(), 50u);
  EXPECT_GT(sim.results().failures, 50u);  // about 2.5 sessions each ran out
  EXPECT_EQ(sim.results().joins, 50u + sim.results().failures);
  sim.run_until(301);
  EXPECT_EQ(sim.live_nodes(), 60u);
}

TEST(Simulator, GracefulLeaversHandOverAndThenExit) {
  Scenario s = small(50, 400);
  s.session_s = Distribution{Distribution::Kind::Exponential, 300, 0};
  s.churn_start_s = 50;
  s.leave_fraction = 1.0;
  s.puts_per_s = 1;
  s.gets_per_s = 2;
  s.workload_start_s = 60;
  Simulator sim(s);
  while (sim.run_until(sim.now_s() + 10)) {
  }
  const Results& r = sim.results();
  EXPECT_GT(r.leaves, 30u);
  EXPECT_EQ(r.failures, 0u);
  // A leaver lives on for a few seconds to hear its Leave answered, then exits: the population
  // stays at 50 (plus the leavers of the last few seconds).
  EXPECT_LE(sim.live_nodes(), 53u);
  EXPECT_GE(sim.live_nodes(), 50u);
  // Records survive their holders leaving: they were handed over.
  EXPECT_GE(static_cast<double>(r.gets.ok), 0.97 * static_cast<double>(r.gets.done));
}

TEST(Simulator, PerNodeRatesFollowTheJoinedPopulation) {
  // Each joined honest node starts lookups at a rate of its own (SimGrid's Chord: one every 10 s),
  // so the overlay's load follows its population: half the nodes failing halves it. Windows:
  // (60, 120] s with 48 nodes, (120, 220] s with 24; the workload ends at 220 s.
  struct Counts {
    std::uint64_t before = 0, after = 0;
  };
  auto run = [](double per_node, double overall) {
    Scenario s = small(48, 240);
    s.workload_start_s = 60;
    s.drain_s = 20;
    s.lookups_per_s = overall;
    s.lookups_per_node_per_s = per_node;
    s.events.push_back(ScriptedEvent{ScriptedEvent::Kind::Fail, 120, 0.5, 0});
    Simulator sim(s);
    sim.run_until(60);
    EXPECT_EQ(sim.joined_nodes(), 48u);
    EXPECT_EQ(sim.results().lookups.issued, 0u);
    sim.run_until(120);
    Counts c;
    c.before = sim.results().lookups.issued;
    while (sim.run_until(sim.now_s() + 20)) {
    }
    c.after = sim.results().lookups.issued - c.before;
    return c;
  };
  // Poisson counts: 48 x 0.5/s x 60 s = 1440 (sd 38) before, 24 x 0.5/s x 100 s = 1200 (sd 35) after.
  const Counts per_node = run(0.5, 0);
  EXPECT_NEAR(static_cast<double>(per_node.before), 1440, 6 * 38);
  EXPECT_NEAR(static_cast<double>(per_node.after), 1200, 6 * 35);
  // The overlay-wide rate of the same size before the failure keeps its 24 per second after it.
  const Counts overall = run(0, 24);
  EXPECT_NEAR(static_cast<double>(overall.before), 1440, 6 * 38);
  EXPECT_NEAR(static_cast<double>(overall.after), 2400, 6 * 49);
}

TEST(Simulator, ScriptedPutsAndGetsRoundTrip) {
  Scenario s = small(16, 120);
  s.lookups_per_s = 0;
  s.script.push_back(ScriptedOp{60, 3, dht::RouteOp::Store, "alice"});
  s.script.push_back(ScriptedOp{70, 9, dht::RouteOp::Fetch, "alice"});
  s.script.push_back(ScriptedOp{71, 2, dht::RouteOp::Lookup, "alice"});
  Simulator sim(s);
  while (sim.run_until(sim.now_s() + 10)) {
  }
  EXPECT_EQ(sim.results().puts.ok, 1u);
  EXPECT_EQ(sim.results().gets.ok, 1u);
  EXPECT_EQ(sim.results().lookups.ok, 1u);
}

TEST(Simulator, LossIsAppliedToDatagrams) {
  Scenario s = small(24, 100);
  s.loss = 0.1;
  Simulator sim(s);
  while (sim.run_until(sim.now_s() + 10)) {
  }
  const auto& r = sim.results();
  const double rate = static_cast<double>(r.lost) / static_cast<double>(r.messages);
  EXPECT_NEAR(rate, 0.1, 0.02);
  EXPECT_GT(sim.retransmissions_and_timeouts().first, 0u);  // the transaction layer made up for it
}

TEST(Simulator, FlashCrowdLeavesNoStrandedPeer) {
  // Hundreds of peers joining within a second: a peer admitted by one whose range was still wide
  // joins with a successor far past its real one, so that every finger start falls before it and
  // its successor check had no peer to start from; stabilization alone walked back one peer per
  // round, for many minutes. Both runs here left such a peer stranded before the check fell back
  // to its other neighbours (SimGrid's scenario, whose 10 000 nodes join at 1000 per second).
  for (auto [nodes, seed] : {std::pair<std::size_t, std::uint64_t>{500, 1}, {1000, 2}}) {
    Scenario s;
    s.nodes = nodes;
    s.seed = seed;
    s.duration_s = 200;
    s.join_rate = 2.0 * static_cast<double>(nodes);
    s.transport = Transport::Tcp;
    s.chord.stabilize_interval = seconds(20);
    s.chord.fingers_per_round = 1;
    s.lookups_per_s = 0;
    Simulator sim(s);
    while (sim.run_until(sim.now_s() + 50)) {
    }
    std::vector<std::string> details;
    EXPECT_EQ(sim.ring_errors(&details), 0u) << nodes << " nodes: " << (details.empty() ? "" : details[0]);
  }
}

TEST(Simulator, TcpLinksRouteAlikeWithoutRetransmissionsOrLingeringTransactions) {
  // No loss and one delay per pair: both transports deliver the same messages at the same times,
  // so lookups take the same paths; TCP needs no retransmissions and ends each transaction at its
  // final response (Timers J and K are zero, RFC 3261 §17), so far less state is held.
  Scenario s = small(40, 160);
  Simulator udp_run(s);
  while (udp_run.run_until(udp_run.now_s() + 10)) {
  }
  s.transport = Transport::Tcp;
  Simulator tcp_run(s);
  while (tcp_run.run_until(tcp_run.now_s() + 10)) {
  }
  const Summary u = summarize(udp_run);
  const Summary t = summarize(tcp_run);
  EXPECT_EQ(t.lookup_success_rate, 1.0);
  EXPECT_EQ(tcp_run.results().lookups.issued, udp_run.results().lookups.issued);
  EXPECT_EQ(t.hops_mean, u.hops_mean);
  EXPECT_EQ(tcp_run.ring_errors(), 0u);
  EXPECT_GT(udp_run.retransmissions_and_timeouts().first, 0u);  // recursive hops outlast T1
  EXPECT_EQ(tcp_run.retransmissions_and_timeouts().first, 0u);
  EXPECT_LT(tcp_run.results().messages, udp_run.results().messages);
  EXPECT_LT(tcp_run.transactions() * 4, udp_run.transactions());
}

/// Enrolled nodes, a tenth malicious, puts and gets once the ring has settled.
}  // namespace
}  // namespace p2psip::sim

namespace p2psip::sim {
namespace {

Scenario with_phones(std::size_t nodes, double duration) {
  Scenario s = small(nodes, duration);
  // Joins slow enough that each node's phone registers on a settled ring: a registration stored
  // in the middle of a join storm can be left behind later joiners, out of a fetch's three tries'
  // reach (docs/SIMULATION.md, "Phones"; sim/scenarios/calls.toml shows it).
  s.join_rate = 2;
  s.workload_start_s = 120;
  s.lookups_per_s = 0;
  s.phones.fraction = 0.5;
  s.phones.calls_per_phone_per_s = 0.05;
  s.phones.answer_delay_s = 1;
  s.phones.call_duration_s = 5;
  return s;
}

std::size_t hosts_with_phones(const Simulator& sim) {
  // The model draws who has a phone on a stream of its own: count what it drew.
  return static_cast<std::size_t>(sim.results().calls.registrations_ok + sim.results().calls.registrations_failed);
}

TEST(SimulatedPhones, RegisterAndCallEachOtherThroughThePeersPhoneSides) {
  Simulator sim(with_phones(60, 500));
  while (sim.run_until(sim.now_s() + 25)) {
  }
  const CallResults& c = sim.results().calls;
  // About half of the 60 hosts serve a phone, and every one of those registered.
  EXPECT_GE(hosts_with_phones(sim), 20u);
  EXPECT_LE(hosts_with_phones(sim), 40u);
  EXPECT_EQ(c.registrations_failed, 0u);
  ASSERT_GT(c.attempted, 200u);
  // On a stable ring every call is answered: looked up in the overlay, sent straight to the
  // callee's node, rung there (180) and answered (200), then ACKed and hung up.
  EXPECT_EQ(c.answered + c.failed, c.attempted);
  EXPECT_EQ(c.failed, 0u) << (c.failed_by_status.empty() ? 0 : c.failed_by_status.begin()->first);
  ASSERT_EQ(c.setup_ms.size(), c.attempted);
  // The set-up takes a lookup across the overlay and one hop to the callee's node: more than two
  // one-way delays, and far less than Timer B.
  std::vector<float> setup = c.setup_ms;
  std::sort(setup.begin(), setup.end());
  EXPECT_GT(setup[setup.size() / 2], 20.0F);
  EXPECT_LT(setup.back(), 5000.0F);
  const std::string json = summary_json(sim, HostFigures{});
  EXPECT_NE(json.find("\"calls\": {\"phones_fraction\": 0.5"), std::string::npos) << json;
}

TEST(SimulatedPhones, CallsToUsersWhoseHostsDiedFailWithTheirStatus) {
  Scenario s = with_phones(60, 700);
  s.session_s = Distribution{Distribution::Kind::Exponential, 400, 0};
  s.churn_start_s = 150;
  Simulator sim(s);
  while (sim.run_until(sim.now_s() + 25)) {
  }
  const CallResults& c = sim.results().calls;
  ASSERT_GT(c.attempted, 200u);
  EXPECT_GT(c.answered, c.attempted / 2);
  // A callee that died between the caller's choice and the call, or whose entry outlived its
  // node, is a failed call with the status the caller heard (404, 408, 480), never a hang.
  EXPECT_GT(c.failed, 0u);
  for (const auto& [status, n] : c.failed_by_status) {
    EXPECT_GE(status, 400) << n << " calls";
    EXPECT_LT(status, 700) << n << " calls";
  }
  EXPECT_LE(c.answered + c.failed, c.attempted);
}

TEST(SimulatedPhones, SameSeedSameCalls) {
  auto run = [] {
    Simulator sim(with_phones(40, 300));
    while (sim.run_until(sim.now_s() + 30)) {
    }
    return summary_json(sim, HostFigures{});
  };
  EXPECT_EQ(run(), run());
}

}  // namespace
}  // namespace p2psip::sim

namespace p2psip::sim {
namespace {

Scenario nat_mix(bool ice) {
  Scenario s = small(80, 400);
  s.workload_start_s = 250;
  s.nat.full_cone = 0.1;
  s.nat.port_restricted = 0.2;
  s.nat.symmetric = 0.2;
  s.nat.udp_blocked = 0.1;
  s.nat.ice = ice;
  return s;
}

bool cone(const std::string& kind) {
  return kind == "full-cone" || kind == "addr-restricted" || kind == "port-restricted";
}

/// What every NAT run must show: nobody left deciding, clients with two flows to relay peers within
/// their limit, a right ring and right lookups, the NATs at work, nothing sent to a private address.
void expect_sound(const Simulator& sim, const Scenario& s) {
  const NatReport nr = sim.nat_report();
  std::uint64_t clients = 0, two_flows = 0;
  for (const auto& [kind, k] : nr.by_kind) {
    EXPECT_EQ(k.deciding, 0u) << kind;
    clients += k.clients;
    two_flows += k.clients_two_flows;
  }
  EXPECT_GT(clients, 20u);
  EXPECT_GE(two_flows * 100, clients * 95) << "clients keep two flows to relay peers";
  EXPECT_EQ(nr.by_kind.count("udp-blocked"), 1u);
  EXPECT_EQ(sim.ring_errors(), 0u);
  const Results& r = sim.results();
  ASSERT_GT(r.lookups.done, 100u);
  EXPECT_EQ(r.lookups.ok, r.lookups.done);
  EXPECT_GT(r.nat_blocked, 0u);
  EXPECT_EQ(r.to_private, 0u);
  EXPECT_GT(r.stun_messages, 0u);
  std::uint64_t held = 0;
  for (auto n : nr.relay_clients) {
    EXPECT_LE(n, s.nat.relay_max_clients);
    held += n;
  }
  // Each client is held at the relay of each of its active flows: two relays for most.
  EXPECT_GE(held, 2 * two_flows);
  EXPECT_LE(held, 2 * clients);
}

TEST(SimulatedNats, PublicAndConeNatedNodesFormTheRingOverIceLinksAndTheOthersBecomeClientsWithTwoFlows) {
  const Scenario s = nat_mix(true);
  Simulator sim(s);
  while (sim.run_until(sim.now_s() + 50)) {
  }
  expect_sound(sim, s);
  const NatReport nr = sim.nat_report();
  std::uint64_t cone_peers = 0, ring = 0;
  for (const auto& [kind, k] : nr.by_kind) {
    if (kind == "public" || cone(kind)) {
      EXPECT_EQ(k.peers, k.live) << kind << ": joins the ring";
      EXPECT_EQ(k.clients, 0u) << kind;
      ring += k.live;
      if (cone(kind)) cone_peers += k.live;
    } else {
      EXPECT_EQ(k.peers, 0u) << kind << ": a symmetric or UDP-blocked node is a client";
    }
  }
  EXPECT_GT(cone_peers, 15u);
  EXPECT_EQ(sim.joined_nodes(), ring);
  // The cone peers are reached over ICE links, direct ones (every cone and public pair is direct in
  // the lab's table), which carried overlay messages; a failed pair is rare (a peer that died
  // during the checks).
  const IceResults& ice = sim.results().ice;
  EXPECT_GT(ice.up_direct, cone_peers * 2);
  EXPECT_EQ(ice.up_relayed, 0u);
  EXPECT_LE(ice.failed * 50, ice.sessions);
  EXPECT_GT(ice.link_messages, 1000u);
  EXPECT_GT(ice.keepalive_bytes, 0u);
  ASSERT_FALSE(ice.checks_ms.empty());
  const auto [lo, hi] = std::minmax_element(ice.checks_ms.begin(), ice.checks_ms.end());
  EXPECT_GE(*lo, static_cast<float>(to_millis(IceModel::kDirectPacing)));
  EXPECT_LT(*hi, 2000.0F);
  const std::string json = summary_json(sim, HostFigures{});
  EXPECT_NE(json.find("\"ice_turn_pair_share\""), std::string::npos);
  EXPECT_NE(json.find("\"up_direct\": " + std::to_string(ice.up_direct)), std::string::npos);
}

TEST(SimulatedNats, WithoutIceOnlyPublicNodesFormTheRingAndEveryNatedOneIsAClient) {
  const Scenario s = nat_mix(false);
  Simulator sim(s);
  while (sim.run_until(sim.now_s() + 50)) {
  }
  expect_sound(sim, s);
  const NatReport nr = sim.nat_report();
  for (const auto& [kind, k] : nr.by_kind) {
    if (kind == "public") {
      EXPECT_EQ(k.peers, k.live) << "a public node joins the ring";
    } else {
      EXPECT_EQ(k.peers, 0u) << kind << ": no NATed node enters the ring without ICE";
      EXPECT_EQ(k.clients, k.live) << kind;
    }
  }
  EXPECT_EQ(sim.joined_nodes(), nr.by_kind.at("public").live);
  EXPECT_EQ(sim.results().ice.sessions, 0u);
}

TEST(SimulatedNats, TheNatSectionIsReadAndCheckedAndTheSameSeedGivesTheSameHosts) {
  Scenario s;
  std::string error;
  EXPECT_TRUE(s.nat.ice);
  EXPECT_FALSE(s.nat.turn);
  ASSERT_TRUE(
      apply_toml("[nat]\nsymmetric = 0.25\nudp_blocked = 0.05\nbinding_timeout = 300\nrelay_max_clients = 20\n"
                 "ice = false\nturn = true",
                 "nat.toml", ".", s, error))
      << error;
  EXPECT_FALSE(s.nat.ice);
  EXPECT_TRUE(s.nat.turn);
  EXPECT_DOUBLE_EQ(s.nat.natted(), 0.3);
  EXPECT_DOUBLE_EQ(s.nat.binding_timeout_s, 300);
  EXPECT_EQ(s.nat.relay_max_clients, 20u);
  for (const char* bad : {"[nat]\nsymmetric = 0.7\nudp_blocked = 0.5", "[nat]\ncgn = 0.1",
                          "[nat]\nbinding_timeout = 10", "[nat]\nfull_cone = -0.1", "[nat]\nice = 1"}) {
    Scenario t;
    std::string why;
    EXPECT_FALSE(apply_toml(bad, "bad.toml", ".", t, why)) << bad;
    EXPECT_NE(why.find("nat"), std::string::npos) << why;
  }
}

}  // namespace
}  // namespace p2psip::sim
