#include "kv_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/crc.hpp>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <memory>

namespace hafab::apps {
namespace {

constexpr uint32_t kLegacyMagic = 0x3176'6B68;  // "hkv1": no position
constexpr uint32_t kMagic = 0x3276'6B68;        // "hkv2"
constexpr size_t kLegacyHeaderSize = 16;
constexpr size_t kHeaderSize = 32;

std::string OsError(const std::string& what, const std::string& path) {
  return what + " " + path + ": " + std::strerror(errno);
}

uint32_t LoadU32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
uint64_t LoadU64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
void StoreU32(char* p, uint32_t v) { std::memcpy(p, &v, 4); }
void StoreU64(char* p, uint64_t v) { std::memcpy(p, &v, 8); }

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

// One record at the start of `left` bytes.
struct Parsed {
  bool complete = false;  // a known magic and the whole length is there
  bool valid = false;     // and the checksum matches
  uint64_t length = 0;
  bool legacy = false;  // no position in the record
  KvPosition position;
  std::string_view key;
  std::string_view value;
};

Parsed ParseRecord(const char* p, size_t left) {
  Parsed r;
  if (left < kLegacyHeaderSize) return r;
  uint32_t magic = LoadU32(p);
  r.legacy = magic == kLegacyMagic;
  if (!r.legacy && magic != kMagic) return r;
  size_t header = r.legacy ? kLegacyHeaderSize : kHeaderSize;
  if (left < header) return r;
  uint32_t key_size = LoadU32(p + 4);
  r.length = header + uint64_t{key_size} + LoadU32(p + 8);
  r.complete = r.length <= left;
  if (!r.complete) return r;
  boost::crc_32_type crc;
  crc.process_bytes(p + 4, 8);
  if (!r.legacy) crc.process_bytes(p + kLegacyHeaderSize, kHeaderSize - kLegacyHeaderSize);
  crc.process_bytes(p + header, r.length - header);
  r.valid = crc.checksum() == LoadU32(p + 12);
  if (!r.legacy) r.position = {LoadU64(p + 16), LoadU64(p + 24)};
  r.key = std::string_view(p + header, key_size);
  r.value = std::string_view(p + header + key_size, r.length - header - key_size);
  return r;
}

// Why `next` cannot follow `last` in a log, "" if it can.
std::string OutOfOrder(const KvPosition& last, const KvPosition& next) {
  if (next.index != last.index + 1) {
    return "index " + std::to_string(next.index) + " after index " + std::to_string(last.index);
  }
  if (next.epoch < last.epoch) {
    return "epoch " + std::to_string(next.epoch) + " after epoch " + std::to_string(last.epoch);
  }
  return "";
}

}  // namespace

std::string EncodeKvRecord(const KvRecord& record) {
  const auto& [position, key, value] = record;
  std::string bytes(kHeaderSize + key.size() + value.size(), '\0');
  StoreU32(bytes.data(), kMagic);
  StoreU32(bytes.data() + 4, static_cast<uint32_t>(key.size()));
  StoreU32(bytes.data() + 8, static_cast<uint32_t>(value.size()));
  StoreU64(bytes.data() + 16, position.epoch);
  StoreU64(bytes.data() + 24, position.index);
  std::memcpy(bytes.data() + kHeaderSize, key.data(), key.size());
  std::memcpy(bytes.data() + kHeaderSize + key.size(), value.data(), value.size());
  boost::crc_32_type crc;
  crc.process_bytes(bytes.data() + 4, 8);
  crc.process_bytes(bytes.data() + kLegacyHeaderSize, kHeaderSize - kLegacyHeaderSize);
  crc.process_bytes(bytes.data() + kHeaderSize, key.size() + value.size());
  StoreU32(bytes.data() + 12, crc.checksum());
  return bytes;
}

std::string EncodeKvRecord(const std::string& key, const std::string& value) {
  std::string record(kLegacyHeaderSize + key.size() + value.size(), '\0');
  StoreU32(record.data(), kLegacyMagic);
  StoreU32(record.data() + 4, static_cast<uint32_t>(key.size()));
  StoreU32(record.data() + 8, static_cast<uint32_t>(value.size()));
  std::memcpy(record.data() + kLegacyHeaderSize, key.data(), key.size());
  std::memcpy(record.data() + kLegacyHeaderSize + key.size(), value.data(), value.size());
  boost::crc_32_type crc;
  crc.process_bytes(record.data() + 4, 8);
  crc.process_bytes(record.data() + kLegacyHeaderSize, key.size() + value.size());
  StoreU32(record.data() + 12, crc.checksum());
  return record;
}

Result<std::vector<KvRecord>> DecodeKvRecords(std::string_view bytes) {
  std::vector<KvRecord> records;
  size_t offset = 0;
  while (offset < bytes.size()) {
    Parsed r = ParseRecord(bytes.data() + offset, bytes.size() - offset);
    if (!r.valid || r.legacy) {
      return Status::InvalidArgument("no valid record at offset " + std::to_string(offset) +
                                     " of " + std::to_string(bytes.size()) + " bytes");
    }
    if (!records.empty()) {
      std::string why = OutOfOrder(records.back().position, r.position);
      if (!why.empty()) return Status::InvalidArgument("records out of order: " + why);
    }
    records.push_back({r.position, std::string(r.key), std::string(r.value)});
    offset += r.length;
  }
  return records;
}

KvLog::~KvLog() { ::close(fd_); }

Result<std::unique_ptr<KvLog>> KvLog::Open(const std::string& path, Replay* replay) {
  bool existed = ::access(path.c_str(), F_OK) == 0;
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return Status::Internal(OsError("cannot open", path));
  std::unique_ptr<KvLog> log(new KvLog(path, fd));
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
  std::vector<Indexed> index;
  std::vector<std::pair<size_t, size_t>> stale;  // offset, length
  uint64_t stale_epoch = 0;
  size_t offset = 0;
  while (offset < data.size()) {
    Parsed r = ParseRecord(data.data() + offset, data.size() - offset);
    if (!r.valid) {
      // Only the last record can be torn: it is torn if it runs to the end of the file.
      bool last = !r.complete || offset + r.length == data.size();
      if (!last) {
        return Status::Internal("corrupt record at offset " + std::to_string(offset) + " of " +
                                path + ", followed by " +
                                std::to_string(data.size() - offset - r.length) +
                                " more bytes; refusing to discard them");
      }
      found.torn_bytes = data.size() - offset;
      if (::ftruncate(fd, static_cast<off_t>(offset)) != 0 || ::fsync(fd) != 0) {
        return Status::Internal(OsError("cannot truncate the torn last record of", path));
      }
      data.resize(offset);
      break;
    }
    KvPosition position = r.position;
    if (r.legacy) {
      position = {0, found.last.index + 1};
      ++found.legacy_records;
    }
    std::string why = OutOfOrder(found.last, position);
    if (!why.empty() && position.epoch < found.last.epoch && position.index <= found.last.index) {
      // A late append of a primary of an older epoch (stopped, then resumed after the next
      // primary took the volume and wrote: its write was never acknowledged): set aside.
      stale.emplace_back(offset, r.length);
      if (stale_epoch == 0) stale_epoch = position.epoch;
      offset += r.length;
      continue;
    }
    if (!why.empty()) {
      return Status::Internal("record at offset " + std::to_string(offset) + " of " + path +
                              " is out of order (" + why + ")");
    }
    if (!r.key.empty()) {
      found.entries.insert_or_assign(std::string(r.key), std::string(r.value));
    } else {
      found.markers[position.index] = {position, "", std::string(r.value)};
    }
    index.push_back({position.epoch, offset});
    found.last = position;
    ++found.records;
    offset += r.length;
  }
  if (!stale.empty()) {
    log.reset();
    auto aside = SetStaleAside(path, data, stale, stale_epoch);
    if (!aside.ok()) return aside.status();
    auto reopened = Open(path, replay);
    if (reopened.ok() && replay != nullptr) {
      replay->stale_records = stale.size();
      replay->stale_file = *aside;
    }
    return reopened;
  }
  {
    std::lock_guard lock(log->mu_);
    log->size_ = data.size();
    log->index_ = std::move(index);
  }
  if (replay != nullptr) *replay = std::move(found);
  return log;
}

Result<std::string> KvLog::SetStaleAside(const std::string& path, const std::string& data,
                                         const std::vector<std::pair<size_t, size_t>>& stale,
                                         uint64_t epoch) {
  std::string kept, set_aside;
  size_t from = 0;
  for (const auto& [offset, length] : stale) {
    kept.append(data, from, offset - from);
    set_aside.append(data, offset, length);
    from = offset + length;
  }
  kept.append(data, from, std::string::npos);
  const std::string aside = path + ".stale-epoch-" + std::to_string(epoch) + "-" +
                            std::to_string(static_cast<long long>(::time(nullptr)));
  auto write_file = [](const std::string& file, const std::string& bytes) -> Status {
    int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return Status::Internal(OsError("cannot create", file));
    KvLog out(file, fd);  // closes it
    return out.WriteAndSync(bytes);
  };
  HAFAB_RETURN_IF_ERROR(write_file(aside, set_aside));
  const std::string tmp = path + ".unstale";
  HAFAB_RETURN_IF_ERROR(write_file(tmp, kept));
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return Status::Internal(OsError("cannot rename " + tmp + " to", path));
  }
  HAFAB_RETURN_IF_ERROR(FsyncDirectoryOf(path));
  return aside;
}

