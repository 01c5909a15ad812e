// SIP transactions (RFC 3261 §17), sans-I/O.
//
// The layer is fed received messages and the current time, and told by its transaction user (TU) what
// to send; it emits bytes through the Environment and tells the TU what happened. It never reads a
// clock: the driver calls advance(now) at or after next_wakeup().
//
// Beyond RFC 3261 §17 it implements:
//  - RFC 6026: INVITE 2xx moves client and server INVITE transactions to Accepted (Timers M and L);
//    2xx retransmissions and forked 2xx reach the client TU, ACKs for 2xx reach the server TU.
//  - RFC 4320 for non-INVITE server transactions: no provisional other than 100; over an unreliable
//    transport no 100 before a client's Timer E would reach T2, and a 100 sent by the layer at that
//    moment if the TU has not answered; never a 408; no answer without a live server transaction.
//  - RFC 3261 §17.2.3 matching with the RFC 2543 fall-back for branches without the magic cookie.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/address.hpp"
#include "core/environment.hpp"
#include "core/hash_index.hpp"
#include "core/indexed_heap.hpp"
#include "core/invariant.hpp"
#include "core/result.hpp"
#include "core/slot_pool.hpp"
#include "core/small_vector.hpp"
#include "core/time.hpp"
#include "node/sip/headers.hpp"
#include "node/sip/message.hpp"

namespace p2psip::sip {

/// RFC 3261 Table 4 base values; each node may set its own.
struct TimerConfig {
  Duration t1 = millis(500);       ///< RTT estimate
  Duration t2 = seconds(4);        ///< maximum retransmit interval for non-INVITE requests and INVITE responses
  Duration t4 = seconds(5);        ///< maximum duration a message remains in the network
  Duration timer_d = seconds(32);  ///< Timer D over unreliable transports (RFC 3261: at least 32 s)
  /// Timer C (RFC 3261 §16.6 step 11): a client INVITE transaction in Proceeding that hears nothing
  /// for this long tells its TU (on_timeout; a proxy then CANCELs) and ends 64*T1 later.
  Duration timer_c = seconds(180);
  /// Server INVITE: a 100 Trying is sent when the TU has not answered within this (RFC 3261 §17.2.1).
  Duration invite_trying_delay = millis(200);
  /// Not an RFC 3261 timer, off when zero. A non-INVITE client transaction that has heard nothing
  /// at all for this long times out early. A live server answers or sends 100 Trying by the time
  /// Timer E reaches T2 (RFC 4320 §4.2: 3.5 s with the default timers), so silence well past that
  /// means the peer is gone: an overlay reroutes after seconds instead of waiting 64*T1 (Timer F).
  Duration non_invite_silence{0};
};

/// The time a non-INVITE client's Timer E takes to reach T2 (RFC 4320 §4.1): 3.5 s by default.
Duration non_invite_trying_deadline(const TimerConfig& cfg);

/// Opaque and never 0; ids of ended transactions are not handed out again for a long time.
using TransactionId = std::uint64_t;

enum class TransactionState : std::uint8_t { Calling, Trying, Proceeding, Accepted, Completed, Confirmed, Terminated };
std::string_view state_name(TransactionState s);

/// Counters a node reports; every dropped message is counted under a reason.
struct TransactionStats {
  std::uint64_t requests_in = 0, responses_in = 0;
  std::uint64_t retransmissions_absorbed = 0;  ///< request or response retransmissions matched
  std::uint64_t retransmissions_sent = 0;      ///< by Timers A, E, G and response replays
  std::uint64_t stray_responses = 0;           ///< matched no client transaction
  std::uint64_t stray_acks = 0;                ///< ACK matching no transaction, passed to the TU
  std::uint64_t malformed_dropped = 0;         ///< unparseable or invalid, not answerable
  std::uint64_t malformed_answered = 0;        ///< invalid requests answered 4xx/5xx statelessly
  std::uint64_t oversize = 0;                  ///< refused for a size limit (413/513 or dropped)
  std::uint64_t timeouts = 0;                  ///< Timer B, F, H and the silence timeout
  std::uint64_t silence_timeouts = 0;          ///< of those, non-INVITE clients that heard nothing
  std::uint64_t transport_errors = 0;
  std::uint64_t refused_responses = 0;       ///< TU answers refused by RFC 4320 or a dead transaction
  std::uint64_t forbidden_destinations = 0;  ///< responses not sent toward broadcast addresses
};

/// Why a send failed at once: the transport refused the message (no connection, unreachable).
enum class SendError : std::uint8_t { TransportRefused };

/// What the transaction layer tells its user. Callbacks may call back into the layer. A call of
/// the TU into the layer (send_request, respond) never causes a callback to the TU before it
/// returns: what fails at once is reported by its return value alone (libuv's rule).
class TransactionUser {
 public:
  virtual ~TransactionUser() = default;
  /// A new request created server transaction `id` (every method but ACK).
  virtual void on_request(TransactionId id, const Message& request, const Endpoint& from, Instant now) = 0;
  /// An ACK that matched no transaction (the ACK for a 2xx), or one for a server transaction in
  /// Accepted (RFC 6026 §8.7). `id` is 0 for the former.
  virtual void on_ack(TransactionId id, const Message& ack, const Endpoint& from, Instant now) = 0;
  /// A response for client transaction `id`: provisional, final, or (RFC 6026) a 2xx in Accepted.
  virtual void on_response(TransactionId id, const Message& response, Instant now) = 0;
  /// Timer B or F fired (the TU treats it as a 408 that is never sent, RFC 4320 §4.3), Timer C fired
  /// on a client INVITE in Proceeding (the TU should CANCEL), or Timer H fired on a server INVITE
  /// transaction (its final response was never acknowledged).
  virtual void on_timeout(TransactionId id, Instant now) = 0;
  /// The transport failed to send for transaction `id` (RFC 3261 §17.1.4, §17.2.4): a
  /// retransmission, an ACK, or a response replayed. Never for the send that started the
  /// transaction or a respond() (their return values say so).
  virtual void on_transport_error(TransactionId id, Instant now) = 0;
  /// A response that matched no client transaction (RFC 3261 §17.1.3). A stateful proxy forwards
  /// stray 2xx to INVITE; others drop it. Default: ignore.
  virtual void on_stray_response(const Message& response, const Endpoint& from, Instant now) {
    (void)response;
    (void)from;
    (void)now;
  }
};

class TransactionLayer {
 public:
  TransactionLayer(Environment& env, TransactionUser& tu, TimerConfig timers = {}, Limits limits = {});
  TransactionLayer(const TransactionLayer&) = delete;
  TransactionLayer& operator=(const TransactionLayer&) = delete;

