#include "node/sip/headers.hpp"

#include <utility>

#include "node/sip/scanner.hpp"

namespace p2psip::sip {

std::optional<std::uint64_t> parse_decimal(std::string_view digits, std::uint64_t max) {
  if (digits.empty()) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : digits) {
    if (!is_digit(c)) return std::nullopt;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
    if (v > max) return std::nullopt;
  }
  return v;
}

namespace {

/// host = hostname / IPv4address / IPv6reference, read loosely as the characters they can hold.
std::string_view scan_host(Scanner& s) {
  std::size_t start = s.pos();
  if (s.peek() == '[') {
    while (!s.done() && s.peek() != ']') s.advance();
    if (!s.consume(']')) return {};
  } else {
    const std::string_view rest = s.rest();
    std::size_t n = 0;
    while (n < rest.size() && has_class(rest[n], kHost)) ++n;
    s.advance(n);
  }
  return s.text().substr(start, s.pos() - start);
}

/// *( SEMI generic-param ), generic-param = token [ EQUAL gen-value ], gen-value = token / host / quoted-string.
/// Stops before a COMMA or at the end; false on an empty or malformed parameter, or when
/// `check(name, value)` refuses one.
template <class Check>
bool scan_params(Scanner& s, HeaderParams& out, Check&& check) {
  std::size_t start = s.pos();
  std::size_t end = start;
  for (;;) {
    if (!s.separator(';')) break;
    std::string_view name = s.token();
    if (name.empty()) return false;
    std::string_view value;
    if (s.separator('=')) {
      if (s.peek() == '"') {
        auto q = s.quoted_string();
        if (!q) return false;
        value = *q;
      } else if (s.peek() == '[') {
        value = scan_host(s);
        if (value.empty()) return false;
      } else {
        value = s.token();
        if (value.empty()) return false;
      }
    }
    if (!check(name, value)) return false;
    end = s.pos();
  }
  s.set_pos(end);
  out.raw = s.text().substr(start, end - start);
  return true;
}

bool scan_params(Scanner& s, HeaderParams& out) {
  return scan_params(s, out, [](std::string_view, std::string_view) { return true; });
}

/// After a list element: end of value (true, done=true), a COMMA (true), or garbage (false).
bool list_continue(Scanner& s, bool& done) {
  s.skip_lws();
  if (s.done()) {
    done = true;
    return true;
  }
  if (!s.consume(',')) return false;
  s.skip_lws();
  return !s.done();  // a trailing comma leaves an empty element
}

std::optional<Via> scan_via(Scanner& s) {
  Via v;
  s.skip_lws();
  v.protocol = s.token();
  if (v.protocol.empty() || !s.separator('/')) return std::nullopt;
  v.version = s.token();
  if (v.version.empty() || !s.separator('/')) return std::nullopt;
  v.transport = s.token();
  if (v.transport.empty() || !s.skip_lws()) return std::nullopt;
  v.host = scan_host(s);
  if (v.host.empty()) return std::nullopt;
  if (v.host.front() != '[' && !(is_alnum(v.host.front()))) return std::nullopt;
  if (s.separator(':')) {
    std::size_t p = s.pos();
    while (is_digit(s.peek())) s.advance();
    auto port = parse_decimal(s.text().substr(p, s.pos() - p), 65535);
    if (!port) return std::nullopt;
    v.port = static_cast<std::uint16_t>(*port);
  }
  // RFC 3261 §20.42 ttl is 0-255; RFC 3581 rport is empty or a port.
  bool seen_branch = false;
  bool params_ok = scan_params(s, v.params, [&](std::string_view name, std::string_view value) {
    if (name.size() == 6 && !seen_branch && iequals(name, "branch")) {
      seen_branch = true;
      v.branch_value = value;
    }
    if (name.size() == 8 && iequals(name, "received")) v.has_received = true;
    if (name.size() == 3 && iequals(name, "ttl")) return parse_decimal(value, 255).has_value();
    if (name.size() == 5 && iequals(name, "rport")) {
      if (!v.rport) v.rport = value;
      return value.empty() || parse_decimal(value, 65535).has_value();
    }
    return true;
  });
  if (!params_ok) return std::nullopt;
  return v;
}

/// Reads one name-addr (the URI within <>) or addr-spec (up to ';', ',' or LWS when `in_list`) into
/// `na`, filled in place: it is on every message's path.
bool scan_name_address(Scanner& s, bool in_list, bool lenient_display, NameAddress& na) {
  na = NameAddress{};
  s.skip_lws();
  std::size_t start = s.pos();
  if (s.peek() == '"') {
    auto q = s.quoted_string();
    if (!q) return false;  // RFC 4475 §3.1.2.6: unterminated quoted string
    na.display_name = *q;
    s.skip_lws();
    if (s.peek() != '<') return false;
  } else if (s.peek() != '<') {
    // Either *(token LWS) followed by '<', or an addr-spec.
    std::size_t save = s.pos();
    std::size_t display_end = save;
    bool tokens_only = true;
    while (!s.done() && s.peek() != '<') {
      if (!s.token().empty()) {
        display_end = s.pos();
      } else if (!s.skip_lws()) {
        tokens_only = false;
        break;
      }
    }
    if (tokens_only && s.peek() == '<') {
      na.display_name = s.text().substr(save, display_end - save);
    } else if (lenient_display && s.rest().find('<') != std::string_view::npos &&
               s.text().substr(save).find('"') == std::string_view::npos) {
      std::size_t lt = s.text().find('<', save);
      std::string_view dn = s.text().substr(save, lt - save);
      while (!dn.empty() && is_wsp(dn.back())) dn.remove_suffix(1);
      na.display_name = dn;
      s.set_pos(lt);
    } else {
      s.set_pos(save);
    }
  }
  if (s.consume('<')) {
    na.bracketed = true;
    s.skip_lws();
    const std::string_view rest = s.rest();
    // The URI runs to the first '>', space, tab or CR. A URI that parses holds none of the last
    // three (detail::parts_hold_only_uri_text), so when the text up to the first '>' parses, it is
    // that URI: one memchr instead of a scan for four characters. Otherwise the scan decides.
    if (const std::size_t gt = rest.find('>');
        gt != std::string_view::npos && parse_uri_into(rest.substr(0, gt), na.uri)) {
      s.advance(gt + 1);
    } else {
      const std::size_t n = find_first_of4(rest, '>', ' ', '\t', '\r');
      std::string_view uri_text = rest.substr(0, n);
      s.advance(n);
      s.skip_lws();
      if (!s.consume('>')) return false;
      if (!parse_uri_into(uri_text, na.uri)) return false;
    }
  } else {
    if (s.pos() != start) s.set_pos(start);
    std::size_t u0 = s.pos();
    while (!s.done() && s.peek() != ';' && !is_wsp(s.peek()) && s.peek() != '\r' && !(in_list && s.peek() == ',')) {
      s.advance();
    }
    if (!parse_uri_into(s.text().substr(u0, s.pos() - u0), na.uri)) return false;
  }
  return scan_params(s, na.params);
}

}  // namespace

