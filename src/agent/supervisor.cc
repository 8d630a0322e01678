#include "agent/supervisor.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "agent/fence_watchdog.h"
#include "core/fnv.h"
#include "core/json.h"

namespace hafab::agent {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

int64_t Millis(Duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Writes via a temporary file and rename, so a crash never leaves half a file.
void WriteFileAtomic(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    if (!out) {
      spdlog::warn("cannot write {}", tmp);
      return;
    }
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) spdlog::warn("cannot rename {} to {}: {}", tmp, path, ec.message());
}

}  // namespace

struct Supervisor::Instance {
  Assignment desired;
  bool removed = false;
  bool hold = false;  // not to be started again until the assignment changes
  std::string hold_reason;
  // The current process, if pid != 0, and the assignment it was started with.
  pid_t pid = 0;
  // The main process ended but processes it left (daemons) are still being killed: nothing
  // starts and the volume stays pinned until they are gone.
  bool strays = false;
  Assignment running;
  std::shared_ptr<const std::map<std::string, std::string>> running_env;
  TimePoint started_at{};
  InstanceState state = InstanceState::kStopped;
  TimePoint kill_at{};
  bool kill_sent = false;
  pid_t drain_pid = 0;  // the drain hook's process while it runs (BeginStop)
  TimePoint drain_started{};
  bool stop_counts_as_failure = false;
  std::string stop_reason;
  TimePoint backoff_until{};
  int consecutive_failures = 0;
  std::deque<TimePoint> restart_times;
  int restarts = 0;
  std::string last_exit;
  std::string message;
  std::optional<ProbeTracker> liveness;
  std::optional<ProbeTracker> readiness;
  TimePoint readiness_ok_at{};  // last ready or busy answer of this process; {} = none yet
  bool cpu_valid = false;
  uint64_t last_cpu_ticks = 0;
  TimePoint last_cpu_at{};
  double cpu_percent = 0;
  uint64_t rss_bytes = 0;
  // The account the process runs as (user:, group:), resolved at its start or at the first
  // hook of an adopted process; hooks run as it too.
  std::optional<Account> account;
  // A replica: what this process last answered about itself, or why it did not.
  std::optional<wire::ReplicaStatus> replica;
  std::string replica_error;
};

Supervisor::Supervisor(Clock& clock, Launcher& launcher, VolumeManager& volumes, Options options)
    : clock_(clock), launcher_(launcher), volumes_(volumes), options_(std::move(options)) {
  std::error_code ec;
  for (const char* sub : {"logs", "run", "work"})
    fs::create_directories(options_.data_dir + "/" + sub, ec);
  LoadEpochs();
}

Supervisor::~Supervisor() = default;

std::string Supervisor::LogPath(const std::string& instance) const {
  return options_.data_dir + "/logs/" + instance + ".log";
}
std::string Supervisor::PidFilePath(const std::string& instance) const {
  return options_.data_dir + "/run/" + instance + ".pid";
}

uint64_t Supervisor::HighestEpoch(const std::string& role) const {
  auto it = highest_epoch_.find(role);
  return it == highest_epoch_.end() ? 0 : it->second;
}

void Supervisor::LoadEpochs() {
  std::string text = ReadFile(options_.data_dir + "/epochs.json");
  if (text.empty()) return;
  try {
    json j = json::parse(text);
    for (auto& [role, epoch] : j.items()) highest_epoch_[role] = epoch.get<uint64_t>();
  } catch (const std::exception& e) {
    spdlog::warn("ignoring unreadable {}/epochs.json: {}", options_.data_dir, e.what());
  }
}

void Supervisor::SaveEpochs() {
  WriteFileAtomic(options_.data_dir + "/epochs.json", Dump(json(highest_epoch_)) + "\n");
}

void Supervisor::AdoptLeftovers() {
  Unsettle();
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(options_.data_dir + "/run", ec)) {
    const std::string path = entry.path().string();
    // Instances' pid files only: the fence watchdog's is the agent's own.
    if (entry.path().extension() != ".pid" || entry.path().filename() == kWatchdogPidFile) {
      continue;
    }
    pid_t pid = 0;
    uint64_t start_time = 0;
    std::optional<Assignment> a;
    try {
      json j = json::parse(ReadFile(path));
      pid = j.at("pid").get<pid_t>();
      start_time = j.at("start_time").get<uint64_t>();
      auto parsed = wire::ParseAssignment(j.at("assignment").get<std::string>());
      if (parsed.ok()) a = *parsed;
    } catch (const std::exception& e) {
      spdlog::warn("ignoring unreadable pid file {}: {}", path, e.what());
    }
    auto now_start =
        (pid > 1 && options_.start_time_of) ? options_.start_time_of(pid) : std::nullopt;
    if (!a || !now_start || *now_start != start_time) {
      spdlog::info("pid file {}: process {} is gone (or its pid was reused); removing", path, pid);
      fs::remove(path, ec);
      continue;
    }
    auto& in = instances_[a->instance];
    in = std::make_unique<Instance>();
    in->desired = *a;
    in->running = *a;
    in->pid = pid;
    in->state = InstanceState::kRunning;
    in->started_at = clock_.Now();
    if (a->probes.liveness) {
      in->liveness.emplace(a->probes.liveness->failure_threshold,
                           a->probes.liveness->success_threshold);
    }
    if (a->probes.readiness) {
      in->readiness.emplace(a->probes.readiness->failure_threshold,
                            a->probes.readiness->success_threshold);
    }
    launcher_.Adopt(pid, start_time);
    if (!a->volume.empty()) volumes_.NoteAttached(a->volume, a->instance);
    spdlog::info("adopted instance {} (pid {}) left by the previous agent run", a->instance, pid);
  }
  KillUnadoptedLeftovers();
}

