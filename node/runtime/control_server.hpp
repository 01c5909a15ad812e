// The node's control port: a small HTTP/1.1 server on libuv, for loopback use by `p2psip status`,
// `put`, `get` and `lookup`. One request per connection; the answer may come later (after an overlay
// lookup), or never if the client has gone.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>

#include "core/address.hpp"

namespace p2psip::runtime {

struct HttpRequest {
  std::string method;
  std::string path;
  std::map<std::string, std::string> query;  ///< percent-decoded
  std::string body;
};
struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
};
using HttpResponder = std::function<void(const HttpResponse&)>;
using HttpHandler = std::function<void(const HttpRequest&, HttpResponder)>;

/// Percent-decoding of a URL component ('+' is a space in queries).
std::string url_decode(std::string_view s);
/// Percent-encoding of everything but unreserved characters.
std::string url_encode(std::string_view s);
/// A JSON answer {"error": what}.
HttpResponse error_response(int status, const std::string& what);

class ControlServer {
 public:
  ControlServer(uv_loop_t* loop, Endpoint listen, HttpHandler handler, std::size_t max_body = 1 << 20);
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  bool start(std::string& error);
  void stop();
  [[nodiscard]] std::uint16_t port() const { return port_; }

 private:
  struct Connection;
  static void on_connection(uv_stream_t* server, int status);
  void on_bytes(Connection* c, std::string_view bytes);
  void finish(std::uint64_t id, const HttpResponse& r);
  void close(Connection* c);

  uv_loop_t* loop_;
  Endpoint listen_;
  HttpHandler handler_;
  std::size_t max_body_;
  uv_tcp_t server_{};
  bool open_ = false;
  std::uint16_t port_ = 0;
  std::uint64_t next_id_ = 1;
  std::unordered_map<std::uint64_t, std::unique_ptr<Connection>> connections_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace p2psip::runtime
