// Controller behaviour with fake agents on a fake clock: apply, placement, assignments,
// routes, leases, restart-then-relocate, scale, drain.
#include "controller/controller.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "controller/fixture.h"

namespace hafab::controller::testsupport {
namespace {

// Nodes n1, n2 and n3 with room for one instance each, and `role`.
manifest::Manifest RoomForOneEach(manifest::Role role) {
  manifest::Manifest m;
  for (const char* n : {"n1", "n2", "n3"}) {
    manifest::Node node;
    node.name = n;
    node.capacity = 1;
    m.nodes.push_back(node);
  }
  m.roles = {std::move(role)};
  return m;
}

TEST_F(ClusterTest, PlacesActivePassivePrimaryAndStandbyInDifferentDomains) {
  Run(100ms);  // agents register
  ApplyRoles({KvdRole(2)});
  Run(300ms);
  const auto& p = Inst("kvd-0");
  const auto& s = Inst("kvd-1");
  EXPECT_NE(p.node, s.node);
  EXPECT_NE(c_->nodes().at(p.node).fault_domain, c_->nodes().at(s.node).fault_domain);
  EXPECT_NE(c_->nodes().at(p.node).update_domain, c_->nodes().at(s.node).update_domain);
  EXPECT_EQ(Role("kvd").primary, "kvd-0");
  EXPECT_TRUE(p.run);
  EXPECT_TRUE(p.volume);
  EXPECT_FALSE(s.run);
  EXPECT_FALSE(s.volume);
  EXPECT_EQ(p.epoch, 1);
  EXPECT_EQ(s.epoch, 1);
  EXPECT_EQ(agent(p.node).State("kvd-0"), "running");
  EXPECT_EQ(agent(s.node).State("kvd-1"), "stopped");

  // The assignment of the primary carries the volume; the standby's does not.
  auto a = c_->Assignments(p.node)->at("assignments")[0];
  EXPECT_EQ(a["volume"], "kvd-data");
  EXPECT_EQ(a["run"], true);
  EXPECT_EQ(a["port"], 7101);
  auto b = c_->Assignments(s.node)->at("assignments")[0];
  EXPECT_FALSE(b.contains("volume"));
  EXPECT_EQ(b["run"], false);

  // Routes: only the primary, ready, at the role's epoch.
  auto e = Endpoint("kvd");
  ASSERT_EQ(e["backends"].size(), 1u);
  EXPECT_EQ(e["backends"][0]["instance"], "kvd-0");
  EXPECT_EQ(e["backends"][0]["ready"], true);
  EXPECT_EQ(e["epoch"], 1);
}

// A steady cluster is reconciled once a second, not at every tick (at 1 000 nodes the passes
// that found nothing cost 1-3 % of a core); a change an agent reports brings a pass at once.
TEST_F(ClusterTest, ASteadyClusterIsReconciledOnceASecondAndAChangeAtTheNextTick) {
  Run(100ms);
  ApplyRoles({KvdRole(2), WebRole(3)});
  Run(2s);
  ASSERT_EQ(Running("web"), 3);
  auto passes = [&] { return static_cast<int>(Metric("hafab_controller_reconcile_passes_total")); };
  const int steady = passes();
  ASSERT_GT(steady, 0);
  Run(3s);  // 30 ticks
  EXPECT_GE(passes() - steady, 2);
  EXPECT_LE(passes() - steady, 4);

  const int before = passes();
  const double checked = Metric("hafab_controller_reconcile_checks_total{of=\"instance\"}");
  agent(Inst("web-1").node).SetRestarts("web-1", 1);
  Run(100ms);
  EXPECT_EQ(passes(), before + 1);
  // The pass checks that instance, not all five.
  EXPECT_EQ(Metric("hafab_controller_reconcile_checks_total{of=\"instance\"}") - checked, 1);
}

// A pass checks what changed; what it could not do yet is tried again at every pass: a role
// short of an instance gets it, and an instance on a down node with no room elsewhere moves,
// once a node has room (nothing else about them changed).
TEST_F(ClusterTest, WhatAPassCouldNotDoYetIsTriedAgainAtTheNextOnes) {
  manifest::Manifest m = RoomForOneEach(WebRole(4));
  ASSERT_TRUE(c_->Apply(m).ok());
  Run(300ms);
  ASSERT_EQ(Running("web"), 3);  // the fourth has no room
  agent("n3").Kill();
  Run(3s);  // declared down; nowhere to go
  ASSERT_TRUE(c_->nodes().at("n3").down);
  std::string stuck;
  for (const auto& [name, inst] : c_->instances()) {
    if (inst.node == "n3") stuck = name;
  }
  ASSERT_FALSE(stuck.empty());
  EXPECT_EQ(c_->instances().size(), 3u);
  m.nodes[0].capacity = 3;  // only n1's record changes
  ASSERT_TRUE(c_->Apply(m).ok());
  Run(2s);
  EXPECT_EQ(Inst(stuck).node, "n1");
  EXPECT_EQ(c_->instances().size(), 4u);
  EXPECT_EQ(Running("web"), 3 + 1);
}

TEST_F(ClusterTest, AssignmentsCarryTheDrainHook) {
  Run(100ms);
  manifest::Role kvd = KvdRole(2);
  kvd.drain = manifest::DrainHook{{"kvd-ctl", "drain"}, 3s};
  ApplyRoles({kvd});
  Run(300ms);
  for (const char* name : {"kvd-0", "kvd-1"}) {
    auto a = c_->Assignments(Inst(name).node)->at("assignments")[0];
    EXPECT_EQ(a["drain"], nlohmann::json({{"command", {"kvd-ctl", "drain"}}, {"timeout_ms", 3000}}))
        << name;
  }
  // The stored role spec keeps it (a restarted controller assigns the same).
  auto back = RoleSpecFromJson(RoleSpecToJson(Role("kvd").spec));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->drain, kvd.drain);
  EXPECT_FALSE(RoleSpecFromJson(RoleSpecToJson(KvdRole(2)))->drain.has_value());
}

// A live node reports its role's volume attached where no instance has it: Gc says so once
// and sends that node its assignments again.
TEST_F(ClusterTest, GcReportsAVolumeAttachedWhereNoInstanceHasIt) {
  Run(100ms);
  ApplyRoles({KvdRole(2)});
  Run(500ms);
  std::string holder, stray;
  for (const auto& [name, inst] : c_->instances()) {
    if (inst.volume) holder = inst.node;
  }
  ASSERT_FALSE(holder.empty());
  for (const auto& a : agents_) {
    if (a->node() != holder) stray = a->node();
  }
  agent(stray).HoldVolume("kvd-data");
  Run(2500ms);  // past a gc interval (1 s)
  std::vector<std::string> said;
  for (const auto& e : c_->EventsAfter(0)) {
    if (e.type == "gc-stray-volume") said.push_back(e.fields.at("node"));
  }
  EXPECT_EQ(said, std::vector<std::string>{stray});
}

// The spec hash an agent compares to decide whether to restart an instance: an upgraded
// controller must compute the same value for the same role, or every instance restarts.
// The values were computed before the assignment moved to wire/assignments.h.
TEST_F(ClusterTest, SpecHashesStayAcrossVersions) {
  Run(100ms);
  manifest::Role kvd = KvdRole(2);
  manifest::Role web = WebRole(1);
  web.user = "nobody";
  ApplyRoles({kvd, web});
  Run(300ms);
  auto hash = [&](const std::string& instance) {
    auto got = c_->Assignments(Inst(instance).node);
    EXPECT_TRUE(got.ok());
    for (const auto& a : (*got)["assignments"]) {
      if (a["instance"] == instance) return a["spec_hash"].get<std::string>();
    }
    return std::string("not assigned");
  };
  EXPECT_EQ(hash("kvd-0"), "79a0125ac1b72077");
  EXPECT_EQ(hash("web-0"), "7f210edc34c07b71");
  // The hash of the spec's text with the port, whatever its strings hold (the text is built
  // once per spec and cut where the port goes).
  manifest::Role odd = WebRole(2);
  odd.name = "odd";
  odd.endpoint.reset();
  odd.env = {{"port", "-1"}};
  odd.args = {"\"port\":-1"};
  ApplyRoles({kvd, web, odd});
  Run(300ms);
  for (const char* instance : {"odd-0", "odd-1"}) {
    nlohmann::json hashed = RoleSpecHashedToJson(odd);
    hashed["port"] = Inst(instance).port;
    EXPECT_EQ(hash(instance), StableHash(Dump(hashed))) << instance;
  }
}

TEST_F(ClusterTest, EmbeddedNodesOnOneAddressGetDistinctPorts) {
  Run(100ms);
  ApplyRoles({WebRole(5)});
  Run(200ms);
  std::set<int> ports;
  for (const auto& [name, inst] : c_->instances()) ports.insert(inst.port);
  EXPECT_EQ(ports.size(), 5u);  // every node is 127.0.0.1
  EXPECT_EQ(Inst("web-0").port, 8080);
  EXPECT_EQ(Running("web"), 5);
  EXPECT_EQ(Endpoint("web")["backends"].size(), 5u);
}

TEST_F(ClusterTest, AllowListResolvesRoleNamesToNodeAddresses) {
  Run(100ms);
  ApplyRoles({KvdRole(2), WebRole(2)});
  Run(200ms);
  auto allow = Endpoint("kvd")["allow"];
  EXPECT_EQ(allow, nlohmann::json({"127.0.0.0/8", "127.0.0.1/32"}));
}

// An allow list naming only roles that have no node yet admits nobody, not everybody; an
// endpoint without a list admits every address.
TEST_F(ClusterTest, AllowListOfRolesWithoutNodesIsClosed) {
  Run(100ms);
  manifest::Role kvd = KvdRole(2);
  kvd.endpoint->allow = {"web"};
  ApplyRoles({kvd, WebRole(2)});
  Run(200ms);
  EXPECT_EQ(Endpoint("kvd")["allow"], nlohmann::json({"127.0.0.1/32"}));
  EXPECT_FALSE(Endpoint("web").contains("allow"));
  ApplyRoles({kvd});
  Run(200ms);
  EXPECT_EQ(Endpoint("kvd")["allow"], nlohmann::json::array());
}

TEST_F(ClusterTest, GenerationAndRoutesVersionGrowOnEveryChangeOnly) {
  Run(100ms);
  ApplyRoles({WebRole(2)});
  Run(200ms);
  int64_t g = c_->AssignmentsGeneration("n1");
  int64_t v = c_->RoutesVersion();
  Run(500ms);  // nothing changes
  EXPECT_EQ(c_->AssignmentsGeneration("n1"), g);
  EXPECT_EQ(c_->RoutesVersion(), v);
  ASSERT_TRUE(c_->Scale("web", 3).ok());
  Run(200ms);
  EXPECT_GT(c_->RoutesVersion(), v);
  // A new controller on the same store never goes back in version, and gives each node a
  // newer generation than any before...
  int64_t before = c_->RoutesVersion();
  const int64_t held = c_->AssignmentsGeneration("n1");
  NewController();
  EXPECT_GT(c_->RoutesVersion(), before);
  const int64_t after_start = c_->AssignmentsGeneration("n1");
  EXPECT_GT(after_start, held);
  // ...but keeps the one the node's agent runs when that list is the one it would send
  // (AdoptGeneration), until a list changes.
  Run(500ms);
  EXPECT_EQ(c_->AssignmentsGeneration("n1"), held);
  ASSERT_TRUE(c_->Scale("web", 6).ok());
  Run(200ms);
  EXPECT_GT(c_->AssignmentsGeneration("n1"), after_start);
}

// After a takeover, an agent whose list is the one the new controller would send keeps it: no
// new generation, so no list to fetch and apply, and no second report. Any other agent gets a
// new generation: one that runs another list, one the controller has sent a list to since it
// started, and one whose digest does not match.
TEST_F(ClusterTest, ANewControllerKeepsTheGenerationOfAListItWouldSendAsIs) {
  Run(100ms);
  ApplyRoles({WebRole(3)});
  Run(500ms);
  const int64_t n1 = c_->AssignmentsGeneration("n1");
  const int64_t n3 = c_->AssignmentsGeneration("n3");
  NewController();
  const int64_t start_n2 = c_->AssignmentsGeneration("n2");
  // n1's report: adopted.
  wire::AgentHeartbeat hb = agent("n1").Heartbeat();
  auto answer = c_->AgentHeartbeat("n1", hb);
  ASSERT_TRUE(answer.ok());
  EXPECT_EQ(answer->assignments_generation, static_cast<uint64_t>(n1));
  EXPECT_FALSE(c_->AdoptGeneration("n1", hb.assignments_generation, hb.assignments_digest));
  // n2's agent asks for its list before it reports: it runs this controller's from then on.
  ASSERT_TRUE(c_->Assignments("n2").ok());
  hb = agent("n2").Heartbeat();
  EXPECT_FALSE(c_->AdoptGeneration("n2", hb.assignments_generation, hb.assignments_digest));
  EXPECT_EQ(c_->AssignmentsGeneration("n2"), start_n2);
  // n3's digest is not that of the list it would get.
  hb = agent("n3").Heartbeat();
  EXPECT_FALSE(c_->AdoptGeneration("n3", hb.assignments_generation, hb.assignments_digest ^ 1));
  EXPECT_FALSE(c_->AdoptGeneration("n3", hb.assignments_generation, 0));
  EXPECT_GT(c_->AssignmentsGeneration("n3"), n3);
  EXPECT_TRUE(c_->AdoptGeneration("n3", hb.assignments_generation, hb.assignments_digest));
  EXPECT_EQ(c_->AssignmentsGeneration("n3"), n3);
  EXPECT_NE(c_->MetricsText().find("hafab_controller_assignment_generations_adopted_total 2"),
            std::string::npos);
  // n1's agent then names another list of an earlier controller (that controller's answer
  // reached it late): not the list kept, so n1 gets a new generation at once.
  hb = agent("n1").Heartbeat();
  hb.assignments_generation = static_cast<uint64_t>(n3);
  ASSERT_TRUE(c_->AgentHeartbeat("n1", hb).ok());
  EXPECT_GT(c_->AssignmentsGeneration("n1"), start_n2);
  // A list that changed while no controller ran: the agent gets the new one.
  NewController();
  ASSERT_TRUE(c_->Scale("web", 6).ok());
  const int64_t scaled = c_->AssignmentsGeneration("n2");
  EXPECT_GT(scaled, start_n2);
  hb = agent("n2").Heartbeat();
  EXPECT_FALSE(c_->AdoptGeneration("n2", hb.assignments_generation, hb.assignments_digest));
  Run(200ms);
  EXPECT_EQ(agent("n2").Heartbeat().assignments_generation, static_cast<uint64_t>(scaled));
}

// Each endpoint's revision is the routes version at which it last changed: a gateway compiles
// again only the endpoints whose revision it does not have.
TEST_F(ClusterTest, AnEndpointKeepsItsRevisionUntilItChanges) {
  Run(100ms);
  ApplyRoles({KvdRole(2), WebRole(2)});
  Run(300ms);
  const int64_t kvd = Endpoint("kvd")["revision"].get<int64_t>();
  const int64_t web = Endpoint("web")["revision"].get<int64_t>();
  EXPECT_GT(kvd, 0);
  EXPECT_LE(std::max(kvd, web), c_->RoutesVersion());
  ASSERT_TRUE(c_->Scale("web", 3).ok());
  Run(300ms);
  EXPECT_EQ(Endpoint("kvd")["revision"].get<int64_t>(), kvd);
  EXPECT_GT(Endpoint("web")["revision"].get<int64_t>(), web);
  EXPECT_EQ(Endpoint("web")["backends"].size(), 3u);
  // A new controller lists every endpoint anew.
  NewController();
  Run(100ms);
  EXPECT_GT(Endpoint("kvd")["revision"].get<int64_t>(), kvd);
}

TEST_F(ClusterTest, HeartbeatsDoNotWriteTheStore) {
  Run(100ms);
  ApplyRoles({WebRole(3)});
  Run(500ms);
  int commits = store_.commits();
  Run(2s);  // 20 rounds of heartbeats from 3 agents and a gateway, nothing changing
  EXPECT_EQ(store_.commits(), commits);
}

// The agent repeats a self-fence until a heartbeat is answered; it is one event.
TEST_F(ClusterTest, ASelfFenceReportedTwiceIsOneEvent) {
  Run(100ms);
  wire::AgentHeartbeat hb = agent("n3").Heartbeat();
  hb.fence = wire::FenceReport{"lease expired", WallTime(std::chrono::seconds(7)), {"kvd-0"}};
  ASSERT_TRUE(c_->AgentHeartbeat("n3", hb).ok());
  ASSERT_TRUE(c_->AgentHeartbeat("n3", hb).ok());
  int events = 0;
  for (const auto& e : c_->EventsAfter(0)) {
    if (e.type != "node-self-fenced") continue;
    ++events;
    EXPECT_EQ(e.message, "node n3 fenced itself (lease expired), killing kvd-0");
  }
  EXPECT_EQ(events, 1);
}

TEST_F(ClusterTest, NodeLeaseExpiryDeclaresDownAndRelocatesLoadBalanced) {
  Run(100ms);
  ApplyRoles({WebRole(3)});
  Run(300ms);
  std::string victim = Inst("web-0").node;
  agent(victim).Kill();
  Run(1400ms);  // within the 1.5s lease
  EXPECT_FALSE(c_->nodes().at(victim).down);
  Run(300ms);
  EXPECT_TRUE(c_->nodes().at(victim).down);
  EXPECT_NE(Inst("web-0").node, victim);
  Run(200ms);
  EXPECT_EQ(Running("web"), 3);
  const nlohmann::json web = Endpoint("web");  // the loop must not outlive a temporary
  for (const auto& b : web["backends"]) EXPECT_NE(b["node"], victim);
}

TEST_F(ClusterTest, NewControllerGivesKnownNodesOneFullLease) {
  Run(100ms);
  ApplyRoles({WebRole(3)});
  Run(300ms);
  agent("n3").Kill();
  NewController();
  // n3 was up when the old controller stopped: the new one waits a full TTL for it.
  for (auto& a : agents_) a->Step(*c_);
  clock_.Advance(1400ms);
  c_->Tick();
  EXPECT_FALSE(c_->nodes().at("n3").down);
  Run(200ms);
  EXPECT_TRUE(c_->nodes().at("n3").down);
  EXPECT_FALSE(c_->nodes().at("n1").down);
}

// A record the controller cannot read stops a new controller, naming the key, rather than
// leaving it to act on a partial view; a broken event is history and only logged.
TEST_F(ClusterTest, AnUnreadableRecordStopsTheLoadNamingItsKey) {
  Run(100ms);
  ApplyRoles({KvdRole()});
  Run(300ms);
  auto put = [&](const std::string& key, const std::string& value) {
    store::Txn txn;
    txn.success = {store::Op::Put(key, value)};
    ASSERT_TRUE(store_.Commit(txn).ok());
  };
  put("/hafab/events/99999999999999999999", "{not json");
  ControllerOptions o;
  Controller ok(store_, clock_, &provider_, o);
  EXPECT_TRUE(ok.Start().ok());

  put("/hafab/instances/kvd-0", R"({"role": 7})");
  Controller broken(store_, clock_, &provider_, o);
  Status st = broken.Start();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("/hafab/instances/kvd-0"), std::string::npos) << st.ToString();
}

