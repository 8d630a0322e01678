#include "core/fnv.h"

#include <gtest/gtest.h>

namespace hafab {

// FNV-1a with hafab's offset basis (fnv.h): spec hashes in the store and the ring's order
// depend on these values staying the same.
TEST(Fnv1aTest, KeepsItsValues) {
  EXPECT_EQ(Fnv1a().value(), 1469598103934665603ULL);
  EXPECT_EQ(Fnv1a().Add("a").value(), 0x44bd8ad473cd9906ULL);
  EXPECT_EQ(Fnv1a().Add("foobar").value(), 0x88fad7c0a8ff07f2ULL);
  EXPECT_EQ(Fnv1a().Add("foo").Add("bar").value(), Fnv1a().Add("foobar").value());
}

TEST(Fnv1aTest, ANumberChangesTheDigest) {
  EXPECT_NE(Fnv1a().Add(uint64_t{1}).value(), Fnv1a().Add(uint64_t{2}).value());
  EXPECT_NE(Fnv1a().Add(uint64_t{1} << 63).value(), Fnv1a().Add(uint64_t{0}).value());
}

}  // namespace hafab