// An instance whose main process died while no agent ran may have left daemons: with no
// process to adopt, nothing would ever stop them.
void Supervisor::KillUnadoptedLeftovers() {
  if (options_.tracker == nullptr) return;
  for (const std::string& name : options_.tracker->Instances()) {
    if (instances_.count(name)) continue;
    int n = options_.tracker->Signal(name, SIGKILL);
    spdlog::warn(
        "instance {}: killed {} process(es) left by a previous agent run whose main "
        "process is gone",
        name, n);
  }
}

void Supervisor::Apply(const AssignmentList& list) {
  Unsettle();
  bool epochs_changed = false;
  for (const Assignment& a : list.assignments) {
    uint64_t& e = highest_epoch_[a.role];
    if (a.epoch > e) {
      e = a.epoch;
      epochs_changed = true;
    }
  }
  if (epochs_changed) SaveEpochs();
  std::set<std::string> listed;
  for (const Assignment& a : list.assignments) {
    listed.insert(a.instance);
    auto& slot = instances_[a.instance];
    if (!slot) {
      slot = std::make_unique<Instance>();
      slot->desired = a;
      if (a.prior_restarts > 0 && a.run) ContinueBackoff(*slot);
      continue;
    }
    Instance& in = *slot;
    const Assignment& old = in.desired;
    if (in.removed || old.spec_hash != a.spec_hash || old.epoch != a.epoch || old.run != a.run ||
        old.volume != a.volume || old.command != a.command || old.args != a.args) {
      // A new assignment: whatever made us give up on the old one no longer holds.
      in.hold = false;
      in.hold_reason.clear();
      in.restart_times.clear();
      in.consecutive_failures = 0;
      if (in.state == InstanceState::kFailed) in.state = InstanceState::kStopped;
    }
    in.desired = a;
    in.removed = false;
  }
  for (auto& [name, in] : instances_) {
    if (!listed.count(name)) in->removed = true;
  }
}

bool Supervisor::Idle() const {
  if (!Pids().empty()) return false;
  for (const auto& [name, in] : instances_) {
    if (in->strays) return false;
  }
  for (const auto& v : volumes_.Report()) {
    if (v.state != wire::VolumeState::kDetached) return false;
  }
  return true;
}

std::vector<std::string> Supervisor::Fence(const std::string& reason) {
  // TEST ONLY (tests/faults proves its checker catches broken fencing): skip the self-fence.
  if (getenv("HAFAB_TEST_SKIP_SELF_FENCE")) {
    spdlog::critical("HAFAB_TEST_SKIP_SELF_FENCE: NOT self-fencing ({})", reason);
    return {};
  }
  if (!fenced_) spdlog::warn("self-fencing: {}", reason);
  Unsettle();
  fenced_ = true;
  std::vector<std::string> killed;
  for (auto& [name, in] : instances_) {
    if (in->pid == 0 || !in->running.IsActivePrimary()) continue;
    if (in->state == InstanceState::kStopping && in->kill_sent) continue;
    spdlog::error("self-fencing: killing primary {} (pid {}, epoch {})", name, in->pid,
                  in->running.epoch);
    BeginStop(*in, "fenced: " + reason, /*kill_now=*/true, /*counts_as_failure=*/false);
    in->message = "fenced: " + reason;
    killed.push_back(name);
  }
  return killed;
}

void Supervisor::Unfence() {
  if (fenced_) spdlog::info("fresh assignments after the fence: primaries may start again");
  fenced_ = false;
  Unsettle();
}

bool Supervisor::WantsRunning(const Instance& in, std::string* why, bool* refused) const {
  *refused = false;
  why->clear();
  if (in.removed || !in.desired.run) return false;
  if (in.hold) {
    *why = in.hold_reason;
    return false;
  }
  if (in.desired.IsActivePrimary()) {
    if (fenced_) {
      *why = "fenced: waiting for a fresh assignment list from the controller";
      return false;
    }
    uint64_t highest = HighestEpoch(in.desired.role);
    if (in.desired.epoch < highest) {
      *refused = true;
      *why = "refused: epoch " + std::to_string(in.desired.epoch) + " is older than epoch " +
             std::to_string(highest) + " seen for role " + in.desired.role;
      return false;
    }
  }
  return true;
}

bool Supervisor::NeedsRestartForSpec(const Instance& in) const {
  const Assignment& r = in.running;
  const Assignment& d = in.desired;
  if (r.spec_hash != d.spec_hash || r.volume != d.volume) return true;
  // The controller's spec_hash covers command, args, env and port (BuildAssignments): they
  // are compared (every instance, every tick) only for an assignment that came without one.
  if (!d.spec_hash.empty()) return false;
  return r.command != d.command || r.args != d.args || r.env != d.env || r.port != d.port;
}