  /// Receive path for a datagram (one message; trailing octets ignored). Malformed requests are
  /// answered statelessly (400, 413, 505, 513) where a Via allows; everything else is dropped and counted.
  void receive_datagram(std::string_view bytes, const Endpoint& from, Instant now);
  /// Receive path for a message already framed (from a StreamFramer) or parsed.
  void receive(const Message& message, const Endpoint& from, Instant now) { receive(message, nullptr, from, now); }
  /// The same for a message the caller gives up: a new server transaction keeps it without a copy.
  void receive(Message&& message, const Endpoint& from, Instant now) { receive(message, &message, from, now); }
  /// Answers a request that failed framing or parsing, statelessly, from its raw bytes.
  void answer_malformed(std::string_view raw, const ParseError& error, const Endpoint& from);

  /// Starts a client transaction. The request must carry a top Via with an RFC 3261 branch
  /// (see make_branch). Returns the transaction's id, or SendError when the transport refused the
  /// request at once (counted in transport_errors; no transaction remains, and the TU hears
  /// nothing more of it). Later transport errors (retransmissions) arrive via the TU.
  Result<TransactionId, SendError> send_request(const Message& request, const Endpoint& to, Instant now) {
    return send_request(request, to, now, std::nullopt);
  }
  /// The same where the caller made the top Via and knows its branch (it must be that Via's): the
  /// Via is not parsed again.
  Result<TransactionId, SendError> send_request(const Message& request, const Endpoint& to, Instant now,
                                                std::optional<std::string_view> branch);
  /// Sends a response through server transaction `id`. Returns false when refused: unknown or
  /// terminated transaction, a non-100 provisional or a 408 to a non-INVITE request (RFC 4320),
  /// a 100 over UDP too early (RFC 4320 §4.1), or a response in a state that takes none; or when
  /// the transport refused it at once (the transaction then ends, and the TU is not called).
  bool respond(TransactionId id, const Message& response, Instant now);
  /// Sends a message outside any transaction (an ACK for a 2xx, a stateless response).
  bool send_stateless(const Message& message, const Endpoint& to);

