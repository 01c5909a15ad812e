// STUN messages (nat/stun.hpp) against RFC 5769's test vectors, and the client transactions'
// retransmission schedule (RFC 8489 §6.2.1) on virtual time.
#include "nat/stun.hpp"

#include <gtest/gtest.h>

#include "nat/stun_client.hpp"
#include "sip_harness.hpp"

namespace p2psip::test {
namespace {

using namespace p2psip::nat;

std::string from_hex(std::string_view h) {
  std::string out;
  int nibble = -1;
  for (char c : h) {
    int v = -1;
    if (c >= '0' && c <= '9') v = c - '0';
    if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
    if (v < 0) continue;
    if (nibble < 0) {
      nibble = v;
    } else {
      out.push_back(static_cast<char>(nibble << 4 | v));
      nibble = -1;
    }
  }
  return out;
}

// RFC 5769 §2.1: software "STUN test client", username "evtj:h6vY", password
// "VOkJxbRl1RmTxUk/WvJxBt" (short-term), padding written as spaces.
const std::string kRequest = from_hex(
    "00010058 2112a442 b7e7a701 bc34d686 fa87dfae"
    "80220010 5354554e 20746573 7420636c 69656e74"
    "00240004 6e0001ff"
    "80290008 932ff9b1 51263b36"
    "00060009 6576746a 3a683676 59202020"
    "00080014 9aeaa70c bfd8cb56 781ef2b5 b2d3f249 c1b571a2"
    "80280004 e57a3bcf");
// §2.2: software "test vector", mapped address 192.0.2.1 port 32853.
const std::string kResponseV4 = from_hex(
    "0101003c 2112a442 b7e7a701 bc34d686 fa87dfae"
    "8022000b 74657374 20766563 746f7220"
    "00200008 0001a147 e112a643"
    "00080014 2b91f599 fd9e90c3 8c7489f9 2af9ba53 f06be7d7"
    "80280004 c07d4c96");
// §2.3: mapped address 2001:db8:1234:5678:11:2233:4455:6677 port 32853.
const std::string kResponseV6 = from_hex(
    "01010048 2112a442 b7e7a701 bc34d686 fa87dfae"
    "8022000b 74657374 20766563 746f7220"
    "00200014 0002a147 0113a9fa a5d3f179 bc25f4b5 bed2b9d9"
    "00080014 a382954e 4be67bf1 1784c97c 8292c275 bfe3ed41"
    "80280004 c8fb0b4c");
// §2.4: long-term credentials; username U+30DE U+30C8 U+30EA U+30C3 U+30AF U+30B9, realm
// "example.org", password "TheMatrIX" after SASLprep.
const std::string kRequestLongTerm = from_hex(
    "00010060 2112a442 78ad3433 c6ad72c0 29da412e"
    "00060012 e3839ee3 8388e383 aae38383 e382afe3 82b90000"
    "0015001c 662f2f34 39396b39 35346436 4f4c3334 6f4c3946 53547679 36347341"
    "0014000b 6578616d 706c652e 6f726700"
    "00080014 f6702465 6dd64a3e 02b8e071 2e85c9a2 8ca89666");
const std::string kPassword = "VOkJxbRl1RmTxUk/WvJxBt";

TEST(Stun, DecodesRfc5769SampleRequest) {
  ASSERT_TRUE(looks_like_stun(kRequest));
  auto m = decode_stun(kRequest);
  ASSERT_TRUE(m) << describe(m.error());
  EXPECT_EQ(m->cls, StunClass::Request);
  EXPECT_EQ(m->method, method::Binding);
  EXPECT_EQ(m->id[0], 0xb7);
  EXPECT_EQ(m->id[11], 0xae);
  ASSERT_NE(m->find(attr::Software), nullptr);
  EXPECT_EQ(m->find(attr::Software)->value, "STUN test client");
  EXPECT_EQ(m->find(attr::Username)->value, "evtj:h6vY");
  EXPECT_EQ(m->find(attr::Priority)->value.size(), 4U);
  EXPECT_TRUE(check_integrity(*m, kPassword));
  EXPECT_FALSE(check_integrity(*m, "VOkJxbRl1RmTxUk/WvJxBu"));
  EXPECT_FALSE(check_integrity_sha256(*m, kPassword));  // it has none
}

TEST(Stun, DecodesRfc5769SampleResponsesWithTheirMappedAddresses) {
  auto v4 = decode_stun(kResponseV4);
  ASSERT_TRUE(v4) << describe(v4.error());
  EXPECT_EQ(v4->cls, StunClass::Success);
  EXPECT_EQ(v4->method, method::Binding);
  ASSERT_TRUE(v4->mapped_address());
  EXPECT_EQ(v4->mapped_address()->host_port(), "192.0.2.1:32853");
  EXPECT_TRUE(check_integrity(*v4, kPassword));

  auto v6 = decode_stun(kResponseV6);
  ASSERT_TRUE(v6) << describe(v6.error());
  ASSERT_TRUE(v6->mapped_address());
  EXPECT_EQ(v6->mapped_address()->host_port(), "[2001:db8:1234:5678:11:2233:4455:6677]:32853");
  EXPECT_TRUE(check_integrity(*v6, kPassword));
}

TEST(Stun, ChecksRfc5769LongTermCredentials) {
  auto m = decode_stun(kRequestLongTerm);
  ASSERT_TRUE(m) << describe(m.error());
  EXPECT_EQ(m->find(attr::Realm)->value, "example.org");
  EXPECT_EQ(m->find(attr::Nonce)->value, "f//499k954d6OL34oL9FSTvy64sA");
  const std::string user = from_hex("e3839e e38388 e383aa e38383 e382af e382b9");
  EXPECT_TRUE(check_integrity(*m, long_term_key(user, "example.org", "TheMatrIX")));
  EXPECT_FALSE(check_integrity(*m, long_term_key(user, "example.org", "TheMatrix")));
}

TEST(Stun, BuildsRfc5769SampleMessagesByteForByte) {
  // RFC 5769 pads with spaces; with that padding the builder's attributes, MESSAGE-INTEGRITY and
  // FINGERPRINT must come out exactly as the RFC's.
  StunTransactionId id{};
  std::copy_n(kRequest.begin() + 8, 12, id.begin());
  StunBuilder req(StunClass::Request, method::Binding, id, ' ');
  req.add(attr::Software, "STUN test client")
      .add_u32(attr::Priority, 0x6e0001ff)
      .add_u64(attr::IceControlled, 0x932ff9b151263b36ULL)
      .add(attr::Username, "evtj:h6vY")
      .add_integrity(kPassword)
      .add_fingerprint();
  EXPECT_EQ(req.bytes(), kRequest);

  StunBuilder v4(StunClass::Success, method::Binding, id, ' ');
  v4.add(attr::Software, "test vector")
      .add_xor_mapped_address({Transport::Udp, *IpAddress::parse("192.0.2.1"), 32853})
      .add_integrity(kPassword)
      .add_fingerprint();
  EXPECT_EQ(v4.bytes(), kResponseV4);

  StunBuilder v6(StunClass::Success, method::Binding, id, ' ');
  v6.add(attr::Software, "test vector")
      .add_xor_mapped_address({Transport::Udp, *IpAddress::parse("2001:db8:1234:5678:11:2233:4455:6677"), 32853})
      .add_integrity(kPassword)
      .add_fingerprint();
  EXPECT_EQ(v6.bytes(), kResponseV6);
}

TEST(Stun, IntegrityAndFingerprintRoundTrip) {
  StunTransactionId id{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  const Endpoint v6{Transport::Udp, *IpAddress::parse("2001:db8::7"), 4000};
  for (bool sha256 : {false, true}) {
    StunBuilder b(StunClass::Success, method::Binding, id);
    b.add_xor_mapped_address(v6).add(attr::Software, "p2psip");
    if (sha256) {
      b.add_integrity(kPassword).add_integrity_sha256(kPassword);
    } else {
      b.add_integrity(kPassword);
    }
    b.add_fingerprint();
    const std::string bytes = std::move(b).finish();
    auto m = decode_stun(bytes);
    ASSERT_TRUE(m) << describe(m.error());
    EXPECT_EQ(m->mapped_address()->host_port(), "[2001:db8::7]:4000");
    EXPECT_TRUE(check_integrity(*m, kPassword));
    EXPECT_EQ(check_integrity_sha256(*m, kPassword), sha256);
    EXPECT_FALSE(check_integrity_sha256(*m, "other"));
    // Any flipped bit in the body breaks the fingerprint.
    std::string bad = bytes;
    bad[30] = static_cast<char>(bad[30] ^ 0x01);
    auto broken = decode_stun(bad);
    ASSERT_FALSE(broken);
    EXPECT_EQ(broken.error(), StunError::BadFingerprint);
  }
}

TEST(Stun, RefusesWhatIsNotAWellFormedMessage) {
  EXPECT_FALSE(looks_like_stun("INVITE sip:bob@example.com SIP/2.0\r\n"));
  EXPECT_FALSE(looks_like_stun("\r\n\r\n"));
  EXPECT_EQ(decode_stun(kRequest.substr(0, 19)).error(), StunError::NotStun);
  std::string cookie = kRequest;
  cookie[5] = 0;
  EXPECT_EQ(decode_stun(cookie).error(), StunError::NotStun);
  EXPECT_EQ(decode_stun(kRequest.substr(0, kRequest.size() - 4)).error(), StunError::BadLength);
  std::string odd = kRequest;
  odd[3] = 0x57;  // not a multiple of 4
  EXPECT_EQ(decode_stun(odd).error(), StunError::BadLength);
  // An attribute whose length runs past the end.
  StunTransactionId id{};
  std::string over = StunBuilder(StunClass::Request, method::Binding, id).add(attr::Software, "abcd").bytes();
  over[kStunHeaderSize + 3] = 0x20;
  EXPECT_EQ(decode_stun(over).error(), StunError::BadAttribute);
  // Something after FINGERPRINT.
  std::string after = StunBuilder(StunClass::Request, method::Binding, id).add_fingerprint().bytes();
  StunBuilder tail(StunClass::Request, method::Binding, id);
  tail.add_fingerprint().add(attr::Software, "x");
  EXPECT_EQ(decode_stun(tail.bytes()).error(), StunError::BadAttribute);
  EXPECT_TRUE(decode_stun(after));
  // Too many attributes.
  StunBuilder many(StunClass::Request, method::Binding, id);
  for (std::size_t i = 0; i <= kMaxStunAttributes; ++i) many.add(attr::Software, "");
  EXPECT_EQ(decode_stun(many.bytes()).error(), StunError::TooManyAttributes);
}

TEST(Stun, IgnoresAttributesAfterMessageIntegrity) {
  StunTransactionId id{};
  StunBuilder b(StunClass::Request, method::Binding, id);
  b.add_integrity("k").add(attr::Software, "late").add(0x0003, std::string(4, '\0'));
  auto m = decode_stun(b.bytes());
  ASSERT_TRUE(m);
  EXPECT_EQ(m->find(attr::Software), nullptr);
  EXPECT_TRUE(m->unknown_required({attr::MessageIntegrity}).empty());
  EXPECT_TRUE(check_integrity(*m, "k"));
}

TEST(Stun, AnswersBindingRequestsAndRefusesUnknownRequiredAttributes) {
  auto req = decode_stun(kRequest);
  ASSERT_TRUE(req);
  const Endpoint from{Transport::Udp, *IpAddress::parse("203.0.113.9"), 61000};
  const std::string answer = answer_binding(*req, from, "");
  auto a = decode_stun(answer);
  ASSERT_TRUE(a) << describe(a.error());
  EXPECT_EQ(a->cls, StunClass::Success);
  EXPECT_EQ(a->id, req->id);
  EXPECT_EQ(a->mapped_address(), from);
  EXPECT_NE(a->find(attr::Fingerprint), nullptr);  // the request had one

  // RFC 5780's CHANGE-REQUEST (0x0003) is comprehension-required and unknown here: 420.
  StunTransactionId id{9};
  const std::string change = StunBuilder(StunClass::Request, method::Binding, id).add_u32(0x0003, 6).bytes();
  auto c = decode_stun(change);
  ASSERT_TRUE(c);
  const std::string refusal = answer_binding(*c, from, "p2psip");  // the decoded views point into it
  auto refused = decode_stun(refusal);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->cls, StunClass::Error);
  ASSERT_TRUE(refused->error_code());
  EXPECT_EQ(refused->error_code()->first, 420);
  ASSERT_NE(refused->find(attr::UnknownAttributes), nullptr);
  EXPECT_EQ(refused->find(attr::UnknownAttributes)->value, std::string("\x00\x03", 2));
  EXPECT_EQ(refused->find(attr::Fingerprint), nullptr);  // the request had none
}

Instant at(std::int64_t ms) {
  return Instant{} + millis(ms);
}

// RFC 8489 §12.2: a classic (RFC 3489) Binding request, as libnice's agents send one to find their
// server-reflexive candidates, is answered with its 128-bit transaction ID and MAPPED-ADDRESS.
TEST(Stun, AnswersClassicRfc3489BindingRequestsWithMappedAddress) {
  std::string req("\x00\x01\x00\x00", 4);
  req += std::string("\x7c\x99\x21\x40\xd1\xd7\x07\xef\x53\x54\x2d\x61\xc3\x99\xd7\xa1", 16);
  ASSERT_TRUE(is_classic_binding_request(req));
  EXPECT_FALSE(looks_like_stun(req));
  const Endpoint from{Transport::Udp, *IpAddress::parse("198.51.100.14"), 40001};
  const std::string a = answer_classic_binding(req, from);
  const std::string want = std::string("\x01\x01\x00\x0c", 4) + req.substr(4, 16) +
                           std::string("\x00\x01\x00\x08\x00\x01\x9c\x41\xc6\x33\x64\x0e", 12);
  EXPECT_EQ(a, want);
  // Not classic: the magic cookie (RFC 5389 and later), a response, a bad length, an attribute
  // that must be understood (CHANGE-REQUEST); optional attributes are passed over.
  StunBuilder b(StunClass::Request, method::Binding, StunTransactionId{});
  EXPECT_FALSE(is_classic_binding_request(std::move(b).finish()));
  std::string response = req;
  response[1] = '\x01';
  response[0] = '\x01';
  EXPECT_FALSE(is_classic_binding_request(response));
  EXPECT_FALSE(is_classic_binding_request(req + std::string(4, '\0'))) << "its length says 0";
  std::string change = req + std::string("\x00\x03\x00\x04\x00\x00\x00\x06", 8);
  change[3] = 8;
  EXPECT_FALSE(is_classic_binding_request(change));
  std::string optional = req + std::string(
                                   "\x80\x22\x00\x03"
                                   "abc\x00",
                                   8);
  optional[3] = 8;
  EXPECT_TRUE(is_classic_binding_request(optional));
  EXPECT_FALSE(is_classic_binding_request(req.substr(0, 19)));
}

TEST(StunClient, RetransmitsAtDoublingIntervalsAndTimesOutAt39500ms) {
  RecordingEnvironment env;
  StunClient client(env);
  const Endpoint peer{Transport::Udp, *IpAddress::parse("198.51.100.20"), 5070};
  int calls = 0;
  StunOutcome last;
  auto id = client.binding(peer, at(0), [&](const StunOutcome& o) {
    ++calls;
    last = o;
  });
  ASSERT_TRUE(id);
  ASSERT_EQ(env.sent.size(), 1U);
  EXPECT_TRUE(decode_stun(env.sent[0].bytes));
  // RFC 8489 §6.2.1's example: sends at 0, 500, 1500, 3500, 7500, 15500 and 31500 ms.
  std::vector<std::int64_t> sends;
  for (std::int64_t t = 0; t <= 40000; t += 50) {
    const std::size_t before = env.sent.size();
    client.advance(at(t));
    if (env.sent.size() > before) sends.push_back(t);
    if (calls > 0) {
      EXPECT_EQ(t, 39500);
      break;
    }
  }
  EXPECT_EQ(sends, (std::vector<std::int64_t>{500, 1500, 3500, 7500, 15500, 31500}));
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(last.kind, StunOutcome::Kind::Timeout);
  EXPECT_EQ(last.sends, 7);
  EXPECT_EQ(client.outstanding(), 0U);
  EXPECT_EQ(client.next_wakeup(), kInstantMax);
}

TEST(StunClient, EndsOnTheAnswerFromThePeerItAskedOnly) {
  RecordingEnvironment env;
  StunClient client(env);
  const Endpoint peer{Transport::Udp, *IpAddress::parse("198.51.100.20"), 5070};
  std::vector<StunOutcome> outcomes;
  ASSERT_TRUE(client.binding(peer, at(0), [&](const StunOutcome& o) { outcomes.push_back(o); }));
  auto req = decode_stun(env.sent[0].bytes);
  ASSERT_TRUE(req);
  const Endpoint mapped{Transport::Udp, *IpAddress::parse("203.0.113.5"), 40000};
  const std::string answer = answer_binding(*req, mapped, "");
  auto a = decode_stun(answer);
  ASSERT_TRUE(a);
  // The same answer from another address is stray.
  Endpoint other = peer;
  other.port = 5071;
  EXPECT_FALSE(client.receive(*a, other, at(100)));
  EXPECT_EQ(client.stats().stray_responses, 1U);
  EXPECT_TRUE(outcomes.empty());
  EXPECT_TRUE(client.receive(*a, peer, at(120)));
  ASSERT_EQ(outcomes.size(), 1U);
  EXPECT_EQ(outcomes[0].kind, StunOutcome::Kind::Success);
  EXPECT_EQ(outcomes[0].mapped, mapped);
  EXPECT_EQ(outcomes[0].rtt, millis(120));
  EXPECT_EQ(outcomes[0].at, at(120));
  // A duplicate after the end is stray too.
  EXPECT_FALSE(client.receive(*a, peer, at(130)));
  EXPECT_EQ(outcomes.size(), 1U);
}

TEST(StunClient, ASendRefusedAtOnceIsReportedByTheReturnValueOnly) {
  RecordingEnvironment env;
  env.fail_sends = true;
  StunClient client(env);
  int calls = 0;
  auto r = client.binding({Transport::Udp, *IpAddress::parse("198.51.100.20"), 5070}, at(0),
                          [&](const StunOutcome&) { ++calls; });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), StunSendError::TransportRefused);
  client.advance(at(60000));
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(client.outstanding(), 0U);

