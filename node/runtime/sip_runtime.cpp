#include "node/runtime/sip_runtime.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <sodium.h>

#include <chrono>
#include <cstdio>
#include <cstring>

namespace p2psip::runtime {

namespace {
/// A datagram as the debug log shows it: SIP as text; a binary one (STUN, whose first octet is
/// 0-3, RFC 7983) as its length and first bytes in hex, which a terminal can show.
std::string printable(std::string_view bytes) {
  if (bytes.empty() || static_cast<unsigned char>(bytes[0]) >= 4) return std::string(bytes);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "(binary, " + std::to_string(bytes.size()) + " bytes:";
  for (std::size_t i = 0; i < bytes.size() && i < 32; ++i) {
    const auto b = static_cast<unsigned char>(bytes[i]);
    out += ' ';
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  out += bytes.size() > 32 ? " ...)" : ")";
  return out;
}
}  // namespace

namespace {
struct SslFree {
  void operator()(SSL* s) const { SSL_free(s); }
};
std::string openssl_error() {
  char buf[256];
  const unsigned long e = ERR_get_error();
  if (e == 0) return "no further detail";
  ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return buf;
}
}  // namespace

struct SipRuntime::Connection {
  uv_tcp_t handle{};
  uv_connect_t connect_req{};
  SipRuntime* owner = nullptr;
  Endpoint remote;
  sip::StreamFramer framer;
  Instant last_activity{};
  bool connected = false;
  bool closing = false;
  std::string pending;  // bytes queued until an outgoing connection is up (and, over TLS, its peer accepted)
  // TLS (RuntimeConfig::tls): the session over memory BIOs, whether the first byte of an accepted
  // connection is still to be seen, and the peer once the sink accepted its certificate.
  std::unique_ptr<SSL, SslFree> ssl;
  bool sniffing = false;
  bool tls_ready = false;
  std::optional<LinkIdentity> peer;
  Instant handshake_deadline = kInstantMax;
  char read_buffer[16384];
};

namespace {

struct WriteRequest {
  uv_write_t req{};
  std::string data;
};
struct UdpSendRequest {
  uv_udp_send_t req{};
  std::string data;
};

const char* level_name(LogLevel l) {
  switch (l) {
    case LogLevel::Debug: return "debug";
    case LogLevel::Info: return "info";
    case LogLevel::Warn: return "warn";
    case LogLevel::Error: return "error";
  }
  return "info";
}

}  // namespace

bool to_sockaddr(const Endpoint& e, sockaddr_storage& out) {
  std::memset(&out, 0, sizeof out);
  std::string ip = e.ip.to_string();
  if (e.ip.v6) return uv_ip6_addr(ip.c_str(), e.port, reinterpret_cast<sockaddr_in6*>(&out)) == 0;
  return uv_ip4_addr(ip.c_str(), e.port, reinterpret_cast<sockaddr_in*>(&out)) == 0;
}

Endpoint from_sockaddr(const sockaddr* addr, Transport t) {
  Endpoint e;
  e.transport = t;
  if (addr->sa_family == AF_INET6) {
    const auto* a6 = reinterpret_cast<const sockaddr_in6*>(addr);
    e.ip.v6 = true;
    std::memcpy(e.ip.bytes.data(), &a6->sin6_addr, 16);
    e.port = ntohs(a6->sin6_port);
  } else {
    const auto* a4 = reinterpret_cast<const sockaddr_in*>(addr);
    std::memcpy(e.ip.bytes.data(), &a4->sin_addr, 4);
    e.port = ntohs(a4->sin_port);
  }
  return e;
}

SipRuntime::SipRuntime(uv_loop_t* loop, RuntimeConfig config) : loop_(loop), cfg_(config) {
  if (sodium_init() < 0) std::abort();  // no secure random source: nothing here may run
  std::random_device rd;
  rng_.seed((static_cast<std::uint64_t>(rd()) << 32) ^ rd());
  const auto wall =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  wall_offset_us_ = wall - now().time_since_epoch().count();
}

SipRuntime::~SipRuntime() = default;

Instant monotonic_now() {
  return Instant(Duration(static_cast<std::int64_t>(uv_hrtime() / 1000)));
}

Wakeup::Wakeup(uv_loop_t* loop, PacketSink& core) : core_(core) {
  uv_timer_init(loop, &timer_);
  timer_.data = this;
}

Wakeup::~Wakeup() = default;

void Wakeup::rearm() {
  if (!open_) return;
  const Instant next = core_.next_wakeup();
  if (next == kInstantMax) {
    uv_timer_stop(&timer_);
    return;
  }
  const std::int64_t delay_us = (next - monotonic_now()).count();
  const std::uint64_t delay_ms = delay_us <= 0 ? 0 : static_cast<std::uint64_t>((delay_us + 999) / 1000);
  uv_timer_start(&timer_, on_timer, delay_ms, 0);
}

void Wakeup::close() {
  if (!open_) return;
  open_ = false;
  uv_timer_stop(&timer_);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), nullptr);
}

