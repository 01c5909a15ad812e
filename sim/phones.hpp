// Simulated phones ([phones]): a softphone on some of the hosts, registered at the host's own phone
// side, calling the other phones' users through the real phone side and the real overlay.
//
// A phone is two sans-I/O SIP cores on one address, each with its own transaction layer: requests
// go to its callee side (the sip-echo element: 180 at once, 200 after the answer delay, 2xx
// retransmitted until the ACK, BYE answered), responses to its caller side (REGISTER; INVITE, then
// ACK along the dialog's route set, BYE after the call's duration). The Telephony model keeps the
// directory of registered phones, starts calls at each phone's Poisson rate and measures them:
// attempted, answered, failed by status, and the set-up time (INVITE sent -> 180 received).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/hex.hpp"
#include "node/echo/echo_element.hpp"
#include "node/sip/transaction.hpp"
#include "sim/engine.hpp"
#include "sim/random.hpp"
#include "sim/results.hpp"
#include "sim/scenario.hpp"

namespace p2psip::sim {

/// How one call ended, as its caller saw it.
struct CallOutcome {
  int status = 0;    ///< the final status (408 for no answer at all, 503 for a refused send)
  Duration setup{};  ///< INVITE sent -> first 180 (zero when none came)
  bool rang = false;
};

class SimPhone : public sip::TransactionUser {
 public:
  struct Config {
    std::string user;    ///< registered as sip:user@domain
    std::string domain;  ///< the overlay
    Endpoint self;       ///< the phone's own address
    Endpoint proxy;      ///< its node's phone side: registrar and outbound proxy
    Duration answer_delay = seconds(1);
    Duration call_duration = seconds(30);
    std::uint32_t expires_s = 3600;
  };
  /// `env` sends from the phone's address; it must outlive the phone.
  SimPhone(Environment& env, Config config);
  ~SimPhone() override;

  /// Told when the registration is answered (true: 200) and when a call it placed has ended.
  std::function<void(bool ok)> on_registered;
  std::function<void(const CallOutcome& outcome)> on_call_end;

  void register_now(Instant now);
  /// Calls sip:`callee`@domain; false when a call is still in progress (one at a time).
  bool call(const std::string& callee, Instant now);
  [[nodiscard]] bool busy() const { return call_.has_value(); }

  void receive_datagram(std::string_view bytes, const Endpoint& from, Instant now);
  void advance(Instant now);
  [[nodiscard]] Instant next_wakeup() const;

  // sip::TransactionUser: the caller side's client transactions.
  void on_request(sip::TransactionId id, const sip::Message& request, const Endpoint& from, Instant now) override;
  void on_ack(sip::TransactionId id, const sip::Message& ack, const Endpoint& from, Instant now) override;
  void on_response(sip::TransactionId id, const sip::Message& response, Instant now) override;
  void on_timeout(sip::TransactionId id, Instant now) override;
  void on_transport_error(sip::TransactionId id, Instant now) override;

 private:
  struct Call {
    sip::TransactionId invite = 0;
    std::string call_id, from_tag, to_tag, remote_target;
    std::string to_uri;                  ///< the callee's AOR, the dialog's remote URI
    int cseq = 0;                        ///< the INVITE's
    std::vector<std::string> route_set;  ///< from the 2xx's Record-Route, reversed (§12.1.2)
    Instant sent{};
    CallOutcome outcome;
    bool answered = false;
    Instant bye_at = kInstantMax;
  };
  std::string token();
  /// The request's header block (Via with a new branch, From, To, Call-ID, CSeq, Route).
  std::string headers(std::string_view method, std::string_view ruri, std::string_view to, const std::string& call_id,
                      const std::string& from_tag, int cseq, const std::vector<std::string>& routes);
  void end_call(int status, Instant now);
  void send_ack(const sip::Message& ok, Instant now);

  Environment& env_;
  Config cfg_;
  sip::TransactionLayer layer_;  ///< the caller side
  echo::EchoElement callee_;     ///< the callee side
  sip::TransactionId registration_ = 0;
  std::string reg_call_id_;
  int reg_cseq_ = 0;
  int cseq_ = 0;
  std::optional<Call> call_;
};

/// The telephony model: which hosts have phones, their registrations and their calls.
class Telephony {
 public:
  Telephony(const Scenario& sc, Engine& engine, Metrics& metrics);

  /// Whether a new host serves a phone (drawn on the model's own stream).
  [[nodiscard]] bool decide();
  /// Host `host`'s phone (already made by the population) is to register: its node has joined.
  void joined(std::uint32_t host, SimPhone& phone);
  /// Host `host` died: its phone leaves the directory and its calls stop.
  void died(std::uint32_t host);
  /// A Call event: `host`'s phone starts its next call, and the next is scheduled.
  void call_event(std::uint32_t host, SimPhone* phone);
  [[nodiscard]] static std::string user_of(std::uint32_t host) { return "u" + std::to_string(host); }

 private:
  const Scenario& sc_;
  Engine& engine_;
  Metrics& metrics_;
  Rng who_;    ///< which hosts have phones
  Rng calls_;  ///< when phones call, and whom
  Instant end_;
  std::vector<std::uint32_t> registered_;          ///< hosts whose phone is registered now
  std::map<std::uint32_t, std::size_t> position_;  ///< their places in registered_
};

}  // namespace p2psip::sim
