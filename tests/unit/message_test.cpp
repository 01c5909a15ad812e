#include "node/sip/message.hpp"

#include <gtest/gtest.h>

#include "node/sip/headers.hpp"
#include "node/sip/validate.hpp"

namespace p2psip::sip {
namespace {

constexpr std::string_view kInvite =
    "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    "v: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds ,SIP/2.0/TCP 10.0.0.1:5070;branch=z9hG4bKx\r\n"
    "Max-Forwards: 70\r\n"
    "t: Bob <sip:bob@biloxi.example.com>\r\n"
    "f: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    "i: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    "CSeq: 314159 INVITE\r\n"
    "Subject: folded\r\n  across lines\r\n"
    "X-Custom: one\r\n"
    "X-Custom: two\r\n"
    "c: application/sdp\r\n"
    "l: 4\r\n"
    "\r\n"
    "v=0\r\n";

TEST(Message, ParsesRequestLineAndCompactHeaders) {
  auto m = parse_datagram(kInvite);
  ASSERT_TRUE(m) << m.error().reason;
  EXPECT_TRUE(m->is_request());
  EXPECT_EQ(m->method(), "INVITE");
  EXPECT_EQ(m->method_id(), Method::Invite);
  EXPECT_EQ(m->request_uri(), "sip:bob@biloxi.example.com");
  EXPECT_EQ(m->header(HeaderId::CallId).value(), "a84b4c76e66710@pc33.atlanta.example.com");
  EXPECT_EQ(m->header("Call-ID").value(), "a84b4c76e66710@pc33.atlanta.example.com");
  EXPECT_EQ(m->header("call-id").value(), "a84b4c76e66710@pc33.atlanta.example.com");
  EXPECT_EQ(m->header("x-custom").value(), "one");
  EXPECT_EQ(m->count(HeaderId::Via), 1u);
  EXPECT_EQ(m->body(), "v=0\r");
  EXPECT_FALSE(check_message(*m));
}

TEST(Message, FoldedValueIsOneField) {
  auto m = parse_datagram(kInvite).value();
  EXPECT_EQ(m.header(HeaderId::Subject).value(), "folded\r\n  across lines");
}

TEST(Message, MultiValuedViaSplitsOnTopLevelCommas) {
  auto m = parse_datagram(kInvite).value();
  std::vector<Via> vias;
  ASSERT_TRUE(parse_via_list(*m.header(HeaderId::Via), vias));
  ASSERT_EQ(vias.size(), 2u);
  EXPECT_EQ(vias[0].host, "pc33.atlanta.example.com");
  EXPECT_EQ(vias[0].branch(), "z9hG4bK776asdhds");
  EXPECT_EQ(vias[1].transport, "TCP");
  EXPECT_EQ(vias[1].port.value(), 5070);
}

TEST(Message, ResponseStatusLine) {
  auto m = parse_datagram("SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nContent-Length: 0\r\n\r\n");
  ASSERT_TRUE(m);
  EXPECT_TRUE(m->is_response());
  EXPECT_EQ(m->status(), 180);
  EXPECT_EQ(m->reason(), "Ringing");
  EXPECT_FALSE(parse_datagram("SIP/2.0 099 Low\r\n\r\n"));
  EXPECT_FALSE(parse_datagram("SIP/2.0 700 High\r\n\r\n"));
  EXPECT_EQ(parse_datagram("SIP/2.0 20 Short\r\n\r\n").error().status, 0);  // responses are discarded
}

TEST(Message, SerializeRewritesContentLengthInPlace) {
  auto m = parse_datagram(kInvite).value();
  m.set_body("application/sdp", "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n");
  std::string out = m.serialize();
  auto again = parse_datagram(out).value();
  EXPECT_EQ(again.body(), "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n");
  EXPECT_EQ(again.header(HeaderId::ContentLength).value(), "31");
  EXPECT_EQ(again.count(HeaderId::ContentLength), 1u);
}

TEST(Message, EditsKeepEverythingElse) {
  auto m = parse_datagram(kInvite).value();
  m.add_header_front(HeaderId::Via, "SIP/2.0/UDP proxy.example.com;branch=z9hG4bKproxy1");
  m.set_header(HeaderId::MaxForwards, "69");
  m.set_request_uri("sip:bob@192.0.2.4");
  EXPECT_TRUE(m.remove_first(HeaderId::Subject));
  auto again = parse_datagram(m.serialize()).value();
  EXPECT_EQ(top_via(again)->host, "proxy.example.com");
  EXPECT_EQ(again.count(HeaderId::Via), 2u);
  EXPECT_EQ(again.header(HeaderId::MaxForwards).value(), "69");
  EXPECT_EQ(again.request_uri(), "sip:bob@192.0.2.4");
  EXPECT_FALSE(again.header(HeaderId::Subject));
  EXPECT_EQ(again.body(), "v=0\r");
  EXPECT_EQ(again.remove_all(HeaderId::Other), 2u);  // the two X-Custom fields
}

TEST(Message, CopiesStayValid) {
  Message copy;
  {
    auto m = parse_datagram(kInvite).value();
    copy = m;
  }
  EXPECT_EQ(copy.header(HeaderId::CSeq).value(), "314159 INVITE");
}

TEST(Message, ParseTakingKeepsTheBufferOnSuccessAndLeavesItOnFailure) {
  const std::string text =
      "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nContent-Length: 2\r\n\r\nhi";
  std::string bytes = "\r\n" + text + "trailing";
  const char* buffer = bytes.data();
  auto m = parse_taking(bytes, Limits{}, true);
  ASSERT_TRUE(m);
  EXPECT_TRUE(bytes.empty());
  EXPECT_EQ(m->method(), "OPTIONS");
  EXPECT_EQ(m->body(), "hi");
  EXPECT_EQ(m->serialize(), text);  // the keep-alive CRLF and the octets after the body are cut off
  EXPECT_EQ(m->serialize(), parse_datagram(text)->serialize());
  EXPECT_EQ(m->method().data(), buffer);  // the same buffer, not a copy
  // Edits after taking work as on any message.
  m->set_header(HeaderId::Via, "SIP/2.0/TCP h;branch=z9hG4bK1;received=192.0.2.9");
  EXPECT_EQ(top_via(*m)->params.get("received").value(), "192.0.2.9");

  std::string bad = "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h\r\n\r\n";  // a stream needs Content-Length
  const std::string before = bad;
  auto r = parse_taking(bad, Limits{}, true);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().status, 400);
  EXPECT_EQ(bad, before);
}

TEST(Message, HeadersWrittenInPlaceEqualHeadersAdded) {
  Message a = Message::request("OPTIONS", "sip:bob@example.com");
  Message b =
      Message::request_writing("OPTIONS", [](std::string& out) { out.append("sip:bob").append("@example.com"); });
  a.add_header(HeaderId::To, "<sip:bob@example.com>");
  b.add_header_writing(HeaderId::To, [](std::string& out) { out.append("<sip:bob@example.com>"); });
  a.add_header("X-Extra", "1");
  b.add_header_writing("X-Extra", [](std::string& out) { out.append(1, '1'); });
  b.add_header_writing("t", [](std::string& out) { out.append("<sip:x@y>"); });  // compact name: To
  a.add_header(HeaderId::To, "<sip:x@y>");
  EXPECT_EQ(a.serialize(), b.serialize());
  EXPECT_EQ(b.request_uri(), "sip:bob@example.com");
  EXPECT_EQ(b.method_id(), Method::Options);
  EXPECT_EQ(b.count(HeaderId::To), 2u);
}

TEST(Message, DatagramWithoutContentLengthTakesTheRest) {
  auto m = parse_datagram("MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\n\r\nhello");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->body(), "hello");
}

