#include "sim/network.hpp"

#include <cmath>

#include "nat/stun.hpp"
#include "sim/events.hpp"

namespace p2psip::sim {

void Network::place_host(Rng& place, std::optional<NatBehavior> nat) {
  const auto host = static_cast<std::uint32_t>(places_.size());
  // Only a scenario with NATs keeps a router slot per host: without, no message reads one.
  if (sc_.nat.any())
    nats_.push_back(nat ? std::make_unique<NatBox>(*nat, outside_address(host).ip, host + 1) : nullptr);
  Place& p = places_.emplace_back();
  p.x = static_cast<float>(place.uniform());
  p.y = static_cast<float>(place.uniform());
  p.access_us = static_cast<std::int64_t>(sc_.access_ms.sample(place) * 1000.0);
}

Endpoint Network::address(std::uint32_t host, std::uint16_t port) {
  Endpoint e;
  e.transport = Transport::Udp;
  const std::uint32_t n = host + 1;
  e.ip.bytes[0] = 10;
  e.ip.bytes[1] = static_cast<std::uint8_t>(n >> 16);
  e.ip.bytes[2] = static_cast<std::uint8_t>(n >> 8);
  e.ip.bytes[3] = static_cast<std::uint8_t>(n);
  e.port = port;
  return e;
}

Endpoint Network::outside_address(std::uint32_t host, std::uint16_t port) {
  Endpoint e = address(host, port);
  e.ip.bytes[0] = 100;
  return e;
}

std::optional<std::uint32_t> Network::host_at(const Endpoint& to, std::size_t hosts) {
  const auto& ip = to.ip.bytes;
  const std::uint32_t n = (std::uint32_t{ip[1]} << 16 | std::uint32_t{ip[2]} << 8 | ip[3]);
  if (to.ip.v6 || n == 0 || n > hosts) return std::nullopt;
  if (ip[0] == 100) return n - 1;  // a NAT's outside address: any port may be a mapping
  const bool port = to.port == kOverlayPort || to.port == kPhoneSidePort || to.port == kPhonePort;
  if (ip[0] != 10 || !port) return std::nullopt;
  return n - 1;
}

Duration Network::delay(std::uint32_t from, std::uint32_t to) const {
  const Place& a = places_[from];
  const Place& b = places_[to];
  const double dx = a.x - b.x;
  const double dy = a.y - b.y;
  const double prop_us = std::sqrt(dx * dx + dy * dy) * sc_.propagation_ms * 1000.0;
  return Duration(static_cast<std::int64_t>(prop_us) + a.access_us + b.access_us + 1);
}

void Network::count(std::string_view bytes) {
  ++metrics_.results.messages;
  metrics_.results.bytes += bytes.size();
  ++metrics_.row.messages;
  metrics_.row.bytes += bytes.size();
}

bool Network::cut_or_lost(std::uint32_t from, std::uint32_t to, bool datagram) {
  Results& r = metrics_.results;
  if (partitioned_ && (places_[from].x < 0.5F) != (places_[to].x < 0.5F)) {
    ++r.partitioned;
    ++metrics_.row.lost;
    return true;
  }
  // Loss applies to datagrams; a stream's transport retransmits for itself.
  if (datagram && sc_.loss > 0 && loss_rng_.uniform() < sc_.loss) {
    ++r.lost;
    ++metrics_.row.lost;
    return true;
  }
  return false;
}

std::pair<InFlight&, std::uint64_t> Network::new_flight() {
  std::uint64_t slot = 0;
  if (!flight_free_.empty()) {
    slot = flight_free_.back();
    flight_free_.pop_back();
  } else {
    slot = flight_.size();
    flight_.emplace_back();
  }
  return {flight_[slot], slot};
}

void Network::send_over_link(std::uint32_t from, std::uint32_t to, std::uint64_t session, Duration extra,
                             std::string_view bytes) {
  count(bytes);
  if (cut_or_lost(from, to, true)) return;
  auto [f, slot] = new_flight();
  f.bytes.assign(bytes.data(), bytes.size());
  f.from = address(from);
  f.from_host = from;
  f.to = to;
  f.to_port = kOverlayPort;
  f.transport = Transport::Udp;
  f.via_nat = false;
  f.link = session;
  f.dropped = false;
  engine_.push(engine_.now() + delay(from, to) + extra, kind(EventKind::Deliver), to, slot);
}

void Network::send(std::uint32_t from, std::uint16_t from_port, const Endpoint& to, std::optional<std::uint32_t> dest,
                   std::string_view bytes, std::string* take) {
  Results& r = metrics_.results;
  count(bytes);
  // Only the addresses of existing hosts lead anywhere; the rest vanish, as on a real network
  // where nobody listens.
  if (!dest) {
    ++r.undeliverable;
    return;
  }
  // A phone and its node's phone side talk over the host's own loopback.
  const bool local = *dest == from && (from_port != kOverlayPort || to.port != kOverlayPort);
  Endpoint source = address(from, from_port);
  source.transport = to.transport;
  const bool via_nat = to.ip.bytes[0] == 100;
  if (!local && nats_.empty() && via_nat) {  // an outside address in a scenario without NATs
    ++r.to_private;
    ++r.undeliverable;
    return;
  }
  if (!local && !nats_.empty()) {
    if (via_nat ? nats_[*dest] == nullptr : nats_[*dest] != nullptr) {
      // A private address of another host's, or an outside address where there is no NAT.
      ++r.to_private;
      ++r.undeliverable;
      return;
    }
    if (NatBox* nat = nats_[from].get()) {
      auto out = nat->out(source, to, engine_.now());
      if (!out) {
        ++r.nat_blocked;
        return;
      }
      source = *out;
    }
  }
  if (!nats_.empty() && p2psip::nat::looks_like_stun(bytes)) {  // STUN is sent only where NATs are
    ++r.stun_messages;
    r.stun_bytes += bytes.size();
  }
  if (!local && cut_or_lost(from, *dest, to.transport == Transport::Udp)) return;
  auto [f, slot] = new_flight();
  if (take != nullptr) {
    f.bytes = std::move(*take);
  } else {
    f.bytes.assign(bytes.data(), bytes.size());
  }
  f.from = source;
  f.from_host = from;
  f.to = *dest;
  f.to_port = to.port;
  f.transport = to.transport;
  f.via_nat = via_nat && !local;
  f.link = 0;
  f.dropped = false;
  engine_.push(engine_.now() + (local ? kLocalDelay : delay(from, *dest)), kind(EventKind::Deliver), *dest, slot);
}

InFlight Network::arrive(std::uint64_t flight) {
  // Moved out first: the receiving node's answers may grow flight_ while it handles this one.
  InFlight f = std::move(flight_[flight]);
  flight_free_.push_back(flight);
  if (f.via_nat) {
    // The router lets it in to the mapping's inside endpoint, or keeps it out (RFC 4787 §5).
    auto inside = nats_[f.to]->in(Endpoint{f.transport, outside_address(f.to).ip, f.to_port}, f.from, engine_.now());
    if (inside) {
      f.to_port = inside->port;
    } else {
      f.dropped = true;
      ++metrics_.results.nat_filtered;
    }
  }
  return f;
}

}  // namespace p2psip::sim