// A new controller reads only the newest events into memory; the older ones are known by
// their keys, so GC still trims the stored history to its limit, oldest first.
TEST_F(ClusterTest, ANewControllerReadsTheNewestEventsAndTrimsTheOldByKey) {
  Run(100ms);
  constexpr int64_t kFirst = 1'000'000'000;
  store::Txn txn;
  for (int64_t id = kFirst + 1; id <= kFirst + 6000; ++id) {
    Event e;
    e.id = id;
    e.type = "test";
    txn.success.push_back(store::Op::Put(EventKey(id), Dump(ToJson(e))));
  }
  txn.success.push_back(store::Op::Put(kSeqKey, std::to_string(kFirst + 7000)));  // ids go on
  ASSERT_TRUE(store_.Commit(txn).ok());
  NewController();
  const std::vector<Event> kept = c_->EventsAfter(0, 100000);
  ASSERT_EQ(kept.size(), 2000u);  // the newest of the store, then its own
  EXPECT_GT(kept.front().id, kFirst + 4000);
  EXPECT_GT(kept.back().id, kFirst + 7000);
  Run(1500ms);  // a GC pass
  auto stored = store_.Range(kEventsPrefix);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->kvs.size(), 5000u);
  // The oldest went first: the first controller's, then the oldest thousand and more of the
  // 6 000 (as many more as this one added).
  EXPECT_GT(stored->kvs.front().key, EventKey(kFirst + 1000));
  EXPECT_LT(stored->kvs.front().key, EventKey(kFirst + 1100));
}

