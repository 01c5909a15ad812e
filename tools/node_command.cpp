#include "tools/node_command.hpp"

#include <sys/stat.h>
#include <uv.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "node/overlay/overlay_node.hpp"
#include "node/proxy/ua_side.hpp"
#include "node/runtime/control_server.hpp"
#include "node/runtime/sip_runtime.hpp"
#include "security/record_policy.hpp"
#include "tools/node_identity.hpp"

namespace p2psip::tools {
namespace {

using runtime::json_string;

std::optional<LogLevel> parse_level(const std::string& s) {
  if (s == "debug") return LogLevel::Debug;
  if (s == "info") return LogLevel::Info;
  if (s == "warn") return LogLevel::Warn;
  if (s == "error") return LogLevel::Error;
  return std::nullopt;
}

std::string peer_json(const dht::Peer& p) {
  return "{\"id\":" + json_string(p.id.hex()) + ",\"addr\":" + json_string(p.addr.host_port()) + "}";
}

/// Feeds one runtime's packets to `core` while keeping the time for both cores of the node: a call
/// into one may start timers in the other (an overlay answer makes the UA side respond), so each
/// runtime's wake-up covers both and advances both.
template <class Core>
class NodeSink : public runtime::PacketSink {
 public:
  NodeSink(Core& core, overlay::OverlayNode& node, proxy::UaSide* ua) : core_(core), node_(node), ua_(ua) {}
  void on_datagram(std::string_view bytes, const Endpoint& from, Instant now) override {
    core_.receive_datagram(bytes, from, now);
  }
  void on_message(const sip::Message& m, const Endpoint& from, Instant now, const LinkIdentity* link_peer) override {
    if constexpr (std::is_same_v<Core, overlay::OverlayNode>) {
      const dht::NodeId peer = link_peer ? dht::NodeId::from_link_identity(*link_peer) : dht::NodeId{};
      core_.receive(m, from, now, link_peer ? &peer : nullptr);
    } else {
      core_.receive(m, from, now);
    }
  }
  std::optional<LinkIdentity> on_tls_peer(std::string_view cert_der, const Endpoint& from, Instant now) override {
    auto id = node_.check_link(cert_der, from, now);
    return id ? std::optional(id->link_identity()) : std::nullopt;
  }
  void on_malformed(std::string_view raw, const sip::ParseError& e, const Endpoint& from, Instant) override {
    core_.answer_malformed(raw, e, from);
  }
  void advance(Instant now) override {
    if (node_.next_wakeup() <= now) node_.advance(now);
    if (ua_ && ua_->next_wakeup() <= now) ua_->advance(now);
  }
  [[nodiscard]] Instant next_wakeup() const override {
    return ua_ ? std::min(node_.next_wakeup(), ua_->next_wakeup()) : node_.next_wakeup();
  }

 private:
  Core& core_;
  overlay::OverlayNode& node_;
  proxy::UaSide* ua_;
};

struct Daemon {
  // Identities and the record guard first: the nodes below point at them.
  security::Ed25519Provider crypto;
  NodeIdentity identity;
  std::unique_ptr<security::RecordPolicy> policy;
  std::unique_ptr<overlay::PeerAuthenticator> auth;  // signs and checks every overlay message
  std::unique_ptr<security::UserIdentities> users;
  security::Writer writer;  // the node's own: records put through the control port
  uv_loop_t loop{};
  std::unique_ptr<runtime::SipRuntime> rt;
  std::unique_ptr<runtime::SipRuntime> ua_rt;  // null with --ua-listen off
  std::unique_ptr<overlay::OverlayNode> node;
  std::unique_ptr<proxy::UaSide> ua;
  std::unique_ptr<NodeSink<overlay::OverlayNode>> sink;
  std::unique_ptr<NodeSink<proxy::UaSide>> ua_sink;
  std::unique_ptr<runtime::ControlServer> control;
  uv_signal_t sigint{}, sigterm{};
  uv_timer_t leave_timer{};
  Instant started{};
  Instant leave_deadline{};
  std::string listen_text, ua_text;
  bool stopping = false, leaving = false;
  std::int64_t last_put_us = 0;  // each put's writer time is later than the last

  /// Re-arms both runtimes' wake-ups after the node was driven from outside them.
  void reschedule() {
    rt->reschedule();
    if (ua_rt) ua_rt->reschedule();
  }

