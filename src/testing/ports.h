// Free TCP ports on 127.0.0.1 for tests that start real servers (processes, etcd).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

namespace hafab::testing {

// Whether nothing listens on (or lingers in TIME_WAIT on) 127.0.0.1:port.
inline bool PortFree(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  bool free = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return free;
}

// A free port below the ephemeral range (32768+), so that no outgoing connection of
// another test takes it between this check and the server's bind. Consecutive calls
// return different ports; test processes running side by side start from different
// places (spread by pid). 0 if none of the 12000 is free.
inline uint16_t FreePort() {
  static std::atomic<int> next{static_cast<int>((::getpid() * 7919) % 12000)};
  for (int tries = 0; tries < 12000; ++tries) {
    auto port = static_cast<uint16_t>(20000 + next.fetch_add(1) % 12000);
    if (PortFree(port)) return port;
  }
  return 0;
}

}  // namespace hafab::testing