TEST_F(ClusterTest, RestartsInPlaceThenRelocatesAfterTheLimit) {
  Run(100ms);
  auto web = WebRole(1);
  web.restart.max_restarts = 2;
  web.restart.window = std::chrono::seconds(60);
  ApplyRoles({web});
  Run(200ms);
  std::string home = Inst("web-0").node;
  // The agent restarts in place: the controller counts, and does not move it yet.
  agent(home).SetRestarts("web-0", 1);
  Run(200ms);
  agent(home).SetRestarts("web-0", 2);
  Run(200ms);
  EXPECT_EQ(Inst("web-0").node, home);
  // One more within the window: past the limit, it moves to another node.
  agent(home).SetRestarts("web-0", 3);
  Run(200ms);
  EXPECT_NE(Inst("web-0").node, home);
  EXPECT_EQ(Running("web"), 1);
}

// The restarts of a crash loop go with the instance: the next node continues the backoff
// (prior_restarts in its assignment) instead of starting over, until the window has passed.
TEST_F(ClusterTest, RelocatedCrashLoopCarriesItsRestarts) {
  Run(100ms);
  auto web = WebRole(1);
  web.restart.max_restarts = 2;
  web.restart.window = std::chrono::seconds(60);
  ApplyRoles({web});
  Run(200ms);
  auto prior = [&](const std::string& node) {
    auto got = c_->Assignments(node);
    EXPECT_TRUE(got.ok());
    for (const auto& a : (*got)["assignments"]) {
      if (a["instance"] == "web-0") return a.value("prior_restarts", 0);
    }
    ADD_FAILURE() << "web-0 is not assigned to " << node;
    return -1;
  };
  const std::string first = Inst("web-0").node;
  EXPECT_EQ(prior(first), 0);
  for (int i = 1; i <= 3; ++i) {
    agent(first).SetRestarts("web-0", i);
    Run(200ms);
  }
  const std::string second = Inst("web-0").node;
  ASSERT_NE(second, first);
  EXPECT_EQ(prior(second), 3);
  for (int i = 1; i <= 3; ++i) {
    agent(second).SetRestarts("web-0", i);
    Run(200ms);
  }
  const std::string third = Inst("web-0").node;
  ASSERT_NE(third, second);
  EXPECT_EQ(prior(third), 6);  // it kept crash-looping: the count goes on
  // A controller that takes over knows it too (it is in the stored record).
  NewController();
  Run(200ms);
  EXPECT_EQ(prior(Inst("web-0").node), 6);
  // Once the window has passed since the last move, the count is forgotten.
  Run(61s);
  EXPECT_EQ(prior(Inst("web-0").node), 0);
}

