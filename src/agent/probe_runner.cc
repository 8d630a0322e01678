#include "agent/probe_runner.h"

#include <signal.h>
#include <sys/wait.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "agent/process_launcher.h"
#include "http/http.h"
#include "http/pool.h"

namespace hafab::agent {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

struct ProbeRunner::Probing : std::enable_shared_from_this<Probing> {
  Probing(asio::io_context& io, std::string address, ProbeTarget target, ProbeType type,
          manifest::Probe probe, ReportFn report)
      : io(io),
        timer(io),
        address(std::move(address)),
        target(std::move(target)),
        type(type),
        probe(std::move(probe)),
        report(std::move(report)),
        pool(io) {}

  void Schedule() {
    timer.expires_after(probe.interval);
    timer.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (ec || self->stopped) return;
      self->RunOnce();
    });
  }

  void Done(ProbeOutcome outcome) {
    if (stopped) return;
    report(target.instance, target.pid, type, outcome, RealClock().Now() - started);
    Schedule();
  }

  void RunOnce() {
    started = RealClock().Now();
    switch (probe.kind) {
      case manifest::ProbeKind::kTcp:
        return RunTcp();
      case manifest::ProbeKind::kHttp:
        return RunHttp();
      case manifest::ProbeKind::kExec:
        return RunExec();
    }
  }

  void RunTcp() {
    boost::system::error_code ec;
    auto ip = asio::ip::make_address(address, ec);
    if (ec) return Done(ProbeOutcome::kFailed);
    auto socket = std::make_shared<tcp::socket>(io);
    auto deadline = std::make_shared<asio::steady_timer>(io);
    auto finished = std::make_shared<bool>(false);
    deadline->expires_after(probe.timeout);
    deadline->async_wait([socket, finished](boost::system::error_code ec) {
      if (!ec && !*finished) {
        boost::system::error_code ignored;
        socket->close(ignored);
      }
    });
    socket->async_connect(
        tcp::endpoint(ip, static_cast<uint16_t>(target.port)),
        [self = shared_from_this(), socket, deadline, finished](boost::system::error_code ec) {
          *finished = true;
          deadline->cancel();
          boost::system::error_code ignored;
          socket->close(ignored);
          self->Done(ec ? ProbeOutcome::kFailed : ProbeOutcome::kOk);
        });
  }

  void RunHttp() {
    std::string path = probe.path.empty() || probe.path[0] != '/' ? "/" + probe.path : probe.path;
    std::string url = "http://" + address + ":" + std::to_string(target.port) + path;
    pool.Fetch("GET", url, "", {}, probe.timeout,
               [self = shared_from_this()](Result<http::Response> r) {
                 if (!r.ok()) return self->Done(ProbeOutcome::kFailed);
                 int s = r->status;
                 if (s >= 200 && s < 300) return self->Done(ProbeOutcome::kOk);
                 if (s == 503) return self->Done(ProbeOutcome::kBusy);
                 self->Done(ProbeOutcome::kFailed);
               });
  }

  void RunExec() {
    LaunchSpec spec;
    spec.argv = probe.command;
    if (target.env) spec.env = *target.env;
    auto pid = SpawnProcess(spec);
    if (!pid.ok()) return Done(ProbeOutcome::kFailed);
    exec_pid = *pid;
    exec_deadline = RealClock().Now() + probe.timeout;
    PollExec();
  }

  void PollExec() {
    int status = 0;
    pid_t r = waitpid(exec_pid, &status, WNOHANG);
    if (r == exec_pid) {
      exec_pid = 0;
      if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return Done(ProbeOutcome::kOk);
      if (WIFEXITED(status) && WEXITSTATUS(status) == 75) return Done(ProbeOutcome::kBusy);
      return Done(ProbeOutcome::kFailed);
    }
    if (r < 0 || RealClock().Now() >= exec_deadline || stopped) {
      KillExec();
      if (!stopped) Done(ProbeOutcome::kFailed);
      return;
    }
    timer.expires_after(std::chrono::milliseconds(10));
    timer.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (ec && self->stopped) {
        self->KillExec();
        return;
      }
      self->PollExec();
    });
  }

  void KillExec() {
    if (exec_pid <= 0) return;
    kill(-exec_pid, SIGKILL);
    int status;
    waitpid(exec_pid, &status, 0);  // SIGKILLed: returns at once
    exec_pid = 0;
  }

  void Stop() {
    stopped = true;
    timer.cancel();
    KillExec();
  }

  asio::io_context& io;
  asio::steady_timer timer;
  std::string address;
  ProbeTarget target;
  ProbeType type;
  manifest::Probe probe;
  ReportFn report;
  // http: the probe's connection is kept alive between probes (as Envoy's health checks do),
  // so an app whose listen queue a flood fills (the kernel drops new SYNs: the 1 s
  // retransmit is longer than any probe's timeout) is still asked and not taken for hung.
  // A request that times out closes its connection: a hung app is still seen.
  http::ConnectionPool pool;
  bool stopped = false;
  pid_t exec_pid = 0;
  TimePoint exec_deadline;
  TimePoint started;
};

ProbeRunner::ProbeRunner(asio::io_context& io, std::string address, ReportFn report)
    : io_(io), address_(std::move(address)), report_(std::move(report)) {}

ProbeRunner::~ProbeRunner() {
  for (auto& [key, p] : probing_) p->Stop();
}

void ProbeRunner::Sync(const std::vector<ProbeTarget>& targets) {
  std::map<Key, std::shared_ptr<Probing>> next;
  for (const ProbeTarget& t : targets) {
    for (ProbeType type : {ProbeType::kLiveness, ProbeType::kReadiness}) {
      const auto& probe = type == ProbeType::kLiveness ? t.liveness : t.readiness;
      if (!probe) continue;
      Key key{t.instance, t.pid, type};
      auto it = probing_.find(key);
      if (it != probing_.end()) {
        next[key] = it->second;
        probing_.erase(it);
        continue;
      }
      auto p = std::make_shared<Probing>(io_, address_, t, type, *probe, report_);
      p->Schedule();
      next[key] = p;
    }
  }
  for (auto& [key, p] : probing_) p->Stop();
  probing_ = std::move(next);
}

}  // namespace hafab::agent
