// What identities cost (issue 6): Ed25519 signing and verifying through both providers, an
// overlay message signed by its sender and checked by its receiver as the nodes do it, a
// registration record signed and checked as a storing peer checks it (certificate cached, and
// not), and a certificate's chain check on its own.
//
//   build/bin/crypto_bench [--benchmark_min_time=1]
#include <benchmark/benchmark.h>

#include <string>

#include "node/overlay/codec.hpp"
#include "node/overlay/peer_auth.hpp"
#include "security/certificate.hpp"
#include "security/record_policy.hpp"

namespace {

using namespace p2psip;
using namespace p2psip::security;

constexpr std::int64_t kNow = 1796000000;

KeyPair key(std::uint8_t n) {
  Seed s{};
  s.fill(n);
  return KeyPair::from_seed(s);
}

struct QuietEnv : Environment {
  bool send(const Endpoint&, std::string_view) override { return false; }
  std::uint64_t random() override { return 4; }
  std::uint64_t secure_random() override { return 4; }
};

struct Fixture {
  Ed25519Provider ed;
  FakeFastProvider fake;
  KeyPair ca_key = key(1);
  Certificate root = *make_root(ca_key, "bench.test", 1, {kNow - 86400, kNow + 86400 * 3650});
  KeyPair alice_key = key(2);
  Certificate alice = *issue_user(ca_key, root, alice_key.public_key, "alice", 2, {kNow - 86400, kNow + 86400 * 365});
  QuietEnv env;
  // A registration entry as the UA side writes it (about 60 bytes of value).
  dht::Record entry() const {
    dht::Record r;
    r.name = "sip:alice@bench.test";
    r.key = dht::NodeId::hash(r.name);
    r.dkey = "0123456789abcdef0123456789abcdef";
    r.value = std::string(60, 'v');
    r.owner = r.dkey;
    r.lifetime_s = 300;
    return r;
  }
};
Fixture& fx() {
  static Fixture f;
  return f;
}

// A SIP overlay message's size (a store request with one record), for the per-message figures.
const std::string kMessage(900, 'm');

void sign_message_ed25519(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(fx().ed.sign(fx().alice_key, kMessage));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
void verify_message_ed25519(benchmark::State& state) {
  Signature sig = fx().ed.sign(fx().alice_key, kMessage);
  for (auto _ : state) benchmark::DoNotOptimize(fx().ed.verify(fx().alice_key.public_key, kMessage, sig));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
void sign_message_fake(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(fx().fake.sign(fx().alice_key, kMessage));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
void verify_message_fake(benchmark::State& state) {
  Signature sig = fx().fake.sign(fx().alice_key, kMessage);
  for (auto _ : state) benchmark::DoNotOptimize(fx().fake.verify(fx().alice_key.public_key, kMessage, sig));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

// A real overlay request: a neighbours exchange's answer-sized request (a store of one
// registration entry), as OverlayNode encodes it.
sip::Message overlay_request() {
  dht::Request r;
  r.op = dht::Op::Route;
  r.route_op = dht::RouteOp::Store;
  r.sender = dht::Peer{dht::NodeId{1, 2}, *parse_host_port("127.0.0.1:5070", Transport::Udp)};
  r.target = fx().entry().key;
  r.hops = 2;
  r.records.push_back(fx().entry());
  overlay::RequestFraming f;
  f.overlay = "bench.test";
  f.branch = "z9hG4bK0123456789abcdef";
  f.call_id = "0123456789abcdef@bench.test";
  f.from_tag = "fedcba9876543210";
  return overlay::encode_request(r, f);
}

struct NodePair {
  KeyPair a_key = key(3), b_key = key(4);
  Certificate a = *issue_node(fx().ca_key, fx().root, a_key.public_key, 3, {kNow - 86400, kNow + 86400 * 365});
  Certificate b = *issue_node(fx().ca_key, fx().root, b_key.public_key, 4, {kNow - 86400, kNow + 86400 * 365});
  std::shared_ptr<CertificateCache> cache_a = std::make_shared<CertificateCache>(TrustAnchor::ca(fx().root));
  std::shared_ptr<CertificateCache> cache_b = std::make_shared<CertificateCache>(TrustAnchor::ca(fx().root));
};

// The sender's side: sign a request to a peer that holds our certificate (no certificate carried).
// Argument 0: Ed25519; 1: the fake provider.
void sign_overlay_message(benchmark::State& state) {
  const CryptoProvider& crypto = state.range(0) == 0 ? static_cast<const CryptoProvider&>(fx().ed) : fx().fake;
  NodePair p;
  overlay::PeerAuthenticator a(p.a_key, p.a, p.cache_a, crypto, fx().env);
  const dht::NodeId b_id = *p.b.info().node_id;
  a.told(b_id);
  const sip::Message m = overlay_request();
  const Instant at = Instant(seconds(kNow));
  for (auto _ : state) {
    sip::Message copy = m;
    a.sign_request(copy, &b_id, at);
    benchmark::DoNotOptimize(copy);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.counters["bytes"] = static_cast<double>(m.serialize().size());
}

// The receiver's side: check such a request as the transaction layer hands it over (rport and
// received filled in), the sender's certificate remembered.
void check_overlay_message(benchmark::State& state) {
  const CryptoProvider& crypto = state.range(0) == 0 ? static_cast<const CryptoProvider&>(fx().ed) : fx().fake;
  NodePair p;
  overlay::PeerAuthenticator a(p.a_key, p.a, p.cache_a, crypto, fx().env);
  overlay::PeerAuthenticator b(p.b_key, p.b, p.cache_b, crypto, fx().env);
  p.cache_b->vouch(p.a);
  const dht::NodeId a_id = *p.a.info().node_id;
  const dht::NodeId b_id = *p.b.info().node_id;
  a.told(b_id);
  sip::Message m = overlay_request();
  const Instant at = Instant(seconds(kNow));
  a.sign_request(m, &b_id, at);
  m.set_header(sip::HeaderId::Via, "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK0123456789abcdef;rport=5070");
  sip::Message received = *sip::parse_datagram(m.serialize());
  for (auto _ : state) {
    auto v = b.check(received, &a_id, at);
    if (!v.ok()) state.SkipWithError(v.reason.c_str());
    benchmark::DoNotOptimize(v);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

void sign_registration(benchmark::State& state) {
  Writer w{fx().alice_key, fx().alice.der(), &fx().ed};
  dht::Record r = fx().entry();
  std::int64_t t = kNow * 1000000;
  for (auto _ : state) {
    w.sign(r, wall_from_unix_us(++t));
    benchmark::DoNotOptimize(r.signature);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

// A storing peer admitting a refresh of a registration it holds (the signer's certificate cached);
// with argument 1, one that this node's own UA side just signed (no second signature check).
void admit_registration(benchmark::State& state) {
  const bool own = state.range(0) == 1;
  RecordPolicy policy(TrustAnchor::ca(fx().root), fx().ed, fx().env);
  Writer w{fx().alice_key, fx().alice.der(), &fx().ed};
  dht::Record held = fx().entry();
  w.sign(held, wall_from_unix_us(kNow * 1000000));
  dht::Record next = held;
  w.sign(next, wall_from_unix_us(kNow * 1000000 + 1));
  const Instant at = Instant(seconds(kNow));
  for (auto _ : state) benchmark::DoNotOptimize(policy.admit(next, &held, at, own));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

// The same with a signer never seen before: parse and chain-check its certificate first.
void admit_registration_new_signer(benchmark::State& state) {
  Writer w{fx().alice_key, fx().alice.der(), &fx().ed};
  dht::Record r = fx().entry();
  w.sign(r, wall_from_unix_us(kNow * 1000000));
  const Instant at = Instant(seconds(kNow));
  for (auto _ : state) {
    state.PauseTiming();
    RecordPolicy policy(TrustAnchor::ca(fx().root), fx().ed, fx().env);
    state.ResumeTiming();
    benchmark::DoNotOptimize(policy.admit(r, nullptr, at));
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

void verify_certificate(benchmark::State& state) {
  TrustAnchor trust = TrustAnchor::ca(fx().root);
  const std::string der = fx().alice.der();
  for (auto _ : state) {
    auto c = Certificate::from_der(der);
    benchmark::DoNotOptimize(trust.verify(*c, CertKind::User, kNow));
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

// What development mode pays for each new user: a self-signed user certificate.
void make_user_certificate(benchmark::State& state) {
  std::uint64_t n = 0;
  for (auto _ : state) {
    auto c = issue_raw(fx().alice_key, nullptr, fx().alice_key.public_key, "sip:u@bench.test",
                       {"sip:u" + std::to_string(++n) + "@bench.test"}, false, n, {kNow - 10, kNow + 86400});
    benchmark::DoNotOptimize(c);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
void parse_certificate(benchmark::State& state) {
  const std::string der = fx().alice.der();
  for (auto _ : state) benchmark::DoNotOptimize(Certificate::from_der(der));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

BENCHMARK(make_user_certificate);
BENCHMARK(parse_certificate);
BENCHMARK(sign_message_ed25519);
BENCHMARK(verify_message_ed25519);
BENCHMARK(sign_message_fake);
BENCHMARK(verify_message_fake);
BENCHMARK(sign_overlay_message)->Arg(0)->Arg(1);
BENCHMARK(check_overlay_message)->Arg(0)->Arg(1);
BENCHMARK(sign_registration);
BENCHMARK(admit_registration)->Arg(0)->Arg(1);
BENCHMARK(admit_registration_new_signer);
BENCHMARK(verify_certificate);

}  // namespace

BENCHMARK_MAIN();
