// LogWriter: `hafab log-writer`, the small process between an instance's stdout/stderr (a
// pipe) and its log file. It caps the log's size without losing or splitting lines: when the
// next lines would take the file past max_bytes it renames <path> to <path>.1 (<path>.1 to
// <path>.2, ..., the oldest beyond `keep` removed) and starts a new <path>. Only a line longer
// than max_bytes (or than the 64 KiB read buffer) is cut. A full pipe blocks the writer
// instead of dropping output.
//
// It runs detached (a session of its own, outside the instance's cgroup) so that it outlives
// an agent restart with the instance, and exits when every process holding the pipe's write
// end (the instance and its children) has closed it — after writing what they wrote last.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace hafab::agent {

struct LogWriterOptions {
  std::string path;
  uint64_t max_bytes = 10 << 20;  // per file; REQUIRES: > 0
  int keep = 3;                   // rotated files kept besides <path>; REQUIRES: >= 0
  // Owner of the files when not -1 (the instance's user and group).
  uid_t uid = static_cast<uid_t>(-1);
  gid_t gid = static_cast<gid_t>(-1);
};

// Copies `fd` into the log until EOF. Files are created 0600. Returns the process exit code:
// 0 at EOF, 1 if the log cannot be opened or written (the error is printed on stderr).
int RunLogWriter(int fd, const LogWriterOptions& options);

// The log files of `path` from the oldest rotated one to <path> itself, those that exist.
std::vector<std::string> LogFilesOldestFirst(const std::string& path);

}  // namespace hafab::agent
