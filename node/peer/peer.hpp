// The assembled peer: one object that is a whole p2psip node, sans-I/O. It owns the overlay node
// (Chord carried in SIP), the phone side (registrar and proxy for the phones on its host), the
// record policy, the peer authenticator, the certificate cache, the users it writes for and its own
// identity, and it offers one face to whoever drives it:
//
//   bytes in   receive_datagram / receive / answer_malformed, on the overlay or the phone address
//   time       advance(now) when next_wakeup() has come
//   bytes out  through the two Environments it was given (one per address)
//   status     status(now), a structure the control port renders
//
// The libuv daemon (`p2psip node`), the simulator and the tests build this same object.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/environment.hpp"
#include "core/link_identity.hpp"
#include "nat/flows.hpp"
#include "nat/ice_links.hpp"
#include "nat/reachability.hpp"
#include "nat/relay.hpp"
#include "nat/stun_client.hpp"
#include "node/overlay/overlay_node.hpp"
#include "node/peer/turn_service.hpp"
#include "node/proxy/ua_side.hpp"
#include "security/crypto.hpp"
#include "security/identities.hpp"
#include "security/record_policy.hpp"

namespace p2psip::peer {

/// Which of the peer's addresses a message came to (or leaves from).
enum class Face : std::uint8_t {
  Overlay,  ///< other nodes: the overlay's own messages and calls between nodes
  Phones,   ///< the phones this node serves
};

/// What the peer proves itself with and whom it trusts. Without it (PeerConfig::security unset) a
/// peer signs and checks nothing: tests, and simulations that leave security out.
struct PeerSecurity {
  /// Signs and verifies; must outlive the peer (a simulation shares one among all its peers).
  const security::CryptoProvider* crypto = nullptr;
  /// The node's key and certificate; the certificate's Node-ID is the peer's place on the ring.
  security::Identity self;
  security::TrustAnchor trust;
  std::size_t certificate_cache = 65536;  ///< checked certificates remembered
  /// Sign every overlay message and check every one received (RFC 8224-style, PeerAuthenticator).
  /// Off: only records are signed and checked (the simulator's [security] without message signing).
  bool sign_messages = true;
  /// The phones' users: development mode makes each a self-signed identity on first use (at most
  /// max_users); otherwise only `users` (enrolled identities) may register.
  bool development_users = false;
  std::vector<security::Identity> users;
  std::size_t max_users = 100000;
};

/// Whether a node joins the ring (RFC 6940 §3.2.1).
enum class Role : std::uint8_t {
  Peer,    ///< joins the ring: routes and stores
  Client,  ///< never joins; keeps flows to relay peers, and its operations go through them
  /// Asks its bootstrap peers where they see it first (STUN), then joins when it is public and
  /// becomes a client otherwise (behind a NAT no peer could open a link to it). A node without a
  /// bootstrap starts a ring: a peer.
  Auto,
};
std::string_view role_name(Role r);

struct PeerConfig {
  overlay::OverlayConfig overlay;
  /// The peer's place and overlay address. With security the place is the certificate's Node-ID
  /// and `id` is ignored.
  dht::NodeId id;
  Endpoint address;
  /// The phone side (its ua_address is the phone face's address); unset: a node without phones.
  std::optional<proxy::UaSideConfig> phones;
  std::optional<PeerSecurity> security;
  /// A graceful shutdown's two steps: the phones' registrations leave the overlay (at most this
  /// long), then the node leaves the ring (at most this long).
  Duration withdraw_time = seconds(1);
  Duration leave_time = seconds(3);
  /// Where the node stands behind NATs (nat/reachability.hpp): it asks peers for its reflexive
  /// address and classifies itself. Unset, it asks nobody (tests, and simulations without a NAT
  /// model); either way it answers STUN Binding requests on both faces.
  std::optional<nat::ReachabilityConfig> reachability;
  nat::StunClientConfig stun;
  Role role = Role::Peer;
  /// A client's flows to its relay peers (the bootstrap peers are the first relays asked).
  nat::FlowConfig flows;
  /// Set: as a peer, this node relays for clients (up to its max_clients); unset: it refuses them.
  std::optional<nat::RelayConfig> relay;
  /// Auto: how long a node waits for its bootstrap peers' answers before it decides (no verdict
  /// by then: a client).
  Duration decide_within = seconds(45);
  /// The ICE agent of links to peers behind cone NATs (nat/ice_links.hpp; docs/NAT.md, "Peers
  /// behind cone NATs"). Set: this peer answers Attaches, reaches peers marked `attach` over links
  /// it sets up, and with Role::Auto a node that finds itself behind a cone NAT joins the ring as
  /// such a peer, named by its server-reflexive address (its phones are still reached through relay
  /// peers' flows: calls between nodes go over TLS, which a link does not carry). Null: no links,
  /// and a NATed node is a client. Its reports come back through Peer::ice_*. Must outlive the peer.
  nat::IcePort* ice = nullptr;
  nat::IceLinkConfig links;
  /// TURN servers the overlay announces (RFC 6940 §9; node/peer/turn_service.hpp): announcing one
  /// as a public peer, or finding one for `ice` when the node has none of its own. Unset: neither.
  std::optional<TurnServiceConfig> turn_service;
};

/// Everything `p2psip status` shows, as values: a snapshot, rendered by whoever asks.
struct PeerStatus {
  dht::NodeId id;
  std::string overlay;
  Endpoint address;
  bool joined = false;
  bool stopping = false;
  Duration uptime{};
  std::vector<dht::Peer> predecessors, successors;
  std::size_t fingers = 0;  ///< distinct peers among the fingers
  std::size_t records = 0;
  overlay::OverlayStats messages;
  sip::TransactionStats transactions;
  dht::ChordStats chord;
  struct Security {
    bool development = false;
    std::size_t users = 0;  ///< enrolled users (development mode: 0, any user)
    security::RecordPolicyStats records;
    overlay::PeerAuthStats messages;
  };
  std::optional<Security> security;
  struct Phones {
    Endpoint address;
    std::size_t users = 0, bindings = 0, entries_in_overlay = 0;
    std::size_t requests_in_progress = 0, response_contexts = 0;
    proxy::UaSideStats stats;
    std::vector<std::string> users_list;  ///< the first 100 AORs
  };
  std::optional<Phones> phones;
  struct Nat {
    std::string role;                    ///< "peer", "client", or "deciding" (Role::Auto, before its verdict)
    bool checked = false;                ///< whether the peer classifies itself (PeerConfig::reachability)
    std::vector<nat::FlowStatus> flows;  ///< a client's
    nat::FlowStats flow_stats;
    struct Relay {
      std::size_t clients = 0, flows = 0, max_clients = 0;
      nat::RelayStats stats;
      std::uint64_t calls_relayed = 0;  ///< call requests taken down a client's flow
    };
    std::optional<Relay> relay;  ///< a relay peer's
    nat::ReachabilityStatus reach;
    nat::StunClientStats client;
    std::uint64_t bindings_answered = 0;  ///< Binding requests answered, both faces
    std::uint64_t indications = 0;        ///< STUN indications received (keep-alives)
    std::uint64_t dropped = 0;            ///< STUN that did not decode, or that nothing here takes
    /// How others reach this node: "direct" (at its own address), or "relay" (a client: through
    /// the relay peers' URIs in `reached_via`, which its registration entries name).
    std::string reached = "direct";
    std::vector<std::string> reached_via;
    /// How each of its links goes: "direct" to the peers in its routing table, "ice-direct" or
    /// "ice-relayed" (TURN) over an ICE link, "attach" to a peer behind a NAT while no link is up;
    /// a client's to its relay peers "flow" (an outbound flow it keeps open, RFC 5626).
    struct Link {
      dht::Peer peer;
      std::string how;
    };
    std::vector<Link> links;
    std::vector<nat::IceLinkStatus> ice;  ///< the ICE links (PeerConfig::ice)
    nat::IceLinkStats ice_stats;
    std::optional<TurnServiceStatus> turn_service;  ///< PeerConfig::turn_service
  };
  Nat nat;
};

/// The registration entries of one user, as a caller's node sees them (Peer::locate).
struct Location {
  int status = 0;
  std::string reason;
  std::uint32_t hops = 0;
  Duration latency{};
  struct Entry {
    proxy::RegistrationEntry entry;
    std::uint32_t lifetime_s = 0;
  };
  std::vector<Entry> entries;
};

class Peer {
 public:
  /// `overlay_env` sends from the overlay address and supplies time's wall clock, randomness and
  /// the log; `phone_env` sends from the phone address (needed when config.phones is set). Both
  /// must outlive the peer. With config.security, the security's crypto provider must too.
  Peer(PeerConfig config, Environment& overlay_env, Environment* phone_env = nullptr);
  ~Peer();
  Peer(const Peer&) = delete;
  Peer& operator=(const Peer&) = delete;