void Supervisor::Step(Instance& in) {
  const TimePoint now = clock_.Now();
  std::string why;
  bool refused = false;
  bool wanted = WantsRunning(in, &why, &refused);
  if (in.pid != 0) {
    if (in.state == InstanceState::kStopping) {
      if (in.drain_pid != 0) {
        if (now < in.drain_started + in.running.drain->timeout) return;
        (void)launcher_.SignalGroup(in.drain_pid, SIGKILL);  // reaped as no instance's
        EndDrainHook(
            in, "timed out after " + std::to_string(Millis(now - in.drain_started)) + "ms (killed)",
            false);
        return;
      }
      if (!in.kill_sent && now >= in.kill_at) {
        spdlog::warn("instance {}: still running {}ms after SIGTERM; sending SIGKILL",
                     in.desired.instance, Millis(in.running.stop_grace));
        SignalInstance(in, SIGKILL);
        in.kill_sent = true;
      }
      return;
    }
    if (!wanted) {
      if (refused) spdlog::error("instance {}: {}", in.desired.instance, why);
      in.message = why;
      BeginStop(in, why.empty() ? (in.removed ? "no longer assigned" : "assigned as standby") : why,
                false, false);
      return;
    }
    if (NeedsRestartForSpec(in)) {
      BeginStop(in, "assignment changed", false, false);
      return;
    }
    in.running.epoch = in.desired.epoch;  // same process, the role's epoch moved on
    // How to stop it needs no restart: a changed drain hook or stop_grace applies at once.
    in.running.drain = in.desired.drain;
    in.running.stop_grace = in.desired.stop_grace;
    return;
  }
  if (!wanted) {
    if (refused && in.message != why) spdlog::error("instance {}: {}", in.desired.instance, why);
    in.message = why;
    in.state = (refused || in.state == InstanceState::kFailed) ? InstanceState::kFailed
                                                               : InstanceState::kStopped;
    return;
  }
  if (in.state == InstanceState::kFailed) return;
  if (in.state == InstanceState::kBackoff && now < in.backoff_until) return;
  if (in.strays) {
    in.message = "waiting for the processes its last run left to end";
    return;
  }
  if (!in.desired.volume.empty()) {
    // Never two processes on one volume: another instance started with it must end first.
    for (const auto& [other_name, other] : instances_) {
      if (other.get() != &in && (other->pid != 0 || other->strays) &&
          other->running.volume == in.desired.volume) {
        in.state = InstanceState::kStarting;
        in.message = "waiting for " + other_name + " to stop using volume " + in.desired.volume;
        return;
      }
    }
  }
  if (!in.desired.volume.empty() && !volumes_.IsAttached(in.desired.volume)) {
    in.state = InstanceState::kStarting;
    in.message = "waiting for volume " + in.desired.volume + " to attach";
    for (const auto& v : volumes_.Report()) {
      if (v.name == in.desired.volume && !v.error.empty()) in.message += ": " + v.error;
    }
    return;
  }
  if (in.desired.IsActivePrimary() && !options_.lease_valid()) {
    in.state = InstanceState::kStarting;
    in.message = "waiting for a lease from the controller before starting a primary";
    return;
  }
  Launch(in);
}

