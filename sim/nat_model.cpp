#include "sim/nat_model.hpp"

#include <algorithm>
#include <memory>

namespace p2psip::sim {

std::optional<NatBehavior> nat_kind(std::string_view name) {
  NatBehavior b;
  if (name == "full-cone") {
    b.filtering = Filtering::EndpointIndependent;
  } else if (name == "addr-restricted") {
    b.filtering = Filtering::AddressDependent;
  } else if (name == "port-restricted") {
    b.filtering = Filtering::AddressPortDependent;
  } else if (name == "symmetric") {
    b.mapping = Mapping::AddressPortDependent;
    b.port_preserving = false;  // Linux's "masquerade random"
  } else if (name == "udp-blocked") {
    b.udp_blocked = true;
  } else {
    return std::nullopt;
  }
  return b;
}

bool known_nat_kind(std::string_view name) {
  return name == "public" || nat_kind(name).has_value();
}

std::string_view disposition_name(Disposition d) {
  switch (d) {
    case Disposition::Direct: return "direct";
    case Disposition::Relayed: return "relayed";
    case Disposition::None: return "no-link";
  }
  return "no-link";
}

NatBox::NatBox(NatBehavior behavior, IpAddress outside, std::uint64_t seed)
    : b_(behavior), outside_(outside), rng_(seed * 0x9E3779B97F4A7C15ULL + 1) {}

std::string NatBox::key(const Endpoint& inside, const Endpoint& to) const {
  std::string k = inside.host_port();
  switch (b_.mapping) {
    case Mapping::EndpointIndependent: break;
    case Mapping::AddressDependent: k += '>' + to.ip.to_string(); break;
    case Mapping::AddressPortDependent: k += '>' + to.host_port(); break;
  }
  return k;
}

std::uint16_t NatBox::pick_port(std::uint16_t wanted) {
  if (b_.port_preserving && wanted != 0 && !by_port_.count(wanted)) return wanted;
  for (;;) {
    rng_ ^= rng_ << 13;
    rng_ ^= rng_ >> 7;
    rng_ ^= rng_ << 17;
    const auto p = static_cast<std::uint16_t>(1024 + rng_ % (65536 - 1024));
    if (!by_port_.count(p)) return p;
  }
}

std::optional<Endpoint> NatBox::out(const Endpoint& inside, const Endpoint& to, Instant now) {
  if (b_.udp_blocked && inside.transport == Transport::Udp) return std::nullopt;
  const std::string k = key(inside, to);
  auto it = by_key_.find(k);
  Binding* bind = nullptr;
  if (it != by_key_.end()) {
    auto b = by_port_.find(it->second);
    if (b != by_port_.end() && b->second.expires > now) {
      bind = &b->second;
    } else {
      if (b != by_port_.end()) by_port_.erase(b);
      by_key_.erase(it);
    }
  }
  if (bind == nullptr) {
    const std::uint16_t port = pick_port(inside.port);
    by_key_[k] = port;
    bind = &by_port_[port];
    bind->inside = inside;
    bind->port = port;
  }
  bind->expires = now + b_.binding_timeout;  // RFC 4787 REQ-6: outbound traffic refreshes it
  if (std::find(bind->allowed.begin(), bind->allowed.end(), to) == bind->allowed.end()) bind->allowed.push_back(to);
  return Endpoint{inside.transport, outside_, bind->port};
}

std::optional<Endpoint> NatBox::in(const Endpoint& at, const Endpoint& from, Instant now) {
  if (!(at.ip == outside_)) return std::nullopt;
  auto it = by_port_.find(at.port);
  if (it == by_port_.end() || it->second.expires <= now) return std::nullopt;
  const Binding& b = it->second;
  bool ok = false;
  switch (b_.filtering) {
    case Filtering::EndpointIndependent: ok = true; break;
    case Filtering::AddressDependent:
      ok = std::any_of(b.allowed.begin(), b.allowed.end(), [&](const Endpoint& e) { return e.ip == from.ip; });
      break;
    case Filtering::AddressPortDependent:
      ok = std::find(b.allowed.begin(), b.allowed.end(), from) != b.allowed.end();
      break;
  }
  if (!ok) return std::nullopt;
  return b.inside;
}

namespace {

/// A datagram from `src` (a host) to `dst` (an outside address): where it arrives (the host behind
/// dst's NAT, or dst itself when public) and the address it came from as seen there; nullopt when a
/// NAT on either side drops it. `dst_host` tells which host owns `dst`.
struct Hop {
  Endpoint seen_from;
};
std::optional<Hop> send(const IceHost& src, const Endpoint& dst, const IceHost& dst_host, Instant now) {
  Endpoint from = src.host;
  if (src.nat != nullptr) {
    auto o = src.nat->out(src.host, dst, now);
    if (!o) return std::nullopt;
    from = *o;
  }
  if (dst_host.nat != nullptr) {
    auto inside = dst_host.nat->in(dst, from, now);
    if (!inside || !(*inside == dst_host.host)) return std::nullopt;
  } else if (!(dst == dst_host.host)) {
    return std::nullopt;
  }
  return Hop{from};
}

/// A check from `a` to `b`'s candidate `cand`, and its answer back to where the check came from.
bool check(const IceHost& a, const Endpoint& cand, const IceHost& b, Instant now, std::vector<Endpoint>& b_learnt) {
  auto there = send(a, cand, b, now);
  if (!there) return false;
  // b answers to the source it saw (RFC 8445 §7.3: to the check's source), and learns it as a
  // peer-reflexive candidate of a's for its own triggered checks.
  if (std::find(b_learnt.begin(), b_learnt.end(), there->seen_from) == b_learnt.end())
    b_learnt.push_back(there->seen_from);
  return send(b, there->seen_from, a, now).has_value();
}

}  // namespace

Disposition ice_disposition(IceHost a, IceHost b, const Endpoint& stun, bool turn, Instant now) {
  const bool a_udp = a.nat == nullptr || !a.nat->behavior().udp_blocked;
  const bool b_udp = b.nat == nullptr || !b.nat->behavior().udp_blocked;
  if (a_udp && b_udp) {
    // Candidates: the host address, and the server-reflexive one (the mapping toward the STUN server).
    auto candidates = [&](const IceHost& h) {
      std::vector<Endpoint> c{h.host};
      if (h.nat != nullptr) {
        if (auto m = h.nat->out(h.host, stun, now)) c.push_back(*m);
      }
      return c;
    };
    const auto ca = candidates(a);
    const auto cb = candidates(b);
    std::vector<Endpoint> a_learnt, b_learnt;  // peer-reflexive sources, for triggered checks
    // Both agents check every pair, over and over (retransmissions, Ta apart): a check one NAT
    // dropped may pass once the other side's own checks have opened it.
    for (int round = 0; round < 3; ++round) {
      const Instant t = now + millis(500 * round);
      for (const auto& c : cb) {
        if (check(a, c, b, t, b_learnt)) return Disposition::Direct;
      }
      for (const auto& c : ca) {
        if (check(b, c, a, t, a_learnt)) return Disposition::Direct;
      }
      const auto tb = b_learnt;
      for (const auto& c : tb) {
        if (check(b, c, a, t, a_learnt)) return Disposition::Direct;
      }
      const auto ta = a_learnt;
      for (const auto& c : ta) {
        if (check(a, c, b, t, b_learnt)) return Disposition::Direct;
      }
    }
  }
  // A relay: a host that reaches the TURN server (over TCP when UDP is blocked) holds an address
  // there; the other host's checks to it open its own NAT to the relay, and TURN permissions are
  // per address (RFC 8656 §9), so the relayed pair always completes.
  return turn ? Disposition::Relayed : Disposition::None;
}

Disposition kinds_disposition(std::string_view a, std::string_view b, bool turn) {
  std::unique_ptr<NatBox> boxes[2];
  const auto site = [&](std::string_view kind, int x) {
    IceHost h;
    const auto behavior = nat_kind(kind);
    const std::string ip = behavior ? "10.0." + std::to_string(x) + ".2" : "198.51.100.2" + std::to_string(x);
    h.host = Endpoint{Transport::Udp, *IpAddress::parse(ip), 5070};
    if (behavior) {
      boxes[x - 1] = std::make_unique<NatBox>(*behavior, *IpAddress::parse("198.51.100.1" + std::to_string(x)),
                                              static_cast<std::uint64_t>(x));
      h.nat = boxes[x - 1].get();
    }
    return h;
  };
  const IceHost ha = site(a, 1), hb = site(b, 2);
  return ice_disposition(ha, hb, Endpoint{Transport::Udp, *IpAddress::parse("198.51.100.2"), 3478}, turn, Instant{});
}

}  // namespace p2psip::sim