  /// Starts a new ring (no bootstrap) or joins through any of `bootstrap` (addresses only).
  void start(const std::vector<Endpoint>& bootstrap, Instant now);
  /// A graceful shutdown: the phones' registrations leave the overlay (callers then hear 404, not
  /// silence), then the node leaves the ring; stopped() turns true when both are done or their
  /// time is up. Application operations are refused from now on.
  void shutdown(Instant now);
  [[nodiscard]] bool stopping() const { return phase_ != Phase::Running; }
  [[nodiscard]] bool stopped() const { return phase_ == Phase::Stopped; }

  // ---- bytes in ----
  void receive_datagram(Face face, std::string_view bytes, const Endpoint& from, Instant now);
  /// A message framed from a stream; `link` is what check_link said of a TLS link's peer (null on
  /// plain TCP).
  void receive(Face face, sip::Message&& m, const Endpoint& from, Instant now, const LinkIdentity* link = nullptr);
  void receive(Face face, const sip::Message& m, const Endpoint& from, Instant now, const LinkIdentity* link = nullptr);
  void answer_malformed(Face face, std::string_view raw, const sip::ParseError& e, const Endpoint& from);
  /// The driver's connection to `remote` on `face` closed, was reset, or could not be made: what was
  /// in flight over it fails now, and a client's flow over it has failed (RFC 5626 §4.4.1).
  void connection_lost(Face face, const Endpoint& remote, Instant now);
  /// A pong (RFC 5626 §4.4.1) came back on the stream to `remote`: a client's flow there lives.
  void pong(Face face, const Endpoint& remote, Instant now);