TEST_F(ClusterTest, RestartsOutsideTheWindowDoNotRelocate) {
  Run(100ms);
  auto web = WebRole(1);
  web.restart.max_restarts = 1;
  web.restart.window = std::chrono::seconds(2);
  ApplyRoles({web});
  Run(200ms);
  std::string home = Inst("web-0").node;
  agent(home).SetRestarts("web-0", 1);
  Run(3s);
  agent(home).SetRestarts("web-0", 2);
  Run(200ms);
  EXPECT_EQ(Inst("web-0").node, home);
}

TEST_F(ClusterTest, InstanceFailedByAgentIsRelocated) {
  Run(100ms);
  ApplyRoles({WebRole(1)});
  Run(200ms);
  std::string home = Inst("web-0").node;
  agent(home).Crash("web-0");
  Run(300ms);
  EXPECT_NE(Inst("web-0").node, home);
  int failed_events = 0;  // the operator sees why (once, not on every heartbeat)
  for (const auto& e : c_->EventsAfter(0)) {
    if (e.type != "instance-failed") continue;
    ++failed_events;
    EXPECT_EQ(e.message, "instance web-0 failed on node " + home + ": ?");
  }
  EXPECT_EQ(failed_events, 1);
}

TEST_F(ClusterTest, ScaleUpAndDown) {
  Run(100ms);
  ApplyRoles({WebRole(2)});
  Run(200ms);
  ASSERT_TRUE(c_->Scale("web", 4).ok());
  Run(200ms);
  EXPECT_EQ(Running("web"), 4);
  ASSERT_TRUE(c_->Scale("web", 1).ok());
  Run(200ms);
  EXPECT_EQ(c_->instances().size(), 1u);
  EXPECT_TRUE(c_->instances().count("web-0"));
  EXPECT_EQ(c_->Scale("web", 0).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(c_->Scale("nope", 2).status().code(), StatusCode::kNotFound);
}

TEST_F(ClusterTest, DrainMovesEverythingOff) {
  Run(100ms);
  ApplyRoles({WebRole(3)});
  Run(200ms);
  ASSERT_TRUE(c_->Drain("n2", true).ok());
  Run(300ms);
  for (const auto& [name, inst] : c_->instances()) EXPECT_NE(inst.node, "n2");
  EXPECT_EQ(Running("web"), 3);
  EXPECT_EQ(c_->Drain("n9", true).status().code(), StatusCode::kNotFound);
}

TEST_F(ClusterTest, CapacityIsRespected) {
  manifest::Manifest m = RoomForOneEach(WebRole(4));
  ASSERT_TRUE(c_->Apply(m).ok());
  Run(300ms);
  EXPECT_EQ(c_->instances().size(), 3u);  // the fourth has no room
  bool unplaceable = false;
  for (const auto& e : c_->EventsAfter(0)) unplaceable |= e.type == "unplaceable";
  EXPECT_TRUE(unplaceable);
  // Nothing about the role changes, but it stays to be checked: a node with room gets it.
  Run(2s);
  m.nodes[1].capacity = 2;
  ASSERT_TRUE(c_->Apply(m).ok());
  Run(2s);
  EXPECT_EQ(c_->instances().size(), 4u);
  EXPECT_EQ(Running("web"), 4);
}

TEST_F(ClusterTest, ApplyRefusesModeChangeAndAppliesNothing) {
  Run(100ms);
  ApplyRoles({KvdRole(2)});
  Run(200ms);
  manifest::Manifest m;
  auto kvd = KvdRole(2);
  kvd.mode = manifest::RoleMode::kLoadBalanced;
  kvd.pos = {"m.yaml", 4, 5};
  m.roles = {WebRole(2), kvd};
  auto r = c_->Apply(m);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message().rfind("m.yaml:4:5: error: roles[1].mode: cannot change", 0), 0u)
      << r.status().message();
  EXPECT_FALSE(c_->roles().count("web"));  // nothing half-applied
}

