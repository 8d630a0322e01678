#include "http/http.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <future>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "testing/wait.h"

namespace hafab::http {
namespace {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
using testing::WaitFor;

// Runs a Server on its own io_context thread; the test thread talks to it with Fetch.
class TestServer {
 public:
  explicit TestServer(Handler handler)
      : work_(asio::make_work_guard(io_)), server_(io_, std::move(handler)) {
    auto port = server_.Listen("127.0.0.1", 0);
    EXPECT_TRUE(port.ok()) << port.status().ToString();
    port_ = port.value_or(0);
    thread_ = std::thread([this] { io_.run(); });
  }
  ~TestServer() {
    RunOnIo([this] { server_.Stop(); });
    work_.reset();
    thread_.join();
  }

  // Runs `fn` on the io_context thread and waits for it.
  void RunOnIo(std::function<void()> fn) {
    std::promise<void> done;
    asio::post(io_, [&] {
      fn();
      done.set_value();
    });
    done.get_future().wait();
  }

  std::string Url(const std::string& target) const {
    return "http://127.0.0.1:" + std::to_string(port_) + target;
  }
  uint16_t port() const { return port_; }
  asio::io_context& io() { return io_; }
  Server& server() { return server_; }

 private:
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  Server server_;
  uint16_t port_ = 0;
  std::thread thread_;
};

// Answers with a JSON description of the request it received.
void EchoHandler(Request&& request, Responder respond) {
  nlohmann::json j = {{"method", request.method},   {"target", request.target},
                      {"path", request.path},       {"query", request.query},
                      {"headers", request.headers}, {"body", request.body},
                      {"peer", request.peer}};
  Response response = Response::Json(200, j.dump());
  response.headers.emplace_back("X-Reply", "yes");
  respond(std::move(response));
}

TEST(HttpTest, GetAndPostRoundTripWithQueryHeadersAndBody) {
  TestServer server(EchoHandler);

  auto get =
      Fetch("GET", server.Url("/a%20b/c?x=1&y=hello+world&z=%2F%26"), "", {{"X-Custom", "Value"}});
  ASSERT_TRUE(get.ok()) << get.status().ToString();
  EXPECT_EQ(get->status, 200);
  EXPECT_EQ(get->content_type, "application/json");
  EXPECT_EQ(get->Header("x-reply"), "yes");
  EXPECT_EQ(get->Header("X-Reply"), "yes");
  auto j = nlohmann::json::parse(get->body);
  EXPECT_EQ(j["method"], "GET");
  EXPECT_EQ(j["target"], "/a%20b/c?x=1&y=hello+world&z=%2F%26");
  EXPECT_EQ(j["path"], "/a b/c");
  EXPECT_EQ(j["query"]["x"], "1");
  EXPECT_EQ(j["query"]["y"], "hello world");
  EXPECT_EQ(j["query"]["z"], "/&");
  EXPECT_EQ(j["headers"]["x-custom"], "Value");
  EXPECT_EQ(j["peer"], "127.0.0.1");
  EXPECT_EQ(j["body"], "");

  auto post = Fetch("POST", server.Url("/submit"), R"({"k":1})");
  ASSERT_TRUE(post.ok()) << post.status().ToString();
  j = nlohmann::json::parse(post->body);
  EXPECT_EQ(j["method"], "POST");
  EXPECT_EQ(j["path"], "/submit");
  EXPECT_TRUE(j["query"].empty());
  EXPECT_EQ(j["body"], R"({"k":1})");
  EXPECT_EQ(j["headers"]["content-length"], "7");
}

TEST(HttpTest, StatusesOtherThan200AreResponsesNotErrors) {
  TestServer server([](Request&& request, Responder respond) {
    respond(Response::Text(404, "no " + request.path + "\n"));
  });
  auto result = Fetch("GET", server.Url("/missing"));
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->status, 404);
  EXPECT_EQ(result->body, "no /missing\n");
  EXPECT_EQ(result->content_type, "text/plain; charset=utf-8");
}

TEST(HttpTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  std::atomic<int> served{0};
  TestServer server([&](Request&& request, Responder respond) {
    ++served;
    respond(Response::Text(200, request.path));
  });
  asio::io_context io;
  tcp::socket socket(io);
  socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), server.port()));
  boost::beast::flat_buffer buffer;
  for (int i = 0; i < 5; ++i) {
    bhttp::request<bhttp::string_body> request(bhttp::verb::get, "/r" + std::to_string(i), 11);
    request.set(bhttp::field::host, "x");
    request.keep_alive(true);
    bhttp::write(socket, request);
    bhttp::response<bhttp::string_body> response;
    bhttp::read(socket, buffer, response);
    EXPECT_EQ(response.result_int(), 200u);
    EXPECT_EQ(response.body(), "/r" + std::to_string(i));
    EXPECT_TRUE(response.keep_alive());
  }
  EXPECT_EQ(served.load(), 5);
}

