#include "node/sip/stream_framer.hpp"

#include <gtest/gtest.h>

namespace p2psip::sip {
namespace {

constexpr std::string_view kTwo =
    "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nContent-Length: 5\r\n\r\nhello"
    "\r\n\r\n"  // a keep-alive ping between messages
    "SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nl: 0\r\n\r\n";

std::vector<StreamFramer::Item> drain(StreamFramer& f) {
  std::vector<StreamFramer::Item> items;
  for (;;) {
    auto it = f.next();
    if (it.kind == StreamFramer::Kind::NeedMore) break;
    items.push_back(std::move(it));
  }
  return items;
}

TEST(StreamFramer, WholeBufferAtOnce) {
  StreamFramer f;
  f.feed(kTwo);
  auto items = drain(f);
  ASSERT_EQ(items.size(), 3u);
  EXPECT_EQ(items[0].kind, StreamFramer::Kind::Message);
  EXPECT_EQ(items[0].message->body(), "hello");
  EXPECT_EQ(items[1].kind, StreamFramer::Kind::Ping);
  EXPECT_EQ(items[2].message->status(), 200);
  EXPECT_EQ(f.buffered(), 0u);
}

TEST(StreamFramer, EveryChunkingGivesTheSameMessages) {
  for (std::size_t chunk = 1; chunk <= kTwo.size(); chunk += 7) {
    StreamFramer f;
    std::vector<StreamFramer::Item> items;
    for (std::size_t i = 0; i < kTwo.size(); i += chunk) {
      f.feed(kTwo.substr(i, chunk));
      for (auto& it : drain(f)) items.push_back(std::move(it));
    }
    ASSERT_EQ(items.size(), 3u) << "chunk " << chunk;
    EXPECT_EQ(items[0].message->body(), "hello");
    EXPECT_EQ(items[1].kind, StreamFramer::Kind::Ping);
    EXPECT_EQ(items[2].message->status(), 200);
  }
}

TEST(StreamFramer, ALoneCrlfIsThePongOnlyWhileOurPingWaits) {
  StreamFramer f;
  f.feed("\r\n");  // padding, or the start of a ping: nothing yet
  EXPECT_TRUE(drain(f).empty());
  f.expect_pong();  // we sent a ping: the lone CRLF is its pong (RFC 5626 §4.4.1)
  auto items = drain(f);
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0].kind, StreamFramer::Kind::Pong);
  f.feed("\r\n");  // no ping of ours waits: skipped as padding once more bytes come
  f.feed(kTwo);
  items = drain(f);
  ASSERT_EQ(items.size(), 3u);
  EXPECT_EQ(items[0].kind, StreamFramer::Kind::Message);
  EXPECT_EQ(items[1].kind, StreamFramer::Kind::Ping);
  // A ping from the peer while ours waits is still a ping; the pong after it is ours.
  f.expect_pong();
  f.feed("\r\n\r\n\r\n");
  items = drain(f);
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[0].kind, StreamFramer::Kind::Ping);
  EXPECT_EQ(items[1].kind, StreamFramer::Kind::Pong);
}

TEST(StreamFramer, MissingContentLengthLosesFraming) {
  StreamFramer f;
  f.feed("OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h\r\n\r\n");
  auto it = f.next();
  EXPECT_EQ(it.kind, StreamFramer::Kind::Error);
  EXPECT_EQ(it.error.status, 400);
  EXPECT_TRUE(f.failed());
  EXPECT_EQ(f.next().kind, StreamFramer::Kind::NeedMore);
}

TEST(StreamFramer, OversizeIsRefusedWithoutBuffering) {
  Limits l;
  l.max_message_bytes = 128;
  StreamFramer f(l);
  f.feed(std::string(200, 'A'));
  auto it = f.next();
  EXPECT_EQ(it.kind, StreamFramer::Kind::Error);
  EXPECT_EQ(it.error.status, 513);
  StreamFramer g(l);
  g.feed("MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 4000000000\r\n\r\n");
  it = g.next();
  EXPECT_EQ(it.error.status, 413);
}

TEST(StreamFramer, BadMessageWithGoodFramingKeepsTheConnection) {
  StreamFramer f;
  f.feed("INVITE sip:a@b SIP/7.0\r\nContent-Length: 0\r\n\r\nOPTIONS sip:a@b SIP/2.0\r\nl: 0\r\n\r\n");
  auto first = f.next();
  EXPECT_EQ(first.kind, StreamFramer::Kind::Error);
  EXPECT_EQ(first.error.status, 505);
  EXPECT_FALSE(f.failed());
  auto second = f.next();
  EXPECT_EQ(second.kind, StreamFramer::Kind::Message);
}

}  // namespace
}  // namespace p2psip::sip
