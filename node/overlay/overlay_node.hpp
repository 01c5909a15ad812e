// One overlay peer, sans-I/O: the Chord protocol (dht::ChordNode) carried by SIP transactions.
// It is the transaction user of its TransactionLayer and the ChordTransport of its ChordNode:
// Chord requests become REGISTER client transactions, answers become SIP responses, and
// transaction timeouts become Chord failures (failure detection). The runtime and the simulator
// drive it through the same entry points.
#pragma once

#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "core/hex.hpp"
#include "core/rate_limiter.hpp"
#include "core/small_map.hpp"
#include "dht/chord_node.hpp"
#include "nat/flows.hpp"
#include "nat/relay.hpp"
#include "node/overlay/peer_auth.hpp"
#include "node/sip/transaction.hpp"

namespace p2psip::overlay {

struct OverlayConfig {
  std::string overlay = "p2psip.local";
  dht::ChordConfig chord;
  sip::TimerConfig timers;  ///< T2 is taken as at most 8*T1 (see effective_hop_timeout)
  sip::Limits limits;
  /// The transport of overlay links. UDP: each hop is a datagram with RFC 3261 retransmissions,
  /// and completed transactions linger (Timers J and K) to absorb retransmissions. TCP: every
  /// overlay message goes over a connection, as RELOAD's links do (RFC 6940 §6.6: TLS over TCP),
  /// with no retransmission timers and no lingering (Timers J and K are zero, RFC 3261 §17).
  Transport link_transport = Transport::Udp;
  /// Over UDP links, messages whose body is larger than this go over TCP (RFC 3261 §18.1.1 keeps
  /// UDP under the MTU).
  std::size_t udp_body_limit = 1100;
  /// A next hop that has sent nothing at all (not even 100 Trying) this long after a request is
  /// taken for dead and routed around (sip::TimerConfig::non_invite_silence). Unset: the RFC 4320
  /// 100 Trying deadline plus 4*T1 (5.5 s with the default timers, 11*T1 whenever T1 <= 500 ms: the
  /// overlay keeps T2 at most 8*T1); zero: wait for Timer F (64*T1).
  std::optional<Duration> hop_timeout;
  /// Requests each peer address may send (token bucket): beyond it, 503 with Retry-After. Generous:
  /// a neighbour forwards other peers' lookups too.
  RateLimit peer_rate{200, 400};
};

/// The hop timeout `config` gives: its hop_timeout, or the default described there.
Duration effective_hop_timeout(const OverlayConfig& config);

struct OverlayStats {
  std::uint64_t requests_sent = 0, requests_received = 0, responses_sent = 0, responses_received = 0;
  std::uint64_t rejected = 0, bytes_sent = 0, messages_sent_tcp = 0;
  std::uint64_t throttled = 0;        ///< requests answered 503 for their sender's rate
  std::uint64_t unauthenticated = 0;  ///< requests refused and responses dropped for their credentials
  std::uint64_t resent = 0;           ///< requests sent again with our certificate (436) or asking for the peer's
  std::uint64_t flows_accepted = 0, flows_refused = 0;  ///< clients' flow registrations, as a relay
};

class OverlayNode : public sip::TransactionUser, public dht::ChordTransport, public nat::FlowTransport {
 public:
  OverlayNode(dht::Peer self, OverlayConfig config, Environment& env);

  void start(const std::vector<Endpoint>& bootstrap, Instant now) { chord_.start(bootstrap, now); }
  void leave(Instant now) { chord_.leave(now); }

