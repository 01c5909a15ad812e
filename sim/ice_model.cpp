#include "sim/ice_model.hpp"

#include <algorithm>
#include <charconv>

#include "sim/events.hpp"

namespace p2psip::sim {

/// One host's agent: the sessions its peer opened, closed with it.
class IceModel::Agent final : public nat::IcePort {
 public:
  Agent(IceModel& model, std::uint32_t host) : model_(model), host_(host) {}
  ~Agent() override {
    for (const auto id : open_) model_.close(host_, id);
  }
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  bool open(nat::IceSessionId id, bool /*controlling*/) override {
    if (!model_.open(host_, id)) return false;
    open_.push_back(id);
    return true;
  }
  void remote(nat::IceSessionId id, const nat::IceDescription& d) override { model_.remote(host_, id, d); }
  bool send(nat::IceSessionId id, std::string_view bytes) override { return model_.send(host_, id, bytes); }
  void close(nat::IceSessionId id) override {
    auto it = std::find(open_.begin(), open_.end(), id);
    if (it == open_.end()) return;
    *it = open_.back();
    open_.pop_back();
    model_.close(host_, id);
  }

 private:
  IceModel& model_;
  std::uint32_t host_;
  std::vector<nat::IceSessionId> open_;  ///< a few: a peer's neighbours and the peers it sends to
};

IceModel::IceModel(const Scenario& sc, Engine& engine, Network& network, Metrics& metrics)
    : sc_(sc), engine_(engine), network_(network), metrics_(metrics) {}

IceModel::~IceModel() = default;

std::unique_ptr<nat::IcePort> IceModel::agent(std::uint32_t host) {
  return std::make_unique<Agent>(*this, host);
}

std::string IceModel::ufrag(Key k) {
  return "h" + std::to_string(k.host) + "s" + std::to_string(k.id);
}

std::optional<IceModel::Key> IceModel::key_of(std::string_view u) {
  const auto s = u.find('s');
  if (u.size() < 4 || u.front() != 'h' || s == std::string_view::npos) return std::nullopt;
  Key k;
  const char* end = u.data() + u.size();
  auto h = std::from_chars(u.data() + 1, u.data() + s, k.host);
  auto i = std::from_chars(u.data() + s + 1, end, k.id);
  if (h.ec != std::errc{} || h.ptr != u.data() + s || i.ec != std::errc{} || i.ptr != end) return std::nullopt;
  return k;
}

Duration IceModel::trip(std::uint32_t a, std::uint32_t b) const {
  return a == b ? Network::kLocalDelay : network_.delay(a, b);
}

IceHost IceModel::ice_host(const Key& k, const Session& s) const {
  return IceHost{Network::address(k.host, s.port), network_.nat_box(k.host)};
}

void IceModel::schedule(Instant at, Report::Kind what, Key key) {
  std::uint64_t slot = 0;
  if (!pending_free_.empty()) {
    slot = pending_free_.back();
    pending_free_.pop_back();
  } else {
    slot = pending_.size();
    pending_.emplace_back();
  }
  pending_[slot] = Pending{what, key};
  engine_.push(at, kind(EventKind::Ice), key.host, slot);
}

bool IceModel::open(std::uint32_t host, nat::IceSessionId id) {
  const Key key{host, id};
  if (sessions_.contains(key)) return false;
  Session& s = sessions_[key];
  // A port of its own per session, as libnice binds one per stream; from a bounded range, so that
  // the NAT's mappings for a long-lived host do not grow without end (an old session's binding has
  // expired by the time its port comes round again).
  s.port = static_cast<std::uint16_t>(20000 + id % 8192);
  // Gathering: the credentials and the host candidate at once (reported once the peer's call has
  // returned), the server-reflexive one after a round trip to the STUN server, with gathering done.
  schedule(engine_.now(), Report::Kind::Started, key);
  schedule(engine_.now() + 2 * trip(host, 0), Report::Kind::Gathered, key);
  ++metrics_.results.ice.sessions;
  return true;
}

void IceModel::remote(std::uint32_t host, nat::IceSessionId id, const nat::IceDescription& d) {
  const Key key{host, id};
  auto it = sessions_.find(key);
  if (it == sessions_.end() || it->second.peer) return;  // more candidates for checks already decided
  Session& s = it->second;
  s.remote_ufrag = d.credentials.ufrag;
  const auto other_key = key_of(d.credentials.ufrag);
  if (!other_key) return;  // not one of ours: no checks ever succeed; IceLinks's deadline fails it
  auto other = sessions_.find(*other_key);
  if (other == sessions_.end() || other->second.remote_ufrag != ufrag(key) || other->second.peer) return;
  // Both sides hold each other's description: the checks run (the answerer's started when it took
  // the offer, and its first ones open its own NAT to the offerer's candidates, which ice_disposition
  // plays too).
  Session& o = other->second;
  const Instant now = engine_.now();
  s.peer = *other_key;
  o.peer = key;
  const Disposition d2 = ice_disposition(ice_host(key, s), ice_host(*other_key, o), stun_server(), sc_.nat.turn, now);
  s.disposition = o.disposition = d2;
  s.checks_from = o.checks_from = now;
  Instant at = now;
  switch (d2) {
    case Disposition::Direct: at += kDirectPacing + 4 * trip(host, other_key->host); break;
    case Disposition::Relayed:
      at += kRelayedPacing + 4 * (trip(host, 0) + trip(0, other_key->host)) + 2 * trip(host, 0);
      break;
    case Disposition::None: at += kFailVerdict; break;
  }
  const auto what = d2 == Disposition::None ? Report::Kind::Failed : Report::Kind::Connected;
  schedule(at, what, key);
  schedule(at, what, *other_key);
}

void IceModel::close(std::uint32_t host, nat::IceSessionId id) {
  auto it = sessions_.find(Key{host, id});
  if (it == sessions_.end()) return;
  count_keepalives(it->second, engine_.now());
  sessions_.erase(it);
}

void IceModel::count_keepalives(const Session& s, Instant until) {
  if (!s.up || until <= s.up_at) return;
  const auto n = static_cast<std::uint64_t>((until - s.up_at) / kKeepalive);
  metrics_.results.ice.keepalive_bytes += n * kKeepaliveBytes;
}

bool IceModel::is_open(std::uint32_t host, nat::IceSessionId id) const {
  return sessions_.contains(Key{host, id});
}

bool IceModel::send(std::uint32_t host, nat::IceSessionId id, std::string_view bytes) {
  auto it = sessions_.find(Key{host, id});
  if (it == sessions_.end() || !it->second.up || !it->second.peer) return false;
  const Key to = *it->second.peer;
  // A relayed pair's messages go to the TURN server and on from there.
  const Duration extra = it->second.disposition == Disposition::Relayed
                             ? trip(host, 0) + trip(0, to.host) - trip(host, to.host)
                             : Duration{0};
  ++metrics_.results.ice.link_messages;
  network_.send_over_link(host, to.host, to.id, std::max(extra, Duration{0}), bytes);
  return true;
}

std::optional<IceModel::Report> IceModel::take(std::uint64_t slot) {
  const Pending p = pending_[slot];
  pending_free_.push_back(slot);
  auto it = sessions_.find(p.key);
  if (it == sessions_.end()) return std::nullopt;  // closed meanwhile (or its host died)
  Session& s = it->second;
  Report r;
  r.host = p.key.host;
  r.session = p.key.id;
  r.kind = p.kind;
  IceResults& ice = metrics_.results.ice;
  switch (p.kind) {
    case Report::Kind::Started:
      r.credentials.ufrag = ufrag(p.key);
      // Never checked in the model; 22 ice-chars as RFC 8445 §5.3 asks, distinct per session.
      r.credentials.pwd =
          "pw" + std::string(20 - std::min<std::size_t>(20, r.credentials.ufrag.size()), '0') + r.credentials.ufrag;
      r.candidates.push_back(nat::IceCandidate{"1", 1, 2130706431, Network::address(p.key.host, s.port),
                                               nat::CandidateType::Host, std::nullopt});
      return r;
    case Report::Kind::Gathered: {
      const Endpoint here = Network::address(p.key.host, s.port);
      NatBox* nat = network_.nat_box(p.key.host);
      std::optional<Endpoint> mapped;
      if (nat != nullptr) mapped = nat->out(here, stun_server(), engine_.now());
      if (mapped) {
        r.candidates.push_back(
            nat::IceCandidate{"2", 1, 1694498815, *mapped, nat::CandidateType::ServerReflexive, here});
      }
      if (sc_.nat.turn) {
        // An allocation on the TURN server (over TCP where UDP is blocked): a port of its own there.
        Endpoint relayed =
            Network::address(0, static_cast<std::uint16_t>(49152 + (p.key.host * 31 + p.key.id) % 16384));
        r.candidates.push_back(
            nat::IceCandidate{"3", 1, 16777215, relayed, nat::CandidateType::Relayed, mapped ? *mapped : here});
      }
      return r;
    }
    case Report::Kind::Connected: {
      if (!s.peer || !sessions_.contains(*s.peer)) {
        // The other side went while the checks ran: they find nobody.
        r.kind = Report::Kind::Failed;
        ++ice.failed;
        return r;
      }
      s.up = true;
      s.up_at = engine_.now();
      const bool relayed = s.disposition == Disposition::Relayed;
      (relayed ? ice.up_relayed : ice.up_direct) += 1;
      ice.checks_ms.push_back(static_cast<float>(static_cast<double>((s.up_at - s.checks_from).count()) / 1e3));
      const auto type_of = [&](std::uint32_t h) {
        return network_.nat_box(h) != nullptr ? nat::CandidateType::ServerReflexive : nat::CandidateType::Host;
      };
      // A relayed pair: one side's relayed candidate (the lower-numbered host's) and the other's own.
      r.local = relayed && p.key.host < s.peer->host ? nat::CandidateType::Relayed : type_of(p.key.host);
      r.remote = relayed && p.key.host > s.peer->host ? nat::CandidateType::Relayed : type_of(s.peer->host);
      return r;
    }
    case Report::Kind::Failed: ++ice.failed; return r;
  }
  return r;
}

void IceModel::finish(Instant now) {
  for (const auto& [key, s] : sessions_) count_keepalives(s, now);
}

}  // namespace p2psip::sim
