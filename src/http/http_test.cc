#include "http/http.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <fstream>
#include <future>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

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
    RunOnIo([this] {
      if (drop_) drop_();
      server_.Stop();
    });
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

  // Runs `drop` on the io thread before the server stops: a test that keeps Responders
  // drops them there (a Responder holds its connection, which must not outlive the
  // io_context, and is dropped on the thread that runs it).
  void DropBeforeStop(std::function<void()> drop) { drop_ = std::move(drop); }

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
  std::function<void()> drop_;
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
  server.DropBeforeStop([&] { pending.reset(); });
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
  server.DropBeforeStop([&] { pending.reset(); });
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
  server.DropBeforeStop([&] { pending.reset(); });
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

// An idle keep-alive connection (HTTP/1.1, no request in flight) of a server in drain.
struct IdleConnection {
  explicit IdleConnection(uint16_t port) : socket(io) {
    socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    EXPECT_TRUE(Get().keep_alive());  // now idle, waiting for its next request
  }
  bhttp::response<bhttp::string_body> Get() {
    bhttp::request<bhttp::string_body> request(bhttp::verb::get, "/", 11);
    request.set(bhttp::field::host, "x");
    bhttp::write(socket, request);
    bhttp::response<bhttp::string_body> response;
    bhttp::read(socket, buffer, response);
    return response;
  }
  // How the next read ends (eof: a clean close), within 5 s.
  std::optional<boost::system::error_code> ReadEnd() {
    char byte;
    std::optional<boost::system::error_code> ended;
    socket.async_read_some(asio::buffer(&byte, 1),
                           [&](boost::system::error_code ec, size_t) { ended = ec; });
    io.restart();
    io.run_for(5s);
    return ended;
  }
  asio::io_context io;
  tcp::socket socket;
  boost::beast::flat_buffer buffer;
};

TEST(HttpTest, DrainAnswersTheNextRequestOfAKeepAliveConnectionWithConnectionClose) {
  TestServer server(EchoHandler);
  IdleConnection idle(server.port());
  std::atomic<bool> drained{false};
  server.RunOnIo([&] { server.server().Drain([&] { drained = true; }, 10s); });
  EXPECT_FALSE(drained.load()) << "the idle connection stays open for its next request";
  auto response = idle.Get();
  EXPECT_EQ(response.result_int(), 200);
  EXPECT_FALSE(response.keep_alive()) << "answered with Connection: close";
  auto end = idle.ReadEnd();
  ASSERT_TRUE(end.has_value());
  EXPECT_EQ(*end, asio::error::eof) << "a clean close, not a reset";
  EXPECT_TRUE(WaitFor([&] { return drained.load(); }));
  // New connections are refused.
  EXPECT_EQ(Fetch("GET", server.Url("/"), "", {}, 1s).status().code(), StatusCode::kUnavailable);
}

