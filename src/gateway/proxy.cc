#include "gateway/proxy.h"

#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstring>

#include "gateway/kernel_splice.h"
#include "gateway/worker.h"

namespace hafab::gateway {

using internal::Listener;
using internal::PublishedEndpoint;
using internal::Snapshot;

struct Proxy::ListenerSet {
  std::vector<std::shared_ptr<Listener>> per_thread;
  uint16_t port = 0;
};

namespace {

// One SO_REUSEPORT socket per thread on the same address; the kernel spreads connections.
Result<std::vector<std::shared_ptr<Listener>>> OpenListeners(const SocketAddress& addr, int threads,
                                                             int backlog, uint16_t* bound_port) {
  SocketAddress a = addr;
  std::vector<std::shared_ptr<Listener>> out;
  for (int i = 0; i < threads; ++i) {
    int fd = socket(a.storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return Status::Unavailable(std::string("socket: ") + strerror(errno));
    auto l = std::make_shared<Listener>(fd);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (bind(fd, a.get(), a.length) != 0) {
      return Status::Unavailable("cannot bind " + a.ToString() + ": " + strerror(errno));
    }
    if (listen(fd, backlog) != 0) {
      return Status::Unavailable("cannot listen on " + a.ToString() + ": " + strerror(errno));
    }
    if (i == 0 && a.port() == 0) {  // port 0: the others join the port the kernel chose
      sockaddr_storage bound{};
      socklen_t len = sizeof bound;
      getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
      uint16_t port = bound.ss_family == AF_INET
                          ? reinterpret_cast<sockaddr_in*>(&bound)->sin_port
                          : reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port;
      if (a.storage.ss_family == AF_INET) {
        reinterpret_cast<sockaddr_in*>(&a.storage)->sin_port = port;
      } else {
        reinterpret_cast<sockaddr_in6*>(&a.storage)->sin6_port = port;
      }
    }
    out.push_back(std::move(l));
  }
  *bound_port = a.port();
  return out;
}

}  // namespace

const char* DataPathName(DataPath p) {
  switch (p) {
    case DataPath::kAuto:
      return "auto";
    case DataPath::kKernel:
      return "kernel";
    case DataPath::kUser:
      return "user";
  }
  return "?";
}

Result<DataPath> ParseDataPath(const std::string& text) {
  for (DataPath p : {DataPath::kAuto, DataPath::kKernel, DataPath::kUser}) {
    if (text == DataPathName(p)) return p;
  }
  return Status::InvalidArgument("data path \"" + text + "\": expected auto, kernel or user");
}

Proxy::Proxy(ProxyOptions options) : shared_(std::make_unique<internal::Shared>()) {
  shared_->options = options;
  shared_->clock = options.clock ? options.clock : &RealClock();
}

Result<std::unique_ptr<Proxy>> Proxy::Start(ProxyOptions options) {
  // Writes to a peer that has gone must come back as EPIPE, not kill the process.
  std::signal(SIGPIPE, SIG_IGN);
  int n = options.threads > 0 ? options.threads
                              : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  options.threads = n;
  std::unique_ptr<Proxy> p(new Proxy(options));
  if (options.data_path == DataPath::kUser) {
    spdlog::info("gateway: data path: user space (--data-path user)");
  } else {
    auto k = KernelSplice::Load();
    if (k.ok()) {
      p->kernel_ = std::move(k).value();
      p->shared_->kernel = p->kernel_.get();
      spdlog::info("gateway: data path: kernel (BPF sockhash, sk_skb stream verdict)");
    } else if (options.data_path == DataPath::kKernel) {
      return Status::Unavailable("--data-path kernel: " + k.status().message());
    } else {
      spdlog::warn("gateway: data path: user space, the kernel's is unavailable: {}",
                   k.status().message());
    }
  }
  p->stats_ = std::make_unique<StatsRegistry>(n, p->kernel_.get());
  size_t per_thread = 0;
  if (options.max_connections > 0) {
    per_thread = std::max<size_t>(1, (options.max_connections + n - 1) / n);
  }
  for (int i = 0; i < n; ++i) {
    auto w = std::make_unique<internal::Worker>(i, *p->shared_, per_thread);
    HAFAB_RETURN_IF_ERROR(w->Init());
    p->shared_->workers.push_back(w.get());
    p->workers_.push_back(std::move(w));
  }
  for (int i = 0; i < n; ++i) {
    internal::Worker* w = p->workers_[i].get();
    p->threads_.emplace_back([w] { w->Run(); });
  }
  return p;
}

Proxy::~Proxy() { Drain(Duration::zero()); }

void Proxy::WakeAll() {
  for (auto& w : workers_) w->Wake();
}

Status Proxy::Install(std::shared_ptr<const RouteTable> table) {
  HAFAB_CHECK(table != nullptr, "Proxy::Install needs a table");
  std::lock_guard lock(install_mu_);
  auto snap = std::make_shared<Snapshot>();
  snap->table = table;
  std::map<std::string, std::shared_ptr<ListenerSet>> next;
  std::string errors;
  const bool draining = shared_->draining.load();
  for (const auto& endpoint : table->endpoints()) {
    const Endpoint& ep = *endpoint;
    PublishedEndpoint pub;
    pub.endpoint = &ep;
    pub.stats = stats_->GetEndpoint(ep.role, ep.listen);
    for (const Backend& b : ep.backends) {
      pub.backend_stats.push_back(stats_->GetBackend(ep.role, b.instance, b.address.ToString()));
    }
    std::shared_ptr<ListenerSet> ls;
    if (auto it = listeners_.find(ep.listen); it != listeners_.end()) {
      ls = it->second;
    } else if (!draining) {
      ls = std::make_shared<ListenerSet>();
      auto opened =
          OpenListeners(ep.listen_address, threads(), shared_->options.listen_backlog, &ls->port);
      if (opened.ok()) {
        ls->per_thread = std::move(opened).value();
        spdlog::info("gateway: endpoint {} ({}) listening on port {}", ep.role,
                     RoutingModeName(ep.mode), ls->port);
      } else {
        errors += (errors.empty() ? "" : "; ") + ep.role + ": " + opened.status().message();
        ls = nullptr;
      }
    }
    if (ls) {
      next[ep.listen] = ls;
      pub.listeners = ls->per_thread;
    }
    snap->endpoints.push_back(std::move(pub));
  }
  listeners_ = std::move(next);
  table_ = table;
  shared_->snapshot.Store(std::move(snap));
  WakeAll();
  if (!errors.empty()) return Status::Unavailable(errors);
  return Status::Ok();
}

void Proxy::SetLeaseDeadline(TimePoint deadline) {
  const int64_t old = shared_->lease_deadline.exchange(internal::ToTicks(deadline));
  // Workers sleep until the deadline they last saw: an earlier one (or a lease regained,
  // which must release held connections now) needs a wake-up; a renewal does not.
  const TimePoint now = shared_->clock->Now();
  if (deadline < internal::FromTicks(old) || internal::FromTicks(old) <= now) WakeAll();
}

bool Proxy::LeaseValid() const {
  return shared_->clock->Now() < internal::FromTicks(shared_->lease_deadline.load());
}

uint64_t Proxy::RoutesVersion() const {
  uint64_t v = UINT64_MAX;
  for (const auto& w : workers_) v = std::min(v, w->applied_version());
  return workers_.empty() ? 0 : v;
}

std::shared_ptr<const RouteTable> Proxy::table() const {
  std::lock_guard lock(install_mu_);
  return table_;
}

std::optional<uint16_t> Proxy::BoundPort(const std::string& listen) const {
  std::lock_guard lock(install_mu_);
  auto it = listeners_.find(listen);
  if (it == listeners_.end()) return std::nullopt;
  return it->second->port;
}

uint64_t Proxy::ActiveConnections() const {
  uint64_t n = 0;
  for (const auto& w : workers_) n += w->active();
  return n;
}

void Proxy::Drain(Duration deadline) {
  std::call_once(drained_, [&] {
    shared_->drain_deadline.store(internal::ToTicks(shared_->clock->Now() + deadline));
    shared_->draining.store(true, std::memory_order_release);
    {
      // The listeners close once no snapshot holds them: publish one without any.
      std::lock_guard lock(install_mu_);
      listeners_.clear();
      if (auto cur = shared_->snapshot.Load()) {
        auto snap = std::make_shared<Snapshot>(*cur);
        for (auto& pub : snap->endpoints) pub.listeners.clear();
        shared_->snapshot.Store(std::move(snap));
      }
    }
    WakeAll();
    for (auto& t : threads_) t.join();
  });
}

}  // namespace hafab::gateway