  std::string ua_json() const {
    if (!ua) return "null";
    const auto& st = ua->stats();
    const auto& r = ua->registrar();
    std::ostringstream j;
    j << "{\"listen\":" << json_string(ua_text) << ",\"domain\":" << json_string(node->config().overlay)
      << ",\"users\":" << r.aors() << ",\"bindings\":" << r.size() << ",\"entries_in_overlay\":" << ua->published()
      << ",\"registers\":" << st.registers << ",\"registers_ok\":" << st.registers_ok
      << ",\"registers_rejected\":" << st.registers_rejected << ",\"queries\":" << st.queries
      << ",\"entries_stored\":" << st.entries_stored << ",\"entries_kept\":" << st.entries_kept
      << ",\"entry_refreshes\":" << st.refreshes << ",\"entries_removed\":" << st.entries_removed
      << ",\"store_failures\":" << st.store_failures << ",\"requests_rejected\":" << st.requests_rejected
      << ",\"proxied\":" << st.proxied << ",\"lookups\":" << st.lookups
      << ",\"lookups_not_found\":" << st.lookups_not_found << ",\"lookups_failed\":" << st.lookups_failed
      << ",\"branches\":" << st.branches << ",\"calls_answered\":" << st.calls_answered << ",\"cancels\":" << st.cancels
      << ",\"challenges\":" << st.challenges << ",\"auth_refused\":" << st.auth_refused
      << ",\"acks_forwarded\":" << st.acks_forwarded << ",\"branch_failures\":" << st.branch_timeouts
      << ",\"requests_in_progress\":" << ua->calls() << ",\"response_contexts\":" << ua->contexts()
      << ",\"users_list\":[";
    auto aors = r.aor_list(100);
    for (std::size_t i = 0; i < aors.size(); ++i) j << (i ? "," : "") << json_string(aors[i]);
    j << "]}";
    return j.str();
  }

  std::string status_json() const {
    const auto& c = node->chord();
    const auto& t = c.table();
    const auto& os = node->stats();
    const auto& ts = node->transactions().stats();
    const auto& cs = c.stats();
    std::ostringstream j;
    j << "{\"node_id\":" << json_string(t.self().id.hex()) << ",\"overlay\":" << json_string(node->config().overlay)
      << ",\"listen\":" << json_string(listen_text) << ",\"joined\":" << (c.joined() ? "true" : "false")
      << ",\"predecessor\":" << (t.predecessor() ? peer_json(*t.predecessor()) : "null") << ",\"predecessors\":[";
    for (std::size_t i = 0; i < t.predecessors().size(); ++i) j << (i ? "," : "") << peer_json(t.predecessors()[i]);
    j << "],\"successors\":[";
    for (std::size_t i = 0; i < t.successors().size(); ++i) j << (i ? "," : "") << peer_json(t.successors()[i]);
    j << "],\"fingers\":" << t.distinct_fingers() << ",\"records\":" << c.storage().size()
      << ",\"uptime_s\":" << to_millis(rt->now() - started) / 1000
      << ",\"messages\":{\"requests_sent\":" << os.requests_sent << ",\"requests_received\":" << os.requests_received
      << ",\"responses_sent\":" << os.responses_sent << ",\"responses_received\":" << os.responses_received
      << ",\"rejected\":" << os.rejected << ",\"throttled\":" << os.throttled
      << ",\"retransmissions\":" << ts.retransmissions_sent << ",\"timeouts\":" << ts.timeouts
      << ",\"malformed_dropped\":" << ts.malformed_dropped << ",\"malformed_answered\":" << ts.malformed_answered
      << ",\"datagrams_out\":" << rt->stats().datagrams_out
      << ",\"stream_messages_out\":" << rt->stats().stream_messages_out << ",\"bytes_in\":" << rt->stats().bytes_in
      << ",\"bytes_out\":" << rt->stats().bytes_out << "},\"chord\":{\"routes_started\":" << cs.routes_started
      << ",\"routes_ok\":" << cs.routes_ok << ",\"routes_failed\":" << cs.routes_failed
      << ",\"forwarded\":" << cs.forwarded << ",\"peers_failed\":" << cs.peers_failed
      << ",\"late_answers\":" << cs.late_answers << ",\"stabilize_rounds\":" << cs.stabilize_rounds
      << ",\"records_replicated\":" << cs.records_replicated << ",\"records_refused\":" << cs.records_refused
      << ",\"records_disbelieved\":" << cs.records_disbelieved << ",\"records_over_quota\":" << cs.records_over_quota
      << "},\"security\":{\"mode\":" << (identity.development ? "\"development\"" : "\"enrolled\"")
      << ",\"users\":" << identity.users.size() << ",\"signatures_checked\":" << policy->stats().signatures_checked
      << ",\"certificates_checked\":" << policy->stats().certificates_checked
      << ",\"messages_signed\":" << auth->stats().signed_messages << ",\"messages_verified\":" << auth->stats().verified
      << ",\"messages_refused\":" << auth->stats().refused
      << ",\"certificates_sent\":" << auth->stats().certificates_sent
      << ",\"certificates_learned\":" << auth->stats().certificates_learned
      << ",\"tls_links_accepted\":" << auth->stats().links_accepted
      << ",\"tls_links_refused\":" << auth->stats().links_refused << ",\"unauthenticated\":" << os.unauthenticated
      << ",\"resent_with_certificate\":" << os.resent << "},\"ua\":" << ua_json() << "}";
    return j.str();
  }

