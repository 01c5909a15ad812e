// A user's registration as the overlay stores it. Under the key hash("sip:user@overlay"), each node
// that serves at least one of the user's devices keeps one dictionary entry, keyed by its Node-ID
// in hex (RFC 7904 §3 keys SIP-REGISTRATION by the storing node in the same way): "this AOR is
// reachable through me". The value is a msgpack map:
//   {"node": "<32 hex digits>", "addr": "ip:port", "transport": "UDP" | "TCP", "devices": uint}
// A caller's node looks the AOR up, sends the request straight to each entry's node, and that node
// delivers it to its own registered devices (docs/PROTOCOL.md, "Registrations").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "dht/messages.hpp"

namespace p2psip::proxy {

struct RegistrationEntry {
  dht::Peer node;  ///< the serving node and the address (and transport) it takes requests on
  std::uint32_t devices = 0;
  friend bool operator==(const RegistrationEntry&, const RegistrationEntry&) = default;
};

std::string encode_registration(const RegistrationEntry& e);
/// nullopt for anything but a well-formed map with the four fields (others are ignored).
std::optional<RegistrationEntry> decode_registration(std::string_view bytes);

}  // namespace p2psip::proxy
