#include "agent/log_writer.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string_view>

namespace hafab::agent {
namespace {

namespace fs = std::filesystem;

constexpr size_t kBufferBytes = 64 << 10;

class Log {
 public:
  explicit Log(const LogWriterOptions& o) : o_(o) {}
  ~Log() {
    if (fd_ >= 0) close(fd_);
  }

  bool Open() {
    fd_ = open(o_.path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ < 0) return Fail("open");
    if (o_.uid != static_cast<uid_t>(-1) || o_.gid != static_cast<gid_t>(-1)) {
      if (fchown(fd_, o_.uid, o_.gid) != 0) return Fail("chown");
    }
    struct stat st;
    if (fstat(fd_, &st) != 0) return Fail("stat");
    size_ = static_cast<uint64_t>(st.st_size);
    return true;
  }

  // Writes `text`, rotating before any whole line that would not fit.
  bool Write(std::string_view text) {
    while (!text.empty()) {
      const uint64_t room = size_ < o_.max_bytes ? o_.max_bytes - size_ : 0;
      size_t take = text.size();
      if (take > room) {
        // The longest run of whole lines that fits; none fits: rotate first, unless the file
        // is empty (a line longer than max_bytes is cut).
        size_t nl = room == 0 ? std::string_view::npos : text.rfind('\n', room - 1);
        if (nl != std::string_view::npos) {
          take = nl + 1;
        } else if (size_ > 0) {
          if (!Rotate()) return false;
          continue;
        } else {
          take = static_cast<size_t>(o_.max_bytes);
        }
      }
      if (!WriteAll(text.substr(0, take))) return false;
      text.remove_prefix(take);
    }
    return true;
  }

 private:
  bool WriteAll(std::string_view s) {
    while (!s.empty()) {
      ssize_t n = write(fd_, s.data(), s.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return Fail("write");
      s.remove_prefix(static_cast<size_t>(n));
      size_ += static_cast<uint64_t>(n);
    }
    return true;
  }

  bool Rotate() {
    std::error_code ec;
    if (o_.keep == 0) {
      fs::remove(o_.path, ec);
    } else {
      fs::remove(o_.path + "." + std::to_string(o_.keep), ec);
      for (int i = o_.keep - 1; i >= 1; --i) {
        fs::rename(o_.path + "." + std::to_string(i), o_.path + "." + std::to_string(i + 1), ec);
      }
      fs::rename(o_.path, o_.path + ".1", ec);
      if (ec) {
        std::fprintf(stderr, "log-writer: rename %s: %s\n", o_.path.c_str(), ec.message().c_str());
        return false;
      }
    }
    close(fd_);
    fd_ = -1;
    if (!Open()) return false;
    if (size_ > 0) {  // the old file was not moved away: never loop on it
      std::fprintf(stderr, "log-writer: cannot rotate %s\n", o_.path.c_str());
      return false;
    }
    return true;
  }

  bool Fail(const char* what) {
    std::fprintf(stderr, "log-writer: %s %s: %s\n", what, o_.path.c_str(), strerror(errno));
    return false;
  }

  const LogWriterOptions& o_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

}  // namespace

int RunLogWriter(int fd, const LogWriterOptions& options) {
  signal(SIGPIPE, SIG_IGN);
  Log log(options);
  if (!log.Open()) return 1;
  std::string buffer;
  buffer.reserve(kBufferBytes);
  char chunk[kBufferBytes];
  while (true) {
    ssize_t n = read(fd, chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    buffer.append(chunk, static_cast<size_t>(n));
    // Whole lines only; a partial line waits for its end unless it fills the buffer.
    size_t end = buffer.rfind('\n');
    size_t take = end == std::string::npos ? 0 : end + 1;
    if (take == 0 && buffer.size() >= kBufferBytes) take = buffer.size();
    if (take == 0) continue;
    if (!log.Write(std::string_view(buffer).substr(0, take))) return 1;
    buffer.erase(0, take);
  }
  return log.Write(buffer) ? 0 : 1;
}

std::vector<std::string> LogFilesOldestFirst(const std::string& path) {
  std::vector<std::string> out;
  std::error_code ec;
  int last = 0;
  while (fs::exists(path + "." + std::to_string(last + 1), ec)) ++last;
  for (int i = last; i >= 1; --i) out.push_back(path + "." + std::to_string(i));
  if (fs::exists(path, ec)) out.push_back(path);
  return out;
}

}  // namespace hafab::agent
