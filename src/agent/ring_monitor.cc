#include "agent/ring_monitor.h"

#include <algorithm>
#include <utility>

namespace hafab::agent {

using Kind = wire::RingMessage::Kind;

RingMonitor::RingMonitor(Clock& clock, std::string self, RingOptions options, Send send)
    : clock_(clock),
      self_(std::move(self)),
      options_(options),
      send_(std::move(send)),
      seq_(options.first_seq) {}

void RingMonitor::SetNeighbours(std::vector<std::string> neighbours) {
  neighbours_ = std::move(neighbours);
  std::erase_if(suspected_, [&](const std::string& n) {
    return std::find(neighbours_.begin(), neighbours_.end(), n) == neighbours_.end();
  });
  std::erase_if(reports_, [&](const wire::RingReport& r) {
    return std::find(neighbours_.begin(), neighbours_.end(), r.about) == neighbours_.end();
  });
}

void RingMonitor::OnMessage(const wire::RingMessage& m) {
  Heard(m.from);  // whatever it says, it is alive
  switch (m.kind) {
    case Kind::kPing:
      send_(m.from, {Kind::kAck, m.seq, self_, self_});
      return;
    case Kind::kPingReq: {
      const uint64_t seq = ++seq_;
      relayed_[seq] = {m.from, m.seq};
      relayed_at_[seq] = clock_.Now();
      send_(m.subject, {Kind::kPing, seq, self_, m.subject});
      return;
    }
    case Kind::kAck: {
      auto relay = relayed_.find(m.seq);
      if (relay != relayed_.end()) {
        send_(relay->second.first, {Kind::kAck, relay->second.second, self_, m.subject});
        relayed_at_.erase(m.seq);
        relayed_.erase(relay);
        return;
      }
      auto probe = probes_.find(m.seq);
      if (probe != probes_.end() && probe->second.subject == m.subject) Heard(m.subject);
      return;
    }
  }
}

void RingMonitor::Heard(const std::string& node) {
  std::erase_if(probes_, [&](const auto& p) { return p.second.subject == node; });
  if (suspected_.erase(node) > 0) Report(node, false);
}

void RingMonitor::Report(const std::string& about, bool suspect) {
  // Only the latest word on a node waits for the heartbeat.
  std::erase_if(reports_, [&](const wire::RingReport& r) { return r.about == about; });
  reports_.push_back({about, suspect});
}

void RingMonitor::Tick() {
  const TimePoint now = clock_.Now();
  if (!neighbours_.empty() && now >= next_probe_) {
    next_probe_ = now + options_.probe_interval;
    const std::string& subject = neighbours_[next_++ % neighbours_.size()];
    const uint64_t seq = ++seq_;
    probes_[seq] = {subject, now, false};
    send_(subject, {Kind::kPing, seq, self_, subject});
  }
  for (auto it = probes_.begin(); it != probes_.end();) {
    Probe& p = it->second;
    const Duration waited = now - p.sent_at;
    if (waited >= options_.probe_timeout + options_.indirect_timeout) {
      const bool watched =
          std::find(neighbours_.begin(), neighbours_.end(), p.subject) != neighbours_.end();
      if (watched && suspected_.insert(p.subject).second) Report(p.subject, true);
      it = probes_.erase(it);
      continue;
    }
    if (!p.indirect_sent && waited >= options_.probe_timeout) {
      p.indirect_sent = true;
      // Through the neighbours after the subject, in ring order: they differ per subject.
      const auto at = std::find(neighbours_.begin(), neighbours_.end(), p.subject);
      const size_t from = at == neighbours_.end() ? 0 : at - neighbours_.begin();
      int asked = 0;
      for (size_t i = 1; i < neighbours_.size() && asked < options_.indirect; ++i) {
        const std::string& via = neighbours_[(from + i) % neighbours_.size()];
        if (via == p.subject || suspected_.count(via)) continue;
        send_(via, {Kind::kPingReq, it->first, self_, p.subject});
        ++asked;
      }
    }
    ++it;
  }
  const Duration relay_ttl = options_.probe_timeout + options_.indirect_timeout;
  for (auto it = relayed_at_.begin(); it != relayed_at_.end();) {
    if (now - it->second < relay_ttl) {
      ++it;
      continue;
    }
    relayed_.erase(it->first);
    it = relayed_at_.erase(it);
  }
}

TimePoint RingMonitor::NextDue() const {
  TimePoint due = neighbours_.empty() ? TimePoint::max() : next_probe_;
  for (const auto& [seq, p] : probes_) {
    due = std::min(due,
                   p.sent_at + (p.indirect_sent ? options_.probe_timeout + options_.indirect_timeout
                                                : options_.probe_timeout));
  }
  return due;
}

std::vector<wire::RingReport> RingMonitor::TakeReports() { return std::exchange(reports_, {}); }

}  // namespace hafab::agent
