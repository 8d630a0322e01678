#include "controller/leases.h"

namespace hafab::controller {

bool LeaseTable::Renew(const std::string& holder, TimePoint deadline) {
  auto [it, inserted] = holders_.try_emplace(holder);
  if (inserted) {
    it->second = by_deadline_.emplace_hint(by_deadline_.end(), deadline, &it->first);
    return true;
  }
  auto entry = by_deadline_.extract(it->second);
  entry.value().first = deadline;
  it->second = by_deadline_.insert(by_deadline_.end(), std::move(entry));
  return false;
}

std::vector<std::string> LeaseTable::PopExpired(TimePoint now) {
  std::vector<std::string> out;
  while (!by_deadline_.empty() && by_deadline_.begin()->first <= now) {
    out.push_back(*by_deadline_.begin()->second);
    by_deadline_.erase(by_deadline_.begin());
    holders_.erase(out.back());
  }
  return out;
}

void LeaseTable::Remove(const std::string& holder) {
  auto it = holders_.find(holder);
  if (it == holders_.end()) return;
  by_deadline_.erase(it->second);
  holders_.erase(it);
}

std::vector<std::string> LeaseTable::Holders() const {
  std::vector<std::string> out;
  out.reserve(holders_.size());
  for (const auto& [h, entry] : holders_) out.push_back(h);
  return out;
}

}  // namespace hafab::controller
