#include "controller/ring_arbiter.h"

#include <algorithm>
#include <utility>

namespace hafab::controller {

namespace {

std::string Names(const std::set<std::string>& s) {
  std::string out;
  for (const auto& n : s) out += (out.empty() ? "" : ", ") + n;
  return out;
}

}  // namespace

void RingArbiter::Report(const std::string& reporter, const wire::RingReport& report) {
  if (!report.suspect) {
    auto it = accused_.find(report.about);
    if (it == accused_.end()) return;
    it->second.by.erase(reporter);
    if (it->second.by.empty()) accused_.erase(it);
    return;
  }
  Accusation& a = accused_[report.about];
  if (a.by.insert(reporter).second && !a.check_since) a.check_now = true;
}

void RingArbiter::Heard(const std::string& node) {
  auto it = accused_.find(node);
  if (it == accused_.end() || !it->second.check_since) return;
  it->second.check_since.reset();
  it->second.last_check = clock_.Now();
  it->second.answered = true;
}

void RingArbiter::Forget(const std::string& node) {
  accused_.erase(node);
  for (auto it = accused_.begin(); it != accused_.end();) {
    it->second.by.erase(node);
    it = it->second.by.empty() ? accused_.erase(it) : std::next(it);
  }
}

std::set<std::string> RingArbiter::AccusersOf(const std::string& node) const {
  auto it = accused_.find(node);
  return it == accused_.end() ? std::set<std::string>{} : it->second.by;
}

std::vector<Verdict> RingArbiter::Tick(
    const std::function<int(const std::string&)>& live_watchers) {
  const TimePoint now = clock_.Now();
  std::vector<Verdict> out;
  for (auto it = accused_.begin(); it != accused_.end();) {
    Accusation& a = it->second;
    const std::string& node = it->first;
    auto enough = [&] {
      const int needed = std::min(options_.accusers, live_watchers(node));
      return needed > 0 && a.by.size() >= static_cast<size_t>(needed);
    };
    if (std::exchange(a.answered, false) && !a.isolated_told && enough()) {
      a.isolated_told = true;
      out.push_back({Verdict::Kind::kIsolated, node,
                     "suspected by its ring neighbours " + Names(a.by) +
                         ", yet it answers the controller: cut from its neighbours, not failed"});
    }
    if (a.check_since && now - *a.check_since >= options_.check_timeout) {
      if (enough()) {
        out.push_back({Verdict::Kind::kDown, node,
                       "suspected by its ring neighbours " + Names(a.by) +
                           " and silent to the controller for " +
                           std::to_string(ToMs(now - *a.check_since)) + "ms"});
        it = accused_.erase(it);
        continue;
      }
      a.check_since.reset();  // too few accusers: the lease decides, or the next accusation
      a.last_check = now;
    }
    const bool recheck = a.last_check && now - *a.last_check >= options_.recheck_interval;
    if (!a.check_since && (a.check_now || recheck)) {
      a.check_now = false;
      a.check_since = now;
      out.push_back({Verdict::Kind::kCheck, node, "suspected by " + Names(a.by)});
    }
    ++it;
  }
  return out;
}

}  // namespace hafab::controller
