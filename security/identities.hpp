// The identities a node writes with: its own (node certificate) and those of the users whose
// phones it serves (user certificates), so that their registrations carry the users' signatures
// (USER-MATCH, security/record_policy.hpp). Sans-I/O: files are read by the caller.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "core/environment.hpp"
#include "security/certificate.hpp"
#include "security/record_policy.hpp"

namespace p2psip::security {

/// Loaded identity: key and certificate, checked to belong together.
struct Identity {
  KeyPair key;
  Certificate cert;
  /// From PEM texts; errors name what is wrong (key and certificate of different keys, ...).
  static Result<Identity, std::string> from_pem(std::string_view key_pem, std::string_view cert_pem);
};

/// Finds the writer for a user's address of record.
class UserIdentities {
 public:
  virtual ~UserIdentities() = default;
  /// The writer for `aor` ("sip:user@overlay"), or null when this node holds no identity for it
  /// (its phones may not register that user).
  virtual const Writer* writer_for(std::string_view aor, Instant now) = 0;
};

/// The users a node was enrolled for (`--users DIR`): a fixed set.
class EnrolledUsers final : public UserIdentities {
 public:
  /// `vouch_to`, when given, learns each added certificate as checked (the caller checked it).
  explicit EnrolledUsers(const CryptoProvider& crypto, RecordPolicy* vouch_to = nullptr)
      : crypto_(crypto), vouch_to_(vouch_to) {}
  /// Adds a user identity (its certificate must be a user's); false when it is not.
  bool add(const Identity& id);
  const Writer* writer_for(std::string_view aor, Instant now) override;
  [[nodiscard]] std::size_t size() const { return writers_.size(); }

 private:
  const CryptoProvider& crypto_;
  RecordPolicy* vouch_to_;
  std::map<std::string, Writer, std::less<>> writers_;
};

/// Development mode: any user, each with a self-signed certificate made on first use (a key from
/// the environment's random stream). Unique per node, not per overlay: nothing stops two nodes from
/// registering the same name. Never with a CA.
class DevelopmentUsers final : public UserIdentities {
 public:
  /// `vouch_to`, when given, learns each certificate made here as good (no check of what this
  /// node just made).
  DevelopmentUsers(std::string overlay, const CryptoProvider& crypto, Environment& env, std::size_t max_users,
                   RecordPolicy* vouch_to = nullptr);
  const Writer* writer_for(std::string_view aor, Instant now) override;

 private:
  std::string overlay_;
  const CryptoProvider& crypto_;
  Environment& env_;
  std::size_t max_users_;
  RecordPolicy* vouch_to_;
  std::map<std::string, Writer, std::less<>> writers_;
};

/// A fresh key from 32 bytes of the environment's random stream.
KeyPair key_from(Environment& env);

}  // namespace p2psip::security
