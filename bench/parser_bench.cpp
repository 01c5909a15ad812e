// Parse and parse+serialize throughput of p2psip's SIP parser and libosip2's, on the same messages,
// in one run. Prints Google Benchmark's table, then the ratios.
//
//   build/bin/parser_bench [--benchmark_min_time=2] [FILE.sip ...]
//
// Without files it reads ../shared/testdata/sip/*.sip.
#include <benchmark/benchmark.h>
#include <osipparser2/osip_message.h>
#include <osipparser2/osip_parser.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "node/sip/message.hpp"
#include "node/sip/validate.hpp"

namespace {

std::vector<std::string> g_messages;

void p2psip_parse(benchmark::State& state) {
  std::size_t i = 0;
  for (auto _ : state) {
    auto m = p2psip::sip::parse_datagram(g_messages[i++ % g_messages.size()]);
    benchmark::DoNotOptimize(m);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

void p2psip_parse_serialize(benchmark::State& state) {
  std::size_t i = 0;
  std::string out;
  for (auto _ : state) {
    auto m = p2psip::sip::parse_datagram(g_messages[i++ % g_messages.size()]);
    out.clear();
    m->serialize_to(out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

// Parsing plus RFC 3261 validation, which parses every header the stack interprets (Via, From, To,
// Contact, CSeq, ...) much as libosip2's parse does: the like-for-like comparison.
void p2psip_parse_validate_serialize(benchmark::State& state) {
  std::size_t i = 0;
  std::string out;
  for (auto _ : state) {
    auto m = p2psip::sip::parse_datagram(g_messages[i++ % g_messages.size()]);
    auto rejection = p2psip::sip::check_message(*m);
    benchmark::DoNotOptimize(rejection);
    out.clear();
    m->serialize_to(out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

void osip_parse(benchmark::State& state) {
  std::size_t i = 0;
  for (auto _ : state) {
    const std::string& text = g_messages[i++ % g_messages.size()];
    osip_message_t* m = nullptr;
    osip_message_init(&m);
    int rc = osip_message_parse(m, text.data(), text.size());
    benchmark::DoNotOptimize(rc);
    osip_message_free(m);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

void osip_parse_serialize(benchmark::State& state) {
  std::size_t i = 0;
  for (auto _ : state) {
    const std::string& text = g_messages[i++ % g_messages.size()];
    osip_message_t* m = nullptr;
    osip_message_init(&m);
    osip_message_parse(m, text.data(), text.size());
    char* out = nullptr;
    std::size_t len = 0;
    osip_message_to_str(m, &out, &len);
    benchmark::DoNotOptimize(out);
    osip_free(out);
    osip_message_free(m);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

/// Keeps each run's items/s so that the ratios can be printed after the table.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const auto& r : runs) {
      auto it = r.counters.find("items_per_second");
      if (it != r.counters.end()) rates[r.benchmark_name()] = it->second.value;
    }
  }
  std::map<std::string, double> rates;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) files.emplace_back(argv[i]);
  if (files.empty()) {
    std::string dir = std::string(P2PSIP_SHARED_DIR) + "/testdata/sip";
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
      if (e.path().extension() == ".sip") files.push_back(e.path().string());
    }
    std::sort(files.begin(), files.end());
  }
  parser_init();
  for (const auto& f : files) {
    std::string text = read_file(f);
    if (!p2psip::sip::parse_datagram(text)) {
      std::fprintf(stderr, "parser_bench: %s does not parse\n", f.c_str());
      return 2;
    }
    osip_message_t* m = nullptr;
    osip_message_init(&m);
    bool osip_ok = osip_message_parse(m, text.data(), text.size()) == 0;
    osip_message_free(m);
    if (!osip_ok) {
      std::fprintf(stderr, "parser_bench: libosip2 cannot parse %s\n", f.c_str());
      return 2;
    }
    std::printf("message: %s (%zu bytes)\n", f.c_str(), text.size());
    g_messages.push_back(std::move(text));
  }
  if (g_messages.empty()) {
    std::fprintf(stderr, "parser_bench: no messages\n");
    return 2;
  }
  benchmark::RegisterBenchmark("p2psip/parse", p2psip_parse);
  benchmark::RegisterBenchmark("libosip2/parse", osip_parse);
  benchmark::RegisterBenchmark("p2psip/parse+serialize", p2psip_parse_serialize);
  benchmark::RegisterBenchmark("libosip2/parse+serialize", osip_parse_serialize);
  benchmark::RegisterBenchmark("p2psip/parse+validate+serialize", p2psip_parse_validate_serialize);
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  auto& r = reporter.rates;
  if (r.count("p2psip/parse") && r.count("libosip2/parse")) {
    std::printf("parse: p2psip %.0f msgs/s, libosip2 %.0f msgs/s, ratio %.2fx\n", r["p2psip/parse"],
                r["libosip2/parse"], r["p2psip/parse"] / r["libosip2/parse"]);
  }
  if (r.count("p2psip/parse+serialize") && r.count("libosip2/parse+serialize")) {
    std::printf("parse+serialize: p2psip %.0f msgs/s, libosip2 %.0f msgs/s, ratio %.2fx\n", r["p2psip/parse+serialize"],
                r["libosip2/parse+serialize"], r["p2psip/parse+serialize"] / r["libosip2/parse+serialize"]);
  }
  if (r.count("p2psip/parse+validate+serialize") && r.count("libosip2/parse+serialize")) {
    std::printf("parse+validate+serialize: p2psip %.0f msgs/s, against libosip2's parse+serialize: ratio %.2fx\n",
                r["p2psip/parse+validate+serialize"],
                r["p2psip/parse+validate+serialize"] / r["libosip2/parse+serialize"]);
  }
  benchmark::Shutdown();
  return 0;
}
