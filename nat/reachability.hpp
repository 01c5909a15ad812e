// Where a node stands: it asks peers at different IP addresses for its reflexive address (STUN
// Binding, RFC 8489) and classifies itself from their answers by how its NAT maps (RFC 4787 §4.1):
//
//   public       every peer saw the address the node's socket is bound to: no NAT
//   cone         every peer saw one and the same other address: endpoint-independent mapping
//   symmetric    peers at different addresses saw different addresses (address- or
//                address-and-port-dependent mapping): a hole punched to one peer is no use to another
//   udp-blocked  no peer answered at all
//   unknown      not asked yet, or too few answers to tell (one peer answered with another address)
//
// RFC 6940 §6.5.1.4 does the same with its connected peers as STUN servers. Filtering (who may send
// in unasked) is not tested here: ICE's checks find it out pair by pair. Sans-I/O: the driver gives
// the peers to ask, the StunClient sends.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "core/address.hpp"
#include "core/time.hpp"
#include "nat/stun_client.hpp"

namespace p2psip::nat {

enum class NatClass : std::uint8_t { Unknown, Public, Cone, Symmetric, UdpBlocked };
/// "unknown", "public", "cone", "symmetric", "udp-blocked" (as `p2psip status` shows them).
std::string_view nat_class_name(NatClass c);

struct ReachabilityConfig {
  /// Answers that make a verdict: from this many peers, each at a different IP address.
  std::size_t targets = 2;
  /// Peers asked beyond `targets`, so that a silent one neither delays nor spoils the verdict; the
  /// check ends as soon as `targets` have answered.
  std::size_t spare = 1;
  Duration recheck = seconds(600);  ///< a check that reached a verdict is repeated this often
  /// Sooner when it could not (too few peers known or answering): after `retry`, then twice as
  /// long each time it still cannot, up to `recheck`.
  Duration retry = seconds(5);
};

/// One peer's answer in the last check.
struct Observation {
  Endpoint peer;
  std::optional<Endpoint> mapped;  ///< unset: no answer (time-out, error or transport error)
  Duration rtt{};
};

struct ReachabilityStatus {
  NatClass nat_class = NatClass::Unknown;
  std::optional<Endpoint> reflexive;      ///< the address peers see (the first answer's), when any answered
  std::vector<Observation> observations;  ///< the last finished check's
  bool checking = false;
  std::uint32_t checks = 0;   ///< finished
  std::uint32_t changes = 0;  ///< verdicts that differed from the one before
};

class Reachability {
 public:
  /// `local`: the address the node's UDP socket is bound to (a concrete address, which is what a
  /// public node's peers see). `client` must outlive this object.
  Reachability(StunClient& client, Endpoint local, ReachabilityConfig cfg = {});
  ~Reachability();
  Reachability(const Reachability&) = delete;
  Reachability& operator=(const Reachability&) = delete;

  /// Whether a check should start now (none yet, the recheck or retry time has come, or the
  /// address changed). The driver then calls check() with the peers it knows.
  [[nodiscard]] bool due(Instant now) const { return !checking_ && now >= next_check_; }
  [[nodiscard]] Instant next_check() const { return checking_ ? kInstantMax : next_check_; }

  /// Starts a check: asks the first `targets + spare` of `candidates` whose IP addresses differ
  /// from each other and from the local one (those silent in the last check after the others). With none, tries again
  /// later (`retry`, backing off). The verdict comes when every asked peer has answered or timed out (from StunClient's
  /// callbacks).
  void check(const std::vector<Endpoint>& candidates, Instant now);
  /// The node's own address changed (or its network did): the verdict is dropped and a check is
  /// due at once.
  void address_changed(const Endpoint& local, Instant now);

  [[nodiscard]] NatClass nat_class() const { return status_.nat_class; }
  [[nodiscard]] const std::optional<Endpoint>& reflexive() const { return status_.reflexive; }
  [[nodiscard]] const ReachabilityStatus& status() const { return status_; }
  [[nodiscard]] const Endpoint& local() const { return local_; }

  /// The verdict from a check's answers (pure; what check() concludes with).
  static NatClass classify(const Endpoint& local, const std::vector<Observation>& answers, std::size_t wanted);

 private:
  void answered(std::uint32_t generation, std::size_t slot, const StunOutcome& o);
  void conclude(Instant now);
  void retry_later(Instant now);

  StunClient& client_;
  Endpoint local_;
  ReachabilityConfig cfg_;
  ReachabilityStatus status_;
  std::vector<Observation> pending_;
  std::vector<bool> done_;  ///< per pending_ slot: answered or given up
  std::vector<StunTransactionId> ids_;
  std::size_t waiting_ = 0, answers_ = 0;
  std::vector<IpAddress> silent_;  ///< peers that did not answer the last check: asked last
  std::uint32_t generation_ = 0;   ///< answers of an abandoned check are ignored
  bool checking_ = false;
  Instant next_check_{};
  Duration backoff_{};  ///< the next retry's wait
};

}  // namespace p2psip::nat
