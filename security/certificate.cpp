#include "security/certificate.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <ctime>

#include "core/hex.hpp"

namespace p2psip::security {

namespace {

template <class T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using ReqPtr = std::unique_ptr<X509_REQ, Deleter<X509_REQ, X509_REQ_free>>;
using StorePtr = std::unique_ptr<X509_STORE, Deleter<X509_STORE, X509_STORE_free>>;
using StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, Deleter<X509_STORE_CTX, X509_STORE_CTX_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;

void free_general_names(GENERAL_NAMES* n) {
  GENERAL_NAMES_free(n);
}
void free_extensions(STACK_OF(X509_EXTENSION) * s) {
  sk_X509_EXTENSION_pop_free(s, X509_EXTENSION_free);
}
using NamesPtr = std::unique_ptr<GENERAL_NAMES, Deleter<GENERAL_NAMES, free_general_names>>;
using ExtsPtr = std::unique_ptr<STACK_OF(X509_EXTENSION), Deleter<STACK_OF(X509_EXTENSION), free_extensions>>;

PkeyPtr private_pkey(const KeyPair& k) {
  return PkeyPtr(EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, k.seed.data(), k.seed.size()));
}
PkeyPtr public_pkey(const PublicKey& k) {
  return PkeyPtr(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, k.data(), k.size()));
}

std::optional<PublicKey> raw_public(EVP_PKEY* pk) {
  if (pk == nullptr || EVP_PKEY_get_base_id(pk) != EVP_PKEY_ED25519) return std::nullopt;
  PublicKey out{};
  std::size_t len = out.size();
  if (EVP_PKEY_get_raw_public_key(pk, out.data(), &len) != 1 || len != out.size()) return std::nullopt;
  return out;
}

std::string bio_text(BIO* b) {
  char* data = nullptr;
  long n = BIO_get_mem_data(b, &data);
  return n > 0 ? std::string(data, static_cast<std::size_t>(n)) : std::string();
}

BioPtr read_bio(std::string_view text) {
  return BioPtr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

/// The most recent OpenSSL error as text (and the queue cleared), for messages.
std::string openssl_error() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "no detail";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

std::optional<std::string> name_entry(const X509_NAME* name, int nid) {
  int i = X509_NAME_get_index_by_NID(name, nid, -1);
  if (i < 0) return std::nullopt;
  const ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                     static_cast<std::size_t>(ASN1_STRING_length(s)));
}

std::vector<std::string> uris(const GENERAL_NAMES* names) {
  std::vector<std::string> out;
  for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* g = sk_GENERAL_NAME_value(names, i);
    if (g->type != GEN_URI) continue;
    const ASN1_STRING* s = g->d.uniformResourceIdentifier;
    out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                     static_cast<std::size_t>(ASN1_STRING_length(s)));
  }
  return out;
}

std::optional<std::int64_t> unix_time(const ASN1_TIME* t) {
  std::tm tm{};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return std::nullopt;
  return static_cast<std::int64_t>(timegm(&tm));
}

/// An identity URI: reload://<node id>@<overlay>/ or sip:<user>@<overlay>.
struct Identity {
  CertKind kind;
  std::string overlay;
  std::optional<dht::NodeId> node_id;
  std::string aor;
};
std::optional<Identity> parse_identity_uri(std::string_view u) {
  constexpr std::string_view kReload = "reload://", kSip = "sip:";
  if (u.substr(0, kReload.size()) == kReload) {
    u.remove_prefix(kReload.size());
    auto at = u.find('@');
    if (at == std::string_view::npos || u.empty() || u.back() != '/') return std::nullopt;
    auto id = dht::NodeId::from_hex(u.substr(0, at));
    std::string_view overlay = u.substr(at + 1, u.size() - at - 2);
    if (!id || overlay.empty()) return std::nullopt;
    return Identity{CertKind::Node, std::string(overlay), id, {}};
  }
  if (u.substr(0, kSip.size()) == kSip) {
    std::string_view rest = u.substr(kSip.size());
    auto at = rest.find('@');
    if (at == std::string_view::npos || !valid_user_name(rest.substr(0, at)) || at + 1 >= rest.size()) {
      return std::nullopt;
    }
    return Identity{CertKind::User, std::string(rest.substr(at + 1)), std::nullopt, std::string(u)};
  }
  return std::nullopt;
}

