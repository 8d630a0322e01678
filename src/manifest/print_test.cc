// PrintManifest: what it prints reads back to an equal manifest.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "manifest/parser.h"
#include "manifest/test_helpers.h"

namespace hafab::manifest {
namespace {

using namespace std::chrono_literals;

// Parses `m`'s printout and expects the same manifest back, without diagnostics changing.
void ExpectRoundTrip(const Manifest& m) {
  std::string printed = PrintManifest(m);
  ParseOutcome again = ParseManifest(printed, "printed.yaml");
  ASSERT_TRUE(again.ok()) << again.diagnostics[0].ToString() << "\n" << printed;
  EXPECT_TRUE(*again.manifest == m) << printed;
  // Printing is deterministic and a fixed point.
  EXPECT_EQ(PrintManifest(*again.manifest), printed);
}

Manifest Load(const std::string& relative) {
  ParseOutcome out = LoadManifestFile(std::string(HAFAB_SOURCE_DIR) + "/" + relative);
  EXPECT_TRUE(out.ok()) << (out.diagnostics.empty() ? "" : out.diagnostics[0].ToString());
  return out.manifest.value_or(Manifest{});
}

TEST(PrintTest, QuickstartRoundTrips) {
  Manifest m = Load("examples/quickstart.yaml");
  ASSERT_EQ(m.roles.size(), 2u);
  ExpectRoundTrip(m);
}

TEST(PrintTest, MaximalManifestRoundTrips) {
  Manifest m = Load("src/manifest/testdata/maximal.yaml");
  ASSERT_EQ(m.roles.size(), 4u);
  // Every section differs from its default, so the printer must write each one.
  const Role& db = m.roles[0];
  EXPECT_NE(db.restart, Restart{});
  EXPECT_NE(db.resources, Resources{});
  EXPECT_NE(db.update, UpdatePolicy{});
  EXPECT_NE(db.stop_grace, Role{}.stop_grace);
  ASSERT_TRUE(db.drain.has_value());
  ExpectRoundTrip(m);
}

TEST(PrintTest, NodeCountPrintsAsAList) {
  ParseOutcome out = ParseManifest("nodes: 2\n" + std::string(kOneRole), "m.yaml");
  ASSERT_TRUE(out.ok());
  std::string printed = PrintManifest(*out.manifest);
  EXPECT_THAT(printed, ::testing::HasSubstr("fault_domain: fd2"));
  ExpectRoundTrip(*out.manifest);
}

TEST(PrintTest, AwkwardStringsAndNumbersRoundTrip) {
  Manifest m;
  m.cluster = "c";
  Role r;
  r.name = "web";
  r.command = "/bin/sh";
  r.args = {"-c", "echo 'a: b' # not a comment", "", "null", "~", "true", "1.0", "- x", "[y]"};
  r.env = {{"EMPTY", ""}, {"NUM", "007"}, {"QUOTE", "say \"hi\"\nbye"}, {"YES", "yes"}};
  r.version = "1.10";
  r.resources.cpu = 0.1;
  r.resources.memory_bytes = 1536;
  r.stop_grace = 0s;
  m.roles.push_back(r);
  ExpectRoundTrip(m);
}

TEST(PrintTest, QuotesTextThatOtherYamlToolsWouldReadAsNumbersOrBooleans) {
  Manifest m;
  Role r;
  r.name = "web";
  r.command = "web-app";
  r.version = "1.10";
  r.env = {{"ON", "yes"}, {"N", "007"}, {"WORD", "plain"}};
  m.roles.push_back(r);
  std::string printed = PrintManifest(m);
  EXPECT_THAT(printed, ::testing::HasSubstr("version: \"1.10\""));
  EXPECT_THAT(printed, ::testing::HasSubstr("ON: \"yes\""));
  EXPECT_THAT(printed, ::testing::HasSubstr("N: \"007\""));
  EXPECT_THAT(printed, ::testing::HasSubstr("WORD: plain"));
  EXPECT_THAT(printed, ::testing::HasSubstr("command: web-app"));
  ExpectRoundTrip(m);
}

TEST(PrintTest, EqualityIgnoresPositionsButNotValues) {
  auto a = ParseManifest("roles:\n  - {name: w, command: w}\n", "a.yaml");
  auto b = ParseManifest("# comment\n\nroles:\n- name: w\n  command: w\n", "b.yaml");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a.manifest->roles[0].pos.ToString(), b.manifest->roles[0].pos.ToString());
  EXPECT_TRUE(*a.manifest == *b.manifest);
  Manifest c = *a.manifest;
  c.roles[0].probes.readiness = Probe{};
  EXPECT_FALSE(c == *a.manifest);
}

}  // namespace
}  // namespace hafab::manifest
