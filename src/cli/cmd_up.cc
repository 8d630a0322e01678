// `hafab up FILE`: the embedded default. Starts, on this machine, the controller (SQLite
// store in the state directory), one agent per node of the manifest and the gateway,
// applies the manifest, prints where everything is, and supervises the three kinds of
// process until Ctrl-C / SIGTERM, when it stops them all and leaves nothing behind.
//
// `hafab up --ha FILE`: the same with three etcd members and three controller replicas
// (up_ha.h) that elect a leader; agents, gateway and CLI are given every replica's URL.
//
// `up` makes itself a child subreaper, so instances orphaned by a killed agent are
// reparented to it and are still found and stopped at shutdown.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "cli/api_client.h"
#include "cli/command.h"
#include "cli/procs.h"
#include "cli/restart_delay.h"
#include "cli/status_view.h"
#include "cli/up_ha.h"
#include "controller/tokens.h"
#include "core/duration.h"
#include "manifest/parser.h"

namespace hafab::cli {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// Stands in an argv for the controller's URL, known only once the controller listens.
constexpr char kApiPlaceholder[] = "{api}";

struct UpOptions {
  std::string file;
  std::string state_dir = ".hafab";
  std::string api_listen;
  std::string revive_after = "5s";
  std::string store;  // the controller's --store; "" = SQLite in the state directory
  std::string log_format = "text";
  bool watch = true;
  std::string provider = "local";  // given to the controller and every agent
  std::string provider_config;
  std::string agent_wrapper;  // prefix of each agent's command line; {node} = the node's name
  std::string gateway_data_path = "user";  // the gateway's --data-path
  bool ha = false;                         // three etcd members and three controller replicas
};

// Under --ha a node's lease must outlast a controller leader change, or every node would
// stop its instances at each change: ~0.2 s when the dead leader's port refuses connections
// (a follower takes over), up to ~1.5 s when only its 1 s key lease ends it (a hung or
// cut-off leader). A shorter manifest lease_ttl is raised to this.
constexpr Duration kHaMinLease = std::chrono::seconds(3);
constexpr char kHaLeaderTtl[] = "1s";

// One supervised child: what to run, and its pid while it runs.
struct Child {
  std::string name;  // "controller", "gateway", "agent n1"
  std::vector<std::string> argv;
  std::string log_path;
  pid_t pid = 0;
  TimePoint restart_at{};  // when a dead child is started again; {} = not scheduled
  bool node = false;       // an agent: revived after --revive-after, like a rebooted VM
  // Not a node: restarted at once after a crash, with a backoff only when it crash-loops.
  RestartDelay restart_delay{0ms, 200ms, 5s, 10s};
};

pid_t Spawn(const Child& c, const std::string& path_env) {
  pid_t pid = fork();
  if (pid != 0) return pid;
  // Child: default signal mask and handlers, its own output file, then exec.
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  setpgid(0, 0);  // Ctrl-C on the terminal reaches `up` only; it stops children in order
  int fd = open(c.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd >= 0) {
    dup2(fd, STDOUT_FILENO);
    dup2(fd, STDERR_FILENO);
  }
  int devnull = open("/dev/null", O_RDONLY);
  if (devnull >= 0) dup2(devnull, STDIN_FILENO);
  setenv("PATH", path_env.c_str(), 1);
  std::vector<char*> argv;
  for (const auto& a : c.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  execvp(argv[0], argv.data());  // a wrapper (--agent-wrapper) may be found on PATH
  std::fprintf(stderr, "exec %s failed: %s\n", argv[0], std::strerror(errno));
  _exit(127);
}

class Up {
 public:
  explicit Up(UpOptions opts) : opts_(std::move(opts)) {}

  int Run();

 private:
  Status Prepare(const manifest::Manifest& m);
  Status PrepareHa(std::vector<std::string> controller_argv);
  Status StartController();
  std::vector<Child*> Children();  // in start order: etcd, controllers, agents, gateway
  void StartChild(Child& c);
  void WriteUpFile();
  void Reap();
  void RestartDue();
  void Shutdown();
  void PrintBanner(const manifest::Manifest& m);
  void Refresh();

  UpOptions opts_;
  std::string state_;  // absolute state dir
  std::string self_;
  std::string path_env_;
  Duration revive_after_{};
  Duration lease_ttl_{};
  std::vector<Child> etcd_;         // --ha: e1..e3
  std::vector<Child> controllers_;  // one, or c1..c3 with --ha
  std::optional<HaLayout> ha_;
  Child gateway_;
  std::map<std::string, Child> agents_;  // by node name
  std::optional<ApiClient> api_;
  int64_t events_seen_ = 0;
  bool tty_ = isatty(STDOUT_FILENO);
  sigset_t signals_{};        // taken with sigtimedwait, never delivered asynchronously
  bool interrupted_ = false;  // a stop signal came before the cluster was up
};

Status Up::Prepare(const manifest::Manifest& m) {
  std::error_code ec;
  fs::create_directories(opts_.state_dir + "/logs", ec);
  if (ec) return Status::Unavailable("cannot create " + opts_.state_dir + ": " + ec.message());
  state_ = fs::canonical(opts_.state_dir).string();
  fs::create_directories(state_ + "/volumes", ec);
  fs::create_directories(state_ + "/nodes", ec);
  // An instance that runs as another account (user:) must reach its directories under
  // nodes/<node>/ (its agent makes those searchable): the two above it become searchable too
  // (0711: entered, not listed). Without such roles the state stays private to its owner.
  const bool other_accounts = std::any_of(m.roles.begin(), m.roles.end(), [](const auto& r) {
    return !r.user.empty() || !r.group.empty();
  });
  if (other_accounts) {
    for (const std::string& dir : {state_, state_ + "/nodes"}) {
      fs::permissions(dir, fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec,
                      ec);
    }
  }

  // One `up` per state directory.
  std::ifstream in(state_ + "/up.json");
  if (in) {
    auto j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_object() && j.contains("pid") && Alive(j["pid"].get<pid_t>()) &&
        j["pid"].get<pid_t>() != getpid()) {
      return Status::Conflict("`hafab up` is already running on " + state_ + " (pid " +
                              std::to_string(j["pid"].get<pid_t>()) + "); stop it first");
    }
  }

  self_ = SelfExe();
  const char* path = std::getenv("PATH");
  path_env_ = fs::path(self_).parent_path().string() + ":" + (path ? path : "/usr/bin:/bin");
  auto revive = ParseDuration(opts_.revive_after);
  if (!revive.ok()) return revive.status().WithContext("--revive-after");
  revive_after_ = *revive;

  std::string api_listen = opts_.api_listen.empty() ? m.settings.api_listen : opts_.api_listen;
  // The controller reads its tokens and cluster key from this directory; each agent and the
  // gateway get their own credential, derived from that key (controller/tokens.h).
  auto tokens = controller::LoadOrCreateTokens(state_);
  if (!tokens.ok()) return tokens.status();
  if (opts_.ha && m.settings.api_listen != manifest::Settings().api_listen) {
    return Status::InvalidArgument(opts_.file + ": settings.api_listen " + m.settings.api_listen +
                                   ": --ha picks the replicas' ports itself (STATE_DIR/ha.json); "
                                   "leave settings.api_listen out");
  }
  lease_ttl_ = m.settings.lease_ttl;
  if (opts_.ha && lease_ttl_ < kHaMinLease) {
    std::cout << "up: --ha: node lease " << FormatDuration(kHaMinLease) << " instead of "
              << FormatDuration(lease_ttl_)
              << " (settings.lease_ttl): a lease must outlast a controller leader change\n";
    lease_ttl_ = kHaMinLease;
  }
  std::vector<std::string> provider_args;
  if (opts_.provider == "exec") {
    if (opts_.provider_config.empty()) {
      return Status::InvalidArgument("--provider exec needs --provider-config FILE");
    }
    provider_args = {"--provider", "exec", "--provider-config",
                     fs::absolute(opts_.provider_config).string()};
  }
  std::vector<std::string> controller_argv = {
      self_,
      "--log-format",
      opts_.log_format,
      "controller",
      "--volume-root",
      state_ + "/volumes",
      "--lease-ttl",
      FormatDuration(lease_ttl_),
      "--heartbeat-interval",
      FormatDuration(m.settings.heartbeat_interval),
      "--failure-detector",
      std::string(manifest::FailureDetectorName(m.settings.failure_detector))};
  controller_argv.insert(controller_argv.end(), provider_args.begin(), provider_args.end());
  if (opts_.ha) {
    HAFAB_RETURN_IF_ERROR(PrepareHa(controller_argv));
  } else {
    controller_argv.insert(controller_argv.end(), {"--state-dir", state_, "--listen", api_listen});
    if (!opts_.store.empty())
      controller_argv.insert(controller_argv.end(), {"--store", opts_.store});
    controllers_ = {{"controller", controller_argv, state_ + "/logs/controller.log"}};
  }
  for (const auto& n : m.nodes) {
    std::string dir = state_ + "/nodes/" + n.name;
    fs::create_directories(dir, ec);
    const std::string credential = dir + "/agent.token";
    HAFAB_RETURN_IF_ERROR(
        controller::WriteSecretFile(credential, controller::AgentCredential(tokens->key, n.name)));
    agents_[n.name] = {"agent " + n.name,
                       {self_,
                        "--log-format",
                        opts_.log_format,
                        "agent",
                        "--node",
                        n.name,
                        "--controller",
                        kApiPlaceholder,
                        "--token-file",
                        credential,
                        "--data-dir",
                        dir,
                        "--volume-root",
                        state_ + "/volumes",
                        "--address",
                        n.address,
                        "--fault-domain",
                        n.fault_domain,
                        "--update-domain",
                        n.update_domain,
                        "--heartbeat-interval",
                        FormatDuration(m.settings.heartbeat_interval)},
                       state_ + "/logs/agent-" + n.name + ".log"};
    agents_[n.name].node = true;
    std::vector<std::string>& argv = agents_[n.name].argv;
    // Its /metrics on a free port of the node's address: nodes/<node>/metrics.addr.
    const bool v6 = n.address.find(':') != std::string::npos;
    argv.insert(argv.end(), {"--metrics-listen", (v6 ? "[" + n.address + "]" : n.address) + ":0"});
    argv.insert(argv.end(), provider_args.begin(), provider_args.end());
    std::vector<std::string> wrapper;
    std::istringstream words(opts_.agent_wrapper);
    for (std::string w; words >> w;) {
      for (size_t at; (at = w.find("{node}")) != std::string::npos;) w.replace(at, 6, n.name);
      wrapper.push_back(w);
    }
    argv.insert(argv.begin(), wrapper.begin(), wrapper.end());
  }
  const std::string gateway_credential = state_ + "/gateway.token";
  HAFAB_RETURN_IF_ERROR(controller::WriteSecretFile(
      gateway_credential, controller::GatewayCredential(tokens->key, "gw1")));
  gateway_ = {"gateway",
              {self_, "--log-format", opts_.log_format, "gateway", "--id", "gw1", "--controller",
               kApiPlaceholder, "--token-file", gateway_credential, "--state-dir", state_,
               "--data-path", opts_.gateway_data_path},
              state_ + "/logs/gateway.log"};
  return Status::Ok();
}

Status Up::PrepareHa(std::vector<std::string> controller_argv) {
  HAFAB_ASSIGN_OR_RETURN(std::string etcd, FindEtcd());
  HAFAB_ASSIGN_OR_RETURN(HaLayout layout, LoadOrCreateHaLayout(state_));
  ha_ = layout;
  // Every replica takes the same tokens and cluster key: the ones of the state directory,
  // which the CLI reads and from which the agents' and the gateway's credentials come.
  for (int i = 0; i < HaLayout::kReplicas; ++i) {
    const std::string n = std::to_string(i + 1);
    const std::string dir = state_ + "/controllers/c" + n;
    std::error_code ec;
    fs::create_directories(dir, ec);
    fs::create_directories(state_ + "/etcd", ec);
    for (const char* file : {"/admin.token", "/read.token", "/cluster.key"}) {
      fs::copy_file(state_ + file, dir + file, fs::copy_options::overwrite_existing, ec);
      if (ec) return Status::Unavailable("cannot copy " + state_ + file + ": " + ec.message());
      fs::permissions(dir + file, fs::perms::owner_read | fs::perms::owner_write, ec);
    }
    etcd_.push_back({"etcd e" + n,
                     layout.EtcdArgv(etcd, i, state_ + "/etcd/e" + n, "hafab-" + state_),
                     state_ + "/logs/etcd-e" + n + ".log"});
    std::vector<std::string> argv = controller_argv;
    const std::string url = layout.ControllerUrl(i);
    argv.insert(argv.end(), {"--state-dir", dir, "--listen", url.substr(7), "--advertise", url,
                             "--store", layout.StoreUrl(i), "--leader-ttl", kHaLeaderTtl});
    controllers_.push_back({"controller c" + n, argv, state_ + "/logs/controller-c" + n + ".log"});
    // A follower takes a dead leader over once its port has refused three connections
    // (LeaderProbe, ~150 ms); a replica listening there again sooner would leave the
    // followers waiting for the leader key's lease (~1 s) instead.
    controllers_.back().restart_delay = RestartDelay(200ms, 200ms, 5s, 10s);
  }
  return Status::Ok();
}

std::vector<Child*> Up::Children() {
  std::vector<Child*> all;
  for (auto& c : etcd_) all.push_back(&c);
  for (auto& c : controllers_) all.push_back(&c);
  for (auto& [n, c] : agents_) all.push_back(&c);
  all.push_back(&gateway_);
  return all;
}

void Up::StartChild(Child& c) {
  for (auto& arg : c.argv) {
    if (arg == kApiPlaceholder && api_) arg = api_->url();
  }
  c.pid = Spawn(c, path_env_);
  c.restart_delay.Started(RealClock().Now(), c.restart_at != TimePoint{});
  c.restart_at = {};
  WriteUpFile();
}

// The last non-empty line of a file ("" if none): what a child said last.
std::string LastLine(const std::string& path) {
  std::ifstream in(path);
  std::string line, last;
  while (std::getline(in, line)) {
    if (!line.empty()) last = line;
  }
  return last;
}

Status Up::StartController() {
  if (ha_) {
    // The CLI (and `up` itself) finds the replicas here; each writes its own api.url in its
    // directory.
    std::ofstream(state_ + "/api.url.tmp") << ha_->ControllerList() << "\n";
    fs::rename(state_ + "/api.url.tmp", state_ + "/api.url");
  } else {
    fs::remove(state_ + "/api.url");
  }
  for (auto& c : etcd_) StartChild(c);
  for (auto& c : controllers_) StartChild(c);
  // A controller writes api.url once its store answers and it listens (it waits for an
  // etcd that is not up yet, saying so in its log); then it must answer with our token,
  // and under --ha name an elected leader. No deadline while they run: every 5 s the first
  // replica's last log line says what it waits for.
  TimePoint next_note = RealClock().Now() + 5s;
  while (true) {
    for (Child* c : Children()) {
      int status;
      if (c->pid > 0 && waitpid(c->pid, &status, WNOHANG) == c->pid) {
        c->pid = 0;
        return Status::Unavailable("the " + c->name + " exited at start; see " + c->log_path);
      }
    }
    ApiOptions o;
    o.state_dir = state_;
    auto client = ApiClient::Connect(o);
    if (client.ok()) {
      auto answer = client->Call("GET", ha_ ? "/v1/leader" : "/v1/status", "", 1s);
      if (answer.ok() &&
          (!ha_ || !answer->value("leader", nlohmann::json::object()).value("url", "").empty())) {
        api_ = *client;
        break;
      }
    }
    if (RealClock().Now() >= next_note) {
      std::cout << "up: waiting for the controller; its log says: "
                << LastLine(controllers_[0].log_path) << "\n"
                << std::flush;
      next_note = RealClock().Now() + 5s;
    }
    timespec ts{0, 50'000'000};  // polling a condition; Ctrl-C ends the wait
    int sig = sigtimedwait(&signals_, nullptr, &ts);
    if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP) {
      interrupted_ = true;
      return Status::Unavailable("stopped while waiting for the controller");
    }
  }
  // A restarted controller must come back on the same address the agents know.
  auto url = http::ParseUrl(api_->url());
  Child& sole = controllers_[0];
  auto listen = std::find(sole.argv.begin(), sole.argv.end(), "--listen");
  if (!ha_ && url.ok() && listen != sole.argv.end()) {
    *(listen + 1) = url->host + ":" + std::to_string(url->port);
  }
  return Status::Ok();
}

