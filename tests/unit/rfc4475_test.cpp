// Walks ../shared/testdata/rfc4475 and checks each message is handled as MANIFEST.tsv says: accepted,
// rejected or either, and answered with the status code the manifest names.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "node/sip/headers.hpp"
#include "node/sip/validate.hpp"
#include "test_data.hpp"

namespace p2psip::sip {
namespace {

struct Row {
  std::string file, section, title, expect, answer;
};

std::vector<Row> load_manifest() {
  std::vector<Row> rows;
  std::ifstream in(test::shared_dir() + "/testdata/rfc4475/MANIFEST.tsv");
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#' || line.rfind("file\t", 0) == 0) continue;
    Row r;
    std::stringstream ss(line);
    std::getline(ss, r.file, '\t');
    std::getline(ss, r.section, '\t');
    std::getline(ss, r.title, '\t');
    std::getline(ss, r.expect, '\t');
    std::getline(ss, r.answer, '\t');
    rows.push_back(r);
  }
  return rows;
}

/// The element of this test: a UAS that also registers (REGISTER is in the manifest's "process" rows).
Capabilities element() {
  Capabilities c;
  c.methods.push_back("REGISTER");
  c.methods.push_back("MESSAGE");
  return c;
}

/// What the element does with the message: whether it parsed, whether it is valid, and the answer
/// (a status code, "discard", or "process").
struct Outcome {
  bool parsed = false;
  bool valid = false;
  std::string answer;
};

Outcome handle(const std::string& bytes) {
  auto parsed = parse_datagram(bytes);
  if (!parsed) return {false, false, parsed.error().status == 0 ? "discard" : std::to_string(parsed.error().status)};
  if (auto r = check_message(*parsed)) return {true, false, r->status == 0 ? "discard" : std::to_string(r->status)};
  if (parsed->is_response()) {
    // A proxy forwards a response to the Via below its own; never toward a broadcast address.
    std::vector<Via> vias;
    parsed->for_each(HeaderId::Via, [&](std::string_view v) { parse_via_list(v, vias); });
    if (vias.size() >= 2 && forbidden_destination(vias[1])) return {true, true, "discard"};
    return {true, true, "process"};
  }
  if (auto cap = check_request_capabilities(*parsed, element())) return {true, true, std::to_string(cap->status)};
  return {true, true, "process"};
}

TEST(Rfc4475, ManifestCoversEveryFile) {
  auto rows = load_manifest();
  ASSERT_EQ(rows.size(), 49u);
  std::size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(test::shared_dir() + "/testdata/rfc4475")) {
    files += e.path().extension() == ".dat" ? 1 : 0;
  }
  EXPECT_EQ(files, rows.size());
}

TEST(Rfc4475, EveryMessageHandledAsTheManifestSays) {
  auto rows = load_manifest();
  ASSERT_FALSE(rows.empty());
  for (const auto& row : rows) {
    SCOPED_TRACE(row.file + " (RFC 4475 §" + row.section + " " + row.title + ")");
    std::string bytes = test::read_bytes(test::shared_dir() + "/testdata/rfc4475/" + row.file);
    Outcome o = handle(bytes);
    const std::string& a = row.answer;
    if (row.expect == "reject") {
      EXPECT_FALSE(o.valid);
    } else if (row.expect == "accept") {
      EXPECT_TRUE(o.parsed);
    } else {
      ASSERT_EQ(row.expect, "either");
      EXPECT_TRUE(o.valid || o.answer == "400") << o.answer;
    }
    if (a.rfind("process", 0) == 0 || a.rfind("discard", 0) == 0) {
      // "process" may also be a capability answer for a method this element does not implement.
      std::string want = a.substr(0, 7);
      EXPECT_TRUE(o.answer == want || (want == "process" && o.answer == "501")) << "got " << o.answer;
    } else if (a.rfind("400 or 501", 0) == 0) {
      EXPECT_TRUE(o.answer == "400" || o.answer == "501") << o.answer;
    } else if (a.rfind("400 or process", 0) == 0) {
      EXPECT_TRUE(o.answer == "400" || o.answer == "process") << o.answer;
    } else {
      EXPECT_EQ(o.answer, a.substr(0, 3));
    }
  }
}

