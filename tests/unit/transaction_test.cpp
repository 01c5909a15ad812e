// RFC 3261 §17 transactions with RFC 6026 and RFC 4320, on virtual time.
#include <gtest/gtest.h>

#include <set>

#include "node/sip/headers.hpp"
#include "node/sip/validate.hpp"
#include "sip_harness.hpp"

namespace p2psip::sip {
namespace {

using test::RecordingEnvironment;
using test::RecordingUser;
using test::tcp;
using test::udp;

Instant at_ms(std::int64_t ms) {
  return Instant(millis(ms));
}

std::string request_text(std::string_view method, std::string_view branch, std::string_view transport = "UDP",
                         std::string_view sent_by = "192.0.2.1:5060") {
  std::string s;
  s += std::string(method) + " sip:bob@192.0.2.2 SIP/2.0\r\n";
  s +=
      "Via: SIP/2.0/" + std::string(transport) + " " + std::string(sent_by) + ";branch=" + std::string(branch) + "\r\n";
  s += "Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\n";
  s += "Call-ID: call-1@192.0.2.1\r\nCSeq: 1 " + std::string(method) + "\r\nContent-Length: 0\r\n\r\n";
  return s;
}

Message request(std::string_view method, std::string_view branch = "z9hG4bKclient1") {
  return parse_datagram(request_text(method, branch)).value();
}

/// Fixture: one layer, a recording environment and TU, and a clock advanced by hand.
class TransactionTest : public ::testing::Test {
 protected:
  RecordingEnvironment env;
  RecordingUser tu;
  TransactionLayer layer{env, tu};
  Instant now{};

