#include "sim/population.hpp"

#include <algorithm>
#include <cmath>

#include "sim/events.hpp"

namespace p2psip::sim {

namespace {
constexpr Duration kGracefulLeaveTime = seconds(5);  // a leaving node lives this long for its Leave answers

security::KeyPair key_from(Rng& rng) {
  security::Seed seed{};
  for (std::size_t i = 0; i < seed.size(); i += 8) {
    const std::uint64_t v = rng.next();
    for (std::size_t b = 0; b < 8; ++b) seed[i + b] = static_cast<std::uint8_t>(v >> (8 * b));
  }
  return security::KeyPair::from_seed(seed);
}
Instant at_s(double s) {
  return Instant(Duration(static_cast<std::int64_t>(s * 1e6)));
}
}  // namespace

// ---- a host's environment -------------------------------------------------------------------------

bool SimHost::send(const Endpoint& to, std::string_view bytes) {
  population_.transmit(index_, port_, to, bytes, nullptr);
  return true;
}
bool SimHost::send_owned(const Endpoint& to, std::string&& bytes) {
  population_.transmit(index_, port_, to, bytes, &bytes);
  return true;
}

Host::Phone::Phone(Population& population, std::uint32_t index, const Scenario& sc)
    : side_env(population, index, Rng(sc.seed, (std::uint64_t{1} << 42) + index), Network::kPhoneSidePort),
      phone_env(population, index, Rng(sc.seed, (std::uint64_t{1} << 43) + index), Network::kPhonePort) {}
WallTime SimHost::wall_time(Instant now) const {
  return wall_from_unix_us(Population::kEpochS * 1000000 + now.time_since_epoch().count());
}
void SimHost::log(LogLevel level, std::string_view text) {
  population_.log(index_, level, text);
}

// ---- the population ----------------------------------------------------------------------------------

Population::Population(const Scenario& sc, const overlay::OverlayConfig& peers, Engine& engine, Network& network,
                       Metrics& metrics, IceModel* ice)
    : sc_(sc), peers_(peers), engine_(engine), network_(network), metrics_(metrics), ice_(ice), churn_rng_(sc.seed, 2) {
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
}

Population::~Population() = default;

void Population::schedule_initial() {
  // The initial population joins at join_rate per second; host 0 starts the ring. Start i takes
  // sequence number i, below every other event's, and only the next one waits in the queue (each
  // pushes its successor): a million pending starts would be most of the queue for the whole join
  // phase, and the order is the same as with all of them pushed at once.
  engine_.reserve(sc_.nodes);
  if (sc_.nodes > 0) engine_.push_reserved(at_s(0), 0, kind(EventKind::Start), 0);
}

void Population::start_next(std::uint32_t index) {
  const std::size_t next = std::size_t{index} + 1;
  if (next < sc_.nodes) {
    engine_.push_reserved(at_s(static_cast<double>(next) / sc_.join_rate), next, kind(EventKind::Start),
                          static_cast<std::uint32_t>(next));
  }
  std::optional<dht::NodeId> id;
  if (index < sc_.node_ids.size()) id = dht::NodeId::from_hex(sc_.node_ids[index]);
  spawn(id);
}

void Population::depart(std::uint32_t host, bool process_exit) {
  Host& h = hosts_[host];
  if (!h.peer) return;
  if (process_exit) {  // the end of a graceful leave: the process exits
    if (h.leaving) kill(host, false);
    return;
  }
  if (h.leaving) return;
  const bool graceful = sc_.leave_fraction > 0 && churn_rng_.uniform() < sc_.leave_fraction;
  kill(host, graceful);
  spawn(std::nullopt);  // a newcomer takes the departed host's place: the population stays
}

void Population::log(std::uint32_t host, LogLevel level, std::string_view text) const {
  if (sink_ && std::find(traced_.begin(), traced_.end(), host) != traced_.end()) {
    sink_(static_cast<double>(engine_.now().time_since_epoch().count()) / 1e6, host, level, text);
  }
}

void Population::transmit(std::uint32_t from, std::uint16_t port, const Endpoint& to, std::string_view bytes,
                          std::string* take) {
  Host& src = hosts_[from];
  ++src.messages_sent;
  src.bytes_sent += bytes.size();
  network_.send(from, port, to, Network::host_at(to, hosts_.size()), bytes, take);
}

void Population::timer(std::uint32_t host, Instant at) {
  Host& h = hosts_[host];
  if (!h.peer || h.scheduled != at) return;  // dead, or superseded by an earlier timer
  h.scheduled = kInstantMax;
  const Instant now = engine_.now();
  h.peer->advance(now);
  if (h.phone && h.phone->phone && h.phone->phone->next_wakeup() <= now) h.phone->phone->advance(now);
  touched(host);
}

void Population::touched(std::uint32_t host) {
  Host& h = hosts_[host];
  if (!h.peer) return;
  const Instant now = engine_.now();
  Instant w = h.peer->next_wakeup();
  if (h.phone && h.phone->phone) w = std::min(w, h.phone->phone->next_wakeup());
  if (w < h.scheduled) {
    h.scheduled = std::max(w, now);
    engine_.push(h.scheduled, kind(EventKind::Timer), host);
  }
  if (h.joined_pos < 0 && !h.leaving && h.peer->chord().joined()) {
    h.joined_pos = static_cast<std::int32_t>(joined_list_.size());
    h.joined_at = now;
    metrics_.results.join_s.push_back(static_cast<float>(static_cast<double>((now - h.born).count()) / 1e6));
    joined_list_.push_back(host);
    if (network_.nat(host) == nullptr) {
      h.boot_pos = static_cast<std::int32_t>(boot_list_.size());
      boot_list_.push_back(host);
    }
    ring_[h.id] = host;
    if (on_joined) on_joined(host);
  }
}

std::uint32_t Population::create(std::optional<dht::NodeId> id) {
  const auto index = static_cast<std::uint32_t>(hosts_.size());
  hosts_.emplace_back(*this, index, Rng(sc_.seed, 1000 + std::uint64_t{index}));
  Host& h = hosts_.back();
  Rng place(sc_.seed, (std::uint64_t{1} << 40) + index);
  std::optional<NatBehavior> nat;
  if (sc_.nat.any() && index > 0) {
    // The first host starts the ring and stays public; the others draw their router on a stream of
    // their own (the same hosts are NATed whatever else the scenario changes).
    Rng draw(sc_.seed, (std::uint64_t{1} << 45) + index);
    double u = draw.uniform();
    const std::pair<const char*, double> shares[] = {{"full-cone", sc_.nat.full_cone},
                                                     {"addr-restricted", sc_.nat.addr_restricted},
                                                     {"port-restricted", sc_.nat.port_restricted},
                                                     {"symmetric", sc_.nat.symmetric},
                                                     {"udp-blocked", sc_.nat.udp_blocked}};
    for (const auto& [kind, share] : shares) {
      if (u < share) {
        h.nat_kind = kind;
        nat = nat_kind(kind);
        nat->binding_timeout = Duration(static_cast<std::int64_t>(sc_.nat.binding_timeout_s * 1e6));
        break;
      }
      u -= share;
    }
  }
  network_.place_host(place, nat);
  if (id) {
    h.id = *id;
  } else {
    h.id.hi = place.next();
    h.id.lo = place.next();
  }
  if (sc_.security) {
    // An enrolled node: a key of its own, the CA's certificate, a Node-ID that is the key's digest.
    Rng keys(sc_.seed, (std::uint64_t{1} << 41) + index);
    auto identity = std::make_unique<Host::Identity>();
    identity->key = key_from(keys);
    identity->cert = *security::issue_node(ca_key_, *root_, identity->key.public_key, 2 + index,
                                           {kEpochS - 86400, kEpochS + 10 * 365 * 86400});
    h.id = *identity->cert.info().node_id;
    h.identity = std::move(identity);
  }
  if (on_created && on_created(h, index)) {
    h.phone = std::make_unique<Host::Phone>(*this, index, sc_);
    if (sc_.security) {
      // The phone's user is enrolled at this node: its registrations are signed with a user
      // certificate from the simulation's CA (USER-MATCH).
      Rng keys(sc_.seed, (std::uint64_t{1} << 44) + index);
      Host::Identity user;
      user.key = key_from(keys);
      user.cert =
          *security::issue_user(ca_key_, *root_, user.key.public_key, Telephony::user_of(index),
                                (std::uint64_t{1} << 32) + index, {kEpochS - 86400, kEpochS + 10 * 365 * 86400});
      h.phone->user = std::move(user);
    }
  }
  return index;
}

void Population::start(std::uint32_t host) {
  account_time();
  Host& h = hosts_[host];
  // The very peer `p2psip node` runs, with the simulation's settings and (with [security]) the
  // host's identity under the simulation's CA.
  peer::PeerConfig pc;
  pc.overlay = peers_;
  pc.id = h.id;
  pc.address = Network::address(host);
  if (sc_.nat.any()) {
    // As `p2psip node` starts by default: find out where it stands, then a peer (and a relay for
    // clients) when public, a client with flows to two relay peers when NATed.
    pc.role = peer::Role::Auto;
    pc.reachability = nat::ReachabilityConfig{};
    nat::RelayConfig relay;
    relay.max_clients = sc_.nat.relay_max_clients;
    pc.relay = relay;
    if (ice_ != nullptr) {
      // `--ice on`: behind a cone NAT it is a peer reached over ICE links.
      h.ice = ice_->agent(host);
      pc.ice = h.ice.get();
    }
  }
  if (h.identity) {
    peer::PeerSecurity sec;
    sec.crypto = crypto_.get();
    sec.self = security::Identity{h.identity->key, std::move(h.identity->cert)};
    sec.trust = security::TrustAnchor::ca(*root_);
    sec.certificate_cache = 4096;
    sec.sign_messages = sc_.sign_messages;
    if (h.phone && h.phone->user) sec.users.push_back(security::Identity{h.phone->user->key, h.phone->user->cert});
    pc.security = std::move(sec);
    h.identity.reset();
  }
  Environment* phone_side = nullptr;
  if (h.phone) {
    // The phone side of `p2psip node`, reached over the host's network: phones are met where they
    // registered from.
    proxy::UaSideConfig ua;
    ua.registrar.domain = sc_.overlay;
    ua.registrar.max_aors = 16;  // one phone here; a small table
    ua.ua_address = Network::address(host, Network::kPhoneSidePort);
    ua.phones_on_loopback = false;
    ua.timers.t1 = peers_.timers.t1;
    pc.phones = std::move(ua);
    phone_side = &h.phone->side_env;
    SimPhone::Config pcfg;
    pcfg.user = Telephony::user_of(host);
    pcfg.domain = sc_.overlay;
    pcfg.self = Network::address(host, Network::kPhonePort);
    pcfg.proxy = Network::address(host, Network::kPhoneSidePort);
    pcfg.answer_delay = Duration(static_cast<std::int64_t>(sc_.phones.answer_delay_s * 1e6));
    pcfg.call_duration = Duration(static_cast<std::int64_t>(sc_.phones.call_duration_s * 1e6));
    h.phone->phone.emplace(h.phone->phone_env, std::move(pcfg));
  }
  h.peer = std::make_unique<peer::Peer>(std::move(pc), h.env, phone_side);
  h.born = engine_.now();
  h.live_pos = static_cast<std::int32_t>(live_);
  ++live_;
  Results& r = metrics_.results;
  r.peak_live = std::max(r.peak_live, live_);
  ++r.joins;
  ++metrics_.row.joins;
  // Bootstrap through up to three random joined hosts that anyone reaches; none: a new ring.
  std::vector<Endpoint> boot;
  for (int i = 0; i < 3 && !boot_list_.empty(); ++i) {
    boot.push_back(Network::address(boot_list_[churn_rng_.below(boot_list_.size())]));
  }
  h.peer->start(boot, engine_.now());
  touched(host);
}

void Population::spawn(std::optional<dht::NodeId> id) {
  const std::uint32_t n = create(id);
  start(n);
  if (sc_.session_s) schedule_departure(n);
}

void Population::schedule_departure(std::uint32_t host) {
  const double now_s = static_cast<double>(engine_.now().time_since_epoch().count()) / 1e6;
  const double session = sc_.session_s->sample(churn_rng_);
  const double at = std::max(now_s, sc_.churn_start_s) + session;
  if (at < sc_.duration_s) engine_.push(at_s(at), kind(EventKind::Depart), host, 0);
}

void Population::kill(std::uint32_t host, bool graceful) {
  account_time();
  Host& h = hosts_[host];
  Results& r = metrics_.results;
  if (h.joined_pos >= 0) {
    // Out of each list by moving its last host into the place (`pos` is where a host sits in it).
    const auto drop = [&](std::vector<std::uint32_t>& list, std::int32_t Host::*pos) {
      if (h.*pos < 0) return;
      const std::uint32_t last = list.back();
      list[static_cast<std::size_t>(h.*pos)] = last;
      hosts_[last].*pos = h.*pos;
      list.pop_back();
      h.*pos = -1;
    };
    drop(joined_list_, &Host::joined_pos);
    drop(boot_list_, &Host::boot_pos);
    ring_.erase(h.id);
  }
  if (graceful) {
    // RFC 6940 §10.5-style graceful leave: the node hands over and tells its neighbours, then goes.
    h.leaving = true;
    h.peer->overlay().leave(engine_.now());
    ++r.leaves;
    ++metrics_.row.departures;
    touched(host);
    engine_.push(engine_.now() + kGracefulLeaveTime, kind(EventKind::Depart), host, 1);
    return;
  }
  if (!h.leaving) {
    ++r.failures;
    ++metrics_.row.departures;
  }
  r.abandoned += h.ops_pending;
  r.retransmissions += h.peer->overlay().transactions().stats().retransmissions_sent;
  r.timeouts += h.peer->overlay().transactions().stats().timeouts;
  h.ops_pending = 0;
  h.peer.reset();
  h.ice.reset();  // after its peer: the agent's sessions close with it
  if (h.phone) {
    h.phone.reset();  // the phone dies with its host
    if (on_died) on_died(host);
  }
  h.died = engine_.now();
  h.leaving = false;
  --live_;
}

void Population::fail_fraction(double fraction) {
  // Fail a random subset of the live hosts at once (Fisher-Yates over the live ones).
  std::vector<std::uint32_t> live;
  for (std::uint32_t i = 0; i < hosts_.size(); ++i) {
    if (hosts_[i].peer && !hosts_[i].leaving) live.push_back(i);
  }
  const auto count = static_cast<std::size_t>(std::llround(fraction * static_cast<double>(live.size())));
  for (std::size_t i = 0; i < count; ++i) {
    const std::size_t j = i + churn_rng_.below(live.size() - i);
    std::swap(live[i], live[j]);
    kill(live[i], false);
  }
}

void Population::join_fraction(double fraction) {
  const auto count = static_cast<std::size_t>(std::llround(fraction * static_cast<double>(live_)));
  for (std::size_t i = 0; i < count; ++i) engine_.push(engine_.now(), kind(EventKind::Arrive));
}

std::optional<std::uint32_t> Population::random_joined(Rng& rng) const {
  if (joined_list_.empty()) return std::nullopt;
  return joined_list_[rng.below(joined_list_.size())];
}

std::optional<dht::NodeId> Population::responsible(dht::NodeId key) const {
  if (ring_.empty()) return std::nullopt;
  auto it = ring_.lower_bound(key);
  if (it == ring_.end()) it = ring_.begin();
  return it->first;
}

std::optional<std::uint32_t> Population::joined_host(dht::NodeId id) const {
  const auto it = ring_.find(id);
  if (it == ring_.end()) return std::nullopt;
  return it->second;
}

void Population::account_time() {
  const Instant now = engine_.now();
  metrics_.results.node_seconds +=
      static_cast<double>(live_) * static_cast<double>((now - last_account_).count()) / 1e6;
  last_account_ = now;
}

std::size_t Population::ring_errors(std::vector<std::string>* details) const {
  std::size_t errors = 0;
  if (ring_.size() < 2) return 0;
  for (auto it = ring_.begin(); it != ring_.end(); ++it) {
    auto next = std::next(it) == ring_.end() ? ring_.begin() : std::next(it);
    auto prev = it == ring_.begin() ? std::prev(ring_.end()) : std::prev(it);
    const auto& table = hosts_[it->second].peer->chord().table();
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

std::size_t Population::transactions() const {
  std::size_t n = 0;
  for (const auto& h : hosts_) {
    if (h.peer) n += h.peer->overlay().transactions().size();
  }
  return n;
}

std::pair<std::uint64_t, std::uint64_t> Population::retransmissions_and_timeouts() const {
  std::uint64_t r = metrics_.results.retransmissions;
  std::uint64_t t = metrics_.results.timeouts;
  for (const auto& h : hosts_) {
    if (!h.peer) continue;
    r += h.peer->overlay().transactions().stats().retransmissions_sent;
    t += h.peer->overlay().transactions().stats().timeouts;
  }
  return {r, t};
}

NatReport Population::nat_report() const {
  NatReport out;
  for (const auto& h : hosts_) {
    if (!h.peer) continue;
    NatReport::Kind& k = out.by_kind[h.nat_kind];
    ++k.live;
    switch (h.peer->role()) {
      case peer::Role::Peer: ++k.peers; break;
      case peer::Role::Client: ++k.clients; break;
      case peer::Role::Auto: ++k.deciding; break;
    }
    if (const auto* flows = h.peer->flows(); flows && h.peer->role() == peer::Role::Client) {
      std::size_t active = 0;
      for (const auto& f : flows->status()) active += f.state == nat::FlowState::Active;
      if (active >= 2) ++k.clients_two_flows;
    }
    if (const auto* relay = h.peer->relay_table(); relay && h.peer->role() == peer::Role::Peer) {
      out.relay_clients.push_back(relay->clients());
    }
  }
  return out;
}

std::vector<NodeReport> Population::node_reports(Instant now) const {
  std::vector<NodeReport> out;
  out.reserve(hosts_.size());
  for (const auto& h : hosts_) {
    NodeReport r;
    r.id_hex = h.id.hex();
    r.alive = h.peer != nullptr;
    r.joined = h.joined_pos >= 0;
    r.messages_sent = h.messages_sent;
    r.bytes_sent = h.bytes_sent;
    const Instant until = h.peer ? now : h.died;
    r.alive_s = static_cast<double>((until - h.born).count()) / 1e6;
    if (h.joined_at != kInstantMax) r.join_s = static_cast<double>((h.joined_at - h.born).count()) / 1e6;
    r.nat_kind = h.nat_kind;
    if (h.peer) {
      switch (h.peer->role()) {
        case peer::Role::Peer: r.role = "peer"; break;
        case peer::Role::Client: r.role = "client"; break;
        case peer::Role::Auto: r.role = "deciding"; break;
      }
    }
    out.push_back(r);
  }
  return out;
}

}  // namespace p2psip::sim
