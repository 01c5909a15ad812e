#include "nat/ice.hpp"

#include <charconv>
#include <limits>

namespace p2psip::nat {
namespace {

// RFC 8839 §5.1: ice-char = ALPHA / DIGIT / "+" / "/"
bool is_ice_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}
bool all_ice_chars(std::string_view s) {
  for (char c : s)
    if (!is_ice_char(c)) return false;
  return true;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

/// Splits on single spaces; false when a field is empty (two spaces, a leading or trailing one).
bool split_fields(std::string_view s, std::vector<std::string_view>& out) {
  out.clear();
  std::size_t start = 0;
  while (start <= s.size()) {
    std::size_t sp = s.find(' ', start);
    if (sp == std::string_view::npos) sp = s.size();
    if (sp == start) return false;
    out.push_back(s.substr(start, sp - start));
    if (out.size() > 64) return false;
    start = sp + 1;
  }
  return true;
}

template <class T>
bool read_number(std::string_view s, std::size_t max_digits, T& out) {
  if (s.empty() || s.size() > max_digits) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  std::uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v > std::numeric_limits<T>::max()) return false;
  out = static_cast<T>(v);
  return true;
}

std::optional<CandidateType> type_from_name(std::string_view s) {
  if (s == "host") return CandidateType::Host;
  if (s == "srflx") return CandidateType::ServerReflexive;
  if (s == "prflx") return CandidateType::PeerReflexive;
  if (s == "relay") return CandidateType::Relayed;
  return std::nullopt;
}

std::string_view strip_prefix(std::string_view s, std::string_view prefix) {
  if (s.substr(0, prefix.size()) == prefix) s.remove_prefix(prefix.size());
  return s;
}

}  // namespace

std::string_view candidate_type_name(CandidateType t) {
  switch (t) {
    case CandidateType::Host: return "host";
    case CandidateType::ServerReflexive: return "srflx";
    case CandidateType::PeerReflexive: return "prflx";
    case CandidateType::Relayed: return "relay";
  }
  return "host";
}

std::uint32_t candidate_priority(CandidateType t, std::uint16_t local_preference, std::uint16_t component) {
  // RFC 8445 §5.1.2.2's recommended type preferences.
  std::uint32_t type_pref = 0;
  switch (t) {
    case CandidateType::Host: type_pref = 126; break;
    case CandidateType::PeerReflexive: type_pref = 110; break;
    case CandidateType::ServerReflexive: type_pref = 100; break;
    case CandidateType::Relayed: type_pref = 0; break;
  }
  const std::uint32_t comp = component > 256 ? 256 : component;
  return (type_pref << 24) + (static_cast<std::uint32_t>(local_preference) << 8) + (256 - comp);
}

std::string encode_candidate(const IceCandidate& c) {
  std::string out = "candidate:";
  out += c.foundation;
  out += ' ';
  out += std::to_string(c.component);
  out += " UDP ";
  out += std::to_string(c.priority);
  out += ' ';
  out += c.address.ip.to_string();
  out += ' ';
  out += std::to_string(c.address.port);
  out += " typ ";
  out += candidate_type_name(c.type);
  if (c.related) {
    out += " raddr ";
    out += c.related->ip.to_string();
    out += " rport ";
    out += std::to_string(c.related->port);
  }
  return out;
}

