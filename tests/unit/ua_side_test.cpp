// The UA side's registrar on a small in-memory overlay: softphones send real REGISTER bytes to a
// node's UA address, and the registrations are checked in the node's answers and in the overlay.
#include "node/proxy/ua_side.hpp"

#include <gtest/gtest.h>

#include "node/overlay/codec.hpp"
#include "overlay_harness.hpp"

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

  UaNet() { config.registrar.domain = net.config.overlay = "demo"; }

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
    uas[node] = std::make_unique<UaSide>(net.host_at(addr), *net.nodes[node], config);
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
          out.first = r.status;
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

}  // namespace
}  // namespace p2psip::test
