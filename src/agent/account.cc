#include "agent/account.h"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace hafab::agent {

Result<Account> ResolveAccount(const std::string& user, const std::string& group) {
  if (user.empty() && group.empty()) return Status::InvalidArgument("no user and no group");
  Account a;
  a.uid = geteuid();
  a.gid = getegid();
  std::vector<char> buf(16384);
  if (!user.empty()) {
    passwd pw{};
    passwd* found = nullptr;
    int err = getpwnam_r(user.c_str(), &pw, buf.data(), buf.size(), &found);
    if (found == nullptr) {
      return Status::NotFound("user '" + user + "' does not exist on this node" +
                              (err != 0 ? std::string(" (") + strerror(err) + ")" : ""));
    }
    a.user = user;
    a.uid = pw.pw_uid;
    a.gid = pw.pw_gid;
    a.home = pw.pw_dir;
    int n = 64;
    std::vector<gid_t> groups(static_cast<size_t>(n));
    if (getgrouplist(user.c_str(), a.gid, groups.data(), &n) < 0) {
      groups.resize(static_cast<size_t>(n));
      getgrouplist(user.c_str(), a.gid, groups.data(), &n);
    }
    groups.resize(static_cast<size_t>(n));
    a.groups = std::move(groups);
  }
  if (!group.empty()) {
    ::group gr{};
    ::group* found = nullptr;
    int err = getgrnam_r(group.c_str(), &gr, buf.data(), buf.size(), &found);
    if (found == nullptr) {
      return Status::NotFound("group '" + group + "' does not exist on this node" +
                              (err != 0 ? std::string(" (") + strerror(err) + ")" : ""));
    }
    a.gid = gr.gr_gid;
    if (user.empty()) a.groups = {a.gid};
  }
  return a;
}

}  // namespace hafab::agent