TEST(HttpTest, ResponderCalledLaterFromATimerAnswersLongPoll) {
  std::unique_ptr<asio::steady_timer> timer;
  std::atomic<int> answers{0};
  TestServer server([&](Request&& request, Responder respond) {
    timer = std::make_unique<asio::steady_timer>(server.io(), 30ms);
    timer->async_wait([respond, &answers](boost::system::error_code) {
      ++answers;
      respond(Response::Text(200, "later"));
      respond(Response::Text(500, "second call is ignored"));
    });
  });
  auto result = Fetch("GET", server.Url("/watch"));
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->status, 200);
  EXPECT_EQ(result->body, "later");
  EXPECT_EQ(answers.load(), 1);
  server.RunOnIo([&] { timer.reset(); });
}

TEST(HttpTest, ResponderMayBeCalledFromAnotherThread) {
  std::mutex mu;
  std::optional<Responder> pending;
  TestServer server([&](Request&&, Responder respond) {
    std::lock_guard lock(mu);
    pending = std::move(respond);
  });
  auto future = std::async(std::launch::async, [&] { return Fetch("GET", server.Url("/")); });
  ASSERT_TRUE(WaitFor([&] {
    std::lock_guard lock(mu);
    return pending.has_value();
  }));
  {
    std::lock_guard lock(mu);
    (*pending)(Response::Text(202, "from another thread"));
  }
  auto result = future.get();
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->status, 202);
}

TEST(HttpTest, StopClosesConnectionsAndPendingResponderBecomesNoOp) {
  std::mutex mu;
  std::optional<Responder> pending;
  TestServer server([&](Request&&, Responder respond) {
    std::lock_guard lock(mu);
    pending = std::move(respond);
  });
  auto future = std::async(std::launch::async, [&] { return Fetch("GET", server.Url("/")); });
  ASSERT_TRUE(WaitFor([&] {
    std::lock_guard lock(mu);
    return pending.has_value();
  }));
  server.RunOnIo([&] { server.server().Stop(); });
  auto result = future.get();
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kUnavailable) << result.status().ToString();
  server.RunOnIo([&] {
    std::lock_guard lock(mu);
    (*pending)(Response::Text(200, "too late"));  // must not crash or write anywhere
  });
  // The listener is closed too.
  auto again = Fetch("GET", server.Url("/"), "", {}, 1s);
  EXPECT_EQ(again.status().code(), StatusCode::kUnavailable) << again.status().ToString();
}

TEST(HttpTest, DrainAnswersTheRequestInFlightThenReportsDone) {
  std::mutex mu;
  std::optional<Responder> pending;
  TestServer server([&](Request&&, Responder respond) {
    std::lock_guard lock(mu);
    pending = std::move(respond);
  });
  auto future = std::async(std::launch::async, [&] { return Fetch("GET", server.Url("/")); });
  ASSERT_TRUE(WaitFor([&] {
    std::lock_guard lock(mu);
    return pending.has_value();
  }));
  std::atomic<bool> drained{false};
  server.RunOnIo([&] { server.server().Drain([&] { drained = true; }); });
  EXPECT_FALSE(drained.load());
  server.RunOnIo([&] {
    std::lock_guard lock(mu);
    (*pending)(Response::Text(200, "finished"));
  });
  auto result = future.get();
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->body, "finished");
  EXPECT_TRUE(WaitFor([&] { return drained.load(); }));
}