void Supervisor::Launch(Instance& in) {
  const Assignment& a = in.desired;
  LaunchSpec spec;
  spec.argv.push_back(a.command);
  spec.argv.insert(spec.argv.end(), a.args.begin(), a.args.end());
  spec.env["PATH"] = options_.path_env;
  if (const char* home = getenv("HOME")) spec.env["HOME"] = home;
  for (const auto& [k, v] : a.env) spec.env[k] = v;
  spec.env["HAFAB_ROLE"] = a.role;
  spec.env["HAFAB_INSTANCE"] = a.instance;
  spec.env["HAFAB_PORT"] = std::to_string(a.port);
  spec.env["HAFAB_HOST"] = options_.address;
  spec.env["HAFAB_VOLUME_DIR"] = a.volume.empty() ? "" : volumes_.MountPath(a.volume);
  if (a.replica) {
    // A replica's data stays on its node, in a directory of its own (docs/replication.md).
    spec.env["HAFAB_VOLUME_DIR"] = ReplicaDataDir(a.instance);
    std::error_code mk;
    fs::create_directories(ReplicaDataDir(a.instance), mk);
    for (auto& [k, v] : wire::ReplicaEnvironment(*a.replica)) spec.env[k] = v;
  }
  spec.env["HAFAB_EPOCH"] = std::to_string(a.epoch);
  spec.env["HAFAB_NODE"] = options_.node;
  spec.cwd = InstanceDirOf(options_.data_dir, a.instance);
  spec.env["HAFAB_INSTANCE_DIR"] = spec.cwd;
  std::error_code ec;
  fs::create_directories(spec.cwd, ec);
  spec.log_path = LogPath(a.instance);
  if (!options_.log_writer_argv.empty()) {
    spec.log_writer_argv = options_.log_writer_argv;
    spec.log_writer_argv.insert(
        spec.log_writer_argv.end(),
        {"--path", spec.log_path, "--max-bytes", std::to_string(options_.log_max_bytes), "--keep",
         std::to_string(options_.log_keep)});
  }
  in.running = a;
  if (!a.user.empty() || !a.group.empty()) {
    auto account = ResolveAccount(a.user, a.group);
    if (!account.ok()) {
      // Users are per node: another node may have it, so the controller moves it there.
      const std::string why =
          "start failed: " + account.status().message() + " (node " + options_.node + ")";
      spdlog::error("instance {}: {}", a.instance, why);
      in.state = InstanceState::kFailed;
      in.hold = true;
      in.hold_reason = in.message = in.last_exit = why;
      return;
    }
    RunAs(*account, a, &spec);
    in.account = *account;
  } else if (geteuid() == 0 && warned_root_.insert(a.role).second) {
    spdlog::warn("role {}: runs as root on this node (its manifest names no user:)", a.role);
  }
  if (options_.limiter != nullptr) {
    Status st = options_.limiter->Prepare(a.instance, a.resources, &spec);
    if (!st.ok())
      spdlog::warn("instance {}: resource limits not applied: {}", a.instance, st.ToString());
  }
  if (options_.tracker != nullptr) {  // after the limiter: it adds to spec.cgroup_procs
    Status st = options_.tracker->Prepare(a.instance, &spec);
    if (!st.ok()) {
      spdlog::error("instance {}: cannot start: {}", a.instance, st.ToString());
      ScheduleRestart(in, "start failed: " + st.message());
      return;
    }
  }
  auto pid = launcher_.Start(spec);
  in.started_at = clock_.Now();
  if (!pid.ok()) {
    spdlog::error("instance {}: cannot start: {}", a.instance, pid.status().ToString());
    ScheduleRestart(in, "start failed: " + pid.status().message());
    return;
  }
  in.pid = *pid;
  in.running_env = std::make_shared<const std::map<std::string, std::string>>(spec.env);
  in.state = InstanceState::kRunning;
  in.message.clear();
  in.kill_sent = false;
  in.stop_counts_as_failure = false;
  in.cpu_valid = false;
  in.cpu_percent = 0;
  in.rss_bytes = 0;
  in.liveness.reset();
  in.readiness.reset();
  in.readiness_ok_at = {};
  if (a.probes.liveness) {
    in.liveness.emplace(a.probes.liveness->failure_threshold, a.probes.liveness->success_threshold);
  }
  if (a.probes.readiness) {
    in.readiness.emplace(a.probes.readiness->failure_threshold,
                         a.probes.readiness->success_threshold);
  }
  WritePidFile(in);
  spdlog::info("instance {}: started pid {} (role {}, epoch {}, run {})", a.instance, in.pid,
               a.role, a.epoch, a.run);
}

// The instance's own directory and volume belong to its account; the agent's data directory
// and work/ become searchable (0711, not listable) so that it can reach its working directory.
void Supervisor::RunAs(const Account& account, const Assignment& a, LaunchSpec* spec) {
  spec->switch_account = true;
  spec->uid = account.uid;
  spec->gid = account.gid;
  spec->groups = account.groups;
  if (!account.user.empty()) {
    spec->env["USER"] = spec->env["LOGNAME"] = account.user;
    spec->env["HOME"] = account.home;
  }
  for (const std::string& dir :
       {options_.data_dir, options_.data_dir + "/work", options_.data_dir + "/replicas"}) {
    struct stat st;
    if (stat(dir.c_str(), &st) == 0 && (st.st_mode & 0011) != 0011) {
      chmod(dir.c_str(), (st.st_mode & 07777) | 0011);
    }
  }
  std::vector<std::string> owned = {spec->cwd};
  if (!a.volume.empty()) {
    owned.push_back(volumes_.MountPath(a.volume));
    spec->reach_dirs.push_back(owned.back());
  }
  if (a.replica) owned.push_back(ReplicaDataDir(a.instance));
  for (const std::string& dir : owned) {
    if (chown(dir.c_str(), account.uid, account.gid) != 0) {
      spdlog::warn("instance {}: cannot give {} to uid {}: {}", a.instance, dir, account.uid,
                   strerror(errno));
    }
  }
  if (!spec->log_writer_argv.empty()) {
    spec->log_writer_argv.insert(
        spec->log_writer_argv.end(),
        {"--uid", std::to_string(account.uid), "--gid", std::to_string(account.gid)});
  }
}

void Supervisor::BeginStop(Instance& in, const std::string& reason, bool kill_now,
                           bool counts_as_failure) {
  const TimePoint now = clock_.Now();
  in.state = InstanceState::kStopping;
  in.stop_reason = reason;
  in.stop_counts_as_failure = counts_as_failure;
  in.kill_at = now + in.running.stop_grace;
  in.kill_sent = kill_now;
  if (!kill_now && in.running.drain && StartDrainHook(in, reason)) return;
  spdlog::info("instance {}: stopping pid {} with {}: {}", in.running.instance, in.pid,
               kill_now ? "SIGKILL" : "SIGTERM", reason);
  SignalInstance(in, kill_now ? SIGKILL : SIGTERM);
}

void Supervisor::SignalInstance(Instance& in, int signal) {
  (void)launcher_.SignalGroup(in.pid, signal);
  if (options_.tracker != nullptr) options_.tracker->Signal(in.running.instance, signal);
}