  void run_until(std::int64_t ms) {
    while (layer.next_wakeup() <= at_ms(ms)) {
      now = layer.next_wakeup();
      layer.advance(now);
    }
    now = at_ms(ms);
  }
  std::vector<std::int64_t> send_times_ms;
  void run_recording_sends(std::int64_t until_ms) {
    std::size_t seen = env.sent.size();
    while (layer.next_wakeup() <= at_ms(until_ms)) {
      now = layer.next_wakeup();
      layer.advance(now);
      for (; seen < env.sent.size(); ++seen) send_times_ms.push_back(to_millis(now.time_since_epoch()));
    }
    now = at_ms(until_ms);
  }
  void deliver(const Message& m, Endpoint from = udp("192.0.2.2", 5060)) { layer.receive(m, from, now); }
  Message response_to(const Message& req, int status, std::string_view tag = "b1") {
    return make_response(req, status, {}, tag);
  }
};

TEST_F(TransactionTest, NonInviteTryingDeadlineIsSevenT1WithDefaults) {
  EXPECT_EQ(layer.non_invite_trying_deadline(), millis(3500));
}

TEST_F(TransactionTest, ClientInviteRetransmitsOnTimerAAndTimesOutOnTimerB) {
  auto id = *layer.send_request(request("INVITE"), udp("192.0.2.2", 5060), now);
  ASSERT_EQ(env.sent.size(), 1u);
  run_recording_sends(40000);
  // Timer A: T1, doubling, until Timer B at 64*T1 = 32 s (RFC 3261 §17.1.1.2).
  EXPECT_EQ(send_times_ms, (std::vector<std::int64_t>{500, 1500, 3500, 7500, 15500, 31500}));
  ASSERT_EQ(tu.events.size(), 1u);
  EXPECT_EQ(tu.events[0].kind, "timeout");
  EXPECT_EQ(tu.events[0].id, id);
  EXPECT_FALSE(layer.state_of(id));
  EXPECT_EQ(layer.size(), 0u);
}

TEST_F(TransactionTest, ClientInviteProvisionalStopsRetransmissionsAndNonSuccessIsAcked) {
  Message invite = request("INVITE");
  auto id = *layer.send_request(invite, udp("192.0.2.2", 5060), now);
  run_until(600);  // one retransmission
  ASSERT_EQ(env.sent.size(), 2u);
  deliver(response_to(invite, 180));
  EXPECT_EQ(*layer.state_of(id), TransactionState::Proceeding);
  run_until(60000);  // no Timer A, no Timer B once Proceeding
  EXPECT_EQ(env.sent.size(), 2u);
  Message busy = response_to(invite, 486);
  deliver(busy);
  EXPECT_EQ(*layer.state_of(id), TransactionState::Completed);
  ASSERT_EQ(env.sent.size(), 3u);
  Message ack = env.sent.back().message();
  // RFC 3261 §17.1.1.3: same Request-URI, Call-ID, From, CSeq number; To with the response's tag.
  EXPECT_EQ(ack.method(), "ACK");
  EXPECT_EQ(ack.request_uri(), invite.request_uri());
  EXPECT_EQ(ack.header(HeaderId::CSeq).value(), "1 ACK");
  EXPECT_EQ(ack.header(HeaderId::To).value(), "<sip:bob@example.com>;tag=b1");
  EXPECT_EQ(top_via(ack)->branch(), "z9hG4bKclient1");
  EXPECT_FALSE(check_message(ack));
  deliver(busy);  // a retransmitted final response: ACK again, TU not told again
  EXPECT_EQ(env.sent.size(), 4u);
  ASSERT_EQ(tu.events.size(), 2u);
  EXPECT_EQ(tu.events[1].status, 486);
  run_until(60000 + 32000);  // Timer D
  EXPECT_FALSE(layer.state_of(id));
}

TEST_F(TransactionTest, ClientInviteSilentAfterProvisionalEndsByTimerC) {
  Message invite = request("INVITE");
  auto id = *layer.send_request(invite, udp("192.0.2.2", 5060), now);
  deliver(response_to(invite, 180));
  now = at_ms(100000);
  deliver(response_to(invite, 183));  // a provisional resets Timer C
  run_until(100000 + 179999);
  EXPECT_TRUE(tu.events.back().kind != "timeout");
  run_until(100000 + 180000);
  EXPECT_EQ(tu.events.back().kind, "timeout");
  EXPECT_TRUE(layer.state_of(id));  // still there for the 487 after the TU's CANCEL
  deliver(response_to(invite, 487));
  EXPECT_EQ(tu.events.back().status, 487);
  run_until(100000 + 180000 + 32000);
  EXPECT_FALSE(layer.state_of(id));
}

TEST_F(TransactionTest, ClientInviteAcceptedPassesEvery2xxUntilTimerM) {
  Message invite = request("INVITE");
  auto id = *layer.send_request(invite, udp("192.0.2.2", 5060), now);
  deliver(response_to(invite, 200, "fork1"));
  EXPECT_EQ(*layer.state_of(id), TransactionState::Accepted);
  deliver(response_to(invite, 200, "fork2"));  // RFC 6026 §8.4: another fork's 2xx reaches the TU
  deliver(response_to(invite, 200, "fork1"));  // and so does a retransmission
  ASSERT_EQ(tu.events.size(), 3u);
  for (const auto& e : tu.events) EXPECT_EQ(e.status, 200);
  EXPECT_EQ(env.sent.size(), 1u);  // the transaction never ACKs a 2xx
  run_until(32000);                // Timer M = 64*T1
  EXPECT_FALSE(layer.state_of(id));
  deliver(response_to(invite, 200, "fork1"));
  EXPECT_EQ(tu.events.back().kind, "stray");
}

TEST_F(TransactionTest, ReliableTransportHasNoRetransmissionsAndZeroWaitTimers) {
  Message invite = parse_datagram(request_text("INVITE", "z9hG4bKtcp1", "TCP")).value();
  auto id = *layer.send_request(invite, tcp("192.0.2.2", 5060), now);
  run_until(10000);
  EXPECT_EQ(env.sent.size(), 1u);
  deliver(response_to(invite, 404), tcp("192.0.2.2", 5060));
  EXPECT_EQ(env.sent.size(), 2u);    // the ACK
  EXPECT_FALSE(layer.state_of(id));  // Timer D is zero
}

TEST_F(TransactionTest, AClientTransactionMatchesByTheBranchItsSenderNamed) {
  Message options = parse_datagram(request_text("OPTIONS", "z9hG4bKnamed", "TCP")).value();
  auto id = *layer.send_request(options, tcp("192.0.2.2", 5060), now, "z9hG4bKnamed");
  ASSERT_EQ(env.sent.size(), 1u);
  deliver(response_to(options, 200), tcp("192.0.2.2", 5060));
  ASSERT_EQ(tu.events.size(), 1u);
  EXPECT_EQ(tu.events[0].kind, "response");
  EXPECT_EQ(tu.events[0].id, id);
  // Matched as if the Via had been parsed: another branch is another transaction's.
  Message other = parse_datagram(request_text("OPTIONS", "z9hG4bKother", "TCP")).value();
  (void)layer.send_request(other, tcp("192.0.2.2", 5060), now, "z9hG4bKother");
  deliver(response_to(parse_datagram(request_text("OPTIONS", "z9hG4bKnone", "TCP")).value(), 200),
          tcp("192.0.2.2", 5060));
  EXPECT_EQ(tu.events.back().kind, "stray");
  deliver(response_to(other, 200), tcp("192.0.2.2", 5060));
  EXPECT_EQ(tu.events.back().kind, "response");
}

TEST_F(TransactionTest, ClientNonInviteTimerECapsAtT2AndTimerFTimesOut) {
  auto id = *layer.send_request(request("OPTIONS"), udp("192.0.2.2", 5060), now);
  run_recording_sends(40000);
  // RFC 3261 §17.1.2.2: 0.5, 1, 2, 4, then every T2=4 s until Timer F at 32 s.
  EXPECT_EQ(send_times_ms,
            (std::vector<std::int64_t>{500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500}));
  ASSERT_EQ(tu.events.size(), 1u);
  EXPECT_EQ(tu.events[0].kind, "timeout");
  EXPECT_EQ(tu.events[0].id, id);
}

TEST_F(TransactionTest, ClientNonInviteProceedingRetransmitsEveryT2) {
  Message options = request("OPTIONS");
  (void)layer.send_request(options, udp("192.0.2.2", 5060), now);
  now = at_ms(100);
  deliver(response_to(options, 100));
  run_recording_sends(9000);
  // Timer E was set to T1 before the 100 arrived; once Proceeding each firing resets it to T2.
  EXPECT_EQ(send_times_ms, (std::vector<std::int64_t>{500, 4500, 8500}));
}

TEST_F(TransactionTest, LateResponseAfterTimerFIsStray) {
  // RFC 4321 §2.1: a final response arriving after the client gave up is dropped, never delivered
  // as if the transaction were alive.
  Message options = request("OPTIONS");
  auto id = *layer.send_request(options, udp("192.0.2.2", 5060), now);
  run_until(33000);
  EXPECT_EQ(tu.events.back().kind, "timeout");
  deliver(response_to(options, 200));
  EXPECT_EQ(tu.events.back().kind, "stray");
  EXPECT_EQ(layer.stats().stray_responses, 1u);
  EXPECT_FALSE(layer.state_of(id));
}

TEST_F(TransactionTest, ClientNonInviteCompletedAbsorbsRetransmissionsUntilTimerK) {
  Message options = request("OPTIONS");
  auto id = *layer.send_request(options, udp("192.0.2.2", 5060), now);
  deliver(response_to(options, 200));
  deliver(response_to(options, 200));
  EXPECT_EQ(tu.events.size(), 1u);
  run_until(4999);
  EXPECT_TRUE(layer.state_of(id));
  run_until(5000);  // Timer K = T4
  EXPECT_FALSE(layer.state_of(id));
}

TEST_F(TransactionTest, ServerInviteSendsTryingAfter200msAndReplaysIt) {
  deliver(request("INVITE"));
  ASSERT_EQ(tu.events.size(), 1u);
  auto id = tu.events[0].id;
  EXPECT_EQ(*layer.state_of(id), TransactionState::Proceeding);
  run_until(199);
  EXPECT_TRUE(env.sent.empty());
  run_until(200);
  ASSERT_EQ(env.sent.size(), 1u);
  EXPECT_EQ(env.sent[0].message().status(), 100);
  deliver(request("INVITE"));  // a retransmission gets the last provisional again
  EXPECT_EQ(env.sent.size(), 2u);
  EXPECT_EQ(tu.events.size(), 1u);
}

TEST_F(TransactionTest, ServerInviteNoTryingWhenTheTuAnswersAtOnce) {
  deliver(request("INVITE"));
  auto id = tu.events[0].id;
  ASSERT_TRUE(layer.respond(id, response_to(tu.last_request, 180), now));
  run_until(1000);
  ASSERT_EQ(env.sent.size(), 1u);
  EXPECT_EQ(env.sent[0].message().status(), 180);
}

TEST_F(TransactionTest, ServerInviteFinalRetransmitsOnTimerGUntilAck) {
  deliver(request("INVITE"));
  auto id = tu.events[0].id;
  ASSERT_TRUE(layer.respond(id, response_to(tu.last_request, 486), now));
  EXPECT_EQ(*layer.state_of(id), TransactionState::Completed);
  run_recording_sends(8000);
  EXPECT_EQ(send_times_ms, (std::vector<std::int64_t>{500, 1500, 3500, 7500}));
  Message ack = parse_datagram(
                    "ACK sip:bob@192.0.2.2 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKclient1\r\n"
                    "Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>;tag=b1\r\n"
                    "Call-ID: call-1@192.0.2.1\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n")
                    .value();
  deliver(ack);
  EXPECT_EQ(*layer.state_of(id), TransactionState::Confirmed);
  std::size_t sent = env.sent.size();
  deliver(ack);  // absorbed in Confirmed
  run_until(8000 + 4999);
  EXPECT_EQ(env.sent.size(), sent);
  EXPECT_TRUE(layer.state_of(id));
  run_until(8000 + 5000);  // Timer I = T4
  EXPECT_FALSE(layer.state_of(id));
  EXPECT_EQ(tu.events.size(), 1u);  // the ACK for a non-2xx never reaches the TU
}

TEST_F(TransactionTest, ServerInviteTimerHReportsAFailure) {
  deliver(request("INVITE"));
  auto id = tu.events[0].id;
  layer.respond(id, response_to(tu.last_request, 503), now);
  run_until(32000);
  EXPECT_EQ(tu.events.back().kind, "timeout");
  EXPECT_FALSE(layer.state_of(id));
}

TEST_F(TransactionTest, ServerInviteAcceptedAbsorbsRetransmissionsAndPassesAck) {
  deliver(request("INVITE"));
  auto id = tu.events[0].id;
  Message ok = response_to(tu.last_request, 200);
  ASSERT_TRUE(layer.respond(id, ok, now));
  EXPECT_EQ(*layer.state_of(id), TransactionState::Accepted);
  deliver(request("INVITE"));  // RFC 6026 §7.1: absorbed, no replay of the 2xx by the transaction
  EXPECT_EQ(env.sent.size(), 1u);
  ASSERT_TRUE(layer.respond(id, ok, now));  // the TU retransmits its 2xx through the transaction
  EXPECT_EQ(env.sent.size(), 2u);
  Message ack = request("ACK", "z9hG4bKack2xx");  // an ACK for a 2xx has its own branch
  deliver(ack);
  EXPECT_EQ(tu.events.back().kind, "ack");
  EXPECT_EQ(tu.events.back().id, 0u);
  run_until(32000);  // Timer L
  EXPECT_FALSE(layer.state_of(id));
  EXPECT_FALSE(layer.respond(id, ok, now));
}

TEST_F(TransactionTest, ServerInviteAckWithSameBranchInAcceptedReachesTu) {
  deliver(request("INVITE"));
  auto id = tu.events[0].id;
  layer.respond(id, response_to(tu.last_request, 200), now);
  deliver(request("ACK"));  // RFC 6026 §8.7: a matching ACK in Accepted goes to the TU
  EXPECT_EQ(tu.events.back().kind, "ack");
  EXPECT_EQ(tu.events.back().id, id);
}

TEST_F(TransactionTest, SilenceTimeoutEndsANonInviteThatHeardNothing) {
  RecordingEnvironment env2;
  RecordingUser tu2;
  TimerConfig timers;
  timers.non_invite_silence = millis(5500);
  TransactionLayer fast{env2, tu2, timers};
  auto silent = *fast.send_request(request("OPTIONS", "z9hG4bKsilent"), udp("192.0.2.2", 5060), now);
  Message answered = request("OPTIONS", "z9hG4bKanswered");
  auto live = *fast.send_request(answered, udp("192.0.2.3", 5060), now);
  fast.receive(response_to(answered, 100), udp("192.0.2.3", 5060), at_ms(3600));  // RFC 4320 §4.2's 100
  for (Instant t = now; t <= at_ms(5500); t = fast.next_wakeup()) fast.advance(t);
  auto timeouts = [&] {
    std::vector<TransactionId> ids;
    for (const auto& e : tu2.events) {
      if (e.kind == "timeout") ids.push_back(e.id);
    }
    return ids;
  };
  EXPECT_EQ(timeouts(), std::vector<TransactionId>{silent});
  EXPECT_EQ(fast.stats().silence_timeouts, 1u);
  EXPECT_TRUE(fast.state_of(live));  // a 100 Trying shows the peer alive: Timer F still rules
  for (Instant t = fast.next_wakeup(); t <= at_ms(32000); t = fast.next_wakeup()) fast.advance(t);
  EXPECT_EQ(timeouts(), (std::vector<TransactionId>{silent, live}));
  EXPECT_EQ(fast.stats().silence_timeouts, 1u);
}

TEST_F(TransactionTest, CompletedNonInviteNoLongerHoldsItsRequest) {
  deliver(request("OPTIONS"));
  auto id = tu.events[0].id;
  ASSERT_NE(layer.request_of(id), nullptr);
  ASSERT_TRUE(layer.respond(id, response_to(tu.last_request, 200), now));
  EXPECT_EQ(layer.request_of(id), nullptr);  // only the response is kept, for replays
  deliver(request("OPTIONS"));
  EXPECT_EQ(env.sent.back().message().status(), 200);
}

TEST_F(TransactionTest, ServerNonInviteFollowsRfc4320OverUdp) {
  deliver(request("OPTIONS"));
  auto id = tu.events[0].id;
  Message& req = tu.last_request;
  EXPECT_FALSE(layer.respond(id, response_to(req, 100), now));  // §4.1: no 100 before E reaches T2
  EXPECT_FALSE(layer.respond(id, response_to(req, 180), now));  // §4.1: no other provisional ever
  EXPECT_FALSE(layer.respond(id, response_to(req, 408), now));  // §4.3: never a 408
  EXPECT_TRUE(env.sent.empty());
  deliver(request("OPTIONS"));  // a retransmission in Trying is absorbed silently
  EXPECT_TRUE(env.sent.empty());
  run_until(3499);
  EXPECT_TRUE(env.sent.empty());
  run_until(3500);  // §4.2: the layer sends 100 when E would reach T2 and nothing was sent
  ASSERT_EQ(env.sent.size(), 1u);
  EXPECT_EQ(env.sent[0].message().status(), 100);
  EXPECT_EQ(*layer.state_of(id), TransactionState::Proceeding);
  deliver(request("OPTIONS"));  // Proceeding: the 100 is replayed
  EXPECT_EQ(env.sent.size(), 2u);
  ASSERT_TRUE(layer.respond(id, response_to(req, 200), now));
  EXPECT_EQ(*layer.state_of(id), TransactionState::Completed);
  deliver(request("OPTIONS"));  // Completed: the final is replayed
  EXPECT_EQ(env.sent.size(), 4u);
  EXPECT_EQ(env.sent.back().message().status(), 200);
  run_until(3500 + 32000);  // Timer J = 64*T1
  EXPECT_FALSE(layer.state_of(id));
  EXPECT_FALSE(layer.respond(id, response_to(req, 200), now));
  EXPECT_EQ(layer.stats().refused_responses, 4u);
}

TEST_F(TransactionTest, ServerNonInviteMayAnswer100AtOnceOverTcp) {
  Message options = parse_datagram(request_text("OPTIONS", "z9hG4bKt1", "TCP")).value();
  deliver(options, tcp("192.0.2.2", 40000));
  auto id = tu.events[0].id;
  EXPECT_TRUE(layer.respond(id, response_to(tu.last_request, 100), now));
  EXPECT_TRUE(layer.respond(id, response_to(tu.last_request, 200), now));
  EXPECT_FALSE(layer.state_of(id));  // Timer J is zero over reliable transports
  EXPECT_EQ(env.sent.size(), 2u);
  EXPECT_EQ(env.sent[0].to, tcp("192.0.2.2", 40000));  // responses go back on the connection
}

TEST_F(TransactionTest, ServerNonInviteNeverAnsweredIsReleasedAfter64T1) {
  deliver(request("MESSAGE"));
  auto id = tu.events[0].id;
  run_until(31999);
  EXPECT_TRUE(layer.state_of(id));
  run_until(32000);
  EXPECT_FALSE(layer.state_of(id));
  EXPECT_EQ(layer.size(), 0u);
}

/// RFC 4321 §3 (the proxy case): a transaction-stateful proxy whose downstream never answers lets
/// its client transaction time out, must not send the 408 the TU would like to send, and forwards
/// no late response once its server transaction is gone.
TEST_F(TransactionTest, Rfc4321ProxyNeverSends408AndDropsLateResponses) {
  deliver(request("MESSAGE", "z9hG4bKupstream"));
  auto server = tu.events[0].id;
  Message downstream = request("MESSAGE", "z9hG4bKdownstream");
  auto client = *layer.send_request(downstream, udp("192.0.2.9", 5060), now);
  run_until(32000);
  ASSERT_EQ(tu.events.back().kind, "timeout");
  EXPECT_EQ(tu.events.back().id, client);
  // The upstream got a 100 at 3.5 s (RFC 4320 §4.2) and nothing else; the TU's 408 is refused.
  EXPECT_FALSE(layer.respond(server, response_to(tu.last_request, 408), now));
  std::size_t to_upstream = 0;
  for (const auto& s : env.sent) {
    if (s.to == udp("192.0.2.2", 5060)) {
      ++to_upstream;
      EXPECT_EQ(s.message().status(), 100);
    }
  }
  EXPECT_EQ(to_upstream, 1u);
  // The server transaction is released at 64*T1 too; a late downstream 200 then goes nowhere.
  run_until(32001);
  EXPECT_FALSE(layer.state_of(server));
  deliver(response_to(downstream, 200), udp("192.0.2.9", 5060));
  EXPECT_EQ(tu.events.back().kind, "stray");
  EXPECT_FALSE(layer.respond(server, response_to(tu.last_request, 200), now));
}

TEST_F(TransactionTest, Rfc2543MatchingWithoutMagicCookie) {
  Message old = parse_datagram(request_text("INVITE", "oldbranch")).value();
  deliver(old);
  auto id = tu.events[0].id;
  deliver(old);  // the retransmission matches by Request-URI, tags, Call-ID, CSeq and Via
  EXPECT_EQ(tu.events.size(), 1u);
  layer.respond(id, response_to(tu.last_request, 404, "srv"), now);
  std::string ack_text = request_text("ACK", "oldbranch");
  ack_text.replace(ack_text.find("To: <sip:bob@example.com>"), 25, "To: <sip:bob@example.com>;tag=other");
  deliver(parse_datagram(ack_text).value());  // wrong To tag: not ours
  EXPECT_EQ(tu.events.back().kind, "ack");
  EXPECT_EQ(*layer.state_of(id), TransactionState::Completed);
  ack_text.replace(ack_text.find("tag=other"), 9, "tag=srv");
  deliver(parse_datagram(ack_text).value());
  EXPECT_EQ(*layer.state_of(id), TransactionState::Confirmed);
}

TEST_F(TransactionTest, KeysOfAnyLengthMatchTheirOwnRetransmissionsOnly) {
  // Keys up to the inline size and beyond it (a long branch, an IPv6 sent-by), side by side.
  const std::string long_branch = "z9hG4bK" + std::string(80, 'b');
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"z9hG4bKshort", "192.0.2.1:5060"},
      {long_branch, "192.0.2.1:5060"},
      {"z9hG4bKv6", "[2001:db8::1234:5678:9abc:def0]:5060"},
      {long_branch + "x", "[2001:db8::1234:5678:9abc:def0]:5060"},
  };
  for (const auto& [branch, sent_by] : cases)
    deliver(parse_datagram(request_text("OPTIONS", branch, "UDP", sent_by)).value());
  ASSERT_EQ(tu.events.size(), cases.size());
  std::set<TransactionId> ids;
  for (const auto& e : tu.events) ids.insert(e.id);
  EXPECT_EQ(ids.size(), cases.size());
  const auto absorbed = layer.stats().retransmissions_absorbed;
  for (const auto& [branch, sent_by] : cases)
    deliver(parse_datagram(request_text("OPTIONS", branch, "UDP", sent_by)).value());
  EXPECT_EQ(tu.events.size(), cases.size());  // every retransmission matched its transaction
  EXPECT_EQ(layer.stats().retransmissions_absorbed, absorbed + cases.size());
  // A branch one character shorter than a long one is another transaction.
  deliver(parse_datagram(request_text("OPTIONS", long_branch.substr(0, long_branch.size() - 1))).value());
  EXPECT_EQ(tu.events.size(), cases.size() + 1);
}