void Up::WriteUpFile() {
  nlohmann::json j = {{"pid", getpid()},
                      {"api", api_ ? api_->url() : ""},
                      {"controller", controllers_.empty() ? 0 : controllers_[0].pid},
                      {"gateway", gateway_.pid}};
  for (const auto& [name, c] : agents_) j["agents"][name] = c.pid;
  if (ha_) {  // `hafab kill controller` asks each replica whether it leads
    for (size_t i = 0; i < controllers_.size(); ++i) {
      j["controllers"].push_back({{"name", controllers_[i].name},
                                  {"pid", controllers_[i].pid},
                                  {"url", ha_->ControllerUrl(static_cast<int>(i))}});
    }
    for (const auto& e : etcd_) j["etcd"].push_back(e.pid);
  }
  std::string tmp = state_ + "/up.json.tmp";
  std::ofstream(tmp) << j.dump(2) << "\n";
  fs::rename(tmp, state_ + "/up.json");
}

void Up::Reap() {
  int status;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
    for (Child* c : Children()) {
      if (c->pid != pid) continue;
      c->pid = 0;
      std::string how = WIFSIGNALED(status) ? "killed by signal " + std::to_string(WTERMSIG(status))
                                            : "exited " + std::to_string(WEXITSTATUS(status));
      // A node that died is brought back after --revive-after, like a rebooted VM; etcd
      // members, controllers and the gateway are restarted at once, like a service manager
      // would (after a backoff when they die again soon after: restart_delay.h).
      bool is_agent = c->node;
      Duration delay = is_agent ? revive_after_ : c->restart_delay.Died(RealClock().Now());
      if (is_agent && revive_after_ == Duration::zero()) {
        std::cout << "up: " << c->name << " " << how << "; not restarting (--revive-after 0)\n";
      } else {
        c->restart_at = RealClock().Now() + delay;
        std::cout << "up: " << c->name << " " << how << "; restarting "
                  << (delay == Duration::zero() ? "now" : "in " + FormatDuration(delay)) << "\n";
      }
      WriteUpFile();
    }
    // Anything else is an orphaned instance reparented to us (subreaper): just reaped.
  }
  std::cout.flush();  // also when stdout is a file (--no-watch)
}