Status KvLog::Compact(const std::string& path, const std::map<std::string, std::string>& entries) {
  const std::string tmp = path + ".compact";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::Internal(OsError("cannot create", tmp));
  std::unique_ptr<KvLog> out(new KvLog(tmp, fd));
  // One write and one fsync (also of an empty log).
  HAFAB_RETURN_IF_ERROR(out->AppendBatch({entries.begin(), entries.end()}, 0).status());
  out.reset();
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return Status::Internal(OsError("cannot rename " + tmp + " to", path));
  }
  return FsyncDirectoryOf(path);
}

KvPosition KvLog::last() const {
  std::lock_guard lock(mu_);
  if (index_.empty()) return {};
  return {index_.back().epoch, index_.size()};
}

std::optional<uint64_t> KvLog::EpochAt(uint64_t index) const {
  std::lock_guard lock(mu_);
  if (index == 0) return 0;
  if (index > index_.size()) return std::nullopt;
  return index_[index - 1].epoch;
}

uint64_t KvLog::EndOfEpoch(uint64_t epoch) const {
  std::lock_guard lock(mu_);
  // Epochs never decrease along the log.
  auto it = std::upper_bound(index_.begin(), index_.end(), epoch,
                             [](uint64_t e, const Indexed& i) { return e < i.epoch; });
  return static_cast<uint64_t>(it - index_.begin());
}