  std::string status_text() const {
    const auto& c = node->chord();
    const auto& t = c.table();
    std::ostringstream s;
    s << "node        " << t.self().id.hex() << "\n"
      << "overlay     " << node->config().overlay << (c.joined() ? "" : " (joining)") << "\n"
      << "listen      " << listen_text << "\n"
      << "uptime      " << to_millis(rt->now() - started) / 1000 << " s\n"
      << "predecessor "
      << (t.predecessor() ? t.predecessor()->id.hex() + "  " + t.predecessor()->addr.host_port() : "-") << "\n";
    for (std::size_t i = 0; i < t.successors().size(); ++i) {
      s << (i == 0 ? "successors  " : "            ") << t.successors()[i].id.hex() << "  "
        << t.successors()[i].addr.host_port() << "\n";
    }
    if (t.successors().empty()) s << "successors  - (alone)\n";
    s << "fingers     " << t.distinct_fingers() << " distinct\n"
      << "records     " << c.storage().size() << "\n"
      << "softphones  "
      << (ua ? ua_text + ", " + std::to_string(ua->registrar().aors()) + " users, " +
                   std::to_string(ua->registrar().size()) + " bindings"
             : std::string("off"))
      << "\n"
      << "messages    " << node->stats().requests_sent << " requests sent, " << node->stats().requests_received
      << " received, " << node->transactions().stats().timeouts << " timeouts\n";
    return s.str();
  }

  /// GET /locate?aor=sip:user@OVERLAY: the user's registration entries, as any caller's node sees them.
  void locate(const runtime::HttpRequest& req, const runtime::HttpResponder& respond) {
    auto error = [&](int status, const std::string& msg) {
      respond(runtime::HttpResponse{status, "application/json", "{\"error\":" + json_string(msg) + "}"});
    };
    if (req.method != "GET") return error(405, "use GET");
    auto a = req.query.find("aor");
    auto aor = a == req.query.end() ? std::nullopt : proxy::Registrar::canonical_aor(a->second);
    if (!aor) return error(400, "?aor= must be a sip: URI with a user, e.g. sip:alice@" + node->config().overlay);
    if (stopping) return error(503, "node is leaving the overlay");
    Instant now = rt->now();
    node->chord().route(
        dht::RouteOp::Fetch, dht::NodeId::hash(*aor), std::nullopt,
        [respond, aor = *aor](const dht::RouteResult& res) {
          std::ostringstream j;
          j << "{\"aor\":" << json_string(aor) << ",\"status\":" << res.status << ",\"hops\":" << res.hops
            << ",\"latency_ms\":" << static_cast<double>(res.latency.count()) / 1000.0 << ",\"entries\":[";
          std::size_t n = 0;
          for (const auto& rec : res.records) {
            auto e = proxy::decode_registration(rec.value);
            if (!e) continue;  // not a registration entry
            j << (n++ ? "," : "") << "{\"node\":" << json_string(e->node.id.hex())
              << ",\"addr\":" << json_string(e->node.addr.host_port())
              << ",\"transport\":" << json_string(transport_name(e->node.addr.transport))
              << ",\"devices\":" << e->devices << ",\"lifetime_s\":" << rec.lifetime_s << "}";
          }
          j << "]";
          if (res.status != 200 && res.status != 404) j << ",\"error\":" << json_string(res.reason);
          j << "}";
          int http = n > 0 ? 200 : (res.status == 200 || res.status == 404) ? 404 : 503;
          respond(runtime::HttpResponse{http, "application/json", j.str()});
        },
        now);
    reschedule();
  }

