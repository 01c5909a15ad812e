#include "sim/simulator.hpp"

#include <algorithm>
#include <cmath>

#include "node/overlay/codec.hpp"
#include "node/overlay/peer_auth.hpp"
#include "node/peer/peer.hpp"
#include "security/certificate_cache.hpp"
#include "security/record_policy.hpp"

namespace p2psip::sim {

namespace {
constexpr std::uint16_t kPort = 5060;
/// Simulated time 0 on the wall clock that certificates and signed records are dated by
/// (2026-01-01 00:00 UTC): a run is dated the same whenever it runs.
constexpr std::int64_t kEpochS = 1767225600;

security::KeyPair key_from(Rng& rng) {
  security::Seed seed{};
  for (std::size_t i = 0; i < seed.size(); i += 8) {
    const std::uint64_t v = rng.next();
    for (std::size_t b = 0; b < 8; ++b) seed[i + b] = static_cast<std::uint8_t>(v >> (8 * b));
  }
  return security::KeyPair::from_seed(seed);
}
constexpr std::size_t kMaxHops = 64;
constexpr Duration kGracefulLeaveTime = seconds(5);  // a leaving node lives this long for its Leave answers
}  // namespace

/// A simulated host's environment: the node core sends through it and draws its own random stream.
class SimHost final : public Environment {
 public:
  SimHost(Simulator& sim, std::uint32_t index, Rng rng) : sim_(sim), index_(index), rng_(rng) {}
  bool send(const Endpoint& to, std::string_view bytes) override { return sim_.transmit(index_, to, bytes); }
  bool send_owned(const Endpoint& to, std::string&& bytes) override { return sim_.transmit(index_, to, bytes, &bytes); }
  std::uint64_t random() override { return rng_.next(); }
  /// The same stream: a run repeats, and draws in the order they always did.
  std::uint64_t secure_random() override { return rng_.next(); }
  [[nodiscard]] std::int64_t unix_time_us(Instant now) const override {
    return kEpochS * 1000000 + now.time_since_epoch().count();
  }
  void log(LogLevel level, std::string_view text) override { sim_.log(index_, level, text); }

