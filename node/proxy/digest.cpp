#include "node/proxy/digest.hpp"

#include <openssl/evp.h>
#include <sodium.h>

#include <algorithm>
#include <array>

#include "core/hex.hpp"
#include "node/sip/headers.hpp"
#include "node/sip/scanner.hpp"

namespace p2psip::proxy {

std::string_view algorithm_name(DigestAlgorithm a) {
  return a == DigestAlgorithm::Md5 ? "MD5" : "SHA-256";
}

std::optional<DigestAlgorithm> algorithm_from_name(std::string_view name) {
  if (sip::iequals(name, "MD5")) return DigestAlgorithm::Md5;
  if (sip::iequals(name, "SHA-256")) return DigestAlgorithm::Sha256;
  return std::nullopt;
}

std::optional<std::vector<DigestAlgorithm>> algorithms_from_list(std::string_view list) {
  std::vector<DigestAlgorithm> out;
  while (!list.empty()) {
    const auto comma = list.find(',');
    const auto a = algorithm_from_name(list.substr(0, comma));
    if (!a || std::find(out.begin(), out.end(), *a) != out.end()) return std::nullopt;
    out.push_back(*a);
    list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
  }
  if (out.empty()) return std::nullopt;
  return out;
}

std::string digest_hash(DigestAlgorithm a, std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, a == DigestAlgorithm::Md5 ? EVP_md5() : EVP_sha256(), nullptr);
  return hex_bytes(md, len);
}

std::string digest_ha1(DigestAlgorithm a, std::string_view user, std::string_view realm, std::string_view password) {
  std::string in;
  in.append(user).append(":").append(realm).append(":").append(password);
  return digest_hash(a, in);
}

std::string digest_response(DigestAlgorithm a, std::string_view ha1, std::string_view nonce, std::string_view method,
                            std::string_view uri, std::string_view qop, std::string_view nc, std::string_view cnonce) {
  std::string a2;
  a2.append(method).append(":").append(uri);
  const std::string ha2 = digest_hash(a, a2);
  std::string in;
  in.append(ha1).append(":").append(nonce).append(":");
  if (!qop.empty()) in.append(nc).append(":").append(cnonce).append(":").append(qop).append(":");
  in.append(ha2);
  return digest_hash(a, in);
}

DigestSecret DigestSecret::of(std::string_view user, std::string_view realm, std::string_view password) {
  return DigestSecret{digest_ha1(DigestAlgorithm::Md5, user, realm, password),
                      digest_ha1(DigestAlgorithm::Sha256, user, realm, password)};
}

std::string format_digest_file(std::string_view aor, std::string_view realm, const DigestSecret& secret) {
  std::string out = "# p2psip digest secrets of ";
  out.append(aor).append(" (realm ").append(realm).append("): HA1 = H(user:realm:password), never the password\n");
  out.append("MD5 ").append(secret.md5_ha1).append("\nSHA-256 ").append(secret.sha256_ha1).append("\n");
  return out;
}

Result<DigestSecret, std::string> parse_digest_file(std::string_view text) {
  DigestSecret s;
  std::size_t line_no = 0;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line.front() == '#') continue;
    const auto sp = line.find(' ');
    const auto alg = sp == std::string_view::npos ? std::nullopt : algorithm_from_name(line.substr(0, sp));
    const std::string_view hex = sp == std::string_view::npos ? std::string_view{} : line.substr(sp + 1);
    const std::size_t want = alg == DigestAlgorithm::Md5 ? 32 : 64;
    if (!alg || hex.size() != want ||
        !std::all_of(hex.begin(), hex.end(), [](char c) { return kHexValue[static_cast<unsigned char>(c)] != 0xff; })) {
      return unexpected("line " + std::to_string(line_no) +
                        " is not 'MD5 <32 hex digits>' or 'SHA-256 <64 hex digits>'");
    }
    (*alg == DigestAlgorithm::Md5 ? s.md5_ha1 : s.sha256_ha1) = std::string(hex);
  }
  if (s.md5_ha1.empty() && s.sha256_ha1.empty()) return unexpected(std::string("no MD5 or SHA-256 line"));
  return s;
}

std::optional<DigestCredentials> parse_digest_credentials(std::string_view value) {
  sip::Scanner s(value);
  s.skip_lws();
  if (!sip::iequals(s.token(), "Digest")) return std::nullopt;
  DigestCredentials c;
  bool first = true;
  for (;;) {
    s.skip_lws();
    if (s.done()) break;
    if (!first && !s.separator(',')) return std::nullopt;
    first = false;
    s.skip_lws();
    const std::string_view name = s.token();
    if (name.empty() || !s.separator('=')) return std::nullopt;
    std::string v;
    if (s.peek() == '"') {
      auto q = s.quoted_string();
      if (!q) return std::nullopt;
      v = sip::unquote(*q);
    } else {
      v = std::string(s.token());
    }
    auto is = [&](std::string_view n) { return sip::iequals(name, n); };
    if (is("username")) {
      c.username = v;
    } else if (is("realm")) {
      c.realm = v;
    } else if (is("nonce")) {
      c.nonce = v;
    } else if (is("uri")) {
      c.uri = v;
    } else if (is("response")) {
      c.response = v;
    } else if (is("cnonce")) {
      c.cnonce = v;
    } else if (is("qop")) {
      c.qop = v;
    } else if (is("nc")) {
      c.nc = v;
    } else if (is("opaque")) {
      c.opaque = v;
    } else if (is("algorithm")) {
      auto a = algorithm_from_name(v);
      if (!a) return std::nullopt;
      c.algorithm = *a;
    }  // other auth-params are ignored (RFC 3261 §25.1: auth-param)
  }
  if (c.username.empty() || c.nonce.empty() || c.uri.empty() || c.response.empty()) return std::nullopt;
  return c;
}

