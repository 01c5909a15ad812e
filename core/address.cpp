#include "core/address.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace p2psip {

std::string_view transport_name(Transport t) {
  switch (t) {
    case Transport::Udp: return "UDP";
    case Transport::Tcp: return "TCP";
    case Transport::Tls: return "TLS";
  }
  return "UDP";
}

std::optional<Transport> transport_from_name(std::string_view name) {
  auto eq = [&](std::string_view w) {
    if (w.size() != name.size()) return false;
    for (std::size_t i = 0; i < w.size(); ++i) {
      char c = name[i];
      if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 32);
      if (c != w[i]) return false;
    }
    return true;
  };
  if (eq("UDP")) return Transport::Udp;
  if (eq("TCP")) return Transport::Tcp;
  if (eq("TLS")) return Transport::Tls;
  return std::nullopt;
}

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  if (text.empty() || text.size() > 45) return std::nullopt;
  IpAddress a;
  if (text.find(':') != std::string_view::npos) {
    a.v6 = true;
    char buf[64];
    std::memcpy(buf, text.data(), text.size());
    buf[text.size()] = '\0';
    if (inet_pton(AF_INET6, buf, a.bytes.data()) != 1) return std::nullopt;
    return a;
  }
  return parse_v4(text);
}

std::optional<IpAddress> IpAddress::parse_v4(std::string_view text) {
  std::size_t used = 0;
  auto a = parse_v4_prefix(text, used);
  if (!a || used != text.size()) return std::nullopt;
  return a;
}

std::optional<IpAddress> IpAddress::parse_v4_prefix(std::string_view text, std::size_t& used) {
  // Dotted quad as inet_pton reads it: four decimal octets up to 255, no leading zeros. Each octet
  // is read unrolled, at most three digits; a fourth is left for the caller to refuse.
  const char* p = text.data();
  const std::size_t n = text.size();
  std::size_t i = 0;
  auto digit = [&](unsigned& d) { return i < n && (d = static_cast<unsigned char>(p[i]) - unsigned{'0'}) <= 9; };
  IpAddress a;
  for (std::size_t part = 0; part < 4; ++part) {
    if (part > 0) {
      if (i >= n || p[i] != '.') return std::nullopt;
      ++i;
    }
    unsigned d = 0;
    if (!digit(d)) return std::nullopt;
    unsigned value = d;
    ++i;
    if (digit(d)) {
      if (value == 0) return std::nullopt;  // a leading zero
      value = value * 10 + d;
      ++i;
      if (digit(d)) {
        value = value * 10 + d;
        ++i;
        if (value > 255) return std::nullopt;
      }
    }
    a.bytes[part] = static_cast<std::uint8_t>(value);
  }
  used = i;
  return a;
}

std::string IpAddress::to_string() const {
  std::string out;
  append_to(out);
  return out;
}

void IpAddress::append_to(std::string& out) const {
  if (v6) {
    char buf[INET6_ADDRSTRLEN] = {};
    inet_ntop(AF_INET6, bytes.data(), buf, sizeof buf);
    out += buf;
    return;
  }
  char buf[16];  // "255.255.255.255"
  char* p = buf;
  for (std::size_t part = 0; part < 4; ++part) {
    if (part > 0) *p++ = '.';
    p = std::to_chars(p, p + 3, static_cast<unsigned>(bytes[part])).ptr;  // 3 digits at most, inside buf
  }
  out.append(buf, static_cast<std::size_t>(p - buf));
}

bool IpAddress::is_loopback() const {
  if (!v6) return bytes[0] == 127;
  for (int i = 0; i < 15; ++i) {
    if (bytes[i] != 0) return false;
  }
  return bytes[15] == 1;
}

bool IpAddress::is_broadcast_or_multicast() const {
  if (v6) return bytes[0] == 0xff;
  bool all_ones = bytes[0] == 255 && bytes[1] == 255 && bytes[2] == 255 && bytes[3] == 255;
  return all_ones || (bytes[0] >= 224 && bytes[0] <= 239);
}

std::string Endpoint::host_port() const {
  std::string out;
  append_host_port(out);
  return out;
}

void Endpoint::append_host_port(std::string& out) const {
  if (ip.v6) out += '[';
  ip.append_to(out);
  if (ip.v6) out += ']';
  char buf[8];
  out += ':';
  out.append(buf, static_cast<std::size_t>(std::to_chars(buf, buf + sizeof buf, port).ptr - buf));
}

std::string Endpoint::to_string() const {
  std::string out;
  switch (transport) {
    case Transport::Udp: out = "udp:"; break;
    case Transport::Tcp: out = "tcp:"; break;
    case Transport::Tls: out = "tls:"; break;
  }
  return out + host_port();
}

std::optional<Endpoint> parse_host_port(std::string_view text, Transport transport) {
  std::string_view host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') return std::nullopt;
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return std::nullopt;
  }
  auto ip = IpAddress::parse(host);
  if (!ip) return std::nullopt;
  unsigned value = 0;
  auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || p != port.data() + port.size() || port.empty() || value > 65535) return std::nullopt;
  return Endpoint{transport, *ip, static_cast<std::uint16_t>(value)};
}

std::size_t EndpointHash::operator()(const Endpoint& e) const noexcept {
  std::size_t h = static_cast<std::size_t>(e.transport) * 1000003u ^ e.port;
  for (auto b : e.ip.bytes) h = h * 131u + b;
  return h;
}

}  // namespace p2psip