TEST_F(TransactionTest, SameBranchFromAnotherSentByIsAnotherTransaction) {
  deliver(parse_datagram(request_text("OPTIONS", "z9hG4bKsame", "UDP", "192.0.2.1:5060")).value());
  deliver(parse_datagram(request_text("OPTIONS", "z9hG4bKsame", "UDP", "192.0.2.7:5060")).value(),
          udp("192.0.2.7", 5060));
  EXPECT_EQ(tu.events.size(), 2u);
  EXPECT_NE(tu.events[0].id, tu.events[1].id);
}

TEST_F(TransactionTest, CancelFindsItsInvite) {
  deliver(request("INVITE", "z9hG4bKinv"));
  auto invite = tu.events[0].id;
  Message cancel = request("CANCEL", "z9hG4bKinv");
  deliver(cancel);
  auto cancel_id = tu.events[1].id;
  EXPECT_NE(cancel_id, invite);
  EXPECT_EQ(layer.find_invite_for_cancel(cancel).value(), invite);
  EXPECT_FALSE(layer.find_invite_for_cancel(request("CANCEL", "z9hG4bKother")));
}

TEST_F(TransactionTest, ReceivedParameterAddedWhenSentByDiffers) {
  deliver(request("OPTIONS"), udp("198.51.100.7", 6000));
  auto via = top_via(tu.last_request);
  ASSERT_TRUE(via);
  EXPECT_EQ(via->params.get("received").value(), "198.51.100.7");
  layer.respond(tu.events[0].id, response_to(tu.last_request, 200), at_ms(4000));
  // RFC 3261 §18.2.2: to the received address at the sent-by port.
  EXPECT_EQ(env.sent.back().to, udp("198.51.100.7", 5060));
  EXPECT_EQ(top_via(env.sent.back().message())->params.get("received").value(), "198.51.100.7");
}

