// The `hafab controller` process: opens the store, starts the Controller and its API on an
// http::Server, writes `<state-dir>/api.url`, ticks the controller every 20ms, and exits
// cleanly on SIGTERM/SIGINT.
#pragma once

#include <string>

#include "core/clock.h"
#include "core/status.h"
#include "http/tls.h"

namespace hafab::controller {

struct DaemonOptions {
  std::string state_dir;
  std::string listen = "127.0.0.1:0";
  std::string store;      // store::Open URL: "sqlite:PATH", a path, "etcd://h1:2379,h2:2379";
                          // "" = sqlite:<state-dir>/controller.db
  std::string advertise;  // the URL agents, gateways and the CLI use for this replica;
                          // "" = http://<listen address>
  // The leader key's lease (replica.h): how long a dead leader blocks a takeover. The
  // leader renews every ttl/4 and steps down at ttl - ttl/4 without a renewal.
  Duration leader_ttl = std::chrono::seconds(2);
  std::string manifest;            // applied at start when set
  std::string volume_root;         // LocalProvider root; "" = no provider (agents' reports only)
  std::string provider = "local";  // "local" (volume_root) or "exec" (provider_config)
  std::string provider_config;     // ExecProvider JSON config (provider/exec_provider.h)
  Duration lease_ttl = std::chrono::milliseconds(1500);
  Duration fence_margin = std::chrono::milliseconds(500);
  // settings.failure_detector ("star", "ring"); "" = the --manifest's, else the star.
  std::string failure_detector;
  // The agents' heartbeat interval: the ring's keep-alive for nodes with a primary.
  Duration heartbeat_interval = std::chrono::milliseconds(200);
  std::string crash_at_step;  // HAFAB_TEST_CRASH_AT_STEP
  // Set: the API speaks only TLS and takes only clients with a certificate of tls.ca (agents,
  // gateways, the CLI, the other replicas, to which it is the client too); URLs are https.
  http::TlsFiles tls;
  // Set: the etcd store is spoken to over TLS with this client certificate.
  http::TlsFiles etcd_tls;
  // The API listener's connection limits (http.h ServerLimits): every agent keeps two
  // connections open (its heartbeats and its long poll), so a cluster of more than ~2 000
  // nodes needs more than the default 4 096. 0 = the default.
  size_t max_connections = 0;
  size_t max_connections_per_peer = 0;
};

// Runs until SIGTERM/SIGINT. An etcd store that does not answer is waited for (logged,
// retried with backoff; a signal during the wait returns OK). Errors: bad options
// (InvalidArgument), an SQLite store or the listening address unavailable (Unavailable),
// an invalid --manifest (InvalidArgument with its diagnostics).
Status RunDaemon(const DaemonOptions& opts);

}  // namespace hafab::controller