void Wakeup::on_timer(uv_timer_t* t) {
  auto* self = static_cast<Wakeup*>(t->data);
  self->core_.advance(monotonic_now());
  self->rearm();
}

Instant SipRuntime::now() const {
  return monotonic_now();
}

void SipRuntime::log(LogLevel level, std::string_view text) {
  if (level < log_level_) return;
  std::fprintf(stderr, "[%s] %.*s\n", level_name(level), static_cast<int>(text.size()), text.data());
}

bool SipRuntime::start(PacketSink& sink, std::string& error, Wakeup* wakeup) {
  sink_ = &sink;
  if (cfg_.tls) {
    SSL_CTX* ctx = SSL_CTX_new(TLS_method());
    tls_ctx_ = std::shared_ptr<void>(ctx, [](void* p) { SSL_CTX_free(static_cast<SSL_CTX*>(p)); });
    auto pem_bio = [](const std::string& text) {
      return std::unique_ptr<BIO, decltype(&BIO_free)>(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())),
                                                       &BIO_free);
    };
    auto cert_bio = pem_bio(cfg_.tls->cert_pem);
    auto key_bio = pem_bio(cfg_.tls->key_pem);
    X509* cert = PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr);
    EVP_PKEY* key = PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr);
    const bool ok = ctx != nullptr && cert != nullptr && key != nullptr &&
                    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) == 1 &&
                    SSL_CTX_use_certificate(ctx, cert) == 1 && SSL_CTX_use_PrivateKey(ctx, key) == 1 &&
                    SSL_CTX_check_private_key(ctx) == 1;
    X509_free(cert);
    EVP_PKEY_free(key);
    if (!ok) {
      error = "TLS: cannot use the node's key and certificate: " + openssl_error();
      return false;
    }
    // Both sides ask for the other's certificate. OpenSSL checks that the peer holds its key (the
    // handshake's CertificateVerify); whether the certificate is good is the core's to say once
    // the handshake is done (on_tls_peer), with the overlay's own rules (root, Node-ID, validity).
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, [](int, X509_STORE_CTX*) { return 1; });
    SSL_CTX_set_num_tickets(ctx, 0);  // links are long-lived: no resumption
  }
  Endpoint local{Transport::Udp, cfg_.listen_ip, cfg_.port};
  sockaddr_storage addr;
  if (!to_sockaddr(local, addr)) {
    error = "invalid listen address " + local.host_port();
    return false;
  }
  if (wakeup != nullptr) {
    wakeup_ = wakeup;
  } else {
    own_wakeup_ = std::make_unique<Wakeup>(loop_, sink);
    wakeup_ = own_wakeup_.get();
  }
  uv_timer_init(loop_, &sweep_);
  sweep_.data = this;
  started_ = true;
  if (cfg_.udp) {
    uv_udp_init(loop_, &udp_);
    udp_.data = this;
    udp_open_ = true;
    if (int rc = uv_udp_bind(&udp_, reinterpret_cast<const sockaddr*>(&addr), 0); rc != 0) {
      error = "cannot bind UDP " + local.host_port() + ": " + uv_strerror(rc);
      return false;
    }
    sockaddr_storage bound;
    int len = sizeof bound;
    uv_udp_getsockname(&udp_, reinterpret_cast<sockaddr*>(&bound), &len);
    udp_port_ = from_sockaddr(reinterpret_cast<sockaddr*>(&bound), Transport::Udp).port;
    if (cfg_.udp_receive_buffer > 0) {
      int size = cfg_.udp_receive_buffer;
      if (int rc = uv_recv_buffer_size(reinterpret_cast<uv_handle_t*>(&udp_), &size); rc != 0) {
        log(LogLevel::Warn, std::string("UDP receive buffer not enlarged: ") + uv_strerror(rc));
      }
    }
    uv_udp_recv_start(&udp_, on_udp_alloc, on_udp_read);
  }
  if (cfg_.tcp) {
    uv_tcp_init(loop_, &tcp_);
    tcp_.data = this;
    tcp_open_ = true;
    // TCP takes the UDP port when an ephemeral port was asked for, so both share one number.
    if (cfg_.port == 0 && udp_port_ != 0) {
      Endpoint same = local;
      same.port = udp_port_;
      to_sockaddr(same, addr);
    }
    int rc = uv_tcp_bind(&tcp_, reinterpret_cast<const sockaddr*>(&addr), 0);
    if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(&tcp_), 128, on_tcp_connection);
    if (rc != 0) {
      error = "cannot listen on TCP " + local.host_port() + ": " + uv_strerror(rc);
      return false;
    }
    sockaddr_storage bound;
    int len = sizeof bound;
    uv_tcp_getsockname(&tcp_, reinterpret_cast<sockaddr*>(&bound), &len);
    tcp_port_ = from_sockaddr(reinterpret_cast<sockaddr*>(&bound), Transport::Tcp).port;
  }
  uv_timer_start(&sweep_, on_sweep, 1000, 1000);
  reschedule();
  return true;
}

