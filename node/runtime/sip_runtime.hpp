// The libuv driver for a sans-I/O SIP core: UDP and TCP sockets, TLS on the same port (OpenSSL
// over memory BIOs; the first byte of a connection tells TLS from plain SIP), stream framing,
// connection reuse, idle timeouts, a connection cap, and the timer that wakes the core when it asks
// to be woken. This is the only place (with the daemon's main) that touches sockets and clocks.
// The TLS handshake proves the peer holds its certificate's key; whether that certificate is good
// enough, and whose Node-ID it proves, the core decides (PacketSink::on_tls_peer).
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>

#include "core/address.hpp"
#include "core/environment.hpp"
#include "core/link_identity.hpp"
#include "core/time.hpp"
#include "node/runtime/wakeup.hpp"
#include "node/sip/message.hpp"
#include "node/sip/stream_framer.hpp"

namespace p2psip::runtime {

/// What the runtime drives. Calls come from the loop thread only.
class PacketSink {
 public:
  virtual ~PacketSink() = default;
  virtual void on_datagram(std::string_view bytes, const Endpoint& from, Instant now) = 0;
  /// A message from a stream; `link_peer` is what on_tls_peer said of a TLS connection's peer
  /// (null on plain TCP).
  virtual void on_message(const sip::Message& m, const Endpoint& from, Instant now, const LinkIdentity* link_peer) = 0;
  virtual void on_malformed(std::string_view raw, const sip::ParseError& e, const Endpoint& from, Instant now) = 0;
  virtual void advance(Instant now) = 0;
  [[nodiscard]] virtual Instant next_wakeup() const = 0;
  /// A stream connection to `remote` closed, was reset or refused, or failed its TLS handshake (not
  /// one this runtime closed itself). By default nothing is done.
  virtual void on_connection_lost(const Endpoint& remote, Instant now) {
    (void)remote;
    (void)now;
  }
  /// The pong (a lone CRLF) to a ping the core sent down the stream to `remote` (RFC 5626 §4.4.1).
  virtual void on_pong(const Endpoint& remote, Instant now) {
    (void)remote;
    (void)now;
  }
  /// A TLS connection's peer presented `cert_der` and proved it holds its key: whom it speaks
  /// for (opaque to the runtime), or nullopt to close the connection (the sink logs why). By
  /// default every TLS peer is refused.
  virtual std::optional<LinkIdentity> on_tls_peer(std::string_view cert_der, const Endpoint& from, Instant now) {
    (void)cert_der;
    (void)from;
    (void)now;
    return std::nullopt;
  }
};

/// Drives any core that offers the usual entry points (receive_datagram, receive, answer_malformed,
/// advance, next_wakeup): the echo element, an overlay node.
template <class Core>
class CoreSink : public PacketSink {
 public:
  explicit CoreSink(Core& core) : core_(core) {}
  void on_datagram(std::string_view bytes, const Endpoint& from, Instant now) override {
    core_.receive_datagram(bytes, from, now);
  }
  void on_message(const sip::Message& m, const Endpoint& from, Instant now, const LinkIdentity*) override {
    core_.receive(m, from, now);
  }
  void on_malformed(std::string_view raw, const sip::ParseError& e, const Endpoint& from, Instant) override {
    core_.answer_malformed(raw, e, from);
  }
  void advance(Instant now) override { core_.advance(now); }
  [[nodiscard]] Instant next_wakeup() const override { return core_.next_wakeup(); }

 private:
  Core& core_;
};

struct RuntimeConfig {
  IpAddress listen_ip = *IpAddress::parse("127.0.0.1");
  std::uint16_t port = 5060;
  bool udp = true;
  bool tcp = true;
  Duration tcp_idle_timeout = seconds(300);
  std::size_t max_connections = 1024;
  /// SO_RCVBUF asked for the UDP socket (the kernel caps it at net.core.rmem_max): room for a
  /// burst of datagrams while the loop is busy, as SIP servers set (Kamailio's maxbuffer).
  int udp_receive_buffer = 1 << 20;
  sip::Limits limits;
  /// TLS on the TCP port: this node's private key and certificate (PEM). Unset: plain TCP only,
  /// and sends over Transport::Tls fail.
  struct Tls {
    std::string key_pem, cert_pem;
    Duration handshake_timeout = seconds(10);  ///< a connection still shaking hands after this is closed
  };
  std::optional<Tls> tls;
};

struct RuntimeStats {
  std::uint64_t datagrams_in = 0, datagrams_out = 0, bytes_in = 0, bytes_out = 0;
  std::uint64_t stream_messages_out = 0;  ///< messages handed to TCP connections
  std::uint64_t connections_accepted = 0, connections_opened = 0, connections_refused = 0;
  std::uint64_t connections_idle_closed = 0, framing_errors = 0, send_errors = 0, pings = 0;
  std::uint64_t pongs = 0;           ///< pongs to our own pings (RFC 5626 §4.4.1)
  std::uint64_t tls_handshakes = 0;  ///< completed, and the peer accepted
  std::uint64_t tls_refused = 0;     ///< handshakes that failed, timed out, or whose peer the sink refused
};

class SipRuntime : public Environment {
 public:
  SipRuntime(uv_loop_t* loop, RuntimeConfig config);
  ~SipRuntime() override;
  SipRuntime(const SipRuntime&) = delete;
  SipRuntime& operator=(const SipRuntime&) = delete;

