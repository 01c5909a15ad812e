// Signed records and access control: USER-MATCH, NODE-MATCH, the first-writer rule, replays,
// tampering, bad signer certificates; and on a ring, a malicious storing peer that can withhold a
// registration but not make a lookup return a forged one.
#include "security/record_policy.hpp"

#include <gtest/gtest.h>

#include <random>

#include "chord_harness.hpp"

namespace p2psip::security {
namespace {

constexpr std::int64_t kNow = 1796000000;
constexpr std::int64_t kYear = 365 * 86400;
const Instant kAt = Instant(seconds(kNow));  // tests take core time for wall time (Environment's default)

KeyPair key(std::uint8_t n) {
  Seed s{};
  s.fill(n);
  return KeyPair::from_seed(s);
}

struct QuietEnv : Environment {
  bool send(const Endpoint&, std::string_view) override { return false; }
  std::uint64_t random() override { return 4; }
  std::uint64_t secure_random() override { return 4; }
};

struct Pki {
  Ed25519Provider crypto;
  KeyPair ca_key = key(1);
  Certificate root = *make_root(ca_key, "demo.test", 1, {kNow - kYear, kNow + 10 * kYear});
  std::uint64_t serial = 2;

  Writer user(std::uint8_t k, std::string_view name, Validity v = {kNow - 86400, kNow + kYear}) {
    KeyPair kp = key(k);
    return Writer{kp, issue_user(ca_key, root, kp.public_key, name, serial++, v)->der(), &crypto};
  }
  Writer node(std::uint8_t k) {
    KeyPair kp = key(k);
    return Writer{kp, issue_node(ca_key, root, kp.public_key, serial++, {kNow - 86400, kNow + kYear})->der(), &crypto};
  }
};

dht::Record record(std::string name, std::string value, std::string dkey = {}) {
  dht::Record r;
  r.name = std::move(name);
  r.key = dht::NodeId::hash(r.name);
  r.dkey = std::move(dkey);
  r.value = std::move(value);
  r.owner = "writer";
  r.lifetime_s = 300;
  return r;
}

dht::Record signed_record(const Writer& w, std::string name, std::string value, std::int64_t written_s,
                          std::string dkey = {}) {
  dht::Record r = record(std::move(name), std::move(value), std::move(dkey));
  w.sign(r, wall_from_unix_us(written_s * 1000000));
  return r;
}

TEST(RecordPolicy, OnlyTheUsersCertificateWritesTheUsersRegistrations) {
  Pki pki;
  QuietEnv env;
  RecordPolicy policy(TrustAnchor::ca(pki.root), pki.crypto, env);
  Writer alice = pki.user(10, "alice");
  Writer mallory = pki.user(11, "mallory");
  Writer node = pki.node(12);
  dht::Record good = signed_record(alice, "sip:alice@demo.test", "via node 1", kNow);
  EXPECT_FALSE(policy.admit(good, nullptr, kAt));
  EXPECT_TRUE(policy.believe(good, kAt));
  // Mallory signs a registration for alice with her own (valid) certificate: refused, not believed.
  dht::Record forged = signed_record(mallory, "sip:alice@demo.test", "via mallory's node", kNow);
  dht::Refusal no = policy.admit(forged, nullptr, kAt);
  EXPECT_EQ(no.status, dht::Status::Forbidden);
  EXPECT_NE(no.reason.find("USER-MATCH"), std::string::npos) << no.reason;
  EXPECT_FALSE(policy.believe(forged, kAt));
  // Nor may a node write a user's registration with its node certificate.
  EXPECT_TRUE(policy.admit(signed_record(node, "sip:alice@demo.test", "x", kNow), nullptr, kAt));
  // A record this node's own application wrote skips only the signature check, not the rules.
  EXPECT_FALSE(policy.admit(good, nullptr, kAt, true));
  EXPECT_NE(policy.admit(forged, nullptr, kAt, true).reason.find("USER-MATCH"), std::string::npos);
  // Unsigned: refused.
  EXPECT_NE(policy.admit(record("sip:alice@demo.test", "x"), nullptr, kAt).reason.find("Unsigned"), std::string::npos);
}

TEST(RecordPolicy, AChangedByteOrAChangedSignatureIsCaught) {
  Pki pki;
  QuietEnv env;
  RecordPolicy policy(TrustAnchor::ca(pki.root), pki.crypto, env);
  Writer alice = pki.user(10, "alice");
  dht::Record r = signed_record(alice, "sip:alice@demo.test", "via node 1", kNow);
  dht::Record changed = r;
  changed.value = "via node 2";
  EXPECT_NE(policy.admit(changed, nullptr, kAt).reason.find("Signature Does Not Verify"), std::string::npos);
  EXPECT_FALSE(policy.believe(changed, kAt));
  changed = r;
  changed.lifetime_s = 86400;  // the lifetime is covered too
  EXPECT_FALSE(policy.believe(changed, kAt));
  changed = r;
  changed.signature[3] ^= 1;
  EXPECT_FALSE(policy.believe(changed, kAt));
  changed = r;
  changed.stored_at_us = 12345;  // the storing peer's stamp is not: peers set it
  EXPECT_TRUE(policy.believe(changed, kAt));
}

TEST(RecordPolicy, ReplaysOfOlderRecordsAreRefused) {
  Pki pki;
  QuietEnv env;
  RecordPolicy policy(TrustAnchor::ca(pki.root), pki.crypto, env);
  Writer alice = pki.user(10, "alice");
  dht::Record v1 = signed_record(alice, "sip:alice@demo.test", "v1", kNow - 60);
  dht::Record v2 = signed_record(alice, "sip:alice@demo.test", "v2", kNow);
  EXPECT_FALSE(policy.admit(v2, nullptr, kAt));
  dht::Refusal no = policy.admit(v1, &v2, kAt);  // the older one, replayed over the newer
  EXPECT_EQ(no.status, dht::Status::Forbidden);
  EXPECT_NE(no.reason.find("Stale"), std::string::npos);
  EXPECT_FALSE(policy.admit(v2, &v2, kAt));  // the same one again (replication): taken
  // The held record's signature on another value (or lifetime) is no replication: it is checked,
  // and fails. (The shortcut once compared the signature and time alone.)
  dht::Record forged = v2;
  forged.value = "v2 with a relay of the forger's choosing";
  no = policy.admit(forged, &v2, kAt);
  EXPECT_EQ(no.status, dht::Status::Forbidden);
  EXPECT_NE(no.reason.find("Signature Does Not Verify"), std::string::npos) << no.reason;
  forged = v2;
  forged.lifetime_s = 31536000;
  EXPECT_TRUE(policy.admit(forged, &v2, kAt));
  dht::Record removal = signed_record(alice, "sip:alice@demo.test", "", kNow + 1);
  removal.lifetime_s = 0;
  alice.sign(removal, wall_from_unix_us((kNow + 1) * 1000000));
  EXPECT_FALSE(policy.admit(removal, &v2, kAt));  // a newer removal by the owner
  EXPECT_TRUE(policy.admit(signed_record(alice, "sip:alice@demo.test", "v9", kNow + 7200), nullptr, kAt));  // future
}

TEST(RecordPolicy, TurnServiceEntriesAreWrittenByTheNodeTheyNameUpToTheTwentieth) {
  // RFC 6940 §7.3.4 and §9: NODE-MULTIPLE, at most 20 entries per node.
  Pki pki;
  QuietEnv env;
  RecordPolicy policy(TrustAnchor::ca(pki.root), pki.crypto, env);
  Writer n1 = pki.node(22), n2 = pki.node(23);
  const dht::NodeId id1 = node_id_of(n1.key.public_key);
  EXPECT_EQ(RecordPolicy::rule_for(turn_service_name(id1, 1)), "NODE-MULTIPLE");
  EXPECT_FALSE(
      policy.admit(signed_record(n1, turn_service_name(id1, 1), "server=198.51.100.3:3478", kNow), nullptr, kAt));
  EXPECT_FALSE(
      policy.admit(signed_record(n1, turn_service_name(id1, 20), "server=198.51.100.3:3478", kNow), nullptr, kAt));
  const dht::Refusal foreign =
      policy.admit(signed_record(n2, turn_service_name(id1, 2), "mine now", kNow), nullptr, kAt);
  EXPECT_EQ(foreign.status, dht::Status::Forbidden);
  EXPECT_NE(foreign.reason.find("NODE-MULTIPLE: Signer Is Not Node"), std::string::npos) << foreign.reason;
  for (const std::string& bad : std::vector<std::string>{
           "turn-service:" + id1.hex() + ":21", "turn-service:" + id1.hex() + ":0", "turn-service:" + id1.hex() + ":01",
           "turn-service:" + id1.hex(), "turn-service:" + id1.hex() + ":x", std::string("turn-service:nothex:1")}) {
    const dht::Refusal no = policy.admit(signed_record(n1, bad, "v", kNow), nullptr, kAt);
    EXPECT_NE(no.reason.find("NODE-MULTIPLE: Malformed Name"), std::string::npos) << bad << ": " << no.reason;
  }
  const auto parsed = parse_turn_service_name(turn_service_name(id1, 7));
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->node, id1);
  EXPECT_EQ(parsed->iteration, 7);
}

TEST(RecordPolicy, NodeRecordsAndFirstWriterEntries) {
  Pki pki;
  QuietEnv env;
  RecordPolicy policy(TrustAnchor::ca(pki.root), pki.crypto, env);
  Writer n1 = pki.node(20), n2 = pki.node(21);
  const std::string id1 = node_id_of(n1.key.public_key).hex();
  EXPECT_FALSE(policy.admit(signed_record(n1, id1, "my addresses", kNow), nullptr, kAt));
  EXPECT_NE(policy.admit(signed_record(n2, id1, "not mine", kNow), nullptr, kAt).reason.find("NODE-MATCH"),
            std::string::npos);
  // Any enrolled writer creates a free-form entry; only the same key replaces or removes it.
  dht::Record first = signed_record(n1, "weather", "sunny", kNow);
  EXPECT_FALSE(policy.admit(first, nullptr, kAt));
  EXPECT_NE(policy.admit(signed_record(n2, "weather", "rain", kNow + 1), &first, kAt).reason.find("Another Writer"),
            std::string::npos);
  EXPECT_FALSE(policy.admit(signed_record(n1, "weather", "cloudy", kNow + 1), &first, kAt));
  // The same key under a renewed certificate is still the owner.
  Writer renewed{n1.key, issue_node(pki.ca_key, pki.root, n1.key.public_key, 99, {kNow - 10, kNow + kYear})->der(),
                 &pki.crypto};
  EXPECT_FALSE(policy.admit(signed_record(renewed, "weather", "fog", kNow + 2), &first, kAt));
}

TEST(RecordPolicy, SignersWithBadCertificatesAreRefused) {
  Pki pki;
  QuietEnv env;
  RecordPolicy policy(TrustAnchor::ca(pki.root), pki.crypto, env);
  Writer old = pki.user(30, "olga", {kNow - 2 * kYear, kNow - kYear});
  EXPECT_NE(policy.admit(signed_record(old, "sip:olga@demo.test", "x", kNow), nullptr, kAt).reason.find("expired"),
            std::string::npos);
  Pki other;  // another CA, same overlay name
  other.ca_key = key(2);
  other.root = *make_root(other.ca_key, "demo.test", 1, {kNow - kYear, kNow + kYear});
  Writer stranger = other.user(31, "alice");
  EXPECT_NE(policy.admit(signed_record(stranger, "sip:alice@demo.test", "x", kNow), nullptr, kAt)
                .reason.find("not issued by the overlay root"),
            std::string::npos);
  dht::Record junk = signed_record(pki.user(32, "alice"), "sip:alice@demo.test", "x", kNow);
  junk.signer = "not a certificate";
  EXPECT_NE(policy.admit(junk, nullptr, kAt).reason.find("Unreadable"), std::string::npos);
  // A certificate valid when first seen expires later: the cache does not keep it alive.
  Writer brief = pki.user(33, "bea", {kNow - 10, kNow + 60});
  dht::Record b = signed_record(brief, "sip:bea@demo.test", "x", kNow);
  EXPECT_TRUE(policy.believe(b, kAt));
  EXPECT_FALSE(policy.believe(b, kAt + seconds(120)));
}

/// Guards that every honest peer of a test ring runs; the policy's environment gives wall time.
struct GuardedRing {
  Pki pki;
  QuietEnv env;
  test::ChordNet net;
  std::vector<std::unique_ptr<RecordPolicy>> policies;