void SipRuntime::stop() {
  if (!started_) return;
  started_ = false;
  if (own_wakeup_) own_wakeup_->close();
  uv_close(reinterpret_cast<uv_handle_t*>(&sweep_), nullptr);
  if (udp_open_) uv_close(reinterpret_cast<uv_handle_t*>(&udp_), nullptr);
  if (tcp_open_) uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), nullptr);
  udp_open_ = tcp_open_ = false;
  std::vector<Connection*> all;
  for (auto& [ep, c] : connections_) all.push_back(c.get());
  for (auto* c : all) close_connection(c);
}

void SipRuntime::reschedule() {
  if (!started_ || wakeup_ == nullptr) return;
  wakeup_->rearm();
}

void SipRuntime::on_sweep(uv_timer_t* t) {
  auto* self = static_cast<SipRuntime*>(t->data);
  Instant now = self->now();
  std::vector<Connection*> idle;
  std::vector<Connection*> stalled;
  for (auto& [ep, c] : self->connections_) {
    if (now > c->handshake_deadline) {
      stalled.push_back(c.get());
    } else if (now - c->last_activity > self->cfg_.tcp_idle_timeout) {
      idle.push_back(c.get());
    }
  }
  for (auto* c : idle) {
    ++self->stats_.connections_idle_closed;
    self->close_connection(c);
  }
  for (auto* c : stalled) {
    ++self->stats_.tls_refused;
    self->log(LogLevel::Warn, "closing " + c->remote.to_string() + ": TLS handshake not finished in time");
    self->close_connection(c, true);
  }
  self->report_lost();
}