// The failure detector is chosen when the controllers start: a manifest that names another
// is refused, with its position; one that does not name it takes the controllers' choice.
TEST_F(ClusterTest, ApplyRefusesAFailureDetectorTheControllersDoNotRun) {
  manifest::Manifest m;
  m.roles = {WebRole(2)};
  m.settings.failure_detector = manifest::FailureDetector::kRing;
  m.settings.failure_detector_pos = {"m.yaml", 3, 21};
  auto r = c_->Apply(m);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message().rfind(
                "m.yaml:3:21: error: settings.failure_detector: ring, but the controllers run "
                "the star",
                0),
            0u)
      << r.status().message();
  EXPECT_FALSE(c_->roles().count("web"));  // nothing applied
  m.settings.failure_detector = manifest::FailureDetector::kStar;
  EXPECT_TRUE(c_->Apply(m).ok());
  m.settings.failure_detector = manifest::FailureDetector::kRing;
  m.settings.failure_detector_pos = {};
  EXPECT_TRUE(c_->Apply(m).ok());  // not written: the controllers' choice
}

TEST_F(ClusterTest, ApplyIsOneTransaction) {
  Run(100ms);
  manifest::Manifest m;
  m.roles = {KvdRole(2), WebRole(2)};
  store_.FailNextCommits(1);
  auto r = c_->Apply(m);
  ASSERT_FALSE(r.ok());
  c_->Tick();  // reloads from the store
  EXPECT_TRUE(c_->roles().empty());
  NewController();
  EXPECT_TRUE(c_->roles().empty());
}

