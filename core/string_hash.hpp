// Hashing for unordered containers keyed by std::string that are looked up with string_views
// (C++20 heterogeneous lookup): no temporary string per lookup.
#pragma once

#include <functional>
#include <string>
#include <string_view>

namespace p2psip {

struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

}  // namespace p2psip
