// Two kinds of randomness (core/environment.hpp): the seeded stream for what may be predicted
// (jitter), a secure source for everything secret or seen on the wire. An observer who saw the
// seeded stream's outputs could reconstruct its state; so none of them may reach the wire.
#include <gtest/gtest.h>
#include <uv.h>

#include <set>

#include "core/hex.hpp"
#include "node/echo/echo_element.hpp"
#include "node/proxy/ua_side.hpp"
#include "node/runtime/sip_runtime.hpp"
#include "overlay_harness.hpp"
#include "security/identities.hpp"

namespace p2psip::test {
namespace {

/// Every way a 64-bit draw is written into a message here: 16 hex digits (branches, tags,
/// Call-IDs), the low 48 bits as 12 (the echo's tags), decimal, a certificate serial (the draw
/// halved, odd) in decimal and as its DER bytes, and the eight bytes either way round.
std::vector<std::string> renderings(std::uint64_t v) {
  std::vector<std::string> out{hex64(v), hex64(v).substr(4), std::to_string(v), std::to_string(v >> 1 | 1)};
  std::string le, be, serial;
  for (int b = 0; b < 8; ++b) {
    le.push_back(static_cast<char>(v >> (8 * b)));
    be.push_back(static_cast<char>(v >> (56 - 8 * b)));
  }
  const std::uint64_t s = v >> 1 | 1;
  for (int b = 1; b < 8; ++b) serial.push_back(static_cast<char>(s >> (56 - 8 * b)));
  out.push_back(le);
  out.push_back(be);
  out.push_back(serial);  // the low seven bytes, whatever DER makes of the first
  return out;
}

TEST(Randomness, NothingOnTheWireComesFromTheSeededStream) {
  OverlayNet net;
  net.separate_streams = true;
  net.config.overlay = "demo";
  net.config.chord.stabilize_interval = seconds(5);  // many rounds: many seeded draws (their jitter)
  std::string wire;
  net.on_send = [&wire](Instant, const Endpoint&, const Endpoint&, std::string_view bytes) { wire.append(bytes); };
  std::mt19937_64 ids(5);
  net.grow(5, ids, seconds(1));
  net.run_for(seconds(30));
  ASSERT_EQ(net.ring_errors(), "");

  // Phones at nodes 1 and 3, whose users get development identities (keys and certificates drawn
  // on the spot) that sign their registrations.
  security::Ed25519Provider crypto;
  std::vector<std::unique_ptr<security::DevelopmentUsers>> users;
  std::vector<std::unique_ptr<proxy::UaSide>> uas;
  auto attach = [&](std::size_t node) {
    const Endpoint addr{Transport::Udp, *IpAddress::parse("127.0.3." + std::to_string(node + 1)), 5060};
    users.push_back(std::make_unique<security::DevelopmentUsers>("demo", crypto, net.host_at(addr), 100, nullptr));
    proxy::UaSideConfig c;
    c.registrar.domain = "demo";
    c.ua_address = addr;
    uas.push_back(std::make_unique<proxy::UaSide>(net.host_at(addr), *net.nodes[node], c, users.back().get()));
    proxy::UaSide* ua = uas.back().get();
    net.members.push_back(OverlayNet::Member{
        addr, [ua](std::string_view b, const Endpoint& from, Instant now) { ua->receive_datagram(b, from, now); },
        [ua] { return ua->next_wakeup(); }, [ua](Instant now) { ua->advance(now); }});
    return addr;
  };
  const Endpoint ua1 = attach(1), ua3 = attach(3);
  const Endpoint echo_addr{Transport::Udp, *IpAddress::parse("127.0.4.2"), 5070};
  echo::EchoConfig ec;
  ec.contact_host = "127.0.4.2";
  ec.contact_port = 5070;
  echo::EchoElement bob(net.host_at(echo_addr), ec);
  net.members.push_back(OverlayNet::Member{
      echo_addr, [&bob](std::string_view b, const Endpoint& from, Instant now) { bob.receive_datagram(b, from, now); },
      [&bob] { return bob.next_wakeup(); }, [&bob](Instant now) { bob.advance(now); }});
  const Endpoint phone{Transport::Udp, *IpAddress::parse("127.0.4.1"), 5070};
  std::vector<sip::Message> heard;
  net.members.push_back(OverlayNet::Member{phone, [&heard](std::string_view b, const Endpoint&, Instant) {
                                             if (auto m = sip::parse_datagram(b)) heard.push_back(*m);
                                           }});
  Environment& phone_host = net.host_at(phone);
  auto request = [&](const std::string& method, const std::string& ruri, const std::string& call, int cseq,
                     const std::string& from, const std::string& to, const std::string& extra) {
    return method + " " + ruri + " SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.4.1:5070;branch=z9hG4bK-" + call + "-" +
           std::to_string(cseq) + ";rport\r\nMax-Forwards: 70\r\nFrom: " + from + "\r\nTo: " + to +
           "\r\nCall-ID: " + call + "\r\nCSeq: " + std::to_string(cseq) + " " + method + "\r\n" + extra +
           "Content-Length: 0\r\n\r\n";
  };
  phone_host.send(ua3, request("REGISTER", "sip:demo", "reg-bob", 1, "<sip:bob@demo>;tag=1", "<sip:bob@demo>",
                               "Contact: <sip:bob@127.0.4.2:5070>\r\n"));
  phone_host.send(ua1, request("REGISTER", "sip:demo", "reg-alice", 1, "<sip:alice@demo>;tag=2", "<sip:alice@demo>",
                               "Contact: <sip:alice@127.0.4.1:5070>\r\n"));
  net.run_for(seconds(3));
  phone_host.send(ua1, request("INVITE", "sip:bob@demo", "call-1", 1, "<sip:alice@demo>;tag=3", "<sip:bob@demo>",
                               "Contact: <sip:alice@127.0.4.1:5070>\r\n"));
  net.run_for(seconds(3));
  int ok = 0;
  for (const auto& m : heard) ok += m.is_response() && m.status() == 200 ? 1 : 0;
  ASSERT_GE(ok, 3) << "two registrations and the call answered";
  net.run_for(seconds(30));

  ASSERT_GE(net.seeded_draws.size(), 30u);
  for (std::uint64_t v : net.seeded_draws) {
    for (const std::string& r : renderings(v)) {
      ASSERT_EQ(wire.find(r), std::string::npos) << "a seeded draw (" << hex64(v) << ") is on the wire";
    }
  }
  // The check can fail: the secure draws are there, in the tokens.
  std::size_t seen = 0;
  for (std::uint64_t v : net.secure_draws) seen += wire.find(hex64(v)) != std::string::npos ? 1 : 0;
  EXPECT_GE(seen, 100u);
}

TEST(Randomness, TheRuntimesSecureSourceIsNotItsSeededStream) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    runtime::SipRuntime a(&loop, runtime::RuntimeConfig{});
    std::set<std::uint64_t> seeded;
    for (int i = 0; i < 10000; ++i) seeded.insert(a.random());
    std::set<std::uint64_t> secure;
    for (int i = 0; i < 10000; ++i) {
      const std::uint64_t v = a.secure_random();
      EXPECT_FALSE(seeded.count(v)) << "a secure draw the seeded stream also gave";
      secure.insert(v);
    }
    EXPECT_EQ(secure.size(), 10000u);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
}

}  // namespace
}  // namespace p2psip::test
