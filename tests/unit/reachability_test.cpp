// How a node classifies itself (nat/reachability.hpp): peers at different addresses answer its
// Binding requests as NATs of each kind would make them, on virtual time.
#include "nat/reachability.hpp"

#include <gtest/gtest.h>

#include "sip_harness.hpp"

namespace p2psip::test {
namespace {

using namespace p2psip::nat;

Endpoint ep(const char* ip, std::uint16_t port) {
  return {Transport::Udp, *IpAddress::parse(ip), port};
}
Instant at(std::int64_t ms) {
  return Instant{} + millis(ms);
}

/// A node at 10.0.1.2:5070 asking peers; `mapping` says what address each peer sees.
struct Probe {
  RecordingEnvironment env;
  StunClient client{env};
  Reachability reach{client, ep("10.0.1.2", 5070)};

  /// Answers every request sent so far (and not answered yet) as `mapping(peer)` says; a peer
  /// whose mapping is nullopt stays silent.
  template <class Mapping>
  void answer(Mapping mapping, Instant now) {
    for (; answered_ < env.sent.size(); ++answered_) {
      const auto& s = env.sent[answered_];
      auto req = decode_stun(s.bytes);
      ASSERT_TRUE(req);
      std::optional<Endpoint> seen = mapping(s.to);
      if (!seen) continue;
      const std::string bytes = answer_binding(*req, *seen, "");
      auto a = decode_stun(bytes);
      ASSERT_TRUE(a);
      client.receive(*a, s.to, now);
    }
  }
  std::size_t answered_ = 0;
};

const std::vector<Endpoint> kPeers = {ep("198.51.100.20", 5070), ep("198.51.100.20", 5071), ep("198.51.100.21", 5070),
                                      ep("198.51.100.22", 5070)};

TEST(Reachability, AsksPeersAtDifferentAddressesOnly) {
  Probe p;
  EXPECT_TRUE(p.reach.due(at(0)));
  std::vector<Endpoint> candidates = {ep("10.0.1.2", 5080)};  // on our own host: never asked
  candidates.insert(candidates.end(), kPeers.begin(), kPeers.end());
  p.reach.check(candidates, at(0));
  // Two to decide and one spare.
  ASSERT_EQ(p.env.sent.size(), 3U);
  EXPECT_EQ(p.env.sent[0].to, ep("198.51.100.20", 5070));
  EXPECT_EQ(p.env.sent[1].to, ep("198.51.100.21", 5070));  // not .20:5071, the same address
  EXPECT_EQ(p.env.sent[2].to, ep("198.51.100.22", 5070));
  EXPECT_FALSE(p.reach.due(at(0)));
  EXPECT_TRUE(p.reach.status().checking);
}

TEST(Reachability, APublicNodeIsSeenAtItsOwnAddress) {
  Probe p;
  p.reach.check(kPeers, at(0));
  p.answer([](const Endpoint&) { return std::optional<Endpoint>(ep("10.0.1.2", 5070)); }, at(30));
  EXPECT_EQ(p.reach.nat_class(), NatClass::Public);
  EXPECT_EQ(p.reach.reflexive(), ep("10.0.1.2", 5070));
  EXPECT_EQ(p.reach.status().checks, 1U);
  EXPECT_EQ(p.reach.status().observations.size(), 2U);
  // Settled: asked again after the recheck interval, not before.
  EXPECT_FALSE(p.reach.due(at(30) + seconds(599)));
  EXPECT_TRUE(p.reach.due(at(30) + seconds(600)));
}

TEST(Reachability, ACone) {
  // Endpoint-independent mapping: every peer sees the same outside address.
  Probe p;
  p.reach.check(kPeers, at(0));
  p.answer([](const Endpoint&) { return std::optional<Endpoint>(ep("203.0.113.7", 5070)); }, at(40));
  EXPECT_EQ(p.reach.nat_class(), NatClass::Cone);
  EXPECT_EQ(p.reach.reflexive(), ep("203.0.113.7", 5070));
  EXPECT_EQ(p.reach.status().observations[1].rtt, millis(40));
}

TEST(Reachability, ASymmetricNatMapsEachDestinationApart) {
  Probe p;
  p.reach.check(kPeers, at(0));
  std::uint16_t next = 40000;
  p.answer([&](const Endpoint&) { return std::optional<Endpoint>(ep("203.0.113.7", next++)); }, at(40));
  EXPECT_EQ(p.reach.nat_class(), NatClass::Symmetric);
  EXPECT_EQ(p.reach.reflexive(), ep("203.0.113.7", 40000));
}

TEST(Reachability, NoAnswerAtAllIsUdpBlockedAfterTheTransactionsTimeOut) {
  Probe p;
  p.reach.check(kPeers, at(0));
  for (std::int64_t t = 0; t < 39500; t += 500) {
    p.client.advance(at(t));
    ASSERT_EQ(p.reach.nat_class(), NatClass::Unknown) << t;
  }
  p.client.advance(at(39500));
  EXPECT_EQ(p.reach.nat_class(), NatClass::UdpBlocked);
  EXPECT_FALSE(p.reach.reflexive());
  EXPECT_EQ(p.env.sent.size(), 21U);  // seven requests to each of three peers
  // Not settled: asked again soon.
  EXPECT_FALSE(p.reach.due(at(39500) + seconds(4)));
  EXPECT_TRUE(p.reach.due(at(39500) + seconds(5)));
}

TEST(Reachability, ASilentPeerNeitherDelaysTheVerdictNorIsAskedFirstAgain) {
  Probe p;
  const std::vector<Endpoint> peers = {ep("198.51.100.20", 5070), ep("198.51.100.21", 5070), ep("198.51.100.22", 5070),
                                       ep("198.51.100.23", 5070)};
  p.reach.check(peers, at(0));
  // .20 is gone; .21 and .22 answer within 50 ms: the verdict comes then, not 39.5 s later.
  p.answer(
      [](const Endpoint& to) {
        return to.ip == *IpAddress::parse("198.51.100.20") ? std::nullopt
                                                           : std::optional<Endpoint>(ep("203.0.113.7", 5070));
      },
      at(50));
  EXPECT_EQ(p.reach.nat_class(), NatClass::Cone);
  EXPECT_EQ(p.client.outstanding(), 0U);                // the question to .20 was withdrawn
  EXPECT_EQ(p.reach.status().observations.size(), 2U);  // and is not reported as unanswered
  // Next time, .20 timed out in no check, so it is asked again; a peer that did time out is asked last.
  p.reach.address_changed(ep("10.0.1.2", 5070), at(100));
  p.reach.check(peers, at(100));
  const std::size_t first = p.env.sent.size() - 3;
  EXPECT_EQ(p.env.sent[first].to, peers[0]);
  for (std::int64_t t = 100; t <= 39600; t += 500) p.client.advance(at(t));  // nobody answers now
  EXPECT_EQ(p.reach.nat_class(), NatClass::UdpBlocked);
  p.reach.check(peers, at(60000));
  ASSERT_GE(p.env.sent.size(), 3U);
  EXPECT_EQ(p.env.sent[p.env.sent.size() - 3].to, peers[3]);  // .23, never asked, before the silent ones
}

TEST(Reachability, OnePeerCannotTellAConeFromASymmetricNat) {
  Probe p;
  p.reach.check({ep("198.51.100.20", 5070)}, at(0));
  p.answer([](const Endpoint&) { return std::optional<Endpoint>(ep("203.0.113.7", 5070)); }, at(10));
  EXPECT_EQ(p.reach.nat_class(), NatClass::Unknown);
  EXPECT_EQ(p.reach.reflexive(), ep("203.0.113.7", 5070));  // but it knows where it is seen
  EXPECT_TRUE(p.reach.due(at(10) + seconds(5)));
  // With a second peer known, the next check decides.
  p.reach.check(kPeers, at(10) + seconds(5));
  p.answer([](const Endpoint&) { return std::optional<Endpoint>(ep("203.0.113.7", 5070)); }, at(5100));
  EXPECT_EQ(p.reach.nat_class(), NatClass::Cone);
  EXPECT_EQ(p.reach.status().changes, 1U);
}

TEST(Reachability, WithNobodyToAskItTriesAgainLessAndLessOften) {
  Probe p;
  p.reach.check({}, at(0));
  EXPECT_TRUE(p.env.sent.empty());
  EXPECT_FALSE(p.reach.status().checking);
  // 5 s, then 10, 20, ... up to the recheck interval (600 s).
  std::vector<std::int64_t> waits;
  Instant t = at(0);
  for (int i = 0; i < 9; ++i) {
    const Instant next = p.reach.next_check();
    waits.push_back(to_millis(next - t) / 1000);
    t = next;
    p.reach.check({}, t);
  }
  EXPECT_EQ(waits, (std::vector<std::int64_t>{5, 10, 20, 40, 80, 160, 320, 600, 600}));
  // An answer that settles it resets the back-off.
  p.reach.check(kPeers, t);
  p.answer([](const Endpoint&) { return std::optional<Endpoint>(ep("203.0.113.7", 5070)); }, t);
  EXPECT_EQ(p.reach.next_check(), t + seconds(600));
  p.reach.address_changed(ep("10.0.1.3", 5070), t);
  p.reach.check({}, t);
  EXPECT_EQ(p.reach.next_check(), t + seconds(5));
}

TEST(Reachability, AnAddressChangeDropsTheVerdictAndItsCheck) {
  Probe p;
  p.reach.check(kPeers, at(0));
  p.answer([](const Endpoint&) { return std::optional<Endpoint>(ep("203.0.113.7", 5070)); }, at(40));
  ASSERT_EQ(p.reach.nat_class(), NatClass::Cone);
  p.reach.check(kPeers, at(0) + seconds(600));  // a recheck in flight
  ASSERT_EQ(p.client.outstanding(), 3U);
  p.reach.address_changed(ep("10.9.0.5", 5070), at(0) + seconds(601));
  EXPECT_EQ(p.client.outstanding(), 0U);  // the old check's transactions are gone
  EXPECT_EQ(p.reach.nat_class(), NatClass::Unknown);
  EXPECT_FALSE(p.reach.reflexive());
  EXPECT_TRUE(p.reach.due(at(0) + seconds(601)));
  p.reach.check(kPeers, at(0) + seconds(601));
  p.answer([](const Endpoint&) { return std::optional<Endpoint>(ep("10.9.0.5", 5070)); }, at(601050));
  EXPECT_EQ(p.reach.nat_class(), NatClass::Public);
}

TEST(Reachability, ClassifiesAsRfc4787Says) {
  const Endpoint local = ep("10.0.1.2", 5070);
  auto obs = [](std::vector<std::optional<Endpoint>> m) {
    std::vector<Observation> out;
    for (auto& e : m) out.push_back({ep("198.51.100.20", 1), e, {}});
    return out;
  };
  EXPECT_EQ(Reachability::classify(local, {}, 2), NatClass::Unknown);
  EXPECT_EQ(Reachability::classify(local, obs({std::nullopt, std::nullopt}), 2), NatClass::UdpBlocked);
  EXPECT_EQ(Reachability::classify(local, obs({local, std::nullopt}), 2), NatClass::Public);
  EXPECT_EQ(Reachability::classify(local, obs({ep("203.0.113.1", 5070), std::nullopt}), 2), NatClass::Unknown);
  EXPECT_EQ(Reachability::classify(local, obs({ep("203.0.113.1", 5070), ep("203.0.113.1", 5070)}), 2), NatClass::Cone);
  // Address-dependent mapping that keeps the port but changes the address (a NAT pool).
  EXPECT_EQ(Reachability::classify(local, obs({ep("203.0.113.1", 5070), ep("203.0.113.2", 5070)}), 2),
            NatClass::Symmetric);
  // Seen at the local address by one peer and elsewhere by another: not one mapping either.
  EXPECT_EQ(Reachability::classify(local, obs({local, ep("203.0.113.2", 5070)}), 2), NatClass::Symmetric);
  EXPECT_EQ(nat_class_name(NatClass::UdpBlocked), "udp-blocked");
}

}  // namespace
}  // namespace p2psip::test
