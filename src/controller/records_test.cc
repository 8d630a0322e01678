// Operation records as stored: the split into the common part and each kind's part keeps the
// JSON every earlier controller wrote.
#include "controller/records.h"

#include <gtest/gtest.h>

namespace hafab::controller {
namespace {

using nlohmann::json;

// A failover as the controller wrote it before the split (every field, at this point).
const char* kOldFailover = R"({
  "id": "op-12", "kind": "failover", "role": "kvd", "reason": "node n1 is down",
  "planned": true, "to": "n3", "owner": "ctl-1", "state": "running", "step": "stop",
  "step_begun": true, "old_primary": "kvd-0", "old_node": "n1", "old_node_fenced": true,
  "new_primary": "", "new_node": "", "volume": "kvd-data", "epoch": 4,
  "created_ms": 1700000000000, "finished_ms": 0, "error": "",
  "steps": [{"name": "detect", "step": "detect", "state": "done", "started_ms": 1700000000000,
             "duration_ms": 0, "note": "", "detail": ""},
            {"name": "fence", "step": "fence", "state": "running", "started_ms": 1700000000001,
             "duration_ms": -1, "note": "waiting for gateway gw1",
             "detail": "waiting for gateway gw1"}]})";

// A rollout as written before the split: the failover's fields at their defaults too.
const char* kOldRollout = R"({
  "id": "op-30", "kind": "rollout", "role": "web", "reason": "hafab upgrade",
  "planned": false, "to": "", "owner": "ctl-2", "state": "done", "step": "route",
  "step_begun": false, "old_primary": "", "old_node": "", "old_node_fenced": false,
  "new_primary": "", "new_node": "", "volume": "", "epoch": 0,
  "created_ms": 1700000000000, "finished_ms": 1700000005000, "error": "", "steps": [],
  "from_revision": 7, "to_revision": 9, "rollback": true,
  "domains": [{"domain": "ud2", "state": "done"}, {"domain": "ud1", "state": "starting"}],
  "wave": 1, "per_wave": 1, "wave_instances": ["web-1"], "from_version": "1",
  "to_version": "2"})";

TEST(RecordsTest, AnEventKeyGivesBackItsId) {
  EXPECT_EQ(EventIdOfKey(EventKey(42)), 42);
  EXPECT_EQ(EventIdOfKey(EventKey(1'000'000'000'000)), 1'000'000'000'000);
  EXPECT_EQ(EventIdOfKey("/hafab/events/42"), std::nullopt);  // not as EventKey writes it
  EXPECT_EQ(EventIdOfKey("/hafab/events/0000000000000000004x"), std::nullopt);
  EXPECT_EQ(EventIdOfKey("/hafab/roles/00000000000000000042"), std::nullopt);
}

TEST(RecordsTest, OldFailoverRecordRoundTrips) {
  json old = json::parse(kOldFailover);
  auto op = OperationFromJson(old);
  ASSERT_TRUE(op.ok()) << op.status().ToString();
  EXPECT_EQ(op->kind(), wire::OpKind::kFailover);
  EXPECT_EQ(op->failover().old_primary, "kvd-0");
  EXPECT_TRUE(op->failover().old_node_fenced);
  EXPECT_EQ(op->failover().epoch, 4);
  EXPECT_EQ(op->steps.size(), 2u);
  EXPECT_EQ(ToJson(*op), old);
}

TEST(RecordsTest, OldRolloutRecordRoundTrips) {
  json old = json::parse(kOldRollout);
  auto op = OperationFromJson(old);
  ASSERT_TRUE(op.ok()) << op.status().ToString();
  EXPECT_EQ(op->kind(), wire::OpKind::kRollout);
  EXPECT_TRUE(op->rollout().rollback);
  EXPECT_EQ(op->rollout().domains, (std::vector<std::string>{"ud2", "ud1"}));
  EXPECT_EQ(op->rollout().domain_state.at("ud1"), wire::DomainState::kStarting);
  EXPECT_EQ(ToJson(*op), old);
}

// The oldest records name no kind and few fields: a failover with the defaults.
TEST(RecordsTest, RecordWithoutKindIsAFailover) {
  auto op = OperationFromJson(json{{"id", "op-1"}, {"role", "kvd"}, {"step", "fence"}});
  ASSERT_TRUE(op.ok());
  EXPECT_EQ(op->kind(), wire::OpKind::kFailover);
  EXPECT_EQ(op->failover().epoch, 0);
  EXPECT_FALSE(ToJson(*op).contains("domains"));
}

TEST(RecordsTest, UnknownKindIsRefused) {
  auto op = OperationFromJson(json{{"id", "op-1"}, {"kind", "teleport"}});
  EXPECT_FALSE(op.ok());
}

// A replicated role's replication settings are stored with its spec; a role without them is
// stored as before (no "replication" member).
TEST(RecordsTest, ReplicationRoundTripsAndIsAbsentByDefault) {
  manifest::Role role;
  role.name = "kv";
  role.mode = manifest::RoleMode::kReplicated;
  role.command = "kvd";
  role.instances = 3;
  EXPECT_FALSE(RoleSpecToJson(role).contains("replication"));
  role.replication = {2, std::chrono::seconds(45), "/opt/kv/hook"};
  auto back = RoleSpecFromJson(RoleSpecToJson(role));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->replication, role.replication);
}

// A reconfiguration round-trips with its positions; its kind is its own.
TEST(RecordsTest, ReconfigurationRoundTrips) {
  Operation op;
  op.id = "op-40";
  op.role = "kv";
  op.step = "collect";
  ReconfigureOp& r = op.part.emplace<ReconfigureOp>();
  r.old_primary = "kv-0";
  r.old_node = "n1";
  r.epoch = 6;
  r.positions = {{"kv-1", {5, 10}}, {"kv-2", {5, 12}}};
  r.accept_data_loss = true;
  const json j = ToJson(op);
  EXPECT_EQ(j["kind"], "reconfigure");
  EXPECT_EQ(j["positions"]["kv-2"], json({{"epoch", 5}, {"index", 12}}));
  auto back = OperationFromJson(j);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ASSERT_EQ(back->kind(), wire::OpKind::kReconfigure);
  EXPECT_EQ(back->reconfigure().positions, r.positions);
  EXPECT_EQ(back->reconfigure().old_primary, "kv-0");
  EXPECT_EQ(back->reconfigure().epoch, 6);
  EXPECT_TRUE(back->reconfigure().accept_data_loss);
}

}  // namespace
}  // namespace hafab::controller