Result<std::string> KvLog::ReadRange(uint64_t first, uint64_t last, size_t max_bytes) const {
  uint64_t begin = 0;
  uint64_t end = 0;
  {
    std::lock_guard lock(mu_);
    if (first == 0 || first > index_.size()) {
      return Status::InvalidArgument("no record " + std::to_string(first) + " in " + path_ +
                                     " (it ends at " + std::to_string(index_.size()) + ")");
    }
    last = std::min<uint64_t>(last, index_.size());
    begin = index_[first - 1].offset;
    end = last < index_.size() ? index_[last].offset : size_;
    // Stop at the first record boundary past max_bytes.
    auto it = std::upper_bound(index_.begin() + static_cast<ptrdiff_t>(first),
                               index_.begin() + static_cast<ptrdiff_t>(last), begin + max_bytes,
                               [](uint64_t o, const Indexed& i) { return o < i.offset; });
    if (it != index_.begin() + static_cast<ptrdiff_t>(last)) end = it->offset;
  }
  std::string bytes(end - begin, '\0');
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n =
        ::pread(fd_, bytes.data() + done, bytes.size() - done, static_cast<off_t>(begin + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status::Internal(OsError("cannot read", path_));
    done += static_cast<size_t>(n);
  }
  // Records written before positions existed go out with theirs.
  std::string positioned;
  for (size_t offset = 0; offset < bytes.size(); ++first) {
    Parsed r = ParseRecord(bytes.data() + offset, bytes.size() - offset);
    if (!r.valid) return Status::Internal("corrupt record in " + path_);
    if (r.legacy && positioned.empty()) positioned = bytes.substr(0, offset);
    if (r.legacy) {
      positioned += EncodeKvRecord(KvRecord{{0, first}, std::string(r.key), std::string(r.value)});
    } else if (!positioned.empty()) {
      positioned.append(bytes, offset, r.length);
    }
    offset += r.length;
  }
  return positioned.empty() ? bytes : positioned;
}

Status KvLog::TruncateAfter(uint64_t index, const std::string& aside_path) {
  std::lock_guard lock(mu_);
  if (index > index_.size()) {
    return Status::InvalidArgument("cannot cut " + path_ + " back to index " +
                                   std::to_string(index) + ": it ends at " +
                                   std::to_string(index_.size()));
  }
  if (index == index_.size()) return Status::Ok();
  uint64_t cut = index_[index].offset;
  std::string tail(size_ - cut, '\0');
  size_t done = 0;
  while (done < tail.size()) {
    ssize_t n =
        ::pread(fd_, tail.data() + done, tail.size() - done, static_cast<off_t>(cut + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status::Internal(OsError("cannot read", path_));
    done += static_cast<size_t>(n);
  }
  int fd = ::open(aside_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return Status::Internal(OsError("cannot create", aside_path));
  bool written = ::write(fd, tail.data(), tail.size()) == static_cast<ssize_t>(tail.size()) &&
                 ::fsync(fd) == 0;
  ::close(fd);
  if (!written) return Status::Internal(OsError("cannot write", aside_path));
  HAFAB_RETURN_IF_ERROR(FsyncDirectoryOf(aside_path));
  if (::ftruncate(fd_, static_cast<off_t>(cut)) != 0 || ::fsync(fd_) != 0) {
    return Status::Internal(OsError("cannot truncate", path_));
  }
  index_.resize(index);
  size_ = cut;
  return Status::Ok();
}

Status KvLog::Append(const std::string& key, const std::string& value) {
  return AppendBatch({{key, value}}).status();
}

Result<KvPosition> KvLog::AppendBatch(
    const std::vector<std::pair<std::string, std::string>>& records,
    std::optional<uint64_t> epoch) {
  KvPosition next = last();
  if (epoch.has_value()) next.epoch = *epoch;
  std::vector<KvRecord> positioned;
  positioned.reserve(records.size());
  for (const auto& [key, value] : records) {
    ++next.index;
    positioned.push_back({next, key, value});
  }
  HAFAB_RETURN_IF_ERROR(AppendRecords(positioned));
  return last();
}

Status KvLog::AppendRecords(const std::vector<KvRecord>& records) {
  KvPosition previous = last();
  std::string bytes;
  for (const auto& record : records) {
    if (record.key.size() > UINT32_MAX || record.value.size() > UINT32_MAX) {
      return Status::InvalidArgument("key or value larger than 4 GiB");
    }
    std::string why = OutOfOrder(previous, record.position);
    if (!why.empty()) return Status::InvalidArgument("cannot append to " + path_ + ": " + why);
    previous = record.position;
  }
  std::vector<Indexed> added;
  uint64_t offset = 0;
  {
    std::lock_guard lock(mu_);
    offset = size_;
  }
  for (const auto& record : records) {
    added.push_back({record.position.epoch, offset + bytes.size()});
    bytes += EncodeKvRecord(record);
  }
  HAFAB_RETURN_IF_ERROR(WriteAndSync(bytes));
  std::lock_guard lock(mu_);
  index_.insert(index_.end(), added.begin(), added.end());
  size_ += bytes.size();
  return Status::Ok();
}

Status KvLog::WriteAndSync(const std::string& bytes) {
  size_t written = 0;
  Status failure;
  while (written < bytes.size()) {
    ssize_t n = ::write(fd_, bytes.data() + written, bytes.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      failure = Status::Internal(OsError("cannot append to", path_));
      break;
    }
    written += static_cast<size_t>(n);
  }
  if (failure.ok() && ::fsync(fd_) != 0) failure = Status::Internal(OsError("cannot fsync", path_));
  if (failure.ok()) return Status::Ok();
  // Do not leave a partial record for the next append to follow.
  uint64_t size = 0;
  {
    std::lock_guard lock(mu_);
    size = size_;
  }
  if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) {
    return failure.WithContext("and cannot cut the log back (" + std::string(strerror(errno)) +
                               ")");
  }
  return failure;
}

}  // namespace hafab::apps
