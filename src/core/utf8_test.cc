#include "core/utf8.h"

#include <gtest/gtest.h>

#include <string>

#include "core/json.h"

namespace hafab {
namespace {

constexpr size_t kValid = std::string_view::npos;

TEST(Utf8Test, AcceptsWellFormedText) {
  EXPECT_EQ(FindInvalidUtf8(""), kValid);
  EXPECT_EQ(FindInvalidUtf8("plain ascii\n"), kValid);
  EXPECT_EQ(FindInvalidUtf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), kValid);
  EXPECT_EQ(FindInvalidUtf8("\xf4\x8f\xbf\xbf"), kValid);  // U+10FFFF
}

TEST(Utf8Test, FindsTheFirstBadByte) {
  EXPECT_EQ(FindInvalidUtf8("ab\xff"), 2u);
  EXPECT_EQ(FindInvalidUtf8("a\xc3"), 1u);             // truncated
  EXPECT_EQ(FindInvalidUtf8("\xc0\xaf"), 0u);          // overlong '/'
  EXPECT_EQ(FindInvalidUtf8("\xe0\x80\xaf"), 0u);      // overlong
  EXPECT_EQ(FindInvalidUtf8("x\xed\xa0\x80"), 1u);     // a surrogate
  EXPECT_EQ(FindInvalidUtf8("\xf4\x90\x80\x80"), 0u);  // above U+10FFFF
  EXPECT_EQ(FindInvalidUtf8("\xe2\x82"
                            "a"),
            0u);                                   // bad continuation
  EXPECT_EQ(FindInvalidUtf8("\xc3\xa9\x80"), 2u);  // a lone continuation byte
}

TEST(JsonDumpTest, InvalidUtf8IsReplacedNotThrown) {
  nlohmann::json j = {{"node",
                       "n\xff"
                       "1"}};
  EXPECT_THROW((void)j.dump(), nlohmann::json::type_error);
  EXPECT_EQ(Dump(j),
            "{\"node\":\"n\xef\xbf\xbd"
            "1\"}");
}

}  // namespace
}  // namespace hafab