bool Supervisor::KillStrays(const std::string& instance) {
  if (options_.tracker == nullptr) return false;
  return options_.tracker->Signal(instance, SIGKILL) > 0;
}

// The drain hook runs with the instance's environment (HAFAB_HOST, HAFAB_PORT, ...), in its
// working directory, its output in the instance's log.
Result<LaunchSpec> Supervisor::HookSpec(Instance& in) {
  const std::string& name = in.running.instance;
  LaunchSpec spec;
  if (in.running_env) spec.env = *in.running_env;
  if (!spec.env.count("PATH")) spec.env["PATH"] = options_.path_env;
  spec.cwd = options_.data_dir + "/work/" + name;
  spec.log_path = LogPath(name);
  if (!in.account && (!in.running.user.empty() || !in.running.group.empty())) {  // adopted
    auto account = ResolveAccount(in.running.user, in.running.group);
    if (!account.ok()) return account.status();
    in.account = *account;
  }
  if (in.account) {  // as the instance runs
    spec.switch_account = true;
    spec.uid = in.account->uid;
    spec.gid = in.account->gid;
    spec.groups = in.account->groups;
  }
  return spec;
}

bool Supervisor::StartDrainHook(Instance& in, const std::string& reason) {
  const std::string& name = in.running.instance;
  auto hook = HookSpec(in);
  if (!hook.ok()) {
    spdlog::warn("instance {}: drain hook cannot run as its account: {}; sending SIGTERM", name,
                 hook.status().ToString());
    return false;
  }
  LaunchSpec spec = std::move(*hook);
  spec.argv = in.running.drain->command;
  // Written first: the hook's own output follows it.
  AppendToLog(name, "drain hook " + spec.argv[0] + " starting (" + reason + ")");
  auto pid = launcher_.Start(spec);
  if (!pid.ok()) {
    spdlog::warn("instance {}: drain hook cannot start: {}; sending SIGTERM", name,
                 pid.status().ToString());
    AppendToLog(name, "drain hook cannot start: " + pid.status().ToString() + "; SIGTERM");
    return false;
  }
  in.drain_pid = *pid;
  in.drain_started = clock_.Now();
  spdlog::info(
      "instance {}: stopping pid {}: drain hook {} started (pid {}, timeout {}ms), then "
      "SIGTERM: {}",
      name, in.pid, spec.argv[0], in.drain_pid, Millis(in.running.drain->timeout), reason);
  return true;
}

// Marks the hook's start and end in the instance's log, around the hook's own output.
void Supervisor::AppendToLog(const std::string& instance, const std::string& line) {
  std::ofstream out(LogPath(instance), std::ios::app);
  out << "hafab-agent: " << line << "\n";
  if (!out) spdlog::warn("instance {}: cannot append to {}", instance, LogPath(instance));
}

void Supervisor::EndDrainHook(Instance& in, const std::string& outcome, bool ok) {
  in.drain_pid = 0;
  const TimePoint now = clock_.Now();
  AppendToLog(in.running.instance, "drain hook " + outcome + "; SIGTERM");
  if (ok) {
    spdlog::info("instance {}: drain hook {}; sending SIGTERM to pid {}", in.running.instance,
                 outcome, in.pid);
  } else {
    spdlog::warn("instance {}: drain hook {}; sending SIGTERM to pid {}", in.running.instance,
                 outcome, in.pid);
  }
  in.kill_at = now + in.running.stop_grace;
  SignalInstance(in, SIGTERM);
}

void Supervisor::HandleExit(Instance& in, const ProcessExit& exit) {
  const std::string name = in.running.instance.empty() ? in.desired.instance : in.running.instance;
  if (in.drain_pid != 0) {  // the instance ended first: its drain hook has nothing left to do
    spdlog::info("instance {}: ended during its drain hook; killing the hook", name);
    AppendToLog(
        name, "instance ended during its drain hook (" + exit.Describe() + "); the hook is killed");
    (void)launcher_.SignalGroup(in.drain_pid, SIGKILL);
    in.drain_pid = 0;
  }
  // Whatever the leader left, in its group or not, dies with it: never a second copy.
  (void)launcher_.SignalGroup(exit.pid, SIGKILL);
  in.strays = KillStrays(name);
  if (in.strays) spdlog::warn("instance {}: killing the processes pid {} left", name, exit.pid);
  in.pid = 0;
  RemovePidFile(name);
  std::string desc = exit.Describe();
  bool oom = options_.limiter != nullptr && options_.limiter->OomKilled(name);
  if (oom) desc = "oom";
  spdlog::info("instance {}: pid {} ended: {}", name, exit.pid, desc);
  if (in.state == InstanceState::kStopping) {
    if (in.stop_counts_as_failure) {
      ScheduleRestart(in, in.stop_reason + " (" + desc + ")");
      return;
    }
    // Held: stopped as hung (CheckHung); failed until the assignment changes.
    in.last_exit = in.hold ? in.stop_reason + " (" + desc + ")" : desc;
    in.state = in.hold ? InstanceState::kFailed : InstanceState::kStopped;
    return;
  }
  const bool success = exit.Success() && !oom;
  const auto policy = in.running.restart.policy;
  if (policy == manifest::RestartPolicy::kNever ||
      (policy == manifest::RestartPolicy::kOnFailure && success)) {
    in.last_exit = desc;
    in.state = success ? InstanceState::kStopped : InstanceState::kFailed;
    in.hold = true;
    in.hold_reason = "exited (" + desc + "); restart policy " +
                     (policy == manifest::RestartPolicy::kNever ? "never" : "on-failure");
    return;
  }
  ScheduleRestart(in, desc);
}