std::string node_uri(const dht::NodeId& id, std::string_view overlay) {
  return "reload://" + id.hex() + "@" + std::string(overlay) + "/";
}

bool add_ext(X509* x, X509V3_CTX* ctx, int nid, const std::string& value) {
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, ctx, nid, value.c_str());
  if (ext == nullptr) return false;
  int ok = X509_add_ext(x, ext, -1);
  X509_EXTENSION_free(ext);
  return ok == 1;
}

}  // namespace

// ---- certificates --------------------------------------------------------------------------------

Result<Certificate, std::string> Certificate::adopt(X509* raw) {
  X509Ptr x(raw);
  if (!x) return unexpected("not an X.509 certificate (" + openssl_error() + ")");
  CertInfo info;
  auto key = raw_public(X509_get0_pubkey(x.get()));
  if (!key) return unexpected(std::string("the certificate's key is not Ed25519"));
  info.public_key = *key;
  const X509_NAME* subject = X509_get_subject_name(x.get());
  info.subject = name_entry(subject, NID_commonName).value_or("");
  auto overlay = name_entry(subject, NID_organizationName);
  if (!overlay || overlay->empty()) return unexpected(std::string("the certificate names no overlay (O=)"));
  info.overlay = *overlay;
  auto nb = unix_time(X509_get0_notBefore(x.get()));
  auto na = unix_time(X509_get0_notAfter(x.get()));
  if (!nb || !na) return unexpected(std::string("the certificate's validity period cannot be read"));
  info.not_before = *nb;
  info.not_after = *na;
  ASN1_INTEGER_get_uint64(&info.serial, X509_get0_serialNumber(x.get()));
  // Self-signed: issued by its own name and signed by its own key. (X509_check_issued would also
  // ask for keyCertSign, which a self-signed node certificate does not carry.)
  info.self_signed = X509_NAME_cmp(X509_get_subject_name(x.get()), X509_get_issuer_name(x.get())) == 0 &&
                     X509_verify(x.get(), X509_get0_pubkey(x.get())) == 1;
  ERR_clear_error();
  const bool ca = (X509_get_extension_flags(x.get()) & EXFLAG_CA) != 0;
  NamesPtr names(static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x.get(), NID_subject_alt_name, nullptr, nullptr)));
  std::vector<std::string> ids = uris(names.get());
  if (ca) {
    if (!ids.empty()) return unexpected(std::string("a CA certificate that also names a node or user"));
    info.kind = CertKind::Root;
  } else {
    if (ids.size() != 1) {
      return unexpected(ids.empty() ? std::string("the certificate names no node or user (subjectAltName URI)")
                                    : std::string("the certificate names more than one node or user"));
    }
    auto id = parse_identity_uri(ids[0]);
    if (!id) return unexpected("unrecognised identity in the certificate: " + ids[0]);
    if (id->overlay != info.overlay) {
      return unexpected("the certificate's identity " + ids[0] + " is not of its overlay " + info.overlay);
    }
    info.kind = id->kind;
    info.node_id = id->node_id;
    info.aor = id->aor;
  }
  Certificate c;
  c.x509_ = std::shared_ptr<X509>(x.release(), X509_free);
  c.info_ = std::move(info);
  return c;
}

Result<Certificate, std::string> Certificate::from_der(std::string_view der) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  return adopt(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
}

Result<Certificate, std::string> Certificate::from_pem(std::string_view pem) {
  BioPtr b = read_bio(pem);
  return adopt(PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr));
}

std::string Certificate::der() const {
  unsigned char* buf = nullptr;
  int n = i2d_X509(x509_.get(), &buf);
  std::string out = n > 0 ? std::string(reinterpret_cast<char*>(buf), static_cast<std::size_t>(n)) : std::string();
  OPENSSL_free(buf);
  return out;
}