void Up::RestartDue() {
  auto now = RealClock().Now();
  for (Child* c : Children()) {
    if (c->pid == 0 && c->restart_at != TimePoint{} && now >= c->restart_at) {
      std::cout << "up: starting " << c->name << "\n" << std::flush;
      StartChild(*c);
    }
  }
}

void Up::Shutdown() {
  std::cout << "\nup: stopping gateway, agents (they stop their instances), controller"
            << (ha_ ? "s, etcd" : "") << "...\n";
  auto stop_all = [&](std::vector<Child*> group, Duration grace) {
    for (Child* c : group) {
      if (c->pid > 0) kill(c->pid, SIGTERM);
    }
    auto deadline = RealClock().Now() + grace;
    for (Child* c : group) {
      while (c->pid > 0) {
        int status;
        pid_t r = waitpid(c->pid, &status, WNOHANG);
        if (r == c->pid || (r < 0 && errno == ECHILD)) {
          c->pid = 0;
        } else if (RealClock().Now() >= deadline) {
          std::cout << "up: " << c->name << " did not stop in time; killing it\n";
          kill(c->pid, SIGKILL);
          waitpid(c->pid, &status, 0);
          c->pid = 0;
        } else {
          std::this_thread::sleep_for(20ms);
        }
      }
    }
  };
  std::vector<Child*> agents, controllers, etcd;
  for (auto& [n, c] : agents_) agents.push_back(&c);
  for (auto& c : controllers_) controllers.push_back(&c);
  for (auto& c : etcd_) etcd.push_back(&c);
  stop_all({&gateway_}, 5s);
  stop_all(agents, 15s);
  stop_all(controllers, 5s);
  stop_all(etcd, 10s);
  // Whatever is left (instances of a killed agent, reparented to us) goes too.
  for (int round = 0; round < 50; ++round) {
    auto left = Descendants(getpid());
    if (left.empty()) break;
    for (pid_t p : left) kill(p, SIGKILL);
    while (waitpid(-1, nullptr, WNOHANG) > 0) {
    }
    std::this_thread::sleep_for(20ms);
  }
  fs::remove(state_ + "/up.json");
  std::cout << "up: stopped; state kept in " << state_ << " (run `hafab up` again to resume)\n";
}