TEST_F(TransactionTest, ARequestGivenUpIsKeptWithItsViaEditsAndAnsweredOnce) {
  // The layer takes the message (no copy); the TU sees the Via with received and rport filled.
  Message r = parse_datagram(request_text("OPTIONS", "z9hG4bKtaken;rport", "TCP")).value();
  layer.receive(std::move(r), tcp("198.51.100.7", 6000), now);
  ASSERT_EQ(tu.events.size(), 1u);
  auto via = top_via(tu.last_request);
  ASSERT_TRUE(via);
  EXPECT_EQ(via->params.get("received").value(), "198.51.100.7");
  EXPECT_EQ(via->params.get("rport").value(), "6000");
  const TransactionId id = tu.events[0].id;
  ASSERT_NE(layer.request_of(id), nullptr);
  EXPECT_EQ(top_via(*layer.request_of(id))->params.get("rport").value(), "6000");
  // Over TCP a final response ends the transaction at once (Timer J is zero): sent once, not kept.
  EXPECT_TRUE(layer.respond(id, response_to(tu.last_request, 200), now));
  ASSERT_EQ(env.sent.size(), 1u);
  EXPECT_EQ(env.sent[0].to, tcp("198.51.100.7", 6000));
  EXPECT_EQ(env.sent[0].message().status(), 200);
  const auto state = layer.state_of(id);
  EXPECT_TRUE(!state || *state == TransactionState::Terminated);
  // A retransmission now starts a new transaction (the old one is gone), as RFC 3261 §17.2.2 has it
  // for a reliable transport.
  layer.receive(parse_datagram(request_text("OPTIONS", "z9hG4bKtaken;rport", "TCP")).value(), tcp("198.51.100.7", 6000),
                now);
  EXPECT_EQ(tu.events.size(), 2u);
}

