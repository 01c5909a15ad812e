// The simulator's ICE agents: what libnice does for `p2psip node` (node/runtime/nice_ice.cpp), played
// on the simulated network, so that a simulated peer behind a cone NAT joins the ring over ICE links
// exactly as the daemon's does (node/peer's `PeerConfig::ice`). Each host's peer gets an agent
// (nat::IcePort); the agent gathers a host candidate, a server-reflexive one from the host's NAT
// router (a real mapping in its NatBox, toward the simulation's STUN server) and, with [nat]
// turn = true, a relayed one; once both sides of an Attach hold each other's description, the pair
// is decided by ice_disposition (sim/nat_model.hpp: the checks played through both NAT boxes, held
// to the namespace lab's dispositions), and each side hears "connected" or "failed" after the time
// the lab measured for it (docs/PERFORMANCE.md, ICE links per NAT pair) plus the round trips on the
// simulated network. Messages over an up link are the network's (counted, lost and partitioned as
// any datagram), delivered to the other side's session; a relayed pair's go through the TURN server.
//
// Model limits (docs/SIMULATION.md): the STUN and TURN server sit where host 0 sits; checks are not
// messages (their bytes are not counted, only the keep-alives of up links, one Binding indication
// per side every 25 s as libnice sends); links carry no consent checks (as with libnice in the
// daemon), so a side learns of a dead peer from the overlay's own time-outs.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/time.hpp"
#include "nat/ice_links.hpp"
#include "sim/engine.hpp"
#include "sim/network.hpp"
#include "sim/results.hpp"
#include "sim/scenario.hpp"

namespace p2psip::sim {

class IceModel {
 public:
  /// The agents' own pacing, as the lab measured it with sub-millisecond round trips (gathering
  /// aside): a direct pair usable about 85 ms after the checks start, a relayed one about 150 ms,
  /// and no pair at all declared after 7.1 s (libnice gives up on its checks).
  static constexpr Duration kDirectPacing = millis(85);
  static constexpr Duration kRelayedPacing = millis(150);
  static constexpr Duration kFailVerdict = millis(7100);
  /// libnice keeps an idle link's NAT bindings with a Binding indication every 25 s (RFC 8445 §11)
  /// of 28 bytes (header and FINGERPRINT), from each side.
  static constexpr Duration kKeepalive = seconds(25);
  static constexpr std::uint64_t kKeepaliveBytes = 28;

  IceModel(const Scenario& sc, Engine& engine, Network& network, Metrics& metrics);
  ~IceModel();
  IceModel(const IceModel&) = delete;
  IceModel& operator=(const IceModel&) = delete;

  /// Host `host`'s agent, for its peer (PeerConfig::ice). Its sessions end when it is destroyed
  /// (the host died): the other sides' links then carry into nothing.
  std::unique_ptr<nat::IcePort> agent(std::uint32_t host);

  /// What an Ice event tells a host's peer.
  struct Report {
    /// Started: the credentials and the host candidate (libnice has them at once); Gathered: the
    /// server-reflexive and relayed candidates, and gathering done.
    enum class Kind : std::uint8_t { Started, Gathered, Connected, Failed };
    Kind kind = Kind::Failed;
    std::uint32_t host = 0;
    nat::IceSessionId session = 0;
    nat::IceCredentials credentials;                                                         ///< Started
    std::vector<nat::IceCandidate> candidates;                                               ///< Started, Gathered
    nat::CandidateType local = nat::CandidateType::Host, remote = nat::CandidateType::Host;  ///< Connected
  };
  /// The report of the Ice event whose argument is `slot` (taken out of the table); nullopt when
  /// its session has closed meanwhile.
  std::optional<Report> take(std::uint64_t slot);
  /// Whether host `host`'s session `id` is open (a datagram over a link arrives at it).
  [[nodiscard]] bool is_open(std::uint32_t host, nat::IceSessionId id) const;
  /// Host `host` sends `bytes` over its session `id` (nat::IcePort::send). False when not up.
  bool send(std::uint32_t host, nat::IceSessionId id, std::string_view bytes);

  /// At the end of a run: the keep-alives of the links still up are counted.
  void finish(Instant now);
  [[nodiscard]] std::size_t sessions() const { return sessions_.size(); }

 private:
  class Agent;
  struct Key {
    std::uint32_t host = 0;
    nat::IceSessionId id = 0;
    friend bool operator==(const Key&, const Key&) = default;
  };
  struct KeyHash {
    std::size_t operator()(const Key& k) const noexcept {
      return static_cast<std::size_t>((std::uint64_t{k.host} << 32 ^ k.id) * 0x9E3779B97F4A7C15ULL);
    }
  };
  struct Session {
    std::uint16_t port = 0;    ///< its local port: the host candidate's
    std::string remote_ufrag;  ///< the other side's, once its description came
    std::optional<Key> peer;   ///< the other side, once both hold each other's description
    Disposition disposition = Disposition::None;
    bool up = false;
    Instant checks_from{}, up_at{};
  };
  struct Pending {
    Report::Kind kind = Report::Kind::Failed;
    Key key;
  };

  bool open(std::uint32_t host, nat::IceSessionId id);
  void remote(std::uint32_t host, nat::IceSessionId id, const nat::IceDescription& d);
  void close(std::uint32_t host, nat::IceSessionId id);
  void schedule(Instant at, Report::Kind what, Key key);
  [[nodiscard]] static std::string ufrag(Key k);
  [[nodiscard]] static std::optional<Key> key_of(std::string_view ufrag);
  [[nodiscard]] IceHost ice_host(const Key& k, const Session& s) const;
  [[nodiscard]] Endpoint stun_server() const { return Network::address(0); }
  /// A one-way trip between two hosts' places (host 0's place stands for the STUN/TURN server).
  [[nodiscard]] Duration trip(std::uint32_t a, std::uint32_t b) const;
  void count_keepalives(const Session& s, Instant until);

  const Scenario& sc_;
  Engine& engine_;
  Network& network_;
  Metrics& metrics_;
  std::unordered_map<Key, Session, KeyHash> sessions_;
  std::vector<Pending> pending_;
  std::vector<std::uint64_t> pending_free_;
};

}  // namespace p2psip::sim