void Up::PrintBanner(const manifest::Manifest& m) {
  std::cout << "hafab is up: cluster " << m.cluster << ", " << m.nodes.size() << " nodes\n\n";
  std::cout << "  endpoints (through the gateway):\n";
  for (const auto& r : m.roles) {
    if (r.endpoint) {
      std::cout << "    " << r.name << " (" << manifest::RoleModeName(r.mode) << ")  "
                << r.endpoint->listen << "\n";
    }
  }
  std::cout << "\n  API:    " << api_->url() << "   token: " << state_ << "/admin.token\n";
  if (ha_) {
    std::cout << "  store:  etcd " << ha_->StoreUrl(0) << " (data in " << state_ << "/etcd)\n"
              << "  node lease " << FormatDuration(lease_ttl_) << ", leader key lease "
              << kHaLeaderTtl << "\n";
  }
  std::cout << "  metrics: " << api_->url() << "/metrics (read.token); gateway and agents: the "
            << "addresses in " << state_ << "/gateway.addr and " << state_
            << "/nodes/<node>/metrics.addr (Grafana: deploy/grafana/hafab.json)\n";
  std::cout << "  logs:   " << state_ << "/logs/\n\n"
            << "  try:    hafab status    hafab events --follow    hafab ops\n"
            << "          hafab kill NODE (a node crash; it comes back after " << opts_.revive_after
            << ")\n";
  if (ha_) {
    std::cout << "          hafab kill controller (the leader; another replica takes over)\n";
  }
  std::cout << "  stop:   Ctrl-C\n\n";
  std::cout.flush();
}

