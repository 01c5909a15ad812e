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

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

HeaderId lookup_header(std::string_view name) {
  if (name.size() == 1) return compact(name[0]);
  // A short linear scan; the length and first-letter checks reject almost every candidate at once.
  for (std::size_t i = 1; i < kCanonical.size(); ++i) {
    if (kCanonical[i].size() == name.size() && lower(kCanonical[i][0]) == lower(name[0]) &&
        iequals(kCanonical[i], name)) {
      return static_cast<HeaderId>(i);
    }
  }
  return HeaderId::Other;
}

std::string_view canonical_name(HeaderId id) {
  return kCanonical[static_cast<std::size_t>(id)];
}

}  // namespace p2psip::sip