std::optional<std::string_view> HeaderParams::get(std::string_view name) const {
  Scanner s(raw);
  while (s.separator(';')) {
    std::string_view n = s.token();
    std::string_view value;
    if (s.separator('=')) {
      if (s.peek() == '"') {
        value = s.quoted_string().value_or(std::string_view());
      } else if (s.peek() == '[') {
        value = scan_host(s);
      } else {
        value = s.token();
      }
    }
    if (iequals(n, name)) return value;
  }
  return std::nullopt;
}

std::string HeaderParams::without(std::string_view name) const {
  std::string out;
  append_without(out, name);
  return out;
}

void HeaderParams::append_without(std::string& out, std::string_view name) const {
  Scanner s(raw);
  std::size_t start = s.pos();
  while (s.separator(';')) {
    std::string_view n = s.token();
    if (s.separator('=')) {
      if (s.peek() == '"') {
        (void)s.quoted_string();
      } else if (s.peek() == '[') {
        (void)scan_host(s);
      } else {
        (void)s.token();
      }
    }
    if (!iequals(n, name)) out.append(raw.substr(start, s.pos() - start));
    start = s.pos();
  }
}

bool Via::rfc3261_branch() const {
  std::string_view b = branch();
  return b.size() > 7 && b.substr(0, 7) == "z9hG4bK";
}

