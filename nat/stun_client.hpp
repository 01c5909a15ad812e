// STUN client transactions (RFC 8489 §6.2): a request is sent, retransmitted on UDP at RTO,
// doubling, Rc times in all, and given up Rm·RTO after the last; on a reliable transport it waits
// Ti once. Sans-I/O: sends through the Environment, time through advance(now). The caller hands it
// the STUN responses it decodes; what matches a transaction ends it.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/environment.hpp"
#include "core/result.hpp"
#include "core/time.hpp"
#include "nat/stun.hpp"

namespace p2psip::nat {

struct StunClientConfig {
  /// The first retransmission interval (RFC 8489 §6.2.1: at least 500 ms when the RTT is unknown).
  Duration rto = millis(500);
  int rc = 7;                                 ///< requests sent in all on UDP (the first and six retransmissions)
  int rm = 16;                                ///< after the last, the wait for an answer, in RTOs
  Duration reliable_timeout = millis(39500);  ///< Ti on TCP and TLS
  std::size_t max_outstanding = 256;          ///< more at once are refused
};

/// How a transaction ended.
struct StunOutcome {
  enum class Kind : std::uint8_t {
    Success,         ///< a success response; `mapped` as it named it (when it did)
    ErrorResponse,   ///< an error response; `error` and `reason`
    Timeout,         ///< no answer in the whole schedule
    TransportError,  ///< a retransmission could not be sent
  };
  Kind kind = Kind::Timeout;
  StunTransactionId id{};
  Endpoint to;
  Instant at{};  ///< when it ended (the `now` of the receive or advance that ended it)
  std::optional<Endpoint> mapped;
  int error = 0;
  std::string reason;
  Duration rtt{};  ///< from the first send to the answer (Success and ErrorResponse)
  int sends = 0;   ///< requests sent, retransmissions included
  /// The answer itself, valid during the callback only (Success and ErrorResponse).
  const StunMessage* response = nullptr;
};

enum class StunSendError : std::uint8_t { TransportRefused, TooMany };

struct StunClientStats {
  std::uint64_t started = 0, succeeded = 0, error_responses = 0, timeouts = 0, transport_errors = 0;
  std::uint64_t retransmissions = 0, refused = 0, stray_responses = 0;
};

class StunClient {
 public:
  using Done = std::function<void(const StunOutcome&)>;

  explicit StunClient(Environment& env, StunClientConfig cfg = {});

  /// Sends a Binding request to `to`, with FINGERPRINT unless `fingerprint` is false (an RFC 5626
  /// keep-alive needs none: the magic cookie tells STUN from SIP, and every byte is paid for every
  /// 25 s). `done` runs exactly once, later, from receive() or advance() — never before this
  /// returns: a send that fails at once is reported by the return value alone, and no transaction
  /// remains (libuv's rule).
  Result<StunTransactionId, StunSendError> binding(const Endpoint& to, Instant now, Done done, bool fingerprint = true);
  /// Sends `request` (built with `id`) to `to`, as binding() does.
  Result<StunTransactionId, StunSendError> request(const Endpoint& to, const StunTransactionId& id, std::string request,
                                                   Instant now, Done done);
  /// A fresh transaction id from the environment's secure source (RFC 8489 §6: it must not be
  /// guessable by an attacker who may forge a response).
  StunTransactionId new_id();

  /// A decoded response (Success or Error class) from `from`: true when it ended a transaction (its
  /// callback has run). A response from another address than the request went to, or to no
  /// transaction, is counted as stray and ignored.
  bool receive(const StunMessage& response, const Endpoint& from, Instant now);
  /// Retransmits what is due and ends what has timed out (their callbacks run here).
  void advance(Instant now);
  [[nodiscard]] Instant next_wakeup() const;
  /// Ends transaction `id` without calling its callback.
  void cancel(const StunTransactionId& id);

  [[nodiscard]] std::size_t outstanding() const { return txns_.size(); }
  [[nodiscard]] const StunClientStats& stats() const { return stats_; }
  [[nodiscard]] const StunClientConfig& config() const { return cfg_; }

 private:
  struct Txn {
    StunTransactionId id;
    Endpoint to;
    std::string bytes;
    Done done;
    Instant started, next;  ///< next: the next retransmission, or the time-out after the last
    Duration interval;
    int sends = 1;
  };
  void finish(std::size_t index, StunOutcome& outcome, Instant now);

  Environment& env_;
  StunClientConfig cfg_;
  std::vector<Txn> txns_;
  StunClientStats stats_;
};

}  // namespace p2psip::nat
