// Clients of a node's control port: one HTTP request on a blocking socket with a deadline.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sodium.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "core/address.hpp"
#include "node/runtime/control_server.hpp"
#include "tools/node_command.hpp"
#include "tools/node_status.hpp"

namespace p2psip::tools {
namespace {

struct HttpResult {
  int status = 0;
  std::string body;
  std::string error;
};

HttpResult http(const ControlOptions& o, const std::string& method, const std::string& target,
                const std::string& body) {
  HttpResult res;
  auto ep = parse_host_port(o.control, Transport::Tcp);
  if (!ep) {
    res.error = "--control " + o.control + " is not ADDR:PORT";
    return res;
  }
  sockaddr_storage addr{};
  socklen_t len = 0;
  if (ep->ip.v6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&addr);
    a->sin6_family = AF_INET6;
    std::memcpy(&a->sin6_addr, ep->ip.bytes.data(), 16);
    a->sin6_port = htons(ep->port);
    len = sizeof(sockaddr_in6);
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&addr);
    a->sin_family = AF_INET;
    std::memcpy(&a->sin_addr, ep->ip.bytes.data(), 4);
    a->sin_port = htons(ep->port);
    len = sizeof(sockaddr_in);
  }
  int fd = ::socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    res.error = std::string("socket: ") + std::strerror(errno);
    return res;
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<long>(o.timeout_s * 1000));
  auto wait = [&](short events) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, events, 0};
    return ::poll(&p, 1, static_cast<int>(left.count())) > 0;
  };
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    res.error = "cannot connect to the node's control port " + o.control + ": " + std::strerror(errno) +
                " (is `p2psip node` running with --control " + o.control + "?)";
    ::close(fd);
    return res;
  }
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: " + o.control +
                    "\r\nConnection: close\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  std::size_t sent = 0;
  while (sent < req.size()) {
    if (!wait(POLLOUT)) break;
    ssize_t n = ::send(fd, req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<std::size_t>(n);
  }
  std::string in;
  char buf[8192];
  while (wait(POLLIN)) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    in.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  std::size_t head_end = in.find("\r\n\r\n");
  if (in.rfind("HTTP/1.1 ", 0) != 0 || head_end == std::string::npos) {
    res.error = in.empty() ? "no answer from " + o.control + " within " + std::to_string(o.timeout_s) + " s"
                           : "unreadable answer from " + o.control;
    return res;
  }
  res.status = std::atoi(in.c_str() + 9);
  res.body = in.substr(head_end + 4);
  return res;
}

/// The node's JSON answer; an empty object when the body is not JSON (an error says so elsewhere).
Json parse_json(const std::string& body) {
  Json j = Json::parse(body, nullptr, false);
  return j.is_discarded() || !j.is_object() ? Json::object() : j;
}

/// A field of `j` as text: strings as they are, numbers and booleans as JSON writes them, "" when
/// absent or null.
std::string text_of(const Json& j, const std::string& name) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) return {};
  if (it->is_string()) return it->get<std::string>();
  return it->dump();
}

/// A bytes field written by put_bytes: `name`, or `name`_base64 decoded.
std::string bytes_of(const Json& j, const std::string& name) {
  if (j.contains(name)) return text_of(j, name);
  const std::string b64 = text_of(j, name + "_base64");
  std::string out(b64.size(), '\0');
  std::size_t len = 0;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), b64.data(), b64.size(), nullptr, &len,
                        nullptr, sodium_base64_VARIANT_ORIGINAL) != 0) {
    return {};
  }
  out.resize(len);
  return out;
}

int fail(const char* cmd, const HttpResult& r) {
  if (!r.error.empty()) {
    std::fprintf(stderr, "p2psip %s: %s\n", cmd, r.error.c_str());
  } else {
    std::string msg = text_of(parse_json(r.body), "error");
    std::fprintf(stderr, "p2psip %s: the node answered %d: %s\n", cmd, r.status,
                 msg.empty() ? r.body.c_str() : msg.c_str());
  }
  return 1;
}

}  // namespace

int control_status(const ControlOptions& o) {
  auto r = http(o, "GET", o.json ? "/status" : "/status?format=text", "");
  if (r.status != 200) return fail("status", r);
  std::fputs(r.body.c_str(), stdout);
  if (o.json) std::fputc('\n', stdout);
  return 0;
}

int control_put(const ControlOptions& o, const std::string& key, const std::string& value, unsigned lifetime_s) {
  auto r = http(o, "POST", "/put?key=" + runtime::url_encode(key) + "&lifetime=" + std::to_string(lifetime_s), value);
  if (r.status != 200) return fail("put", r);
  if (o.json) {
    std::printf("%s\n", r.body.c_str());
  } else {
    const Json j = parse_json(r.body);
    const Json responsible = j.value("responsible", Json::object());
    std::printf("stored '%s' at %s (%s hops)\n", key.c_str(),
                text_of(responsible.is_object() ? responsible : Json::object(), "addr").c_str(),
                text_of(j, "hops").c_str());
  }
  return 0;
}

