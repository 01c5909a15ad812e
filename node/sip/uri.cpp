#include "node/sip/uri.hpp"

#include "node/sip/header_names.hpp"
#include "node/sip/scanner.hpp"

namespace p2psip::sip {
namespace {

/// The first position at or after `from` holding one of the three characters, or npos.
std::size_t find_any(std::string_view s, char a, char b, char c, std::size_t from = 0) {
  for (std::size_t i = from; i < s.size(); ++i) {
    if (s[i] == a || s[i] == b || s[i] == c) return i;
  }
  return std::string_view::npos;
}

/// Checks that every character is of class `cls` (one CharClass bit) or starts a valid %HH escape. Eight characters
/// at a time while none of them is an escape (a user part is 32 hex digits on every overlay message).
bool all_escaped_or(std::string_view s, std::uint16_t cls) {
  for (std::size_t i = run_end(s, 0, cls); i < s.size(); ++i) {
    if (has_class(s[i], cls)) continue;
    if (s[i] != '%' || i + 2 >= s.size() || !is_hex(s[i + 1]) || !is_hex(s[i + 2])) return false;
    i += 2;
  }
  return true;
}

/// Visible ASCII but < > DQUOTE.
bool all_uri_text(std::string_view s) {
  for (char c : s) {
    if (!has_class(c, kUriText)) return false;
  }
  return true;
}

/// hostname = *( domainlabel "." ) toplabel [ "." ], for text that holds nothing but kHost
/// characters (alphanum, '-', '.', '_'): no empty label, and no label that starts with '-' or
/// ends with one before a '.'.
bool valid_host_labels(std::string_view h) {
  if (h.empty()) return false;
  char prev = '.';  // as if a label had just ended
  for (char c : h) {
    if (c == '.' ? (prev == '.' || prev == '-') : (c == '-' && prev == '.')) return false;
    prev = c;
  }
  return true;
}

bool valid_ipv6_reference(std::string_view h) {
  if (h.size() < 4 || h.front() != '[' || h.back() != ']') return false;
  for (char c : h.substr(1, h.size() - 2)) {
    if (!is_hex(c) && c != ':' && c != '.') return false;
  }
  return true;
}

bool valid_params(std::string_view params) {
  // *( ";" pname [ "=" pvalue ] ), with non-empty names.
  std::size_t i = 0;
  while (i < params.size()) {
    if (params[i] != ';') return false;
    std::size_t end = params.find(';', i + 1);
    if (end == std::string_view::npos) end = params.size();
    std::string_view p = params.substr(i + 1, end - i - 1);
    std::size_t eq = p.find('=');
    std::string_view name = p.substr(0, eq);
    if (name.empty() || !all_escaped_or(name, kParam)) return false;
    if (eq != std::string_view::npos) {
      std::string_view value = p.substr(eq + 1);
      if (value.empty() || !all_escaped_or(value, kParam)) return false;
    }
    i = end;
  }
  return true;
}

bool valid_headers(std::string_view headers) {
  // header *( "&" header ); header = hname "=" hvalue
  std::size_t i = 0;
  while (i <= headers.size()) {
    std::size_t end = headers.find('&', i);
    if (end == std::string_view::npos) end = headers.size();
    std::string_view h = headers.substr(i, end - i);
    std::size_t eq = h.find('=');
    if (eq == std::string_view::npos || eq == 0) return false;
    if (!all_escaped_or(h.substr(0, eq), kHeader) || !all_escaped_or(h.substr(eq + 1), kHeader)) {
      return false;
    }
    i = end + 1;
  }
  return true;
}

int hex_value(char c) {
  if (is_digit(c)) return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return c - 'A' + 10;
}

}  // namespace

std::string unescape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() && is_hex(text[i + 1]) && is_hex(text[i + 2])) {
      out.push_back(static_cast<char>(hex_value(text[i + 1]) * 16 + hex_value(text[i + 2])));
      i += 2;
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

std::optional<std::string_view> Uri::param(std::string_view name) const {
  std::size_t i = 0;
  while (i < params.size()) {
    std::size_t end = params.find(';', i + 1);
    if (end == std::string_view::npos) end = params.size();
    std::string_view p = params.substr(i + 1, end - i - 1);
    std::size_t eq = p.find('=');
    if (iequals(p.substr(0, eq), name)) return eq == std::string_view::npos ? std::string_view() : p.substr(eq + 1);
    i = end;
  }
  return std::nullopt;
}

std::string Uri::host_port() const {
  std::string out(host);
  if (port) out += ":" + std::to_string(*port);
  return out;
}

bool parse_uri_into(std::string_view text, Uri& u) {
  u = Uri{};
  u.text = text;
  std::size_t colon = text.find(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  u.scheme_text = text.substr(0, colon);
  // scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
  if (!is_alpha(u.scheme_text[0])) return false;
  for (char c : u.scheme_text) {
    if (!is_alnum(c) && c != '+' && c != '-' && c != '.') return false;
  }
  std::string_view rest = text.substr(colon + 1);
  if (iequals(u.scheme_text, "sip")) {
    u.scheme = UriScheme::Sip;
  } else if (iequals(u.scheme_text, "sips")) {
    u.scheme = UriScheme::Sips;
  } else if (iequals(u.scheme_text, "tel")) {
    u.scheme = UriScheme::Tel;
  } else {
    u.scheme = UriScheme::Other;
    if (rest.empty() || !all_uri_text(rest)) return false;
    u.opaque = rest;
    return true;
  }
  if (rest.empty()) return false;
  // Only a tel number is not checked character by character below; each part of a sip/sips URI
  // is, against classes that hold nothing but URI text (detail::parts_hold_only_uri_text).
  if (u.scheme == UriScheme::Tel && !all_uri_text(rest)) return false;

  if (u.scheme == UriScheme::Tel) {
    // telephone-subscriber: the number up to the first ';', then parameters (RFC 3966 §3).
    std::size_t semi = rest.find(';');
    u.user = rest.substr(0, semi);
    if (u.user.empty()) return false;
    if (semi != std::string_view::npos) u.params = rest.substr(semi);
    if (!valid_params(u.params)) return false;
    return true;
  }

  // userinfo ends at the first '@': neither user nor password may hold an unescaped '@', and nothing
  // after the host may either (RFC 4475 §3.1.1.9).
  std::size_t at = rest.find('@');
  if (at != std::string_view::npos) {
    std::string_view userinfo = rest.substr(0, at);
    std::size_t pc = userinfo.find(':');
    u.user = userinfo.substr(0, pc);
    if (pc != std::string_view::npos) u.password = userinfo.substr(pc + 1);
    if (u.user.empty() || !all_escaped_or(u.user, kUser) || !all_escaped_or(u.password, kPassword)) {
      return false;
    }
    rest = rest.substr(at + 1);
  }
  // hostport
  std::size_t host_end = 0;
  if (!rest.empty() && rest[0] == '[') {
    host_end = rest.find(']');
    if (host_end == std::string_view::npos) return false;
    ++host_end;
    u.host = rest.substr(0, host_end);
    if (!valid_ipv6_reference(u.host)) return false;
  } else {
    // The host runs to the first ':', ';' or '?'; any other character that is not a hostname's
    // ends it too early, which makes the URI invalid.
    host_end = run_end(rest, 0, kHost);
    if (host_end < rest.size() && rest[host_end] != ':' && rest[host_end] != ';' && rest[host_end] != '?') {
      return false;
    }
    u.host = rest.substr(0, host_end);
    if (!valid_host_labels(u.host)) return false;
  }
  rest = rest.substr(host_end);
  if (!rest.empty() && rest[0] == ':') {
    std::size_t port_end = find_any(rest, ';', '?', '?');
    if (port_end == std::string_view::npos) port_end = rest.size();
    auto port = parse_decimal(rest.substr(1, port_end - 1), 65535);
    if (!port) return false;
    u.port = static_cast<std::uint16_t>(*port);
    rest = rest.substr(port_end);
  }
  std::size_t q = rest.find('?');
  u.params = rest.substr(0, q);
  if (q != std::string_view::npos) {
    u.headers = rest.substr(q + 1);
    if (!valid_headers(u.headers)) return false;
  }
  if (!valid_params(u.params)) return false;
  return true;
}

std::optional<Uri> parse_uri(std::string_view text) {
  std::optional<Uri> out(std::in_place);  // one object, filled in place: no copy on return
  if (!parse_uri_into(text, *out)) out.reset();
  return out;
}

bool uri_equivalent(const Uri& a, const Uri& b) {
  if (a.scheme != b.scheme || !a.is_sip()) return false;
  if (unescape(a.user) != unescape(b.user) || unescape(a.password) != unescape(b.password)) return false;
  if (!iequals(a.host, b.host) || a.port != b.port) return false;
  for (std::string_view p : {"transport", "user", "ttl", "method", "maddr"}) {
    auto pa = a.param(p);
    auto pb = b.param(p);
    if (pa.has_value() != pb.has_value()) return false;
    if (pa && !iequals(unescape(*pa), unescape(*pb))) return false;
  }
  return true;
}

std::optional<Endpoint> uri_endpoint(const Uri& uri) {
  if (!uri.is_sip()) return std::nullopt;
  std::string_view host = uri.host;
  if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  auto ip = IpAddress::parse(host);
  if (!ip) return std::nullopt;
  Transport t = Transport::Udp;
  if (auto p = uri.param("transport")) t = transport_from_name(*p).value_or(Transport::Udp);
  return Endpoint{t, *ip, uri.port.value_or(5060)};
}

}  // namespace p2psip::sip
