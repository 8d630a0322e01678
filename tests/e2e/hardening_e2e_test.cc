// End-to-end hardening (issue 21): `hafab up` as shipped (default lease) under traffic from
// someone without a credential. A flood of idle connections to the controller or the
// gateway's /metrics expires no lease, nor does a SYN burst beyond the listen backlog; a
// 10 MB apply stalls nothing; instances listen only on their node's address, so the
// gateway's allow: list cannot be bypassed.
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "http/http.h"
#include "tests/e2e/cluster.h"

namespace hafab::e2e {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  std::string text = s.str();
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

// Events of `type` the controller has recorded so far.
int CountEvents(Cluster& c, const std::string& type) {
  auto events = c.Api("GET", "/v1/events?after=0");
  if (!events.ok()) return -1;
  int n = 0;
  for (const auto& e : events->value("events", json::array())) n += e.value("type", "") == type;
  return n;
}

int CountOps(Cluster& c, const std::string& kind) {
  auto ops = c.Api("GET", "/v1/ops");
  if (!ops.ok()) return -1;
  int n = 0;
  for (const auto& op : ops->value("operations", json::array())) n += op.value("kind", "") == kind;
  return n;
}

// "http://127.0.0.1:PORT" -> PORT.
uint16_t PortOf(const std::string& address) {
  return static_cast<uint16_t>(std::stoi(address.substr(address.rfind(':') + 1)));
}

// `n` TCP connections to 127.0.0.1:port that never send a byte, held by child processes
// (each has its own descriptor limit) until Release().
class Flood {
 public:
  // `batch`: handshakes each process starts before waiting for them to settle; above the
  // listen backlog (4096) the kernel drops SYNs, its own peers' included.
  Flood(uint16_t port, int n, int processes = 4, int batch = 500) {
    for (int p = 0; p < processes; ++p) {
      int up[2], down[2];  // child -> test: connected count; test -> child: close = release
      if (pipe(up) != 0 || pipe(down) != 0) return;
      pid_t pid = fork();
      if (pid == 0) {
        close(up[0]);
        close(down[1]);
        for (const Child& c : children_) {  // the other children's pipes: theirs to close
          close(c.up);
          close(c.down);
        }
        std::vector<int> fds = Open(port, n / processes, batch);
        std::string count =
            std::to_string(fds.size()) + " " + std::to_string(Connected(fds)) + "\n";
        (void)!write(up[1], count.data(), count.size());
        char byte;
        (void)!read(down[0], &byte, 1);  // until the test releases us
        _exit(0);
      }
      close(up[1]);
      close(down[0]);
      children_.push_back({pid, up[0], down[1]});
    }
  }
  ~Flood() { Release(); }

  // Waits for every child's report: {sockets opened, connections established}.
  std::pair<int, int> Counts() {
    int opened = 0, connected = 0;
    for (auto& c : children_) {
      std::string text;
      char buf[64];
      ssize_t got;
      while ((got = read(c.up, buf, sizeof buf)) > 0) {
        text.append(buf, static_cast<size_t>(got));
        if (text.find('\n') != std::string::npos) break;
      }
      std::istringstream in(text);
      int o = 0, k = 0;
      in >> o >> k;
      opened += o;
      connected += k;
    }
    return {opened, connected};
  }

  void Release() {
    for (auto& c : children_) {
      close(c.down);
      close(c.up);
      int status;
      waitpid(c.pid, &status, 0);
    }
    children_.clear();
  }

 private:
  struct Child {
    pid_t pid;
    int up, down;
  };

  // Opens `n` connections in batches, each waited for (established or failed, 3 s at most)
  // before the next: with small batches a flood of idle connections that builds up as fast
  // as the listener accepts them; with batches beyond the kernel's listen backlog (4096
  // here) a SYN burst, which drops new connections' SYNs until their 1 s retransmission.
  static std::vector<int> Open(uint16_t port, int n, int batch) {
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    std::vector<int> fds;
    while (static_cast<int>(fds.size()) < n) {
      std::vector<pollfd> pending;
      for (int i = 0; i < batch && static_cast<int>(fds.size()) < n; ++i) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) return fds;
        connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to);  // EINPROGRESS
        fds.push_back(fd);
        pending.push_back({fd, POLLOUT, 0});
      }
      const auto deadline = std::chrono::steady_clock::now() + 3s;
      while (std::chrono::steady_clock::now() < deadline) {
        for (auto& p : pending) p.revents = 0;
        poll(pending.data(), pending.size(), 50);
        bool settled = true;
        for (auto& p : pending) {
          if (p.revents != 0) p.fd = -p.fd - 1;  // settled: poll skips negative descriptors
          settled = settled && p.fd < 0;
        }
        if (settled) break;
      }
    }
    return fds;
  }

  // How many of `fds` completed their connection.
  static int Connected(const std::vector<int>& fds) {
    int n = 0;
    for (int fd : fds) {
      pollfd p{fd, POLLOUT, 0};
      if (poll(&p, 1, 0) == 1 && (p.revents & POLLOUT)) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        n += err == 0;
      }
    }
    return n;
  }

  std::vector<Child> children_;
};

