#include <gtest/gtest.h>

#include <cctype>
#include <random>
#include <string>
#include <vector>

#include "core/hex.hpp"
#include "node/sip/headers.hpp"
#include "node/sip/scanner.hpp"
#include "node/sip/uri.hpp"
#include "random_edits.hpp"

namespace p2psip::sip {
namespace {

TEST(Uri, SipWithEveryPart) {
  auto u = parse_uri("sips:alice:secret@[2001:db8::1]:5061;transport=tcp;lr?subject=project%20x&priority=urgent");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->scheme, UriScheme::Sips);
  EXPECT_EQ(u->user, "alice");
  EXPECT_EQ(u->password, "secret");
  EXPECT_EQ(u->host, "[2001:db8::1]");
  EXPECT_EQ(u->port.value(), 5061);
  EXPECT_EQ(u->param("transport").value(), "tcp");
  EXPECT_EQ(u->param("LR").value(), "");
  EXPECT_FALSE(u->param("maddr"));
  EXPECT_EQ(u->headers, "subject=project%20x&priority=urgent");
}

TEST(Uri, EscapesAndUserUnreserved) {
  auto u = parse_uri("sip:user;par=u%40example.net@example.com");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->user, "user;par=u%40example.net");
  EXPECT_EQ(unescape(u->user), "user;par=u@example.net");
  EXPECT_EQ(u->host, "example.com");
  EXPECT_TRUE(parse_uri("sip:null-%00-null@example.com"));
  EXPECT_FALSE(parse_uri("sip:bad%zzescape@example.com"));
  EXPECT_FALSE(parse_uri("sip:user@example.com;"));  // empty parameter
  EXPECT_FALSE(parse_uri("sip:user@example.com:99999"));
  EXPECT_FALSE(parse_uri("sip:user@"));
  EXPECT_FALSE(parse_uri("sip:user@exa mple.com"));
  EXPECT_FALSE(parse_uri("<sip:user@example.com>"));
}

TEST(Uri, TelAndOpaqueSchemes) {
  auto t = parse_uri("tel:+1-201-555-0123;phone-context=example.com");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->scheme, UriScheme::Tel);
  EXPECT_EQ(t->user, "+1-201-555-0123");
  EXPECT_EQ(t->param("phone-context").value(), "example.com");
  auto o = parse_uri("soap.beep://192.0.2.103:3002");
  ASSERT_TRUE(o);
  EXPECT_EQ(o->scheme, UriScheme::Other);
  EXPECT_EQ(o->opaque, "//192.0.2.103:3002");
  EXPECT_FALSE(parse_uri("9abc:thing"));
}

TEST(Uri, EveryPartRefusesWhatNoUriHolds) {
  // The characters RFC 3261 §25.1 keeps out of every URI, in each part of a sip URI: a sip/sips
  // URI is checked part by part, with no separate pass over the whole text.
  for (const std::string& bad :
       std::vector<std::string>{" ", "\t", "<", ">", "\"", "\x7f", "\x80", std::string(1, '\0')}) {
    for (std::string uri : {"sip:u" + bad + "@h", "sip:u:p" + bad + "@h", "sip:u@h" + bad, "sip:u@h:50" + bad + "60",
                            "sip:u@h;a" + bad, "sip:u@h;a=b" + bad, "sip:u@h?x=y" + bad, "sip:u@[::1" + bad + "]"}) {
      EXPECT_FALSE(parse_uri(uri)) << uri;
    }
    EXPECT_FALSE(parse_uri("tel:+1" + bad + "555")) << "tel";
    EXPECT_FALSE(parse_uri("mailto:a" + bad + "b")) << "mailto";
  }
  EXPECT_TRUE(parse_uri("sip:u@h;a=b?x=y"));
  EXPECT_FALSE(parse_uri("sip:u@h,x"));  // a host ended by a character that is not ':', ';' or '?'
  EXPECT_FALSE(parse_uri("sip:u@h/x"));
  EXPECT_TRUE(parse_uri("sip:u@a-b.c_d:5"));
}