TEST_F(TransactionTest, RportSendsBackToTheSourcePort) {
  Message r = parse_datagram(request_text("OPTIONS", "z9hG4bKr;rport")).value();
  deliver(r, udp("198.51.100.7", 6000));
  EXPECT_EQ(top_via(tu.last_request)->params.get("rport").value(), "6000");
  layer.respond(tu.events[0].id, response_to(tu.last_request, 200), at_ms(4000));
  EXPECT_EQ(env.sent.back().to, udp("198.51.100.7", 6000));
}

TEST_F(TransactionTest, MalformedRequestsAreAnsweredStatelesslyAndCounted) {
  std::string bad = request_text("OPTIONS", "z9hG4bKbad");
  bad.replace(bad.find("CSeq: 1 OPTIONS"), 15, "CSeq: 1 INVITE ");
  layer.receive_datagram(bad, udp("192.0.2.1", 5060), now);
  ASSERT_EQ(env.sent.size(), 1u);
  EXPECT_EQ(env.sent[0].message().status(), 400);
  EXPECT_EQ(env.sent[0].message().reason(), "CSeq Method Mismatch");
  EXPECT_TRUE(tu.events.empty());

  std::string unframed = request_text("OPTIONS", "z9hG4bKcl");
  unframed.replace(unframed.find("Content-Length: 0"), 17, "Content-Length: 9");
  layer.receive_datagram(unframed, udp("192.0.2.1", 5060), now);
  EXPECT_EQ(env.sent.back().message().status(), 400);

  layer.receive_datagram("SIP/2.0 200 OK\r\nVia: broken\r\n\r\n", udp("192.0.2.1", 5060), now);
  layer.receive_datagram("\x01\x02garbage", udp("192.0.2.1", 5060), now);
  EXPECT_EQ(env.sent.size(), 2u);
  EXPECT_EQ(layer.stats().malformed_answered, 2u);
  EXPECT_EQ(layer.stats().malformed_dropped, 2u);
  EXPECT_EQ(layer.size(), 0u);
}

