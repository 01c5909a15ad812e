#include "sim/report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "sim/nat_model.hpp"

namespace p2psip::sim {

namespace {

using Json = nlohmann::ordered_json;

std::string num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

/// A number as summary.json writes it: six significant digits, integral values without a point.
Json number(double v) {
  if (!std::isfinite(v)) return Json(nullptr);
  const double r = std::stod(num(v));
  if (r == std::floor(r) && std::fabs(r) < 9e15) return Json(static_cast<std::int64_t>(r));
  return Json(r);
}

/// `v` on one line, with ": " and ", " between (nested objects and arrays of summary.json).
std::string one_line(const Json& v) {
  if (v.is_object()) {
    std::string out = "{";
    bool first = true;
    for (const auto& [key, value] : v.items()) {
      out += (first ? "" : ", ") + Json(key).dump() + ": " + one_line(value);
      first = false;
    }
    return out + "}";
  }
  if (v.is_array()) {
    std::string out = "[";
    for (std::size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + one_line(v[i]);
    return out + "]";
  }
  return v.dump(-1, ' ', false, Json::error_handler_t::replace);
}

/// summary.json's layout: one key per line, each value on it.
std::string layout(const Json& top) {
  std::string out = "{\n";
  std::size_t i = 0;
  for (const auto& [key, value] : top.items()) {
    out += "  " + Json(key).dump() + ": " + one_line(value) + (++i < top.size() ? ",\n" : "\n");
  }
  return out + "}\n";
}

/// The smallest hop count h with at least q of the histogram's mass at or below h.
std::uint32_t hist_quantile(const std::vector<std::uint64_t>& h, double q) {
  std::uint64_t total = 0;
  for (auto c : h) total += c;
  if (total == 0) return 0;
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < h.size(); ++i) {
    seen += h[i];
    if (static_cast<double>(seen) >= q * static_cast<double>(total)) return static_cast<std::uint32_t>(i);
  }
  return static_cast<std::uint32_t>(h.size() - 1);
}

double quantile(const std::vector<float>& sorted, double q) {
  if (sorted.empty()) return 0;
  auto i = static_cast<std::size_t>(q * static_cast<double>(sorted.size() - 1) + 0.5);
  return sorted[std::min(i, sorted.size() - 1)];
}

}  // namespace

Summary summarize(const Simulator& sim) {
  const Results& r = sim.results();
  Summary s;
  // Operations whose initiator died are not counted: nobody was left to see the outcome. A run
  // stopped early (Simulator::stop) counts only the lookups that ended: those still in flight
  // have no outcome yet.
  const std::uint64_t counted = sim.stopped_early()              ? r.lookups.done
                                : r.lookups.issued > r.abandoned ? r.lookups.issued - r.abandoned
                                                                 : 0;
  s.lookup_success_rate = counted ? static_cast<double>(r.lookups.ok) / static_cast<double>(counted) : 0;
  std::uint64_t n = 0;
  std::uint64_t sum = 0;
  for (std::size_t h = 0; h < r.hops_histogram.size(); ++h) {
    n += r.hops_histogram[h];
    sum += h * r.hops_histogram[h];
  }
  s.hops_mean = n ? static_cast<double>(sum) / static_cast<double>(n) : 0;
  s.hops_p50 = hist_quantile(r.hops_histogram, 0.5);
  s.hops_p99 = hist_quantile(r.hops_histogram, 0.99);
  std::vector<float> lat = r.latency_ms;
  std::sort(lat.begin(), lat.end());
  s.latency_ms_p50 = quantile(lat, 0.5);
  s.latency_ms_p99 = quantile(lat, 0.99);
  std::vector<float> joins = r.join_s;
  std::sort(joins.begin(), joins.end());
  s.join_s_p50 = quantile(joins, 0.5);
  s.join_s_p99 = quantile(joins, 0.99);
  if (r.node_seconds > 0) {
    s.bytes_per_node_per_s = static_cast<double>(r.bytes) / r.node_seconds;
    s.messages_per_node_per_s = static_cast<double>(r.messages) / r.node_seconds;
  }
  return s;
}

std::string summary_json(const Simulator& sim, const HostFigures& host) {
  const Scenario& sc = sim.scenario();
  const Results& r = sim.results();
  const Summary s = summarize(sim);
  auto counts = [](const OpCounts& c) {
    return Json{{"issued", c.issued}, {"done", c.done}, {"ok", c.ok}, {"wrong", c.wrong}, {"failed", c.failed}};
  };
  Json j;
  j["scenario"] = sc.name;
  j["nodes"] = sc.nodes;
  j["duration_s"] = number(sc.duration_s);
  // Less than duration_s only where the run was stopped (SIGINT or SIGTERM to `p2psip sim`).
  j["simulated_s"] = number(sim.now_s());
  j["stopped_early"] = sim.stopped_early();
  j["seed"] = sc.seed;
  j["lookups"] = r.lookups.issued;
  j["lookup_success_rate"] = number(s.lookup_success_rate);
  j["hops_mean"] = number(s.hops_mean);
  j["hops_p50"] = s.hops_p50;
  j["hops_p99"] = s.hops_p99;
  j["latency_ms_p50"] = number(s.latency_ms_p50);
  j["latency_ms_p99"] = number(s.latency_ms_p99);
  j["messages"] = r.messages;
  j["bytes"] = r.bytes;
  j["bytes_per_node_per_s"] = number(s.bytes_per_node_per_s);
  j["messages_per_node_per_s"] = number(s.messages_per_node_per_s);
  j["events"] = r.events;
  j["lookup_outcomes"] = counts(r.lookups);
  j["puts"] = counts(r.puts);
  j["gets"] = counts(r.gets);
  j["abandoned"] = r.abandoned;
  j["joins"] = r.joins;
  j["join_s_p50"] = number(s.join_s_p50);
  j["join_s_p99"] = number(s.join_s_p99);
  j["failures"] = r.failures;
  j["leaves"] = r.leaves;
  j["live_at_end"] = sim.live_nodes();
  j["joined_at_end"] = sim.joined_nodes();
  j["peak_live"] = r.peak_live;
  const auto [retransmissions, timeouts] = sim.retransmissions_and_timeouts();
  j["retransmissions"] = retransmissions;
  j["transaction_timeouts"] = timeouts;
  j["transactions_at_end"] = sim.transactions();
  j["ring_errors_at_end"] = sim.ring_errors();
  j["messages_lost"] = r.lost;
  j["messages_partitioned"] = r.partitioned;
  j["messages_undeliverable"] = r.undeliverable;
  j["node_seconds"] = number(r.node_seconds);
  j["network"] = Json{{"propagation_ms", number(sc.propagation_ms)},
                      {"access_ms", sc.access_ms.describe()},
                      {"loss", number(sc.loss)},
                      {"transport", sc.transport == Transport::Udp   ? "udp"
                                    : sc.transport == Transport::Tcp ? "tcp"
                                                                     : "tls"}};
  j["chord"] = Json{{"stabilize_s", number(static_cast<double>(sc.chord.stabilize_interval.count()) / 1e6)},
                    {"fingers_per_round", sc.chord.fingers_per_round},
                    {"finger_rounds", sc.chord.finger_rounds},
                    {"successors", sc.chord.successors},
                    {"replicas", sc.chord.replicas},
                    {"iterative", sc.chord.iterative},
                    {"route_via_successor_list", sc.chord.route_via_successor_list},
                    {"learn_fingers", sc.chord.learn_fingers},
                    {"t1_ms", number(sc.t1_ms)},
                    {"hop_timeout_ms", number(sim.hop_timeout_ms())}};
  j["churn"] = sc.session_s ? Json(sc.session_s->describe()) : Json(nullptr);
  j["workload"] = Json{{"start_s", number(sc.workload_start_s)},
                       {"drain_s", number(sc.drain_s)},
                       {"lookups_per_s", number(sc.lookups_per_s)},
                       {"lookups_per_node_per_s", number(sc.lookups_per_node_per_s)},
                       {"puts_per_s", number(sc.puts_per_s)},
                       {"puts_per_node_per_s", number(sc.puts_per_node_per_s)},
                       {"gets_per_s", number(sc.gets_per_s)},
                       {"gets_per_node_per_s", number(sc.gets_per_node_per_s)},
                       {"scripted", sc.script.size()}};
  j["security"] = sc.security;
  j["crypto_provider"] = !sc.security ? "none (no identities: records and messages unsigned)"
                         : sc.ed25519 ? "ed25519"
                                      : "fake-fast (simulation only: forgeable)";
  j["messages_signed"] = sc.security && sc.sign_messages && sc.transport != Transport::Tls;
  j["attack"] = Json{{"fraction", number(sc.malicious_fraction)},
                     {"mode", std::string(attack_name(sc.attack))},
                     {"malicious_nodes", r.malicious_nodes},
                     {"dropped", r.attacks_dropped},
                     {"forged", r.attacks_forged}};
  if (sc.nat.any()) {
    // Where the live nodes stand at the end: peers (in the ring) and clients (reached through relay
    // peers) by NAT kind; the relays' load; the share of node pairs a call between them would go
    // through a relay (either end a client); the STUN the nodes sent and answered.
    const NatReport nr = sim.nat_report();
    Json kinds = Json::object();
    std::uint64_t live = 0, clients = 0;
    for (const auto& [name, k] : nr.by_kind) {
      kinds[name] = Json{{"live", k.live},
                         {"peers", k.peers},
                         {"clients", k.clients},
                         {"deciding", k.deciding},
                         {"clients_with_two_flows", k.clients_two_flows}};
      live += k.live;
      clients += k.clients;
    }
    std::vector<std::uint64_t> load = nr.relay_clients;
    std::sort(load.begin(), load.end());
    const auto at = [&](double q) -> std::uint64_t {
      return load.empty() ? 0
                          : load[std::min(load.size() - 1,
                                          static_cast<std::size_t>(q * static_cast<double>(load.size() - 1) + 0.5))];
    };
    const double client_share = live ? static_cast<double>(clients) / static_cast<double>(live) : 0;
    // What ICE links between every two nodes would give instead (sim/nat_model.hpp, held to the
    // lab's dispositions): the share of pairs of the scenario's mix that need a TURN relay.
    const std::pair<const char*, double> mix[] = {{"public", 1 - sc.nat.natted()},
                                                  {"full-cone", sc.nat.full_cone},
                                                  {"addr-restricted", sc.nat.addr_restricted},
                                                  {"port-restricted", sc.nat.port_restricted},
                                                  {"symmetric", sc.nat.symmetric},
                                                  {"udp-blocked", sc.nat.udp_blocked}};
    double ice_relayed = 0;
    for (const auto& [ka, sa] : mix) {
      for (const auto& [kb, sb] : mix) {
        if (sa > 0 && sb > 0 && kinds_disposition(ka, kb, true) == Disposition::Relayed) ice_relayed += sa * sb;
      }
    }
    const double node_hours = r.node_seconds / 3600.0;
    // The peers' ICE links (sim/ice_model.hpp), per side: how the pairs went, what they carried.
    std::vector<float> checks = r.ice.checks_ms;
    std::sort(checks.begin(), checks.end());
    const Json ice{{"enabled", sc.nat.ice},
                   {"turn", sc.nat.turn},
                   {"sessions", r.ice.sessions},
                   {"up_direct", r.ice.up_direct},
                   {"up_relayed", r.ice.up_relayed},
                   {"failed", r.ice.failed},
                   {"checks_ms_p50", number(quantile(checks, 0.5))},
                   {"checks_ms_p99", number(quantile(checks, 0.99))},
                   {"link_messages", r.ice.link_messages},
                   {"keepalive_bytes_per_node_per_hour",
                    number(node_hours > 0 ? static_cast<double>(r.ice.keepalive_bytes) / node_hours : 0)}};
    j["nat"] = Json{
        {"shares", Json{{"full_cone", number(sc.nat.full_cone)},
                        {"addr_restricted", number(sc.nat.addr_restricted)},
                        {"port_restricted", number(sc.nat.port_restricted)},
                        {"symmetric", number(sc.nat.symmetric)},
                        {"udp_blocked", number(sc.nat.udp_blocked)}}},
        {"binding_timeout_s", number(sc.nat.binding_timeout_s)},
        {"by_kind", kinds},
        {"client_share", number(client_share)},
        {"relayed_pair_share", number(1 - (1 - client_share) * (1 - client_share))},
        {"ice_turn_pair_share", number(ice_relayed)},
        {"relay_peers", load.size()},
        {"relay_clients_max", load.empty() ? 0 : load.back()},
        {"relay_clients_p99", at(0.99)},
        {"relay_clients_p50", at(0.5)},
        {"relay_max_clients", sc.nat.relay_max_clients},
        {"stun_messages", r.stun_messages},
        {"stun_bytes_per_node_per_hour", number(node_hours > 0 ? static_cast<double>(r.stun_bytes) / node_hours : 0)},
        {"nat_blocked", r.nat_blocked},
        {"nat_filtered", r.nat_filtered},
        {"sent_to_private", r.to_private},
        {"ice", ice}};
  }
  j["get_success_rate"] = number(r.gets.done ? static_cast<double>(r.gets.ok) / static_cast<double>(r.gets.done) : 0);
  j["get_attempts_mean"] =
      number(r.gets.done ? static_cast<double>(r.get_attempts) / static_cast<double>(r.gets.done) : 0);
  // Calls between the simulated phones ([phones]), as their callers saw them.
  const CallResults& c = r.calls;
  Json by_status = Json::object();
  for (const auto& [status, n] : c.failed_by_status) by_status[std::to_string(status)] = n;
  std::vector<float> setup = c.setup_ms;
  std::sort(setup.begin(), setup.end());
  j["calls"] = Json{{"phones_fraction", number(sc.phones.fraction)},
                    {"calls_per_phone_per_s", number(sc.phones.calls_per_phone_per_s)},
                    {"registrations_ok", c.registrations_ok},
                    {"registrations_failed", c.registrations_failed},
                    {"attempted", c.attempted},
                    {"answered", c.answered},
                    {"failed", c.failed},
                    {"unfinished", c.attempted - std::min(c.attempted, c.answered + c.failed)},
                    {"failed_by_status", by_status},
                    {"skipped_busy", c.skipped_busy},
                    {"setup_ms_p50", number(quantile(setup, 0.5))},
                    {"setup_ms_p99", number(quantile(setup, 0.99))}};
  j["encoding"] = "SIP (every message serialized and parsed)";
  // Host figures: measured on the machine that ran it, so they differ from run to run.
  j["wall_s"] = number(host.wall_s);
  j["events_per_wall_s"] = number(host.wall_s > 0 ? static_cast<double>(r.events) / host.wall_s : 0);
  j["messages_per_wall_s"] = number(host.wall_s > 0 ? static_cast<double>(r.messages) / host.wall_s : 0);
  j["huge_pages"] = host.huge_pages;
  j["heap_bytes_at_end"] = host.heap_bytes_at_end;
  j["heap_bytes_per_live_node_at_end"] = number(
      sim.live_nodes() ? static_cast<double>(host.heap_bytes_at_end) / static_cast<double>(sim.live_nodes()) : 0);
  j["peak_rss_bytes"] = host.peak_rss_bytes;
  return layout(j);
}

std::string timeseries_header() {
  return "t_s,live,joined,lookups,lookups_ok,success_rate,hops_mean,messages,bytes,lost,joins,departures,"
         "transactions\n";
}

std::string timeseries_row(const IntervalRow& row) {
  std::ostringstream ts;
  ts << num(row.t_s) << ',' << row.live << ',' << row.joined << ',' << row.lookups << ',' << row.lookups_ok << ','
     << (row.lookups ? num(static_cast<double>(row.lookups_ok) / static_cast<double>(row.lookups)) : "") << ','
     << (row.lookups_ok ? num(static_cast<double>(row.hops_sum) / static_cast<double>(row.lookups_ok)) : "") << ','
     << row.messages << ',' << row.bytes << ',' << row.lost << ',' << row.joins << ',' << row.departures << ','
     << row.transactions << '\n';
  return ts.str();
}

bool write_outputs(const Simulator& sim, const HostFigures& host, const std::string& dir, std::string& error) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    error = "cannot create " + dir + ": " + ec.message();
    return false;
  }
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream out(dir + "/" + name, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out) {
      error = "cannot write " + dir + "/" + name;
      return false;
    }
    return true;
  };
  const Results& r = sim.results();
  std::string ts = timeseries_header();
  for (const auto& row : r.series) ts += timeseries_row(row);
  std::ostringstream hops;
  hops << "hops,lookups\n";
  std::size_t last = 0;
  for (std::size_t h = 0; h < r.hops_histogram.size(); ++h) {
    if (r.hops_histogram[h]) last = h;
  }
  for (std::size_t h = 0; h <= last; ++h) hops << h << ',' << r.hops_histogram[h] << '\n';
  std::ostringstream cdf;
  cdf << "latency_ms,fraction\n";
  std::vector<float> lat = r.latency_ms;
  std::sort(lat.begin(), lat.end());
  const std::size_t points = std::min<std::size_t>(lat.size(), 1000);
  for (std::size_t i = 1; i <= points; ++i) {
    std::size_t idx = i * lat.size() / points - 1;
    cdf << num(lat[idx]) << ',' << num(static_cast<double>(idx + 1) / static_cast<double>(lat.size())) << '\n';
  }
  std::ostringstream nodes;
  nodes << "index,id,alive,joined,join_s,alive_s,messages_sent,bytes_sent,nat_kind,role\n";
  // One line per node: written for runs of up to 100 000 nodes only.
  const bool per_node = sim.nodes_created() <= 100000;
  const auto reports = per_node ? sim.node_reports() : std::vector<NodeReport>{};
  if (per_node) {
    for (std::size_t i = 0; i < reports.size(); ++i) {
      const auto& n = reports[i];
      nodes << i << ',' << n.id_hex << ',' << n.alive << ',' << n.joined << ',' << num(n.join_s) << ','
            << num(n.alive_s) << ',' << n.messages_sent << ',' << n.bytes_sent << ',' << n.nat_kind << ',' << n.role
            << '\n';
    }
  }
  std::ostringstream bad;
  bad << "t_s,from,outcome,status,reason,key,got,got_host,expected,hops\n";
  for (const auto& w : r.bad_lookups) {
    bad << num(w.t_s) << ',' << w.from << ',' << (w.answered ? "wrong" : "failed") << ',' << w.status << ',' << w.reason
        << ',' << w.key << ',' << w.got << ',' << w.got_host << ',' << w.expected << ',' << w.hops << '\n';
  }
  std::vector<std::string> ring;
  (void)sim.ring_errors(&ring);
  std::string ring_text;
  for (const auto& l : ring) ring_text += l + "\n";
  return write("ring_errors.txt", ring_text) && write("summary.json", summary_json(sim, host)) &&
         write("timeseries.csv", ts) && write("hops.csv", hops.str()) && write("bad_lookups.csv", bad.str()) &&
         write("latency_cdf.csv", cdf.str()) && (!per_node || write("nodes.csv", nodes.str()));
}

}  // namespace p2psip::sim
