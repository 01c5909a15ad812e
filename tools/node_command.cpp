#include "tools/node_command.hpp"

#include <uv.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include "node/peer/peer.hpp"
#include "node/proxy/registrar.hpp"
#include "node/runtime/control_server.hpp"
#include "node/runtime/nice_ice.hpp"
#include "node/runtime/sip_runtime.hpp"
#include "security/crypto.hpp"
#include "tools/node_identity.hpp"
#include "tools/node_status.hpp"

namespace p2psip::tools {
namespace {

std::optional<LogLevel> parse_level(const std::string& s) {
  if (s == "debug") return LogLevel::Debug;
  if (s == "info") return LogLevel::Info;
  if (s == "warn") return LogLevel::Warn;
  if (s == "error") return LogLevel::Error;
  return std::nullopt;
}

/// What `p2psip node` runs, made from its flags before anything is opened.
struct NodePlan {
  NodeIdentity identity;
  peer::PeerConfig peer;
  runtime::RuntimeConfig overlay_runtime;
  std::optional<runtime::RuntimeConfig> phone_runtime;
  Endpoint control;
  std::vector<Endpoint> bootstrap;
  LogLevel level = LogLevel::Info;
  bool ua_digest = false;
  std::optional<runtime::NiceConfig> ice;  ///< --ice on: the agent of the peer's links
};

/// The first line of `path`, trailing blanks removed; false with `error` naming `flag`.
bool read_secret_line(const std::string& flag, const std::string& path, std::string& out, std::string& error) {
  std::ifstream f(path);
  if (!f || !std::getline(f, out)) {
    error = flag + " " + path + " cannot be read";
    return false;
  }
  while (!out.empty() && (out.back() == '\r' || out.back() == ' ')) out.pop_back();
  if (out.empty()) {
    error = flag + " " + path + ": its first line is empty";
    return false;
  }
  return true;
}

/// --turn, --turn-user and --turn-password-file (or --turn-secret-file) into the agent's TURN
/// settings, and --turn-service into the peer's; false with `error` naming the flag and the problem
/// (never the password or the secret).
bool plan_turn(const NodeOptions& o, runtime::NiceConfig& ice, peer::PeerConfig& pc, std::string& error) {
  peer::TurnServiceConfig ts;
  ts.density = o.turn_density;
  if (o.turn.empty()) {
    if (!o.turn_user.empty() || !o.turn_password_file.empty() || !o.turn_secret_file.empty()) {
      error = "--turn-user, --turn-password-file and --turn-secret-file need --turn";
      return false;
    }
    if (o.turn_service == "on") {
      error = "--turn-service on needs --turn (the server to announce) and --turn-secret-file";
      return false;
    }
    // No TURN server of its own: it finds one the overlay announces (RFC 6940 §9).
    ts.discover = true;
    pc.turn_service = ts;
    return true;
  }
  std::string_view t = o.turn;
  constexpr std::string_view kScheme = "turn:", kTcp = "?transport=tcp", kUdp = "?transport=udp";
  if (!t.starts_with(kScheme)) {
    error = "--turn " + o.turn + " is not turn:HOST:PORT (RFC 7065's form, HOST an IP address)";
    return false;
  }
  t.remove_prefix(kScheme.size());
  runtime::NiceConfig::Turn turn;
  if (t.ends_with(kTcp)) {
    turn.tcp = true;
    t.remove_suffix(kTcp.size());
  } else if (t.ends_with(kUdp)) {
    t.remove_suffix(kUdp.size());
  }
  auto server = parse_host_port(t, Transport::Udp);
  if (!server || server->port == 0) {
    error = "--turn " + o.turn + " is not turn:HOST:PORT (RFC 7065's form, HOST an IP address)";
    return false;
  }
  turn.server = *server;
  if (!o.turn_secret_file.empty()) {
    if (!o.turn_user.empty() || !o.turn_password_file.empty()) {
      error = "--turn-secret-file makes the credentials: give it, or --turn-user and --turn-password-file, not both";
      return false;
    }
    if (!read_secret_line("--turn-secret-file", o.turn_secret_file, ts.secret, error)) return false;
    // Its own agent takes credentials made from the secret, renewed as they age (TurnService).
    ts.announce = turn;
    ts.use_announced = true;
    ts.publish = o.turn_service == "on";
    pc.turn_service = ts;
    return true;
  }
  if (o.turn_service == "on") {
    error = "--turn-service on needs --turn-secret-file (credentials are made for each node that asks)";
    return false;
  }
  if (o.turn_user.empty() || o.turn_password_file.empty()) {
    error = "--turn needs --turn-user and --turn-password-file (long-term credentials), or --turn-secret-file";
    return false;
  }
  turn.user = o.turn_user;
  if (!read_secret_line("--turn-password-file", o.turn_password_file, turn.password, error)) return false;
  ice.turn = std::move(turn);
  return true;
}

/// Flags to configuration: the peer's, the runtimes', and the daemon's own. 0, or 2 with the problem
/// printed (naming the flag).
int plan_node(const NodeOptions& o, NodePlan& plan) {
  auto listen = parse_host_port(o.listen, Transport::Udp);
  if (!listen) {
    std::fprintf(stderr, "p2psip node: --listen %s is not ADDR:PORT (an IP literal and a port)\n", o.listen.c_str());
    return 2;
  }
  if (listen->port == 0 || listen->ip == IpAddress{}) {
    std::fprintf(stderr, "p2psip node: --listen needs a concrete address and port (peers dial it)\n");
    return 2;
  }
  auto control = parse_host_port(o.control, Transport::Tcp);
  if (!control || !control->ip.is_loopback()) {
    std::fprintf(stderr, "p2psip node: --control %s must be a loopback ADDR:PORT (it has no authentication)\n",
                 o.control.c_str());
    return 2;
  }
  std::vector<Endpoint> bootstrap;
  for (const auto& b : o.bootstrap) {
    auto e = parse_host_port(b, Transport::Udp);
    if (!e) {
      std::fprintf(stderr, "p2psip node: --bootstrap %s is not ADDR:PORT\n", b.c_str());
      return 2;
    }
    bootstrap.push_back(*e);
  }
  auto level = parse_level(o.log_level);
  if (!level) {
    std::fprintf(stderr, "p2psip node: --log-level must be debug, info, warn or error\n");
    return 2;
  }
  if (!(o.stabilize_interval_s >= 0.05 && o.stabilize_interval_s <= 3600)) {
    std::fprintf(stderr, "p2psip node: --stabilize-interval must be between 0.05 and 3600 seconds\n");
    return 2;
  }
  if (o.successors < 1 || o.successors > 32 || o.replicas > o.successors || o.t1_ms < 1) {
    std::fprintf(stderr, "p2psip node: need 1 <= --successors <= 32, --replicas <= --successors, --t1-ms >= 1\n");
    return 2;
  }

  std::optional<Endpoint> ua_listen;
  if (o.ua_listen != "off") {
    ua_listen = parse_host_port(o.ua_listen, Transport::Udp);
    if (!ua_listen || ua_listen->port == 0) {
      std::fprintf(stderr, "p2psip node: --ua-listen %s is not ADDR:PORT (an IP literal and a port) or off\n",
                   o.ua_listen.c_str());
      return 2;
    }
    if (ua_listen->ip == listen->ip && ua_listen->port == listen->port) {
      std::fprintf(stderr, "p2psip node: --ua-listen and --listen must differ\n");
      return 2;
    }
  }
  if (o.min_expires < 1 || o.max_expires < o.min_expires) {
    std::fprintf(stderr, "p2psip node: need 1 <= --min-expires <= --max-expires\n");
    return 2;
  }
  if (!(o.peer_rate >= 0) || !(o.peer_burst >= 1) || o.max_value_bytes < 1 || o.max_records_per_owner < 1) {
    std::fprintf(stderr,
                 "p2psip node: need --peer-rate >= 0 (0: no limit), --peer-burst >= 1, --max-value-bytes >= 1, "
                 "--max-records-per-owner >= 1\n");
    return 2;
  }
  if (o.entry_lifetime_s < 10 || o.max_bindings < 1 || o.max_users < 1 || o.max_calls < 1) {
    std::fprintf(stderr,
                 "p2psip node: need --entry-lifetime >= 10, --max-bindings >= 1, --max-users >= 1, --max-calls >= 1\n");
    return 2;
  }

  NodePlan& p = plan;
  p.control = *control;
  p.bootstrap = bootstrap;
  p.level = *level;
  std::string error;
  if (!load_node_identity(o, p.identity, error)) {
    std::fprintf(stderr, "p2psip node: %s\n", error.c_str());
    return 2;
  }
  const std::string& overlay = p.identity.overlay;
  // Phones on this host may register without a password (the UA side is reachable from here only);
  // anywhere else they log in with digest authentication, as the node's enrolled users.
  p.ua_digest = ua_listen && (o.ua_digest || !ua_listen->ip.is_loopback());
  const auto digest_algorithms = proxy::algorithms_from_list(o.ua_digest_algorithms);
  if (!digest_algorithms) {
    std::fprintf(stderr, "p2psip node: --ua-digest-algorithms %s is not a list of SHA-256 and MD5 (e.g. SHA-256,MD5)\n",
                 o.ua_digest_algorithms.c_str());
    return 2;
  }
  if (p.ua_digest && p.identity.development) {
    std::fprintf(stderr,
                 "p2psip node: %s: development mode serves phones on this host only (--ua-listen on a loopback "
                 "address, no --ua-digest): it has no users to log in\n",
                 o.ua_digest ? "--ua-digest" : ("--ua-listen " + o.ua_listen + " is not a loopback address").c_str());
    return 2;
  }
  if (p.ua_digest && p.identity.digest.empty()) {
    std::fprintf(stderr,
                 "p2psip node: %s: phones must log in there, and no user in --users has a password (set one with "
                 "'p2psip identity password USERDIR')\n",
                 o.ua_digest ? "--ua-digest" : ("--ua-listen " + o.ua_listen + " is not a loopback address").c_str());
    return 2;
  }

  // The overlay address: UDP, TCP and TLS on one port. Every node takes TLS there (beside UDP and
  // plain TCP), whatever its own links use.
  p.overlay_runtime.listen_ip = listen->ip;
  p.overlay_runtime.port = listen->port;
  p.overlay_runtime.tls =
      runtime::RuntimeConfig::Tls{security::private_key_pem(p.identity.self.key), p.identity.self.cert.pem()};

  peer::PeerConfig& pc = p.peer;
  pc.address = *listen;
  overlay::OverlayConfig& oc = pc.overlay;
  oc.overlay = overlay;
  oc.chord.stabilize_interval = Duration(static_cast<std::int64_t>(o.stabilize_interval_s * 1e6));
  oc.chord.successors = o.successors;
  oc.chord.replicas = o.replicas;
  oc.chord.iterative = o.iterative;
  oc.link_transport = transport_from_name(o.overlay_transport).value_or(Transport::Udp);
  oc.timers.t1 = millis(static_cast<std::int64_t>(o.t1_ms));
  if (o.hop_timeout_ms >= 0) oc.hop_timeout = Duration(static_cast<std::int64_t>(o.hop_timeout_ms * 1000));
  oc.peer_rate = RateLimit{o.peer_rate, o.peer_burst};
  oc.chord.max_value_bytes = o.max_value_bytes;
  oc.chord.max_records_per_owner = o.max_records_per_owner;
  if (o.role == "auto") {
    pc.role = peer::Role::Auto;
  } else if (o.role == "peer") {
    pc.role = peer::Role::Peer;
  } else if (o.role == "client") {
    pc.role = peer::Role::Client;
  } else {
    std::fprintf(stderr, "p2psip node: --role must be auto, peer or client (not %s)\n", o.role.c_str());
    return 2;
  }
  if (pc.role == peer::Role::Client && o.bootstrap.empty()) {
    std::fprintf(stderr, "p2psip node: a client needs --bootstrap: the peers it keeps its flows to\n");
    return 2;
  }
  if (o.relay_max_clients > 0) {
    nat::RelayConfig rc;
    rc.max_clients = o.relay_max_clients;
    pc.relay = rc;
  }
  if (o.ice != "on" && o.ice != "off") {
    std::fprintf(stderr, "p2psip node: --ice must be on or off (not %s)\n", o.ice.c_str());
    return 2;
  }
  if (o.ice == "on" && pc.role != peer::Role::Client) {
    runtime::NiceConfig ice;
    ice.local_addresses = {listen->ip};
    // Every peer answers STUN Binding requests on its overlay port: a bootstrap peer is the agent's
    // STUN server (its server-reflexive candidates).
    if (!bootstrap.empty()) {
      ice.stun = bootstrap.front();
      ice.more_stun.assign(bootstrap.begin() + 1, bootstrap.end());
    }
    if (!plan_turn(o, ice, pc, error)) {
      std::fprintf(stderr, "p2psip node: %s\n", error.c_str());
      return 2;
    }
    pc.links.turn = ice.turn.has_value();
    p.ice = std::move(ice);
  } else if (!o.turn.empty() || o.turn_service == "on") {
    std::fprintf(stderr, "p2psip node: --turn and --turn-service need --ice on (and not --role client)\n");
    return 2;
  }
  if (o.nat_check_interval_s > 0) {
    nat::ReachabilityConfig rc;
    rc.recheck = seconds(o.nat_check_interval_s);
    pc.reachability = rc;
  }

  peer::PeerSecurity sec;
  sec.self = p.identity.self;
  sec.trust = *p.identity.trust;
  sec.development_users = p.identity.development;
  sec.users = p.identity.users;
  sec.max_users = o.max_users;
  pc.security = std::move(sec);  // its crypto provider is the daemon's

  if (ua_listen) {
    runtime::RuntimeConfig uc;
    uc.listen_ip = ua_listen->ip;
    uc.port = ua_listen->port;
    p.phone_runtime = uc;
    proxy::UaSideConfig ucfg;
    ucfg.registrar.domain = overlay;
    ucfg.ua_address = *ua_listen;
    ucfg.registrar.min_expires = o.min_expires;
    ucfg.registrar.max_expires = o.max_expires;
    ucfg.registrar.default_expires = o.max_expires;
    ucfg.registrar.max_bindings_per_aor = o.max_bindings;
    ucfg.registrar.max_aors = o.max_users;
    ucfg.entry_lifetime_s = o.entry_lifetime_s;
    ucfg.max_calls = o.max_calls;
    ucfg.phones_on_loopback = ua_listen->ip.is_loopback();
    if (p.ua_digest) ucfg.digest = proxy::DigestConfig{overlay, *digest_algorithms};
    pc.phones = std::move(ucfg);  // digest_secrets are bound once the plan has its final place
  }
  return 0;
}

/// One of the peer's two addresses as a runtime sees it: packets go to the peer with the face they
/// came to; the wake-up is the whole peer's.
class FaceSink : public runtime::PacketSink {
 public:
  FaceSink(peer::Peer& peer, peer::Face face) : peer_(peer), face_(face) {}
  void on_datagram(std::string_view bytes, const Endpoint& from, Instant now) override {
    peer_.receive_datagram(face_, bytes, from, now);
  }
  void on_message(const sip::Message& m, const Endpoint& from, Instant now, const LinkIdentity* link) override {
    peer_.receive(face_, m, from, now, link);
  }
  void on_malformed(std::string_view raw, const sip::ParseError& e, const Endpoint& from, Instant) override {
    peer_.answer_malformed(face_, raw, e, from);
  }
  std::optional<LinkIdentity> on_tls_peer(std::string_view cert_der, const Endpoint& from, Instant now) override {
    if (face_ != peer::Face::Overlay) return std::nullopt;
    return peer_.check_link(cert_der, from, now);
  }
  void advance(Instant now) override { peer_.advance(now); }
  [[nodiscard]] Instant next_wakeup() const override { return peer_.next_wakeup(); }
  void on_connection_lost(const Endpoint& remote, Instant now) override { peer_.connection_lost(face_, remote, now); }
  void on_pong(const Endpoint& remote, Instant now) override { peer_.pong(face_, remote, now); }

