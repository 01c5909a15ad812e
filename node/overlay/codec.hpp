// Chord messages carried in SIP (docs/PROTOCOL.md, "Overlay messages"). Every overlay request is a
// REGISTER — membership and storage are registrations, as in dSIP — whose DHT-Op header names the
// operation; the sender and the links it reports travel as readable DHT-PeerID and DHT-Link headers,
// records as a msgpack body of type application/p2psip-records+msgpack.
#pragma once

#include <msgpack.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "dht/messages.hpp"
#include "node/sip/headers.hpp"
#include "node/sip/message.hpp"
#include "node/sip/validate.hpp"

namespace p2psip::overlay {

inline constexpr std::string_view kRecordsType = "application/p2psip-records+msgpack";
/// The body of a request for TURN credentials and of its answer (dht::Op::Turn; docs/PROTOCOL.md).
inline constexpr std::string_view kTurnType = "application/p2psip-turn";

/// What the encoder needs besides the message: the overlay's name and the transaction's identifiers.
/// Views: the caller holds the text while encode_request runs.
struct RequestFraming {
  std::string_view overlay;
  Transport transport = Transport::Udp;  ///< written in the Via
  std::string_view branch;
  std::string_view call_id;
  std::string_view from_tag;
};

sip::Message encode_request(const dht::Request& r, const RequestFraming& framing);
/// Decodes an overlay request; a Rejection (400 with the reason, 404 for another overlay) otherwise.
Result<dht::Request, sip::Rejection> decode_request(const sip::Message& m, std::string_view overlay);
/// The response to `request` carrying `r`.
sip::Message encode_response(const sip::Message& request, const dht::Response& r, std::string_view overlay,
                             std::string_view to_tag);
/// Decodes a final response to an overlay request; the reason on failure.
Result<dht::Response, std::string> decode_response(const sip::Message& m);

// ---- client flows (docs/PROTOCOL.md, "Client flows") ----

/// The DHT-Op of a client's flow registration at a relay peer.
inline constexpr std::string_view kFlowOp = "flow";

/// A client's flow registration (RFC 5626 on the overlay): a REGISTER to the relay with DHT-Op
/// "flow", the client's DHT-PeerID (flagged `client`), and a Contact with +sip.instance, reg-id
/// and expires.
struct FlowRegistration {
  dht::Peer client;      ///< its Node-ID, and its address as it knows it (behind a NAT: a private one)
  std::string instance;  ///< the +sip.instance URN, without quotes or angle brackets
  std::uint32_t reg_id = 0;
  std::uint32_t expires_s = 0;  ///< 0: remove the flow
};
/// The relay's answer: who it is, the URI that names the flow (a Path, RFC 3327, with a flow
/// token, RFC 5626 §5.2), the lifetime granted and its Flow-Timer (§5.4).
struct FlowGrant {
  dht::Peer relay;
  std::string path;  ///< "<sip:TOKEN@IP:PORT;lr;ob>"
  std::uint32_t expires_s = 0;
  std::uint32_t flow_timer_s = 0;
  std::vector<dht::Peer> alternates;  ///< the relay's successors (DHT-Link S1...): the next relays to try
};
sip::Message encode_flow_request(const FlowRegistration& f, const RequestFraming& framing);
/// A flow registration read; a Rejection (400 with the reason, 404 for another overlay) otherwise.
Result<FlowRegistration, sip::Rejection> decode_flow_request(const sip::Message& m, std::string_view overlay);
sip::Message encode_flow_response(const sip::Message& request, const FlowGrant& g, std::string_view overlay,
                                  std::string_view to_tag);
/// A 2xx answer to a flow registration read; the reason otherwise.
Result<FlowGrant, std::string> decode_flow_response(const sip::Message& m);

/// "<sip:HEX@IP:PORT>" for a peer, and back.
std::string peer_uri(const dht::Peer& p);
std::optional<dht::Peer> parse_peer(std::string_view name_addr_value);
/// The same from a name-addr already parsed.
std::optional<dht::Peer> peer_of(const sip::NameAddress& name_addr);
/// A peer's name-addr value (DHT-PeerID, DHT-Link, a Contact) read: the peer and the parameters
/// after the URI; nullopt when the value is no name-addr, or names no peer. The form this codec
/// writes, "<sip:" 32 hex digits "@" a dotted quad ":" port ">" then plain `;name=value`
/// parameters, is read without the general SIP parser, with the same result; any other form goes
/// through it.
struct PeerValue {
  dht::Peer peer;
  sip::HeaderParams params;
};
std::optional<PeerValue> read_peer_value(std::string_view value);

/// Records as msgpack: an array of maps {k: bin(16), n: str, v: bin, o: str, t: int, l: uint}.
/// msgpack helpers shared by the overlay's bodies and values.
void pack_str(msgpack_packer* pk, std::string_view s);
void pack_bin(msgpack_packer* pk, std::string_view s);
/// True when `bytes` is exactly one msgpack value whose every count and length fits in the bytes
/// and whose containers nest at most `max_depth` deep: safe to hand to msgpack-c, which allocates
/// a container's elements before reading them.
bool msgpack_well_formed(std::string_view bytes, int max_depth = 8);

std::string encode_records(const std::vector<dht::Record>& records);
/// nullopt when the bytes are not such an array, or hold more than `max_records`.
std::optional<std::vector<dht::Record>> decode_records(std::string_view bytes, std::size_t max_records = 100000);

}  // namespace p2psip::overlay
