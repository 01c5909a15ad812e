// Helpers to read the shared test data, byte-exact.
#pragma once

#include <fstream>
#include <sstream>
#include <string>

namespace p2psip::test {

inline std::string shared_dir() {
  return P2PSIP_SHARED_DIR;
}

inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace p2psip::test
