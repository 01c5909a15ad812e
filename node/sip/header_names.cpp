#include "node/sip/header_names.hpp"

#include <array>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace p2psip::sip {
namespace {

constexpr char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
}

struct NameEntry {
  std::string_view name;
  HeaderId id;
};

constexpr std::array<std::string_view, static_cast<std::size_t>(HeaderId::Count_)> kCanonical = {
    "",
    "Accept",
    "Accept-Encoding",
    "Accept-Language",
    "Alert-Info",
    "Allow",
    "Allow-Events",
    "Authorization",
    "Call-ID",
    "Contact",
    "Content-Disposition",
    "Content-Encoding",
    "Content-Length",
    "Content-Type",
    "CSeq",
    "Date",
    "Event",
    "Expires",
    "From",
    "Max-Forwards",
    "Min-Expires",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Proxy-Require",
    "Record-Route",
    "Require",
    "Retry-After",
    "Route",
    "Server",
    "Subject",
    "Supported",
    "Timestamp",
    "To",
    "Unsupported",
    "User-Agent",
    "Via",
    "Warning",
    "WWW-Authenticate",
};

HeaderId compact(char c) {
  switch (lower(c)) {
    case 'i': return HeaderId::CallId;
    case 'm': return HeaderId::Contact;
    case 'e': return HeaderId::ContentEncoding;
    case 'l': return HeaderId::ContentLength;
    case 'c': return HeaderId::ContentType;
    case 'f': return HeaderId::From;
    case 's': return HeaderId::Subject;
    case 'k': return HeaderId::Supported;
    case 't': return HeaderId::To;
    case 'v': return HeaderId::Via;
    case 'o': return HeaderId::Event;
    case 'u': return HeaderId::AllowEvents;
    default: return HeaderId::Other;
  }
}

}  // namespace

namespace {
constexpr std::size_t kMaxNameLength = 24;
constexpr std::size_t kPerBucket = 2;

/// A name of 2 to 24 octets read as at most three words: two loads of 2, 4 or 8 octets at the
/// start and at the end (overlapping where the name is shorter than both), and for names over 16
/// octets one more at offset 8. The same octets of a canonical name, lower-cased, with 0x20 in
/// `mask` at its letters, make a pattern: a name equals it without case exactly when each word,
/// OR-ed with the mask, equals the pattern's (a letter OR 0x20 is its lower case, and only its
/// two cases give that; the other octets are compared as they are).
struct Words {
  std::array<std::uint64_t, 3> w{};
};

/// Octets [at, at+width) of `s`, lower-cased (or as the mask of its letters), as a little-endian
/// integer; constant-evaluated for the patterns.
constexpr std::uint64_t octets(std::string_view s, std::size_t at, std::size_t width, bool mask) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < width; ++i) {
    const char c = s[at + i];
    const bool letter = lower(c) >= 'a' && lower(c) <= 'z';
    std::uint64_t b = mask ? (letter ? 0x20U : 0U) : static_cast<unsigned char>(lower(c));
    v |= b << (8 * i);
  }
  return v;
}

constexpr Words pattern_of(std::string_view s, bool mask) {
  Words p;
  const std::size_t n = s.size();
  if (n < 4) {
    p.w[0] = octets(s, 0, 2, mask) | octets(s, n - 2, 2, mask) << 16;
  } else if (n < 8) {
    p.w[0] = octets(s, 0, 4, mask) | octets(s, n - 4, 4, mask) << 32;
  } else {
    p.w[0] = octets(s, 0, 8, mask);
    p.w[1] = octets(s, n - 8, 8, mask);
    if (n > 16) p.w[2] = octets(s, 8, 8, mask);
  }
  return p;
}

template <std::size_t Width>
std::uint64_t load(const char* p) {
  std::conditional_t<Width == 2, std::uint16_t, std::conditional_t<Width == 4, std::uint32_t, std::uint64_t>> v;
  std::memcpy(&v, p, Width);
  return v;
}

/// Candidate ids by length and lower-cased first letter, with each canonical name's pattern and
/// mask, built once from kCanonical: a name is compared with one or two patterns at most.
struct NameIndex {
  std::array<std::array<std::array<HeaderId, kPerBucket>, 26>, kMaxNameLength + 1> ids{};
  std::array<Words, static_cast<std::size_t>(HeaderId::Count_)> pattern{};
  std::array<Words, static_cast<std::size_t>(HeaderId::Count_)> mask{};
  bool fits = true;  ///< no bucket overflowed and every name is 2 to kMaxNameLength long (checked below)
  constexpr NameIndex() {
    for (std::size_t i = 1; i < kCanonical.size(); ++i) {
      const std::string_view name = kCanonical[i];
      const auto letter = static_cast<std::size_t>(lower(name[0]) - 'a');
      if (name.size() < 2 || name.size() > kMaxNameLength) {
        fits = false;
        continue;
      }
      auto& bucket = ids[name.size()][letter];
      std::size_t k = 0;
      while (k < kPerBucket && bucket[k] != HeaderId::Other) ++k;
      if (k == kPerBucket) {
        fits = false;
        continue;
      }
      bucket[k] = static_cast<HeaderId>(i);
      pattern[i] = pattern_of(name, false);
      mask[i] = pattern_of(name, true);
    }
  }
};
constexpr NameIndex kIndex;
static_assert(kIndex.fits, "raise kMaxNameLength or kPerBucket");
}  // namespace

HeaderId lookup_header(std::string_view name) {
  const std::size_t n = name.size();
  if (n == 0) return HeaderId::Other;
  if (n == 1) return compact(name[0]);
  if (n > kMaxNameLength) return HeaderId::Other;
  const char c = lower(name[0]);
  if (c < 'a' || c > 'z') return HeaderId::Other;
  const auto& bucket = kIndex.ids[n][static_cast<std::size_t>(c - 'a')];
  if (bucket[0] == HeaderId::Other) return HeaderId::Other;
  const char* p = name.data();
  Words w;
  if (n < 4) {
    w.w[0] = load<2>(p) | load<2>(p + n - 2) << 16;
  } else if (n < 8) {
    w.w[0] = load<4>(p) | load<4>(p + n - 4) << 32;
  } else {
    w.w[0] = load<8>(p);
    w.w[1] = load<8>(p + n - 8);
    if (n > 16) w.w[2] = load<8>(p + 8);
  }
  for (HeaderId id : bucket) {
    if (id == HeaderId::Other) break;
    const auto i = static_cast<std::size_t>(id);
    const Words& want = kIndex.pattern[i];
    const Words& m = kIndex.mask[i];
    if (((w.w[0] | m.w[0]) ^ want.w[0]) == 0 && ((w.w[1] | m.w[1]) ^ want.w[1]) == 0 &&
        ((w.w[2] | m.w[2]) ^ want.w[2]) == 0) {
      return id;
    }
  }
  return HeaderId::Other;
}

std::string_view canonical_name(HeaderId id) {
  return kCanonical[static_cast<std::size_t>(id)];
}

}  // namespace p2psip::sip
