// The UA side of a node: what a local softphone sees as its SIP server. Sans-I/O, driven like the
// overlay node (its own transaction layer, fed by the driver of the UA listening address).
//
// Registrar (RFC 3261 §10.3): REGISTER for sip:user@OVERLAY is evaluated against this node's
// bindings (node/proxy/registrar.hpp), the node's entry for the AOR is stored in the overlay
// (node/proxy/registration.hpp) and only then is the change committed and answered 200 with the
// current bindings. A store that fails is answered 503 with Retry-After and changes nothing. While
// a user has bindings here the entry is stored again before its overlay lifetime runs out; when
// the last binding goes (Expires 0, "*", or expiry) the entry is removed from the overlay.
// REGISTERs for one AOR are handled one at a time, in order of arrival.
//
// Proxy (RFC 3261 §16, stateful, record-routing): an out-of-dialog request from a local phone to
// sip:user@OVERLAY is looked up in the overlay and sent straight to every node holding one of the
// user's entries (on the overlay node's transaction layer), each of which forks it to its own
// devices; the first 2xx wins and the other branches are cancelled. Both nodes Record-Route with
// one URI per interface they use (RFC 5658), so in-dialog requests (ACK, BYE, re-INVITE, ...)
// follow the same path. 404 when the user is registered nowhere, 480 when the callee's node does
// not answer or has no binding left. Requests to phones go only to loopback addresses.
//
// Nodes behind NATs (docs/NAT.md): a client's entry names its relay peers' URIs ("via"); a caller's
// node sends to the first relay with that URI as Route, and to the next when the relay answers 430
// or nothing. A relay peer (RFC 5626 §5.3.1, as an edge proxy) takes a request whose Route names
// one of its flows: from elsewhere it goes down the flow to the client; from the client itself it
// goes on along the rest of the route set. It Record-Routes with the flow's URI, so that the dialog's
// later requests pass the relay both ways; 430 Flow Failed when the flow is gone.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "core/rate_limiter.hpp"
#include "core/string_hash.hpp"
#include "node/overlay/overlay_node.hpp"
#include "node/proxy/digest.hpp"
#include "node/proxy/registrar.hpp"
#include "node/proxy/registration.hpp"
#include "node/sip/transaction.hpp"
#include "security/identities.hpp"

namespace p2psip::proxy {

struct UaSideConfig {
  RegistrarConfig registrar;
  /// The UA side's own listening address: phones send here, Record-Route names it.
  Endpoint ua_address{Transport::Udp, *IpAddress::parse("127.0.0.1"), 5060};
  /// Lifetime of this node's registration entries in the overlay; they are stored again at 80 %
  /// of it while the user stays registered, so a node that dies leaves nothing behind for longer.
  std::uint32_t entry_lifetime_s = 300;
  /// After a failed store: the Retry-After given to the phone, and the wait before a refresh retries.
  std::uint32_t retry_after_s = 10;
  std::size_t max_waiting_per_aor = 8;  ///< REGISTERs queued behind one in progress; beyond: 503
  /// Requests being proxied at once (finished contexts kept for RFC 6026 not counted); beyond: 503
  /// with Retry-After.
  std::size_t max_calls = 10000;
  sip::TimerConfig timers;
  sip::Limits limits;
  /// Digest authentication of phones (node/proxy/digest.hpp). When set, a REGISTER must carry
  /// credentials of the AOR's own user (401 with WWW-Authenticate otherwise; 403 for another user's
  /// credentials), and a phone's request that opens a dialog or stands alone (INVITE, MESSAGE, ...)
  /// credentials of its From user (407 with Proxy-Authenticate). `digest_secrets` gives a user's.
  std::optional<DigestConfig> digest;
  std::function<const DigestSecret*(std::string_view user)> digest_secrets;
  /// Phones are on this host (the default): requests to them go to loopback addresses only. When
  /// false (a UA side bound off loopback), a phone is reached where it registered from, and an
  /// in-dialog request only at an address a binding was registered from, never at a Contact's host
  /// as such (the node must not be made to send wherever a Contact points).
  bool phones_on_loopback = true;
  /// A call to a client through one of its relay peers while another is left: given up on when
  /// nothing at all (not even 100 Trying, due within 200 ms of a live node: RFC 3261 §17.2.1) is
  /// heard for this long, and the next relay asked, rather than after the overlay's hop time-out.
  /// Four T1s: the INVITE and two retransmissions over UDP. Zero: the hop time-out.
  Duration relay_silence = seconds(2);
};

struct UaSideStats {
  std::uint64_t registers = 0, registers_ok = 0, registers_rejected = 0, queries = 0;
  std::uint64_t entries_stored = 0, entries_removed = 0, store_failures = 0, refreshes = 0;
  std::uint64_t entries_kept = 0;  ///< REGISTERs answered without a store: the entry was unchanged
  std::uint64_t requests_rejected = 0;
  std::uint64_t proxied = 0, lookups = 0, lookups_not_found = 0, lookups_failed = 0, branches = 0;
  std::uint64_t calls_answered = 0, cancels = 0, acks_forwarded = 0, branch_timeouts = 0;
  std::uint64_t via_relay = 0;     ///< branches sent to a client through its relay peer
  std::uint64_t relayed = 0;       ///< requests taken down a client's flow, as its relay peer
  std::uint64_t challenges = 0;    ///< 401/407 sent for missing or stale credentials
  std::uint64_t auth_refused = 0;  ///< credentials that were wrong, replayed, or another user's
};

class UaSide : public sip::TransactionUser {
 public:
  /// `env` sends on the UA listening address; `overlay` stores and looks up registrations.
  /// `users` signs each user's registration entries (USER-MATCH); a REGISTER for a user it has no
  /// identity for is refused 403. Null: entries are stored unsigned (overlays without security:
  /// tests, the plain simulator). It must outlive the UA side.
  UaSide(Environment& env, overlay::OverlayNode& overlay, UaSideConfig config,
         security::UserIdentities* users = nullptr);
  ~UaSide() override;
  UaSide(const UaSide&) = delete;
  UaSide& operator=(const UaSide&) = delete;