  // ---- the ICE agent's reports (PeerConfig::ice), as nat::IceLinks takes them ----
  void ice_credentials(nat::IceSessionId id, const nat::IceCredentials& c, Instant now);
  void ice_candidate(nat::IceSessionId id, const nat::IceCandidate& c, Instant now);
  void ice_gathering_done(nat::IceSessionId id, Instant now);
  void ice_connected(nat::IceSessionId id, nat::CandidateType local, nat::CandidateType remote, Instant now);
  void ice_failed(nat::IceSessionId id, Instant now);
  /// A datagram that came over session `id`'s link: an overlay message from the linked peer.
  void ice_datagram(nat::IceSessionId id, std::string_view bytes, Instant now);
  /// A TLS peer's certificate on the overlay face: whom it proves (its Node-ID), or nullopt to
  /// close the link (logged).
  std::optional<LinkIdentity> check_link(std::string_view cert_der, const Endpoint& from, Instant now);

  // ---- time ----
  void advance(Instant now);
  [[nodiscard]] Instant next_wakeup() const;

  // ---- the application's operations (the control port, the simulator's workload) ----
  /// Stores `value` under `key` for `lifetime_s`, signed as this node when it has an identity
  /// (storing peers refuse unsigned records then). `done` runs once with the outcome; 503 at once
  /// while stopping.
  void put(const std::string& key, std::string value, std::uint32_t lifetime_s, dht::RouteCallback done, Instant now);
  /// Stores `r` (its key, name, value, dictionary key, owner and lifetime as given), signed as this
  /// node when it has an identity.
  void store(dht::Record r, dht::RouteCallback done, Instant now);
  /// Fetches the records under `key`.
  void get(const std::string& key, dht::RouteCallback done, Instant now);
  /// Finds the peer responsible for `key`.
  void lookup(const std::string& key, dht::RouteCallback done, Instant now);
  /// The registration entries of `aor` ("sip:user@overlay", canonical).
  void locate(const std::string& aor, std::function<void(const Location&)> done, Instant now);