namespace {
/// Hands every Via of a field value to `each`, in order; false when the value is no Via list.
template <class Each>
bool scan_via_list(std::string_view value, Each&& each) {
  Scanner s(value);
  for (bool done = false; !done;) {
    auto v = scan_via(s);
    if (!v) return false;
    each(std::move(*v));
    if (!list_continue(s, done)) return false;
  }
  return true;
}
}  // namespace

bool parse_via_list(std::string_view value, std::vector<Via>& out) {
  return scan_via_list(value, [&](Via&& v) { out.push_back(std::move(v)); });
}

bool valid_via_list(std::string_view value, std::optional<Via>* first) {
  return scan_via_list(value, [&](Via&& v) {
    if (first != nullptr && !*first) *first = std::move(v);
  });
}

std::optional<Via> parse_first_via(std::string_view value) {
  Scanner s(value);
  auto v = scan_via(s);
  if (!v) return std::nullopt;
  s.skip_lws();
  if (!s.done() && s.peek() != ',') return std::nullopt;
  return v;
}

std::optional<Via> top_via(const Message& m) {
  auto value = m.header(HeaderId::Via);
  if (!value) return std::nullopt;
  return parse_first_via(*value);
}

std::optional<NameAddress> parse_name_address(std::string_view value) {
  Scanner s(value);
  std::optional<NameAddress> na(std::in_place);
  if (!scan_name_address(s, false, true, *na)) return std::nullopt;
  s.skip_lws();
  if (!s.done()) return std::nullopt;
  return na;
}

namespace {
/// Letters, digits, '-', '.' and '_' (the hostname class): unreserved (a user part), token (a
/// parameter) and hostname characters all at once (RFC 3261 §25.1).
constexpr bool simple_char(char c) {
  return has_class(c, kHost);
}

/// True for a value of the form valid_name_address describes: "<sip:" user "@" host [":" port] ">"
/// then *(";" name "=" value). The user and each name and value are simple_char runs; the host is
/// dot-separated labels of letters, digits and inner '-'; the port 1-5 digits up to 65535. Every
/// such value parses; false says nothing (the value may still parse).
bool simple_name_address(std::string_view v) {
  constexpr std::string_view kOpen = "<sip:";
  if (v.substr(0, kOpen.size()) != kOpen) return false;
  std::size_t i = kOpen.size();
  const std::size_t user_at = i;
  i = run_end(v, i, kHost);  // simple_char, eight at a time
  if (i == user_at || i >= v.size() || v[i] != '@') return false;
  ++i;
  // Labels: [alnum] *( alnum / "-" ) [alnum], one dot between two.
  for (;;) {
    if (i >= v.size() || !is_alnum(v[i])) return false;
    while (i < v.size() && (is_alnum(v[i]) || v[i] == '-')) ++i;
    if (v[i - 1] == '-') return false;
    if (i < v.size() && v[i] == '.') {
      ++i;
      continue;
    }
    break;
  }
  if (i < v.size() && v[i] == ':') {
    const std::size_t port_at = ++i;
    std::uint32_t port = 0;
    while (i < v.size() && is_digit(v[i]) && i - port_at < 5)
      port = port * 10 + static_cast<std::uint32_t>(v[i++] - '0');
    if (i == port_at || port > 65535) return false;
  }
  if (i >= v.size() || v[i] != '>') return false;
  return plain_params(v.substr(i + 1));
}
}  // namespace

