// The UA side's registrar on a small in-memory overlay: softphones send real REGISTER bytes to a
// node's UA address, and the registrations are checked in the node's answers and in the overlay.
#include "node/proxy/ua_side.hpp"

#include <gtest/gtest.h>

#include "caller.hpp"
#include "node/echo/echo_element.hpp"
#include "node/overlay/codec.hpp"
#include "overlay_harness.hpp"
#include "security/record_policy.hpp"

namespace p2psip::test {
namespace {

using proxy::UaSide;

/// A softphone: sends what the test writes, keeps every message it receives.
struct Phone {
  Endpoint addr;
  OverlayNet::Host* host = nullptr;
  std::vector<sip::Message> received;
  int cseq = 0;
  int sent = 0;  // makes every branch new
  std::string call_id;

  void send(const Endpoint& to, const std::string& text) { host->send(to, text); }
  /// The last final response received, or nullptr.
  const sip::Message* last_final() const {
    for (auto it = received.rbegin(); it != received.rend(); ++it) {
      if (it->is_response() && it->status() >= 200) return &*it;
    }
    return nullptr;
  }
};

struct UaNet {
  OverlayNet net;
  std::vector<std::unique_ptr<UaSide>> uas;  // uas[i] serves node i (null when none)
  std::vector<std::unique_ptr<Phone>> phones;
  proxy::UaSideConfig config;

  std::vector<std::unique_ptr<echo::EchoElement>> echoes;
  security::UserIdentities* users = nullptr;  // signs registrations when set

  UaNet() { config.registrar.domain = net.config.overlay = "demo"; }

  /// A phone that answers calls (the sip-echo element): 180, then 200 after `delay`.
  echo::EchoElement& callee(const std::string& ip, std::uint16_t port, Duration delay = {}) {
    Endpoint addr{Transport::Udp, *IpAddress::parse(ip), port};
    echo::EchoConfig ec;
    ec.contact_host = ip;
    ec.contact_port = port;
    ec.answer_delay = delay;
    echoes.push_back(std::make_unique<echo::EchoElement>(net.host_at(addr), ec));
    echo::EchoElement* e = echoes.back().get();
    net.members.push_back(OverlayNet::Member{
        addr, [e](std::string_view b, const Endpoint& from, Instant now) { e->receive_datagram(b, from, now); },
        [e] { return e->next_wakeup(); }, [e](Instant now) { e->advance(now); }});
    return *e;
  }

  static Endpoint ua_addr(std::size_t node) {
    return Endpoint{Transport::Udp, *IpAddress::parse("127.0.3." + std::to_string(node + 1)), 5060};
  }

  void build(std::size_t nodes, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    net.grow(nodes, rng, seconds(2));
    net.run_for(seconds(60));
    ASSERT_EQ(net.ring_errors(), "");
  }

  UaSide& attach(std::size_t node) {
    if (uas.size() <= node) uas.resize(node + 1);
    Endpoint addr = ua_addr(node);
    proxy::UaSideConfig c = config;
    c.ua_address = addr;
    uas[node] = std::make_unique<UaSide>(net.host_at(addr), *net.nodes[node], c, users);
    UaSide* ua = uas[node].get();
    net.members.push_back(
        OverlayNet::Member{addr,
                           [this, ua](std::string_view b, const Endpoint& from, Instant now) {
                             if (from.transport == Transport::Udp) {
                               ua->receive_datagram(b, from, now);
                             } else if (auto m = sip::parse_message(b, config.limits, true, nullptr)) {
                               ua->receive(*m, from, now);
                             }
                           },
                           [ua] { return ua->next_wakeup(); }, [ua](Instant now) { ua->advance(now); }});
    return *ua;
  }

  Phone& phone(const std::string& ip, std::uint16_t port) {
    phones.push_back(std::make_unique<Phone>());
    Phone& p = *phones.back();
    p.addr = Endpoint{Transport::Udp, *IpAddress::parse(ip), port};
    p.host = &net.host_at(p.addr);
    p.call_id = "reg-" + ip + "-" + std::to_string(port);
    net.members.push_back(OverlayNet::Member{p.addr, [&p](std::string_view b, const Endpoint&, Instant) {
                                               if (auto m = sip::parse_datagram(b)) p.received.push_back(*m);
                                             }});
    return p;
  }

  /// A caller at phone `p` whose node is `node`.
  Caller caller(Phone& p, std::size_t node, std::string call_id) {
    return Caller{[&p, node](const std::string& text) { p.send(ua_addr(node), text); }, p.addr, &p.received,
                  std::move(call_id)};
  }
  /// Sends a REGISTER from `p` for `user` to node `node`'s UA side; `extra` holds Contact/Expires
  /// lines. Returns the final answer.
  std::optional<sip::Message> reg(Phone& p, std::size_t node, const std::string& user, const std::string& extra,
                                  std::optional<int> cseq = std::nullopt) {
    p.cseq = cseq.value_or(p.cseq + 1);
    std::string text = "REGISTER sip:demo SIP/2.0\r\nVia: SIP/2.0/UDP " + p.addr.host_port() + ";branch=z9hG4bKr" +
                       std::to_string(++p.sent) + p.call_id + ";rport\r\nMax-Forwards: 70\r\nFrom: <sip:" + user +
                       "@demo>;tag=ph\r\nTo: <sip:" + user + "@demo>\r\nCall-ID: " + p.call_id +
                       "\r\nCSeq: " + std::to_string(p.cseq) + " REGISTER\r\n" + extra + "Content-Length: 0\r\n\r\n";
    std::size_t before = p.received.size();
    p.send(ua_addr(node), text);
    net.run_for(seconds(3));
    for (std::size_t i = before; i < p.received.size(); ++i) {
      if (p.received[i].is_response() && p.received[i].status() >= 200) return p.received[i];
    }
    return std::nullopt;
  }

