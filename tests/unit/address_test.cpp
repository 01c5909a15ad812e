// IP address text: the dotted-quad reader and writer on every message's path, against inet_pton's rules.
#include "core/address.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>

namespace p2psip {
namespace {

TEST(IpAddress, DottedQuadReadsAndWritesAsInetPtonDoes) {
  for (const char* good : {"0.0.0.0", "255.255.255.255", "10.1.2.3", "127.0.0.1", "192.0.2.200"}) {
    auto a = IpAddress::parse(good);
    ASSERT_TRUE(a) << good;
    EXPECT_FALSE(a->v6);
    EXPECT_EQ(a->to_string(), good);
  }
  for (const char* bad : {"", "256.1.1.1", "01.2.3.4", "1.2.3", "1.2.3.4.5", "1..2.3", " 1.2.3.4", "1.2.3.4 ",
                          "1.2.3.a", "1234.1.1.1", "1.2.3.", ".1.2.3", "1.2.3.-4", "0x1.2.3.4"}) {
    EXPECT_FALSE(IpAddress::parse(bad)) << bad;
  }
  // Agreement with the C library on random text made of digits and dots.
  std::mt19937 rng(7);
  const char alphabet[] = "0123456789.";
  for (int n = 0; n < 20000; ++n) {
    std::string text;
    const int len = 1 + static_cast<int>(rng() % 16);
    for (int i = 0; i < len; ++i) text += alphabet[rng() % 11];
    unsigned char out[4];
    const bool libc = inet_pton(AF_INET, text.c_str(), out) == 1;
    auto ours = IpAddress::parse(text);
    ASSERT_EQ(libc, ours.has_value()) << "'" << text << "'";
    // The prefix reader, as a peer value's host is read (followed by ":port"): what it reads is a
    // dotted quad inet_pton takes, the same bytes, and all of the text where that is one.
    std::size_t used = 0;
    auto prefix = IpAddress::parse_v4_prefix(text + ":5060", used);
    if (libc) {
      ASSERT_TRUE(prefix) << text;
      EXPECT_EQ(used, text.size()) << text;
    }
    if (prefix) {
      unsigned char head[4];
      ASSERT_EQ(inet_pton(AF_INET, text.substr(0, used).c_str(), head), 1) << text << " read as " << used;
      EXPECT_EQ(0, std::memcmp(head, prefix->bytes.data(), 4)) << text;
    }
    if (libc) {
      EXPECT_EQ(0, std::memcmp(out, ours->bytes.data(), 4)) << text;
      char back[INET_ADDRSTRLEN];
      inet_ntop(AF_INET, out, back, sizeof back);
      EXPECT_EQ(ours->to_string(), back);
    }
  }
}

TEST(IpAddress, V6StillGoesThroughTheLibrary) {
  auto a = IpAddress::parse("::1");
  ASSERT_TRUE(a);
  EXPECT_TRUE(a->v6);
  EXPECT_TRUE(a->is_loopback());
  EXPECT_EQ(a->to_string(), "::1");
  EXPECT_FALSE(IpAddress::parse("::g"));
}

}  // namespace
}  // namespace p2psip
