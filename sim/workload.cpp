#include "sim/workload.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "sim/events.hpp"

namespace p2psip::sim {

namespace {
constexpr std::size_t kMaxHops = 64;
Instant at_s(double s) {
  return Instant(Duration(static_cast<std::int64_t>(s * 1e6)));
}
}  // namespace

Workload::Workload(const Scenario& sc, Engine& engine, Population& population, Metrics& metrics)
    : sc_(sc),
      engine_(engine),
      population_(population),
      metrics_(metrics),
      rng_(sc.seed, 3),
      end_(at_s(std::max(sc.workload_start_s, sc.duration_s - sc.drain_s))) {
  metrics_.results.hops_histogram.assign(kMaxHops + 1, 0);
}

void Workload::schedule() {
  for (std::size_t i = 0; i < sc_.script.size(); ++i) {
    engine_.push(at_s(sc_.script[i].at_s), kind(EventKind::Workload), 0,
                 (std::uint64_t{i} << 8) | static_cast<std::uint64_t>(Kind::Script));
  }
  auto first = [&](double rate, Kind k) {
    if (rate > 0) {
      const double t = sc_.workload_start_s - std::log(rng_.uniform_open0()) / rate;
      engine_.push(at_s(t), kind(EventKind::Workload), 0, static_cast<std::uint64_t>(k));
    }
  };
  first(sc_.lookups_per_s, Kind::Lookup);
  first(sc_.puts_per_s, Kind::Put);
  first(sc_.gets_per_s, Kind::Get);
}

Duration Workload::exponential_gap(double rate) {
  return Duration(static_cast<std::int64_t>(-std::log(rng_.uniform_open0()) / rate * 1e6));
}

std::optional<std::uint32_t> Workload::random_honest_joined() {
  // Malicious hosts are a minority: a few draws find an honest one.
  for (int i = 0; i < 64; ++i) {
    auto n = population_.random_joined(rng_);
    if (!n || !population_.host(*n).malicious) return n;
  }
  return std::nullopt;
}

void Workload::overlay_wide(Kind k, std::uint64_t arg) {
  const Instant now = engine_.now();
  if (k == Kind::Script) {
    const ScriptedOp& op = sc_.script[arg];
    if (op.node < population_.created() && population_.host(static_cast<std::uint32_t>(op.node)).peer) {
      // A scripted put stores, and a scripted get expects, a value derived from the key.
      route(static_cast<std::uint32_t>(op.node), op.op, op.key, "value-of-" + op.key);
    }
    return;
  }
  if (now >= end_) return;
  const double rate = k == Kind::Lookup ? sc_.lookups_per_s : k == Kind::Put ? sc_.puts_per_s : sc_.gets_per_s;
  engine_.push(now + exponential_gap(rate), kind(EventKind::Workload), 0, static_cast<std::uint64_t>(k));
  if (auto from = random_honest_joined()) issue(k, *from);
}

double Workload::per_node_rate(Kind k) const {
  switch (k) {
    case Kind::Lookup: return sc_.lookups_per_node_per_s;
    case Kind::Put: return sc_.puts_per_node_per_s;
    case Kind::Get: return sc_.gets_per_node_per_s;
    case Kind::Script: return 0;
  }
  return 0;
}

// Each joined honest host runs its own Poisson stream of each kind with a per-node rate: their sum
// is a Poisson stream at rate × the joined population, however that population changes. A host's
// stream ends with its membership (it failed or is leaving) or with the workload.
void Workload::node_joined(std::uint32_t host) {
  if (population_.host(host).malicious) return;  // operations start at honest hosts only
  const Instant from = std::max(engine_.now(), at_s(sc_.workload_start_s));
  if (from >= end_) return;
  for (Kind k : {Kind::Lookup, Kind::Put, Kind::Get}) {
    const double rate = per_node_rate(k);
    if (rate > 0)
      engine_.push(from + exponential_gap(rate), kind(EventKind::NodeWork), host, static_cast<std::uint64_t>(k));
  }
}

void Workload::node_work(std::uint32_t host, Kind k) {
  if (population_.host(host).joined_pos < 0 || engine_.now() >= end_) return;  // gone or leaving, or over
  engine_.push(engine_.now() + exponential_gap(per_node_rate(k)), kind(EventKind::NodeWork), host,
               static_cast<std::uint64_t>(k));
  issue(k, host);
}

void Workload::issue(Kind k, std::uint32_t from) {
  Results& r = metrics_.results;
  switch (k) {
    case Kind::Lookup: {
      char key[32];
      std::snprintf(key, sizeof key, "k%016llx", static_cast<unsigned long long>(rng_.next()));
      route(from, dht::RouteOp::Lookup, key, std::nullopt);
      return;
    }
    case Kind::Put: {
      const std::string rec = "rec-" + std::to_string(r.puts.issued);
      const std::string value = "value-" + std::to_string(rng_.next() % 1000000);
      // With identities a node may write only under its own Node-ID (NODE-MATCH): each put is an
      // entry of its own there, in the node's dictionary.
      if (sc_.security) {
        route(from, dht::RouteOp::Store, population_.host(from).id.hex(), value, rec);
      } else {
        route(from, dht::RouteOp::Store, rec, value);
      }
      return;
    }
    case Kind::Get: {
      if (stored_.empty()) return;
      const Stored& st = stored_[rng_.below(stored_.size())];
      route(from, dht::RouteOp::Fetch, st.name, st.value, st.dkey);
      return;
    }
    case Kind::Script: return;
  }
}

void Workload::route(std::uint32_t from, dht::RouteOp op, const std::string& key, std::optional<std::string> expect,
                     std::string dkey) {
  Host& h = population_.host(from);
  Results& results = metrics_.results;
  const dht::NodeId id = dht::NodeId::hash(key);
  OpCounts& counts = op == dht::RouteOp::Lookup  ? results.lookups
                     : op == dht::RouteOp::Store ? results.puts
                                                 : results.gets;
  ++counts.issued;
  ++h.ops_pending;
  std::optional<dht::Record> record;
  const Instant now = engine_.now();
  if (op == dht::RouteOp::Store) {
    record = dht::Record{};
    record->key = id;
    record->name = key;
    record->dkey = dkey;
    record->value = expect.value_or("");
    record->owner = h.id.hex();
    record->lifetime_s = 24 * 3600;
    if (const auto* writer = h.peer->writer()) writer->sign(*record, h.env.wall_time(now));
    names_.emplace(id, key);
  }
  auto done = [this, from, op, id, key, dkey, start = now, expect, &counts](const dht::RouteResult& r) {
    Results& res = metrics_.results;
    --population_.host(from).ops_pending;
    ++counts.done;
    const bool answered = r.status == dht::Status::Ok;
    bool ok = false;
    switch (op) {
      case dht::RouteOp::Lookup: {
        const auto expected = population_.responsible(id);
        ok = answered && r.responsible && expected == r.responsible->id;
        ++metrics_.row.lookups;
        if (!ok && res.bad_lookups.size() < Results::kMaxBadLookups) {
          Results::BadLookup w;
          w.t_s = static_cast<double>(engine_.now().time_since_epoch().count()) / 1e6;
          w.from = from;
          w.answered = answered;
          w.status = dht::code(r.status);
          w.reason = r.reason;
          w.key = id.hex();
          w.expected = expected ? expected->hex() : std::string();
          if (answered && r.responsible) {
            w.got = r.responsible->id.hex();
            if (const auto host = population_.joined_host(r.responsible->id)) w.got_host = *host;
          }
          w.hops = r.hops;
          res.bad_lookups.push_back(std::move(w));
        }
        if (ok) {
          ++metrics_.row.lookups_ok;
          metrics_.row.hops_sum += r.hops;
          ++res.hops_histogram[std::min<std::size_t>(r.hops, kMaxHops)];
          res.latency_ms.push_back(static_cast<float>(to_millis(engine_.now() - start)));
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
        res.get_attempts += static_cast<std::uint64_t>(r.attempts);
        break;
      case dht::RouteOp::Attach:  // the workload draws no Attaches (links are the NAT model's), nor Finds
      case dht::RouteOp::Find: break;
    }
    if (ok) {
      ++counts.ok;
    } else if (answered) {
      ++counts.wrong;
    } else {
      ++counts.failed;
    }
  };
  h.peer->chord().route(op, id, record, done, now);
  population_.touched(from);
}

}  // namespace p2psip::sim
