// The daemon's ICE agent (node/runtime/nice_ice.hpp: libnice on its own GLib thread) driving the
// link logic (nat/ice_links.hpp) on a real libuv loop, on loopback: two sides exchange an Attach
// in process, libnice's checks select a pair, and datagrams cross the link both ways; a side whose
// answer names a port that never answers gets its failure verdict within the set-up time. Bounded:
// every loop run stops by itself.
#include "node/runtime/nice_ice.hpp"

#include <gtest/gtest.h>
#include <uv.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "nat/ice_links.hpp"
#include "node/runtime/wakeup.hpp"

namespace p2psip::test {
namespace {

using namespace p2psip::nat;

Instant mono_now() {
  return runtime::monotonic_now();
}

class QuietEnv : public Environment {
 public:
  bool send(const Endpoint&, std::string_view) override { return false; }
  std::uint64_t random() override { return 4; }
  std::uint64_t secure_random() override { return 4; }
  void log(LogLevel, std::string_view text) override { lines.emplace_back(text); }
  std::vector<std::string> lines;
};

/// One side: its IceLinks on a libnice agent; its overlay hands Attaches to `other` directly.
struct Side : AttachTransport {
  Side(uv_loop_t* loop, Endpoint me, IceLinkConfig cfg)
      : self(me),
        events(mono_now,
               [this](const Endpoint& from, std::string_view bytes) {
                 got.emplace_back(from.host_port() + " " + std::string(bytes));
               }),
        nice(loop, runtime::NiceConfig{{*IpAddress::parse("127.0.0.1")}, {}, {}, {}, 0, 0}, events),
        links(nice, *this, env, me, cfg) {
    events.set_links(&links);
  }

  // AttachTransport
  bool send_attach(IceSessionId id, const Endpoint&, const IceDescription& offer, Instant now) override {
    pending_attach = id;
    other->links.offered(self, offer, 1, now);
    return true;
  }
  void answer_attach(std::uint64_t, const IceDescription& answer) override {
    IceDescription a = answer;
    if (break_answers) a.credentials.pwd = "0000000000000000000000";  // the offerer's checks cannot succeed
    other->links.answered(other->pending_attach, a, mono_now());
  }
  void refuse_attach(std::uint64_t, int status, std::uint32_t ra) override {
    other->links.attach_failed(other->pending_attach, status, ra, mono_now());
  }
  void link_up(const Endpoint&, Instant) override { ++ups; }
  void link_down(const Endpoint&, Instant) override { ++downs; }

  Endpoint self;
  Side* other = nullptr;
  QuietEnv env;
  runtime::IceLinksEvents events;
  runtime::NiceIce nice;
  IceLinks links;
  IceSessionId pending_attach = 0;
  bool break_answers = false;
  int ups = 0, downs = 0;
  std::vector<std::string> got;
};

/// Runs the loop, advancing both sides' timers, until `done` or `limit` has passed.
bool run_until(uv_loop_t* loop, std::vector<Side*> sides, const std::function<bool()>& done, Duration limit) {
  const Instant end = mono_now() + limit;
  while (!done()) {
    if (mono_now() >= end) return false;
    for (auto* s : sides) s->links.advance(mono_now());
    uv_run(loop, UV_RUN_NOWAIT);
    uv_sleep(2);
  }
  return true;
}

void finish(uv_loop_t* loop, std::vector<Side*> sides) {
  for (auto* s : sides) s->nice.stop();
  uv_run(loop, UV_RUN_DEFAULT);  // the async handles close
}

const Endpoint kA{Transport::Udp, *IpAddress::parse("198.51.100.13"), 5070};
const Endpoint kB{Transport::Udp, *IpAddress::parse("198.51.100.14"), 5070};

TEST(NiceIce, TwoAgentsOnLoopbackSetUpALinkThroughAnAttachAndCarryDatagramsBothWays) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    IceLinkConfig cfg;
    Side a(&loop, kA, cfg), b(&loop, kB, cfg);
    a.other = &b;
    b.other = &a;
    const Instant t0 = mono_now();
    ASSERT_TRUE(a.links.send(kB, "hello", t0));
    const bool ok = run_until(
        &loop, {&a, &b}, [&] { return !b.got.empty(); }, seconds(10));
    EXPECT_TRUE(ok) << "no datagram over the link within 10 s";
    ASSERT_EQ(b.got.size(), 1U);
    EXPECT_EQ(b.got[0], kA.host_port() + " hello");
    EXPECT_TRUE(a.links.is_up(kB));
    ASSERT_TRUE(b.links.send(kA, "world", mono_now()));
    EXPECT_TRUE(run_until(
        &loop, {&a, &b}, [&] { return !a.got.empty(); }, seconds(5)));
    ASSERT_EQ(a.got.size(), 1U);
    EXPECT_EQ(a.got[0], kB.host_port() + " world");
    const auto st = a.links.status().at(0);
    EXPECT_EQ(st.state, LinkState::Up);
    EXPECT_FALSE(st.relayed);
    EXPECT_EQ(st.local_type, CandidateType::Host);
    EXPECT_LT(st.setup, seconds(2));
    EXPECT_EQ(a.ups, 1);
    EXPECT_EQ(a.nice.agents(), 1U);
    // A link closed at one side frees its agent.
    a.links.forget(kB, mono_now());
    EXPECT_EQ(a.nice.agents(), 0U);
    finish(&loop, {&a, &b});
  }
  EXPECT_EQ(uv_loop_close(&loop), 0);
}

TEST(NiceIce, AnAnswerWithWrongCredentialsGivesAFailureVerdictWithinTheSetUpTime) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    IceLinkConfig cfg;
    cfg.setup_timeout = seconds(3);
    Side a(&loop, kA, cfg), b(&loop, kB, cfg);
    a.other = &b;
    b.other = &a;
    b.break_answers = true;
    const Instant t0 = mono_now();
    ASSERT_TRUE(a.links.send(kB, "lost", t0));
    EXPECT_TRUE(run_until(
        &loop, {&a, &b}, [&] { return a.downs > 0; }, seconds(6)));
    EXPECT_LT(mono_now() - t0, millis(3500));
    EXPECT_FALSE(a.links.is_up(kB));
    EXPECT_EQ(a.links.stats().queue_dropped, 1U);
    EXPECT_EQ(a.nice.agents(), 0U);
    EXPECT_FALSE(a.links.send(kB, "in the back-off", mono_now()));
    finish(&loop, {&a, &b});
  }
  EXPECT_EQ(uv_loop_close(&loop), 0);
}

}  // namespace
}  // namespace p2psip::test
