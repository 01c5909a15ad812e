#include "tools/identity_commands.hpp"

#include <fcntl.h>
#include <sodium.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <vector>

#include "core/hex.hpp"
#include "node/proxy/digest.hpp"
#include "node/proxy/registrar.hpp"
#include "security/certificate.hpp"
#include "tools/sip_commands.hpp"

namespace p2psip::tools {

namespace fs = std::filesystem;
using security::Certificate;
using security::CertKind;
using security::KeyPair;

namespace {

int fail(const char* cmd, const std::string& message) {
  std::fprintf(stderr, "p2psip %s: %s\n", cmd, message.c_str());
  return 1;
}
/// A flag's value is wrong: exit 2, as for the other subcommands.
int usage(const char* cmd, const std::string& message) {
  std::fprintf(stderr, "p2psip %s: %s\n", cmd, message.c_str());
  return 2;
}

std::int64_t now_s() {
  return static_cast<std::int64_t>(std::time(nullptr));
}

std::string utc(std::int64_t t) {
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

KeyPair fresh_key() {
  if (sodium_init() < 0) std::abort();
  security::Seed seed{};
  randombytes_buf(seed.data(), seed.size());
  KeyPair k = KeyPair::from_seed(seed);
  sodium_memzero(seed.data(), seed.size());
  return k;
}

std::uint64_t fresh_serial() {
  if (sodium_init() < 0) std::abort();
  std::uint64_t s = 0;
  randombytes_buf(&s, sizeof s);
  return (s >> 1) | 1;  // positive and never 0 (RFC 5280 §4.1.2.2)
}

/// Writes `text` to `path` with `mode`; with `exclusive`, refuses a file that exists.
bool write_file(const fs::path& path, const std::string& text, mode_t mode, bool exclusive, std::string& error) {
  int flags = O_WRONLY | O_CREAT | (exclusive ? O_EXCL : O_TRUNC);
  int fd = ::open(path.c_str(), flags, mode);
  if (fd < 0) {
    error = path.string() + ": " + std::strerror(errno);
    return false;
  }
  std::size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      error = path.string() + ": " + std::strerror(errno);
      ::close(fd);
      return false;
    }
    done += static_cast<std::size_t>(n);
  }
  if (::close(fd) != 0) {
    error = path.string() + ": " + std::strerror(errno);
    return false;
  }
  return true;
}

/// read_file with the path in the error.
bool read_named(const std::string& path, std::string& out, std::string& error) {
  if (read_file(path, out, error)) return true;
  error = path + ": " + error;
  return false;
}

bool make_dir(const fs::path& dir, std::string& error) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) error = dir.string() + ": " + ec.message();
  return !ec;
}

std::optional<Certificate> load_cert(const fs::path& path, std::string& error) {
  std::string text;
  if (!read_named(path.string(), text, error)) return std::nullopt;
  auto c = Certificate::from_pem(text);
  if (!c) {
    error = path.string() + ": " + c.error();
    return std::nullopt;
  }
  return *c;
}

std::optional<KeyPair> load_key(const fs::path& path, std::string& error) {
  std::string text;
  if (!read_named(path.string(), text, error)) return std::nullopt;
  auto k = security::parse_private_key(text);
  if (!k) {
    error = path.string() + ": " + k.error();
    return std::nullopt;
  }
  return *k;
}

std::string identity_of(const security::CertInfo& i) {
  switch (i.kind) {
    case CertKind::Root: return "root of overlay " + i.overlay;
    case CertKind::Node: return "node " + i.node_id->hex();
    case CertKind::User: return "user " + i.aor;
  }
  return "?";
}

/// One line of the CA's record of what it issued.
struct Issued {
  std::string serial, kind, identity, public_key, not_before, not_after, issued_at;
};
std::vector<Issued> read_index(const std::string& text) {
  std::vector<Issued> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> f;
    std::size_t start = 0;
    for (std::size_t tab; (tab = line.find('\t', start)) != std::string::npos; start = tab + 1) {
      f.push_back(line.substr(start, tab - start));
    }
    f.push_back(line.substr(start));
    if (f.size() >= 7) out.push_back(Issued{f[0], f[1], f[2], f[3], f[4], f[5], f[6]});
  }
  return out;
}

constexpr const char* kIndexHeader = "# serial\tkind\tidentity\tpublic_key\tnot_before\tnot_after\tissued_at\n";

}  // namespace