DigestAuthenticator::DigestAuthenticator(DigestConfig config,
                                         std::function<const DigestSecret*(std::string_view)> secret_of,
                                         Environment& env)
    : cfg_(std::move(config)), secret_of_(std::move(secret_of)) {
  // The nonces' key: whoever could guess it could mint nonces that look like ours.
  std::array<std::uint8_t, 32> key{};
  env.secure_bytes(key.data(), key.size());
  key_.assign(reinterpret_cast<const char*>(key.data()), key.size());
}

std::string DigestAuthenticator::nonce_at(Instant issued) const {
  std::string out;
  append_hex64(out, static_cast<std::uint64_t>(issued.time_since_epoch().count()));
  unsigned char mac[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, reinterpret_cast<const unsigned char*>(key_.data()), key_.size());
  crypto_auth_hmacsha256_update(&st, reinterpret_cast<const unsigned char*>(out.data()), out.size());
  crypto_auth_hmacsha256_final(&st, mac);
  std::uint64_t head = 0;
  for (int i = 0; i < 8; ++i) head = head << 8 | mac[i];
  append_hex64(out, head);
  return out;
}

std::optional<Instant> DigestAuthenticator::issued(std::string_view nonce) const {
  if (nonce.size() != 32) return std::nullopt;
  std::uint64_t t = 0;
  for (char ch : nonce.substr(0, 16)) {
    const std::uint8_t v = kHexValue[static_cast<unsigned char>(ch)];
    if (v == 0xff) return std::nullopt;
    t = t << 4 | v;
  }
  const Instant at{Duration(static_cast<std::int64_t>(t))};
  const std::string expected = nonce_at(at);
  if (sodium_memcmp(expected.data(), nonce.data(), 32) != 0) return std::nullopt;
  return at;
}

std::vector<std::string> DigestAuthenticator::challenges(Instant now, bool stale) const {
  const std::string nonce = nonce_at(now);
  std::vector<std::string> out;
  for (DigestAlgorithm a : cfg_.algorithms) {
    std::string v = "Digest realm=\"" + cfg_.realm + "\", nonce=\"" + nonce +
                    "\", algorithm=" + std::string(algorithm_name(a)) + ", qop=\"auth\"";
    if (stale) v += ", stale=true";
    out.push_back(std::move(v));
  }
  return out;
}

DigestOutcome DigestAuthenticator::check(const sip::Message& request, sip::HeaderId header, Instant now) {
  using K = DigestOutcome::Kind;
  std::optional<DigestCredentials> creds;
  request.for_each(header, [&](std::string_view v) {
    if (creds) return;
    auto c = parse_digest_credentials(v);
    if (c && c->realm == cfg_.realm) creds = std::move(c);  // credentials for other realms are not ours
  });
  if (!creds) return {K::Challenge, {}, {}};
  const DigestCredentials& c = *creds;
  auto refused = [&](std::string why) { return DigestOutcome{K::Refused, c.username, std::move(why)}; };
  const auto at = issued(c.nonce);
  // A nonce we cannot read is one from before a restart (another key): ask again, as for an old one.
  if (!at || now - *at > cfg_.nonce_lifetime) return {K::Stale, c.username, "stale nonce"};
  if (!sip::iequals(c.qop, "auth")) return refused("qop=auth required");
  if (c.nc.size() != 8 || c.cnonce.empty()) return refused("malformed nonce count or cnonce");
  std::uint64_t nc = 0;
  for (char ch : c.nc) {
    const std::uint8_t v = kHexValue[static_cast<unsigned char>(ch)];
    if (v == 0xff) return refused("malformed nonce count");
    nc = nc << 4 | v;
  }
  // RFC 3261 §22.4: the digest-uri is the Request-URI the credentials were made for.
  if (c.uri != request.request_uri()) return refused("digest uri is not the Request-URI");
  if (std::find(cfg_.algorithms.begin(), cfg_.algorithms.end(), c.algorithm) == cfg_.algorithms.end()) {
    return refused(std::string(algorithm_name(c.algorithm)) + " is not offered");
  }
  const DigestSecret* secret = secret_of_(c.username);
  if (secret == nullptr) return refused("no such user");
  const std::string& ha1 = secret->ha1(c.algorithm);
  if (ha1.empty()) return refused("no secret for " + std::string(algorithm_name(c.algorithm)));
  const std::string expected =
      digest_response(c.algorithm, ha1, c.nonce, request.method(), c.uri, c.qop, c.nc, c.cnonce);
  if (expected.size() != c.response.size() || sodium_memcmp(expected.data(), c.response.data(), expected.size()) != 0) {
    return refused("wrong password");
  }
  // RFC 7616 §3.4.5: a nonce-count not above the last one taken is a replay.
  auto it = counts_.find(c.nonce);
  if (it != counts_.end() && nc <= it->second) return refused("nonce count replayed");
  if (it == counts_.end()) {
    if (counts_.size() >= cfg_.max_nonces) {
      std::erase_if(counts_, [&](const auto& kv) {
        const auto t = issued(kv.first);
        return !t || now - *t > cfg_.nonce_lifetime;
      });
      if (counts_.size() >= cfg_.max_nonces) counts_.erase(counts_.begin());
    }
    it = counts_.emplace(c.nonce, nc).first;
  }
  it->second = nc;
  return {K::Ok, c.username, {}};
}

}  // namespace p2psip::proxy
