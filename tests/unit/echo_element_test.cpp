// The sip-echo UAS core on virtual time.
#include "node/echo/echo_element.hpp"

#include <gtest/gtest.h>

#include "node/sip/headers.hpp"
#include "sip_harness.hpp"

namespace p2psip::echo {
namespace {

using sip::HeaderId;
using sip::Message;
using sip::parse_datagram;

std::string invite_text(std::string_view branch, std::string_view to_tag = "", std::string_view method = "INVITE",
                        std::string_view cseq = "1") {
  std::string s = std::string(method) + " sip:echo@127.0.0.1:5060 SIP/2.0\r\n";
  s += "Via: SIP/2.0/UDP 127.0.0.1:6000;branch=" + std::string(branch) + "\r\n";
  s += "From: <sip:a@127.0.0.1>;tag=caller\r\nTo: <sip:echo@127.0.0.1>";
  if (!to_tag.empty()) s += ";tag=" + std::string(to_tag);
  s += "\r\nCall-ID: c1\r\nCSeq: " + std::string(cseq) + " " + std::string(method) + "\r\nMax-Forwards: 70\r\n";
  if (method == "INVITE") {
    s += "Content-Type: application/sdp\r\nContent-Length: 10\r\n\r\nv=0\r\ns=-\r\n";
  } else {
    s += "Content-Length: 0\r\n\r\n";
  }
  return s;
}

class EchoTest : public ::testing::Test {
 protected:
  test::RecordingEnvironment env;
  EchoConfig cfg;
  std::unique_ptr<EchoElement> element;
  Endpoint peer = test::udp("127.0.0.1", 6000);
  Instant now{};
  void SetUp() override { element = std::make_unique<EchoElement>(env, cfg); }
  void deliver(const std::string& text) { element->receive_datagram(text, peer, now); }
  void run_until(std::int64_t ms) {
    while (element->next_wakeup() <= Instant(millis(ms))) {
      now = element->next_wakeup();
      element->advance(now);
    }
    now = Instant(millis(ms));
  }
  std::string to_tag_of(const test::Sent& s) {
    auto m = s.message();
    return std::string(sip::parse_name_address(*m.header(HeaderId::To))->params.get("tag").value_or(""));
  }
};

TEST_F(EchoTest, InviteRingsAnswersWithMirroredSdpAndRetransmitsUntilAck) {
  deliver(invite_text("z9hG4bKi1"));
  ASSERT_EQ(env.sent.size(), 2u);
  EXPECT_EQ(env.sent[0].message().status(), 180);
  Message ok = env.sent[1].message();
  EXPECT_EQ(ok.status(), 200);
  EXPECT_EQ(ok.body(), "v=0\r\ns=-\r\n");
  EXPECT_EQ(ok.header(HeaderId::Contact).value(), "<sip:echo@127.0.0.1:5060>");
  std::string tag = to_tag_of(env.sent[1]);
  EXPECT_EQ(tag, to_tag_of(env.sent[0]));
  run_until(1600);  // §13.3.1.4: 2xx again at 500 ms and 1500 ms
  EXPECT_EQ(env.sent.size(), 4u);
  std::string ack = invite_text("z9hG4bKa1", tag, "ACK");
  deliver(ack);
  run_until(10000);
  EXPECT_EQ(env.sent.size(), 4u);
  EXPECT_EQ(element->stats().acks, 1u);
  deliver(invite_text("z9hG4bKb1", tag, "BYE", "2"));
  EXPECT_EQ(env.sent.back().message().status(), 200);
  EXPECT_EQ(element->dialogs(), 0u);
}

TEST_F(EchoTest, NoAckAbandonsTheDialogAfter64T1) {
  deliver(invite_text("z9hG4bKi2"));
  run_until(40000);
  EXPECT_EQ(element->stats().ack_timeouts, 1u);
  EXPECT_EQ(element->dialogs(), 0u);
}

TEST_F(EchoTest, ByeOrReinviteOutsideADialogIs481) {
  deliver(invite_text("z9hG4bKb2", "nosuch", "BYE"));
  EXPECT_EQ(env.sent.back().message().status(), 481);
  deliver(invite_text("z9hG4bKr2", "nosuch"));
  EXPECT_EQ(env.sent.back().message().status(), 481);
}

TEST_F(EchoTest, OptionsListsWhatTheElementAllows) {
  deliver(invite_text("z9hG4bKo1", "", "OPTIONS"));
  Message ok = env.sent.back().message();
  EXPECT_EQ(ok.status(), 200);
  EXPECT_NE(ok.header(HeaderId::Allow).value().find("INVITE"), std::string_view::npos);
}

TEST_F(EchoTest, UnsupportedMethodGets405WithAllow) {
  deliver(invite_text("z9hG4bKs1", "", "SUBSCRIBE"));
  Message r = env.sent.back().message();
  EXPECT_EQ(r.status(), 405);
  EXPECT_TRUE(r.header(HeaderId::Allow));
}

TEST(EchoCancel, CancelOfARingingCallGets200And487) {
  test::RecordingEnvironment env;
  EchoConfig cfg;
  cfg.answer_delay = seconds(5);
  EchoElement e(env, cfg);
  Endpoint peer = test::udp("127.0.0.1", 6000);
  e.receive_datagram(invite_text("z9hG4bKc1"), peer, Instant(millis(0)));
  ASSERT_EQ(env.sent.size(), 1u);
  e.receive_datagram(invite_text("z9hG4bKc1", "", "CANCEL"), peer, Instant(millis(100)));
  ASSERT_EQ(env.sent.size(), 3u);
  EXPECT_EQ(env.sent[1].message().status(), 200);
  EXPECT_EQ(env.sent[1].message().header(HeaderId::CSeq).value(), "1 CANCEL");
  EXPECT_EQ(env.sent[2].message().status(), 487);
  e.advance(Instant(millis(6000)));  // the 200 that was due never goes out
  for (const auto& s : env.sent) {
    Message m = s.message();
    if (m.header(HeaderId::CSeq).value() == "1 INVITE") {
      EXPECT_NE(m.status(), 200);
    }
  }
  EXPECT_EQ(e.stats().answered, 0u);
  e.receive_datagram(invite_text("z9hG4bKzz", "", "CANCEL"), peer, Instant(millis(7000)));
  EXPECT_EQ(env.sent.back().message().status(), 481);
}

TEST(EchoLimits, DialogCapAnswers503WithRetryAfter) {
  test::RecordingEnvironment env;
  EchoConfig cfg;
  cfg.max_dialogs = 1;
  EchoElement e(env, cfg);
  Endpoint peer = test::udp("127.0.0.1", 6000);
  e.receive_datagram(invite_text("z9hG4bKd1"), peer, Instant(millis(0)));
  std::string second = invite_text("z9hG4bKd2");
  second.replace(second.find("Call-ID: c1"), 11, "Call-ID: c2");
  e.receive_datagram(second, peer, Instant(millis(1)));
  Message r = env.sent.back().message();
  EXPECT_EQ(r.status(), 503);
  EXPECT_EQ(r.header(HeaderId::RetryAfter).value(), "5");
}

}  // namespace
}  // namespace p2psip::echo