bool plain_params(std::string_view params) {
  std::size_t i = 0;
  while (i < params.size()) {
    if (params[i] != ';') return false;
    const std::size_t name_at = ++i;
    while (i < params.size() && simple_char(params[i])) ++i;
    if (i == name_at || i >= params.size() || params[i] != '=') return false;
    const std::size_t value_at = ++i;
    i = run_end(params, i, kHost);  // simple_char, eight at a time (tags, branches: 16 hex digits and more)
    if (i == value_at) return false;
  }
  return true;
}

bool valid_name_address(std::string_view value) {
  return simple_name_address(value) || parse_name_address(value).has_value();
}

bool parse_name_address_list(std::string_view value, std::vector<NameAddress>& out, bool allow_star) {
  Scanner s(value);
  s.skip_lws();
  if (allow_star && s.peek() == '*') {
    s.advance();
    s.skip_lws();
    if (!s.done()) return false;
    NameAddress na;
    na.star = true;
    out.push_back(na);
    return true;
  }
  for (bool done = false; !done;) {
    if (!scan_name_address(s, true, false, out.emplace_back())) {
      out.pop_back();
      return false;
    }
    if (!list_continue(s, done)) return false;
  }
  return true;
}

std::optional<CSeq> parse_cseq(std::string_view value) {
  Scanner s(value);
  std::size_t p = s.pos();
  while (is_digit(s.peek())) s.advance();
  auto n = parse_decimal(s.text().substr(p, s.pos() - p), 0x7fffffffu);  // RFC 3261 §8.1.1.5: below 2**31
  if (!n || !s.skip_lws()) return std::nullopt;
  CSeq c;
  c.number = static_cast<std::uint32_t>(*n);
  c.method = s.token();
  if (c.method.empty() || !s.done()) return std::nullopt;
  return c;
}

bool parse_token_list(std::string_view value, std::vector<std::string_view>& out) {
  Scanner s(value);
  s.skip_lws();
  if (s.done()) return true;  // an empty list is allowed for Supported/Allow
  for (bool done = false; !done;) {
    s.skip_lws();
    std::string_view t = s.token();
    if (t.empty()) return false;
    out.push_back(t);
    if (!list_continue(s, done)) return false;
  }
  return true;
}

bool MediaType::covers(std::string_view t, std::string_view st) const {
  if (type == "*") return subtype == "*";
  if (!iequals(type, t)) return false;
  return subtype == "*" || iequals(subtype, st);
}

namespace {
std::optional<MediaType> scan_media_type(Scanner& s) {
  MediaType m;
  s.skip_lws();
  m.type = s.token();
  if (m.type.empty() || !s.separator('/')) return std::nullopt;
  m.subtype = s.token();
  if (m.subtype.empty() || !scan_params(s, m.params)) return std::nullopt;
  return m;
}
}  // namespace

std::optional<MediaType> parse_media_type(std::string_view value) {
  Scanner s(value);
  auto m = scan_media_type(s);
  s.skip_lws();
  if (!m || !s.done()) return std::nullopt;
  return m;
}

bool parse_media_range_list(std::string_view value, std::vector<MediaType>& out) {
  Scanner s(value);
  s.skip_lws();
  if (s.done()) return true;  // RFC 3261 §20.1: an empty Accept means no body is acceptable
  for (bool done = false; !done;) {
    auto m = scan_media_type(s);
    if (!m) return false;
    out.push_back(*m);
    if (!list_continue(s, done)) return false;
  }
  return true;
}

std::optional<std::uint64_t> parse_uint_header(std::string_view value, std::uint64_t max) {
  return parse_decimal(value, max);
}

std::string unquote(std::string_view text) {
  if (text.size() < 2 || text.front() != '"' || text.back() != '"') return std::string(text);
  std::string out;
  for (std::size_t i = 1; i + 1 < text.size(); ++i) {
    if (text[i] == '\\' && i + 2 < text.size()) ++i;
    out.push_back(text[i]);
  }
  return out;
}

}  // namespace p2psip::sip
