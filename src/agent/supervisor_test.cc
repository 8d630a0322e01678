#include "agent/supervisor.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "agent/fence_watchdog.h"
#include "provider/local_provider.h"
#include "testing/fake_clock.h"
#include "testing/fake_launcher.h"
#include "testing/temp_dir.h"
#include "wire/assignments.h"

namespace hafab::agent {
namespace {

using std::chrono::milliseconds;

// One assignment from JSON, as the controller sends it.
wire::Assignment MakeAssignment(const std::string& json) {
  auto a = wire::ParseAssignment(json);
  HAFAB_CHECK(a.ok(), a.status().ToString());
  return *a;
}

std::string Kvd(const std::string& extra = "") {
  return R"({"instance": "kvd-0", "role": "kvd", "mode": "active-passive", "run": true,
             "epoch": 3, "command": "kvd", "args": ["--x"], "port": 7101, "spec_hash": "h1",
             "stop_grace_ms": 500,
             "restart": {"policy": "always", "max_restarts": 3, "window_ms": 60000,
                         "backoff_initial_ms": 100, "backoff_max_ms": 1000})" +
         extra + "}";
}

class SupervisorTest : public ::testing::Test {
 protected:
  SupervisorTest()
      : provider_(dir_.path() + "/volumes"),
        volumes_(
            clock_, provider_, "n1",
            [](std::function<Status()> op, std::function<void(Status)> done) { done(op()); },
            [this](const std::string&) { return holders_; }) {
    Reset();
  }

  void Reset() {
    supervisor_.reset();
    Supervisor::Options o;
    o.node = "n1";
    o.data_dir = dir_.path() + "/data";
    o.path_env = "/usr/bin:/bin";
    o.lease_valid = [this] { return lease_valid_; };
    o.log_writer_argv = log_writer_argv_;
    o.start_time_of = [this](pid_t pid) -> std::optional<uint64_t> {
      if (!launcher_.Alive(pid)) return std::nullopt;
      return 5000 + pid;
    };
    o.usage = [this](const std::vector<pid_t>& pids) {
      std::map<pid_t, GroupUsage> out;
      for (pid_t pid : pids) out[pid] = usage_;
      return out;
    };
    supervisor_ = std::make_unique<Supervisor>(clock_, launcher_, volumes_, o);
  }

  void Apply(std::vector<std::string> jsons, uint64_t gen = 1) {
    AssignmentList list;
    list.generation = gen;
    for (auto& j : jsons) list.assignments.push_back(MakeAssignment(j));
    supervisor_->Apply(list);
    supervisor_->Tick();
  }

  InstanceReport Get(const std::string& instance) {
    for (auto& r : supervisor_->Report()) {
      if (r.instance == instance) return r;
    }
    ADD_FAILURE() << "no instance " << instance;
    return {};
  }

  void Advance(Duration d) {
    clock_.Advance(d);
    supervisor_->Tick();
  }

