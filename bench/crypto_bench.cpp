// What identities cost (issue 6): Ed25519 signing and verifying through both providers, a
// registration record signed and checked as a storing peer checks it (certificate cached, and
// not), and a certificate's chain check on its own.
//
//   build/bin/crypto_bench [--benchmark_min_time=1]
#include <benchmark/benchmark.h>

#include <string>

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

void sign_registration(benchmark::State& state) {
  Writer w{fx().alice_key, fx().alice.der(), &fx().ed};
  dht::Record r = fx().entry();
  std::int64_t t = kNow * 1000000;
  for (auto _ : state) {
    w.sign(r, ++t);
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
  w.sign(held, kNow * 1000000);
  dht::Record next = held;
  w.sign(next, kNow * 1000000 + 1);
  const Instant at = Instant(seconds(kNow));
  for (auto _ : state) benchmark::DoNotOptimize(policy.admit(next, &held, at, own));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

// The same with a signer never seen before: parse and chain-check its certificate first.
void admit_registration_new_signer(benchmark::State& state) {
  Writer w{fx().alice_key, fx().alice.der(), &fx().ed};
  dht::Record r = fx().entry();
  w.sign(r, kNow * 1000000);
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
BENCHMARK(sign_registration);
BENCHMARK(admit_registration)->Arg(0)->Arg(1);
BENCHMARK(admit_registration_new_signer);
BENCHMARK(verify_certificate);

}  // namespace

BENCHMARK_MAIN();
