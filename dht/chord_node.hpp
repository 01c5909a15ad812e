// The Chord protocol of one peer (Stoica et al., SIGCOMM 2001, with RELOAD's CHORD-RELOAD choices:
// a successor list, replicas on successors, join through the admitting peer, graceful leave).
//
// Sans-I/O: requests go out through a ChordTransport with an id chosen here; their outcome comes back
// through on_response/on_failure. Requests from other peers come in through on_request with a
// handle to answer through ChordTransport::reply. Time is handed in; advance(now) runs the periodic
// work when next_wakeup() has come.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <unordered_map>
#include <vector>

#include "core/environment.hpp"
#include "core/rate_limiter.hpp"
#include "core/small_map.hpp"
#include "core/time.hpp"
#include "dht/messages.hpp"
#include "dht/routing_table.hpp"
#include "dht/storage.hpp"

namespace p2psip::dht {

using RequestId = std::uint64_t;
using ReplyHandle = std::uint64_t;

class ChordTransport {
 public:
  virtual ~ChordTransport() = default;
  /// Sends `r` to `to`; false when it could not leave at all (the transport refused it at once),
  /// and nothing more will be heard of it. Otherwise the outcome arrives later as
  /// ChordNode::on_response(id) or on_failure(id), never before send returns.
  virtual bool send(RequestId id, const Peer& to, const Request& r, Instant now) = 0;
  /// Answers the request that arrived with `handle`.
  virtual void reply(ReplyHandle handle, const Response& r, Instant now) = 0;
};

struct ChordConfig {
  std::size_t successors = 8;    ///< successor list length
  std::size_t predecessors = 3;  ///< predecessor list length (RELOAD: at least 3)
  std::size_t replicas = 2;      ///< copies on successors, besides the responsible peer's
  Duration stabilize_interval = seconds(30);
  std::size_t fingers_per_round = 2;  ///< finger lookups per stabilization round (traffic against freshness)
  /// Finger lookups run every this many stabilization rounds (SimGrid's Chord: stabilize every
  /// 20 s, fix a finger every 120 s, i.e. 6).
  std::size_t finger_rounds = 1;
  bool iterative = false;  ///< route our own requests iteratively (experiments)
  /// Route through any peer of the successor list, not only the first (fewer hops near the key).
  /// Off: base Chord's routing, for comparisons with the Chord paper (experiments).
  bool route_via_successor_list = true;
  /// Take the responsible peers named in answers coming back as fingers when they are nearer the
  /// finger's start than the one known (RoutingTable::offer_finger). Off: fingers come only from
  /// the finger lookups, as in base Chord (the Chord paper's experiments).
  bool learn_fingers = true;
  std::uint32_t max_hops = 48;                    ///< routed requests beyond this are answered 483
  int route_retries = 3;                          ///< next hops tried before a routed request fails
  std::size_t replicate_batch_bytes = 32 * 1024;  ///< records per Replicate/Leave message, by size
  /// A fetch that finds nothing it can believe (withheld, forged, or the route failed past a
  /// responsible peer) is tried again with the peer that answered excluded, so that the next try
  /// reaches the next copy (records live at the responsible peer and `replicas` successors).
  /// 1: one try only. At most 1 + kMaxExcluded.
  int fetch_attempts = 3;
  /// An answer whose responsible peer lies more than this many mean gaps between ids (estimated
  /// from the successor list) clockwise past the key claims a key that is not its own: it is
  /// taken for forged and the route tried again past that peer (a lookup as a fetch). An honest
  /// answer is that far off with probability e^-32. 0: no such check.
  unsigned plausible_gaps = 32;
  std::size_t max_value_bytes = 8192;  ///< a record's value beyond this is refused 413
  /// Entries one owner (signer, or the owner field of unsigned records) may have at this peer,
  /// primaries and replicas together; a new one beyond it is refused 413.
  std::size_t max_records_per_owner = 1000;
};

struct ChordStats {
  std::uint64_t routes_started = 0, routes_ok = 0, routes_failed = 0, forwarded = 0;
  std::uint64_t requests_in = 0, requests_out = 0, failures = 0;
  std::uint64_t late_answers = 0;  ///< of the failures, those whose peer was alive (on_failure's hop_alive)
  std::uint64_t peers_failed = 0, records_replicated = 0, records_transferred = 0, stabilize_rounds = 0;
  std::uint64_t successors_repaired = 0;  ///< closer successors found by the successor check or named in answers
  std::uint64_t records_refused = 0;      ///< stores, replicas and transfers the guard refused
  std::uint64_t records_disbelieved = 0;  ///< fetched records the guard did not believe (dropped)
  std::uint64_t records_over_quota = 0;   ///< refused for their size or their owner's quota
  std::uint64_t implausible = 0;          ///< answers naming a responsible peer far from the key
  std::uint64_t attaches_around = 0;      ///< Attaches sent again from a far finger after "No Such Peer"
  std::uint64_t rejoins = 0;              ///< Joins sent again after the ring routed our own id to us
};

struct RouteResult {
  Status status = Status::Ok;
  std::string reason;
  std::optional<Peer> responsible;
  std::uint32_t hops = 0;
  std::vector<Record> records;
  Duration latency{};
  int attempts = 1;                 ///< fetches: the tries made (ChordConfig::fetch_attempts)
  std::string payload;              ///< Attach: the answer's
  std::uint32_t retry_after_s = 0;  ///< a refusal's Retry-After (0: none)
};
using RouteCallback = std::function<void(const RouteResult&)>;

/// An Attach that reached the peer it names, to be answered (ChordNode::answer_attach) now or later.
struct AttachRequest {
  ReplyHandle handle{};
  Peer sender;  ///< the peer that sent it first (the request's origin)
  std::uint32_t hops = 0;
  std::string payload;
};
/// Who answers Attaches addressed to this peer (the link logic, nat/ice_links.hpp, through the
/// assembled peer). Without one they are answered 501.
class AttachHandler {
 public:
  virtual ~AttachHandler() = default;
  virtual void on_attach(const AttachRequest& a, Instant now) = 0;
};

/// A request for TURN credentials that reached this peer (Op::Turn), to be answered
/// (ChordNode::answer_turn) now or later.
struct TurnRequest {
  ReplyHandle handle{};
  Peer sender;
  std::string payload;
};
/// Who answers Op::Turn (the assembled peer's TURN service). Without one they are answered 404.
class TurnHandler {
 public:
  virtual ~TurnHandler() = default;
  virtual void on_turn(const TurnRequest& t, Instant now) = 0;
};

/// How this peer reaches peers behind cone NATs (Peer::attach): over links that an Attach sets up
/// (nat/ice_links.hpp, through the assembled peer). The core asks before an Attach takes a hop: an
/// Attach must never wait for a link it is itself setting up.
class PeerLinks {
 public:
  virtual ~PeerLinks() = default;
  /// Whether a message to `p` goes out now: `p` is not reached by Attach, or a link to it is up.
  [[nodiscard]] virtual bool reachable(const Peer& p) const = 0;
  /// A request is about to leave for `p`, a peer reached by Attach: whoever sends it learns that
  /// its address is reached over a link (and the Node-ID an Attach to it is routed to).
  virtual void sending_to(const Peer& p) = 0;
  /// `p`, reached by Attach, left requests unanswered: a link to it that looks up may be dead on
  /// the other side (nothing checks an idle link's consent), so the next message sets up a new one.
  virtual void failed(const Peer& p) = 0;
};

class ChordNode {
 public:
  ChordNode(Peer self, ChordConfig config, ChordTransport& transport, Environment& env);