// While 20 000 idle connections are open to `port`, /v1/status answers within 1 s, and after
// a few leases no node went down and nothing failed over. At least `min_connected` of them
// must have been established (the flood reached the listener).
void ExpectFloodHarmless(Cluster& c, uint16_t port, int min_connected = 15000) {
  int down_before = CountEvents(c, "node-down");
  int failovers_before = CountOps(c, "failover");
  ASSERT_GE(down_before, 0);
  auto start = std::chrono::steady_clock::now();
  Flood flood(port, 20000);
  // Held for several leases (1 s), asking for the status all along.
  Duration slowest{};
  while (std::chrono::steady_clock::now() - start < 6s) {
    auto t0 = std::chrono::steady_clock::now();
    auto st = c.Api("GET", "/v1/status");
    Duration took = std::chrono::steady_clock::now() - t0;
    slowest = std::max(slowest, took);
    EXPECT_TRUE(st.ok()) << st.status().ToString();
    std::this_thread::sleep_for(100ms);  // pacing the probe, not waiting for a condition
  }
  auto [opened, connected] = flood.Counts();
  flood.Release();
  EXPECT_EQ(opened, 20000);
  EXPECT_GE(connected, min_connected) << "the flood did not reach the listener";
  std::printf("flood on port %u: %d of %d connected; slowest status %lld ms\n", port, connected,
              opened,
              static_cast<long long>(
                  std::chrono::duration_cast<std::chrono::milliseconds>(slowest).count()));
  // Issue 21's target. Measured 11-301 ms on each listener (bench/RESULTS.md). A SYN the
  // full listen queue dropped cost the kernel's 1 s retransmission (1.09-1.27 s, with
  // ListenDrops counted); the client now sends another after 250 ms: 424-784 ms at load 7-12.
  EXPECT_LT(slowest, 1s) << "status took "
                         << std::chrono::duration_cast<std::chrono::milliseconds>(slowest).count()
                         << " ms during the flood";
  EXPECT_EQ(CountEvents(c, "node-down"), down_before);
  EXPECT_EQ(CountOps(c, "failover"), failovers_before);
}

// The longest any node went without a heartbeat the controller received, sampled from
// /v1/status every 100 ms for `how_long`.
int64_t LongestHeartbeatGapMs(Cluster& c, Duration how_long) {
  int64_t longest = 0;
  const auto start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - start < how_long) {
    auto st = c.Api("GET", "/v1/status");
    if (st.ok()) {
      for (const auto& n : st->value("nodes", json::array())) {
        if (n.contains("last_heartbeat_ms_ago") && n["last_heartbeat_ms_ago"].is_number()) {
          longest = std::max(longest, n["last_heartbeat_ms_ago"].get<int64_t>());
        }
      }
    }
    std::this_thread::sleep_for(100ms);  // pacing the samples, not waiting for a condition
  }
  return longest;
}

ClusterOptions AsShipped() {
  ClusterOptions o;
  o.lease_ttl = "";  // the default lease, as the quickstart runs
  return o;
}

TEST(HardeningTest, ConnectionFloodToTheControllerExpiresNoLease) {
  Cluster c(AsShipped());
  Status started = c.Start();
  ASSERT_TRUE(started.ok()) << started.ToString();
  std::string api = ReadFile(c.state_dir() + "/api.url");
  ASSERT_FALSE(api.empty());
  ExpectFloodHarmless(c, PortOf(api));
  EXPECT_TRUE(c.Stop().ok());
}

