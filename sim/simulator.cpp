#include "sim/simulator.hpp"

#include <algorithm>

#include "nat/stun.hpp"
#include "sim/events.hpp"

namespace p2psip::sim {

overlay::OverlayConfig Simulator::peer_settings(const Scenario& sc) {
  overlay::OverlayConfig c;
  c.overlay = sc.overlay;
  c.chord = sc.chord;
  c.link_transport = sc.transport;
  c.timers.t1 = Duration(static_cast<std::int64_t>(sc.t1_ms * 1000));
  if (sc.hop_timeout_ms >= 0) c.hop_timeout = Duration(static_cast<std::int64_t>(sc.hop_timeout_ms * 1000));
  return c;
}

Simulator::Simulator(Scenario scenario)
    : sc_(std::move(scenario)),
      config_(peer_settings(sc_)),
      network_(sc_, engine_, metrics_),
      ice_(sc_, engine_, network_, metrics_),
      population_(sc_, config_, engine_, network_, metrics_, sc_.nat.any() && sc_.nat.ice ? &ice_ : nullptr),
      workload_(sc_, engine_, population_, metrics_),
      adversary_(sc_, engine_, population_, workload_, metrics_, ice_),
      telephony_(sc_, engine_, metrics_),
      end_(at_s(sc_.duration_s)) {
  population_.on_created = [this](Host& host, std::uint32_t index) {
    adversary_.decide(host, index);
    return telephony_.decide();
  };
  population_.on_joined = [this](std::uint32_t host) {
    workload_.node_joined(host);
    Host& h = population_.host(host);
    if (h.phone && h.phone->phone) {
      telephony_.joined(host, *h.phone->phone);
      population_.touched(host);
    }
  };
  population_.on_died = [this](std::uint32_t host) { telephony_.died(host); };
  // In this order: the population's starts take the first sequence numbers, then the scripted
  // events, the workload's first arrivals and the first sample.
  population_.schedule_initial();
  for (std::size_t i = 0; i < sc_.events.size(); ++i) {
    engine_.push(at_s(sc_.events[i].at_s), kind(EventKind::Scripted), 0, i);
  }
  workload_.schedule();
  engine_.push(at_s(sc_.interval_s), kind(EventKind::Sample));
}

Simulator::~Simulator() = default;

bool Simulator::run_until(double until_s) {
  if (finished_) return false;
  const Instant until = std::min(at_s(until_s), end_);
  Event e;
  while (engine_.take(until, e)) {
    prefetch(engine_.after_next(), engine_.next());
    ++metrics_.results.events;
    process(e);
  }
  engine_.advance_to(until);
  if (until >= end_) {
    finish();
    return false;
  }
  return true;
}

void Simulator::finish() {
  population_.account_time();
  ice_.finish(engine_.now());
  if (metrics_.results.series.empty() || metrics_.results.series.back().t_s < now_s()) sample();
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
bool touches_host(const Event* e) {
  return e != nullptr && (e->kind == kind(EventKind::Deliver) || e->kind == kind(EventKind::Timer));
}
}  // namespace

// At scale every event touches a host and a message that no recent event touched, and the run waits
// on memory more than it computes. The next events are known, so their data is requested while
// this one runs, in two steps: for the event after next, the lines that say where its data is (its
// flight and its host); for the next one, whose flight and host should be in cache by now, the data
// itself (the message's bytes and the peer). A prediction that a new event proves wrong costs a
// few wasted requests, nothing else. Prefetching one level deeper (the node's own tables) was
// measured too, and was slower (docs/PERFORMANCE.md).
void Simulator::prefetch(const Event* after_next, const Event* next) const {
  if (touches_host(after_next)) {
    __builtin_prefetch(&population_.host(after_next->host).peer);
    if (after_next->kind == kind(EventKind::Deliver)) __builtin_prefetch(&network_.in_flight(after_next->arg));
  }
  if (!touches_host(next)) return;
  if (next->kind == kind(EventKind::Deliver)) {
    const std::string& bytes = network_.in_flight(next->arg).bytes;
    prefetch_range(bytes.data(), std::min<std::size_t>(bytes.size(), 2048));
  }
  if (const auto& peer = population_.host(next->host).peer) prefetch_range(peer.get(), sizeof(peer::Peer));
}

void Simulator::process(const Event& e) {
  switch (static_cast<EventKind>(e.kind)) {
    case EventKind::Deliver: deliver(e.arg); return;
    case EventKind::Timer: population_.timer(e.host, e.at); return;
    case EventKind::Start: population_.start_next(e.host); return;
    case EventKind::Depart: population_.depart(e.host, e.arg != 0); return;
    case EventKind::Arrive: population_.arrive(); return;
    case EventKind::Scripted: scripted(sc_.events[e.arg]); return;
    case EventKind::Heal: network_.heal(); return;
    case EventKind::Workload: workload_.overlay_wide(static_cast<Workload::Kind>(e.arg & 0xff), e.arg >> 8); return;
    case EventKind::NodeWork: workload_.node_work(e.host, static_cast<Workload::Kind>(e.arg)); return;
    case EventKind::Call: {
      Host& h = population_.host(e.host);
      telephony_.call_event(e.host, h.phone && h.phone->phone ? &*h.phone->phone : nullptr);
      population_.touched(e.host);
      return;
    }
    case EventKind::Ice: ice_report(e.arg); return;
    case EventKind::Sample:
      sample();
      engine_.push(engine_.now() + Duration(static_cast<std::int64_t>(sc_.interval_s * 1e6)), kind(EventKind::Sample));
      return;
  }
}

void Simulator::deliver(std::uint64_t flight) {
  InFlight f = network_.arrive(flight);
  if (f.dropped) return;  // its NAT kept it out (counted there)
  const std::uint32_t to = f.to;
  Host& h = population_.host(to);
  if (!h.peer) {
    ++metrics_.results.undeliverable;
    return;
  }
  if (f.to_port == Network::kPhonePort) {  // the host's phone
    if (h.phone && h.phone->phone) h.phone->phone->receive_datagram(f.bytes, f.from, engine_.now());
    population_.touched(to);
    return;
  }
  if (f.to_port == Network::kPhoneSidePort) {  // the peer's phone side
    auto m = sip::parse_taking(f.bytes, config_.limits, f.transport != Transport::Udp);
    if (m) {
      h.peer->receive(peer::Face::Phones, std::move(*m), f.from, engine_.now());
    } else {
      h.peer->answer_malformed(peer::Face::Phones, f.bytes, m.error(), f.from);
    }
    population_.touched(to);
    return;
  }
  if (f.link != 0) {  // over an ICE link: to the session it came for, if still open
    if (!ice_.is_open(to, f.link)) {
      ++metrics_.results.undeliverable;
      return;
    }
    if (h.malicious && adversary_.intercept(to, f)) return;
    h.peer->ice_datagram(f.link, f.bytes, engine_.now());
    population_.touched(to);
    return;
  }
  if (h.malicious && adversary_.intercept(to, f)) return;
  if (f.transport == Transport::Udp && nat::looks_like_stun(f.bytes)) {
    // STUN on the overlay port (reachability checks, a client's keep-alives): the peer tells it
    // from SIP as the daemon's socket does.
    h.peer->receive_datagram(peer::Face::Overlay, f.bytes, f.from, engine_.now());
    population_.touched(to);
    return;
  }
  if (f.transport != Transport::Udp && (f.bytes == "\r\n\r\n" || f.bytes == "\r\n")) {
    // RFC 5626 §4.4.1 on a stream flow: the relay's stack answers a CRLFCRLF ping with a CRLF pong,
    // as the daemon's runtime does, and the client's peer hears the pong.
    if (f.bytes.size() == 4) {
      population_.transmit(to, Network::kOverlayPort, f.from, "\r\n", nullptr);
    } else {
      h.peer->pong(peer::Face::Overlay, f.from, engine_.now());
    }
    population_.touched(to);
    return;
  }
  // The message takes the bytes' buffer (one message per flight: a datagram, or one framed from a stream).
  auto m = sip::parse_taking(f.bytes, config_.limits, f.transport != Transport::Udp);
  if (m) {
    if (f.transport == Transport::Tls) {
      // Over TLS the handshake would have proved who the sender is: the simulator knows.
      const LinkIdentity link = population_.host(f.from_host).id.link_identity();
      h.peer->receive(peer::Face::Overlay, std::move(*m), f.from, engine_.now(), &link);
    } else {
      h.peer->receive(peer::Face::Overlay, std::move(*m), f.from, engine_.now());
    }
  } else {
    h.peer->answer_malformed(peer::Face::Overlay, f.bytes, m.error(), f.from);
  }
  population_.touched(to);
}

void Simulator::ice_report(std::uint64_t slot) {
  auto r = ice_.take(slot);
  if (!r) return;  // its session closed meanwhile
  Host& h = population_.host(r->host);
  if (!h.peer) return;
  const Instant now = engine_.now();
  switch (r->kind) {
    case IceModel::Report::Kind::Started:
      h.peer->ice_credentials(r->session, r->credentials, now);
      for (const auto& c : r->candidates) h.peer->ice_candidate(r->session, c, now);
      break;
    case IceModel::Report::Kind::Gathered:
      for (const auto& c : r->candidates) h.peer->ice_candidate(r->session, c, now);
      h.peer->ice_gathering_done(r->session, now);
      break;
    case IceModel::Report::Kind::Connected: h.peer->ice_connected(r->session, r->local, r->remote, now); break;
    case IceModel::Report::Kind::Failed: h.peer->ice_failed(r->session, now); break;
  }
  population_.touched(r->host);
}

void Simulator::scripted(const ScriptedEvent& ev) {
  switch (ev.kind) {
    case ScriptedEvent::Kind::Fail: population_.fail_fraction(ev.fraction); return;
    case ScriptedEvent::Kind::Join: population_.join_fraction(ev.fraction); return;
    case ScriptedEvent::Kind::Partition:
      network_.partition();
      engine_.push(engine_.now() + Duration(static_cast<std::int64_t>(ev.duration_s * 1e6)), kind(EventKind::Heal));
      return;
  }
}

void Simulator::sample() {
  IntervalRow& row = metrics_.row;
  row.t_s = now_s();
  row.live = population_.live();
  row.joined = population_.joined();
  row.transactions = population_.transactions();
  metrics_.results.series.push_back(row);
  row = IntervalRow{};
}

}  // namespace p2psip::sim
