#include "controller/leases.h"

#include <algorithm>

namespace hafab::controller {

bool LeaseTable::Renew(const std::string& holder, TimePoint deadline) {
  auto [it, inserted] = deadline_.try_emplace(holder, deadline);
  if (inserted) {
    by_deadline_.emplace_hint(by_deadline_.end(), deadline, &it->first);
    return true;
  }
  auto entry = by_deadline_.extract({it->second, &it->first});
  it->second = deadline;
  entry.value().first = deadline;
  by_deadline_.insert(by_deadline_.end(), std::move(entry));
  return false;
}

std::vector<std::string> LeaseTable::PopExpired(TimePoint now) {
  std::vector<std::string> out;
  while (!by_deadline_.empty() && by_deadline_.begin()->first <= now) {
    auto first = by_deadline_.begin();
    auto it = deadline_.find(*first->second);
    by_deadline_.erase(first);
    out.push_back(std::move(deadline_.extract(it).key()));
  }
  return out;
}

void LeaseTable::Remove(const std::string& holder) {
  auto it = deadline_.find(holder);
  if (it == deadline_.end()) return;
  by_deadline_.erase({it->second, &it->first});
  deadline_.erase(it);
}

std::vector<std::string> LeaseTable::Holders() const {
  std::vector<std::string> out;
  out.reserve(deadline_.size());
  for (const auto& [h, d] : deadline_) out.push_back(h);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace hafab::controller
