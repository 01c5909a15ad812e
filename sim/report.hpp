// Writes a finished simulation's results: summary.json, timeseries.csv, hops.csv, latency_cdf.csv
// and nodes.csv. Everything but the host figures (wall time, memory) is a function of the scenario
// and seed alone.
#pragma once

#include <cstdint>
#include <string>

#include "sim/simulator.hpp"

namespace p2psip::sim {

/// Measured by the caller, outside the simulation.
struct HostFigures {
  double wall_s = 0;
  std::uint64_t peak_rss_bytes = 0;
  std::uint64_t heap_bytes_at_end = 0;  ///< allocated and in use when the run ended (0: unknown)
  std::string huge_pages = "unknown";   ///< whether the heap was asked for transparent huge pages
};

/// Figures derived from the results, as summary.json has them.
struct Summary {
  double lookup_success_rate = 0, hops_mean = 0, latency_ms_p50 = 0, latency_ms_p99 = 0;
  std::uint32_t hops_p50 = 0, hops_p99 = 0;
  double bytes_per_node_per_s = 0, messages_per_node_per_s = 0;
  double join_s_p50 = 0, join_s_p99 = 0;  ///< from a node's start until it joined
};
Summary summarize(const Simulator& sim);

/// The summary as JSON text (one key per line; the host figures last).
std::string summary_json(const Simulator& sim, const HostFigures& host);
/// timeseries.csv's first line, and one of its rows (each ends with a newline).
std::string timeseries_header();
std::string timeseries_row(const IntervalRow& row);
/// Writes the files into `dir` (created if missing). False with `error` on an I/O failure.
bool write_outputs(const Simulator& sim, const HostFigures& host, const std::string& dir, std::string& error);

}  // namespace p2psip::sim
