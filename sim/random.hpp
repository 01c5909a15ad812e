// Deterministic random numbers for the simulator: xoshiro256** seeded through splitmix64, and the
// distributions scenarios name, written out here so that a seed gives the same run with any
// standard library (std::*_distribution results differ between implementations).
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

namespace p2psip::sim {

/// splitmix64 (Steele, Lea, Flood 2014): spreads one seed into well-mixed 64-bit values.
constexpr std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/// xoshiro256** (Blackman, Vigna 2018). 32 bytes of state.
class Rng {
 public:
  Rng() : Rng(0) {}
  explicit Rng(std::uint64_t seed) {
    for (auto& w : s_) w = splitmix64(seed);
  }
  /// A stream for (seed, stream): independent streams for nodes and models from one --seed.
  Rng(std::uint64_t seed, std::uint64_t stream)
      : Rng(seed ^ (stream * 0xd1342543de82ef95ULL + 0x632be59bd9b4e019ULL)) {}

  std::uint64_t next() {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  /// Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  /// Uniform in (0, 1]: safe for log().
  double uniform_open0() { return 1.0 - uniform(); }
  /// Uniform integer in [0, n), n > 0 (Lemire's multiply-shift; the bias is below 2^-32 for n < 2^32).
  std::uint64_t below(std::uint64_t n) {
    __extension__ using U128 = unsigned __int128;
    return static_cast<std::uint64_t>((static_cast<U128>(next()) * n) >> 64);
  }

 private:
  static constexpr std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::uint64_t s_[4];
};

/// A distribution of non-negative values (delays in ms, session times in s) as a scenario names it.
struct Distribution {
  enum class Kind : std::uint8_t { Constant, Uniform, Exponential, Pareto, Weibull, Lognormal };
  Kind kind = Kind::Constant;
  /// Constant: value. Uniform: min, max. Exponential: mean. Pareto: scale x_m, shape alpha.
  /// Weibull: scale lambda, shape k. Lognormal: mu, sigma (of the underlying normal).
  double a = 0;
  double b = 0;

  double sample(Rng& rng) const {
    switch (kind) {
      case Kind::Constant: return a;
      case Kind::Uniform: return a + (b - a) * rng.uniform();
      case Kind::Exponential: return -a * std::log(rng.uniform_open0());
      case Kind::Pareto: return a / std::pow(rng.uniform_open0(), 1.0 / b);
      case Kind::Weibull: return a * std::pow(-std::log(rng.uniform_open0()), 1.0 / b);
      case Kind::Lognormal: {
        // Box-Muller; one of the pair is enough here.
        const double u1 = rng.uniform_open0();
        const double u2 = rng.uniform();
        const double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
        return std::exp(a + b * z);
      }
    }
    return a;
  }
  /// The mean (infinite for Pareto with shape <= 1).
  [[nodiscard]] double mean() const {
    switch (kind) {
      case Kind::Constant: return a;
      case Kind::Uniform: return (a + b) / 2;
      case Kind::Exponential: return a;
      case Kind::Pareto: return b > 1 ? a * b / (b - 1) : INFINITY;
      case Kind::Weibull: return a * std::tgamma(1.0 + 1.0 / b);
      case Kind::Lognormal: return std::exp(a + b * b / 2);
    }
    return a;
  }
  /// "exponential(mean=600)" style text, as the summary reports it.
  [[nodiscard]] std::string describe() const;
};

}  // namespace p2psip::sim
