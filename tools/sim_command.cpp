// `p2psip sim`: the simulator's driver. It owns what the simulation itself must not touch: the wall
// clock (progress, wall_s), the process's memory (its figure, and huge pages) and the plotting
// program.
#include "tools/sim_command.hpp"

#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <system_error>

#include "sim/report.hpp"
#include "sim/simulator.hpp"

namespace p2psip::tools {

namespace {

/// The signal that asked the run to stop (SIGINT or SIGTERM), or 0.
volatile std::sig_atomic_t stop_signal = 0;

/// Stays installed until the process ends: `timeout` sends its signal to the simulator and then
/// to its process group, so a second one may follow the first at once, and it must not cut the
/// writing of the outputs short (found on a bounded run: no outputs, exit status 130). SIGKILL
/// still ends the process at once (`timeout -k`).
extern "C" void on_stop_signal(int signum) {
  if (stop_signal == 0) stop_signal = signum;
}

/// Set by SIGUSR1: print one status line (as dd does), for a long run with no terminal to show a
/// progress bar on (nohup, a batch job). Checked between slices, like the stop signals.
volatile std::sig_atomic_t status_asked = 0;
extern "C" void on_status_signal(int) {
  status_asked = 1;
}

std::uint64_t peak_rss_bytes() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<std::uint64_t>(ru.ru_maxrss) * 1024;  // Linux reports KiB
}

std::string clock_text(double s) {
  if (s < 0 || s > 1e7) return "--:--";
  auto t = static_cast<long>(s);
  char buf[32];
  if (t >= 3600) {
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%02ld:%02ld", t / 60, t % 60);
  }
  return buf;
}

/// The answer to SIGUSR1: where the run is, what it has sent and found so far, and its memory.
void print_status(const sim::Simulator& sim, const sim::Scenario& sc, double wall_s) {
  const auto& r = sim.results();
  const double frac = sim.now_s() / sc.duration_s;
  std::fprintf(stderr,
               "p2psip sim: status: %.1f of %.0f simulated s, %zu live (%zu joined), %.1f M messages (%.0f/s), "
               "%llu lookups ended (%.2f %% right), peak RSS %.2f GiB, %s wall, ETA %s at the pace so far\n",
               sim.now_s(), sc.duration_s, sim.live_nodes(), sim.joined_nodes(), static_cast<double>(r.messages) / 1e6,
               wall_s > 0 ? static_cast<double>(r.messages) / wall_s : 0.0,
               static_cast<unsigned long long>(r.lookups.done),
               r.lookups.done ? 100.0 * static_cast<double>(r.lookups.ok) / static_cast<double>(r.lookups.done) : 0.0,
               static_cast<double>(peak_rss_bytes()) / 1073741824.0, clock_text(wall_s).c_str(),
               clock_text(frac > 0 ? wall_s * (1 - frac) / frac : -1).c_str());
  std::fflush(stderr);
}

constexpr const char* kHugePagesTunable = "glibc.malloc.hugetlb=1";

/// What this process asked of the heap, and what the kernel offers: summary.json's huge_pages.
std::string huge_pages_state() {
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  const bool asked =
      tunables != nullptr && std::string_view(tunables).find(kHugePagesTunable) != std::string_view::npos;
  std::string mode = "unknown";
  std::ifstream in("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string line;
  if (std::getline(in, line)) {
    const auto open = line.find('['), close = line.find(']');
    if (open != std::string::npos && close != std::string::npos && close > open) {
      mode = line.substr(open + 1, close - open - 1);
    }
  }
  return std::string(asked ? "asked" : "not asked") + " (transparent_hugepage: " + mode + ")";
}

/// "chord.successors=16" as a TOML document: "[chord]\nsuccessors = 16\n".
std::optional<std::string> override_toml(const std::string& set) {
  auto eq = set.find('=');
  if (eq == std::string::npos || eq == 0) return std::nullopt;
  std::string key = set.substr(0, eq);
  std::string value = set.substr(eq + 1);
  auto dot = key.find('.');
  if (dot == std::string::npos) return key + " = " + value + "\n";
  return "[" + key.substr(0, dot) + "]\n" + key.substr(dot + 1) + " = " + value + "\n";
}

constexpr const char* kPlotHeader = R"GP(set terminal pngcairo size 800,500 font ",11"
set datafile separator ","
set key autotitle columnhead
set grid

)GP";

// Needs completed lookups (hops.csv and latency_cdf.csv have rows).
constexpr const char* kPlotLookups = R"GP(set output "hops.png"
set title "Lookup path length (" . label . ")"
set xlabel "overlay hops"
set ylabel "fraction of lookups"
set style fill solid 0.6
set boxwidth 0.8
stats "hops.csv" using 2 name "H" nooutput
stats "hops.csv" using 1 name "X" nooutput
set xrange [-0.5:X_max + 0.5]
set xtics 1
plot "hops.csv" using 1:($2/H_sum) with boxes notitle
set autoscale x
set xtics autofreq

set output "latency_cdf.png"
set title "Lookup latency CDF (" . label . ")"
set xlabel "latency (ms)"
set ylabel "fraction of lookups"
set yrange [0:1]
set logscale x
plot "latency_cdf.csv" using 1:2 with lines lw 2 notitle
unset logscale x

)GP";

