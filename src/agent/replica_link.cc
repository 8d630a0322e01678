#include "agent/replica_link.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstring>
#include <nlohmann/json.hpp>

#include "agent/process_launcher.h"
#include "core/json.h"
#include "http/http.h"

namespace hafab::agent {

namespace asio = boost::asio;
using nlohmann::json;

namespace {

constexpr char kPath[] = "/hafab/v1/replica";
constexpr size_t kMaxAnswer = 64 * 1024;
constexpr Duration kBecomingInterval = std::chrono::milliseconds(20);

Result<wire::ReplicaStatus> ParseStatus(const std::string& what, const std::string& body) {
  auto j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::Unavailable(what + ": the answer is not JSON");
  auto status = wire::ParseReplicaStatus(j);
  if (!status.ok()) return Status::Unavailable(what + ": " + status.status().message());
  return status;
}

// The hook's answer: what it printed on stdout once it exited 0.
class HookRun : public std::enable_shared_from_this<HookRun> {
 public:
  using Done = std::function<void(Result<std::string>)>;

  HookRun(asio::io_context& io, Duration timeout, Done done)
      : timer_(io), out_(io), timeout_(timeout), done_(std::move(done)) {}

  // Runs `spec` (its argv set), its stdout read through a pipe.
  void Start(LaunchSpec spec) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return Finish(Status::Internal("pipe failed"));
    spec.stdout_fd = fds[1];
    auto pid = SpawnProcess(spec);  // its own process group: killed as one on timeout
    close(fds[1]);
    if (!pid.ok()) {
      close(fds[0]);
      return Finish(Status::Unavailable(pid.status().message()));
    }
    pid_ = *pid;
    out_.assign(fds[0]);
    deadline_ = RealClock().Now() + timeout_;
    Read();
    Wait();
  }

  // Kills the hook's process group; no answer is given.
  void Cancel() {
    KillGroup();
    finished_ = true;
    done_ = nullptr;
    timer_.cancel();
    boost::system::error_code ignored;
    out_.close(ignored);
  }

 private:
  void KillGroup() {
    if (pid_ <= 0) return;
    kill(-pid_, SIGKILL);
    int status;
    waitpid(pid_, &status, 0);
    pid_ = 0;
  }

  void Read() {
    out_.async_read_some(asio::buffer(buf_),
                         [self = shared_from_this()](boost::system::error_code ec, size_t n) {
                           if (ec) {
                             self->eof_ = true;
                             return self->Check();
                           }
                           if (self->text_.size() + n <= kMaxAnswer)
                             self->text_.append(self->buf_, n);
                           self->Read();
                         });
  }

  // Polls for the exit (the agent reaps its own children elsewhere only by pid).
  void Wait() {
    timer_.expires_after(std::chrono::milliseconds(10));
    timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (ec) return;
      self->Check();
    });
  }

  void Check() {
    if (finished_) return;
    if (pid_ > 0) {
      int status = 0;
      pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        pid_ = 0;
        exit_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      } else if (r < 0 || RealClock().Now() >= deadline_) {
        KillGroup();
        return Finish(
            Status::DeadlineExceeded("no answer within " + std::to_string(ToMs(timeout_)) + " ms"));
      } else {
        return Wait();
      }
    }
    if (!eof_) return;  // the rest of stdout is on its way
    if (exit_ != 0) return Finish(Status::Unavailable("exited " + std::to_string(exit_)));
    Finish(text_);
  }

  void Finish(Result<std::string> r) {
    if (finished_) return;
    finished_ = true;
    timer_.cancel();
    boost::system::error_code ignored;
    out_.close(ignored);
    // Released before it runs: it holds the link that holds this run.
    Done done = std::exchange(done_, nullptr);
    done(std::move(r));
  }

  asio::steady_timer timer_;
  asio::posix::stream_descriptor out_;
  Duration timeout_;
  Done done_;
  pid_t pid_ = 0;
  TimePoint deadline_{};
  char buf_[4096];
  std::string text_;
  bool eof_ = false;
  int exit_ = 0;
  bool finished_ = false;
};

}  // namespace

struct ReplicaLink::Linked : std::enable_shared_from_this<Linked> {
  Linked(asio::io_context& io, std::string address, ReplicaTarget target, Duration interval,
         Duration timeout, ReportFn report)
      : io(io),
        timer(io),
        address(std::move(address)),
        target(std::move(target)),
        interval(interval),
        timeout(timeout),
        report(std::move(report)) {}

