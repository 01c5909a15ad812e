// Client flows and relay peers (nat/flows.hpp, nat/relay.hpp) on virtual time: a client keeps two
// flows to two relays alive as RFC 5626 says, re-forms what fails with §4.5's back-off, and a relay
// admits, refreshes, replaces, expires and refuses flows.
#include "nat/flows.hpp"

#include <gtest/gtest.h>

#include "nat/relay.hpp"
#include "sip_harness.hpp"

namespace p2psip::test {
namespace {

using namespace p2psip::nat;

Endpoint ep(const char* ip, std::uint16_t port) {
  return {Transport::Udp, *IpAddress::parse(ip), port};
}
Instant at(std::int64_t s) {
  return Instant{} + seconds(s);
}

// ---- the relay's table ----

TEST(RelayTable, AdmitsUpToItsLimitAndTellsTheRestWhenToComeBack) {
  RelayConfig cfg;
  cfg.max_clients = 2;
  cfg.flows_per_client = 2;
  RelayTable t(cfg);
  auto a = t.admit("aa", "urn:uuid:1", 1, ep("203.0.113.1", 4000), 600, "t1", at(0));
  ASSERT_TRUE(a.accepted);
  EXPECT_EQ(a.expires_s, 600U);
  EXPECT_TRUE(t.admit("bb", "urn:uuid:2", 1, ep("203.0.113.2", 4000), 600, "t2", at(0)).accepted);
  // A third client is refused with the configured wait; a second flow of a known client is not.
  auto refused = t.admit("cc", "urn:uuid:3", 1, ep("203.0.113.3", 4000), 600, "t3", at(0));
  EXPECT_FALSE(refused.accepted);
  EXPECT_EQ(refused.retry_after_s, 300U);
  EXPECT_TRUE(t.admit("aa", "urn:uuid:1", 2, ep("203.0.113.1", 4001), 600, "t4", at(0)).accepted);
  EXPECT_FALSE(t.admit("aa", "urn:uuid:1", 3, ep("203.0.113.1", 4002), 600, "t5", at(0)).accepted);
  EXPECT_EQ(t.clients(), 2U);
  EXPECT_EQ(t.flows(), 3U);
  EXPECT_EQ(t.stats().refused_full, 2U);
  // Lifetimes are kept within bounds.
  EXPECT_EQ(t.admit("bb", "urn:uuid:2", 1, ep("203.0.113.2", 4000), 5, "x", at(1)).expires_s, 60U);
  EXPECT_EQ(t.admit("bb", "urn:uuid:2", 1, ep("203.0.113.2", 4000), 99999, "x", at(1)).expires_s, 3600U);
}

TEST(RelayTable, TheSameInstanceAndRegIdFromANewAddressReplacesTheFlow) {
  RelayTable t;
  ASSERT_TRUE(t.admit("aa", "urn:uuid:1", 1, ep("203.0.113.1", 4000), 600, "tok", at(0)).accepted);
  ASSERT_NE(t.by_token("tok"), nullptr);
  EXPECT_NE(t.by_source(ep("203.0.113.1", 4000)), nullptr);
  // RFC 5626 §6: the client moved; its flow follows, under the same token.
  ASSERT_TRUE(t.admit("aa", "urn:uuid:1", 1, ep("198.51.100.9", 6000), 600, "other", at(10)).accepted);
  EXPECT_EQ(t.flows(), 1U);
  EXPECT_EQ(t.by_token("tok")->flow, ep("198.51.100.9", 6000));
  EXPECT_EQ(t.by_source(ep("203.0.113.1", 4000)), nullptr);
  EXPECT_EQ(t.stats().replaced, 1U);
  // A second flow is newer: it comes first.
  ASSERT_TRUE(t.admit("aa", "urn:uuid:1", 2, ep("198.51.100.9", 6001), 600, "tok2", at(20)).accepted);
  auto flows = t.flows_of("aa");
  ASSERT_EQ(flows.size(), 2U);
  EXPECT_EQ(flows[0]->reg_id, 2U);
  // Expires 0 removes one; the other runs out.
  EXPECT_TRUE(t.admit("aa", "urn:uuid:1", 2, ep("198.51.100.9", 6001), 0, "", at(30)).accepted);
  EXPECT_EQ(t.flows(), 1U);
  EXPECT_EQ(t.next_expiry(), at(610));
  t.expire(at(609));
  EXPECT_EQ(t.flows(), 1U);
  t.expire(at(610));
  EXPECT_EQ(t.flows(), 0U);
  EXPECT_EQ(t.stats().expired, 1U);
}

// ---- the client's flows ----

struct Registrations : FlowTransport {
  struct Sent {
    Endpoint relay;
    std::uint32_t reg_id, expires;
    Instant at;
  };
  bool register_flow(const Endpoint& relay, std::uint32_t reg_id, std::uint32_t expires_s, Instant now) override {
    sent.push_back({relay, reg_id, expires_s, now});
    return true;
  }
  bool ping_flow(const Endpoint& relay, Instant now) override {
    probes.push_back({relay, 0, 0, now});
    return true;
  }
  std::vector<Sent> sent, probes;
};

struct Client {
  RecordingEnvironment env;
  StunClient stun{env};
  Registrations regs;
  FlowSet flows{regs, stun, env};
  Instant now = at(0);
  std::size_t stun_answered = 0;

