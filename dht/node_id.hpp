// 128-bit Chord identifiers and ring arithmetic (RELOAD, RFC 6940 §10: a hash truncated to 128 bits).
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/link_identity.hpp"

namespace p2psip::dht {

struct NodeId {
  std::uint64_t hi = 0;
  std::uint64_t lo = 0;

  /// The first 128 bits of SHA-256 over the key's bytes: where a key lives on the ring.
  static NodeId hash(std::string_view key);
  /// 32 hex digits (case-insensitive); nullopt on anything else.
  static std::optional<NodeId> from_hex(std::string_view hex);
  [[nodiscard]] std::string hex() const;
  void append_hex(std::string& out) const;  ///< hex(), appended.
  /// The first 8 hex digits, for logs.
  [[nodiscard]] std::string short_hex() const { return hex().substr(0, 8); }

  /// this + 2^i (mod 2^128), i in [0, 127]: the start of finger i.
  [[nodiscard]] NodeId plus_pow2(int i) const;
  /// b - a (mod 2^128): the clockwise distance from a to b.
  friend NodeId distance(NodeId a, NodeId b);
  /// The Node-ID as a link's opaque identity (big-endian, hi first), and back.
  [[nodiscard]] LinkIdentity link_identity() const;
  static NodeId from_link_identity(const LinkIdentity& link);

  friend auto operator<=>(const NodeId&, const NodeId&) = default;
};

/// `n` as a number (within a double's precision: for estimates, never for routing).
inline double as_double(NodeId n) {
  return static_cast<double>(n.hi) * 18446744073709551616.0 + static_cast<double>(n.lo);
}

/// x in the ring interval (a, b]. When a == b the interval is the whole ring.
bool in_open_closed(NodeId x, NodeId a, NodeId b);
/// x in the ring interval (a, b). When a == b: the whole ring except a.
bool in_open_open(NodeId x, NodeId a, NodeId b);

struct NodeIdHash {
  std::size_t operator()(const NodeId& id) const noexcept { return static_cast<std::size_t>(id.hi ^ (id.lo * 31)); }
};

}  // namespace p2psip::dht
