#include "node/sip/header_names.hpp"

#include <array>

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
/// Candidate ids by length and lower-cased first letter, built once from kCanonical: a name is
/// compared with one or two canonical names at most.
constexpr std::size_t kMaxNameLength = 24;
constexpr std::size_t kPerBucket = 2;
struct NameIndex {
  std::array<std::array<std::array<HeaderId, kPerBucket>, 26>, kMaxNameLength + 1> ids{};
  bool fits = true;  ///< no bucket overflowed (checked below at compile time)
  constexpr NameIndex() {
    for (std::size_t i = 1; i < kCanonical.size(); ++i) {
      const std::string_view name = kCanonical[i];
      const auto letter = static_cast<std::size_t>(lower(name[0]) - 'a');
      auto& bucket = ids[name.size()][letter];
      std::size_t k = 0;
      while (k < kPerBucket && bucket[k] != HeaderId::Other) ++k;
      if (name.size() > kMaxNameLength || k == kPerBucket) {
        fits = false;
        continue;
      }
      bucket[k] = static_cast<HeaderId>(i);
    }
  }
};
constexpr NameIndex kIndex;
static_assert(kIndex.fits, "raise kMaxNameLength or kPerBucket");
}  // namespace

HeaderId lookup_header(std::string_view name) {
  if (name.empty()) return HeaderId::Other;
  if (name.size() == 1) return compact(name[0]);
  if (name.size() > kMaxNameLength) return HeaderId::Other;
  char c = lower(name[0]);
  if (c < 'a' || c > 'z') return HeaderId::Other;
  for (HeaderId id : kIndex.ids[name.size()][static_cast<std::size_t>(c - 'a')]) {
    if (id == HeaderId::Other) break;
    if (iequals(kCanonical[static_cast<std::size_t>(id)], name)) return id;
  }
  return HeaderId::Other;
}

std::string_view canonical_name(HeaderId id) {
  return kCanonical[static_cast<std::size_t>(id)];
}

}  // namespace p2psip::sip