  /// The INVITE server transaction a CANCEL refers to (RFC 3261 §9.2), if any is alive.
  std::optional<TransactionId> find_invite_for_cancel(const Message& cancel) const;
  /// The request that created a transaction, while it exists; nullptr once a non-INVITE
  /// transaction has completed (its request is no longer kept).
  const Message* request_of(TransactionId id) const;
  std::optional<TransactionState> state_of(TransactionId id) const;

  /// Fires every timer due at or before `now`.
  void advance(Instant now);
  /// The driver lost its connection to `peer` (a stream: closed, reset, or never made): each client
  /// transaction whose request went there over it has a transport error (RFC 3261 §17.1.4, §18.4),
  /// reported to the TU now rather than at its time-out.
  void connection_lost(const Endpoint& peer, Instant now);
  /// The earliest time advance() has work; kInstantMax when none.
  [[nodiscard]] Instant next_wakeup() const;

  /// A new RFC 3261 branch: the magic cookie and 64 bits from the environment's secure source.
  std::string make_branch() { return std::string(new_branch().view()); }
  /// The same, held in place (no allocation; one is made for every request).
  struct Branch {
    std::array<char, 23> text{};  // "z9hG4bK" and 16 hex digits
    [[nodiscard]] std::string_view view() const { return {text.data(), text.size()}; }
  };
  Branch new_branch();
  /// The time a client's Timer E takes to reach T2 (RFC 4320 §4.1): 3.5 s with the default timers.
  [[nodiscard]] Duration non_invite_trying_deadline() const;

  [[nodiscard]] const TransactionStats& stats() const { return stats_; }
  [[nodiscard]] std::size_t size() const { return pool_.size(); }
  [[nodiscard]] const TimerConfig& timers() const { return cfg_; }

 private:
  enum Timer : std::uint8_t { A, B, C, D, E, F, G, H, I, J, K, L, M, Trying100, Lifetime, Silence, kTimerCount };
  /// No transaction runs more than this many timers at once (a client non-INVITE: E, F, Silence).
  static constexpr int kTimerSlots = 4;
  /// A transaction key (RFC 3261 §17.1.3, §17.2.3) held in place when it fits, as every key of a
  /// branch with the magic cookie does; longer ones (RFC 2543 keys) on the heap.
  class Key {
   public:
    Key& append(std::string_view text);
    Key& append(char c) { return append(std::string_view(&c, 1)); }
    [[nodiscard]] std::string_view view() const {
      return on_heap_ ? std::string_view(heap_) : std::string_view(small_.data(), size_);
    }
    [[nodiscard]] bool empty() const { return view().empty(); }

