// Free TCP ports on 127.0.0.1 for tests that start real servers (processes, etcd).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

#include "core/port_free.h"

namespace hafab::testing {

using hafab::PortFree;

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
