#include "node/proxy/registrar.hpp"

#include <algorithm>
#include <cctype>

#include "node/sip/headers.hpp"
#include "node/sip/validate.hpp"

namespace p2psip::proxy {

using sip::HeaderId;

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool same_uri(std::string_view a, std::string_view b) {
  auto ua = sip::parse_uri(a);
  auto ub = sip::parse_uri(b);
  return ua && ub && sip::uri_equivalent(*ua, *ub);
}

Instant earliest(const std::vector<Binding>& list) {
  Instant e = kInstantMax;
  for (const auto& b : list) e = std::min(e, b.expires);
  return e;
}

std::int64_t remaining_s(const Binding& b, Instant now) {
  // Rounded up, so a binding never reads as expired (0) while it is still live.
  return (b.expires - now).count() <= 0 ? 0 : ((b.expires - now).count() + 999999) / 1000000;
}

}  // namespace

std::optional<std::string> Registrar::canonical_aor(std::string_view uri_text) {
  auto uri = sip::parse_uri(uri_text);
  if (!uri || !uri->is_sip() || uri->user.empty() || uri->host.empty()) return std::nullopt;
  return "sip:" + sip::unescape(uri->user) + "@" + lower(uri->host);
}

RegisterPlan Registrar::evaluate(const sip::Message& req, const Endpoint& from, Instant now) const {
  RegisterPlan plan;
  auto fail = [&](int status, std::string reason) {
    plan.status = status;
    plan.reason = std::move(reason);
    return plan;
  };
  // §10.3 step 4: the AOR is the To URI, and it must belong to the overlay.
  auto to = sip::parse_name_address(req.header(HeaderId::To).value_or(""));
  if (!to) return fail(400, "Malformed To");
  auto aor = canonical_aor(to->uri.text);
  if (!aor) return fail(404, "Not Found (To Is Not A sip: AOR With A User)");
  if (lower(to->uri.host) != lower(cfg_.domain))
    return fail(404, "Not Found (Not A User Of Overlay " + cfg_.domain + ")");
  plan.aor = *aor;

  auto it = aors_.find(plan.aor);
  std::vector<Binding> current;
  if (it != aors_.end()) {
    for (const auto& b : it->second) {
      if (b.expires > now) current.push_back(b);
    }
  }
  std::vector<sip::NameAddress> contacts;
  bool contacts_ok = true;
  req.for_each(HeaderId::Contact, [&](std::string_view v) {
    contacts_ok = contacts_ok && sip::parse_name_address_list(v, contacts, true);
  });
  if (!contacts_ok) return fail(400, "Malformed Contact");
  if (contacts.empty()) {  // §10.2.3: a query
    plan.query = true;
    plan.after = std::move(current);
    return plan;
  }
  std::optional<std::uint64_t> expires_header;
  if (auto e = req.header(HeaderId::Expires)) {
    expires_header = sip::parse_uint_header(*e, UINT32_MAX);
    if (!expires_header) return fail(400, "Malformed Expires");
  }
  std::string call_id(req.header(HeaderId::CallId).value_or(""));
  auto cseq = sip::parse_cseq(req.header(HeaderId::CSeq).value_or(""));
  if (!cseq) return fail(400, "Malformed CSeq");

  // §10.3 step 6: "*" removes every binding, and only with Expires: 0 and no other Contact.
  if (std::any_of(contacts.begin(), contacts.end(), [](const auto& c) { return c.star; })) {
    if (contacts.size() != 1 || expires_header != 0u) return fail(400, "Invalid Wildcard Contact");
    for (const auto& b : current) {
      // §10.3 step 6: the same Call-ID with a CSeq not above the binding's aborts the request.
      if (b.call_id == call_id && b.cseq >= cseq->number) return fail(500, "Out Of Order CSeq For Call-ID");
    }
    return plan;  // after: empty
  }

  std::vector<Binding> after = current;
  for (const auto& c : contacts) {
    if (!c.uri.is_sip() && c.uri.scheme != sip::UriScheme::Tel) return fail(400, "Unsupported Contact URI Scheme");
    std::uint64_t e = expires_header.value_or(cfg_.default_expires);
    if (auto p = c.params.get("expires")) {  // §10.2.1.1: the parameter wins over the header
      auto v = sip::parse_uint_header(*p, UINT32_MAX);
      if (!v) return fail(400, "Malformed Contact Expires");
      e = *v;
    }
    if (e != 0 && e < cfg_.min_expires) {
      plan.min_expires = cfg_.min_expires;
      return fail(423, "Interval Too Brief");
    }
    e = std::min<std::uint64_t>(e, cfg_.max_expires);
    auto existing =
        std::find_if(after.begin(), after.end(), [&](const Binding& b) { return same_uri(b.contact, c.uri.text); });
    if (existing != after.end()) {
      // §10.3 step 7: a replayed or reordered REGISTER must not roll a binding back.
      if (existing->call_id == call_id && existing->cseq >= cseq->number) {
        return fail(500, "Out Of Order CSeq For Call-ID");
      }
      if (e == 0) {
        after.erase(existing);
        continue;
      }
    } else if (e == 0) {
      continue;  // removing what is not there
    } else {
      after.emplace_back();
      existing = after.end() - 1;
      existing->contact = std::string(c.uri.text);
    }
    existing->q = std::string(c.params.get("q").value_or(""));
    existing->call_id = call_id;
    existing->cseq = cseq->number;
    existing->expires = now + seconds(static_cast<std::int64_t>(e));
    existing->source = from;
  }
  if (after.size() > cfg_.max_bindings_per_aor) return fail(403, "Too Many Bindings");
  if (current.empty() && !after.empty() && it == aors_.end() && aors_.size() >= cfg_.max_aors) {
    return fail(503, "Registrar Full");
  }
  plan.after = std::move(after);
  return plan;
}

