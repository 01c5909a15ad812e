// The assembled peer (node/peer) through its one sans-I/O face: peers with phone sides on an
// in-memory network (sim/virtual_network.hpp), driven only by bytes in on their two addresses,
// advance(now) and next_wakeup(), as the daemon and the simulator drive them.
#include "node/peer/peer.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <set>

#include "caller.hpp"
#include "nat/stun.hpp"
#include "node/echo/echo_element.hpp"
#include "node/sip/validate.hpp"
#include "security/attach_proof.hpp"
#include "security/certificate.hpp"
#include "security/record_policy.hpp"
#include "security/sealed.hpp"
#include "sim/virtual_network.hpp"

namespace p2psip::peer {
namespace {

constexpr std::int64_t kNow = 1796000000;  // Unix seconds: the network's clock starts there
constexpr std::int64_t kYear = 365 * 86400;

class PeerNet {
 public:
  Duration latency = millis(5);
  Instant now = Instant(seconds(kNow));

  /// One face of a peer (or a phone): what it sends goes on the network from its address.
  class Face : public Environment {
   public:
    Face(PeerNet& net, Endpoint self, std::uint64_t seed) : net_(net), self_(self), rng_(seed) {}
    bool send(const Endpoint& to, std::string_view bytes) override {
      net_.send(self_, to, std::string(bytes));
      return true;
    }
    std::uint64_t random() override { return rng_(); }
    std::uint64_t secure_random() override { return rng_(); }
    const Endpoint& address() const { return self_; }

   private:
    PeerNet& net_;
    Endpoint self_;
    std::mt19937_64 rng_;
  };

  /// An ICE agent for peer `node`: sessions pair up by the credentials each side was given, and a
  /// pair connects (host to host: the point is the link logic, not the NATs) one round trip after
  /// both sides know each other; datagrams then go between the two sessions, past every NAT.
  class FakeIce : public nat::IcePort {
   public:
    FakeIce(PeerNet& net, std::size_t node) : net_(net), node_(node) {}
    bool open(nat::IceSessionId id, bool) override {
      Session& s = sessions_[id];
      s.ufrag = "n" + std::to_string(node_) + "s" + std::to_string(id);
      net_.ice_sessions[s.ufrag] = {node_, id};
      const Endpoint host{Transport::Udp, *IpAddress::parse("127.0.9." + std::to_string(node_ + 1)),
                          static_cast<std::uint16_t>(10000 + id)};
      net_.network_.at(net_.now + millis(1), [this, id, ufrag = s.ufrag, host] {
        Peer& p = *net_.nodes[node_].peer;
        p.ice_credentials(id, nat::IceCredentials{ufrag, "0123456789abcdefghijkl"}, net_.now);
        p.ice_candidate(id, nat::IceCandidate{"1", 1, 2130706431, host, nat::CandidateType::Host, std::nullopt},
                        net_.now);
        p.ice_gathering_done(id, net_.now);
      });
      ++opened;
      return true;
    }
    void remote(nat::IceSessionId id, const nat::IceDescription& d) override {
      auto it = sessions_.find(id);
      if (it == sessions_.end()) return;
      it->second.remote = d.credentials.ufrag;
      auto other = net_.ice_sessions.find(d.credentials.ufrag);
      if (other == net_.ice_sessions.end()) return;
      FakeIce& them = *net_.nodes[other->second.first].ice;
      auto t = them.sessions_.find(other->second.second);
      if (t == them.sessions_.end() || t->second.remote != it->second.ufrag) return;
      // Both know each other: the checks take a round trip.
      it->second.peer = other->second;
      t->second.peer = {node_, id};
      const auto a = std::make_pair(node_, id);
      const auto b = other->second;
      net_.network_.at(net_.now + 2 * net_.latency, [this, a, b] {
        for (const auto& [n, sid] : {a, b}) {
          if (net_.nodes[n].alive && net_.nodes[n].ice->sessions_.contains(sid)) {
            net_.nodes[n].peer->ice_connected(sid, nat::CandidateType::Host, nat::CandidateType::Host, net_.now);
          }
        }
      });
    }
    bool send(nat::IceSessionId id, std::string_view bytes) override {
      auto it = sessions_.find(id);
      if (it == sessions_.end() || !it->second.peer) return false;
      ++sent;
      const auto to = *it->second.peer;
      if (net_.ice_cut.contains({node_, to.first})) return true;  // lost on the way
      net_.network_.at(net_.now + net_.latency, [this, to, b = std::string(bytes)] {
        auto& n = net_.nodes[to.first];
        if (n.alive && n.ice->sessions_.contains(to.second)) n.peer->ice_datagram(to.second, b, net_.now);
      });
      return true;
    }
    void close(nat::IceSessionId id) override {
      auto it = sessions_.find(id);
      if (it == sessions_.end()) return;
      net_.ice_sessions.erase(it->second.ufrag);
      sessions_.erase(it);
    }
    void use_turn(const nat::TurnServer& t) override { turn = t; }
    std::optional<nat::TurnServer> turn;  ///< the TURN server given by use_turn
    /// This agent's session paired with one of `node`'s, if any.
    [[nodiscard]] std::optional<nat::IceSessionId> session_with(std::size_t node) const {
      for (const auto& [id, s] : sessions_) {
        if (s.peer && s.peer->first == node) return id;
      }
      return std::nullopt;
    }
    std::size_t opened = 0, sent = 0;

   private:
    struct Session {
      std::string ufrag, remote;
      std::optional<std::pair<std::size_t, nat::IceSessionId>> peer;
    };
    PeerNet& net_;
    std::size_t node_;
    std::map<nat::IceSessionId, Session> sessions_;
  };
  std::map<std::string, std::pair<std::size_t, nat::IceSessionId>> ice_sessions;  ///< by ufrag
  std::set<std::pair<std::size_t, std::size_t>> ice_cut;  ///< (from, to): datagrams over links lost

  struct Node {
    std::unique_ptr<Face> overlay_face, phone_face;
    std::unique_ptr<FakeIce> ice;
    std::unique_ptr<Peer> peer;
    bool alive = true;
  };
  std::vector<Node> nodes;
  /// Phones: what each receives, by address (SIP parsed, and every datagram raw).
  std::map<std::uint16_t, std::vector<sip::Message>> heard;
  std::map<std::uint16_t, std::vector<std::string>> heard_raw;
  /// A NAT in front of one peer's overlay address: what it sends to `to` leaves from map(to), and
  /// what comes back to an address it handed out goes in (no filtering: the mapping is the point).
  struct Nat {
    Nat(Endpoint in, std::function<Endpoint(const Endpoint& to)> m) : inside(in), map(std::move(m)) {}
    Endpoint inside;
    std::function<Endpoint(const Endpoint& to)> map;
    std::map<std::string, Endpoint> handed_out;  ///< outside host:port -> inside
    /// Port-restricted filtering (RFC 4787 §5): only what comes from where the inside sent goes in.
    bool filter = false;
    std::set<std::string> sent_to;
    std::size_t filtered = 0;
  };
  /// Peers made from now on get an ICE agent (FakeIce).
  bool with_ice = false;
  std::vector<Nat> nats;
  std::vector<std::unique_ptr<Face>> phones;
  std::map<std::uint16_t, std::unique_ptr<echo::EchoElement>> echoes;  ///< callees, by port

  static Endpoint overlay_addr(std::size_t i) {
    return Endpoint{Transport::Udp, *IpAddress::parse("127.0.6." + std::to_string(i + 1)), 5070};
  }
  static Endpoint phone_side_addr(std::size_t i) {
    return Endpoint{Transport::Udp, *IpAddress::parse("127.0.6." + std::to_string(i + 1)), 5060};
  }