int control_get(const ControlOptions& o, const std::string& key) {
  auto r = http(o, "GET", "/get?key=" + runtime::url_encode(key), "");
  if (r.status == 404) {
    std::fprintf(stderr, "p2psip get: no record for key '%s' in the overlay\n", key.c_str());
    return 1;
  }
  if (r.status != 200) return fail("get", r);
  if (o.json) {
    std::printf("%s\n", r.body.c_str());
  } else {
    const std::string value = bytes_of(parse_json(r.body), "value");
    std::fwrite(value.data(), 1, value.size(), stdout);
    std::fputc('\n', stdout);
  }
  return 0;
}

int control_lookup(const ControlOptions& o, const std::string& key) {
  auto r = http(o, "GET", "/lookup?key=" + runtime::url_encode(key), "");
  if (r.status != 200) return fail("lookup", r);
  if (o.json) {
    std::printf("%s\n", r.body.c_str());
  } else {
    const Json j = parse_json(r.body);
    const Json responsible = j.value("responsible", Json::object());
    const Json& who = responsible.is_object() ? responsible : Json::object();
    const std::string id = text_of(who, "id");
    std::printf("key %s (id %s): responsible node %s at %s, %s hops, %s ms\n", key.c_str(), text_of(j, "id").c_str(),
                id.empty() ? "-" : id.c_str(), text_of(who, "addr").c_str(), text_of(j, "hops").c_str(),
                text_of(j, "latency_ms").c_str());
  }
  return 0;
}

int control_locate(const ControlOptions& o, const std::string& aor) {
  auto r = http(o, "GET", "/locate?aor=" + runtime::url_encode(aor), "");
  if (r.status == 404) {
    std::fprintf(stderr, "p2psip locate: %s is not registered anywhere in the overlay\n", aor.c_str());
    return 1;
  }
  if (r.status != 200) return fail("locate", r);
  if (o.json) {
    std::printf("%s\n", r.body.c_str());
    return 0;
  }
  const Json j = parse_json(r.body);
  for (const Json& entry : j.value("entries", Json::array())) {
    if (!entry.is_object()) continue;
    std::string relays;
    for (const Json& v : entry.value("via", Json::array())) {
      if (v.is_string()) relays += " " + v.get<std::string>();
    }
    std::printf("%s via node %s at %s/%s: %s device(s), entry lifetime %s s%s\n", aor.c_str(),
                text_of(entry, "node").c_str(), text_of(entry, "addr").c_str(), text_of(entry, "transport").c_str(),
                text_of(entry, "devices").c_str(), text_of(entry, "lifetime_s").c_str(),
                relays.empty() ? "" : ("; reached through relay peers" + relays).c_str());
  }
  return 0;
}

int ring_check(const ControlOptions& o, const std::vector<std::string>& controls, bool quiet) {
  struct NodeStatus {
    std::string control, id, pred;
    std::vector<std::string> succs;
    bool joined = false;
  };
  std::vector<NodeStatus> nodes;
  int unreachable = 0;
  for (const auto& c : controls) {
    ControlOptions one = o;
    one.control = c;
    auto r = http(one, "GET", "/status", "");
    if (r.status != 200) {
      std::printf("%s: unreachable (%s)\n", c.c_str(), r.error.empty() ? "bad answer" : r.error.c_str());
      ++unreachable;
      continue;
    }
    NodeStatus n;
    n.control = c;
    const Json j = parse_json(r.body);
    n.id = text_of(j, "node_id");
    n.joined = j.value("joined", false);
    if (auto pred = j.find("predecessor"); pred != j.end() && pred->is_object()) n.pred = text_of(*pred, "id");
    for (const Json& succ : j.value("successors", Json::array())) {
      if (succ.is_object()) n.succs.push_back(text_of(succ, "id"));
    }
    nodes.push_back(n);
  }
  std::sort(nodes.begin(), nodes.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  std::size_t n = nodes.size();
  int errors = unreachable;
  for (std::size_t k = 0; k < n; ++k) {
    const auto& node = nodes[k];
    std::string problems;
    if (!node.joined) problems += " not-joined";
    if (n > 1) {
      if (node.succs.empty() || node.succs[0] != nodes[(k + 1) % n].id) problems += " wrong-successor";
      if (node.pred != nodes[(k + n - 1) % n].id) problems += " wrong-predecessor";
      std::size_t want = std::min<std::size_t>(node.succs.size(), n - 1);
      for (std::size_t j = 1; j < want; ++j) {
        if (node.succs[j] != nodes[(k + 1 + j) % n].id) {
          problems += " stale-successor-list";
          break;
        }
      }
    }
    if (!problems.empty()) ++errors;
    if (!quiet || !problems.empty()) {
      std::printf("%3zu %s %s%s\n", k, node.id.c_str(), node.control.c_str(), problems.empty() ? "" : problems.c_str());
    }
  }
  std::printf("ring of %zu reachable nodes: %s\n", n, errors == 0 ? "correct" : "NOT correct");
  return errors == 0 ? 0 : 1;
}

}  // namespace p2psip::tools