void Up::Refresh() {
  if (!api_ || !opts_.watch) return;
  if (tty_) {
    auto st = api_->Call("GET", "/v1/status", "", 1s);
    if (st.ok()) {
      std::cout << "\033[H\033[J" << RenderStatusTable(*st) << "\n";
    }
  }
  // Events as they come: on a terminal under the table, elsewhere one line each.
  auto ev =
      api_->Call("GET", "/v1/events?after=" + std::to_string(events_seen_) + "&wait_ms=0", "", 1s);
  if (ev.ok()) {
    std::cout << RenderEvents(*ev, &events_seen_);
  }
  std::cout.flush();
}

int Up::Run() {
  auto outcome = manifest::LoadManifestFile(opts_.file);
  for (const auto& d : outcome.diagnostics) std::cerr << d.ToString() << "\n";
  if (!outcome.ok()) return kExitError;
  const manifest::Manifest& m = *outcome.manifest;
  if (m.nodes.empty()) {
    std::cerr << opts_.file << ": `hafab up` needs a `nodes:` section (e.g. `nodes: 3`)\n";
    return kExitError;
  }

  // Signals arrive through sigtimedwait below, never asynchronously.
  sigemptyset(&signals_);
  for (int s : {SIGINT, SIGTERM, SIGCHLD, SIGHUP}) sigaddset(&signals_, s);
  sigprocmask(SIG_BLOCK, &signals_, nullptr);
  prctl(PR_SET_CHILD_SUBREAPER, 1);

  Status st = Prepare(m);
  if (st.ok()) st = StartController();
  if (st.ok()) {
    std::ifstream in(opts_.file);
    std::stringstream yaml;
    yaml << in.rdbuf();
    // Under --ha the leader may change between its election and the apply (a takeover, or
    // a follower still naming the last run's leader): "not leader" is retried for 30 s.
    const TimePoint give_up = RealClock().Now() + 30s;
    Result<nlohmann::json> applied = Status::Unavailable("not tried");
    while (true) {
      applied = api_->Call("POST", "/v1/apply?file=" + opts_.file, yaml.str(), 10s);
      if (applied.ok() || !ha_ || applied.status().code() != StatusCode::kUnavailable ||
          RealClock().Now() >= give_up) {
        break;
      }
      timespec ts{0, 200'000'000};  // Ctrl-C ends the wait
      int sig = sigtimedwait(&signals_, nullptr, &ts);
      if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP) {
        interrupted_ = true;
        break;
      }
    }
    if (!applied.ok()) st = applied.status().WithContext("apply " + opts_.file);
  }
  if (!st.ok()) {
    std::cerr << "up: " << st.message() << "\n";
    Shutdown();
    return interrupted_ ? kExitOk : kExitError;
  }
  for (auto& [name, c] : agents_) StartChild(c);
  StartChild(gateway_);
  PrintBanner(m);

  TimePoint next_refresh = RealClock().Now();
  while (true) {
    timespec ts{0, 100'000'000};
    int sig = sigtimedwait(&signals_, nullptr, &ts);
    if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP) break;
    Reap();
    RestartDue();
    if (RealClock().Now() >= next_refresh) {
      Refresh();
      next_refresh = RealClock().Now() + 1s;
    }
  }
  Shutdown();
  return kExitOk;
}