 private:
  Simulator& sim_;
  std::uint32_t index_;
  Rng rng_;
};

/// A host's identity, made when the host is and handed to its peer when it starts.
struct Simulator::NodeSecurity {
  security::KeyPair key;
  security::Certificate cert;
};

struct Simulator::Slot {
  Slot(Simulator& sim, std::uint32_t index, Rng rng) : host(sim, index, rng) {}
  SimHost host;
  std::unique_ptr<NodeSecurity> sec;  // with [security], until the peer starts
  bool malicious = false;             // [attack]
  bool forges = false;                // a malicious node that forges (else it drops)
  std::unique_ptr<peer::Peer> node;   // null once dead
  dht::NodeId id;
  Instant scheduled = kInstantMax;  // the node's timer event in the queue, if any
  Instant born{}, died = kInstantMax, joined_at = kInstantMax;
  std::int32_t live_pos = -1, joined_pos = -1;
  bool leaving = false;
  std::uint32_t ops_pending = 0;
  std::uint64_t messages_sent = 0, bytes_sent = 0;
};

Simulator::Simulator(Scenario scenario)
    : sc_(std::move(scenario)),
      rng_(sc_.seed, 1),
      churn_rng_(sc_.seed, 2),
      work_rng_(sc_.seed, 3),
      attack_rng_(sc_.seed, 4) {
  if (sc_.security) {
    if (sc_.ed25519) {
      crypto_ = std::make_unique<security::Ed25519Provider>();
    } else {
      crypto_ = std::make_unique<security::FakeFastProvider>();
    }
    Rng ca(sc_.seed, 5);
    ca_key_ = key_from(ca);
    root_ = *security::make_root(ca_key_, sc_.overlay, 1, {kEpochS - 86400, kEpochS + 10 * 365 * 86400});
  }
  config_.overlay = sc_.overlay;
  config_.chord = sc_.chord;
  config_.link_transport = sc_.transport;
  config_.timers.t1 = Duration(static_cast<std::int64_t>(sc_.t1_ms * 1000));
  if (sc_.hop_timeout_ms >= 0) config_.hop_timeout = Duration(static_cast<std::int64_t>(sc_.hop_timeout_ms * 1000));
  end_ = at_s(sc_.duration_s);
  work_end_ = at_s(std::max(sc_.workload_start_s, sc_.duration_s - sc_.drain_s));
  results_.hops_histogram.assign(kMaxHops + 1, 0);
  // The initial population joins at join_rate per second; node 0 starts the ring. Start i takes
  // sequence number i, below every other event's, and only the next one waits in the heap (each
  // pushes its successor): a million pending starts would be most of the heap for the whole join
  // phase, and the order is the same as with all of them pushed here.
  seq_ = sc_.nodes;
  push_start(0);
  for (std::size_t i = 0; i < sc_.events.size(); ++i) push(at_s(sc_.events[i].at_s), EventType::Scripted, 0, i);
  for (std::size_t i = 0; i < sc_.script.size(); ++i)
    push(at_s(sc_.script[i].at_s), EventType::Workload, 0, (std::uint64_t{i} << 8) | std::uint64_t(WorkKind::Script));
  auto first = [&](double rate, WorkKind k) {
    if (rate > 0) {
      double t = sc_.workload_start_s - std::log(work_rng_.uniform_open0()) / rate;
      push(at_s(t), EventType::Workload, 0, static_cast<std::uint64_t>(k));
    }
  };
  first(sc_.lookups_per_s, WorkKind::Lookup);
  first(sc_.puts_per_s, WorkKind::Put);
  first(sc_.gets_per_s, WorkKind::Get);
  push(at_s(sc_.interval_s), EventType::Sample);
}

Simulator::~Simulator() = default;

void Simulator::push(Instant at, EventType type, std::uint32_t node, std::uint64_t arg) {
  heap_.push(Event{at, seq_++, type, node, arg});
}

void Simulator::push_start(std::size_t i) {
  if (i >= sc_.nodes) return;
  heap_.push(
      Event{at_s(static_cast<double>(i) / sc_.join_rate), i, EventType::Start, static_cast<std::uint32_t>(i), 0});
}

bool Simulator::run_until(double until_s) {
  if (finished_) return false;
  Instant until = std::min(at_s(until_s), end_);
  while (!heap_.empty() && heap_.top().at <= until) {
    const Event e = heap_.pop();
    prefetch(heap_.second(), heap_.empty() ? nullptr : &heap_.top());
    now_ = std::max(now_, e.at);
    ++results_.events;
    process(e);
  }
  now_ = std::max(now_, until);
  if (until >= end_) {
    finish();
    return false;
  }
  return true;
}

void Simulator::finish() {
  account_time();
  if (results_.series.empty() || results_.series.back().t_s < now_s()) sample();
  finished_ = true;
}

void Simulator::stop() {
  if (finished_) return;
  stopped_early_ = true;
  finish();
}

namespace {
/// Asks the memory system for [p, p + size) ahead of its use (a hint only).
void prefetch_range(const void* p, std::size_t size) {
  const char* c = static_cast<const char*>(p);
  for (std::size_t off = 0; off < size; off += 64) __builtin_prefetch(c + off);
}
}  // namespace

// At scale every event touches a node and a message that no recent event touched, and the run waits
// on memory more than it computes. The next events are known, so their data is requested while
// this one runs, in two steps: for the event after next, the lines that say where its data is (its
// flight and its slot); for the next one, whose flight and slot should be in cache by now, the data
// itself (the message's bytes and the node). A prediction that a new event proves wrong costs a
// few wasted requests, nothing else. Prefetching one level deeper (the node's own tables) was
// measured too, and was slower (docs/PERFORMANCE.md).
void Simulator::prefetch(const Event* after_next, const Event* next) const {
  auto touches_node = [](const Event* e) {
    return e != nullptr && (e->type == EventType::Deliver || e->type == EventType::Timer);
  };
  if (touches_node(after_next)) {
    __builtin_prefetch(&slots_[after_next->node].node);
    if (after_next->type == EventType::Deliver) __builtin_prefetch(&flight_[after_next->arg]);
  }
  if (!touches_node(next)) return;
  if (next->type == EventType::Deliver) {
    const std::string& bytes = flight_[next->arg].bytes;
    prefetch_range(bytes.data(), std::min<std::size_t>(bytes.size(), 2048));
  }
  if (const auto& node = slots_[next->node].node) {
    prefetch_range(node.get(), sizeof(peer::Peer));
  }
}

void Simulator::process(const Event& e) {
  switch (e.type) {
    case EventType::Deliver: deliver(e.arg); return;
    case EventType::Timer: timer(e.node, e.at); return;
    case EventType::Start: {
      push_start(std::size_t{e.node} + 1);
      std::optional<dht::NodeId> id;
      if (e.node < sc_.node_ids.size()) id = dht::NodeId::from_hex(sc_.node_ids[e.node]);
      spawn(id);
      return;
    }
    case EventType::Depart: {
      Slot& s = slots_[e.node];
      if (!s.node) return;
      if (e.arg != 0) {  // the end of a graceful leave: the process exits
        if (s.leaving) kill(e.node, false);
        return;
      }
      if (s.leaving) return;
      bool graceful = sc_.leave_fraction > 0 && churn_rng_.uniform() < sc_.leave_fraction;
      kill(e.node, graceful);
      spawn(std::nullopt);  // a newcomer takes the departed node's place: the population stays
      return;
    }
    case EventType::Arrive: {
      spawn(std::nullopt);
      return;
    }
    case EventType::Scripted: scripted(sc_.events[e.arg]); return;
    case EventType::Heal: partitioned_ = false; return;
    case EventType::Workload: workload(static_cast<WorkKind>(e.arg & 0xff), e.arg >> 8); return;
    case EventType::NodeWork: node_work(e.node, static_cast<WorkKind>(e.arg)); return;
    case EventType::Sample:
      sample();
      push(now_ + Duration(static_cast<std::int64_t>(sc_.interval_s * 1e6)), EventType::Sample);
      return;
  }
}

void Simulator::log(std::uint32_t node, LogLevel level, std::string_view text) {
  if (sink_ && std::find(traced_.begin(), traced_.end(), node) != traced_.end()) sink_(now_s(), node, level, text);
}

// ---- network ---------------------------------------------------------------------------------------

Endpoint Simulator::address(std::uint32_t node) const {
  // 10.0.0.0/8 numbered by creation order: these addresses exist only inside the simulation.
  Endpoint e;
  e.transport = Transport::Udp;
  const std::uint32_t n = node + 1;
  e.ip.bytes[0] = 10;
  e.ip.bytes[1] = static_cast<std::uint8_t>(n >> 16);
  e.ip.bytes[2] = static_cast<std::uint8_t>(n >> 8);
  e.ip.bytes[3] = static_cast<std::uint8_t>(n);
  e.port = kPort;
  return e;
}

Duration Simulator::delay(std::uint32_t from, std::uint32_t to) {
  const Place& a = places_[from];
  const Place& b = places_[to];
  const double dx = a.x - b.x;
  const double dy = a.y - b.y;
  const double prop_us = std::sqrt(dx * dx + dy * dy) * sc_.propagation_ms * 1000.0;
  return Duration(static_cast<std::int64_t>(prop_us) + a.access_us + b.access_us + 1);
}

bool Simulator::transmit(std::uint32_t from, const Endpoint& to, std::string_view bytes, std::string* take) {
  Slot& src = slots_[from];
  ++src.messages_sent;
  src.bytes_sent += bytes.size();
  ++results_.messages;
  results_.bytes += bytes.size();
  ++row_.messages;
  row_.bytes += bytes.size();
  // Only 10.0.0.0/8 addresses of existing nodes lead anywhere; the rest vanish, as on a real
  // network where nobody listens.
  const auto& ip = to.ip.bytes;
  const std::uint32_t n = (std::uint32_t{ip[1]} << 16 | std::uint32_t{ip[2]} << 8 | ip[3]);
  if (to.ip.v6 || ip[0] != 10 || to.port != kPort || n == 0 || n > slots_.size()) {
    ++results_.undeliverable;
    return true;
  }
  const std::uint32_t dest = n - 1;
  if (partitioned_ && (places_[from].x < 0.5F) != (places_[dest].x < 0.5F)) {
    ++results_.partitioned;
    ++row_.lost;
    return true;
  }
  // Loss applies to datagrams; a stream's transport retransmits for itself.
  if (to.transport == Transport::Udp && sc_.loss > 0 && rng_.uniform() < sc_.loss) {
    ++results_.lost;
    ++row_.lost;
    return true;
  }
  std::uint64_t slot = 0;
  if (!flight_free_.empty()) {
    slot = flight_free_.back();
    flight_free_.pop_back();
  } else {
    slot = flight_.size();
    flight_.emplace_back();
  }
  InFlight& f = flight_[slot];
  if (take != nullptr) {
    f.bytes = std::move(*take);
  } else {
    f.bytes.assign(bytes.data(), bytes.size());
  }
  f.from = address(from);
  f.from.transport = to.transport;
  f.from_node = from;
  f.to = dest;
  f.transport = to.transport;
  push(now_ + delay(from, dest), EventType::Deliver, dest, slot);
  return true;
}

void Simulator::deliver(std::uint64_t slot) {
  // Moved out first: the node's answers may grow flight_ while it handles this one.
  InFlight f = std::move(flight_[slot]);
  flight_free_.push_back(slot);
  const std::uint32_t to = f.to;
  Slot& s = slots_[to];
  if (!s.node) {
    ++results_.undeliverable;
    return;
  }
  if (s.malicious && attacked(to, f)) return;
  // The message takes the bytes' buffer (one message per flight: a datagram, or one framed from a stream).
  auto m = sip::parse_taking(f.bytes, config_.limits, f.transport != Transport::Udp);
  if (m) {
    // Over TLS the handshake would have proved who the sender is: the simulator knows.
    if (f.transport == Transport::Tls) {
      const LinkIdentity link = slots_[f.from_node].id.link_identity();
      s.node->receive(peer::Face::Overlay, std::move(*m), f.from, now_, &link);
    } else {
      s.node->receive(peer::Face::Overlay, std::move(*m), f.from, now_);
    }
  } else {
    s.node->answer_malformed(peer::Face::Overlay, f.bytes, m.error(), f.from);
  }
  touched(to);
}

// ---- nodes -----------------------------------------------------------------------------------------

void Simulator::timer(std::uint32_t node, Instant at) {
  Slot& s = slots_[node];
  if (!s.node || s.scheduled != at) return;  // dead, or superseded by an earlier timer
  s.scheduled = kInstantMax;
  s.node->advance(now_);
  touched(node);
}

void Simulator::touched(std::uint32_t node) {
  Slot& s = slots_[node];
  if (!s.node) return;
  Instant w = s.node->next_wakeup();
  if (w < s.scheduled) {
    s.scheduled = std::max(w, now_);
    push(s.scheduled, EventType::Timer, node);
  }
  if (s.joined_pos < 0 && !s.leaving && s.node->chord().joined()) {
    s.joined_pos = static_cast<std::int32_t>(joined_list_.size());
    s.joined_at = now_;
    results_.join_s.push_back(static_cast<float>(static_cast<double>((now_ - s.born).count()) / 1e6));
    joined_list_.push_back(node);
    ring_[s.id] = node;
    begin_node_work(node);
  }
}

std::uint32_t Simulator::create_node(std::optional<dht::NodeId> id) {
  const auto index = static_cast<std::uint32_t>(slots_.size());
  slots_.emplace_back(*this, index, Rng(sc_.seed, 1000 + std::uint64_t{index}));
  Slot& s = slots_.back();
  Rng place(sc_.seed, (std::uint64_t{1} << 40) + index);
  Place& p = places_.emplace_back();
  p.x = static_cast<float>(place.uniform());
  p.y = static_cast<float>(place.uniform());
  p.access_us = static_cast<std::int64_t>(sc_.access_ms.sample(place) * 1000.0);
  if (id) {
    s.id = *id;
  } else {
    s.id.hi = place.next();
    s.id.lo = place.next();
  }
  if (sc_.security) {
    // An enrolled node: a key of its own, the CA's certificate, a Node-ID that is the key's digest.
    Rng keys(sc_.seed, (std::uint64_t{1} << 41) + index);
    auto sec = std::make_unique<NodeSecurity>();
    sec->key = key_from(keys);
    sec->cert = *security::issue_node(ca_key_, *root_, sec->key.public_key, 2 + index,
                                      {kEpochS - 86400, kEpochS + 10 * 365 * 86400});
    s.id = *sec->cert.info().node_id;
    s.sec = std::move(sec);
  }
  // The node that starts the ring (the overlay's first bootstrap, its operator's) is honest.
  if (index > 0 && sc_.malicious_fraction > 0 && attack_rng_.uniform() < sc_.malicious_fraction) {
    s.malicious = true;
    s.forges =
        sc_.attack == Scenario::Attack::Forge || (sc_.attack == Scenario::Attack::Mixed && attack_rng_.uniform() < 0.5);
    ++results_.malicious_nodes;
  }
  return index;
}

void Simulator::start_node(std::uint32_t node) {
  account_time();
  Slot& s = slots_[node];
  // The very peer `p2psip node` runs, with the simulation's settings and (with [security]) the
  // host's identity under the simulation's CA.
  peer::PeerConfig pc;
  pc.overlay = config_;
  pc.id = s.id;
  pc.address = address(node);
  if (s.sec) {
    peer::PeerSecurity sec;
    sec.crypto = crypto_.get();
    sec.self = security::Identity{s.sec->key, std::move(s.sec->cert)};
    sec.trust = security::TrustAnchor::ca(*root_);
    sec.certificate_cache = 4096;
    sec.sign_messages = sc_.sign_messages;
    pc.security = std::move(sec);
    s.sec.reset();
  }
  s.node = std::make_unique<peer::Peer>(std::move(pc), s.host);
  s.born = now_;
  s.live_pos = static_cast<std::int32_t>(live_);
  ++live_;
  results_.peak_live = std::max(results_.peak_live, live_);
  ++results_.joins;
  ++row_.joins;
  // Bootstrap through up to three random joined nodes; none: a new ring.
  std::vector<Endpoint> boot;
  for (int i = 0; i < 3 && !joined_list_.empty(); ++i) {
    boot.push_back(address(joined_list_[churn_rng_.below(joined_list_.size())]));
  }
  s.node->start(boot, now_);
  touched(node);
}

void Simulator::spawn(std::optional<dht::NodeId> id) {
  const std::uint32_t n = create_node(id);
  start_node(n);
  if (sc_.session_s) schedule_departure(n);
}

void Simulator::schedule_departure(std::uint32_t node) {
  double session = sc_.session_s->sample(churn_rng_);
  double at = std::max(now_s(), sc_.churn_start_s) + session;
  if (at < sc_.duration_s) push(at_s(at), EventType::Depart, node, 0);
}

void Simulator::kill(std::uint32_t node, bool graceful) {
  account_time();
  Slot& s = slots_[node];
  if (s.joined_pos >= 0) {
    std::uint32_t last = joined_list_.back();
    joined_list_[static_cast<std::size_t>(s.joined_pos)] = last;
    slots_[last].joined_pos = s.joined_pos;
    joined_list_.pop_back();
    s.joined_pos = -1;
    ring_.erase(s.id);
  }
  if (graceful) {
    // RFC 6940 §10.5-style graceful leave: the node hands over and tells its neighbours, then goes.
    s.leaving = true;
    s.node->overlay().leave(now_);
    ++results_.leaves;
    ++row_.departures;
    touched(node);
    push(now_ + kGracefulLeaveTime, EventType::Depart, node, 1);
    return;
  }
  if (!s.leaving) {
    ++results_.failures;
    ++row_.departures;
  }
  results_.abandoned += s.ops_pending;
  results_.retransmissions += s.node->overlay().transactions().stats().retransmissions_sent;
  results_.timeouts += s.node->overlay().transactions().stats().timeouts;
  s.ops_pending = 0;
  s.node.reset();
  s.sec.reset();  // the dead keep their id, not their certificate
  s.died = now_;
  s.leaving = false;
  --live_;
}

void Simulator::scripted(const ScriptedEvent& ev) {
  switch (ev.kind) {
    case ScriptedEvent::Kind::Fail: {
      // Fail a random subset of the live nodes at once (Fisher-Yates over the live ones).
      std::vector<std::uint32_t> live;
      for (std::uint32_t i = 0; i < slots_.size(); ++i) {
        if (slots_[i].node && !slots_[i].leaving) live.push_back(i);
      }
      auto count = static_cast<std::size_t>(std::llround(ev.fraction * static_cast<double>(live.size())));
      for (std::size_t i = 0; i < count; ++i) {
        std::size_t j = i + churn_rng_.below(live.size() - i);
        std::swap(live[i], live[j]);
        kill(live[i], false);
      }
      return;
    }
    case ScriptedEvent::Kind::Join: {
      auto count = static_cast<std::size_t>(std::llround(ev.fraction * static_cast<double>(live_)));
      for (std::size_t i = 0; i < count; ++i) push(now_, EventType::Arrive);
      return;
    }
    case ScriptedEvent::Kind::Partition:
      partitioned_ = true;
      push(now_ + Duration(static_cast<std::int64_t>(ev.duration_s * 1e6)), EventType::Heal);
      return;
  }
}

// ---- workload --------------------------------------------------------------------------------------

std::optional<std::uint32_t> Simulator::random_joined() {
  if (joined_list_.empty()) return std::nullopt;
  return joined_list_[work_rng_.below(joined_list_.size())];
}

std::optional<std::uint32_t> Simulator::random_honest_joined() {
  // Malicious nodes are a minority: a few draws find an honest one.
  for (int i = 0; i < 64; ++i) {
    auto n = random_joined();
    if (!n || !slots_[*n].malicious) return n;
  }
  return std::nullopt;
}

bool Simulator::attacked(std::uint32_t to, const InFlight& f) {
  // Only routed lookups and fetches are attacked: the node keeps up its maintenance (so that it
  // stays in the ring and keeps receiving them) and handles stores honestly.
  std::size_t used = 0;
  auto m = f.transport == Transport::Udp ? sip::parse_datagram(f.bytes, config_.limits)
                                         : sip::parse_message(f.bytes, config_.limits, true, &used);
  if (!m || !m->is_request() || m->method_id() != sip::Method::Register) return false;
  const auto op = m->header("DHT-Op");
  if (!op || (*op != "lookup" && *op != "fetch")) return false;
  auto req = overlay::decode_request(*m, sc_.overlay);
  if (!req) return false;
  Slot& s = slots_[to];
  if (!s.forges) {
    ++results_.attacks_dropped;
    return true;  // never answered, not even 100 Trying: the asker's hop timeout finds it out
  }
  // The forger claims the key for its own. For a fetch it serves a record of its making under the
  // key's name when it knows the name (the simulation tells it: the strongest forger), signed
  // with its own key; otherwise it says there is none.
  dht::Response resp;
  resp.responder = dht::Peer{s.id, address(to)};
  resp.responsible = resp.responder;
  resp.hops = req->hops;
  if (req->route_op == dht::RouteOp::Fetch) {
    auto name = names_.find(req->target);
    if (name == names_.end()) {
      resp.status = 404;
      resp.reason = "No Record";
    } else {
      dht::Record forged;
      forged.key = req->target;
      forged.name = name->second;
      forged.dkey = "forged";
      forged.value = "forged by " + s.id.short_hex();
      forged.owner = s.id.hex();
      forged.lifetime_s = 3600;
      forged.stored_at_us = now_.time_since_epoch().count();
      if (const auto* writer = s.node->writer()) writer->sign(forged, s.host.unix_time_us(now_));
      resp.records.push_back(std::move(forged));
    }
  }
  // The tag from the forger's own stream: attack_rng_ decides who is malicious, and nothing else.
  sip::Message out = overlay::encode_response(*m, resp, sc_.overlay, "f" + std::to_string(s.host.secure_random()));
  if (auto* auth = s.node->overlay().authenticator(); auth != nullptr && f.transport != Transport::Tls) {
    auth->sign_response(out, *m, now_);
  }
  ++results_.attacks_forged;
  Endpoint back = f.from;
  back.transport = f.transport;
  transmit(to, back, out.serialize());
  return true;
}

std::optional<dht::NodeId> Simulator::responsible(dht::NodeId key) const {
  if (ring_.empty()) return std::nullopt;
  auto it = ring_.lower_bound(key);
  if (it == ring_.end()) it = ring_.begin();
  return it->first;
}

Duration Simulator::exponential_gap(double rate) {
  return Duration(static_cast<std::int64_t>(-std::log(work_rng_.uniform_open0()) / rate * 1e6));
}

void Simulator::workload(WorkKind kind, std::uint64_t arg) {
  if (kind == WorkKind::Script) {
    const ScriptedOp& op = sc_.script[arg];
    if (op.node < slots_.size() && slots_[op.node].node) {
      // A scripted put stores, and a scripted get expects, a value derived from the key.
      route(static_cast<std::uint32_t>(op.node), op.op, op.key, "value-of-" + op.key);
    }
    return;
  }
  if (now_ >= work_end_) return;
  const double rate = kind == WorkKind::Lookup ? sc_.lookups_per_s
                      : kind == WorkKind::Put  ? sc_.puts_per_s
                                               : sc_.gets_per_s;
  push(now_ + exponential_gap(rate), EventType::Workload, 0, static_cast<std::uint64_t>(kind));
  if (auto from = random_honest_joined()) issue(kind, *from);
}

double Simulator::per_node_rate(WorkKind kind) const {
  switch (kind) {
    case WorkKind::Lookup: return sc_.lookups_per_node_per_s;
    case WorkKind::Put: return sc_.puts_per_node_per_s;
    case WorkKind::Get: return sc_.gets_per_node_per_s;
    case WorkKind::Script: return 0;
  }
  return 0;
}

// Each joined honest node runs its own Poisson stream of each kind with a per-node rate: their sum
// is a Poisson stream at rate × the joined population, however that population changes. A node's
// stream ends with its membership (it failed or is leaving) or with the workload.
void Simulator::begin_node_work(std::uint32_t node) {
  if (slots_[node].malicious) return;  // operations start at honest nodes only
  const Instant from = std::max(now_, at_s(sc_.workload_start_s));
  if (from >= work_end_) return;
  for (WorkKind kind : {WorkKind::Lookup, WorkKind::Put, WorkKind::Get}) {
    const double rate = per_node_rate(kind);
    if (rate > 0) push(from + exponential_gap(rate), EventType::NodeWork, node, static_cast<std::uint64_t>(kind));
  }
}

void Simulator::node_work(std::uint32_t node, WorkKind kind) {
  if (slots_[node].joined_pos < 0 || now_ >= work_end_) return;  // failed or leaving, or the workload is over
  push(now_ + exponential_gap(per_node_rate(kind)), EventType::NodeWork, node, static_cast<std::uint64_t>(kind));
  issue(kind, node);
}

void Simulator::issue(WorkKind kind, std::uint32_t from) {
  switch (kind) {
    case WorkKind::Lookup: {
      char key[32];
      std::snprintf(key, sizeof key, "k%016llx", static_cast<unsigned long long>(work_rng_.next()));
      route(from, dht::RouteOp::Lookup, key, std::nullopt);
      return;
    }
    case WorkKind::Put: {
      const std::string rec = "rec-" + std::to_string(results_.puts.issued);
      const std::string value = "value-" + std::to_string(work_rng_.next() % 1000000);
      // With identities a node may write only under its own Node-ID (NODE-MATCH): each put is an
      // entry of its own there, in the node's dictionary.
      if (sc_.security) {
        route(from, dht::RouteOp::Store, slots_[from].id.hex(), value, rec);
      } else {
        route(from, dht::RouteOp::Store, rec, value);
      }
      return;
    }
    case WorkKind::Get: {
      if (stored_.empty()) return;
      const Stored& st = stored_[work_rng_.below(stored_.size())];
      route(from, dht::RouteOp::Fetch, st.name, st.value, st.dkey);
      return;
    }
    case WorkKind::Script: return;
  }
}

void Simulator::route(std::uint32_t from, dht::RouteOp op, const std::string& key, std::optional<std::string> expect,
                      std::string dkey) {
  Slot& s = slots_[from];
  const dht::NodeId id = dht::NodeId::hash(key);
  OpCounts& counts = op == dht::RouteOp::Lookup  ? results_.lookups
                     : op == dht::RouteOp::Store ? results_.puts
                                                 : results_.gets;
  ++counts.issued;
  ++s.ops_pending;
  std::optional<dht::Record> record;
  if (op == dht::RouteOp::Store) {
    record = dht::Record{};
    record->key = id;
    record->name = key;
    record->dkey = dkey;
    record->value = expect.value_or("");
    record->owner = s.id.hex();
    record->lifetime_s = 24 * 3600;
    if (const auto* writer = s.node->writer()) writer->sign(*record, s.host.unix_time_us(now_));
    names_.emplace(id, key);
  }
  const Instant start = now_;
  auto done = [this, from, op, id, key, dkey, start, expect, &counts](const dht::RouteResult& r) {
    --slots_[from].ops_pending;
    ++counts.done;
    const bool answered = r.status == 200;
    bool ok = false;
    switch (op) {
      case dht::RouteOp::Lookup: {
        ok = answered && r.responsible && responsible(id) == r.responsible->id;
        ++row_.lookups;
        if (ok) {
          ++row_.lookups_ok;
          row_.hops_sum += r.hops;
          ++results_.hops_histogram[std::min<std::size_t>(r.hops, kMaxHops)];
          results_.latency_ms.push_back(static_cast<float>(to_millis(now_ - start)));
        }
        break;
      }
      case dht::RouteOp::Store:
        ok = answered;
        if (ok) stored_.push_back(Stored{key, dkey, *expect});
        break;
      case dht::RouteOp::Fetch:
        // The entry put, among what came back (every record that came back was believed: with
        // identities the asker checked each one).
        ok = answered && std::any_of(r.records.begin(), r.records.end(),
                                     [&](const dht::Record& rec) { return rec.dkey == dkey && rec.value == *expect; });
        results_.get_attempts += static_cast<std::uint64_t>(r.attempts);
        break;
    }
    if (ok) {
      ++counts.ok;
    } else if (answered) {
      ++counts.wrong;
    } else {
      ++counts.failed;
    }
  };
  s.node->chord().route(op, id, record, done, now_);
  touched(from);
}

// ---- measurement ------------------------------------------------------------------------------------

void Simulator::account_time() {
  results_.node_seconds += static_cast<double>(live_) * static_cast<double>((now_ - last_account_).count()) / 1e6;
  last_account_ = now_;
}

void Simulator::sample() {
  row_.t_s = now_s();
  row_.live = live_;
  row_.joined = joined_list_.size();
  row_.transactions = transactions();
  results_.series.push_back(row_);
  row_ = IntervalRow{};
}

std::size_t Simulator::ring_errors(std::vector<std::string>* details) const {
  std::size_t errors = 0;
  if (ring_.size() < 2) return 0;
  for (auto it = ring_.begin(); it != ring_.end(); ++it) {
    auto next = std::next(it) == ring_.end() ? ring_.begin() : std::next(it);
    auto prev = it == ring_.begin() ? std::prev(ring_.end()) : std::prev(it);
    const auto& table = slots_[it->second].node->chord().table();
    const bool succ_ok = table.successor().id == next->first;
    const bool pred_ok = table.predecessor() && table.predecessor()->id == prev->first;
    if (succ_ok && pred_ok) continue;
    ++errors;
    if (details) {
      std::string line = "node " + std::to_string(it->second) + " " + it->first.hex();
      if (!succ_ok) line += " successor " + table.successor().id.hex() + " should be " + next->first.hex();
      if (!pred_ok) {
        line += " predecessor " + (table.predecessor() ? table.predecessor()->id.hex() : std::string("none")) +
                " should be " + prev->first.hex();
      }
      details->push_back(line);
    }
  }
  return errors;
}

std::size_t Simulator::transactions() const {
  std::size_t n = 0;
  for (const auto& s : slots_) {
    if (s.node) n += s.node->overlay().transactions().size();
  }
  return n;
}

std::pair<std::uint64_t, std::uint64_t> Simulator::retransmissions_and_timeouts() const {
  std::uint64_t r = results_.retransmissions;
  std::uint64_t t = results_.timeouts;
  for (const auto& s : slots_) {
    if (!s.node) continue;
    r += s.node->overlay().transactions().stats().retransmissions_sent;
    t += s.node->overlay().transactions().stats().timeouts;
  }
  return {r, t};
}

std::size_t Simulator::nodes_created() const {
  return slots_.size();
}

std::vector<NodeReport> Simulator::node_reports() const {
  std::vector<NodeReport> out;
  out.reserve(slots_.size());
  for (const auto& s : slots_) {
    NodeReport r;
    r.id_hex = s.id.hex();
    r.alive = s.node != nullptr;
    r.joined = s.joined_pos >= 0;
    r.messages_sent = s.messages_sent;
    r.bytes_sent = s.bytes_sent;
    Instant until = s.node ? now_ : s.died;
    r.alive_s = static_cast<double>((until - s.born).count()) / 1e6;
    if (s.joined_at != kInstantMax) r.join_s = static_cast<double>((s.joined_at - s.born).count()) / 1e6;
    out.push_back(r);
  }
  return out;
}

}  // namespace p2psip::sim
