#include "cli/up_ha.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

namespace hafab::cli {
namespace {

namespace fs = std::filesystem;
using ::testing::Contains;
using ::testing::HasSubstr;

class UpHaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/hafab-up-ha-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string dir_;
};

TEST_F(UpHaTest, PicksNineDistinctPortsOnceAndKeepsThem) {
  auto first = LoadOrCreateHaLayout(dir_);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  std::set<uint16_t> ports;
  for (const auto& e : first->etcd) ports.insert({e.client_port, e.peer_port});
  for (uint16_t p : first->controllers) ports.insert(p);
  EXPECT_EQ(ports.size(), 9u);
  for (uint16_t p : ports) {
    EXPECT_GE(p, 20000);
    EXPECT_LT(p, 32000);
  }
  auto again = LoadOrCreateHaLayout(dir_);  // the second run resumes on the same ports
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->ControllerList(), first->ControllerList());
  EXPECT_EQ(again->StoreUrl(0), first->StoreUrl(0));
}

TEST_F(UpHaTest, EachReplicaPrefersItsOwnMember) {
  HaLayout l;
  l.etcd = {{21001, 21002}, {21003, 21004}, {21005, 21006}};
  l.controllers = {21007, 21008, 21009};
  EXPECT_EQ(l.StoreUrl(0), "etcd://127.0.0.1:21001,127.0.0.1:21003,127.0.0.1:21005");
  EXPECT_EQ(l.StoreUrl(2), "etcd://127.0.0.1:21005,127.0.0.1:21001,127.0.0.1:21003");
  EXPECT_EQ(l.ControllerList(),
            "http://127.0.0.1:21007,http://127.0.0.1:21008,http://127.0.0.1:21009");
  auto argv = l.EtcdArgv("/usr/bin/etcd", 1, "/s/etcd/e2", "tok");
  EXPECT_EQ(argv[0], "/usr/bin/etcd");
  EXPECT_THAT(argv, Contains("--name=e2"));
  EXPECT_THAT(argv, Contains("--listen-client-urls=http://127.0.0.1:21003"));
  EXPECT_THAT(argv, Contains("--initial-cluster=e1=http://127.0.0.1:21002,"
                             "e2=http://127.0.0.1:21004,e3=http://127.0.0.1:21006"));
}

TEST_F(UpHaTest, ACorruptLayoutIsNamed) {
  std::ofstream(dir_ + "/ha.json") << "{\"etcd\": [1, 2]}";
  auto l = LoadOrCreateHaLayout(dir_);
  ASSERT_FALSE(l.ok());
  EXPECT_EQ(l.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(l.status().message(), HasSubstr(dir_ + "/ha.json: not a `hafab up --ha` layout"));
}

}  // namespace
}  // namespace hafab::cli
