#include "dht/node_id.hpp"

#include <sodium.h>

#include "core/hex.hpp"

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
  NodeId id;
  if (hex.size() != 32 || !read_hex64(hex.data(), id.hi) || !read_hex64(hex.data() + 16, id.lo)) return std::nullopt;
  return id;
}

std::string NodeId::hex() const {
  std::string out;
  out.reserve(32);
  append_hex(out);
  return out;
}

void NodeId::append_hex(std::string& out) const {
  append_hex64(out, hi);
  append_hex64(out, lo);
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

LinkIdentity NodeId::link_identity() const {
  LinkIdentity out;
  for (std::size_t i = 0; i < 8; ++i) {
    out.bytes[i] = static_cast<std::uint8_t>(hi >> (56 - 8 * i));
    out.bytes[8 + i] = static_cast<std::uint8_t>(lo >> (56 - 8 * i));
  }
  return out;
}

NodeId NodeId::from_link_identity(const LinkIdentity& link) {
  NodeId id;
  for (std::size_t i = 0; i < 8; ++i) {
    id.hi = id.hi << 8 | link.bytes[i];
    id.lo = id.lo << 8 | link.bytes[8 + i];
  }
  return id;
}

}  // namespace p2psip::dht
