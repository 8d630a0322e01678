// Process resource limits a daemon sets for itself at start.
#pragma once

#include <cstdint>

namespace hafab {

// Raises the soft limit on open files (RLIMIT_NOFILE) to the hard limit, so that a daemon's
// listener sheds connections by its own limits (http::ServerLimits) before the kernel's
// EMFILE. Returns the soft limit now in force (0 if it cannot be read).
uint64_t RaiseOpenFileLimit();

}  // namespace hafab
