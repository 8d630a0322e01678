// Account: the user and group an instance runs as (manifest `user:` and `group:`, like
// systemd's User= and Group=), resolved on this node from its user database.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "core/result.h"

namespace hafab::agent {

struct Account {
  std::string user;  // as named; "" when only a group was given
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups (the user's, from the group database)
  std::string home;           // HOME for the instance; "" when only a group was given
};

// Resolves `user` (may be "": then the agent's own uid, with only the group changed) and
// `group` ("" = the user's primary group). Errors: NotFound "user 'x' does not exist on this
// node" (or group); InvalidArgument if both are empty.
Result<Account> ResolveAccount(const std::string& user, const std::string& group);

}  // namespace hafab::agent