TEST(Message, StreamRequiresContentLength) {
  std::size_t used = 0;
  auto m = parse_message("OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h\r\n\r\n", Limits{}, true, &used);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().status, 400);
}

TEST(Message, LimitsAreEnforcedWithTheRightAnswer) {
  Limits small;
  small.max_body_bytes = 3;
  auto r = parse_datagram("MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nContent-Length: 5\r\n\r\nhello", small);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().status, 413);

  Limits few;
  few.max_headers = 2;
  r = parse_datagram("OPTIONS sip:a@b SIP/2.0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", few);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().status, 513);

  Limits short_lines;
  short_lines.max_header_line = 10;
  r = parse_datagram("OPTIONS sip:a@b SIP/2.0\r\nSubject: this is far too long\r\n\r\n", short_lines);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().status, 513);

  Limits tiny;
  tiny.max_message_bytes = 40;
  r = parse_datagram("OPTIONS sip:a@b SIP/2.0\r\nSubject: this makes it over forty\r\n\r\n", tiny);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().status, 513);

  // The same limits on a response: discarded, not answered.
  r = parse_datagram("SIP/2.0 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", few);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().status, 0);
}

TEST(Message, MalformedHeaderLineIsRejected) {
  auto r = parse_datagram("OPTIONS sip:a@b SIP/2.0\r\nNo colon here\r\n\r\n");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().status, 400);
}