TEST(Uri, EquivalenceFollowsSection19_1_4) {
  auto a = parse_uri("sip:%61lice@ATLANTA.example.com;transport=TCP");
  auto b = parse_uri("sip:alice@atlanta.example.com;transport=tcp");
  auto c = parse_uri("sip:alice@atlanta.example.com");
  ASSERT_TRUE(a && b && c);
  EXPECT_TRUE(uri_equivalent(*a, *b));
  EXPECT_FALSE(uri_equivalent(*b, *c));
}

TEST(Headers, ViaParametersOfRfc3581AndRfc3261) {
  auto v = parse_first_via(
      "SIP / 2.0 / UDP 192.0.2.1:5060 ;received=192.0.2.9;rport=5070;maddr=224.2.0.1;ttl=16;branch=z9hG4bKa");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->transport, "UDP");
  EXPECT_EQ(v->params.get("received").value(), "192.0.2.9");
  EXPECT_EQ(v->params.get("rport").value(), "5070");
  EXPECT_EQ(v->params.get("maddr").value(), "224.2.0.1");
  EXPECT_EQ(v->params.get("ttl").value(), "16");
  EXPECT_TRUE(v->rfc3261_branch());
  EXPECT_FALSE(parse_first_via("SIP/2.0/UDP host;ttl=300"));
  EXPECT_FALSE(parse_first_via("SIP/2.0/UDP 192.0.2.15;;,;,,"));
  EXPECT_FALSE(parse_first_via("SIP/2.0 host"));
  auto v6 = parse_first_via("SIP/2.0/TCP [2001:db8::9]:5061;branch=z9hG4bK;rport");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "[2001:db8::9]");
  EXPECT_EQ(v6->params.get("rport").value(), "");
  EXPECT_FALSE(v6->rfc3261_branch());  // the cookie alone is no RFC 3261 branch
}

TEST(Scanning, CaseInsensitiveComparisonIsAsciiOnly) {
  EXPECT_TRUE(iequals("Content-Length", "content-LENGTH"));
  EXPECT_TRUE(iequals("", ""));
  EXPECT_FALSE(iequals("abc", "abcd"));
  EXPECT_FALSE(iequals("@", "`"));  // 0x40 and 0x60 differ in the case bit but are not letters
  EXPECT_FALSE(iequals("[", "{"));
  EXPECT_FALSE(iequals("\xc1", "\xe1"));  // nor are octets above 0x7f
  EXPECT_TRUE(iequals("\xc1", "\xc1"));
}

// iequals against the definition (equal once 'A'-'Z' are lowered), for every pair of octets at
// the first, a middle and the last position of strings of several sizes.
TEST(Scanning, CaseInsensitiveComparisonAgreesWithTheDefinitionForEveryOctetPair) {
  auto reference = [](std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
      auto low = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
      if (low(a[i]) != low(b[i])) return false;
    }
    return true;
  };
  std::size_t agreed_equal = 0;
  for (std::size_t len : {1U, 3U, 4U, 7U, 8U, 9U, 16U, 21U}) {
    for (std::size_t pos : {std::size_t{0}, len / 2, len - 1}) {
      std::string a(len, 'q');
      std::string b(len, 'Q');
      for (int x = 0; x < 256; ++x) {
        for (int y = 0; y < 256; ++y) {
          a[pos] = static_cast<char>(x);
          b[pos] = static_cast<char>(y);
          const bool want = reference(a, b);
          ASSERT_EQ(iequals(a, b), want) << "length " << len << " position " << pos << ": " << x << " vs " << y;
          agreed_equal += want ? 1 : 0;
        }
      }
    }
  }
  EXPECT_EQ(agreed_equal, 8U * 3U * (256U + 52U));  // each octet with itself, each letter with its other case
}

