// Golden captures: every message of a small overlay at work (joins, stabilization, each overlay
// operation, a call between phones at two nodes, refusals, a graceful leave), recorded once from a
// known-good build and replayed against every later one (golden_replay_test.cpp).
//
// The text format, one item per line, messages followed by their bytes:
//   p2psip-golden 1
//   param NAME VALUE                    scenario settings (overlay, link transport, timers, ...)
//   node INDEX NODE-ID OVERLAY-ADDR UA-ADDR|-
//   action T_US NODE start BOOTSTRAP|-
//   action T_US NODE route store|fetch|lookup KEY DKEY|- VALUE-HEX|- LIFETIME
//   action T_US NODE leave | withdraw | die
//   result T_US NODE STATUS HOPS RESPONSIBLE-ID|- COUNT (DKEY|- VALUE-HEX|-)*
//   msg T_US FROM TO LENGTH             FROM and TO as udp:1.2.3.4:5, then LENGTH bytes and "\n"
//   end T_US
// Times are virtual microseconds; a message is sent at T_US and arrives `latency_us` later.
#pragma once

#include <charconv>
#include <cstdint>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "core/address.hpp"
#include "core/hex.hpp"

namespace p2psip::golden {

struct NodeLine {
  std::size_t index = 0;
  std::string id_hex;
  Endpoint overlay;
  std::optional<Endpoint> ua;
};

struct Item {
  enum class Kind : std::uint8_t { Action, Result, Message } kind = Kind::Message;
  std::int64_t t_us = 0;
  std::size_t node = 0;            // Action, Result
  std::vector<std::string> words;  // Action: what follows the node; Result: the fields
  Endpoint from, to;               // Message
  std::string bytes;               // Message
};

struct Capture {
  std::map<std::string, std::string> params;
  std::vector<NodeLine> nodes;
  std::vector<Item> items;
  std::int64_t end_us = 0;

  [[nodiscard]] std::string param(const std::string& name) const {
    auto it = params.find(name);
    return it == params.end() ? std::string() : it->second;
  }
  [[nodiscard]] std::int64_t param_int(const std::string& name) const { return std::stoll(param(name)); }
};

/// "udp:1.2.3.4:5" (Endpoint::to_string) back to an endpoint.
inline std::optional<Endpoint> parse_endpoint(std::string_view text) {
  const auto colon = text.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  auto transport = transport_from_name(text.substr(0, colon));
  if (!transport) return std::nullopt;
  return parse_host_port(text.substr(colon + 1), *transport);
}

inline std::string hex_of(std::string_view bytes) {
  return bytes.empty() ? "-" : hex_bytes(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());  // NOLINT
}
inline std::string unhex(std::string_view hex) {
  if (hex == "-") return {};
  std::string out(hex.size() / 2, '\0');
  parse_hex_bytes(hex, reinterpret_cast<std::uint8_t*>(out.data()), out.size());  // NOLINT
  return out;
}

class Writer {
 public:
  explicit Writer(const std::string& path) : out_(path, std::ios::binary) { out_ << "p2psip-golden 1\n"; }
  [[nodiscard]] bool ok() const { return static_cast<bool>(out_); }
  void param(const std::string& name, const std::string& value) { out_ << "param " << name << ' ' << value << '\n'; }
  void node(std::size_t i, const std::string& id_hex, const Endpoint& overlay, const std::optional<Endpoint>& ua) {
    out_ << "node " << i << ' ' << id_hex << ' ' << overlay.to_string() << ' ' << (ua ? ua->to_string() : "-") << '\n';
  }
  void action(std::int64_t t, std::size_t node, const std::string& what) {
    out_ << "action " << t << ' ' << node << ' ' << what << '\n';
  }
  void result(std::int64_t t, std::size_t node, const std::string& what) {
    out_ << "result " << t << ' ' << node << ' ' << what << '\n';
  }
  void message(std::int64_t t, const Endpoint& from, const Endpoint& to, std::string_view bytes) {
    out_ << "msg " << t << ' ' << from.to_string() << ' ' << to.to_string() << ' ' << bytes.size() << '\n';
    out_.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out_ << '\n';
  }
  void end(std::int64_t t) { out_ << "end " << t << '\n'; }

 private:
  std::ofstream out_;
};

/// Reads a capture; nullopt (with `error`) when the file is missing or malformed.
inline std::optional<Capture> read_capture(const std::string& path, std::string& error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "cannot open " + path;
    return std::nullopt;
  }
  Capture c;
  std::string line;
  if (!std::getline(in, line) || line != "p2psip-golden 1") {
    error = path + ": not a p2psip-golden 1 file";
    return std::nullopt;
  }
  std::size_t line_no = 1;
  while (std::getline(in, line)) {
    ++line_no;
    std::istringstream ls(line);
    std::string kind;
    ls >> kind;
    auto bad = [&](const std::string& why) {
      error = path + ":" + std::to_string(line_no) + ": " + why;
      return std::nullopt;
    };
    if (kind == "param") {
      std::string name, value;
      ls >> name >> value;
      c.params[name] = value;
    } else if (kind == "node") {
      NodeLine n;
      std::string overlay, ua;
      ls >> n.index >> n.id_hex >> overlay >> ua;
      auto o = parse_endpoint(overlay);
      if (!o) return bad("bad node address");
      n.overlay = *o;
      if (ua != "-") n.ua = parse_endpoint(ua);
      c.nodes.push_back(n);
    } else if (kind == "action" || kind == "result") {
      Item it;
      it.kind = kind == "action" ? Item::Kind::Action : Item::Kind::Result;
      ls >> it.t_us >> it.node;
      std::string w;
      while (ls >> w) it.words.push_back(w);
      c.items.push_back(std::move(it));
    } else if (kind == "msg") {
      Item it;
      std::string from, to;
      std::size_t length = 0;
      ls >> it.t_us >> from >> to >> length;
      auto f = parse_endpoint(from);
      auto t = parse_endpoint(to);
      if (!f || !t) return bad("bad message endpoints");
      it.from = *f;
      it.to = *t;
      it.bytes.resize(length);
      in.read(it.bytes.data(), static_cast<std::streamsize>(length));
      if (static_cast<std::size_t>(in.gcount()) != length || in.get() != '\n') return bad("short message");
      ++line_no;
      for (char ch : it.bytes) line_no += ch == '\n' ? 1 : 0;
      c.items.push_back(std::move(it));
    } else if (kind == "end") {
      ls >> c.end_us;
    } else if (!kind.empty()) {
      return bad("unknown item '" + kind + "'");
    }
  }
  return c;
}

}  // namespace p2psip::golden