TEST(Rfc4475, CapabilityAnswersCarryTheRequiredHeader) {
  auto load = [](const char* f) {
    return parse_datagram(test::read_bytes(test::shared_dir() + "/testdata/rfc4475/" + f)).value();
  };
  auto bext = load("bext01.dat");
  auto r = check_request_capabilities(bext, element());
  ASSERT_TRUE(r);
  Message resp = make_rejection(bext, *r, "t1");
  EXPECT_EQ(resp.status(), 420);
  EXPECT_EQ(resp.header(HeaderId::Unsupported).value(), "nothingSupportsThis, nothingSupportsThisEither");

  auto invut = load("invut.dat");
  r = check_request_capabilities(invut, element());
  ASSERT_TRUE(r);
  resp = make_rejection(invut, *r, "t1");
  EXPECT_EQ(resp.status(), 415);
  EXPECT_TRUE(resp.header(HeaderId::Accept).value().find("application/sdp") != std::string_view::npos);
}

TEST(Rfc4475, ZeroMaxForwardsIsProcessedAtUasButNotForwarded) {
  auto m = parse_datagram(test::read_bytes(test::shared_dir() + "/testdata/rfc4475/zeromf.dat")).value();
  EXPECT_FALSE(check_request_capabilities(m, element()));
  auto r = check_forwardable(m);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 483);
}

TEST(Rfc4475, RegisterParametersAndEscapedHeadersKept) {
  auto load = [](const char* f) {
    return parse_datagram(test::read_bytes(test::shared_dir() + "/testdata/rfc4475/" + f)).value();
  };
  // The parsed contacts are views into their message: each message outlives its contacts.
  auto only_contact = [](const Message& m) {
    std::vector<NameAddress> list;
    EXPECT_TRUE(parse_name_address_list(*m.header(HeaderId::Contact), list, true));
    EXPECT_EQ(list.size(), 1u);
    return list.empty() ? NameAddress{} : list[0];
  };
  Message m1 = load("cparam01.dat");
  EXPECT_TRUE(only_contact(m1).params.has("unknownparam"));  // addr-spec: the parameter belongs to the header
  Message m2 = load("cparam02.dat");
  NameAddress c2 = only_contact(m2);
  EXPECT_TRUE(c2.uri.has_param("unknownparam") || c2.params.has("unknownparam"));
  Message m3 = load("regescrt.dat");
  EXPECT_EQ(only_contact(m3).uri.headers, "Route=%3Csip:sip.example.com%3E");
  // Serialization keeps the binding byte for byte.
  auto again = parse_datagram(m3.serialize()).value();
  EXPECT_EQ(again.header(HeaderId::Contact).value(), "<sip:user@example.com?Route=%3Csip:sip.example.com%3E>");
}

TEST(Rfc4475, UnknownSchemesKeptOpaque) {
  auto m = parse_datagram(test::read_bytes(test::shared_dir() + "/testdata/rfc4475/unksm2.dat")).value();
  auto to = parse_name_address(*m.header(HeaderId::To));
  ASSERT_TRUE(to);
  EXPECT_EQ(to->uri.scheme, UriScheme::Other);
  EXPECT_EQ(to->uri.text, "isbn:2983792873");
  auto from = parse_name_address(*m.header(HeaderId::From));
  ASSERT_TRUE(from);
  EXPECT_EQ(from->uri.text, "http://www.example.com");
  EXPECT_EQ(from->params.get("tag").value(), "3234233");
}

TEST(Rfc4475, EveryAcceptedMessageSurvivesSerializeAndReparse) {
  for (const auto& row : load_manifest()) {
    SCOPED_TRACE(row.file);
    auto first = parse_datagram(test::read_bytes(test::shared_dir() + "/testdata/rfc4475/" + row.file));
    if (!first || check_message(*first)) continue;  // the property is for valid messages
    std::string once = first->serialize();
    auto second = parse_datagram(once);
    ASSERT_TRUE(second) << second.error().reason;
    EXPECT_EQ(second->serialize(), once);
    // Serialization adds a Content-Length where the datagram had none (RFC 2543 style messages).
    EXPECT_EQ(second->headers().size() - second->count(HeaderId::ContentLength),
              first->headers().size() - first->count(HeaderId::ContentLength));
    EXPECT_EQ(second->body(), first->body());
    EXPECT_FALSE(check_message(*second));
  }
}

}  // namespace
}  // namespace p2psip::sip
