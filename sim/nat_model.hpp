// The simulator's NAT model (RFC 4787): one NatBox per NAT router, holding its mappings and what
// each lets in, stepped by the datagrams that cross it; and, on top of it, what ICE finds between
// two hosts behind two routers (ice_disposition): the connectivity checks of RFC 8445 played
// through both boxes, so that a pair is direct exactly when the boxes' behaviour lets a check and
// its answer through, and relayed (TURN) otherwise. The namespace lab measures the same cells with
// real nftables NATs and libnice (natlab.ice); tests/natlab/dispositions.txt holds what both must
// find, and a unit test and the lab test each check it cell by cell. Sans-I/O, virtual time.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/address.hpp"
#include "core/time.hpp"

namespace p2psip::sim {

/// RFC 4787 §4.1: how a NAT maps an inside endpoint to outside ones.
enum class Mapping : std::uint8_t {
  EndpointIndependent,   ///< one outside port per inside endpoint, whatever the destination (REQ-1)
  AddressDependent,      ///< one per destination address
  AddressPortDependent,  ///< one per destination address and port ("symmetric")
};
/// RFC 4787 §5: what a NAT lets in to a mapping.
enum class Filtering : std::uint8_t {
  EndpointIndependent,   ///< anything ("full cone")
  AddressDependent,      ///< from addresses the inside endpoint has sent to
  AddressPortDependent,  ///< from the exact address and port it has sent to
};

struct NatBehavior {
  Mapping mapping = Mapping::EndpointIndependent;
  Filtering filtering = Filtering::AddressPortDependent;
  bool port_preserving = true;              ///< an endpoint-independent mapping keeps the inside port when free
  bool udp_blocked = false;                 ///< no UDP goes out at all (TCP does)
  Duration binding_timeout = seconds(120);  ///< RFC 4787 REQ-5: at least 2 minutes
};

/// The lab's kinds (tests/natlab/natlab.sh): public (no NAT), full-cone, addr-restricted,
/// port-restricted, symmetric, udp-blocked. Nullopt for "public" and for unknown names.
std::optional<NatBehavior> nat_kind(std::string_view name);
/// Whether `name` is one of the kinds above (public included).
bool known_nat_kind(std::string_view name);

/// One NAT router with one outside address. Inside endpoints are any addresses behind it.
class NatBox {
 public:
  NatBox(NatBehavior behavior, IpAddress outside, std::uint64_t seed = 1);

  /// A datagram from `inside` to `to` leaves: the outside endpoint it leaves from (a mapping made or
  /// refreshed, and `to` let in from then on as the filtering says), or nullopt when UDP is blocked.
  std::optional<Endpoint> out(const Endpoint& inside, const Endpoint& to, Instant now);
  /// A datagram from `from` arrives at outside endpoint `at`: the inside endpoint it goes to, or
  /// nullopt when no live mapping has that port or the filtering keeps it out.
  std::optional<Endpoint> in(const Endpoint& at, const Endpoint& from, Instant now);

  [[nodiscard]] const NatBehavior& behavior() const { return b_; }
  [[nodiscard]] const IpAddress& outside() const { return outside_; }
  [[nodiscard]] std::size_t mappings() const { return by_port_.size(); }

 private:
  struct Binding {
    Endpoint inside;
    std::uint16_t port = 0;
    Instant expires{};
    std::vector<Endpoint> allowed;  ///< where it has sent to (the filter's list)
  };
  std::string key(const Endpoint& inside, const Endpoint& to) const;  ///< the mapping's identity
  std::uint16_t pick_port(std::uint16_t wanted);

  NatBehavior b_;
  IpAddress outside_;
  std::uint64_t rng_;
  std::unordered_map<std::string, std::uint16_t> by_key_;
  std::unordered_map<std::uint16_t, Binding> by_port_;
};

/// What ICE gives two hosts: a direct pair, a pair through a TURN relay, or no link.
enum class Disposition : std::uint8_t { Direct, Relayed, None };
std::string_view disposition_name(Disposition d);

/// One host for ice_disposition: its kind (nat_kind's names) and its NAT (null: public).
struct IceHost {
  Endpoint host;          ///< its own address (behind its NAT, or public)
  NatBox* nat = nullptr;  ///< its router, or null
};

/// Plays ICE between `a` and `b` through their NAT boxes: server-reflexive candidates from a STUN
/// server at `stun`, then checks in both directions, retransmitted (RFC 8445 §7.2.5; each side's
/// checks also open its own NAT for the other), answers going back the way the check came, and
/// triggered checks toward peer-reflexive sources. Direct when a check and its answer get through;
/// otherwise Relayed when `turn` (a relay candidate reaches any host that can send to the relay:
/// TURN permissions are per address, and a host's own checks to the relay open its NAT to it), and
/// None without.
Disposition ice_disposition(IceHost a, IceHost b, const Endpoint& stun, bool turn, Instant now);

/// ice_disposition for a host of kind `a` and one of kind `b` (nat_kind's names, or "public"), each
/// at a lab site of its own (public hosts at 198.51.100.2x, site x's router at 198.51.100.(10+x) and
/// its host at 10.0.x.2), with a STUN server at 198.51.100.2: what tests/natlab/dispositions.txt
/// gives for the pair. Unknown kinds count as public.
Disposition kinds_disposition(std::string_view a, std::string_view b, bool turn);

}  // namespace p2psip::sim
