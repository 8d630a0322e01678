#include "cli/up_ha.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/port_free.h"

namespace hafab::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Free ports in 20000..31999: below the ephemeral range, where no outgoing connection
// takes them between now and the server's bind.
Result<std::vector<uint16_t>> PickPorts(size_t n) {
  std::vector<uint16_t> out;
  int next = static_cast<int>((::getpid() * 7919) % 12000);
  for (int tries = 0; tries < 12000 && out.size() < n; ++tries, ++next) {
    auto port = static_cast<uint16_t>(20000 + next % 12000);
    if (PortFree(port)) out.push_back(port);
  }
  if (out.size() < n) return Status::Unavailable("no free loopback port in 20000..31999");
  return out;
}

std::string Local(uint16_t port) { return "127.0.0.1:" + std::to_string(port); }

}  // namespace

std::string HaLayout::StoreUrl(int first) const {
  std::string url = "etcd://" + Local(etcd[static_cast<size_t>(first)].client_port);
  for (int i = 0; i < kReplicas; ++i) {
    if (i != first) url += "," + Local(etcd[static_cast<size_t>(i)].client_port);
  }
  return url;
}

std::string HaLayout::ControllerUrl(int i) const {
  return "http://" + Local(controllers[static_cast<size_t>(i)]);
}

std::string HaLayout::ControllerList() const {
  std::string list;
  for (int i = 0; i < kReplicas; ++i) list += (i ? "," : "") + ControllerUrl(i);
  return list;
}

std::vector<std::string> HaLayout::EtcdArgv(const std::string& binary, int i,
                                            const std::string& data_dir,
                                            const std::string& cluster_token) const {
  std::string initial;
  for (int m = 0; m < kReplicas; ++m) {
    initial += (m ? "," : "") + std::string("e") + std::to_string(m + 1) + "=http://" +
               Local(etcd[static_cast<size_t>(m)].peer_port);
  }
  const EtcdMember& e = etcd[static_cast<size_t>(i)];
  const std::string client = "http://" + Local(e.client_port);
  const std::string peer = "http://" + Local(e.peer_port);
  // With data from an earlier run etcd ignores the --initial-* flags and rejoins its cluster.
  // The controller commits an apply in one transaction: etcd's default 128 operations per
  // transaction (--max-txn-ops) refuse a manifest that places more than ~60 instances.
  return {binary,
          "--name=e" + std::to_string(i + 1),
          "--data-dir=" + data_dir,
          "--listen-client-urls=" + client,
          "--advertise-client-urls=" + client,
          "--listen-peer-urls=" + peer,
          "--initial-advertise-peer-urls=" + peer,
          "--initial-cluster=" + initial,
          "--initial-cluster-state=new",
          "--initial-cluster-token=" + cluster_token,
          "--heartbeat-interval=50",
          "--election-timeout=500",
          "--max-txn-ops=100000",
          "--max-request-bytes=33554432",
          "--logger=zap",
          "--log-outputs=stderr",
          "--log-level=warn"};
}

Result<HaLayout> LoadOrCreateHaLayout(const std::string& state_dir) {
  const std::string path = state_dir + "/ha.json";
  HaLayout l;
  if (std::ifstream in(path); in) {
    json j = json::parse(in, nullptr, false);
    try {
      for (const auto& e : j.at("etcd")) {
        l.etcd.push_back({e.at("client").get<uint16_t>(), e.at("peer").get<uint16_t>()});
      }
      for (const auto& c : j.at("controllers")) l.controllers.push_back(c.get<uint16_t>());
    } catch (const json::exception&) {
      l = {};
    }
    if (l.etcd.size() != HaLayout::kReplicas || l.controllers.size() != HaLayout::kReplicas) {
      return Status::InvalidArgument(path + ": not a `hafab up --ha` layout (want {\"etcd\": [{" +
                                     "\"client\": PORT, \"peer\": PORT} x3], \"controllers\": " +
                                     "[PORT x3]}); remove it to pick new ports");
    }
    return l;
  }
  HAFAB_ASSIGN_OR_RETURN(std::vector<uint16_t> ports, PickPorts(3 * HaLayout::kReplicas));
  json j = {{"etcd", json::array()}, {"controllers", json::array()}};
  for (int i = 0; i < HaLayout::kReplicas; ++i) {
    l.etcd.push_back({ports[static_cast<size_t>(2 * i)], ports[static_cast<size_t>(2 * i + 1)]});
    l.controllers.push_back(ports[static_cast<size_t>(2 * HaLayout::kReplicas + i)]);
    j["etcd"].push_back({{"client", l.etcd.back().client_port}, {"peer", l.etcd.back().peer_port}});
    j["controllers"].push_back(l.controllers.back());
  }
  std::ofstream(path + ".tmp") << j.dump(2) << "\n";
  std::error_code ec;
  fs::rename(path + ".tmp", path, ec);
  if (ec) return Status::Unavailable("cannot write " + path + ": " + ec.message());
  return l;
}

Result<std::string> FindEtcd() {
  if (const char* b = std::getenv("HAFAB_ETCD_BINARY"); b && *b) return std::string(b);
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "/usr/bin:/bin");
  for (std::string d; std::getline(dirs, d, ':');) {
    std::string candidate = (d.empty() ? "." : d) + "/etcd";
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return Status::NotFound(
      "--ha runs etcd, and there is no `etcd` on PATH (Debian: apt-get install etcd-server; "
      "scripts/setup.sh installs it) or in HAFAB_ETCD_BINARY");
}

}  // namespace hafab::cli
