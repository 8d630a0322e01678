// A minimal, fast HTTP/1.1 backend for the gateway benchmark (bench/gateway/run.sh):
// epoll, non-blocking, keep-alive, one thread per --threads with SO_REUSEPORT.
//   GET /            -> 200, 13-byte body "hello, world\n"
//   GET /bulk        -> 200, a 1 MiB body (throughput)
//   "Connection: close" in the request -> the server closes after the response.
// Usage: hafab_bench_http_backend PORT [THREADS]   (prints nothing; runs until killed)
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr size_t kBulkSize = 1 << 20;
std::string g_small;
std::string g_small_close;
std::string g_bulk;
std::string g_bulk_close;

struct Conn {
  int fd;
  std::string in;
  const std::string* out = nullptr;
  size_t out_off = 0;
  bool close_after = false;
};

int Listen(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(fd, 4096) != 0) {
    perror("bind/listen");
    exit(1);
  }
  return fd;
}

void CloseConn(Conn* c) {
  close(c->fd);
  delete c;
}

// Writes pending output; returns false if the connection is finished or broken.
bool Flush(Conn* c) {
  while (c->out) {
    ssize_t n = send(c->fd, c->out->data() + c->out_off, c->out->size() - c->out_off, MSG_NOSIGNAL);
    if (n < 0) return errno == EAGAIN;
    c->out_off += n;
    if (c->out_off == c->out->size()) {
      c->out = nullptr;
      c->out_off = 0;
      if (c->close_after) return false;
    }
  }
  return true;
}

// Answers every complete request in the input while no output is pending.
bool Serve(Conn* c) {
  while (!c->out) {
    size_t end = c->in.find("\r\n\r\n");
    if (end == std::string::npos) return true;
    std::string_view head(c->in.data(), end);
    const bool bulk = head.find(" /bulk") != std::string_view::npos;
    c->close_after = head.find("Connection: close") != std::string_view::npos ||
                     head.find("connection: close") != std::string_view::npos;
    c->out = bulk ? (c->close_after ? &g_bulk_close : &g_bulk)
                  : (c->close_after ? &g_small_close : &g_small);
    c->in.erase(0, end + 4);
    if (!Flush(c)) return false;
  }
  return true;
}

void Loop(uint16_t port) {
  int lfd = Listen(port);
  int ep = epoll_create1(0);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  epoll_event events[256];
  char buf[16384];
  for (;;) {
    int n = epoll_wait(ep, events, 256, -1);
    for (int i = 0; i < n; ++i) {
      if (events[i].data.ptr == nullptr) {
        for (;;) {
          int fd = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK);
          if (fd < 0) break;
          int one = 1;
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          auto* c = new Conn{fd, {}};
          epoll_event cev{};
          cev.events = EPOLLIN | EPOLLOUT | EPOLLET | EPOLLRDHUP;
          cev.data.ptr = c;
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
        }
        continue;
      }
      auto* c = static_cast<Conn*>(events[i].data.ptr);
      if (!Flush(c)) {
        CloseConn(c);
        continue;
      }
      bool alive = true;
      for (;;) {
        ssize_t r = read(c->fd, buf, sizeof buf);
        if (r > 0) {
          c->in.append(buf, r);
          continue;
        }
        if (r == 0 || errno != EAGAIN) alive = false;
        break;
      }
      if (alive) alive = Serve(c);
      if (!alive) CloseConn(c);
    }
  }
}

std::string Response(size_t size, bool close) {
  std::string body = size == 13 ? "hello, world\n" : std::string(size, 'x');
  return "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n" + (close ? "Connection: close\r\n" : "") + "\r\n" +
         body;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s PORT [THREADS]\n", argv[0]);
    return 2;
  }
  const uint16_t port = static_cast<uint16_t>(atoi(argv[1]));
  const int threads = argc > 2 ? atoi(argv[2]) : 1;
  g_small = Response(13, false);
  g_small_close = Response(13, true);
  g_bulk = Response(kBulkSize, false);
  g_bulk_close = Response(kBulkSize, true);
  std::vector<std::thread> ts;
  for (int i = 1; i < threads; ++i) ts.emplace_back([port] { Loop(port); });
  Loop(port);
}