  /// Both flows registered at once, at `a` and `b`, without a Flow-Timer from the relays.
  void register_both(const Endpoint& a, const Endpoint& b) {
    flows.set_candidates({a, b}, now);
    flows.registered(1, "r1", "u1", 600, 0, now);
    flows.registered(2, "r2", "u2", 600, 0, now);
  }
  /// Runs to `until` a second at a time (STUN answered by the relays named in `alive`, which see
  /// the client at `mapped`).
  void run_to(Instant until, const std::vector<Endpoint>& alive, const Endpoint& mapped) {
    for (; now <= until; now += millis(500)) {
      for (; stun_answered < env.sent.size(); ++stun_answered) {
        const auto& s = env.sent[stun_answered];
        const bool up = std::any_of(alive.begin(), alive.end(), [&](const Endpoint& e) { return e == s.to; });
        if (!up) continue;
        auto req = decode_stun(s.bytes);
        if (!req) continue;
        const std::string answer = answer_binding(*req, mapped, "");
        stun.receive(*decode_stun(answer), s.to, now);
      }
      if (stun.next_wakeup() <= now) stun.advance(now);
      if (flows.next_wakeup() <= now) flows.advance(now);
    }
    now = until;
  }
};

const Endpoint R1 = ep("198.51.100.21", 5070), R2 = ep("198.51.100.22", 5070), R3 = ep("198.51.100.23", 5070);
const Endpoint kMapped = ep("203.0.113.50", 40000);

Endpoint over(Endpoint e, Transport t) {
  e.transport = t;
  return e;
}

TEST(FlowSet, RegistersTwoFlowsAtTwoDifferentRelays) {
  Client c;
  c.flows.set_candidates({R1, R1, R2, R3}, c.now);
  ASSERT_EQ(c.regs.sent.size(), 2U);
  EXPECT_EQ(c.regs.sent[0].relay, R1);
  EXPECT_EQ(c.regs.sent[0].reg_id, 1U);
  EXPECT_EQ(c.regs.sent[1].relay, R2);  // not R1 twice
  EXPECT_EQ(c.regs.sent[1].reg_id, 2U);
  EXPECT_EQ(c.regs.sent[0].expires, 3600U);
  EXPECT_FALSE(c.flows.any_active());
  c.flows.registered(1, "r1", "<sip:tok1@198.51.100.21:5070;lr;ob>", 600, 0, c.now);
  c.flows.registered(2, "r2", "<sip:tok2@198.51.100.22:5070;lr;ob>", 600, 0, c.now);
  EXPECT_TRUE(c.flows.any_active());
  EXPECT_EQ(c.flows.relays(), (std::vector<Endpoint>{R1, R2}));
  EXPECT_EQ(c.flows.relay_uris().size(), 2U);
  // The first keep-alive goes at once and tells where the relay sees us.
  c.run_to(at(1), {R1, R2}, kMapped);
  EXPECT_EQ(c.flows.status()[0].mapped, kMapped);
  EXPECT_EQ(c.flows.status()[0].state, FlowState::Active);
}

TEST(FlowSet, KeepsFlowsAliveWithStunEvery24To29Seconds) {
  Client c;
  c.flows.set_candidates({R1, R2}, c.now);
  c.flows.registered(1, "r1", "u1", 600, 0, c.now);
  c.flows.registered(2, "r2", "u2", 600, 0, c.now);
  c.run_to(at(300), {R1, R2}, kMapped);
  std::size_t to_r1 = 0;
  for (const auto& s : c.env.sent) to_r1 += s.to == R1 ? 1 : 0;
  // At once, then one every 24-29 s: 11 to 13 in 300 s.
  EXPECT_GE(to_r1, 11U);
  EXPECT_LE(to_r1, 13U);
  EXPECT_EQ(c.flows.stats().failures, 0U);
  // The registration is refreshed at 80 % of its lifetime (480 s).
  c.run_to(at(479), {R1, R2}, kMapped);
  EXPECT_EQ(c.regs.sent.size(), 2U);
  c.run_to(at(481), {R1, R2}, kMapped);
  ASSERT_EQ(c.regs.sent.size(), 4U);
  EXPECT_EQ(c.regs.sent[2].relay, R1);  // the same relay
  c.flows.registered(1, "r1", "u1", 600, 0, c.now);
  c.flows.registered(2, "r2", "u2", 600, 0, c.now);
  c.run_to(at(600), {R1, R2}, kMapped);
  EXPECT_EQ(c.flows.stats().failures, 0U);
  EXPECT_EQ(c.flows.relays().size(), 2U);
}

TEST(FlowSet, ARelayThatStopsAnsweringFailsItsFlowWhichMovesToAnotherRelayAfterTheBackOff) {
  Client c;
  c.flows.set_candidates({R1, R2, R3}, c.now);
  c.flows.registered(1, "r1", "u1", 600, 0, c.now);
  c.flows.registered(2, "r2", "u2", 600, 0, c.now);
  c.run_to(at(10), {R1, R2}, kMapped);
  // R1 dies: the keep-alive after it times out (39.5 s, RFC 8489) and the flow has failed.
  c.run_to(at(90), {R2}, kMapped);
  EXPECT_EQ(c.flows.status()[0].state, FlowState::Idle);
  EXPECT_EQ(c.flows.status()[0].failures, 1U);
  EXPECT_EQ(c.flows.status()[1].state, FlowState::Active);
  EXPECT_EQ(c.flows.relays(), (std::vector<Endpoint>{R2}));
  const Instant failed_at = c.flows.status()[0].since;
  EXPECT_GE(failed_at, at(24 + 39));
  EXPECT_LE(failed_at, at(29 + 40));
  // §4.5: another flow works, so base 90 s: 50-100 % of min(1800, 90 * 2^1) = 90..180 s.
  const std::size_t before = c.regs.sent.size();
  c.run_to(failed_at + seconds(89), {R2}, kMapped);
  EXPECT_EQ(c.regs.sent.size(), before);
  c.run_to(failed_at + seconds(181), {R2}, kMapped);
  ASSERT_EQ(c.regs.sent.size(), before + 1);
  EXPECT_EQ(c.regs.sent.back().relay, R3);   // not R1 again, not R2 (the other flow's)
  EXPECT_EQ(c.regs.sent.back().reg_id, 1U);  // the same reg-id
}

TEST(FlowSet, WhenEveryFlowFailsTheBackOffStartsAt30Seconds) {
  Client c;
  c.flows.set_candidates({R1, R2}, c.now);
  // Nobody answers the registrations: each fails after 32 s.
  c.run_to(at(32), {}, kMapped);
  EXPECT_FALSE(c.flows.any_active());
  EXPECT_EQ(c.flows.stats().failures, 2U);
  // 50-100 % of 30 * 2^1 = 30..60 s after the failure.
  EXPECT_EQ(c.regs.sent.size(), 2U);
  c.run_to(at(32 + 29), {}, kMapped);
  EXPECT_EQ(c.regs.sent.size(), 2U);
  c.run_to(at(32 + 61), {}, kMapped);
  EXPECT_EQ(c.regs.sent.size(), 4U);
}

TEST(FlowSet, ARefusingRelayIsLeftAloneForItsRetryAfter) {
  Client c;
  c.flows.set_candidates({R1, R2, R3}, c.now);
  c.flows.refused(1, 300, c.now);  // R1 is full
  ASSERT_EQ(c.regs.sent.size(), 3U);
  EXPECT_EQ(c.regs.sent[2].relay, R3);  // at once, elsewhere (R2 is flow 2's)
  EXPECT_EQ(c.flows.stats().refusals, 1U);
  EXPECT_EQ(c.flows.stats().failures, 0U);
  c.flows.refused(1, 300, c.now);  // R3 too: nobody left but R1 and R2, both taken or refused
  EXPECT_EQ(c.flows.status()[0].state, FlowState::Idle);
  EXPECT_EQ(c.flows.next_wakeup(), at(32));  // flow 2's registration deadline comes first
  c.flows.registered(2, "r2", "u2", 600, 0, c.now);
  c.run_to(at(299), {R2}, kMapped);
  EXPECT_EQ(c.regs.sent.size(), 3U);
  c.run_to(at(301), {R2}, kMapped);
  ASSERT_EQ(c.regs.sent.size(), 4U);
  EXPECT_NE(c.regs.sent[3].relay, R2);  // a refusal has run out (R1's and R3's did together)
}

TEST(FlowSet, AChangedMappingFailsTheFlow) {
  Client c;
  c.flows.set_candidates({R1, R2}, c.now);
  c.flows.registered(1, "r1", "u1", 600, 0, c.now);
  c.flows.registered(2, "r2", "u2", 600, 0, c.now);
  c.run_to(at(5), {R1, R2}, kMapped);
  ASSERT_EQ(c.flows.status()[0].mapped, kMapped);
  // The NAT dropped the binding and made a new one: RFC 5626 §4.4.2 calls that a failed flow.
  c.run_to(at(40), {R1, R2}, ep("203.0.113.50", 40001));
  EXPECT_EQ(c.flows.stats().mapping_changes, 2U);
  EXPECT_FALSE(c.flows.any_active());
}

TEST(FlowSet, ANetworkChangeReRegistersAtOnceAndCloseRemovesTheRegistrations) {
  Client c;
  c.flows.set_candidates({R1, R2}, c.now);
  c.flows.registered(1, "r1", "u1", 600, 0, c.now);
  c.flows.registered(2, "r2", "u2", 600, 0, c.now);
  c.run_to(at(5), {R1, R2}, kMapped);
  c.flows.network_changed(c.now);
  ASSERT_EQ(c.regs.sent.size(), 4U);
  EXPECT_EQ(c.regs.sent[2].relay, R1);  // the same relays, the same reg-ids
  EXPECT_EQ(c.regs.sent[3].relay, R2);
  EXPECT_EQ(c.regs.sent[3].reg_id, 2U);
  c.flows.registered(1, "r1", "u1", 600, 0, c.now);
  c.flows.registered(2, "r2", "u2", 600, 0, c.now);
  c.flows.close(c.now);
  ASSERT_EQ(c.regs.sent.size(), 6U);
  EXPECT_EQ(c.regs.sent[4].expires, 0U);
  EXPECT_EQ(c.regs.sent[5].expires, 0U);
  EXPECT_EQ(c.flows.next_wakeup(), kInstantMax);
}

TEST(FlowSet, AStreamFlowIsKeptAliveWithACrlfPingEvery95To120SecondsAndFailsWithoutItsPong) {
  // Where UDP is blocked, or calls need TLS, the flows are streams, and STUN cannot share them: RFC
  // 5626 §4.4.1's CRLFCRLF ping, whose CRLF pong is due within 10 s.
  Client c;
  const Endpoint t1 = over(R1, Transport::Tcp), t2 = over(R2, Transport::Tcp);
  c.register_both(t1, t2);
  EXPECT_TRUE(c.env.sent.empty());      // no STUN on a stream
  ASSERT_EQ(c.regs.probes.size(), 2U);  // one at once per flow
  c.flows.pong(t1, c.now);
  c.flows.pong(t2, c.now);
  c.run_to(at(94), {}, kMapped);
  EXPECT_EQ(c.regs.probes.size(), 2U);
  c.run_to(at(121), {}, kMapped);
  ASSERT_EQ(c.regs.probes.size(), 4U);
  // A pong within 10 s keeps its flow; a ping left unanswered for 10 s fails it.
  c.flows.pong(t2, c.now);
  Instant pinged{};
  for (const auto& p : c.regs.probes) {
    if (p.relay == t1) pinged = p.at;
  }
  c.run_to(pinged + seconds(9), {}, kMapped);
  EXPECT_EQ(c.flows.status()[0].state, FlowState::Active);
  c.run_to(pinged + seconds(11), {}, kMapped);
  EXPECT_EQ(c.flows.status()[0].state, FlowState::Idle);
  EXPECT_EQ(c.flows.status()[1].state, FlowState::Active);
  // A pong from elsewhere (UDP to the same address, say) answers nothing.
  c.flows.pong(R2, c.now);
  // A relay's Flow-Timer overrides the default: 80-100 % of it.
  Client d;
  d.flows.set_candidates({t1, t2}, d.now);
  d.flows.registered(1, "r1", "u1", 600, 50, d.now);
  d.flows.pong(t1, d.now);
  d.run_to(at(39), {}, kMapped);
  EXPECT_EQ(d.regs.probes.size(), 1U);
  d.run_to(at(51), {}, kMapped);
  EXPECT_EQ(d.regs.probes.size(), 2U);
}

TEST(FlowSet, ASuspectedRelayIsCheckedAtOnce) {
  Client c;
  c.flows.set_candidates({R1, R2}, c.now);
  c.flows.registered(1, "r1", "u1", 600, 0, c.now);
  c.flows.registered(2, "r2", "u2", 600, 0, c.now);
  c.run_to(at(5), {R1, R2}, kMapped);
  const std::size_t before = c.env.sent.size();
  c.flows.suspect(R1, c.now);  // a request through R1 went unanswered
  ASSERT_EQ(c.env.sent.size(), before + 1);
  EXPECT_EQ(c.env.sent.back().to, R1);
  // R1 is dead: the flow fails when that keep-alive times out, 39.5 s later, not a keep-alive later.
  c.run_to(at(5) + millis(39500), {R2}, kMapped);
  EXPECT_EQ(c.flows.status()[0].state, FlowState::Idle);
  EXPECT_EQ(c.flows.status()[1].state, FlowState::Active);
}

TEST(FlowSet, AStreamFlowWhoseConnectionClosesHasFailedAtOnce) {
  // RFC 5626 §4.4.1: a TCP or TLS flow fails with its connection, without waiting for a probe.
  Client c;
  const Endpoint t1 = over(R1, Transport::Tls), t2 = over(R2, Transport::Tls);
  c.register_both(t1, t2);
  c.flows.connection_lost(R1, c.now);  // UDP to the same address: not the flow's connection
  EXPECT_EQ(c.flows.status()[0].state, FlowState::Active);
  c.flows.connection_lost(t1, c.now);
  EXPECT_EQ(c.flows.status()[0].state, FlowState::Idle);
  EXPECT_EQ(c.flows.status()[1].state, FlowState::Active);
  EXPECT_EQ(c.flows.relays(), std::vector<Endpoint>{t2});
  EXPECT_EQ(c.flows.stats().failures, 1U);
}

}  // namespace
}  // namespace p2psip::test