  std::string ReadLog(const std::string& instance) {
    std::ifstream in(supervisor_->LogPath(instance));
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  testing::TempDir dir_;
  testing::FakeClock clock_;
  testing::FakeLauncher launcher_;
  provider::LocalProvider provider_;
  std::vector<pid_t> holders_;
  VolumeManager volumes_;
  bool lease_valid_ = true;
  GroupUsage usage_;  // what every process uses, as the usage sampler reads it
  std::vector<std::string> log_writer_argv_;
  std::unique_ptr<Supervisor> supervisor_;
};

TEST_F(SupervisorTest, StartsWithEnvironmentAndLogFile) {
  Apply({Kvd(R"(, "env": {"K": "V"})")});
  ASSERT_EQ(launcher_.started().size(), 1u);
  const LaunchSpec& spec = launcher_.last_started().spec;
  EXPECT_EQ(spec.argv, (std::vector<std::string>{"kvd", "--x"}));
  EXPECT_EQ(spec.env.at("HAFAB_ROLE"), "kvd");
  EXPECT_EQ(spec.env.at("HAFAB_INSTANCE"), "kvd-0");
  EXPECT_EQ(spec.env.at("HAFAB_PORT"), "7101");
  EXPECT_EQ(spec.env.at("HAFAB_EPOCH"), "3");
  EXPECT_EQ(spec.env.at("HAFAB_NODE"), "n1");
  EXPECT_EQ(spec.env.at("HAFAB_VOLUME_DIR"), "");
  EXPECT_EQ(spec.env.at("PATH"), "/usr/bin:/bin");
  EXPECT_EQ(spec.env.at("K"), "V");
  EXPECT_EQ(spec.log_path, dir_.path() + "/data/logs/kvd-0.log");
  auto r = Get("kvd-0");
  EXPECT_EQ(r.state, InstanceState::kRunning);
  EXPECT_EQ(r.pid, launcher_.last_started().pid);
  EXPECT_TRUE(std::filesystem::exists(supervisor_->PidFilePath("kvd-0")));
  // Applying the same list again changes nothing.
  Apply({Kvd(R"(, "env": {"K": "V"})")}, 2);
  EXPECT_EQ(launcher_.started().size(), 1u);
}

// A replica starts with its configuration in the environment and a data directory of its own
// on the node; a new configuration (a promotion, another epoch) reaches it through the
// ReplicaLink, not by a restart; what it answers goes into the report of that process only.
TEST_F(SupervisorTest, AReplicaGetsItsConfigurationAndDataDirectoryAndIsNotRestartedByANewOne) {
  auto replica = [](int epoch, const char* role) {
    return Kvd(
        std::string(R"(, "mode": "replicated", "replica": {"instance": "kvd-0", "role": ")") +
        role + R"(", "epoch": )" + std::to_string(epoch) +
        R"(, "quorum": 2, "replicas": [{"instance": "kvd-0", "address": "127.0.0.1:7101"},
                   {"instance": "kvd-1", "address": "127.0.0.1:7102"}]})");
  };
  Apply({replica(3, "secondary")});
  ASSERT_EQ(launcher_.started().size(), 1u);
  const LaunchSpec& spec = launcher_.last_started().spec;
  EXPECT_EQ(spec.env.at("HAFAB_VOLUME_DIR"), supervisor_->ReplicaDataDir("kvd-0"));
  EXPECT_EQ(supervisor_->ReplicaDataDir("kvd-0"), dir_.path() + "/data/replicas/kvd-0");
  EXPECT_TRUE(std::filesystem::is_directory(supervisor_->ReplicaDataDir("kvd-0")));
  EXPECT_EQ(spec.env.at("HAFAB_REPLICA_ROLE"), "secondary");
  EXPECT_EQ(spec.env.at("HAFAB_REPLICA_PEERS"), "127.0.0.1:7102");
  const pid_t pid = launcher_.last_started().pid;

  Apply({replica(4, "primary")}, 2);
  EXPECT_EQ(launcher_.started().size(), 1u);
  auto targets = supervisor_->ReplicaTargets();
  ASSERT_EQ(targets.size(), 1u);
  EXPECT_EQ(targets[0].pid, pid);
  EXPECT_EQ(targets[0].config.role, wire::ReplicaRole::kPrimary);
  EXPECT_EQ(targets[0].config.epoch, 4);

  EXPECT_FALSE(Get("kvd-0").replica.has_value());
  supervisor_->RecordReplica("kvd-0", pid + 1, wire::ReplicaStatus{});  // another process
  EXPECT_FALSE(Get("kvd-0").replica.has_value());
  supervisor_->RecordReplica(
      "kvd-0", pid, wire::ReplicaStatus{wire::ReplicaRole::kPrimary, 4, {4, 9}, "streaming", ""});
  ASSERT_TRUE(Get("kvd-0").replica.has_value());
  EXPECT_EQ(Get("kvd-0").replica->position, (wire::Position{4, 9}));
  supervisor_->RecordReplica("kvd-0", pid, Status::Unavailable("GET /hafab/v1/replica: refused"));
  EXPECT_EQ(Get("kvd-0").message, "replica: GET /hafab/v1/replica: refused");
  // Through a hook: it runs in the instance's directory, its stderr in the instance's log.
  Apply({replica(4, "primary")
             .insert(replica(4, "primary").size() - 1, R"(, "replica_hook": "/opt/kv/hook")")},
        3);
  targets = supervisor_->ReplicaTargets();
  ASSERT_EQ(targets.size(), 1u);
  EXPECT_EQ(targets[0].hook, "/opt/kv/hook");
  EXPECT_EQ(targets[0].hook_spec.cwd, dir_.path() + "/data/work/kvd-0");
  EXPECT_EQ(targets[0].hook_spec.log_path, supervisor_->LogPath("kvd-0"));
  EXPECT_EQ(targets[0].hook_spec.env.at("HAFAB_PORT"), "7101");
  EXPECT_FALSE(targets[0].hook_spec.switch_account);  // the role names no user
}

