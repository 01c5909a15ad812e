// The sip-echo test element: a UAS core (RFC 3261 §8.2, §12, §13.3) on top of the transaction layer.
// It answers OPTIONS with 200; INVITE with 180 then 200 (the offer's SDP mirrored as the answer),
// retransmitting the 200 until the ACK (§13.3.1.4); BYE in a dialog with 200 (481 outside one);
// CANCEL of a pending INVITE with 200 and 487 (§9.2). Everything else gets the §8.2 answer
// (405/501/416/420/415/406). Sans-I/O: time and bytes come from its driver.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "node/sip/transaction.hpp"
#include "node/sip/validate.hpp"

namespace p2psip::echo {

struct EchoConfig {
  std::string contact_host = "127.0.0.1";  ///< host (and port) written in Contact
  std::uint16_t contact_port = 5060;
  Duration answer_delay{0};         ///< time between 180 and 200 for INVITE (0: at once)
  std::size_t max_dialogs = 10000;  ///< beyond it new INVITEs get 503 with Retry-After
  sip::Capabilities capabilities;
};

struct EchoStats {
  std::uint64_t options = 0, invites = 0, answered = 0, acks = 0, byes = 0, cancels = 0, rejected = 0;
  std::uint64_t ok_retransmissions = 0, ack_timeouts = 0;
};

class EchoElement : public sip::TransactionUser {
 public:
  EchoElement(Environment& env, EchoConfig config, sip::TimerConfig timers = {}, sip::Limits limits = {});

  /// Entry points for the driver.
  void receive_datagram(std::string_view bytes, const Endpoint& from, Instant now);
  void receive(const sip::Message& m, const Endpoint& from, Instant now);
  void answer_malformed(std::string_view raw, const sip::ParseError& e, const Endpoint& from);
  void advance(Instant now);
  [[nodiscard]] Instant next_wakeup() const;

  /// The port written in Contact (once an ephemeral port is known).
  void set_contact_port(std::uint16_t port) { cfg_.contact_port = port; }

  [[nodiscard]] const EchoStats& stats() const { return stats_; }
  [[nodiscard]] const sip::TransactionLayer& transactions() const { return layer_; }
  [[nodiscard]] std::size_t dialogs() const { return dialogs_.size(); }

  // sip::TransactionUser
  void on_request(sip::TransactionId id, const sip::Message& request, const Endpoint& from, Instant now) override;
  void on_ack(sip::TransactionId id, const sip::Message& ack, const Endpoint& from, Instant now) override;
  void on_response(sip::TransactionId id, const sip::Message& response, Instant now) override;
  void on_timeout(sip::TransactionId id, Instant now) override;
  void on_transport_error(sip::TransactionId id, Instant now) override;

 private:
  struct Dialog {
    sip::TransactionId invite = 0;  // the INVITE server transaction
    Endpoint peer;
    std::string local_tag;
    sip::Message ok;  // the 2xx, retransmitted until the ACK
    bool confirmed = false;
    bool answered = false;
    Instant answer_at{};  // when the 200 is due
    Instant next_retransmit = kInstantMax;
    Duration interval{};
    Instant give_up{};
  };

  std::string dialog_key(const sip::Message& m, std::string_view local_tag) const;
  void answer(Dialog& d, Instant now);
  std::string new_tag();

  Environment& env_;
  EchoConfig cfg_;
  sip::TransactionLayer layer_;
  EchoStats stats_;
  std::map<std::string, Dialog> dialogs_;
};

}  // namespace p2psip::echo