// 20 000 handshakes at once, far beyond the listen backlog: the kernel drops SYNs, which
// delayed every agent's per-heartbeat connection by a 1 s retransmit. Agents and gateways
// keep their connections alive (http/pool.h), so heartbeats keep their 200 ms period.
TEST(HardeningTest, SynBurstBeyondTheBacklogDelaysNoHeartbeat) {
  Cluster c(AsShipped());
  Status started = c.Start();
  ASSERT_TRUE(started.ok()) << started.ToString();
  std::string api = ReadFile(c.state_dir() + "/api.url");
  ASSERT_FALSE(api.empty());
  const int down_before = CountEvents(c, "node-down");
  const int failovers_before = CountOps(c, "failover");
  const int64_t quiet_gap = LongestHeartbeatGapMs(c, 1s);
  int64_t flood_gap = 0;
  {
    Flood flood(PortOf(api), 20000, 4, 5000);
    flood_gap = LongestHeartbeatGapMs(c, 5s);
    auto [opened, connected] = flood.Counts();
    EXPECT_EQ(opened, 20000);
    EXPECT_GE(connected, 15000) << "the burst did not reach the listener";
  }
  std::printf("longest heartbeat gap: %lld ms quiet, %lld ms during the SYN burst\n",
              static_cast<long long>(quiet_gap), static_cast<long long>(flood_gap));
  EXPECT_LT(flood_gap, 600) << "heartbeats stalled during the burst (period 200 ms)";
  EXPECT_EQ(CountEvents(c, "node-down"), down_before);
  EXPECT_EQ(CountOps(c, "failover"), failovers_before);
  EXPECT_TRUE(c.Stop().ok());
}

TEST(HardeningTest, ConnectionFloodToTheGatewayMetricsExpiresNoLease) {
  Cluster c(AsShipped());
  Status started = c.Start();
  ASSERT_TRUE(started.ok()) << started.ToString();
  std::string metrics = ReadFile(c.state_dir() + "/gateway.addr");
  ASSERT_FALSE(metrics.empty()) << "no gateway.addr in " << c.state_dir();
  ExpectFloodHarmless(c, PortOf(metrics));
  // The gateway still serves its own counters.
  auto r = http::Fetch("GET", "http://" + metrics + "/healthz", "", {}, 2s);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(c.Stop().ok());
}

// An endpoint's listener is open to anyone its allow: list admits. 20 000 idle connections
// to kvd's (active-passive) endpoint: the gateway accepts up to its limit (half its
// open-file limit; the rest wait in the kernel's queue, or back off on EMFILE without
// spinning), kvd sheds the idle connections it is handed, and neither the gateway's lease
// nor kvd's primary is lost.
TEST(HardeningTest, ConnectionFloodToAGatewayEndpointExpiresNoLease) {
  Cluster c(AsShipped());
  Status started = c.Start();
  ASSERT_TRUE(started.ok()) << started.ToString();
  const std::string primary_before = c.KvdPrimary().first;
  ASSERT_FALSE(primary_before.empty());
  // Fewer are established: beyond the gateway's limit and its listeners' backlogs the kernel
  // drops SYNs.
  ExpectFloodHarmless(c, PortOf(c.kvd_url()), 5000);
  EXPECT_EQ(c.KvdPrimary().first, primary_before);
  // The endpoint serves again.
  Status served = c.WaitFor(
      "kvd through the gateway",
      [&] {
        auto r = http::Fetch("GET", c.kvd_url() + "/health", "", {}, 1s);
        return r.ok() && r->status == 200;
      },
      10s);
  EXPECT_TRUE(served.ok()) << served.ToString();
  EXPECT_TRUE(c.Stop().ok());
}

// Three 10 MB applies (with and without the token) used to hold the controller's thread for
// over a second each: every node was declared down. Now they are refused from their header.
TEST(HardeningTest, HugeApplyIsRefusedWithoutStallingTheController) {
  Cluster c(AsShipped());
  Status started = c.Start();
  ASSERT_TRUE(started.ok()) << started.ToString();
  int down_before = CountEvents(c, "node-down");
  std::string api = ReadFile(c.state_dir() + "/api.url");
  std::string token = ReadFile(c.state_dir() + "/admin.token");
  std::string huge = "roles:\n";
  for (int i = 0; huge.size() < (10u << 20); ++i) {
    huge += "  - {name: r" + std::to_string(i) + ", command: x}\n";
  }
  for (const http::Headers& headers : {http::Headers{{"Authorization", "Bearer " + token}},
                                       http::Headers{}, http::Headers{{"Authorization", "x"}}}) {
    auto t0 = std::chrono::steady_clock::now();
    auto r = http::Fetch("POST", api + "/v1/apply", huge, headers, 10s);
    Duration took = std::chrono::steady_clock::now() - t0;
    // The server answers from the header and closes; a client still sending may see a reset.
    if (r.ok()) {
      EXPECT_TRUE(r->status == 413 || r->status == 401) << r->status << r->body;
    }
    EXPECT_LT(took, 2s);
  }
  // A lease and a half later no node is down.
  auto until = std::chrono::steady_clock::now() + 1500ms;
  while (std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(50ms);
  EXPECT_EQ(CountEvents(c, "node-down"), down_before);
  auto st = c.Api("GET", "/v1/roles");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->value("roles", json::array()).size(), 2u);  // kvd and echo, untouched
  EXPECT_TRUE(c.Stop().ok());
}

