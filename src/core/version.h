// The project's version: `project(hafab VERSION …)` in CMakeLists.txt, compiled into
// version.cc by the build so that `hafab --version`, the agents' heartbeats and the Debian
// package always agree.
#pragma once

namespace hafab {

extern const char kVersion[];  // "MAJOR.MINOR.PATCH"

}  // namespace hafab
