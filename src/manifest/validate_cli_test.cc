// Runs the built `hafab validate` as an operator would.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

namespace {

struct CommandRun {
  int exit_code = -1;
  std::string output;  // stdout, and stderr unless left out
};

CommandRun Hafab(const std::string& args, bool with_stderr = true) {
  CommandRun run;
  std::string cmd =
      std::string(HAFAB_BINARY) + " " + args + (with_stderr ? " 2>&1" : " 2>/dev/null");
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
  if (geteuid() != 0) {
    EXPECT_EQ(run.output, "ok\n");
    return;
  }
  // As root, each role without user: is warned about (an agent as root runs it as root).
  EXPECT_THAT(run.output,
              ::testing::HasSubstr("quickstart.yaml:23:5: warning: roles[0] (kvd): no user:, so an "
                                   "agent running as root runs it as root"));
  EXPECT_THAT(run.output, ::testing::EndsWith("\nok\n"));
}

TEST(ValidateCommandTest, UserAndGroupAreNamesAndSilenceTheRootWarning) {
  const std::string path = ::testing::TempDir() + "/user.yaml";
  std::ofstream(path) << "cluster: c\nroles:\n  - name: db\n    command: sleep\n"
                         "    user: postgres\n    group: postgres\n";
  CommandRun run = Hafab("validate " + path);
  EXPECT_EQ(run.exit_code, 0);
  EXPECT_EQ(run.output, "ok\n");
  std::ofstream(path) << "cluster: c\nroles:\n  - name: db\n    command: sleep\n"
                         "    user: \"bad user\"\n";
  run = Hafab("validate " + path);
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_THAT(run.output,
              ::testing::HasSubstr("user.yaml:5:11: error: roles[0].user: \"bad user\" is not a "
                                   "valid account name"));
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
  // Diagnostics (as root: the warnings for roles without user:) go to stderr.
  CommandRun run = Hafab("validate --print " + kExamples + "quickstart.yaml", false);
  EXPECT_EQ(run.exit_code, 0);
  EXPECT_THAT(run.output, ::testing::StartsWith("cluster: quickstart\n"));
  EXPECT_THAT(run.output, ::testing::HasSubstr("    volume: kvd-data\n"));
}

// What the controller refuses, `hafab validate` refuses too (they share manifest/limits.h);
// these three used to be "ok" and then hang, truncate or abort the controller.
TEST(ValidateCommandTest, RefusesWhatTheControllerWould) {
  std::string path = ::testing::TempDir() + "/limits.yaml";
  const std::pair<std::string, std::string> cases[] = {
      {"    instances: 1000000000\n",
       ":4:16: error: roles[0].instances: 1000000000 is out of range"},
      {"    instances: 4294967298\n",
       ":4:16: error: roles[0].instances: 4294967298 is out of range"},
      {"    env: {A: \"\xff\"}\n", ":4:15: error: not valid UTF-8"}};
  for (const auto& [lines, error] : cases) {
    FILE* f = fopen(path.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::string text = "roles:\n  - name: web\n    command: web-app\n" + lines;
    fwrite(text.data(), 1, text.size(), f);
    fclose(f);
    CommandRun run = Hafab("validate " + path);
    EXPECT_EQ(run.exit_code, 1) << run.output;
    EXPECT_THAT(run.output, ::testing::StartsWith(path + error)) << run.output;
  }
  CommandRun scale = Hafab("scale web 1001 --api http://127.0.0.1:1");
  EXPECT_NE(scale.exit_code, 0);
  EXPECT_THAT(scale.output, ::testing::HasSubstr("1000")) << scale.output;
}

}  // namespace
