// What `p2psip node` proves itself with and whom it trusts: an enrolled identity (--identity DIR,
// --trust CAFILE, --users DIR) or development mode (--dev: self-signed, no CA). Reads the files,
// checks them at start, and refuses to start on anything wrong, naming the file and the problem.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "node/proxy/digest.hpp"
#include "security/certificate.hpp"
#include "security/identities.hpp"

namespace p2psip::tools {

struct NodeOptions;

struct NodeIdentity {
  bool development = false;
  std::string overlay;  ///< the overlay: the certificate's, or --overlay (default p2psip.local)
  security::Identity self;
  std::optional<security::TrustAnchor> trust;
  /// The users whose phones the node may register (enrolled mode); empty in development mode.
  std::vector<security::Identity> users;
  /// The passwords (as digest secrets) of those users that have one (USERDIR/digest), by user name.
  std::map<std::string, proxy::DigestSecret, std::less<>> digest;
};

/// Loads (or, in development mode, makes and keeps in --data-dir) the node's identity. False with
/// `error` naming the flag or file and what is wrong with it.
bool load_node_identity(const NodeOptions& o, NodeIdentity& out, std::string& error);

}  // namespace p2psip::tools