TEST_F(SupervisorTest, RestartBackoffDoublesUpToMax) {
  Apply({Kvd(R"(, "restart": {"policy": "always", "max_restarts": 100, "window_ms": 60000,
                              "backoff_initial_ms": 100, "backoff_max_ms": 350})")});
  std::vector<int64_t> delays;
  for (int i = 0; i < 4; ++i) {
    size_t starts = launcher_.started().size();
    launcher_.Exit(launcher_.last_started().pid, 1);
    supervisor_->Tick();
    EXPECT_EQ(Get("kvd-0").state, InstanceState::kBackoff);
    EXPECT_EQ(Get("kvd-0").last_exit, "exit 1");
    int64_t waited = 0;
    while (launcher_.started().size() == starts) {
      Advance(milliseconds(10));
      waited += 10;
      ASSERT_LT(waited, 10000);
    }
    delays.push_back(waited);
  }
  EXPECT_EQ(delays, (std::vector<int64_t>{100, 200, 350, 350}));
  EXPECT_EQ(Get("kvd-0").restarts, 4);
  EXPECT_EQ(Get("kvd-0").state, InstanceState::kRunning);
}

// Moved here crash-looping after 3 restarts elsewhere: the first start waits the 4th
// restart's backoff (100ms doubled 3 times), and the backoff goes on from there.
TEST_F(SupervisorTest, RelocatedCrashLoopContinuesItsBackoff) {
  Apply({Kvd(R"(, "prior_restarts": 3)")});
  EXPECT_TRUE(launcher_.started().empty());
  EXPECT_EQ(Get("kvd-0").state, InstanceState::kBackoff);
  EXPECT_NE(Get("kvd-0").message.find("3 restarts elsewhere"), std::string::npos);
  int64_t waited = 0;
  while (launcher_.started().empty()) {
    Advance(milliseconds(10));
    waited += 10;
    ASSERT_LT(waited, 10000);
  }
  EXPECT_EQ(waited, 800);
  launcher_.Exit(launcher_.last_started().pid, 1);
  supervisor_->Tick();
  waited = 0;
  while (launcher_.started().size() == 1) {
    Advance(milliseconds(10));
    waited += 10;
    ASSERT_LT(waited, 10000);
  }
  EXPECT_EQ(waited, 1000);  // backoff_max
}

TEST_F(SupervisorTest, GivesUpAfterMaxRestartsInWindow) {
  Apply({Kvd()});  // max_restarts 3
  for (int i = 0; i < 3; ++i) {
    launcher_.Kill(launcher_.last_started().pid, SIGSEGV);
    supervisor_->Tick();
    Advance(milliseconds(1000));
  }
  EXPECT_EQ(launcher_.started().size(), 4u);
  launcher_.Kill(launcher_.last_started().pid, SIGSEGV);
  Advance(milliseconds(5000));
  auto r = Get("kvd-0");
  EXPECT_EQ(r.state, InstanceState::kFailed);
  EXPECT_NE(r.message.find("gave up"), std::string::npos) << r.message;
  EXPECT_NE(r.last_exit.find("signal 11"), std::string::npos) << r.last_exit;
  EXPECT_EQ(launcher_.started().size(), 4u);
  // A new assignment (new spec) tries again.
  Apply({Kvd(R"(, "spec_hash": "h2")")}, 2);
  EXPECT_EQ(launcher_.started().size(), 5u);
}

TEST_F(SupervisorTest, RestartPolicies) {
  Apply({Kvd(R"(, "restart": {"policy": "on-failure"})")});
  launcher_.Exit(launcher_.last_started().pid, 0);
  Advance(milliseconds(5000));
  EXPECT_EQ(Get("kvd-0").state, InstanceState::kStopped);
  EXPECT_EQ(launcher_.started().size(), 1u);

  Apply({Kvd(R"(, "spec_hash": "h2", "restart": {"policy": "on-failure"})")}, 2);
  ASSERT_EQ(launcher_.started().size(), 2u);
  launcher_.Exit(launcher_.last_started().pid, 2);
  supervisor_->Tick();
  Advance(milliseconds(5000));
  EXPECT_EQ(launcher_.started().size(), 3u);

  Apply({Kvd(R"(, "spec_hash": "h3", "restart": {"policy": "never"})")}, 3);
  // The spec changed: the running process is replaced.
  Advance(milliseconds(10));
  ASSERT_EQ(launcher_.started().size(), 4u);
  launcher_.Exit(launcher_.last_started().pid, 2);
  supervisor_->Tick();
  Advance(milliseconds(5000));
  EXPECT_EQ(Get("kvd-0").state, InstanceState::kFailed);
  EXPECT_EQ(launcher_.started().size(), 4u);
}

TEST_F(SupervisorTest, StopSendsSigtermThenSigkillAfterGrace) {
  Apply({Kvd()});
  pid_t pid = launcher_.last_started().pid;
  launcher_.IgnoreSigterm(pid);
  Apply({Kvd(R"(, "run": false)")}, 2);
  EXPECT_EQ(launcher_.SignalsSentTo(pid, SIGTERM), 1);
  EXPECT_EQ(Get("kvd-0").state, InstanceState::kStopping);
  Advance(milliseconds(499));
  EXPECT_EQ(launcher_.SignalsSentTo(pid, SIGKILL), 0);
  Advance(milliseconds(1));
  EXPECT_EQ(launcher_.SignalsSentTo(pid, SIGKILL), 1);
  supervisor_->Tick();
  EXPECT_EQ(Get("kvd-0").state, InstanceState::kStopped);
  EXPECT_FALSE(std::filesystem::exists(supervisor_->PidFilePath("kvd-0")));
  Advance(milliseconds(5000));
  EXPECT_EQ(launcher_.started().size(), 1u);  // a standby stays stopped
}

constexpr char kDrain[] = R"(, "drain": {"command": ["app-ctl", "drain"], "timeout_ms": 1000})";

// A drain hook runs instead of the first SIGTERM, with the instance's environment and log;
// SIGTERM follows when it exits, SIGKILL stop_grace after that.
TEST_F(SupervisorTest, DrainHookRunsBeforeSigterm) {
  Apply({Kvd(kDrain)});
  pid_t pid = launcher_.last_started().pid;
  launcher_.IgnoreSigterm(pid);
  Apply({Kvd(std::string(kDrain) + R"(, "run": false)")}, 2);
  ASSERT_EQ(launcher_.started().size(), 2u);
  const auto& hook = launcher_.last_started();
  EXPECT_EQ(hook.spec.argv, (std::vector<std::string>{"app-ctl", "drain"}));
  EXPECT_EQ(hook.spec.env.at("HAFAB_PORT"), "7101");
  EXPECT_EQ(hook.spec.env.at("HAFAB_INSTANCE"), "kvd-0");
  EXPECT_EQ(hook.spec.log_path, supervisor_->LogPath("kvd-0"));
  EXPECT_EQ(launcher_.SignalsSentTo(pid, SIGTERM), 0);
  EXPECT_EQ(Get("kvd-0").state, InstanceState::kStopping);
  Advance(milliseconds(900));  // longer than stop_grace: the hook's timeout applies
  EXPECT_EQ(launcher_.SignalsSentTo(pid, SIGTERM), 0);
  EXPECT_EQ(launcher_.SignalsSentTo(pid, SIGKILL), 0);
  launcher_.Exit(hook.pid, 0);
  Advance(milliseconds(10));
  EXPECT_EQ(launcher_.SignalsSentTo(pid, SIGTERM), 1);
  Advance(milliseconds(499));
  EXPECT_EQ(launcher_.SignalsSentTo(pid, SIGKILL), 0);
  Advance(milliseconds(1));
  EXPECT_EQ(launcher_.SignalsSentTo(pid, SIGKILL), 1);
  supervisor_->Tick();
  EXPECT_EQ(Get("kvd-0").state, InstanceState::kStopped);
  // The instance's log shows where the hook ran (its own output lands between the lines).
  EXPECT_EQ(ReadLog("kvd-0"),
            "hafab-agent: drain hook app-ctl starting (assigned as standby)\n"
            "hafab-agent: drain hook exit 0 after 910ms; SIGTERM\n");
}

TEST_F(SupervisorTest, DrainHookPastItsTimeoutIsKilledAndSigtermFollows) {
  Apply({Kvd(kDrain)});
  pid_t pid = launcher_.last_started().pid;
  Apply({Kvd(std::string(kDrain) + R"(, "run": false)")}, 2);
  pid_t hook = launcher_.last_started().pid;
  Advance(milliseconds(999));
  EXPECT_EQ(launcher_.SignalsSentTo(pid, SIGTERM), 0);
  Advance(milliseconds(1));
  EXPECT_EQ(launcher_.SignalsSentTo(hook, SIGKILL), 1);
  EXPECT_EQ(launcher_.SignalsSentTo(pid, SIGTERM), 1);
  supervisor_->Tick();
  EXPECT_EQ(Get("kvd-0").state, InstanceState::kStopped);
  EXPECT_NE(ReadLog("kvd-0").find("drain hook timed out after 1000ms (killed); SIGTERM"),
            std::string::npos);
}

TEST_F(SupervisorTest, DrainHookThatCannotStartFallsBackToSigterm) {
  Apply({Kvd(kDrain)});
  pid_t pid = launcher_.last_started().pid;
  launcher_.FailNextStart(Status::NotFound("app-ctl: not found"));
  Apply({Kvd(std::string(kDrain) + R"(, "run": false)")}, 2);
  EXPECT_EQ(launcher_.SignalsSentTo(pid, SIGTERM), 1);
  supervisor_->Tick();
  EXPECT_EQ(Get("kvd-0").state, InstanceState::kStopped);
  EXPECT_NE(ReadLog("kvd-0").find("drain hook cannot start: NotFound: app-ctl: not found; SIGTERM"),
            std::string::npos)
      << ReadLog("kvd-0");
}

// How to stop needs no restart: a hook added to the running instance's role is used at its
// stop, without restarting it.
TEST_F(SupervisorTest, DrainHookChangeAppliesWithoutRestart) {
  Apply({Kvd()});
  pid_t pid = launcher_.last_started().pid;
  Apply({Kvd(kDrain)}, 2);
  EXPECT_EQ(launcher_.started().size(), 1u);
  EXPECT_EQ(launcher_.SignalsSentTo(pid, SIGTERM), 0);
  Apply({Kvd(std::string(kDrain) + R"(, "run": false)")}, 3);
  ASSERT_EQ(launcher_.started().size(), 2u);
  EXPECT_EQ(launcher_.last_started().spec.argv, (std::vector<std::string>{"app-ctl", "drain"}));
  EXPECT_EQ(launcher_.SignalsSentTo(pid, SIGTERM), 0);
}

TEST_F(SupervisorTest, InstanceEndingDuringItsDrainHookEndsTheHook) {
  Apply({Kvd(kDrain)});
  pid_t pid = launcher_.last_started().pid;
  Apply({Kvd(std::string(kDrain) + R"(, "run": false)")}, 2);
  pid_t hook = launcher_.last_started().pid;
  launcher_.Exit(pid, 0);  // drained and exited by itself
  Advance(milliseconds(10));
  EXPECT_EQ(Get("kvd-0").state, InstanceState::kStopped);
  EXPECT_EQ(launcher_.SignalsSentTo(hook, SIGKILL), 1);
  EXPECT_EQ(launcher_.SignalsSentTo(pid, SIGTERM), 0);
}

TEST_F(SupervisorTest, KillsSkipTheDrainHook) {
  Apply({Kvd(kDrain)});
  pid_t pid = launcher_.last_started().pid;
  supervisor_->Fence("test");
  EXPECT_EQ(launcher_.started().size(), 1u);  // no hook: a fence kills at once
  EXPECT_EQ(launcher_.SignalsSentTo(pid, SIGKILL), 1);
}

TEST_F(SupervisorTest, UnlistedInstanceIsStoppedAndForgotten) {
  Apply({Kvd(), R"({"instance": "web-0", "role": "web", "command": "web"})"});
  EXPECT_EQ(launcher_.LiveCount(), 2u);
  Apply({R"({"instance": "web-0", "role": "web", "command": "web"})"}, 2);
  supervisor_->Tick();
  EXPECT_EQ(launcher_.LiveCount(), 1u);
  ASSERT_EQ(supervisor_->Report().size(), 1u);
  EXPECT_EQ(supervisor_->Report()[0].instance, "web-0");
}

TEST_F(SupervisorTest, RefusesPrimaryWithStaleEpoch) {
  Apply({Kvd(R"(, "run": false, "epoch": 5)")});
  EXPECT_EQ(supervisor_->HighestEpoch("kvd"), 5u);
  Apply({Kvd(R"(, "epoch": 4)")}, 2);
  EXPECT_EQ(launcher_.started().size(), 0u);
  auto r = Get("kvd-0");
  EXPECT_EQ(r.state, InstanceState::kFailed);
  EXPECT_NE(r.message.find("epoch 4 is older than epoch 5"), std::string::npos) << r.message;
  // The highest epoch survives an agent restart.
  Reset();
  EXPECT_EQ(supervisor_->HighestEpoch("kvd"), 5u);
  Apply({Kvd(R"(, "epoch": 4)")}, 3);
  EXPECT_EQ(launcher_.started().size(), 0u);
  Apply({Kvd(R"(, "epoch": 6)")}, 4);
  EXPECT_EQ(launcher_.started().size(), 1u);
}

TEST_F(SupervisorTest, LoadBalancedRoleHasNoEpochRefusal) {
  Apply({R"({"instance": "w-0", "role": "w", "command": "w", "epoch": 5, "run": false})"});
  Apply({R"({"instance": "w-0", "role": "w", "command": "w", "epoch": 1})"}, 2);
  EXPECT_EQ(launcher_.started().size(), 1u);
}

TEST_F(SupervisorTest, FenceKillsPrimariesOnlyUntilFreshAssignments) {
  Apply({Kvd(), R"({"instance": "web-0", "role": "web", "command": "web"})"});
  pid_t kvd = launcher_.started()[0].spec.env.at("HAFAB_INSTANCE") == "kvd-0"
                  ? launcher_.started()[0].pid
                  : launcher_.started()[1].pid;
  supervisor_->Fence("lease expired");
  EXPECT_EQ(launcher_.SignalsSentTo(kvd, SIGKILL), 1);
  EXPECT_EQ(launcher_.SignalsSentTo(kvd, SIGTERM), 0);  // no grace: this is fencing
  supervisor_->Tick();
  EXPECT_FALSE(launcher_.Alive(kvd));
  EXPECT_EQ(launcher_.LiveCount(), 1u);  // the load-balanced instance keeps running
  // Re-applying the old list does not restart the primary while fenced.
  Apply({Kvd(), R"({"instance": "web-0", "role": "web", "command": "web"})"});
  Advance(milliseconds(5000));
  EXPECT_EQ(launcher_.LiveCount(), 1u);
  EXPECT_NE(Get("kvd-0").message.find("fenced"), std::string::npos);
  supervisor_->Unfence();
  Advance(milliseconds(10));
  EXPECT_EQ(launcher_.LiveCount(), 2u);
}

// The heartbeat-on-change digest moves with what the controller acts on (a start, a new probe
// result, a fence), not with a tick that changes nothing, a usage sample or a repeated result.
TEST_F(SupervisorTest, ReportDigestMovesWithStateNotWithUsage) {
  const uint64_t empty = supervisor_->ReportDigest();
  Apply({Kvd(R"(, "probes": {"liveness": {"kind": "tcp", "interval_ms": 100, "timeout_ms": 50,
                                          "failure_threshold": 3, "success_threshold": 1}})")});
  const pid_t pid = launcher_.last_started().pid;
  const uint64_t started = supervisor_->ReportDigest();
  EXPECT_NE(started, empty);
  Advance(milliseconds(10));
  EXPECT_EQ(supervisor_->ReportDigest(), started);  // a tick with nothing new
  usage_.cpu_ticks += 500;
  usage_.rss_bytes += 64 << 20;
  Advance(milliseconds(2000));  // a usage sample
  ASSERT_GT(Get("kvd-0").rss_bytes, 0u);
  EXPECT_EQ(supervisor_->ReportDigest(), started);  // usage goes with the regular heartbeats
  supervisor_->RecordProbe("kvd-0", pid, ProbeType::kLiveness, ProbeOutcome::kOk);
  const uint64_t live = supervisor_->ReportDigest();
  EXPECT_NE(live, started);
  supervisor_->RecordProbe("kvd-0", pid, ProbeType::kLiveness, ProbeOutcome::kOk);
  EXPECT_EQ(supervisor_->ReportDigest(), live);  // the same result again
  supervisor_->Fence("lease expired");
  EXPECT_NE(supervisor_->ReportDigest(), live);
}

TEST_F(SupervisorTest, PrimaryWaitsForLease) {
  lease_valid_ = false;
  Apply({Kvd()});
  EXPECT_EQ(launcher_.started().size(), 0u);
  EXPECT_EQ(Get("kvd-0").state, InstanceState::kStarting);
  lease_valid_ = true;
  Advance(milliseconds(10));
  EXPECT_EQ(launcher_.started().size(), 1u);
}

TEST_F(SupervisorTest, LivenessFailureKillsAndRestarts) {
  Apply({Kvd(R"(, "probes": {"liveness": {"kind": "tcp", "interval_ms": 100, "timeout_ms": 50,
                                          "failure_threshold": 3, "success_threshold": 1}})")});
  pid_t pid = launcher_.last_started().pid;
  ASSERT_EQ(supervisor_->ProbeTargets().size(), 1u);
  supervisor_->RecordProbe("kvd-0", pid, ProbeType::kLiveness, ProbeOutcome::kOk);
  EXPECT_EQ(Get("kvd-0").liveness, Liveness::kOk);
  supervisor_->RecordProbe("kvd-0", pid, ProbeType::kLiveness, ProbeOutcome::kFailed);
  supervisor_->RecordProbe("kvd-0", pid, ProbeType::kLiveness, ProbeOutcome::kFailed);
  EXPECT_EQ(Get("kvd-0").liveness, Liveness::kFailing);
  EXPECT_EQ(launcher_.SignalsSentTo(pid, SIGKILL), 0);
  supervisor_->RecordProbe("kvd-0", pid, ProbeType::kLiveness, ProbeOutcome::kFailed);
  EXPECT_EQ(launcher_.SignalsSentTo(pid, SIGKILL), 1);
  supervisor_->Tick();
  auto r = Get("kvd-0");
  EXPECT_EQ(r.state, InstanceState::kBackoff);
  EXPECT_NE(r.last_exit.find("liveness failed"), std::string::npos) << r.last_exit;
  Advance(milliseconds(100));
  EXPECT_EQ(launcher_.started().size(), 2u);
  // A late result for the old process is ignored.
  supervisor_->RecordProbe("kvd-0", pid, ProbeType::kLiveness, ProbeOutcome::kFailed);
  EXPECT_EQ(Get("kvd-0").liveness, Liveness::kUnknown);
}

TEST_F(SupervisorTest, LivenessFailuresDuringStartupGraceIgnored) {
  Apply({Kvd(R"(, "probes": {"liveness": {"kind": "tcp", "failure_threshold": 1}})")});
  pid_t pid = launcher_.last_started().pid;
  supervisor_->RecordProbe("kvd-0", pid, ProbeType::kLiveness, ProbeOutcome::kFailed);
  EXPECT_EQ(launcher_.SignalsSentTo(pid, SIGKILL), 0);
  clock_.Advance(std::chrono::seconds(11));
  supervisor_->RecordProbe("kvd-0", pid, ProbeType::kLiveness, ProbeOutcome::kFailed);
  EXPECT_EQ(launcher_.SignalsSentTo(pid, SIGKILL), 1);
}

TEST_F(SupervisorTest, ReadinessBusyVersusFailed) {
  Apply({Kvd(R"(, "probes": {"readiness": {"kind": "http", "failure_threshold": 2}})")});
  pid_t pid = launcher_.last_started().pid;
  supervisor_->RecordProbe("kvd-0", pid, ProbeType::kReadiness, ProbeOutcome::kOk);
  EXPECT_EQ(Get("kvd-0").readiness, Readiness::kReady);
  for (int i = 0; i < 5; ++i) {
    supervisor_->RecordProbe("kvd-0", pid, ProbeType::kReadiness, ProbeOutcome::kBusy);
  }
  EXPECT_EQ(Get("kvd-0").readiness, Readiness::kBusy);
  supervisor_->RecordProbe("kvd-0", pid, ProbeType::kReadiness, ProbeOutcome::kFailed);
  supervisor_->RecordProbe("kvd-0", pid, ProbeType::kReadiness, ProbeOutcome::kFailed);
  EXPECT_EQ(Get("kvd-0").readiness, Readiness::kFailed);
  // Failed readiness alone (before failover_after) restarts nothing.
  EXPECT_EQ(launcher_.SignalsSentTo(pid, SIGKILL), 0);
  EXPECT_EQ(Get("kvd-0").state, InstanceState::kRunning);
}

// Once every instance is where it should be, a tick only reaps and samples: nothing in the
// report moves until an exit, a probe result that shows, a usage sample or a new assignment.
TEST_F(SupervisorTest, ASettledTickChangesNothingUntilAnExitAProbeOrAnAssignment) {
  Apply({Kvd(R"(, "probes": {"readiness": {"kind": "http", "failure_threshold": 2}})")});
  const pid_t pid = launcher_.last_started().pid;
  Advance(milliseconds(10));  // settles
  const uint64_t digest = supervisor_->ReportDigest();
  uint64_t changes = supervisor_->changes();
  Advance(milliseconds(10));
  EXPECT_EQ(supervisor_->changes(), changes);
  EXPECT_EQ(supervisor_->ReportDigest(), digest);

  supervisor_->RecordProbe("kvd-0", pid, ProbeType::kReadiness, ProbeOutcome::kOk);
  EXPECT_GT(supervisor_->changes(), changes) << "readiness went unknown -> ready";
  EXPECT_NE(supervisor_->ReportDigest(), digest);
  changes = supervisor_->changes();
  supervisor_->RecordProbe("kvd-0", pid, ProbeType::kReadiness, ProbeOutcome::kOk);
  EXPECT_EQ(supervisor_->changes(), changes) << "still ready";

  Advance(std::chrono::seconds(1));  // usage is sampled on the clock, settled or not
  EXPECT_GT(supervisor_->changes(), changes);

  launcher_.Kill(pid, SIGKILL);
  Advance(milliseconds(10));
  EXPECT_EQ(Get("kvd-0").state, InstanceState::kBackoff);
  Advance(milliseconds(100));  // the backoff runs out on the clock alone
  EXPECT_EQ(launcher_.started().size(), 2u);
  EXPECT_EQ(Get("kvd-0").state, InstanceState::kRunning);
  Advance(milliseconds(10));

  Apply({}, 2);  // no longer assigned here
  EXPECT_EQ(Get("kvd-0").state, InstanceState::kStopping);
}

constexpr char kHangProbes[] =
    R"(, "probes": {"readiness": {"kind": "http", "interval_ms": 100, "failure_threshold": 2,
                                  "failover_after_ms": 500}})";

