// p2psip: one command line, git-style subcommands.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "tools/sip_commands.hpp"

namespace {
int run(int argc, char** argv) {
  CLI::App app{"p2psip: a peer-to-peer SIP overlay node (Chord over SIP)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "p2psip 0.1.0");

  p2psip::tools::SipCheckOptions check;
  auto* check_cmd = app.add_subcommand("sip-check", "Parse each file as one SIP datagram and say whether it is valid");
  check_cmd->add_option("files", check.files, "Files holding one SIP message each")->required();
  check_cmd->add_option("--max-message-bytes", check.limits.max_message_bytes, "Largest message accepted")
      ->capture_default_str();
  check_cmd->add_option("--max-headers", check.limits.max_headers, "Most header fields accepted")
      ->capture_default_str();
  check_cmd->add_option("--max-header-line", check.limits.max_header_line, "Longest header field accepted")
      ->capture_default_str();
  check_cmd->add_option("--max-body-bytes", check.limits.max_body_bytes, "Largest body accepted")
      ->capture_default_str();
  check_cmd->add_flag("--answer", check.show_answer,
                      "For valid requests, also print what the sip-echo element answers");

  p2psip::tools::SipBenchOptions bench;
  auto* bench_cmd =
      app.add_subcommand("sip-bench", "Parse and re-serialize SIP messages in a loop and print the rates");
  bench_cmd->add_option("files", bench.files, "Files holding one SIP message each")->required();
  bench_cmd->add_option("--iterations", bench.iterations, "Messages parsed per measurement")->capture_default_str();

  p2psip::tools::SipEchoOptions echo;
  auto* echo_cmd = app.add_subcommand(
      "sip-echo", "Run a SIP test element: OPTIONS 200, INVITE 180/200 (SDP mirrored), ACK, BYE, CANCEL");
  echo_cmd->add_option("--listen", echo.listen, "Address and port for UDP and TCP (port 0: any free port)")
      ->capture_default_str();
  bool no_udp = false;
  bool no_tcp = false;
  echo_cmd->add_flag("--no-udp", no_udp, "Do not listen on UDP");
  echo_cmd->add_flag("--no-tcp", no_tcp, "Do not listen on TCP");
  echo_cmd->add_option("--answer-delay-ms", echo.answer_delay_ms, "Time between 180 and 200")->capture_default_str();
  echo_cmd->add_option("--t1-ms", echo.t1_ms, "RFC 3261 T1")->capture_default_str();
  echo_cmd->add_option("--t2-ms", echo.t2_ms, "RFC 3261 T2")->capture_default_str();
  echo_cmd->add_option("--t4-ms", echo.t4_ms, "RFC 3261 T4")->capture_default_str();
  echo_cmd->add_option("--max-connections", echo.max_connections, "Most TCP connections at once")
      ->capture_default_str();
  echo_cmd->add_option("--tcp-idle-timeout", echo.tcp_idle_timeout_s, "Seconds before an idle connection is closed")
      ->capture_default_str();
  echo_cmd->add_option("--max-dialogs", echo.max_dialogs, "Most calls at once (then 503)")->capture_default_str();
  echo_cmd->add_option("--max-message-bytes", echo.limits.max_message_bytes, "Largest message accepted")
      ->capture_default_str();
  echo_cmd->add_option("--max-body-bytes", echo.limits.max_body_bytes, "Largest body accepted")->capture_default_str();

  CLI11_PARSE(app, argc, argv);
  echo.udp = !no_udp;
  echo.tcp = !no_tcp;
  if (echo_cmd->parsed()) return p2psip::tools::sip_echo(echo);
  if (check_cmd->parsed()) return p2psip::tools::sip_check(check);
  if (bench_cmd->parsed()) return p2psip::tools::sip_bench(bench);
  return 1;
}
}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "p2psip: error: %s\n", e.what());
    return 1;
  }
}