  // Driver entry points.
  void receive_datagram(std::string_view bytes, const Endpoint& from, Instant now);
  /// A message from a stream link; `link_peer` is the Node-ID the link's TLS handshake proved
  /// (check_link), null on a link that proved nothing.
  void receive(const sip::Message& m, const Endpoint& from, Instant now, const dht::NodeId* link_peer = nullptr);
  /// The same for a message the driver gives up (a request's transaction keeps it without a copy).
  void receive(sip::Message&& m, const Endpoint& from, Instant now, const dht::NodeId* link_peer = nullptr);
  /// A TLS peer's certificate: the Node-ID it proves, or why it is refused (logged). Without an
  /// authenticator every link is refused.
  Result<dht::NodeId, AuthVerdict> check_link(std::string_view cert_der, const Endpoint& from, Instant now);
  void answer_malformed(std::string_view raw, const sip::ParseError& e, const Endpoint& from);
  void advance(Instant now);
  [[nodiscard]] Instant next_wakeup() const;

  /// Where the SIP traffic that is not the overlay's own goes: requests other than overlay
  /// operations (calls between nodes: INVITE, BYE, MESSAGE, OPTIONS to a user...), ACKs, and the
  /// outcomes of client transactions the delegate started on transactions(). Without a delegate
  /// such requests are answered 405.
  void set_delegate(sip::TransactionUser* delegate) { delegate_ = delegate; }
  /// As a client: the flows whose registrations this node sends (register_flow) and whose
  /// outcomes it reports there; `instance` is the +sip.instance they carry (RFC 5626 §4.1). Null:
  /// none. Must outlive the node.
  /// `transport`: how the flows go (their relays' alternates are named with it).
  void set_flows(nat::FlowSet* flows, std::string instance, Transport transport) {
    flows_ = flows;
    instance_ = std::move(instance);
    flow_transport_ = transport;
  }
  /// As a relay peer: the table of clients' flows this node holds (null: it refuses clients, 403).
  /// Must outlive the node.
  void set_relay(nat::RelayTable* relay) { relay_ = relay; }
  /// Whether this node may relay soon (it is still finding out whether it is public): until it
  /// does, or while it joins, clients are told to come back shortly (503, Retry-After) rather than
  /// refused (403).
  void set_relay_pending(bool pending) { relay_pending_ = pending; }
  [[nodiscard]] nat::RelayTable* relay() const { return relay_; }
  /// The URI that names a client's flow here (RFC 3327 Path with an RFC 5626 flow token): this
  /// node's overlay address, the flow's transport when it is a stream, "lr" and "ob".
  [[nodiscard]] std::string flow_uri(const nat::ClientFlow& flow) const;

  /// Signs what this node sends and checks what it receives (null: neither, for tests and
  /// simulations without identities). Must outlive the node.
  void set_authenticator(PeerAuthenticator* auth) { auth_ = auth; }
  [[nodiscard]] PeerAuthenticator* authenticator() const { return auth_; }
  /// The node's transaction layer, for a delegate's own transactions.
  [[nodiscard]] sip::TransactionLayer& transactions() { return layer_; }

  [[nodiscard]] dht::ChordNode& chord() { return chord_; }
  [[nodiscard]] const dht::ChordNode& chord() const { return chord_; }
  [[nodiscard]] const sip::TransactionLayer& transactions() const { return layer_; }
  [[nodiscard]] const OverlayStats& stats() const { return stats_; }
  [[nodiscard]] const OverlayConfig& config() const { return cfg_; }

  // sip::TransactionUser
  void on_request(sip::TransactionId id, const sip::Message& request, const Endpoint& from, Instant now) override;
  void on_ack(sip::TransactionId id, const sip::Message& ack, const Endpoint& from, Instant now) override;
  void on_stray_response(const sip::Message& response, const Endpoint& from, Instant now) override;
  void on_response(sip::TransactionId id, const sip::Message& response, Instant now) override;
  void on_timeout(sip::TransactionId id, Instant now) override;
  void on_transport_error(sip::TransactionId id, Instant now) override;

  // dht::ChordTransport
  bool send(dht::RequestId id, const dht::Peer& to, const dht::Request& r, Instant now) override;
  void reply(dht::ReplyHandle handle, const dht::Response& r, Instant now) override;

