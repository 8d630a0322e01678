// Random: seeded pseudo-randomness, the only source of it, so that a seed reproduces a run.
#pragma once

#include <cstdint>
#include <random>

namespace hafab {

// Not thread-safe: give each thread (or simulated component) its own.
class Random {
 public:
  explicit Random(uint64_t seed) : seed_(seed), engine_(seed) {}

  uint64_t seed() const { return seed_; }
  uint64_t Next() { return engine_(); }
  // Uniform in [0, n). REQUIRES: n > 0.
  uint64_t Uniform(uint64_t n) {
    return std::uniform_int_distribution<uint64_t>(0, n - 1)(engine_);
  }
  // Uniform in [0, 1).
  double UniformDouble() { return std::uniform_real_distribution<double>(0.0, 1.0)(engine_); }
  // True with probability p.
  bool OneIn(double p) { return UniformDouble() < p; }

 private:
  uint64_t seed_;
  std::mt19937_64 engine_;
};

}  // namespace hafab
