#include "gateway/stats.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "core/json.h"

namespace hafab::gateway {
namespace {

uint64_t Load(const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); }

std::string Escape(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

}  // namespace

EndpointStats::EndpointStats(std::string role, std::string listen, int threads, uint32_t counter,
                             const ByteCounterSource* kernel)
    : role_(std::move(role)),
      listen_(std::move(listen)),
      threads_(threads),
      counter_(counter),
      kernel_(kernel),
      slots_(new EndpointSlot[threads]) {}

EndpointTotals EndpointStats::Sum() const {
  EndpointTotals t;
  for (int i = 0; i < threads_; ++i) {
    const EndpointSlot& s = slots_[i];
    t.active += Load(s.active);
    t.total += Load(s.total);
    t.bytes_in += Load(s.bytes_in);
    t.bytes_out += Load(s.bytes_out);
    t.connect_errors += Load(s.connect_errors);
    t.acl_denied += Load(s.acl_denied);
    t.waits += Load(s.waits);
    t.wait_ns += Load(s.wait_ns);
    t.wait_timeouts += Load(s.wait_timeouts);
    t.fenced += Load(s.fenced);
    t.no_backend += Load(s.no_backend);
    t.idle_closed += Load(s.idle_closed);
    t.spliced += Load(s.spliced);
    t.spliced_paused += Load(s.spliced_paused);
    t.spliced_reset += Load(s.spliced_reset);
  }
  if (kernel_) kernel_->Add(counter_, &t.bytes_in, &t.bytes_out);
  return t;
}

BackendStats::BackendStats(std::string instance, std::string address, int threads, uint32_t counter,
                           const ByteCounterSource* kernel)
    : instance_(std::move(instance)),
      address_(std::move(address)),
      threads_(threads),
      counter_(counter),
      kernel_(kernel),
      slots_(new BackendSlot[threads]) {}

uint64_t BackendStats::Active() const {
  uint64_t n = 0;
  for (int i = 0; i < threads_; ++i) n += Load(slots_[i].active);
  return n;
}

BackendTotals BackendStats::Sum() const {
  BackendTotals t;
  for (int i = 0; i < threads_; ++i) {
    const BackendSlot& s = slots_[i];
    t.active += Load(s.active);
    t.total += Load(s.total);
    t.bytes_in += Load(s.bytes_in);
    t.bytes_out += Load(s.bytes_out);
    t.connect_errors += Load(s.connect_errors);
    t.fenced += Load(s.fenced);
  }
  if (kernel_) kernel_->Add(counter_, &t.bytes_in, &t.bytes_out);
  return t;
}

std::shared_ptr<EndpointStats> StatsRegistry::GetEndpoint(const std::string& role,
                                                          const std::string& listen) {
  std::lock_guard lock(mu_);
  auto& e = endpoints_[role];
  if (!e) e = std::make_shared<EndpointStats>(role, listen, threads_, next_counter_++, kernel_);
  return e;
}

std::shared_ptr<BackendStats> StatsRegistry::GetBackend(const std::string& role,
                                                        const std::string& instance,
                                                        const std::string& address) {
  std::lock_guard lock(mu_);
  auto& b = backends_[{role, instance + " " + address}];
  if (!b) b = std::make_shared<BackendStats>(instance, address, threads_, next_counter_++, kernel_);
  return b;
}

EndpointTotals StatsRegistry::Endpoint(const std::string& role) const {
  std::lock_guard lock(mu_);
  auto it = endpoints_.find(role);
  return it == endpoints_.end() ? EndpointTotals{} : it->second->Sum();
}

std::map<std::string, uint64_t> StatsRegistry::ActiveByInstance() const {
  std::lock_guard lock(mu_);
  std::map<std::string, uint64_t> out;
  for (const auto& [key, b] : backends_) {
    uint64_t n = b->Active();
    if (n > 0) out[b->instance()] += n;
  }
  return out;
}

BackendTotals StatsRegistry::Backend(const std::string& role, const std::string& instance) const {
  std::lock_guard lock(mu_);
  BackendTotals sum;
  for (const auto& [key, b] : backends_) {
    if (key.first != role || b->instance() != instance) continue;
    BackendTotals t = b->Sum();
    sum.active += t.active;
    sum.total += t.total;
    sum.bytes_in += t.bytes_in;
    sum.bytes_out += t.bytes_out;
    sum.connect_errors += t.connect_errors;
    sum.fenced += t.fenced;
  }
  return sum;
}

std::string StatsRegistry::RenderPrometheus(const std::string& extra) const {
  std::lock_guard lock(mu_);
  std::string out;
  struct Metric {
    const char* name;
    const char* type;
    const char* help;
    uint64_t EndpointTotals::*field;
  };
  static const Metric kEndpoint[] = {
      {"connections_active", "gauge", "Client connections open now", &EndpointTotals::active},
      {"connections_total", "counter", "Client connections accepted", &EndpointTotals::total},
      {"bytes_in_total", "counter", "Bytes from clients to backends", &EndpointTotals::bytes_in},
      {"bytes_out_total", "counter", "Bytes from backends to clients", &EndpointTotals::bytes_out},
      {"connect_errors_total", "counter", "Backend connects that failed",
       &EndpointTotals::connect_errors},
      {"acl_denied_total", "counter", "Connections refused by the ACL",
       &EndpointTotals::acl_denied},
      {"primary_waits_total", "counter", "Connections that waited for a primary",
       &EndpointTotals::waits},
      {"primary_wait_timeouts_total", "counter", "Waits for a primary that timed out",
       &EndpointTotals::wait_timeouts},
      {"fenced_total", "counter", "Connections closed by an epoch change or lease loss",
       &EndpointTotals::fenced},
      {"no_backend_total", "counter", "Connections closed for want of a backend",
       &EndpointTotals::no_backend},
      {"idle_closed_total", "counter", "Connections closed by the idle timeout",
       &EndpointTotals::idle_closed},
      {"spliced_total", "counter", "Connections whose bytes the kernel moved (BPF sockmap)",
       &EndpointTotals::spliced},
      {"spliced_paused_total", "counter",
       "Directions of spliced connections moved back to user space: the destination read "
       "too slowly and the kernel had 1 MiB queued for it",
       &EndpointTotals::spliced_paused},
      {"spliced_reset_total", "counter",
       "Spliced connections reset because the kernel showed a paused socket's bytes twice",
       &EndpointTotals::spliced_reset},
  };
  std::map<std::string, EndpointTotals> sums;
  for (const auto& [role, e] : endpoints_) sums[role] = e->Sum();
  for (const auto& m : kEndpoint) {
    out += fmt::format("# HELP hafab_gateway_{} {}\n# TYPE hafab_gateway_{} {}\n", m.name, m.help,
                       m.name, m.type);
    for (const auto& [role, t] : sums) {
      out += fmt::format("hafab_gateway_{}{{endpoint=\"{}\",listen=\"{}\"}} {}\n", m.name,
                         Escape(role), Escape(endpoints_.at(role)->listen()), t.*m.field);
    }
  }
  out +=
      "# HELP hafab_gateway_primary_wait_seconds_total Time connections spent waiting for a "
      "primary\n# TYPE hafab_gateway_primary_wait_seconds_total counter\n";
  for (const auto& [role, t] : sums) {
    out += fmt::format("hafab_gateway_primary_wait_seconds_total{{endpoint=\"{}\"}} {:.6f}\n",
                       Escape(role), t.wait_ns / 1e9);
  }
  struct BMetric {
    const char* name;
    const char* type;
    const char* help;
    uint64_t BackendTotals::*field;
  };
  static const BMetric kBackend[] = {
      {"backend_connections_active", "gauge", "Connections open to the backend now",
       &BackendTotals::active},
      {"backend_connections_total", "counter", "Connections made to the backend",
       &BackendTotals::total},
      {"backend_bytes_in_total", "counter", "Bytes from clients to the backend",
       &BackendTotals::bytes_in},
      {"backend_bytes_out_total", "counter", "Bytes from the backend to clients",
       &BackendTotals::bytes_out},
      {"backend_connect_errors_total", "counter", "Connects to the backend that failed",
       &BackendTotals::connect_errors},
      {"backend_fenced_total", "counter",
       "Connections to the backend closed by an epoch change or lease loss",
       &BackendTotals::fenced},
  };
  std::vector<std::pair<const std::pair<std::string, std::string>*, BackendTotals>> bsums;
  for (const auto& [key, b] : backends_) bsums.emplace_back(&key, b->Sum());
  for (const auto& m : kBackend) {
    out += fmt::format("# HELP hafab_gateway_{} {}\n# TYPE hafab_gateway_{} {}\n", m.name, m.help,
                       m.name, m.type);
    for (const auto& [key, t] : bsums) {
      const auto& b = backends_.at(*key);
      out += fmt::format("hafab_gateway_{}{{endpoint=\"{}\",backend=\"{}\",address=\"{}\"}} {}\n",
                         m.name, Escape(key->first), Escape(b->instance()), Escape(b->address()),
                         t.*m.field);
    }
  }
  out += extra;
  return out;
}

std::string StatsRegistry::RenderJson() const {
  std::lock_guard lock(mu_);
  nlohmann::json eps = nlohmann::json::array();
  for (const auto& [role, e] : endpoints_) {
    EndpointTotals t = e->Sum();
    nlohmann::json j = {{"role", role},
                        {"listen", e->listen()},
                        {"active", t.active},
                        {"total", t.total},
                        {"bytes_in", t.bytes_in},
                        {"bytes_out", t.bytes_out},
                        {"connect_errors", t.connect_errors},
                        {"acl_denied", t.acl_denied},
                        {"primary_waits", t.waits},
                        {"primary_wait_ms", t.wait_ns / 1000000},
                        {"primary_wait_timeouts", t.wait_timeouts},
                        {"fenced", t.fenced},
                        {"no_backend", t.no_backend},
                        {"idle_closed", t.idle_closed},
                        {"spliced", t.spliced},
                        {"spliced_paused", t.spliced_paused},
                        {"spliced_reset", t.spliced_reset},
                        {"backends", nlohmann::json::array()}};
    for (const auto& [key, b] : backends_) {
      if (key.first != role) continue;
      BackendTotals bt = b->Sum();
      j["backends"].push_back({{"instance", b->instance()},
                               {"address", b->address()},
                               {"active", bt.active},
                               {"total", bt.total},
                               {"bytes_in", bt.bytes_in},
                               {"bytes_out", bt.bytes_out},
                               {"connect_errors", bt.connect_errors},
                               {"fenced", bt.fenced}});
    }
    eps.push_back(std::move(j));
  }
  return Dump(nlohmann::json{{"endpoints", eps}});
}

}  // namespace hafab::gateway
