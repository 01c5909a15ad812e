#include "node/proxy/ua_side.hpp"

#include <algorithm>
#include <cstdio>

#include "node/sip/headers.hpp"
#include "node/sip/validate.hpp"

namespace p2psip::proxy {

using sip::HeaderId;
using sip::Message;

namespace {

sip::Capabilities ua_capabilities() {
  sip::Capabilities caps;
  caps.methods = {"REGISTER"};
  caps.content_types.clear();  // a REGISTER's body is not read
  return caps;
}

}  // namespace

UaSide::UaSide(Environment& env, overlay::OverlayNode& overlay, UaSideConfig config, security::UserIdentities* users)
    : cfg_(std::move(config)),
      env_(env),
      users_(users),
      overlay_(overlay),
      layer_(env, *this, cfg_.timers, cfg_.limits),
      registrar_([&] {
        RegistrarConfig rc = cfg_.registrar;
        rc.track_sources = !cfg_.phones_on_loopback;
        return rc;
      }()) {
  if (cfg_.digest) digest_.emplace(*cfg_.digest, cfg_.digest_secrets, env_);
  pubs_.reserve(std::min(cfg_.registrar.max_aors, Registrar::kPresized));  // no rehash stalls (registrar.hpp)
  overlay_.set_delegate(&overlay_side_);
}

UaSide::~UaSide() {
  overlay_.set_delegate(nullptr);
}

void UaSide::receive_datagram(std::string_view bytes, const Endpoint& from, Instant now) {
  layer_.receive_datagram(bytes, from, now);
}
void UaSide::receive(const Message& m, const Endpoint& from, Instant now) {
  layer_.receive(m, from, now);
}
void UaSide::answer_malformed(std::string_view raw, const sip::ParseError& e, const Endpoint& from) {
  layer_.answer_malformed(raw, e, from);
}

bool UaSide::authenticated(sip::TransactionId id, const Message& request, const Endpoint& from, HeaderId header,
                           std::string_view user, Instant now) {
  const DigestOutcome out = digest_->check(request, header, now);
  if (out.kind == DigestOutcome::Kind::Ok && out.user == user) return true;
  const bool registrar = header == HeaderId::Authorization;
  if (out.kind == DigestOutcome::Kind::Ok) {
    // Good credentials, of another user: §10.3 step 6 and §22.3 answer 403.
    ++stats_.auth_refused;
    layer_.respond(
        id,
        sip::make_response(request, 403, "Forbidden (Authenticated As " + out.user + ", Not " + std::string(user) + ")",
                           tag()),
        now);
    return false;
  }
  if (out.kind == DigestOutcome::Kind::Refused) {
    ++stats_.auth_refused;
    if (auth_logged_(from, now)) {
      env_.log(LogLevel::Warn, "ua: digest credentials of '" + out.user + "' from " + from.to_string() +
                                   " refused: " + out.reason + " (logged once per address per minute)");
    }
  } else {
    ++stats_.challenges;
  }
  // §22.2 and §22.3: challenge (again) with every algorithm we take; a stale nonce says so, so
  // that the phone answers with the same password instead of asking its user.
  Message answer = sip::make_response(request, registrar ? 401 : 407,
                                      registrar ? "Unauthorized" : "Proxy Authentication Required", tag());
  for (const auto& c : digest_->challenges(now, out.kind == DigestOutcome::Kind::Stale)) {
    answer.add_header(registrar ? HeaderId::WwwAuthenticate : HeaderId::ProxyAuthenticate, c);
  }
  layer_.respond(id, answer, now);
  return false;
}

bool UaSide::phone_reachable(const Endpoint& to) const {
  return cfg_.phones_on_loopback ? to.ip.is_loopback() : registrar_.has_source(to);
}

std::string UaSide::tag() {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(env_.secure_random()));
  return buf;
}

void UaSide::on_request(sip::TransactionId id, const Message& request, const Endpoint& from, Instant now) {
  if (request.method_id() == sip::Method::Register) {
    handle_register(id, request, from, now);
    return;
  }
  this->request(Side::Ua, id, request, from, now);
}

