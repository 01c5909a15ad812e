// A user's registration as the overlay stores it. Under the key hash("sip:user@overlay"), each node
// that serves at least one of the user's devices keeps one dictionary entry, keyed by its Node-ID
// in hex (RFC 7904 §3 keys SIP-REGISTRATION by the storing node in the same way): "this AOR is
// reachable through me". The value is a msgpack map:
//   {"node": "<32 hex digits>", "addr": "ip:port", "transport": "UDP" | "TCP" | "TLS", "devices": uint,
//    "via": ["<sip:TOKEN@ip:port;transport=tls;lr;ob>", ...]}
// A caller's node looks the AOR up, sends the request straight to each entry's node, and that node
// delivers it to its own registered devices (docs/PROTOCOL.md, "Registrations"). A node that others
// cannot reach (a client behind a NAT, docs/NAT.md) adds "via": the URIs its relay peers gave its
// flows (RFC 3327 Path values with RFC 5626 flow tokens), in order of preference; a caller then sends
// the request to the first relay with that URI as its Route, and to the next when it fails. The
// entry is signed as a whole by the user it registers, so no one else can point it elsewhere.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dht/messages.hpp"

namespace p2psip::proxy {

struct RegistrationEntry {
  dht::Peer node;  ///< the serving node and the address (and transport) it takes requests on
  std::uint32_t devices = 0;
  /// The relay peers' URIs that reach the node (empty: reach it at `node.addr`); each a name-addr
  /// "<sip:TOKEN@IP:PORT;...;lr;ob>" naming an IP literal.
  std::vector<std::string> via;
  friend bool operator==(const RegistrationEntry&, const RegistrationEntry&) = default;
};

/// Where a relay URI of an entry ("<sip:TOKEN@IP:PORT;...;lr;ob>") points; nullopt when it is not a
/// loose-routing sip: URI naming an IP literal.
std::optional<Endpoint> via_endpoint(std::string_view via);

std::string encode_registration(const RegistrationEntry& e);
/// At most this many relay URIs in an entry (a client keeps two flows; a decoder takes no more).
inline constexpr std::size_t kMaxVia = 4;
/// nullopt for anything but a well-formed map with the four fields, and "via" (when present) an
/// array of at most kMaxVia relay URIs that each name an IP literal (other fields are ignored).
std::optional<RegistrationEntry> decode_registration(std::string_view bytes);

}  // namespace p2psip::proxy
