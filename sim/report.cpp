#include "sim/report.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace p2psip::sim {

namespace {

std::string num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

std::string json_text(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
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
  std::ostringstream j;
  auto counts = [&](const char* name, const OpCounts& c) {
    j << "  " << json_text(name) << ": {\"issued\": " << c.issued << ", \"done\": " << c.done << ", \"ok\": " << c.ok
      << ", \"wrong\": " << c.wrong << ", \"failed\": " << c.failed << "},\n";
  };
  j << "{\n";
  j << "  \"scenario\": " << json_text(sc.name) << ",\n";
  j << "  \"nodes\": " << sc.nodes << ",\n";
  j << "  \"duration_s\": " << num(sc.duration_s) << ",\n";
  // Less than duration_s only where the run was stopped (SIGINT or SIGTERM to `p2psip sim`).
  j << "  \"simulated_s\": " << num(sim.now_s()) << ",\n";
  j << "  \"stopped_early\": " << (sim.stopped_early() ? "true" : "false") << ",\n";
  j << "  \"seed\": " << sc.seed << ",\n";
  j << "  \"lookups\": " << r.lookups.issued << ",\n";
  j << "  \"lookup_success_rate\": " << num(s.lookup_success_rate) << ",\n";
  j << "  \"hops_mean\": " << num(s.hops_mean) << ",\n";
  j << "  \"hops_p50\": " << s.hops_p50 << ",\n";
  j << "  \"hops_p99\": " << s.hops_p99 << ",\n";
  j << "  \"latency_ms_p50\": " << num(s.latency_ms_p50) << ",\n";
  j << "  \"latency_ms_p99\": " << num(s.latency_ms_p99) << ",\n";
  j << "  \"messages\": " << r.messages << ",\n";
  j << "  \"bytes\": " << r.bytes << ",\n";
  j << "  \"bytes_per_node_per_s\": " << num(s.bytes_per_node_per_s) << ",\n";
  j << "  \"messages_per_node_per_s\": " << num(s.messages_per_node_per_s) << ",\n";
  j << "  \"events\": " << r.events << ",\n";
  counts("lookup_outcomes", r.lookups);
  counts("puts", r.puts);
  counts("gets", r.gets);
  j << "  \"abandoned\": " << r.abandoned << ",\n";
  j << "  \"joins\": " << r.joins << ",\n";
  j << "  \"join_s_p50\": " << num(s.join_s_p50) << ",\n";
  j << "  \"join_s_p99\": " << num(s.join_s_p99) << ",\n";
  j << "  \"failures\": " << r.failures << ",\n";
  j << "  \"leaves\": " << r.leaves << ",\n";
  j << "  \"live_at_end\": " << sim.live_nodes() << ",\n";
  j << "  \"joined_at_end\": " << sim.joined_nodes() << ",\n";
  j << "  \"peak_live\": " << r.peak_live << ",\n";
  const auto [retransmissions, timeouts] = sim.retransmissions_and_timeouts();
  j << "  \"retransmissions\": " << retransmissions << ",\n";
  j << "  \"transaction_timeouts\": " << timeouts << ",\n";
  j << "  \"transactions_at_end\": " << sim.transactions() << ",\n";
  j << "  \"ring_errors_at_end\": " << sim.ring_errors() << ",\n";
  j << "  \"messages_lost\": " << r.lost << ",\n";
  j << "  \"messages_partitioned\": " << r.partitioned << ",\n";
  j << "  \"messages_undeliverable\": " << r.undeliverable << ",\n";
  j << "  \"node_seconds\": " << num(r.node_seconds) << ",\n";
  j << "  \"network\": {\"propagation_ms\": " << num(sc.propagation_ms)
    << ", \"access_ms\": " << json_text(sc.access_ms.describe()) << ", \"loss\": " << num(sc.loss)
    << ", \"transport\": "
    << json_text(sc.transport == Transport::Udp   ? "udp"
                 : sc.transport == Transport::Tcp ? "tcp"
                                                  : "tls")
    << "},\n";
  j << "  \"chord\": {\"stabilize_s\": " << num(static_cast<double>(sc.chord.stabilize_interval.count()) / 1e6)
    << ", \"fingers_per_round\": " << sc.chord.fingers_per_round << ", \"finger_rounds\": " << sc.chord.finger_rounds
    << ", \"successors\": " << sc.chord.successors << ", \"replicas\": " << sc.chord.replicas
    << ", \"iterative\": " << (sc.chord.iterative ? "true" : "false")
    << ", \"route_via_successor_list\": " << (sc.chord.route_via_successor_list ? "true" : "false")
    << ", \"learn_fingers\": " << (sc.chord.learn_fingers ? "true" : "false") << ", \"t1_ms\": " << num(sc.t1_ms)
    << ", \"hop_timeout_ms\": " << num(sim.hop_timeout_ms()) << "},\n";
  j << "  \"churn\": " << (sc.session_s ? json_text(sc.session_s->describe()) : "null") << ",\n";
  j << "  \"workload\": {\"start_s\": " << num(sc.workload_start_s) << ", \"drain_s\": " << num(sc.drain_s)
    << ", \"lookups_per_s\": " << num(sc.lookups_per_s)
    << ", \"lookups_per_node_per_s\": " << num(sc.lookups_per_node_per_s) << ", \"puts_per_s\": " << num(sc.puts_per_s)
    << ", \"puts_per_node_per_s\": " << num(sc.puts_per_node_per_s) << ", \"gets_per_s\": " << num(sc.gets_per_s)
    << ", \"gets_per_node_per_s\": " << num(sc.gets_per_node_per_s) << ", \"scripted\": " << sc.script.size() << "},\n";
  j << "  \"security\": " << (sc.security ? "true" : "false") << ",\n";
  j << "  \"crypto_provider\": "
    << json_text(!sc.security ? "none (no identities: records and messages unsigned)"
                 : sc.ed25519 ? "ed25519"
                              : "fake-fast (simulation only: forgeable)")
    << ",\n";
  j << "  \"messages_signed\": "
    << (sc.security && sc.sign_messages && sc.transport != Transport::Tls ? "true" : "false") << ",\n";
  j << "  \"attack\": {\"fraction\": " << num(sc.malicious_fraction)
    << ", \"mode\": " << json_text(std::string(attack_name(sc.attack)))
    << ", \"malicious_nodes\": " << r.malicious_nodes << ", \"dropped\": " << r.attacks_dropped
    << ", \"forged\": " << r.attacks_forged << "},\n";
  j << "  \"get_success_rate\": "
    << num(r.gets.done ? static_cast<double>(r.gets.ok) / static_cast<double>(r.gets.done) : 0) << ",\n";
  j << "  \"get_attempts_mean\": "
    << num(r.gets.done ? static_cast<double>(r.get_attempts) / static_cast<double>(r.gets.done) : 0) << ",\n";
  j << "  \"encoding\": \"SIP (every message serialized and parsed)\",\n";
  // Host figures: measured on the machine that ran it, so they differ from run to run.
  j << "  \"wall_s\": " << num(host.wall_s) << ",\n";
  j << "  \"events_per_wall_s\": " << num(host.wall_s > 0 ? static_cast<double>(r.events) / host.wall_s : 0) << ",\n";
  j << "  \"messages_per_wall_s\": " << num(host.wall_s > 0 ? static_cast<double>(r.messages) / host.wall_s : 0)
    << ",\n";
  j << "  \"huge_pages\": " << json_text(host.huge_pages) << ",\n";
  j << "  \"heap_bytes_at_end\": " << host.heap_bytes_at_end << ",\n";
  j << "  \"heap_bytes_per_live_node_at_end\": "
    << num(sim.live_nodes() ? static_cast<double>(host.heap_bytes_at_end) / static_cast<double>(sim.live_nodes()) : 0)
    << ",\n";
  j << "  \"peak_rss_bytes\": " << host.peak_rss_bytes << "\n";
  j << "}\n";
  return j.str();
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
  nodes << "index,id,alive,joined,join_s,alive_s,messages_sent,bytes_sent\n";
  // One line per node: written for runs of up to 100 000 nodes only.
  const bool per_node = sim.nodes_created() <= 100000;
  const auto reports = per_node ? sim.node_reports() : std::vector<NodeReport>{};
  if (per_node) {
    for (std::size_t i = 0; i < reports.size(); ++i) {
      const auto& n = reports[i];
      nodes << i << ',' << n.id_hex << ',' << n.alive << ',' << n.joined << ',' << num(n.join_s) << ','
            << num(n.alive_s) << ',' << n.messages_sent << ',' << n.bytes_sent << '\n';
    }
  }
  std::vector<std::string> ring;
  (void)sim.ring_errors(&ring);
  std::string ring_text;
  for (const auto& l : ring) ring_text += l + "\n";
  return write("ring_errors.txt", ring_text) && write("summary.json", summary_json(sim, host)) &&
         write("timeseries.csv", ts) && write("hops.csv", hops.str()) && write("latency_cdf.csv", cdf.str()) &&
         (!per_node || write("nodes.csv", nodes.str()));
}

}  // namespace p2psip::sim
