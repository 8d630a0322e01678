// hafab-sim: the deterministic simulator (docs/simulator.md). One process, one seed, simulated
// time; prints progress on stderr and a JSON summary as its last line on stdout. Exit status 1
// when an invariant was violated (after printing the seed, the shortest fault set found that
// still violates it, the command that replays it, and the end of its trace).
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <sstream>

#include "core/duration.h"
#include "sim/simulation.h"

#ifdef HAFAB_SIM_MIMALLOC
#include <mimalloc.h>
#endif

using namespace hafab;

namespace {

// "200ms", "10m" (core/duration.h) or exit with a clear error.
bool ReadDuration(const std::string& flag, const std::string& text, Duration* out) {
  auto d = ParseDuration(text);
  if (!d.ok()) {
    std::cerr << "hafab-sim: " << flag << ": " << d.status().message() << "\n";
    return false;
  }
  *out = *d;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
#ifdef HAFAB_SIM_MIMALLOC
  // mimalloc gives freed memory back to the OS 25 ms after it is free, and the run frees and
  // takes back the same memory all the time (a controller restart drops and rebuilds its whole
  // state): the madvise calls and page faults cost 5-10 % of the 10 000-node run (RESULTS.md,
  // "session 23"). Kept instead.
  mi_option_disable(mi_option_allow_decommit);
  // In 2 MiB pages where the kernel allows (transparent huge pages, "madvise"): the run reads
  // ~600 MB of small objects scattered, which fewer, larger pages map with fewer TLB misses:
  // 10-30 % less time side by side (RESULTS.md, "session 25").
  mi_option_enable(mi_option_large_os_pages);
#endif
  CLI::App app{"hafab-sim: the whole fabric on simulated time, with faults, checking invariants"};
  sim::SimOptions o;
  std::string duration = "5m", settle = "30s", fault_interval = "5s", heartbeat = "200ms",
              tick = "50ms", probe = "100ms", lease = "1s", reconcile = "100ms",
              ring_probe = "100ms", slow_pause = "200ms", detector = "star";
  std::vector<std::string> faults, breaks;
  std::string only;
  int seeds = 1;
  bool no_shrink = false;
  app.add_option("--seed", o.seed, "the first seed")->capture_default_str();
  app.add_option("--seeds", seeds, "run this many seeds from --seed on")->capture_default_str();
  app.add_option("--nodes", o.nodes, "nodes")->check(CLI::Range(1, 100000))->capture_default_str();
  app.add_option("--instances", o.instances, "instances (default 3 per node)")
      ->check(CLI::Range(0, 1000000));
  app.add_option("--gateways", o.gateways, "gateways")
      ->check(CLI::Range(1, 16))
      ->capture_default_str();
  app.add_option("--duration", duration, "simulated time with faults")->capture_default_str();
  app.add_option("--settle", settle, "simulated time after the faults")->capture_default_str();
  app.add_option("--fault-interval", fault_interval, "mean time between faults")
      ->capture_default_str();
  app.add_option("--faults", faults,
                 "fault kinds (node-crash process-crash process-hang partition isolation "
                 "store-outage controller-crash switchover, and slow-node; default all but "
                 "slow-node, 'none' for none)")
      ->delimiter(',');
  app.add_option("--only", only, "replay only these faults of the schedule: 3,7,12");
  app.add_option("--loss", o.loss, "message loss probability")
      ->check(CLI::Range(0.0, 0.5))
      ->capture_default_str();
  app.add_option("--heartbeat-interval", heartbeat, "agents' and gateways' heartbeat interval")
      ->capture_default_str();
  app.add_option("--tick", tick, "agents' tick interval")->capture_default_str();
  app.add_option("--lease-ttl", lease, "the controller's lease TTL")->capture_default_str();
  app.add_option("--reconcile-interval", reconcile, "the controller's reconcile pass")
      ->capture_default_str();
  app.add_option("--probe-interval", probe, "instances' probe interval")->capture_default_str();
  app.add_option("--clients", o.clients, "active-passive roles the model client writes to")
      ->capture_default_str();
  app.add_option("--break", breaks, "TEST ONLY: break a safety rule (stop-wait, self-fence)")
      ->delimiter(',');
  app.add_option("--detector", detector, "failure detection: star (heartbeats) or ring")
      ->check(CLI::IsMember({"star", "ring"}))
      ->capture_default_str();
  app.add_option("--ring-k", o.ring_k, "ring: neighbours watched on each side")
      ->check(CLI::Range(1, 8))
      ->capture_default_str();
  app.add_option("--ring-probe-interval", ring_probe, "ring: one neighbour probed per interval")
      ->capture_default_str();
  app.add_option("--keepalives-per-second", o.keepalives_per_second,
                 "ring: the keep-alives the controller asks for, in all")
      ->check(CLI::Range(1.0, 1e6))
      ->capture_default_str();
  app.add_option("--slow-pause", slow_pause, "slow-node: the longest pause")->capture_default_str();
  app.add_flag("--trace", o.print_trace, "print the trace (faults, the controller's events)");
  app.add_flag("--no-shrink", no_shrink, "on a violation, do not look for a smaller fault set");
  CLI11_PARSE(app, argc, argv);
  // The command line that replays one seed: this one without the seed options.
  std::string replay = "hafab-sim";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--seed" || a == "--seeds" || a == "--only") {
      ++i;
      continue;
    }
    if (a.rfind("--seed=", 0) == 0 || a.rfind("--seeds=", 0) == 0 || a.rfind("--only=", 0) == 0) {
      continue;
    }
    replay += " " + a;
  }

  if (!ReadDuration("--duration", duration, &o.duration) ||
      !ReadDuration("--settle", settle, &o.settle) ||
      !ReadDuration("--fault-interval", fault_interval, &o.fault_interval) ||
      !ReadDuration("--heartbeat-interval", heartbeat, &o.heartbeat_interval) ||
      !ReadDuration("--tick", tick, &o.tick_interval) ||
      !ReadDuration("--lease-ttl", lease, &o.lease_ttl) ||
      !ReadDuration("--reconcile-interval", reconcile, &o.reconcile_interval) ||
      !ReadDuration("--probe-interval", probe, &o.probe_interval) ||
      !ReadDuration("--ring-probe-interval", ring_probe, &o.ring_probe_interval) ||
      !ReadDuration("--slow-pause", slow_pause, &o.slow_pause)) {
    return 2;
  }
  o.ring = detector == "ring";
  if (!faults.empty()) {
    o.faults.clear();
    for (const auto& f : faults) {
      if (f == "none") continue;
      auto k = sim::FaultKindFromName(f);
      if (!k) {
        std::cerr << "hafab-sim: --faults: unknown fault kind '" << f
                  << "' (node-crash, process-crash, process-hang, partition, isolation, "
                     "store-outage, controller-crash, switchover, none)\n";
        return 2;
      }
      o.faults.insert(*k);
    }
  }
  for (const auto& b : breaks) {
    if (b == "stop-wait") {
      o.break_stop_wait = true;
    } else if (b == "self-fence") {
      o.break_self_fence = true;
    } else {
      std::cerr << "hafab-sim: --break: unknown rule '" << b << "' (stop-wait, self-fence)\n";
      return 2;
    }
  }
  if (!only.empty()) {
    std::stringstream ss(only);
    std::string item;
    while (std::getline(ss, item, ',')) {
      try {
        o.only.insert(std::stoi(item));
      } catch (const std::exception&) {
        std::cerr << "hafab-sim: --only: '" << item << "' is not a fault index\n";
        return 2;
      }
    }
  }
  spdlog::set_level(spdlog::level::off);  // the trace says what matters

  nlohmann::json last;
  int failed_seeds = 0;
  std::vector<double> walls;
  for (int i = 0; i < seeds; ++i) {
    sim::SimOptions run = o;
    run.seed = o.seed + static_cast<uint64_t>(i);
    sim::SimResult r = sim::RunSimulation(run);
    last = r.ToJson(run);
    if (seeds > 1) std::cerr << last.dump() << "\n";
    if (r.violation_count == 0) continue;
    ++failed_seeds;
    std::cerr << "VIOLATION with seed " << run.seed << ": " << r.violations.front() << "\n";
    std::set<int> kept(r.faults_struck.begin(), r.faults_struck.end());
    sim::SimResult shown = r;
    if (!no_shrink && kept.size() > 1) {
      kept = sim::ShrinkFaults(run, r, 40);
      run.only = kept;
      shown = sim::RunSimulation(run);
    }
    std::string list;
    for (int k : kept) list += (list.empty() ? "" : ",") + std::to_string(k);
    std::cerr << "shortest fault set found: " << kept.size() << " of " << r.faults_struck.size()
              << " faults; replay: " << replay << " --seed " << run.seed << " --only " << list
              << "\ntrace:\n";
    for (const auto& line : shown.trace_tail) std::cerr << "  " << line << "\n";
    last = shown.ToJson(run);
    last["seed"] = run.seed;
    last["replay_faults"] = list;
    if (seeds == 1) break;
  }
  if (seeds > 1) {
    last["seeds"] = seeds;
    last["failed_seeds"] = failed_seeds;
  }
  std::cout << last.dump() << std::endl;
  return failed_seeds > 0 ? 1 : 0;
}
