#include "core/log.h"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

namespace hafab {
namespace {

TEST(LogTest, JsonLinesAreValidJson) {
  ASSERT_TRUE(InitLogging("test", "json", "info").ok());
  testing::internal::CaptureStderr();
  spdlog::info("quote \" and newline \n done");
  std::string out = testing::internal::GetCapturedStderr();
  auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["component"], "test");
  EXPECT_EQ(j["level"], "info");
  EXPECT_EQ(j["msg"], "quote \" and newline \n done");
}

TEST(LogTest, RejectsUnknownFormatAndLevel) {
  EXPECT_EQ(InitLogging("t", "xml", "info").message(),
            "--log-format: unknown format \"xml\" (allowed: text, json)");
  EXPECT_EQ(InitLogging("t", "text", "loud").code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace hafab
