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

struct SipEchoOptions {
  std::string listen = "127.0.0.1:5060";
  bool udp = true;
  bool tcp = true;
  std::size_t answer_delay_ms = 0;
  std::size_t t1_ms = 500, t2_ms = 4000, t4_ms = 5000;
  std::size_t max_connections = 1024;
  std::size_t tcp_idle_timeout_s = 300;
  std::size_t max_dialogs = 10000;
  sip::Limits limits;
};
/// Runs the test element until SIGINT or SIGTERM; prints its counters on the way out.
int sip_echo(const SipEchoOptions& options);

/// Reads a whole file in binary mode; false with a message on failure.
bool read_file(const std::string& path, std::string& out, std::string& error);

}  // namespace p2psip::tools