 private:
  peer::Peer& peer_;
  peer::Face face_;
};

/// What the ICE agent reports, handed to the peer on the libuv loop (then its wake-up is re-armed:
/// the links may have set a time of their own).
class PeerIce : public runtime::IceEvents {
 public:
  explicit PeerIce(runtime::SipRuntime& rt) : rt_(rt) {}
  void bind(peer::Peer* peer, runtime::Wakeup* wakeup) {
    peer_ = peer;
    wakeup_ = wakeup;
  }
  void on_credentials(nat::IceSessionId id, const nat::IceCredentials& c) override {
    if (peer_) peer_->ice_credentials(id, c, rt_.now());
    rearm();
  }
  void on_candidate(nat::IceSessionId id, const nat::IceCandidate& c) override {
    if (peer_) peer_->ice_candidate(id, c, rt_.now());
    rearm();
  }
  void on_gathering_done(nat::IceSessionId id) override {
    if (peer_) peer_->ice_gathering_done(id, rt_.now());
    rearm();
  }
  void on_connected(nat::IceSessionId id, nat::CandidateType local, nat::CandidateType remote) override {
    if (peer_) peer_->ice_connected(id, local, remote, rt_.now());
    rearm();
  }
  void on_failed(nat::IceSessionId id) override {
    if (peer_) peer_->ice_failed(id, rt_.now());
    rearm();
  }
  void on_datagram(nat::IceSessionId id, std::string_view bytes) override {
    if (peer_) peer_->ice_datagram(id, bytes, rt_.now());
    rearm();
  }