TEST_F(ClusterTest, RemovedRoleStopsItsInstances) {
  Run(100ms);
  ApplyRoles({WebRole(2), KvdRole(2)});
  Run(200ms);
  ApplyRoles({KvdRole(2)});
  Run(200ms);
  EXPECT_EQ(Running("web"), 0);
  for (const auto& [name, inst] : c_->instances()) EXPECT_EQ(inst.role, "kvd");
}

TEST_F(ClusterTest, StatusShowsInstancesNodesVolumes) {
  Run(100ms);
  ApplyRoles({KvdRole(2)});
  Run(300ms);
  auto st = c_->StatusJson();
  ASSERT_EQ(st["instances"].size(), 2u);
  auto i0 = st["instances"][0];
  EXPECT_EQ(i0["instance"], "kvd-0");
  EXPECT_EQ(i0["kind"], "primary");
  EXPECT_EQ(i0["state"], "running");
  EXPECT_EQ(i0["ready"], true);
  EXPECT_EQ(i0["epoch"], 1);
  EXPECT_FALSE(i0["fault_domain"].get<std::string>().empty());
  EXPECT_EQ(st["nodes"].size(), 3u);
  EXPECT_EQ(st["volumes"][0]["attached_to"], Inst("kvd-0").node);
}

TEST_F(ClusterTest, ScaleDownOfActivePassiveKeepsThePrimary) {
  Run(100ms);
  ApplyRoles({KvdRole(3)});
  Run(200ms);
  ASSERT_TRUE(c_->RequestFailover("kvd", "").ok());
  Run(1s);
  std::string primary = Role("kvd").primary;
  ASSERT_NE(primary, "kvd-0");
  ASSERT_TRUE(c_->Scale("kvd", 1).ok());
  Run(200ms);
  ASSERT_EQ(c_->instances().size(), 1u);
  EXPECT_TRUE(c_->instances().count(primary));
  EXPECT_EQ(Running("kvd"), 1);
}

