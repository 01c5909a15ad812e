// The Chord protocol on virtual time, checked against the ideal ring.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <set>

#include "chord_harness.hpp"

namespace p2psip::dht {
namespace {

using test::ChordNet;

NodeId random_id(std::mt19937_64& rng) {
  return NodeId{rng(), rng()};
}

/// A ring of n peers joining one after another through peer 0, then left to stabilize.
void build_ring(ChordNet& net, std::size_t n, std::mt19937_64& rng, Duration settle = seconds(60)) {
  net.config.stabilize_interval = seconds(1);
  for (std::size_t i = 0; i < n; ++i) {
    net.add(random_id(rng), i == 0 ? std::nullopt : std::optional<std::size_t>(0));
    net.run_for(millis(200));
  }
  net.run_for(settle);
}

TEST(NodeId, HexRoundTripsAndRefusesAnythingElse) {
  const NodeId id{0x0123456789abcdefULL, 0xfedcba9876543210ULL};
  EXPECT_EQ(id.hex(), "0123456789abcdeffedcba9876543210");
  EXPECT_EQ(NodeId::from_hex(id.hex()), id);
  EXPECT_EQ(NodeId::from_hex("0123456789ABCDEFFEDCBA9876543210"), id);  // upper case too
  for (std::size_t at : {0u, 15u, 16u, 31u}) {
    for (char c : {'g', 'G', ' ', '-', '\0', '\xff', ':'}) {
      std::string bad = id.hex();
      bad[at] = c;
      EXPECT_FALSE(NodeId::from_hex(bad)) << at << " " << static_cast<int>(c);
    }
  }
  EXPECT_FALSE(NodeId::from_hex(id.hex().substr(1)));
  EXPECT_FALSE(NodeId::from_hex(id.hex() + "0"));
}

TEST(NodeId, RingArithmetic) {
  NodeId a{0, 10}, b{0, 20}, max{~0ull, ~0ull};
  EXPECT_TRUE(in_open_closed(NodeId{0, 15}, a, b));
  EXPECT_TRUE(in_open_closed(b, a, b));
  EXPECT_FALSE(in_open_closed(a, a, b));
  EXPECT_TRUE(in_open_closed(NodeId{0, 5}, b, a));  // wraps around zero
  EXPECT_TRUE(in_open_closed(max, b, a));
  EXPECT_FALSE(in_open_open(b, a, b));
  EXPECT_TRUE(in_open_closed(a, a, a));  // the whole ring
  EXPECT_EQ(max.plus_pow2(0), NodeId{});
  EXPECT_EQ((NodeId{0, ~0ull}.plus_pow2(0)), (NodeId{1, 0}));
  EXPECT_EQ(distance(b, a), (NodeId{~0ull, ~0ull - 9}));
  auto h = NodeId::hash("sip:alice@example.com");
  EXPECT_EQ(NodeId::from_hex(h.hex()).value(), h);
  EXPECT_EQ(h.hex().size(), 32u);
  EXPECT_FALSE(NodeId::from_hex("xyz"));
}

TEST(Chord, ValuesAndOwnersAreHeldWithinTheirLimits) {
  ChordNet net;
  net.config.max_records_per_owner = 3;
  net.config.max_value_bytes = 100;
  net.add(dht::NodeId{1, 1}, std::nullopt);
  auto store = [&](const std::string& name, const std::string& owner, std::size_t size, std::uint32_t life = 60) {
    dht::Record r;
    r.name = name;
    r.key = dht::NodeId::hash(name);
    r.owner = owner;
    r.value = std::string(size, 'v');
    r.lifetime_s = life;
    dht::RouteResult out;
    net.slots[0].node->route(
        dht::RouteOp::Store, r.key, r, [&](const dht::RouteResult& res) { out = res; }, net.now);
    return out;
  };
  EXPECT_EQ(store("a", "mallory", 10).status, dht::Status::Ok);
  EXPECT_EQ(store("b", "mallory", 10).status, dht::Status::Ok);
  EXPECT_EQ(store("c", "mallory", 10).status, dht::Status::Ok);
  auto over = store("d", "mallory", 10);
  EXPECT_EQ(over.status, dht::Status::TooLarge);
  EXPECT_NE(over.reason.find("Storage Quota Of 3 Records Per Owner"), std::string::npos) << over.reason;
  EXPECT_EQ(store("a", "mallory", 20).status, dht::Status::Ok);  // replacing an entry it has is no new entry
  EXPECT_EQ(store("d", "alice", 10).status, dht::Status::Ok);    // other owners are not affected
  auto big = store("e", "alice", 101);
  EXPECT_EQ(big.status, dht::Status::TooLarge);
  EXPECT_NE(big.reason.find("Value Over 100 Octets"), std::string::npos);
  EXPECT_EQ(store("a", "mallory", 0, 0).status, dht::Status::Ok);  // a removal frees a place
  EXPECT_EQ(store("d2", "mallory", 10).status, dht::Status::Ok);
  // Expiry frees places too.
  net.run_for(seconds(120));
  EXPECT_EQ(store("e", "mallory", 10).status, dht::Status::Ok);
  EXPECT_EQ(net.slots[0].node->stats().records_over_quota, 2u);
}

TEST(Chord, AlonePeerIsResponsibleForEverything) {
  ChordNet net;
  net.add(NodeId{1, 1}, std::nullopt);
  RouteResult got;
  net.slots[0].node->route(
      RouteOp::Lookup, NodeId{99, 99}, std::nullopt, [&](const RouteResult& r) { got = r; }, net.now);
  EXPECT_EQ(got.status, dht::Status::Ok);
  EXPECT_EQ(got.hops, 0u);
  EXPECT_EQ(got.responsible->id, (NodeId{1, 1}));
}

TEST(Chord, SequentialJoinsFormTheIdealRing) {
  ChordNet net;
  std::mt19937_64 rng(1);
  build_ring(net, 32, rng);
  EXPECT_EQ(net.ring_errors(), "");
  double fingers = 0;
  for (const auto& s : net.slots) {
    EXPECT_TRUE(s.node->joined());
    EXPECT_GE(s.node->table().distinct_fingers(), 1u);
    fingers += static_cast<double>(s.node->table().distinct_fingers());
  }
  // log2(32) = 5 distinct fingers, the successor among them; the table keeps the other four.
  EXPECT_GE(fingers / static_cast<double>(net.slots.size()), 3.0);
}

TEST(Chord, JoinsThroughPeersStillJoiningFormOneRing) {
  // Fifty peers start within a second, each through a random earlier one that may not have joined
  // yet, with the default 30 s interval: there must be one ring, not several.
  ChordNet net;
  net.config.stabilize_interval = seconds(30);
  std::mt19937_64 rng(12);
  net.add(random_id(rng), std::nullopt);
  for (std::size_t i = 1; i < 50; ++i) {
    net.add(random_id(rng), std::optional<std::size_t>(rng() % i));
    net.run_for(millis(20));
  }
  net.run_for(seconds(20));
  for (const auto& s : net.slots) EXPECT_TRUE(s.node->joined());  // no side rings, no stranded peers
  // Successor lists converge one peer per round from the back; predecessor lists likewise.
  net.run_for(seconds(30 * 12));
  EXPECT_EQ(net.ring_errors(), "");
}

TEST(Chord, ConcurrentJoinsConverge) {
  ChordNet net;
  net.config.stabilize_interval = seconds(1);
  std::mt19937_64 rng(2);
  net.add(random_id(rng), std::nullopt);
  for (int i = 1; i < 24; ++i) net.add(random_id(rng), std::optional<std::size_t>(0));  // all at once
  net.run_for(seconds(90));
  EXPECT_EQ(net.ring_errors(), "");
}

TEST(Chord, PeerWithoutPredecessorTakesKeysRoutedToItAsFinal) {
  // A joined peer that knows no predecessor (it lost it) must accept a key routed to it as its own
  // (DHT-Final) rather than bounce it back until 483, and must not claim other keys.
  RoutingTable t(Peer{NodeId{0x80, 0}, {}}, 8);
  t.set_successors(Peer{NodeId{0xc0, 0}, {}}, {});
  EXPECT_TRUE(t.responsible_for(NodeId{0x70, 0}, true));
  EXPECT_FALSE(t.responsible_for(NodeId{0x70, 0}, false));
}

TEST(Chord, IterativeJoinThroughTheSecondPeer) {
  // B joins A while A is alone: A is B's predecessor as well as its successor, at once (a peer
  // starting without one admitted later joiners without one: the simulator found the chain this
  // built). C then joins through B.
  ChordNet net;
  net.config.iterative = true;
  net.config.stabilize_interval = seconds(30);
  net.add(NodeId{0x895a80d1a1f66438ull, 0}, std::nullopt);
  net.add(NodeId{0x1f79f179702916d7ull, 0}, std::optional<std::size_t>(0));
  net.run_for(millis(50));
  ASSERT_TRUE(net.slots[1].node->joined());
  ASSERT_TRUE(net.slots[1].node->table().predecessor());
  EXPECT_EQ(net.slots[1].node->table().predecessor()->id, net.id(0));
  net.add(NodeId{0xba93469b8f4805d1ull, 0}, std::optional<std::size_t>(1));
  net.run_for(millis(500));  // well before the 30 s join retry
  EXPECT_TRUE(net.slots[2].node->joined());
  for (const auto& s : net.slots) EXPECT_EQ(s.node->stats().routes_failed, 0u);
}

class ChordLookups : public ::testing::TestWithParam<bool> {};

TEST_P(ChordLookups, EveryLookupFindsTheResponsiblePeer) {
  ChordNet net;
  net.config.iterative = GetParam();
  std::mt19937_64 rng(3);
  build_ring(net, 64, rng);
  ASSERT_EQ(net.ring_errors(), "");
  double hops = 0;
  int done = 0;
  for (int k = 0; k < 200; ++k) {
    NodeId key = random_id(rng);
    std::size_t from = rng() % net.slots.size();
    net.slots[from].node->route(
        RouteOp::Lookup, key, std::nullopt,
        [&, key](const RouteResult& r) {
          EXPECT_EQ(r.status, dht::Status::Ok);
          ASSERT_TRUE(r.responsible);
          EXPECT_EQ(r.responsible->id, net.id(net.responsible(key)));
          hops += r.hops;
          ++done;
        },
        net.now);
  }
  net.run_for(seconds(5));
  EXPECT_EQ(done, 200);
  // Chord: about ½·log2 N forwarding steps to the key's predecessor, plus the last step to it.
  EXPECT_LT(hops / done, std::log2(64.0) / 2 + 2);
}

INSTANTIATE_TEST_SUITE_P(RecursiveAndIterative, ChordLookups, ::testing::Values(false, true));

Record record(const std::string& name, const std::string& value, std::uint32_t lifetime = 3600) {
  Record r;
  r.name = name;
  r.key = NodeId::hash(name);
  r.value = value;
  r.owner = "test";
  r.lifetime_s = lifetime;
  return r;
}

/// Stores n records through random peers; returns their names.
std::vector<std::string> store_records(ChordNet& net, int n, std::mt19937_64& rng) {
  std::vector<std::string> names;
  int ok = 0;
  for (int k = 0; k < n; ++k) {
    std::string name = "key-" + std::to_string(k);
    names.push_back(name);
    Record r = record(name, "value-" + std::to_string(k));
    net.slots[rng() % net.slots.size()].node->route(
        RouteOp::Store, r.key, r, [&](const RouteResult& res) { ok += res.status == dht::Status::Ok; }, net.now);
  }
  net.run_for(seconds(3));
  EXPECT_EQ(ok, n);
  return names;
}

int fetch_all(ChordNet& net, const std::vector<std::string>& names, std::mt19937_64& rng) {
  int found = 0;
  auto ring = net.ideal_ring();
  for (const auto& name : names) {
    std::size_t from = ring[rng() % ring.size()];
    net.slots[from].node->route(
        RouteOp::Fetch, NodeId::hash(name), std::nullopt,
        [&, name](const RouteResult& r) {
          if (r.status == dht::Status::Ok && r.records.size() == 1 && r.records[0].name == name) ++found;
        },
        net.now);
  }
  net.run_for(seconds(10));
  return found;
}

TEST(Chord, StoredRecordsLiveOnTheResponsiblePeerAndTwoSuccessors) {
  ChordNet net;
  std::mt19937_64 rng(4);
  build_ring(net, 16, rng);
  auto names = store_records(net, 100, rng);
  auto ring = net.ideal_ring();
  for (const auto& name : names) {
    NodeId key = NodeId::hash(name);
    std::size_t resp = net.responsible(key);
    std::size_t pos = std::find(ring.begin(), ring.end(), resp) - ring.begin();
    for (std::size_t c = 0; c < 3; ++c) {
      EXPECT_TRUE(net.slots[ring[(pos + c) % ring.size()]].node->storage().get(key)) << name << " copy " << c;
    }
  }
  EXPECT_EQ(fetch_all(net, names, rng), 100);
}

TEST(Chord, FailuresAreRoutedAroundAndRecordsSurvive) {
  ChordNet net;
  std::mt19937_64 rng(5);
  build_ring(net, 32, rng);
  auto names = store_records(net, 300, rng);
  // Kill 10 peers, never three adjacent on the ring: with three copies a record survives any two.
  auto ring = net.ideal_ring();
  std::set<std::size_t> dead_positions;
  while (dead_positions.size() < 10) {
    std::size_t p = rng() % ring.size();
    auto dead = [&](std::size_t q) { return dead_positions.count(q % ring.size()) > 0; };
    std::size_t n = ring.size();
    if (dead(p) || (dead(p + 1) && dead(p + 2)) || (dead(p + n - 1) && dead(p + 1)) ||
        (dead(p + n - 1) && dead(p + n - 2))) {
      continue;
    }
    dead_positions.insert(p);
  }
  for (auto p : dead_positions) net.kill(ring[p]);
  net.run_for(seconds(30));
  EXPECT_EQ(net.ring_errors(), "");
  EXPECT_EQ(fetch_all(net, names, rng), 300);
  // Replication was restored: every record has three live copies again.
  auto live = net.ideal_ring();
  for (const auto& name : names) {
    NodeId key = NodeId::hash(name);
    std::size_t pos = std::find(live.begin(), live.end(), net.responsible(key)) - live.begin();
    for (std::size_t c = 0; c < 3; ++c) {
      EXPECT_TRUE(net.slots[live[(pos + c) % live.size()]].node->storage().get(key)) << name << " copy " << c;
    }
  }
}

TEST(Chord, GracefulLeaveHandsRecordsToTheSuccessor) {
  ChordNet net;
  net.config.replicas = 0;  // only the hand-over can keep the records
  std::mt19937_64 rng(6);
  build_ring(net, 12, rng);
  auto names = store_records(net, 60, rng);
  auto ring = net.ideal_ring();
  std::size_t leaver = ring[5];
  std::size_t held = net.slots[leaver].node->storage().size();
  net.slots[leaver].node->leave(net.now);
  net.run_for(seconds(1));
  EXPECT_TRUE(net.slots[leaver].node->left());
  net.kill(leaver);
  EXPECT_GT(held, 0u);
  // The neighbours were told: successor and predecessor are right at once; peers further back
  // learn of it one peer per stabilization round, from their successors: within `successors` rounds.
  EXPECT_EQ(net.ring_errors(false), "");
  net.run_for(seconds(static_cast<std::int64_t>(net.config.successors) + 1));
  EXPECT_EQ(net.ring_errors(), "");
  EXPECT_EQ(fetch_all(net, names, rng), 60);
}

TEST(Chord, JoiningPeerReceivesTheRecordsItBecomesResponsibleFor) {
  ChordNet net;
  net.config.replicas = 0;
  std::mt19937_64 rng(7);
  build_ring(net, 8, rng);
  auto names = store_records(net, 80, rng);
  for (int k = 0; k < 4; ++k) net.add(random_id(rng), std::optional<std::size_t>(0));
  net.run_for(seconds(20));
  ASSERT_EQ(net.ring_errors(), "");
  for (const auto& name : names) {
    NodeId key = NodeId::hash(name);
    EXPECT_TRUE(net.slots[net.responsible(key)].node->storage().get(key)) << name;
  }
}

TEST(Chord, RecordsExpire) {
  ChordNet net;
  std::mt19937_64 rng(8);
  build_ring(net, 4, rng, seconds(10));
  Record r = record("short-lived", "v", 5);
  int stored = 0;
  net.slots[1].node->route(
      RouteOp::Store, r.key, r, [&](const RouteResult& res) { stored = dht::code(res.status); }, net.now);
  net.run_for(seconds(1));
  ASSERT_EQ(stored, 200);
  int status = 0;
  net.slots[2].node->route(
      RouteOp::Fetch, r.key, std::nullopt, [&](const RouteResult& res) { status = dht::code(res.status); }, net.now);
  net.run_for(seconds(1));
  EXPECT_EQ(status, 200);
  net.run_for(seconds(5));
  net.slots[2].node->route(
      RouteOp::Fetch, r.key, std::nullopt, [&](const RouteResult& res) { status = dht::code(res.status); }, net.now);
  net.run_for(seconds(1));
  EXPECT_EQ(status, 404);
  for (const auto& s : net.slots) EXPECT_FALSE(s.node->storage().get(r.key));  // swept from every copy
}

TEST(Chord, DictionaryEntriesUnderOneKeyAreKeptApartAndRemovedOneByOne) {
  // A user's registrations: one entry per serving node under the AOR's key (RFC 7904 §3).
  ChordNet net;
  std::mt19937_64 rng(9);
  build_ring(net, 6, rng, seconds(10));
  auto store = [&](std::size_t from, const std::string& dkey, const std::string& value, std::uint32_t lifetime) {
    Record r = record("sip:alice@demo", value, lifetime);
    r.dkey = dkey;
    int status = 0;
    net.slots[from].node->route(
        RouteOp::Store, r.key, r, [&](const RouteResult& res) { status = dht::code(res.status); }, net.now);
    net.run_for(seconds(1));
    return status;
  };
  auto fetch = [&](std::size_t from) {
    std::vector<Record> got;
    int status = 0;
    net.slots[from].node->route(
        RouteOp::Fetch, NodeId::hash("sip:alice@demo"), std::nullopt,
        [&](const RouteResult& res) {
          status = dht::code(res.status);
          got = res.records;
        },
        net.now);
    net.run_for(seconds(1));
    std::vector<std::string> out;
    for (const auto& r : got) out.push_back(r.dkey + "=" + r.value);
    return std::pair(status, out);
  };
  ASSERT_EQ(store(1, "node-b", "via b", 600), 200);
  ASSERT_EQ(store(2, "node-a", "via a", 600), 200);
  ASSERT_EQ(store(1, "node-b", "via b again", 600), 200);  // replaces b's entry only
  EXPECT_EQ(fetch(4), std::pair(200, std::vector<std::string>{"node-a=via a", "node-b=via b again"}));
  NodeId key = NodeId::hash("sip:alice@demo");
  std::size_t holders = 0;
  for (const auto& s : net.slots) holders += s.node->storage().get(key, "node-a") != nullptr;
  EXPECT_EQ(holders, 1 + net.config.replicas);
  ASSERT_EQ(store(2, "node-a", "", 0), 200);  // lifetime 0 removes a's entry, on the replicas too
  EXPECT_EQ(fetch(5), std::pair(200, std::vector<std::string>{"node-b=via b again"}));
  for (const auto& s : net.slots) EXPECT_FALSE(s.node->storage().get(key, "node-a"));
  ASSERT_EQ(store(1, "node-b", "", 0), 200);
  EXPECT_EQ(fetch(3).first, 404);
}

TEST(Chord, JoinThroughADeadBootstrapRetriesTheNext) {
  ChordNet net;
  net.config.stabilize_interval = seconds(1);
  net.add(NodeId{1, 0}, std::nullopt);
  net.add(NodeId{2, 0}, std::optional<std::size_t>(0));
  net.run_for(seconds(5));
  net.kill(0);
  std::size_t late = net.slots.size();
  net.slots.emplace_back();
  auto& s = net.slots.back();
  s.link = std::make_unique<ChordNet::Link>(net, late);
  s.node = std::make_unique<ChordNode>(Peer{NodeId{3, 0}, ChordNet::addr_of(late)}, net.config, *s.link, *s.link);
  s.node->start({ChordNet::addr_of(0), ChordNet::addr_of(1)}, net.now);
  net.run_for(seconds(20));
  EXPECT_TRUE(s.node->joined());
  EXPECT_EQ(net.ring_errors(), "");
}

}  // namespace
// Links as a test sets them: a marked peer is reached only where a link to it is up; every Attach
// that reaches the peer it names is answered at once.
struct TestLinks : PeerLinks, AttachHandler {
  ChordNet* net = nullptr;
  std::size_t self = 0;
  const std::set<std::pair<std::size_t, std::size_t>>* up = nullptr;  ///< linked pairs (both orders)
  std::vector<Peer> failed_peers;
  std::size_t answered = 0;
  [[nodiscard]] std::size_t index(const Peer& p) const {
    for (std::size_t i = 0; i < net->slots.size(); ++i) {
      if (ChordNet::addr_of(i) == p.addr) return i;
    }
    return SIZE_MAX;
  }
  [[nodiscard]] bool reachable(const Peer& p) const override { return !p.attach || up->count({self, index(p)}) > 0; }
  void sending_to(const Peer&) override {}
  void failed(const Peer& p) override { failed_peers.push_back(p); }
  void on_attach(const AttachRequest& a, Instant now) override {
    ++answered;
    net->slots[self].node->answer_attach(a, Status::Ok, "OK", "answer of " + std::to_string(self), 0, now);
  }
};

// An Attach takes no hop to a peer reached by Attach that is not linked to the hop (it would wait
// for the link it is setting up): the ring carries it to a neighbour of the target, linked to it.
// A peer not yet in the ring sends it through its bootstrap peer.
/// The first `n` peers of `net` reach each other as `up` says (a pair (a, b): a has a link to b).
std::vector<std::unique_ptr<TestLinks>> give_links(ChordNet& net, std::size_t n,
                                                   const std::set<std::pair<std::size_t, std::size_t>>& up) {
  std::vector<std::unique_ptr<TestLinks>> links;
  for (std::size_t i = 0; i < n; ++i) {
    links.push_back(std::make_unique<TestLinks>());
    links.back()->net = &net;
    links.back()->self = i;
    links.back()->up = &up;
    net.slots[i].node->set_links(links.back().get());
    net.slots[i].node->set_attach_handler(links.back().get());
  }
  return links;
}

/// Records every hop an Attach takes in `hops`, and fails the test for a hop to a peer the sender
/// does not reach now.
void trace_attach_hops(ChordNet& net, const std::vector<std::unique_ptr<TestLinks>>& links,
                       std::vector<std::pair<std::size_t, std::size_t>>& hops) {
  net.trace_request = [&links, &hops](std::size_t from, const Peer& to, const Request& r) {
    if (r.route_op != RouteOp::Attach) return;
    hops.emplace_back(from, links[from]->index(to));
    EXPECT_TRUE(links[from]->reachable(to)) << from << " sent an Attach to " << links[from]->index(to);
  };
}

TEST(Chord, AnAttachTakesNoHopToAMarkedPeerWithoutALinkAndReachesItsTargetThroughANeighbour) {
  ChordNet net;
  net.config.stabilize_interval = seconds(1);
  // Public peers at 0x10, 0x70, 0x90, 0xb0; peers behind cone NATs (marked) at 0x30 and 0x50.
  const std::uint64_t ids[] = {0x10, 0x30, 0x50, 0x70, 0x90, 0xb0};
  const bool marked[] = {false, true, true, false, false, false};
  for (std::size_t i = 0; i < 6; ++i) {
    net.add(NodeId{ids[i] << 56, 0}, i == 0 ? std::nullopt : std::optional<std::size_t>(0), marked[i]);
    net.run_for(seconds(1));
  }
  net.run_for(seconds(30));
  ASSERT_EQ(net.ring_errors(), "");
  // Links: each marked peer with its two neighbours.
  std::set<std::pair<std::size_t, std::size_t>> up;
  for (auto [a, b] : {std::pair<std::size_t, std::size_t>{0, 1}, {1, 2}, {2, 3}}) {
    up.insert({a, b});
    up.insert({b, a});
  }
  auto links = give_links(net, 6, up);
  // Every hop an Attach takes is to a peer reached now from the hop.
  std::vector<std::pair<std::size_t, std::size_t>> hops;
  trace_attach_hops(net, links, hops);
  // From every public peer to each marked one.
  for (std::size_t from : {0, 3, 4, 5}) {
    for (std::size_t target : {1, 2}) {
      RouteResult res;
      hops.clear();
      net.slots[from].node->attach(
          net.id(target), "offer", [&](const RouteResult& r) { res = r; }, net.now);
      net.run_for(seconds(1));
      ASSERT_EQ(res.status, Status::Ok) << from << " -> " << target << ": " << res.reason;
      EXPECT_EQ(res.payload, "answer of " + std::to_string(target));
      ASSERT_FALSE(hops.empty());
      EXPECT_EQ(hops.back().second, target);
      EXPECT_TRUE(up.count(hops.back())) << "the last hop to " << target << " came over a link";
    }
  }
  // A peer joining behind a NAT: before it is in the ring, its Attach goes through its bootstrap.
  const std::size_t joiner = net.add(NodeId{std::uint64_t{0x40} << 56, 0}, 4, true);
  links.push_back(std::make_unique<TestLinks>());
  links.back()->net = &net;
  links.back()->self = joiner;
  links.back()->up = &up;
  net.slots[joiner].node->set_links(links.back().get());
  RouteResult res;
  hops.clear();
  net.slots[joiner].node->attach(
      net.id(2), "offer", [&](const RouteResult& r) { res = r; }, net.now);
  net.run_for(seconds(1));
  ASSERT_EQ(res.status, Status::Ok) << res.reason;
  ASSERT_FALSE(hops.empty());
  EXPECT_EQ(hops.front(), (std::pair<std::size_t, std::size_t>{joiner, 4}));
}

TEST(Chord, TwoAdjacentMarkedPeersWithoutALinkReachEachOtherThroughTheirOtherNeighbours) {
  // Seen in the simulator: a marked peer whose marked successor has no link to it yet, and does not
  // know it (its predecessor pointer is stale). The ring routes the Attach's key back to the
  // sender itself, and straight to the target the NAT keeps it out: it must go to the target's own
  // successor, which the target keeps a link to.
  ChordNet net;
  net.config.stabilize_interval = seconds(1);
  const std::uint64_t ids[] = {0x10, 0x30, 0x50, 0x70, 0x90};
  const bool marked[] = {false, true, true, false, false};
  for (std::size_t i = 0; i < 5; ++i) {
    net.add(NodeId{ids[i] << 56, 0}, i == 0 ? std::nullopt : std::optional<std::size_t>(0), marked[i]);
    net.run_for(seconds(1));
  }
  net.run_for(seconds(30));
  ASSERT_EQ(net.ring_errors(), "");
  // Each marked peer is linked with its other neighbour only.
  std::set<std::pair<std::size_t, std::size_t>> up{{0, 1}, {1, 0}, {2, 3}, {3, 2}};
  auto links = give_links(net, 5, up);
  std::vector<std::pair<std::size_t, std::size_t>> hops;
  trace_attach_hops(net, links, hops);
  for (auto [from, target, via] : {std::tuple<std::size_t, std::size_t, std::size_t>{1, 2, 3}, {2, 1, 0}}) {
    RouteResult res;
    hops.clear();
    net.slots[from].node->attach(
        net.id(target), "offer", [&](const RouteResult& r) { res = r; }, net.now);
    net.run_for(seconds(1));
    ASSERT_EQ(res.status, Status::Ok) << from << " -> " << target << ": " << res.reason;
    EXPECT_EQ(res.payload, "answer of " + std::to_string(target));
    const std::vector<std::pair<std::size_t, std::size_t>> expected{{from, via}, {via, target}};
    EXPECT_EQ(hops, expected) << from << " -> " << target;
  }
}

}  // namespace p2psip::dht