 private:
  void rearm() {
    if (wakeup_) wakeup_->rearm();
  }
  runtime::SipRuntime& rt_;
  peer::Peer* peer_ = nullptr;
  runtime::Wakeup* wakeup_ = nullptr;
};

/// The running daemon: a peer, the runtimes of its two addresses on one loop, one wake-up for the
/// peer, the ICE agent of its links, the control port and the signals.
struct Daemon {
  security::Ed25519Provider crypto;
  uv_loop_t loop{};
  std::unique_ptr<runtime::SipRuntime> rt;
  std::unique_ptr<runtime::SipRuntime> ua_rt;  // null with --ua-listen off
  std::unique_ptr<PeerIce> ice_events;         // the agent and its events outlive the peer, whose
  std::unique_ptr<runtime::NiceIce> ice;       // links close their sessions when it goes (null: --ice off)
  std::unique_ptr<peer::Peer> peer;
  std::unique_ptr<FaceSink> overlay_sink, phone_sink;
  std::unique_ptr<runtime::Wakeup> wakeup;
  std::unique_ptr<runtime::ControlServer> control;
  uv_signal_t sigint{}, sigterm{};
  uv_timer_t stop_poll{};

  void respond_json(const runtime::HttpResponder& respond, int status, const Json& j) {
    respond(runtime::HttpResponse{status, "application/json", json_text(j)});
  }

