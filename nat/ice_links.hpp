// Links to peers that cannot be reached at their address (behind cone NATs), set up as RFC 6940
// §6.5.1 does: an Attach routed through the overlay carries one side's ICE credentials and
// candidates to the other, whose answer carries its own; the agents' connectivity checks (RFC 8445)
// then find the pair the link uses, direct or through a TURN relay. Sans-I/O: the decisions —
// when to attach, what to do with messages meanwhile, time-outs, glare, back-off, idle links, how
// many links and offers to take — are made here; the ICE agent behind IcePort (libnice in the
// runtime, the NAT model in the simulator, a fake in tests) gathers and checks, and the overlay
// behind AttachTransport carries the Attach.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/address.hpp"
#include "core/environment.hpp"
#include "core/rate_limiter.hpp"
#include "core/time.hpp"
#include "nat/ice.hpp"

namespace p2psip::nat {

using IceSessionId = std::uint64_t;

struct IceLinkConfig {
  std::size_t max_links = 256;  ///< sessions at once (up or being set up); offers beyond are refused
  /// How long an Attach waits for local candidates before it goes with what it has (trickle ICE:
  /// never for gathering-done, which waits for the slowest server). It goes sooner once the last
  /// candidate worth waiting for is there: the relayed one with `turn`, else the server-reflexive one.
  Duration gather_budget = millis(800);
  bool turn = false;  ///< a TURN server is configured: a relayed candidate is worth waiting for
  /// From the first step (Attach sent, or an offer taken) to a usable link: no link by then is a
  /// failure verdict (the benchmark's goal: within 10 s).
  Duration setup_timeout = seconds(10);
  Duration idle_timeout = seconds(300);  ///< a link neither used nor heard on this long is closed
  /// A peer whose link failed is not attached again before retry_min, doubling per failure in a row
  /// up to retry_max; meanwhile messages for it fail at once.
  Duration retry_min = seconds(5);
  Duration retry_max = seconds(300);
  std::size_t queue_messages = 32;       ///< held per link while it is set up
  std::size_t queue_bytes = 128 * 1024;  ///< ...and bytes
  /// Offers taken from one peer: an Attach flood from one peer is refused (503) while others are
  /// still served.
  RateLimit offers_per_peer{0.5, 4};
  IceLimits limits;
};

/// The ICE agent: gathers local candidates, runs connectivity checks, carries datagrams on the
/// pair it selected. It answers through IceLinks::local_credentials / local_candidate /
/// gathering_done / connected / failed and hands what arrives to IceLinks::received. Its calls
/// must not call back into IceLinks (events come later, from the driver's loop).
/// A TURN server for relayed candidates (RFC 8656), with long-term credentials (RFC 8489 §9.2).
struct TurnServer {
  Endpoint server;
  std::string user, password;  ///< never logged
  bool tcp = false;            ///< reach the server over TCP (UDP blocked); the relay is UDP still
};

class IcePort {
 public:
  virtual ~IcePort() = default;
  /// The TURN server every session opened from now on gathers a relayed candidate through (one
  /// found in the overlay, node/peer/turn_service.hpp). Ports without TURN ignore it.
  virtual void use_turn(const TurnServer& turn) { (void)turn; }
  /// Opens a session and starts gathering. False when no session can be opened.
  virtual bool open(IceSessionId id, bool controlling) = 0;
  /// The other side's credentials and candidates: checks start (again, with more candidates).
  virtual void remote(IceSessionId id, const IceDescription& remote) = 0;
  virtual bool send(IceSessionId id, std::string_view bytes) = 0;
  virtual void close(IceSessionId id) = 0;
};

/// What the overlay does for the links: carries Attach requests and their answers, and hears how
/// links went.
class AttachTransport {
 public:
  virtual ~AttachTransport() = default;
  /// Sends an Attach with `offer` toward `peer` (routed through the overlay). Its outcome comes
  /// back as IceLinks::answered or IceLinks::attach_failed with the same `id`. False when it could
  /// not be sent.
  virtual bool send_attach(IceSessionId id, const Endpoint& peer, const IceDescription& offer, Instant now) = 0;
  /// Answers the Attach the overlay handed over as `token` (IceLinks::offered).
  virtual void answer_attach(std::uint64_t token, const IceDescription& answer) = 0;
  /// Refuses it: 503 with Retry-After (full, or the sender over its rate), 491 (glare: ours goes on).
  virtual void refuse_attach(std::uint64_t token, int status, std::uint32_t retry_after_s) = 0;
  /// The link to `peer` works; what was held for it has been sent.
  virtual void link_up(const Endpoint& peer, Instant now) = 0;
  /// The link to `peer` failed or was lost; what was held for it is dropped (its transactions should
  /// fail now rather than time out).
  virtual void link_down(const Endpoint& peer, Instant now) = 0;
};

enum class LinkState : std::uint8_t {
  Gathering,  ///< ours: candidates being gathered for the Attach
  Offered,    ///< ours: the Attach is on its way
  Answering,  ///< theirs: candidates being gathered for the answer (checks already run)
  Checking,   ///< both descriptions known: the agents' checks run
  Up,         ///< a pair was selected: the link carries messages
  Failed,     ///< no link; not attached again before `retry_at`
};
std::string_view link_state_name(LinkState s);

struct IceLinkStatus {
  Endpoint peer;
  LinkState state = LinkState::Gathering;
  bool initiated = false;  ///< this side sent the Attach
  bool relayed = false;    ///< Up through a TURN relay (either side's selected candidate)
  std::optional<CandidateType> local_type, remote_type;
  Instant since{};
  Duration setup{};  ///< Up: from the first step to the link usable
  std::uint32_t failures = 0;
};

struct IceLinkStats {
  std::uint64_t attaches_sent = 0, offers_taken = 0;
  std::uint64_t offers_refused_rate = 0, offers_refused_full = 0, glare = 0;
  std::uint64_t up_direct = 0, up_relayed = 0;  ///< by the first pair selected
  std::uint64_t pair_changes = 0;               ///< an up link moved to another pair (a better one)
  std::uint64_t failed_attach = 0;              ///< the Attach was refused or unanswered
  std::uint64_t failed_checks = 0;              ///< no pair worked (or nothing within setup_timeout)
  std::uint64_t lost = 0;                       ///< an up link's agent gave up (consent lost)
  std::uint64_t closed_idle = 0, closed_evicted = 0;
  std::uint64_t queue_dropped = 0;  ///< messages held for a link that never came, or over the bounds
  std::uint64_t sent = 0, received = 0;
};

class IceLinks {
 public:
  /// `self`: this node's overlay address, the tie-break when two Attaches cross (glare). All three
  /// references must outlive this.
  IceLinks(IcePort& port, AttachTransport& overlay, Environment& env, Endpoint self, IceLinkConfig cfg = {});
  ~IceLinks();
  /// The port has a TURN server from now on (IceLinkConfig::turn): offers wait for the relayed
  /// candidate.
  void turn_in_use() { cfg_.turn = true; }
  IceLinks(const IceLinks&) = delete;
  IceLinks& operator=(const IceLinks&) = delete;

