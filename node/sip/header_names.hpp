// Header field names: the ones the stack interprets get an id; every other name is kept as written.
#pragma once

#include <cstdint>
#include <string_view>

namespace p2psip::sip {

enum class HeaderId : std::uint8_t {
  Other = 0,
  Accept,
  AcceptEncoding,
  AcceptLanguage,
  AlertInfo,
  Allow,
  AllowEvents,
  Authorization,
  CallId,
  Contact,
  ContentDisposition,
  ContentEncoding,
  ContentLength,
  ContentType,
  CSeq,
  Date,
  Event,
  Expires,
  From,
  MaxForwards,
  MinExpires,
  ProxyAuthenticate,
  ProxyAuthorization,
  ProxyRequire,
  RecordRoute,
  Require,
  RetryAfter,
  Route,
  Server,
  Subject,
  Supported,
  Timestamp,
  To,
  Unsupported,
  UserAgent,
  Via,
  Warning,
  WwwAuthenticate,
  Count_
};

/// Looks up a header name, case-insensitively, accepting the RFC 3261 §7.3.3 compact forms
/// (i, m, e, l, c, f, s, k, t, v) and the registered ones (o Event, u Allow-Events).
HeaderId lookup_header(std::string_view name);

/// The canonical long name of a known header ("Call-ID" for CallId). Other has no name.
std::string_view canonical_name(HeaderId id);

/// Case-insensitive ASCII comparison.
inline bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const char x = a[i];
    const char y = b[i];
    if (x == y) continue;  // the common case: the same case
    if ((x | 0x20) != (y | 0x20) || (x | 0x20) < 'a' || (x | 0x20) > 'z') return false;
  }
  return true;
}

}  // namespace p2psip::sip