TEST_F(TransactionTest, OversizeDatagramIsAnswered513AndCounted) {
  RecordingEnvironment e;
  RecordingUser u;
  Limits limits;
  limits.max_message_bytes = 300;
  TransactionLayer small(e, u, {}, limits);
  std::string big = request_text("MESSAGE", "z9hG4bKbig");
  big.insert(big.find("Content-Length"), "Subject: " + std::string(300, 'x') + "\r\n");
  small.receive_datagram(big, udp("192.0.2.1", 5060), now);
  ASSERT_EQ(e.sent.size(), 1u);
  EXPECT_EQ(e.sent[0].message().status(), 513);
  EXPECT_EQ(small.stats().oversize, 1u);
}

TEST_F(TransactionTest, ASendTheTransportRefusesFailsByItsReturnValueAlone) {
  // libuv's rule: a call that returns an error never calls back. The TU hears nothing during the
  // send, and nothing later: the return value was the one report.
  env.fail_sends = true;
  auto sent = layer.send_request(request("OPTIONS"), udp("192.0.2.2", 5060), now);
  ASSERT_FALSE(sent);
  EXPECT_EQ(sent.error(), sip::SendError::TransportRefused);
  EXPECT_TRUE(tu.events.empty());
  EXPECT_EQ(layer.size(), 0u);
  EXPECT_EQ(layer.stats().transport_errors, 1u);
  run_until(64000);
  EXPECT_TRUE(tu.events.empty());
}