int ca_init(const CaInitOptions& o) {
  const char* cmd = "ca init";
  if (!security::valid_overlay_name(o.overlay)) {
    return usage(cmd, "--overlay '" + o.overlay + "' is not a valid overlay name (letters, digits, '-', '.')");
  }
  if (o.days < 1 || o.days > 36500) return usage(cmd, "--days must be 1 to 36500");
  fs::path dir(o.out);
  std::string error;
  if (fs::exists(dir / "ca.key") || fs::exists(dir / "ca.crt")) {
    return fail(cmd, dir.string() + " already holds a CA (ca.key or ca.crt); choose another --out");
  }
  if (!make_dir(dir, error)) return fail(cmd, error);
  KeyPair key = fresh_key();
  const std::int64_t now = now_s();
  auto root = security::make_root(key, o.overlay, fresh_serial(), {now - 300, now + std::int64_t{o.days} * 86400});
  if (!root) return fail(cmd, root.error());
  if (!write_file(dir / "ca.key", security::private_key_pem(key), 0600, true, error) ||
      !write_file(dir / "ca.crt", root->pem(), 0644, true, error) ||
      !write_file(dir / "issued.tsv", kIndexHeader, 0644, true, error)) {
    return fail(cmd, error);
  }
  std::printf("overlay %s: root certificate %s (valid until %s)\n", o.overlay.c_str(), (dir / "ca.crt").c_str(),
              utc(root->info().not_after).c_str());
  std::printf("keep %s secret: whoever holds it can enroll nodes and users\n", (dir / "ca.key").c_str());
  return 0;
}

