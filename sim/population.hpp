// The population model: the simulated hosts, each running the assembled peer (node/peer) that
// `p2psip node` runs, and their lives: the initial population's joins, churn (sessions drawn from a
// distribution, failures and graceful leaves, a newcomer for each departure), scripted failures
// and arrivals, and the identities [security] gives them. It also keeps the oracle's view of the
// ring: the joined live nodes by id, against which lookups and neighbours are judged.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "node/peer/peer.hpp"
#include "security/certificate.hpp"
#include "security/crypto.hpp"
#include "sim/engine.hpp"
#include "sim/ice_model.hpp"
#include "sim/network.hpp"
#include "sim/phones.hpp"
#include "sim/results.hpp"
#include "sim/scenario.hpp"

namespace p2psip::sim {

class Population;

/// A simulated host's environment at one of its ports: its peer (or its phone) sends through it
/// and draws its own random stream.
class SimHost final : public Environment {
 public:
  SimHost(Population& population, std::uint32_t index, Rng rng, std::uint16_t port = Network::kOverlayPort)
      : population_(population), index_(index), port_(port), rng_(rng) {}
  bool send(const Endpoint& to, std::string_view bytes) override;
  bool send_owned(const Endpoint& to, std::string&& bytes) override;
  std::uint64_t random() override { return rng_.next(); }
  /// The same stream: a run repeats, and draws in the order it always did.
  std::uint64_t secure_random() override { return rng_.next(); }
  [[nodiscard]] WallTime wall_time(Instant now) const override;
  void log(LogLevel level, std::string_view text) override;

 private:
  Population& population_;
  std::uint32_t index_;
  std::uint16_t port_;
  Rng rng_;
};

/// One simulated host and what the models know of it.
struct Host {
  Host(Population& population, std::uint32_t index, Rng rng) : env(population, index, rng) {}
  SimHost env;
  /// With [security]: the host's key and certificate, until its peer starts and takes them.
  struct Identity {
    security::KeyPair key;
    security::Certificate cert;
  };
  std::unique_ptr<Identity> identity;
  /// With [phones], on the hosts that serve one: the peer's phone side's environment, the phone's,
  /// and the phone.
  struct Phone {
    Phone(Population& population, std::uint32_t index, const Scenario& sc);
    SimHost side_env, phone_env;
    std::optional<SimPhone> phone;
    std::optional<Host::Identity> user;  ///< with [security]: the phone's user's, from the simulation's CA
  };
  std::unique_ptr<Phone> phone;
  const char* nat_kind = "public";    ///< [nat]: the kind of its NAT router (sim/nat_model.hpp's names)
  bool malicious = false;             ///< [attack]
  bool forges = false;                ///< a malicious host that forges (else it drops)
  std::unique_ptr<nat::IcePort> ice;  ///< its peer's ICE agent ([nat] ice); outlives the peer
  std::unique_ptr<peer::Peer> peer;   ///< null once dead
  dht::NodeId id;
  Instant scheduled = kInstantMax;  ///< the host's Timer event in the queue, if any
  Instant born{}, died = kInstantMax, joined_at = kInstantMax;
  std::int32_t live_pos = -1, joined_pos = -1;
  std::int32_t boot_pos = -1;  ///< its place among the bootstrap candidates (joined, not behind a NAT)
  bool leaving = false;
  std::uint32_t ops_pending = 0;  ///< workload operations it started that have not ended
  std::uint64_t messages_sent = 0, bytes_sent = 0;
};

class Population {
 public:
  /// Simulated time 0 on the wall clock that certificates and signed records are dated by
  /// (2026-01-01 00:00 UTC): a run is dated the same whenever it runs.
  static constexpr std::int64_t kEpochS = 1767225600;

  /// `ice`: the simulation's ICE agents, one for each peer (null: the peers have none).
  Population(const Scenario& sc, const overlay::OverlayConfig& peers, Engine& engine, Network& network,
             Metrics& metrics, IceModel* ice);
  ~Population();

