// Runs the real kvd and echo-app binaries as child processes on loopback.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

#include "app_process.h"
#include "http/http.h"
#include "kv_log.h"
#include "testing/wait.h"

namespace hafab::apps {
namespace {

using namespace std::chrono_literals;

using testing::WaitFor;

class AppsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/apps_test.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<AppProcess> Kvd(const std::string& instance = "kvd-0") {
    return std::make_unique<AppProcess>(
        KVD_PATH,
        std::map<std::string, std::string>{{"HAFAB_INSTANCE", instance},
                                           {"HAFAB_EPOCH", "7"},
                                           {"HAFAB_VOLUME_DIR", dir_ + "/volume"}},
        dir_ + "/kvd.stderr");
  }

  std::unique_ptr<AppProcess> Echo(std::map<std::string, std::string> env = {}) {
    env.try_emplace("HAFAB_INSTANCE", "echo-3");
    env.try_emplace("HAFAB_EPOCH", "1");
    return std::make_unique<AppProcess>(ECHO_APP_PATH, env, dir_ + "/echo.stderr");
  }

  std::string dir_;
};

int StatusOf(const std::string& method, const std::string& url, const std::string& body = "") {
  auto r = http::Fetch(method, url, body, {}, 5s);
  return r.ok() ? r->status : -1;
}

TEST_F(AppsTest, KvdPutGetAndMissingKey) {
  auto kvd = Kvd();
  ASSERT_TRUE(kvd->Start());
  auto put = http::Fetch("PUT", kvd->Url("/kv/colour"), "blue");
  ASSERT_TRUE(put.ok()) << put.status().ToString();
  EXPECT_EQ(put->status, 200);
  auto get = http::Fetch("GET", kvd->Url("/kv/colour"));
  ASSERT_TRUE(get.ok()) << get.status().ToString();
  EXPECT_EQ(get->status, 200);
  EXPECT_EQ(get->body, "blue");
  ASSERT_EQ(StatusOf("PUT", kvd->Url("/kv/colour"), "green"), 200);
  EXPECT_EQ(http::Fetch("GET", kvd->Url("/kv/colour"))->body, "green");
  EXPECT_EQ(StatusOf("GET", kvd->Url("/kv/absent")), 404);
  EXPECT_EQ(StatusOf("GET", kvd->Url("/elsewhere")), 404);
  EXPECT_EQ(StatusOf("DELETE", kvd->Url("/kv/colour")), 405);
  // A key with a slash and a space, percent-encoded in the URL.
  ASSERT_EQ(StatusOf("PUT", kvd->Url("/kv/a%2Fb%20c"), "x"), 200);
  EXPECT_EQ(http::Fetch("GET", kvd->Url("/kv/a%2Fb%20c"))->body, "x");
}

TEST_F(AppsTest, KvdAndEchoStampEveryResponseWithInstanceAndEpoch) {
  auto kvd = Kvd("kvd-1");
  ASSERT_TRUE(kvd->Start());
  for (auto [method, target] : std::vector<std::pair<std::string, std::string>>{
           {"GET", "/health"}, {"GET", "/kv/none"}, {"PUT", "/kv/k"}, {"GET", "/nowhere"}}) {
    auto r = http::Fetch(method, kvd->Url(target), "v");
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->Header("x-hafab-instance"), "kvd-1") << method << " " << target;
    EXPECT_EQ(r->Header("x-hafab-epoch"), "7") << method << " " << target;
  }
  auto echo = Echo();
  ASSERT_TRUE(echo->Start());
  for (std::string target : {"/", "/ready", "/health", "/nowhere"}) {
    auto r = http::Fetch("GET", echo->Url(target));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->Header("x-hafab-instance"), "echo-3") << target;
    EXPECT_EQ(r->Header("x-hafab-epoch"), "1") << target;
  }
}

