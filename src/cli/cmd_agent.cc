// `hafab agent`: the guest agent of one node (src/agent/agent.h).
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "agent/agent.h"
#include "agent/cgroup_limiter.h"
#include "agent/controller_client.h"
#include "agent/fence_watchdog.h"
#include "agent/log_writer.h"
#include "agent/metrics_server.h"
#include "agent/process_launcher.h"
#include "agent/process_tracker.h"
#include "agent/procfs.h"
#include "cli/command.h"
#include "cli/tls_flags.h"
#include "core/duration.h"
#include "manifest/units.h"
#include "provider/exec_provider.h"
#include "provider/local_provider.h"

namespace hafab::cli {
namespace {

constexpr char kAgentHelp[] =
    R"(Runs the agent of one node: it heartbeats the controller, runs the instances the
controller assigns to this node (logs in DATA_DIR/logs, pid files in DATA_DIR/run), probes
them, attaches and detaches their volumes, and kills its primaries when it cannot renew its
lease (self-fencing).

SIGTERM or SIGINT: stop every instance gracefully, detach volumes, exit 0 (a second signal
exits at once, leaving instances running). An agent killed with SIGKILL leaves its instances
running; the next agent started with the same --data-dir adopts them (or stops those that
no longer match their assignment), so an agent upgrade does not restart applications.

--metrics-listen HOST:PORT serves GET /metrics (Prometheus text: instance states, restarts,
probe results and latency, heartbeat round trips, CPU and memory per instance, volume
operations; docs/architecture.md, "Operators") on its own thread; port 0 picks a free one.
The bound address is written to DATA_DIR/metrics.addr (`hafab up` gives every agent one).
An address that cannot be bound is logged and the agent runs on without /metrics.

Example:
  hafab token create --node n1 --out n1.token     # where the controller's cluster.key is
  hafab agent --node n1 --controller http://127.0.0.1:7070 --token-file n1.token \
      --data-dir state/nodes/n1 --volume-root state/volumes --fault-domain fd1)";

struct AgentFlags {
  std::string node;
  std::vector<std::string> controllers;  // --controller a,b or repeated
  std::string token_file;
  http::TlsFiles tls;
  std::string data_dir;
  std::string volume_root;
  std::string address = "127.0.0.1";
  std::string fault_domain;
  std::string update_domain;
  std::string heartbeat_interval = "200ms";
  uint16_t ring_port = 0;
  std::string provider = "local";
  std::string provider_config;
  bool no_limits = false;
  uint64_t log_max_bytes = 10 << 20;
  int log_keep = 3;
  std::string metrics_listen;  // "" = no metrics endpoint
};

// Serves the agent's /metrics on `listen` and writes the bound address to
// DATA_DIR/metrics.addr. Errors: InvalidArgument (not HOST:PORT), Unavailable (cannot bind).
Result<std::unique_ptr<agent::MetricsServer>> ServeMetrics(agent::Agent& a,
                                                           const std::string& listen,
                                                           const std::string& data_dir) {
  auto hp = manifest::ParseHostPort(listen, 0);
  if (!hp.ok()) return Status::InvalidArgument("--metrics-listen: " + hp.status().message());
  auto server = std::make_unique<agent::MetricsServer>(a.metrics());
  auto port = server->Listen(hp->host, static_cast<uint16_t>(hp->port));
  if (!port.ok()) return Status::Unavailable("--metrics-listen: " + port.status().message());
  a.EnableMetrics();
  const bool v6 = hp->host.find(':') != std::string::npos;
  const std::string bound = (v6 ? "[" + hp->host + "]" : hp->host) + ":" + std::to_string(*port);
  const std::string file = data_dir + "/metrics.addr";
  {
    std::ofstream out(file + ".tmp", std::ios::trunc);
    out << bound << "\n";
  }
  std::rename((file + ".tmp").c_str(), file.c_str());
  spdlog::info("agent {}: metrics on http://{}/metrics ({})", a.metrics().node(), bound, file);
  return server;
}

void RunAgent(const AgentFlags& f) {
  signal(SIGPIPE, SIG_IGN);
  agent::AgentOptions o;
  o.node = f.node;
  o.address = f.address;
  o.data_dir = std::filesystem::absolute(f.data_dir).string();
  if (!f.fault_domain.empty()) o.labels["fault_domain"] = f.fault_domain;
  if (!f.update_domain.empty()) o.labels["update_domain"] = f.update_domain;
  auto interval = ParseDuration(f.heartbeat_interval);
  if (!interval.ok() || *interval <= Duration::zero()) {
    spdlog::error("--heartbeat-interval: {}",
                  interval.ok() ? "must be positive" : interval.status().message());
    SetExitCode(kExitUsage);
    return;
  }
  o.heartbeat_interval = *interval;
  o.ring_port = f.ring_port;
  o.log_max_bytes = f.log_max_bytes;
  o.log_keep = f.log_keep;
  if (f.controllers.empty()) {
    spdlog::error("--controller: give at least one URL");
    SetExitCode(kExitUsage);
    return;
  }
  std::string token;
  if (!f.token_file.empty()) {
    std::ifstream in(f.token_file);
    if (!in || !std::getline(in, token)) {
      spdlog::error("--token-file {}: cannot read it", f.token_file);
      SetExitCode(kExitError);
      return;
    }
  }
  // https:// controller URLs: this process's client certificate (docs/deploy.md, "TLS").
  if (Status st = UseClientTls(f.tls); !st.ok()) {
    spdlog::error("{}", st.message());
    SetExitCode(kExitUsage);
    return;
  }
  std::error_code ec;
  std::filesystem::create_directories(o.data_dir, ec);
  if (ec) {
    spdlog::error("--data-dir {}: {}", o.data_dir, ec.message());
    SetExitCode(kExitError);
    return;
  }
  std::unique_ptr<provider::Provider> prov;
  if (f.provider == "local") {
    std::string root = f.volume_root.empty() ? o.data_dir + "/volumes" : f.volume_root;
    std::filesystem::create_directories(root, ec);
    prov = std::make_unique<provider::LocalProvider>(std::filesystem::absolute(root).string());
  } else {
    auto config = provider::LoadExecProviderConfig(f.provider_config);
    if (!config.ok()) {
      spdlog::error("--provider-config: {}", config.status().message());
      SetExitCode(kExitUsage);
      return;
    }
    prov = std::make_unique<provider::ExecProvider>(*config);
  }
  {
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
      o.log_writer_argv = {std::string(self, static_cast<size_t>(n)), "log-writer"};
      auto st = agent::ReadProcStat(getpid());
      o.watchdog_argv = {std::string(self, static_cast<size_t>(n)),
                         "agent-watchdog",
                         "--data-dir",
                         o.data_dir,
                         "--agent-pid",
                         std::to_string(getpid()),
                         "--agent-start",
                         std::to_string(st ? st->start_time : 0)};
    }
  }
  // One cgroup name per agent (node and data dir): two agents on one machine never share.
  const std::string cgroup = agent::AgentCgroupName(o.node, o.data_dir);
  std::unique_ptr<agent::ResourceLimiter> limiter;
  if (!f.no_limits) limiter = agent::MakeResourceLimiter(cgroup);
  auto tracker = agent::MakeProcessTracker(cgroup, o.data_dir);
  o.tracker = tracker.get();

