#include "core/status.h"

#include <gtest/gtest.h>

#include "core/result.h"

namespace hafab {
namespace {

Result<int> Half(int n) {
  if (n % 2) return Status::InvalidArgument("odd: " + std::to_string(n));
  return n / 2;
}

Result<int> Quarter(int n) {
  HAFAB_ASSIGN_OR_RETURN(int h, Half(n));
  return Half(h);
}

TEST(StatusTest, OkAndErrors) {
  EXPECT_TRUE(Status::Ok().ok());
  Status s = Status::NotFound("key /a");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.ToString(), "NotFound: key /a");
  EXPECT_EQ(s.WithContext("get").message(), "get: key /a");
}

TEST(ResultTest, ValueAndPropagation) {
  EXPECT_EQ(*Quarter(8), 2);
  Result<int> r = Quarter(6);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(), "odd: 3");
  EXPECT_EQ(r.value_or(-1), -1);
}

TEST(ResultDeathTest, ValueOfErrorIsACheckFailure) {
  EXPECT_DEATH({ (void)Half(3).value(); }, "check failed");
}

}  // namespace
}  // namespace hafab