void SipRuntime::report_lost() {
  if (lost_.empty()) return;
  // Outside every other call into the sink: the core may send (and so connect) from here.
  std::vector<Endpoint> lost = std::move(lost_);
  lost_.clear();
  const Instant t = now();
  for (const auto& r : lost) sink_->on_connection_lost(r, t);
  reschedule();
}

void SipRuntime::on_udp_alloc(uv_handle_t* h, std::size_t, uv_buf_t* buf) {
  auto* self = static_cast<SipRuntime*>(h->data);
  *buf = uv_buf_init(self->udp_buffer_, sizeof self->udp_buffer_);
}

void SipRuntime::on_udp_read(uv_udp_t* h, ssize_t n, const uv_buf_t* buf, const sockaddr* addr, unsigned flags) {
  auto* self = static_cast<SipRuntime*>(h->data);
  if (n <= 0 || addr == nullptr) return;
  if (flags & UV_UDP_PARTIAL) {
    ++self->stats_.framing_errors;  // larger than any buffer we accept: dropped and counted
    return;
  }
  ++self->stats_.datagrams_in;
  self->stats_.bytes_in += static_cast<std::uint64_t>(n);
  if (self->log_level_ == LogLevel::Debug) {
    self->log(LogLevel::Debug, "recv from " + from_sockaddr(addr, Transport::Udp).to_string() + ":\n" +
                                   printable(std::string_view(buf->base, static_cast<std::size_t>(n))));
  }
  self->sink_->on_datagram(std::string_view(buf->base, static_cast<std::size_t>(n)),
                           from_sockaddr(addr, Transport::Udp), self->now());
  self->reschedule();
}

std::unique_ptr<SipRuntime::Connection> SipRuntime::new_connection() {
  auto c = std::make_unique<Connection>();
  c->owner = this;
  c->framer = sip::StreamFramer(cfg_.limits);
  c->last_activity = now();
  uv_tcp_init(loop_, &c->handle);
  // SIP messages are small and often written back to back (a 100 Trying, then the answer): with
  // Nagle's algorithm the second waits for the peer's delayed ACK, 40 ms on Linux. libuv applies
  // the flag when the socket is created, for outgoing connections.
  uv_tcp_nodelay(&c->handle, 1);
  c->handle.data = c.get();
  return c;
}

SipRuntime::Connection* SipRuntime::add_connection(const Endpoint& remote) {
  auto c = new_connection();
  c->remote = remote;
  Connection* raw = c.get();
  connections_[remote] = std::move(c);
  return raw;
}

void SipRuntime::close_connection(Connection* c, bool lost) {
  if (c->closing) return;
  c->closing = true;
  if (lost && started_) lost_.push_back(c->remote);
  auto it = connections_.find(c->remote);
  if (it != connections_.end() && it->second.get() == c) {
    closing_[c] = std::move(it->second);
    connections_.erase(it);
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&c->handle), [](uv_handle_t* h) {
    auto* conn = static_cast<Connection*>(h->data);
    conn->owner->closing_.erase(conn);  // the handle is closed: the connection can go
  });
}

void SipRuntime::on_tcp_connection(uv_stream_t* server, int status) {
  auto* self = static_cast<SipRuntime*>(server->data);
  if (status < 0) return;
  auto c = self->new_connection();
  Connection* raw = c.get();
  if (uv_accept(server, reinterpret_cast<uv_stream_t*>(&raw->handle)) != 0) {
    self->closing_[raw] = std::move(c);  // not in connections_: close_connection only closes it
    self->close_connection(raw);
    return;
  }
  uv_tcp_nodelay(&raw->handle, 1);  // on the accepted socket itself
  sockaddr_storage peer;
  int len = sizeof peer;
  uv_tcp_getpeername(&raw->handle, reinterpret_cast<sockaddr*>(&peer), &len);
  raw->remote = from_sockaddr(reinterpret_cast<sockaddr*>(&peer), Transport::Tcp);
  raw->connected = true;
  raw->sniffing = self->tls_ctx_ != nullptr;  // TLS or plain SIP: the first byte will tell
  bool over = self->connections_.size() >= self->cfg_.max_connections;
  auto existing = self->connections_.find(raw->remote);
  if (existing != self->connections_.end()) self->close_connection(existing->second.get());
  self->connections_[raw->remote] = std::move(c);
  if (over) {
    ++self->stats_.connections_refused;
    self->log(LogLevel::Warn, "tcp connection from " + raw->remote.host_port() + " refused: connection limit reached");
    self->close_connection(raw);
    return;
  }
  ++self->stats_.connections_accepted;
  uv_read_start(reinterpret_cast<uv_stream_t*>(&raw->handle), on_tcp_alloc, on_tcp_read);
}

