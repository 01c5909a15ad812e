// The daemon's ICE agent: libnice (RFC 8445 checks, STUN and TURN gathering) behind nat::IcePort.
// libnice needs a running GLib main context, so it gets one on a thread of its own that owns every
// agent (libnice's threaded example; ../shared/NAT-NOTES.md §3): calls from the libuv loop are
// queued to that thread, and what libnice reports (credentials, candidates, a selected pair, a
// failure, datagrams) is queued back and handed to the IceEvents sink on the libuv loop, through a
// uv_async. The core never sees GLib. One agent per session, since ICE's controlling role is an
// agent-wide property in libnice; each has one stream with one component (RFC 6940's profile).
#pragma once

#include <uv.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <variant>
#include <vector>

#include "core/address.hpp"
#include "nat/ice_links.hpp"

namespace p2psip::runtime {

/// Where libnice's reports go, on the libuv loop: IceLinks takes them, or a test.
class IceEvents {
 public:
  virtual ~IceEvents() = default;
  virtual void on_credentials(nat::IceSessionId id, const nat::IceCredentials& c) = 0;
  virtual void on_candidate(nat::IceSessionId id, const nat::IceCandidate& c) = 0;
  virtual void on_gathering_done(nat::IceSessionId id) = 0;
  virtual void on_connected(nat::IceSessionId id, nat::CandidateType local, nat::CandidateType remote) = 0;
  virtual void on_failed(nat::IceSessionId id) = 0;
  virtual void on_datagram(nat::IceSessionId id, std::string_view bytes) = 0;
};

/// IceEvents that hand libnice's reports to an IceLinks at the time `now` gives, and what arrives on
/// a link to `deliver` with the peer it came from: how a driver puts NiceIce under IceLinks (the
/// links are made after the agent, which takes these events: set_links joins them).
class IceLinksEvents : public IceEvents {
 public:
  using Deliver = std::function<void(const Endpoint& peer, std::string_view bytes)>;
  IceLinksEvents(std::function<Instant()> now, Deliver deliver) : now_(std::move(now)), deliver_(std::move(deliver)) {}
  void set_links(nat::IceLinks* links) { links_ = links; }

  void on_credentials(nat::IceSessionId id, const nat::IceCredentials& c) override {
    if (links_) links_->local_credentials(id, c, now_());
  }
  void on_candidate(nat::IceSessionId id, const nat::IceCandidate& c) override {
    if (links_) links_->local_candidate(id, c, now_());
  }
  void on_gathering_done(nat::IceSessionId id) override {
    if (links_) links_->gathering_done(id, now_());
  }
  void on_connected(nat::IceSessionId id, nat::CandidateType local, nat::CandidateType remote) override {
    if (links_) links_->connected(id, local, remote, now_());
  }
  void on_failed(nat::IceSessionId id) override {
    if (links_) links_->failed(id, now_());
  }
  void on_datagram(nat::IceSessionId id, std::string_view bytes) override {
    if (!links_) return;
    if (auto peer = links_->received(id, now_())) deliver_(*peer, bytes);
  }

 private:
  std::function<Instant()> now_;
  Deliver deliver_;
  nat::IceLinks* links_ = nullptr;
};

struct NiceConfig {
  /// Host candidates only from these addresses (the node's own, when it listens on one); empty: every
  /// interface's.
  std::vector<IpAddress> local_addresses;
  std::optional<Endpoint> stun;  ///< a STUN server for server-reflexive candidates (a public peer)
  /// More STUN servers: each new agent takes the next of `stun` and these in turn, so that one
  /// server gone away (a bootstrap peer that died) costs a link one try, not every link.
  std::vector<Endpoint> more_stun;
  /// A TURN server and its long-term credentials (never logged).
  using Turn = nat::TurnServer;
  std::optional<Turn> turn;
  std::uint16_t port_min = 0, port_max = 0;  ///< the agents' local ports (0: any)
};

class NiceIce : public nat::IcePort {
 public:
  /// Starts the GLib thread. `events` is called on `loop`'s thread only, and must outlive this.
  NiceIce(uv_loop_t* loop, NiceConfig cfg, IceEvents& events);
  /// stop() must have been called, and the loop run until its handle closed.
  ~NiceIce() override;
  NiceIce(const NiceIce&) = delete;
  NiceIce& operator=(const NiceIce&) = delete;

  bool open(nat::IceSessionId id, bool controlling) override;
  void remote(nat::IceSessionId id, const nat::IceDescription& remote) override;
  bool send(nat::IceSessionId id, std::string_view bytes) override;
  void close(nat::IceSessionId id) override;
  /// Agents opened from now on gather a relayed candidate through `turn` (on the loop's thread, as
  /// open() is: each agent takes a copy of the settings when it opens).
  void use_turn(const nat::TurnServer& turn) override { cfg_.turn = turn; }

  /// Closes every agent, stops the thread and closes the uv handle (the loop must run once more).
  void stop();
  [[nodiscard]] std::size_t agents() const;

  struct Agent;  ///< one session's libnice agent (nice_ice.cpp)

 private:
  struct Event {
    nat::IceSessionId id = 0;
    enum class Kind : std::uint8_t { Credentials, Candidate, GatheringDone, Connected, Failed, Datagram } kind{};
    nat::IceCredentials credentials;
    nat::IceCandidate candidate;
    nat::CandidateType local{}, remote{};
    std::string bytes;
  };
  friend struct Agent;
  void run_on_glib(std::function<void()> f);  ///< queued to the GLib thread, in order
  void post(Event e);                         ///< from the GLib thread to the libuv loop
  static void on_async(uv_async_t* a);
  void drain_commands();  ///< on the GLib thread

  NiceConfig cfg_;
  std::size_t next_stun_ = 0;  ///< the STUN server the next agent takes (NiceConfig::more_stun)
  IceEvents& events_;
  uv_async_t async_{};
  bool async_open_ = false;
  struct Glib;
  std::unique_ptr<Glib> glib_;  ///< the GLib context, loop and thread (no GLib type in this header)
  std::thread thread_;

  mutable std::mutex mu_;  ///< guards what both threads touch: the queues and the agents' table
  std::deque<std::function<void()>> commands_;
  std::deque<Event> events_queue_;
  std::unordered_map<nat::IceSessionId, std::shared_ptr<Agent>> agents_;
};

}  // namespace p2psip::runtime