  // nat::FlowTransport: a client's flow registration at a relay (docs/PROTOCOL.md, "Client flows").
  bool register_flow(const Endpoint& relay, std::uint32_t reg_id, std::uint32_t expires_s, Instant now) override;
  /// A CRLFCRLF ping down the stream flow (RFC 5626 §4.4.1).
  bool ping_flow(const Endpoint& relay, Instant now) override;
  /// How this node's own overlay requests travel (a client on a network that blocks UDP: TCP).
  void set_link_transport(Transport t) { cfg_.link_transport = t; }
  /// The driver lost its connection to `peer`: requests in flight over it fail now (the Chord core
  /// routes around the peer, a client's flow fails) instead of at their time-out.
  void connection_lost(const Endpoint& peer, Instant now) { layer_.connection_lost(peer, now); }

 private:
  /// A request of ours in flight: the Chord request behind it, whom it went to, and how.
  struct Outgoing {
    dht::RequestId rid = 0;
    dht::NodeId to;
    bool to_known = false;  ///< false for a peer known by its address alone (a bootstrap)
    bool carried_cert = false;
    bool resent = false;
  };
  Hex64 token();
  /// Chord's request `id` as a SIP request; `resent`: sent again with credentials (accept_response).
  /// False when the transport refused it at once.
  bool send_request(dht::RequestId id, const dht::Peer& to, const dht::Request& r, Instant now, bool resent);
  /// `hop_alive`: the peer answered 100 Trying, and only the final answer is missing.
  void fail(sip::TransactionId id, Instant now, bool hop_alive);
  /// The credentials of a message that `signer` must have sent (null: any peer, named in
  /// `signed_by`): the TLS link's, or the message's signature.
  AuthVerdict authenticate(const sip::Message& m, const dht::NodeId* signer, Instant now,
                           dht::NodeId* signed_by = nullptr);
  /// Whether an answer to `out` reaches the Chord core: authentic, from the peer asked, and not a
  /// refusal of our credentials. A request one side could not authenticate for want of a
  /// certificate is sent again once; other failures count as the peer's (false either way).
  bool accept_response(const Outgoing& out, const sip::Message& response, const dht::Response& decoded, Instant now);

  /// A client's flow registration arrived (as a relay).
  void handle_flow(sip::TransactionId id, const sip::Message& request, const Endpoint& from, Instant now);
  /// The outcome of one of our flow registrations (as a client); true when `id` was one.
  bool flow_outcome(sip::TransactionId id, const sip::Message* response, Instant now);

  OverlayConfig cfg_;
  Environment& env_;
  sip::TransactionLayer layer_;
  dht::ChordNode chord_;
  OverlayStats stats_;
  SmallMap<sip::TransactionId, Outgoing, 8> outstanding_;  // a few at a time, 8 in place as pending_
  sip::TransactionUser* delegate_ = nullptr;
  RateLimiter<Endpoint, EndpointHash> peer_limits_;
  PeerAuthenticator* auth_ = nullptr;
  nat::FlowSet* flows_ = nullptr;
  std::string instance_;
  Transport flow_transport_ = Transport::Udp;
  nat::RelayTable* relay_ = nullptr;
  bool relay_pending_ = false;
  SmallMap<sip::TransactionId, std::uint32_t, 4> flow_out_;  // our flow registrations: their reg-ids
  std::vector<dht::Peer> relays_known_;     // relays that granted us a flow: refreshes carry no certificate
  const dht::NodeId* link_peer_ = nullptr;  ///< the TLS peer of the message being received
  const Endpoint* from_ = nullptr;          ///< the sender of the message being received
  /// Names the sender of the message being received, and its TLS peer, while it is handled.
  class Receiving {
   public:
    Receiving(OverlayNode& node, const Endpoint& from, const dht::NodeId* link_peer) : node_(node) {
      node_.from_ = &from;
      node_.link_peer_ = link_peer;
    }
    ~Receiving() {
      node_.from_ = nullptr;
      node_.link_peer_ = nullptr;
    }
    Receiving(const Receiving&) = delete;
    Receiving& operator=(const Receiving&) = delete;

   private:
    OverlayNode& node_;
  };
};

}  // namespace p2psip::overlay
