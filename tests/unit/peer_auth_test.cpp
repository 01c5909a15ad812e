// Authenticated overlay peers: signed messages with the sender's certificate carried or remembered,
// on a ring of real OverlayNodes exchanging SIP bytes on virtual time. Impostors (another node's
// Node-ID, a self-chosen Node-ID, a foreign root, an expired certificate, no signature, a replay,
// a tampered message) are refused with their SIP status and never reach a routing table.
#include "node/overlay/peer_auth.hpp"

#include <gtest/gtest.h>

#include <map>
#include <random>

#include "node/overlay/codec.hpp"
#include "overlay_harness.hpp"
#include "security/certificate.hpp"

namespace p2psip::overlay {
namespace {

using security::Certificate;
using security::KeyPair;

constexpr std::int64_t kNow = 1796000000;  // Unix seconds; the harness's wall time is its virtual time
constexpr std::int64_t kYear = 365 * 86400;

KeyPair key(std::uint8_t n) {
  security::Seed s{};
  s.fill(n);
  s[31] = 0x5a;
  return KeyPair::from_seed(s);
}

struct Pki {
  explicit Pki(std::uint8_t ca_seed = 1) : ca_key(key(ca_seed)) {}
  security::Ed25519Provider crypto;
  KeyPair ca_key;
  Certificate root = *security::make_root(ca_key, "p2psip.local", 1, {kNow - kYear, kNow + 10 * kYear});
  std::uint64_t serial = 2;

  struct Id {
    KeyPair key;
    Certificate cert;
    [[nodiscard]] dht::NodeId node_id() const { return *cert.info().node_id; }
  };
  Id node(std::uint8_t k, security::Validity v = {kNow - 86400, kNow + kYear}) {
    KeyPair kp = key(k);
    return Id{kp, *security::issue_node(ca_key, root, kp.public_key, serial++, v)};
  }
  std::shared_ptr<security::CertificateCache> cache(std::size_t capacity = 64) {
    return std::make_shared<security::CertificateCache>(security::TrustAnchor::ca(root), capacity);
  }
};

/// A ring of authenticated nodes and, beside it, a host that speaks to them by hand.
struct SignedNet {
  Pki pki;
  test::OverlayNet net;
  std::vector<Pki::Id> ids;
  std::vector<std::unique_ptr<PeerAuthenticator>> auths;

  explicit SignedNet(std::size_t n) {
    net.now = Instant(seconds(kNow));
    net.verbose = getenv("V") != nullptr;
    net.before_start = [this](std::size_t i, OverlayNode& node) {
      auths.push_back(
          std::make_unique<PeerAuthenticator>(ids[i].key, ids[i].cert, pki.cache(), pki.crypto, *net.hosts[i]));
      node.set_authenticator(auths.back().get());
    };
    for (std::size_t i = 0; i < n; ++i) {
      ids.push_back(pki.node(static_cast<std::uint8_t>(10 + i)));
      net.add(ids.back().node_id(), i == 0 ? std::nullopt : std::optional<std::size_t>(0));
      net.run_for(seconds(2));
    }
    net.run_for(seconds(90));
  }