  boost::asio::io_context io;
  agent::ProcessLauncher launcher;
  agent::ControllerClient controller(io, f.controllers, token);
  agent::Agent a(io, RealClock(), launcher, *prov, limiter.get(), controller, o);
  boost::asio::signal_set stop_signals(io, SIGTERM, SIGINT);
  int signals_seen = 0;
  std::function<void()> wait_signal;
  wait_signal = [&] {
    stop_signals.async_wait([&](boost::system::error_code ec, int sig) {
      if (ec) return;
      if (++signals_seen > 1) {
        spdlog::warn("second signal: exiting now, instances keep running");
        io.stop();
        return;
      }
      spdlog::info("signal {}: stopping instances", sig);
      a.Shutdown([&] { io.stop(); });
      wait_signal();
    });
  };
  wait_signal();
  std::unique_ptr<agent::MetricsServer> metrics;  // destroyed before the agent
  if (!f.metrics_listen.empty()) {
    auto served = ServeMetrics(a, f.metrics_listen, o.data_dir);
    if (served.ok()) {
      metrics = std::move(served).value();
    } else if (served.status().code() == StatusCode::kInvalidArgument) {
      spdlog::error("{}", served.status().message());
      SetExitCode(kExitUsage);
      return;
    } else {
      // Not fatal: an agent that exits takes its node's lease (and primaries) with it.
      spdlog::error("{}; the agent runs without /metrics", served.status().message());
    }
  }
  a.Start();
  io.run();
  if (metrics) {
    metrics.reset();
    std::remove((o.data_dir + "/metrics.addr").c_str());
  }
  SetExitCode(kExitOk);
}

