// ice_probe: one side of an ICE link between two lab hosts, set up by the node's own link logic
// (nat/ice_links.hpp) on the daemon's libnice agent (node/runtime/nice_ice.hpp). The Attach that
// the overlay would carry goes through files in a folder both hosts see (offer, answer), so that a
// NAT pair's disposition is measured without an overlay around it. The offerer sends "ping" over
// the link, the answerer answers "pong"; each prints one JSON line with what it found:
//
//   {"side":"offer","connected":true,"local":"srflx","remote":"prflx","relayed":false,"setup_ms":212,"exchange_ms":240}
//
// Exit status: 0 the link carried the exchange; 1 no link (the JSON says when the verdict came);
// 2 bad arguments. Bounded by --timeout (default 15 s). With --hold S the link is kept S seconds
// more after the exchange, idle but for the agents' keep-alives (bench/natlab_ice_keepalive.sh
// counts their bytes), and the JSON says whether it was still up at the end.
#include <uv.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "nat/ice_links.hpp"
#include "node/runtime/nice_ice.hpp"
#include "node/runtime/wakeup.hpp"

using namespace p2psip;
using namespace p2psip::nat;

namespace {

Instant mono_now() {
  return runtime::monotonic_now();
}

class LogEnv : public Environment {
 public:
  bool send(const Endpoint&, std::string_view) override { return false; }
  std::uint64_t random() override { return 0; }
  std::uint64_t secure_random() override { return 0; }
  void log(LogLevel, std::string_view text) override { std::cerr << "ice_probe: " << text << "\n"; }
};

std::optional<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool write_file(const std::string& path, const std::string& body) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return false;
    out << body;
  }
  return std::rename(tmp.c_str(), path.c_str()) == 0;  // whole or nothing to the reader
}

struct Probe : AttachTransport {
  Probe(uv_loop_t* loop, bool is_offerer, std::string folder, runtime::NiceConfig cfg, IceLinkConfig lcfg)
      : offerer(is_offerer),
        dir(std::move(folder)),
        self{Transport::Udp, *IpAddress::parse(is_offerer ? "192.0.2.1" : "192.0.2.2"), 1},
        peer{Transport::Udp, *IpAddress::parse(is_offerer ? "192.0.2.2" : "192.0.2.1"), 1},
        events(runtime::monotonic_now, [this](const Endpoint&, std::string_view bytes) { heard(bytes); }),
        nice(loop, std::move(cfg), events),
        links(nice, *this, env, self, lcfg) {
    events.set_links(&links);
  }

  // The Attach, through files: the offer, then the answer.
  bool send_attach(IceSessionId id, const Endpoint&, const IceDescription& offer, Instant) override {
    attach = id;
    return write_file(dir + "/offer", encode_ice(offer));
  }
  void answer_attach(std::uint64_t, const IceDescription& answer) override {
    write_file(dir + "/answer", encode_ice(answer));
  }
  void refuse_attach(std::uint64_t, int status, std::uint32_t) override {
    write_file(dir + "/answer", "refused " + std::to_string(status));
  }
  void link_up(const Endpoint&, Instant) override {}
  void link_down(const Endpoint&, Instant now) override {
    if (!down) down = now;
  }

  void heard(std::string_view bytes) {
    if (!offerer && bytes == "ping") {
      got_ping = true;
      links.send(peer, "pong", mono_now());
    }
    if (offerer && bytes == "pong" && !exchanged) exchanged = mono_now();
  }

  /// One turn of the poll: the other side's description, and the timers.
  void poll(Instant now) {
    if (offerer && attach != 0 && !answered) {
      if (auto body = read_file(dir + "/answer")) {
        answered = true;
        if (body->rfind("refused", 0) == 0) {
          links.attach_failed(attach, 503, 0, now);
        } else if (auto d = parse_ice(*body)) {
          links.answered(attach, d.value(), now);
        } else {
          std::cerr << "ice_probe: bad answer: " << d.error() << "\n";
          links.attach_failed(attach, 400, 0, now);
        }
      }
    }
    if (!offerer && !offered) {
      if (auto body = read_file(dir + "/offer")) {
        offered = true;
        if (auto d = parse_ice(*body)) {
          links.offered(peer, d.value(), 1, now);
        } else {
          std::cerr << "ice_probe: bad offer: " << d.error() << "\n";
        }
      }
    }
    // The offerer says "ping" until the pong comes (a lost datagram is sent again).
    if (offerer && links.is_up(peer) && !exchanged && now >= next_ping) {
      links.send(peer, "ping", now);
      next_ping = now + millis(200);
    }
    links.advance(now);
  }

  bool offerer;
  std::string dir;
  Endpoint self, peer;
  LogEnv env;
  runtime::IceLinksEvents events;
  runtime::NiceIce nice;
  IceLinks links;
  IceSessionId attach = 0;
  bool answered = false, offered = false, got_ping = false;
  std::optional<Instant> exchanged, down;
  Instant next_ping{};
};

struct Args {
  bool offerer = false;
  std::string dir;
  runtime::NiceConfig nice;
  double timeout_s = 15;
  double hold_s = 0;
};

[[noreturn]] void usage(const std::string& why) {
  std::cerr << "ice_probe: " << why << "\n"
            << "usage: ice_probe --side offer|answer --dir DIR [--bind IP] [--stun IP:PORT]\n"
               "                 [--turn IP:PORT --turn-user U --turn-password-file F [--turn-tcp]] [--timeout S] "
               "[--hold S]\n";
  std::exit(2);
}