  /// Starts a new ring (no bootstrap) or joins through any of `bootstrap` (addresses only).
  void start(const std::vector<Endpoint>& bootstrap, Instant now);
  /// Starts as a client (RFC 6940 §3.2.1): the node never joins the ring, neither routes nor
  /// stores, and answers no Chord request for the ring; its own operations (route) enter the
  /// overlay through its gateways (set_gateways: its relay peers), which route them as they route
  /// any request they are handed.
  void start_client(Instant now);
  /// A client that may be reached now (its reachability checks found it public or behind a cone
  /// NAT) stops being one: its gateways are dropped, and start() then joins the ring.
  void stop_client();
  /// A client's gateways, first preferred; a route tries the next when one does not answer.
  void set_gateways(std::vector<Endpoint> gateways) { gateways_ = std::move(gateways); }
  /// Called (from on_failure) when a gateway left a client's request unanswered: whoever keeps
  /// the flows may check that flow at once rather than at its next keep-alive.
  void set_gateway_silent(std::function<void(const Endpoint&, Instant)> f) { gateway_silent_ = std::move(f); }
  [[nodiscard]] bool client() const { return client_; }
  [[nodiscard]] const std::vector<Endpoint>& gateways() const { return gateways_; }
  /// Graceful leave: records to the successor, neighbours to both sides. left() turns true once
  /// both answered or failed.
  void leave(Instant now);
  [[nodiscard]] bool joined() const { return joined_; }
  [[nodiscard]] bool left() const { return leaving_ && leave_pending_ == 0; }