HAFAB_COMMAND(20, [](CLI::App& app) {
  auto* cmd = app.add_subcommand("agent", "Run the agent of one node");
  cmd->footer(kAgentHelp);
  auto f = std::make_shared<AgentFlags>();
  cmd->add_option("--node", f->node, "This node's name")->required();
  cmd->add_option("--controller", f->controllers,
                  "Controller base URL(s), comma-separated; the next is tried on failure")
      ->delimiter(',')
      ->required();
  cmd->add_option("--token-file", f->token_file,
                  "File holding this node's agent credential (hafab token create --node NODE)");
  cmd->add_option("--data-dir", f->data_dir, "This node's directory (logs, pid files, work dirs)")
      ->required();
  cmd->add_option("--volume-root", f->volume_root,
                  "Local provider: the directory of volumes shared by the local nodes "
                  "(default DATA_DIR/volumes)");
  cmd->add_option("--address", f->address, "The address instances listen on (reported)");
  cmd->add_option("--fault-domain", f->fault_domain, "Label fault_domain");
  cmd->add_option("--update-domain", f->update_domain, "Label update_domain");
  cmd->add_option("--heartbeat-interval", f->heartbeat_interval, "e.g. 200ms");
  cmd->add_option("--ring-port", f->ring_port,
                  "failure_detector ring: the UDP port for ring probes, on --address (0 = any "
                  "free port; the controller tells the neighbours)")
      ->capture_default_str();
  cmd->add_option("--provider", f->provider, "Volume provider: local or exec")
      ->check(CLI::IsMember({"local", "exec"}));
  cmd->add_option("--provider-config", f->provider_config,
                  "Exec provider: JSON file naming the scripts (see provider/exec_provider.h)");
  cmd->add_flag("--no-resource-limits", f->no_limits,
                "Do not apply per-instance CPU/memory limits");
  cmd->add_option("--log-max-bytes", f->log_max_bytes,
                  "Size at which an instance's log is rotated (whole lines are kept together)")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{4096}, uint64_t{1} << 40));
  cmd->add_option("--log-keep", f->log_keep, "Rotated log files kept per instance")
      ->capture_default_str()
      ->check(CLI::Range(0, 100));
  cmd->add_option("--metrics-listen", f->metrics_listen,
                  "Serve GET /metrics (Prometheus) on HOST:PORT (port 0: a free one; the bound "
                  "address goes to DATA_DIR/metrics.addr); off unless given");
  AddTlsFlags(cmd, &f->tls, "this node's certificate (hafab certs create)");
  cmd->callback([f] { RunAgent(*f); });
});

// The log writer between an instance's output and its log file (agent/log_writer.h); started
// by the agent, not for people to run.
HAFAB_COMMAND(22, [](CLI::App& app) {
  auto* cmd = app.add_subcommand("log-writer", "Copy stdin to a size-capped, rotated log");
  cmd->group("");  // hidden from --help
  auto o = std::make_shared<agent::LogWriterOptions>();
  cmd->add_option("--path", o->path)->required();
  cmd->add_option("--max-bytes", o->max_bytes)->check(CLI::Range(uint64_t{1}, uint64_t{1} << 40));
  cmd->add_option("--keep", o->keep)->check(CLI::Range(0, 100));
  cmd->add_option("--uid", o->uid);
  cmd->add_option("--gid", o->gid);
  cmd->callback([o] { SetExitCode(agent::RunLogWriter(0, *o)); });
});

// The fence watchdog the agent starts (agent/fence_watchdog.h); not for people to run.
HAFAB_COMMAND(21, [](CLI::App& app) {
  auto* cmd =
      app.add_subcommand("agent-watchdog", "Kill an agent's primaries if its lease runs out");
  cmd->group("");  // hidden from --help
  auto data_dir = std::make_shared<std::string>();
  auto agent_pid = std::make_shared<int>(0);
  auto agent_start = std::make_shared<uint64_t>(0);
  cmd->add_option("--data-dir", *data_dir)->required();
  cmd->add_option("--agent-pid", *agent_pid)->required();
  cmd->add_option("--agent-start", *agent_start);
  cmd->callback([=] {
    SetExitCode(agent::RunFenceWatchdog(RealClock(), *data_dir, *agent_pid, *agent_start));
  });
});

}  // namespace
}  // namespace hafab::cli
