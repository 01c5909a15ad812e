// p2psip sim: runs a scenario in the discrete-event simulator and writes summary, time series and plots.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace p2psip::tools {

struct SimOptions {
  std::string scenario_file;
  std::optional<std::size_t> nodes;
  std::optional<double> duration_s;
  std::optional<std::uint64_t> seed;
  /// Either replaces the scenario's lookup workload (both of its lookup rates) with its own.
  std::optional<double> lookups_per_s;
  std::optional<double> lookups_per_node_per_s;
  std::optional<double> join_rate;
  std::vector<std::string> set;      ///< "section.key=value" overrides, applied last
  std::vector<std::uint32_t> trace;  ///< nodes whose log lines go to stderr
  std::string out = "sim-out";
  bool quiet = false;
  bool plots = true;
  bool huge_pages = true;  ///< ask glibc to back the heap with transparent huge pages (see run_sim)
  char** argv = nullptr;   ///< the command line, to start again with (null: never)
};
int run_sim(const SimOptions& o);

}  // namespace p2psip::tools
