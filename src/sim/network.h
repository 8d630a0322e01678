// SimNetwork: messages between simulated parties ("controller", node names, gateway ids,
// "client"), each delivered after a random delay, lost with a probability, and cut by
// partitions. A lost message is never delivered: its sender sees no answer and times out,
// as a request on a dead connection does.
#pragma once

#include <functional>
#include <map>
#include <set>
#include <string>
#include <unordered_map>

#include "sim/event_queue.h"

namespace hafab::sim {

inline constexpr char kController[] = "controller";
inline constexpr char kClient[] = "client";

struct NetworkOptions {
  Duration min_delay = std::chrono::microseconds(200);
  Duration max_delay = std::chrono::milliseconds(2);
  double loss = 0;  // probability that a message is lost
};

// Not thread-safe.
class SimNetwork {
 public:
  enum class Cut {
    kFromController,  // the party cannot reach the controller (nor it the party)
    kFromEveryone,    // the party reaches nobody
  };

  SimNetwork(EventQueue& events, uint64_t seed, NetworkOptions options)
      : events_(events), seed_(Mix(seed)), options_(options) {}

  // A link: its ends and the messages sent on it so far. The fate of a message depends on the
  // seed, its link and its number on that link only, not on the traffic elsewhere: a run
  // without one fault keeps the timing of the others (which is what lets a violation's fault
  // set be shrunk).
  struct Link {
    std::string from, to;
    uint64_t from_hash = 0, to_hash = 0;
    uint64_t sent = 0;
  };
  // The link from `from` to `to`, for as long as the network lives: a party that sends often
  // keeps it instead of looking it up by name at every message.
  Link& LinkOf(const std::string& from, const std::string& to) {
    const LinkKey key{std::hash<std::string>()(from), std::hash<std::string>()(to)};
    auto [it, added] = links_.try_emplace(key);
    if (added) it->second = Link{from, to, key.from, key.to, 0};
    return it->second;
  }

  // Delivers `deliver` at the link's far end after the network's delay, unless the message is
  // lost or a partition separates the two ends when it is sent or when it arrives: then
  // `lost` runs (if given) at that moment, as no party could know it.
  void Send(Link& link, std::function<void()> deliver, std::function<void()> lost = nullptr) {
    ++sent_;
    uint64_t r = Mix(seed_ ^ Mix(link.from_hash * 31 + link.to_hash + ++link.sent));
    if (!Connected(link.from, link.to) ||
        (options_.loss > 0 && static_cast<double>(r >> 11) * 0x1.0p-53 < options_.loss)) {
      ++lost_;
      if (lost) lost();
      return;
    }
    const auto span = static_cast<uint64_t>((options_.max_delay - options_.min_delay).count());
    Duration delay =
        options_.min_delay + Duration(span > 0 ? static_cast<Duration::rep>(Mix(r) % span) : 0);
    events_.After(delay, [this, &link, deliver = std::move(deliver), lost = std::move(lost)] {
      if (!Connected(link.from, link.to)) {
        ++lost_;
        if (lost) lost();
        return;
      }
      deliver();
    });
  }
  void Send(const std::string& from, const std::string& to, std::function<void()> deliver) {
    Send(LinkOf(from, to), std::move(deliver));
  }

  bool Connected(const std::string& a, const std::string& b) const {
    return !Separated(a, b) && !Separated(b, a);
  }
  void Partition(const std::string& party, Cut cut) { cuts_[party] = cut; }
  void Heal(const std::string& party) { cuts_.erase(party); }
  void HealAll() { cuts_.clear(); }
  bool Partitioned(const std::string& party) const { return cuts_.count(party) > 0; }
  void set_loss(double loss) { options_.loss = loss; }

  uint64_t sent() const { return sent_; }
  uint64_t lost() const { return lost_; }

 private:
  bool Separated(const std::string& party, const std::string& other) const {
    auto it = cuts_.find(party);
    if (it == cuts_.end()) return false;
    return it->second == Cut::kFromEveryone || other == kController;
  }

  // SplitMix64's finalizer.
  static uint64_t Mix(uint64_t x) {
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
  }

  // A link by the hashes of its ends' names.
  struct LinkKey {
    uint64_t from, to;
    bool operator==(const LinkKey&) const = default;
  };
  struct LinkKeyHash {
    size_t operator()(const LinkKey& l) const { return Mix(l.from * 31 + l.to); }
  };

  EventQueue& events_;
  uint64_t seed_;
  std::unordered_map<LinkKey, Link, LinkKeyHash> links_;  // references to them stay valid
  NetworkOptions options_;
  std::map<std::string, Cut> cuts_;
  uint64_t sent_ = 0;
  uint64_t lost_ = 0;
};

}  // namespace hafab::sim