constexpr const char* kPlotTimeline = R"GP(set autoscale
stats "timeseries.csv" using 2 name "L" nooutput
set output "success_rate.png"
set title "Lookups and live nodes over time (" . label . ")"
set xlabel "simulated time (s)"
set ylabel "lookup success rate"
set yrange [0:1.05]
set y2label "live nodes"
set y2tics
set ytics nomirror
set y2range [0:L_max * 1.15 + 1]
set key bottom right
plot "timeseries.csv" using 1:6 with linespoints lw 2 title "success rate", \
     "" using 1:2 axes x1y2 with lines dt 2 title "live nodes"
)GP";

// Without lookups there is no success rate to draw: the live population alone.
constexpr const char* kPlotPopulation = R"GP(set autoscale
set output "success_rate.png"
set title "Live nodes over time (no lookups ran) (" . label . ")"
set xlabel "simulated time (s)"
set ylabel "live nodes"
set yrange [0:*]
plot "timeseries.csv" using 1:2 with lines lw 2 notitle
)GP";

bool make_plots(const std::string& dir, const std::string& label, bool lookups) {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) {
    std::fprintf(stderr, "p2psip sim: gnuplot not found, plots skipped (apt-get install gnuplot-nox)\n");
    return false;
  }
  {
    std::ofstream gp(dir + "/plots.gp");
    gp << "label = \"" << label << "\"\n" << kPlotHeader;
    if (lookups) {
      gp << kPlotLookups << kPlotTimeline;
    } else {
      gp << kPlotPopulation;
    }
  }
  std::string cmd = "cd '" + dir + "' && gnuplot plots.gp 2> plots.log";
  if (std::system(cmd.c_str()) != 0) {
    std::fprintf(stderr, "p2psip sim: gnuplot failed, see %s/plots.log\n", dir.c_str());
    return false;
  }
  return true;
}

}  // namespace