  void on_request(ReplyHandle handle, const Request& r, Instant now);
  void on_response(RequestId id, const Response& r, Instant now);
  /// No answer came. `hop_alive`: the peer asked did answer, provisionally (100 Trying), and only
  /// the final answer is missing (a peer further on, not this one, failed to answer in time, RFC
  /// 3261 §16.8's timeout at a proxy): the route is tried again around it, but nothing of the peer
  /// asked is written off.
  void on_failure(RequestId id, Instant now, bool hop_alive = false);
  /// Request `id` while it is pending: the peer it went to and what it asked (the transport sends
  /// it again when it must change how it is sent: with a certificate, say). Nullopt once it is not.
  struct Outstanding {
    const Peer& to;
    const Request& request;
  };
  [[nodiscard]] std::optional<Outstanding> outstanding(RequestId id) const;
  void advance(Instant now);
  [[nodiscard]] Instant next_wakeup() const;

  /// Routes an operation to the peer responsible for `target`; `cb` runs once with the outcome
  /// (synchronously when this peer is responsible, or with 503 when it has not joined yet).
  void route(RouteOp op, NodeId target, std::optional<Record> record, RouteCallback cb, Instant now);
  /// The same with peers to route around (Excluded); `route` calls it for a fetch's later tries.
  void route_excluding(RouteOp op, NodeId target, std::optional<Record> record, std::vector<NodeId> exclude,
                       RouteCallback cb, Instant now);
  /// Sends an Attach with `payload` to the peer whose Node-ID is `peer` (routed recursively; a
  /// client's through its gateways). The answer's payload comes back in the RouteResult; a key with
  /// no peer of that Node-ID is answered 404 by the peer responsible for it.
  void attach(NodeId peer, std::string payload, RouteCallback cb, Instant now);
  /// Answers an Attach given to the AttachHandler: 200 with `payload`, or a refusal (status, reason,
  /// and for 503 a Retry-After).
  void answer_attach(const AttachRequest& a, Status status, std::string reason, std::string payload,
                     std::uint32_t retry_after_s, Instant now);
  void set_attach_handler(AttachHandler* h) { attach_handler_ = h; }
  /// Finds records of `kind` (RouteOp::Find) at the peer responsible for `target`: the records it
  /// holds nearest after `target`, verified as a fetch's are, in the RouteResult.
  void find(std::string_view kind, NodeId target, RouteCallback cb, Instant now);
  /// Sends Op::Turn with `payload` to `to` directly (a peer that announces a TURN server); the
  /// answer's status and payload come back in the RouteResult (503 when it did not answer).
  void ask_turn(const Peer& to, std::string payload, RouteCallback cb, Instant now);
  /// Answers an Op::Turn given to the TurnHandler.
  void answer_turn(const TurnRequest& t, Status status, std::string reason, std::string payload,
                   std::uint32_t retry_after_s, Instant now);
  void set_turn_handler(TurnHandler* h) { turn_handler_ = h; }
  /// What says which peers a message reaches now (null: every peer, as without NATs). Must outlive
  /// the node.
  void set_links(PeerLinks* links) { links_ = links; }
  /// Where this peer is reached (before it joins): see RoutingTable::set_self_address.
  void set_self_address(const Endpoint& addr, bool attach) { table_.set_self_address(addr, attach); }