  /// The overlay's entries for `aor`, fetched through node `from`: (status, entries).
  std::pair<int, std::vector<proxy::RegistrationEntry>> fetch(std::size_t from, const std::string& aor) {
    std::pair<int, std::vector<proxy::RegistrationEntry>> out{0, {}};
    net.nodes[from]->chord().route(
        dht::RouteOp::Fetch, dht::NodeId::hash(aor), std::nullopt,
        [&](const dht::RouteResult& r) {
          out.first = dht::code(r.status);
          for (const auto& rec : r.records) {
            auto e = proxy::decode_registration(rec.value);
            EXPECT_TRUE(e) << "undecodable entry";
            if (e) {
              EXPECT_EQ(rec.dkey, e->node.id.hex());
              out.second.push_back(*e);
            }
          }
        },
        net.now);
    net.run_for(seconds(2));
    return out;
  }
};

std::vector<std::string> contacts(const sip::Message& m) {
  std::vector<std::string> out;
  m.for_each(sip::HeaderId::Contact, [&](std::string_view v) { out.emplace_back(v); });
  return out;
}

TEST(UaSide, RegisterStoresTheNodesEntryInTheOverlayAndAnswersWithTheBindings) {
  UaNet u;
  u.build(5, 1);
  u.attach(1);
  Phone& p = u.phone("127.0.4.1", 5070);
  auto ok = u.reg(p, 1, "alice", "Contact: <sip:alice@127.0.4.1:5070>;expires=600\r\n");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status(), 200);
  EXPECT_EQ(contacts(*ok), std::vector<std::string>{"<sip:alice@127.0.4.1:5070>;expires=600"});
  EXPECT_NE(ok->header(sip::HeaderId::To)->find(";tag="), std::string_view::npos);
  for (std::size_t from : {0u, 3u, 4u}) {
    auto [status, entries] = u.fetch(from, "sip:alice@demo");
    ASSERT_EQ(status, 200);
    ASSERT_EQ(entries.size(), 1u);
    EXPECT_EQ(entries[0].node.id, u.net.nodes[1]->chord().table().self().id);
    EXPECT_EQ(entries[0].node.addr.port, OverlayNet::addr_of(1).port);
    EXPECT_EQ(entries[0].devices, 1u);
  }
  // A query (no Contact) answers the bindings and changes nothing.
  auto q = u.reg(p, 1, "alice", "");
  ASSERT_TRUE(q);
  EXPECT_EQ(q->status(), 200);
  ASSERT_EQ(contacts(*q).size(), 1u);
  EXPECT_EQ(u.uas[1]->stats().queries, 1u);
}

TEST(UaSide, DevicesAtOneNodeShareAnEntryAndDevicesAtTwoNodesHaveOneEach) {
  UaNet u;
  u.build(5, 2);
  u.attach(0);
  u.attach(3);
  Phone& desk = u.phone("127.0.4.1", 5070);
  Phone& laptop = u.phone("127.0.4.2", 5070);
  Phone& mobile = u.phone("127.0.4.3", 5070);
  ASSERT_EQ(u.reg(desk, 0, "bob", "Contact: <sip:bob@127.0.4.1:5070>\r\nExpires: 900\r\n")->status(), 200);
  auto both = u.reg(laptop, 0, "bob", "Contact: <sip:bob@127.0.4.2:5070>;q=0.5\r\n");
  ASSERT_EQ(both->status(), 200);
  EXPECT_EQ(contacts(*both).size(), 2u);  // every binding of the AOR at this node
  EXPECT_EQ(u.fetch(2, "sip:bob@demo").second.at(0).devices, 2u);
  ASSERT_EQ(u.reg(mobile, 3, "bob", "Contact: <sip:bob@127.0.4.3:5070>\r\n")->status(), 200);
  auto [status, entries] = u.fetch(4, "sip:bob@demo");
  ASSERT_EQ(status, 200);
  ASSERT_EQ(entries.size(), 2u);
  std::set<dht::NodeId> nodes{entries[0].node.id, entries[1].node.id};
  EXPECT_EQ(nodes, (std::set<dht::NodeId>{u.net.nodes[0]->chord().table().self().id,
                                          u.net.nodes[3]->chord().table().self().id}));
  // The mobile unregisters: node 3's entry goes, node 0's stays.
  ASSERT_EQ(u.reg(mobile, 3, "bob", "Contact: <sip:bob@127.0.4.3:5070>;expires=0\r\n")->status(), 200);
  entries = u.fetch(1, "sip:bob@demo").second;
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].node.id, u.net.nodes[0]->chord().table().self().id);
  EXPECT_EQ(u.uas[3]->registrar().aors(), 0u);
}

