// The etcd client's handling of etcd's answers (store/etcd_client.*, store/etcd_store.cc):
// an EtcdStore talks over loopback TCP to a fake etcd JSON gateway in this process that
// answers each call with the fuzzed status and body. Input: answers separated by "\n%%\n",
// each "STATUS" on its first line (200 when it is not a number) and then the body, used in
// turn for Get, Range, Commit, GrantLease, KeepAlive, RevokeLease and the watch stream.
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <charconv>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "store/etcd_store.h"

using namespace hafab;

namespace {

struct Answer {
  int status = 200;
  std::string body;
};

// Answers every request on one connection and closes it (Connection: close), so that no
// connection outlives the input that made it.
class FakeEtcd {
 public:
  FakeEtcd() {
    listener_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (listener_ < 0 || bind(listener_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        listen(listener_, 64) != 0 ||
        getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      std::perror("fake etcd");
      std::abort();
    }
    port_ = ntohs(addr.sin_port);
    std::thread([this] { Serve(); }).detach();
  }

  uint16_t port() const { return port_; }

  // The answer to the next request for `path` ("" for the stream, /v3/watch).
  void Set(const std::string& path, Answer a) {
    std::lock_guard lock(mu_);
    answers_[path] = std::move(a);
  }
  void Clear() {
    std::lock_guard lock(mu_);
    answers_.clear();
  }

 private:
  void Serve() {
    while (true) {
      int fd = accept(listener_, nullptr, nullptr);
      if (fd < 0) continue;
      std::string request;
      char buf[4096];
      size_t header_end = std::string::npos;
      size_t need = 0;
      while (true) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0) break;
        request.append(buf, static_cast<size_t>(n));
        if (header_end == std::string::npos) {
          header_end = request.find("\r\n\r\n");
          if (header_end == std::string::npos) continue;
          size_t cl = request.find("Content-Length: ");
          if (cl != std::string::npos) {
            std::from_chars(request.data() + cl + 16, request.data() + request.size(), need);
          }
        }
        if (request.size() >= header_end + 4 + need) break;
      }
      std::string path = request.substr(request.find(' ') + 1);
      path = path.substr(0, path.find(' '));
      Answer a{200, R"({"header":{"revision":"1"}})"};
      {
        std::lock_guard lock(mu_);
        if (auto it = answers_.find(path); it != answers_.end()) a = it->second;
      }
      std::string out = "HTTP/1.1 " + std::to_string(a.status) + " X\r\nConnection: close\r\n";
      if (path != "/v3/watch") out += "Content-Length: " + std::to_string(a.body.size()) + "\r\n";
      out += "Content-Type: application/json\r\n\r\n" + a.body;
      for (size_t off = 0; off < out.size();) {
        ssize_t n = send(fd, out.data() + off, out.size() - off, MSG_NOSIGNAL);
        if (n <= 0) break;
        off += static_cast<size_t>(n);
      }
      shutdown(fd, SHUT_WR);
      close(fd);
    }
  }

  int listener_ = -1;
  uint16_t port_ = 0;
  std::mutex mu_;
  std::map<std::string, Answer> answers_;
};

Answer ParseAnswer(std::string_view part) {
  Answer a;
  size_t eol = part.find('\n');
  std::string_view first = part.substr(0, eol);
  int status = 0;
  auto [p, ec] = std::from_chars(first.data(), first.data() + first.size(), status);
  if (ec == std::errc() && p == first.data() + first.size() && status >= 100 && status <= 599) {
    a.status = status;
    a.body = eol == std::string_view::npos ? "" : std::string(part.substr(eol + 1));
  } else {
    a.body = std::string(part);
  }
  return a;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static FakeEtcd* etcd = [] {
    spdlog::set_level(spdlog::level::off);
    return new FakeEtcd();
  }();
  std::vector<Answer> answers;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  while (answers.size() < 7) {
    size_t at = text.find("\n%%\n");
    answers.push_back(ParseAnswer(text.substr(0, at)));
    if (at == std::string_view::npos) break;
    text.remove_prefix(at + 4);
  }
  answers.resize(7);
  etcd->Clear();
  store::EtcdClientOptions options;
  options.request_timeout = std::chrono::milliseconds(30);
  options.dial_timeout = std::chrono::milliseconds(30);
  options.retry_backoff = std::chrono::milliseconds(2);
  auto opened = store::EtcdStore::Open({{"127.0.0.1", etcd->port()}}, options);
  if (!opened.ok()) return 0;  // the fake answers status; a loaded machine may time it out
  store::EtcdStore& s = **opened;

  etcd->Set("/v3/kv/range", answers[0]);
  (void)s.Get("k");
  etcd->Set("/v3/kv/range", answers[1]);
  (void)s.Range("p/");
  etcd->Set("/v3/kv/txn", answers[2]);
  store::Txn txn;
  txn.compares.push_back(store::Compare::ModRevisionEquals("k", 3));
  txn.success.push_back(store::Op::Put("k", "v", 7));
  txn.failure.push_back(store::Op::Delete("k"));
  (void)s.Commit(txn);
  etcd->Set("/v3/lease/grant", answers[3]);
  (void)s.GrantLease(std::chrono::seconds(2));
  etcd->Set("/v3/lease/keepalive", answers[4]);
  (void)s.KeepAlive(7);
  etcd->Set("/v3/lease/revoke", answers[5]);
  (void)s.RevokeLease(7);
  etcd->Set("/v3/watch", answers[6]);
  auto watcher = s.Watch("p/", 2);
  if (watcher.ok()) {
    for (int i = 0; i < 3; ++i) {
      if (!(*watcher)->Next(std::chrono::milliseconds(5)).ok()) break;
    }
  }
  return 0;
}