Args parse(int argc, char** argv) {
  Args a;
  bool side = false;
  std::string turn_user, turn_pwfile;
  std::optional<Endpoint> turn;
  bool turn_tcp = false;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) usage(k + " needs a value");
      return argv[++i];
    };
    if (k == "--side") {
      const auto v = val();
      if (v != "offer" && v != "answer") usage("--side is offer or answer");
      a.offerer = v == "offer";
      side = true;
    } else if (k == "--dir") {
      a.dir = val();
    } else if (k == "--bind") {
      auto ip = IpAddress::parse(val());
      if (!ip) usage("--bind takes an IP address");
      a.nice.local_addresses.push_back(*ip);
    } else if (k == "--stun") {
      a.nice.stun = parse_host_port(val(), Transport::Udp);
      if (!a.nice.stun) usage("--stun takes IP:PORT");
    } else if (k == "--turn") {
      turn = parse_host_port(val(), Transport::Udp);
      if (!turn) usage("--turn takes IP:PORT");
    } else if (k == "--turn-user") {
      turn_user = val();
    } else if (k == "--turn-password-file") {
      turn_pwfile = val();
    } else if (k == "--turn-tcp") {
      turn_tcp = true;
    } else if (k == "--hold") {
      a.hold_s = std::atof(val().c_str());
      if (a.hold_s < 0 || a.hold_s > 7200) usage("--hold is 0-7200 seconds");
    } else if (k == "--timeout") {
      a.timeout_s = std::atof(val().c_str());
      if (a.timeout_s <= 0 || a.timeout_s > 120) usage("--timeout is 0-120 seconds");
    } else {
      usage("unknown option " + k);
    }
  }
  if (!side || a.dir.empty()) usage("--side and --dir are required");
  if (turn) {
    auto pw = read_file(turn_pwfile);
    if (turn_user.empty() || !pw) usage("--turn needs --turn-user and a readable --turn-password-file");
    while (!pw->empty() && (pw->back() == '\n' || pw->back() == '\r')) pw->pop_back();
    a.nice.turn = runtime::NiceConfig::Turn{*turn, turn_user, *pw, turn_tcp};
  }
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  Args args = parse(argc, argv);
  uv_loop_t loop;
  uv_loop_init(&loop);
  IceLinkConfig lcfg;
  lcfg.turn = args.nice.turn.has_value();
  // Held idle: only the agents' keep-alives cross the link, which the link logic must not close.
  lcfg.idle_timeout = std::max(lcfg.idle_timeout, seconds(static_cast<std::int64_t>(args.hold_s) + 60));
  const Instant start = mono_now();
  const Duration hold = std::chrono::duration_cast<Duration>(std::chrono::duration<double>(args.hold_s));
  const Instant end =
      start + std::chrono::duration_cast<Duration>(std::chrono::duration<double>(args.timeout_s)) + hold;
  int rc = 1;
  std::string json;
  {
    Probe p(&loop, args.offerer, args.dir, args.nice, lcfg);
    if (p.offerer) p.links.connect(p.peer, start);
    Instant answered_pong{};
    while (mono_now() < end) {
      uv_run(&loop, UV_RUN_NOWAIT);
      const Instant now = mono_now();
      p.poll(now);
      if (p.offerer && p.down) break;
      // A relayed link may still move to a direct pair whose hole punching needed a retransmission
      // (aggressive nomination): the disposition is the pair it settles on, given 2 s to do so.
      if (p.offerer && p.exchanged) {
        const auto st = p.links.status();
        const bool settled = st.empty() || !st[0].relayed || now - *p.exchanged > seconds(2);
        if (settled && now - *p.exchanged >= hold) break;
      }
      // The answerer stays until the offerer is done (its checks may still move the link).
      if (!p.offerer && p.got_ping && answered_pong == Instant{}) answered_pong = now;
      if (!p.offerer && answered_pong != Instant{} && now - answered_pong > millis(100) && read_file(p.dir + "/done"))
        break;
      if (!p.offerer && p.down) break;
      uv_sleep(5);
    }
    const auto ms = [&](Instant t) { return std::to_string(to_millis(t - start)); };
    const auto st = p.links.status();
    const bool connected = !st.empty() && st[0].state == LinkState::Up;
    const bool ok = p.offerer ? p.exchanged.has_value() : p.got_ping;
    json = std::string("{\"side\":\"") + (p.offerer ? "offer" : "answer") +
           "\",\"connected\":" + (connected ? "true" : "false") + ",\"exchanged\":" + (ok ? "true" : "false");
    if (connected) {
      json += ",\"local\":\"" + std::string(candidate_type_name(*st[0].local_type)) + "\",\"remote\":\"" +
              std::string(candidate_type_name(*st[0].remote_type)) +
              "\",\"relayed\":" + (st[0].relayed ? "true" : "false") +
              ",\"setup_ms\":" + std::to_string(to_millis(st[0].setup)) +
              ",\"pair_changes\":" + std::to_string(p.links.stats().pair_changes);
    }
    if (p.exchanged) json += ",\"exchange_ms\":" + ms(*p.exchanged);
    if (p.down) json += ",\"verdict_ms\":" + ms(*p.down);
    json += "}";
    rc = ok ? 0 : 1;
    if (p.offerer) write_file(p.dir + "/done", json);
    p.nice.stop();
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  std::cout << json << std::endl;
  return rc;
}
