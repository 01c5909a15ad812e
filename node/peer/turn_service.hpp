// TURN servers the overlay announces (RFC 6940 §9, TURN-SERVICE), sans-I/O: a public peer given a
// TURN server to announce stores entries for it in the DHT and hands out credentials for it; a node
// with no TURN server of its own finds one there and gives it to its ICE agent, so that nobody has to
// configure TURN on every node (docs/NAT.md, "TURN servers the overlay announces").
//
//   announcing  a public peer in the ring stores "turn-service:ID:d" for d = 1..density (NODE-MULTIPLE:
//               only node ID may write them), each naming the TURN server and the peer's address, and
//               stores them again before they expire;
//   finding     a node sends a Find for the kind "turn-service" to a random key: the peer responsible
//               for it answers with the entries it holds nearest after that key (an announcing peer's
//               entries are spread over the ring by its Node-ID, so a random key finds one when
//               announcing peers are about 1/density of all);
//   credentials the node sends Op::Turn to the announcing peer with a one-time X25519 key; the peer
//               answers with a user name "EXPIRY:NODE-ID" and its password, coturn's REST API password
//               for the secret it shares with its TURN server, sealed for that key (only the asker can
//               read it; the answer crosses other peers' hands and the network in the clear);
//   using       the password opened, the node's ICE agent takes the server for every agent it opens
//               from then on (nat::IcePort::use_turn), and asks again when half the credentials' time
//               has passed.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "core/environment.hpp"
#include "dht/chord_node.hpp"
#include "nat/ice_links.hpp"
#include "security/sealed.hpp"

namespace p2psip::peer {

struct TurnServiceConfig {
  /// A TURN server whose REST secret this node holds (its address and transport; no credentials:
  /// they are made from `secret`).
  std::optional<nat::TurnServer> announce;
  /// Announce it (`announce`) while a public peer in the ring, and hand out credentials for it.
  bool publish = false;
  /// The secret shared with the TURN server (coturn's --static-auth-secret with --use-auth-secret).
  std::string secret;  ///< never logged
  /// RFC 6940 §9's turn-density: entries each announcing peer stores (1..20), about the reciprocal of
  /// the share of peers that announce one.
  int density = 10;
  std::uint32_t entry_lifetime_s = 1200;        ///< each entry's, stored again at half of it
  std::uint32_t credential_lifetime_s = 3600;   ///< how long the credentials handed out work
  std::uint32_t max_requests_per_minute = 120;  ///< credentials handed out per minute; 503 beyond
  /// Find one in the overlay (a node that has no TURN server of its own).
  bool discover = false;
  /// The announcing node's own agent takes credentials made from `secret` too (it was given no
  /// long-term ones of its own).
  bool use_announced = false;
  Duration first_find = seconds(5);   ///< after the node can route
  Duration max_retry = seconds(600);  ///< a failed search is tried again after 30 s, doubling to this
};

/// What `p2psip status` shows of it.
struct TurnServiceStatus {
  bool announcing = false;
  std::string announced;             ///< the server announced ("HOST:PORT"), when announcing
  std::uint64_t entries_stored = 0;  ///< entries the ring took
  std::uint64_t credentials_given = 0;
  std::uint64_t requests_refused = 0;  ///< malformed, or over the rate
  bool discovering = false;
  std::string using_server;       ///< the server in use ("HOST:PORT"), found in the overlay
  std::string from_peer;          ///< the Node-ID of the peer that announced it
  std::int64_t expires_unix = 0;  ///< when its credentials stop working
  std::uint64_t finds = 0, finds_failed = 0;
  std::string last_error;  ///< why the last search found nothing usable
};

/// An entry's value, as stored and found: "server=HOST:PORT;transport=udp|tcp;peer=IP:PORT".
struct TurnServiceEntry {
  nat::TurnServer server;  ///< without credentials
  Endpoint peer;           ///< the announcing peer's overlay address (where Op::Turn goes)
};
[[nodiscard]] std::string encode_turn_entry(const TurnServiceEntry& e);
[[nodiscard]] std::optional<TurnServiceEntry> decode_turn_entry(std::string_view value);

class TurnService final : public dht::TurnHandler {
 public:
  /// How the service reaches the overlay (the assembled peer): stores a record of this node's
  /// (signed as it), and routes a Find (a client's through its relays).
  struct Overlay {
    std::function<void(dht::Record, dht::RouteCallback, Instant)> store;
    std::function<void(dht::NodeId, dht::RouteCallback, Instant)> find;
    /// The ICE agent has a TURN server now (given to it by use_turn).
    std::function<void()> turn_in_use;
  };
  /// `ice` (may be null when only announcing) must outlive the service, as must `chord`.
  TurnService(TurnServiceConfig cfg, Environment& env, dht::ChordNode& chord, nat::IcePort* ice, Overlay overlay);

  /// `can_announce`: this node is a public peer in the ring now; `can_discover`: it can route.
  void advance(Instant now, bool can_announce, bool can_discover);
  [[nodiscard]] Instant next_wakeup() const;
  void on_turn(const dht::TurnRequest& t, Instant now) override;
  [[nodiscard]] TurnServiceStatus status() const { return status_; }

 private:
  void announce(Instant now);
  void discover(Instant now);
  void found(const dht::RouteResult& res, Instant now);
  void answered(const TurnServiceEntry& entry, const dht::NodeId& from, const security::BoxKeyPair& key,
                const dht::RouteResult& res, Instant now);
  void failed(std::string why, Instant now);
  [[nodiscard]] security::Seed fresh_seed();
  [[nodiscard]] std::string rest_user(Instant now, const dht::NodeId& who) const;

  TurnServiceConfig cfg_;
  Environment& env_;
  dht::ChordNode& chord_;
  nat::IcePort* ice_;
  Overlay overlay_;
  TurnServiceStatus status_;
  Instant next_announce_ = kInstantMax;
  Instant next_own_{};  ///< when its own agent's credentials are made again (use_announced)
  Instant next_find_ = kInstantMax;
  bool find_in_flight_ = false;
  Duration retry_{};
  std::deque<Instant> given_;  ///< when credentials were handed out in the last minute
};

}  // namespace p2psip::peer
