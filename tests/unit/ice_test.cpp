// ICE descriptions (nat/ice.hpp) and links set up with Attach (nat/ice_links.hpp), on virtual time:
// two IceLinks wired through a fake overlay and fake agents offer, answer, hold messages until the
// link is up, fail within the set-up time, back off, settle crossing Attaches, and refuse floods.
#include "nat/ice.hpp"

#include <gtest/gtest.h>

#include <deque>
#include <functional>
#include <map>

#include "nat/ice_links.hpp"
#include "sip_harness.hpp"

namespace p2psip::test {
namespace {

using namespace p2psip::nat;

Endpoint ep(const char* ip, std::uint16_t port) {
  return {Transport::Udp, *IpAddress::parse(ip), port};
}
Instant at_ms(std::int64_t ms) {
  return Instant{} + millis(ms);
}

IceCandidate cand(CandidateType t, const char* ip, std::uint16_t port) {
  IceCandidate c;
  c.foundation = std::string(candidate_type_name(t)) + "1";
  c.priority = candidate_priority(t, 65535, 1);
  c.address = ep(ip, port);
  c.type = t;
  if (t != CandidateType::Host) c.related = ep("10.0.3.2", 40000);
  return c;
}

// ---- the codec ----

TEST(IceCodec, ReadsWhatItWritesAndTheRfcExamples) {
  IceDescription d;
  d.credentials = {"8hhY", "asd88fgpdd777uzjYhagZg"};
  d.candidates = {cand(CandidateType::Host, "10.0.3.2", 40000),
                  cand(CandidateType::ServerReflexive, "198.51.100.13", 40000),
                  cand(CandidateType::Relayed, "198.51.100.2", 50001)};
  d.end_of_candidates = true;
  const std::string body = encode_ice(d);
  EXPECT_NE(
      body.find("a=candidate:srflx1 1 UDP 1694498815 198.51.100.13 40000 typ srflx raddr 10.0.3.2 rport 40000\r\n"),
      std::string::npos)
      << body;
  auto back = parse_ice(body);
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(back.value(), d);

  // RFC 8839 §5.1's examples (IPv4 and IPv6), and an LF-only body with other SDP lines in it.
  auto v4 = parse_candidate("a=candidate:1 1 UDP 2130706431 203.0.113.141 8998 typ host");
  ASSERT_TRUE(v4 && v4.value());
  EXPECT_EQ(v4.value()->address, ep("203.0.113.141", 8998));
  auto v6 = parse_candidate(
      "candidate:2 1 UDP 1694498815 2001:db8:a0b:12f0::3 45664 typ srflx raddr 2001:db8:a0b:12f0::1 rport 8998");
  ASSERT_TRUE(v6 && v6.value());
  EXPECT_TRUE(v6.value()->address.ip.v6);
  EXPECT_EQ(v6.value()->related->port, 8998);
  auto lf = parse_ice(
      "v=0\na=ice-ufrag:abcd\na=ice-pwd:0123456789012345678901\na=mid:0\na=candidate:x 1 udp 1 192.0.2.1 9 typ host "
      "generation 0\n");
  ASSERT_TRUE(lf) << lf.error();
  EXPECT_EQ(lf.value().candidates.size(), 1U);
  EXPECT_FALSE(lf.value().end_of_candidates);
}

TEST(IceCodec, SkipsWhatItDoesNotUseAndNamesWhatIsWrong) {
  // Well formed, not for us: ICE-TCP, an mDNS name, an unknown type.
  for (const char* skip : {"candidate:1 1 TCP 2130706431 192.0.2.1 9 typ host tcptype active",
                           "candidate:1 1 UDP 2130706431 4d3a1c2b-0000.local 9 typ host",
                           "candidate:1 1 UDP 2130706431 192.0.2.1 9 typ tunnel"}) {
    auto c = parse_candidate(skip);
    ASSERT_TRUE(c) << skip;
    EXPECT_FALSE(c.value().has_value()) << skip;
  }
  const std::string creds = "a=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\n";
  const std::pair<std::string, std::string> bad[] = {
      {"a=ice-pwd:0123456789012345678901\r\n", "no ice-ufrag"},
      {"a=ice-ufrag:abcd\r\n", "no ice-pwd"},
      {"a=ice-ufrag:ab\r\na=ice-pwd:0123456789012345678901\r\n", "malformed ice-ufrag"},
      {"a=ice-ufrag:abcd\r\na=ice-pwd:short\r\n", "malformed ice-pwd"},
      {"a=ice-ufrag:ab;d\r\na=ice-pwd:0123456789012345678901\r\n", "malformed ice-ufrag"},
      {creds + "a=candidate:1 1 UDP 99999999999 192.0.2.1 9 typ host\r\n", "malformed candidate priority"},
      {creds + "a=candidate:1 1 UDP 1 192.0.2.1 70000 typ host\r\n", "malformed candidate port"},
      {creds + "a=candidate:1 0 UDP 1 192.0.2.1 9 typ host\r\n", "malformed candidate component"},
      {creds + "a=candidate:1 1 UDP 1 192.0.2.1 9 kind host\r\n", "candidate without typ"},
      {creds + "a=candidate:1  1 UDP 1 192.0.2.1 9 typ host\r\n", "malformed candidate"},
      {creds + "a=candidate:1 1 UDP 1 192.0.2.1 9 typ host raddr\r\n", "malformed candidate extension"},
      {creds + "a=candidate:f;o 1 UDP 1 192.0.2.1 9 typ host\r\n", "malformed candidate foundation"},
  };
  for (const auto& [body, why] : bad) {
    auto r = parse_ice(body);
    ASSERT_FALSE(r) << body;
    EXPECT_EQ(r.error(), why) << body;
  }
  std::string many = creds;
  for (int i = 0; i < 25; ++i) many += "a=candidate:1 1 UDP 1 192.0.2.1 " + std::to_string(1000 + i) + " typ host\r\n";
  EXPECT_EQ(parse_ice(many).error(), "too many ICE candidates");
  EXPECT_EQ(parse_ice(std::string(5000, 'x')).error(), "ICE description too large");
}

// ---- links ----

/// An agent that records what it was asked and sends nothing by itself: the test plays its events.
class FakePort : public IcePort {
 public:
  bool open(IceSessionId id, bool controlling) override {
    opened.push_back({id, controlling});
    return open_ok;
  }
  void remote(IceSessionId id, const IceDescription& d) override { remotes[id] = d; }
  bool send(IceSessionId id, std::string_view bytes) override {
    sent.emplace_back(id, std::string(bytes));
    return true;
  }
  void close(IceSessionId id) override { closed.push_back(id); }