  // Driver entry points (as overlay::OverlayNode's).
  void receive_datagram(std::string_view bytes, const Endpoint& from, Instant now);
  void receive(const sip::Message& m, const Endpoint& from, Instant now);
  void answer_malformed(std::string_view raw, const sip::ParseError& e, const Endpoint& from);
  void advance(Instant now);
  [[nodiscard]] Instant next_wakeup() const;
  /// The driver lost its connection to a phone: requests in flight to it fail now.
  void connection_lost(const Endpoint& phone, Instant now) { layer_.connection_lost(phone, now); }

  /// Removes every entry this node has in the overlay (before a graceful leave); bindings stay.
  /// withdrawn() turns true once every removal has been answered or has failed.
  void withdraw_all(Instant now);
  [[nodiscard]] bool withdrawn() const { return withdrawing_ == 0; }

  [[nodiscard]] const Registrar& registrar() const { return registrar_; }
  [[nodiscard]] const UaSideStats& stats() const { return stats_; }
  [[nodiscard]] const sip::TransactionLayer& transactions() const { return layer_; }
  [[nodiscard]] const UaSideConfig& config() const { return cfg_; }
  /// AORs whose overlay entry a store has put in place and not yet removed.
  [[nodiscard]] std::size_t published() const { return published_; }

  /// The relay URIs that reach this node (a client behind a NAT: its flows' Path values, best
  /// first; empty: reached at its own address). A change stores every entry again at once, so
  /// that callers find the node through its current relays.
  void set_via(std::vector<std::string> uris, Instant now);
  [[nodiscard]] const std::vector<std::string>& via() const { return via_; }

  /// Requests being proxied whose branches are not all done (bounded by `max_calls`).
  [[nodiscard]] std::size_t calls() const { return calls_.size() - call_sweep_.size(); }
  /// Response contexts kept (RFC 3261 §16): those in progress and finished INVITEs' contexts kept
  /// for 64*T1 to pass on 2xx retransmissions (RFC 6026).
  [[nodiscard]] std::size_t contexts() const { return calls_.size(); }

  // sip::TransactionUser of the UA side's layer (the overlay side has its own adapter).
  void on_request(sip::TransactionId id, const sip::Message& request, const Endpoint& from, Instant now) override;
  void on_ack(sip::TransactionId id, const sip::Message& ack, const Endpoint& from, Instant now) override;
  void on_response(sip::TransactionId id, const sip::Message& response, Instant now) override;
  void on_timeout(sip::TransactionId id, Instant now) override;
  void on_transport_error(sip::TransactionId id, Instant now) override;

 private:
  enum class Side : std::uint8_t { Ua, Overlay };
  /// The overlay node's delegate: its layer's call traffic, tagged with the side it came from.
  class OverlaySide : public sip::TransactionUser {
   public:
    explicit OverlaySide(UaSide& ua) : ua_(ua) {}
    void on_request(sip::TransactionId id, const sip::Message& r, const Endpoint& from, Instant now) override {
      ua_.request(Side::Overlay, id, r, from, now);
    }
    void on_ack(sip::TransactionId id, const sip::Message& ack, const Endpoint& from, Instant now) override {
      ua_.forward_ack(Side::Overlay, ack, from, now);
      (void)id;
    }
    void on_response(sip::TransactionId id, const sip::Message& r, Instant now) override {
      ua_.response(Side::Overlay, id, r, now);
    }
    void on_timeout(sip::TransactionId id, Instant now) override { ua_.branch_failed(Side::Overlay, id, true, now); }
    void on_transport_error(sip::TransactionId id, Instant now) override {
      ua_.branch_failed(Side::Overlay, id, false, now);
    }

