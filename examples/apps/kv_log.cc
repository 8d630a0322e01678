#include "kv_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/crc.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>

namespace hafab::apps {
namespace {

constexpr uint32_t kMagic = 0x3176'6B68;  // "hkv1"
constexpr size_t kHeaderSize = 16;

std::string OsError(const std::string& what, const std::string& path) {
  return what + " " + path + ": " + std::strerror(errno);
}

uint32_t LoadU32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

void StoreU32(char* p, uint32_t v) { std::memcpy(p, &v, 4); }

Status FsyncDirectoryOf(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::Internal(OsError("cannot open directory", dir));
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return Status::Internal(OsError("cannot fsync directory", dir));
  return Status::Ok();
}

}  // namespace

std::string EncodeKvRecord(const std::string& key, const std::string& value) {
  std::string record(kHeaderSize + key.size() + value.size(), '\0');
  StoreU32(record.data(), kMagic);
  StoreU32(record.data() + 4, static_cast<uint32_t>(key.size()));
  StoreU32(record.data() + 8, static_cast<uint32_t>(value.size()));
  std::memcpy(record.data() + kHeaderSize, key.data(), key.size());
  std::memcpy(record.data() + kHeaderSize + key.size(), value.data(), value.size());
  // The checksum covers the lengths and the payload.
  boost::crc_32_type crc;
  crc.process_bytes(record.data() + 4, 8);
  crc.process_bytes(record.data() + kHeaderSize, key.size() + value.size());
  StoreU32(record.data() + 12, crc.checksum());
  return record;
}

KvLog::~KvLog() { ::close(fd_); }

Result<std::unique_ptr<KvLog>> KvLog::Open(const std::string& path, Replay* replay) {
  bool existed = ::access(path.c_str(), F_OK) == 0;
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return Status::Internal(OsError("cannot open", path));
  std::unique_ptr<KvLog> log(new KvLog(path, fd, 0));
  if (!existed) HAFAB_RETURN_IF_ERROR(FsyncDirectoryOf(path));

  std::string data;
  struct stat st {};
  if (::fstat(fd, &st) != 0) return Status::Internal(OsError("cannot stat", path));
  data.resize(static_cast<size_t>(st.st_size));
  size_t read_total = 0;
  while (read_total < data.size()) {
    ssize_t n = ::pread(fd, data.data() + read_total, data.size() - read_total,
                        static_cast<off_t>(read_total));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::Internal(OsError("cannot read", path));
    if (n == 0) break;
    read_total += static_cast<size_t>(n);
  }
  data.resize(read_total);

  Replay found;
  size_t offset = 0;
  while (offset < data.size()) {
    const char* p = data.data() + offset;
    size_t left = data.size() - offset;
    bool complete = left >= kHeaderSize;
    uint64_t length = 0;
    if (complete) {
      length = kHeaderSize + uint64_t{LoadU32(p + 4)} + LoadU32(p + 8);
      complete = LoadU32(p) == kMagic && length <= left;
    }
    bool valid = false;
    if (complete) {
      boost::crc_32_type crc;
      crc.process_bytes(p + 4, 8);
      crc.process_bytes(p + kHeaderSize, length - kHeaderSize);
      valid = crc.checksum() == LoadU32(p + 12);
    }
    if (!valid) {
      // Only the last record can be torn: it is torn if it runs to the end of the file.
      bool last = !complete || offset + length == data.size();
      if (!last) {
        return Status::Internal("corrupt record at offset " + std::to_string(offset) + " of " +
                                path + ", followed by " +
                                std::to_string(data.size() - offset - length) +
                                " more bytes; refusing to discard them");
      }
      found.torn_bytes = data.size() - offset;
      if (::ftruncate(fd, static_cast<off_t>(offset)) != 0 || ::fsync(fd) != 0) {
        return Status::Internal(OsError("cannot truncate the torn last record of", path));
      }
      data.resize(offset);
      break;
    }
    uint32_t key_size = LoadU32(p + 4);
    found.entries.insert_or_assign(
        std::string(p + kHeaderSize, key_size),
        std::string(p + kHeaderSize + key_size, length - kHeaderSize - key_size));
    ++found.records;
    offset += length;
  }
  log->size_ = data.size();
  if (replay != nullptr) *replay = std::move(found);
  return log;
}

Status KvLog::Compact(const std::string& path, const std::map<std::string, std::string>& entries) {
  const std::string tmp = path + ".compact";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::Internal(OsError("cannot create", tmp));
  std::unique_ptr<KvLog> out(new KvLog(tmp, fd, 0));
  // One write and one fsync (also of an empty log).
  HAFAB_RETURN_IF_ERROR(out->AppendBatch({entries.begin(), entries.end()}));
  out.reset();
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return Status::Internal(OsError("cannot rename " + tmp + " to", path));
  }
  return FsyncDirectoryOf(path);
}

Status KvLog::Append(const std::string& key, const std::string& value) {
  return AppendBatch({{key, value}});
}

Status KvLog::AppendBatch(const std::vector<std::pair<std::string, std::string>>& records) {
  std::string record;
  for (const auto& [key, value] : records) {
    if (key.size() > UINT32_MAX || value.size() > UINT32_MAX) {
      return Status::InvalidArgument("key or value larger than 4 GiB");
    }
    record += EncodeKvRecord(key, value);
  }
  size_t written = 0;
  Status failure;
  while (written < record.size()) {
    ssize_t n = ::write(fd_, record.data() + written, record.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      failure = Status::Internal(OsError("cannot append to", path_));
      break;
    }
    written += static_cast<size_t>(n);
  }
  if (failure.ok() && ::fsync(fd_) != 0) failure = Status::Internal(OsError("cannot fsync", path_));
  if (!failure.ok()) {
    // Do not leave a partial record for the next append to follow.
    if (::ftruncate(fd_, static_cast<off_t>(size_)) != 0) {
      return failure.WithContext("and cannot cut the log back (" + std::string(strerror(errno)) +
                                 ")");
    }
    return failure;
  }
  size_ += record.size();
  return Status::Ok();
}

}  // namespace hafab::apps