TEST(HttpTest, IdleConnectionsAreClosedButSlowHandlersAreNot) {
  std::unique_ptr<asio::steady_timer> timer;
  TestServer server([&](Request&&, Responder respond) {
    // Answers after three idle timeouts: the limit must not apply while handling.
    timer = std::make_unique<asio::steady_timer>(server.io(), 150ms);
    timer->async_wait(
        [respond](boost::system::error_code) { respond(Response::Text(200, "slow but fine")); });
  });
  server.RunOnIo([&] { server.server().SetIdleTimeout(50ms); });
  auto slow = Fetch("GET", server.Url("/"), "", {}, 2s);
  ASSERT_TRUE(slow.ok()) << slow.status().ToString();
  EXPECT_EQ(slow->body, "slow but fine");

  asio::io_context io;
  tcp::socket idle(io);
  idle.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), server.port()));
  char byte;
  std::optional<boost::system::error_code> read_ended;
  idle.async_read_some(asio::buffer(&byte, 1),
                       [&](boost::system::error_code ec, size_t) { read_ended = ec; });
  io.run_for(5s);  // returns as soon as the server closes the connection
  ASSERT_TRUE(read_ended.has_value()) << "the idle connection was not closed";
  EXPECT_EQ(*read_ended, asio::error::eof);
  server.RunOnIo([&] { timer.reset(); });
}

TEST(HttpTest, AHandlerThatThrowsAnswers500) {
  TestServer server([](Request&&, Responder) -> void { throw std::runtime_error("boom"); });
  auto result = Fetch("GET", server.Url("/"));
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->status, 500);
  EXPECT_EQ(result->body, "internal error: boom\n");
}

TEST(HttpTest, DrainClosesIdleKeepAliveConnectionsAtOnce) {
  TestServer server(EchoHandler);
  asio::io_context io;
  tcp::socket socket(io);
  socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), server.port()));
  bhttp::request<bhttp::string_body> request(bhttp::verb::get, "/", 11);
  request.set(bhttp::field::host, "x");
  bhttp::write(socket, request);
  boost::beast::flat_buffer buffer;
  bhttp::response<bhttp::string_body> response;
  bhttp::read(socket, buffer, response);
  ASSERT_TRUE(response.keep_alive());  // now idle, waiting for its next request

  std::atomic<bool> drained{false};
  server.RunOnIo([&] { server.server().Drain([&] { drained = true; }); });
  EXPECT_TRUE(WaitFor([&] { return drained.load(); }));
  char byte;
  std::optional<boost::system::error_code> read_ended;
  socket.async_read_some(asio::buffer(&byte, 1),
                         [&](boost::system::error_code ec, size_t) { read_ended = ec; });
  io.run_for(5s);
  ASSERT_TRUE(read_ended.has_value());
  EXPECT_EQ(*read_ended, asio::error::eof);
}

TEST(HttpTest, FetchToAClosedPortIsUnavailableAndNamesIt) {
  asio::io_context io;
  tcp::acceptor probe(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  uint16_t port = probe.local_endpoint().port();
  probe.close();
  auto result = Fetch("GET", "http://127.0.0.1:" + std::to_string(port) + "/x");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(result.status().message(),
            "cannot connect to 127.0.0.1:" + std::to_string(port) + ": connection refused");
}

TEST(HttpTest, FetchTimesOutAgainstAServerThatNeverAnswers) {
  std::atomic<int> received{0};
  std::vector<Responder> kept;  // only touched on the io thread
  TestServer server([&](Request&&, Responder respond) {
    ++received;
    kept.push_back(std::move(respond));
  });
  auto start = std::chrono::steady_clock::now();
  auto result = Fetch("GET", server.Url("/never"), "", {}, 200ms);
  auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kDeadlineExceeded) << result.status().ToString();
  EXPECT_NE(result.status().message().find("127.0.0.1:" + std::to_string(server.port())),
            std::string::npos)
      << result.status().message();
  EXPECT_GE(elapsed, 200ms);
  EXPECT_LT(elapsed, 3s);
  EXPECT_EQ(received.load(), 1);
  server.RunOnIo([&] { kept.clear(); });
}

