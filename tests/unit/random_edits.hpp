// Values near a given one, for tests that compare a fast path with the general code on everything
// close to the forms the fast path takes.
#pragma once

#include <cstddef>
#include <random>
#include <string>
#include <string_view>

namespace p2psip::test {

/// `v` with 1 to `most` random edits: a character replaced, inserted or removed, the new
/// characters drawn from `alphabet`.
inline std::string with_random_edits(std::string v, std::mt19937_64& rng, std::string_view alphabet, int most = 3) {
  for (int edits = 1 + static_cast<int>(rng() % static_cast<unsigned>(most)); edits > 0; --edits) {
    const std::size_t at = rng() % (v.size() + 1);
    const char c = alphabet[rng() % alphabet.size()];
    switch (rng() % 3) {
      case 0:
        if (at < v.size()) v[at] = c;
        break;
      case 1: v.insert(v.begin() + static_cast<std::ptrdiff_t>(at), c); break;
      default:
        if (at < v.size()) v.erase(at, 1);
        break;
    }
  }
  return v;
}

}  // namespace p2psip::test
