#include "node/peer/turn_service.hpp"

#include <algorithm>
#include <utility>
#include <vector>

#include "node/sip/scanner.hpp"
#include "security/record_policy.hpp"

namespace p2psip::peer {

namespace {

/// "name=value" pairs separated by `sep`; nullopt when one is not such a pair, or repeats a name.
std::optional<std::vector<std::pair<std::string_view, std::string_view>>> read_pairs(std::string_view text, char sep) {
  std::vector<std::pair<std::string_view, std::string_view>> out;
  while (!text.empty()) {
    const auto end = text.find(sep);
    const std::string_view item = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
    if (item.empty()) continue;
    const auto eq = item.find('=');
    if (eq == std::string_view::npos || eq == 0 || out.size() >= 8) return std::nullopt;
    const std::string_view name = item.substr(0, eq);
    if (std::any_of(out.begin(), out.end(), [&](const auto& p) { return p.first == name; })) return std::nullopt;
    out.emplace_back(name, item.substr(eq + 1));
  }
  return out;
}

std::optional<std::string_view> value_of(const std::vector<std::pair<std::string_view, std::string_view>>& pairs,
                                         std::string_view name) {
  for (const auto& [n, v] : pairs) {
    if (n == name) return v;
  }
  return std::nullopt;
}

std::optional<Endpoint> read_endpoint(std::string_view text, Transport t) {
  auto e = parse_host_port(text, t);
  if (!e || e->port == 0) return std::nullopt;
  return e;
}

std::string server_text(const nat::TurnServer& s) {
  return s.server.host_port();
}

}  // namespace

std::string encode_turn_entry(const TurnServiceEntry& e) {
  return "server=" + e.server.server.host_port() + ";transport=" + (e.server.tcp ? "tcp" : "udp") +
         ";peer=" + e.peer.host_port();
}

std::optional<TurnServiceEntry> decode_turn_entry(std::string_view value) {
  if (value.size() > 256) return std::nullopt;
  auto pairs = read_pairs(value, ';');
  if (!pairs) return std::nullopt;
  const auto server = value_of(*pairs, "server");
  const auto transport = value_of(*pairs, "transport").value_or("udp");
  const auto peer = value_of(*pairs, "peer");
  if (!server || !peer || (transport != "udp" && transport != "tcp")) return std::nullopt;
  TurnServiceEntry e;
  e.server.tcp = transport == "tcp";
  auto s = read_endpoint(*server, e.server.tcp ? Transport::Tcp : Transport::Udp);
  auto p = read_endpoint(*peer, Transport::Udp);
  if (!s || !p) return std::nullopt;
  e.server.server = *s;
  e.peer = *p;
  return e;
}

TurnService::TurnService(TurnServiceConfig cfg, Environment& env, dht::ChordNode& chord, nat::IcePort* ice,
                         Overlay overlay)
    : cfg_(std::move(cfg)), env_(env), chord_(chord), ice_(ice), overlay_(std::move(overlay)) {
  cfg_.density = std::clamp(cfg_.density, 1, security::kMaxTurnServiceIteration);
  if (cfg_.announce && cfg_.publish) {
    status_.announced = server_text(*cfg_.announce);
    chord_.set_turn_handler(this);
  }
  if (!cfg_.announce || !cfg_.use_announced || ice_ == nullptr) next_own_ = kInstantMax;
  status_.discovering = cfg_.discover && ice_ != nullptr;
}

Instant TurnService::next_wakeup() const {
  return std::min({next_announce_, next_find_, next_own_});
}

void TurnService::advance(Instant now, bool can_announce, bool can_discover) {
  if (now >= next_own_) {
    // Its own agent takes credentials as any asker's, made again at half their time.
    const dht::NodeId self = chord_.table().self().id;
    nat::TurnServer own = *cfg_.announce;
    own.user = rest_user(now, self);
    own.password = security::turn_rest_password(cfg_.secret, own.user);
    ice_->use_turn(own);
    if (overlay_.turn_in_use) overlay_.turn_in_use();
    next_own_ = now + seconds(std::max<std::uint32_t>(cfg_.credential_lifetime_s / 2, 1));
  }
  if (cfg_.announce && cfg_.publish) {
    if (!can_announce) {
      // Behind a NAT, or not in the ring (yet, or any more): RFC 6940 §9, no candidate. Entries
      // already stored expire by themselves.
      status_.announcing = false;
      next_announce_ = kInstantMax;
    } else if (!status_.announcing) {
      status_.announcing = true;
      next_announce_ = now;
    }
    if (status_.announcing && now >= next_announce_) announce(now);
  }
  if (status_.discovering) {
    if (!can_discover) {
      if (!find_in_flight_) next_find_ = kInstantMax;  // nothing to ask through now
    } else if (next_find_ == kInstantMax && !find_in_flight_) {
      // The first search, or the next one once the node can route again (a server found before
      // keeps serving meanwhile, and is asked for anew).
      next_find_ = now + cfg_.first_find;
    }
    if (!find_in_flight_ && now >= next_find_) discover(now);
  }
}

void TurnService::announce(Instant now) {
  next_announce_ = now + seconds(std::max<std::uint32_t>(cfg_.entry_lifetime_s / 2, 1));
  const dht::NodeId self = chord_.table().self().id;
  TurnServiceEntry e;
  e.server = *cfg_.announce;
  e.server.user.clear();
  e.server.password.clear();
  e.peer = chord_.table().self().addr;
  const std::string value = encode_turn_entry(e);
  for (int d = 1; d <= cfg_.density; ++d) {
    dht::Record r;
    r.name = security::turn_service_name(self, d);
    r.key = dht::NodeId::hash(r.name);
    r.value = value;
    r.owner = self.hex();
    r.lifetime_s = cfg_.entry_lifetime_s;
    overlay_.store(
        std::move(r),
        [this, d](const dht::RouteResult& res) {
          if (res.status == dht::Status::Ok) {
            ++status_.entries_stored;
          } else {
            env_.log(LogLevel::Info, "turn-service: entry " + std::to_string(d) +
                                         " not stored: " + std::to_string(dht::code(res.status)) + " " + res.reason);
          }
        },
        now);
  }
}

void TurnService::discover(Instant now) {
  find_in_flight_ = true;
  next_find_ = kInstantMax;
  ++status_.finds;
  dht::NodeId key;
  key.hi = env_.random();
  key.lo = env_.random();
  overlay_.find(
      key, [this, now](const dht::RouteResult& res) { found(res, now + res.latency); }, now);
}

void TurnService::found(const dht::RouteResult& res, Instant now) {
  if (res.status != dht::Status::Ok) {
    failed("find: " + std::to_string(dht::code(res.status)) + " " + res.reason, now);
    return;
  }
  const dht::NodeId self = chord_.table().self().id;
  for (const auto& rec : res.records) {
    const auto name = security::parse_turn_service_name(rec.name);
    auto entry = decode_turn_entry(rec.value);
    if (!name || !entry || name->node == self) continue;
    // One-time key for this answer's password (RFC 6940 §9 says nothing of credentials).
    const auto key = security::BoxKeyPair::from_seed(fresh_seed());
    const std::string payload =
        "key=" + security::to_base64(
                     std::string_view(reinterpret_cast<const char*>(key.public_key.data()), key.public_key.size()));
    const dht::Peer to{name->node, entry->peer};
    chord_.ask_turn(
        to, payload,
        [this, entry = *entry, from = name->node, key, now](const dht::RouteResult& ans) {
          answered(entry, from, key, ans, now + ans.latency);
        },
        now);
    return;
  }
  failed("find: no usable entry among " + std::to_string(res.records.size()), now);
}

void TurnService::answered(const TurnServiceEntry& entry, const dht::NodeId& from, const security::BoxKeyPair& key,
                           const dht::RouteResult& res, Instant now) {
  if (res.status != dht::Status::Ok) {
    failed("credentials from " + from.short_hex() + ": " + std::to_string(dht::code(res.status)) + " " + res.reason,
           now);
    return;
  }
  auto pairs = read_pairs(res.payload, '\n');
  const auto user = pairs ? value_of(*pairs, "user") : std::nullopt;
  const auto sealed = pairs ? value_of(*pairs, "password") : std::nullopt;
  const auto lifetime = pairs ? value_of(*pairs, "lifetime") : std::nullopt;
  auto box = sealed ? security::from_base64(*sealed, 512) : std::nullopt;
  auto password = box ? security::open_sealed(key, *box) : std::nullopt;
  // At most ten days; a lifetime not a number reads as none.
  const auto life = static_cast<std::uint32_t>(lifetime ? sip::parse_decimal(*lifetime, 864000).value_or(0) : 0);
  if (!user || user->empty() || user->size() > 128 || !password || password->empty() || life < 60) {
    failed("credentials from " + from.short_hex() + ": malformed answer", now);
    return;
  }
  nat::TurnServer use = entry.server;
  use.user = std::string(*user);
  use.password = std::move(*password);
  if (ice_ != nullptr) ice_->use_turn(use);
  if (overlay_.turn_in_use) overlay_.turn_in_use();
  find_in_flight_ = false;
  retry_ = Duration{};
  status_.using_server = server_text(use);
  status_.from_peer = from.hex();
  status_.expires_unix = unix_seconds(env_.wall_time(now)) + life;
  status_.last_error.clear();
  env_.log(LogLevel::Info, "turn-service: relayed candidates through " + status_.using_server + " (announced by " +
                               from.short_hex() + "), credentials for " + std::to_string(life) + " s");
  // Asked again at half their time, so that an agent opened late still has working ones.
  next_find_ = now + seconds(life / 2);
}

void TurnService::failed(std::string why, Instant now) {
  find_in_flight_ = false;
  ++status_.finds_failed;
  status_.last_error = std::move(why);
  env_.log(LogLevel::Debug, "turn-service: " + status_.last_error);
  retry_ = retry_ == Duration{} ? Duration(seconds(30)) : std::min(retry_ * 2, cfg_.max_retry);
  next_find_ = now + retry_;
}

std::string TurnService::rest_user(Instant now, const dht::NodeId& who) const {
  // coturn's REST API: the user name says until when, and for whom (its logs show the Node-ID).
  const std::int64_t expires = unix_seconds(env_.wall_time(now)) + cfg_.credential_lifetime_s;
  return std::to_string(expires) + ":" + who.hex();
}

security::Seed TurnService::fresh_seed() {
  security::Seed seed{};
  env_.secure_bytes(seed.data(), seed.size());
  return seed;
}

void TurnService::on_turn(const dht::TurnRequest& t, Instant now) {
  auto refuse = [&](dht::Status status, std::string reason, std::uint32_t retry_after = 0) {
    ++status_.requests_refused;
    chord_.answer_turn(t, status, std::move(reason), "", retry_after, now);
  };
  if (!status_.announcing) {
    refuse(dht::Status::NotFound, "No TURN Service Here");
    return;
  }
  while (!given_.empty() && now - given_.front() >= seconds(60)) given_.pop_front();
  if (given_.size() >= cfg_.max_requests_per_minute) {
    refuse(dht::Status::Unavailable, "TURN Credentials Over Their Rate", 60);
    return;
  }
  auto pairs = read_pairs(t.payload, '\n');
  const auto key_text = pairs ? value_of(*pairs, "key") : std::nullopt;
  auto key = key_text ? security::from_base64(*key_text, 32) : std::nullopt;
  if (!key || key->size() != 32) {
    refuse(dht::Status::BadRequest, "Bad TURN Request: No Sealing Key");
    return;
  }
  security::PublicKey recipient{};
  std::copy(key->begin(), key->end(), reinterpret_cast<char*>(recipient.data()));
  const std::string user = rest_user(now, t.sender.id);
  const std::string sealed = security::seal(recipient, security::turn_rest_password(cfg_.secret, user), fresh_seed());
  if (sealed.empty()) {
    refuse(dht::Status::BadRequest, "Bad TURN Request: Unusable Sealing Key");
    return;
  }
  given_.push_back(now);
  ++status_.credentials_given;
  chord_.answer_turn(t, dht::Status::Ok, "OK",
                     "user=" + user + "\npassword=" + security::to_base64(sealed) +
                         "\nlifetime=" + std::to_string(cfg_.credential_lifetime_s) + "\n",
                     0, now);
}

}  // namespace p2psip::peer
