// `p2psip node --config FILE.toml`: the same keys as the long flags; flags given on the command line win.
#include <toml++/toml.h>

#include "tools/node_command.hpp"

namespace p2psip::tools {

bool apply_node_config(const std::string& path, const std::set<std::string>& given, NodeOptions& o,
                       std::string& error) {
  toml::table t;
  try {
    t = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    error = path + ": " + std::string(e.description()) + " (line " + std::to_string(e.source().begin.line) + ")";
    return false;
  }
  auto wrong = [&](const std::string& key, const char* want) {
    error = path + ": '" + key + "' must be " + want;
    return false;
  };
  for (auto&& [k, v] : t) {
    std::string key(k.str());
    if (given.count(key)) continue;  // the command line overrides the file
    auto str = [&](std::string& out) {
      if (!v.is_string()) return wrong(key, "a string");
      out = *v.value<std::string>();
      return true;
    };
    auto num = [&](auto& out, double lo, double hi) {
      auto d = v.value<double>();
      if (!d || *d < lo || *d > hi)
        return wrong(key, ("a number from " + std::to_string(lo) + " to " + std::to_string(hi)).c_str());
      out = static_cast<std::remove_reference_t<decltype(out)>>(*d);
      return true;
    };
    bool ok = true;
    if (key == "overlay") {
      ok = str(o.overlay);
    } else if (key == "listen") {
      ok = str(o.listen);
    } else if (key == "control") {
      ok = str(o.control);
    } else if (key == "data-dir") {
      ok = str(o.data_dir);
    } else if (key == "identity") {
      ok = str(o.identity);
    } else if (key == "trust") {
      ok = str(o.trust);
    } else if (key == "users") {
      ok = str(o.users);
    } else if (key == "dev") {
      if (!v.is_boolean()) return wrong(key, "true or false");
      o.dev = *v.value<bool>();
    } else if (key == "log-level") {
      ok = str(o.log_level);
    } else if (key == "bootstrap") {
      o.bootstrap.clear();
      if (v.is_string()) {
        o.bootstrap.push_back(*v.value<std::string>());
      } else if (auto* arr = v.as_array()) {
        for (auto&& e : *arr) {
          if (!e.is_string()) return wrong(key, "a string or an array of strings");
          o.bootstrap.push_back(*e.value<std::string>());
        }
      } else {
        return wrong(key, "a string or an array of strings");
      }
    } else if (key == "stabilize-interval") {
      ok = num(o.stabilize_interval_s, 0.05, 3600);
    } else if (key == "t1-ms") {
      ok = num(o.t1_ms, 1, 60000);
    } else if (key == "hop-timeout-ms") {
      ok = num(o.hop_timeout_ms, 0, 600000);
    } else if (key == "successors") {
      ok = num(o.successors, 1, 32);
    } else if (key == "replicas") {
      ok = num(o.replicas, 0, 32);
    } else if (key == "overlay-transport") {
      ok = str(o.overlay_transport);
      if (ok && o.overlay_transport != "udp" && o.overlay_transport != "tcp" && o.overlay_transport != "tls") {
        return wrong(key, "\"udp\", \"tcp\" or \"tls\"");
      }
    } else if (key == "ua-listen") {
      ok = str(o.ua_listen);
    } else if (key == "min-expires") {
      ok = num(o.min_expires, 1, 86400);
    } else if (key == "max-expires") {
      ok = num(o.max_expires, 1, 604800);
    } else if (key == "entry-lifetime") {
      ok = num(o.entry_lifetime_s, 10, 86400);
    } else if (key == "max-bindings") {
      ok = num(o.max_bindings, 1, 1000);
    } else if (key == "max-users") {
      ok = num(o.max_users, 1, 10000000);
    } else if (key == "max-calls") {
      ok = num(o.max_calls, 1, 10000000);
    } else if (key == "peer-rate") {
      ok = num(o.peer_rate, 0, 1000000);
    } else if (key == "peer-burst") {
      ok = num(o.peer_burst, 1, 10000000);
    } else if (key == "max-value-bytes") {
      ok = num(o.max_value_bytes, 1, 1000000);
    } else if (key == "max-records-per-owner") {
      ok = num(o.max_records_per_owner, 1, 100000000);
    } else if (key == "role") {
      ok = str(o.role);
    } else if (key == "relay-max-clients") {
      ok = num(o.relay_max_clients, 0, 1000000);
    } else if (key == "ice") {
      ok = str(o.ice);
      if (ok && o.ice != "on" && o.ice != "off") return wrong(key, "\"on\" or \"off\"");
    } else if (key == "turn") {
      ok = str(o.turn);
    } else if (key == "turn-user") {
      ok = str(o.turn_user);
    } else if (key == "turn-password-file") {
      ok = str(o.turn_password_file);
    } else if (key == "turn-secret-file") {
      ok = str(o.turn_secret_file);
    } else if (key == "turn-service") {
      ok = str(o.turn_service);
      if (ok && o.turn_service != "on" && o.turn_service != "off") return wrong(key, "\"on\" or \"off\"");
    } else if (key == "turn-density") {
      ok = num(o.turn_density, 1, 20);
    } else if (key == "nat-check-interval") {
      ok = num(o.nat_check_interval_s, 0, 86400);
    } else if (key == "ua-digest-algorithms") {
      ok = str(o.ua_digest_algorithms);
    } else if (key == "ua-digest") {
      if (!v.is_boolean()) return wrong(key, "true or false");
      o.ua_digest = *v.value<bool>();
    } else if (key == "iterative") {
      if (!v.is_boolean()) return wrong(key, "true or false");
      o.iterative = *v.value<bool>();
    } else {
      error = path + ": unknown key '" + key + "' (the keys are the long flags of `p2psip node`)";
      return false;
    }
    if (!ok) return false;
  }
  return true;
}

}  // namespace p2psip::tools