  void Schedule(Duration after) {
    if (stopped || busy) return;  // a call in flight schedules the next when it ends
    timer.expires_after(after);
    timer.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (ec || self->stopped) return;
      self->Run();
    });
  }

  // One call: the configuration when the replica has not accepted this one, else its status.
  void Run() {
    busy = true;
    const bool configure = accepted != target.config;
    configuring = configure;
    const uint64_t id = ++calls;
    const wire::ReplicaConfig sent = target.config;
    const std::string what =
        (target.hook.empty() ? std::string(configure ? "PUT " : "GET ") + kPath
                             : target.hook + (configure ? " configure" : " status")) +
        " (epoch " + std::to_string(sent.epoch) + ")";
    auto done = [self = shared_from_this(), configure, sent, what, id](Result<std::string> answer,
                                                                       int http_status) {
      if (id != self->calls) return;  // a status call given up for a new configuration
      self->busy = false;
      if (self->stopped) return;
      Result<wire::ReplicaStatus> status =
          !answer.ok() ? Result<wire::ReplicaStatus>(
                             Status::Unavailable(what + ": " + answer.status().message()))
          : http_status == 409 ? Result<wire::ReplicaStatus>(Status::Conflict(
                                     what + ": refused as older than what it has: " + *answer))
          : http_status != 200
              ? Result<wire::ReplicaStatus>(Status::Unavailable(
                    what + ": HTTP " + std::to_string(http_status) + ": " + *answer))
              : ParseStatus(what, *answer);
      if (status.ok() && configure) self->accepted = sent;
      // A newer configuration that arrived during the call goes at once; a replica that is not
      // yet what its configuration says (a promotion under way) is asked again soon, so that
      // the controller routes to it as soon as it serves.
      const bool becoming = status.ok() && (status->role != self->target.config.role ||
                                            status->epoch != self->target.config.epoch);
      self->report(self->target.instance, self->target.pid, std::move(status));
      self->Schedule(std::exchange(self->again, false) ? Duration::zero()
                     : becoming ? std::min<Duration>(self->interval, kBecomingInterval)
                                : self->interval);
    };
    if (!target.hook.empty()) {
      std::map<std::string, std::string> env = target.hook_spec.env;
      for (auto& [k, v] : wire::ReplicaEnvironment(sent)) env[k] = v;
      hook = std::make_shared<HookRun>(io, timeout,
                                       [done](Result<std::string> r) { done(std::move(r), 200); });
      LaunchSpec spec = target.hook_spec;
      spec.argv = {target.hook, configure ? "configure" : "status"};
      spec.env = std::move(env);
      hook->Start(std::move(spec));
      return;
    }
    const std::string url = "http://" + address + ":" + std::to_string(target.port) + kPath;
    http::AsyncFetch(io, configure ? "PUT" : "GET", url, configure ? Dump(wire::ToJson(sent)) : "",
                     {}, timeout, [done](Result<http::Response> r) {
                       if (!r.ok()) return done(r.status(), 0);
                       done(std::move(r->body), r->status);
                     });
  }

  // A new configuration while a call is in flight: a status call is given up (its answer
  // would be of the old configuration) and the configuration goes at once — a promotion or a
  // fence does not wait for a status hook to finish. A configuration call in flight is never
  // interrupted (it may be changing the replica): the new one goes when it ends.
  void Reconfigure() {
    if (!busy) return Schedule(Duration::zero());
    if (configuring) {
      again = true;
      return;
    }
    ++calls;  // its answer, if it still comes (HTTP), is ignored
    busy = false;
    if (hook) hook->Cancel();
    Schedule(Duration::zero());
  }

  void Stop() {
    stopped = true;
    timer.cancel();
    if (hook) hook->Cancel();
  }

  asio::io_context& io;
  asio::steady_timer timer;
  std::string address;
  ReplicaTarget target;
  Duration interval;
  Duration timeout;
  ReportFn report;
  std::optional<wire::ReplicaConfig> accepted;  // the configuration it last accepted
  std::shared_ptr<HookRun> hook;
  bool busy = false;         // a call is in flight
  bool configuring = false;  // ... and it is a configuration
  uint64_t calls = 0;        // calls made; the number of the one whose answer counts
  bool again = false;        // a new configuration arrived during it
  bool stopped = false;
};

ReplicaLink::ReplicaLink(asio::io_context& io, std::string address, Duration interval,
                         Duration timeout, ReportFn report)
    : io_(io),
      address_(std::move(address)),
      interval_(interval),
      timeout_(timeout),
      report_(std::move(report)) {}

ReplicaLink::~ReplicaLink() {
  for (auto& [key, l] : linked_) l->Stop();
}

void ReplicaLink::Sync(const std::vector<ReplicaTarget>& targets) {
  std::map<Key, std::shared_ptr<Linked>> next;
  for (const ReplicaTarget& t : targets) {
    Key key{t.instance, t.pid};
    auto it = linked_.find(key);
    if (it == linked_.end()) {
      auto l = std::make_shared<Linked>(io_, address_, t, interval_, timeout_, report_);
      l->Schedule(Duration::zero());
      next[key] = std::move(l);
      continue;
    }
    std::shared_ptr<Linked> l = std::move(it->second);
    linked_.erase(it);
    const bool changed = l->target.config != t.config;
    l->target = t;
    if (changed) l->Reconfigure();
    next[key] = std::move(l);
  }
  for (auto& [key, l] : linked_) l->Stop();
  linked_ = std::move(next);
}

}  // namespace hafab::agent