namespace {

// The wait before restart number `failures` (1 = the first): backoff_initial doubling up to
// backoff_max.
Duration BackoffDelay(const manifest::Restart& r, int failures) {
  Duration delay = r.backoff_initial;
  for (int i = 1; i < failures && delay < r.backoff_max; ++i) delay *= 2;
  return std::min(delay, r.backoff_max);
}

}  // namespace

void Supervisor::ContinueBackoff(Instance& in) {
  const Assignment& a = in.desired;
  const TimePoint now = clock_.Now();
  in.consecutive_failures = a.prior_restarts + 1;  // this start is the next restart
  in.started_at = now;  // its next crash here is not "after a good while"
  in.state = InstanceState::kBackoff;
  in.backoff_until = now + BackoffDelay(a.restart, in.consecutive_failures);
  in.message = "moved here crash-looping after " + std::to_string(a.prior_restarts) +
               " restarts elsewhere: starting in " +
               std::to_string(Millis(in.backoff_until - now)) + "ms";
  spdlog::warn("instance {}: {}", a.instance, in.message);
}

void Supervisor::ScheduleRestart(Instance& in, const std::string& last_exit) {
  const TimePoint now = clock_.Now();
  const manifest::Restart& r = in.running.restart;
  in.last_exit = last_exit;
  if (r.policy == manifest::RestartPolicy::kNever) {
    in.state = InstanceState::kFailed;
    in.hold = true;
    in.hold_reason = last_exit + "; restart policy never";
    return;
  }
  while (!in.restart_times.empty() && in.restart_times.front() <= now - r.window) {
    in.restart_times.pop_front();
  }
  if (r.max_restarts >= 0 && static_cast<int>(in.restart_times.size()) >= r.max_restarts) {
    in.state = InstanceState::kFailed;
    in.hold = true;
    in.hold_reason = "gave up after " + std::to_string(in.restart_times.size()) +
                     " restarts within " + std::to_string(Millis(r.window)) +
                     "ms; last exit: " + last_exit;
    in.message = in.hold_reason;
    spdlog::error("instance {}: {}", in.running.instance, in.hold_reason);
    return;
  }
  if (now - in.started_at >= r.backoff_max) in.consecutive_failures = 0;  // it ran a good while
  ++in.consecutive_failures;
  const Duration delay = BackoffDelay(r, in.consecutive_failures);
  in.restart_times.push_back(now);
  ++in.restarts;
  in.state = InstanceState::kBackoff;
  in.backoff_until = now + delay;
  in.message = "restarting in " + std::to_string(Millis(delay)) + "ms after " + last_exit;
  spdlog::warn("instance {}: {}", in.running.instance, in.message);
}

void Supervisor::RecordProbe(const std::string& instance, pid_t pid, ProbeType type,
                             ProbeOutcome outcome) {
  auto it = instances_.find(instance);
  if (it == instances_.end()) return;
  Instance& in = *it->second;
  if (in.pid != pid || in.state != InstanceState::kRunning) return;
  auto& tracker = type == ProbeType::kLiveness ? in.liveness : in.readiness;
  if (!tracker) return;
  if (type == ProbeType::kLiveness && outcome == ProbeOutcome::kFailed &&
      !tracker->ever_succeeded() && clock_.Now() - in.started_at < options_.startup_grace) {
    return;  // still starting up
  }
  auto shown = [&] {
    return std::pair(in.liveness ? in.liveness->liveness() : Liveness{},
                     in.readiness ? in.readiness->readiness() : Readiness{});
  };
  const auto shown_before = shown();
  tracker->Record(outcome);
  if (type == ProbeType::kLiveness && tracker->liveness() == Liveness::kFailed) {
    spdlog::warn("instance {}: liveness probe failed {} times; killing pid {}", instance,
                 in.running.probes.liveness->failure_threshold, pid);
    BeginStop(in, "liveness failed", /*kill_now=*/true, /*counts_as_failure=*/true);
  } else if (type == ProbeType::kReadiness) {
    CheckHung(in, outcome);
  }
  if (in.state != InstanceState::kRunning) {
    Unsettle();  // stopped
  } else if (shown() != shown_before) {
    Changed();
  }
}