   private:
    UaSide& ua_;
  };

  /// One forwarded copy of a proxied request (a client transaction on one side).
  struct Branch {
    Side side = Side::Ua;
    sip::TransactionId txn = 0;
    Endpoint dest;
    sip::Message request;         ///< as sent (a CANCEL is built from it, RFC 3261 §9.1)
    int status = 0;               ///< the last status heard, 0 before any
    bool to_node = false;         ///< to another node (silence means 480), not to a phone
    bool done = false;            ///< final response (or failure) received
    bool cancel_pending = false;  ///< cancel once a provisional response arrives (§9.1)
    bool cancelled = false;
    bool flow = false;                   ///< down a client's flow, as its relay (failure: 430, RFC 5626 §5.3.1)
    Instant silent_after = kInstantMax;  ///< to a node: given up if nothing at all is heard by then
    std::vector<std::string> via_left;   ///< to a client through a relay: the relays not tried yet
  };
  /// What a branch is besides its destination: to a node (silence means 480), down a client's flow
  /// (as its relay), or to a client through a relay with others left to try.
  struct BranchKind {
    bool to_node = false;
    const nat::ClientFlow* flow = nullptr;  ///< down this flow: Record-Routes with its URI
    std::vector<std::string> via_left;
  };
  /// A response context (RFC 3261 §16): the server transaction and its branches.
  struct Call {
    Side side = Side::Ua;
    sip::TransactionId server = 0;
    sip::Message request;  ///< as received
    Endpoint from;
    bool invite = false, cancelled = false, final_sent = false, looking_up = false;
    std::vector<Branch> branches;
    std::optional<sip::Message> best;  ///< the best final response so far (§16.7 step 6)
    Instant erase_at = kInstantMax;
  };

  sip::TransactionLayer& layer(Side s);
  [[nodiscard]] Endpoint own_address(Side s) const;
  [[nodiscard]] bool is_own(const sip::Uri& uri) const;
  /// How calls go to and come from other nodes: TLS when the overlay authenticates its peers.
  [[nodiscard]] Transport call_transport() const;
  /// Drops the leading Route values that name this node (§16.4); true when there was one. Views
  /// into `storage` may be made on the way.
  bool drop_own_routes(std::vector<std::string>& routes, std::string& storage) const;
  /// The R-URI's AOR when it names a user of this overlay (its domain, or this UA side's address).
  [[nodiscard]] std::optional<std::string> overlay_aor(const sip::Uri& uri) const;

  void request(Side side, sip::TransactionId id, const sip::Message& request, const Endpoint& from, Instant now);
  void answer_self(Side side, sip::TransactionId id, const sip::Message& request, Instant now);
  void cancel(Side side, sip::TransactionId id, const sip::Message& cancel, Instant now);
  void route_request(std::uint64_t cid, sip::Message req, Instant now);
  void lookup_done(std::uint64_t cid, const std::string& aor, const dht::RouteResult& res, Instant now);
  void fork_local(std::uint64_t cid, const std::string& aor, sip::Message req, Instant now);
  void add_branch(std::uint64_t cid, Side out, const Endpoint& dest, sip::Message req, BranchKind kind, Instant now);
  /// The request as sent to the nodes an overlay lookup found (no Route; Max-Forwards one less).
  [[nodiscard]] sip::Message lookup_request(const Call& call) const;
  /// To a client through the first of `via` that names an address (Route: that URI); the others
  /// are kept for a retry. False when none does.
  bool add_relay_branch(std::uint64_t cid, sip::Message req, std::vector<std::string> via, Instant now);
  /// As a relay peer: the flow a Route value names ("<sip:TOKEN@this node;...>"); `named` tells
  /// whether the value names a flow of this node at all (a flow token at its overlay address).
  const nat::ClientFlow* flow_of_route(const std::string& route, std::string& storage, bool& named) const;
  /// Whether `uri` is a flow URI of this relay (a token at its overlay address, with "ob").
  [[nodiscard]] bool names_own_flow(const sip::Uri& uri) const;
  void response(Side side, sip::TransactionId id, const sip::Message& response, Instant now);
  void branch_failed(Side side, sip::TransactionId id, bool timeout, Instant now);
  /// Branch `bi` of call `cid` failed: timed out, or its transport failed (at once, or later).
  void fail_branch(std::uint64_t cid, std::size_t bi, bool timeout, Instant now);
  /// Branch `bi` (done) went to a client's relay and has others left: the next is asked instead.
  bool try_next_relay(std::uint64_t cid, std::size_t bi, Instant now);
  void branch_final(std::uint64_t cid, std::size_t b, const sip::Message& response, Instant now);
  void cancel_branch(Call& call, Branch& b, Instant now);
  void finish_if_done(std::uint64_t cid, Instant now);
  void answer_call(std::uint64_t cid, int status, const std::string& reason, Instant now);
  void forward_ack(Side side, const sip::Message& ack, const Endpoint& from, Instant now);
  void sweep_calls(Instant now);
  /// A REGISTER waiting for its turn (txn != 0), or a store of the current bindings (txn == 0:
  /// refresh, or removal once none is left).
  struct Job {
    sip::TransactionId txn = 0;
    sip::Message request;
    Endpoint from;
  };
  struct Publication {
    bool in_flight = false;  ///< a store for this AOR is under way
    bool running = false;    ///< run_jobs is working through `jobs`
    bool stored = false;     ///< an entry is in the overlay (as far as this node knows); see set_stored
    Instant refresh_at = kInstantMax;
    WallTime last_written{};           ///< the last entry's writer time: each store's is later
    std::uint32_t stored_devices = 0;  ///< the device count of the entry last stored
    std::uint32_t stored_via = 0;      ///< the via_generation_ of the entry last stored
    /// First in, first out; at most max_waiting_per_aor long (a deque would cost its 512-byte block
    /// for every registered user, even empty).
    std::vector<Job> jobs;
  };

