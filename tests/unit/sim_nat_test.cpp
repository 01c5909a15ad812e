// The simulator's NAT model (sim/nat_model.hpp): each RFC 4787 behaviour maps and filters as the RFC
// defines it, bindings expire, and ICE played through two boxes finds, for every pair of the lab's
// NAT kinds, the disposition tests/natlab/dispositions.txt holds, which the namespace lab's real
// NATs and libnice are held to as well (natlab.ice): the model checked against the lab, cell by cell.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "sim/nat_model.hpp"

namespace p2psip::test {
namespace {

using namespace p2psip::sim;

Endpoint ep(const char* ip, std::uint16_t port) {
  return {Transport::Udp, *IpAddress::parse(ip), port};
}
const Instant t0{};

TEST(SimNat, EachBehaviourMapsAndFiltersAsRfc4787Says) {
  const Endpoint inside = ep("10.0.1.2", 5070), s1 = ep("198.51.100.2", 3478), s2 = ep("198.51.100.3", 3478),
                 s1_other_port = ep("198.51.100.2", 3479);
  // Endpoint-independent mapping, port preserved; filtering by kind.
  for (const char* kind : {"full-cone", "addr-restricted", "port-restricted"}) {
    NatBox box(*nat_kind(kind), *IpAddress::parse("198.51.100.11"));
    auto m1 = box.out(inside, s1, t0);
    auto m2 = box.out(inside, s2, t0);
    ASSERT_TRUE(m1 && m2) << kind;
    EXPECT_EQ(*m1, *m2) << kind;
    EXPECT_EQ(m1->port, 5070) << kind;
    EXPECT_EQ(box.in(*m1, s1, t0), inside) << kind;  // an answer comes in everywhere
    const bool from_other_port = box.in(*m1, s1_other_port, t0).has_value();
    const bool from_stranger = box.in(*m1, ep("203.0.113.9", 4000), t0).has_value();
    EXPECT_EQ(from_other_port, std::string(kind) != "port-restricted") << kind;
    EXPECT_EQ(from_stranger, std::string(kind) == "full-cone") << kind;
  }
  // Address- and port-dependent mapping: a new outside port per destination.
  NatBox sym(*nat_kind("symmetric"), *IpAddress::parse("198.51.100.16"), 3);
  auto a = sym.out(inside, s1, t0), b = sym.out(inside, s1_other_port, t0), again = sym.out(inside, s1, t0);
  ASSERT_TRUE(a && b && again);
  EXPECT_NE(a->port, b->port);
  EXPECT_EQ(*a, *again);
  EXPECT_FALSE(sym.in(*a, s1_other_port, t0));  // only what was sent to through this mapping
  EXPECT_EQ(sym.mappings(), 2U);
  // UDP blocked: nothing goes out.
  NatBox blocked(*nat_kind("udp-blocked"), *IpAddress::parse("198.51.100.18"));
  EXPECT_FALSE(blocked.out(inside, s1, t0));
  // A binding lives binding_timeout past the last datagram out (RFC 4787 REQ-5, REQ-6).
  NatBox pr(*nat_kind("port-restricted"), *IpAddress::parse("198.51.100.14"));
  auto m = pr.out(inside, s1, t0);
  EXPECT_TRUE(pr.in(*m, s1, t0 + seconds(119)));
  pr.out(inside, s1, t0 + seconds(100));
  EXPECT_TRUE(pr.in(*m, s1, t0 + seconds(219)));
  EXPECT_FALSE(pr.in(*m, s1, t0 + seconds(220)));
  EXPECT_FALSE(nat_kind("public"));
  EXPECT_TRUE(known_nat_kind("public"));
  EXPECT_FALSE(known_nat_kind("carrier-grade"));
}

struct Cell {
  std::string a, b, with_turn, without_turn;
};

std::vector<Cell> lab_cells() {
  std::ifstream in(P2PSIP_NATLAB_DIR "/dispositions.txt");
  std::vector<Cell> cells;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream f(line);
    Cell c;
    f >> c.a >> c.b >> c.with_turn >> c.without_turn;
    cells.push_back(c);
  }
  return cells;
}

TEST(SimNat, IceThroughTheModelFindsTheLabsDispositionCellByCell) {
  const auto cells = lab_cells();
  ASSERT_EQ(cells.size(), 21U) << "tests/natlab/dispositions.txt: every pair of the six kinds";
  for (const auto& c : cells) {
    for (bool turn : {true, false}) {
      for (bool swapped : {false, true}) {  // either side may send the Attach
        const Disposition d = swapped ? kinds_disposition(c.b, c.a, turn) : kinds_disposition(c.a, c.b, turn);
        EXPECT_EQ(disposition_name(d), turn ? c.with_turn : c.without_turn)
            << c.a << " x " << c.b << (turn ? " with TURN" : " without TURN") << (swapped ? " (swapped)" : "");
      }
    }
  }
}

}  // namespace
}  // namespace p2psip::test