  /// Told of each host as it is made (the adversary decides whether it is malicious; true when the
  /// host serves a phone), when it has joined (the workload starts its operations, its phone
  /// registers), when it died, and log lines of the traced hosts.
  std::function<bool(Host& host, std::uint32_t index)> on_created;
  std::function<void(std::uint32_t host)> on_joined;
  std::function<void(std::uint32_t host)> on_died;
  using LogSink = std::function<void(double t_s, std::uint32_t host, LogLevel level, std::string_view text)>;
  void trace(std::vector<std::uint32_t> hosts, LogSink sink) {
    traced_ = std::move(hosts);
    sink_ = std::move(sink);
  }

  /// Schedules the initial population's starts (the first `sc.nodes` sequence numbers).
  void schedule_initial();

  // Event handlers.
  void start_next(std::uint32_t index);  ///< Start: initial host `index` starts, and the next is scheduled
  void depart(std::uint32_t host, bool process_exit);
  void arrive() { spawn(std::nullopt); }
  void timer(std::uint32_t host, Instant at);
  /// Scripted: fails `fraction` of the live hosts at once / schedules that fraction's worth of arrivals.
  void fail_fraction(double fraction);
  void join_fraction(double fraction);

  /// After anything happened at `host`: its next wake-up queued, and whether it has now joined.
  void touched(std::uint32_t host);
  /// A message a host's peer or phone sends from `port` (SimHost::send).
  void transmit(std::uint32_t from, std::uint16_t port, const Endpoint& to, std::string_view bytes, std::string* take);

  [[nodiscard]] Host& host(std::uint32_t i) { return hosts_[i]; }
  [[nodiscard]] const Host& host(std::uint32_t i) const { return hosts_[i]; }
  [[nodiscard]] std::size_t created() const { return hosts_.size(); }
  [[nodiscard]] std::size_t live() const { return live_; }
  [[nodiscard]] std::size_t joined() const { return joined_list_.size(); }
  [[nodiscard]] NatReport nat_report() const;
  /// A random joined host, drawn from `rng`; nullopt when none has joined.
  [[nodiscard]] std::optional<std::uint32_t> random_joined(Rng& rng) const;
  /// The oracle: the joined live node responsible for `key`.
  [[nodiscard]] std::optional<dht::NodeId> responsible(dht::NodeId key) const;
  /// The creation index of the live joined host with this id (nullopt: none).
  [[nodiscard]] std::optional<std::uint32_t> joined_host(dht::NodeId id) const;
  /// Joined nodes whose first successor or predecessor is wrong (described in `details`).
  [[nodiscard]] std::size_t ring_errors(std::vector<std::string>* details = nullptr) const;
  [[nodiscard]] std::vector<NodeReport> node_reports(Instant now) const;
  [[nodiscard]] std::size_t transactions() const;
  [[nodiscard]] std::pair<std::uint64_t, std::uint64_t> retransmissions_and_timeouts() const;
  /// The integral of the live population, brought up to now.
  void account_time();
  void log(std::uint32_t host, LogLevel level, std::string_view text) const;

 private:
  std::uint32_t create(std::optional<dht::NodeId> id);
  void start(std::uint32_t host);
  void spawn(std::optional<dht::NodeId> id);  ///< create, start and (with churn) give a session
  void kill(std::uint32_t host, bool graceful);
  void schedule_departure(std::uint32_t host);

  const Scenario& sc_;
  const overlay::OverlayConfig& peers_;
  Engine& engine_;
  Network& network_;
  Metrics& metrics_;
  IceModel* ice_;
  Rng churn_rng_;  // sessions, failures, bootstrap choice
  std::deque<Host> hosts_;
  std::size_t live_ = 0;
  std::vector<std::uint32_t> joined_list_;
  /// The joined hosts a newcomer may bootstrap through: those not behind a NAT, whose address
  /// anyone reaches (a peer behind a cone NAT is in the ring, but lets in only what it answers).
  /// The same list as joined_list_, in the same order, without [nat].
  std::vector<std::uint32_t> boot_list_;
  std::map<dht::NodeId, std::uint32_t> ring_;  // joined live hosts by id: the oracle for correctness
  Instant last_account_{};
  // [security]: the simulation's CA and the provider every node signs with.
  std::unique_ptr<security::CryptoProvider> crypto_;
  security::KeyPair ca_key_{};
  std::optional<security::Certificate> root_;
  std::vector<std::uint32_t> traced_;
  LogSink sink_;
};

}  // namespace p2psip::sim