  /// Binds the sockets and starts delivering to `sink`. The sink is woken by `wakeup` when given
  /// (shared with the other runtimes that feed the same core; it must outlive this runtime's
  /// start and stop), by a wake-up of the runtime's own otherwise. False with `error` set when a
  /// bind fails or the TLS key or certificate cannot be used.
  bool start(PacketSink& sink, std::string& error, Wakeup* wakeup = nullptr);
  /// Closes every handle (and the runtime's own wake-up); the loop then runs out.
  void stop();
  /// Re-arms the wake-up from the sink's next_wakeup(); call after driving the sink from outside.
  void reschedule();

  [[nodiscard]] Instant now() const;
  /// The system clock at `now`: an offset from the monotonic clock, measured once at start, so that
  /// wall-clock steps do not move the core's timers.
  [[nodiscard]] WallTime wall_time(Instant now) const override {
    return wall_from_unix_us(now.time_since_epoch().count() + wall_offset_us_);
  }
  [[nodiscard]] std::uint16_t udp_port() const { return udp_port_; }
  [[nodiscard]] std::uint16_t tcp_port() const { return tcp_port_; }
  [[nodiscard]] const RuntimeStats& stats() const { return stats_; }
  [[nodiscard]] std::size_t connections() const { return connections_.size(); }

  // Environment
  bool send(const Endpoint& to, std::string_view bytes) override;
  /// The seeded stream (jitter), seeded from the system's entropy at construction.
  std::uint64_t random() override { return rng_(); }
  /// libsodium's randombytes_buf: what goes on the wire or stays secret.
  std::uint64_t secure_random() override;
  void log(LogLevel level, std::string_view text) override;
  void set_log_level(LogLevel l) { log_level_ = l; }

 private:
  struct Connection;
  static void on_udp_alloc(uv_handle_t* h, std::size_t suggested, uv_buf_t* buf);
  static void on_udp_read(uv_udp_t* h, ssize_t n, const uv_buf_t* buf, const sockaddr* addr, unsigned flags);
  static void on_tcp_connection(uv_stream_t* server, int status);
  static void on_tcp_alloc(uv_handle_t* h, std::size_t suggested, uv_buf_t* buf);
  static void on_tcp_read(uv_stream_t* s, ssize_t n, const uv_buf_t* buf);
  static void on_connect(uv_connect_t* req, int status);
  static void on_sweep(uv_timer_t* t);

  std::unique_ptr<Connection> new_connection();
  Connection* add_connection(const Endpoint& remote);
  /// Closes `c`; `lost`: not this runtime's own decision (the peer closed or reset it, it could not
  /// be made, its TLS failed), so the sink hears of it at report_lost().
  void close_connection(Connection* c, bool lost = false);
  /// Tells the sink of the connections lost since the last report.
  void report_lost();
  bool write_stream(Connection* c, std::string_view bytes);
  bool write_raw(Connection* c, std::string_view bytes);
  void handle_stream_bytes(Connection* c, std::string_view bytes);
  /// TLS: starts a session on `c` (server or client side), feeds it received bytes, and sends
  /// what it produced; false when the connection was closed.
  void start_tls(Connection* c, bool server);
  bool feed_tls(Connection* c, std::string_view bytes);
  void flush_tls(Connection* c);
  bool finish_handshake(Connection* c);

  uv_loop_t* loop_;
  RuntimeConfig cfg_;
  PacketSink* sink_ = nullptr;
  uv_udp_t udp_{};
  uv_tcp_t tcp_{};
  Wakeup* wakeup_ = nullptr;  ///< the sink's wake-up: own_wakeup_, or one shared
  std::unique_ptr<Wakeup> own_wakeup_;
  uv_timer_t sweep_{};
  bool udp_open_ = false, tcp_open_ = false, started_ = false;
  std::uint16_t udp_port_ = 0, tcp_port_ = 0;
  std::vector<Endpoint> lost_;  // connections lost, not yet reported (report_lost)
  std::unordered_map<Endpoint, std::unique_ptr<Connection>, EndpointHash> connections_;
  std::unordered_map<Connection*, std::unique_ptr<Connection>> closing_;
  std::mt19937_64 rng_;
  std::int64_t wall_offset_us_ = 0;  ///< system clock minus monotonic clock, at construction
  std::shared_ptr<void> tls_ctx_;    ///< the SSL_CTX (OpenSSL kept out of this header)
  RuntimeStats stats_;
  LogLevel log_level_ = LogLevel::Info;
  char udp_buffer_[65536];
};

/// Converts between socket addresses and endpoints.
bool to_sockaddr(const Endpoint& e, sockaddr_storage& out);
Endpoint from_sockaddr(const sockaddr* addr, Transport t);

}  // namespace p2psip::runtime
