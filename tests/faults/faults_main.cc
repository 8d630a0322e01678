// hafab-faults: injects faults into a real embedded cluster again and again and checks, each
// time, that no acknowledged write is lost, that there is no split brain, and how long the
// service was unavailable. See tests/faults/README.md.
#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/random.h"
#include "tests/faults/scenarios.h"

namespace hafab::faults {
namespace {

struct Options {
  std::string scenario = "all";
  int iterations = 1;
  uint64_t seed = 1;
  bool expect_violation = false;
  Clients clients;
};

struct Tally {
  std::vector<double> downtime_ms;
  int64_t acked = 0, lost = 0, split_brain = 0, errors = 0, skipped = 0, spliced = 0;
};

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

void Usage() {
  std::cerr << "usage: hafab-faults [--scenario NAME|all|active-passive|replicated|random]\n"
               "                    [--iterations N] [--seed S] [--expect-violation]\n"
               "                    [--data-path user|kernel|auto] [--keep-alive]\n"
               "  all: N iterations of each scenario; active-passive, replicated: of each of that\n"
               "  group's; random: N iterations, each a random scenario\n"
               "  --expect-violation: exit 0 only if a lost write or split brain was seen\n"
               "  --data-path: the gateway's (hafab up --gateway-data-path); kernel fails the run\n"
               "  if no connection reached the kernel. --keep-alive: the checking client writes\n"
               "  over a kept-alive connection (what reaches the kernel: from its third turn)\n"
               "scenarios:";
  for (const auto& n : ScenarioNames()) std::cerr << " " << n;
  std::cerr << "\n";
}

int Run(const Options& o) {
  Random rng(o.seed);
  std::vector<std::string> names = ScenarioNames(o.scenario);
  std::vector<std::string> plan;  // one scenario name per injected fault
  if (o.scenario == "all" || o.scenario == "active-passive" || o.scenario == "replicated") {
    for (const auto& n : names) plan.insert(plan.end(), o.iterations, n);
  } else if (o.scenario == "random") {
    for (int i = 0; i < o.iterations; ++i) plan.push_back(names[rng.Uniform(names.size())]);
  } else {
    plan.assign(o.iterations, o.scenario);
  }
  std::map<std::string, std::unique_ptr<Scenario>> scenarios;
  std::map<std::string, Tally> tally;
  int n = 0;
  for (const auto& name : plan) {
    auto& s = scenarios[name];
    if (!s) {
      auto made = MakeScenario(name);
      if (!made.ok()) {
        std::cerr << "error: " << made.status().ToString() << "\n";
        Usage();
        return 2;
      }
      s = std::move(*made);
      s->set_clients(o.clients);
    }
    // `all` runs scenarios one after another: stop the previous one's cluster first.
    for (auto& [other, os] : scenarios) {
      if (other != name && os) {
        Status st = os->Finish();
        if (!st.ok()) {
          ++tally[other].errors;
          std::cout << other << ": stop: " << st.ToString() << "\n";
        }
      }
    }
    TimePoint t0 = RealClock().Now();
    auto r = s->RunOnce(rng);
    Tally& t = tally[name];
    ++n;
    if (!r.ok()) {
      ++t.errors;
      std::cout << "[" << n << "/" << plan.size() << "] " << name << ": ERROR "
                << r.status().ToString() << "\n";
      (void)s->Finish();  // a fresh cluster for the next iteration
      continue;
    }
    if (!r->skipped.empty()) {
      ++t.skipped;
      std::cout << "[" << n << "/" << plan.size() << "] " << name << ": SKIPPED " << r->skipped
                << std::endl;
      continue;
    }
    t.downtime_ms.push_back(ToMillis(r->downtime));
    t.acked += r->acked;
    t.lost += r->lost;
    t.split_brain += r->split_brain;
    t.spliced = std::max(t.spliced, r->spliced);
    std::cout << "[" << n << "/" << plan.size() << "] " << name << ": downtime "
              << static_cast<int64_t>(ToMillis(r->downtime)) << "ms acked " << r->acked << " lost "
              << r->lost << " split_brain " << r->split_brain
              << (o.clients.data_path == "user" ? "" : " spliced " + std::to_string(r->spliced))
              << " (" << static_cast<int64_t>(ToMillis(RealClock().Now() - t0)) << "ms) "
              << r->detail << std::endl;
  }
  for (auto& [name, s] : scenarios) {
    Status st = s->Finish();
    if (!st.ok()) {
      ++tally[name].errors;
      std::cout << name << ": stop: " << st.ToString() << "\n";
    }
  }

  int64_t lost = 0, split = 0, errors = 0, faults = 0, skipped = 0, spliced = 0;
  std::printf("\n%-18s %6s %10s %10s %10s %8s %6s %12s %7s %8s\n", "scenario", "faults", "p50_ms",
              "p99_ms", "max_ms", "acked", "lost", "split_brain", "errors", "skipped");
  for (const auto& [name, t] : tally) {
    double mx =
        t.downtime_ms.empty() ? 0 : *std::max_element(t.downtime_ms.begin(), t.downtime_ms.end());
    std::printf("%-18s %6zu %10.0f %10.0f %10.0f %8lld %6lld %12lld %7lld %8lld\n", name.c_str(),
                t.downtime_ms.size(), Percentile(t.downtime_ms, 0.5),
                Percentile(t.downtime_ms, 0.99), mx, static_cast<long long>(t.acked),
                static_cast<long long>(t.lost), static_cast<long long>(t.split_brain),
                static_cast<long long>(t.errors), static_cast<long long>(t.skipped));
    lost += t.lost;
    split += t.split_brain;
    errors += t.errors;
    skipped += t.skipped;
    faults += static_cast<int64_t>(t.downtime_ms.size());
    spliced += t.spliced;
  }
  std::printf(
      "total: %lld faults checked, %lld lost writes, %lld split-brain violations, "
      "%lld harness errors, %lld skipped (seed %llu)\n",
      static_cast<long long>(faults), static_cast<long long>(lost), static_cast<long long>(split),
      static_cast<long long>(errors), static_cast<long long>(skipped),
      static_cast<unsigned long long>(o.seed));
  if (o.clients.data_path == "kernel" && faults > 0 && spliced == 0) {
    std::printf(
        "the gateway's kernel data path carried no connection: nothing was checked on it\n");
    ++errors;
  }
  bool violated = lost > 0 || split > 0;
  if (o.expect_violation) {
    std::printf(violated ? "expected violation: caught\n"
                         : "expected violation: NOT caught (the checker missed it)\n");
    return violated ? 0 : 1;
  }
  return (violated || errors > 0) ? 1 : 0;
}

}  // namespace
}  // namespace hafab::faults

int main(int argc, char** argv) {
  hafab::faults::Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        hafab::faults::Usage();
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--scenario") {
      o.scenario = next();
    } else if (a == "--iterations") {
      o.iterations = std::atoi(next().c_str());
    } else if (a == "--seed") {
      o.seed = std::strtoull(next().c_str(), nullptr, 10);
    } else if (a == "--expect-violation") {
      o.expect_violation = true;
    } else if (a == "--data-path") {
      o.clients.data_path = next();
      if (o.clients.data_path != "user" && o.clients.data_path != "kernel" &&
          o.clients.data_path != "auto") {
        hafab::faults::Usage();
        return 2;
      }
    } else if (a == "--keep-alive") {
      o.clients.keep_alive = true;
    } else {
      hafab::faults::Usage();
      return a == "--help" || a == "-h" ? 0 : 2;
    }
  }
  if (o.iterations <= 0) {
    hafab::faults::Usage();
    return 2;
  }
  return hafab::faults::Run(o);
}