void SipRuntime::on_tcp_alloc(uv_handle_t* h, std::size_t, uv_buf_t* buf) {
  auto* c = static_cast<Connection*>(h->data);
  *buf = uv_buf_init(c->read_buffer, sizeof c->read_buffer);
}

void SipRuntime::on_tcp_read(uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
  auto* c = static_cast<Connection*>(s->data);
  SipRuntime* self = c->owner;
  if (n < 0) {
    self->close_connection(c, true);  // closed or reset by the peer
    self->report_lost();
    return;
  }
  if (n == 0) return;
  self->stats_.bytes_in += static_cast<std::uint64_t>(n);
  c->last_activity = self->now();
  const std::string_view bytes(buf->base, static_cast<std::size_t>(n));
  if (c->sniffing) {
    // A TLS connection opens with a handshake record (content type 22); SIP opens with a letter or
    // a keep-alive CRLF. TLS connections are known by a TLS endpoint from here on.
    c->sniffing = false;
    if (bytes.front() == 0x16) {
      auto it = self->connections_.find(c->remote);
      std::unique_ptr<Connection> owned = std::move(it->second);
      self->connections_.erase(it);
      c->remote.transport = Transport::Tls;
      auto existing = self->connections_.find(c->remote);
      if (existing != self->connections_.end()) self->close_connection(existing->second.get());
      self->connections_[c->remote] = std::move(owned);
      self->start_tls(c, true);
    }
  }
  if (c->ssl) {
    self->feed_tls(c, bytes);
  } else {
    self->handle_stream_bytes(c, bytes);
  }
  self->report_lost();
  self->reschedule();
}

