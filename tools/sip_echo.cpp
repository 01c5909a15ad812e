// p2psip sip-echo: the test element on real sockets.
#include <uv.h>

#include <cstdio>

#include "node/echo/echo_element.hpp"
#include "node/runtime/sip_runtime.hpp"
#include "tools/sip_commands.hpp"

namespace p2psip::tools {
namespace {

struct SignalContext {
  runtime::SipRuntime* runtime;
  uv_signal_t sigint;
  uv_signal_t sigterm;
};

void on_signal(uv_signal_t* s, int signum) {
  auto* ctx = static_cast<SignalContext*>(s->data);
  std::fprintf(stderr, "sip-echo: %s received, stopping\n", signum == SIGINT ? "SIGINT" : "SIGTERM");
  ctx->runtime->stop();
  uv_close(reinterpret_cast<uv_handle_t*>(&ctx->sigint), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&ctx->sigterm), nullptr);
}

/// The runtime's settings from the options. Returned as a value that initializes SipRuntime's
/// parameter in place: copying a config whose TLS part is unset made GCC 12 warn (a false
/// -Wmaybe-uninitialized on the disengaged optional's strings).
runtime::RuntimeConfig runtime_config(const SipEchoOptions& o, const Endpoint& listen) {
  runtime::RuntimeConfig rc;
  rc.listen_ip = listen.ip;
  rc.port = listen.port;
  rc.udp = o.udp;
  rc.tcp = o.tcp;
  rc.limits = o.limits;
  rc.max_connections = o.max_connections;
  rc.tcp_idle_timeout = seconds(static_cast<std::int64_t>(o.tcp_idle_timeout_s));
  return rc;
}

}  // namespace

int sip_echo(const SipEchoOptions& o) {
  auto listen = parse_host_port(o.listen, Transport::Udp);
  if (!listen) {
    std::fprintf(stderr, "sip-echo: --listen %s is not ADDR:PORT (an IP literal and a port)\n", o.listen.c_str());
    return 2;
  }
  if (!o.udp && !o.tcp) {
    std::fprintf(stderr, "sip-echo: --no-udp and --no-tcp leave nothing to listen on\n");
    return 2;
  }
  uv_loop_t loop;
  uv_loop_init(&loop);
  runtime::SipRuntime rt(&loop, runtime_config(o, *listen));

  echo::EchoConfig ec;
  ec.contact_host = listen->ip.v6 ? "[" + listen->ip.to_string() + "]" : listen->ip.to_string();
  ec.answer_delay = millis(static_cast<std::int64_t>(o.answer_delay_ms));
  ec.contact_port = listen->port;
  ec.max_dialogs = o.max_dialogs;
  sip::TimerConfig timers;
  timers.t1 = millis(static_cast<std::int64_t>(o.t1_ms));
  timers.t2 = millis(static_cast<std::int64_t>(o.t2_ms));
  timers.t4 = millis(static_cast<std::int64_t>(o.t4_ms));
  if (timers.t1.count() <= 0 || timers.t2 < timers.t1) {
    std::fprintf(stderr, "sip-echo: timers need 0 < T1 <= T2\n");
    return 2;
  }
  echo::EchoElement element(rt, ec, timers, o.limits);
  runtime::CoreSink<echo::EchoElement> sink(element);
  std::string error;
  if (!rt.start(sink, error)) {
    std::fprintf(stderr, "sip-echo: %s\n", error.c_str());
    rt.stop();
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return 1;
  }
  std::uint16_t port = rt.udp_port() != 0 ? rt.udp_port() : rt.tcp_port();
  element.set_contact_port(port);  // the bound port, when an ephemeral one was asked for
  std::printf("sip-echo listening on %s%s%s port %u\n", o.udp ? "udp" : "", o.udp && o.tcp ? "+tcp " : " ",
              ec.contact_host.c_str(), port);
  std::fflush(stdout);

  SignalContext sig{&rt, {}, {}};
  uv_signal_init(&loop, &sig.sigint);
  uv_signal_init(&loop, &sig.sigterm);
  sig.sigint.data = sig.sigterm.data = &sig;
  uv_signal_start(&sig.sigint, on_signal, SIGINT);
  uv_signal_start(&sig.sigterm, on_signal, SIGTERM);

  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);

  const auto& s = element.stats();
  const auto& t = element.transactions().stats();
  const auto& r = rt.stats();
  std::printf(
      "sip-echo stats: options=%llu invites=%llu answered=%llu acks=%llu byes=%llu cancels=%llu rejected=%llu "
      "requests_in=%llu responses_in=%llu malformed_answered=%llu malformed_dropped=%llu retransmissions_sent=%llu "
      "datagrams_in=%llu connections=%llu framing_errors=%llu\n",
      static_cast<unsigned long long>(s.options), static_cast<unsigned long long>(s.invites),
      static_cast<unsigned long long>(s.answered), static_cast<unsigned long long>(s.acks),
      static_cast<unsigned long long>(s.byes), static_cast<unsigned long long>(s.cancels),
      static_cast<unsigned long long>(s.rejected), static_cast<unsigned long long>(t.requests_in),
      static_cast<unsigned long long>(t.responses_in), static_cast<unsigned long long>(t.malformed_answered),
      static_cast<unsigned long long>(t.malformed_dropped), static_cast<unsigned long long>(t.retransmissions_sent),
      static_cast<unsigned long long>(r.datagrams_in), static_cast<unsigned long long>(r.connections_accepted),
      static_cast<unsigned long long>(r.framing_errors));
  return 0;
}

}  // namespace p2psip::tools
