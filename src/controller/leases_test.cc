#include "controller/leases.h"

#include <gtest/gtest.h>

namespace hafab::controller {
namespace {

using namespace std::chrono_literals;

TEST(LeaseTableTest, RenewExtendsAndExpiryPopsInDeadlineOrder) {
  LeaseTable t;
  TimePoint t0{};
  EXPECT_TRUE(t.Renew("n1", t0 + 3s));
  EXPECT_TRUE(t.Renew("n2", t0 + 1s));
  EXPECT_FALSE(t.Renew("n1", t0 + 2s));  // renewal, not a new lease
  EXPECT_TRUE(t.PopExpired(t0 + 500ms).empty());
  EXPECT_EQ(t.PopExpired(t0 + 2s), (std::vector<std::string>{"n2", "n1"}));
  EXPECT_FALSE(t.Live("n1"));
  EXPECT_EQ(t.size(), 0u);
}

TEST(LeaseTableTest, RenewedLeaseDoesNotExpireAtItsOldDeadline) {
  LeaseTable t;
  TimePoint t0{};
  t.Renew("n1", t0 + 1s);
  t.Renew("n1", t0 + 5s);
  EXPECT_TRUE(t.PopExpired(t0 + 2s).empty());
  EXPECT_TRUE(t.Live("n1"));
  t.Remove("n1");
  EXPECT_TRUE(t.PopExpired(t0 + 10s).empty());
}

// Leases ending at the same instant expire by name, and Holders lists names in order, whatever
// order the hash map holds them in.
TEST(LeaseTableTest, EqualDeadlinesExpireByNameAndHoldersAreSorted) {
  LeaseTable t;
  TimePoint t0{};
  for (const char* n : {"n3", "n1", "n4", "n2"}) t.Renew(n, t0 + 1s);
  t.Renew("n5", t0 + 2s);
  t.Renew("n3", t0 + 3s);  // moves past the others
  EXPECT_EQ(t.Holders(), (std::vector<std::string>{"n1", "n2", "n3", "n4", "n5"}));
  EXPECT_EQ(t.PopExpired(t0 + 2s), (std::vector<std::string>{"n1", "n2", "n4", "n5"}));
  EXPECT_EQ(t.Deadline("n3"), t0 + 3s);
  EXPECT_EQ(t.Holders(), (std::vector<std::string>{"n3"}));
}

// Expiry looks only at the front of the ordered set: with many live leases, popping the one
// that expired must not depend on visiting the others. Measured as work: a large table
// whose leases are far in the future costs the same as a small one.
TEST(LeaseTableTest, ExpiryCostDoesNotScanLiveLeases) {
  LeaseTable t;
  TimePoint t0{};
  for (int i = 0; i < 100000; ++i) t.Renew("n" + std::to_string(i), t0 + 1h);
  t.Renew("late", t0 + 1s);
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 1000; ++i) {
    t.Renew("late", t0 + 1s);
    ASSERT_EQ(t.PopExpired(t0 + 2s).size(), 1u);
  }
  auto took = std::chrono::steady_clock::now() - start;
  // 1000 renew+expire pairs over 100k leases: a scan would cost 10^8 visits (seconds).
  EXPECT_LT(took, 200ms);
  EXPECT_EQ(t.size(), 100000u);
}

}  // namespace
}  // namespace hafab::controller