void SipRuntime::start_tls(Connection* c, bool server) {
  c->ssl.reset(SSL_new(static_cast<SSL_CTX*>(tls_ctx_.get())));
  SSL_set_bio(c->ssl.get(), BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
  if (server) {
    SSL_set_accept_state(c->ssl.get());
  } else {
    SSL_set_connect_state(c->ssl.get());
  }
  c->handshake_deadline = now() + cfg_.tls->handshake_timeout;
  if (!server) {
    SSL_do_handshake(c->ssl.get());  // the ClientHello
    flush_tls(c);
  }
}

void SipRuntime::flush_tls(Connection* c) {
  BIO* out = SSL_get_wbio(c->ssl.get());
  const std::size_t n = BIO_ctrl_pending(out);
  if (n == 0) return;
  std::string bytes(n, '\0');
  BIO_read(out, bytes.data(), static_cast<int>(n));
  write_raw(c, bytes);
}

bool SipRuntime::finish_handshake(Connection* c) {
  X509* cert = SSL_get1_peer_certificate(c->ssl.get());
  std::string der;
  if (cert != nullptr) {
    const int len = i2d_X509(cert, nullptr);
    if (len > 0) {
      der.resize(static_cast<std::size_t>(len));
      auto* p = reinterpret_cast<unsigned char*>(der.data());
      i2d_X509(cert, &p);
    }
    X509_free(cert);
  }
  c->peer = der.empty() ? std::nullopt : sink_->on_tls_peer(der, c->remote, now());
  if (!c->peer) {
    ++stats_.tls_refused;
    log(LogLevel::Warn, "closing " + c->remote.to_string() + ": TLS peer's certificate refused");
    close_connection(c, true);
    return false;
  }
  ++stats_.tls_handshakes;
  c->tls_ready = true;
  c->handshake_deadline = kInstantMax;
  if (!c->pending.empty()) {
    std::string queued = std::move(c->pending);
    c->pending.clear();
    write_stream(c, queued);
  }
  return true;
}

bool SipRuntime::feed_tls(Connection* c, std::string_view bytes) {
  SSL* ssl = c->ssl.get();
  BIO_write(SSL_get_rbio(ssl), bytes.data(), static_cast<int>(bytes.size()));
  auto failed = [&](int rc, const char* what) {
    const int err = SSL_get_error(ssl, rc);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return false;
    if (err != SSL_ERROR_ZERO_RETURN) {
      if (!c->tls_ready) ++stats_.tls_refused;
      log(LogLevel::Warn, "closing " + c->remote.to_string() + ": TLS " + what + " failed: " + openssl_error());
    }
    flush_tls(c);  // an alert, if OpenSSL wrote one
    close_connection(c, true);
    return true;
  };
  if (!c->tls_ready) {
    const int rc = SSL_do_handshake(ssl);
    if (rc != 1) {
      if (failed(rc, "handshake")) return false;
      flush_tls(c);
      return true;
    }
    flush_tls(c);
    if (!finish_handshake(c)) return false;
  }
  for (;;) {
    const int n = SSL_read(ssl, c->read_buffer, sizeof c->read_buffer);
    if (n <= 0) {
      if (failed(n, "read")) return false;
      break;
    }
    handle_stream_bytes(c, std::string_view(c->read_buffer, static_cast<std::size_t>(n)));
    if (c->closing) return false;
  }
  flush_tls(c);
  return true;
}

void SipRuntime::handle_stream_bytes(Connection* c, std::string_view bytes) {
  c->framer.feed(bytes);
  for (;;) {
    auto item = c->framer.next();
    switch (item.kind) {
      case sip::StreamFramer::Kind::NeedMore: return;
      case sip::StreamFramer::Kind::Ping:
        ++stats_.pings;
        write_stream(c, "\r\n");  // RFC 5626 §3.5.1 pong
        continue;
      case sip::StreamFramer::Kind::Pong:
        ++stats_.pongs;
        sink_->on_pong(c->remote, now());
        break;
      case sip::StreamFramer::Kind::Message:
        if (log_level_ == LogLevel::Debug)
          log(LogLevel::Debug, "recv from " + c->remote.to_string() + ":\n" + item.message->serialize());
        sink_->on_message(*item.message, c->remote, now(), c->peer ? &*c->peer : nullptr);
        break;
      case sip::StreamFramer::Kind::Error:
        ++stats_.framing_errors;
        sink_->on_malformed(item.raw, item.error, c->remote, now());
        break;
    }
    if (c->closing) return;
    if (c->framer.failed()) {
      log(LogLevel::Info, "closing tcp connection from " + c->remote.host_port() + ": framing lost");
      close_connection(c, true);
      return;
    }
  }
}

void SipRuntime::on_connect(uv_connect_t* req, int status) {
  auto* c = static_cast<Connection*>(req->data);
  SipRuntime* self = c->owner;
  if (c->closing) return;
  if (status != 0) {
    ++self->stats_.send_errors;
    self->log(LogLevel::Warn, "tcp connect to " + c->remote.host_port() + " failed: " + uv_strerror(status));
    self->close_connection(c, true);
    self->report_lost();
    return;
  }
  c->connected = true;
  uv_read_start(reinterpret_cast<uv_stream_t*>(&c->handle), on_tcp_alloc, on_tcp_read);
  if (c->remote.transport == Transport::Tls) {
    self->start_tls(c, false);  // what is pending goes once the server's certificate is accepted
    return;
  }
  if (!c->pending.empty()) {
    std::string queued = std::move(c->pending);
    c->pending.clear();
    self->write_stream(c, queued);
  }
}

bool SipRuntime::write_stream(Connection* c, std::string_view bytes) {
  const bool tls = c->remote.transport == Transport::Tls;
  if (!c->connected || (tls && !c->tls_ready)) {
    c->pending.append(bytes);
    return true;
  }
  if (tls) {
    if (SSL_write(c->ssl.get(), bytes.data(), static_cast<int>(bytes.size())) <= 0) {
      ++stats_.send_errors;
      log(LogLevel::Warn, "TLS write to " + c->remote.to_string() + " failed: " + openssl_error());
      return false;
    }
    flush_tls(c);
    return true;
  }
  return write_raw(c, bytes);
}

bool SipRuntime::write_raw(Connection* c, std::string_view bytes) {
  auto* w = new WriteRequest();  // owned by libuv until the callback frees it
  w->data.assign(bytes);
  uv_buf_t b = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
  int rc = uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&c->handle), &b, 1,
                    [](uv_write_t* req, int) { delete reinterpret_cast<WriteRequest*>(req); });
  if (rc != 0) {
    delete w;
    ++stats_.send_errors;
    return false;
  }
  stats_.bytes_out += bytes.size();
  c->last_activity = now();
  return true;
}

