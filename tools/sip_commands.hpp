// The SIP foundation's subcommands: sip-check, sip-bench, sip-echo.
#pragma once

#include <string>
#include <vector>

#include "node/sip/message.hpp"

namespace p2psip::tools {

struct SipCheckOptions {
  std::vector<std::string> files;
  sip::Limits limits;
  bool show_answer = false;  ///< also print what the sip-echo element answers a valid request
};
/// Prints one line per file; returns 0 only when every file is valid, 2 when a file cannot be read.
int sip_check(const SipCheckOptions& options);

struct SipBenchOptions {
  std::vector<std::string> files;
  std::size_t iterations = 200000;
};
int sip_bench(const SipBenchOptions& options);

/// Reads a whole file in binary mode; false with a message on failure.
bool read_file(const std::string& path, std::string& out, std::string& error);

}  // namespace p2psip::tools