TEST(Message, LeadingCrlfIgnored) {
  auto r = parse_datagram("\r\n\r\nOPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nContent-Length: 0\r\n\r\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->method(), "OPTIONS");
}

TEST(Message, GarbageNeverCrashes) {
  using namespace std::string_view_literals;
  // The literals' real lengths (sv): three NULs are three octets, not an empty string, and a NUL
  // inside a start line ends nothing early.
  for (std::string_view g :
       {""sv, "\r\n"sv, "INVITE"sv, "INVITE sip:a SIP/2.0"sv, "SIP/2.0"sv, "\0\0\0"sv, "SIP/2.0 200 OK\r\n"sv,
        "OPTIONS\0sip:a SIP/2.0\r\n\r\n"sv, "SIP/2.0 2\0\0 OK\r\n\r\n"sv}) {
    auto r = parse_datagram(g);
    EXPECT_FALSE(r) << "accepted " << g.size() << " octets";
  }
  EXPECT_EQ(("\0\0\0"sv).size(), 3u);
}

TEST(Message, MakeResponseFollowsRfc3261Section8_2_6) {
  auto req = parse_datagram(kInvite).value();
  Message r = make_response(req, 180, "", "abc");
  EXPECT_EQ(r.status(), 180);
  EXPECT_EQ(r.reason(), "Ringing");
  EXPECT_EQ(r.header(HeaderId::To).value(), "Bob <sip:bob@biloxi.example.com>;tag=abc");
  EXPECT_EQ(r.header(HeaderId::Via).value(), req.header(HeaderId::Via).value());
  EXPECT_EQ(r.header(HeaderId::CSeq).value(), "314159 INVITE");
  Message trying = make_response(req, 100, "", "abc");
  EXPECT_EQ(trying.header(HeaderId::To).value(), "Bob <sip:bob@biloxi.example.com>");  // no tag on 100
  auto reparsed = parse_datagram(r.serialize());
  ASSERT_TRUE(reparsed);
  EXPECT_FALSE(check_message(*reparsed));
}

TEST(Message, MakeResponseAddsATagOnlyWhereTheToHasNone) {
  // A To holding the letters "tag" outside its parameters is parsed, and gets a tag; one with a
  // tag parameter in any case keeps it alone.
  auto with_to = [](std::string_view to) {
    std::string text =
        "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
        "From: <sip:c@d>;tag=1\r\nTo: ";
    text.append(to).append("\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n");
    auto req = parse_datagram(text).value();
    return std::string(make_response(req, 200, "", "new").header(HeaderId::To).value());
  };
  EXPECT_EQ(with_to("<sip:a@b>"), "<sip:a@b>;tag=new");
  EXPECT_EQ(with_to("\"Tagged\" <sip:tag@b;tag=u>"), "\"Tagged\" <sip:tag@b;tag=u>;tag=new");
  EXPECT_EQ(with_to("<sip:a@b>;TAG=old"), "<sip:a@b>;TAG=old");
  EXPECT_EQ(with_to("<sip:a@b> ; tAg = old"), "<sip:a@b> ; tAg = old");
}

TEST(Message, RawErrorResponseCopiesTheTransactionHeaders) {
  std::string_view bad =
      "INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\nFrom: <sip:c@d>;tag=1\r\n"
      "To: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 99\r\n\r\nshort";
  auto text = make_error_response_raw(bad, 400, "Content-Length Larger Than Message");
  ASSERT_TRUE(text);
  auto r = parse_datagram(*text);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status(), 400);
  EXPECT_EQ(r->header(HeaderId::CSeq).value(), "1 INVITE");
  EXPECT_EQ(top_via(*r)->branch(), "z9hG4bK1");
  EXPECT_FALSE(make_error_response_raw("INVITE sip:a@b SIP/2.0\r\nFrom: x\r\n\r\n", 400, "x"));
}

}  // namespace
}  // namespace p2psip::sip