   private:
    static constexpr std::size_t kInline = 62;  // "3|" branch "|" IPv4 sent-by "|" method, with room
    std::array<char, kInline> small_{};
    std::uint8_t size_ = 0;
    bool on_heap_ = false;
    std::string heap_;
  };
  /// The fields every match and timer reads come first (the key, then the state and the timers),
  /// so that finding a transaction touches its first lines only; the kept messages come last.
  struct Transaction {
    Key key;
    std::uint64_t hash = 0;  ///< side_hash of the key, kept for erasing it from the index
    TransactionId id = 0;    ///< its id in pool_
    TransactionState state = TransactionState::Trying;
    bool client = false;
    bool invite = false;
    bool reliable = false;
    bool released = false;  // request and request_bytes dropped (non-INVITE, Completed)
    Timer which[kTimerSlots] = {kTimerCount, kTimerCount, kTimerCount, kTimerCount};
    std::uint32_t heap_pos = kNotInHeap;  // position in timer_queue_
    Instant due[kTimerSlots] = {kInstantMax, kInstantMax, kInstantMax, kInstantMax};
    Duration interval{};
    Instant created{};
    int last_status = 0;
    Endpoint peer;
    std::string to_tag;          // server: the To tag of the last response (RFC 2543 ACK matching)
    std::string request_bytes;   // client over UDP: what is retransmitted
    std::string response_bytes;  // server: the last response sent
    std::string ack_bytes;       // client INVITE: the ACK for a non-2xx final response
    Message request;
  };
  /// `take`, when given, is `request` itself, moved into the transaction where it is kept.
  Transaction& create(bool client, const Message& request, Message* take, const Endpoint& peer, bool reliable,
                      Instant now);
  void receive(const Message& message, Message* take, const Endpoint& from, Instant now);
  Transaction* find(TransactionId id) const { return pool_.find(id); }
  /// The transaction filed under `key` (its side's hash `hash`), or nullptr.
  Transaction* find_key(std::string_view key, std::uint64_t hash) const {
    return index_.find(hash, [key](const Transaction& t) { return t.key.view() == key; });
  }
  [[nodiscard]] std::uint64_t key_hash(std::string_view key) const;
  [[nodiscard]] std::uint64_t side_hash(std::string_view key, bool client) const;
  /// Files `t` under `key`; `hash` is side_hash(key, t.client), which the caller has for its lookup.
  void index(Transaction& t, const Key& key, std::uint64_t hash);
  void start_timer(Transaction& t, Timer timer, Duration after, Instant now);
  void stop_timer(Transaction& t, Timer timer);
  void requeue(Transaction& t);
  void fire(Transaction& t, Timer timer, Instant now);
  void terminate(Transaction& t);
  void release_request(Transaction& t);
  /// Sends `bytes` to the transaction's peer. A refusal ends the transaction and is counted; the
  /// TU hears of it when `tell_tu` (the layer's own sends: retransmissions, ACKs, replays), never
  /// for a send the TU asked for (its caller learns it from the return value).
  bool transmit(Transaction& t, const std::string& bytes, Instant now, bool tell_tu = true);
  /// transmit() for bytes that are not kept (no retransmission will need them).
  bool transmit_once(Transaction& t, std::string&& bytes, Instant now, bool tell_tu);
  /// Counts a failed send, tells the TU (when `tell_tu`) and ends the transaction; false.
  bool transport_failed(Transaction& t, Instant now, bool tell_tu);
  void on_client_response(Transaction& t, const Message& response, Instant now);
  void on_server_retransmission(Transaction& t, const Message& request, const Endpoint& from, Instant now);
  Endpoint response_destination(const Message& request, const Endpoint& from) const;
  Endpoint response_destination(const std::optional<Via>& via, const Endpoint& from) const;
  Key server_key(const Message& request, bool for_ack) const;
  Key server_key(const Message& request, const std::optional<Via>& via, bool for_ack) const;
  /// RFC 3261 §17.1.3: a client transaction's key, the top Via's branch and the CSeq method.
  static Key client_key(std::string_view branch, std::string_view method);
  std::string build_ack(const Transaction& t, const Message& response) const;
  void collect_garbage();
  /// Marks a call into the layer for its whole extent: transactions that end meanwhile are freed
  /// when the outermost call returns (collect_garbage), never while a callback up the stack may
  /// hold a reference to one.
  class Busy {
   public:
    explicit Busy(TransactionLayer& layer) : layer_(layer) { ++layer_.depth_; }
    ~Busy() {
      if (--layer_.depth_ == 0) P2PSIP_CHECK_INVARIANT(layer_.timer_queue_.violation());
      layer_.collect_garbage();
    }
    Busy(const Busy&) = delete;
    Busy& operator=(const Busy&) = delete;

   private:
    TransactionLayer& layer_;
  };

  Environment& env_;
  TransactionUser& tu_;
  TimerConfig cfg_;
  Limits limits_;
  TransactionStats stats_;
  std::uint64_t hash_seed_;
  // The pool (each transaction on its own allocation, ids that name nothing once it ended), the
  // key index, the timer heap and the list of ended transactions keep their first few entries in
  // place, in the node: all a node usually needs.
  SlotPool<Transaction, 4> pool_;
  HashIndex<Transaction, 8> index_;
  IndexedHeap<Transaction, 4> timer_queue_;
  SmallVector<TransactionId, 4> dead_;
  int depth_ = 0;
};

}  // namespace p2psip::sip