  void handle(const runtime::HttpRequest& req, runtime::HttpResponder respond) {
    auto error = [&](int status, const std::string& msg) { respond_json(respond, status, Json{{"error", msg}}); };
    const Instant now = rt->now();
    if (req.path == "/status") {
      if (req.method != "GET") return error(405, "use GET");
      const peer::PeerStatus s = peer->status(now);
      if (req.query.count("format") && req.query.at("format") == "text") {
        return respond(runtime::HttpResponse{200, "text/plain", status_text(s)});
      }
      return respond_json(respond, 200, status_json(s, rt->stats(), ua_rt ? &ua_rt->stats() : nullptr));
    }
    if (req.path == "/locate") {
      if (req.method != "GET") return error(405, "use GET");
      auto a = req.query.find("aor");
      auto aor = a == req.query.end() ? std::nullopt : proxy::Registrar::canonical_aor(a->second);
      if (!aor) {
        return error(400, "?aor= must be a sip: URI with a user, e.g. sip:alice@" + peer->overlay().config().overlay);
      }
      if (peer->stopping()) return error(503, "node is leaving the overlay");
      peer->locate(
          *aor,
          [this, respond, aor = *aor](const peer::Location& where) {
            int http = 0;
            Json j = location_json(aor, where, http);
            respond_json(respond, http, j);
          },
          now);
      wakeup->rearm();
      return;
    }
    const bool is_put = req.path == "/put", is_get = req.path == "/get", is_lookup = req.path == "/lookup";
    if (!is_put && !is_get && !is_lookup) return error(404, "unknown path " + req.path);
    auto key_it = req.query.find("key");
    if (key_it == req.query.end() || key_it->second.empty()) return error(400, "missing ?key=");
    if (peer->stopping()) return error(503, "node is leaving the overlay");
    if (is_put && req.method != "POST" && req.method != "PUT") return error(405, "use POST or PUT");
    if (!is_put && req.method != "GET") return error(405, "use GET");
    const std::string key = key_it->second;
    const dht::RouteOp op = is_put ? dht::RouteOp::Store : is_get ? dht::RouteOp::Fetch : dht::RouteOp::Lookup;
    auto done = [this, respond, key, op](const dht::RouteResult& res) {
      int http = 0;
      Json j = route_json(key, op, res, http);
      respond_json(respond, http, j);
    };
    if (is_put) {
      unsigned long lifetime = 3600;
      if (auto l = req.query.find("lifetime"); l != req.query.end()) {
        char* end = nullptr;
        lifetime = std::strtoul(l->second.c_str(), &end, 10);
        if (end == l->second.c_str() || *end != '\0' || lifetime == 0 || lifetime > 31536000) {
          return error(400, "lifetime must be 1 to 31536000 seconds");
        }
      }
      peer->put(key, req.body, static_cast<std::uint32_t>(lifetime), done, now);
    } else if (is_get) {
      peer->get(key, done, now);
    } else {
      peer->lookup(key, done, now);
    }
    wakeup->rearm();
  }