void UaSide::handle_register(sip::TransactionId id, const Message& request, const Endpoint& from, Instant now) {
  static const sip::Capabilities caps = ua_capabilities();
  ++stats_.registers;
  auto reject = [&](const sip::Rejection& r) {
    ++stats_.registers_rejected;
    layer_.respond(id, sip::make_rejection(request, r, tag()), now);
  };
  if (auto rej = sip::check_request_capabilities(request, caps)) return reject(*rej);  // Require: 420
  // §10.3 steps 1 and 4: the registrar serves the overlay's users only.
  auto to = sip::parse_name_address(request.header(HeaderId::To).value_or(""));
  auto aor = to ? Registrar::canonical_aor(to->uri.text) : std::nullopt;
  if (!aor) return reject({404, "Not Found (To Is Not A sip: AOR With A User)", HeaderId::Other, {}});
  // §10.3 step 6: the authenticated user may change only its own registrations.
  if (digest_ && !authenticated(id, request, from, HeaderId::Authorization, Registrar::user_of(*aor), now)) {
    ++stats_.registers_rejected;
    return;
  }
  // RFC 6940's USER-MATCH: only the holder of the user's certificate writes the user's
  // registrations, so a node registers the users it was enrolled for and no others.
  if (users_ != nullptr && users_->writer_for(*aor, now) == nullptr) {
    return reject({403, "Forbidden (No Certificate For " + *aor + " At This Node)", HeaderId::Other, {}});
  }
  auto& pub = pubs_[*aor];
  if (pub.jobs.size() >= cfg_.max_waiting_per_aor) {
    forget_if_idle(*aor);
    return reject({503, "Too Many Pending Registrations", HeaderId::RetryAfter, "1"});
  }
  pub.jobs.push_back(Job{id, request, from});
  run_jobs(*aor, now);
}