  Peer& add(PeerConfig config, bool phones_side, std::optional<std::size_t> bootstrap) {
    std::vector<std::size_t> boot;
    if (bootstrap) boot.push_back(*bootstrap);
    return add_at(std::move(config), phones_side, boot);
  }
  /// Peer `i` (the next), started at the peers `bootstrap`, with a phone side when asked.
  Peer& add_at(PeerConfig config, bool phones_side, const std::vector<std::size_t>& bootstrap) {
    const std::size_t i = nodes.size();
    Node n;
    n.overlay_face = std::make_unique<Face>(*this, overlay_addr(i), 100 + i);
    config.address = overlay_addr(i);
    if (phones_side) {
      n.phone_face = std::make_unique<Face>(*this, phone_side_addr(i), 200 + i);
      proxy::UaSideConfig ua;
      ua.registrar.domain = config.overlay.overlay;
      ua.ua_address = phone_side_addr(i);
      config.phones = ua;
    }
    if (with_ice) {
      n.ice = std::make_unique<FakeIce>(*this, i);
      config.ice = n.ice.get();
    }
    n.peer = std::make_unique<Peer>(std::move(config), *n.overlay_face, n.phone_face.get());
    nodes.push_back(std::move(n));
    std::vector<Endpoint> boot;
    for (auto b : bootstrap) boot.push_back(overlay_addr(b));
    nodes.back().peer->start(boot, now);
    return *nodes.back().peer;
  }

  Face& phone(std::uint16_t port) {
    phones.push_back(
        std::make_unique<Face>(*this, Endpoint{Transport::Udp, *IpAddress::parse("127.0.7.1"), port}, 300 + port));
    return *phones.back();
  }
  /// A phone that answers calls (the sip-echo element: 180, then 200) at 127.0.7.1:`port`.
  echo::EchoElement& callee(std::uint16_t port) {
    Face& f = phone(port);
    echo::EchoConfig ec;
    ec.contact_host = "127.0.7.1";
    ec.contact_port = port;
    echoes[port] = std::make_unique<echo::EchoElement>(f, ec);
    return *echoes[port];
  }
  /// A caller at phone `port`, whose node is peer `node`.
  test::Caller caller(std::uint16_t port, std::size_t node, std::string call_id) {
    Face& f = phone(port);
    test::Caller c{[&f, node](const std::string& text) { f.send(phone_side_addr(node), text); }, f.address(),
                   &heard[port], std::move(call_id)};
    c.domain = "peer.test";
    return c;
  }
  /// Peer `i`, started at `bootstrap`, behind a NAT that maps it to `outside` for every destination
  /// (endpoint-independent mapping) and lets in whatever comes back to that address.
  Peer& add_behind_nat(PeerConfig config, bool phones_side, const std::vector<std::size_t>& bootstrap,
                       const Endpoint& outside) {
    nats.emplace_back(overlay_addr(nodes.size()), [outside](const Endpoint&) { return outside; });
    return add_at(std::move(config), phones_side, bootstrap);
  }

  void send(Endpoint from, Endpoint to, std::string bytes) {
    for (auto& nat : nats) {
      if (from.ip == nat.inside.ip && from.port == nat.inside.port) {
        const Endpoint outside = nat.map(to);
        nat.handed_out[outside.host_port()] = from;
        nat.sent_to.insert(to.host_port());
        from = outside;
      }
    }
    network_.at(now + latency, [this, from, to, b = std::move(bytes)]() mutable {
      for (auto& nat : nats) {
        // A NATed peer's own address is private: nothing from outside reaches it directly.
        if (to.ip == nat.inside.ip && to.port == nat.inside.port) return;
      }
      for (auto& nat : nats) {
        auto in = nat.handed_out.find(to.host_port());
        if (in == nat.handed_out.end()) continue;
        if (nat.filter && !nat.sent_to.contains(from.host_port())) {
          ++nat.filtered;
          return;
        }
        to = in->second;
      }
      for (auto& n : nodes) {
        if (!n.alive) continue;
        if (to.ip == n.overlay_face->address().ip && to.port == n.overlay_face->address().port) {
          n.peer->receive_datagram(peer::Face::Overlay, b, from, now);
        } else if (n.phone_face && to.ip == n.phone_face->address().ip && to.port == n.phone_face->address().port) {
          n.peer->receive_datagram(peer::Face::Phones, b, from, now);
        }
      }
      for (auto& p : phones) {
        if (to.ip == p->address().ip && to.port == p->address().port) {
          heard_raw[to.port].push_back(b);
          if (auto m = sip::parse_datagram(b)) heard[to.port].push_back(*m);
          if (auto e = echoes.find(to.port); e != echoes.end()) e->second->receive_datagram(b, from, now);
        }
      }
    });
  }

  void run_for(Duration d) {
    network_.run_for(
        now, d,
        [this] {
          Instant next = kInstantMax;
          for (auto& n : nodes) {
            if (n.alive) next = std::min(next, n.peer->next_wakeup());
          }
          for (auto& [port, e] : echoes) next = std::min(next, e->next_wakeup());
          return next;
        },
        [this](Instant t) {
          for (auto& n : nodes) {
            if (n.alive && n.peer->next_wakeup() <= t) n.peer->advance(t);
          }
          for (auto& [port, e] : echoes) {
            if (e->next_wakeup() <= t) e->advance(t);
          }
        });
  }

