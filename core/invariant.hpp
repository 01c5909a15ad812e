// Invariant checks of the core's data structures (a routing table's order, a timer heap's), compiled
// in with -DP2PSIP_INVARIANTS=ON (the sanitizer build that runs the test suite, and simulator runs
// meant to verify rather than to measure) and to nothing otherwise. A structure describes what is
// wrong with it (an empty string when nothing is); a broken invariant stops the process at once,
// naming it and where it was checked, rather than letting a run go on with corrupt state.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

namespace p2psip {

/// Whether this build checks invariants.
inline constexpr bool kInvariantsChecked =
#if defined(P2PSIP_CHECK_INVARIANTS)
    true;
#else
    false;
#endif

inline void check_invariant(const std::string& violation, const char* file, int line) {
  if (violation.empty()) return;
  std::fprintf(stderr, "p2psip: invariant broken at %s:%d: %s\n", file, line, violation.c_str());
  std::abort();
}

}  // namespace p2psip

#if defined(P2PSIP_CHECK_INVARIANTS)
#define P2PSIP_CHECK_INVARIANT(violation) ::p2psip::check_invariant((violation), __FILE__, __LINE__)
#else
#define P2PSIP_CHECK_INVARIANT(violation) ((void)0)
#endif