TEST_F(ClusterTest, GcForceDetachesAVolumeLeftOnASilentNode) {
  Run(100ms);
  ApplyRoles({KvdRole(2)});
  Run(300ms);
  std::string home = Inst("kvd-0").node;
  std::string other;
  for (const auto& a : agents_) {
    if (a->node() != home && a->node() != Inst("kvd-1").node) other = a->node();
  }
  // An interrupted operation left the volume on a node that then died.
  ASSERT_TRUE(provider_.Detach("kvd-data", home).ok());
  ASSERT_TRUE(provider_.Attach("kvd-data", other, "kvd-9").ok());
  agent(other).Kill();
  Run(1500ms);
  EXPECT_EQ(provider_.Describe("kvd-data")->node, other);  // not before lease + margin
  Run(2s);
  EXPECT_EQ(provider_.Describe("kvd-data")->node, home);  // detached, then re-attached
  bool event = false;
  for (const auto& e : c_->EventsAfter(0)) event |= e.type == "gc-force-detach";
  EXPECT_TRUE(event);
}

// A provider call is a cloud API request: a GC pass asks about at most gc_describes_per_pass
// volumes, and the next pass goes on where it stopped.
TEST_F(ClusterTest, GcAsksTheProviderAboutAFewVolumesAPassInTurn) {
  options_.gc_describes_per_pass = 2;
  NewController();
  const std::vector<std::string> volumes = {"a-data", "b-data", "c-data"};
  std::vector<manifest::Role> roles;
  for (const char* name : {"a", "b", "c"}) {
    manifest::Role r = KvdRole(1);
    r.name = name;
    r.volume = std::string(name) + "-data";
    r.endpoint.reset();
    roles.push_back(r);
  }
  Run(100ms);
  ApplyRoles(roles);
  Run(1s);
  provider_.described.clear();
  for (int pass = 0; pass < 4; ++pass) {  // a GC pass a second
    const double before = Metric("hafab_controller_gc_volume_describes_total");
    const size_t asked_before = provider_.described.size();
    Run(1s);
    EXPECT_EQ(Metric("hafab_controller_gc_volume_describes_total") - before, 2) << pass;
    EXPECT_EQ(provider_.described.size() - asked_before, 2u) << pass;
  }
  const std::vector<std::string>& asked = provider_.described;
  ASSERT_EQ(asked.size(), 8u);
  const size_t first = std::find(volumes.begin(), volumes.end(), asked[0]) - volumes.begin();
  for (size_t i = 0; i < asked.size(); ++i) {
    EXPECT_EQ(asked[i], volumes[(first + i) % volumes.size()]) << "call " << i;
  }
}

