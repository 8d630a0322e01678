// store_commit_bench: the latency of one Commit (a compare-guarded put of a 200-byte value,
// one writer, one commit at a time) on SQLite (WAL, synchronous=FULL), on a one-member
// etcd and on a three-member etcd, all on this machine over loopback, via store::Open.
//
//   store_commit_bench [--commits N] [--store URL]
// Without --store it starts its own etcd members (Debian's etcd-server) in a temp dir.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "core/clock.h"
#include "store/etcd_test_cluster.h"
#include "store/open.h"

namespace hafab::store {
namespace {

int Run(const std::string& name, const std::string& url, int commits) {
  auto opened = Open(url, RealClock());
  if (!opened.ok()) {
    std::fprintf(stderr, "%s: %s\n", name.c_str(), opened.status().ToString().c_str());
    return 1;
  }
  Store& store = **opened;
  std::string value(200, 'v');
  std::vector<double> micros;
  micros.reserve(commits);
  Clock& clock = RealClock();
  for (int i = -commits / 10; i < commits; ++i) {  // the first tenth warms up
    Txn txn;
    std::string key = "/bench/" + std::to_string(i + commits);
    txn.compares = {Compare::Missing(key)};
    txn.success = {Op::Put(key, value)};
    TimePoint start = clock.Now();
    auto r = store.Commit(txn);
    Duration took = clock.Now() - start;
    if (!r.ok() || !r->succeeded) {
      std::fprintf(stderr, "%s: commit %d failed: %s\n", name.c_str(), i,
                   r.ok() ? "compare failed" : r.status().ToString().c_str());
      return 1;
    }
    if (i >= 0) micros.push_back(std::chrono::duration<double, std::micro>(took).count());
  }
  std::sort(micros.begin(), micros.end());
  double sum = 0;
  for (double m : micros) sum += m;
  auto pct = [&](double p) {
    return micros[std::min(micros.size() - 1, static_cast<size_t>(p * micros.size()))];
  };
  std::printf("%-22s %7d %9.0f %9.0f %9.0f %9.0f %9.0f\n", name.c_str(), commits,
              sum / micros.size(), pct(0.5), pct(0.9), pct(0.99), micros.back());
  return 0;
}

int Main(int argc, char** argv) {
  int commits = 1000;
  std::string only_url;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--commits" && i + 1 < argc) {
      commits = std::atoi(argv[++i]);
    } else if (arg == "--store" && i + 1 < argc) {
      only_url = argv[++i];
    } else {
      std::fprintf(stderr, "usage: store_commit_bench [--commits N] [--store URL]\n");
      return 2;
    }
  }
  if (commits < 10) commits = 10;
  std::printf("%-22s %7s %9s %9s %9s %9s %9s\n", "store", "commits", "mean_us", "p50_us", "p90_us",
              "p99_us", "max_us");
  if (!only_url.empty()) return Run(only_url, only_url, commits);

  std::string dir = (std::filesystem::temp_directory_path() /
                     ("hafab-commit-bench-" + std::to_string(::getpid())))
                        .string();
  std::filesystem::create_directories(dir);
  int failed = Run("sqlite", "sqlite:" + dir + "/bench.db", commits);
  std::filesystem::remove_all(dir);
  for (int members : {1, 3}) {
    testing::EtcdTestCluster::Options options;
    options.members = members;
    auto cluster = testing::EtcdTestCluster::Start(options);
    if (!cluster.ok()) {
      std::fprintf(stderr, "etcd x%d: %s\n", members, cluster.status().ToString().c_str());
      return 1;
    }
    failed |= Run("etcd_" + std::to_string(members) + "_member" + (members > 1 ? "s" : ""),
                  (*cluster)->Url(), commits);
  }
  return failed;
}

}  // namespace
}  // namespace hafab::store

int main(int argc, char** argv) { return hafab::store::Main(argc, argv); }