std::string_view Registrar::user_of(std::string_view aor) {
  const auto colon = aor.find(':');
  const auto at = aor.rfind('@');
  if (colon == std::string_view::npos || at == std::string_view::npos || at < colon) return {};
  return aor.substr(colon + 1, at - colon - 1);
}

void Registrar::count_source(const Binding& b, int delta) {
  if (!cfg_.track_sources) return;
  Endpoint key = b.source;
  key.transport = Transport::Udp;
  auto& n = sources_[key];
  n = static_cast<std::uint32_t>(static_cast<int>(n) + delta);
  if (n == 0) sources_.erase(key);
}

void Registrar::count_sources(const std::vector<Binding>& bindings, int delta) {
  for (const auto& b : bindings) count_source(b, delta);
}

bool Registrar::has_source(const Endpoint& source) const {
  Endpoint key = source;
  key.transport = Transport::Udp;
  return sources_.count(key) != 0;
}

void Registrar::commit(const RegisterPlan& plan, Instant now) {
  if (plan.status != 200 || plan.query) return;
  std::vector<Binding> live;
  for (const auto& b : plan.after) {
    if (b.expires > now) live.push_back(b);
  }
  auto it = aors_.find(plan.aor);
  if (it != aors_.end()) {
    expiry_order_.erase({earliest(it->second), it->first});
    bindings_ -= it->second.size();
    count_sources(it->second, -1);
    if (live.empty()) {
      aors_.erase(it);
      return;
    }
    it->second = std::move(live);
  } else {
    if (live.empty()) return;
    it = aors_.emplace(plan.aor, std::move(live)).first;
  }
  bindings_ += it->second.size();
  count_sources(it->second, +1);
  expiry_order_.insert({earliest(it->second), it->first});
}

std::vector<Binding> Registrar::bindings(std::string_view aor, Instant now) const {
  std::vector<Binding> out;
  if (auto it = aors_.find(aor); it != aors_.end()) {
    for (const auto& b : it->second) {
      if (b.expires > now) out.push_back(b);
    }
  }
  return out;
}

sip::Message Registrar::make_ok(const sip::Message& request, const std::vector<Binding>& bindings, Instant now,
                                std::string_view to_tag) {
  sip::Message ok = sip::make_response(request, 200, {}, to_tag);
  for (const auto& b : bindings) {
    std::string v = "<" + b.contact + ">;expires=" + std::to_string(remaining_s(b, now));
    if (!b.q.empty()) v += ";q=" + b.q;
    ok.add_header(HeaderId::Contact, v);
  }
  return ok;
}

std::vector<std::string> Registrar::expire(Instant now) {
  std::vector<std::string> emptied;
  while (!expiry_order_.empty() && expiry_order_.begin()->first <= now) {
    std::string aor = expiry_order_.begin()->second;
    expiry_order_.erase(expiry_order_.begin());
    auto it = aors_.find(aor);
    if (it == aors_.end()) continue;
    bindings_ -= std::erase_if(it->second, [&](const Binding& b) {
      if (b.expires > now) return false;
      count_source(b, -1);
      return true;
    });
    if (it->second.empty()) {
      emptied.push_back(aor);
      aors_.erase(it);
    } else {
      expiry_order_.insert({earliest(it->second), aor});
    }
  }
  return emptied;
}

Instant Registrar::next_expiry() const {
  return expiry_order_.empty() ? kInstantMax : expiry_order_.begin()->first;
}

std::vector<std::string> Registrar::aor_list(std::size_t limit) const {
  // The `limit` smallest, kept sorted while the rest stream past (limit is small: status shows 100).
  std::vector<std::string> out;
  for (const auto& [aor, list] : aors_) {
    if (out.size() == limit && (limit == 0 || aor >= out.back())) continue;
    out.insert(std::upper_bound(out.begin(), out.end(), aor), aor);
    if (out.size() > limit) out.pop_back();
  }
  return out;
}

}  // namespace p2psip::proxy