  void handle_register(sip::TransactionId id, const sip::Message& request, const Endpoint& from, Instant now);
  /// With digest authentication on: whether `request` carries good credentials of `user` in
  /// `header` (Authorization: a registrar's 401; Proxy-Authorization: a proxy's 407). Otherwise it
  /// answers the request (a challenge, or 403 for another user's credentials) and returns false.
  bool authenticated(sip::TransactionId id, const sip::Message& request, const Endpoint& from, sip::HeaderId header,
                     std::string_view user, Instant now);
  /// Whether requests to a phone may go to `to` (UaSideConfig::phones_on_loopback).
  [[nodiscard]] bool phone_reachable(const Endpoint& to) const;
  void run_jobs(const std::string& aor, Instant now);
  /// Stores (or removes, when `bindings` is empty) this node's entry for `aor`; `done` gets the
  /// outcome's status and reason, possibly before store() returns.
  void store(const std::string& aor, const std::vector<Binding>& bindings, Instant now,
             std::function<void(int, const std::string&, Instant)> done);
  /// This node's entry for `aor`, as a removal (lifetime 0, no value).
  [[nodiscard]] dht::Record entry(const std::string& aor) const;
  /// Signs `r` as the user it registers (no-op without identities); false when this node holds no
  /// identity for the user.
  bool sign(dht::Record& r, Publication& p, Instant now);
  void set_refresh(const std::string& aor, Publication& p, Instant at);
  void set_stored(Publication& p, bool stored);
  void forget_if_idle(const std::string& aor);
  std::string tag();

  UaSideConfig cfg_;
  Environment& env_;
  security::UserIdentities* users_;
  overlay::OverlayNode& overlay_;
  sip::TransactionLayer layer_;
  Registrar registrar_;
  std::optional<DigestAuthenticator> digest_;
  LogOnce<Endpoint, EndpointHash> auth_logged_{seconds(60)};  ///< phones whose credentials failed
  UaSideStats stats_;
  /// Hashed, and node-based: a Publication stays where it is while its entry lives.
  std::unordered_map<std::string, Publication, StringHash, std::equal_to<>> pubs_;
  std::size_t published_ = 0;  ///< Publications with `stored`
  std::vector<std::string> via_;
  std::uint32_t via_generation_ = 0;  ///< counts changes of via_
  std::set<std::pair<Instant, std::string>> refresh_queue_;
  std::size_t withdrawing_ = 0;

  OverlaySide overlay_side_{*this};
  std::map<std::uint64_t, Call> calls_;
  std::uint64_t next_call_ = 1;
  std::map<std::pair<Side, sip::TransactionId>, std::uint64_t> by_server_;
  std::map<std::pair<Side, sip::TransactionId>, std::pair<std::uint64_t, std::size_t>> by_client_;
  /// Finished contexts by the time they go: exactly the calls whose branches are all done.
  std::set<std::pair<Instant, std::uint64_t>> call_sweep_;
  /// Branches to other nodes that have heard nothing yet: (deadline, call, branch).
  std::set<std::tuple<Instant, std::uint64_t, std::size_t>> silent_branches_;
};

}  // namespace p2psip::proxy
