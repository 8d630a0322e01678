#include "provider/local_provider.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/json.h"

namespace hafab::provider {
namespace {

namespace fs = std::filesystem;

// Holds an exclusive flock on a file for its lifetime.
class FileLock {
 public:
  explicit FileLock(const std::string& path) {
    fd_ = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) {
      error_ = "open " + path + ": " + strerror(errno);
      return;
    }
    while (flock(fd_, LOCK_EX) != 0) {
      if (errno != EINTR) {
        error_ = "flock " + path + ": " + strerror(errno);
        break;
      }
    }
  }
  ~FileLock() {
    if (fd_ >= 0) close(fd_);  // releases the lock
  }
  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }

 private:
  int fd_ = -1;
  std::string error_;
};

Result<VolumeAttachment> ReadRecord(const std::string& path) {
  std::ifstream in(path);
  if (!in) return VolumeAttachment{};
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    auto j = nlohmann::json::parse(ss.str());
    return VolumeAttachment{j.value("node", ""), j.value("instance", "")};
  } catch (const std::exception& e) {
    return Status::Internal("attachment record " + path + " is unreadable: " + e.what());
  }
}

void SyncDir(const std::string& dir) {
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    fsync(fd);
    close(fd);
  }
}

}  // namespace

Status ValidateName(const std::string& what, const std::string& name) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos ||
      name.find('\0') != std::string::npos) {
    return Status::InvalidArgument(what + " name '" + name +
                                   "' is not valid (empty, '.', '..' or contains '/')");
  }
  return Status::Ok();
}

LocalProvider::LocalProvider(std::string root) : root_(std::move(root)) {}

Status LocalProvider::Attach(const std::string& volume, const std::string& node,
                             const std::string& instance) {
  HAFAB_RETURN_IF_ERROR(ValidateName("volume", volume));
  HAFAB_RETURN_IF_ERROR(ValidateName("node", node));
  const std::string dir = root_ + "/" + volume;
  std::error_code ec;
  fs::create_directories(dir + "/data", ec);
  if (ec) return Status::Internal("attach " + volume + ": mkdir " + dir + ": " + ec.message());
  FileLock lock(dir + "/.lock");
  if (!lock.ok()) return Status::Internal("attach " + volume + ": " + lock.error());

  const std::string record = dir + "/attachment";
  const std::string tmp = record + ".tmp." + std::to_string(getpid());
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << Dump(nlohmann::json{{"node", node}, {"instance", instance}}) << "\n";
    out.flush();
    if (!out) return Status::Internal("attach " + volume + ": cannot write " + tmp);
  }
  int fd = open(tmp.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    fsync(fd);
    close(fd);
  }
  // link(2) fails with EEXIST when a record exists: the exclusive create.
  int rc = link(tmp.c_str(), record.c_str());
  int err = errno;
  unlink(tmp.c_str());
  if (rc == 0) {
    SyncDir(dir);
    return Status::Ok();
  }
  if (err != EEXIST) {
    return Status::Internal("attach " + volume + ": link " + record + ": " + strerror(err));
  }
  HAFAB_ASSIGN_OR_RETURN(VolumeAttachment held, ReadRecord(record));
  if (held.node == node) return Status::Ok();
  return Status::Conflict("volume " + volume + " is still attached to node " + held.node +
                          " for instance " + held.instance + "; it must be detached there first");
}

Status LocalProvider::RemoveIfHeldBy(const std::string& volume, const std::string& node) {
  HAFAB_RETURN_IF_ERROR(ValidateName("volume", volume));
  const std::string dir = root_ + "/" + volume;
  if (!fs::exists(dir)) return Status::Ok();
  FileLock lock(dir + "/.lock");
  if (!lock.ok()) return Status::Internal("detach " + volume + ": " + lock.error());
  const std::string record = dir + "/attachment";
  HAFAB_ASSIGN_OR_RETURN(VolumeAttachment held, ReadRecord(record));
  if (held.node != node) return Status::Ok();
  if (unlink(record.c_str()) != 0 && errno != ENOENT) {
    return Status::Internal("detach " + volume + ": unlink " + record + ": " + strerror(errno));
  }
  SyncDir(dir);
  return Status::Ok();
}

Status LocalProvider::Detach(const std::string& volume, const std::string& node) {
  return RemoveIfHeldBy(volume, node);
}

Status LocalProvider::ForceDetach(const std::string& volume, const std::string& node) {
  return RemoveIfHeldBy(volume, node);
}

Result<VolumeAttachment> LocalProvider::Describe(const std::string& volume) {
  HAFAB_RETURN_IF_ERROR(ValidateName("volume", volume));
  const std::string dir = root_ + "/" + volume;
  if (!fs::exists(dir)) return Status::NotFound("volume " + volume + " does not exist");
  return ReadRecord(dir + "/attachment");
}

std::string LocalProvider::MountPath(const std::string& volume, const std::string& node) {
  return root_ + "/" + volume + "/data";
}

Status LocalProvider::AddEndpoint(const std::string& role, const std::string& node) {
  return Status::Ok();
}
Status LocalProvider::RemoveEndpoint(const std::string& role, const std::string& node) {
  return Status::Ok();
}

}  // namespace hafab::provider
