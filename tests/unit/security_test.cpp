// Identities and their checks: keys from seeds, signatures from both providers, the overlay root,
// node and user certificates, requests, and every way a certificate is refused.
#include <gtest/gtest.h>

#include "core/hex.hpp"
#include "security/attach_proof.hpp"
#include "security/certificate.hpp"
#include "security/crypto.hpp"
#include "security/sealed.hpp"

namespace p2psip::security {
namespace {

constexpr std::int64_t kNow = 1796000000;  // 2026-11-30
constexpr std::int64_t kYear = 365 * 86400;
const Validity kValid{kNow - 86400, kNow + kYear};

KeyPair key(std::uint8_t n) {
  Seed s{};
  s.fill(n);
  return KeyPair::from_seed(s);
}

struct Overlay {
  KeyPair ca_key = key(1);
  Certificate root = *make_root(ca_key, "demo.test", 1, {kNow - 5 * kYear, kNow + 10 * kYear});
  TrustAnchor trust = TrustAnchor::ca(root);
  std::uint64_t serial = 2;
  Certificate node(const KeyPair& k, Validity v = kValid) {
    return *issue_node(ca_key, root, k.public_key, serial++, v);
  }
  Certificate user(const KeyPair& k, std::string_view name) {
    return *issue_user(ca_key, root, k.public_key, name, serial++, kValid);
  }
};

TEST(Crypto, KeysComeFromTheirSeedAndNodeIdsFromTheirKey) {
  KeyPair a = key(7), b = key(7), c = key(8);
  EXPECT_EQ(a.public_key, b.public_key);
  EXPECT_NE(a.public_key, c.public_key);
  EXPECT_EQ(node_id_of(a.public_key), node_id_of(b.public_key));
  EXPECT_NE(node_id_of(a.public_key), node_id_of(c.public_key));
  // RFC 8032 §7.1 test 1: the secret key 9d61b19d... has the public key d75a9801...
  Seed s{};
  ASSERT_TRUE(parse_hex_bytes("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60", s.data(), 32));
  EXPECT_EQ(hex_bytes(KeyPair::from_seed(s).public_key.data(), 32),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
}

TEST(Crypto, Ed25519SignaturesVerifyAndCatchEveryChange) {
  Ed25519Provider p;
  KeyPair k = key(3);
  Signature sig = p.sign(k, "registration of alice");
  EXPECT_TRUE(p.verify(k.public_key, "registration of alice", sig));
  EXPECT_FALSE(p.verify(k.public_key, "registration of alicE", sig));
  EXPECT_FALSE(p.verify(key(4).public_key, "registration of alice", sig));
  sig[10] ^= 1;
  EXPECT_FALSE(p.verify(k.public_key, "registration of alice", sig));
  EXPECT_TRUE(p.secure());
  // RFC 8032 §7.1 test 1: the empty message's signature begins e5564300.
  Seed s{};
  ASSERT_TRUE(parse_hex_bytes("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60", s.data(), 32));
  EXPECT_EQ(hex_bytes(p.sign(KeyPair::from_seed(s), "").data(), 4), "e5564300");
}

TEST(Crypto, TheFakeProviderCatchesChangesButSaysItIsNotSecure) {
  FakeFastProvider p;
  KeyPair k = key(3);
  Signature sig = p.sign(k, "data");
  EXPECT_TRUE(p.verify(k.public_key, "data", sig));
  EXPECT_FALSE(p.verify(k.public_key, "dato", sig));
  EXPECT_FALSE(p.verify(key(4).public_key, "data", sig));
  EXPECT_FALSE(p.secure());
}

TEST(AttachProof, AnAttachAndItsAnswerProveTheirSendersForTheirReceiversAndNothingElse) {
  Ed25519Provider crypto;
  auto pair = [](std::uint8_t n) {
    Seed s{};
    s.fill(n);
    return KeyPair::from_seed(s);
  };
  const KeyPair a = pair(5), b = pair(6), m = pair(7);
  const dht::NodeId ida = node_id_of(a.public_key), idb = node_id_of(b.public_key), idm = node_id_of(m.public_key);
  const std::string desc =
      "a=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdefghijkl\r\n"
      "a=candidate:1 1 UDP 2130706431 198.51.100.16 40000 typ host\r\n";
  const std::int64_t t = 1796000000LL * 1000000;
  const std::int64_t fresh = 30LL * 1000000;
  const std::string offer = prove_attach(crypto, a, AttachRole::Offer, ida, idb, t, desc);
  ASSERT_TRUE(offer.starts_with(desc));
  EXPECT_FALSE(check_attach(crypto, AttachRole::Offer, ida, idb, t + 1000, fresh, offer));
  // Another recipient, another sender claimed, a changed candidate, a stale time, no proof at all.
  EXPECT_EQ(check_attach(crypto, AttachRole::Offer, ida, idm, t, fresh, offer), "Signature Does Not Verify");
  EXPECT_EQ(check_attach(crypto, AttachRole::Offer, idm, idb, t, fresh, offer),
            "Signed By Another Node Than " + idm.short_hex());
  std::string changed = offer;
  changed.replace(changed.find("198.51.100.16"), 13, "203.0.113.666");
  EXPECT_EQ(check_attach(crypto, AttachRole::Offer, ida, idb, t, fresh, changed), "Signature Does Not Verify");
  EXPECT_EQ(check_attach(crypto, AttachRole::Offer, ida, idb, t + 2 * fresh, fresh, offer), "Stale Proof");
  EXPECT_EQ(check_attach(crypto, AttachRole::Offer, ida, idb, t, fresh, desc), "Not Signed By Its Sender");
  EXPECT_EQ(check_attach(crypto, AttachRole::Offer, ida, idb, t, fresh, desc + "a=p2psip-proof:ed25519 x y z\r\n"),
            "Malformed Proof");
  // A peer on the path signs its own candidates under A's Node-ID: its key is not A's.
  const std::string forged = prove_attach(crypto, m, AttachRole::Offer, ida, idb, t, desc);
  EXPECT_EQ(check_attach(crypto, AttachRole::Offer, ida, idb, t, fresh, forged),
            "Signed By Another Node Than " + ida.short_hex());
  // The answer is bound to the offer it answers: an old answer to another offer does not pass.
  const std::string answer = prove_attach(crypto, b, AttachRole::Answer, idb, ida, t, desc, attach_proof_line(offer));
  EXPECT_FALSE(check_attach(crypto, AttachRole::Answer, idb, ida, t, fresh, answer, attach_proof_line(offer)));
  const std::string other_offer = prove_attach(crypto, a, AttachRole::Offer, ida, idb, t + 1, desc);
  EXPECT_EQ(check_attach(crypto, AttachRole::Answer, idb, ida, t, fresh, answer, attach_proof_line(other_offer)),
            "Signature Does Not Verify");
  EXPECT_EQ(check_attach(crypto, AttachRole::Offer, idb, ida, t, fresh, answer), "Signature Does Not Verify");
}

TEST(Sealed, OnlyTheKeyItWasSealedForOpensItAndAnyChangeIsCaught) {
  Seed a{}, b{}, once{};
  a.fill(1);
  b.fill(2);
  once.fill(3);
  const BoxKeyPair alice = BoxKeyPair::from_seed(a), bob = BoxKeyPair::from_seed(b);
  const std::string sealed = seal(alice.public_key, "the password", once);
  ASSERT_EQ(sealed.size(), 32u + 16u + 12u);  // one-time key, tag, message
  EXPECT_EQ(sealed.find("the password"), std::string::npos);
  EXPECT_EQ(open_sealed(alice, sealed), "the password");
  EXPECT_FALSE(open_sealed(bob, sealed));
  for (std::size_t i = 0; i < sealed.size(); i += 7) {
    std::string changed = sealed;
    changed[i] = static_cast<char>(changed[i] ^ 0x20);
    EXPECT_FALSE(open_sealed(alice, changed)) << "byte " << i;
  }
  EXPECT_FALSE(open_sealed(alice, sealed.substr(0, 40)));
  // A fresh one-time seed makes another box for the same message.
  Seed again{};
  again.fill(4);
  EXPECT_NE(seal(alice.public_key, "the password", again), sealed);
}

TEST(Sealed, TurnRestPasswordsAreCoturnsHmacSha1AndBase64RoundTrips) {
  // coturn's TURN REST API: base64(HMAC-SHA1(secret, "EXPIRY:LABEL")); the value is Python's
  // base64.b64encode(hmac.new(b"north", b"1767225600:0a1b...f9", hashlib.sha1).digest()).
  EXPECT_EQ(turn_rest_password("north", "1767225600:0a1b2c3d4e5f60718293a4b5c6d7e8f9"), "0+ypRBQJR3KKxp1CttrM7D6SIaU=");
  EXPECT_EQ(to_base64("\xff\xfe"), "//4=");
  EXPECT_EQ(to_base64("\xff\xfe", Base64::UrlNoPadding), "__4");
  EXPECT_EQ(from_base64("//4=", 2), std::string("\xff\xfe"));
  EXPECT_FALSE(from_base64("//4=", 1));  // more than asked for
  EXPECT_FALSE(from_base64("//4", 8));   // not padded
  EXPECT_FALSE(from_base64("*//4=", 8));
}

TEST(Certificates, TheRootIssuesNodesWhoseIdIsTheirKeysDigest) {
  Overlay o;
  EXPECT_EQ(o.root.info().kind, CertKind::Root);
  EXPECT_EQ(o.root.info().overlay, "demo.test");
  EXPECT_TRUE(o.root.info().self_signed);
  KeyPair k = key(10);
  Certificate c = o.node(k);
  EXPECT_EQ(c.info().kind, CertKind::Node);
  ASSERT_TRUE(c.info().node_id);
  EXPECT_EQ(*c.info().node_id, node_id_of(k.public_key));
  EXPECT_EQ(c.info().public_key, k.public_key);
  EXPECT_EQ(c.info().not_after, kValid.not_after);
  EXPECT_FALSE(c.info().self_signed);
  EXPECT_TRUE(o.trust.verify(c, CertKind::Node, kNow).ok()) << o.trust.verify(c, CertKind::Node, kNow).detail;
  // Through DER and PEM and back, unchanged.
  auto again = Certificate::from_der(c.der());
  ASSERT_TRUE(again);
  EXPECT_EQ(again->info().node_id, c.info().node_id);
  auto pem = Certificate::from_pem(c.pem());
  ASSERT_TRUE(pem);
  EXPECT_EQ(pem->der(), c.der());
}

TEST(Certificates, UsersAreBoundToTheirAor) {
  Overlay o;
  Certificate alice = o.user(key(20), "alice");
  EXPECT_EQ(alice.info().kind, CertKind::User);
  EXPECT_EQ(alice.info().aor, "sip:alice@demo.test");
  EXPECT_TRUE(o.trust.verify(alice, CertKind::User, kNow).ok());
  EXPECT_EQ(o.trust.verify(alice, CertKind::Node, kNow).error, CertError::WrongKind);
  EXPECT_EQ(o.trust.verify(o.node(key(21)), CertKind::User, kNow).error, CertError::WrongKind);
  EXPECT_FALSE(issue_user(o.ca_key, o.root, key(22).public_key, "al ice", 9, kValid));
  EXPECT_FALSE(issue_user(o.ca_key, o.root, key(22).public_key, "alice@evil", 9, kValid));
  EXPECT_FALSE(issue_user(o.ca_key, o.root, key(22).public_key, "", 9, kValid));
}

TEST(Certificates, ExpiredAndNotYetValidCertificatesAreRefused) {
  Overlay o;
  Certificate c = o.node(key(30), {kNow - 2 * kYear, kNow - kYear});
  Verdict v = o.trust.verify(c, CertKind::Node, kNow);
  EXPECT_EQ(v.error, CertError::Expired) << v.detail;
  Certificate later = o.node(key(31), {kNow + 86400, kNow + kYear});
  EXPECT_EQ(o.trust.verify(later, CertKind::Node, kNow).error, CertError::NotYetValid);
  EXPECT_TRUE(o.trust.verify(later, CertKind::Node, kNow + 2 * 86400).ok());
  // The time is the caller's: the same certificate is fine a year earlier.
  EXPECT_TRUE(o.trust.verify(c, CertKind::Node, kNow - kYear - 86400).ok());
}

TEST(Certificates, AForeignRootsCertificateIsRefused) {
  Overlay ours;
  // Another CA for an overlay of the same name: its certificates do not chain to our root.
  KeyPair other_ca = key(40);
  Certificate other_root = *make_root(other_ca, "demo.test", 1, kValid);
  Certificate c = *issue_node(other_ca, other_root, key(41).public_key, 2, kValid);
  Verdict v = ours.trust.verify(c, CertKind::Node, kNow);
  EXPECT_EQ(v.error, CertError::UnknownIssuer) << v.detail;
  // And a root of another overlay is another overlay.
  Certificate far_root = *make_root(other_ca, "elsewhere.test", 1, kValid);
  Certificate far = *issue_node(other_ca, far_root, key(42).public_key, 2, kValid);
  EXPECT_EQ(ours.trust.verify(far, CertKind::Node, kNow).error, CertError::WrongOverlay);
  // The root itself is no peer's identity.
  EXPECT_EQ(ours.trust.verify(ours.root, CertKind::Node, kNow).error, CertError::NotAllowed);
}

TEST(Certificates, ASelfChosenOrBorrowedNodeIdIsRefused) {
  Overlay o;
  KeyPair victim = key(50), attacker = key(51);
  const dht::NodeId victims_id = node_id_of(victim.public_key);
  // Even with the overlay's root signing it, a certificate whose Node-ID is not its key's digest is
  // refused: nobody places themselves on the ring.
  auto forged = issue_raw(o.ca_key, &o.root, attacker.public_key, "node",
                          {"reload://" + victims_id.hex() + "@demo.test/"}, false, 77, kValid);
  ASSERT_TRUE(forged) << forged.error();
  Verdict v = o.trust.verify(*forged, CertKind::Node, kNow);
  EXPECT_EQ(v.error, CertError::NodeIdMismatch) << v.detail;
  // Self-signed with a chosen id: refused in CA mode (no root) and in development mode (the id).
  auto chosen = issue_raw(attacker, nullptr, attacker.public_key, "node",
                          {"reload://00000000000000000000000000000001@demo.test/"}, false, 1, kValid);
  ASSERT_TRUE(chosen);
  EXPECT_EQ(o.trust.verify(*chosen, CertKind::Node, kNow).error, CertError::UnknownIssuer);
  EXPECT_EQ(TrustAnchor::self_signed_mode("demo.test").verify(*chosen, CertKind::Node, kNow).error,
            CertError::NodeIdMismatch);
}

TEST(Certificates, DevelopmentModeTakesSelfSignedNodesOnly) {
  TrustAnchor dev = TrustAnchor::self_signed_mode("demo.test");
  EXPECT_TRUE(dev.development());
  KeyPair k = key(60);
  Certificate c = *self_signed_node(k, "demo.test", 1, kValid);
  EXPECT_TRUE(c.info().self_signed);
  EXPECT_EQ(*c.info().node_id, node_id_of(k.public_key));
  EXPECT_TRUE(dev.verify(c, CertKind::Node, kNow).ok()) << dev.verify(c, CertKind::Node, kNow).detail;
  EXPECT_EQ(dev.verify(c, CertKind::Node, kValid.not_after + 1).error, CertError::Expired);
  // A CA-issued certificate is not self-signed: development mode does not know its issuer.
  Overlay o;
  EXPECT_EQ(dev.verify(o.node(key(61)), CertKind::Node, kNow).error, CertError::UnknownIssuer);
  // And a self-signed one is nothing to a node that trusts a root.
  EXPECT_EQ(o.trust.verify(c, CertKind::Node, kNow).error, CertError::UnknownIssuer);
}

TEST(Certificates, RequestsProveTheKeyAndNameWhatIsAskedFor) {
  KeyPair k = key(70);
  auto node_req = parse_request(make_request(k, {CertKind::Node, "demo.test", "", {}}));
  ASSERT_TRUE(node_req) << node_req.error();
  EXPECT_EQ(node_req->kind, CertKind::Node);
  EXPECT_EQ(node_req->overlay, "demo.test");
  EXPECT_EQ(node_req->public_key, k.public_key);
  auto user_req = parse_request(make_request(k, {CertKind::User, "demo.test", "bob", {}}));
  ASSERT_TRUE(user_req) << user_req.error();
  EXPECT_EQ(user_req->kind, CertKind::User);
  EXPECT_EQ(user_req->user, "bob");
  // A request whose bytes were changed no longer verifies; garbage is no request.
  std::string pem = make_request(k, {CertKind::User, "demo.test", "bob", {}});
  auto pos = pem.find("\n", pem.find("REQUEST-----")) + 40;
  pem[pos] = pem[pos] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(parse_request(pem));
  EXPECT_FALSE(parse_request("hello"));
}

TEST(Certificates, PrivateKeysRoundTripThroughPem) {
  KeyPair k = key(80);
  std::string pem = private_key_pem(k);
  EXPECT_NE(pem.find("BEGIN PRIVATE KEY"), std::string::npos);
  auto back = parse_private_key(pem);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->seed, k.seed);
  EXPECT_EQ(back->public_key, k.public_key);
  EXPECT_FALSE(parse_private_key("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"));
  EXPECT_FALSE(Certificate::from_pem("not a certificate"));
  EXPECT_FALSE(Certificate::from_der(std::string(100, '\x30')));
}

}  // namespace
}  // namespace p2psip::security
