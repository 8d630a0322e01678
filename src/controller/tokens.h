// Bearer tokens of the controller API: `<state-dir>/admin.token` (everything) and
// `<state-dir>/read.token` (GET only), created at first start with mode 0600.
#pragma once

#include <string>

#include "core/result.h"

namespace hafab::controller {

struct Tokens {
  std::string admin;
  std::string read;
};

// Reads both tokens, creating any that is missing (32 random bytes from the kernel, hex,
// written 0600 with O_EXCL so two starters never disagree). The tokens are secrets, not
// part of a reproducible run, so they come from /dev/urandom rather than hafab::Random.
// Errors: Unavailable naming the file that cannot be read or written.
Result<Tokens> LoadOrCreateTokens(const std::string& state_dir);

// Compares in time independent of where the strings differ.
bool TokenEquals(const std::string& a, const std::string& b);

// What a request's `Authorization: Bearer TOKEN` header grants.
enum class Access { kNone, kRead, kAdmin };  // kRead: GET only
Access Authorize(const Tokens& tokens, const std::string& authorization);

}  // namespace hafab::controller