int ca_issue(const CaIssueOptions& o) {
  const char* cmd = "ca issue";
  if (o.node && !o.user.empty()) return usage(cmd, "--node and --user exclude each other");
  if (!o.node && o.user.empty() && o.csr.empty()) return usage(cmd, "give --node or --user NAME (or --csr FILE)");
  if (!o.user.empty() && !security::valid_user_name(o.user)) {
    return usage(cmd, "'" + o.user + "' is not a valid user name (letters, digits and -_.!~*'(), at most 64)");
  }
  if (o.days < 1 || o.days > 36500) return usage(cmd, "--days must be 1 to 36500");
  if (o.count < 1 || o.count > 1000000) return usage(cmd, "--count must be 1 to 1000000");
  if (o.count > 1 && !o.csr.empty()) return usage(cmd, "--count makes keys itself: it excludes --csr");
  if (o.count > 1 && !o.user.empty() && !security::valid_user_name(o.user + std::to_string(o.count))) {
    return usage(cmd, "--user '" + o.user + "' with --count makes names that are too long");
  }
  fs::path ca_dir(o.ca);
  std::string error;
  auto ca_key = load_key(ca_dir / "ca.key", error);
  if (!ca_key) return fail(cmd, error);
  auto root = load_cert(ca_dir / "ca.crt", error);
  if (!root) return fail(cmd, error);
  if (root->info().kind != CertKind::Root || root->info().public_key != ca_key->public_key) {
    return fail(cmd, (ca_dir / "ca.key").string() + " and ca.crt are not the key and root of one CA");
  }
  const std::string& overlay = root->info().overlay;

  // What a request asks for, checked against the flags.
  CertKind kind = o.node ? CertKind::Node : CertKind::User;
  std::optional<security::CertRequest> req;
  if (!o.csr.empty()) {
    std::string text;
    if (!read_named(o.csr, text, error)) return fail(cmd, error);
    auto parsed = security::parse_request(text);
    if (!parsed) return fail(cmd, o.csr + ": " + parsed.error());
    if (parsed->overlay != overlay) {
      return fail(cmd, o.csr + " asks to join overlay " + parsed->overlay + ", this CA's is " + overlay);
    }
    if ((o.node && parsed->kind != CertKind::Node) || (!o.user.empty() && parsed->kind != CertKind::User)) {
      return fail(cmd, o.csr + " is a " + (parsed->kind == CertKind::Node ? "node" : "user") + " request");
    }
    if (!o.user.empty() && parsed->user != o.user) {
      return fail(cmd, o.csr + " asks for user " + parsed->user + ", not " + o.user);
    }
    kind = parsed->kind;
    req = *parsed;
  }

  // The record of what was issued, locked while it is read and extended: one user, one key.
  fs::path index = ca_dir / "issued.tsv";
  int fd = ::open(index.c_str(), O_RDWR | O_APPEND);
  if (fd < 0) return fail(cmd, index.string() + ": " + std::strerror(errno));
  struct Unlock {
    int fd;
    ~Unlock() { ::close(fd); }
  } unlock{fd};
  if (::flock(fd, LOCK_EX) != 0) return fail(cmd, index.string() + ": " + std::strerror(errno));
  std::string text;
  if (!read_named(index.string(), text, error)) return fail(cmd, error);
  std::map<std::string, Issued> users_issued;  // the latest certificate of each user
  for (auto& rec : read_index(text)) {
    if (rec.kind == "user") users_issued[rec.identity] = std::move(rec);
  }

  const std::int64_t now = now_s();
  const security::Validity v{now - 300, now + std::int64_t{o.days} * 86400};
  // One certificate: for the request's key, or a key made here; into `out`.
  auto issue_one = [&](const std::string& user, const fs::path& out) -> int {
    std::optional<KeyPair> generated;
    security::PublicKey subject{};
    if (req) {
      subject = req->public_key;
    } else {
      generated = fresh_key();
      subject = generated->public_key;
    }
    const std::string subject_hex = hex_bytes(subject.data(), subject.size());
    const std::string identity =
        kind == CertKind::User ? "sip:" + user + "@" + overlay : security::node_id_of(subject).hex();
    if (kind == CertKind::User) {
      auto prior = users_issued.find(identity);
      if (prior != users_issued.end() && prior->second.public_key != subject_hex) {
        return fail(cmd, "user " + identity + " was already issued to another key (serial " + prior->second.serial +
                             ", " + prior->second.issued_at + "); refused");
      }
    }
    const std::uint64_t serial = fresh_serial();
    auto cert = kind == CertKind::Node ? security::issue_node(*ca_key, *root, subject, serial, v)
                                       : security::issue_user(*ca_key, *root, subject, user, serial, v);
    if (!cert) return fail(cmd, cert.error());
    if (!make_dir(out, error)) return fail(cmd, error);
    if (generated && !write_file(out / "key.pem", security::private_key_pem(*generated), 0600, true, error)) {
      return fail(cmd, error + " (an identity is already there; choose another --out)");
    }
    if (!write_file(out / "cert.pem", cert->pem(), 0644, false, error) ||
        !write_file(out / "ca.crt", root->pem(), 0644, false, error)) {
      return fail(cmd, error);
    }
    std::string line = std::to_string(serial) + "\t" + (kind == CertKind::Node ? "node" : "user") + "\t" + identity +
                       "\t" + subject_hex + "\t" + utc(v.not_before) + "\t" + utc(v.not_after) + "\t" + utc(now) + "\n";
    if (::write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
      return fail(cmd, index.string() + ": " + std::strerror(errno));
    }
    if (kind == CertKind::User)
      users_issued[identity] = Issued{std::to_string(serial), "user", identity, subject_hex, {}, {}, utc(now)};
    if (o.count == 1) {
      std::printf("issued %s (serial %llu, valid until %s): %s\n", identity_of(cert->info()).c_str(),
                  static_cast<unsigned long long>(serial), utc(v.not_after).c_str(), (out / "cert.pem").c_str());
    }
    return 0;
  };
  if (o.count == 1) return issue_one(req ? req->user : o.user, o.out);
  // --count N: users PREFIX1..PREFIXN (or N nodes), each in its own directory under --out.
  for (unsigned k = 1; k <= o.count; ++k) {
    const std::string name = (o.node ? std::string("node") : o.user) + std::to_string(k);
    if (int rc = issue_one(name, fs::path(o.out) / name); rc != 0) return rc;
  }
  std::printf("issued %u %s certificates into %s/%s1 .. %s%u\n", o.count, o.node ? "node" : "user", o.out.c_str(),
              o.node ? "node" : o.user.c_str(), o.node ? "node" : o.user.c_str(), o.count);
  return 0;
}

