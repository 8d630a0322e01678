#include "kv_replica.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace hafab::apps {
namespace {

using nlohmann::json;

// kv-1's configuration: kv-0 primary, kv-1 secondary, kv-2 building, quorum 2.
json Example() {
  return json::parse(R"({"instance": "kv-1", "role": "secondary", "epoch": 7, "quorum": 2,
    "primary": {"instance": "kv-0", "address": "10.0.0.1:7101"},
    "replicas": [
      {"instance": "kv-0", "address": "10.0.0.1:7101", "role": "primary"},
      {"instance": "kv-1", "address": "10.0.0.2:7101", "role": "secondary"},
      {"instance": "kv-2", "address": "10.0.0.3:7101", "role": "building"}]})");
}

TEST(ReadReplicaConfigTest, ReadsTheContractsConfiguration) {
  auto config = ReadReplicaConfig(Example().dump());
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->instance, "kv-1");
  EXPECT_EQ(config->role, wire::ReplicaRole::kSecondary);
  EXPECT_EQ(config->epoch, 7);
  EXPECT_EQ(config->quorum, 2);
  ASSERT_TRUE(config->primary.has_value());
  EXPECT_EQ(config->primary->address, "10.0.0.1:7101");
  ASSERT_EQ(config->replicas.size(), 3u);
  EXPECT_EQ(config->replicas[2].role, wire::ReplicaRole::kBuilding);
}

TEST(ReadReplicaConfigTest, ErrorsNameTheField) {
  auto with = [](auto change) {
    json j = Example();
    change(j);
    return j.dump();
  };
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{\"instance\": ", "configuration: not valid JSON"},
      // The contract's parser.
      {with([](json& j) { j["replicas"][1]["role"] = "leader"; }),
       "replicas[1].role: 'leader' is not one of primary, secondary, building"},
      // kvd's log relies on it refusing a negative epoch.
      {with([](json& j) { j["epoch"] = -1; }), "epoch: must be between 0 and"},
      // kvd's checks.
      {with([](json& j) { j.erase("instance"); }), "instance: required"},
      {with([](json& j) { j["replicas"].erase(1); }), "replicas: does not list this replica, kv-1"},
      // kv-2 is building: two replicas vote.
      {with([](json& j) { j["quorum"] = 3; }),
       "quorum: must be an integer from 1 to the 2 primary and secondary replicas, got 3"},
      {with([](json& j) { j["role"] = "primary"; }),
       "primary: must name this replica, kv-1, when its role is primary"},
      {with([](json& j) {
         j["primary"] = {{"instance", "kv-1"}, {"address", "10.0.0.2:7101"}};
       }),
       "primary: names this replica, but its role is secondary"},
      {with([](json& j) { j["primary"]["address"] = "10.0.0.1"; }),
       "primary.address: must be host:port, got \"10.0.0.1\""},
  };
  for (const auto& [text, message] : cases) {
    auto config = ReadReplicaConfig(text);
    ASSERT_FALSE(config.ok()) << text;
    EXPECT_EQ(config.status().code(), StatusCode::kInvalidArgument) << text;
    EXPECT_NE(config.status().message().find(message), std::string::npos)
        << config.status().message();
  }
}

}  // namespace
}  // namespace hafab::apps