TEST(Scanning, EveryKnownHeaderNameInAnyCaseAndCompactForm) {
  for (int i = 1; i < static_cast<int>(HeaderId::Count_); ++i) {
    const auto id = static_cast<HeaderId>(i);
    std::string name(canonical_name(id));
    EXPECT_EQ(lookup_header(name), id) << name;
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    EXPECT_EQ(lookup_header(name), id) << name;
    for (auto& c : name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    EXPECT_EQ(lookup_header(name), id) << name;
    EXPECT_EQ(lookup_header(name + "x"), HeaderId::Other) << name;
    if (name.size() > 2) {  // "T" is To's compact form
      EXPECT_EQ(lookup_header(name.substr(0, name.size() - 1)), HeaderId::Other) << name;
    }
  }
  EXPECT_EQ(lookup_header("v"), HeaderId::Via);
  EXPECT_EQ(lookup_header("I"), HeaderId::CallId);
  for (std::string_view other :
       {"", "DHT-PeerID", "X-Via", "1Via", "Contact-Length", "Via ", "a-very-long-header-name-of-no-one"})
    EXPECT_EQ(lookup_header(other), HeaderId::Other) << other;
}

TEST(Scanning, HeaderNameLookupAgreesWithItsDefinitionForEveryOctetAtEveryPosition) {
  // The definition: a name is a known header's when it equals that header's canonical name, ASCII
  // letters compared without case and every other octet exactly (compact forms aside).
  auto reference = [](std::string_view name) {
    auto same = [](std::string_view a, std::string_view b) {
      if (a.size() != b.size()) return false;
      for (std::size_t i = 0; i < a.size(); ++i) {
        const auto x = static_cast<unsigned char>(a[i]);
        const auto y = static_cast<unsigned char>(b[i]);
        const bool letters = std::isalpha(x) != 0 && std::isalpha(y) != 0;
        if (letters ? std::tolower(x) != std::tolower(y) : x != y) return false;
      }
      return true;
    };
    for (int i = 1; i < static_cast<int>(HeaderId::Count_); ++i) {
      if (same(name, canonical_name(static_cast<HeaderId>(i)))) return static_cast<HeaderId>(i);
    }
    return HeaderId::Other;
  };
  std::size_t known = 0;
  for (int i = 1; i < static_cast<int>(HeaderId::Count_); ++i) {
    const std::string canonical(canonical_name(static_cast<HeaderId>(i)));
    for (std::size_t pos = 0; pos < canonical.size(); ++pos) {
      for (int octet = 0; octet < 256; ++octet) {
        std::string name = canonical;
        name[pos] = static_cast<char>(octet);
        const HeaderId want = reference(name);
        ASSERT_EQ(lookup_header(name), want) << canonical << " with octet " << octet << " at " << pos;
        known += want != HeaderId::Other ? 1 : 0;
      }
    }
  }
  // Each name with each of its letters in either case, and each '-' as itself.
  std::size_t expected = 0;
  for (int i = 1; i < static_cast<int>(HeaderId::Count_); ++i) {
    for (char c : canonical_name(static_cast<HeaderId>(i)))
      expected += std::isalpha(static_cast<unsigned char>(c)) ? 2 : 1;
  }
  EXPECT_EQ(known, expected);
}

TEST(Scanning, FirstOfFourCharactersAtEveryOffset) {
  // Every length and position around the eight-octet steps.
  for (std::size_t len = 0; len < 40; ++len) {
    for (std::size_t at = 0; at <= len; ++at) {
      std::string s(len, 'x');
      if (at < len) s[at] = (at % 4 == 0) ? '>' : (at % 4 == 1) ? ' ' : (at % 4 == 2) ? '\t' : '\r';
      EXPECT_EQ(find_first_of4(s, '>', ' ', '\t', '\r'), at) << len << " " << at;
    }
  }
  EXPECT_EQ(find_first_of4("abcdefgh>ij>", '>', '>', '>', '>'), 8u);
  EXPECT_EQ(find_first_of4("\x80\x80\x80\x80\x80\x80\x80\x80\x80>", '>', ' ', '\t', '\r'),
            9u);  // high octets are not matches
}

TEST(Scanning, Hex64IsSixteenLowercaseDigits) {
  std::string out = "x";
  append_hex64(out, 0x0123456789abcdefULL);
  append_hex64(out, 0);
  append_hex64(out, ~0ULL);
  EXPECT_EQ(out, "x0123456789abcdef0000000000000000ffffffffffffffff");
}

// write_hex64 and read_hex64 work on eight digits at once (SWAR): checked against the digit-by-
// digit definition on random values, and with every octet at every position.
TEST(Scanning, Hex64ReadsAndWritesAsTheDigitByDigitDefinition) {
  auto reference = [](std::uint64_t v) {
    std::string out;
    for (int shift = 60; shift >= 0; shift -= 4) out += "0123456789abcdef"[v >> shift & 0xf];
    return out;
  };
  std::mt19937_64 rng(4320);
  std::vector<std::uint64_t> values = {0, ~0ULL, 0x0123456789abcdefULL, 0xa0a0a0a0a0a0a0a0ULL, 0x0909090909090909ULL};
  for (int i = 0; i < 20000; ++i) values.push_back(rng() >> (rng() % 64));
  for (std::uint64_t v : values) {
    char buf[16];
    write_hex64(buf, v);
    const std::string text(buf, 16);
    ASSERT_EQ(text, reference(v));
    std::uint64_t back = 0;
    ASSERT_TRUE(read_hex64(text.data(), back));
    ASSERT_EQ(back, v);
    std::string upper = text;
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    ASSERT_TRUE(read_hex64(upper.data(), back));
    ASSERT_EQ(back, v);
  }
  for (std::size_t at = 0; at < 16; ++at) {
    for (int octet = 0; octet < 256; ++octet) {
      std::string text = reference(rng());
      text[at] = static_cast<char>(octet);
      const bool digit = std::isxdigit(octet) != 0;
      std::uint64_t back = 0;
      ASSERT_EQ(read_hex64(text.data(), back), digit) << "octet " << octet << " at " << at;
      if (!digit) continue;
      std::string lower = text;
      for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      ASSERT_EQ(reference(back), lower);
    }
  }
}

TEST(Headers, NameAddressForms) {
  auto a = parse_name_address("\"Alice \\\"A\\\"\" <sip:alice@atlanta.example.com>;tag=88sja8x");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->display_name, "\"Alice \\\"A\\\"\"");
  EXPECT_EQ(unquote(a->display_name), "Alice \"A\"");
  EXPECT_EQ(a->params.get("tag").value(), "88sja8x");
  auto b = parse_name_address("sip:bob@biloxi.example.com;tag=x");
  ASSERT_TRUE(b);
  EXPECT_FALSE(b->bracketed);
  EXPECT_EQ(b->uri.host, "biloxi.example.com");
  EXPECT_EQ(b->params.get("tag").value(), "x");
  auto c = parse_name_address("Bob Smith<sip:bob@b.example.com>");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->display_name, "Bob Smith");
  EXPECT_FALSE(parse_name_address("\"Unterminated <sip:x@y>"));
  EXPECT_FALSE(parse_name_address("<sip:x@y"));
}