TEST(UaSide, RegistrarRulesOfRfc3261Section10) {
  UaNet u;
  u.build(3, 3);
  u.attach(2);
  Phone& p = u.phone("127.0.4.1", 5070);
  // 423 with Min-Expires for a non-zero interval below the minimum; nothing stored.
  auto brief = u.reg(p, 2, "carol", "Contact: <sip:carol@127.0.4.1:5070>;expires=10\r\n");
  ASSERT_TRUE(brief);
  EXPECT_EQ(brief->status(), 423);
  EXPECT_EQ(brief->header(sip::HeaderId::MinExpires), "60");
  EXPECT_EQ(u.fetch(0, "sip:carol@demo").first, 404);
  // Longer than the maximum is shortened.
  auto capped = u.reg(p, 2, "carol", "Contact: <sip:carol@127.0.4.1:5070>\r\nExpires: 999999\r\n");
  ASSERT_EQ(capped->status(), 200);
  EXPECT_EQ(contacts(*capped), std::vector<std::string>{"<sip:carol@127.0.4.1:5070>;expires=3600"});
  // The same Call-ID with an old CSeq is refused (500) and changes nothing.
  auto stale = u.reg(p, 2, "carol", "Contact: <sip:carol@127.0.4.1:5070>;expires=0\r\n", 1);
  ASSERT_EQ(stale->status(), 500);
  EXPECT_EQ(u.uas[2]->registrar().size(), 1u);
  p.cseq = 10;
  // "*" needs Expires: 0 and no other Contact.
  EXPECT_EQ(u.reg(p, 2, "carol", "Contact: *\r\nExpires: 30\r\n")->status(), 400);
  EXPECT_EQ(u.reg(p, 2, "carol", "Contact: *, <sip:x@127.0.0.1>\r\nExpires: 0\r\n")->status(), 400);
  // Users of another domain are not ours.
  std::string foreign =
      "REGISTER sip:elsewhere SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.4.1:5070;branch=z9hG4bKf1\r\n"
      "Max-Forwards: 70\r\nFrom: <sip:dave@elsewhere>;tag=1\r\nTo: <sip:dave@elsewhere>\r\n"
      "Call-ID: f1\r\nCSeq: 1 REGISTER\r\nContact: <sip:dave@127.0.4.1:5070>\r\nContent-Length: 0\r\n\r\n";
  p.send(UaNet::ua_addr(2), foreign);
  u.net.run_for(seconds(2));
  ASSERT_TRUE(p.last_final());
  EXPECT_EQ(p.last_final()->status(), 404);
  // An extension the registrar does not support: 420 with Unsupported.
  auto ext = u.reg(p, 2, "carol", "Require: gruu\r\nContact: <sip:carol@127.0.4.1:5070>\r\n");
  ASSERT_EQ(ext->status(), 420);
  EXPECT_EQ(ext->header(sip::HeaderId::Unsupported), "gruu");
  // "*" with Expires: 0 removes every binding, and the overlay entry with them.
  ASSERT_EQ(u.fetch(1, "sip:carol@demo").first, 200);
  auto gone = u.reg(p, 2, "carol", "Contact: *\r\nExpires: 0\r\n");
  ASSERT_EQ(gone->status(), 200);
  EXPECT_TRUE(contacts(*gone).empty());
  EXPECT_EQ(u.fetch(1, "sip:carol@demo").first, 404);
  EXPECT_EQ(u.uas[2]->published(), 0u);
}

TEST(UaSide, EntriesAreRefreshedWhileRegisteredAndRemovedWhenTheBindingExpires) {
  UaNet u;
  u.config.entry_lifetime_s = 60;
  u.build(4, 4);
  u.attach(0);
  Phone& p = u.phone("127.0.4.1", 5070);
  ASSERT_EQ(u.reg(p, 0, "erin", "Contact: <sip:erin@127.0.4.1:5070>;expires=300\r\n")->status(), 200);
  u.net.run_for(seconds(200));  // over three entry lifetimes
  EXPECT_EQ(u.fetch(2, "sip:erin@demo").first, 200);
  EXPECT_GE(u.uas[0]->stats().refreshes, 3u);
  u.net.run_for(seconds(100));  // the binding ran out at 300 s
  EXPECT_EQ(u.uas[0]->registrar().size(), 0u);
  EXPECT_EQ(u.fetch(2, "sip:erin@demo").first, 404);
  EXPECT_EQ(u.uas[0]->stats().entries_removed, 1u);
  EXPECT_EQ(u.uas[0]->next_wakeup(), u.uas[0]->transactions().next_wakeup());  // nothing left to refresh
}

TEST(UaSide, ARefreshThatLeavesTheEntryAsItIsStoresNothingAndTheEntryLivesOn) {
  UaNet u;
  u.config.entry_lifetime_s = 60;
  u.build(4, 6);
  u.attach(0);
  Phone& p = u.phone("127.0.4.1", 5070);
  ASSERT_EQ(u.reg(p, 0, "gina", "Contact: <sip:gina@127.0.4.1:5070>;expires=100\r\n")->status(), 200);
  EXPECT_EQ(u.uas[0]->stats().entries_stored, 1u);
  // The phone refreshes (same contact, longer): answered at once, no overlay store.
  u.net.run_for(seconds(50));
  auto again = u.reg(p, 0, "gina", "Contact: <sip:gina@127.0.4.1:5070>;expires=600\r\n");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status(), 200);
  EXPECT_EQ(contacts(*again), std::vector<std::string>{"<sip:gina@127.0.4.1:5070>;expires=600"});
  EXPECT_EQ(u.uas[0]->stats().entries_stored, 1u);
  EXPECT_EQ(u.uas[0]->stats().entries_kept, 1u);
  // The entry lives on through the node's own refreshes, past the first binding's 100 s.
  u.net.run_for(seconds(300));
  EXPECT_EQ(u.fetch(2, "sip:gina@demo").first, 200);
  EXPECT_GE(u.uas[0]->stats().refreshes, 4u);
  // A second device changes the entry (2 devices): that one is stored.
  Phone& q = u.phone("127.0.4.2", 5070);
  ASSERT_EQ(u.reg(q, 0, "gina", "Contact: <sip:gina@127.0.4.2:5070>\r\n")->status(), 200);
  EXPECT_EQ(u.uas[0]->stats().entries_stored, 2u);
  EXPECT_EQ(u.fetch(3, "sip:gina@demo").second.at(0).devices, 2u);
}