  /// Access control for what this peer stores and believes (null: everything; see RecordGuard).
  /// The guard must outlive the node.
  void set_guard(RecordGuard* guard) { guard_ = guard; }
  /// ChordConfig::fetch_attempts, changed on a running node (experiments, tests).
  void set_fetch_attempts(int n) { cfg_.fetch_attempts = n; }

  [[nodiscard]] const RoutingTable& table() const { return table_; }
  [[nodiscard]] const Storage& storage() const { return storage_; }
  [[nodiscard]] const ChordStats& stats() const { return stats_; }
  [[nodiscard]] const ChordConfig& config() const { return cfg_; }

 private:
  enum class Kind : std::uint8_t {
    Stabilize,
    Notify,
    PingPred,
    JoinLookup,
    Join,
    ClientRoute,
    Gateway,  ///< a client's route, handed to a gateway
    Forward,
    Replicate,
    Leave,
    Turn,  ///< Op::Turn to a TURN service's peer
  };
  struct Pending {
    Kind kind = Kind::Stabilize;
    Peer to;
    Request request;
    ReplyHandle reply = 0;
    RouteCallback cb;
    Instant started{};
    int tries = 0;
  };

  /// A routed operation's tries so far (ChordConfig::fetch_attempts).
  struct RouteTries {
    RouteOp op = RouteOp::Fetch;
    NodeId target;
    std::optional<Record> record;  ///< a store's
    std::vector<NodeId> exclude;
    int attempt = 1;
    Instant started{};                     ///< when this try began
    Duration latency{};                    ///< of the tries so far
    std::optional<RouteResult> not_found;  ///< the first try's 404, if any
    RouteCallback cb;
  };
  void route_try(std::shared_ptr<RouteTries> t, Instant now);
  /// Sends a request of ours: it is pending until its answer or its failure. One the transport
  /// refused at once fails in the next advance() (next_wakeup() says so), never within send.
  void send(Kind kind, const Peer& to, Request r, Instant now, ReplyHandle reply = 0, RouteCallback cb = {});
  /// Files `p` under a new id and sends it (what send, forward and an iterative redirect share).
  void dispatch(std::unique_ptr<Pending> p, Instant now);
  void stabilize(Instant now);
  void fix_fingers(Instant now);
  void check_successor(Instant now);
  void maintain_replicas(Instant now);
  void replicate(const std::vector<Record>& records, const std::vector<Peer>& targets, Instant now);
  void handle_route(ReplyHandle handle, const Request& r, Instant now);
  /// For an Attach whose next hop `next` is reached by Attach and has no link up: the closest peer
  /// before the target that a message reaches now (the ring carries the Attach to a peer linked to
  /// the target: its neighbours keep links to it). Nullopt: no such peer, or no detour needed.
  [[nodiscard]] std::optional<Peer> attach_detour(const Request& r, const Peer& next, Excluded ex) const;
  /// An Attach of ours handed to a bootstrap peer, which routes it as a first hop.
  void route_via_bootstrap(Request r, RouteCallback cb, Instant now);
  /// Our distinct fingers, farthest first, but us and `skip` (and, with `reachable_only`, those not
  /// reached now): where a check or an Attach starts from the far side of the ring.
  [[nodiscard]] std::vector<Peer> far_fingers(NodeId skip, bool reachable_only) const;
  /// An Attach answered "No Such Peer", sent again from a far finger with us excluded.
  void attach_around(Request r, RouteCallback cb, Instant now);
  /// Sends a route of ours to `next`; an Attach for a peer not reached yet goes around it instead
  /// (attach_detour), or through a bootstrap peer when nobody nearer is reached.
  void send_first_hop(Request r, Peer next, RouteCallback cb, Instant now);
  /// A route request this peer answers: an Attach for its own Node-ID goes to the AttachHandler.
  void answer_here(ReplyHandle handle, const Request& r, Instant now);
  /// A route of this peer's own (built by route_excluding or attach) on its way.
  void start_route(Request r, RouteCallback cb, Instant now);
  /// Runs a routed operation here, the responsible peer. `own`: the request comes from this node's
  /// own application (route() called here), not from the network.
  Response execute(const Request& r, Instant now, bool own = false);
  void forward(Pending p, Instant now);
  void learn_responsible(NodeId key, const Response& r, Instant now);
  void peer_failed(const Peer& p, Instant now);
  void attempt_join(Instant now);
  void finish_route(Pending& p, const Response& r, Instant now);
  /// An answer from this peer with an opaque payload (Attach, Op::Turn).
  [[nodiscard]] Response payload_answer(Status status, std::string reason, std::string payload,
                                        std::uint32_t retry_after_s) const;
  /// What an answer tells the caller of route() (or ask_turn()).
  static RouteResult result_of(const Response& r, Duration latency);
  // The answers to our requests, one handler per kind of request (on_response dispatches).
  void on_stabilize_answer(const Pending& p, const Response& r, Instant now);
  void on_join_lookup_answer(const Pending& p, const Response& r, Instant now);
  void on_join_answer(const Response& r, Instant now);
  void on_route_answer(Pending p, const Response& r, Instant now);
  /// A client's route through its gateways (start_client).
  void route_via_gateway(Request r, RouteCallback cb, Instant now);
  void on_forward_answer(RequestId id, Pending p, const Response& r, Instant now);
  void on_ping_answer(const Pending& p, const Response& r, Instant now);
  [[nodiscard]] bool recently_failed(NodeId id, Instant now) const;
  /// ChordConfig::plausible_gaps: whether `responsible` can be the peer responsible for `key`.
  [[nodiscard]] bool plausible(NodeId key, NodeId responsible) const;
  [[nodiscard]] std::vector<Record> primary_records() const;
  Request make(Op op, NodeId target) const;
  /// Stores `rec` if the guard admits it; the refusal otherwise (counted). `own`: written by this
  /// node's application (see RecordGuard::admit).
  Refusal take(const Record& rec, Instant now, bool own = false);
  /// Drops the fetched records the guard does not believe (counted).
  void sift(std::vector<Record>& records, Instant now);