std::string Certificate::pem() const {
  BioPtr b(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(b.get(), x509_.get());
  return bio_text(b.get());
}

// ---- issuing ---------------------------------------------------------------------------------------

Issued issue_raw(const KeyPair& signer, const Certificate* issuer, const PublicKey& subject, std::string_view cn,
                 const std::vector<std::string>& san_uris, bool is_ca, std::uint64_t serial, const Validity& v) {
  X509Ptr x(X509_new());
  X509_set_version(x.get(), X509_VERSION_3);
  ASN1_INTEGER_set_uint64(X509_get_serialNumber(x.get()), serial);
  ASN1_TIME_set(X509_getm_notBefore(x.get()), static_cast<time_t>(v.not_before));
  ASN1_TIME_set(X509_getm_notAfter(x.get()), static_cast<time_t>(v.not_after));
  // The overlay is the organisation: the issuer's for an issued certificate, else taken from the
  // identity (or the CN of a root, "<overlay> overlay root").
  std::string overlay;
  if (issuer != nullptr) {
    overlay = issuer->info().overlay;
  } else if (!san_uris.empty()) {
    auto id = parse_identity_uri(san_uris[0]);
    overlay = id ? id->overlay : "";
  } else {
    overlay = std::string(cn.substr(0, cn.find(' ')));
  }
  X509_NAME* name = X509_get_subject_name(x.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(overlay.c_str()), -1, -1,
                             0);
  std::string cn_text(cn);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(cn_text.c_str()), -1, -1,
                             0);
  X509_set_issuer_name(x.get(), issuer != nullptr ? X509_get_subject_name(issuer->x509()) : name);
  PkeyPtr pub = public_pkey(subject);
  X509_set_pubkey(x.get(), pub.get());
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer != nullptr ? issuer->x509() : x.get(), x.get(), nullptr, nullptr, 0);
  add_ext(x.get(), &ctx, NID_basic_constraints, is_ca ? "critical,CA:TRUE,pathlen:0" : "critical,CA:FALSE");
  add_ext(x.get(), &ctx, NID_key_usage, is_ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
  add_ext(x.get(), &ctx, NID_subject_key_identifier, "hash");
  if (issuer != nullptr) add_ext(x.get(), &ctx, NID_authority_key_identifier, "keyid:always");
  if (!san_uris.empty()) {
    std::string san;
    for (const auto& u : san_uris) san += (san.empty() ? "URI:" : ",URI:") + u;
    add_ext(x.get(), &ctx, NID_subject_alt_name, san);
  }
  PkeyPtr key = private_pkey(signer);
  if (X509_sign(x.get(), key.get(), nullptr) <= 0) {  // Ed25519 hashes for itself: no digest is named
    return unexpected("signing the certificate failed (" + openssl_error() + ")");
  }
  unsigned char* buf = nullptr;
  int n = i2d_X509(x.get(), &buf);
  std::string der(reinterpret_cast<char*>(buf), static_cast<std::size_t>(n > 0 ? n : 0));
  OPENSSL_free(buf);
  return Certificate::from_der(der);
}

Issued make_root(const KeyPair& ca_key, std::string_view overlay, std::uint64_t serial, const Validity& v) {
  if (!valid_overlay_name(overlay)) return unexpected("invalid overlay name '" + std::string(overlay) + "'");
  return issue_raw(ca_key, nullptr, ca_key.public_key, std::string(overlay) + " overlay root", {}, true, serial, v);
}

Issued issue_node(const KeyPair& ca_key, const Certificate& ca, const PublicKey& subject, std::uint64_t serial,
                  const Validity& v) {
  const dht::NodeId id = node_id_of(subject);
  return issue_raw(ca_key, &ca, subject, "node " + id.hex(), {node_uri(id, ca.info().overlay)}, false, serial, v);
}

Issued issue_user(const KeyPair& ca_key, const Certificate& ca, const PublicKey& subject, std::string_view user,
                  std::uint64_t serial, const Validity& v) {
  if (!valid_user_name(user)) return unexpected("invalid user name '" + std::string(user) + "'");
  const std::string aor = "sip:" + std::string(user) + "@" + ca.info().overlay;
  return issue_raw(ca_key, &ca, subject, aor, {aor}, false, serial, v);
}

Issued self_signed_node(const KeyPair& key, std::string_view overlay, std::uint64_t serial, const Validity& v) {
  if (!valid_overlay_name(overlay)) return unexpected("invalid overlay name '" + std::string(overlay) + "'");
  const dht::NodeId id = node_id_of(key.public_key);
  return issue_raw(key, nullptr, key.public_key, "node " + id.hex() + " (self-signed, development)",
                   {node_uri(id, overlay)}, false, serial, v);
}