  /// Sends over the link to `peer`, setting one up first when there is none (the message is held
  /// meanwhile, within the queue bounds). False when it is lost now: the peer is in its back-off,
  /// or the queue is full, or no session could be opened.
  bool send(const Endpoint& peer, std::string_view bytes, Instant now);
  /// Sets up a link without anything to send yet (a new neighbour).
  void connect(const Endpoint& peer, Instant now);
  [[nodiscard]] bool is_up(const Endpoint& peer) const;
  /// Whether this peer has a link in any state but Failed.
  [[nodiscard]] bool has_link(const Endpoint& peer) const;
  /// The state of the link to `peer`, or null when there is none (one look-up for all of the above).
  [[nodiscard]] const LinkState* state_of(const Endpoint& peer) const {
    auto it = links_.find(peer);
    return it == links_.end() ? nullptr : &it->second.st.state;
  }

  // ---- from the overlay ----
  /// An Attach from `peer` with its offer; answered or refused later through `token`.
  void offered(const Endpoint& peer, const IceDescription& offer, std::uint64_t token, Instant now);
  /// Our Attach `id` was answered.
  void answered(IceSessionId id, const IceDescription& answer, Instant now);
  /// Our Attach `id` was refused (status, Retry-After) or went unanswered (status 408).
  void attach_failed(IceSessionId id, int status, std::uint32_t retry_after_s, Instant now);
  /// The peer is gone from the overlay: its link is closed (no back-off).
  void forget(const Endpoint& peer, Instant now);