TEST_F(AppsTest, KvdRefusesToStartWithoutADataDirectory) {
  AppProcess kvd(KVD_PATH, {{"HAFAB_INSTANCE", "kvd-0"}}, dir_ + "/kvd.stderr");
  int status = kvd.RunToExit();
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_NE(WEXITSTATUS(status), 0);
  EXPECT_NE(kvd.Log().find("no data directory: set HAFAB_VOLUME_DIR or pass --data-dir"),
            std::string::npos)
      << kvd.Log();
}

// The durability promise: a write answered 200 survives a SIGKILL right after it.
TEST_F(AppsTest, EveryAcknowledgedPutSurvivesSigkill) {
  auto kvd = Kvd();
  ASSERT_TRUE(kvd->Start());
  std::mutex mu;
  std::map<std::string, std::string> acknowledged;
  std::atomic<bool> killed{false};
  std::vector<std::thread> writers;
  for (int w = 0; w < 4; ++w) {
    writers.emplace_back([&, w] {
      for (int i = 0; !killed; ++i) {
        std::string key = "w" + std::to_string(w) + "-" + std::to_string(i);
        std::string value = "value-" + key + std::string(i % 50, '.');
        auto r = http::Fetch("PUT", kvd->Url("/kv/" + key), value, {}, 5s);
        if (!r.ok() || r->status != 200) return;  // the server is gone
        std::lock_guard lock(mu);
        acknowledged[key] = value;
      }
    });
  }
  ASSERT_TRUE(WaitFor([&] {
    std::lock_guard lock(mu);
    return acknowledged.size() >= 200;
  }));
  kvd->Kill(SIGKILL);  // while the writers still have requests in flight
  killed = true;
  for (auto& t : writers) t.join();
  auto status = kvd->Wait();
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFSIGNALED(*status));

  auto restarted = Kvd();
  ASSERT_TRUE(restarted->Start());
  EXPECT_NE(restarted->Log().find("replayed"), std::string::npos) << restarted->Log();
  size_t missing = 0;
  for (const auto& [key, value] : acknowledged) {
    auto r = http::Fetch("GET", restarted->Url("/kv/" + key));
    if (!r.ok() || r->status != 200 || r->body != value) ++missing;
  }
  EXPECT_EQ(missing, 0u) << "of " << acknowledged.size() << " acknowledged writes";
}

TEST_F(AppsTest, KvdToleratesATornLastRecordAndKeepsWriting) {
  auto kvd = Kvd();
  ASSERT_TRUE(kvd->Start());
  ASSERT_EQ(StatusOf("PUT", kvd->Url("/kv/one"), "1"), 200);
  ASSERT_EQ(StatusOf("PUT", kvd->Url("/kv/two"), "2"), 200);
  kvd->Kill(SIGKILL);
  ASSERT_TRUE(kvd->Wait().has_value());
  // What a crash in the middle of an append leaves behind: half a record.
  std::string record = EncodeKvRecord("three", "3333333333");
  {
    std::ofstream out(dir_ + "/volume/kvd.log", std::ios::binary | std::ios::app);
    out << record.substr(0, record.size() / 2);
  }
  auto restarted = Kvd();
  ASSERT_TRUE(restarted->Start());
  EXPECT_NE(restarted->Log().find("truncated a torn last record of " +
                                  std::to_string(record.size() / 2) + " bytes"),
            std::string::npos)
      << restarted->Log();
  EXPECT_EQ(http::Fetch("GET", restarted->Url("/kv/one"))->body, "1");
  EXPECT_EQ(http::Fetch("GET", restarted->Url("/kv/two"))->body, "2");
  EXPECT_EQ(StatusOf("GET", restarted->Url("/kv/three")), 404);
  ASSERT_EQ(StatusOf("PUT", restarted->Url("/kv/four"), "4"), 200);
  restarted->Kill(SIGTERM);
  ASSERT_TRUE(restarted->Wait().has_value());

  auto again = Kvd();
  ASSERT_TRUE(again->Start());
  EXPECT_EQ(http::Fetch("GET", again->Url("/kv/four"))->body, "4");
}