TEST(UaSide, AStoreThatFailsIsAnswered503AndChangesNothing) {
  // A node whose bootstrap never answers has not joined: its overlay refuses the store.
  UaNet u;
  u.net.add(dht::NodeId{1, 1}, std::nullopt);
  u.net.alive[0] = false;
  u.net.add(dht::NodeId{2, 2}, std::optional<std::size_t>(0));
  u.attach(1);
  Phone& p = u.phone("127.0.4.1", 5070);
  auto answer = u.reg(p, 1, "frank", "Contact: <sip:frank@127.0.4.1:5070>\r\n");
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->status(), 503);
  EXPECT_EQ(answer->header(sip::HeaderId::RetryAfter), "10");
  EXPECT_EQ(u.uas[1]->registrar().size(), 0u);
  EXPECT_EQ(u.uas[1]->stats().store_failures, 1u);
  EXPECT_EQ(u.uas[1]->published(), 0u);
}

// ---- calls -------------------------------------------------------------------------------------

TEST(UaSide, ACallBetweenPhonesAtTwoNodesGoesStraightToTheCalleesNodeAndKeepsItsPath) {
  UaNet u;
  u.build(6, 11);
  u.attach(1);
  u.attach(4);
  auto& bob = u.callee("127.0.4.2", 5070);
  Phone& bob_reg = u.phone("127.0.4.9", 5070);  // registers bob's contact (the echo element cannot)
  ASSERT_EQ(u.reg(bob_reg, 4, "bob", "Contact: <sip:bob@127.0.4.2:5070>\r\n")->status(), 200);
  Phone& alice = u.phone("127.0.4.1", 5070);
  Caller call = u.caller(alice, 1, "call-1");
  std::uint64_t overlay_hops_before = 0;
  for (auto& n : u.net.nodes) overlay_hops_before += n->chord().stats().forwarded;
  call.invite();
  u.net.run_for(seconds(2));
  EXPECT_EQ(call.statuses("INVITE"), (std::vector<int>{180, 200}));
  const sip::Message* ok = call.final_for("INVITE");
  ASSERT_TRUE(ok);
  EXPECT_FALSE(ok->body().empty());  // the SDP came back untouched (the echo mirrors the offer)
  // Record-Route: the callee's node (its UA side, then its overlay side), then the caller's.
  std::vector<std::string> rr;
  ok->for_each(sip::HeaderId::RecordRoute, [&](std::string_view v) { rr.emplace_back(v); });
  std::vector<std::string> want{
      "<sip:" + UaNet::ua_addr(4).host_port() + ";lr>", "<sip:" + OverlayNet::addr_of(4).host_port() + ";lr>",
      "<sip:" + OverlayNet::addr_of(1).host_port() + ";lr>", "<sip:" + UaNet::ua_addr(1).host_port() + ";lr>"};
  EXPECT_EQ(rr, want);
  // Only the lookup crossed the ring; the INVITE went from node 1 to node 4 directly, and only
  // the two UA sides proxied it (any other node would have answered 405).
  EXPECT_EQ(u.uas[1]->stats().lookups, 1u);
  EXPECT_EQ(u.uas[1]->stats().proxied, 1u);
  EXPECT_EQ(u.uas[4]->stats().proxied, 1u);
  call.learn(*ok);
  EXPECT_EQ(call.remote_target, "sip:echo@127.0.4.2:5070");
  call.in_dialog("ACK", 1);
  u.net.run_for(seconds(1));
  EXPECT_EQ(bob.stats().acks, 1u);
  EXPECT_EQ(u.uas[1]->stats().acks_forwarded, 1u);
  EXPECT_EQ(u.uas[4]->stats().acks_forwarded, 1u);
  call.in_dialog("BYE", 2);
  u.net.run_for(seconds(1));
  EXPECT_EQ(call.statuses("BYE"), std::vector<int>{200});
  EXPECT_EQ(bob.stats().byes, 1u);
  EXPECT_EQ(bob.dialogs(), 0u);
  (void)overlay_hops_before;
  u.net.run_for(seconds(40));  // contexts are kept 64*T1 for 2xx retransmissions, then dropped
  EXPECT_EQ(u.uas[1]->calls(), 0u);
  EXPECT_EQ(u.uas[4]->calls(), 0u);
}

TEST(UaSide, UnknownUserIs404AndADeadCalleeNodeIs480) {
  UaNet u;
  u.build(4, 12);
  u.attach(0);
  u.attach(2);
  Phone& alice = u.phone("127.0.4.1", 5070);
  Caller nobody = u.caller(alice, 0, "call-404");
  nobody.invite("sip:nobody@demo");
  u.net.run_for(seconds(2));
  ASSERT_TRUE(nobody.final_for("INVITE"));
  EXPECT_EQ(nobody.final_for("INVITE")->status(), 404);
  EXPECT_EQ(u.uas[0]->stats().lookups_not_found, 1u);
  // bob registers at node 2, whose process then dies: its entry outlives it (up to its lifetime).
  u.callee("127.0.4.2", 5070);
  Phone& reg = u.phone("127.0.4.9", 5070);
  ASSERT_EQ(u.reg(reg, 2, "bob", "Contact: <sip:bob@127.0.4.2:5070>\r\n")->status(), 200);
  u.net.alive[2] = false;
  for (auto& m : u.net.members) {  // node 2's UA side dies with it
    if (m.addr == UaNet::ua_addr(2)) m.receive = [](std::string_view, const Endpoint&, Instant) {};
  }
  Caller call = u.caller(alice, 0, "call-480");
  call.invite();
  // The lookup routes around the dead node (it held bob's entry: two hop timeouts of 5.5 s), then
  // the INVITE to it hears nothing, not even 100 Trying, for one more: 480 in about 17 s, well
  // before the INVITE's Timer B (32 s).
  u.net.run_for(seconds(10));
  EXPECT_FALSE(call.final_for("INVITE"));
  u.net.run_for(seconds(10));
  ASSERT_TRUE(call.final_for("INVITE"));
  EXPECT_EQ(call.final_for("INVITE")->status(), 480);
  EXPECT_EQ(call.final_for("INVITE")->reason(), "Callee's Node Does Not Answer");
}