TEST_F(TransactionTest, ARetransmissionTheTransportRefusesReachesTheTuOnce) {
  auto id = *layer.send_request(request("OPTIONS"), udp("192.0.2.2", 5060), now);
  EXPECT_TRUE(tu.events.empty());
  env.fail_sends = true;  // Timer E's retransmission, 500 ms later, cannot leave
  run_until(64000);
  ASSERT_EQ(tu.events.size(), 1u);
  EXPECT_EQ(tu.events[0].kind, "transport_error");
  EXPECT_EQ(tu.events[0].id, id);
  EXPECT_FALSE(layer.state_of(id));
}

TEST_F(TransactionTest, ALostConnectionFailsTheClientTransactionsOverItAtOnce) {
  // RFC 3261 §18.4: the driver reports a connection that closed; what went over it fails now, not
  // at Timer F. Transactions over UDP, or over another connection, are not touched.
  Message over_tcp = parse_datagram(request_text("OPTIONS", "z9hG4bKlost1", "TCP")).value();
  Message invite_tcp = parse_datagram(request_text("INVITE", "z9hG4bKlost2", "TCP")).value();
  Message elsewhere = parse_datagram(request_text("OPTIONS", "z9hG4bKlost3", "TCP")).value();
  auto a = *layer.send_request(over_tcp, tcp("192.0.2.2", 5060), now);
  auto b = *layer.send_request(invite_tcp, tcp("192.0.2.2", 5060), now);
  auto c = *layer.send_request(elsewhere, tcp("192.0.2.3", 5060), now);
  auto d = *layer.send_request(request("OPTIONS", "z9hG4bKlost4"), udp("192.0.2.2", 5060), now);
  layer.connection_lost(udp("192.0.2.2", 5060), now);  // no connection: nothing happens
  EXPECT_TRUE(tu.events.empty());
  layer.connection_lost(tcp("192.0.2.2", 5060), now);
  ASSERT_EQ(tu.events.size(), 2u);
  std::set<TransactionId> failed;
  for (const auto& e : tu.events) {
    EXPECT_EQ(e.kind, "transport_error");
    failed.insert(e.id);
  }
  EXPECT_EQ(failed, (std::set<TransactionId>{a, b}));
  EXPECT_FALSE(layer.state_of(a));
  EXPECT_FALSE(layer.state_of(b));
  EXPECT_TRUE(layer.state_of(c));
  EXPECT_TRUE(layer.state_of(d));
  layer.connection_lost(tcp("192.0.2.2", 5060), now);  // again: nothing more
  EXPECT_EQ(tu.events.size(), 2u);
}

TEST_F(TransactionTest, AResponseTheTransportRefusesFailsByItsReturnValueAlone) {
  layer.receive_datagram(request_text("OPTIONS", "z9hG4bKrefused"), udp("192.0.2.1", 5060), now);
  ASSERT_EQ(tu.events.size(), 1u);
  const auto id = tu.events[0].id;
  env.fail_sends = true;
  EXPECT_FALSE(layer.respond(id, sip::make_response(*layer.request_of(id), 200), now));
  EXPECT_EQ(tu.events.size(), 1u);  // no callback: the return value said it
  EXPECT_FALSE(layer.state_of(id));
}

TEST_F(TransactionTest, BranchesAreDistinctAndCarryTheCookie) {
  auto a = layer.make_branch();
  auto b = layer.make_branch();
  EXPECT_NE(a, b);
  EXPECT_EQ(a.substr(0, 7), "z9hG4bK");
  EXPECT_GT(a.size(), 7u);
}