TEST_F(AppsTest, KvdCompactsALogOfMostlyOverwrittenValuesAtStart) {
  std::filesystem::create_directories(dir_ + "/volume");
  {
    std::ofstream out(dir_ + "/volume/kvd.log", std::ios::binary);
    for (int i = 0; i < 3000; ++i) {
      out << EncodeKvRecord(i % 2 ? "odd" : "even", std::to_string(i));
    }
  }
  auto kvd = Kvd();
  ASSERT_TRUE(kvd->Start());
  EXPECT_NE(kvd->Log().find("compacted the log from 3000 records to 2"), std::string::npos)
      << kvd->Log();
  EXPECT_EQ(http::Fetch("GET", kvd->Url("/kv/even"))->body, "2998");
  ASSERT_EQ(StatusOf("PUT", kvd->Url("/kv/odd"), "x"), 200);
  kvd->Kill(SIGKILL);
  ASSERT_TRUE(kvd->Wait().has_value());
  auto again = Kvd();
  ASSERT_TRUE(again->Start());
  EXPECT_NE(again->Log().find("replayed 3 records, 2 keys"), std::string::npos) << again->Log();
  EXPECT_EQ(http::Fetch("GET", again->Url("/kv/odd"))->body, "x");
}

TEST_F(AppsTest, SigtermExitsZero) {
  auto kvd = Kvd();
  auto echo = Echo();
  ASSERT_TRUE(kvd->Start());
  ASSERT_TRUE(echo->Start());
  kvd->Kill(SIGTERM);
  echo->Kill(SIGTERM);
  for (auto* app : {kvd.get(), echo.get()}) {
    auto status = app->Wait();
    ASSERT_TRUE(status.has_value()) << app->Log();
    ASSERT_TRUE(WIFEXITED(*status)) << app->Log();
    EXPECT_EQ(WEXITSTATUS(*status), 0) << app->Log();
  }
}

TEST_F(AppsTest, SigtermLetsASlowRequestInFlightFinish) {
  auto echo = Echo();
  ASSERT_TRUE(echo->Start());
  auto slow = std::async(std::launch::async,
                         [&] { return http::Fetch("GET", echo->Url("/slow?ms=300"), "", {}, 5s); });
  // SIGTERM only once the app has read the request (before, it would be refused).
  ASSERT_TRUE(WaitFor([&] {
    auto stats = http::Fetch("GET", echo->Url("/stats"));
    return stats.ok() && stats->body.find("\"slow_pending\": 1") != std::string::npos;
  }));
  echo->Kill(SIGTERM);
  auto r = slow.get();
  ASSERT_TRUE(r.ok()) << r.status().ToString() << "\n" << echo->Log();
  EXPECT_EQ(r->status, 200);
  auto status = echo->Wait();
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << echo->Log();
}

