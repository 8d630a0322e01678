#include "controller/tokens.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string_view>
#include <vector>

#include "manifest/units.h"

namespace hafab::controller {

namespace {

std::string Hex(std::string_view raw) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

}  // namespace

std::string HmacSha256Hex(const std::string& key, const std::string& message) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac, &len);
  return Hex(std::string_view(reinterpret_cast<const char*>(mac), len));
}

Result<std::string> RandomSecretHex(size_t bytes) {
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
  return Hex(raw);
}

namespace {

// "<kind>.<name>.<hex HMAC-SHA256 of '<kind>.<name>' under key>". Names hold no '.'.
std::string Credential(const std::string& key, std::string_view kind, const std::string& name) {
  const std::string message = std::string(kind) + "." + name;
  return message + "." + HmacSha256Hex(key, message);
}

Result<std::string> ReadOrCreate(const std::string& path) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (::access(path.c_str(), F_OK) == 0) return ReadTokenFile(path);
    HAFAB_ASSIGN_OR_RETURN(std::string token, RandomSecretHex(32));
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

Result<std::string> ReadTokenFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::Unavailable(path + ": " + std::strerror(errno));
  std::stringstream ss;
  ss << in.rdbuf();
  std::string t = ss.str();
  while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
  if (t.empty()) return Status::Unavailable(path + ": empty; delete it to make a new one");
  return t;
}

Status WriteSecretFile(const std::string& path, const std::string& secret) {
  const std::string tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Status::Unavailable(tmp + ": " + std::strerror(errno));
  const std::string line = secret + "\n";
  bool ok = fchmod(fd, 0600) == 0;  // an old tmp file keeps its mode through O_TRUNC
  ok = write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) && ok;
  ok = fsync(fd) == 0 && ok;
  close(fd);
  if (!ok || rename(tmp.c_str(), path.c_str()) != 0) {
    unlink(tmp.c_str());
    return Status::Unavailable(path + ": cannot write: " + std::strerror(errno));
  }
  return Status::Ok();
}

std::vector<std::string> SplitPath(const std::string& path) {
  std::vector<std::string> parts;
  size_t i = 0;
  while (i < path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    if (j > i) parts.push_back(path.substr(i, j - i));
    i = j + 1;
  }
  return parts;
}

Result<Tokens> LoadOrCreateTokens(const std::string& state_dir) {
  Tokens t;
  HAFAB_ASSIGN_OR_RETURN(t.admin, ReadOrCreate(state_dir + "/admin.token"));
  HAFAB_ASSIGN_OR_RETURN(t.read, ReadOrCreate(state_dir + "/read.token"));
  HAFAB_ASSIGN_OR_RETURN(t.key, ReadOrCreate(state_dir + "/cluster.key"));
  return t;
}

std::string AgentCredential(const std::string& key, const std::string& node) {
  return Credential(key, "agent", node);
}

std::string RingKey(const std::string& key) { return HmacSha256Hex(key, "ring"); }

std::string GatewayCredential(const std::string& key, const std::string& id) {
  return Credential(key, "gateway", id);
}

bool TokenEquals(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

Principal Authenticate(const Tokens& tokens, const std::string& authorization) {
  if (authorization.rfind("Bearer ", 0) != 0) return {};
  const std::string token = authorization.substr(7);
  if (token.empty()) return {};
  if (TokenEquals(token, tokens.admin)) return {Access::kAdmin, ""};
  if (TokenEquals(token, tokens.read)) return {Access::kRead, ""};
  // A component credential: recompute the mac of the name it claims.
  const size_t first = token.find('.');
  const size_t last = token.rfind('.');
  if (tokens.key.empty() || first == std::string::npos || last == first) return {};
  if (tokens.verified) {
    if (auto who = tokens.verified->Find(tokens.key, token)) return *who;
  }
  const std::string kind = token.substr(0, first);
  const std::string name = token.substr(first + 1, last - first - 1);
  if (!manifest::IsValidName(name)) return {};
  Principal who;
  if (kind == "agent" && TokenEquals(token, AgentCredential(tokens.key, name))) {
    who = {Access::kAgent, name};
  } else if (kind == "gateway" && TokenEquals(token, GatewayCredential(tokens.key, name))) {
    who = {Access::kGateway, name};
  } else {
    return {};
  }
  if (tokens.verified) tokens.verified->Add(tokens.key, token, who);
  return who;
}

std::optional<Principal> VerifiedCredentials::Find(const std::string& key,
                                                   const std::string& token) {
  std::lock_guard lock(mu_);
  if (key != key_) return std::nullopt;
  auto it = by_token_.find(token);
  if (it == by_token_.end()) return std::nullopt;
  return it->second;
}

void VerifiedCredentials::Add(const std::string& key, const std::string& token,
                              const Principal& who) {
  std::lock_guard lock(mu_);
  if (key != key_ || by_token_.size() >= kMaxEntries) {
    by_token_.clear();
    key_ = key;
  }
  by_token_.emplace(token, who);
}

Status Permit(const Principal& who, const std::string& method, const std::string& path) {
  const std::vector<std::string> p = SplitPath(path);
  const bool v1 = p.size() >= 2 && p[0] == "v1";
  if (method == "GET" && p.size() == 2 && v1 && p[1] == "leader" && who.access != Access::kNone) {
    return Status::Ok();
  }
  switch (who.access) {
    case Access::kNone:
      return Status::PermissionDenied("Authorization: no valid credential");
    case Access::kAdmin:
      return Status::Ok();
    case Access::kRead:
      if (method != "GET") {
        return Status::PermissionDenied("Authorization: the read token allows GET only");
      }
      return Status::Ok();
    case Access::kAgent:
      if (p.size() == 4 && v1 && p[1] == "agents" && p[2] == who.name &&
          ((method == "POST" && p[3] == "heartbeat") ||
           (method == "GET" && p[3] == "assignments"))) {
        return Status::Ok();
      }
      return Status::PermissionDenied("Authorization: the agent credential of node " + who.name +
                                      " allows only POST /v1/agents/" + who.name +
                                      "/heartbeat and GET /v1/agents/" + who.name + "/assignments");
    case Access::kGateway:
      if ((method == "GET" && p.size() == 2 && v1 && p[1] == "routes") ||
          (method == "POST" && p.size() == 4 && v1 && p[1] == "gateways" && p[2] == who.name &&
           p[3] == "heartbeat")) {
        return Status::Ok();
      }
      return Status::PermissionDenied("Authorization: the credential of gateway " + who.name +
                                      " allows only GET /v1/routes and POST /v1/gateways/" +
                                      who.name + "/heartbeat");
  }
  return Status::PermissionDenied("Authorization: unknown access");
}

}  // namespace hafab::controller
