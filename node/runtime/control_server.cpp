#include "node/runtime/control_server.hpp"

#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

#include "node/runtime/sip_runtime.hpp"

namespace p2psip::runtime {

struct ControlServer::Connection {
  uv_tcp_t handle{};
  ControlServer* owner = nullptr;
  std::uint64_t id = 0;
  std::string in;
  bool dispatched = false;
  bool closing = false;
  char buffer[4096];
};

namespace {
struct Write {
  uv_write_t req{};
  std::string data;
};
int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
const char* reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Payload Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
  }
}
}  // namespace

HttpResponse error_response(int status, const std::string& what) {
  return HttpResponse{status, "application/json", nlohmann::json{{"error", what}}.dump()};
}

std::string url_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2])));
      i += 2;
    } else if (s[i] == '+') {
      out.push_back(' ');
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::string url_encode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
        c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

ControlServer::ControlServer(uv_loop_t* loop, Endpoint listen, HttpHandler handler, std::size_t max_body)
    : loop_(loop), listen_(listen), handler_(std::move(handler)), max_body_(max_body) {}

ControlServer::~ControlServer() {
  *alive_ = false;
}

bool ControlServer::start(std::string& error) {
  sockaddr_storage addr;
  if (!to_sockaddr(listen_, addr)) {
    error = "invalid control address " + listen_.host_port();
    return false;
  }
  uv_tcp_init(loop_, &server_);
  server_.data = this;
  open_ = true;
  int rc = uv_tcp_bind(&server_, reinterpret_cast<const sockaddr*>(&addr), 0);
  if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(&server_), 64, on_connection);
  if (rc != 0) {
    error = "cannot listen on control " + listen_.host_port() + ": " + uv_strerror(rc);
    return false;
  }
  sockaddr_storage bound;
  int len = sizeof bound;
  uv_tcp_getsockname(&server_, reinterpret_cast<sockaddr*>(&bound), &len);
  port_ = from_sockaddr(reinterpret_cast<sockaddr*>(&bound), Transport::Tcp).port;
  return true;
}

void ControlServer::stop() {
  if (open_) uv_close(reinterpret_cast<uv_handle_t*>(&server_), nullptr);
  open_ = false;
  std::vector<Connection*> all;
  for (auto& [id, c] : connections_) all.push_back(c.get());
  for (auto* c : all) close(c);
}

void ControlServer::on_connection(uv_stream_t* server, int status) {
  auto* self = static_cast<ControlServer*>(server->data);
  if (status < 0) return;
  auto c = std::make_unique<Connection>();
  c->owner = self;
  c->id = self->next_id_++;
  uv_tcp_init(self->loop_, &c->handle);
  c->handle.data = c.get();
  Connection* raw = c.get();
  self->connections_[raw->id] = std::move(c);
  if (uv_accept(server, reinterpret_cast<uv_stream_t*>(&raw->handle)) != 0) {
    self->close(raw);
    return;
  }
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(&raw->handle),
      [](uv_handle_t* h, std::size_t, uv_buf_t* buf) {
        auto* conn = static_cast<Connection*>(h->data);
        *buf = uv_buf_init(conn->buffer, sizeof conn->buffer);
      },
      [](uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
        auto* conn = static_cast<Connection*>(s->data);
        if (n < 0) {
          conn->owner->close(conn);
          return;
        }
        if (n > 0) conn->owner->on_bytes(conn, std::string_view(buf->base, static_cast<std::size_t>(n)));
      });
}

void ControlServer::on_bytes(Connection* c, std::string_view bytes) {
  if (c->dispatched) return;
  c->in.append(bytes);
  std::size_t head_end = c->in.find("\r\n\r\n");
  if (head_end == std::string::npos) {
    if (c->in.size() > 16384) finish(c->id, error_response(413, "header too large"));
    return;
  }
  std::string_view head(c->in.data(), head_end);
  std::size_t line_end = head.find("\r\n");
  std::string_view line = head.substr(0, line_end);
  std::size_t sp1 = line.find(' ');
  std::size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) {
    finish(c->id, error_response(400, "malformed request line"));
    return;
  }
  std::size_t content_length = 0;
  std::size_t pos = line_end;
  while (pos != std::string_view::npos && pos < head.size()) {
    std::size_t next = head.find("\r\n", pos + 2);
    std::string_view field =
        head.substr(pos + 2, next == std::string_view::npos ? std::string_view::npos : next - pos - 2);
    if (field.size() > 15 && strncasecmp(field.data(), "content-length:", 15) == 0) {
      content_length = static_cast<std::size_t>(std::strtoull(std::string(field.substr(15)).c_str(), nullptr, 10));
    }
    pos = next;
  }
  if (content_length > max_body_) {
    finish(c->id, error_response(413, "body too large"));
    return;
  }
  if (c->in.size() < head_end + 4 + content_length) return;
  HttpRequest req;
  req.method = std::string(line.substr(0, sp1));
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::size_t q = target.find('?');
  req.path = url_decode(target.substr(0, q));
  if (q != std::string_view::npos) {
    std::string_view qs = target.substr(q + 1);
    while (!qs.empty()) {
      std::size_t amp = qs.find('&');
      std::string_view kv = qs.substr(0, amp);
      std::size_t eq = kv.find('=');
      req.query[url_decode(kv.substr(0, eq))] = eq == std::string_view::npos ? "" : url_decode(kv.substr(eq + 1));
      if (amp == std::string_view::npos) break;
      qs = qs.substr(amp + 1);
    }
  }
  req.body = c->in.substr(head_end + 4, content_length);
  c->dispatched = true;
  std::weak_ptr<bool> alive = alive_;
  std::uint64_t id = c->id;
  handler_(req, [this, alive, id](const HttpResponse& r) {
    if (auto a = alive.lock(); a && *a) finish(id, r);
  });
}

void ControlServer::finish(std::uint64_t id, const HttpResponse& r) {
  auto it = connections_.find(id);
  if (it == connections_.end() || it->second->closing) return;  // the client left first
  Connection* c = it->second.get();
  c->dispatched = true;
  auto* w = new Write();  // owned by libuv until the callback frees it
  char head[256];
  std::snprintf(head, sizeof head,
                "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", r.status,
                reason(r.status), r.content_type.c_str(), r.body.size());
  w->data = head + r.body;
  w->req.data = c;
  uv_buf_t b = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
  if (uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&c->handle), &b, 1, [](uv_write_t* req, int) {
        auto* conn = static_cast<Connection*>(req->data);
        delete reinterpret_cast<Write*>(req);
        conn->owner->close(conn);
      }) != 0) {
    delete w;
    close(c);
  }
}

void ControlServer::close(Connection* c) {
  if (c->closing) return;
  c->closing = true;
  uv_close(reinterpret_cast<uv_handle_t*>(&c->handle), [](uv_handle_t* h) {
    auto* conn = static_cast<Connection*>(h->data);
    conn->owner->connections_.erase(conn->id);
  });
}

}  // namespace p2psip::runtime
