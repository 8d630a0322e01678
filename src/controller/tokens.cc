#include "controller/tokens.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace hafab::controller {

namespace {

Result<std::string> RandomHex(size_t bytes) {
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::Unavailable(std::string("/dev/urandom: ") + std::strerror(errno));
  std::string raw(bytes, '\0');
  size_t got = 0;
  while (got < bytes) {
    ssize_t n = read(fd, raw.data() + got, bytes - got);
    if (n <= 0) {
      close(fd);
      return Status::Unavailable("/dev/urandom: short read");
    }
    got += static_cast<size_t>(n);
  }
  close(fd);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

Result<std::string> ReadOrCreate(const std::string& path) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::ifstream in(path);
    if (in) {
      std::stringstream ss;
      ss << in.rdbuf();
      std::string t = ss.str();
      while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
      if (!t.empty()) return t;
      return Status::Unavailable(path + ": empty token file; delete it to make a new token");
    }
    HAFAB_ASSIGN_OR_RETURN(std::string token, RandomHex(32));
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
      if (errno == EEXIST) continue;  // another starter won: read theirs
      return Status::Unavailable(path + ": " + std::strerror(errno));
    }
    std::string line = token + "\n";
    bool ok = write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
    ok = fsync(fd) == 0 && ok;
    close(fd);
    if (!ok) return Status::Unavailable(path + ": cannot write the token");
    return token;
  }
  return Status::Unavailable(path + ": cannot read or create");
}

}  // namespace

Result<Tokens> LoadOrCreateTokens(const std::string& state_dir) {
  Tokens t;
  HAFAB_ASSIGN_OR_RETURN(t.admin, ReadOrCreate(state_dir + "/admin.token"));
  HAFAB_ASSIGN_OR_RETURN(t.read, ReadOrCreate(state_dir + "/read.token"));
  return t;
}

bool TokenEquals(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

Access Authorize(const Tokens& tokens, const std::string& authorization) {
  if (authorization.rfind("Bearer ", 0) != 0) return Access::kNone;
  const std::string token = authorization.substr(7);
  if (token.empty()) return Access::kNone;
  if (TokenEquals(token, tokens.admin)) return Access::kAdmin;
  if (TokenEquals(token, tokens.read)) return Access::kRead;
  return Access::kNone;
}

}  // namespace hafab::controller
