// ReadWhole: a file's bytes, "" when it cannot be read. For /proc files of processes that may
// exit while they are read: libstdc++'s istreambuf_iterator throws when read() fails (ESRCH),
// stdio does not.
#pragma once

#include <cstdio>
#include <string>

namespace hafab::testing {

inline std::string ReadWhole(const std::string& path) {
  std::string out;
  if (FILE* f = std::fopen(path.c_str(), "re")) {
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
    std::fclose(f);
  }
  return out;
}

}  // namespace hafab::testing