  [[nodiscard]] PeerStatus status(Instant now) const;

  [[nodiscard]] overlay::OverlayNode& overlay() { return node_; }
  [[nodiscard]] const overlay::OverlayNode& overlay() const { return node_; }
  [[nodiscard]] dht::ChordNode& chord() { return node_.chord(); }
  [[nodiscard]] const dht::ChordNode& chord() const { return node_.chord(); }
  /// The phone side; null without one.
  /// The phone side (null when this peer serves no phones, even where a relay's proxy runs).
  [[nodiscard]] proxy::UaSide* phones() { return serves_phones_ ? ua_.get() : nullptr; }
  [[nodiscard]] const proxy::UaSide* phones() const { return serves_phones_ ? ua_.get() : nullptr; }
  [[nodiscard]] const dht::NodeId& id() const { return node_.chord().table().self().id; }
  /// What the node is now (Role::Auto while it decides).
  [[nodiscard]] Role role() const { return role_; }
  /// A client's flows (null for a peer); a relay peer's table of clients (null when it relays none).
  [[nodiscard]] const nat::FlowSet* flows() const { return flows_.get(); }
  [[nodiscard]] const nat::RelayTable* relay_table() const { return relay_.get(); }
  /// What the node signs its own records with; null without an identity.
  [[nodiscard]] const security::Writer* writer() const;
  /// The links to peers behind NATs (null without PeerConfig::ice, or before the peer begins).
  [[nodiscard]] const nat::IceLinks* ice_links() const;

 private:
  enum class Phase : std::uint8_t { Running, Withdrawing, Leaving, Stopped };
  /// Joins the ring (and relays, when configured to).
  void begin_peer(Instant now);
  /// Starts as a client: flows to relay peers, operations through them.
  void begin_client(Instant now);
  /// Role::Auto: decides once the reachability check has a verdict (or its time is up).
  void decide(Instant now);
  /// A client that decided so itself (Role::Auto) and whose later checks find it reachable.
  void promote(Instant now);
  /// Hands the client's live relays to the Chord core as its gateways.
  void sync_gateways(Instant now);
  /// A client: a peer in the ring, a candidate for its next relay.
  void learn_relay(const Endpoint& addr);
  [[nodiscard]] std::vector<Endpoint> relay_candidates() const;
  /// Whether every one of `peers` is at this node's IP address: Auto then needs no verdict to join.
  [[nodiscard]] bool on_this_host(const std::vector<Endpoint>& peers) const;
  /// The security of a peer that has it (kept apart: most simulated peers have none).
  struct Guard;
  /// Moves a shutdown on when its step is done or its time is up.
  void progress(Instant now);
  void route(dht::RouteOp op, dht::NodeId target, std::optional<dht::Record> record, dht::RouteCallback done,
             Instant now);
  /// A STUN datagram on either face (RFC 7983's first octet told it from SIP).
  void receive_stun(Face face, std::string_view bytes, const Endpoint& from, Instant now);
  /// The peers asked for the reflexive address: the bootstrap, then the ring's neighbours.
  [[nodiscard]] std::vector<Endpoint> stun_candidates() const;
  /// Starts a reachability check when one is due, and logs a verdict that changed.
  void check_reachability(Instant now);

