// What a run measures: outcome counts, histograms, per-interval rows and per-node figures. Every
// model adds to one Metrics; the report (report.hpp) writes them out.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace p2psip::sim {

/// One time-series row: what happened during (t_s - interval, t_s].
struct IntervalRow {
  double t_s = 0;
  std::size_t live = 0, joined = 0;
  std::uint64_t lookups = 0, lookups_ok = 0, hops_sum = 0;
  std::uint64_t messages = 0, bytes = 0, lost = 0;
  std::uint64_t joins = 0, departures = 0;
  std::size_t transactions = 0;  ///< SIP transactions held by all nodes at t_s
};

/// Outcome counts of one kind of workload operation.
struct OpCounts {
  std::uint64_t issued = 0, done = 0, ok = 0, wrong = 0, failed = 0;
};

/// Calls between simulated phones ([phones]), as their callers saw them.
struct CallResults {
  std::uint64_t registrations_ok = 0, registrations_failed = 0;
  std::uint64_t attempted = 0;     ///< INVITEs sent
  std::uint64_t answered = 0;      ///< a 2xx came
  std::uint64_t failed = 0;        ///< a final status >= 300 (408: no answer at all)
  std::uint64_t skipped_busy = 0;  ///< a phone's turn to call came while it was still in a call
  std::map<int, std::uint64_t> failed_by_status;
  std::vector<float> setup_ms;  ///< INVITE sent -> first 180, for every call that rang
};

/// The simulated ICE agents ([nat] ice, sim/ice_model.hpp), counted per side of a link: sessions
/// opened, pairs up (direct or through TURN) and failed, messages carried over links, the
/// keep-alive bytes of up links, and each up pair's time from the start of its checks.
struct IceResults {
  std::uint64_t sessions = 0, up_direct = 0, up_relayed = 0, failed = 0;
  std::uint64_t link_messages = 0, keepalive_bytes = 0;
  std::vector<float> checks_ms;
};

struct Results {
  OpCounts lookups, puts, gets;
  std::vector<std::uint64_t> hops_histogram;  ///< completed, correct lookups by overlay hops
  std::vector<float> latency_ms;              ///< completed, correct lookups, in completion order
  std::vector<float> join_s;                  ///< time from start to joined, per node that joined
  std::uint64_t messages = 0, bytes = 0, lost = 0, partitioned = 0, undeliverable = 0;
  std::uint64_t events = 0;
  std::uint64_t abandoned = 0;  ///< operations whose initiating node died before they finished
  double node_seconds = 0;      ///< integral of the live population over time
  std::uint64_t joins = 0, failures = 0, leaves = 0;
  std::size_t peak_live = 0;
  /// Transaction-layer counters of nodes that have died (live ones are added by totals()).
  std::uint64_t retransmissions = 0, timeouts = 0;
  std::vector<IntervalRow> series;
  // Attacks ([attack]): requests malicious nodes dropped or answered with forgeries, and the
  // fetches' tries (ChordConfig::fetch_attempts) summed over the gets that finished.
  std::uint64_t malicious_nodes = 0, attacks_dropped = 0, attacks_forged = 0, get_attempts = 0;
  CallResults calls;
  // NATs ([nat]): datagrams a NAT kept from going out (UDP blocked) or from coming in (no mapping,
  // or its filtering), messages sent to another host's private address, and the STUN sent (the
  // nodes' reachability checks, a client's keep-alives, and their answers).
  std::uint64_t nat_blocked = 0, nat_filtered = 0, to_private = 0;
  std::uint64_t stun_messages = 0, stun_bytes = 0;
  IceResults ice;
  /// The first kMaxBadLookups lookups answered with the wrong peer or not answered
  /// (bad_lookups.csv), to find where a ring is broken.
  struct BadLookup {
    double t_s = 0;
    std::uint32_t from = 0;  ///< the asking host's creation index
    bool answered = false;   ///< wrong (answered by another peer) or failed (not answered)
    int status = 0;          ///< the route's SIP status
    std::string reason;
    std::string key, got, expected;  ///< hex Node-IDs (got: empty when failed)
    std::int64_t got_host = -1;      ///< the host that answered as responsible (-1: none live and joined)
    std::uint32_t hops = 0;
  };
  static constexpr std::size_t kMaxBadLookups = 1000;
  std::vector<BadLookup> bad_lookups;
};

/// Per-node figures, in the order nodes were created.
struct NodeReport {
  std::string id_hex;
  bool alive = false, joined = false;
  std::uint64_t messages_sent = 0, bytes_sent = 0;
  double alive_s = 0;
  double join_s = -1;               ///< from start to joined (-1: never joined)
  std::string nat_kind = "public";  ///< [nat]: its router's kind
  std::string role;                 ///< its peer's role at the end: peer, client, deciding ("" once dead)
};

/// Where the live nodes stand behind their NATs at the end of a run ([nat]).
struct NatReport {
  struct Kind {
    std::uint64_t live = 0, peers = 0, clients = 0, deciding = 0;
    std::uint64_t clients_two_flows = 0;  ///< clients with both flows active
  };
  std::map<std::string, Kind> by_kind;       ///< by NAT kind ("public", "full-cone", ...)
  std::vector<std::uint64_t> relay_clients;  ///< per live relay peer: the clients it holds flows for
};

/// The run's results and the interval being filled.
struct Metrics {
  Results results;
  IntervalRow row;
};

}  // namespace p2psip::sim
