// `hafab controller`: the fabric controller (src/controller/daemon.h).
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "cli/command.h"
#include "cli/tls_flags.h"
#include "controller/daemon.h"
#include "core/duration.h"
#include "manifest/limits.h"

namespace hafab::cli {
namespace {

constexpr char kControllerHelp[] =
    R"(Runs the fabric controller: it keeps the desired state (applied manifests) in its store,
watches every node through its agent's heartbeats (leases in memory), places instances across
fault and update domains, restarts and relocates them, fails active-passive roles over as a
journaled nine-step operation, and serves the HTTP/JSON API (docs/architecture.md).

At first start it writes DIR/admin.token, DIR/read.token and DIR/cluster.key (0600; agents'
and gateways get credentials derived from the key: hafab token create); once listening it writes
DIR/api.url (https:// with --tls-cert). SIGTERM or SIGINT: answer waiting long-polls, close, exit 0. A controller
started again on the same store resumes every operation at the step it recorded.

An etcd that does not answer yet is waited for: the controller logs which endpoints and
what error, and tries again (1 s, doubling to 10 s) until it answers or a signal arrives.

Several controllers on one etcd (--store etcd://h1:2379,h2:2379,h3:2379) elect one leader
through a lease on the key /hafab/leader; the others serve GETs from the store and answer
everything else with 503 {"error": "not leader", "leader": URL}. A new leader resumes every
journaled operation. Give every replica the same admin.token, read.token and cluster.key (copy them into
each DIR before the first start) and an --advertise URL that agents and gateways can reach.

Across machines, use mutual TLS (docs/deploy.md, "TLS"): with --tls-ca, --tls-cert and
--tls-key the API speaks only TLS and takes only clients presenting a certificate of the same
CA (hafab certs create); with --etcd-ca, --etcd-cert and --etcd-key it speaks TLS to etcd.

Example:
  hafab controller --state-dir state --listen 127.0.0.1:7070 --volume-root state/volumes)";

struct ControllerFlags {
  std::string state_dir;
  std::string listen = "127.0.0.1:0";
  std::string store;
  std::string manifest;
  std::string lease_ttl = "1500ms";
  std::string volume_root;
  std::string fence_margin = "500ms";
  std::string advertise;
  std::string leader_ttl = "2s";
  std::string provider = "local";
  std::string provider_config;
  std::string failure_detector;
  std::string heartbeat_interval = "200ms";
  size_t max_connections = 0;
  size_t max_connections_per_peer = 0;
  http::TlsFiles tls;
  http::TlsFiles etcd_tls;
};

void Run(const ControllerFlags& f) {
  controller::DaemonOptions o;
  o.state_dir = f.state_dir;
  o.listen = f.listen;
  o.store = f.store;
  o.manifest = f.manifest;
  o.volume_root = f.volume_root;
  o.advertise = f.advertise;
  o.provider = f.provider;
  o.provider_config = f.provider_config;
  o.tls = f.tls;
  o.etcd_tls = f.etcd_tls;
  o.failure_detector = f.failure_detector;
  o.max_connections = f.max_connections;
  o.max_connections_per_peer = f.max_connections_per_peer;
  for (auto [flag, text, out] :
       {std::tuple{"--lease-ttl", f.lease_ttl, &o.lease_ttl},
        std::tuple{"--heartbeat-interval", f.heartbeat_interval, &o.heartbeat_interval},
        std::tuple{"--fence-margin", f.fence_margin, &o.fence_margin},
        std::tuple{"--leader-ttl", f.leader_ttl, &o.leader_ttl}}) {
    auto d = ParseDuration(text);
    if (!d.ok() || *d < Duration::zero() ||
        (*d == Duration::zero() && (out == &o.lease_ttl || out == &o.heartbeat_interval))) {
      spdlog::error("{}: {}", flag, d.ok() ? "must be positive" : d.status().message());
      SetExitCode(kExitUsage);
      return;
    }
    *out = *d;
  }
  if (o.lease_ttl > manifest::kMaxLeaseTtl) {
    spdlog::error("--lease-ttl: must be at most {}", FormatDuration(manifest::kMaxLeaseTtl));
    SetExitCode(kExitUsage);
    return;
  }
  if (const char* crash = std::getenv("HAFAB_TEST_CRASH_AT_STEP")) o.crash_at_step = crash;
  Status st = controller::RunDaemon(o);
  if (!st.ok()) {
    spdlog::error("controller: {}", st.message());
    SetExitCode(st.code() == StatusCode::kInvalidArgument ? kExitUsage : kExitError);
  }
}

HAFAB_COMMAND(25, [](CLI::App& app) {
  auto f = std::make_shared<ControllerFlags>();
  auto* cmd = app.add_subcommand("controller", "Run the fabric controller");
  cmd->footer(kControllerHelp);
  cmd->add_option("--state-dir", f->state_dir, "State directory (tokens, api.url, store)")
      ->required();
  cmd->add_option("--listen", f->listen, "API address HOST:PORT (port 0 = any free port)")
      ->capture_default_str();
  cmd->add_option("--store", f->store,
                  "sqlite:PATH or a path (default: STATE_DIR/controller.db), or "
                  "etcd://HOST:PORT[,HOST:PORT...] for several controller replicas");
  cmd->add_option("--advertise", f->advertise,
                  "URL of this controller for agents, gateways and the CLI (the leader hint "
                  "followers give); default http://LISTEN")
      ->check([](const std::string& v) {
        return v.rfind("http://", 0) == 0 || v.rfind("https://", 0) == 0
                   ? std::string()
                   : "--advertise: want http://HOST:PORT (https:// with --tls-cert)";
      });
  cmd->add_option("--leader-ttl", f->leader_ttl,
                  "Lease of the leader key: a dead leader is replaced within about this long "
                  "(etcd rounds it up to whole seconds)")
      ->capture_default_str();
  cmd->add_option("--manifest", f->manifest, "Apply this manifest at start");
  cmd->add_option("--lease-ttl", f->lease_ttl, "Node and gateway lease")->capture_default_str();
  cmd->add_option("--failure-detector", f->failure_detector,
                  "star (every agent heartbeats the controller) or ring (agents probe their ring "
                  "neighbours over UDP; docs/architecture.md); default: the --manifest's "
                  "settings.failure_detector, else star")
      ->check(CLI::IsMember({"star", "ring"}));
  cmd->add_option("--heartbeat-interval", f->heartbeat_interval,
                  "The agents' heartbeat interval (the ring's keep-alive for nodes with a primary)")
      ->capture_default_str();
  cmd->add_option("--max-connections", f->max_connections,
                  "Connections the API keeps open at most (default 4096; each agent holds two: "
                  "raise it above twice the nodes for clusters of more than ~2 000)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-connections-per-peer", f->max_connections_per_peer,
                  "Connections from one address at most (default 1024)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--volume-root", f->volume_root,
                  "Root of the local volumes (LocalProvider), as given to the agents");
  cmd->add_option("--provider", f->provider,
                  "Volume provider, as given to the agents: local or exec")
      ->check(CLI::IsMember({"local", "exec"}));
  cmd->add_option("--provider-config", f->provider_config,
                  "Exec provider: JSON file naming the scripts (see provider/exec_provider.h)");
  cmd->add_option("--fence-margin", f->fence_margin,
                  "Safety margin after a silent node's lease before force-detaching its volume")
      ->capture_default_str();
  AddTlsFlags(cmd, &f->tls,
              "this replica's certificate (it serves the API with it, and presents it to the "
              "other replicas); it must name the host of --advertise");
  cmd->add_option("--etcd-ca", f->etcd_tls.ca,
                  "etcd over TLS: the CA of etcd's certificates; with --etcd-cert, --etcd-key")
      ->group("TLS");
  cmd->add_option("--etcd-cert", f->etcd_tls.cert,
                  "etcd over TLS: the client certificate etcd's --client-cert-auth checks")
      ->group("TLS");
  cmd->add_option("--etcd-key", f->etcd_tls.key, "etcd over TLS: the key of --etcd-cert")
      ->group("TLS");
  cmd->callback([f] { Run(*f); });
});

}  // namespace
}  // namespace hafab::cli
