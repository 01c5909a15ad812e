#include "nat/flows.hpp"

#include <algorithm>

namespace p2psip::nat {

std::string_view flow_state_name(FlowState s) {
  switch (s) {
    case FlowState::Idle: return "idle";
    case FlowState::Registering: return "registering";
    case FlowState::Active: return "active";
  }
  return "idle";
}

namespace {
bool same_endpoint(const Endpoint& a, const Endpoint& b) {
  return a.ip == b.ip && a.port == b.port;
}
}  // namespace

FlowSet::FlowSet(FlowTransport& transport, StunClient& keepalive, Environment& env, FlowConfig cfg)
    : transport_(transport), stun_(keepalive), env_(env), cfg_(cfg) {
  if (cfg_.flows == 0) cfg_.flows = 1;
  for (std::size_t i = 0; i < cfg_.flows; ++i) {
    FlowStatus f;
    f.reg_id = static_cast<std::uint32_t>(i + 1);  // RFC 5626 §4.2: reg-id 1, 2, ...
    flows_.push_back(f);
    Timing t;
    t.next = Instant{};  // as soon as a relay is known
    timing_.push_back(t);
  }
}

FlowSet::~FlowSet() {
  for (auto& t : timing_) {
    if (t.probe) stun_.cancel(*t.probe);
  }
}

Duration FlowSet::jitter(Duration lo, Duration hi) {
  if (hi <= lo) return lo;
  const auto span = static_cast<std::uint64_t>((hi - lo).count());
  return lo + Duration(static_cast<Duration::rep>(env_.random() % (span + 1)));
}

std::size_t FlowSet::index_of(std::uint32_t reg_id) const {
  for (std::size_t i = 0; i < flows_.size(); ++i) {
    if (flows_[i].reg_id == reg_id) return i;
  }
  return flows_.size();
}

void FlowSet::set_candidates(std::vector<Endpoint> relays, Instant now) {
  candidates_ = std::move(relays);
  for (std::size_t i = 0; i < flows_.size(); ++i) {
    // A flow that found no relay before may find one now (a back-off still runs its course).
    if (flows_[i].state == FlowState::Idle && timing_[i].next == kInstantMax && flows_[i].failures == 0) {
      timing_[i].next = now;
    }
  }
  advance(now);
}

std::optional<Endpoint> FlowSet::pick_relay(std::size_t i, Instant now) const {
  const auto usable = [&](const Endpoint& c) {
    for (std::size_t k = 0; k < flows_.size(); ++k) {
      // RFC 5626 §4.2: each flow to a different peer.
      if (k != i && flows_[k].state != FlowState::Idle && flows_[k].relay && same_endpoint(*flows_[k].relay, c)) {
        return false;
      }
    }
    return std::none_of(refused_until_.begin(), refused_until_.end(),
                        [&](const auto& r) { return same_endpoint(r.first, c) && r.second > now; });
  };
  // The relay this flow last used comes first while it has not failed; after a failure, another.
  const auto& last = flows_[i].relay;
  if (last && flows_[i].failures == 0 && usable(*last)) return last;
  std::optional<Endpoint> fallback;
  for (const auto& c : candidates_) {
    if (!usable(c)) continue;
    if (last && same_endpoint(*last, c)) {
      if (!fallback) fallback = c;
      continue;
    }
    return c;
  }
  return fallback;
}

void FlowSet::set_state(FlowStatus& f, FlowState s) {
  if (f.state == s) return;
  f.state = s;
  ++version_;
}

void FlowSet::start_registration(std::size_t i, Instant now) {
  FlowStatus& f = flows_[i];
  Timing& t = timing_[i];
  const auto relay = pick_relay(i, now);
  if (!relay) {
    // Nobody to ask: wait for candidates, or for the first refusal to lapse.
    set_state(f, FlowState::Idle);
    t.next = kInstantMax;
    for (const auto& r : refused_until_) {
      if (r.second > now) t.next = std::min(t.next, r.second);
    }
    return;
  }
  f.relay = relay;
  f.relay_id.clear();
  f.relay_uri.clear();
  set_state(f, FlowState::Registering);
  f.since = now;
  ++t.generation;
  if (t.probe) stun_.cancel(*t.probe);
  t.probe.reset();
  t.refresh = kInstantMax;
  if (!transport_.register_flow(*relay, f.reg_id, cfg_.expires_s, now)) {
    fail(i, now);
    return;
  }
  t.next = now + cfg_.register_timeout;
}

void FlowSet::registered(std::uint32_t reg_id, const std::string& relay_id, const std::string& relay_uri,
                         std::uint32_t expires_s, std::uint32_t flow_timer_s, Instant now,
                         const std::vector<Endpoint>& alternates) {
  const std::size_t i = index_of(reg_id);
  if (i == flows_.size()) return;
  for (const auto& a : alternates) {
    if (candidates_.size() >= 16) break;
    if (std::none_of(candidates_.begin(), candidates_.end(), [&](const Endpoint& c) { return same_endpoint(c, a); })) {
      candidates_.push_back(a);
    }
  }
  FlowStatus& f = flows_[i];
  Timing& t = timing_[i];
  const bool refresh = f.state == FlowState::Active && t.refresh_deadline != kInstantMax;
  if (f.state != FlowState::Registering && !refresh) return;
  ++stats_.registrations;
  const bool fresh = f.state == FlowState::Registering;
  set_state(f, FlowState::Active);
  f.failures = 0;
  f.relay_id = relay_id;
  if (f.relay_uri != relay_uri) ++version_;
  f.relay_uri = relay_uri;
  if (fresh) f.since = now;
  t.keepalive = flow_timer_s > 0 ? seconds(flow_timer_s) : Duration{};
  if (fresh) {
    const auto [lo, hi] = keepalive_range(i);
    t.next = now + jitter(lo, hi);
    // The first keep-alive at once: it says where the relay sees us (and fails a flow that only
    // went one way).
    keepalive(i, now);
  }
  const std::uint32_t granted = expires_s > 0 ? expires_s : cfg_.expires_s;
  t.refresh = now + seconds(granted) * 4 / 5;
  t.refresh_deadline = kInstantMax;
}

void FlowSet::refused(std::uint32_t reg_id, std::uint32_t retry_after_s, Instant now) {
  const std::size_t i = index_of(reg_id);
  if (i == flows_.size() || !flows_[i].relay) return;
  if (flows_[i].state != FlowState::Registering && timing_[i].refresh_deadline == kInstantMax) return;
  ++stats_.refusals;
  refused_until_.erase(
      std::remove_if(refused_until_.begin(), refused_until_.end(), [&](const auto& r) { return r.second <= now; }),
      refused_until_.end());
  refused_until_.emplace_back(*flows_[i].relay, now + seconds(std::max<std::uint32_t>(retry_after_s, 1)));
  // Another relay at once (RFC 5626 §4.5 applies to failures; a refusal names its own wait).
  set_state(flows_[i], FlowState::Idle);
  start_registration(i, now);
}

void FlowSet::failed(std::uint32_t reg_id, Instant now) {
  const std::size_t i = index_of(reg_id);
  if (i == flows_.size()) return;
  if (flows_[i].state == FlowState::Idle) return;
  fail(i, now);
}

void FlowSet::connection_lost(const Endpoint& relay, Instant now) {
  if (!is_reliable(relay.transport)) return;
  for (std::size_t i = 0; i < flows_.size(); ++i) {
    const FlowStatus& f = flows_[i];
    if (f.state != FlowState::Idle && f.relay && *f.relay == relay) fail(i, now);
  }
}

void FlowSet::fail(std::size_t i, Instant now) {
  FlowStatus& f = flows_[i];
  Timing& t = timing_[i];
  ++stats_.failures;
  ++f.failures;
  set_state(f, FlowState::Idle);
  f.relay_id.clear();
  f.relay_uri.clear();
  f.mapped.reset();
  f.since = now;
  ++t.generation;
  if (t.probe) stun_.cancel(*t.probe);
  t.probe.reset();
  t.stream_probe = false;
  t.pong_due = kInstantMax;
  t.refresh = kInstantMax;
  t.refresh_deadline = kInstantMax;
  // RFC 5626 §4.5: wait a uniform 50-100 % of min(max-time, base-time * 2^consecutive-failures),
  // base-time 30 s when every flow has failed, 90 s while another works.
  const bool all_failed =
      std::none_of(flows_.begin(), flows_.end(), [](const FlowStatus& x) { return x.state == FlowState::Active; });
  const Duration base = all_failed ? cfg_.backoff_all_failed : cfg_.backoff_some_failed;
  Duration wait = cfg_.backoff_max;
  if (f.failures < 20) wait = std::min(cfg_.backoff_max, base * (std::int64_t{1} << f.failures));
  t.next = now + jitter(wait / 2, wait);
}

std::pair<Duration, Duration> FlowSet::keepalive_range(std::size_t i) const {
  // §4.4.1: at 80-100 % of the relay's Flow-Timer when it gave one; otherwise 24-29 s on UDP
  // (§4.4.2) and 95-120 s on streams (§4.4.1's defaults).
  const Duration ft = timing_[i].keepalive;
  if (ft > Duration{}) return {ft * 4 / 5, ft};
  const bool stream = flows_[i].relay && is_reliable(flows_[i].relay->transport);
  return stream ? std::pair{cfg_.stream_keepalive_min, cfg_.stream_keepalive_max}
                : std::pair{cfg_.keepalive_min, cfg_.keepalive_max};
}

void FlowSet::pong(const Endpoint& relay, Instant now) {
  for (std::size_t i = 0; i < flows_.size(); ++i) {
    Timing& t = timing_[i];
    if (t.stream_probe && flows_[i].relay && *flows_[i].relay == relay) {
      ++stats_.pongs;
      t.stream_probe = false;
      t.pong_due = kInstantMax;
    }
  }
  (void)now;
}

void FlowSet::keepalive(std::size_t i, Instant now) {
  FlowStatus& f = flows_[i];
  Timing& t = timing_[i];
  if (!f.relay) return;
  if (t.probe || t.stream_probe) return;  // the last one is still out: its outcome decides
  ++stats_.keepalives;
  if (is_reliable(f.relay->transport)) {
    // §4.4.1: STUN cannot share a SIP stream here; a CRLFCRLF ping, answered by a CRLF pong.
    if (!transport_.ping_flow(*f.relay, now)) {
      fail(i, now);
      return;
    }
    t.stream_probe = true;
    t.pong_due = now + cfg_.pong_timeout;
    return;
  }
  const std::uint32_t gen = t.generation;
  const std::uint32_t reg_id = f.reg_id;
  auto r = stun_.binding(
      *f.relay, now,
      [this, gen, reg_id](const StunOutcome& o) {
        const std::size_t k = index_of(reg_id);
        if (k == flows_.size() || timing_[k].generation != gen) return;
        timing_[k].probe.reset();
        if (o.kind == StunOutcome::Kind::Timeout || o.kind == StunOutcome::Kind::TransportError) {
          fail(k, o.at);  // §4.4.2: the flow has failed
          return;
        }
        if (o.kind != StunOutcome::Kind::Success || !o.mapped) return;
        FlowStatus& fl = flows_[k];
        if (fl.mapped && !(*fl.mapped == *o.mapped)) {
          // §4.4.2: a changed XOR-MAPPED-ADDRESS means the NAT binding was lost: the flow has failed.
          ++stats_.mapping_changes;
          fail(k, o.at);
          return;
        }
        fl.mapped = o.mapped;
      },
      /*fingerprint=*/false);
  if (!r) {
    fail(i, now);
    return;
  }
  t.probe = *r;
}

void FlowSet::suspect(const Endpoint& relay, Instant now) {
  for (std::size_t i = 0; i < flows_.size(); ++i) {
    if (flows_[i].state == FlowState::Active && flows_[i].relay && same_endpoint(*flows_[i].relay, relay)) {
      keepalive(i, now);  // a no-op while one is already out
    }
  }
}

void FlowSet::network_changed(Instant now) {
  for (std::size_t i = 0; i < flows_.size(); ++i) {
    flows_[i].mapped.reset();
    set_state(flows_[i], FlowState::Idle);
    start_registration(i, now);
  }
}

void FlowSet::close(Instant now) {
  for (std::size_t i = 0; i < flows_.size(); ++i) {
    FlowStatus& f = flows_[i];
    Timing& t = timing_[i];
    if (f.state == FlowState::Active && f.relay) (void)transport_.register_flow(*f.relay, f.reg_id, 0, now);
    set_state(f, FlowState::Idle);
    ++t.generation;
    if (t.probe) stun_.cancel(*t.probe);
    t.probe.reset();
    t.next = t.refresh = t.refresh_deadline = kInstantMax;
  }
  closed_ = true;
}

void FlowSet::advance(Instant now) {
  if (closed_) return;
  for (std::size_t i = 0; i < flows_.size(); ++i) {
    FlowStatus& f = flows_[i];
    Timing& t = timing_[i];
    switch (f.state) {
      case FlowState::Idle:
        if (t.next <= now) start_registration(i, now);
        break;
      case FlowState::Registering:
        if (t.next <= now) fail(i, now);  // unanswered
        break;
      case FlowState::Active:
        if (t.refresh_deadline <= now || t.pong_due <= now) {
          fail(i, now);  // the refresh went unanswered, or the ping (§4.4.1)
          break;
        }
        if (t.refresh <= now && t.refresh_deadline == kInstantMax) {
          t.refresh_deadline = now + cfg_.register_timeout;
          if (!transport_.register_flow(*f.relay, f.reg_id, cfg_.expires_s, now)) {
            fail(i, now);
            break;
          }
        }
        if (t.next <= now) {
          const auto [lo, hi] = keepalive_range(i);
          t.next = now + jitter(lo, hi);
          keepalive(i, now);
        }
        break;
    }
  }
}

Instant FlowSet::next_wakeup() const {
  if (closed_) return kInstantMax;
  Instant n = kInstantMax;
  for (std::size_t i = 0; i < flows_.size(); ++i) {
    const Timing& t = timing_[i];
    n = std::min(n, t.next);
    if (flows_[i].state == FlowState::Active) {
      n = std::min(n, t.refresh_deadline == kInstantMax ? t.refresh : t.refresh_deadline);
      n = std::min(n, t.pong_due);
    }
  }
  return n;
}

std::vector<std::string> FlowSet::relay_uris() const {
  std::vector<std::string> out;
  for (const auto& f : flows_) {
    if (f.state == FlowState::Active && !f.relay_uri.empty()) out.push_back(f.relay_uri);
  }
  return out;
}

std::vector<Endpoint> FlowSet::relays() const {
  std::vector<Endpoint> out;
  for (const auto& f : flows_) {
    if (f.state == FlowState::Active && f.relay) out.push_back(*f.relay);
  }
  return out;
}

bool FlowSet::any_active() const {
  return std::any_of(flows_.begin(), flows_.end(), [](const FlowStatus& f) { return f.state == FlowState::Active; });
}

}  // namespace p2psip::nat