TEST(HttpTest, DrainClosesConnectionsStillIdleAfterIdleClose) {
  TestServer server(EchoHandler);
  IdleConnection idle(server.port());
  std::atomic<bool> drained{false};
  TimePoint t0 = RealClock().Now();
  server.RunOnIo([&] { server.server().Drain([&] { drained = true; }, 200ms); });
  auto end = idle.ReadEnd();
  ASSERT_TRUE(end.has_value());
  EXPECT_EQ(*end, asio::error::eof);
  EXPECT_GE(RealClock().Now() - t0, 200ms);
  EXPECT_TRUE(WaitFor([&] { return drained.load(); }));
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

// The listen drops of this network namespace (a full listen queue dropping a SYN).
uint64_t ListenDrops() {
  std::ifstream netstat("/proc/net/netstat");
  std::string header, values;
  while (std::getline(netstat, header) && std::getline(netstat, values)) {
    std::istringstream names(header), numbers(values);
    std::string name, number;
    while (names >> name && numbers >> number) {
      if (name == "ListenDrops") return std::stoull(number);
    }
  }
  return 0;
}

TEST(HttpTest, FetchSendsAnotherSynWellBeforeTheKernelsOneSecond) {
  // A listener whose queue is full: its backlog of 0 holds one unaccepted connection.
  asio::io_context io;
  tcp::acceptor listener(io);
  listener.open(tcp::v4());
  listener.bind(tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  listener.listen(0);
  const uint16_t port = listener.local_endpoint().port();
  tcp::socket filler(io);
  filler.connect(listener.local_endpoint());
  const uint64_t drops_before = ListenDrops();

  std::thread server([&] {
    // Once the client's first SYN was dropped, room is made, and the connection that comes
    // next is answered.
    WaitFor([&] { return ListenDrops() > drops_before; }, 3s);
    tcp::socket first = listener.accept();
    first.close();
    tcp::socket client = listener.accept();
    asio::streambuf request;
    boost::system::error_code ec;
    asio::read_until(client, request, "\r\n\r\n", ec);
    asio::write(client,
                asio::buffer(std::string_view(
                    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")),
                ec);
  });
  auto start = std::chrono::steady_clock::now();
  auto result = Fetch("GET", "http://127.0.0.1:" + std::to_string(port) + "/x", "", {}, 5s);
  auto elapsed = std::chrono::steady_clock::now() - start;
  server.join();
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->body, "ok");
  EXPECT_GT(ListenDrops(), drops_before);
  // The kernel alone retransmits the SYN after 1 s; the second attempt goes after 250 ms.
  EXPECT_LT(elapsed, 900ms);
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

// Opens `n` TCP connections to `port` that send nothing (from `source`, a loopback address).
std::vector<std::unique_ptr<tcp::socket>> IdleConnections(asio::io_context& io, uint16_t port,
                                                          int n,
                                                          const std::string& source = "127.0.0.1") {
  std::vector<std::unique_ptr<tcp::socket>> out;
  for (int i = 0; i < n; ++i) {
    auto s = std::make_unique<tcp::socket>(io);
    s->open(tcp::v4());
    s->bind(tcp::endpoint(asio::ip::make_address(source), 0));
    s->connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    out.push_back(std::move(s));
  }
  return out;
}

// The header check answers a request without a credential before its body is read (10 MB
// announced, none sent), and bounds each endpoint's body.
TEST(HttpTest, HeaderCheckRefusesBeforeTheBodyIsRead) {
  std::atomic<int> handled{0};
  TestServer server([&](Request&& request, Responder respond) {
    ++handled;
    respond(Response::Text(200, std::to_string(request.body.size())));
  });
  server.RunOnIo([&] {
    server.server().SetHeaderCheck([](const Request& head) {
      Admission a;
      if (head.Header("authorization") != "Bearer t") a.refuse = Response::Text(401, "no\n");
      a.body_limit = head.path == "/small" ? 1000 : 1 << 20;
      return a;
    });
  });
  asio::io_context io;
  tcp::socket s(io);
  s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), server.port()));
  asio::write(s, asio::buffer(std::string("POST /big HTTP/1.1\r\nHost: x\r\n"
                                          "Content-Length: 10000000\r\n\r\n")));
  boost::beast::flat_buffer buffer;
  bhttp::response<bhttp::string_body> answer;
  bhttp::read(s, buffer, answer);  // returns without our sending a byte of the body
  EXPECT_EQ(answer.result_int(), 401u);
  EXPECT_EQ(handled, 0);

  Headers auth = {{"Authorization", "Bearer t"}};
  auto small = Fetch("POST", server.Url("/small"), std::string(1000, 'x'), auth);
  ASSERT_TRUE(small.ok()) << small.status().ToString();
  EXPECT_EQ(small->body, "1000");
  auto too_big = Fetch("POST", server.Url("/small"), std::string(1001, 'x'), auth);
  ASSERT_TRUE(too_big.ok()) << too_big.status().ToString();
  EXPECT_EQ(too_big->status, 413);
  EXPECT_EQ(too_big->body, "request body larger than 1000 bytes, the most this endpoint takes\n");
  EXPECT_EQ(handled, 1);
}

// An idle flood evicts itself: the listener holds at most max_connections, the oldest idle
// ones go first, a request in flight is never evicted, and new requests are served at once.
TEST(HttpTest, IdleFloodIsShedAndRequestsAreStillServed) {
  Responder parked;
  TestServer server([&](Request&& request, Responder respond) {
    if (request.path == "/park") {
      parked = std::move(respond);
    } else {
      respond(Response::Text(200, "ok"));
    }
  });
  server.DropBeforeStop([&] { parked = nullptr; });
  server.RunOnIo([&] {
    ServerLimits limits;
    limits.max_connections = 50;
    limits.max_per_peer = 20;
    server.server().SetLimits(limits);
  });
  std::future<Result<Response>> parked_answer = std::async(
      std::launch::async, [&] { return Fetch("GET", server.Url("/park"), "", {}, 20s); });
  ASSERT_TRUE(WaitFor(
      [&] {
        bool set = false;
        server.RunOnIo([&] { set = parked != nullptr; });
        return set;
      },
      5s));

  asio::io_context io;
  auto flood = IdleConnections(io, server.port(), 300);
  auto start = std::chrono::steady_clock::now();
  auto served = Fetch("GET", server.Url("/"), "", {}, 2s);
  ASSERT_TRUE(served.ok()) << served.status().ToString();
  EXPECT_EQ(served->body, "ok");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
  ServerStats stats;
  server.RunOnIo([&] { stats = server.server().stats(); });
  EXPECT_LE(stats.open, 20u);  // one peer: 127.0.0.1
  EXPECT_GE(stats.evicted, 280u);

  // Another peer address has its own share.
  auto other = IdleConnections(io, server.port(), 30, "127.0.0.2");
  ASSERT_TRUE(WaitFor(
      [&] {
        server.RunOnIo([&] { stats = server.server().stats(); });
        return stats.open >= 35;
      },
      5s))
      << stats.open;
  EXPECT_LE(stats.open, 40u);

  server.RunOnIo([&] { parked(Response::Text(200, "parked")); });
  auto answer = parked_answer.get();
  ASSERT_TRUE(answer.ok()) << answer.status().ToString();
  EXPECT_EQ(answer->body, "parked");
}

// A connection that never completes its first header is closed at the header timeout, one
// that stops sending its body at the body timeout.
TEST(HttpTest, HeaderAndBodyDeadlines) {
  TestServer server([](Request&&, Responder respond) { respond(Response::Text(200, "ok")); });
  server.RunOnIo([&] {
    ServerLimits limits;
    limits.header_timeout = 100ms;
    limits.body_timeout = 100ms;
    server.server().SetLimits(limits);
  });
  auto closed_within = [&](const std::string& sent) {
    asio::io_context io;
    tcp::socket s(io);
    s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), server.port()));
    asio::write(s, asio::buffer(sent));
    char byte;
    std::optional<boost::system::error_code> ended;
    s.async_read_some(asio::buffer(&byte, 1),
                      [&](boost::system::error_code ec, size_t) { ended = ec; });
    auto start = std::chrono::steady_clock::now();
    io.run_for(5s);
    EXPECT_TRUE(ended.has_value());
    return std::chrono::steady_clock::now() - start;
  };
  EXPECT_LT(closed_within("GET / HTTP/1.1\r\nHost: x\r\n"), 3s);  // header never ends
  EXPECT_LT(closed_within("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"), 3s);
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
  EXPECT_FALSE(v6->tls);
  auto tls = ParseUrl("https://10.0.0.1:7070/v1/status");
  ASSERT_TRUE(tls.ok());
  EXPECT_TRUE(tls->tls);
  EXPECT_EQ(tls->port, 7070);
  EXPECT_EQ(ParseUrl("https://a")->port, 443);

  for (std::string bad : {"example.com/x", "ftp://a:1/", "http://:80/", "http://a:0/",
                          "http://a:70000/", "http://a:x/", "http://a:/"}) {
    auto r = ParseUrl(bad);
    EXPECT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(r.status().message().find(bad), std::string::npos) << r.status().message();
  }
  EXPECT_EQ(Authority(*v6), "[::1]:7000");  // the Host header and messages keep the brackets
  EXPECT_EQ(Authority(*ParseUrl("http://127.0.0.1/")), "127.0.0.1:80");
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