int identity_new(const IdentityNewOptions& o) {
  const char* cmd = "identity new";
  if (!security::valid_overlay_name(o.overlay)) {
    return usage(cmd, "--overlay '" + o.overlay + "' is not a valid overlay name (letters, digits, '-', '.')");
  }
  if (o.node == !o.user.empty()) return usage(cmd, "give --node or --user NAME");
  if (!o.user.empty() && !security::valid_user_name(o.user)) {
    return usage(cmd, "'" + o.user + "' is not a valid user name (letters, digits and -_.!~*'(), at most 64)");
  }
  if (o.self_signed && !o.node) return usage(cmd, "--self-signed makes node identities only (development mode)");
  if (o.days < 1 || o.days > 36500) return usage(cmd, "--days must be 1 to 36500");
  fs::path out(o.out);
  std::string error;
  if (!make_dir(out, error)) return fail(cmd, error);
  KeyPair key = fresh_key();
  if (!write_file(out / "key.pem", security::private_key_pem(key), 0600, true, error)) {
    return fail(cmd, error + " (an identity is already there; choose another --out)");
  }
  const std::string node_id = security::node_id_of(key.public_key).hex();
  if (o.self_signed) {
    const std::int64_t now = now_s();
    auto cert =
        security::self_signed_node(key, o.overlay, fresh_serial(), {now - 300, now + std::int64_t{o.days} * 86400});
    if (!cert) return fail(cmd, cert.error());
    if (!write_file(out / "cert.pem", cert->pem(), 0644, false, error)) return fail(cmd, error);
    std::printf("node %s, self-signed (development mode: no CA vouches for it): %s\n", node_id.c_str(),
                (out / "cert.pem").c_str());
    return 0;
  }
  security::CertRequest req{o.node ? CertKind::Node : CertKind::User, o.overlay, o.user, key.public_key};
  if (!write_file(out / "request.csr", security::make_request(key, req), 0644, false, error)) return fail(cmd, error);
  if (o.node) {
    std::printf("node %s: key %s, request %s\n", node_id.c_str(), (out / "key.pem").c_str(),
                (out / "request.csr").c_str());
  } else {
    std::printf("user sip:%s@%s: key %s, request %s\n", o.user.c_str(), o.overlay.c_str(), (out / "key.pem").c_str(),
                (out / "request.csr").c_str());
  }
  std::printf("the CA enrolls it with: p2psip ca issue --ca CADIR --csr %s --out %s\n", (out / "request.csr").c_str(),
              o.out.c_str());
  return 0;
}

int identity_password(const IdentityPasswordOptions& o) {
  const char* cmd = "identity password";
  std::string error;
  auto cert = load_cert(fs::path(o.dir) / "cert.pem", error);
  if (!cert) return fail(cmd, error);
  const auto& info = cert->info();
  if (info.kind != CertKind::User) return fail(cmd, o.dir + "/cert.pem is not a user certificate");
  std::string password;
  if (o.password_file.empty()) {
    if (!std::getline(std::cin, password)) return fail(cmd, "no password on standard input");
  } else {
    std::string text;
    if (!read_named(o.password_file, text, error)) return fail(cmd, error);
    password = text.substr(0, text.find('\n'));
  }
  if (!password.empty() && password.back() == '\r') password.pop_back();
  if (password.size() < 8) return usage(cmd, "the password must have at least 8 characters");
  const std::string user(proxy::Registrar::user_of(info.aor));
  const auto secret = proxy::DigestSecret::of(user, info.overlay, password);
  sodium_memzero(password.data(), password.size());
  const fs::path out = fs::path(o.dir) / "digest";
  if (!write_file(out, proxy::format_digest_file(info.aor, info.overlay, secret), 0600, false, error)) {
    return fail(cmd, error);
  }
  ::chmod(out.c_str(), 0600);  // a file that existed keeps its mode otherwise
  std::printf("%s: digest secrets of %s (realm %s) written; phones log in as '%s'\n", out.c_str(), info.aor.c_str(),
              info.overlay.c_str(), user.c_str());
  return 0;
}

int identity_show(const IdentityShowOptions& o) {
  const char* cmd = "identity show";
  fs::path path(o.path);
  if (fs::is_directory(path)) path /= "cert.pem";
  std::string error;
  auto cert = load_cert(path, error);
  if (!cert) return fail(cmd, error);
  const auto& i = cert->info();
  std::printf("%s\noverlay     %s\nkey         ed25519 %s\nserial      %llu\nvalid       %s to %s\nissuer      %s\n",
              identity_of(i).c_str(), i.overlay.c_str(), hex_bytes(i.public_key.data(), i.public_key.size()).c_str(),
              static_cast<unsigned long long>(i.serial), utc(i.not_before).c_str(), utc(i.not_after).c_str(),
              i.self_signed ? "itself (self-signed)" : "the overlay root");
  if (o.trust.empty()) return 0;
  auto root = load_cert(o.trust, error);
  if (!root) return fail(cmd, error);
  if (root->info().kind != CertKind::Root) return fail(cmd, o.trust + " is not an overlay root");
  auto anchor = security::TrustAnchor::ca(*root);
  auto kind = i.kind == CertKind::User ? CertKind::User : CertKind::Node;
  auto verdict = anchor.verify(*cert, kind, now_s());
  if (!verdict.ok()) {
    std::printf("check       REFUSED: %s (%s)\n", std::string(security::to_string(verdict.error)).c_str(),
                verdict.detail.c_str());
    return 1;
  }
  std::printf("check       valid now under %s\n", o.trust.c_str());
  return 0;
}

}  // namespace p2psip::tools
