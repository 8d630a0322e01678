// `hafab gateway`: the stable endpoint of every role (src/gateway/daemon.h).
#include <spdlog/spdlog.h>

#include <memory>
#include <string>
#include <vector>

#include "cli/command.h"
#include "cli/tls_flags.h"
#include "core/duration.h"
#include "gateway/daemon.h"
#include "gateway/proxy.h"

namespace hafab::cli {
namespace {

constexpr char kGatewayHelp[] =
    R"(Runs the gateway: an L4 TCP proxy giving each role one stable host:port. Active-passive
endpoints go to the primary of the current epoch only (connections to an old primary are
closed at a failover; new ones wait up to --primary-wait for the next primary); load-balanced
endpoints go to the ready, non-busy instance with the fewest connections.

Routes come from the controller (long-poll of /v1/routes; heartbeats renew the gateway's
lease; without a lease, active-passive endpoints are not routed), or from a static JSON file
in the same format (--routes-file; no lease; SIGHUP reloads it).

Data path (--data-path): by default (user) bytes move in user space (epoll + splice(2)). With
kernel, established connections are spliced in the kernel (a BPF sockhash and stream verdict
program move the bytes; the gateway sees only half-closes and resets); auto does that when the
program loads and falls back to user space with one log line saying why when it cannot (not
root, no CAP_BPF, built without libbpf). The kernel path is not yet faster here
(bench/RESULTS.md): it is not the default.

Counters: GET http://METRICS/metrics (Prometheus) and /stats (JSON).
SIGTERM or SIGINT: stop accepting, let connections finish up to --drain-timeout, exit 0.

Examples:
  hafab token create --gateway gw1 --out gw1.token     # where the controller's cluster.key is
  hafab gateway --id gw1 --controller http://127.0.0.1:7070 --token-file gw1.token
  hafab gateway --id gw1 --routes-file routes.json --threads 2)";

struct GatewayFlags {
  std::string id = "gw1";
  std::vector<std::string> controllers;  // --controller a,b or repeated
  std::string token_file;
  http::TlsFiles tls;
  std::string routes_file;
  int threads = 0;
  std::string primary_wait = "5s";
  std::string idle_timeout = "60s";
  std::string drain_timeout = "10s";
  size_t max_connections = 0;
  std::string metrics_listen = "127.0.0.1:0";
  std::string state_dir;
  std::string data_path = "user";
  bool no_splice = false;
};

bool ParseFlagDuration(const char* flag, const std::string& text, bool allow_zero, Duration* out) {
  auto d = ParseDuration(text);
  if (!d.ok() || *d < Duration::zero() || (!allow_zero && *d == Duration::zero())) {
    spdlog::error("{}: {}", flag, d.ok() ? "must be positive" : d.status().message());
    return false;
  }
  *out = *d;
  return true;
}

void RunGatewayCommand(const GatewayFlags& f) {
  gateway::GatewayOptions o;
  o.id = f.id;
  o.controllers = f.controllers;
  o.token_file = f.token_file;
  o.routes_file = f.routes_file;
  if (o.routes_file.empty() == o.controllers.empty()) {
    spdlog::error("give either --controller URL[,URL] with --token-file, or --routes-file");
    SetExitCode(kExitUsage);
    return;
  }
  if (!o.controllers.empty() && o.token_file.empty()) {
    spdlog::error("--controller needs --token-file");
    SetExitCode(kExitUsage);
    return;
  }
  // https:// controller URLs: this process's client certificate (docs/deploy.md, "TLS").
  if (Status st = UseClientTls(f.tls); !st.ok()) {
    spdlog::error("{}", st.message());
    SetExitCode(kExitUsage);
    return;
  }
  if (f.threads < 0) {
    spdlog::error("--threads: must be 0 (one per core) or more");
    SetExitCode(kExitUsage);
    return;
  }
  o.threads = f.threads;
  if (!ParseFlagDuration("--primary-wait", f.primary_wait, true, &o.primary_wait) ||
      !ParseFlagDuration("--idle-timeout", f.idle_timeout, true, &o.idle_timeout) ||
      !ParseFlagDuration("--drain-timeout", f.drain_timeout, true, &o.drain_timeout)) {
    SetExitCode(kExitUsage);
    return;
  }
  o.max_connections = f.max_connections;
  o.metrics_listen = f.metrics_listen;
  o.state_dir = f.state_dir;
  auto data_path = gateway::ParseDataPath(f.data_path);
  if (!data_path.ok()) {
    spdlog::error("--data-path: {}", data_path.status().message());
    SetExitCode(kExitUsage);
    return;
  }
  o.data_path = *data_path;
  o.splice = !f.no_splice;
  SetExitCode(gateway::RunGateway(o) == 0 ? kExitOk : kExitError);
}

HAFAB_COMMAND(41, [](CLI::App& app) {
  auto* cmd = app.add_subcommand("gateway", "Run the gateway (L4 proxy for role endpoints)");
  cmd->footer(kGatewayHelp);
  auto f = std::make_shared<GatewayFlags>();
  cmd->add_option("--id", f->id, "This gateway's id (heartbeats, metrics)");
  cmd->add_option("--controller", f->controllers,
                  "Controller base URL(s), comma-separated; the next is tried on failure")
      ->delimiter(',');
  cmd->add_option("--token-file", f->token_file,
                  "File holding this gateway's credential (hafab token create --gateway ID)");
  cmd->add_option("--routes-file", f->routes_file,
                  "Static routes (the JSON of GET /v1/routes) instead of a controller");
  cmd->add_option("--threads", f->threads, "Data-path threads (0: one per core)");
  cmd->add_option("--primary-wait", f->primary_wait,
                  "How long a new connection waits for an active-passive primary");
  cmd->add_option("--idle-timeout", f->idle_timeout, "Close connections idle this long (0: never)");
  cmd->add_option("--drain-timeout", f->drain_timeout,
                  "On SIGTERM/SIGINT, how long open connections may finish");
  cmd->add_option("--max-connections", f->max_connections,
                  "Stop accepting beyond this many open connections (0: half the open-file "
                  "limit less 512)");
  cmd->add_option("--metrics-listen", f->metrics_listen, "host:port of /metrics and /stats");
  cmd->add_option("--state-dir", f->state_dir, "Directory for gateway.addr (metrics address)");
  cmd->add_option("--data-path", f->data_path,
                  "Where established connections' bytes move: kernel (BPF sockmap; needs root "
                  "or CAP_BPF+CAP_NET_ADMIN), user (epoll/splice; the default), or auto "
                  "(kernel if it loads, else user, logging why)");
  cmd->add_flag("--no-splice", f->no_splice,
                "User-space path: copy through user space instead of splice(2)");
  AddTlsFlags(cmd, &f->tls, "this gateway's certificate (hafab certs create)");
  cmd->callback([f] { RunGatewayCommand(*f); });
});

}  // namespace
}  // namespace hafab::cli