  // A retransmission that fails ends the transaction with one report, from advance().
  env.fail_sends = false;
  std::vector<StunOutcome> outcomes;
  ASSERT_TRUE(client.binding({Transport::Udp, *IpAddress::parse("198.51.100.20"), 5070}, at(0),
                             [&](const StunOutcome& o) { outcomes.push_back(o); }));
  env.fail_sends = true;
  client.advance(at(500));
  ASSERT_EQ(outcomes.size(), 1U);
  EXPECT_EQ(outcomes[0].kind, StunOutcome::Kind::TransportError);
  client.advance(at(60000));
  EXPECT_EQ(outcomes.size(), 1U);
}

TEST(StunClient, OnAReliableTransportWaitsTiWithoutRetransmitting) {
  RecordingEnvironment env;
  StunClient client(env);
  int calls = 0;
  ASSERT_TRUE(client.binding({Transport::Tcp, *IpAddress::parse("198.51.100.20"), 5070}, at(0),
                             [&](const StunOutcome&) { ++calls; }));
  client.advance(at(39499));
  EXPECT_EQ(env.sent.size(), 1U);
  EXPECT_EQ(calls, 0);
  client.advance(at(39500));
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(env.sent.size(), 1U);
}

TEST(StunClient, RefusesMoreThanItsLimitAndDrawsIdsFromTheSecureSource) {
  struct Counting : RecordingEnvironment {
    std::uint64_t random() override {
      ++seeded;
      return RecordingEnvironment::random();
    }
    std::uint64_t secure_random() override {
      ++secure;
      return RecordingEnvironment::random();
    }
    int seeded = 0, secure = 0;
  } env;
  StunClientConfig cfg;
  cfg.max_outstanding = 2;
  StunClient client(env, cfg);
  const Endpoint peer{Transport::Udp, *IpAddress::parse("198.51.100.20"), 5070};
  auto a = client.binding(peer, at(0), nullptr);
  auto b = client.binding(peer, at(0), nullptr);
  ASSERT_TRUE(a);
  ASSERT_TRUE(b);
  EXPECT_NE(*a, *b);
  auto c = client.binding(peer, at(0), nullptr);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error(), StunSendError::TooMany);
  // The ids come from the secure source: two draws (eight bytes each) per twelve-byte id.
  EXPECT_EQ(env.secure, 6);
  EXPECT_EQ(env.seeded, 0);
}

}  // namespace
}  // namespace p2psip::test