  void handle(const runtime::HttpRequest& req, runtime::HttpResponder respond) {
    auto error = [&](int status, const std::string& msg) {
      respond(runtime::HttpResponse{status, "application/json", "{\"error\":" + json_string(msg) + "}"});
    };
    Instant now = rt->now();
    if (req.path == "/status") {
      if (req.method != "GET") return error(405, "use GET");
      if (req.query.count("format") && req.query.at("format") == "text") {
        return respond(runtime::HttpResponse{200, "text/plain", status_text()});
      }
      return respond(runtime::HttpResponse{200, "application/json", status_json()});
    }
    if (req.path == "/locate") return locate(req, respond);
    bool is_put = req.path == "/put", is_get = req.path == "/get", is_lookup = req.path == "/lookup";
    if (!is_put && !is_get && !is_lookup) return error(404, "unknown path " + req.path);
    auto key_it = req.query.find("key");
    if (key_it == req.query.end() || key_it->second.empty()) return error(400, "missing ?key=");
    if (stopping) return error(503, "node is leaving the overlay");
    std::string key = key_it->second;
    dht::NodeId id = dht::NodeId::hash(key);
    if (is_put && req.method != "POST" && req.method != "PUT") return error(405, "use POST or PUT");
    if (!is_put && req.method != "GET") return error(405, "use GET");
    std::optional<dht::Record> rec;
    dht::RouteOp op = is_put ? dht::RouteOp::Store : is_get ? dht::RouteOp::Fetch : dht::RouteOp::Lookup;
    if (is_put) {
      dht::Record r;
      r.key = id;
      r.name = key;
      r.value = req.body;
      r.owner = node->chord().table().self().id.hex();
      unsigned long lifetime = 3600;
      if (auto l = req.query.find("lifetime"); l != req.query.end()) {
        char* end = nullptr;
        lifetime = std::strtoul(l->second.c_str(), &end, 10);
        if (end == l->second.c_str() || *end != '\0' || lifetime == 0 || lifetime > 31536000) {
          return error(400, "lifetime must be 1 to 31536000 seconds");
        }
      }
      r.lifetime_s = static_cast<std::uint32_t>(lifetime);
      // Signed as this node: storing peers refuse unsigned records (docs/SECURITY.md).
      last_put_us = std::max(rt->unix_time_us(now), last_put_us + 1);
      writer.sign(r, last_put_us);
      rec = r;
    }
    node->chord().route(
        op, id, rec,
        [respond, key, id, op](const dht::RouteResult& res) {
          std::ostringstream j;
          j << "{\"key\":" << json_string(key) << ",\"id\":" << json_string(id.hex()) << ",\"status\":" << res.status
            << ",\"hops\":" << res.hops << ",\"latency_ms\":" << static_cast<double>(res.latency.count()) / 1000.0
            << ",\"responsible\":" << (res.responsible ? peer_json(*res.responsible) : "null");
          if (op == dht::RouteOp::Fetch && res.status == 200 && !res.records.empty()) {
            const auto& r = res.records[0];
            j << ",\"value\":" << json_string(r.value) << ",\"owner\":" << json_string(r.owner)
              << ",\"stored_at_us\":" << r.stored_at_us << ",\"lifetime_s\":" << r.lifetime_s;
          }
          if (res.status != 200) j << ",\"error\":" << json_string(res.reason);
          j << "}";
          int http = res.status == 200 ? 200 : res.status == 404 ? 404 : res.status == 403 ? 403 : 503;
          respond(runtime::HttpResponse{http, "application/json", j.str()});
        },
        now);
    reschedule();
  }
};

void finish_stop(Daemon& d) {
  uv_timer_stop(&d.leave_timer);
  uv_close(reinterpret_cast<uv_handle_t*>(&d.leave_timer), nullptr);
  d.control->stop();
  d.rt->stop();
  if (d.ua_rt) d.ua_rt->stop();
  uv_close(reinterpret_cast<uv_handle_t*>(&d.sigint), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&d.sigterm), nullptr);
}

void on_signal(uv_signal_t* s, int signum) {
  auto* d = static_cast<Daemon*>(s->data);
  if (d->stopping) return;
  d->stopping = true;
  d->rt->log(LogLevel::Info, std::string(signum == SIGINT ? "SIGINT" : "SIGTERM") + ": leaving the overlay");
  Instant now = d->rt->now();
  // First the registrations this node serves leave the overlay (callers get 404 rather than an
  // unanswered node), then the node itself: at most 1 s for the one, 3 s for the other.
  if (d->ua) d->ua->withdraw_all(now);
  d->reschedule();
  d->leave_deadline = now + seconds(1);
  uv_timer_start(
      &d->leave_timer,
      [](uv_timer_t* t) {
        auto* dd = static_cast<Daemon*>(t->data);
        Instant tnow = dd->rt->now();
        if (!dd->leaving) {
          if ((dd->ua && !dd->ua->withdrawn()) && tnow < dd->leave_deadline) return;
          dd->leaving = true;
          dd->node->leave(tnow);
          dd->reschedule();
          dd->leave_deadline = tnow + seconds(3);
          return;
        }
        if (dd->node->chord().left() || tnow >= dd->leave_deadline) {
          if (!dd->node->chord().left())
            dd->rt->log(LogLevel::Warn, "leave not acknowledged within 3 s; exiting anyway");
          finish_stop(*dd);
        }
      },
      20, 20);
}

}  // namespace

