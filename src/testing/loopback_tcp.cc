#include "testing/loopback_tcp.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/clock.h"

namespace hafab::testing {
namespace {

sockaddr_in Loopback(uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

}  // namespace

int ListenOnLoopback(uint16_t* port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a = Loopback(0);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(fd, 128) != 0) {
    if (fd >= 0) close(fd);
    return -1;
  }
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  *port = ntohs(a.sin_port);
  return fd;
}

TestBackend::TestBackend(std::string name) : name_(std::move(name)) {
  listen_fd_ = ListenOnLoopback(&port_);
  acceptor_ = std::thread([this] {
    for (;;) {
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        if (stopped_) return;
        if (errno == EINTR || errno == ECONNABORTED) continue;
        return;
      }
      std::lock_guard lock(mu_);
      if (stopped_) {
        close(fd);
        return;
      }
      ++accepted_;
      ++active_;
      conns_.push_back(fd);
      threads_.emplace_back([this, fd] { Serve(fd); });
    }
  });
}

TestBackend::~TestBackend() { Stop(); }

void TestBackend::Serve(int fd) {
  std::string hello = name_ + "\n";
  send(fd, hello.data(), hello.size(), MSG_NOSIGNAL);
  std::string line;
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) {
      if (n == 0) send(fd, "eof\n", 4, MSG_NOSIGNAL);
      break;
    }
    {
      std::lock_guard lock(mu_);
      received_.append(buf, n);
    }
    send(fd, buf, n, MSG_NOSIGNAL);
    line.append(buf, n);
    if (line.size() > 64) line.erase(0, line.size() - 64);
    if (line.find("close-write\n") != std::string::npos) {
      shutdown(fd, SHUT_WR);
      line.clear();
    }
    if (line.find("reset\n") != std::string::npos) {
      // Disconnecting a TCP socket (connect to AF_UNSPEC) sends a reset, and the descriptor
      // stays open for Stop to close.
      sockaddr unspec{};
      unspec.sa_family = AF_UNSPEC;
      connect(fd, &unspec, sizeof unspec);
      break;
    }
  }
  --active_;
  shutdown(fd, SHUT_RDWR);
}

std::string TestBackend::received() const {
  std::lock_guard lock(mu_);
  return received_;
}

void TestBackend::Stop() {
  {
    std::lock_guard lock(mu_);
    if (stopped_) return;
    stopped_ = true;
    shutdown(listen_fd_, SHUT_RDWR);
    for (int fd : conns_) shutdown(fd, SHUT_RDWR);
  }
  acceptor_.join();
  for (auto& t : threads_) t.join();
  for (int fd : conns_) close(fd);
  close(listen_fd_);
}

uint16_t DeadPort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a = Loopback(0);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

int Dial(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in a = Loopback(port);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

std::string ReadLine(int fd) {
  std::string out;
  char c;
  for (;;) {
    ssize_t n = read(fd, &c, 1);
    if (n <= 0) return "";
    if (c == '\n') return out;
    out += c;
  }
}

std::string ReadAll(int fd, bool* eof) {
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) {
      out.append(buf, n);
      continue;
    }
    *eof = n == 0 || errno == ECONNRESET;
    return out;
  }
}

bool SendAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += n;
  }
  return true;
}

bool ClosedWithin(int fd, std::chrono::milliseconds timeout) {
  auto deadline = RealClock().Now() + timeout;
  char buf[4096];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - RealClock().Now());
    if (left.count() <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
    ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno == ECONNRESET)) return true;
  }
}

}  // namespace hafab::testing
