#include "dht/node_id.hpp"

#include <sodium.h>

namespace p2psip::dht {

NodeId NodeId::hash(std::string_view key) {
  unsigned char digest[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(digest, reinterpret_cast<const unsigned char*>(key.data()), key.size());
  NodeId id;
  for (int i = 0; i < 8; ++i) id.hi = id.hi << 8 | digest[i];
  for (int i = 8; i < 16; ++i) id.lo = id.lo << 8 | digest[i];
  return id;
}

std::optional<NodeId> NodeId::from_hex(std::string_view hex) {
  if (hex.size() != 32) return std::nullopt;
  NodeId id;
  for (std::size_t i = 0; i < 32; ++i) {
    char c = hex[i];
    unsigned v = 0;
    if (c >= '0' && c <= '9') {
      v = static_cast<unsigned>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      v = static_cast<unsigned>(c - 'a' + 10);
    } else if (c >= 'A' && c <= 'F') {
      v = static_cast<unsigned>(c - 'A' + 10);
    } else {
      return std::nullopt;
    }
    std::uint64_t& half = i < 16 ? id.hi : id.lo;
    half = half << 4 | v;
  }
  return id;
}

std::string NodeId::hex() const {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(32, '0');
  for (int i = 0; i < 16; ++i) {
    out[static_cast<std::size_t>(i)] = kDigits[(hi >> (60 - 4 * i)) & 0xf];
    out[static_cast<std::size_t>(16 + i)] = kDigits[(lo >> (60 - 4 * i)) & 0xf];
  }
  return out;
}

NodeId NodeId::plus_pow2(int i) const {
  NodeId add;
  if (i >= 64) {
    add.hi = std::uint64_t{1} << (i - 64);
  } else {
    add.lo = std::uint64_t{1} << i;
  }
  NodeId r;
  r.lo = lo + add.lo;
  r.hi = hi + add.hi + (r.lo < lo ? 1 : 0);
  return r;
}

NodeId distance(NodeId a, NodeId b) {
  NodeId r;
  r.lo = b.lo - a.lo;
  r.hi = b.hi - a.hi - (b.lo < a.lo ? 1 : 0);
  return r;
}

bool in_open_closed(NodeId x, NodeId a, NodeId b) {
  if (a == b) return true;
  NodeId dx = distance(a, x);
  NodeId db = distance(a, b);
  return dx != NodeId{} && dx <= db;
}

bool in_open_open(NodeId x, NodeId a, NodeId b) {
  if (a == b) return x != a;
  NodeId dx = distance(a, x);
  NodeId db = distance(a, b);
  return dx != NodeId{} && dx < db;
}

}  // namespace p2psip::dht