std::uint64_t SipRuntime::secure_random() {
  std::uint64_t v = 0;
  randombytes_buf(&v, sizeof v);
  return v;
}

bool SipRuntime::send(const Endpoint& to, std::string_view bytes) {
  if (!started_) return false;
  if (log_level_ == LogLevel::Debug) log(LogLevel::Debug, "send to " + to.to_string() + ":\n" + printable(bytes));
  if (to.transport == Transport::Udp) {
    if (!udp_open_) return false;
    sockaddr_storage addr;
    if (!to_sockaddr(to, addr)) return false;
    uv_buf_t b = uv_buf_init(const_cast<char*>(bytes.data()), static_cast<unsigned>(bytes.size()));
    int rc = uv_udp_try_send(&udp_, &b, 1, reinterpret_cast<const sockaddr*>(&addr));
    if (rc == UV_EAGAIN) {
      auto* r = new UdpSendRequest();  // owned by libuv until the callback frees it
      r->data.assign(bytes);
      b = uv_buf_init(r->data.data(), static_cast<unsigned>(r->data.size()));
      rc = uv_udp_send(&r->req, &udp_, &b, 1, reinterpret_cast<const sockaddr*>(&addr),
                       [](uv_udp_send_t* req, int) { delete reinterpret_cast<UdpSendRequest*>(req); });
      if (rc != 0) delete r;
    }
    if (rc < 0) {
      ++stats_.send_errors;
      return false;
    }
    ++stats_.datagrams_out;
    stats_.bytes_out += bytes.size();
    return true;
  }
  if (to.transport == Transport::Tls && !tls_ctx_) return false;  // no key and certificate to speak TLS with
  auto it = connections_.find(to);
  Connection* c = it == connections_.end() ? nullptr : it->second.get();
  if (c == nullptr) {
    if (connections_.size() >= cfg_.max_connections) {
      ++stats_.connections_refused;
      return false;
    }
    sockaddr_storage addr;
    if (!to_sockaddr(to, addr)) return false;
    c = add_connection(to);
    c->connect_req.data = c;
    if (uv_tcp_connect(&c->connect_req, &c->handle, reinterpret_cast<const sockaddr*>(&addr), on_connect) != 0) {
      close_connection(c);
      ++stats_.send_errors;
      return false;
    }
    ++stats_.connections_opened;
  }
  if (!write_stream(c, bytes)) return false;
  if (bytes == "\r\n\r\n") {
    c->framer.expect_pong();  // a keep-alive ping of the core's (RFC 5626 §4.4.1): its pong is reported
    return true;
  }
  ++stats_.stream_messages_out;
  return true;
}

}  // namespace p2psip::runtime
