// Fnv1a: the 64-bit FNV-1a hash, stable across builds and platforms (std::hash is not), fed
// piece by piece. Its offset basis is the one hafab has always used, 1469598103934665603: a
// digit short of the published 14695981039346656037. Kept: spec hashes in the store and the
// ring's order are computed with it, and a new value would restart every instance at the
// next controller upgrade. Numbers go in one step per 64-bit word (FNV-1a's step on a word instead
// of a byte): the digests that use them are never stored. They are compared in memory, or
// between an agent and its controller (wire::ContentDigest), where a digest computed another way
// only costs sending a list again.
#pragma once

#include <cstdint>
#include <string_view>

namespace hafab {

class Fnv1a {
 public:
  Fnv1a& Add(std::string_view bytes) {
    for (unsigned char c : bytes) {
      h_ ^= c;
      h_ *= 1099511628211ULL;
    }
    return *this;
  }
  Fnv1a& Add(uint64_t v) {
    h_ ^= v;
    h_ *= 1099511628211ULL;
    return *this;
  }
  uint64_t value() const { return h_; }

 private:
  uint64_t h_ = 1469598103934665603ULL;
};

}  // namespace hafab