// Records readiness results 100 ms apart.
void Probe(Supervisor& s, testing::FakeClock& clock, pid_t pid, ProbeOutcome outcome, int n) {
  for (int i = 0; i < n; ++i) {
    clock.Advance(milliseconds(100));
    s.RecordProbe("kvd-0", pid, ProbeType::kReadiness, outcome);
  }
}

TEST_F(SupervisorTest, HungPrimaryIsKilledAndHeldFailedForTheController) {
  Apply({Kvd(kHangProbes)});
  pid_t pid = launcher_.last_started().pid;
  Probe(*supervisor_, clock_, pid, ProbeOutcome::kOk, 1);
  Probe(*supervisor_, clock_, pid, ProbeOutcome::kFailed, 4);  // 400 ms since the last answer
  EXPECT_EQ(Get("kvd-0").readiness, Readiness::kFailed);
  EXPECT_EQ(launcher_.SignalsSentTo(pid, SIGKILL), 0);
  Probe(*supervisor_, clock_, pid, ProbeOutcome::kFailed, 1);  // 500 ms: hung
  EXPECT_EQ(launcher_.SignalsSentTo(pid, SIGKILL), 1) << "killed at once, not SIGTERM + grace";
  EXPECT_EQ(launcher_.SignalsSentTo(pid, SIGTERM), 0);
  supervisor_->Tick();
  auto r = Get("kvd-0");
  EXPECT_EQ(r.state, InstanceState::kFailed);
  EXPECT_NE(r.last_exit.find("hung: readiness failed for 500ms"), std::string::npos) << r.last_exit;
  Advance(std::chrono::seconds(2));
  EXPECT_EQ(launcher_.started().size(), 1u) << "not restarted in place: the controller fails over";
  // The failover makes it a standby at a new epoch; as primary again it starts.
  Apply({Kvd(std::string(kHangProbes) + R"(, "run": false, "epoch": 4)")}, 2);
  EXPECT_EQ(Get("kvd-0").state, InstanceState::kStopped);
  Apply({Kvd(std::string(kHangProbes) + R"(, "epoch": 5)")}, 3);
  EXPECT_EQ(launcher_.started().size(), 2u);
  EXPECT_EQ(Get("kvd-0").state, InstanceState::kRunning);
}