 private:
  sim::VirtualNetwork network_;
};

PeerConfig plain(const std::string& id_hex) {
  PeerConfig c;
  c.overlay.overlay = "peer.test";
  c.overlay.chord.stabilize_interval = seconds(2);
  c.id = *dht::NodeId::from_hex(id_hex);
  return c;
}

std::string request(const std::string& method, const Endpoint& from, const std::string& user, int cseq,
                    const std::string& extra) {
  return method + " sip:peer.test SIP/2.0\r\nVia: SIP/2.0/UDP " + from.host_port() + ";branch=z9hG4bK-" + user +
         std::to_string(cseq) + ";rport\r\nMax-Forwards: 70\r\nFrom: <sip:" + user +
         "@peer.test>;tag=1\r\nTo: <sip:" + user + "@peer.test>\r\nCall-ID: reg-" + user +
         "\r\nCSeq: " + std::to_string(cseq) + " " + method + "\r\n" + extra + "Content-Length: 0\r\n\r\n";
}

TEST(Peer, ARingOfPeersStoresAndFindsAndReportsItsStatus) {
  PeerNet net;
  const char* ids[] = {"20000000000000000000000000000000", "60000000000000000000000000000000",
                       "a0000000000000000000000000000000", "e0000000000000000000000000000000"};
  for (std::size_t i = 0; i < 4; ++i) {
    net.add(plain(ids[i]), false, i == 0 ? std::nullopt : std::optional<std::size_t>(0));
    net.run_for(seconds(1));
  }
  net.run_for(seconds(20));
  int stored = 0;
  net.nodes[1].peer->put(
      "k", "v", 600, [&](const dht::RouteResult& r) { stored += r.status == dht::Status::Ok; }, net.now);
  net.run_for(seconds(1));
  EXPECT_EQ(stored, 1);
  std::string value;
  net.nodes[3].peer->get(
      "k", [&](const dht::RouteResult& r) { value = r.records.empty() ? "" : r.records[0].value; }, net.now);
  net.run_for(seconds(1));
  EXPECT_EQ(value, "v");
  const PeerStatus s = net.nodes[2].peer->status(net.now);
  EXPECT_EQ(s.id.hex(), ids[2]);
  EXPECT_TRUE(s.joined);
  ASSERT_FALSE(s.successors.empty());
  EXPECT_EQ(s.successors.front().id.hex(), ids[3]);
  ASSERT_FALSE(s.predecessors.empty());
  EXPECT_EQ(s.predecessors.front().id.hex(), ids[1]);
  EXPECT_GT(s.messages.requests_sent, 0u);
  EXPECT_GE(s.uptime, seconds(20));
  EXPECT_FALSE(s.security);  // this peer has no identity
  EXPECT_FALSE(s.phones);
}

TEST(Peer, ShutdownWithdrawsThePhonesEntriesThenLeavesTheRing) {
  PeerNet net;
  net.add(plain("20000000000000000000000000000000"), false, std::nullopt);
  net.run_for(seconds(1));
  Peer& leaving = net.add(plain("a0000000000000000000000000000000"), true, 0);
  net.run_for(seconds(10));
  ASSERT_TRUE(leaving.chord().joined());
  // A phone registers alice at the peer's phone side: her entry goes into the overlay.
  auto& phone = net.phone(5090);
  phone.send(PeerNet::phone_side_addr(1),
             request("REGISTER", phone.address(), "alice", 1, "Contact: <sip:alice@127.0.7.1:5090>\r\n"));
  net.run_for(seconds(2));
  ASSERT_FALSE(net.heard[5090].empty());
  EXPECT_EQ(net.heard[5090].back().status(), 200);
  int found = -1;
  net.nodes[0].peer->locate(
      "sip:alice@peer.test", [&](const Location& l) { found = static_cast<int>(l.entries.size()); }, net.now);
  net.run_for(seconds(1));
  EXPECT_EQ(found, 1);
  const PeerStatus before = leaving.status(net.now);
  ASSERT_TRUE(before.phones);
  EXPECT_EQ(before.phones->users, 1u);
  EXPECT_EQ(before.phones->entries_in_overlay, 1u);

  // Shutdown: first the entry leaves the overlay, then the peer the ring; operations are refused.
  leaving.shutdown(net.now);
  EXPECT_TRUE(leaving.stopping());
  EXPECT_FALSE(leaving.stopped());
  int refused = 0;
  leaving.get(
      "k", [&](const dht::RouteResult& r) { refused = dht::code(r.status); }, net.now);
  EXPECT_EQ(refused, 503);
  net.run_for(seconds(5));
  EXPECT_TRUE(leaving.stopped());
  EXPECT_TRUE(leaving.chord().left());
  net.nodes[1].alive = false;
  found = -1;
  net.nodes[0].peer->locate(
      "sip:alice@peer.test", [&](const Location& l) { found = static_cast<int>(l.entries.size()); }, net.now);
  net.run_for(seconds(1));
  EXPECT_EQ(found, 0);  // the entry was removed before the peer left: callers hear 404, not silence
  EXPECT_TRUE(net.nodes[0].peer->chord().table().alone());  // and the ring knows it has gone
}

TEST(Peer, AShutdownWhoseLeaveIsNeverAnsweredStopsAtItsDeadline) {
  PeerNet net;
  net.add(plain("20000000000000000000000000000000"), false, std::nullopt);
  net.run_for(seconds(1));
  Peer& leaving = net.add(plain("a0000000000000000000000000000000"), false, 0);
  net.run_for(seconds(10));
  net.nodes[0].alive = false;  // its neighbour is gone: nobody answers the Leave
  leaving.shutdown(net.now);
  net.run_for(millis(2900));
  EXPECT_FALSE(leaving.stopped());
  net.run_for(millis(200));
  EXPECT_TRUE(leaving.stopped());  // 3 s after the leave began (no phones: the leave began at once)
}

/// A CA for the overlay "peer.test" and the identities of the peers it enrolls.
struct TestPki {
  static security::KeyPair key(std::uint8_t n) {
    security::Seed s{};
    s.fill(n);
    return security::KeyPair::from_seed(s);
  }
  security::Ed25519Provider crypto;
  security::KeyPair ca = key(1);
  security::Certificate root = *security::make_root(ca, "peer.test", 1, {kNow - kYear, kNow + kYear});
  /// The security of a peer whose key is made from seed byte `k` (its certificate's serial `serial`).
  PeerSecurity node(std::uint8_t k, std::uint64_t serial) {
    PeerSecurity sec;
    sec.crypto = &crypto;
    sec.self.key = key(k);
    sec.self.cert = *security::issue_node(ca, root, sec.self.key.public_key, serial, {kNow - 86400, kNow + kYear});
    sec.trust = security::TrustAnchor::ca(root);
    return sec;
  }
};

TEST(Peer, WithAnIdentityItsPlaceIsItsCertificatesAndItsPutsAreSigned) {
  TestPki pki;
  auto key = &TestPki::key;
  const security::KeyPair& ca = pki.ca;
  const security::Certificate& root = pki.root;
  PeerNet net;
  std::vector<dht::NodeId> ids;
  for (std::uint8_t i = 0; i < 3; ++i) {
    PeerConfig c = plain("00000000000000000000000000000001");  // ignored: the certificate decides
    PeerSecurity sec = pki.node(static_cast<std::uint8_t>(10 + i), 2 + i);
    ids.push_back(*sec.self.cert.info().node_id);
    c.security = sec;
    Peer& p = net.add(c, false, i == 0 ? std::nullopt : std::optional<std::size_t>(0));
    EXPECT_EQ(p.id(), ids.back());
    net.run_for(seconds(1));
  }
  net.run_for(seconds(10));
  dht::RouteResult put, got;
  net.nodes[1].peer->put(
      "signed-key", "signed value", 600, [&](const dht::RouteResult& r) { put = r; }, net.now);
  net.run_for(seconds(1));
  ASSERT_EQ(put.status, dht::Status::Ok) << put.reason;
  net.nodes[2].peer->get(
      "signed-key", [&](const dht::RouteResult& r) { got = r; }, net.now);
  net.run_for(seconds(1));
  ASSERT_EQ(got.status, dht::Status::Ok) << got.reason;
  ASSERT_EQ(got.records.size(), 1u);
  EXPECT_EQ(got.records[0].signer, net.nodes[1].peer->writer()->cert_der);
  EXPECT_EQ(got.records[0].signature.size(), 64u);
  const PeerStatus s = net.nodes[2].peer->status(net.now);
  ASSERT_TRUE(s.security);
  EXPECT_GT(s.security->messages.verified, 0u);  // every overlay message checked
  EXPECT_GT(s.security->records.signatures_checked, 0u);
  // A TLS link's certificate: another overlay's node is refused, ours proves its Node-ID.
  const security::KeyPair other_ca = key(2);
  const security::Certificate other_root = *security::make_root(other_ca, "peer.test", 1, {kNow - kYear, kNow + kYear});
  const security::KeyPair stranger = key(30);
  const auto foreign =
      *security::issue_node(other_ca, other_root, stranger.public_key, 9, {kNow - 86400, kNow + kYear});
  EXPECT_FALSE(net.nodes[0].peer->check_link(foreign.der(), PeerNet::overlay_addr(9), net.now));
  const security::KeyPair friend_key = key(31);
  const auto ours = *security::issue_node(ca, root, friend_key.public_key, 10, {kNow - 86400, kNow + kYear});
  auto link = net.nodes[0].peer->check_link(ours.der(), PeerNet::overlay_addr(9), net.now);
  ASSERT_TRUE(link);
  EXPECT_EQ(dht::NodeId::from_link_identity(*link), *ours.info().node_id);
}

TEST(Peer, NodesWithoutATurnServerFindOneTheOverlayAnnouncesWithCredentialsOnlyTheyCanRead) {
  // RFC 6940 §9: a public peer announces a TURN server in the DHT; the others find it with a Find
  // to a random key and ask it for credentials (coturn's REST API), sealed for each asker.
  TestPki pki;
  PeerNet net;
  net.with_ice = true;
  const Endpoint turn_server{Transport::Udp, *IpAddress::parse("198.51.100.3"), 3478};
  std::vector<dht::NodeId> ids;
  for (std::uint8_t i = 0; i < 5; ++i) {
    PeerConfig c = plain("00000000000000000000000000000001");
    PeerSecurity sec = pki.node(static_cast<std::uint8_t>(40 + i), 2 + i);
    ids.push_back(*sec.self.cert.info().node_id);
    c.security = sec;
    TurnServiceConfig t;
    if (i == 0) {
      t.announce = nat::TurnServer{turn_server, "", "", false};
      t.publish = true;
      t.use_announced = true;  // its own agent takes credentials from the secret too
      t.secret = "north";
      t.density = 3;
      t.max_requests_per_minute = 3;  // four askers: the last is refused and comes back later
    } else {
      t.discover = true;
    }
    c.turn_service = t;
    net.add(c, false, i == 0 ? std::nullopt : std::optional<std::size_t>(0));
    net.run_for(seconds(1));
  }
  net.run_for(seconds(20));
  const TurnServiceStatus announcer = *net.nodes[0].peer->status(net.now).nat.turn_service;
  EXPECT_TRUE(announcer.announcing);
  EXPECT_EQ(announcer.announced, "198.51.100.3:3478");
  EXPECT_EQ(announcer.entries_stored, 3u);
  EXPECT_EQ(announcer.credentials_given, 3u);
  EXPECT_EQ(announcer.requests_refused, 1u);  // over the rate: 503, Retry-After
  net.run_for(seconds(120));
  EXPECT_EQ(net.nodes[0].peer->status(net.now).nat.turn_service->credentials_given, 4u);
  EXPECT_EQ(net.nodes[0].peer->status(net.now).nat.turn_service->finds, 0u);  // it has one: it looks for none
  for (std::size_t i = 0; i < 5; ++i) {
    const auto& turn = net.nodes[i].ice->turn;
    ASSERT_TRUE(turn) << "node " << i;
    EXPECT_EQ(turn->server, turn_server);
    EXPECT_FALSE(turn->tcp);
    // "EXPIRY:NODE-ID", and the password the TURN server computes from the secret it shares.
    const auto colon = turn->user.find(':');
    ASSERT_NE(colon, std::string::npos) << turn->user;
    const std::int64_t expiry = std::stoll(turn->user.substr(0, colon));
    EXPECT_GT(expiry, unix_seconds(wall_from_unix_us(net.now.time_since_epoch().count())) + 3000);
    EXPECT_EQ(turn->user.substr(colon + 1), ids[i].hex());
    EXPECT_EQ(turn->password, security::turn_rest_password("north", turn->user));
    if (i == 0) continue;
    const TurnServiceStatus st = *net.nodes[i].peer->status(net.now).nat.turn_service;
    EXPECT_EQ(st.using_server, "198.51.100.3:3478");
    EXPECT_EQ(st.from_peer, ids[0].hex());
    EXPECT_FALSE(st.announcing);
  }
  // Node 1 may not write node 0's entries (NODE-MULTIPLE), nor announce through a 21st.
  dht::Record forged;
  forged.name = security::turn_service_name(ids[0], 1);
  forged.key = dht::NodeId::hash(forged.name);
  forged.value = "server=203.0.113.66:3478;transport=udp;peer=203.0.113.66:5070";
  forged.owner = ids[1].hex();
  forged.lifetime_s = 600;
  dht::RouteResult stored;
  net.nodes[1].peer->store(
      forged, [&](const dht::RouteResult& r) { stored = r; }, net.now);
  net.run_for(seconds(1));
  EXPECT_EQ(stored.status, dht::Status::Forbidden) << stored.reason;
  // A peer that announces nothing answers 404; the announcing one refuses a request without a key.
  dht::RouteResult none, bad;
  net.nodes[1].peer->chord().ask_turn(
      dht::Peer{ids[2], PeerNet::overlay_addr(2)}, "key=AAAA", [&](const dht::RouteResult& r) { none = r; }, net.now);
  net.nodes[1].peer->chord().ask_turn(
      dht::Peer{ids[0], PeerNet::overlay_addr(0)}, "nokey=1", [&](const dht::RouteResult& r) { bad = r; }, net.now);
  net.run_for(seconds(1));
  EXPECT_EQ(none.status, dht::Status::NotFound);
  EXPECT_EQ(none.reason, "No TURN Service Here");
  EXPECT_EQ(bad.status, dht::Status::BadRequest);
  EXPECT_EQ(bad.reason, "Bad TURN Request: No Sealing Key");
}

TEST(Peer, AnswersStunBindingRequestsOnBothFacesAndDropsBadStun) {
  PeerNet net;
  Peer& p = net.add(plain("20000000000000000000000000000000"), true, std::nullopt);
  auto& phone = net.phone(5091);
  // RFC 5626 keep-alive from a phone, on the phone face: answered with the phone's address.
  const nat::StunTransactionId id{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  phone.send(PeerNet::phone_side_addr(0),
             nat::StunBuilder(nat::StunClass::Request, nat::method::Binding, id).add_fingerprint().bytes());
  // The same on the overlay face.
  phone.send(PeerNet::overlay_addr(0), nat::StunBuilder(nat::StunClass::Request, nat::method::Binding, id).bytes());
  // A STUN message whose fingerprint is wrong, and a TURN Allocate: neither is answered, and
  // neither reaches the SIP parser (which would answer 400).
  std::string bad = nat::StunBuilder(nat::StunClass::Request, nat::method::Binding, id).add_fingerprint().bytes();
  bad.back() = static_cast<char>(bad.back() ^ 1);
  phone.send(PeerNet::overlay_addr(0), bad);
  phone.send(PeerNet::overlay_addr(0), nat::StunBuilder(nat::StunClass::Request, nat::method::Allocate, id).bytes());
  net.run_for(seconds(1));
  ASSERT_EQ(net.heard_raw[5091].size(), 2u);
  for (const auto& answer : net.heard_raw[5091]) {
    auto a = nat::decode_stun(answer);
    ASSERT_TRUE(a);
    EXPECT_EQ(a->cls, nat::StunClass::Success);
    EXPECT_EQ(a->id, id);
    EXPECT_EQ(a->mapped_address(), phone.address());
  }
  EXPECT_TRUE(net.heard[5091].empty());  // no SIP answer to any of it
  const PeerStatus s = p.status(net.now);
  EXPECT_EQ(s.nat.bindings_answered, 2u);
  EXPECT_EQ(s.nat.dropped, 2u);
  EXPECT_FALSE(s.nat.checked);  // this peer was not asked to classify itself
  EXPECT_EQ(s.messages.requests_received, 0u);
}

TEST(Peer, ClassifiesItselfFromWhereItsPeersSeeIt) {
  PeerNet net;
  const char* ids[] = {"20000000000000000000000000000000", "60000000000000000000000000000000",
                       "a0000000000000000000000000000000", "e0000000000000000000000000000000"};
  // Peer 2 is behind an endpoint-independent NAT (one outside address for every destination),
  // peer 3 behind a symmetric one (a new outside port per destination).
  net.nats.emplace_back(PeerNet::overlay_addr(2), [](const Endpoint&) {
    return Endpoint{Transport::Udp, *IpAddress::parse("203.0.113.2"), 7000};
  });
  std::uint16_t next_port = 40000;
  std::map<std::string, std::uint16_t> per_destination;
  net.nats.emplace_back(PeerNet::overlay_addr(3), [&](const Endpoint& to) {
    auto [it, fresh] = per_destination.try_emplace(to.host_port(), next_port);
    if (fresh) ++next_port;
    return Endpoint{Transport::Udp, *IpAddress::parse("203.0.113.3"), it->second};
  });
  for (std::size_t i = 0; i < 4; ++i) {
    PeerConfig c = plain(ids[i]);
    c.reachability = nat::ReachabilityConfig{};
    net.add(c, false, i == 0 ? std::nullopt : std::optional<std::size_t>(0));
    net.run_for(seconds(1));
  }
  net.run_for(seconds(60));
  auto status = [&](std::size_t i) { return net.nodes[i].peer->status(net.now).nat; };
  EXPECT_EQ(status(1).reach.nat_class, nat::NatClass::Public);
  EXPECT_EQ(status(1).reach.reflexive, PeerNet::overlay_addr(1));
  EXPECT_EQ(status(2).reach.nat_class, nat::NatClass::Cone);
  EXPECT_EQ(status(2).reach.reflexive->host_port(), "203.0.113.2:7000");
  EXPECT_EQ(status(3).reach.nat_class, nat::NatClass::Symmetric);
  EXPECT_EQ(status(3).reach.reflexive->ip, *IpAddress::parse("203.0.113.3"));
  // The NATed peers' verdicts rest on two peers at different addresses that saw them; a peer
  // seen at its own address needs one (no NAT keeps an address and port unchanged).
  for (std::size_t i = 2; i < 4; ++i) {
    const auto st = status(i);
    EXPECT_TRUE(st.checked);
    ASSERT_EQ(st.reach.observations.size(), 2u) << i;
    EXPECT_NE(st.reach.observations[0].peer.ip, st.reach.observations[1].peer.ip);
    EXPECT_TRUE(st.reach.observations[0].mapped && st.reach.observations[1].mapped);
  }
  // Each peer answered others' Binding requests on its overlay address.
  std::uint64_t answered = 0;
  for (std::size_t i = 0; i < 4; ++i) answered += status(i).bindings_answered;
  EXPECT_GE(answered, 6u);
}

/// Three public peers that relay (0, 1, 2) and, started with Auto at peers 0 and 1, peer 3 behind a
/// NAT (it asks them where they see it, and becomes their client); `phones`: every one has a phone
/// side. Returns peer 3, just started.
const char* const kNatIds[] = {"20000000000000000000000000000000", "60000000000000000000000000000000",
                               "a0000000000000000000000000000000", "e0000000000000000000000000000000"};
Peer& three_relays_and_a_client(PeerNet& net, bool phones) {
  for (std::size_t i = 0; i < 3; ++i) {
    PeerConfig c = plain(kNatIds[i]);
    c.relay = nat::RelayConfig{};
    net.add(c, phones, i == 0 ? std::nullopt : std::optional<std::size_t>(0));
    net.run_for(seconds(1));
  }
  net.run_for(seconds(10));
  PeerConfig c = plain(kNatIds[3]);
  c.role = Role::Auto;
  return net.add_behind_nat(c, phones, {0, 1}, Endpoint{Transport::Udp, *IpAddress::parse("203.0.113.3"), 7000});
}

// Peers behind cone NATs that filter by port (RFC 4787 §5: nothing gets in that does not answer
// what went out) join the ring when they have ICE links: named by their reflexive addresses,
// marked "attach", and reached over links that Attaches set up (the joiner's through its bootstrap
// peer, others' carried by the ring to a neighbour of the target).
TEST(Peer, WithIdentitiesEveryAttachIsProvedByItsOriginAndAForgedOneIsRefused) {
  // security/attach_proof.hpp: the origin signs its description for its target, the target its
  // answer; a peer on the path cannot put its candidates under another node's DHT-Origin.
  TestPki pki;
  PeerNet net;
  net.with_ice = true;
  std::vector<dht::NodeId> ids;
  std::vector<security::KeyPair> keys;
  for (std::size_t k = 0; k < 4; ++k) {
    PeerConfig c = plain("00000000000000000000000000000001");
    PeerSecurity sec = pki.node(static_cast<std::uint8_t>(60 + k), 2 + k);
    ids.push_back(*sec.self.cert.info().node_id);
    keys.push_back(sec.self.key);
    c.security = sec;
    if (k < 2) {
      c.relay = nat::RelayConfig{};
      net.add(c, false, k == 0 ? std::nullopt : std::optional<std::size_t>(0));
    } else {
      c.role = Role::Auto;
      const Endpoint outside{Transport::Udp, *IpAddress::parse("203.0.113." + std::to_string(10 + k)), 7000};
      net.add_behind_nat(c, false, {0, 1}, outside);
      net.nats.back().filter = true;
    }
    net.run_for(seconds(3));
  }
  net.run_for(seconds(40));
  // Both NATed peers joined over links their proven Attaches set up.
  for (std::size_t k = 2; k < 4; ++k) {
    const PeerStatus st = net.nodes[k].peer->status(net.now);
    ASSERT_TRUE(st.joined) << k;
    EXPECT_EQ(st.nat.reached, "attach");
    EXPECT_GT(st.nat.ice_stats.up_direct, 0u) << k;
    EXPECT_EQ(st.nat.ice_stats.failed_attach, 0u) << k;
  }
  // Node 1 routes an Attach for node 3 with node 2's DHT-Origin... it cannot: the origin is its
  // own. What a path peer can do is sign candidates with its own key for another's description, or
  // send one unsigned: both are refused by the target, 403.
  const std::string desc =
      "a=ice-ufrag:evil\r\na=ice-pwd:0123456789abcdefghijkl\r\n"
      "a=candidate:1 1 UDP 2130706431 198.51.100.66 40000 typ host\r\n";
  const std::int64_t t = unix_us(wall_from_unix_us(net.now.time_since_epoch().count()));
  dht::RouteResult forged, unsigned_one;
  net.nodes[1].peer->chord().attach(
      ids[3], security::prove_attach(pki.crypto, keys[0], security::AttachRole::Offer, ids[1], ids[3], t, desc),
      [&](const dht::RouteResult& r) { forged = r; }, net.now);
  net.nodes[1].peer->chord().attach(
      ids[3], desc, [&](const dht::RouteResult& r) { unsigned_one = r; }, net.now);
  net.run_for(seconds(3));
  EXPECT_EQ(forged.status, dht::Status::Forbidden);
  EXPECT_EQ(forged.reason, "Forbidden (Attach Signed By Another Node Than " + ids[1].short_hex() + ")");
  EXPECT_EQ(unsigned_one.status, dht::Status::Forbidden);
  EXPECT_EQ(unsigned_one.reason, "Forbidden (Attach Not Signed By Its Sender)");
  // Properly signed by node 1 itself, it is taken and answered with node 3's own proof.
  dht::RouteResult proven;
  const std::string offer =
      security::prove_attach(pki.crypto, keys[1], security::AttachRole::Offer, ids[1], ids[3], t, desc);
  net.nodes[1].peer->chord().attach(
      ids[3], offer, [&](const dht::RouteResult& r) { proven = r; }, net.now);
  net.run_for(seconds(3));
  ASSERT_EQ(proven.status, dht::Status::Ok) << proven.reason;
  EXPECT_FALSE(security::check_attach(pki.crypto, security::AttachRole::Answer, ids[3], ids[1], t, 30000000,
                                      proven.payload, security::attach_proof_line(offer)));
}

TEST(Peer, PeersBehindConeNatsJoinTheRingOverIceLinksAndEveryPeerReadsEveryOnesRecords) {
  PeerNet net;
  net.with_ice = true;
  const char* const ids[] = {"10000000000000000000000000000000", "50000000000000000000000000000000",
                             "30000000000000000000000000000000", "70000000000000000000000000000000",
                             "b0000000000000000000000000000000", "d0000000000000000000000000000000"};
  for (std::size_t k = 0; k < 2; ++k) {
    PeerConfig c = plain(ids[k]);
    c.relay = nat::RelayConfig{};
    net.add(c, false, k == 0 ? std::nullopt : std::optional<std::size_t>(0));
    net.run_for(seconds(3));
  }
  for (std::size_t k = 2; k < 6; ++k) {
    PeerConfig c = plain(ids[k]);
    c.role = Role::Auto;
    const Endpoint outside{Transport::Udp, *IpAddress::parse("203.0.113." + std::to_string(10 + k)), 7000};
    net.add_behind_nat(c, k == 2, {0, 1}, outside);
    net.nats.back().filter = true;
    net.run_for(seconds(3));
  }
  net.run_for(seconds(40));

  // Every peer is in one ring, in Node-ID order; the NATed ones by their reflexive addresses.
  std::vector<std::size_t> order = {0, 2, 1, 3, 4, 5};
  for (std::size_t k = 0; k < order.size(); ++k) {
    Peer& p = *net.nodes[order[k]].peer;
    const PeerStatus st = p.status(net.now);
    ASSERT_TRUE(st.joined) << ids[order[k]];
    EXPECT_EQ(st.nat.role, "peer");
    ASSERT_FALSE(st.successors.empty());
    EXPECT_EQ(st.successors[0].id.hex(), ids[order[(k + 1) % order.size()]]) << "successor of " << ids[order[k]];
    ASSERT_FALSE(st.predecessors.empty());
    EXPECT_EQ(st.predecessors[0].id.hex(), ids[order[(k + order.size() - 1) % order.size()]]);
    if (order[k] >= 2) {
      EXPECT_EQ(st.nat.reached, "attach");
      EXPECT_EQ(p.chord().table().self().addr.host_port(), "203.0.113." + std::to_string(10 + order[k]) + ":7000");
      EXPECT_TRUE(p.chord().table().self().attach);
    }
    for (const auto& l : st.nat.links) {
      // A NATed peer is reached over a link; a public one directly, or over a link one side made.
      if (l.peer.attach) {
        EXPECT_EQ(l.how, "ice-direct") << ids[order[k]] << " to " << l.peer.id.hex();
      }
    }
  }
  // The NATed peer with phones keeps two flows to the relay peers for them (calls between nodes go
  // over TLS, which no link carries): its phones' entries name the relays.
  const PeerStatus with_phones = net.nodes[2].peer->status(net.now);
  ASSERT_EQ(with_phones.nat.flows.size(), 2u);
  for (const auto& f : with_phones.nat.flows) EXPECT_EQ(f.state, nat::FlowState::Active) << f.reg_id;
  EXPECT_EQ(with_phones.nat.reached_via.size(), 2u);
  EXPECT_TRUE(net.nodes[2].peer->chord().gateways().empty()) << "its own operations take the ring";
  EXPECT_FALSE(net.nodes[3].peer->flows()) << "no phones, no flows";

  // Links carried all the traffic for the NATed peers (their NATs filtered nothing), and the NATs
  // do filter: a datagram from an address that the NATed one never sent to is dropped.
  for (auto& nat : net.nats) {
    EXPECT_EQ(nat.filtered, 0u);
    net.send(PeerNet::overlay_addr(40), nat.map(PeerNet::overlay_addr(40)), "OPTIONS sip:x SIP/2.0\r\n\r\n");
  }
  net.run_for(millis(100));
  for (const auto& nat : net.nats) EXPECT_EQ(nat.filtered, 1u);
  std::size_t over_links = 0;
  for (const auto& n : net.nodes) over_links += n.ice->sent;
  EXPECT_GT(over_links, 100u);

  // Each peer stores a record; each reads every other's.
  for (std::size_t i = 0; i < 6; ++i) {
    dht::RouteResult put;
    net.nodes[i].peer->put(
        "key-" + std::to_string(i), "v" + std::to_string(i), 600, [&](const dht::RouteResult& r) { put = r; }, net.now);
    net.run_for(seconds(2));
    ASSERT_EQ(put.status, dht::Status::Ok) << i << ": " << put.reason;
  }
  for (std::size_t i = 0; i < 6; ++i) {
    for (std::size_t j = 0; j < 6; ++j) {
      dht::RouteResult got;
      net.nodes[i].peer->get(
          "key-" + std::to_string(j), [&](const dht::RouteResult& r) { got = r; }, net.now);
      net.run_for(seconds(2));
      ASSERT_EQ(got.records.size(), 1u) << i << " reads " << j << ": " << got.reason;
      EXPECT_EQ(got.records[0].value, "v" + std::to_string(j));
    }
  }

  // A NATed peer dies: its neighbours find each other (linking first), the ring closes around it,
  // and its records are read from their replicas.
  net.nodes[3].alive = false;
  net.run_for(seconds(40));
  order = {0, 2, 1, 4, 5};
  for (std::size_t k = 0; k < order.size(); ++k) {
    const PeerStatus st = net.nodes[order[k]].peer->status(net.now);
    ASSERT_FALSE(st.successors.empty());
    EXPECT_EQ(st.successors[0].id.hex(), ids[order[(k + 1) % order.size()]]) << "successor of " << ids[order[k]];
  }
  for (std::size_t i : {std::size_t{0}, std::size_t{4}}) {
    for (std::size_t j = 0; j < 6; ++j) {
      dht::RouteResult got;
      net.nodes[i].peer->get(
          "key-" + std::to_string(j), [&](const dht::RouteResult& r) { got = r; }, net.now);
      net.run_for(seconds(12));
      ASSERT_EQ(got.records.size(), 1u) << i << " reads " << j << " after the death: " << got.reason;
    }
  }
}

TEST(Peer, APeerBehindANatWhosePublicNeighbourClosedTheirLinkReachesItAgain) {
  // Found by the simulator (a full-cone peer kept its public successor's link for the whole run):
  // the public peer wrote the NATed one off and closed its side of their link; the NATed peer kept
  // its side up and sent everything for the public peer over it, lost there, for ever. Once the
  // public peer does not answer, the NATed peer closes its side too and sends to its address.
  PeerNet net;
  net.with_ice = true;
  const char* const ids[] = {"10000000000000000000000000000000", "50000000000000000000000000000000",
                             "30000000000000000000000000000000"};
  for (std::size_t k = 0; k < 2; ++k) {
    net.add(plain(ids[k]), false, k == 0 ? std::nullopt : std::optional<std::size_t>(0));
    net.run_for(seconds(3));
  }
  PeerConfig c = plain(ids[2]);
  c.role = Role::Auto;
  net.add_behind_nat(c, false, {0, 1}, Endpoint{Transport::Udp, *IpAddress::parse("203.0.113.20"), 7000});
  net.nats.back().filter = true;
  net.run_for(seconds(30));
  auto successor = [&](std::size_t i) { return net.nodes[i].peer->status(net.now).successors.at(0).id.hex(); };
  ASSERT_EQ(successor(2), ids[1]);
  ASSERT_EQ(successor(0), ids[2]);
  ASSERT_TRUE(net.nodes[1].ice->session_with(2)) << "the public peer answered the NATed one's Attach";
  // What the public peer sends over the link is lost until it writes the NATed peer off and closes
  // its side; then the link carries nothing either way.
  net.ice_cut.insert({1, 2});
  for (int i = 0; i < 60 && net.nodes[1].ice->session_with(2); ++i) net.run_for(seconds(1));
  ASSERT_FALSE(net.nodes[1].ice->session_with(2)) << "the public peer kept its side";
  net.ice_cut.clear();
  // Before, the NATed peer held its side until the public one happened to attach to it again (13 s
  // here, the whole run in the simulator, where that Attach found no way to it).
  net.run_for(seconds(10));
  EXPECT_FALSE(net.nodes[2].ice->session_with(1) && !net.nodes[1].ice->session_with(2))
      << "the NATed peer still holds a link that the public peer closed";
  net.run_for(seconds(30));
  EXPECT_EQ(successor(2), ids[1]);
  EXPECT_EQ(successor(0), ids[2]);
  EXPECT_EQ(net.nodes[1].peer->status(net.now).predecessors.at(0).id.hex(), ids[2]);
  dht::RouteResult put;
  net.nodes[2].peer->put(
      "k", "v", 600, [&](const dht::RouteResult& r) { put = r; }, net.now);
  net.run_for(seconds(5));
  EXPECT_EQ(put.status, dht::Status::Ok) << put.reason;
}

TEST(Peer, AClientBehindANatStoresAndFetchesThroughItsRelayPeersAndJoinsNoRing) {
  PeerNet net;
  const auto& ids = kNatIds;
  Peer& client = three_relays_and_a_client(net, false);
  EXPECT_EQ(client.status(net.now).nat.role, "deciding");
  net.run_for(seconds(5));
  PeerStatus st = client.status(net.now);
  EXPECT_EQ(st.nat.role, "client");
  EXPECT_EQ(st.nat.reach.nat_class, nat::NatClass::Cone);
  ASSERT_EQ(st.nat.flows.size(), 2u);
  for (const auto& f : st.nat.flows) {
    EXPECT_EQ(f.state, nat::FlowState::Active) << f.reg_id;
    ASSERT_TRUE(f.mapped);
    EXPECT_EQ(f.mapped->host_port(), "203.0.113.3:7000");
    EXPECT_EQ(f.relay_uri.find("<sip:"), 0u);
  }
  EXPECT_NE(st.nat.flows[0].relay, st.nat.flows[1].relay);
  EXPECT_FALSE(client.chord().joined());

  // Its operations go through a relay: a put at the client is read at peer 2, and the reverse.
  dht::RouteResult put, got;
  client.put(
      "from-the-client", "v1", 600, [&](const dht::RouteResult& r) { put = r; }, net.now);
  net.run_for(seconds(1));
  ASSERT_EQ(put.status, dht::Status::Ok) << put.reason;
  net.nodes[2].peer->get(
      "from-the-client", [&](const dht::RouteResult& r) { got = r; }, net.now);
  net.run_for(seconds(1));
  ASSERT_EQ(got.records.size(), 1u);
  EXPECT_EQ(got.records[0].value, "v1");
  net.nodes[1].peer->put(
      "from-a-peer", "v2", 600, [](const dht::RouteResult&) {}, net.now);
  net.run_for(seconds(1));
  got = {};
  client.get(
      "from-a-peer", [&](const dht::RouteResult& r) { got = r; }, net.now);
  net.run_for(seconds(1));
  ASSERT_EQ(got.records.size(), 1u);
  EXPECT_EQ(got.records[0].value, "v2");

  // Nobody in the ring lists the client; the relays count it.
  net.run_for(seconds(20));
  std::size_t relayed = 0;
  for (std::size_t i = 0; i < 3; ++i) {
    for (const auto& p : net.nodes[i].peer->chord().table().known_peers()) {
      EXPECT_NE(p.id.hex(), ids[3]) << "peer " << i << " lists the client";
    }
    const auto r = net.nodes[i].peer->status(net.now).nat.relay;
    ASSERT_TRUE(r);
    relayed += r->clients;
  }
  EXPECT_EQ(relayed, 2u);  // two flows, at two relays

  // The first relay dies: the client's operations go through the other at once, and the failed
  // flow re-forms at the third peer after RFC 5626's back-off.
  const auto first = *client.status(net.now).nat.flows[0].relay;
  const std::size_t dead = first == PeerNet::overlay_addr(0) ? 0 : 1;
  net.nodes[dead].alive = false;
  got = {};
  client.get(
      "from-a-peer", [&](const dht::RouteResult& r) { got = r; }, net.now);
  net.run_for(seconds(40));
  EXPECT_EQ(got.records.size(), 1u) << got.reason;
  net.run_for(seconds(300));
  st = client.status(net.now);
  for (const auto& f : st.nat.flows) {
    EXPECT_EQ(f.state, nat::FlowState::Active) << f.reg_id;
    EXPECT_NE(*f.relay, PeerNet::overlay_addr(dead));
  }
}

/// A relay peer (kNatIds[0]) alone in the ring, then a node behind a NAT (kNatIds[3], --role auto)
/// whose bootstrap list names only that peer (`bootstrap`: its index, once or more).
Peer& one_relay_then_a_nated_node(PeerNet& net, const std::vector<std::size_t>& bootstrap) {
  PeerConfig first = plain(kNatIds[0]);
  first.relay = nat::RelayConfig{};
  net.add(first, false, std::nullopt);
  net.run_for(seconds(2));
  PeerConfig c = plain(kNatIds[3]);
  c.role = Role::Auto;
  return net.add_behind_nat(c, false, bootstrap, Endpoint{Transport::Udp, *IpAddress::parse("203.0.113.3"), 7000});
}

/// Two more relay peers join the ring (kNatIds[1], kNatIds[2]), through the first.
void two_more_relays(PeerNet& net) {
  for (std::size_t i = 1; i < 3; ++i) {
    PeerConfig p = plain(kNatIds[i]);
    p.relay = nat::RelayConfig{};
    net.add(p, false, std::optional<std::size_t>(0));
    net.run_for(seconds(1));
  }
}

TEST(Peer, AClientThatKnowsOneRelayFindsASecondThroughTheRing) {
  // Started when the ring was one peer (its only bootstrap), whose grant named no alternates: one
  // flow, and nobody to ask for the second (RFC 5626 §4.2: two flows to two peers). Lookups of
  // random keys through its relay bring back the peers responsible for them, and the second flow
  // goes to one of those; then the lookups stop.
  PeerNet net;
  // Its bootstrap list names that peer twice: one candidate all the same.
  Peer& client = one_relay_then_a_nated_node(net, {0, 0});
  net.run_for(seconds(45));
  PeerStatus st = client.status(net.now);
  ASSERT_EQ(st.nat.role, "client");
  ASSERT_EQ(st.nat.flows.size(), 2u);
  EXPECT_EQ(st.nat.flows[0].state, nat::FlowState::Active);
  EXPECT_EQ(st.nat.flows[1].state, nat::FlowState::Idle) << "no second peer to ask yet";
  two_more_relays(net);
  net.run_for(seconds(120));
  st = client.status(net.now);
  for (const auto& f : st.nat.flows) EXPECT_EQ(f.state, nat::FlowState::Active) << f.reg_id;
  EXPECT_NE(st.nat.flows[0].relay, st.nat.flows[1].relay);
  // With two relays it stops asking: nothing but keep-alives and refreshes leave it now.
  const auto answered = client.overlay().transactions().stats().responses_in;
  net.run_for(seconds(600));
  EXPECT_LE(client.overlay().transactions().stats().responses_in - answered, 4u);
}

TEST(Peer, ANodeThatCouldAskOnlyOnePeerWhereItStandsJoinsTheRingOnceTwoAnswer) {
  // The simulator's 65 early cone-NATed nodes of 10 000: started when the ring was one peer, a node
  // could ask only that one where it stands, could not tell a cone NAT from a symmetric one, and
  // became a client for good. Its checks go on with the peers it learns (its relay probe's answers,
  // its relays' alternates); once two at different addresses answer alike, it knows its NAT maps
  // endpoint-independently and joins the ring over ICE links.
  PeerNet net;
  net.with_ice = true;
  Peer& node = one_relay_then_a_nated_node(net, {0});
  net.nats.back().filter = true;
  net.run_for(seconds(10));
  PeerStatus st = node.status(net.now);
  ASSERT_EQ(st.nat.role, "client");
  ASSERT_EQ(st.nat.reach.nat_class, nat::NatClass::Unknown);
  two_more_relays(net);
  for (int i = 0; i < 300 && node.status(net.now).nat.role != "peer"; ++i) net.run_for(seconds(1));
  st = node.status(net.now);
  ASSERT_EQ(st.nat.role, "peer");
  EXPECT_EQ(st.nat.reach.nat_class, nat::NatClass::Cone);
  EXPECT_EQ(st.nat.reached, "attach");
  net.run_for(seconds(30));
  // One ring of four, in Node-ID order (node 1 is the NATed one, 0x60 and 0xa0 came after it); its
  // old relays hold no flow of it.
  const std::size_t order[] = {0, 2, 3, 1};
  for (std::size_t k = 0; k < 4; ++k) {
    const PeerStatus s = net.nodes[order[k]].peer->status(net.now);
    ASSERT_TRUE(s.joined) << kNatIds[k];
    ASSERT_FALSE(s.successors.empty());
    EXPECT_EQ(s.successors[0].id.hex(), kNatIds[(k + 1) % 4]) << "successor of " << kNatIds[k];
    if (order[k] != 1) {
      ASSERT_TRUE(s.nat.relay);
      EXPECT_EQ(s.nat.relay->clients, 0u) << "relay " << kNatIds[k];
    }
  }
  dht::RouteResult put;
  node.put(
      "promoted", "v", 600, [&](const dht::RouteResult& r) { put = r; }, net.now);
  net.run_for(seconds(3));
  EXPECT_EQ(put.status, dht::Status::Ok) << put.reason;
  dht::RouteResult got;
  net.nodes[2].peer->get(
      "promoted", [&](const dht::RouteResult& r) { got = r; }, net.now);
  net.run_for(seconds(3));
  ASSERT_EQ(got.records.size(), 1u) << got.reason;
}

TEST(Peer, APhoneAtAClientBehindANatIsCalledThroughItsRelayPeersAndTheDialogKeepsThatPath) {
  PeerNet net;
  Peer& client = three_relays_and_a_client(net, true);
  net.run_for(seconds(5));
  ASSERT_EQ(client.status(net.now).nat.role, "client");

  // Bob's phone registers at the client: his entry names the client's two relays.
  auto& bob = net.callee(5092);
  auto& bob_reg = net.phone(5093);
  bob_reg.send(PeerNet::phone_side_addr(3),
               request("REGISTER", bob_reg.address(), "bob", 1, "Contact: <sip:echo@127.0.7.1:5092>\r\n"));
  net.run_for(seconds(2));
  ASSERT_FALSE(net.heard[5093].empty());
  ASSERT_EQ(net.heard[5093].back().status(), 200);
  // The relays bob's entry names, as peer 2 finds it.
  const auto relays_of_bob = [&net] {
    std::vector<std::string> found;
    net.nodes[2].peer->locate(
        "sip:bob@peer.test",
        [&](const Location& l) {
          if (l.entries.size() == 1) found = l.entries[0].entry.via;
        },
        net.now);
    net.run_for(seconds(1));
    return found;
  };
  std::vector<std::string> via = relays_of_bob();
  ASSERT_EQ(via.size(), 2u);
  for (const auto& f : client.status(net.now).nat.flows) {
    EXPECT_NE(std::find(via.begin(), via.end(), f.relay_uri), via.end()) << f.relay_uri;
  }

  // Alice at peer 2 calls bob: the INVITE goes to the first relay, down its flow to the client, and
  // on to bob's phone; the dialog's route set names the flow, and ACK and BYE follow it.
  test::Caller call = net.caller(5091, 2, "relay-call-1");
  call.invite();
  net.run_for(seconds(2));
  EXPECT_EQ(call.statuses("INVITE"), (std::vector<int>{180, 200}));
  const sip::Message* ok = call.final_for("INVITE");
  ASSERT_TRUE(ok);
  std::vector<std::string> rr;
  ok->for_each(sip::HeaderId::RecordRoute, [&](std::string_view v) { rr.emplace_back(v); });
  EXPECT_NE(std::find(rr.begin(), rr.end(), via[0]), rr.end()) << "no Record-Route names the flow";
  call.learn(*ok);
  call.in_dialog("ACK", 1);
  net.run_for(seconds(1));
  EXPECT_EQ(bob.stats().acks, 1u);
  call.in_dialog("BYE", 2);
  net.run_for(seconds(1));
  EXPECT_EQ(call.statuses("BYE"), std::vector<int>{200});
  EXPECT_EQ(bob.stats().byes, 1u);
  std::uint64_t relayed = 0;
  for (std::size_t i = 0; i < 2; ++i) relayed += net.nodes[i].peer->status(net.now).nat.relay->calls_relayed;
  EXPECT_EQ(relayed, 2u);  // INVITE and BYE (the ACK goes statelessly)

  // A second call, hung up from bob's side: his BYE follows the route set from the client, up the
  // flow through the relay, to alice.
  test::Caller second = net.caller(5094, 2, "relay-call-2");
  second.invite();
  net.run_for(seconds(2));
  ASSERT_TRUE(second.final_for("INVITE"));
  ASSERT_EQ(second.final_for("INVITE")->status(), 200);
  second.learn(*second.final_for("INVITE"));
  second.in_dialog("ACK", 1);
  net.run_for(seconds(1));
  const sip::Message* invite_at_bob = nullptr;
  for (const auto& m : net.heard[5092]) {
    if (m.is_request() && m.method() == "INVITE" && m.header(sip::HeaderId::CallId) == "relay-call-2")
      invite_at_bob = &m;
  }
  ASSERT_TRUE(invite_at_bob);
  std::string routes;
  invite_at_bob->for_each(sip::HeaderId::RecordRoute, [&](std::string_view v) {
    routes += "Route: " + std::string(v) + "\r\n";  // the callee's route set: Record-Route in order
  });
  const std::string to_tag = [&] {
    auto to = sip::parse_name_address(second.final_for("INVITE")->header(sip::HeaderId::To).value_or(""));
    return std::string(to->params.get("tag").value_or(""));
  }();
  bob_reg.send(PeerNet::phone_side_addr(3),
               "BYE sip:alice@" + second.addr.host_port() +
                   " SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.7.1:5092;branch=z9hG4bKbye-from-bob\r\nMax-Forwards: 70\r\n" +
                   routes + "From: <sip:bob@peer.test>;tag=" + to_tag +
                   "\r\nTo: <sip:alice@peer.test>;tag=caller1\r\nCall-ID: relay-call-2\r\nCSeq: 1 BYE\r\n"
                   "Content-Length: 0\r\n\r\n");
  net.run_for(seconds(1));
  bool bye_at_alice = false;
  for (const auto& m : net.heard[5094]) bye_at_alice |= m.is_request() && m.method() == "BYE";
  EXPECT_TRUE(bye_at_alice) << "bob's BYE did not reach alice";

  // A phone at the first relay itself calls bob: the call goes down the flow from there, and so do
  // the ACK and BYE, which the relay's phone side and the flow's URI Record-Routed.
  const std::size_t dead = via[0].find(PeerNet::overlay_addr(0).host_port()) != std::string::npos ? 0 : 1;
  test::Caller local = net.caller(5096, dead, "relay-call-local");
  local.invite();
  net.run_for(seconds(2));
  EXPECT_EQ(local.statuses("INVITE"), (std::vector<int>{180, 200}));
  ASSERT_TRUE(local.final_for("INVITE"));
  local.learn(*local.final_for("INVITE"));
  EXPECT_EQ(local.route_set.front(), "<sip:" + PeerNet::phone_side_addr(dead).host_port() + ";lr>");
  local.in_dialog("ACK", 1);
  local.in_dialog("BYE", 2);
  net.run_for(seconds(1));
  EXPECT_EQ(local.statuses("BYE"), std::vector<int>{200});
  EXPECT_EQ(bob.stats().acks, 3u);
  EXPECT_EQ(bob.stats().byes, 2u);

  // The first relay dies: a call goes through the other relay, once the first has been silent for
  // 2 s; bob's entry then names the flow that replaced it.
  net.nodes[dead].alive = false;
  test::Caller third = net.caller(5095, 2, "relay-call-3");
  third.invite();
  net.run_for(seconds(20));  // the lookup, too, may first have to route around the dead peer
  ASSERT_TRUE(third.final_for("INVITE"));
  EXPECT_EQ(third.final_for("INVITE")->status(), 200);
  // Once the ring has closed around the dead peer, a call still goes to bob's first relay first
  // (his entry names it until his flow moves), and gives that relay up after 2 s of silence
  // (UaSideConfig::relay_silence), not the hop time-out of 5.5 s.
  test::Caller fourth = net.caller(5097, 2, "relay-call-4");
  const Instant asked = net.now;
  fourth.invite();
  while (!fourth.final_for("INVITE") && net.now - asked < seconds(20)) net.run_for(millis(50));
  ASSERT_TRUE(fourth.final_for("INVITE"));
  EXPECT_EQ(fourth.final_for("INVITE")->status(), 200);
  EXPECT_GE(net.now - asked, seconds(2));  // the dead relay was asked first
  EXPECT_LT(net.now - asked, millis(2500));
  net.run_for(seconds(300));  // RFC 5626 §4.5's back-off, then a new flow at peer 2
  via = relays_of_bob();
  ASSERT_EQ(via.size(), 2u);
  for (const auto& v : via) EXPECT_EQ(v.find(PeerNet::overlay_addr(dead).host_port()), std::string::npos) << v;
}

TEST(Peer, ARelayFullOfClientsRefusesTheNextWithRetryAfter) {
  PeerNet net;
  PeerConfig boot = plain("20000000000000000000000000000000");
  nat::RelayConfig small;
  small.max_clients = 1;
  boot.relay = small;
  net.add(boot, false, std::nullopt);
  net.run_for(seconds(1));
  std::vector<Peer*> clients;
  for (std::size_t i = 0; i < 2; ++i) {
    PeerConfig c = plain(i == 0 ? "60000000000000000000000000000000" : "a0000000000000000000000000000000");
    c.role = Role::Client;
    c.flows.flows = 1;
    clients.push_back(&net.add(c, false, 0));
    net.run_for(seconds(2));
  }
  EXPECT_EQ(clients[0]->status(net.now).nat.flows[0].state, nat::FlowState::Active);
  const auto refused = clients[1]->status(net.now);
  EXPECT_EQ(refused.nat.flows[0].state, nat::FlowState::Idle);  // nowhere else to go
  EXPECT_EQ(refused.nat.flow_stats.refusals, 1u);
  const auto relay = net.nodes[0].peer->status(net.now);
  ASSERT_TRUE(relay.nat.relay);
  EXPECT_EQ(relay.nat.relay->clients, 1u);
  EXPECT_EQ(relay.nat.relay->stats.refused_full, 1u);
  EXPECT_EQ(relay.messages.flows_refused, 1u);
  // Its operations fail cleanly meanwhile: 503, no relay.
  dht::RouteResult r;
  clients[1]->get(
      "k", [&](const dht::RouteResult& x) { r = x; }, net.now);
  EXPECT_EQ(r.status, dht::Status::Unavailable);
}

}  // namespace
}  // namespace p2psip::peer