TEST(UaSide, ABranchTheTransportRefusesEndsTheCallOnceWith480) {
  UaNet u;
  u.build(4, 14);
  u.attach(0);
  u.attach(2);
  u.callee("127.0.4.2", 5070);
  Phone& reg = u.phone("127.0.4.9", 5070);
  ASSERT_EQ(u.reg(reg, 2, "bob", "Contact: <sip:bob@127.0.4.2:5070>\r\n")->status(), 200);
  // Node 0 cannot open a link to node 2 (its INVITE is refused at once), though node 2 lives.
  u.net.refuse = [](const Endpoint& from, const Endpoint& to) {
    return from == OverlayNet::addr_of(0) && to.transport == Transport::Udp && to.ip == OverlayNet::addr_of(2).ip &&
           to.port == OverlayNet::addr_of(2).port;
  };
  Phone& alice = u.phone("127.0.4.1", 5070);
  Caller call = u.caller(alice, 0, "call-refused");
  call.invite();
  u.net.run_for(seconds(3));  // at once, not after a hop timeout
  EXPECT_EQ(call.statuses("INVITE"), std::vector<int>{480});
  ASSERT_TRUE(call.final_for("INVITE"));
  EXPECT_EQ(call.final_for("INVITE")->reason(), "Callee's Node Does Not Answer");
  EXPECT_EQ(u.uas[0]->stats().lookups_failed, 0u);  // the lookup found bob's entry
  EXPECT_EQ(u.uas[0]->stats().branches, 1u);        // and the one branch to his node was refused
  EXPECT_EQ(u.uas[0]->stats().branch_timeouts, 1u);
  EXPECT_EQ(u.uas[0]->calls(), 0u);
}

TEST(UaSide, CancelOfARingingCallReachesTheCallee) {
  UaNet u;
  u.build(4, 13);
  u.attach(0);
  u.attach(3);
  auto& bob = u.callee("127.0.4.2", 5070, seconds(30));  // rings for 30 s
  Phone& reg = u.phone("127.0.4.9", 5070);
  ASSERT_EQ(u.reg(reg, 3, "bob", "Contact: <sip:bob@127.0.4.2:5070>\r\n")->status(), 200);
  Phone& alice = u.phone("127.0.4.1", 5070);
  Caller call = u.caller(alice, 0, "call-cancel");
  call.invite();
  u.net.run_for(seconds(2));
  EXPECT_EQ(call.statuses("INVITE"), (std::vector<int>{180}));
  call.cancel();
  u.net.run_for(seconds(2));
  EXPECT_EQ(call.statuses("CANCEL"), std::vector<int>{200});
  EXPECT_EQ(call.statuses("INVITE"), (std::vector<int>{180, 487}));
  EXPECT_EQ(bob.stats().cancels, 1u);
  EXPECT_EQ(bob.dialogs(), 0u);
}

TEST(UaSide, ForkingToDevicesAtTwoNodesTheFirst2xxWinsAndTheOtherIsCancelled) {
  UaNet u;
  u.build(6, 14);
  u.attach(0);
  u.attach(2);
  u.attach(5);
  auto& desk = u.callee("127.0.4.2", 5070, seconds(1));
  auto& mobile = u.callee("127.0.4.3", 5070, seconds(5));
  Phone& reg = u.phone("127.0.4.9", 5070);
  ASSERT_EQ(u.reg(reg, 2, "bob", "Contact: <sip:bob@127.0.4.2:5070>\r\n")->status(), 200);
  Phone& reg2 = u.phone("127.0.4.8", 5070);
  ASSERT_EQ(u.reg(reg2, 5, "bob", "Contact: <sip:bob@127.0.4.3:5070>\r\n")->status(), 200);
  Phone& alice = u.phone("127.0.4.1", 5070);
  Caller call = u.caller(alice, 0, "call-fork");
  call.invite();
  u.net.run_for(seconds(4));
  EXPECT_EQ(call.statuses("INVITE"), (std::vector<int>{180, 200}));
  EXPECT_EQ(desk.stats().answered, 1u);
  EXPECT_EQ(mobile.stats().cancels, 1u);  // the other branch was cancelled
  EXPECT_EQ(mobile.stats().answered, 0u);
  u.net.run_for(seconds(10));
  EXPECT_EQ(call.statuses("INVITE"), (std::vector<int>{180, 200}));  // the cancelled branch's 487 stays here
}