int run_node(const NodeOptions& o) {
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

  Daemon d;
  std::string error;
  if (!load_node_identity(o, d.identity, error)) {
    std::fprintf(stderr, "p2psip node: %s\n", error.c_str());
    return 2;
  }
  const std::string& overlay = d.identity.overlay;
  // Phones on this host may register without a password (the UA side is reachable from here only);
  // anywhere else they log in with digest authentication, as the node's enrolled users.
  const bool ua_digest = ua_listen && (o.ua_digest || !ua_listen->ip.is_loopback());
  const auto digest_algorithms = proxy::algorithms_from_list(o.ua_digest_algorithms);
  if (!digest_algorithms) {
    std::fprintf(stderr, "p2psip node: --ua-digest-algorithms %s is not a list of SHA-256 and MD5 (e.g. SHA-256,MD5)\n",
                 o.ua_digest_algorithms.c_str());
    return 2;
  }
  if (ua_digest && d.identity.development) {
    std::fprintf(stderr,
                 "p2psip node: %s: development mode serves phones on this host only (--ua-listen on a loopback "
                 "address, no --ua-digest): it has no users to log in\n",
                 o.ua_digest ? "--ua-digest" : ("--ua-listen " + o.ua_listen + " is not a loopback address").c_str());
    return 2;
  }
  if (ua_digest && d.identity.digest.empty()) {
    std::fprintf(stderr,
                 "p2psip node: %s: phones must log in there, and no user in --users has a password (set one with "
                 "'p2psip identity password USERDIR')\n",
                 o.ua_digest ? "--ua-digest" : ("--ua-listen " + o.ua_listen + " is not a loopback address").c_str());
    return 2;
  }
  // The node's place on the ring follows from its key (docs/SECURITY.md).
  const dht::NodeId id = *d.identity.self.cert.info().node_id;
  d.writer = security::Writer{d.identity.self.key, d.identity.self.cert.der(), &d.crypto};
  uv_loop_init(&d.loop);
  runtime::RuntimeConfig rc;
  rc.listen_ip = listen->ip;
  rc.port = listen->port;
  // Every node takes TLS on its overlay port (beside UDP and plain TCP), whatever its own links use.
  rc.tls = runtime::RuntimeConfig::Tls{security::private_key_pem(d.identity.self.key), d.identity.self.cert.pem()};
  d.rt = std::make_unique<runtime::SipRuntime>(&d.loop, rc);
  d.rt->set_log_level(*level);
  overlay::OverlayConfig oc;
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
  d.node = std::make_unique<overlay::OverlayNode>(dht::Peer{id, *listen}, oc, *d.rt);
  // One cache of checked certificates for records and messages alike: a peer's certificate checked
  // for its messages is the one its node record is signed with.
  auto certificates = std::make_shared<security::CertificateCache>(*d.identity.trust);
  d.policy = std::make_unique<security::RecordPolicy>(certificates, d.crypto, *d.rt);
  d.node->chord().set_guard(d.policy.get());
  d.auth = std::make_unique<overlay::PeerAuthenticator>(d.identity.self.key, d.identity.self.cert, certificates,
                                                        d.crypto, *d.rt);
  d.node->set_authenticator(d.auth.get());
  if (d.identity.development) {
    d.users = std::make_unique<security::DevelopmentUsers>(overlay, d.crypto, *d.rt, o.max_users, d.policy.get());
  } else {
    auto enrolled = std::make_unique<security::EnrolledUsers>(d.crypto, d.policy.get());
    for (const auto& u : d.identity.users) enrolled->add(u);
    d.users = std::move(enrolled);
  }
  if (ua_listen) {
    runtime::RuntimeConfig uc;
    uc.listen_ip = ua_listen->ip;
    uc.port = ua_listen->port;
    d.ua_rt = std::make_unique<runtime::SipRuntime>(&d.loop, uc);
    d.ua_rt->set_log_level(*level);
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
    if (ua_digest) {
      ucfg.digest = proxy::DigestConfig{overlay, *digest_algorithms};
      ucfg.digest_secrets = [&secrets = d.identity.digest](std::string_view user) -> const proxy::DigestSecret* {
        auto it = secrets.find(user);
        return it == secrets.end() ? nullptr : &it->second;
      };
    }
    d.ua = std::make_unique<proxy::UaSide>(*d.ua_rt, *d.node, ucfg, d.users.get());
    d.ua_sink = std::make_unique<NodeSink<proxy::UaSide>>(*d.ua, *d.node, d.ua.get());
    d.ua_text = ua_listen->host_port();
  }
  d.sink = std::make_unique<NodeSink<overlay::OverlayNode>>(*d.node, *d.node, d.ua.get());
  d.listen_text = listen->host_port();
  bool started = d.rt->start(*d.sink, error);
  if (started && d.ua_rt && !d.ua_rt->start(*d.ua_sink, error)) {
    error = "--ua-listen: " + error;
    started = false;
  }
  if (!started) {
    std::fprintf(stderr, "p2psip node: %s\n", error.c_str());
    d.rt->stop();
    if (d.ua_rt) d.ua_rt->stop();
    uv_run(&d.loop, UV_RUN_DEFAULT);
    return 1;
  }
  d.control = std::make_unique<runtime::ControlServer>(
      &d.loop, *control,
      [&d](const runtime::HttpRequest& r, runtime::HttpResponder resp) { d.handle(r, std::move(resp)); });
  if (!d.control->start(error)) {
    std::fprintf(stderr, "p2psip node: %s\n", error.c_str());
    d.control->stop();
    d.rt->stop();
    if (d.ua_rt) d.ua_rt->stop();
    uv_run(&d.loop, UV_RUN_DEFAULT);
    return 1;
  }
  d.started = d.rt->now();
  d.node->start(bootstrap, d.started);
  d.reschedule();
  std::string how = bootstrap.empty() ? "started a new overlay" : "joining through " + o.bootstrap.front();
  d.rt->log(LogLevel::Info, "p2psip node " + id.hex() + " " + how + " '" + overlay + "' on udp+tcp+tls " +
                                d.listen_text + " (links over " + o.overlay_transport +
                                (oc.link_transport == Transport::Tls ? "" : ", every message signed") +
                                "), control http://" + control->host_port() + "/status");
  if (d.identity.development) {
    d.rt->log(LogLevel::Warn,
              "development mode: self-signed identities and no CA; anyone can join this overlay and register any "
              "user (docs/SECURITY.md)");
  }
  if (d.ua) {
    // What a softphone needs, printed once so that a user can copy it.
    const std::string who = d.identity.development
                                ? "any name, e.g. sip:alice@" + overlay
                                : std::to_string(d.identity.users.size()) + " enrolled user(s) (--users)";
    std::printf("softphone settings: domain (realm) %s; registrar and outbound proxy %s (UDP or TCP); user: %s (%s)\n",
                overlay.c_str(), d.ua_text.c_str(), who.c_str(),
                ua_digest ? ("log in with the user's password: digest " + o.ua_digest_algorithms).c_str()
                          : "no password: --ua-listen stays on this host");
    std::fflush(stdout);
  }

  uv_signal_init(&d.loop, &d.sigint);
  uv_signal_init(&d.loop, &d.sigterm);
  uv_timer_init(&d.loop, &d.leave_timer);
  d.sigint.data = d.sigterm.data = d.leave_timer.data = &d;
  uv_signal_start(&d.sigint, on_signal, SIGINT);
  uv_signal_start(&d.sigterm, on_signal, SIGTERM);
  uv_run(&d.loop, UV_RUN_DEFAULT);
  uv_loop_close(&d.loop);
  return 0;
}

}  // namespace p2psip::tools
