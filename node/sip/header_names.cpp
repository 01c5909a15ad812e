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
/// Candidate ids by lower-cased first letter, built once from kCanonical.
struct FirstLetterIndex {
  std::array<std::array<HeaderId, 8>, 26> ids{};
  std::array<std::uint8_t, 26> size{};
  constexpr FirstLetterIndex() {
    for (std::size_t i = 1; i < kCanonical.size(); ++i) {
      char c = lower(kCanonical[i][0]);
      auto slot = static_cast<std::size_t>(c - 'a');
      ids[slot][size[slot]++] = static_cast<HeaderId>(i);
    }
  }
};
constexpr FirstLetterIndex kIndex;
}  // namespace

HeaderId lookup_header(std::string_view name) {
  if (name.empty()) return HeaderId::Other;
  if (name.size() == 1) return compact(name[0]);
  char c = lower(name[0]);
  if (c < 'a' || c > 'z') return HeaderId::Other;
  auto slot = static_cast<std::size_t>(c - 'a');
  for (std::size_t k = 0; k < kIndex.size[slot]; ++k) {
    HeaderId id = kIndex.ids[slot][k];
    std::string_view canonical = kCanonical[static_cast<std::size_t>(id)];
    if (canonical.size() == name.size() && iequals(canonical, name)) return id;
  }
  return HeaderId::Other;
}

std::string_view canonical_name(HeaderId id) {
  return kCanonical[static_cast<std::size_t>(id)];
}

}  // namespace p2psip::sip
