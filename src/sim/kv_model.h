// KvModel: the data of the simulated kvd, enough to tell whether an acknowledged write was
// lost. Each volume holds its keys durably; a kvd process loads its volume's keys when it
// starts and then serves from memory, writing through to the volume only while the volume is
// attached to its node (else the write fails: an I/O error, never an acknowledgement). The
// model client remembers the highest value acknowledged per key; a read that returns less,
// or a volume that ends with less, is a lost acknowledged write.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace hafab::sim {

class KvModel {
 public:
  using Data = std::map<int, uint64_t>;  // key -> value (the client writes increasing values)

  // A process of `role` started on `node` with the volume `volume` (its HAFAB_VOLUME_DIR's
  // last part) attached there (`attached`) or not.
  void Started(const std::string& node, int pid, const std::string& volume, bool attached) {
    procs_[{node, pid}] = Proc{volume, attached ? volumes_[volume] : Data{}};
  }
  // A write reaching the process; nullopt when it cannot be acknowledged.
  std::optional<uint64_t> Write(const std::string& node, int pid, bool attached, int key,
                                uint64_t value) {
    auto it = procs_.find({node, pid});
    if (it == procs_.end() || !attached) return std::nullopt;
    uint64_t& durable = volumes_[it->second.volume][key];
    durable = std::max(durable, value);
    it->second.memory[key] = value;
    return value;
  }
  std::optional<uint64_t> Read(const std::string& node, int pid, int key) const {
    auto it = procs_.find({node, pid});
    if (it == procs_.end()) return std::nullopt;
    auto k = it->second.memory.find(key);
    return k == it->second.memory.end() ? 0 : k->second;
  }
  void Forget(const std::string& node, int pid) { procs_.erase({node, pid}); }

  void Acked(const std::string& role, int key, uint64_t value) {
    uint64_t& a = acked_[role][key];
    a = std::max(a, value);
  }
  uint64_t AckedValue(const std::string& role, int key) const {
    auto r = acked_.find(role);
    if (r == acked_.end()) return 0;
    auto k = r->second.find(key);
    return k == r->second.end() ? 0 : k->second;
  }
  const std::map<std::string, Data>& acked() const { return acked_; }
  const Data* VolumeData(const std::string& volume) const {
    auto it = volumes_.find(volume);
    return it == volumes_.end() ? nullptr : &it->second;
  }

 private:
  struct Proc {
    std::string volume;
    Data memory;
  };
  std::map<std::string, Data> volumes_;
  std::map<std::pair<std::string, int>, Proc> procs_;
  std::map<std::string, Data> acked_;  // role -> key -> highest value acknowledged
};

}  // namespace hafab::sim