  void close_all() {
    uv_timer_stop(&stop_poll);
    uv_close(reinterpret_cast<uv_handle_t*>(&stop_poll), nullptr);
    if (control) control->stop();
    rt->stop();
    if (ua_rt) ua_rt->stop();
    if (ice) ice->stop();
    wakeup->close();
    uv_close(reinterpret_cast<uv_handle_t*>(&sigint), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&sigterm), nullptr);
  }

  static void on_signal(uv_signal_t* s, int signum) {
    auto* d = static_cast<Daemon*>(s->data);
    if (d->peer->stopping()) return;
    d->rt->log(LogLevel::Info, std::string(signum == SIGINT ? "SIGINT" : "SIGTERM") + ": leaving the overlay");
    d->peer->shutdown(d->rt->now());
    d->wakeup->rearm();
    // The peer says when its shutdown is done (its steps have deadlines of their own).
    uv_timer_start(
        &d->stop_poll,
        [](uv_timer_t* t) {
          auto* dd = static_cast<Daemon*>(t->data);
          if (dd->peer->stopped()) dd->close_all();
        },
        20, 20);
  }
};

}  // namespace

int run_node(const NodeOptions& o) {
  NodePlan plan;
  if (int rc = plan_node(o, plan); rc != 0) return rc;
  Daemon d;
  plan.peer.security->crypto = &d.crypto;
  if (plan.peer.phones && plan.ua_digest) {
    plan.peer.phones->digest_secrets = [&secrets =
                                            plan.identity.digest](std::string_view user) -> const proxy::DigestSecret* {
      auto it = secrets.find(user);
      return it == secrets.end() ? nullptr : &it->second;
    };
  }
  uv_loop_init(&d.loop);
  d.rt = std::make_unique<runtime::SipRuntime>(&d.loop, plan.overlay_runtime);
  d.rt->set_log_level(plan.level);
  if (plan.phone_runtime) {
    d.ua_rt = std::make_unique<runtime::SipRuntime>(&d.loop, *plan.phone_runtime);
    d.ua_rt->set_log_level(plan.level);
  }
  const bool development = plan.identity.development;
  const std::string overlay = plan.identity.overlay;
  const Transport links = plan.peer.overlay.link_transport;
  std::optional<Endpoint> ua_listen;
  if (plan.peer.phones) ua_listen = plan.peer.phones->ua_address;
  if (plan.ice) {
    d.ice_events = std::make_unique<PeerIce>(*d.rt);
    d.ice = std::make_unique<runtime::NiceIce>(&d.loop, *plan.ice, *d.ice_events);
    plan.peer.ice = d.ice.get();
  }
  d.peer = std::make_unique<peer::Peer>(plan.peer, *d.rt, d.ua_rt.get());
  d.overlay_sink = std::make_unique<FaceSink>(*d.peer, peer::Face::Overlay);
  if (d.ua_rt) d.phone_sink = std::make_unique<FaceSink>(*d.peer, peer::Face::Phones);
  d.wakeup = std::make_unique<runtime::Wakeup>(&d.loop, *d.overlay_sink);
  if (d.ice_events) d.ice_events->bind(d.peer.get(), d.wakeup.get());
  std::string error;
  bool started = d.rt->start(*d.overlay_sink, error, d.wakeup.get());
  if (started && d.ua_rt && !d.ua_rt->start(*d.phone_sink, error, d.wakeup.get())) {
    error = "--ua-listen: " + error;
    started = false;
  }
  if (started) {
    d.control = std::make_unique<runtime::ControlServer>(
        &d.loop, plan.control,
        [&d](const runtime::HttpRequest& r, runtime::HttpResponder resp) { d.handle(r, std::move(resp)); });
    started = d.control->start(error);
  }
  if (!started) {
    std::fprintf(stderr, "p2psip node: %s\n", error.c_str());
    if (d.control) d.control->stop();
    d.rt->stop();
    if (d.ua_rt) d.ua_rt->stop();
    if (d.ice) d.ice->stop();
    d.wakeup->close();
    uv_run(&d.loop, UV_RUN_DEFAULT);
    return 1;
  }
  const dht::NodeId id = d.peer->id();
  d.peer->start(plan.bootstrap, d.rt->now());
  d.wakeup->rearm();
  std::string how = plan.bootstrap.empty() ? "started a new overlay" : "joining through " + o.bootstrap.front();
  d.rt->log(LogLevel::Info, "p2psip node " + id.hex() + " " + how + " '" + overlay + "' on udp+tcp+tls " +
                                plan.peer.address.host_port() + " (links over " + o.overlay_transport +
                                (links == Transport::Tls ? "" : ", every message signed") + "), control http://" +
                                plan.control.host_port() + "/status");
  if (development) {
    d.rt->log(LogLevel::Warn,
              "development mode: self-signed identities and no CA; anyone can join this overlay and register any "
              "user (docs/SECURITY.md)");
  }
  if (ua_listen) {
    // What a softphone needs, printed once so that a user can copy it.
    const std::string who = development ? "any name, e.g. sip:alice@" + overlay
                                        : std::to_string(plan.identity.users.size()) + " enrolled user(s) (--users)";
    std::printf("softphone settings: domain (realm) %s; registrar and outbound proxy %s (UDP or TCP); user: %s (%s)\n",
                overlay.c_str(), ua_listen->host_port().c_str(), who.c_str(),
                plan.ua_digest ? ("log in with the user's password: digest " + o.ua_digest_algorithms).c_str()
                               : "no password: --ua-listen stays on this host");
    std::fflush(stdout);
  }

  uv_signal_init(&d.loop, &d.sigint);
  uv_signal_init(&d.loop, &d.sigterm);
  uv_timer_init(&d.loop, &d.stop_poll);
  d.sigint.data = d.sigterm.data = d.stop_poll.data = &d;
  uv_signal_start(&d.sigint, Daemon::on_signal, SIGINT);
  uv_signal_start(&d.sigterm, Daemon::on_signal, SIGTERM);
  uv_run(&d.loop, UV_RUN_DEFAULT);
  uv_loop_close(&d.loop);
  return 0;
}

}  // namespace p2psip::tools