// A process that was ready once and has failed readiness for failover_after since is hung
// (stopped, deadlocked, livelocked): killed at once like a liveness failure, since a hung
// process cannot act on SIGTERM and waiting stop_grace would only lengthen the outage. A
// load-balanced instance restarts per its policy; an active-passive primary is
// held failed so that the controller fails over to the standby (the hang may be its node's).
void Supervisor::CheckHung(Instance& in, ProbeOutcome outcome) {
  const TimePoint now = clock_.Now();
  if (outcome != ProbeOutcome::kFailed) {
    in.readiness_ok_at = now;
    return;
  }
  if (in.readiness->readiness() != Readiness::kFailed) return;
  const Duration after = in.running.probes.readiness->failover_after;
  if (in.readiness_ok_at == TimePoint{} || after <= Duration::zero() ||
      now - in.readiness_ok_at < after) {
    return;
  }
  const std::string why =
      "hung: readiness failed for " + std::to_string(Millis(now - in.readiness_ok_at)) + "ms";
  spdlog::warn("instance {}: {} (failover_after {}ms); killing pid {}", in.running.instance, why,
               Millis(after), in.pid);
  if (in.running.IsActivePrimary()) {
    BeginStop(in, why, /*kill_now=*/true, /*counts_as_failure=*/false);
    in.hold = true;
    in.hold_reason = why + "; the controller fails over";
    in.message = in.hold_reason;
    return;
  }
  BeginStop(in, why, /*kill_now=*/true, /*counts_as_failure=*/true);
}

std::map<std::string, std::string> Supervisor::DesiredVolumes() const {
  std::map<std::string, std::string> out;
  for (const auto& [name, in] : instances_) {
    const Assignment& d = in->desired;
    if (in->removed || d.volume.empty()) continue;
    if (fenced_ && d.IsActivePrimary()) continue;
    out[d.volume] = name;
  }
  return out;
}

std::vector<pid_t> Supervisor::Pids() const {
  std::vector<pid_t> out;
  for (const auto& [name, in] : instances_) {
    if (in->pid != 0) out.push_back(in->pid);
  }
  return out;
}

void Supervisor::Tick() {
  const std::vector<ProcessExit> exits = launcher_.Reap();
  if (!settled_ || !exits.empty()) StepAll(exits);
  const TimePoint now = clock_.Now();
  if (options_.usage && now >= next_usage_) {
    next_usage_ = now + options_.usage_interval;
    SampleUsage();
  }
}

void Supervisor::StepAll(const std::vector<ProcessExit>& exits) {
  Unsettle();
  for (const ProcessExit& exit : exits) {
    bool found = false;
    for (auto& [name, in] : instances_) {
      if (in->pid == exit.pid) {
        HandleExit(*in, exit);
        found = true;
        break;
      }
      if (in->drain_pid != 0 && in->drain_pid == exit.pid) {
        EndDrainHook(*in,
                     exit.Describe() + " after " +
                         std::to_string(Millis(clock_.Now() - in->drain_started)) + "ms",
                     exit.Success());
        found = true;
        break;
      }
    }
    if (!found) spdlog::debug("reaped pid {} of no instance: {}", exit.pid, exit.Describe());
  }
  // A volume stays pinned while a process that was started with it still runs.
  std::set<std::string> pinned;
  for (auto& [name, in] : instances_) {
    if (in->strays) in->strays = KillStrays(name);  // until they are gone
    if ((in->pid != 0 || in->strays) && !in->running.volume.empty()) {
      pinned.insert(in->running.volume);
    }
  }
  volumes_.SetDesired(DesiredVolumes(), std::move(pinned));
  volumes_.Tick();
  for (auto it = instances_.begin(); it != instances_.end();) {
    Instance& in = *it->second;
    Step(in);
    if (in.removed && in.pid == 0 && !in.strays) {
      spdlog::info("instance {}: stopped and forgotten", it->first);
      RemovePidFile(it->first);
      if (options_.limiter != nullptr) options_.limiter->Release(it->first);
      if (options_.tracker != nullptr) options_.tracker->Release(it->first);
      it = instances_.erase(it);
    } else {
      ++it;
    }
  }
  settled_ = Settled();
}

bool Supervisor::Settled() const {
  for (const auto& [name, in] : instances_) {
    if (in->strays || in->drain_pid != 0 || in->removed) return false;
    std::string why;
    bool refused = false;
    const bool wanted = WantsRunning(*in, &why, &refused);
    if (in->pid != 0) {
      // Step() has just brought its epoch, drain hook and stop_grace up to date.
      if (in->state == InstanceState::kStopping || !wanted || NeedsRestartForSpec(*in)) {
        return false;
      }
    } else if (wanted && in->state != InstanceState::kFailed) {
      return false;  // starting, waiting, or backing off
    }
  }
  return volumes_.Settled();
}

void Supervisor::SampleUsage() {
  std::vector<pid_t> pids = Pids();
  auto usage = options_.usage(pids);
  const TimePoint now = clock_.Now();
  for (auto& [name, in] : instances_) {
    if (in->pid == 0) continue;
    auto u = usage.find(in->pid);
    if (u == usage.end()) continue;
    in->rss_bytes = u->second.rss_bytes;
    if (in->cpu_valid && now > in->last_cpu_at && u->second.cpu_ticks >= in->last_cpu_ticks) {
      double secs = std::chrono::duration<double>(now - in->last_cpu_at).count();
      double used = static_cast<double>(u->second.cpu_ticks - in->last_cpu_ticks) /
                    static_cast<double>(options_.ticks_per_second);
      in->cpu_percent = 100.0 * used / secs;
    }
    in->cpu_valid = true;
    in->last_cpu_ticks = u->second.cpu_ticks;
    in->last_cpu_at = now;
  }
  Changed();  // the report's cpu and memory
}