  ChordConfig cfg_;
  ChordTransport& transport_;
  Environment& env_;
  RoutingTable table_;
  Storage storage_;
  ChordStats stats_;
  RecordGuard* guard_ = nullptr;
  AttachHandler* attach_handler_ = nullptr;
  TurnHandler* turn_handler_ = nullptr;
  PeerLinks* links_ = nullptr;
  LogOnce<NodeId, NodeIdHash> quota_logged_{seconds(60)};  // owners over quota, when last logged
  // Requests in flight: a few at a time, 8 in place (4 spilled often enough in join storms to cost
  // 4 % at 100 000 nodes). Each Pending on its own allocation, so that a reference to one stays
  // valid while others come and go.
  SmallMap<RequestId, std::unique_ptr<Pending>, 8> pending_;
  RequestId next_request_ = 1;
  std::vector<RequestId> refused_;  // requests the transport refused at once: failed in advance()
  Instant refused_at_ = kInstantMax;
  std::map<NodeId, Instant> failed_;  // recently failed peers, ignored when others still list them

  bool started_ = false, joined_ = false, leaving_ = false, client_ = false;
  std::vector<Endpoint> gateways_;
  std::size_t next_gateway_ = 0;
  std::function<void(const Endpoint&, Instant)> gateway_silent_;
  int leave_pending_ = 0;
  std::vector<Endpoint> bootstrap_;
  std::size_t bootstrap_index_ = 0;
  std::optional<Peer> admitting_;  // the peer our last Join went to (joining again: on_join_lookup_answer)
  std::size_t rejoins_ = 0;
  std::vector<NodeId> join_exclude_;  // peers that admitted us at a place not ours: looked past
  Instant next_join_attempt_ = kInstantMax;
  Instant next_stabilize_ = kInstantMax;
  bool stabilize_in_flight_ = false;
  int chained_stabilize_ = 0;  // immediate re-stabilizations this round
  int next_finger_ = RoutingTable::kFingers - 1;
  int rounds_joined_ = 0;  // stabilization rounds since we joined
  std::size_t successor_checks_ = 0;
  NodeId successor_last_round_;  // our successor at the end of the last round
  std::vector<NodeId> replica_targets_;
  std::optional<NodeId> replicated_for_predecessor_;
};

}  // namespace p2psip::dht
