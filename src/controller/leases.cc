#include "controller/leases.h"

namespace hafab::controller {

bool LeaseTable::Renew(const std::string& holder, TimePoint deadline) {
  auto it = deadline_.find(holder);
  if (it == deadline_.end()) {
    deadline_.emplace(holder, deadline);
    by_deadline_.emplace(deadline, holder);
    return true;
  }
  by_deadline_.erase({it->second, holder});
  it->second = deadline;
  by_deadline_.emplace(deadline, holder);
  return false;
}

std::vector<std::string> LeaseTable::PopExpired(TimePoint now) {
  std::vector<std::string> out;
  while (!by_deadline_.empty() && by_deadline_.begin()->first <= now) {
    out.push_back(by_deadline_.begin()->second);
    deadline_.erase(by_deadline_.begin()->second);
    by_deadline_.erase(by_deadline_.begin());
  }
  return out;
}

void LeaseTable::Remove(const std::string& holder) {
  auto it = deadline_.find(holder);
  if (it == deadline_.end()) return;
  by_deadline_.erase({it->second, holder});
  deadline_.erase(it);
}

std::vector<std::string> LeaseTable::Holders() const {
  std::vector<std::string> out;
  for (const auto& [h, d] : deadline_) out.push_back(h);
  return out;
}

}  // namespace hafab::controller