TEST_F(SupervisorTest, HungLoadBalancedInstanceRestartsInPlace) {
  Apply({Kvd(std::string(kHangProbes) + R"(, "mode": "load-balanced")")});
  pid_t pid = launcher_.last_started().pid;
  Probe(*supervisor_, clock_, pid, ProbeOutcome::kBusy, 1);  // busy is an answer too
  Probe(*supervisor_, clock_, pid, ProbeOutcome::kFailed, 5);
  EXPECT_EQ(launcher_.SignalsSentTo(pid, SIGKILL), 1);
  supervisor_->Tick();
  auto r = Get("kvd-0");
  EXPECT_EQ(r.state, InstanceState::kBackoff);
  EXPECT_EQ(r.restarts, 1);
  EXPECT_NE(r.last_exit.find("hung"), std::string::npos) << r.last_exit;
  Advance(milliseconds(100));
  EXPECT_EQ(launcher_.started().size(), 2u);
}

TEST_F(SupervisorTest, NotHungBeforeTheFirstReadyAnswerOrWithFailoverAfterZero) {
  Apply({Kvd(kHangProbes)});
  pid_t pid = launcher_.last_started().pid;
  Probe(*supervisor_, clock_, pid, ProbeOutcome::kFailed, 30);  // starting: never ready yet
  EXPECT_EQ(launcher_.SignalsSentTo(pid, SIGKILL), 0);
  Apply({Kvd(R"(, "spec_hash": "h2",
                "probes": {"readiness": {"kind": "http", "interval_ms": 100,
                                         "failover_after_ms": 0}})")},
        2);
  supervisor_->Tick();  // the changed spec stops the old process (SIGTERM) and starts anew
  ASSERT_EQ(launcher_.started().size(), 2u);
  pid = launcher_.last_started().pid;
  Probe(*supervisor_, clock_, pid, ProbeOutcome::kOk, 1);
  Probe(*supervisor_, clock_, pid, ProbeOutcome::kFailed, 30);
  EXPECT_EQ(launcher_.SignalsSentTo(pid, SIGKILL), 0);
  EXPECT_EQ(Get("kvd-0").state, InstanceState::kRunning);
}

std::string VolumeState(VolumeManager& v, const std::string& name) {
  for (const auto& r : v.Report()) {
    if (r.name == name) return std::string(wire::VolumeStateName(r.state));
  }
  return "absent";
}

TEST_F(SupervisorTest, VolumeAttachedBeforeStartAndDetachedAfterStop) {
  Apply({Kvd(R"(, "volume": "kvd-data")")});
  ASSERT_EQ(launcher_.started().size(), 1u);
  EXPECT_EQ(launcher_.last_started().spec.env.at("HAFAB_VOLUME_DIR"),
            dir_.path() + "/volumes/kvd-data/data");
  EXPECT_EQ(provider_.Describe("kvd-data")->node, "n1");
  EXPECT_EQ(VolumeState(volumes_, "kvd-data"), "attached");
  pid_t pid = launcher_.last_started().pid;
  launcher_.IgnoreSigterm(pid);
  holders_ = {4242};
  // The controller moves the volume away: stop first, report detaching meanwhile.
  Apply({Kvd(R"(, "run": false)")}, 2);
  EXPECT_EQ(launcher_.SignalsSentTo(pid, SIGTERM), 1);
  EXPECT_EQ(VolumeState(volumes_, "kvd-data"), "detaching");
  Advance(milliseconds(600));  // grace over: SIGKILL
  Advance(milliseconds(200));
  EXPECT_FALSE(launcher_.Alive(pid));
  EXPECT_EQ(VolumeState(volumes_, "kvd-data"), "detaching");  // a process still holds it
  EXPECT_EQ(provider_.Describe("kvd-data")->node, "n1");
  holders_.clear();
  Advance(milliseconds(200));
  EXPECT_EQ(VolumeState(volumes_, "kvd-data"), "detached");
  EXPECT_EQ(provider_.Describe("kvd-data")->node, "");
}

TEST_F(SupervisorTest, VolumeMovesBetweenInstancesWithoutOverlap) {
  Apply({Kvd(R"(, "volume": "kvd-data")")});
  pid_t old_pid = launcher_.last_started().pid;
  launcher_.IgnoreSigterm(old_pid);
  // One list: kvd-0 demoted, kvd-1 promoted with the same volume on this node.
  Apply({Kvd(R"(, "run": false)"),
         R"({"instance": "kvd-1", "role": "kvd", "mode": "active-passive", "epoch": 4,
             "command": "kvd", "volume": "kvd-data"})"},
        2);
  EXPECT_EQ(launcher_.started().size(), 1u);
  EXPECT_EQ(Get("kvd-1").state, InstanceState::kStarting);
  EXPECT_NE(Get("kvd-1").message.find("kvd-0"), std::string::npos);
  Advance(milliseconds(600));  // kvd-0's grace runs out: SIGKILL
  Advance(milliseconds(10));
  EXPECT_FALSE(launcher_.Alive(old_pid));
  ASSERT_EQ(launcher_.started().size(), 2u);
  EXPECT_EQ(launcher_.last_started().spec.env.at("HAFAB_INSTANCE"), "kvd-1");
}