TEST(UaSide, AMessageIsDeliveredAndARequestForAGoneBindingIs480) {
  UaNet u;
  u.build(4, 15);
  u.attach(0);
  u.attach(1);
  Phone& bob = u.phone("127.0.4.2", 5070);
  ASSERT_EQ(u.reg(bob, 1, "bob", "Contact: <sip:bob@127.0.4.2:5070>\r\n")->status(), 200);
  Phone& alice = u.phone("127.0.4.1", 5070);
  alice.send(UaNet::ua_addr(0),
             "MESSAGE sip:bob@demo SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.4.1:5070;branch=z9hG4bKm1\r\n"
             "Max-Forwards: 70\r\nFrom: <sip:alice@demo>;tag=a\r\nTo: <sip:bob@demo>\r\n"
             "Call-ID: m1\r\nCSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\n"
             "Content-Length: 5\r\n\r\nhello");
  u.net.run_for(seconds(1));
  const sip::Message* got = nullptr;
  for (const auto& m : bob.received) {
    if (m.is_request() && m.method() == "MESSAGE") got = &m;
  }
  ASSERT_TRUE(got);
  EXPECT_EQ(got->body(), "hello");
  EXPECT_EQ(got->request_uri(), "sip:bob@127.0.4.2:5070");
  EXPECT_EQ(got->count(sip::HeaderId::Via), 3u);  // bob's node, alice's node, alice
  auto top = sip::top_via(*got);
  ASSERT_TRUE(top);
  // bob answers; the 200 finds its way back through both nodes.
  std::string answer = sip::make_response(*got, 200, {}, "b").serialize();
  bob.send(Endpoint{Transport::Udp, *IpAddress::parse(std::string(top->host)), *top->port}, answer);
  u.net.run_for(seconds(1));
  ASSERT_TRUE(alice.last_final());
  EXPECT_EQ(alice.last_final()->status(), 200);
  // The node holds bob's entry but bob's binding is gone from it: 480, not silence.
  ASSERT_EQ(u.reg(bob, 1, "bob", "Contact: *\r\nExpires: 0\r\n")->status(), 200);
  u.uas[1]->withdraw_all(u.net.now);  // nothing to withdraw: the entry went with the binding
  alice.send(OverlayNet::addr_of(1),
             "MESSAGE sip:bob@demo SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.4.1:5070;branch=z9hG4bKm2\r\n"
             "Max-Forwards: 70\r\nFrom: <sip:alice@demo>;tag=a\r\nTo: <sip:bob@demo>\r\n"
             "Call-ID: m2\r\nCSeq: 2 MESSAGE\r\nContent-Length: 0\r\n\r\n");
  u.net.run_for(seconds(1));
  ASSERT_TRUE(alice.last_final());
  EXPECT_EQ(alice.last_final()->status(), 480);
}

TEST(UaSide, RequestsBeyondTheLimitInProgressGet503WithRetryAfter) {
  UaNet u;
  u.config.max_calls = 1;
  u.build(3, 16);
  u.attach(0);
  u.attach(1);
  u.callee("127.0.4.2", 5070, seconds(30));  // rings: the first call stays in progress
  Phone& reg = u.phone("127.0.4.9", 5070);
  ASSERT_EQ(u.reg(reg, 1, "bob", "Contact: <sip:bob@127.0.4.2:5070>\r\n")->status(), 200);
  Phone& alice = u.phone("127.0.4.1", 5070);
  Caller first = u.caller(alice, 0, "call-first");
  first.invite();
  u.net.run_for(seconds(1));
  EXPECT_EQ(first.statuses("INVITE"), std::vector<int>{180});
  Caller second = u.caller(alice, 0, "call-second");
  second.invite();
  u.net.run_for(seconds(1));
  ASSERT_TRUE(second.final_for("INVITE"));
  EXPECT_EQ(second.final_for("INVITE")->status(), 503);
  EXPECT_EQ(second.final_for("INVITE")->header(sip::HeaderId::RetryAfter), "10");
  // Once answered, the first call's context stays 64*T1 for 2xx retransmissions (RFC 6026) but
  // is no longer in progress: the next call goes through.
  u.net.run_for(seconds(30));
  ASSERT_TRUE(first.final_for("INVITE"));
  EXPECT_EQ(first.final_for("INVITE")->status(), 200);
  EXPECT_EQ(u.uas[0]->calls(), 0u);
  EXPECT_EQ(u.uas[0]->contexts(), 1u);  // the answered call's (the 503 made none)
  Caller third = u.caller(alice, 0, "call-third");
  third.invite();
  u.net.run_for(seconds(1));
  EXPECT_EQ(third.statuses("INVITE"), std::vector<int>{180});
}

