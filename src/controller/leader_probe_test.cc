// LeaderProbe against real sockets on loopback (a closed port refuses, a listening one
// accepts) with the fake clock pacing its attempts.
#include "controller/leader_probe.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testing/fake_clock.h"
#include "testing/ports.h"
#include "testing/wait.h"

namespace hafab::controller {
namespace {

using namespace std::chrono_literals;

class LeaderProbeTest : public ::testing::Test {
 protected:
  // Polls, advancing the fake clock one probe interval per call, until Poll says gone or
  // `attempts` polls were made (each waits, in real time, until its connection has an
  // answer, so that loopback's timing does not decide the test).
  bool PollUntilGone(LeaderProbe& probe, const std::string& url, int attempts) {
    for (int i = 0; i < attempts; ++i) {
      clock_.Advance(50ms);
      bool gone = false;
      // A refused or accepted connection is answered within a poll or two on loopback.
      testing::WaitFor([&] { return (gone = probe.Poll(url)); }, 20ms, 1ms);
      if (gone) return true;
    }
    return false;
  }

  testing::FakeClock clock_;
};

TEST_F(LeaderProbeTest, RefusedConnectionsSayTheLeaderIsGone) {
  LeaderProbe probe(clock_);
  uint16_t port = testing::FreePort();  // nothing listens: the kernel answers with a reset
  std::string url = "http://127.0.0.1:" + std::to_string(port);
  ASSERT_TRUE(PollUntilGone(probe, url, 10));
  EXPECT_NE(probe.evidence().find("3 connections to " + url + " refused"), std::string::npos)
      << probe.evidence();
}

TEST_F(LeaderProbeTest, ListeningLeaderIsNeverGone) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), len), 0);
  ASSERT_EQ(::listen(fd, 64), 0);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  LeaderProbe probe(clock_);
  EXPECT_FALSE(
      PollUntilGone(probe, "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)), 20));
  ::close(fd);
}

TEST_F(LeaderProbeTest, OnlyNumericAddressesAreProbed) {
  LeaderProbe probe(clock_);
  EXPECT_FALSE(PollUntilGone(probe, "http://leader.invalid:7070", 10));
  EXPECT_FALSE(PollUntilGone(probe, "", 5));
}

TEST_F(LeaderProbeTest, ANewLeaderUrlStartsTheCountAfresh) {
  LeaderProbe probe(clock_);
  std::string a = "http://127.0.0.1:" + std::to_string(testing::FreePort());
  std::string b = "http://127.0.0.1:" + std::to_string(testing::FreePort());
  EXPECT_FALSE(PollUntilGone(probe, a, 2));  // two refusals of a
  EXPECT_FALSE(PollUntilGone(probe, b, 2));  // do not count for b
  EXPECT_TRUE(PollUntilGone(probe, b, 3));
}

}  // namespace
}  // namespace hafab::controller
