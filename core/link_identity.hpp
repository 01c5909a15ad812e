// Whom a link's handshake proved its peer to be (a TLS connection's certificate), in the words of
// the core that checked the certificate. Opaque to the runtime: it keeps the value with the
// connection and hands it back with every message received on it, without reading it.
#pragma once

#include <array>
#include <cstdint>

namespace p2psip {

struct LinkIdentity {
  std::array<std::uint8_t, 16> bytes{};
  friend bool operator==(const LinkIdentity&, const LinkIdentity&) = default;
};

}  // namespace p2psip