  /// Everything `addr` hears, kept.
  std::vector<sip::Message>& listen(const Endpoint& addr) {
    auto& box = heard[addr.port];
    net.members.push_back(test::OverlayNet::Member{addr, [&box](std::string_view b, const Endpoint&, Instant) {
                                                     if (auto m = sip::parse_datagram(b)) box.push_back(*m);
                                                   }});
    return box;
  }
  std::map<std::uint16_t, std::vector<sip::Message>> heard;
};

const Endpoint kMallory = *parse_host_port("127.0.0.66:5066", Transport::Udp);

/// A ping from `claimed` (whose address is `from`) to node `to_index`, as bytes, signed by `signer`
/// (null: unsigned) the way `tamper` then changes.
std::string ping(SignedNet& s, const dht::NodeId& claimed, PeerAuthenticator* signer, std::size_t to_index, int n = 0,
                 Instant at = Instant{}) {
  dht::Request r;
  r.op = dht::Op::Ping;
  r.sender = dht::Peer{claimed, kMallory};
  r.target = s.ids[to_index].node_id();
  const std::string branch = "z9hG4bKmallory" + std::to_string(n);
  const std::string call_id = "m" + std::to_string(n);
  const std::string from_tag = "t" + std::to_string(n);
  RequestFraming f;
  f.overlay = "p2psip.local";
  f.branch = branch;
  f.call_id = call_id;
  f.from_tag = from_tag;
  sip::Message m = encode_request(r, f);
  if (signer != nullptr) signer->sign_request(m, nullptr, at == Instant{} ? s.net.now : at);
  return m.serialize();
}

/// Whether any node holds `id` anywhere in its routing table.
bool anyone_knows(const SignedNet& s, const dht::NodeId& id) {
  for (const auto& node : s.net.nodes) {
    const auto& t = node->chord().table();
    for (const auto& p : t.successors()) {
      if (p.id == id) return true;
    }
    for (const auto& p : t.predecessors()) {
      if (p.id == id) return true;
    }
    for (int f = 0; f < dht::RoutingTable::kFingers; ++f) {
      if (auto p = t.finger(f); p && p->id == id) return true;
    }
  }
  return false;
}

int final_status(const std::vector<sip::Message>& heard, std::string* reason = nullptr) {
  for (auto it = heard.rbegin(); it != heard.rend(); ++it) {
    if (it->status() >= 200) {
      if (reason) *reason = std::string(it->reason());
      return it->status();
    }
  }
  return 0;
}

TEST(PeerAuth, ASignedRingJoinsAndRoutesWithCertificatesSentOncePerPeer) {
  SignedNet s(8);
  EXPECT_EQ(s.net.ring_errors(), "");
  std::mt19937_64 rng(3);
  int ok = 0;
  for (int i = 0; i < 40; ++i) {
    dht::RouteResult out;
    s.net.nodes[rng() % 8]->chord().route(
        dht::RouteOp::Lookup, dht::NodeId{rng(), rng()}, std::nullopt, [&](const dht::RouteResult& r) { out = r; },
        s.net.now);
    s.net.run_for(seconds(1));
    ok += out.status == dht::Status::Ok ? 1 : 0;
  }
  EXPECT_EQ(ok, 40);
  std::uint64_t signed_messages = 0, sent = 0, refused = 0, unauthenticated = 0;
  for (std::size_t i = 0; i < 8; ++i) {
    signed_messages += s.auths[i]->stats().signed_messages;
    sent += s.auths[i]->stats().certificates_sent;
    refused += s.auths[i]->stats().refused;
    unauthenticated += s.net.nodes[i]->stats().unauthenticated;
  }
  EXPECT_EQ(refused, 0u);
  EXPECT_EQ(unauthenticated, 0u);
  // A certificate goes to each peer until it has answered once, not with every message.
  EXPECT_GT(signed_messages, 500u);
  EXPECT_LT(sent, signed_messages / 5);
}

TEST(PeerAuth, APeerPresentingAnotherNodesIdIsRefused) {
  SignedNet s(4);
  auto& heard = s.listen(kMallory);
  Pki::Id mallory = s.pki.node(99);
  PeerAuthenticator m_auth(mallory.key, mallory.cert, s.pki.cache(), s.pki.crypto, *s.net.hosts[0]);
  const dht::NodeId victim = s.ids[2].node_id();
  // Mallory signs with her own certificate a ping that claims the victim's Node-ID.
  s.net.nodes[0]->receive_datagram(ping(s, victim, &m_auth, 0, 1), kMallory, s.net.now);
  s.net.run_for(seconds(1));
  std::string reason;
  EXPECT_EQ(final_status(heard, &reason), 403);
  EXPECT_EQ(reason, "Forbidden (Node-ID " + victim.short_hex() + " Claimed, Certificate Is " +
                        mallory.node_id().short_hex() + "'s)");
  // She cannot borrow the victim's certificate either: her signature does not verify under its key.
  PeerAuthenticator borrowed(mallory.key, s.ids[2].cert, s.pki.cache(), s.pki.crypto, *s.net.hosts[0]);
  s.net.nodes[0]->receive_datagram(ping(s, victim, &borrowed, 0, 2), kMallory, s.net.now);
  s.net.run_for(seconds(1));
  EXPECT_EQ(final_status(heard, &reason), 438);
  EXPECT_NE(reason.find("Signature Does Not Verify"), std::string::npos) << reason;
  // A made-up Node-ID with her own certificate: refused the same way, and never in a table.
  const dht::NodeId made_up{0x1234, 0x5678};
  s.net.nodes[1]->receive_datagram(ping(s, made_up, &m_auth, 1, 3), kMallory, s.net.now);
  s.net.run_for(seconds(30));
  EXPECT_EQ(final_status(heard), 403);
  EXPECT_FALSE(anyone_knows(s, made_up));
  EXPECT_EQ(s.net.nodes[0]->stats().unauthenticated, 2u);
  // Honest, she is answered.
  s.net.nodes[1]->receive_datagram(ping(s, mallory.node_id(), &m_auth, 1, 4), kMallory, s.net.now);
  s.net.run_for(seconds(1));
  EXPECT_EQ(final_status(heard), 200);
}

TEST(PeerAuth, SelfChosenNodeIdsForeignRootsAndExpiredCertificatesAreRefused) {
  SignedNet s(3);
  auto& heard = s.listen(kMallory);
  auto refused_with = [&](const Pki::Id& who, int n) {
    PeerAuthenticator a(who.key, who.cert, s.pki.cache(), s.pki.crypto, *s.net.hosts[0]);
    s.net.nodes[0]->receive_datagram(ping(s, *who.cert.info().node_id, &a, 0, n), kMallory, s.net.now);
    s.net.run_for(seconds(1));
    std::string reason;
    const int status = final_status(heard, &reason);
    return std::to_string(status) + " " + reason;
  };
  // The CA wrote a Node-ID of the requester's choosing (not its key's digest).
  KeyPair k = key(70);
  const dht::NodeId chosen = dht::NodeId{s.ids[1].node_id().hi, s.ids[1].node_id().lo + 1};
  Pki::Id self_chosen{k, *security::issue_raw(s.pki.ca_key, &s.pki.root, k.public_key, "node",
                                              {"reload://" + chosen.hex() + "@p2psip.local/"}, false, 77,
                                              {kNow - 86400, kNow + kYear})};
  EXPECT_EQ(refused_with(self_chosen, 1), "437 Unsupported Credential (Node-ID does not match the certificate's key)");
  // Self-signed, in an overlay with a CA.
  KeyPair k2 = key(71);
  Pki::Id self_signed{k2, *security::self_signed_node(k2, "p2psip.local", 78, {kNow - 86400, kNow + kYear})};
  EXPECT_EQ(refused_with(self_signed, 3), "437 Unsupported Credential (certificate not issued by the overlay root)");
  // Issued by another overlay's root.
  Pki foreign(2);
  Pki::Id stranger = foreign.node(72);
  EXPECT_EQ(refused_with(stranger, 4), "437 Unsupported Credential (certificate not issued by the overlay root)");
  // Expired yesterday.
  Pki::Id expired = s.pki.node(73, {kNow - kYear, kNow - 86400});
  EXPECT_EQ(refused_with(expired, 5), "437 Unsupported Credential (certificate expired)");
  for (const auto* who : {&self_chosen, &self_signed, &stranger, &expired}) {
    EXPECT_FALSE(anyone_knows(s, *who->cert.info().node_id));
  }
}

TEST(PeerAuth, UnsignedStaleAndTamperedMessagesAreRefused) {
  SignedNet s(3);
  auto& heard = s.listen(kMallory);
  Pki::Id mallory = s.pki.node(99);
  PeerAuthenticator m_auth(mallory.key, mallory.cert, s.pki.cache(), s.pki.crypto, *s.net.hosts[0]);
  const dht::NodeId me = mallory.node_id();
  std::string reason;

  s.net.nodes[0]->receive_datagram(ping(s, me, nullptr, 0, 1), kMallory, s.net.now);
  s.net.run_for(seconds(1));
  EXPECT_EQ(final_status(heard, &reason), 428) << reason;

  // Signed a minute ago (a capture replayed after its transaction has gone).
  s.net.nodes[0]->receive_datagram(ping(s, me, &m_auth, 0, 2, s.net.now - seconds(60)), kMallory, s.net.now);
  s.net.run_for(seconds(1));
  EXPECT_EQ(final_status(heard, &reason), 403);
  EXPECT_NE(reason.find("Stale Date"), std::string::npos) << reason;

  // One header changed after signing.
  std::string bytes = ping(s, me, &m_auth, 0, 3);
  const auto at = bytes.find("Call-ID: m3");
  ASSERT_NE(at, std::string::npos);
  bytes.replace(at, 11, "Call-ID: m9");
  s.net.nodes[0]->receive_datagram(bytes, kMallory, s.net.now);
  s.net.run_for(seconds(1));
  EXPECT_EQ(final_status(heard, &reason), 438);

  // A signature field that is not one.
  bytes = ping(s, me, nullptr, 0, 4);
  bytes.insert(bytes.find("Content-Length"), "DHT-Signature: ed25519;t=1;sig=!!\r\n");
  s.net.nodes[0]->receive_datagram(bytes, kMallory, s.net.now);
  s.net.run_for(seconds(1));
  EXPECT_EQ(final_status(heard, &reason), 438);
  EXPECT_EQ(reason, "Invalid Identity Header (Malformed DHT-Signature)");
  EXPECT_FALSE(anyone_knows(s, me));
}

TEST(PeerAuth, APeerThatForgotOurCertificateIsSentItAgain) {
  SignedNet s(2);
  // Node 1 restarts its cache (a restart, or an eviction): node 0 still believes node 1 holds its
  // certificate, so its next request goes without it, is answered 436, and goes again with it.
  s.auths[1] =
      std::make_unique<PeerAuthenticator>(s.ids[1].key, s.ids[1].cert, s.pki.cache(), s.pki.crypto, *s.net.hosts[1]);
  s.net.nodes[1]->set_authenticator(s.auths[1].get());
  dht::RouteResult out;
  s.net.nodes[0]->chord().route(
      dht::RouteOp::Lookup, s.ids[1].node_id(), std::nullopt, [&](const dht::RouteResult& r) { out = r; }, s.net.now);
  s.net.run_for(seconds(2));
  EXPECT_EQ(out.status, dht::Status::Ok);
  EXPECT_EQ(s.net.nodes[0]->stats().resent, 1u);
  EXPECT_EQ(s.net.nodes[0]->stats().unauthenticated, 0u);
  EXPECT_EQ(s.net.ring_errors(), "");
}

TEST(PeerAuth, TlsLinksAuthenticateTheConnectionInsteadOfEachMessage) {
  SignedNet s(2);
  auto& heard = s.listen(kMallory);
  Pki::Id mallory = s.pki.node(99);
  const dht::NodeId me = mallory.node_id();
  // The handshake's certificate proves Mallory's Node-ID for the link ...
  auto proved = s.net.nodes[0]->check_link(mallory.cert.der(), kMallory, s.net.now);
  ASSERT_TRUE(proved);
  EXPECT_EQ(*proved, me);
  auto foreign = Pki(2).node(5);
  EXPECT_FALSE(s.net.nodes[0]->check_link(foreign.cert.der(), kMallory, s.net.now));
  // ... and unsigned messages over it are taken for that Node-ID, and no other.
  Endpoint tls = kMallory;
  tls.transport = Transport::Tls;
  auto unsigned_ping = [&](const dht::NodeId& claimed, int n) {
    return *sip::parse_datagram(ping(s, claimed, nullptr, 0, n));
  };
  s.net.nodes[0]->receive(unsigned_ping(me, 1), tls, s.net.now, &*proved);
  s.net.run_for(seconds(1));
  EXPECT_EQ(final_status(heard), 200);
  std::string reason;
  s.net.nodes[0]->receive(unsigned_ping(s.ids[1].node_id(), 2), tls, s.net.now, &*proved);
  s.net.run_for(seconds(1));
  EXPECT_EQ(final_status(heard, &reason), 403);
  EXPECT_EQ(reason,
            "Forbidden (Node-ID " + s.ids[1].node_id().short_hex() + " Claimed, TLS Link Is " + me.short_hex() + "'s)");
}

/// A call's side of a node (the UA side's place): counts what reaches it.
struct CallSide : sip::TransactionUser {
  int requests = 0;
  void on_request(sip::TransactionId, const sip::Message&, const Endpoint&, Instant) override { ++requests; }
  void on_ack(sip::TransactionId, const sip::Message&, const Endpoint&, Instant) override {}
  void on_response(sip::TransactionId, const sip::Message&, Instant) override {}
  void on_timeout(sip::TransactionId, Instant) override {}
  void on_transport_error(sip::TransactionId, Instant) override {}
};

TEST(PeerAuth, CallsFromOtherNodesComeOverTlsOnly) {
  SignedNet s(2);
  auto& heard = s.listen(kMallory);
  CallSide calls;
  s.net.nodes[0]->set_delegate(&calls);
  const std::string invite =
      "INVITE sip:bob@p2psip.local SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.66:5066;branch=z9hG4bKcall1;rport\r\n"
      "Max-Forwards: 70\r\nFrom: <sip:mallory@p2psip.local>;tag=1\r\nTo: <sip:bob@p2psip.local>\r\n"
      "Call-ID: spam1\r\nCSeq: 1 INVITE\r\nContact: <sip:mallory@127.0.0.66:5066>\r\nContent-Length: 0\r\n\r\n";
  s.net.nodes[0]->receive_datagram(invite, kMallory, s.net.now);
  s.net.run_for(seconds(1));
  std::string reason;
  EXPECT_EQ(final_status(heard, &reason), 403);
  EXPECT_EQ(reason, "Forbidden (Calls Between Nodes Come Over TLS)");
  EXPECT_EQ(calls.requests, 0);
  // From a node whose TLS handshake proved it, the call is the UA side's.
  Endpoint tls = kMallory;
  tls.transport = Transport::Tls;
  std::string again = invite;  // a new transaction (a new branch), not a retransmission of the refused one
  again.replace(again.find("z9hG4bKcall1"), 12, "z9hG4bKcall2");
  auto m = sip::parse_datagram(again);
  ASSERT_TRUE(m);
  const dht::NodeId peer = s.ids[1].node_id();
  s.net.nodes[0]->receive(*m, tls, s.net.now, &peer);
  EXPECT_EQ(calls.requests, 1);
  s.net.nodes[0]->set_delegate(nullptr);
}

/// A flow registration from `claimed` (at kMallory) for reg-id `reg`, signed by `signer`.
std::string flow_request(const dht::NodeId& claimed, PeerAuthenticator* signer, Instant now, int n,
                         std::string instance = "urn:uuid:00000000-0000-0000-0000-0000000000aa", std::uint32_t reg = 1) {
  FlowRegistration fr{dht::Peer{claimed, kMallory}, std::move(instance), reg, 600};
  const std::string branch = "z9hG4bKflow" + std::to_string(n);
  const std::string call_id = "f" + std::to_string(n);
  RequestFraming f;
  f.overlay = "p2psip.local";
  f.branch = branch;
  f.call_id = call_id;
  f.from_tag = "ft";
  sip::Message m = encode_flow_request(fr, f);
  if (signer != nullptr) signer->sign_request(m, nullptr, now);
  return m.serialize();
}

TEST(PeerAuth, ARelayHoldsAFlowOnlyForTheHolderOfItsNodeId) {
  SignedNet s(3);
  nat::RelayTable relay;
  s.net.nodes[0]->set_relay(&relay);
  auto& heard = s.listen(kMallory);
  const Pki::Id mallory = s.pki.node(66);
  PeerAuthenticator m_auth(mallory.key, mallory.cert, s.pki.cache(), s.pki.crypto, *s.net.hosts[0]);

  // Its own Node-ID: held, and answered with a Path naming the flow, the Flow-Timer and the relay's
  // successors.
  s.net.nodes[0]->receive_datagram(flow_request(mallory.node_id(), &m_auth, s.net.now, 1), kMallory, s.net.now);
  s.net.run_for(seconds(1));
  ASSERT_EQ(final_status(heard), 200);
  auto grant = decode_flow_response(heard.back());
  ASSERT_TRUE(grant) << grant.error();
  EXPECT_EQ(grant->relay.id, s.ids[0].node_id());
  EXPECT_EQ(grant->flow_timer_s, 29u);
  EXPECT_EQ(grant->expires_s, 600u);
  EXPECT_FALSE(grant->alternates.empty());
  ASSERT_EQ(relay.flows(), 1u);
  EXPECT_EQ(relay.flows_of(mallory.node_id().hex())[0]->flow, kMallory);
  EXPECT_NE(grant->path.find(relay.flows_of(mallory.node_id().hex())[0]->token), std::string::npos);

  // Another node's Node-ID, signed with Mallory's key: refused, nothing held for the victim.
  heard.clear();
  const dht::NodeId victim = s.ids[2].node_id();
  s.net.nodes[0]->receive_datagram(flow_request(victim, &m_auth, s.net.now, 2), kMallory, s.net.now);
  s.net.run_for(seconds(1));
  std::string reason;
  const int refused = final_status(heard, &reason);
  EXPECT_TRUE(refused == 403 || refused == 438) << refused << " " << reason;
  EXPECT_TRUE(relay.flows_of(victim.hex()).empty());
  // Unsigned: refused too.
  heard.clear();
  s.net.nodes[0]->receive_datagram(flow_request(mallory.node_id(), nullptr, s.net.now, 3, "urn:uuid:1", 2), kMallory,
                                   s.net.now);
  s.net.run_for(seconds(1));
  EXPECT_GE(final_status(heard), 400);
  EXPECT_EQ(relay.flows(), 1u);
  // No instance URN: 400, whoever signs it.
  heard.clear();
  s.net.nodes[0]->receive_datagram(flow_request(mallory.node_id(), &m_auth, s.net.now, 4, "not-a-urn", 3), kMallory,
                                   s.net.now);
  s.net.run_for(seconds(1));
  EXPECT_EQ(final_status(heard, &reason), 400);
  EXPECT_EQ(reason, "Contact Without A +sip.instance URN");
  // A node that relays nobody: 403.
  heard.clear();
  s.net.nodes[1]->receive_datagram(flow_request(mallory.node_id(), &m_auth, s.net.now, 5), kMallory, s.net.now);
  s.net.run_for(seconds(1));
  EXPECT_EQ(final_status(heard, &reason), 403);
  EXPECT_EQ(reason, "Forbidden (This Node Relays No Clients)");
  EXPECT_FALSE(anyone_knows(s, mallory.node_id()));  // a client is nobody's neighbour
}

}  // namespace
}  // namespace p2psip::overlay