TEST(Headers, TheBracketedUriEndsAtWhitespaceOrTheAngleBracket) {
  // LWS may stand on either side of the URI inside the brackets (RFC 3261 §25.1: LAQUOT and RAQUOT
  // take SWS), folded lines included; the URI itself is what lies between.
  for (std::string text : {"<sip:u@h:5;a=b>", "< sip:u@h:5;a=b>", "<sip:u@h:5;a=b >", "<sip:u@h:5;a=b\t>",
                           "<sip:u@h:5;a=b\r\n >", "<\r\n sip:u@h:5;a=b  \r\n\t>"}) {
    const std::string field = text + ";tag=1";  // the result views it
    auto na = parse_name_address(field);
    ASSERT_TRUE(na) << text;
    EXPECT_EQ(na->uri.text, "sip:u@h:5;a=b") << text;
    EXPECT_EQ(na->uri.port, 5) << text;
    EXPECT_EQ(na->params.get("tag").value_or(""), "1") << text;
  }
  // Whitespace inside the URI, a line break that is no fold, or no closing bracket: refused.
  for (std::string text : {"<sip:u@h x>", "<sip:u @h>", "<sip:u@h\r\n>", "<sip:u@h\r>", "<sip:u@h;a=b", "<sip:u@h >x>",
                           "<sip:u@h>>", "<>"}) {
    EXPECT_FALSE(parse_name_address(text)) << text;
  }
  // A URI that does not parse up to the first '>' is not rescued by a later one.
  EXPECT_FALSE(parse_name_address("<sip:u@h<>"));
}

