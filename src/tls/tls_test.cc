// `hafab certs`'s certificates, served and checked by the http library over loopback: a
// client with a certificate of the cluster's CA is served; one without a certificate, with one
// of another CA, or speaking plain HTTP is refused before any request is read; a server whose
// certificate does not name the dialed host is refused by the client.
#include "http/tls.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <filesystem>
#include <future>
#include <optional>
#include <thread>

#include "http/http.h"
#include "http/pool.h"
#include "tls/certs.h"

namespace hafab::tls {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

// A directory with two CAs: `dir` (server "controller" for 127.0.0.1, client "agent") and
// `dir/other` (client "intruder").
class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = ::testing::TempDir() + "/tls_test_" + std::to_string(getpid());
    std::filesystem::create_directories(dir_ + "/other");
    ASSERT_TRUE(EnsureCa(dir_, "t", 30).ok());
    ASSERT_TRUE(IssueCertificate(dir_, "controller", {"127.0.0.1", "localhost"}, 30).ok());
    ASSERT_TRUE(IssueCertificate(dir_, "agent", {}, 30).ok());
    ASSERT_TRUE(IssueCertificate(dir_, "elsewhere", {"10.9.9.9"}, 30).ok());
    ASSERT_TRUE(EnsureCa(dir_ + "/other", "other", 30).ok());
    ASSERT_TRUE(IssueCertificate(dir_ + "/other", "intruder", {}, 30).ok());
  }
  static void TearDownTestSuite() { std::filesystem::remove_all(dir_); }

  static http::TlsFiles Files(const std::string& name, const std::string& dir = dir_) {
    return {dir_ + "/ca.crt", dir + "/" + name + ".crt", dir + "/" + name + ".key"};
  }

  // Serves 200 "hello" over TLS with `server`'s certificate on a free loopback port.
  void Serve(const std::string& server = "controller") {
    server_ = std::make_unique<http::Server>(io_, [this](http::Request&&, http::Responder r) {
      ++requests_;
      r(http::Response::Text(200, "hello"));
    });
    Status st = server_->UseTls(Files(server));
    ASSERT_TRUE(st.ok()) << st.ToString();
    auto port = server_->Listen("127.0.0.1", 0);
    ASSERT_TRUE(port.ok()) << port.status().ToString();
    port_ = *port;
    thread_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    if (thread_.joinable()) {
      std::promise<void> stopped;
      asio::post(io_, [&] {
        server_->Stop();
        stopped.set_value();
      });
      stopped.get_future().wait();
      work_.reset();
      thread_.join();
    }
  }
  std::string Url(const std::string& scheme = "https", const std::string& host = "127.0.0.1") {
    return scheme + "://" + host + ":" + std::to_string(port_) + "/v1/status";
  }

  static std::string dir_;
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(io_);
  std::unique_ptr<http::Server> server_;
  std::thread thread_;
  uint16_t port_ = 0;
  std::atomic<int> requests_{0};
};
std::string TlsTest::dir_;

TEST_F(TlsTest, TheCaAndKeysArePrivateAndTheCaIsKept) {
  for (const char* f : {"/ca.key", "/agent.key", "/controller.key"}) {
    struct stat st;
    ASSERT_EQ(stat((dir_ + f).c_str(), &st), 0) << f;
    EXPECT_EQ(st.st_mode & 0777, 0600) << f;
  }
  struct stat before, after;
  ASSERT_EQ(stat((dir_ + "/ca.crt").c_str(), &before), 0);
  ASSERT_TRUE(EnsureCa(dir_, "t", 30).ok());  // kept, not replaced
  ASSERT_EQ(stat((dir_ + "/ca.crt").c_str(), &after), 0);
  EXPECT_EQ(before.st_ino, after.st_ino);
  EXPECT_FALSE(IssueCertificate(dir_, "ca", {}, 30).ok());
  EXPECT_FALSE(IssueCertificate(dir_, "x", {"bad host!"}, 30).ok());
  EXPECT_FALSE(IssueCertificate(dir_ + "/none", "x", {}, 30).ok());  // no CA there
}

TEST_F(TlsTest, AClientWithACertificateOfTheCaIsServed) {
  Serve();
  ASSERT_TRUE(http::SetClientTls(Files("agent")).ok());
  auto r = http::Fetch("GET", Url(), "", {}, 5s);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "hello");
  // The certificate names localhost too.
  r = http::Fetch("GET", Url("https", "localhost"), "", {}, 5s);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 200);
}

