// Tiny TCP backends and blocking clients on 127.0.0.1, for the tests of the gateway's data
// path and control plane.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace hafab::testing {

// A backend on 127.0.0.1:0. Each connection gets "<name>\n" at once, then every byte it
// sends is echoed. A line "close-write\n" makes the backend shut its write side (after
// echoing that line) and keep reading; a line "reset\n" makes it reset the connection (after
// echoing that line). When the client half-closes, the backend writes "eof\n" and closes.
class TestBackend {
 public:
  explicit TestBackend(std::string name);
  ~TestBackend();
  uint16_t port() const { return port_; }
  const std::string& name() const { return name_; }
  int active() const { return active_.load(); }
  int accepted() const { return accepted_.load(); }
  // Everything received on all connections, in arrival order per connection.
  std::string received() const;
  // Closes the listener and every connection.
  void Stop();

 private:
  void Serve(int fd);
  std::string name_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<int> active_{0}, accepted_{0};
  std::atomic<bool> stopped_{false};
  mutable std::mutex mu_;
  std::string received_;
  std::vector<int> conns_;
  std::vector<std::thread> threads_;
  std::thread acceptor_;
};

// A listening socket on 127.0.0.1 and a free port; -1 on failure.
int ListenOnLoopback(uint16_t* port);
// A port on 127.0.0.1 where nothing listens (bound to 0, then closed).
uint16_t DeadPort();

// Blocking client socket to 127.0.0.1:port with 5 s receive timeout; -1 on failure.
int Dial(uint16_t port);
// Reads one line (without "\n"); "" on EOF, error or timeout.
std::string ReadLine(int fd);
// Reads until EOF; returns what came. `ok` false on a timeout or error other than reset.
std::string ReadAll(int fd, bool* eof);
bool SendAll(int fd, const std::string& data);
// True if the peer has closed (read returns 0 or ECONNRESET) within `timeout`.
bool ClosedWithin(int fd, std::chrono::milliseconds timeout);

}  // namespace hafab::testing
