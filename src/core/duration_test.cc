#include "core/duration.h"

#include <gtest/gtest.h>

namespace hafab {
namespace {

using namespace std::chrono_literals;

TEST(DurationTest, Parses) {
  EXPECT_EQ(*ParseDuration("200ms"), 200ms);
  EXPECT_EQ(*ParseDuration("2s"), 2s);
  EXPECT_EQ(*ParseDuration("1m30s"), 90s);
  EXPECT_EQ(*ParseDuration("0"), 0s);
  EXPECT_EQ(*ParseDuration("5us"), 5us);
}

TEST(DurationTest, RejectsWithReason) {
  EXPECT_EQ(ParseDuration("2").status().message(),
            "invalid duration \"2\": missing unit (write e.g. 200ms, 2s, 1m; units: ns, us, ms, "
            "s, m, h)");
  EXPECT_NE(ParseDuration("2days").status().message().find("unknown unit"), std::string::npos);
  EXPECT_FALSE(ParseDuration("").ok());
  EXPECT_FALSE(ParseDuration("ms").ok());
}

// Beyond int64 nanoseconds (about 292 years): refused, not an overflowed (negative) value.
TEST(DurationTest, RefusesWhatOverflows) {
  EXPECT_EQ(*ParseDuration("2562047h"), 2562047h);
  EXPECT_EQ(*ParseDuration("2562047h47m"), 2562047h + 47min);
  for (const char* s : {"2562048h", "1000000000000h", "1000000000000s", "2562047h48m"}) {
    auto d = ParseDuration(s);
    ASSERT_FALSE(d.ok()) << s << " -> " << d->count();
    EXPECT_NE(d.status().message().find("too long"), std::string::npos) << s;
  }
}

TEST(DurationTest, FormatsRoundTrip) {
  for (const char* s : {"200ms", "2s", "90s", "1500ms", "3h", "7us"}) {
    EXPECT_EQ(FormatDuration(*ParseDuration(s)), s);
  }
  EXPECT_EQ(FormatDuration(0s), "0s");
}

}  // namespace
}  // namespace hafab