TEST_F(TlsTest, ClientsWithoutACertificateOfTheCaAreRefused) {
  Serve();
  // The CA only, no client certificate.
  ASSERT_TRUE(http::SetClientTls({dir_ + "/ca.crt", "", ""}).ok());
  auto r = http::Fetch("GET", Url(), "", {}, 5s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable) << r.status().ToString();
  // A certificate of another CA.
  ASSERT_TRUE(http::SetClientTls(Files("intruder", dir_ + "/other")).ok());
  r = http::Fetch("GET", Url(), "", {}, 5s);
  EXPECT_FALSE(r.ok());
  // Plain HTTP to the TLS port.
  r = http::Fetch("GET", Url("http"), "", {}, 5s);
  EXPECT_FALSE(r.ok() && r->status == 200);
  EXPECT_EQ(requests_.load(), 0);
}

TEST_F(TlsTest, TheClientChecksTheServersCertificate) {
  Serve("elsewhere");  // a certificate of the CA for 10.9.9.9, served on 127.0.0.1
  ASSERT_TRUE(http::SetClientTls(Files("agent")).ok());
  auto r = http::Fetch("GET", Url(), "", {}, 5s);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("TLS handshake"), std::string::npos) << r.status().ToString();
  // A client that trusts another CA refuses the server too.
  ASSERT_TRUE(http::SetClientTls({dir_ + "/other/ca.crt", dir_ + "/other/intruder.crt",
                                  dir_ + "/other/intruder.key"})
                  .ok());
  EXPECT_FALSE(http::Fetch("GET", Url(), "", {}, 5s).ok());
  EXPECT_EQ(requests_.load(), 0);
}

// The daemons' heartbeats, assignments and routes polls go through http::ConnectionPool: over
// https it keeps one TLS connection alive, and checks the server as Fetch does.
TEST_F(TlsTest, ThePoolKeepsATlsConnectionAliveAndChecksTheServer) {
  Serve();
  ASSERT_TRUE(http::SetClientTls(Files("agent")).ok());
  asio::io_context client;
  http::ConnectionPool pool(client);
  auto get = [&](const std::string& url) {
    std::optional<Result<http::Response>> got;
    pool.Fetch("GET", url, "", {}, 5s,
               [&](Result<http::Response> r) { got.emplace(std::move(r)); });
    while (!got) client.run_one_for(100ms);
    return std::move(*got);
  };
  for (int i = 0; i < 3; ++i) {
    auto r = get(Url());
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->body, "hello");
  }
  EXPECT_EQ(requests_.load(), 3);
  EXPECT_EQ(pool.idle(), 1u);
  std::promise<size_t> open;
  asio::post(io_, [&] { open.set_value(server_->stats().open); });
  EXPECT_EQ(open.get_future().get(), 1u);

  // Plain and TLS connections to one port are not mixed: http:// opens its own, refused.
  auto plain = get(Url("http"));
  EXPECT_FALSE(plain.ok() && plain->status == 200);

  // A client certificate of another CA: a new connection (another host name) is refused.
  ASSERT_TRUE(http::SetClientTls(Files("intruder", dir_ + "/other")).ok());
  EXPECT_FALSE(get(Url("https", "localhost")).ok());
  EXPECT_EQ(requests_.load(), 3);
}

TEST_F(TlsTest, ThePoolRefusesAServerCertificateForAnotherHost) {
  Serve("elsewhere");
  ASSERT_TRUE(http::SetClientTls(Files("agent")).ok());
  asio::io_context client;
  http::ConnectionPool pool(client);
  std::optional<Result<http::Response>> got;
  pool.Fetch("GET", Url(), "", {}, 5s,
             [&](Result<http::Response> r) { got.emplace(std::move(r)); });
  while (!got) client.run_one_for(100ms);
  ASSERT_FALSE(got->ok());
  EXPECT_NE(got->status().message().find("TLS handshake"), std::string::npos)
      << got->status().ToString();
  EXPECT_EQ(pool.idle(), 0u);
  EXPECT_EQ(requests_.load(), 0);
}

TEST(TlsFilesTest, AllOrNothingAndLoadable) {
  EXPECT_TRUE(http::CheckTlsFiles({}).ok());
  Status st = http::CheckTlsFiles({"ca.crt", "", "x.key"});
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("--tls-cert: missing"), std::string::npos) << st.message();
  st = http::SetClientTls({"/nonexistent/ca.crt", "", ""});
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("/nonexistent/ca.crt"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace hafab::tls
