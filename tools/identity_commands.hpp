// Enrollment from the command line: `p2psip ca init|issue` (the overlay's certificate authority)
// and `p2psip identity new|show` (a node's or user's side). Files, the clock and random numbers
// are handled here; the certificates themselves are made by security/. Each command returns 0,
// 1 when it refuses or fails (the message names the file or the reason), 2 for a wrong flag value.
#pragma once

#include <cstdint>
#include <string>

namespace p2psip::tools {

struct CaInitOptions {
  std::string overlay;
  std::string out;
  unsigned days = 3650;
};
/// Creates DIR/ca.key (mode 0600), DIR/ca.crt and an empty DIR/issued.tsv; refuses a DIR that
/// already holds a CA.
int ca_init(const CaInitOptions& o);

struct CaIssueOptions {
  std::string ca;     ///< the CA's directory
  std::string csr;    ///< a request from `identity new`; empty: make a key here
  bool node = false;  ///< a node certificate
  std::string user;   ///< a user certificate for sip:USER@OVERLAY
  std::string out;
  unsigned days = 365;
  unsigned count = 1;  ///< more than 1: COUNT users USER1..USERn (or nodes node1..) in OUT/<name>/
};
/// Issues a node or user certificate into OUT (cert.pem, ca.crt, and key.pem when no request was
/// given), and records it in the CA's issued.tsv. Refuses a user name already issued to another key.
int ca_issue(const CaIssueOptions& o);

struct IdentityNewOptions {
  std::string overlay;
  bool node = false;
  std::string user;
  std::string out;
  bool self_signed = false;  ///< development mode: no CA, a self-signed node certificate
  unsigned days = 365;
};
/// Makes OUT/key.pem and OUT/request.csr for a CA (or OUT/cert.pem, self-signed, in development mode).
int identity_new(const IdentityNewOptions& o);

struct IdentityPasswordOptions {
  std::string dir;            ///< a user identity directory (cert.pem)
  std::string password_file;  ///< the password's file (its first line); empty: standard input
};
/// Writes DIR/digest (mode 0600): the HA1 values of the user's password under MD5 and SHA-256, with
/// the overlay's name as realm, for phones that log in with digest authentication. The password
/// itself is not kept. Refuses a password shorter than 8 characters.
int identity_password(const IdentityPasswordOptions& o);

struct IdentityShowOptions {
  std::string path;   ///< a certificate file, or a directory holding cert.pem
  std::string trust;  ///< optional: the overlay root to check it against, now
};
int identity_show(const IdentityShowOptions& o);

}  // namespace p2psip::tools
