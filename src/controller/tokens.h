// Credentials of the controller API and what each may do (docs/architecture.md, "Identities").
//
// Operators: `<state-dir>/admin.token` (everything) and `<state-dir>/read.token` (every GET,
// with the value of every env variable redacted). Components: one credential per agent and per
// gateway, `agent.<node>.<mac>` and `gateway.<id>.<mac>`, where mac is HMAC-SHA256 (hex) of
// `agent.<node>` / `gateway.<id>` under the cluster key `<state-dir>/cluster.key`. The
// controller stores none of them: it recomputes the mac of the name a credential claims. An
// agent's credential acts for its own node only, a gateway's for its own id only. Every file is
// created at first start with mode 0600; replacing cluster.key revokes every component
// credential at once.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/result.h"

namespace hafab::controller {

class VerifiedCredentials;

struct Tokens {
  std::string admin;
  std::string read;
  std::string key;  // cluster key; empty: no agent or gateway credential is valid
  // The component credentials verified so far, shared by the copies of these tokens.
  std::shared_ptr<VerifiedCredentials> verified = std::make_shared<VerifiedCredentials>();
};

// Reads the tokens and the cluster key, creating any that is missing (32 random bytes from the
// kernel, hex, written 0600 with O_EXCL so two starters never disagree). They are secrets, not
// part of a reproducible run, so they come from /dev/urandom rather than hafab::Random.
// Errors: Unavailable naming the file that cannot be read or written.
Result<Tokens> LoadOrCreateTokens(const std::string& state_dir);

// HMAC-SHA256 of `message` under `key`, hex.
std::string HmacSha256Hex(const std::string& key, const std::string& message);
// `bytes` random bytes from /dev/urandom, hex. Unavailable when it cannot be read.
Result<std::string> RandomSecretHex(size_t bytes);

// A token or key file's content without its trailing newline. Unavailable naming the file when
// it cannot be read or is empty.
Result<std::string> ReadTokenFile(const std::string& path);
// Replaces `path` by `secret` and a newline, mode 0600, atomically (a temporary file renamed).
Status WriteSecretFile(const std::string& path, const std::string& secret);

// The credential of `node`'s agent, or of gateway `id`, under `key` (see above).
// REQUIRES: the name is a valid name (manifest::IsValidName) and `key` is not empty.
std::string AgentCredential(const std::string& key, const std::string& node);
std::string GatewayCredential(const std::string& key, const std::string& id);

// The key agents sign their ring datagrams with (settings.failure_detector: ring;
// agent/ring_datagram.h): HMAC-SHA256 (hex) of `ring` under the cluster `key`. Agents get it with
// their assignments; replacing cluster.key replaces it. REQUIRES: `key` is not empty.
std::string RingKey(const std::string& key);

// Compares in time independent of where the strings differ.
bool TokenEquals(const std::string& a, const std::string& b);

// Who a request's `Authorization: Bearer TOKEN` header names.
enum class Access {
  kNone,     // missing, malformed or unknown: 401
  kRead,     // every GET; env values redacted (api.h, kRedacted)
  kAdmin,    // everything
  kAgent,    // heartbeat and assignments of node `name`
  kGateway,  // routes, and the heartbeat (acknowledgement) of gateway `name`
};
struct Principal {
  Access access = Access::kNone;
  std::string name;  // the node (kAgent) or gateway id (kGateway)
};
Principal Authenticate(const Tokens& tokens, const std::string& authorization);

// Component credentials that verified under a cluster key, so that each request does not
// compute an HMAC again (two per request, with OpenSSL 3's algorithm look-ups: 9 % of the
// controller's time at 1 000 ring nodes, bench/RESULTS.md "Keep-alives"). Only credentials
// that verified are kept, so a caller without the key cannot fill it; at kMaxEntries it starts
// over.
// Thread-safe.
class VerifiedCredentials {
 public:
  static constexpr size_t kMaxEntries = 65536;

  std::optional<Principal> Find(const std::string& key, const std::string& token);
  void Add(const std::string& key, const std::string& token, const Principal& who);

 private:
  std::mutex mu_;
  std::string key_;  // the key they verified under (another key empties the set)
  std::unordered_map<std::string, Principal> by_token_;
};

// "/v1/agents/n1/heartbeat" -> {"v1", "agents", "n1", "heartbeat"} (empty parts dropped).
std::vector<std::string> SplitPath(const std::string& path);

// Whether `who` may send `method` to the API path `path` (decoded, without the query).
// Every principal may GET /v1/leader. Errors: PermissionDenied saying what the credential
// allows (answered 403); for kNone, PermissionDenied too (the caller answers 401 first).
Status Permit(const Principal& who, const std::string& method, const std::string& path);

}  // namespace hafab::controller
