// What a simulation runs: population, network model, churn, scripted events and workload. Read from
// a few lines of TOML (sim/scenarios/*.toml, documented in docs/SIMULATION.md); command-line flags
// override the file.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dht/chord_node.hpp"
#include "sim/random.hpp"

namespace p2psip::sim {

/// "exponential(600)", "pareto(300, 1.5)", "weibull(3600, 0.5)", "uniform(1, 10)",
/// "lognormal(1.5, 0.5)", "constant(5)" or a bare number (constant). nullopt with `error` otherwise.
std::optional<Distribution> parse_distribution(std::string_view text, std::string& error);

struct ScriptedEvent {
  enum class Kind : std::uint8_t { Fail, Join, Partition };
  Kind kind = Kind::Fail;
  double at_s = 0;
  double fraction = 0;    ///< Fail: of the live nodes, chosen at random. Join: of the live count.
  double duration_s = 0;  ///< Partition: how long the two halves (by x coordinate) stay apart.
};

/// One operation of a scripted workload: `at_s` seconds in, node `node` (its join order) routes.
struct ScriptedOp {
  double at_s = 0;
  std::size_t node = 0;
  dht::RouteOp op = dht::RouteOp::Lookup;
  std::string key;
};

struct Scenario {
  std::string name = "unnamed";
  std::size_t nodes = 1000;
  double duration_s = 600;
  std::uint64_t seed = 1;
  double join_rate = 100;  ///< initial nodes joining per second (node 0 starts the ring at t=0)
  double interval_s = 10;  ///< time-series interval
  std::string overlay = "sim.p2psip";
  std::vector<std::string> node_ids;  ///< optional fixed ids (hex) in join order; the rest are random

  // Network: nodes lie uniformly on a unit square; a message takes propagation_ms times the distance
  // plus both ends' access-link delay (drawn once per node), and is lost with probability `loss`.
  // Overlay links are UDP (datagrams, RFC 3261 retransmissions) or TCP (every message over a
  // connection as RELOAD's links; delivered once, in the same delay; connection set-up not modelled).
  double propagation_ms = 100;
  Distribution access_ms{Distribution::Kind::Exponential, 5, 0};
  double loss = 0;
  Transport transport = Transport::Udp;

  // The node core's settings.
  dht::ChordConfig chord;
  double t1_ms = 500;
  double hop_timeout_ms = -1;  ///< negative: the overlay's default; 0: Timer F only

  // Churn: when session times are given, each node fails (or leaves, with leave_fraction) at the
  // end of its session and a new node with a fresh id joins in its place, keeping the population.
  std::optional<Distribution> session_s;
  double leave_fraction = 0;
  double churn_start_s = 0;  ///< no departures before this time
  std::vector<ScriptedEvent> events;

  // Workload (Poisson arrivals from random joined nodes to random keys), from workload_start_s
  // until duration_s - drain_s; then running operations finish.
  double workload_start_s = 60;
  double drain_s = 100;
  double lookups_per_s = 1;
  double puts_per_s = 0;
  double gets_per_s = 0;
  // Rates per joined node, in addition to the overlay-wide ones: every honest node, once joined,
  // starts operations of its own at this Poisson rate (SimGrid's Chord: each node looks up a key
  // every 10 s), so that the load follows the joined population as it grows and shrinks.
  double lookups_per_node_per_s = 0;
  double puts_per_node_per_s = 0;
  double gets_per_node_per_s = 0;
  [[nodiscard]] bool any_workload_rate() const {
    return lookups_per_s > 0 || puts_per_s > 0 || gets_per_s > 0 || lookups_per_node_per_s > 0 ||
           puts_per_node_per_s > 0 || gets_per_node_per_s > 0;
  }
  std::vector<ScriptedOp> script;  ///< fixed operations, in addition to the rates

  // Identities ([security]): every node has a certificate from the simulation's CA (its Node-ID
  // its key's digest), checks every record it stores and fetches (security/record_policy.hpp),
  // and signs and checks its overlay messages (sign_messages; over TLS links the link does).
  // Puts are then entries under the writing node's own Node-ID (NODE-MATCH: only it may sign
  // them). The fast fake signatures unless ed25519 (summary.json names the provider).
  bool security = false;
  bool sign_messages = true;
  bool ed25519 = false;

  // Attackers ([attack]): this fraction of the nodes (chosen at creation, on a random stream of
  // their own) keeps the ring's maintenance up but attacks the lookups and fetches routed to it:
  // "drop" discards them without a word, "forge" answers them itself (it claims to be
  // responsible; for a fetch, a forged record signed with its own key, or 404 when it does not
  // know the key's name), "mixed" makes half of them do each. Workload operations start at honest
  // nodes only.
  enum class Attack : std::uint8_t { Drop, Forge, Mixed };
  double malicious_fraction = 0;
  Attack attack = Attack::Drop;

  // Phones ([phones]): this fraction of the hosts (chosen at creation, on a stream of their own)
  // serve a phone: the node's phone side (the registrar and proxy of `p2psip node`) and a softphone
  // on the host, whose user (u<host index>) registers once the node has joined. Each registered
  // phone calls a random registered user at calls_per_phone_per_s (Poisson, from workload.start
  // until the drain); the callee rings (180) and answers after answer_delay_s, the caller hangs up
  // call_duration_s later.
  struct Phones {
    double fraction = 0;
    double calls_per_phone_per_s = 0;
    double answer_delay_s = 1;
    double call_duration_s = 30;
  } phones;

  // NATs ([nat]): each host but the first (which starts the ring) is put behind a NAT router of its
  // own with this probability per kind (RFC 4787 behaviours, sim/nat_model.hpp; the rest are
  // public), drawn at creation on a stream of its own. With any NAT, every node starts as
  // `p2psip node` does by default: it asks its bootstrap peers where they see it and decides (public:
  // a peer and a relay for clients; behind a cone NAT, with `ice`: a peer reached over ICE links;
  // otherwise a client with two flows to relay peers).
  struct Nat {
    double full_cone = 0, addr_restricted = 0, port_restricted = 0, symmetric = 0, udp_blocked = 0;
    double binding_timeout_s = 120;  ///< a mapping unused this long is gone (RFC 4787 REQ-5: >= 120)
    std::uint32_t relay_max_clients = 200;
    bool ice = true;    ///< every peer has an ICE agent (sim/ice_model.hpp), as `--ice on`, the daemon's default
    bool turn = false;  ///< the agents have a TURN server (`--turn`; the daemon has none unless told)
    [[nodiscard]] double natted() const {
      return full_cone + addr_restricted + port_restricted + symmetric + udp_blocked;
    }
    [[nodiscard]] bool any() const { return natted() > 0; }
  } nat;
};
std::string_view attack_name(Scenario::Attack a);

/// Applies a TOML document (a scenario file's text, or a "section.key=value" override) to `s`.
/// `base_dir` resolves file names in it. False with `error` naming the key and what it must be.
bool apply_toml(const std::string& text, const std::string& origin, const std::string& base_dir, Scenario& s,
                std::string& error);
/// Reads a scenario file; see apply_toml.
bool load_scenario(const std::string& path, Scenario& s, std::string& error);
/// Things worth saying about a scenario that still runs (a workload that starts after the end...).
std::vector<std::string> notes(const Scenario& s);
/// Checks the whole scenario for values that cannot run (zero nodes, negative rates, ...).
bool validate(const Scenario& s, std::string& error);

}  // namespace p2psip::sim
