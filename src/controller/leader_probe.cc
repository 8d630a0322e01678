#include "controller/leader_probe.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "controller/records.h"
#include "http/http.h"

namespace hafab::controller {

LeaderProbe::LeaderProbe(Clock& clock, LeaderProbeOptions opts) : clock_(clock), opts_(opts) {}

LeaderProbe::~LeaderProbe() { Close(); }

void LeaderProbe::Close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

bool LeaderProbe::Start(TimePoint now) {
  auto url = http::ParseUrl(url_);
  if (!url.ok()) return false;
  sockaddr_storage addr{};
  socklen_t len = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&addr);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&addr);
  std::string host = url->host;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  // Numeric addresses only: a name would need a resolver call that may block the loop.
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(url->port);
    len = sizeof *v4;
  } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(url->port);
    len = sizeof *v6;
  } else {
    return false;
  }
  fd_ = ::socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return false;
  started_ = now;
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), len) == 0) {
    refused_ = 0;  // accepted at once: alive
    Close();
  } else if (errno == ECONNREFUSED) {
    if (refused_++ == 0) first_refusal_ = now;
    Close();
  } else if (errno != EINPROGRESS) {
    refused_ = 0;  // no route, no buffers...: says nothing about the leader's process
    Close();
  }
  return true;
}

bool LeaderProbe::Poll(const std::string& leader_url) {
  const TimePoint now = clock_.Now();
  if (leader_url != url_) {
    Close();
    url_ = leader_url;
    refused_ = 0;
    next_ = now;
  }
  if (url_.empty()) return false;
  if (fd_ >= 0) {
    pollfd p{fd_, POLLOUT, 0};
    if (::poll(&p, 1, 0) == 1) {
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err == ECONNREFUSED) {
        if (refused_++ == 0) first_refusal_ = now;
      } else {
        refused_ = 0;  // accepted (alive) or some other failure (inconclusive)
      }
      Close();
    } else if (now - started_ >= opts_.connect_timeout) {
      refused_ = 0;  // silent: a dead or cut-off host; the store lease decides
      Close();
    }
  }
  if (fd_ < 0 && refused_ < opts_.refusals && now >= next_) {
    next_ = now + opts_.interval;
    if (!Start(now)) return false;
  }
  if (refused_ < opts_.refusals) return false;
  evidence_ = std::to_string(refused_) + " connections to " + url_ + " refused in " +
              std::to_string(ToMs(now - first_refusal_)) + "ms";
  refused_ = 0;
  return true;
}

}  // namespace hafab::controller
