#include "tools/node_identity.hpp"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>

#include "node/proxy/registrar.hpp"
#include "tools/node_command.hpp"
#include "tools/sip_commands.hpp"

namespace p2psip::tools {

namespace fs = std::filesystem;

namespace {

bool read_named(const fs::path& path, std::string& out, std::string& error) {
  if (read_file(path.string(), out, error)) return true;
  error = path.string() + ": " + error;
  return false;
}

/// KEY and CERT in `dir` (key.pem, cert.pem), as one identity.
bool load_identity_dir(const fs::path& dir, security::Identity& out, std::string& error) {
  std::string key, cert;
  if (!read_named(dir / "key.pem", key, error) || !read_named(dir / "cert.pem", cert, error)) return false;
  auto id = security::Identity::from_pem(key, cert);
  if (!id) {
    error = dir.string() + ": " + id.error();
    return false;
  }
  out = *id;
  return true;
}

bool write_new(const fs::path& path, const std::string& text, mode_t mode, std::string& error) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, mode);
  if (fd < 0 || ::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    error = path.string() + ": " + std::strerror(errno);
    if (fd >= 0) ::close(fd);
    return false;
  }
  return ::close(fd) == 0;
}

/// A development identity: self-signed, kept in `dir` when given (made there on first start).
bool development_identity(const std::string& dir, const std::string& overlay, security::Identity& out,
                          std::string& error) {
  const fs::path d(dir);
  if (!dir.empty() && fs::exists(d / "key.pem")) return load_identity_dir(d, out, error);
  if (sodium_init() < 0) std::abort();
  security::Seed seed{};
  randombytes_buf(seed.data(), seed.size());
  security::KeyPair key = security::KeyPair::from_seed(seed);
  std::uint64_t serial = 0;
  randombytes_buf(&serial, sizeof serial);
  const std::int64_t now = std::time(nullptr);
  auto cert = security::self_signed_node(key, overlay, serial >> 1 | 1, {now - 300, now + 10LL * 365 * 86400});
  if (!cert) {
    error = cert.error();
    return false;
  }
  out = security::Identity{key, *cert};
  if (dir.empty()) return true;
  std::error_code ec;
  fs::create_directories(d, ec);
  if (ec) {
    error = "cannot create --data-dir " + dir + ": " + ec.message();
    return false;
  }
  return write_new(d / "key.pem", security::private_key_pem(key), 0600, error) &&
         write_new(d / "cert.pem", cert->pem(), 0644, error);
}

}  // namespace

bool load_node_identity(const NodeOptions& o, NodeIdentity& out, std::string& error) {
  const std::int64_t now = std::time(nullptr);
  const bool enrolled = !o.identity.empty() || !o.trust.empty();
  if (enrolled && (o.identity.empty() || o.trust.empty())) {
    error = "--identity DIR and --trust CAFILE go together (the node's certificate and the overlay root)";
    return false;
  }
  if (enrolled && o.dev) {
    error = "--dev (self-signed, no CA) and --identity/--trust exclude each other";
    return false;
  }
  if (!enrolled && !o.dev) {
    error =
        "give --identity DIR and --trust CAFILE (a node enrolled with 'p2psip ca issue'), or --dev for "
        "development mode (self-signed identities, no CA: anyone can join)";
    return false;
  }
  if (!o.users.empty() && o.dev) {
    error = "--users needs --identity and --trust (development mode registers any user)";
    return false;
  }

  if (o.dev) {
    out.development = true;
    out.overlay = o.overlay.empty() ? "p2psip.local" : o.overlay;
    if (!security::valid_overlay_name(out.overlay)) {
      error = "--overlay must be a host-like name (letters, digits, '.', '-')";
      return false;
    }
    if (!development_identity(o.data_dir, out.overlay, out.self, error)) return false;
    out.trust = security::TrustAnchor::self_signed_mode(out.overlay);
  } else {
    std::string root_pem;
    if (!read_named(o.trust, root_pem, error)) return false;
    auto root = security::Certificate::from_pem(root_pem);
    if (!root || root->info().kind != security::CertKind::Root) {
      error =
          "--trust " + o.trust + ": " + (root ? std::string("not an overlay root (no CA certificate)") : root.error());
      return false;
    }
    if (!load_identity_dir(o.identity, out.self, error)) return false;
    out.overlay = root->info().overlay;
    if (!o.overlay.empty() && o.overlay != out.overlay) {
      error = "--overlay " + o.overlay + " but --trust " + o.trust + " is the root of overlay " + out.overlay;
      return false;
    }
    out.trust = security::TrustAnchor::ca(*root);
  }
  const auto v = out.trust->verify(out.self.cert, security::CertKind::Node, now);
  if (!v.ok()) {
    error = "the node's certificate (" +
            (o.dev && o.data_dir.empty() ? std::string("made now")
             : o.dev                     ? o.data_dir
                                         : o.identity) +
            ") is refused: " + std::string(security::to_string(v.error)) + " (" + v.detail + ")";
    return false;
  }

  if (!o.users.empty()) {
    std::error_code ec;
    fs::directory_iterator it(o.users, ec);
    if (ec) {
      error = "--users " + o.users + ": " + ec.message();
      return false;
    }
    for (const auto& entry : it) {
      if (!entry.is_directory()) continue;
      security::Identity user;
      if (!load_identity_dir(entry.path(), user, error)) return false;
      const auto uv = out.trust->verify(user.cert, security::CertKind::User, now);
      if (!uv.ok()) {
        error = entry.path().string() +
                ": the user's certificate is refused: " + std::string(security::to_string(uv.error)) + " (" +
                uv.detail + ")";
        return false;
      }
      const fs::path digest = entry.path() / "digest";
      if (fs::exists(digest)) {
        std::string text;
        if (!read_named(digest, text, error)) return false;
        auto secret = proxy::parse_digest_file(text);
        if (!secret) {
          error = digest.string() + ": " + secret.error();
          return false;
        }
        out.digest.emplace(std::string(proxy::Registrar::user_of(user.cert.info().aor)), *secret);
      }
      out.users.push_back(user);
    }
  }
  return true;
}

}  // namespace p2psip::tools
