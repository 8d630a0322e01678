// Runs the built `hafab validate` as an operator would.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace {

struct CommandRun {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

CommandRun Hafab(const std::string& args) {
  CommandRun run;
  std::string cmd = std::string(HAFAB_BINARY) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return run;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) run.output.append(buf, n);
  int status = pclose(p);
  if (WIFEXITED(status)) run.exit_code = WEXITSTATUS(status);
  return run;
}

const std::string kExamples = std::string(HAFAB_SOURCE_DIR) + "/examples/";

TEST(ValidateCommandTest, QuickstartIsOk) {
  CommandRun run = Hafab("validate " + kExamples + "quickstart.yaml");
  EXPECT_EQ(run.exit_code, 0);
  EXPECT_EQ(run.output, "ok\n");
}

TEST(ValidateCommandTest, BadManifestPrintsEachErrorAndFails) {
  CommandRun run = Hafab("validate " + kExamples + "bad.yaml");
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_THAT(run.output, ::testing::StartsWith(
                              kExamples + "bad.yaml:6:11: error: roles[0].mode: \"activ-passive\" "
                                          "is not one of active-passive, load-balanced, "
                                          "replicated\n"));
  EXPECT_THAT(run.output, ::testing::HasSubstr("did you mean \"instances\"?\n"));
  EXPECT_THAT(run.output, ::testing::Not(::testing::HasSubstr("\nok\n")));
}

TEST(ValidateCommandTest, UnreadableFile) {
  CommandRun run = Hafab("validate /nonexistent.yaml");
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_EQ(run.output,
            "/nonexistent.yaml: error: cannot read manifest: No such file or directory\n");
}

TEST(ValidateCommandTest, MissingArgumentIsAUsageError) {
  EXPECT_EQ(Hafab("validate").exit_code, 2);
}

TEST(ValidateCommandTest, PrintWritesTheCanonicalForm) {
  CommandRun run = Hafab("validate --print " + kExamples + "quickstart.yaml");
  EXPECT_EQ(run.exit_code, 0);
  EXPECT_THAT(run.output, ::testing::StartsWith("cluster: quickstart\n"));
  EXPECT_THAT(run.output, ::testing::HasSubstr("    volume: kvd-data\n"));
}

}  // namespace