TEST(HttpTest, AsyncFetchRunsOnTheGivenIoContext) {
  TestServer server(EchoHandler);
  asio::io_context io;
  std::optional<Result<Response>> first, second;
  std::thread::id caller;
  AsyncFetch(io, "PUT", server.Url("/one?a=b"), "payload", {{"X-A", "1"}}, 2s,
             [&](Result<Response> r) {
               caller = std::this_thread::get_id();
               first.emplace(std::move(r));
             });
  AsyncFetch(io, "GET", "not a url", "", {}, 2s,
             [&](Result<Response> r) { second.emplace(std::move(r)); });
  EXPECT_FALSE(first.has_value());  // nothing runs before the io_context does
  EXPECT_FALSE(second.has_value());
  io.run();
  ASSERT_TRUE(first.has_value());
  ASSERT_TRUE(first->ok()) << first->status().ToString();
  EXPECT_EQ(caller, std::this_thread::get_id());
  auto j = nlohmann::json::parse((*first)->body);
  EXPECT_EQ(j["method"], "PUT");
  EXPECT_EQ(j["body"], "payload");
  EXPECT_EQ(j["query"]["a"], "b");
  EXPECT_EQ(j["headers"]["x-a"], "1");
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->status().code(), StatusCode::kInvalidArgument);
}

TEST(HttpTest, LargeBodiesPassAndOversizedRequestsGet413) {
  TestServer server(
      [](Request&& request, Responder respond) { respond(Response::Text(200, request.body)); });
  std::string large(5 << 20, 'x');
  for (size_t i = 0; i < large.size(); i += 4093) large[i] = static_cast<char>('a' + i % 26);
  auto result = Fetch("POST", server.Url("/big"), large, {}, 10s);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->status, 200);
  EXPECT_EQ(result->body.size(), large.size());
  EXPECT_TRUE(result->body == large);

  auto too_large = Fetch("POST", server.Url("/big"), std::string((16 << 20) + 1, 'y'), {}, 10s);
  ASSERT_TRUE(too_large.ok()) << too_large.status().ToString();
  EXPECT_EQ(too_large->status, 413);
}

TEST(HttpTest, ExpectContinueIsHonoured) {
  TestServer server([](Request&& request, Responder respond) {
    respond(Response::Text(200, std::to_string(request.body.size())));
  });
  auto result =
      Fetch("PUT", server.Url("/c"), std::string(4096, 'z'), {{"Expect", "100-continue"}});
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->status, 200);
  EXPECT_EQ(result->body, "4096");
}

TEST(HttpTest, ListenOnAPortInUseIsUnavailableAndNamesTheAddress) {
  TestServer first(EchoHandler);
  asio::io_context io;
  Server second(io, EchoHandler);
  auto result = second.Listen("127.0.0.1", first.port());
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(result.status().message(),
            "address 127.0.0.1:" + std::to_string(first.port()) + " already in use");
}

TEST(HttpTest, ParseUrlAcceptsHostPortTargetAndRejectsTheRest) {
  auto full = ParseUrl("http://example.com:8080/a/b?c=d");
  ASSERT_TRUE(full.ok());
  EXPECT_EQ(full->host, "example.com");
  EXPECT_EQ(full->port, 8080);
  EXPECT_EQ(full->target, "/a/b?c=d");
  auto bare = ParseUrl("http://localhost");
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ(bare->port, 80);
  EXPECT_EQ(bare->target, "/");
  auto v6 = ParseUrl("http://[::1]:7000/x");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 7000);

  for (std::string bad : {"example.com/x", "https://a:1/", "http://:80/", "http://a:0/",
                          "http://a:70000/", "http://a:x/", "http://a:/"}) {
    auto r = ParseUrl(bad);
    EXPECT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(r.status().message().find(bad), std::string::npos) << r.status().message();
  }
}

TEST(HttpTest, PercentCoding) {
  EXPECT_EQ(PercentDecode("a%20b+c", false), "a b+c");
  EXPECT_EQ(PercentDecode("a%20b+c", true), "a b c");
  EXPECT_EQ(PercentDecode("100%", true), "100%");
  EXPECT_EQ(PercentDecode("%zz%4", true), "%zz%4");
  EXPECT_EQ(PercentEncode("a b/c~"), "a%20b%2Fc~");
  EXPECT_EQ(PercentDecode(PercentEncode("k\x01\xff/?&="), false), "k\x01\xff/?&=");
}

}  // namespace
}  // namespace hafab::http
