// Transport endpoints: a transport, an IP address (v4 or v6) and a port. Plain values, no sockets.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace p2psip {

enum class Transport : std::uint8_t { Udp, Tcp, Tls };

/// True for transports that deliver a byte stream reliably (RFC 3261 §17: no retransmission timers).
constexpr bool is_reliable(Transport t) {
  return t != Transport::Udp;
}
std::string_view transport_name(Transport t);                         ///< "UDP", "TCP", "TLS" as written in a Via.
std::optional<Transport> transport_from_name(std::string_view name);  ///< case-insensitive.

struct IpAddress {
  bool v6 = false;
  std::array<std::uint8_t, 16> bytes{};  ///< v4 uses the first 4 bytes.

  static std::optional<IpAddress> parse(std::string_view text);     ///< dotted quad or RFC 4291 text (no brackets).
  static std::optional<IpAddress> parse_v4(std::string_view text);  ///< a dotted quad only, as parse reads it.
  /// The dotted quad at the start of `text`, as parse_v4 reads one, and in `used` its length; the
  /// caller judges what follows (parse_v4 is this with nothing after it).
  static std::optional<IpAddress> parse_v4_prefix(std::string_view text, std::size_t& used);
  [[nodiscard]] std::string to_string() const;  ///< v6 without brackets.
  void append_to(std::string& out) const;       ///< to_string(), appended.
  [[nodiscard]] bool is_loopback() const;
  /// IPv4 limited broadcast, or an IPv6 multicast address: RFC 4475 §3.3.10 says never send toward these.
  [[nodiscard]] bool is_broadcast_or_multicast() const;
  friend bool operator==(const IpAddress&, const IpAddress&) = default;
};

struct Endpoint {
  Transport transport = Transport::Udp;
  IpAddress ip;
  std::uint16_t port = 0;

  /// "udp:127.0.0.1:5060" or "tcp:[::1]:5060" style text, for logs.
  [[nodiscard]] std::string to_string() const;
  /// "127.0.0.1:5060" or "[::1]:5060" (no transport).
  [[nodiscard]] std::string host_port() const;
  void append_host_port(std::string& out) const;  ///< host_port(), appended.
  friend bool operator==(const Endpoint&, const Endpoint&) = default;
};

/// Parses "ADDR:PORT", "[V6]:PORT"; returns nullopt on anything else (no name resolution).
std::optional<Endpoint> parse_host_port(std::string_view text, Transport transport);

struct EndpointHash {
  std::size_t operator()(const Endpoint& e) const noexcept;
};

}  // namespace p2psip
