#include "sim/scenario.hpp"

#include <toml++/toml.h>

#include <charconv>
#include <cmath>
#include <fstream>
#include <sstream>

namespace p2psip::sim {

namespace {

std::string trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return std::string(s);
}

std::optional<double> parse_number(std::string_view s) {
  std::string t = trim(s);
  // Accept "name=value" inside the parentheses for readability: weibull(scale=3600, shape=0.5).
  if (auto eq = t.find('='); eq != std::string::npos) t = trim(std::string_view(t).substr(eq + 1));
  double v = 0;
  auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (ec != std::errc{} || p != t.data() + t.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

std::string format_number(double v) {
  std::ostringstream o;
  o << v;
  return o.str();
}

}  // namespace

std::string Distribution::describe() const {
  switch (kind) {
    case Kind::Constant: return "constant(" + format_number(a) + ")";
    case Kind::Uniform: return "uniform(" + format_number(a) + ", " + format_number(b) + ")";
    case Kind::Exponential: return "exponential(" + format_number(a) + ")";
    case Kind::Pareto: return "pareto(" + format_number(a) + ", " + format_number(b) + ")";
    case Kind::Weibull: return "weibull(" + format_number(a) + ", " + format_number(b) + ")";
    case Kind::Lognormal: return "lognormal(" + format_number(a) + ", " + format_number(b) + ")";
  }
  return "?";
}

std::optional<Distribution> parse_distribution(std::string_view text, std::string& error) {
  std::string t = trim(text);
  if (auto v = parse_number(t)) {
    if (*v < 0) {
      error = "a constant must not be negative";
      return std::nullopt;
    }
    return Distribution{Distribution::Kind::Constant, *v, 0};
  }
  auto open = t.find('(');
  if (open == std::string::npos || t.back() != ')') {
    error = "'" + t + "' is not a number or NAME(ARGS)";
    return std::nullopt;
  }
  std::string name = trim(std::string_view(t).substr(0, open));
  std::vector<double> args;
  std::string_view inner = std::string_view(t).substr(open + 1, t.size() - open - 2);
  while (!inner.empty()) {
    auto comma = inner.find(',');
    auto part = inner.substr(0, comma);
    auto v = parse_number(part);
    if (!v) {
      error = "'" + trim(part) + "' in '" + t + "' is not a number";
      return std::nullopt;
    }
    args.push_back(*v);
    if (comma == std::string_view::npos) break;
    inner.remove_prefix(comma + 1);
  }
  struct Known {
    const char* name;
    Distribution::Kind kind;
    std::size_t nargs;
    const char* usage;
  };
  static constexpr Known kKnown[] = {
      {"constant", Distribution::Kind::Constant, 1, "constant(VALUE)"},
      {"uniform", Distribution::Kind::Uniform, 2, "uniform(MIN, MAX)"},
      {"exponential", Distribution::Kind::Exponential, 1, "exponential(MEAN)"},
      {"pareto", Distribution::Kind::Pareto, 2, "pareto(SCALE, SHAPE)"},
      {"weibull", Distribution::Kind::Weibull, 2, "weibull(SCALE, SHAPE)"},
      {"lognormal", Distribution::Kind::Lognormal, 2, "lognormal(MU, SIGMA)"},
  };
  for (const auto& k : kKnown) {
    if (name != k.name) continue;
    if (args.size() != k.nargs) {
      error = "'" + t + "': write " + k.usage;
      return std::nullopt;
    }
    Distribution d{k.kind, args[0], args.size() > 1 ? args[1] : 0};
    bool bad = false;
    switch (k.kind) {
      case Distribution::Kind::Constant: bad = d.a < 0; break;
      case Distribution::Kind::Uniform: bad = d.a < 0 || d.b < d.a; break;
      case Distribution::Kind::Exponential: bad = d.a <= 0; break;
      case Distribution::Kind::Pareto:
      case Distribution::Kind::Weibull: bad = d.a <= 0 || d.b <= 0; break;
      case Distribution::Kind::Lognormal: bad = d.b < 0; break;
    }
    if (bad) {
      error = "'" + t + "': parameters out of range for " + k.usage;
      return std::nullopt;
    }
    return d;
  }
  error = "unknown distribution '" + name + "' (constant, uniform, exponential, pareto, weibull, lognormal)";
  return std::nullopt;
}

namespace {

class Reader {
 public:
  Reader(std::string origin, std::string base_dir, std::string& error)
      : origin_(std::move(origin)), base_(std::move(base_dir)), error_(error) {}

  bool fail(const std::string& key, const std::string& what) {
    error_ = origin_ + ": '" + key + "' " + what;
    return false;
  }
  bool number(const toml::node& v, const std::string& key, double lo, double hi, double& out) {
    auto d = v.value<double>();
    if (!d || !std::isfinite(*d) || *d < lo || *d > hi) {
      return fail(key, "must be a number from " + format_number(lo) + " to " + format_number(hi));
    }
    out = *d;
    return true;
  }
  template <typename T>
  bool integer(const toml::node& v, const std::string& key, double lo, double hi, T& out) {
    double d = 0;
    if (!number(v, key, lo, hi, d)) return false;
    if (d != std::floor(d)) return fail(key, "must be a whole number");
    out = static_cast<T>(d);
    return true;
  }
  bool text(const toml::node& v, const std::string& key, std::string& out) {
    if (!v.is_string()) return fail(key, "must be a string");
    out = *v.value<std::string>();
    return true;
  }
  bool boolean(const toml::node& v, const std::string& key, bool& out) {
    if (!v.is_boolean()) return fail(key, "must be true or false");
    out = *v.value<bool>();
    return true;
  }
  bool distribution(const toml::node& v, const std::string& key, Distribution& out) {
    if (auto d = v.value<double>(); d && !v.is_string()) {
      if (*d < 0) return fail(key, "must not be negative");
      out = Distribution{Distribution::Kind::Constant, *d, 0};
      return true;
    }
    if (!v.is_string()) return fail(key, "must be a number or a distribution such as \"exponential(5)\"");
    std::string why;
    auto d = parse_distribution(*v.value<std::string>(), why);
    if (!d) return fail(key, why);
    out = *d;
    return true;
  }
  bool lines(const toml::node& v, const std::string& key, std::vector<std::string>& out) {
    std::string name;
    if (!text(v, key, name)) return false;
    std::string path = !name.empty() && name[0] == '/' ? name : base_ + "/" + name;
    std::ifstream in(path);
    if (!in) return fail(key, "names a file that cannot be read: " + path);
    std::string line;
    while (std::getline(in, line)) {
      std::string t = trim(line);
      if (!t.empty() && t[0] != '#') out.push_back(t);
    }
    return true;
  }

 private:
  std::string origin_, base_;
  std::string& error_;
};

bool read_script(Reader& rd, const std::vector<std::string>& lines, Scenario& s) {
  for (const auto& l : lines) {
    std::istringstream in(l);
    ScriptedOp op;
    std::string verb;
    if (!(in >> op.at_s >> op.node >> verb >> op.key)) {
      return rd.fail("workload.script", "line '" + l + "' is not 'SECONDS NODE lookup|put|get KEY'");
    }
    if (verb == "lookup") {
      op.op = dht::RouteOp::Lookup;
    } else if (verb == "put") {
      op.op = dht::RouteOp::Store;
    } else if (verb == "get") {
      op.op = dht::RouteOp::Fetch;
    } else {
      return rd.fail("workload.script", "line '" + l + "': the operation must be lookup, put or get");
    }
    s.script.push_back(op);
  }
  return true;
}

bool apply_table(const toml::table& t, Reader& rd, Scenario& s) {
  for (auto&& [k, v] : t) {
    std::string key(k.str());
    bool ok = true;
    if (key == "name") {
      ok = rd.text(v, key, s.name);
    } else if (key == "nodes") {
      ok = rd.integer(v, key, 1, 16e6, s.nodes);
    } else if (key == "duration") {
      ok = rd.number(v, key, 1, 1e7, s.duration_s);
    } else if (key == "seed") {
      ok = rd.integer(v, key, 0, 9.007199254740992e15, s.seed);
    } else if (key == "join_rate") {
      ok = rd.number(v, key, 0.001, 1e7, s.join_rate);
    } else if (key == "interval") {
      ok = rd.number(v, key, 0.1, 1e6, s.interval_s);
    } else if (key == "overlay") {
      ok = rd.text(v, key, s.overlay);
    } else if (key == "node_ids_file") {
      s.node_ids.clear();
      ok = rd.lines(v, key, s.node_ids);
      for (const auto& id : s.node_ids) {
        if (ok && !dht::NodeId::from_hex(id)) ok = rd.fail(key, "holds '" + id + "', not a 32-digit hex id");
      }
    } else if (key == "network") {
      auto* n = v.as_table();
      if (!n) return rd.fail(key, "must be a table");
      for (auto&& [nk, nv] : *n) {
        std::string name = "network." + std::string(nk.str());
        if (nk == "propagation_ms") {
          ok = rd.number(nv, name, 0, 1e5, s.propagation_ms);
        } else if (nk == "access_ms") {
          ok = rd.distribution(nv, name, s.access_ms);
        } else if (nk == "loss") {
          ok = rd.number(nv, name, 0, 1, s.loss);
        } else if (nk == "transport") {
          std::string word;
          ok = rd.text(nv, name, word);
          const auto chosen = ok ? transport_from_name(word) : std::nullopt;
          if (ok && chosen && (word == "udp" || word == "tcp" || word == "tls")) {
            s.transport = *chosen;
          } else if (ok) {
            ok = rd.fail(name, "must be \"udp\", \"tcp\" or \"tls\", not '" + word + "'");
          }
        } else {
          ok = rd.fail(name, "is not a key (propagation_ms, access_ms, loss, transport)");
        }
        if (!ok) return false;
      }
    } else if (key == "chord") {
      auto* c = v.as_table();
      if (!c) return rd.fail(key, "must be a table");
      for (auto&& [ck, cv] : *c) {
        std::string name = "chord." + std::string(ck.str());
        double secs = 0;
        if (ck == "stabilize") {
          ok = rd.number(cv, name, 0.01, 86400, secs);
          s.chord.stabilize_interval = Duration(static_cast<std::int64_t>(secs * 1e6));
        } else if (ck == "fingers_per_round") {
          ok = rd.integer(cv, name, 0, 128, s.chord.fingers_per_round);
        } else if (ck == "finger_rounds") {
          ok = rd.integer(cv, name, 1, 1000, s.chord.finger_rounds);
        } else if (ck == "successors") {
          ok = rd.integer(cv, name, 1, 64, s.chord.successors);
        } else if (ck == "predecessors") {
          ok = rd.integer(cv, name, 1, 64, s.chord.predecessors);
        } else if (ck == "replicas") {
          ok = rd.integer(cv, name, 0, 64, s.chord.replicas);
        } else if (ck == "iterative") {
          ok = rd.boolean(cv, name, s.chord.iterative);
        } else if (ck == "route_via_successor_list") {
          ok = rd.boolean(cv, name, s.chord.route_via_successor_list);
        } else if (ck == "learn_fingers") {
          ok = rd.boolean(cv, name, s.chord.learn_fingers);
        } else if (ck == "max_hops") {
          ok = rd.integer(cv, name, 1, 1000, s.chord.max_hops);
        } else if (ck == "route_retries") {
          ok = rd.integer(cv, name, 1, 100, s.chord.route_retries);
        } else if (ck == "fetch_attempts") {
          ok = rd.integer(cv, name, 1, 1 + static_cast<double>(dht::kMaxExcluded), s.chord.fetch_attempts);
        } else if (ck == "plausible_gaps") {
          ok = rd.integer(cv, name, 0, 1e6, s.chord.plausible_gaps);
        } else if (ck == "t1_ms") {
          ok = rd.number(cv, name, 1, 60000, s.t1_ms);
        } else if (ck == "hop_timeout_ms") {
          ok = rd.number(cv, name, 0, 600000, s.hop_timeout_ms);
        } else {
          ok = rd.fail(name,
                       "is not a key (stabilize, fingers_per_round, finger_rounds, successors, predecessors, replicas, "
                       "iterative, route_via_successor_list, learn_fingers, max_hops, route_retries, fetch_attempts, "
                       "plausible_gaps, t1_ms, hop_timeout_ms)");
        }
        if (!ok) return false;
      }
    } else if (key == "churn") {
      auto* c = v.as_table();
      if (!c) return rd.fail(key, "must be a table");
      for (auto&& [ck, cv] : *c) {
        std::string name = "churn." + std::string(ck.str());
        if (ck == "session") {
          Distribution d;
          ok = rd.distribution(cv, name, d);
          if (ok && d.kind == Distribution::Kind::Constant && d.a <= 0) ok = rd.fail(name, "must be positive");
          if (ok) s.session_s = d;
        } else if (ck == "leave_fraction") {
          ok = rd.number(cv, name, 0, 1, s.leave_fraction);
        } else if (ck == "start") {
          ok = rd.number(cv, name, 0, 1e7, s.churn_start_s);
        } else {
          ok = rd.fail(name, "is not a key (session, leave_fraction, start)");
        }
        if (!ok) return false;
      }
    } else if (key == "workload") {
      auto* w = v.as_table();
      if (!w) return rd.fail(key, "must be a table");
      for (auto&& [wk, wv] : *w) {
        std::string name = "workload." + std::string(wk.str());
        if (wk == "start") {
          ok = rd.number(wv, name, 0, 1e7, s.workload_start_s);
        } else if (wk == "drain") {
          ok = rd.number(wv, name, 0, 1e7, s.drain_s);
        } else if (wk == "lookups_per_s") {
          ok = rd.number(wv, name, 0, 1e7, s.lookups_per_s);
        } else if (wk == "puts_per_s") {
          ok = rd.number(wv, name, 0, 1e7, s.puts_per_s);
        } else if (wk == "gets_per_s") {
          ok = rd.number(wv, name, 0, 1e7, s.gets_per_s);
        } else if (wk == "lookups_per_node_per_s") {
          ok = rd.number(wv, name, 0, 1000, s.lookups_per_node_per_s);
        } else if (wk == "puts_per_node_per_s") {
          ok = rd.number(wv, name, 0, 1000, s.puts_per_node_per_s);
        } else if (wk == "gets_per_node_per_s") {
          ok = rd.number(wv, name, 0, 1000, s.gets_per_node_per_s);
        } else if (wk == "script_file") {
          std::vector<std::string> lines;
          ok = rd.lines(wv, name, lines) && read_script(rd, lines, s);
        } else {
          ok = rd.fail(name,
                       "is not a key (start, drain, lookups_per_s, puts_per_s, gets_per_s, lookups_per_node_per_s, "
                       "puts_per_node_per_s, gets_per_node_per_s, script_file)");
        }
        if (!ok) return false;
      }
    } else if (key == "security") {
      auto* t2 = v.as_table();
      if (!t2) return rd.fail(key, "must be a table");
      for (auto&& [sk, sv] : *t2) {
        std::string name = "security." + std::string(sk.str());
        if (sk == "enabled") {
          ok = rd.boolean(sv, name, s.security);
        } else if (sk == "messages") {
          ok = rd.boolean(sv, name, s.sign_messages);
        } else if (sk == "crypto") {
          std::string word;
          ok = rd.text(sv, name, word);
          if (ok && (word == "fake" || word == "ed25519")) {
            s.ed25519 = word == "ed25519";
          } else if (ok) {
            ok = rd.fail(name, "must be \"fake\" or \"ed25519\", not '" + word + "'");
          }
        } else {
          ok = rd.fail(name, "is not a key (enabled, messages, crypto)");
        }
        if (!ok) return false;
      }
    } else if (key == "attack") {
      auto* t2 = v.as_table();
      if (!t2) return rd.fail(key, "must be a table");
      for (auto&& [ak, av] : *t2) {
        std::string name = "attack." + std::string(ak.str());
        if (ak == "fraction") {
          ok = rd.number(av, name, 0, 1, s.malicious_fraction);
        } else if (ak == "mode") {
          std::string word;
          ok = rd.text(av, name, word);
          if (ok && word == "drop") {
            s.attack = Scenario::Attack::Drop;
          } else if (ok && word == "forge") {
            s.attack = Scenario::Attack::Forge;
          } else if (ok && word == "mixed") {
            s.attack = Scenario::Attack::Mixed;
          } else if (ok) {
            ok = rd.fail(name, "must be \"drop\", \"forge\" or \"mixed\", not '" + word + "'");
          }
        } else {
          ok = rd.fail(name, "is not a key (fraction, mode)");
        }
        if (!ok) return false;
      }
    } else if (key == "phones") {
      auto* t2 = v.as_table();
      if (!t2) return rd.fail(key, "must be a table");
      for (auto&& [pk, pv] : *t2) {
        std::string name = "phones." + std::string(pk.str());
        if (pk == "fraction") {
          ok = rd.number(pv, name, 0, 1, s.phones.fraction);
        } else if (pk == "calls_per_phone_per_s") {
          ok = rd.number(pv, name, 0, 100, s.phones.calls_per_phone_per_s);
        } else if (pk == "answer_delay") {
          ok = rd.number(pv, name, 0, 600, s.phones.answer_delay_s);
        } else if (pk == "call_duration") {
          ok = rd.number(pv, name, 0, 86400, s.phones.call_duration_s);
        } else {
          ok = rd.fail(name, "is not a key (fraction, calls_per_phone_per_s, answer_delay, call_duration)");
        }
        if (!ok) return false;
      }
    } else if (key == "nat") {
      auto* t2 = v.as_table();
      if (!t2) return rd.fail(key, "must be a table");
      for (auto&& [nk, nv] : *t2) {
        std::string name = "nat." + std::string(nk.str());
        if (nk == "full_cone") {
          ok = rd.number(nv, name, 0, 1, s.nat.full_cone);
        } else if (nk == "addr_restricted") {
          ok = rd.number(nv, name, 0, 1, s.nat.addr_restricted);
        } else if (nk == "port_restricted") {
          ok = rd.number(nv, name, 0, 1, s.nat.port_restricted);
        } else if (nk == "symmetric") {
          ok = rd.number(nv, name, 0, 1, s.nat.symmetric);
        } else if (nk == "udp_blocked") {
          ok = rd.number(nv, name, 0, 1, s.nat.udp_blocked);
        } else if (nk == "binding_timeout") {
          ok = rd.number(nv, name, 30, 86400, s.nat.binding_timeout_s);
        } else if (nk == "relay_max_clients") {
          double n = 0;
          ok = rd.number(nv, name, 1, 100000, n);
          s.nat.relay_max_clients = static_cast<std::uint32_t>(n);
        } else if (nk == "ice") {
          ok = rd.boolean(nv, name, s.nat.ice);
        } else if (nk == "turn") {
          ok = rd.boolean(nv, name, s.nat.turn);
        } else {
          ok = rd.fail(name,
                       "is not a key (full_cone, addr_restricted, port_restricted, symmetric, udp_blocked, "
                       "binding_timeout, relay_max_clients, ice, turn)");
        }
        if (!ok) return false;
      }
      if (s.nat.natted() > 1 + 1e-9) return rd.fail(key, "shares add up to more than 1 (the rest are public)");
    } else if (key == "event") {
      auto* arr = v.as_array();
      if (!arr) return rd.fail(key, "must be an array of tables ([[event]])");
      for (auto&& e : *arr) {
        auto* et = e.as_table();
        if (!et) return rd.fail(key, "must be an array of tables ([[event]])");
        ScriptedEvent ev;
        int kinds = 0;
        bool has_at = false;
        for (auto&& [ek, evv] : *et) {
          std::string name = "event." + std::string(ek.str());
          if (ek == "at") {
            ok = rd.number(evv, name, 0, 1e7, ev.at_s);
            has_at = true;
          } else if (ek == "fail") {
            ev.kind = ScriptedEvent::Kind::Fail;
            ++kinds;
            ok = rd.number(evv, name, 0, 1, ev.fraction);
          } else if (ek == "join") {
            ev.kind = ScriptedEvent::Kind::Join;
            ++kinds;
            ok = rd.number(evv, name, 0, 100, ev.fraction);
          } else if (ek == "partition") {
            ev.kind = ScriptedEvent::Kind::Partition;
            ++kinds;
            ok = rd.number(evv, name, 0.001, 1e7, ev.duration_s);
          } else {
            ok = rd.fail(name, "is not a key (at, and one of fail, join, partition)");
          }
          if (!ok) return false;
        }
        if (!has_at || kinds != 1) return rd.fail(key, "needs 'at' and exactly one of fail, join, partition");
        s.events.push_back(ev);
      }
    } else {
      return rd.fail(key,
                     "is not a key (name, nodes, duration, seed, join_rate, interval, overlay, node_ids_file, "
                     "[network], [chord], [churn], [workload], [security], [attack], [phones], [nat], [[event]])");
    }
    if (!ok) return false;
  }
  return true;
}

}  // namespace

bool apply_toml(const std::string& text, const std::string& origin, const std::string& base_dir, Scenario& s,
                std::string& error) {
  toml::table t;
  try {
    t = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    error = origin + ": " + std::string(e.description()) + " (line " + std::to_string(e.source().begin.line) + ")";
    return false;
  }
  Reader rd(origin, base_dir, error);
  return apply_table(t, rd, s);
}

bool load_scenario(const std::string& path, Scenario& s, std::string& error) {
  std::ifstream in(path);
  if (!in) {
    error = path + ": cannot read the scenario file";
    return false;
  }
  std::stringstream buf;
  buf << in.rdbuf();
  auto slash = path.find_last_of('/');
  std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
  auto stem = path.substr(slash == std::string::npos ? 0 : slash + 1);
  if (auto dot = stem.rfind(".toml"); dot != std::string::npos) stem = stem.substr(0, dot);
  s.name = stem;
  return apply_toml(buf.str(), path, dir, s, error);
}

std::vector<std::string> notes(const Scenario& s) {
  std::vector<std::string> out;
  if (s.any_workload_rate() && s.workload_start_s >= s.duration_s - s.drain_s) {
    out.push_back("workload.start (" + format_number(s.workload_start_s) + " s) leaves no time before the end (" +
                  format_number(s.duration_s) + " s, less drain " + format_number(s.drain_s) + " s): no workload runs");
  }
  for (const auto& e : s.events) {
    if (e.at_s >= s.duration_s) out.push_back("an event at " + format_number(e.at_s) + " s is after the end");
  }
  return out;
}

std::string_view attack_name(Scenario::Attack a) {
  switch (a) {
    case Scenario::Attack::Drop: return "drop";
    case Scenario::Attack::Forge: return "forge";
    case Scenario::Attack::Mixed: return "mixed";
  }
  return "drop";
}

bool validate(const Scenario& s, std::string& error) {
  if (s.node_ids.size() > s.nodes) {
    error =
        "node_ids_file lists " + std::to_string(s.node_ids.size()) + " ids for " + std::to_string(s.nodes) + " nodes";
    return false;
  }
  for (const auto& op : s.script) {
    if (op.node >= s.nodes) {
      error = "workload.script names node " + std::to_string(op.node) + " of " + std::to_string(s.nodes);
      return false;
    }
    if (op.at_s > s.duration_s) {
      error = "workload.script has an operation at " + format_number(op.at_s) + " s, after the end";
      return false;
    }
  }
  if (s.loss > 0 && s.transport != Transport::Udp) {
    error =
        "network.loss applies to datagrams; with network.transport = \"tcp\" nothing is lost (TCP's own "
        "retransmissions are not modelled)";
    return false;
  }
  if (s.security && !s.node_ids.empty()) {
    error = "node_ids_file and [security] exclude each other: with identities a Node-ID is its key's digest";
    return false;
  }
  if (s.transport == Transport::Tls && !s.security) {
    error = "network.transport = \"tls\" needs [security] enabled = true (TLS links authenticate identities)";
    return false;
  }
  if (s.chord.replicas > s.chord.successors) {
    error = "chord.replicas (" + std::to_string(s.chord.replicas) + ") cannot exceed chord.successors (" +
            std::to_string(s.chord.successors) + ")";
    return false;
  }
  return true;
}

}  // namespace p2psip::sim
