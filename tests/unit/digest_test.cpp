// Digest authentication of phones (node/proxy/digest.hpp): the hashes against published test
// vectors, the credentials parser, and the authenticator's nonces (stale, foreign), nonce counts
// (replays refused), users and passwords, on virtual time.
#include "node/proxy/digest.hpp"

#include <gtest/gtest.h>

namespace p2psip::proxy {
namespace {

TEST(Digest, HashesMatchPublishedVectors) {
  // RFC 2617 §3.5 (MD5, qop=auth).
  const std::string md5_ha1 = digest_ha1(DigestAlgorithm::Md5, "Mufasa", "testrealm@host.com", "Circle Of Life");
  EXPECT_EQ(digest_response(DigestAlgorithm::Md5, md5_ha1, "dcd98b7102dd2f0e8b11d0f600bfb0c093", "GET",
                            "/dir/index.html", "auth", "00000001", "0a4f113b"),
            "6629fae49393a05397450978507c4ef1");
  // RFC 7616 §3.9.1 (SHA-256, qop=auth).
  const std::string sha_ha1 = digest_ha1(DigestAlgorithm::Sha256, "Mufasa", "http-auth@example.org", "Circle of Life");
  EXPECT_EQ(digest_response(DigestAlgorithm::Sha256, sha_ha1, "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", "GET",
                            "/dir/index.html", "auth", "00000001", "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1");
  // curl's test 2061 (SHA-256, no qop).
  EXPECT_EQ(
      digest_response(DigestAlgorithm::Sha256, digest_ha1(DigestAlgorithm::Sha256, "testuser", "testrealm", "testpass"),
                      "1053604145", "GET", "/2061", "", "", ""),
      "9dc55255f1a2537b838311674b621d45346b862a81631bb20e4ce356ef25062d");
}

TEST(Digest, CredentialsAreParsedAndMalformedOnesRefused) {
  auto c = parse_digest_credentials(
      "Digest username=\"alice\",realm=\"p2psip.local\", nonce=\"abc\", uri=\"sip:p2psip.local\", "
      "response=\"0123\", algorithm=SHA-256, cnonce=\"xyz\", qop=auth, nc=00000001, opaque=\"o\", extra=1");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->username, "alice");
  EXPECT_EQ(c->realm, "p2psip.local");
  EXPECT_EQ(c->uri, "sip:p2psip.local");
  EXPECT_EQ(c->algorithm, DigestAlgorithm::Sha256);
  EXPECT_EQ(c->qop, "auth");
  EXPECT_EQ(c->nc, "00000001");
  EXPECT_EQ(c->opaque, "o");
  EXPECT_EQ(parse_digest_credentials("Digest username=\"a\", nonce=\"n\", uri=\"u\", response=\"r\"")->algorithm,
            DigestAlgorithm::Md5);
  EXPECT_FALSE(parse_digest_credentials("Basic YWxpY2U6c2VjcmV0"));
  EXPECT_FALSE(parse_digest_credentials("Digest username=\"a\", nonce=\"n\", uri=\"u\""));  // no response
  EXPECT_FALSE(parse_digest_credentials("Digest username=\"a, nonce=\"n\""));               // unterminated
  EXPECT_FALSE(parse_digest_credentials("Digest username=\"a\" nonce=\"n\""));              // no comma
  EXPECT_FALSE(
      parse_digest_credentials("Digest username=\"a\", nonce=\"n\", uri=\"u\", response=\"r\", algorithm=SHA-1"));
}

/// The realm "p2psip.local", nonces living 300 s, 4 of them remembered.
DigestConfig small_config() {
  DigestConfig c{"p2psip.local"};
  c.nonce_lifetime = seconds(300);
  c.max_nonces = 4;
  return c;
}

struct Env : Environment {
  std::uint64_t n = 77;
  bool send(const Endpoint&, std::string_view) override { return false; }
  std::uint64_t random() override { return n = n * 6364136223846793005ull + 1442695040888963407ull; }
  std::uint64_t secure_random() override { return random(); }
};

/// A phone's answer to a challenge, as RFC 7616 §3.4 computes it.
std::string answer(const std::string& challenge, DigestAlgorithm a, const std::string& user,
                   const std::string& password, const std::string& uri, const std::string& nc,
                   const std::string& realm = "p2psip.local") {
  const auto at = challenge.find("nonce=\"") + 7;
  const std::string nonce = challenge.substr(at, challenge.find('"', at) - at);
  const std::string response =
      digest_response(a, digest_ha1(a, user, realm, password), nonce, "REGISTER", uri, "auth", nc, "c0ffee");
  return "Digest username=\"" + user + "\", realm=\"" + realm + "\", nonce=\"" + nonce + "\", uri=\"" + uri +
         "\", response=\"" + response + "\", algorithm=" + std::string(algorithm_name(a)) +
         ", cnonce=\"c0ffee\", qop=auth, nc=" + nc;
}

sip::Message register_with(const std::string& authorization) {
  sip::Message m = sip::Message::request("REGISTER", "sip:p2psip.local");
  if (!authorization.empty()) m.add_header(sip::HeaderId::Authorization, authorization);
  return m;
}

TEST(Digest, TheAuthenticatorTakesRightAnswersOnceAndChallengesEverythingElse) {
  Env env;
  const DigestSecret alice = DigestSecret::of("alice", "p2psip.local", "wonderland");
  DigestAuthenticator auth(
      small_config(), [&](std::string_view user) { return user == "alice" ? &alice : nullptr; }, env);
  using K = DigestOutcome::Kind;
  Instant now = Instant(seconds(1000));
  const auto ch = auth.challenges(now);
  ASSERT_EQ(ch.size(), 2u);
  EXPECT_NE(ch[0].find("algorithm=SHA-256, qop=\"auth\""), std::string::npos) << ch[0];
  EXPECT_NE(ch[1].find("algorithm=MD5"), std::string::npos);
  EXPECT_NE(ch[0].find("realm=\"p2psip.local\""), std::string::npos);

  EXPECT_EQ(auth.check(register_with(""), sip::HeaderId::Authorization, now).kind, K::Challenge);
  // Right, under either algorithm; then a replay of the same count, refused.
  const std::string good =
      answer(ch[0], DigestAlgorithm::Sha256, "alice", "wonderland", "sip:p2psip.local", "00000001");
  auto ok = auth.check(register_with(good), sip::HeaderId::Authorization, now);
  EXPECT_EQ(ok.kind, K::Ok);
  EXPECT_EQ(ok.user, "alice");
  auto replay = auth.check(register_with(good), sip::HeaderId::Authorization, now + seconds(1));
  EXPECT_EQ(replay.kind, K::Refused);
  EXPECT_EQ(replay.reason, "nonce count replayed");
  EXPECT_EQ(auth.check(register_with(answer(ch[0], DigestAlgorithm::Sha256, "alice", "wonderland", "sip:p2psip.local",
                                            "00000002")),
                       sip::HeaderId::Authorization, now)
                .kind,
            K::Ok);
  EXPECT_EQ(auth.check(register_with(
                           answer(ch[1], DigestAlgorithm::Md5, "alice", "wonderland", "sip:p2psip.local", "00000003")),
                       sip::HeaderId::Authorization, now)
                .kind,
            K::Ok);
  // Wrong password, unknown user, credentials made for another Request-URI, no qop.
  auto wrong = auth.check(
      register_with(answer(ch[0], DigestAlgorithm::Sha256, "alice", "looking-glass", "sip:p2psip.local", "00000009")),
      sip::HeaderId::Authorization, now);
  EXPECT_EQ(wrong.kind, K::Refused);
  EXPECT_EQ(wrong.reason, "wrong password");
  EXPECT_EQ(
      auth.check(register_with(answer(ch[0], DigestAlgorithm::Sha256, "mallory", "x", "sip:p2psip.local", "00000001")),
                 sip::HeaderId::Authorization, now)
          .reason,
      "no such user");
  EXPECT_EQ(
      auth.check(register_with(answer(ch[0], DigestAlgorithm::Sha256, "alice", "wonderland", "sip:other", "0000000a")),
                 sip::HeaderId::Authorization, now)
          .reason,
      "digest uri is not the Request-URI");
  // Credentials for another realm are not ours: a plain challenge.
  EXPECT_EQ(auth.check(register_with(answer(ch[0], DigestAlgorithm::Sha256, "alice", "wonderland", "sip:p2psip.local",
                                            "0000000b", "elsewhere")),
                       sip::HeaderId::Authorization, now)
                .kind,
            K::Challenge);
  // A nonce past its lifetime, or one this node never made (another key: a restart): stale.
  EXPECT_EQ(auth.check(register_with(answer(ch[0], DigestAlgorithm::Sha256, "alice", "wonderland", "sip:p2psip.local",
                                            "0000000c")),
                       sip::HeaderId::Authorization, now + seconds(301))
                .kind,
            K::Stale);
  DigestAuthenticator other(
      small_config(), [&](std::string_view) { return &alice; }, env);
  EXPECT_EQ(other.check(register_with(good), sip::HeaderId::Authorization, now).kind, K::Stale);
  EXPECT_NE(auth.challenges(now, true)[0].find("stale=true"), std::string::npos);
}

TEST(Digest, TheAlgorithmsOfferedAreConfiguredAndOthersRefused) {
  EXPECT_EQ(algorithms_from_list("MD5,SHA-256"),
            (std::vector<DigestAlgorithm>{DigestAlgorithm::Md5, DigestAlgorithm::Sha256}));
  EXPECT_FALSE(algorithms_from_list(""));
  EXPECT_FALSE(algorithms_from_list("MD5,MD5"));
  EXPECT_FALSE(algorithms_from_list("SHA-1"));
  Env env;
  const DigestSecret alice = DigestSecret::of("alice", "p2psip.local", "wonderland");
  DigestConfig cfg{"p2psip.local"};
  cfg.algorithms = {DigestAlgorithm::Md5};
  DigestAuthenticator auth(
      cfg, [&](std::string_view) { return &alice; }, env);
  const Instant now = Instant(seconds(10));
  const auto ch = auth.challenges(now);
  ASSERT_EQ(ch.size(), 1u);
  EXPECT_NE(ch[0].find("algorithm=MD5"), std::string::npos);
  auto sha = auth.check(
      register_with(answer(ch[0], DigestAlgorithm::Sha256, "alice", "wonderland", "sip:p2psip.local", "00000001")),
      sip::HeaderId::Authorization, now);
  EXPECT_EQ(sha.kind, DigestOutcome::Kind::Refused);
  EXPECT_EQ(sha.reason, "SHA-256 is not offered");
  EXPECT_EQ(auth.check(register_with(
                           answer(ch[0], DigestAlgorithm::Md5, "alice", "wonderland", "sip:p2psip.local", "00000002")),
                       sip::HeaderId::Authorization, now)
                .kind,
            DigestOutcome::Kind::Ok);
}

TEST(Digest, RememberedNonceCountsAreBounded) {
  Env env;
  const DigestSecret alice = DigestSecret::of("alice", "p2psip.local", "pw");
  DigestAuthenticator auth(
      small_config(), [&](std::string_view) { return &alice; }, env);
  Instant now = Instant(seconds(5000));
  for (int i = 0; i < 50; ++i) {
    now += seconds(10);
    const auto ch = auth.challenges(now);
    auto r =
        auth.check(register_with(answer(ch[0], DigestAlgorithm::Sha256, "alice", "pw", "sip:p2psip.local", "00000001")),
                   sip::HeaderId::Authorization, now);
    ASSERT_EQ(r.kind, DigestOutcome::Kind::Ok) << i << " " << r.reason;
  }
}

}  // namespace
}  // namespace p2psip::proxy