  /// Sends overlay messages over links where they go to peers reached by Attach (PeerConfig::ice).
  class LinkedEnv;
  /// The ICE side: the links, the Attaches they send and answer, what waits to cross between them.
  class Links;
  Environment& env_;
  Environment* phone_env_ = nullptr;
  std::unique_ptr<LinkedEnv> linked_env_;  ///< declared before node_, which sends through it
  overlay::OverlayNode node_;
  std::unique_ptr<Guard> guard_;
  class NoPhones;
  std::unique_ptr<NoPhones> no_phones_;  ///< declared before ua_, which sends on it
  std::unique_ptr<proxy::UaSide> ua_;
  bool serves_phones_ = false;  ///< ua_ serves phones (otherwise it is a relay's proxy only)
  Instant started_{};
  Phase phase_ = Phase::Running;
  Instant deadline_ = kInstantMax;  ///< the current shutdown step's
  Duration withdraw_time_, leave_time_;
  WallTime last_put_{};  ///< each put's writer time is later than the last
  std::vector<Endpoint> bootstrap_;
  nat::StunClient stun_;
  std::unique_ptr<nat::Reachability> reach_;
  std::uint32_t logged_checks_ = 0;
  /// STUN the faces took (the status's copies are made only when asked: a whole PeerStatus::Nat
  /// here cost every simulated peer some 400 bytes).
  struct StunCounts {
    std::uint64_t bindings_answered = 0, indications = 0, dropped = 0;
  };
  StunCounts nat_counts_;
  Role role_ = Role::Peer;  ///< what the node is now (Auto while it decides)
  Instant decide_by_ = kInstantMax;
  Duration decide_within_{};
  nat::FlowConfig flow_config_;
  std::optional<nat::RelayConfig> relay_config_;
  std::unique_ptr<nat::RelayTable> relay_;
  std::unique_ptr<nat::FlowSet> flows_;
  std::vector<Endpoint> learned_relays_;  ///< a client's relay candidates beyond the bootstrap
  bool relays_changed_ = false;
  /// A client with fewer relay candidates than flows asks the ring for more (probe_relays).
  Instant next_relay_probe_ = kInstantMax;
  Duration relay_probe_wait_{};
  std::uint64_t synced_flows_ = UINT64_MAX;  ///< the flows' version sync_gateways last handed on
  Phase synced_phase_ = Phase::Stopped;
  Transport flow_transport_ = Transport::Udp;       ///< a client's flows: TCP where UDP is blocked
  Transport peer_link_transport_ = Transport::Udp;  ///< the overlay's link transport before begin_client
  bool promotable_ = false;                         ///< a client by its own decision (Role::Auto), not by --client
  nat::IcePort* ice_port_ = nullptr;
  std::unique_ptr<nat::IceLinkConfig> link_config_;  ///< with ice_port_ only (a simulated peer has none)
  std::unique_ptr<Links> links_;                     ///< made when the peer begins (its address is then known)
  std::unique_ptr<TurnService> turn_;                ///< PeerConfig::turn_service
  /// Begins the ICE side (a peer with PeerConfig::ice); `attach`: this peer is behind a cone NAT.
  void begin_links(bool attach, Instant now);
  /// Runs what the links and the overlay handed each other (kept apart so neither re-enters the
  /// other), and keeps links to a NATed peer's neighbours.
  void settle_links(Instant now);
  /// A client that knows fewer relay candidates than it keeps flows (it started when the ring was
  /// its bootstrap peer alone, whose grant named no others) looks up a random key through its
  /// relay: the peer responsible for it is a candidate. Every 30 s, doubling to 10 min, until it
  /// knows enough.
  void probe_relays(Instant now);
  /// Flows for the phones of a peer behind a NAT (it is in the ring, its phones are reached
  /// through relay peers).
  void begin_flows(Instant now);
};

}  // namespace p2psip::peer
