// The Chord protocol's messages, independent of their encoding. node/overlay carries them in SIP.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/address.hpp"
#include "core/time.hpp"
#include "dht/node_id.hpp"

namespace p2psip::dht {

/// A peer on the ring: its identifier and the address its overlay transport listens on.
struct Peer {
  NodeId id;
  Endpoint addr;
  /// Reached by Attach: behind a NAT that lets in only what answers its own traffic (a cone NAT),
  /// so messages to it go over a link set up with ICE (nat/ice_links.hpp); `addr` is its
  /// server-reflexive address, which names the peer and keys the link. Not part of equality.
  bool attach = false;
  friend bool operator==(const Peer& a, const Peer& b) { return a.id == b.id && a.addr == b.addr; }
};

/// A stored value. `stored_at_us` is the storing peer's clock when it accepted the record (a
/// virtual-time count of microseconds); the record expires `lifetime_s` seconds later, and a
/// record stored with lifetime 0 removes the entry it names. A key holds one value per dictionary
/// key `dkey` (RELOAD's dictionary data model, RFC 6940 §7.2.3): a user's registrations are one
/// entry per node that serves one of the user's devices (RFC 7904 §3), so devices at different
/// nodes never overwrite each other. Single-valued data uses the empty dictionary key.
struct Record {
  NodeId key;         ///< hash of `name`
  std::string name;   ///< the key as the user wrote it
  std::string dkey;   ///< dictionary key ("" for a single value)
  std::string value;  ///< opaque bytes (msgpack by convention)
  std::string owner;  ///< who wrote it (the writing peer's Node-ID in hex)
  std::int64_t stored_at_us = 0;
  std::uint32_t lifetime_s = 3600;
  // Set by a writer that signs (issue 6; security/record_policy.hpp), empty otherwise. Opaque here:
  // the peer's RecordGuard decides what they prove.
  std::int64_t written_at_us = 0;  ///< the writer's wall clock, in µs since the Unix epoch (signed)
  std::string signer;              ///< the writer's certificate (DER)
  std::string signature;           ///< over the record's canonical encoding, by the signer's key
  friend bool operator==(const Record&, const Record&) = default;
};

/// What an operation or an answer came to. The values are the SIP status codes the overlay carries
/// them as (node/overlay/codec.hpp); the names say what they mean to the DHT. An answer from a peer
/// may carry any other code (a SIP layer's or an authenticator's refusal): it keeps its number.
enum class Status : std::uint16_t {
  None = 0,           ///< no answer (a refusal that refused nothing)
  Ok = 200,           ///< done: found, stored, answered
  Redirect = 302,     ///< iterative routing: ask the peer named
  BadRequest = 400,   ///< the request is not one this peer can carry out
  Forbidden = 403,    ///< the record guard refused it (a signature, a write rule, a replay)
  NotFound = 404,     ///< no record under the key
  TooLarge = 413,     ///< a value over the size limit, or its owner over the quota
  TooManyHops = 483,  ///< routed further than max_hops
  ServerError = 500,  ///< the first code of the server errors
  Implausible = 502,  ///< an answer naming a responsible peer far from the key (taken for forged)
  Unavailable = 503,  ///< no route to the responsible peer, not joined yet, overloaded
};
/// The status's SIP code, and the status of a SIP code.
[[nodiscard]] constexpr int code(Status s) {
  return static_cast<int>(s);
}
[[nodiscard]] constexpr Status status_of(int sip_code) {
  return static_cast<Status>(sip_code);
}

/// A guard's refusal: a status and reason (None: accepted).
struct Refusal {
  Status status = Status::None;
  std::string reason;
  explicit operator bool() const { return status != Status::None; }
};

/// Which records a peer takes into its storage and which fetched records it believes: the
/// security layer's access control (RFC 6940 §7.3: signatures, USER-MATCH, NODE-MATCH, replays).
/// A peer without a guard takes and believes everything (tests, and simulations without security).
class RecordGuard {
 public:
  virtual ~RecordGuard() = default;
  /// A store, replica or transfer of `r`, with `held` the entry stored under its (key, dkey) now
  /// (null when none): a Refusal with a status to take it or not. `own`: the record was written by
  /// this node's own application and never crossed the network (its signature, made in this
  /// process, need not be checked again; every other rule still applies).
  virtual Refusal admit(const Record& r, const Record* held, Instant now, bool own) = 0;
  /// A record a fetch returned: whether its signer may write it and its signature holds.
  virtual bool believe(const Record& r, Instant now) = 0;
};

enum class Op : std::uint8_t {
  Join,       ///< "I am joining just before you": answered with predecessor, successors, records
  Neighbors,  ///< stabilization: "who are your predecessor and successors?"
  Notify,     ///< "I may be your predecessor (or successor)"
  Ping,       ///< liveness of a predecessor, answered with its own predecessors
  Leave,      ///< graceful leave: records to the successor, neighbours to both sides
  Replicate,  ///< copies of a responsible peer's records for its successors
  Route,      ///< routed to the peer responsible for `target`: lookup, store or fetch
  /// To a peer that announces a TURN server (RFC 6940 §9's TURN-SERVICE): "credentials for it,
  /// please", with an opaque payload each way (node/peer/turn_service.hpp). Sent to the peer
  /// directly, never routed.
  Turn,
};
/// Attach (RFC 6940 §6.5.1): routed to a peer's own Node-ID and answered by that peer only, with
/// an opaque payload each way (the ICE descriptions of nat/ice.hpp); always routed recursively.
/// Find (RFC 6940 §7.4.4, with the records themselves in the answer): the responsible peer answers
/// with the records of kind `Request::kind` it holds nearest after the target (any key), so that a
/// random target finds one of the few peers that announce a service (RFC 6940 §9).
enum class RouteOp : std::uint8_t { Lookup, Store, Fetch, Attach, Find };
/// The kinds a Find may ask for: the first part of a record name, before its ':'.
inline constexpr std::string_view kTurnServiceKind = "turn-service";
/// At most this many records answer a Find.
inline constexpr std::size_t kMaxFound = 4;

struct Request {
  Op op = Op::Ping;
  RouteOp route_op = RouteOp::Lookup;
  Peer sender;
  NodeId target;
  std::uint32_t hops = 0;
  bool iterative = false;          ///< answer with a redirect instead of forwarding
  bool final_hop = false;          ///< the sender believes the receiver is responsible for `target`
  std::vector<Record> records;     ///< Store (one), Replicate, Leave (hand-over)
  std::vector<Peer> predecessors;  ///< Leave: the leaver's predecessors, nearest first
  std::vector<Peer> successors;    ///< Leave: the leaver's successors
  /// Lookup and Fetch: peers to route around as if they had left (at most kMaxExcluded).
  std::vector<NodeId> exclude;
  std::string payload;  ///< Attach: the sender's description (opaque here)
  /// Attach: the peer that sent it first (`sender` is the last hop's), kept by every hop.
  std::optional<Peer> origin;
  std::string kind;  ///< Find: the kind of record sought (kTurnServiceKind)
};
inline constexpr std::size_t kMaxExcluded = 4;

struct Response {
  Status status = Status::Ok;
  std::string reason;
  Peer responder;
  std::optional<Peer> responsible;  ///< Route: the peer that answered for the target
  std::uint32_t hops = 0;
  std::vector<Peer> predecessors;  ///< nearest first (P1, P2, ...)
  std::vector<Peer> successors;
  std::vector<Record> records;
  std::optional<Peer> redirect;     ///< 302: where to ask next (iterative routing)
  bool redirect_final = false;      ///< 302: the redirect target is responsible for the key
  std::string payload;              ///< Attach: the answerer's description
  std::uint32_t retry_after_s = 0;  ///< a 503's Retry-After (0: none)
};

std::string_view op_name(Op op);
std::optional<Op> op_from_name(std::string_view name);
std::string_view route_op_name(RouteOp op);
std::optional<RouteOp> route_op_from_name(std::string_view name);

}  // namespace p2psip::dht