TEST_F(SupervisorTest, VolumeAttachConflictWaits) {
  ASSERT_TRUE(provider_.Attach("kvd-data", "n2", "kvd-1").ok());
  Apply({Kvd(R"(, "volume": "kvd-data")")});
  EXPECT_EQ(launcher_.started().size(), 0u);
  auto r = Get("kvd-0");
  EXPECT_EQ(r.state, InstanceState::kStarting);
  EXPECT_NE(r.message.find("n2"), std::string::npos) << r.message;
  ASSERT_TRUE(provider_.Detach("kvd-data", "n2").ok());
  Advance(std::chrono::seconds(1));
  Advance(milliseconds(10));
  EXPECT_EQ(launcher_.started().size(), 1u);
}

TEST_F(SupervisorTest, FenceDetachesPrimaryVolume) {
  Apply({Kvd(R"(, "volume": "kvd-data")")});
  supervisor_->Fence("lease expired");
  supervisor_->Tick();
  supervisor_->Tick();
  EXPECT_EQ(VolumeState(volumes_, "kvd-data"), "detached");
  EXPECT_EQ(provider_.Describe("kvd-data")->node, "");
}

TEST_F(SupervisorTest, VolumeLeftAttachedByCrashedAgentIsDetached) {
  auto inline_runner = [](std::function<Status()> op, std::function<void(Status)> done) {
    done(op());
  };
  auto no_holders = [](const std::string&) { return std::vector<pid_t>{}; };
  const std::string state = dir_.path() + "/volumes.json";
  {
    VolumeManager before(clock_, provider_, "n1", inline_runner, no_holders);
    before.PersistTo(state);
    before.SetDesired({{"v", "kvd-0"}});
    before.Tick();
    ASSERT_TRUE(before.IsAttached("v"));
  }  // the agent crashes
  VolumeManager after(clock_, provider_, "n1", inline_runner, no_holders);
  after.PersistTo(state);
  EXPECT_TRUE(after.IsAttached("v"));
  after.SetDesired({});  // nothing needs it any more
  after.Tick();
  EXPECT_EQ(VolumeState(after, "v"), "detached");
  EXPECT_EQ(provider_.Describe("v")->node, "");
  VolumeManager third(clock_, provider_, "n1", inline_runner, no_holders);
  third.PersistTo(state);
  EXPECT_TRUE(third.Report().empty());
}