  explicit GuardedRing(std::size_t n) {
    net.now = kAt;
    std::mt19937_64 rng(5);
    net.add(dht::NodeId{rng(), rng()}, std::nullopt);
    for (std::size_t i = 1; i < n; ++i) {
      net.run_for(millis(300));
      net.add(dht::NodeId{rng(), rng()}, i - 1);
    }
    net.run_for(seconds(120));
    for (auto& s : net.slots) {
      policies.push_back(std::make_unique<RecordPolicy>(TrustAnchor::ca(pki.root), pki.crypto, env));
      s.node->set_guard(policies.back().get());
    }
  }
  dht::RouteResult route(std::size_t from, dht::RouteOp op, dht::NodeId key, std::optional<dht::Record> r) {
    dht::RouteResult out;
    out.status = dht::Status::None;
    out.reason = "not answered";
    net.slots[from].node->route(
        op, key, std::move(r), [&](const dht::RouteResult& res) { out = res; }, net.now);
    net.run_for(seconds(5));
    return out;
  }
};

TEST(RecordPolicy, AMaliciousStoringPeerCanWithholdButNotForgeARegistration) {
  GuardedRing ring(12);
  ASSERT_EQ(ring.net.ring_errors(), "");
  const std::string aor = "sip:alice@demo.test";
  const dht::NodeId key = dht::NodeId::hash(aor);
  const std::size_t evil = ring.net.responsible(key);
  const std::size_t asker = (evil + 3) % ring.net.slots.size();
  Writer alice = ring.pki.user(40, "alice");
  Writer mallory = ring.pki.user(41, "mallory");

  // Alice's registration is stored and fetched, signed and verified end to end.
  auto stored = ring.route(asker, dht::RouteOp::Store, key, signed_record(alice, aor, "alice via node 3", kNow));
  ASSERT_EQ(stored.status, dht::Status::Ok) << stored.reason;
  auto fetched = ring.route(asker, dht::RouteOp::Fetch, key, std::nullopt);
  ASSERT_EQ(fetched.status, dht::Status::Ok);
  ASSERT_EQ(fetched.records.size(), 1u);
  EXPECT_EQ(fetched.records[0].value, "alice via node 3");

  // An honest responsible peer refuses mallory's forgery outright.
  auto refused = ring.route(asker, dht::RouteOp::Store, key,
                            signed_record(mallory, aor, "alice via mallory", kNow + 1, "mallory's dkey"));
  EXPECT_EQ(refused.status, dht::Status::Forbidden) << refused.reason;
  EXPECT_GE(ring.net.slots[evil].node->stats().records_refused, 1u);

  // Now the responsible peer turns malicious: it drops its guard, stores the forgery, and serves it.
  ring.net.slots[evil].node->set_guard(nullptr);
  auto planted = ring.route(asker, dht::RouteOp::Store, key,
                            signed_record(mallory, aor, "alice via mallory", kNow + 2, "mallory's dkey"));
  ASSERT_EQ(planted.status, dht::Status::Ok);
  auto answer = ring.route(asker, dht::RouteOp::Fetch, key, std::nullopt);
  ASSERT_EQ(answer.status, dht::Status::Ok);
  ASSERT_EQ(answer.records.size(), 1u) << "the forged entry must not reach the asker";
  EXPECT_EQ(answer.records[0].value, "alice via node 3");
  EXPECT_EQ(ring.net.slots[asker].node->stats().records_disbelieved, 1u);
  // It may also alter alice's own entry: the asker believes nothing of it, tries again past it,
  // and gets alice's entry from an honest replica.
  dht::Record altered = signed_record(alice, aor, "alice via node 3", kNow + 3);
  altered.value = "alice via mallory";
  auto overwritten = ring.route(evil, dht::RouteOp::Store, key, altered);
  ASSERT_EQ(overwritten.status, dht::Status::Ok);
  auto recovered = ring.route(asker, dht::RouteOp::Fetch, key, std::nullopt);
  ASSERT_EQ(recovered.status, dht::Status::Ok) << recovered.reason;
  EXPECT_EQ(recovered.attempts, 2);
  ASSERT_EQ(recovered.records.size(), 1u);
  EXPECT_EQ(recovered.records[0].value, "alice via node 3");
  // With one try only it would have said so (404) rather than return what alice did not sign.
  ring.net.slots[asker].node->set_fetch_attempts(1);
  auto withheld = ring.route(asker, dht::RouteOp::Fetch, key, std::nullopt);
  EXPECT_EQ(withheld.status, dht::Status::NotFound) << withheld.reason;
  EXPECT_TRUE(withheld.records.empty());
  // The replicas at honest successors refused the forgery when it was replicated to them.
  std::uint64_t refused_at_replicas = 0;
  for (std::size_t i = 0; i < ring.net.slots.size(); ++i) {
    if (i != evil) refused_at_replicas += ring.net.slots[i].node->stats().records_refused;
  }
  EXPECT_GE(refused_at_replicas, 2u);
}

}  // namespace
}  // namespace p2psip::security
