// The network model: where each host is, how long a message takes between two hosts, which
// messages are lost or cut off by a partition, and the messages in flight.
//
// Hosts lie uniformly on a unit square; a message takes propagation_ms times the distance plus both
// ends' access-link delay (drawn once per host) and one microsecond, the model's minimum one-way
// delay. Datagrams are lost with probability `loss` (a stream's transport retransmits for itself).
// Addresses are 10.0.0.0/8, numbered by creation order: they exist only inside the simulation.
// With [nat] a host may sit behind a NAT router of its own (sim/nat_model.hpp) whose outside address
// is 100.0.0.0/8 with the same number: what the host sends leaves from a mapping there, what others
// send to it arrives there and is let in or not by the router's filtering, and its 10/8 address is
// private (no other host reaches it). A host listens on three ports: its peer's overlay address, its peer's phone side,
// and the phone on the host ([phones]); messages between the last two never leave the host (a fixed local delay, no
// loss, no partition).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/address.hpp"
#include "sim/engine.hpp"
#include "sim/nat_model.hpp"
#include "sim/random.hpp"
#include "sim/results.hpp"
#include "sim/scenario.hpp"

namespace p2psip::sim {

/// A message between two hosts, from its sending to its delivery.
struct InFlight {
  std::string bytes;
  Endpoint from;
  std::uint32_t from_host = 0;
  std::uint32_t to = 0;
  std::uint16_t to_port = 0;
  Transport transport = Transport::Udp;
  bool via_nat = false;    ///< sent to the destination's NAT (its outside address): filtered on arrival
  std::uint64_t link = 0;  ///< over an ICE link (sim/ice_model.hpp): the destination's session (0: not)
  bool dropped = false;    ///< arrive(): the NAT kept it out
};

class Network {
 public:
  static constexpr std::uint16_t kOverlayPort = 5060;
  static constexpr std::uint16_t kPhoneSidePort = 5061;  ///< the peer's phone side
  static constexpr std::uint16_t kPhonePort = 5062;      ///< the phone on the host
  /// A message between two ports of one host: the host's own loopback.
  static constexpr Duration kLocalDelay{100};

  Network(const Scenario& sc, Engine& engine, Metrics& metrics)
      : sc_(sc), engine_(engine), metrics_(metrics), loss_rng_(sc.seed, 1) {}

  /// Places the next host (hosts are numbered by creation), its place and access delay drawn
  /// from `place`; with `nat`, behind a router of that behaviour.
  void place_host(Rng& place, std::optional<NatBehavior> nat = std::nullopt);
  /// Host `host`'s NAT router's outside address at `port`.
  [[nodiscard]] static Endpoint outside_address(std::uint32_t host, std::uint16_t port = kOverlayPort);
  /// Host `host`'s NAT router (null: the host is public).
  [[nodiscard]] const NatBox* nat(std::uint32_t host) const {
    return host < nats_.size() ? nats_[host].get() : nullptr;
  }
  /// The same, for the ICE model, whose checks and gathering make mappings in it.
  [[nodiscard]] NatBox* nat_box(std::uint32_t host) const { return host < nats_.size() ? nats_[host].get() : nullptr; }
  /// Host `host`'s address at `port` (its overlay address by default).
  [[nodiscard]] static Endpoint address(std::uint32_t host, std::uint16_t port = kOverlayPort);
  /// The host whose address (at one of its three ports) `to` is, among the first `hosts`; nullopt
  /// when it leads nowhere.
  [[nodiscard]] static std::optional<std::uint32_t> host_at(const Endpoint& to, std::size_t hosts);
  [[nodiscard]] Duration delay(std::uint32_t from, std::uint32_t to) const;

  /// A message from host `from` to `to` (whose host is `dest`, nullopt when none): counted, then
  /// lost, cut by a partition, or queued for delivery. `take`, when given, is the buffer `bytes`
  /// views, which the flight takes instead of a copy.
  void send(std::uint32_t from, std::uint16_t from_port, const Endpoint& to, std::optional<std::uint32_t> dest,
            std::string_view bytes, std::string* take);
  /// A message over an ICE link from host `from` to host `to`'s session `session` (the pair was
  /// found by the ICE model, which the NATs let through): counted, then lost or cut by a partition
  /// as any datagram, or queued for delivery `extra` later than the direct path takes (a TURN relay).
  void send_over_link(std::uint32_t from, std::uint32_t to, std::uint64_t session, Duration extra,
                      std::string_view bytes);
  /// The message of a Deliver event, out of flight; `dropped` when the destination's NAT keeps it
  /// out, else `to_port` is the inside port it goes to.
  InFlight arrive(std::uint64_t flight);
  [[nodiscard]] const InFlight& in_flight(std::uint64_t flight) const { return flight_[flight]; }

  /// Cuts the network in two halves (by x coordinate) until heal().
  void partition() { partitioned_ = true; }
  void heal() { partitioned_ = false; }

 private:
  void count(std::string_view bytes);
  /// Whether a message from host `from` to host `to` is cut by the partition or (a datagram) lost.
  bool cut_or_lost(std::uint32_t from, std::uint32_t to, bool datagram);
  std::pair<InFlight&, std::uint64_t> new_flight();
  struct Place {
    float x = 0, y = 0;  // on the unit square
    std::int64_t access_us = 0;
  };
  const Scenario& sc_;
  Engine& engine_;
  Metrics& metrics_;
  Rng loss_rng_;
  /// Where each host is: every message reads both ends' places, so they are kept together, apart
  /// from the rest of each host's state.
  std::vector<Place> places_;
  std::vector<std::unique_ptr<NatBox>> nats_;  ///< per host with [nat] (null: public); empty without
  std::vector<InFlight> flight_;
  std::vector<std::uint64_t> flight_free_;
  bool partitioned_ = false;
};

}  // namespace p2psip::sim