// A raw keep-alive HTTP/1.1 client connection (to see the headers and how it ends).
class RawConnection {
 public:
  explicit RawConnection(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~RawConnection() { ::close(fd_); }
  bool connected() const { return connected_; }

  // Sends GET `path` and returns the whole response (headers and body), "" on error.
  std::string Get(const std::string& path) {
    std::string req = "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n";
    if (::send(fd_, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
      return "";
    }
    std::string got;
    while (true) {
      size_t end = got.find("\r\n\r\n");
      if (end != std::string::npos) {
        size_t cl = got.find("Content-Length: ");
        size_t len = cl == std::string::npos ? 0 : std::stoul(got.substr(cl + 16));
        if (got.size() >= end + 4 + len) return got;
      }
      char buf[4096];
      ssize_t n = ReadWithin(buf, sizeof buf, 5s);
      if (n <= 0) return "";
      got.append(buf, static_cast<size_t>(n));
    }
  }
  // 0 after a clean close (FIN), -1 with errno (ECONNRESET: a reset), or bytes read.
  ssize_t ReadWithin(char* buf, size_t size, std::chrono::milliseconds timeout) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) {
      errno = ETIMEDOUT;
      return -1;
    }
    return ::read(fd_, buf, size);
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

TEST_F(AppsTest, SigtermAnswersTheNextRequestOfAKeepAliveConnectionWithConnectionClose) {
  for (bool is_kvd : {false, true}) {
    auto app = is_kvd ? Kvd() : Echo();
    ASSERT_TRUE(app->Start());
    RawConnection conn(app->port());
    ASSERT_TRUE(conn.connected());
    std::string first = conn.Get("/health");
    ASSERT_NE(first.find("200 OK"), std::string::npos) << first;
    EXPECT_EQ(first.find("Connection: close"), std::string::npos) << first;
    app->Kill(SIGTERM);
    ASSERT_TRUE(WaitFor([&] { return app->Log().find("draining") != std::string::npos; }))
        << app->Log();
    // The open connection is still served; its answer says it is the last one.
    std::string last = conn.Get("/health");
    EXPECT_NE(last.find("200 OK"), std::string::npos) << last;
    EXPECT_NE(last.find("Connection: close"), std::string::npos) << last;
    char byte;
    EXPECT_EQ(conn.ReadWithin(&byte, 1, 5000ms), 0) << "a clean close, errno " << errno;
    // No new connections; the app exits once its connections are gone.
    auto status = app->Wait();
    ASSERT_TRUE(status.has_value()) << app->Log();
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << app->Log();
  }
}

TEST_F(AppsTest, EchoAnswersWithItsInstanceId) {
  auto echo = Echo({{"HAFAB_INSTANCE", "web-2"}});
  ASSERT_TRUE(echo->Start());
  auto r = http::Fetch("GET", echo->Url("/"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "web-2\n");
}

TEST_F(AppsTest, EchoBusySwitchFlipsReadinessBetween200And503) {
  std::string busy_file = dir_ + "/busy";
  auto echo = Echo({{"HAFAB_BUSY_FILE", busy_file}});
  ASSERT_TRUE(echo->Start());
  EXPECT_EQ(StatusOf("GET", echo->Url("/ready")), 200);
  ASSERT_EQ(StatusOf("POST", echo->Url("/busy")), 200);
  EXPECT_EQ(StatusOf("GET", echo->Url("/ready")), 503);
  EXPECT_EQ(StatusOf("GET", echo->Url("/")), 200);  // busy is not down
  ASSERT_EQ(StatusOf("POST", echo->Url("/unbusy")), 200);
  EXPECT_EQ(StatusOf("GET", echo->Url("/ready")), 200);

  std::ofstream(busy_file) << "maintenance";
  EXPECT_EQ(StatusOf("GET", echo->Url("/ready")), 503);
  std::filesystem::remove(busy_file);
  EXPECT_EQ(StatusOf("GET", echo->Url("/ready")), 200);
}

TEST_F(AppsTest, EchoSlowDoesNotBlockOtherRequests) {
  auto echo = Echo();
  ASSERT_TRUE(echo->Start());
  auto pending_slow = [&] {
    auto stats = http::Fetch("GET", echo->Url("/stats"));
    return stats.ok() && stats->body.find("\"slow_pending\": 1") != std::string::npos;
  };
  auto start = std::chrono::steady_clock::now();
  auto slow = std::async(std::launch::async, [&] {
    return http::Fetch("GET", echo->Url("/slow?ms=2000"), "", {}, 10s);
  });
  ASSERT_TRUE(WaitFor(pending_slow));
  for (int i = 0; i < 5; ++i) {
    auto r = http::Fetch("GET", echo->Url("/"), "", {}, 1s);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->status, 200);
  }
  // All five were answered while the slow request was still waiting.
  EXPECT_TRUE(pending_slow());
  auto r = slow.get();
  auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "slept 2000ms\n");
  EXPECT_GE(elapsed, 2000ms);
  EXPECT_EQ(StatusOf("GET", echo->Url("/slow?ms=soon")), 400);
}

}  // namespace
}  // namespace hafab::apps