void UaSide::run_jobs(const std::string& aor, Instant now) {
  auto pit = pubs_.find(aor);
  if (pit == pubs_.end() || pit->second.running) return;  // the running loop picks new jobs up
  Publication& p = pit->second;  // node-based: stays put while the entry lives, rehashing or not
  p.running = true;
  while (!p.in_flight && !p.jobs.empty()) {
    Job job = std::move(p.jobs.front());
    p.jobs.erase(p.jobs.begin());
    if (job.txn == 0) {  // refresh, or removal once the last binding has gone
      auto bindings = registrar_.bindings(aor, now);
      if (bindings.empty() && !p.stored) continue;
      p.in_flight = true;
      store(aor, bindings, now,
            [this, aor, removing = bindings.empty()](int status, const std::string& reason, Instant t) {
              auto& q = pubs_[aor];
              q.in_flight = false;
              if (status == 200) {
                set_stored(q, !removing);
                (removing ? stats_.entries_removed : stats_.refreshes)++;
              } else {
                ++stats_.store_failures;
                env_.log(LogLevel::Warn, "ua: could not store the registration of " + aor +
                                             " in the overlay: " + std::to_string(status) + " " + reason);
                set_refresh(aor, q, t + seconds(cfg_.retry_after_s));  // try again
              }
              run_jobs(aor, t);
            });
      continue;
    }
    RegisterPlan plan = registrar_.evaluate(job.request, job.from, now);
    if (plan.status != 200) {
      ++stats_.registers_rejected;
      Message answer = sip::make_response(job.request, plan.status, plan.reason, tag());
      if (plan.status == 423) answer.add_header(HeaderId::MinExpires, std::to_string(plan.min_expires));
      layer_.respond(job.txn, answer, now);
      continue;
    }
    if (plan.query) {
      ++stats_.queries;
      layer_.respond(job.txn, Registrar::make_ok(job.request, plan.after, now, tag()), now);
      continue;
    }
    if (plan.after.empty() && !p.stored) {  // nothing here and nothing in the overlay
      registrar_.commit(plan, now);
      ++stats_.registers_ok;
      layer_.respond(job.txn, Registrar::make_ok(job.request, {}, now, tag()), now);
      continue;
    }
    if (p.stored && !plan.after.empty() && plan.after.size() == p.stored_devices && p.stored_via == via_generation_ &&
        p.refresh_at != kInstantMax) {
      // A refresh that leaves the entry as it is (reachable through this node, as many devices)
      // changes nothing in the overlay: the entry is stored again on its own schedule (80 % of its
      // lifetime, set_refresh), not at every REGISTER, and the answer needs no overlay round trip.
      registrar_.commit(plan, now);
      ++stats_.registers_ok;
      ++stats_.entries_kept;
      layer_.respond(job.txn, Registrar::make_ok(job.request, registrar_.bindings(aor, now), now, tag()), now);
      continue;
    }
    p.in_flight = true;
    store(aor, plan.after, now,
          [this, aor, plan, txn = job.txn, request = std::move(job.request)](int status, const std::string& reason,
                                                                             Instant t) {
            auto& q = pubs_[aor];
            q.in_flight = false;
            if (status == 200) {
              registrar_.commit(plan, t);
              set_stored(q, !plan.after.empty());
              (plan.after.empty() ? stats_.entries_removed : stats_.entries_stored)++;
              ++stats_.registers_ok;
              layer_.respond(txn, Registrar::make_ok(request, registrar_.bindings(aor, t), t, tag()), t);
            } else {
              // Nothing changes: the phone keeps its old state here and tries again.
              ++stats_.store_failures;
              ++stats_.registers_rejected;
              env_.log(LogLevel::Warn, "ua: REGISTER for " + aor +
                                           " not stored in the overlay: " + std::to_string(status) + " " + reason);
              Message busy = sip::make_response(request, 503, "Overlay Store Failed", tag());
              busy.add_header(HeaderId::RetryAfter, std::to_string(cfg_.retry_after_s));
              layer_.respond(txn, busy, t);
            }
            run_jobs(aor, t);
          });
  }
  p.running = false;
  forget_if_idle(aor);
}

void UaSide::store(const std::string& aor, const std::vector<Binding>& bindings, Instant now,
                   std::function<void(int, const std::string&, Instant)> done) {
  dht::Record r = entry(aor);
  auto& pub = pubs_[aor];
  set_refresh(aor, pub, kInstantMax);
  if (!bindings.empty()) {
    dht::Peer reach = overlay_.chord().table().self();
    reach.addr.transport = call_transport();
    r.value = encode_registration(RegistrationEntry{reach, static_cast<std::uint32_t>(bindings.size()), via_});
    // The entry lives no longer than the longest binding, and at most entry_lifetime_s.
    Instant last = now;
    for (const auto& b : bindings) last = std::max(last, b.expires);
    auto remaining = static_cast<std::uint32_t>(((last - now).count() + 999999) / 1000000);
    r.lifetime_s = std::max<std::uint32_t>(1, std::min(cfg_.entry_lifetime_s, remaining));
  }
  std::uint32_t lifetime = r.lifetime_s;
  if (!sign(r, pub, now)) {
    done(403, "Forbidden (No Certificate For " + aor + " At This Node)", now);
    return;
  }
  overlay_.chord().route(
      dht::RouteOp::Store, r.key, std::move(r),
      [this, aor, now, lifetime, devices = static_cast<std::uint32_t>(bindings.size()), via = via_generation_,
       done = std::move(done)](const dht::RouteResult& res) {
        Instant t = now + res.latency;
        if (res.status == dht::Status::Ok && lifetime > 0) {
          // Stored again at 80 % of its lifetime (RELOAD refreshes before expiry, RFC 6940 §7.2).
          auto& q = pubs_[aor];
          // Relays that changed while this store was under way: stored again at once.
          set_refresh(aor, q, via == via_generation_ ? t + Duration(std::int64_t{lifetime} * 800000) : t);
          q.stored_devices = devices;
          q.stored_via = via;
        }
        done(dht::code(res.status), res.reason, t);
      },
      now);
}