TEST_F(ClusterTest, GcResendsAssignmentsToANodeRunningAnUnwantedInstance) {
  Run(100ms);
  ApplyRoles({WebRole(1)});
  Run(200ms);
  int64_t gen = c_->AssignmentsGeneration("n3");
  wire::AgentHeartbeat hb = agent("n3").Heartbeat();
  wire::InstanceReport& ghost = hb.instances.emplace_back();
  ghost.instance = "ghost-0";
  ghost.role = "ghost";
  ghost.state = wire::InstanceState::kRunning;
  ASSERT_TRUE(c_->AgentHeartbeat("n3", hb).ok());
  clock_.Advance(1100ms);
  c_->Tick();
  EXPECT_GT(c_->AssignmentsGeneration("n3"), gen);
  bool event = false;
  for (const auto& e : c_->EventsAfter(0)) event |= e.type == "gc-orphan-instance";
  EXPECT_TRUE(event);
}

// Gc looks again at a node whose assigned instances changed, not only at one that reported:
// an instance moved off a drained node, which has sent only keep-alives since, is found there.
TEST_F(ClusterTest, GcFindsAnInstanceUnassignedSinceTheNodeLastReported) {
  Run(100ms);
  ApplyRoles({WebRole(1)});
  Run(300ms);
  const std::string node = c_->instances().at("web-0").node;
  auto heartbeats = [&](bool keepalive) {
    for (const auto& n : {"n1", "n2", "n3"}) {
      wire::AgentHeartbeat hb = agent(n).Heartbeat();
      if (keepalive) {
        hb = wire::AgentHeartbeat{};
        hb.node = n;
        hb.boot_id = agent(n).Heartbeat().boot_id;
        hb.same_as = 77;
      } else {
        hb.report = 77;
      }
      ASSERT_TRUE(c_->AgentHeartbeat(n, hb).ok()) << n;
    }
  };
  heartbeats(false);
  clock_.Advance(1100ms);
  c_->Tick();  // Gc looks at the nodes that reported: nothing unwanted
  for (const auto& e : c_->EventsAfter(0)) ASSERT_NE(e.type, "gc-orphan-instance");
  heartbeats(true);
  const int64_t last = c_->LastEventId();
  ASSERT_TRUE(c_->Drain(node, true).ok());
  c_->Tick();
  ASSERT_NE(c_->instances().at("web-0").node, node);  // moved; the node still reports it
  clock_.Advance(1000ms);
  c_->Tick();
  int orphans = 0;
  for (const auto& e : c_->EventsAfter(last)) orphans += e.type == "gc-orphan-instance";
  EXPECT_EQ(orphans, 1);
}

// Heartbeat handling does not grow with the cluster: measured on 2000 nodes.
TEST(ControllerScaleTest, HeartbeatCostIsIndependentOfClusterSize) {
  testing::FakeClock clock;
  MemoryStore store(clock);
  FakeProvider provider;
  ControllerOptions o;
  o.lease_ttl = std::chrono::hours(1);
  Controller c(store, clock, &provider, o);
  ASSERT_TRUE(c.Start().ok());
  auto body = [](int i) {
    wire::AgentHeartbeat hb;
    hb.address = "10.0." + std::to_string(i / 250) + "." + std::to_string(i % 250);
    hb.labels = {{"fault_domain", "fd" + std::to_string(i % 10)}};
    return hb;
  };
  auto measure = [&](int nodes) {
    for (int i = 0; i < nodes; ++i)
      EXPECT_TRUE(c.AgentHeartbeat("n" + std::to_string(i), body(i)).ok());
    auto start = std::chrono::steady_clock::now();
    for (int k = 0; k < 5000; ++k) {
      int i = k % nodes;
      EXPECT_TRUE(c.AgentHeartbeat("n" + std::to_string(i), body(i)).ok());
    }
    return ToMillis(std::chrono::steady_clock::now() - start) / 5000 * 1000;  // us each
  };
  double small = measure(20);
  double large = measure(2000);
  std::cout << "heartbeat: " << small << " us (20 nodes), " << large << " us (2000 nodes)\n";
  EXPECT_LT(large, small * 5 + 50);
}

}  // namespace
}  // namespace hafab::controller::testsupport