// "127.0.0.1:8080" style local addresses of `pid`'s listening TCP sockets (IPv4).
std::vector<std::string> ListeningAddresses(pid_t pid) {
  std::set<std::string> inodes;
  std::string fd_dir = "/proc/" + std::to_string(pid) + "/fd";
  if (DIR* d = opendir(fd_dir.c_str())) {
    while (dirent* e = readdir(d)) {
      char target[256];
      ssize_t n = readlink((fd_dir + "/" + e->d_name).c_str(), target, sizeof target - 1);
      if (n <= 0) continue;
      std::string t(target, static_cast<size_t>(n));
      if (t.rfind("socket:[", 0) == 0) inodes.insert(t.substr(8, t.size() - 9));
    }
    closedir(d);
  }
  std::vector<std::string> out;
  std::ifstream tcp("/proc/net/tcp");
  std::string line;
  std::getline(tcp, line);  // header
  while (std::getline(tcp, line)) {
    std::istringstream in(line);
    std::string slot, local, remote, state, queues, timer, retr, uid, timeout, inode;
    in >> slot >> local >> remote >> state >> queues >> timer >> retr >> uid >> timeout >> inode;
    if (state != "0A" || !inodes.count(inode)) continue;  // 0A: LISTEN
    uint32_t addr = static_cast<uint32_t>(std::stoul(local.substr(0, 8), nullptr, 16));
    int port = std::stoi(local.substr(9), nullptr, 16);
    in_addr a{};
    a.s_addr = addr;  // /proc prints the address in host order of the raw bytes
    out.push_back(std::string(inet_ntoa(a)) + ":" + std::to_string(port));
  }
  return out;
}

// The machine's first IPv4 address that is not loopback, "" if it has none.
std::string NonLoopbackAddress() {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return "";
  std::string out;
  for (ifaddrs* i = list; i != nullptr && out.empty(); i = i->ifa_next) {
    if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_INET) continue;
    auto* sin = reinterpret_cast<sockaddr_in*>(i->ifa_addr);
    if ((ntohl(sin->sin_addr.s_addr) >> 24) == 127) continue;
    out = inet_ntoa(sin->sin_addr);
  }
  freeifaddrs(list);
  return out;
}

TEST(HardeningTest, InstancesListenOnlyOnTheirNodesAddress) {
  Cluster c(AsShipped());
  Status started = c.Start();
  ASSERT_TRUE(started.ok()) << started.ToString();
  auto st = c.Api("GET", "/v1/status");
  ASSERT_TRUE(st.ok());
  int checked = 0;
  for (const auto& i : st->value("instances", json::array())) {
    pid_t pid = i.value("pid", 0);
    if (pid <= 0 || i.value("state", "") != "running") continue;
    std::string env = ReadFile("/proc/" + std::to_string(pid) + "/environ");
    EXPECT_NE(env.find(std::string("HAFAB_HOST=127.0.0.1") + '\0'), std::string::npos)
        << i.value("instance", "");
    for (const std::string& address : ListeningAddresses(pid)) {
      EXPECT_EQ(address.rfind("127.0.0.1:", 0), 0u)
          << i.value("instance", "") << " listens on " << address;
      ++checked;
      std::string outside = NonLoopbackAddress();
      if (outside.empty()) continue;
      auto r = http::Fetch("GET", "http://" + outside + ":" + address.substr(10) + "/health", "",
                           {}, 2s);
      EXPECT_FALSE(r.ok()) << i.value("instance", "") << " answers on " << outside;
    }
  }
  EXPECT_GE(checked, 1) << "no running instance with a listening socket was found";
  EXPECT_TRUE(c.Stop().ok());
}

// What hafab writes is private to its user (the binary runs with umask 077): the state
// store, the logs, the volumes and the instances' files were world-readable.
TEST(HardeningTest, StateFilesArePrivate) {
  Cluster c(AsShipped());
  Status started = c.Start();
  ASSERT_TRUE(started.ok()) << started.ToString();
  int checked = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(c.state_dir())) {
    struct stat st {};
    if (lstat(entry.path().c_str(), &st) != 0 || S_ISSOCK(st.st_mode) || S_ISLNK(st.st_mode)) {
      continue;
    }
    EXPECT_EQ(st.st_mode & 077, 0u)
        << entry.path() << " has mode " << std::oct << (st.st_mode & 0777);
    ++checked;
  }
  EXPECT_GE(checked, 10);  // controller.db, tokens, logs, volumes, the nodes' directories
  EXPECT_TRUE(c.Stop().ok());
}

}  // namespace
}  // namespace hafab::e2e
