#include "tools/sip_commands.hpp"

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "node/sip/validate.hpp"

namespace p2psip::tools {

bool read_file(const std::string& path, std::string& out, std::string& error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = std::strerror(errno);
    return false;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  out = ss.str();
  return true;
}

int sip_check(const SipCheckOptions& options) {
  int rc = 0;
  for (const auto& file : options.files) {
    std::string bytes;
    std::string err;
    if (!read_file(file, bytes, err)) {
      std::printf("%s: error: cannot read: %s\n", file.c_str(), err.c_str());
      rc = 2;
      continue;
    }
    auto parsed = sip::parse_datagram(bytes, options.limits);
    std::optional<sip::Rejection> rejection;
    if (!parsed) {
      rejection = sip::Rejection{parsed.error().status, parsed.error().reason, sip::HeaderId::Other, {}};
    } else {
      rejection = sip::check_message(*parsed);
    }
    if (rejection) {
      if (rejection->status == 0) {
        std::printf("%s: invalid - %s\n", file.c_str(), rejection->reason.c_str());
      } else {
        std::printf("%s: invalid %d %s\n", file.c_str(), rejection->status, rejection->reason.c_str());
      }
      if (rc == 0) rc = 1;
      continue;
    }
    if (options.show_answer && parsed->is_request()) {
      if (auto answer = sip::check_request_capabilities(*parsed, sip::Capabilities{})) {
        std::printf("%s: valid (element answers %d %s)\n", file.c_str(), answer->status, answer->reason.c_str());
        continue;
      }
    }
    std::printf("%s: valid\n", file.c_str());
  }
  return rc;
}

int sip_bench(const SipBenchOptions& options) {
  std::vector<std::string> messages;
  for (const auto& file : options.files) {
    std::string bytes;
    std::string err;
    if (!read_file(file, bytes, err)) {
      std::fprintf(stderr, "sip-bench: cannot read %s: %s\n", file.c_str(), err.c_str());
      return 2;
    }
    if (!sip::parse_datagram(bytes)) {
      std::fprintf(stderr, "sip-bench: %s does not parse as a SIP message\n", file.c_str());
      return 2;
    }
    messages.push_back(std::move(bytes));
  }
  if (messages.empty()) {
    std::fprintf(stderr, "sip-bench: no files given\n");
    return 2;
  }
  using Clock = std::chrono::steady_clock;
  std::size_t sink = 0;
  std::size_t n = options.iterations;
  auto t0 = Clock::now();
  for (std::size_t i = 0; i < n; ++i) {
    auto m = sip::parse_datagram(messages[i % messages.size()]);
    sink += m->headers().size();
  }
  auto t1 = Clock::now();
  std::string out;
  for (std::size_t i = 0; i < n; ++i) {
    auto m = sip::parse_datagram(messages[i % messages.size()]);
    out.clear();
    m->serialize_to(out);
    sink += out.size();
  }
  auto t2 = Clock::now();
  double parse_s = std::chrono::duration<double>(t1 - t0).count();
  double both_s = std::chrono::duration<double>(t2 - t1).count();
  std::printf("messages: %zu files, %zu iterations (checksum %zu)\n", messages.size(), n, sink);
  std::printf("parse: %.0f msgs/s\n", static_cast<double>(n) / parse_s);
  std::printf("parse+serialize: %.0f msgs/s\n", static_cast<double>(n) / both_s);
  return 0;
}

}  // namespace p2psip::tools