int run_sim(const SimOptions& o) {
  // SIGUSR1 would end the process until its handler is installed (before the run's loop); ignored
  // from here on, and across the new start below (exec keeps an ignored signal ignored).
  std::signal(SIGUSR1, SIG_IGN);
  // At scale nearly every event touches a node and a message that no recent event touched: with
  // 4 KiB pages each such touch misses the TLB as well as the caches (100 000 nodes: 14 % of the
  // wall time, docs/PERFORMANCE.md). glibc backs its heap with transparent huge pages when a
  // tunable asks, and reads tunables only as a process starts, so the simulator starts itself
  // again with it, once: a GLIBC_TUNABLES already set, by the caller or by that first start, is
  // left as it is. Nothing in the run depends on it but its speed. First of all, so that the
  // scenario is read once, by the process that runs it.
  if (o.huge_pages && o.argv != nullptr && std::getenv("GLIBC_TUNABLES") == nullptr) {
    setenv("GLIBC_TUNABLES", kHugePagesTunable, 1);
    // By the executable's own path, so that the process keeps its name (ps, top); by the link if
    // that path is gone (the binary rebuilt meanwhile).
    std::array<char, 4096> self{};
    const ssize_t n = readlink("/proc/self/exe", self.data(), self.size() - 1);
    if (n > 0) execv(self.data(), o.argv);
    execv("/proc/self/exe", o.argv);
    unsetenv("GLIBC_TUNABLES");  // could not start again: run as we are
  }
  sim::Scenario sc;
  std::string error;
  if (!o.scenario_file.empty() && !sim::load_scenario(o.scenario_file, sc, error)) {
    std::fprintf(stderr, "p2psip sim: %s\n", error.c_str());
    return 2;
  }
  if (o.nodes) sc.nodes = *o.nodes;
  if (o.duration_s) sc.duration_s = *o.duration_s;
  if (o.seed) sc.seed = *o.seed;
  if (o.lookups_per_s || o.lookups_per_node_per_s) {
    sc.lookups_per_s = o.lookups_per_s.value_or(0);
    sc.lookups_per_node_per_s = o.lookups_per_node_per_s.value_or(0);
  }
  if (o.join_rate) sc.join_rate = *o.join_rate;
  for (const auto& s : o.set) {
    auto text = override_toml(s);
    if (!text) {
      std::fprintf(stderr, "p2psip sim: --set %s: write SECTION.KEY=VALUE or KEY=VALUE\n", s.c_str());
      return 2;
    }
    if (!sim::apply_toml(*text, "--set " + s, ".", sc, error)) {
      std::fprintf(stderr, "p2psip sim: %s\n", error.c_str());
      return 2;
    }
  }
  if (sc.nodes == 0 || sc.duration_s <= 0 || sc.join_rate <= 0) {
    std::fprintf(stderr, "p2psip sim: --nodes, --duration and --join-rate must be positive\n");
    return 2;
  }
  if (!sim::validate(sc, error)) {
    std::fprintf(stderr, "p2psip sim: %s\n", error.c_str());
    return 2;
  }

  for (const auto& note : sim::notes(sc)) std::fprintf(stderr, "p2psip sim: note: %s\n", note.c_str());
  const bool progress = !o.quiet && isatty(STDERR_FILENO) != 0;
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  auto wall = [&] { return std::chrono::duration<double>(clock::now() - t0).count(); };
  // timeseries.csv grows row by row while the run goes on, so that a long run can be followed
  // (tail -f) and what it measured survives a SIGKILL; the end rewrites it whole, last row included.
  // An output directory that cannot be made is found out now, not after hours of simulation.
  std::error_code dir_error;
  std::filesystem::create_directories(o.out, dir_error);
  std::ofstream live_series(o.out + "/timeseries.csv", std::ios::binary | std::ios::trunc);
  if (dir_error || !(live_series << sim::timeseries_header() << std::flush)) {
    if (dir_error) {
      std::fprintf(stderr, "p2psip sim: cannot create the output directory %s: %s\n", o.out.c_str(),
                   dir_error.message().c_str());
    } else {
      std::fprintf(stderr, "p2psip sim: cannot write %s/timeseries.csv: %s\n", o.out.c_str(), std::strerror(errno));
    }
    return 2;
  }
  std::size_t rows_written = 0;
  sim::Simulator simulator(sc);
  if (!o.trace.empty()) {
    simulator.trace(o.trace, [](double t, std::uint32_t node, LogLevel, std::string_view text) {
      std::fprintf(stderr, "%10.3f node %u: %.*s\n", t, node, static_cast<int>(text.size()), text.data());
    });
  }
  double step = 0.1;  // simulated seconds per slice, adapted to about 0.2 s of wall time
  double last_print = -1;
  // SIGINT or SIGTERM ends the run where it is, with every output written for the simulated time
  // reached (summary.json says stopped_early and simulated_s), so that a long run can be cut short
  // (Ctrl-C, `timeout -s INT`) without losing what it measured. Checked between slices.
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
  std::signal(SIGUSR1, on_status_signal);
  while (true) {
    if (stop_signal != 0) {
      simulator.stop();
      break;
    }
    if (status_asked != 0) {
      status_asked = 0;
      print_status(simulator, sc, wall());
    }
    const double before = wall();
    const bool more = simulator.run_until(simulator.now_s() + step);
    const auto& series = simulator.results().series;
    if (more && rows_written < series.size()) {
      for (; rows_written < series.size(); ++rows_written) live_series << sim::timeseries_row(series[rows_written]);
      live_series.flush();
    }
    if (!more) break;
    const double took = wall() - before;
    step = took < 0.1 ? step * 2 : took > 0.4 ? std::max(0.001, step / 2) : step;
    if (progress && wall() - last_print >= 0.25) {
      last_print = wall();
      const double frac = simulator.now_s() / sc.duration_s;
      const int width = 30;
      auto filled = static_cast<int>(frac * width);
      std::string bar(static_cast<std::size_t>(filled), '#');
      bar.resize(width, '.');
      const double eta = frac > 0 ? last_print * (1 - frac) / frac : -1;
      std::fprintf(stderr, "\r[%s] %7.1f/%.0f s sim  %zu live  %.2fM events/s  ETA %s   ", bar.c_str(),
                   simulator.now_s(), sc.duration_s, simulator.live_nodes(),
                   static_cast<double>(simulator.results().events) / last_print / 1e6, clock_text(eta).c_str());
      std::fflush(stderr);
    }
  }
  if (progress) std::fprintf(stderr, "\n");
  if (simulator.stopped_early()) {
    std::fprintf(stderr, "p2psip sim: %s: stopped at %.1f of %.0f simulated seconds; writing what it measured\n",
                 stop_signal == SIGINT ? "SIGINT" : "SIGTERM", simulator.now_s(), sc.duration_s);
  }
  live_series.close();
  sim::HostFigures host{wall(), peak_rss_bytes(), static_cast<std::uint64_t>(mallinfo2().uordblks), huge_pages_state()};
  if (!sim::write_outputs(simulator, host, o.out, error)) {
    std::fprintf(stderr, "p2psip sim: %s\n", error.c_str());
    return 1;
  }
  if (o.plots) {
    make_plots(o.out, sc.name + ", " + std::to_string(sc.nodes) + " nodes", !simulator.results().latency_ms.empty());
  }
  const auto s = sim::summarize(simulator);
  const auto& r = simulator.results();
  std::printf(
      "%s: %zu nodes, %.1f s simulated in %.1f s wall\n"
      "lookups %llu, success %.4f, hops mean %.2f p50 %u p99 %u, latency p50 %.1f ms p99 %.1f ms\n"
      "messages %llu (%.1f B/s per node), events %llu, peak RSS %.1f MiB\n"
      "written to %s/ (summary.json, timeseries.csv, hops.csv, latency_cdf.csv%s)\n",
      sc.name.c_str(), sc.nodes, simulator.now_s(), host.wall_s, static_cast<unsigned long long>(r.lookups.issued),
      s.lookup_success_rate, s.hops_mean, s.hops_p50, s.hops_p99, s.latency_ms_p50, s.latency_ms_p99,
      static_cast<unsigned long long>(r.messages), s.bytes_per_node_per_s, static_cast<unsigned long long>(r.events),
      static_cast<double>(host.peak_rss_bytes) / 1048576.0, o.out.c_str(), o.plots ? ", plots" : "");
  // Stopped by a signal: the outputs are written, and the status says how the run ended (128 + signal).
  return simulator.stopped_early() ? 128 + static_cast<int>(stop_signal) : 0;
}

}  // namespace p2psip::tools