dht::Record UaSide::entry(const std::string& aor) const {
  const dht::Peer& self = overlay_.chord().table().self();
  dht::Record r;
  r.name = aor;
  r.key = dht::NodeId::hash(aor);
  r.dkey = self.id.hex();
  r.owner = self.id.hex();
  r.lifetime_s = 0;  // a removal until a value and lifetime are set
  return r;
}

bool UaSide::sign(dht::Record& r, Publication& p, Instant now) {
  if (users_ == nullptr) return true;
  const security::Writer* w = users_->writer_for(r.name, now);
  if (w == nullptr) return false;
  // Each entry must be newer than the last (storing peers refuse replays), even two in one µs.
  p.last_written = std::max(env_.wall_time(now), p.last_written + WallClock::duration(1));
  w->sign(r, p.last_written);
  return true;
}

void UaSide::set_refresh(const std::string& aor, Publication& p, Instant at) {
  if (p.refresh_at != kInstantMax) refresh_queue_.erase({p.refresh_at, aor});
  p.refresh_at = at;
  if (at != kInstantMax) refresh_queue_.insert({at, aor});
}

void UaSide::set_stored(Publication& p, bool stored) {
  if (p.stored != stored) stored ? ++published_ : --published_;
  p.stored = stored;
}

void UaSide::forget_if_idle(const std::string& aor) {
  auto it = pubs_.find(aor);
  if (it == pubs_.end()) return;
  const Publication& p = it->second;
  if (!p.running && !p.in_flight && p.jobs.empty() && !p.stored && p.refresh_at == kInstantMax &&
      registrar_.bindings(aor, Instant{}).empty()) {
    pubs_.erase(it);
  }
}

void UaSide::advance(Instant now) {
  layer_.advance(now);
  sweep_calls(now);
  // Bindings that ran out: the AOR's entry goes from the overlay when none is left.
  for (const auto& aor : registrar_.expire(now)) {
    auto& p = pubs_[aor];
    if (p.stored) {
      p.jobs.push_back(Job{});
      run_jobs(aor, now);
    } else {
      forget_if_idle(aor);
    }
  }
  while (!refresh_queue_.empty() && refresh_queue_.begin()->first <= now) {
    std::string aor = refresh_queue_.begin()->second;
    auto& p = pubs_[aor];
    set_refresh(aor, p, kInstantMax);
    p.jobs.push_back(Job{});
    run_jobs(aor, now);
  }
}

Instant UaSide::next_wakeup() const {
  Instant next = std::min(layer_.next_wakeup(), registrar_.next_expiry());
  if (!refresh_queue_.empty()) next = std::min(next, refresh_queue_.begin()->first);
  if (!call_sweep_.empty()) next = std::min(next, call_sweep_.begin()->first);
  if (!silent_branches_.empty()) next = std::min(next, std::get<0>(*silent_branches_.begin()));
  return next;
}

void UaSide::set_via(std::vector<std::string> uris, Instant now) {
  if (uris == via_) return;
  via_ = std::move(uris);
  ++via_generation_;
  // Every entry in the overlay names the old relays: each is stored again now (by advance(), as a
  // refresh), and a refresh already queued for later is brought forward.
  for (auto& [aor, p] : pubs_) {
    if (p.stored && p.refresh_at != kInstantMax) set_refresh(aor, p, now);
  }
}

void UaSide::withdraw_all(Instant now) {
  for (auto& [aor, p] : pubs_) {
    if (!p.stored) continue;
    set_refresh(aor, p, kInstantMax);
    dht::Record r = entry(aor);
    set_stored(p, false);
    if (!sign(r, p, now)) continue;  // an identity withdrawn meanwhile: the entry expires on its own
    ++stats_.entries_removed;
    overlay_.chord().route(
        dht::RouteOp::Store, r.key, std::move(r), [](const dht::RouteResult&) {}, now);
  }
}

}  // namespace p2psip::proxy