TEST_F(SupervisorTest, AdoptsMatchingLeftoverAndReplacesChangedOne) {
  Apply({Kvd(), R"({"instance": "web-0", "role": "web", "command": "web", "spec_hash": "w1"})"});
  ASSERT_EQ(launcher_.started().size(), 2u);
  // The agent dies (SIGKILL): its processes keep running; a new agent starts.
  Reset();
  supervisor_->AdoptLeftovers();
  supervisor_->Tick();
  EXPECT_EQ(supervisor_->Report().size(), 2u);
  EXPECT_EQ(Get("kvd-0").state, InstanceState::kRunning);
  pid_t kvd_pid = Get("kvd-0").pid;
  pid_t web_pid = Get("web-0").pid;
  Apply({Kvd(), R"({"instance": "web-0", "role": "web", "command": "web", "spec_hash": "w2"})"}, 2);
  EXPECT_EQ(launcher_.SignalsSentTo(kvd_pid, SIGTERM), 0);  // still matches: adopted
  EXPECT_EQ(launcher_.SignalsSentTo(web_pid, SIGTERM), 1);  // changed: replaced
  supervisor_->Tick();
  EXPECT_EQ(launcher_.started().size(), 3u);
  EXPECT_EQ(launcher_.LiveCount(), 2u);  // never two copies
}

