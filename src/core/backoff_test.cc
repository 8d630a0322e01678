#include "core/backoff.h"

#include <gtest/gtest.h>

namespace hafab {
namespace {

using namespace std::chrono_literals;

TEST(BackoffTest, DoublesUpToTheMaximumAndResets) {
  Backoff b(100ms, 1s);
  EXPECT_EQ(b.Next(), 100ms);
  EXPECT_EQ(b.Next(), 200ms);
  EXPECT_EQ(b.Next(), 400ms);
  EXPECT_EQ(b.Next(), 800ms);
  EXPECT_EQ(b.Next(), 1s);
  EXPECT_EQ(b.Next(), 1s);
  b.Reset();
  EXPECT_EQ(b.Next(), 100ms);
}

}  // namespace
}  // namespace hafab