TEST(Headers, ContactListsAndStar) {
  std::vector<NameAddress> list;
  ASSERT_TRUE(parse_name_address_list("<sip:a@h1>;expires=60, \"B, Jr\" <sip:b@h2;transport=tcp>;q=0.5 , sip:c@h3",
                                      list, true));
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[0].params.get("expires").value(), "60");
  EXPECT_EQ(list[1].uri.param("transport").value(), "tcp");
  EXPECT_EQ(list[1].params.get("q").value(), "0.5");
  EXPECT_EQ(list[2].uri.host, "h3");
  list.clear();
  ASSERT_TRUE(parse_name_address_list("*", list, true));
  EXPECT_TRUE(list[0].star);
  list.clear();
  EXPECT_FALSE(parse_name_address_list("<sip:a@h1>,", list, true));
  list.clear();
  EXPECT_FALSE(parse_name_address_list("*", list, false));
}

TEST(Headers, CSeqRangeAndShape) {
  auto c = parse_cseq("0009\r\n  INVITE");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->number, 9u);
  EXPECT_EQ(c->method, "INVITE");
  EXPECT_TRUE(parse_cseq("2147483647 ACK"));
  EXPECT_FALSE(parse_cseq("2147483648 ACK"));
  EXPECT_FALSE(parse_cseq("1INVITE"));
  EXPECT_FALSE(parse_cseq("1 INVITE extra"));
}

TEST(Headers, TokenListsAndMediaRanges) {
  std::vector<std::string_view> tags;
  ASSERT_TRUE(parse_token_list("100rel , timer,path", tags));
  EXPECT_EQ(tags.size(), 3u);
  std::vector<MediaType> ranges;
  ASSERT_TRUE(parse_media_range_list("application/sdp;level=1, text/*, */*;q=0.1", ranges));
  ASSERT_EQ(ranges.size(), 3u);
  EXPECT_TRUE(ranges[1].covers("text", "plain"));
  EXPECT_TRUE(ranges[2].covers("image", "png"));
  EXPECT_FALSE(ranges[0].covers("application", "json"));
  EXPECT_FALSE(parse_media_type("application"));
}

// valid_name_address recognises the simplest form without the parser; on that form and everything
// near it (the values below and thousands of edits of them) it must agree with the parser.
TEST(Headers, ValidNameAddressAgreesWithTheParser) {
  const std::vector<std::string> seeds = {
      "<sip:61fc94baaf739bae952194af7ec45bc3@example.p2psip>;tag=c168b62d2f679ac6",
      "<sip:61fc94baaf739bae952194af7ec45bc3@example.p2psip>",
      "<sip:alice@127.0.0.1:5060>;tag=9fxced76sl",
      "<sip:bob_1.x@a-b.example.com:65535>;tag=a;x=y",
      "<sip:echo@127.0.0.1:25060>",
      "sipp <sip:sipp@127.0.0.1:25070>;tag=6917SIPpTag1",
      "\"Bob\" <sip:bob@biloxi.com>;tag=a6c85cf",
      "sip:carol@chicago.com",
      "<sip:carol@chicago.com;transport=tcp>",
      "<sip:carol@[::1]:5060>",
      "<sip:carol@host->",
      "<sip:carol@-host>",
      "<sip:carol@a..b>",
      "<sip:carol@a.b.>",
      "<sip:carol@a.b:0>",
      "<sip:carol@a.b:65536>",
      "<sip:carol@a.b:005060>",
      "<sip:carol@a_b>",
      "<sip:@a.b>",
      "<sip:carol@a.b>;lr",
      "<sip:carol@a.b>;tag=",
      "<sip:carol@a.b> ;tag=x",
      "<sip:carol@a.b>;tag=x,<sip:dave@a.b>",
      "<sips:carol@a.b>",
      "<SIP:carol@a.b>",
      "<sip:car%41ol@a.b>",
  };
  for (const auto& v : seeds) EXPECT_EQ(valid_name_address(v), parse_name_address(v).has_value()) << v;
  std::mt19937_64 rng(5);
  const std::string alphabet = "0123456789abcxyzABC.:;=<>@[]-_ \t\",%sip";
  int valid = 0;
  for (int n = 0; n < 30000; ++n) {
    // Edits of the simple form, where the fast path decides.
    std::string v = test::with_random_edits(seeds[rng() % 5], rng, alphabet);
    const bool want = parse_name_address(v).has_value();
    ASSERT_EQ(valid_name_address(v), want) << v;
    valid += want ? 1 : 0;
  }
  EXPECT_GT(valid, 3000) << "too few edited values still parse to compare";
}

}  // namespace
}  // namespace p2psip::sip