HAFAB_COMMAND(10, [](CLI::App& app) {
  auto opts = std::make_shared<UpOptions>();
  auto* cmd = app.add_subcommand("up", "Start a whole cluster on this machine from a manifest");
  cmd->footer(
      "Example:\n  hafab up examples/quickstart.yaml\n\n"
      "Starts the controller (SQLite store in --state-dir), one agent per node of the\n"
      "manifest, and the gateway; applies the manifest; shows status until Ctrl-C.\n"
      "Running it again on the same state directory resumes the cluster.\n\n"
      "--ha: three etcd members and three controller replicas instead of one controller;\n"
      "`hafab status` shows the leader, `hafab kill controller` kills it.");
  cmd->add_option("file", opts->file, "Manifest (YAML)")->required()->check(CLI::ExistingFile);
  cmd->add_option("--state-dir", opts->state_dir, "State directory")->capture_default_str();
  cmd->add_option("--api-listen", opts->api_listen,
                  "Controller API address (default: the manifest's settings.api_listen)");
  cmd->add_flag("--ha", opts->ha,
                "High availability on this machine: three etcd members (data in "
                "STATE_DIR/etcd) and three controller replicas electing a leader");
  cmd->add_option("--store", opts->store,
                  "The controller's store: etcd://HOST:PORT[,HOST:PORT...] (an etcd cluster, "
                  "docs/deploy.md) or sqlite:PATH; default STATE_DIR/controller.db")
      ->check([](const std::string& v) {
        return v.rfind("etcd://", 0) == 0 || v.rfind("sqlite:", 0) == 0
                   ? std::string()
                   : "--store: want etcd://HOST:PORT[,...] or sqlite:PATH, got '" + v + "'";
      });
  cmd->add_option("--revive-after", opts->revive_after,
                  "Restart a killed node's agent after this long (0 = never)")
      ->capture_default_str();
  cmd->add_flag("!--no-watch", opts->watch, "Do not print status and events while running");
  cmd->add_option("--provider", opts->provider,
                  "Volume provider of the controller and agents: local (STATE_DIR/volumes) or "
                  "exec (scripts named by --provider-config)")
      ->check(CLI::IsMember({"local", "exec"}))
      ->capture_default_str();
  cmd->add_option("--provider-config", opts->provider_config,
                  "Exec provider: JSON file naming the scripts (see provider/exec_provider.h)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--agent-wrapper", opts->agent_wrapper,
                  "Run each agent under this command, {node} replaced by its node name (e.g. "
                  "\"nsenter --net=/run/netns/{node} --\")");
  cmd->add_option("--gateway-data-path", opts->gateway_data_path,
                  "The gateway's --data-path: user (the default), kernel or auto (hafab gateway "
                  "--help)")
      ->check(CLI::IsMember({"auto", "kernel", "user"}))
      ->capture_default_str();
  cmd->callback([opts, &app] {
    auto* fmt = app.get_option("--log-format");
    if (fmt->count() > 0) opts->log_format = fmt->as<std::string>();
    if (opts->ha && (!opts->store.empty() || !opts->api_listen.empty())) {
      std::cerr << "error: --ha starts its own etcd and controller replicas (ports in "
                   "STATE_DIR/ha.json); leave out --store and --api-listen\n";
      SetExitCode(kExitUsage);
      return;
    }
    Up up(*opts);
    SetExitCode(up.Run());
  });
});

}  // namespace
}  // namespace hafab::cli