TEST_F(SupervisorTest, LeftoverOfDeadProcessIgnored) {
  Apply({Kvd()});
  launcher_.Kill(launcher_.last_started().pid, SIGKILL);  // dies while no agent runs
  Reset();
  launcher_.Reap();
  supervisor_->AdoptLeftovers();
  EXPECT_TRUE(supervisor_->Report().empty());
  EXPECT_FALSE(std::filesystem::exists(supervisor_->PidFilePath("kvd-0")));
}

// The fence watchdog's pid file sits beside the instances': adoption leaves it alone (it
// logged it as unreadable and removed it).
TEST_F(SupervisorTest, AdoptionLeavesTheWatchdogPidFileAlone) {
  Apply({Kvd()});
  const auto run = std::filesystem::path(supervisor_->PidFilePath("kvd-0")).parent_path();
  const auto watchdog = run / kWatchdogPidFile;
  std::ofstream(watchdog) << 4242 << "\n";
  Reset();
  supervisor_->AdoptLeftovers();
  EXPECT_TRUE(std::filesystem::exists(watchdog));
  EXPECT_EQ(supervisor_->Report().size(), 1u);  // kvd-0 adopted
}

// Output goes through the log writer, told the log's path, size cap and rotated files kept
// (agent_binary_test runs it with a fast writer).
TEST_F(SupervisorTest, OutputGoesThroughTheLogWriter) {
  log_writer_argv_ = {"/bin/hafab", "log-writer"};
  Reset();
  Apply({Kvd()});
  EXPECT_EQ(
      launcher_.last_started().spec.log_writer_argv,
      (std::vector<std::string>{"/bin/hafab", "log-writer", "--path", supervisor_->LogPath("kvd-0"),
                                "--max-bytes", "10485760", "--keep", "3"}));
}

TEST_F(SupervisorTest, StartFailureBacksOff) {
  launcher_.FailNextStart(Status::NotFound("kvd not found on PATH"));
  Apply({Kvd()});
  auto r = Get("kvd-0");
  EXPECT_EQ(r.state, InstanceState::kBackoff);
  EXPECT_NE(r.last_exit.find("not found"), std::string::npos);
  Advance(milliseconds(100));
  EXPECT_EQ(launcher_.started().size(), 1u);
}

}  // namespace
}  // namespace hafab::agent