  std::vector<std::pair<IceSessionId, bool>> opened;
  std::map<IceSessionId, IceDescription> remotes;
  std::vector<std::pair<IceSessionId, std::string>> sent;
  std::vector<IceSessionId> closed;
  bool open_ok = true;
};

/// The overlay between two sides: an Attach from one is an offer at the other, answers come back.
class FakeOverlay : public AttachTransport {
 public:
  bool send_attach(IceSessionId id, const Endpoint& peer, const IceDescription& offer, Instant) override {
    attaches.push_back({id, peer, offer});
    return true;
  }
  void answer_attach(std::uint64_t token, const IceDescription& answer) override {
    answers.emplace_back(token, answer);
  }
  void refuse_attach(std::uint64_t token, int status, std::uint32_t retry_after_s) override {
    refusals.push_back({token, status, retry_after_s});
  }
  void link_up(const Endpoint& peer, Instant) override { ups.push_back(peer); }
  void link_down(const Endpoint& peer, Instant now) override {
    downs.push_back(peer);
    if (on_down) on_down(peer, now);
  }
  /// What the overlay does when a link goes (fail the peer's transactions, and send elsewhere).
  std::function<void(const Endpoint&, Instant)> on_down;

  struct Attach {
    IceSessionId id;
    Endpoint peer;
    IceDescription offer;
  };
  struct Refusal {
    std::uint64_t token;
    int status;
    std::uint32_t retry_after;
  };
  std::vector<Attach> attaches;
  std::vector<std::pair<std::uint64_t, IceDescription>> answers;
  std::vector<Refusal> refusals;
  std::vector<Endpoint> ups, downs;
};

struct Side {
  explicit Side(Endpoint me, IceLinkConfig cfg = {}) : self(me), links(port, overlay, env, me, cfg) {}
  /// The agent's gathering: credentials, a host and a server-reflexive candidate.
  void gather(IceSessionId id, Instant now, bool srflx = true) {
    links.local_credentials(id, {"uf" + std::to_string(id) + "xx", "pwd0123456789012345678901"}, now);
    links.local_candidate(id, cand(CandidateType::Host, "10.0.3.2", 40000), now);
    if (srflx) links.local_candidate(id, cand(CandidateType::ServerReflexive, "198.51.100.13", 40000), now);
  }
  Endpoint self;
  FakePort port;
  FakeOverlay overlay;
  RecordingEnvironment env;
  IceLinks links;
};

const Endpoint kA = ep("198.51.100.13", 5070);
const Endpoint kB = ep("198.51.100.14", 5070);

TEST(IceLinks, AMessageForAPeerWaitsForTheLinkThatAnAttachSetsUp) {
  Side a(kA), b(kB);
  ASSERT_TRUE(a.links.send(kB, "first", at_ms(0)));
  ASSERT_TRUE(a.links.send(kB, "second", at_ms(1)));
  ASSERT_EQ(a.port.opened.size(), 1U);
  EXPECT_TRUE(a.port.opened[0].second);  // the offerer controls
  const IceSessionId sa = a.port.opened[0].first;
  EXPECT_TRUE(a.overlay.attaches.empty());
  // Host candidates alone do not send it; a server-reflexive one does (no TURN configured).
  a.gather(sa, at_ms(40));
  ASSERT_EQ(a.overlay.attaches.size(), 1U);
  const auto offer = a.overlay.attaches[0].offer;
  EXPECT_EQ(offer.candidates.size(), 2U);
  EXPECT_EQ(a.links.status()[0].state, LinkState::Offered);

  // At B: the offer is taken, its checks start at once, and the answer goes once B has gathered.
  b.links.offered(kA, offer, 77, at_ms(60));
  ASSERT_EQ(b.port.opened.size(), 1U);
  EXPECT_FALSE(b.port.opened[0].second);
  const IceSessionId sb = b.port.opened[0].first;
  ASSERT_TRUE(b.port.remotes.count(sb));
  EXPECT_EQ(b.port.remotes[sb], offer);
  EXPECT_TRUE(b.overlay.answers.empty());
  b.gather(sb, at_ms(90));
  ASSERT_EQ(b.overlay.answers.size(), 1U);
  EXPECT_EQ(b.overlay.answers[0].first, 77U);

  a.links.answered(sa, b.overlay.answers[0].second, at_ms(120));
  EXPECT_EQ(a.port.remotes[sa], b.overlay.answers[0].second);
  EXPECT_TRUE(a.port.sent.empty());
  a.links.connected(sa, CandidateType::ServerReflexive, CandidateType::PeerReflexive, at_ms(300));
  b.links.connected(sb, CandidateType::PeerReflexive, CandidateType::ServerReflexive, at_ms(300));
  // What was held goes, in order, and the overlay hears of the link.
  ASSERT_EQ(a.port.sent.size(), 2U);
  EXPECT_EQ(a.port.sent[0].second, "first");
  EXPECT_EQ(a.port.sent[1].second, "second");
  EXPECT_EQ(a.overlay.ups, std::vector<Endpoint>{kB});
  EXPECT_TRUE(a.links.is_up(kB));
  const auto st = a.links.status()[0];
  EXPECT_EQ(st.setup, millis(300));
  EXPECT_FALSE(st.relayed);
  EXPECT_EQ(a.links.stats().up_direct, 1U);
  // Sent at once from now on; and what B receives is B's peer A.
  EXPECT_TRUE(a.links.send(kB, "third", at_ms(400)));
  EXPECT_EQ(a.port.sent.size(), 3U);
  EXPECT_EQ(b.links.received(sb, at_ms(401)), kA);
  EXPECT_EQ(b.links.received(999, at_ms(401)), std::nullopt);
}

TEST(IceLinks, AnAttachGoesWithWhatWasGatheredWhenTheBudgetIsSpentAndWaitsForARelayWithTurn) {
  Side a(kA);
  a.links.connect(kB, at_ms(0));
  const IceSessionId s = a.port.opened.at(0).first;
  a.gather(s, at_ms(10), /*srflx=*/false);
  EXPECT_TRUE(a.overlay.attaches.empty());
  EXPECT_EQ(a.links.next_wakeup(), at_ms(800));
  a.links.advance(at_ms(800));
  ASSERT_EQ(a.overlay.attaches.size(), 1U);
  EXPECT_EQ(a.overlay.attaches[0].offer.candidates.size(), 1U);
  EXPECT_FALSE(a.overlay.attaches[0].offer.end_of_candidates);

  IceLinkConfig turn;
  turn.turn = true;
  Side t(kA, turn);
  t.links.connect(kB, at_ms(0));
  const IceSessionId ts = t.port.opened.at(0).first;
  t.gather(ts, at_ms(10));
  EXPECT_TRUE(t.overlay.attaches.empty());  // a server-reflexive candidate is not enough now
  t.links.local_candidate(ts, cand(CandidateType::Relayed, "198.51.100.2", 50000), at_ms(70));
  ASSERT_EQ(t.overlay.attaches.size(), 1U);
  EXPECT_EQ(t.overlay.attaches[0].offer.candidates.size(), 3U);
  // A public host's server-reflexive candidate is its host candidate: the relayed one is enough.
  Side pub(kA, turn);
  pub.links.connect(kB, at_ms(0));
  const IceSessionId ps = pub.port.opened.at(0).first;
  pub.gather(ps, at_ms(10), /*srflx=*/false);
  EXPECT_TRUE(pub.overlay.attaches.empty());
  pub.links.local_candidate(ps, cand(CandidateType::Relayed, "198.51.100.2", 50002), at_ms(30));
  EXPECT_EQ(pub.overlay.attaches.size(), 1U);
  // Gathering done before any of that sends at once, marked as complete.
  Side g(kA);
  g.links.connect(kB, at_ms(0));
  const IceSessionId gs = g.port.opened.at(0).first;
  g.gather(gs, at_ms(5), false);
  g.links.gathering_done(gs, at_ms(6));
  ASSERT_EQ(g.overlay.attaches.size(), 1U);
  EXPECT_TRUE(g.overlay.attaches[0].offer.end_of_candidates);
}

TEST(IceLinks, AnAgentWhoseCredentialsComeAfterTheGatheringBudgetIsWaitedForWithoutSpinning) {
  // The budget is spent before the agent has said anything: nothing can go yet, so the next
  // wake-up is the set-up deadline, not the spent budget (which would call advance again and again
  // at the same instant: the simulator's first agents, slower than the budget, spun there).
  Side a(kA);
  a.links.connect(kB, at_ms(0));
  const IceSessionId s = a.port.opened.at(0).first;
  a.links.advance(at_ms(800));
  EXPECT_TRUE(a.overlay.attaches.empty());
  EXPECT_EQ(a.links.next_wakeup(), at_ms(10000));
  // The credentials and a host candidate come late: the Attach goes with them at once.
  a.links.local_candidate(s, cand(CandidateType::Host, "10.0.3.2", 40000), at_ms(900));
  EXPECT_TRUE(a.overlay.attaches.empty());
  a.links.local_credentials(s, {"late0001", "pwd0123456789012345678901"}, at_ms(950));
  ASSERT_EQ(a.overlay.attaches.size(), 1U);
  EXPECT_EQ(a.overlay.attaches[0].offer.candidates.size(), 1U);
  EXPECT_EQ(a.links.next_wakeup(), at_ms(10000));
}

TEST(IceLinks, NoLinkWithinTheSetUpTimeIsAFailureAndThePeerIsLeftAloneForABackOffThatDoubles) {
  Side a(kA);
  ASSERT_TRUE(a.links.send(kB, "m", at_ms(0)));
  const IceSessionId s = a.port.opened.at(0).first;
  a.gather(s, at_ms(10));
  a.links.answered(s, IceDescription{{"abcd", "0123456789012345678901"}, {}, true}, at_ms(100));
  a.links.advance(at_ms(9999));
  EXPECT_TRUE(a.overlay.downs.empty());
  EXPECT_EQ(a.links.next_wakeup(), at_ms(10000));
  a.links.advance(at_ms(10000));
  ASSERT_EQ(a.overlay.downs, std::vector<Endpoint>{kB});
  EXPECT_EQ(a.port.closed, std::vector<IceSessionId>{s});
  EXPECT_EQ(a.links.stats().failed_checks, 1U);
  EXPECT_EQ(a.links.stats().queue_dropped, 1U);
  // In the back-off a message fails at once and nothing is opened.
  EXPECT_FALSE(a.links.send(kB, "m2", at_ms(14999)));
  EXPECT_EQ(a.port.opened.size(), 1U);
  // After it, a new attempt; its failure (the Attach unanswered) doubles the wait.
  EXPECT_TRUE(a.links.send(kB, "m3", at_ms(15000)));
  ASSERT_EQ(a.port.opened.size(), 2U);
  a.gather(a.port.opened[1].first, at_ms(15010));
  a.links.attach_failed(a.port.opened[1].first, 408, 0, at_ms(20000));
  EXPECT_EQ(a.links.stats().failed_attach, 1U);
  EXPECT_FALSE(a.links.send(kB, "m4", at_ms(29999)));
  EXPECT_TRUE(a.links.send(kB, "m5", at_ms(30000)));
  EXPECT_EQ(a.links.status()[0].failures, 2U);
  // A refusal's Retry-After is honoured when it is longer.
  a.gather(a.port.opened[2].first, at_ms(30010));
  a.links.attach_failed(a.port.opened[2].first, 503, 120, at_ms(30100));
  EXPECT_FALSE(a.links.send(kB, "m6", at_ms(30100 + 119000)));
  EXPECT_TRUE(a.links.send(kB, "m7", at_ms(30100 + 120000)));
}

TEST(IceLinks, CrossingAttachesLeaveOneSessionOnEachSide) {
  // Both sides want a link at once: A's Attach and B's cross. B's address is the greater: B's wins.
  Side a(kA), b(kB);
  a.links.send(kB, "from a", at_ms(0));
  b.links.send(kA, "from b", at_ms(0));
  const IceSessionId sa = a.port.opened.at(0).first, sb = b.port.opened.at(0).first;
  a.gather(sa, at_ms(10));
  b.gather(sb, at_ms(10));
  ASSERT_EQ(a.overlay.attaches.size(), 1U);
  ASSERT_EQ(b.overlay.attaches.size(), 1U);
  a.links.offered(kB, b.overlay.attaches[0].offer, 1, at_ms(50));  // B's offer at A: A gives way
  b.links.offered(kA, a.overlay.attaches[0].offer, 2, at_ms(50));  // A's offer at B: refused, 491
  ASSERT_EQ(b.overlay.refusals.size(), 1U);
  EXPECT_EQ(b.overlay.refusals[0].status, 491);
  a.links.attach_failed(sa, 491, 0, at_ms(60));  // A hears the 491 after it gave way: nothing changes
  EXPECT_EQ(a.port.closed, std::vector<IceSessionId>{sa});
  ASSERT_EQ(a.port.opened.size(), 2U);
  const IceSessionId sa2 = a.port.opened[1].first;
  EXPECT_FALSE(a.port.opened[1].second);
  a.gather(sa2, at_ms(70));
  ASSERT_EQ(a.overlay.answers.size(), 1U);
  b.links.answered(sb, a.overlay.answers[0].second, at_ms(90));
  a.links.connected(sa2, CandidateType::Host, CandidateType::Host, at_ms(100));
  b.links.connected(sb, CandidateType::Host, CandidateType::Host, at_ms(100));
  EXPECT_TRUE(a.links.is_up(kB));
  EXPECT_TRUE(b.links.is_up(kA));
  // A's held message went over the surviving session.
  ASSERT_EQ(a.port.sent.size(), 1U);
  EXPECT_EQ(a.port.sent[0], std::make_pair(sa2, std::string("from a")));
  EXPECT_EQ(a.links.stats().glare + b.links.stats().glare, 2U);
}

TEST(IceLinks, ChecksThatSucceedBeforeTheAnswerWentStillAnswer) {
  Side b(kB);
  b.links.offered(kA, IceDescription{{"abcd", "0123456789012345678901"}, {}, true}, 5, at_ms(0));
  const IceSessionId s = b.port.opened.at(0).first;
  b.links.local_credentials(s, {"efgh", "0123456789012345678901"}, at_ms(1));
  b.links.connected(s, CandidateType::Host, CandidateType::PeerReflexive, at_ms(2));
  ASSERT_EQ(b.overlay.answers.size(), 1U);
  EXPECT_EQ(b.overlay.answers[0].second.credentials.ufrag, "efgh");
  EXPECT_TRUE(b.links.is_up(kA));
}

TEST(IceLinks, AnAttachFloodFromOnePeerIsRefusedWhileOthersAreServed) {
  IceLinkConfig cfg;
  cfg.max_links = 3;
  Side b(kB, cfg);
  const IceDescription offer{{"abcd", "0123456789012345678901"}, {}, true};
  int refused = 0;
  for (int i = 0; i < 50; ++i) {
    b.links.offered(kA, offer, static_cast<std::uint64_t>(i), at_ms(i * 20));  // 50 in a second
  }
  for (const auto& r : b.overlay.refusals) {
    EXPECT_EQ(r.status, 503);
    EXPECT_GE(r.retry_after, 1U);
    ++refused;
  }
  EXPECT_EQ(refused, 46);  // a burst of 4 taken (each replacing the last), the rest refused
  EXPECT_EQ(b.links.stats().offers_refused_rate, 46U);
  EXPECT_EQ(b.links.sessions(), 1U);
  // Another peer is still served, up to the limit; then offers are refused, links in use kept.
  b.links.offered(ep("198.51.100.21", 5070), offer, 100, at_ms(1000));
  b.links.offered(ep("198.51.100.22", 5070), offer, 101, at_ms(1000));
  EXPECT_EQ(b.links.sessions(), 3U);
  b.links.offered(ep("198.51.100.23", 5070), offer, 102, at_ms(1000));
  EXPECT_EQ(b.links.sessions(), 3U);
  EXPECT_EQ(b.overlay.refusals.back().token, 102U);
  EXPECT_EQ(b.overlay.refusals.back().retry_after, 30U);
  EXPECT_EQ(b.links.stats().offers_refused_full, 1U);
}

TEST(IceLinks, AtTheLimitANewLinkOfOursClosesTheLeastUsedOne) {
  IceLinkConfig cfg;
  cfg.max_links = 2;
  Side a(kA, cfg);
  const Endpoint p1 = ep("198.51.100.21", 5070), p2 = ep("198.51.100.22", 5070), p3 = ep("198.51.100.23", 5070);
  for (const auto& p : {p1, p2}) {
    a.links.connect(p, at_ms(0));
    const IceSessionId s = a.port.opened.back().first;
    a.gather(s, at_ms(1));
    a.links.answered(s, IceDescription{{"abcd", "0123456789012345678901"}, {}, true}, at_ms(2));
    a.links.connected(s, CandidateType::Host, CandidateType::Host, at_ms(3));
  }
  a.links.send(p1, "x", at_ms(500));  // p2 is the least used now
  a.links.connect(p3, at_ms(600));
  EXPECT_FALSE(a.links.has_link(p2));
  EXPECT_TRUE(a.links.is_up(p1));
  EXPECT_TRUE(a.links.has_link(p3));
  EXPECT_EQ(a.overlay.downs, std::vector<Endpoint>{p2});
  EXPECT_EQ(a.links.stats().closed_evicted, 1U);
}

TEST(IceLinks, ALostLinkIsAttachedAgainAtOnceAndAnIdleOneIsClosed) {
  Side a(kA);
  a.links.connect(kB, at_ms(0));
  IceSessionId s = a.port.opened.back().first;
  a.gather(s, at_ms(1));
  a.links.answered(s, IceDescription{{"abcd", "0123456789012345678901"}, {}, true}, at_ms(2));
  a.links.connected(s, CandidateType::Relayed, CandidateType::ServerReflexive, at_ms(3));
  EXPECT_TRUE(a.links.status()[0].relayed);
  EXPECT_EQ(a.links.stats().up_relayed, 1U);
  // The agent moves it to a direct pair that succeeded later: still up, no longer relayed.
  a.links.connected(s, CandidateType::ServerReflexive, CandidateType::ServerReflexive, at_ms(600));
  EXPECT_FALSE(a.links.status()[0].relayed);
  EXPECT_EQ(a.links.stats().pair_changes, 1U);
  EXPECT_EQ(a.overlay.ups.size(), 1U);
  a.links.failed(s, at_ms(5000));  // consent lost
  EXPECT_EQ(a.overlay.downs, std::vector<Endpoint>{kB});
  EXPECT_EQ(a.links.stats().lost, 1U);
  EXPECT_TRUE(a.links.send(kB, "again", at_ms(5001)));
  ASSERT_EQ(a.port.opened.size(), 2U);
  s = a.port.opened.back().first;
  a.gather(s, at_ms(5002));
  a.links.answered(s, IceDescription{{"abcd", "0123456789012345678901"}, {}, true}, at_ms(5003));
  a.links.connected(s, CandidateType::Host, CandidateType::Host, at_ms(5004));
  // The wake-up is a lower bound (the set-up's earlier times may still stand) until advance finds
  // nothing due and computes it again: the idle time-out.
  EXPECT_LE(a.links.next_wakeup(), at_ms(5004) + seconds(300));
  a.links.advance(a.links.next_wakeup());
  EXPECT_TRUE(a.links.is_up(kB));
  EXPECT_EQ(a.links.next_wakeup(), at_ms(5004) + seconds(300));
  a.links.received(s, at_ms(100000));  // what comes in keeps it too
  a.links.advance(at_ms(100000) + seconds(299));
  EXPECT_TRUE(a.links.is_up(kB));
  a.links.advance(at_ms(100000) + seconds(300));
  EXPECT_FALSE(a.links.has_link(kB));
  EXPECT_EQ(a.links.stats().closed_idle, 1U);
  EXPECT_EQ(a.links.next_wakeup(), kInstantMax);
}

TEST(IceLinks, AnOverlayThatSendsWhenALinkFailsDoesNotUpsetTheTimers) {
  // Links failing at one advance(): the overlay hears of each and sends to other peers meanwhile,
  // which sets up new links while the due ones are still being handled.
  Side a(kA);
  std::vector<Endpoint> peers;
  for (int i = 0; i < 40; ++i) peers.push_back(ep(("198.51.100." + std::to_string(100 + i)).c_str(), 5070));
  for (const auto& p : peers) a.links.connect(p, at_ms(0));
  int sent = 0;
  a.overlay.on_down = [&](const Endpoint&, Instant now) {
    a.links.send(ep(("203.0.113." + std::to_string(1 + sent % 200)).c_str(), 5070), "elsewhere", now);
    ++sent;
  };
  a.links.advance(at_ms(10000));  // every Attach went unanswered (none was even sent: no candidates)
  EXPECT_EQ(a.overlay.downs.size(), 40U);
  EXPECT_EQ(sent, 40);
  EXPECT_EQ(a.links.stats().failed_checks, 40U);
  EXPECT_EQ(a.links.sessions(), 40U);  // the new links, to the other peers
}

TEST(IceLinks, AnAgentThatOpensNothingFailsTheSendAndAQueueHasBounds) {
  Side a(kA);
  a.port.open_ok = false;
  EXPECT_FALSE(a.links.send(kB, "m", at_ms(0)));
  EXPECT_EQ(a.links.status()[0].state, LinkState::Failed);
  IceLinkConfig cfg;
  cfg.queue_messages = 2;
  Side q(kA, cfg);
  EXPECT_TRUE(q.links.send(kB, "1", at_ms(0)));
  EXPECT_TRUE(q.links.send(kB, "2", at_ms(0)));
  EXPECT_FALSE(q.links.send(kB, "3", at_ms(0)));
  EXPECT_EQ(q.links.stats().queue_dropped, 1U);
}

}  // namespace
}  // namespace p2psip::test