TEST(UaSide, RegistrationsAreSignedByTheUserAndOnlyEnrolledUsersRegister) {
  // The overlay's CA, and alice enrolled at node 1; every peer checks records (USER-MATCH).
  // The harness's clock starts at the epoch: certificates valid from 1969 for ten years.
  constexpr std::int64_t kYear = 365 * 86400;
  auto key = [](std::uint8_t n) {
    security::Seed s{};
    s.fill(n);
    return security::KeyPair::from_seed(s);
  };
  security::Ed25519Provider crypto;
  security::KeyPair ca_key = key(1), alice_key = key(2);
  security::Certificate root = *security::make_root(ca_key, "demo", 1, {-86400, 10 * kYear});
  security::Certificate alice = *security::issue_user(ca_key, root, alice_key.public_key, "alice", 2, {-86400, kYear});
  security::EnrolledUsers enrolled(crypto);
  ASSERT_TRUE(enrolled.add(security::Identity{alice_key, alice}));
  UaNet u;
  u.users = &enrolled;
  u.build(5, 21);
  std::vector<std::unique_ptr<security::RecordPolicy>> guards;
  for (auto& n : u.net.nodes) {
    guards.push_back(std::make_unique<security::RecordPolicy>(security::TrustAnchor::ca(root), crypto,
                                                              u.net.host_at(n->chord().table().self().addr)));
    n->chord().set_guard(guards.back().get());
  }
  u.attach(1);
  Phone& desk = u.phone("127.0.4.1", 5070);
  auto ok = u.reg(desk, 1, "alice", "Contact: <sip:alice@127.0.4.1:5070>\r\n");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status(), 200);
  // Stored signed by alice's certificate, believed by a peer that fetches it.
  std::vector<dht::Record> fetched;
  u.net.nodes[3]->chord().route(
      dht::RouteOp::Fetch, dht::NodeId::hash("sip:alice@demo"), std::nullopt,
      [&](const dht::RouteResult& r) { fetched = r.records; }, u.net.now);
  u.net.run_for(seconds(2));
  ASSERT_EQ(fetched.size(), 1u);
  EXPECT_EQ(fetched[0].signer, alice.der());
  EXPECT_EQ(fetched[0].signature.size(), 64u);
  std::uint64_t admitted = 0;
  for (const auto& g : guards) admitted += g->stats().admitted;
  EXPECT_GE(admitted, 3u);  // the responsible peer and its two replicas
  // Another node cannot point alice's entry at a relay of its choosing (issue 24: a forged record
  // naming a foreign relay): her signed entry with a "via" added fails its signature, and one
  // signed by that node's own key fails USER-MATCH. The entry stays as alice's node stored it.
  auto entry = proxy::decode_registration(fetched[0].value);
  ASSERT_TRUE(entry);
  EXPECT_TRUE(entry->via.empty());
  entry->via = {"<sip:0123456789abcdef@192.0.2.66:5070;transport=tls;lr;ob>"};
  dht::Record tampered = fetched[0];
  tampered.value = proxy::encode_registration(*entry);
  dht::Record unsigned_one = tampered;
  unsigned_one.signer.clear();
  unsigned_one.signature.clear();
  for (const dht::Record& forged : {tampered, unsigned_one}) {
    int status = 0;
    u.net.nodes[3]->chord().route(
        dht::RouteOp::Store, forged.key, forged, [&](const dht::RouteResult& r) { status = dht::code(r.status); },
        u.net.now);
    u.net.run_for(seconds(2));
    EXPECT_GE(status, 400) << "a forged entry was stored";
  }
  auto after = u.fetch(2, "sip:alice@demo");
  ASSERT_EQ(after.second.size(), 1u);
  EXPECT_TRUE(after.second[0].via.empty());
  // Carol has no certificate at this node: refused, and nothing reaches the overlay.
  Phone& other = u.phone("127.0.4.2", 5070);
  auto no = u.reg(other, 1, "carol", "Contact: <sip:carol@127.0.4.2:5070>\r\n");
  ASSERT_TRUE(no);
  EXPECT_EQ(no->status(), 403);
  EXPECT_NE(no->reason().find("No Certificate For sip:carol@demo"), std::string::npos) << no->reason();
  EXPECT_EQ(u.fetch(2, "sip:carol@demo").first, 404);
  // Unregistering: the removal is signed too, and taken.
  ASSERT_EQ(u.reg(desk, 1, "alice", "Contact: <sip:alice@127.0.4.1:5070>;expires=0\r\n")->status(), 200);
  EXPECT_EQ(u.fetch(4, "sip:alice@demo").first, 404);
}

// ---- phones that authenticate -------------------------------------------------------------------

/// A phone's credentials for the first challenge of `m` (a 401 or 407), as RFC 7616 §3.4 makes them.
std::string credentials(const sip::Message& m, const std::string& user, const std::string& password,
                        const std::string& method, const std::string& uri, const std::string& nc) {
  const sip::HeaderId h = m.status() == 407 ? sip::HeaderId::ProxyAuthenticate : sip::HeaderId::WwwAuthenticate;
  const std::string challenge(m.header(h).value_or(""));
  const auto at = challenge.find("nonce=\"") + 7;
  const std::string nonce = challenge.substr(at, challenge.find('"', at) - at);
  const auto a = proxy::DigestAlgorithm::Sha256;
  const std::string response =
      proxy::digest_response(a, proxy::digest_ha1(a, user, "demo", password), nonce, method, uri, "auth", nc, "abc");
  return std::string(m.status() == 407 ? "Proxy-Authorization" : "Authorization") + ": Digest username=\"" + user +
         "\", realm=\"demo\", nonce=\"" + nonce + "\", uri=\"" + uri + "\", response=\"" + response +
         "\", algorithm=SHA-256, cnonce=\"abc\", qop=auth, nc=" + nc + "\r\n";
}