  // ---- from the agent ----
  void local_credentials(IceSessionId id, const IceCredentials& c, Instant now);
  void local_candidate(IceSessionId id, const IceCandidate& c, Instant now);
  void gathering_done(IceSessionId id, Instant now);
  /// The agent selected a pair: the link is up (or, when it was, now goes over this pair).
  void connected(IceSessionId id, CandidateType local, CandidateType remote, Instant now);
  void failed(IceSessionId id, Instant now);
  /// A datagram on session `id`: the peer it came from, or nullopt for a session no longer here.
  std::optional<Endpoint> received(IceSessionId id, Instant now);

  void advance(Instant now);
  /// When advance is next due: never later than the first link's own time, possibly earlier (a
  /// link used since has moved its idle time-out on; advance then finds nothing and recomputes).
  /// Constant time: the peer asks after every event.
  [[nodiscard]] Instant next_wakeup() const { return wake_; }
  /// Changes whenever a link is dropped or fails: whoever keeps links to a set of peers looks again.
  [[nodiscard]] std::uint64_t changes() const { return changes_; }

  [[nodiscard]] std::vector<IceLinkStatus> status() const;
  [[nodiscard]] const IceLinkStats& stats() const { return stats_; }
  [[nodiscard]] std::size_t sessions() const { return by_id_.size(); }

 private:
  struct Link {
    IceLinkStatus st;
    IceSessionId id = 0;  ///< 0: no session (Failed)
    IceDescription local;
    bool have_credentials = false, gathered = false, described = false;
    std::optional<std::uint64_t> token;  ///< Answering: the Attach to answer
    Instant started{}, gather_until = kInstantMax, deadline = kInstantMax, retry_at = kInstantMax;
    Instant last_used{};
    std::vector<std::string> queue;
    std::size_t queued_bytes = 0;
  };
  Link* by_session(IceSessionId id);
  bool open(Link& l, const Endpoint& peer, bool controlling, Instant now);
  void maybe_describe(Link& l, Instant now);  ///< sends the offer or answer once it is worth sending
  void fail(Link& l, Instant now, bool checks);
  void close_session(Link& l);
  bool hold(Link& l, std::string_view bytes);
  bool make_room(Instant now);  ///< closes the least recently used up link when at max_links
  [[nodiscard]] bool wins_glare(const Endpoint& peer) const;
  [[nodiscard]] Instant link_wakeup(const Link& l) const;
  /// After a change that may bring `l`'s time forward: next_wakeup keeps a lower bound.
  void touch(const Link& l) { wake_ = std::min(wake_, link_wakeup(l)); }
  void erase(const Endpoint& peer) {
    links_.erase(peer);
    ++changes_;
  }

  IcePort& port_;
  AttachTransport& overlay_;
  Environment& env_;
  Endpoint self_;
  IceLinkConfig cfg_;
  std::unordered_map<Endpoint, Link, EndpointHash> links_;
  /// The links with a session, by it: a link's session is closed before the link leaves links_
  /// (whose elements stay where they are while they are in it).
  std::unordered_map<IceSessionId, Link*> by_id_;
  RateLimiter<Endpoint, EndpointHash> offer_rate_;
  IceSessionId next_id_ = 1;
  IceLinkStats stats_;
  Instant wake_ = kInstantMax;
  std::uint64_t changes_ = 0;
};

}  // namespace p2psip::nat