bool valid_overlay_name(std::string_view overlay) {
  if (overlay.empty() || overlay.size() > 63) return false;
  for (char c : overlay) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.')) {
      return false;
    }
  }
  return true;
}

bool valid_user_name(std::string_view user) {
  if (user.empty() || user.size() > 64) return false;
  for (char c : user) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    std::string_view("-_.!~*'()").find(c) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

// ---- requests --------------------------------------------------------------------------------------

std::string make_request(const KeyPair& key, const CertRequest& r) {
  ReqPtr req(X509_REQ_new());
  X509_REQ_set_version(req.get(), 0);
  X509_NAME* name = X509_REQ_get_subject_name(req.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(r.overlay.c_str()), -1,
                             -1, 0);
  const std::string cn = r.kind == CertKind::User ? "sip:" + r.user + "@" + r.overlay : "node";
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  PkeyPtr pub = public_pkey(key.public_key);
  X509_REQ_set_pubkey(req.get(), pub.get());
  if (r.kind == CertKind::User) {
    ExtsPtr exts(sk_X509_EXTENSION_new_null());
    const std::string san = "URI:" + cn;
    sk_X509_EXTENSION_push(exts.get(), X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, san.c_str()));
    X509_REQ_add_extensions(req.get(), exts.get());
  }
  PkeyPtr priv = private_pkey(key);
  X509_REQ_sign(req.get(), priv.get(), nullptr);
  BioPtr b(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509_REQ(b.get(), req.get());
  return bio_text(b.get());
}

Result<CertRequest, std::string> parse_request(std::string_view pem) {
  BioPtr b = read_bio(pem);
  ReqPtr req(PEM_read_bio_X509_REQ(b.get(), nullptr, nullptr, nullptr));
  if (!req) return unexpected("not a certificate request (" + openssl_error() + ")");
  EVP_PKEY* pk = X509_REQ_get0_pubkey(req.get());
  auto key = raw_public(pk);
  if (!key) return unexpected(std::string("the request's key is not Ed25519"));
  if (X509_REQ_verify(req.get(), pk) != 1) {
    ERR_clear_error();
    return unexpected(std::string("the request's signature does not verify (it was not made with its key)"));
  }
  CertRequest r;
  r.public_key = *key;
  r.overlay = name_entry(X509_REQ_get_subject_name(req.get()), NID_organizationName).value_or("");
  if (r.overlay.empty()) return unexpected(std::string("the request names no overlay (O=)"));
  ExtsPtr exts(X509_REQ_get_extensions(req.get()));
  std::vector<std::string> ids;
  for (int i = 0; exts && i < sk_X509_EXTENSION_num(exts.get()); ++i) {
    X509_EXTENSION* e = sk_X509_EXTENSION_value(exts.get(), i);
    if (OBJ_obj2nid(X509_EXTENSION_get_object(e)) != NID_subject_alt_name) continue;
    NamesPtr names(static_cast<GENERAL_NAMES*>(X509V3_EXT_d2i(e)));
    for (auto& u : uris(names.get())) ids.push_back(u);
  }
  if (ids.empty()) {
    r.kind = CertKind::Node;
    return r;
  }
  auto id = ids.size() == 1 ? parse_identity_uri(ids[0]) : std::nullopt;
  if (!id || id->kind != CertKind::User || id->overlay != r.overlay) {
    return unexpected(std::string("the request asks for something other than one user of its overlay"));
  }
  r.kind = CertKind::User;
  r.user = id->aor.substr(4, id->aor.find('@') - 4);
  return r;
}

// ---- checking -------------------------------------------------------------------------------------

std::string_view to_string(CertError e) {
  switch (e) {
    case CertError::None: return "ok";
    case CertError::WrongOverlay: return "certificate of another overlay";
    case CertError::UnknownIssuer: return "certificate not issued by the overlay root";
    case CertError::BadSignature: return "certificate signature invalid";
    case CertError::NotYetValid: return "certificate not yet valid";
    case CertError::Expired: return "certificate expired";
    case CertError::NodeIdMismatch: return "Node-ID does not match the certificate's key";
    case CertError::WrongKind: return "wrong kind of certificate";
    case CertError::NotAllowed: return "certificate not allowed here";
  }
  return "?";
}

TrustAnchor TrustAnchor::ca(Certificate root) {
  TrustAnchor t;
  t.overlay_ = root.info().overlay;
  t.root_ = std::move(root);
  return t;
}

TrustAnchor TrustAnchor::self_signed_mode(std::string overlay) {
  TrustAnchor t;
  t.overlay_ = std::move(overlay);
  return t;
}

Verdict TrustAnchor::verify(const Certificate& cert, CertKind expected, std::int64_t now_s) const {
  const CertInfo& info = cert.info();
  auto refuse = [&](CertError e, std::string detail) { return Verdict{e, std::move(detail)}; };
  if (info.overlay != overlay_) {
    return refuse(CertError::WrongOverlay, "issued for overlay " + info.overlay + ", not " + overlay_);
  }
  if (info.kind == CertKind::Root) return refuse(CertError::NotAllowed, "a CA certificate presented as an identity");
  if (info.kind != expected) {
    return refuse(CertError::WrongKind, expected == CertKind::Node ? "a user certificate where a node's was needed"
                                                                   : "a node certificate where a user's was needed");
  }
  if (root_) {
    StorePtr store(X509_STORE_new());
    X509_STORE_add_cert(store.get(), root_->x509());
    StoreCtxPtr ctx(X509_STORE_CTX_new());
    X509_STORE_CTX_init(ctx.get(), store.get(), cert.x509(), nullptr);
    X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
    X509_VERIFY_PARAM_set_time(param, static_cast<time_t>(now_s));  // the caller's clock, not the system's
    X509_VERIFY_PARAM_set_depth(param, 1);                          // root -> certificate, nothing between
    const int ok = X509_verify_cert(ctx.get());
    ERR_clear_error();
    if (ok != 1) {
      const int err = X509_STORE_CTX_get_error(ctx.get());
      const int depth = X509_STORE_CTX_get_error_depth(ctx.get());
      std::string what = X509_verify_cert_error_string(err);
      if (depth > 0) what = "overlay root: " + what;
      switch (err) {
        case X509_V_ERR_CERT_HAS_EXPIRED: return refuse(CertError::Expired, what);
        case X509_V_ERR_CERT_NOT_YET_VALID: return refuse(CertError::NotYetValid, what);
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
        case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
        case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
        case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE: return refuse(CertError::UnknownIssuer, what);
        case X509_V_ERR_CERT_SIGNATURE_FAILURE:
          return refuse(CertError::UnknownIssuer, what + " (signed by another key than the overlay root's)");
        default: return refuse(CertError::BadSignature, what);
      }
    }
  } else {
    // Development mode: only self-signed certificates, each proving itself (self_signed means the
    // signature verified under the certificate's own key).
    if (!info.self_signed) return refuse(CertError::UnknownIssuer, "development mode takes self-signed certificates");
    if (now_s < info.not_before)
      return refuse(CertError::NotYetValid, "not valid before " + std::to_string(info.not_before));
    if (now_s > info.not_after) return refuse(CertError::Expired, "expired at " + std::to_string(info.not_after));
  }
  if (info.kind == CertKind::Node && info.node_id != node_id_of(info.public_key)) {
    return refuse(CertError::NodeIdMismatch,
                  "claims Node-ID " + info.node_id->hex() + " but its key gives " + node_id_of(info.public_key).hex());
  }
  return {};
}

// ---- private keys ----------------------------------------------------------------------------------

std::string private_key_pem(const KeyPair& key) {
  PkeyPtr pk = private_pkey(key);
  BioPtr b(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(b.get(), pk.get(), nullptr, nullptr, 0, nullptr, nullptr);
  return bio_text(b.get());
}

Result<KeyPair, std::string> parse_private_key(std::string_view pem) {
  BioPtr b = read_bio(pem);
  PkeyPtr pk(PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr));
  if (!pk) return unexpected("not a private key (" + openssl_error() + ")");
  if (EVP_PKEY_get_base_id(pk.get()) != EVP_PKEY_ED25519) return unexpected(std::string("the key is not Ed25519"));
  Seed seed{};
  std::size_t len = seed.size();
  if (EVP_PKEY_get_raw_private_key(pk.get(), seed.data(), &len) != 1 || len != seed.size()) {
    return unexpected("the Ed25519 key cannot be read (" + openssl_error() + ")");
  }
  return KeyPair::from_seed(seed);
}

}  // namespace p2psip::security