TEST(UaSide, PhonesAuthenticateWithDigestWhenTheNodeAsksForIt) {
  UaNet u;
  const proxy::DigestSecret alice_pw = proxy::DigestSecret::of("alice", "demo", "wonderland");
  const proxy::DigestSecret bob_pw = proxy::DigestSecret::of("bob", "demo", "builder");
  u.config.digest = proxy::DigestConfig{"demo"};
  u.config.digest_secrets = [&](std::string_view user) -> const proxy::DigestSecret* {
    return user == "alice" ? &alice_pw : user == "bob" ? &bob_pw : nullptr;
  };
  u.build(3, 21);
  u.attach(0);
  Phone& p = u.phone("127.0.4.1", 5070);
  const std::string contact = "Contact: <sip:alice@127.0.4.1:5070>\r\n";
  // No credentials: challenged with SHA-256 first, then MD5 (RFC 8760 §2.4). Nothing registered.
  auto ch = u.reg(p, 0, "alice", contact);
  ASSERT_TRUE(ch);
  ASSERT_EQ(ch->status(), 401);
  std::vector<std::string> offered;
  ch->for_each(sip::HeaderId::WwwAuthenticate, [&](std::string_view v) { offered.emplace_back(v); });
  ASSERT_EQ(offered.size(), 2u);
  EXPECT_NE(offered[0].find("algorithm=SHA-256"), std::string::npos);
  EXPECT_NE(offered[1].find("algorithm=MD5"), std::string::npos);
  EXPECT_EQ(u.uas[0]->registrar().size(), 0u);
  // The right answer registers.
  auto ok = u.reg(p, 0, "alice", contact + credentials(*ch, "alice", "wonderland", "REGISTER", "sip:demo", "00000001"));
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status(), 200);
  EXPECT_EQ(u.uas[0]->registrar().size(), 1u);
  // Alice's good credentials do not register bob; a wrong password is challenged again.
  auto other =
      u.reg(p, 0, "bob", contact + credentials(*ch, "alice", "wonderland", "REGISTER", "sip:demo", "00000002"));
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status(), 403);
  EXPECT_EQ(other->reason(), "Forbidden (Authenticated As alice, Not bob)");
  auto wrong = u.reg(p, 0, "alice", contact + credentials(*ch, "alice", "rabbit", "REGISTER", "sip:demo", "00000003"));
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status(), 401);
  EXPECT_EQ(u.uas[0]->stats().auth_refused, 2u);
  // A call from alice needs her credentials too, at the proxy: 407, then through.
  auto& bob = u.callee("127.0.4.2", 5070);
  Phone& bob_reg = u.phone("127.0.4.9", 5070);
  auto bob_ch = u.reg(bob_reg, 0, "bob", "Contact: <sip:bob@127.0.4.2:5070>\r\n");
  ASSERT_EQ(u.reg(bob_reg, 0, "bob",
                  "Contact: <sip:bob@127.0.4.2:5070>\r\n" +
                      credentials(*bob_ch, "bob", "builder", "REGISTER", "sip:demo", "00000001"))
                ->status(),
            200);
  // A "BYE" with a To tag but no Route naming the node is no dialog's: challenged, not delivered.
  Caller forged = u.caller(p, 0, "auth-forged");
  forged.to_tag = "made-up";
  forged.remote_target = "sip:bob@demo";
  forged.in_dialog("BYE", 5);
  u.net.run_for(seconds(2));
  EXPECT_EQ(forged.statuses("BYE"), std::vector<int>{407});
  EXPECT_EQ(bob.stats().byes, 0u);
  Caller call = u.caller(p, 0, "auth-call-1");
  call.invite();
  u.net.run_for(seconds(2));
  ASSERT_EQ(call.statuses("INVITE"), std::vector<int>{407});
  EXPECT_EQ(u.uas[0]->stats().proxied, 0u);
  Caller again = u.caller(p, 0, "auth-call-2");
  again.extra = credentials(*call.final_for("INVITE"), "alice", "wonderland", "INVITE", "sip:bob@demo", "00000001");
  again.invite();
  u.net.run_for(seconds(2));
  EXPECT_EQ(again.statuses("INVITE"), (std::vector<int>{180, 200}));
  EXPECT_EQ(bob.stats().invites, 1u);
}

TEST(UaSide, OffLoopbackPhonesAreReachedWhereTheyRegisteredFromNotWhereContactsPoint) {
  UaNet u;
  u.config.phones_on_loopback = false;
  u.build(3, 22);
  u.attach(0);
  auto& echo = u.callee("127.0.4.2", 5070);
  // Bob registers from 127.0.4.9 a Contact that names another host.
  Phone& bob = u.phone("127.0.4.9", 5070);
  ASSERT_EQ(u.reg(bob, 0, "bob", "Contact: <sip:bob@127.0.4.2:5070>\r\n")->status(), 200);
  Phone& alice = u.phone("127.0.4.1", 5070);
  Caller call = u.caller(alice, 0, "reach-1");
  call.invite();
  u.net.run_for(seconds(1));
  EXPECT_EQ(echo.stats().invites, 0u);
  bool bob_rang = false;
  for (const auto& m : bob.received) bob_rang = bob_rang || (m.is_request() && m.method_id() == sip::Method::Invite);
  EXPECT_TRUE(bob_rang);
}

}  // namespace
}  // namespace p2psip::test

namespace p2psip::test {
namespace {

TEST(RegistrationEntry, AClientsEntryNamesItsRelaysAndAMalformedOneIsRefused) {
  proxy::RegistrationEntry e;
  e.node = dht::Peer{*dht::NodeId::from_hex("e0000000000000000000000000000000"),
                     Endpoint{Transport::Tls, *IpAddress::parse("10.2.0.2"), 5070}};
  e.devices = 1;
  // Without relays the entry is the four fields nodes have always written.
  auto plain = proxy::encode_registration(e);
  EXPECT_EQ(proxy::decode_registration(plain), e);
  e.via = {"<sip:0a1b2c3d@192.0.2.10:5070;transport=tls;lr;ob>", "<sip:99ff@192.0.2.11:5070;lr;ob>"};
  auto with_via = proxy::encode_registration(e);
  EXPECT_GT(with_via.size(), plain.size());
  EXPECT_EQ(proxy::decode_registration(with_via), e);
  auto ep = proxy::via_endpoint(e.via[0]);
  ASSERT_TRUE(ep);
  EXPECT_EQ(ep->to_string(), "tls:192.0.2.10:5070");
  EXPECT_EQ(proxy::via_endpoint(e.via[1])->to_string(), "udp:192.0.2.11:5070");
  // A relay named by a host name (never resolved), not loose-routing, unbracketed, or too many.
  for (const std::string bad :
       {"<sip:t@relay.example;lr;ob>", "<sip:t@192.0.2.10:5070;ob>", "sip:t@192.0.2.10:5070;lr", "not a uri"}) {
    auto b = e;
    b.via = {bad};
    EXPECT_FALSE(proxy::decode_registration(proxy::encode_registration(b))) << bad;
  }
  auto many = e;
  many.via.assign(proxy::kMaxVia + 1, e.via[1]);
  EXPECT_FALSE(proxy::decode_registration(proxy::encode_registration(many)));
}

}  // namespace
}  // namespace p2psip::test