void Supervisor::WritePidFile(const Instance& in) {
  uint64_t start_time = 0;
  if (options_.start_time_of) start_time = options_.start_time_of(in.pid).value_or(0);
  const Assignment& a = in.running;
  json j{{"pid", in.pid},
         {"start_time", start_time},
         {"tracker", options_.tracker != nullptr ? options_.tracker->Handle(a.instance) : ""},
         {"assignment", Dump(wire::ToJson(a))}};
  WriteFileAtomic(PidFilePath(a.instance), Dump(j) + "\n");
}

void Supervisor::RemovePidFile(const std::string& instance) {
  std::error_code ec;
  fs::remove(PidFilePath(instance), ec);
}

std::map<std::string, uint64_t> Supervisor::SampledCpuTicks() const {
  std::map<std::string, uint64_t> out;
  for (const auto& [name, in] : instances_) {
    if (in->pid != 0 && in->cpu_valid) out[name] = in->last_cpu_ticks;
  }
  return out;
}

std::vector<InstanceReport> Supervisor::Report() const {
  std::vector<InstanceReport> out;
  for (const auto& [name, in] : instances_) {
    InstanceReport r;
    r.instance = name;
    r.role = in->desired.role;
    r.epoch = in->pid != 0 ? in->running.epoch : in->desired.epoch;
    r.run = in->desired.run && !in->removed;
    r.state = in->state;
    r.pid = in->pid;
    if (in->pid != 0 && in->state == InstanceState::kRunning) {
      if (in->liveness) r.liveness = in->liveness->liveness();
      if (in->readiness) r.readiness = in->readiness->readiness();
    }
    r.restarts = in->restarts;
    r.last_exit = in->last_exit;
    r.message = in->message;
    r.cpu_percent = in->cpu_percent;
    r.rss_bytes = in->rss_bytes;
    if (in->pid != 0) r.replica = in->replica;
    if (!in->replica_error.empty() && r.message.empty())
      r.message = "replica: " + in->replica_error;
    out.push_back(std::move(r));
  }
  return out;
}

uint64_t Supervisor::ReportDigest() const {
  if (digest_) return *digest_;
  Fnv1a d;
  d.Add(fenced_ ? 1 : 0);
  for (const auto& [name, in] : instances_) {
    const bool probed = in->pid != 0 && in->state == InstanceState::kRunning;
    d.Add(name)
        .Add(in->pid != 0 ? in->running.epoch : in->desired.epoch)
        .Add(in->desired.run && !in->removed ? 1 : 0)
        .Add(static_cast<uint64_t>(in->state))
        .Add(static_cast<uint64_t>(in->pid))
        .Add(static_cast<uint64_t>(probed && in->liveness ? in->liveness->liveness()
                                                          : wire::Liveness{}))
        .Add(static_cast<uint64_t>(probed && in->readiness ? in->readiness->readiness()
                                                           : wire::Readiness{}))
        .Add(static_cast<uint64_t>(in->restarts));
    if (in->pid != 0 && in->replica) {
      d.Add(static_cast<uint64_t>(in->replica->role)).Add(in->replica->epoch);
    }
  }
  for (const auto& v : volumes_.Report()) {
    d.Add(v.name).Add(static_cast<uint64_t>(v.state)).Add(v.instance);
  }
  if (settled_) digest_ = d.value();
  return d.value();
}

std::string Supervisor::ReplicaDataDir(const std::string& instance) const {
  return options_.data_dir + "/replicas/" + instance;
}

void Supervisor::RecordReplica(const std::string& instance, pid_t pid,
                               Result<wire::ReplicaStatus> status) {
  auto it = instances_.find(instance);
  if (it == instances_.end() || it->second->pid != pid) return;
  Unsettle();
  Instance& in = *it->second;
  if (status.ok()) {
    in.replica = std::move(*status);
    in.replica_error.clear();
    return;
  }
  if (in.replica_error != status.status().message()) {
    spdlog::warn("instance {}: replica: {}", instance, status.status().message());
  }
  in.replica_error = status.status().message();
}

std::vector<ReplicaTarget> Supervisor::ReplicaTargets() {
  std::vector<ReplicaTarget> out;
  for (const auto& [name, in] : instances_) {
    if (in->pid == 0 || in->state != InstanceState::kRunning || !in->desired.replica) continue;
    ReplicaTarget t{name, in->pid, in->running.port, *in->desired.replica, in->desired.replica_hook,
                    {}};
    if (!t.hook.empty()) {
      auto spec = HookSpec(*in);
      if (!spec.ok()) {
        RecordReplica(name, in->pid, Status::Unavailable("hook: " + spec.status().message()));
        continue;
      }
      t.hook_spec = std::move(*spec);
    }
    out.push_back(std::move(t));
  }
  return out;
}

std::vector<ProbeTarget> Supervisor::ProbeTargets() const {
  std::vector<ProbeTarget> out;
  for (const auto& [name, in] : instances_) {
    if (in->pid == 0 || in->state != InstanceState::kRunning) continue;
    if (!in->running.probes.liveness && !in->running.probes.readiness) continue;
    out.push_back({name, in->pid, in->running.port, in->running_env, in->running.probes.liveness,
                   in->running.probes.readiness});
  }
  return out;
}

}  // namespace hafab::agent