TEST_F(TransactionTest, ManyServerTransactionsEndingInAnyOrderStayMatched) {
  // Exercises the key index (insertions, deletions from the middle of probe runs, growth and
  // shrinking) and the timer queue (removals from anywhere) through the public interface.
  constexpr int kCount = 600;
  std::vector<TransactionId> ids;
  for (int i = 0; i < kCount; ++i) {
    deliver(request("OPTIONS", "z9hG4bKmany" + std::to_string(i)));
    ids.push_back(tu.events.back().id);
  }
  ASSERT_EQ(layer.size(), static_cast<std::size_t>(kCount));
  std::set<TransactionId> distinct(ids.begin(), ids.end());
  EXPECT_EQ(distinct.size(), ids.size());
  EXPECT_EQ(distinct.count(0), 0u);
  // Answer two thirds in a scrambled order; each answer goes out once.
  std::vector<int> order;
  for (int i = 0; i < kCount; ++i) order.push_back((i * 7919) % kCount);
  int answered = 0;
  for (int i : order) {
    if (i % 3 == 0) continue;
    Message options = request("OPTIONS", "z9hG4bKmany" + std::to_string(i));
    ASSERT_TRUE(layer.respond(ids[static_cast<std::size_t>(i)], response_to(options, 200 + i % 3), now)) << i;
    ++answered;
  }
  EXPECT_EQ(env.sent.size(), static_cast<std::size_t>(answered));
  // A retransmission of every request: answered ones replay their own final response, the others
  // (still Trying) are absorbed, and none makes a new transaction.
  const std::size_t before = env.sent.size();
  const std::size_t requests = tu.events.size();
  for (int i = 0; i < kCount; ++i) {
    deliver(request("OPTIONS", "z9hG4bKmany" + std::to_string(i)));
    if (i % 3 != 0) {
      ASSERT_EQ(env.sent.back().message().status(), 200 + i % 3) << i;
      Message replay = env.sent.back().message();
      ASSERT_EQ(top_via(replay)->branch(), "z9hG4bKmany" + std::to_string(i)) << i;
    }
  }
  EXPECT_EQ(tu.events.size(), requests);
  EXPECT_EQ(env.sent.size(), before + static_cast<std::size_t>(answered));
  // Timer J ends the answered ones, the lifetime limit the rest; then nothing is left to wake for.
  run_until(100000);
  EXPECT_EQ(layer.size(), 0u);
  EXPECT_EQ(layer.next_wakeup(), kInstantMax);
  for (auto id : ids) EXPECT_FALSE(layer.state_of(id));
}

TEST_F(TransactionTest, IdsAreNeverReusedAfterATransactionEnds) {
  Message options = parse_datagram(request_text("OPTIONS", "z9hG4bKreuse1", "TCP")).value();
  deliver(options, tcp("192.0.2.2", 40000));
  auto first = tu.events.back().id;
  ASSERT_TRUE(layer.respond(first, response_to(tu.last_request, 200), now));
  ASSERT_FALSE(layer.state_of(first));  // ended at once (reliable)
  Message again = parse_datagram(request_text("OPTIONS", "z9hG4bKreuse2", "TCP")).value();
  deliver(again, tcp("192.0.2.2", 40000));
  auto second = tu.events.back().id;
  EXPECT_NE(second, first);
  EXPECT_FALSE(layer.state_of(first));  // the old id does not reach the new transaction
  EXPECT_FALSE(layer.respond(first, response_to(tu.last_request, 200), now));
  EXPECT_TRUE(layer.respond(second, response_to(tu.last_request, 200), now));
}

TEST_F(TransactionTest, IdsAreNeverReusedAfterABurstEnds) {
  // Twelve at once move the pool out of the layer; when all have ended it comes back in place,
  // and the slots it makes again must not give out any id of the burst.
  std::set<TransactionId> burst;
  for (int round = 0; round < 3; ++round) {
    std::vector<TransactionId> ids;
    for (int i = 0; i < 12; ++i) {
      const std::string branch = "z9hG4bKburst" + std::to_string(round) + "x" + std::to_string(i);
      deliver(parse_datagram(request_text("OPTIONS", branch, "TCP")).value(), tcp("192.0.2.2", 40000));
      ids.push_back(tu.events.back().id);
    }
    EXPECT_EQ(layer.size(), 12u);
    for (auto id : ids) {
      EXPECT_TRUE(burst.insert(id).second) << "id " << id << " given out twice";
      ASSERT_TRUE(layer.respond(id, response_to(tu.last_request, 200), now));
    }
    layer.advance(now);  // the ended ones are collected
    EXPECT_EQ(layer.size(), 0u);
    for (auto id : burst) {
      EXPECT_FALSE(layer.state_of(id));
      EXPECT_FALSE(layer.respond(id, response_to(tu.last_request, 200), now));
    }
  }
}

TEST_F(TransactionTest, StoppedTimersLeaveNothingToWakeFor) {
  // A non-INVITE client over UDP runs E, F and the silence timer; its final response stops all
  // three and starts K, so the next wake-up is K (T4), not the old F.
  TimerConfig cfg;
  cfg.non_invite_silence = seconds(5);
  TransactionLayer quiet(env, tu, cfg);
  Message options = request("OPTIONS", quiet.make_branch());
  auto id = *quiet.send_request(options, udp("192.0.2.2", 5060), now);
  EXPECT_EQ(quiet.next_wakeup(), now + cfg.t1);  // Timer E
  ASSERT_TRUE(quiet.state_of(id));
  quiet.receive(parse_datagram(response_to(options, 200).serialize()).value(), udp("192.0.2.2", 5060), now);
  EXPECT_EQ(*quiet.state_of(id), TransactionState::Completed);
  EXPECT_EQ(quiet.next_wakeup(), now + cfg.t4);  // Timer K only
  quiet.advance(now + cfg.t4);
  EXPECT_FALSE(quiet.state_of(id));
  EXPECT_EQ(quiet.next_wakeup(), kInstantMax);
  EXPECT_EQ(quiet.size(), 0u);
}

}  // namespace
}  // namespace p2psip::sip