// RFC 8839 §5.1:
//   candidate-attribute = "candidate" ":" foundation SP component-id SP transport SP priority SP
//                         connection-address SP port SP cand-type [SP rel-addr] [SP rel-port]
//                         *(SP cand-extension)
Result<std::optional<IceCandidate>, std::string> parse_candidate(std::string_view text) {
  text = strip_prefix(text, "a=");
  if (text.substr(0, 10) != "candidate:") return unexpected(std::string("not a candidate attribute"));
  text.remove_prefix(10);
  std::vector<std::string_view> f;
  if (!split_fields(text, f) || f.size() < 8) return unexpected(std::string("malformed candidate"));
  IceCandidate c;
  if (f[0].size() > 32 || !all_ice_chars(f[0])) return unexpected(std::string("malformed candidate foundation"));
  c.foundation = std::string(f[0]);
  if (!read_number(f[1], 3, c.component) || c.component == 0 || c.component > 256)
    return unexpected(std::string("malformed candidate component"));
  if (!read_number(f[3], 10, c.priority) || c.priority == 0)
    return unexpected(std::string("malformed candidate priority"));
  std::uint16_t port = 0;
  if (!read_number(f[5], 5, port)) return unexpected(std::string("malformed candidate port"));
  if (f[6] != "typ") return unexpected(std::string("candidate without typ"));
  const auto type = type_from_name(f[7]);
  // Extensions come in name-value pairs after the type (and raddr/rport).
  std::optional<IpAddress> rel_ip;
  std::optional<std::uint16_t> rel_port;
  std::size_t i = 8;
  for (; i + 1 < f.size(); i += 2) {
    if (f[i] == "raddr") {
      rel_ip = IpAddress::parse(f[i + 1]);  // a name (mDNS) instead: kept without a related address
    } else if (f[i] == "rport") {
      std::uint16_t p = 0;
      if (!read_number(f[i + 1], 5, p)) return unexpected(std::string("malformed candidate rport"));
      rel_port = p;
    }
  }
  if (i != f.size()) return unexpected(std::string("malformed candidate extension"));
  // Well formed but not for us: another transport, a name instead of an address, a new type.
  if (!iequals(f[2], "UDP") || !type) return std::optional<IceCandidate>();
  const auto ip = IpAddress::parse(f[4]);
  if (!ip || port == 0) return std::optional<IceCandidate>();
  c.address = Endpoint{Transport::Udp, *ip, port};
  c.type = *type;
  if (rel_ip && rel_port) c.related = Endpoint{Transport::Udp, *rel_ip, *rel_port};
  return std::optional<IceCandidate>(std::move(c));
}

std::string encode_ice(const IceDescription& d) {
  std::string out;
  out.reserve(64 + d.candidates.size() * 96);
  out += "a=ice-ufrag:" + d.credentials.ufrag + "\r\n";
  out += "a=ice-pwd:" + d.credentials.pwd + "\r\n";
  for (const auto& c : d.candidates) {
    out += "a=";
    out += encode_candidate(c);
    out += "\r\n";
  }
  if (d.end_of_candidates) out += "a=end-of-candidates\r\n";
  return out;
}

Result<IceDescription, std::string> parse_ice(std::string_view body, const IceLimits& limits) {
  if (body.size() > limits.max_bytes) return unexpected(std::string("ICE description too large"));
  IceDescription d;
  bool have_ufrag = false, have_pwd = false;
  std::size_t pos = 0;
  while (pos < body.size()) {
    std::size_t eol = body.find('\n', pos);
    if (eol == std::string_view::npos) eol = body.size();
    std::string_view line = body.substr(pos, eol - pos);
    pos = eol + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    if (line.substr(0, 2) != "a=") continue;  // RFC 8840 §4.3: other lines are not ours to judge
    const std::string_view attr = line.substr(2);
    if (attr.substr(0, 10) == "ice-ufrag:") {
      const auto v = attr.substr(10);
      if (have_ufrag || v.size() < 4 || v.size() > 256 || !all_ice_chars(v))
        return unexpected(std::string("malformed ice-ufrag"));
      d.credentials.ufrag = std::string(v);
      have_ufrag = true;
    } else if (attr.substr(0, 8) == "ice-pwd:") {
      const auto v = attr.substr(8);
      if (have_pwd || v.size() < 22 || v.size() > 256 || !all_ice_chars(v))
        return unexpected(std::string("malformed ice-pwd"));
      d.credentials.pwd = std::string(v);
      have_pwd = true;
    } else if (attr.substr(0, 10) == "candidate:") {
      auto c = parse_candidate(attr);
      if (!c) return unexpected(std::move(c.error()));
      if (!c.value()) continue;
      if (d.candidates.size() >= limits.max_candidates) return unexpected(std::string("too many ICE candidates"));
      d.candidates.push_back(std::move(*c.value()));
    } else if (attr == "end-of-candidates") {
      d.end_of_candidates = true;
    }
  }
  if (!have_ufrag) return unexpected(std::string("no ice-ufrag"));
  if (!have_pwd) return unexpected(std::string("no ice-pwd"));
  return d;
}

}  // namespace p2psip::nat
