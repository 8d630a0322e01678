#include "kv_replica.h"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>

#include "core/json.h"

namespace hafab::apps {

using wire::ReplicaRole;

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr std::string_view kKeyPrefix = "/kv/";
constexpr size_t kMaxPullBytes = 1u << 20;
// How much of its durable log a primary keeps in memory for followers beyond what is not
// durable yet (which it always keeps).
constexpr size_t kSentBytes = 8u << 20;
// Headers of the primary's answer to a follower.
constexpr const char* kLastHeader = "X-Kvd-Last";  // the primary's last index (maybe not durable)
constexpr const char* kSharedHeader = "X-Kvd-Shared-Until";  // with 412: the shared prefix

std::optional<uint64_t> ParseU64(std::string_view text) {
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

const wire::ReplicaMember* FindReplica(const wire::ReplicaConfig& config,
                                       const std::string& instance) {
  auto it = std::ranges::find(config.replicas, instance, &wire::ReplicaMember::instance);
  return it == config.replicas.end() ? nullptr : &*it;
}

Status Bad(const std::string& field, const std::string& why) {
  return Status::InvalidArgument(field + ": " + why);
}

}  // namespace

Status CheckReplicaConfig(const wire::ReplicaConfig& config) {
  if (config.instance.empty()) return Bad("instance", "required");
  if (FindReplica(config, config.instance) == nullptr) {
    return Bad("replicas", "does not list this replica, " + config.instance);
  }
  const auto voters = std::ranges::count_if(
      config.replicas, [](const auto& replica) { return replica.role != ReplicaRole::kBuilding; });
  if (config.quorum < 1 || config.quorum > voters) {
    return Bad("quorum", "must be an integer from 1 to the " + std::to_string(voters) +
                             " primary and secondary replicas, got " +
                             std::to_string(config.quorum));
  }
  const bool names_itself = config.primary && config.primary->instance == config.instance;
  if (config.role == ReplicaRole::kPrimary && !names_itself) {
    return Bad("primary",
               "must name this replica, " + config.instance + ", when its role is primary");
  }
  if (config.role != ReplicaRole::kPrimary && names_itself) {
    return Bad("primary", "names this replica, but its role is " +
                              std::string(wire::ReplicaRoleName(config.role)));
  }
  if (config.primary && config.primary->address.rfind(':') == std::string::npos) {
    return Bad("primary.address", "must be host:port, got \"" + config.primary->address + "\"");
  }
  return Status::Ok();
}

Result<wire::ReplicaConfig> ReadReplicaConfig(std::string_view json) {
  auto j = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Bad("configuration", "not valid JSON");
  HAFAB_ASSIGN_OR_RETURN(auto config, wire::ParseReplicaConfig(j));
  HAFAB_RETURN_IF_ERROR(CheckReplicaConfig(config));
  return config;
}

KvReplica::KvReplica(boost::asio::io_context& io, KvLog& log, GroupCommitter& committer,
                     std::map<std::string, std::string> entries,
                     std::map<uint64_t, KvRecord> markers, Options options)
    : io_(io),
      log_(log),
      committer_(committer),
      options_(options),
      pool_(io),
      sweep_(io),
      retry_(io),
      entries_(std::move(entries)),
      markers_(std::move(markers)) {}

void KvReplica::Start(wire::ReplicaConfig config) {
  Apply(std::move(config));
  Sweep();
}

void KvReplica::Handle(http::Request&& request, http::Responder respond) {
  if (request.path == "/hafab/v1/replica") {
    if (request.method == "PUT") return ApplyRequest(request.body, respond);
    if (request.method == "GET") return respond(StatusResponse());
    return respond(http::Response::Text(405, "use GET or PUT\n"));
  }
  if (request.path == "/hafab/v1/replica/log") {
    if (request.method != "GET") return respond(http::Response::Text(405, "use GET\n"));
    return ServeLog(request, std::move(respond));
  }
  if (!request.path.starts_with(kKeyPrefix) || request.path.size() == kKeyPrefix.size()) {
    return respond(
        http::Response::Text(404, "not found: use /kv/KEY, /health or /hafab/v1/replica\n"));
  }
  std::string key = request.path.substr(kKeyPrefix.size());
  if (request.method == "PUT") return ClientPut(std::move(key), std::move(request.body), respond);
  if (request.method == "GET" || request.method == "HEAD") {
    // Served locally on every replica: a secondary's answer can be stale (README.md).
    auto it = entries_.find(key);
    if (it == entries_.end()) return respond(http::Response::Text(404, "no such key\n"));
    http::Response response;
    response.content_type = "application/octet-stream";
    response.body = it->second;
    return respond(std::move(response));
  }
  http::Response response = http::Response::Text(405, "use GET or PUT\n");
  response.headers.emplace_back("Allow", "GET, PUT");
  respond(std::move(response));
}

void KvReplica::ApplyRequest(const std::string& body, const http::Responder& respond) {
  auto config = ReadReplicaConfig(body);
  if (!config.ok()) {
    return respond(
        http::Response::Text(400, "bad configuration: " + config.status().message() + "\n"));
  }
  if (config->instance != config_.instance) {
    return respond(http::Response::Text(400, "bad configuration: instance: this replica is " +
                                                 config_.instance + ", not " + config->instance +
                                                 "\n"));
  }
  if (config->epoch < config_.epoch) {
    return respond(http::Response::Text(
        409, "configuration epoch " + std::to_string(config->epoch) +
                 " is older than the applied epoch " + std::to_string(config_.epoch) + "\n"));
  }
  Apply(*std::move(config));
  respond(StatusResponse());
}

void KvReplica::Apply(wire::ReplicaConfig config) {
  const bool was_primary = configured_ && config_.role == ReplicaRole::kPrimary;
  const bool same_epoch = configured_ && config.epoch == config_.epoch;
  const std::string old_primary = config_.primary ? config_.primary->address : "";
  config_ = std::move(config);
  configured_ = true;
  std::fprintf(stderr, "kvd: configuration epoch %lld: %s%s%s\n",
               static_cast<long long>(config_.epoch), wire::ReplicaRoleName(config_.role).data(),
               config_.primary ? ", primary " : ", no primary",
               config_.primary ? config_.primary->instance.c_str() : "");
  if (config_.role == ReplicaRole::kPrimary) {
    if (was_primary && same_epoch) return AdvanceCommit();  // replicas changed roles
    if (was_primary) StopBeingPrimary("no longer the primary of this epoch");
    return BecomePrimary(was_primary);
  }
  if (was_primary) {
    StopBeingPrimary("no longer the primary: now " +
                     std::string(wire::ReplicaRoleName(config_.role)) + " at epoch " +
                     std::to_string(config_.epoch));
  }
  acting_ = config_.role;
  const std::string primary = config_.primary ? config_.primary->address : "";
  if (!was_primary && same_epoch && primary == old_primary && generation_ > 0) return;
  ++generation_;
  primary_last_ = 0;
  if (primary.empty()) {
    state_ = "waiting for a primary";
    return;
  }
  state_ = "catching-up";
  Pull(generation_);
}

http::Response KvReplica::StatusResponse() const {
  const KvPosition last = log_.last();
  const wire::ReplicaStatus status = {
      .role = acting_,
      .epoch = config_.epoch,
      .position = {static_cast<int64_t>(last.epoch), static_cast<int64_t>(last.index)},
      .state = state_,
      .primary = config_.primary ? config_.primary->instance : ""};
  return http::Response::Json(200, Dump(wire::ToJson(status)));
}

// The contract's parser refuses a negative epoch.
uint64_t KvReplica::LogEpoch() const { return static_cast<uint64_t>(config_.epoch); }

http::Response KvReplica::NotPrimary() const {
  if (!config_.primary) {
    return http::Response::Text(503, "not the primary, and there is none at epoch " +
                                         std::to_string(config_.epoch) + ": try again later\n");
  }
  http::Response response =
      http::Response::Text(421, "not the primary: write to " + config_.primary->instance + " at " +
                                    config_.primary->address + "\n");
  response.headers.emplace_back("X-Hafab-Primary", config_.primary->instance);
  return response;
}

void KvReplica::ClientPut(std::string key, std::string value, http::Responder respond) {
  if (config_.role != ReplicaRole::kPrimary) return respond(NotPrimary());
  if (opening_) {
    return respond(
        http::Response::Text(503, "not stored: this replica is becoming the primary of epoch " +
                                      std::to_string(config_.epoch) + ": try again later\n"));
  }
  std::string key_copy = key;
  std::string value_copy = value;
  const uint64_t index = AppendAsPrimary(std::move(key_copy), std::move(value_copy));
  unacknowledged_[index] = {std::move(key), std::move(value), std::move(respond),
                            Clock::now() + options_.ack_timeout};
}

void KvReplica::AppendDone() {
  --appends_in_flight_;
  if (appends_in_flight_ == 0 && opening_) OpenEpoch(/*was_primary=*/false);
}

void KvReplica::BecomePrimary(bool was_primary) {
  ++generation_;  // stops following
  epoch_start_ = 0;
  commit_ = 0;
  match_.clear();
  state_ = "promoting: waiting for a quorum to hold the first record of epoch " +
           std::to_string(config_.epoch);
  // A follower's batch still in the committer has positions this replica did not choose:
  // position the marker after it once it is written.
  if (was_primary || appends_in_flight_ == 0) return OpenEpoch(was_primary);
  opening_ = true;
}

void KvReplica::OpenEpoch(bool was_primary) {
  opening_ = false;
  if (!was_primary) {  // the records it positioned as primary before are in its log
    assigned_ = log_.last();
    durable_ = assigned_.index;
    sent_.clear();
    sent_first_ = assigned_.index + 1;
    sent_bytes_ = 0;
  }
  // This run's marker: its id tells a follower's records from those of an earlier run.
  std::random_device random;
  char id[17];
  std::snprintf(id, sizeof id, "%08x%08x", random(), random());
  epoch_start_ = AppendAsPrimary("", id);
}

uint64_t KvReplica::AppendAsPrimary(std::string key, std::string value) {
  KvRecord record = {{LogEpoch(), assigned_.index + 1}, std::move(key), std::move(value)};
  assigned_ = record.position;
  if (record.key.empty()) markers_[record.position.index] = record;
  std::string bytes = EncodeKvRecord(record);
  sent_bytes_ += bytes.size();
  sent_.push_back({record.position.epoch, std::move(bytes)});
  ++appends_in_flight_;
  const uint64_t index = record.position.index;
  std::vector<KvRecord> records;
  records.push_back(std::move(record));
  committer_.AppendRecords(std::move(records), [this, index](Status written) {
    if (!written.ok()) {
      // Followers may hold this record (it was sent before its fsync): a later record must
      // not take its position. Restarting replays the log, and followers ahead of it move
      // their extra records aside (kv_replica.h).
      std::fprintf(stderr, "kvd: cannot append record %llu as primary: %s; exiting\n",
                   static_cast<unsigned long long>(index), written.message().c_str());
      std::exit(1);
    }
    AppendDone();
    if (config_.role == ReplicaRole::kPrimary) OnLocalDurable(index);
  });
  // Answered after the handlers already due, so that concurrent writes go out together.
  if (!polls_woken_) {
    polls_woken_ = true;
    boost::asio::post(io_, [this] {
      polls_woken_ = false;
      AnswerPolls();
    });
  }
  return index;
}

void KvReplica::StopBeingPrimary(const std::string& why) {
  for (auto& [index, record] : unacknowledged_) {
    entries_.insert_or_assign(std::move(record.key), std::move(record.value));
    if (record.respond) {
      record.respond(http::Response::Text(
          503, "not acknowledged: " + why + " (the write may or may not survive)\n"));
    }
  }
  unacknowledged_.clear();
  for (auto& poll : polls_) poll.respond(NotPrimary());
  polls_.clear();
  opening_ = false;
  epoch_start_ = 0;
  match_.clear();
}

void KvReplica::AnswerPolls() {
  if (config_.role != ReplicaRole::kPrimary) return;
  std::vector<Poll> waiting;
  waiting.swap(polls_);
  for (auto& poll : waiting) {
    if (poll.after < assigned_.index) {
      poll.respond(Records(poll.after));
    } else {
      polls_.push_back(std::move(poll));
    }
  }
}

void KvReplica::OnLocalDurable(uint64_t index) {
  durable_ = std::max(durable_, index);
  while (!sent_.empty() && sent_first_ <= durable_ && sent_bytes_ > kSentBytes) {
    sent_bytes_ -= sent_.front().bytes.size();
    sent_.pop_front();
    ++sent_first_;
  }
  AdvanceCommit();
}

void KvReplica::AdvanceCommit() {
  if (config_.role != ReplicaRole::kPrimary || epoch_start_ == 0) return;
  // Itself and quorum - 1 secondaries. A secondary can be ahead of it: records go out
  // before the primary's own fsync.
  std::vector<uint64_t> held;
  for (const auto& peer : config_.replicas) {
    if (peer.role != ReplicaRole::kSecondary || peer.instance == config_.instance) continue;
    auto it = match_.find(peer.instance);
    held.push_back(it == match_.end() ? 0 : it->second);
  }
  const size_t others = static_cast<size_t>(config_.quorum) - 1;
  if (held.size() < others) return;
  std::sort(held.begin(), held.end(), std::greater<>());
  const uint64_t quorum_holds = others == 0 ? durable_ : std::min(durable_, held[others - 1]);
  // Only a record of this epoch commits by counting replicas; earlier ones with it.
  if (quorum_holds < epoch_start_ || quorum_holds <= commit_) return;
  commit_ = quorum_holds;
  while (!unacknowledged_.empty() && unacknowledged_.begin()->first <= commit_) {
    auto& record = unacknowledged_.begin()->second;
    // Visible to readers only once quorum-durable.
    entries_.insert_or_assign(std::move(record.key), std::move(record.value));
    if (record.respond) record.respond(http::Response::Text(200, "stored\n"));
    unacknowledged_.erase(unacknowledged_.begin());
  }
  if (acting_ != ReplicaRole::kPrimary) {
    acting_ = ReplicaRole::kPrimary;
    state_ = "accepting writes";
    std::fprintf(stderr, "kvd: primary at epoch %lld, taking writes from index %llu\n",
                 static_cast<long long>(config_.epoch),
                 static_cast<unsigned long long>(epoch_start_));
  }
}

void KvReplica::ServeLog(const http::Request& request, http::Responder respond) {
  if (config_.role != ReplicaRole::kPrimary) return respond(NotPrimary());
  auto epoch = ParseU64(request.Query("epoch"));
  auto last_epoch = ParseU64(request.Query("last_epoch"));
  auto last_index = ParseU64(request.Query("last_index"));
  const std::string replica = request.Query("replica");
  if (!epoch || !last_epoch || !last_index || replica.empty()) {
    return respond(http::Response::Text(
        400, "need epoch, replica, last_epoch and last_index (integers but replica)\n"));
  }
  if (*epoch != LogEpoch()) {
    return respond(http::Response::Text(409, "this primary is at epoch " +
                                                 std::to_string(config_.epoch) + ", not " +
                                                 std::to_string(*epoch) + "\n"));
  }
  const wire::ReplicaMember* peer = FindReplica(config_, replica);
  if (peer == nullptr || replica == config_.instance) {
    return respond(http::Response::Text(
        409, replica + " is not a follower at epoch " + std::to_string(config_.epoch) + "\n"));
  }
  if (opening_) {
    return respond(http::Response::Text(
        503, "this primary is opening epoch " + std::to_string(config_.epoch) + "\n"));
  }
  std::optional<uint64_t> shared;
  auto epoch_here = EpochAt(*last_index);
  if (!epoch_here || *epoch_here != *last_epoch) {
    // Record last_index differs (or is not here): the logs share at most what precedes it.
    shared = *last_index == 0 ? 0 : std::min(EndOfEpoch(*last_epoch), *last_index - 1);
  }
  auto marker_index = ParseU64(request.Query("marker_index"));
  if (*last_epoch == LogEpoch() && marker_index && *marker_index > 0) {
    // Which run of this primary sent the follower's records of this epoch (kv_replica.h).
    uint64_t ours_until = *last_index;
    auto marker = markers_.find(*marker_index);
    if (marker == markers_.end() || marker->second.position.epoch != *last_epoch ||
        marker->second.value != request.Query("marker_id")) {
      ours_until = *marker_index - 1;
    } else if (auto next = markers_.upper_bound(*marker_index); next != markers_.end()) {
      ours_until = std::min(ours_until, next->first - 1);
    }
    if (ours_until < *last_index) shared = std::min(shared.value_or(ours_until), ours_until);
  }
  if (shared) {
    http::Response response = http::Response::Text(
        412, "your log diverges from the primary's after index " + std::to_string(*shared) + "\n");
    response.headers.emplace_back(kSharedHeader, std::to_string(*shared));
    return respond(std::move(response));
  }
  if (peer->role == ReplicaRole::kSecondary) {
    match_[replica] = *last_index;
    AdvanceCommit();
  }
  if (*last_index < assigned_.index) return respond(Records(*last_index));
  polls_.push_back({*last_index, std::move(respond), Clock::now() + options_.poll_wait});
}

std::optional<uint64_t> KvReplica::EpochAt(uint64_t index) const {
  if (index < sent_first_) return log_.EpochAt(index);
  if (index > assigned_.index) return std::nullopt;
  return sent_[index - sent_first_].epoch;
}

uint64_t KvReplica::EndOfEpoch(uint64_t epoch) const {
  // Epochs never decrease along the log.
  for (size_t i = sent_.size(); i > 0; --i) {
    if (sent_[i - 1].epoch <= epoch) return sent_first_ + i - 1;
  }
  return log_.EndOfEpoch(epoch);
}

http::Response KvReplica::Records(uint64_t after) {
  http::Response response;
  response.content_type = "application/octet-stream";
  response.headers.emplace_back(kLastHeader, std::to_string(assigned_.index));
  if (after >= assigned_.index) return response;
  if (after + 1 < sent_first_) {  // durable, no longer in memory
    auto bytes = log_.ReadRange(after + 1, sent_first_ - 1, kMaxPullBytes);
    if (!bytes.ok()) return http::Response::Text(500, bytes.status().message() + "\n");
    response.body = *std::move(bytes);
    return response;
  }
  for (uint64_t i = after + 1 - sent_first_; i < sent_.size(); ++i) {
    if (!response.body.empty() && response.body.size() + sent_[i].bytes.size() > kMaxPullBytes)
      break;
    response.body += sent_[i].bytes;
  }
  return response;
}

void KvReplica::Sweep() {
  const auto now = Clock::now();
  for (auto& [index, record] : unacknowledged_) {
    if (record.respond && record.deadline <= now) {
      std::fprintf(stderr, "kvd: write %llu not acknowledged within %lld ms\n",
                   static_cast<unsigned long long>(index),
                   static_cast<long long>(options_.ack_timeout.count()));
      record.respond(http::Response::Text(503, "not acknowledged: fewer than " +
                                                   std::to_string(config_.quorum) +
                                                   " replicas held it durably within " +
                                                   std::to_string(options_.ack_timeout.count()) +
                                                   " ms (the write may or may not survive)\n"));
      record.respond = nullptr;
    }
  }
  std::erase_if(polls_, [&](Poll& poll) {
    if (poll.deadline > now) return false;
    poll.respond(Records(poll.after));
    return true;
  });
  sweep_.expires_after(50ms);
  sweep_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) Sweep();
  });
}

void KvReplica::Pull(uint64_t generation) {
  if (generation != generation_) return;
  if (appends_in_flight_ > 0) return RetryPull(generation, 5ms);
  const KvPosition last = log_.last();
  std::string url = "http://" + config_.primary->address +
                    "/hafab/v1/replica/log?epoch=" + std::to_string(config_.epoch) +
                    "&replica=" + http::PercentEncode(config_.instance) +
                    "&last_epoch=" + std::to_string(last.epoch) +
                    "&last_index=" + std::to_string(last.index);
  // The last marker of its last record's epoch: which run of the primary wrote it.
  if (auto marker = markers_.upper_bound(last.index); marker != markers_.begin()) {
    --marker;
    if (marker->second.position.epoch == last.epoch) {
      url += "&marker_index=" + std::to_string(marker->first) +
             "&marker_id=" + http::PercentEncode(marker->second.value);
    }
  }
  pool_.Fetch("GET", url, "", {}, options_.poll_wait + 5s,
              [this, generation, last](Result<http::Response> response) {
                OnPulled(generation, last, std::move(response));
              });
}

void KvReplica::RetryPull(uint64_t generation, std::chrono::milliseconds after) {
  retry_.expires_after(after);
  retry_.async_wait([this, generation](const boost::system::error_code& ec) {
    if (!ec) Pull(generation);
  });
}

void KvReplica::OnPulled(uint64_t generation, KvPosition sent, Result<http::Response> response) {
  if (generation != generation_) return;
  if (!response.ok()) {
    state_ = "cannot reach the primary " + config_.primary->instance + ": " +
             response.status().message();
    return RetryPull(generation, 100ms);
  }
  if (response->status == 412) {
    auto shared = ParseU64(response->Header(kSharedHeader));
    if (!shared || *shared >= sent.index) {
      state_ = "the primary's answer to a diverged log is unusable: " + response->body;
      return RetryPull(generation, 100ms);
    }
    MoveAside(*shared, sent);
    return Pull(generation);
  }
  if (response->status != 200) {
    state_ =
        "waiting: the primary answered " + std::to_string(response->status) + ": " + response->body;
    if (!state_.empty() && state_.back() == '\n') state_.pop_back();
    return RetryPull(generation, 100ms);
  }
  primary_last_ = ParseU64(response->Header(kLastHeader)).value_or(primary_last_);
  auto records = DecodeKvRecords(response->body);
  if (!records.ok()) {
    state_ = "bad records from the primary: " + records.status().message();
    return RetryPull(generation, 100ms);
  }
  if (records->empty()) {
    Followed(sent.index);
    return Pull(generation);
  }
  const uint64_t last = records->back().position.index;
  std::vector<std::pair<std::string, std::string>> updates;
  for (const auto& record : *records) {
    if (!record.key.empty()) {
      updates.emplace_back(record.key, record.value);
    } else {
      markers_[record.position.index] = record;
    }
  }
  ++appends_in_flight_;
  committer_.AppendRecords(
      *std::move(records), [this, generation, last, updates = std::move(updates)](Status written) {
        AppendDone();
        if (!written.ok()) {
          markers_.erase(markers_.upper_bound(log_.last().index), markers_.end());
          if (generation == generation_) state_ = "cannot append: " + written.message();
          return RetryPull(generation, 100ms);
        }
        // A follower's map follows its durable log (it can be ahead of the
        // primary's commit).
        for (const auto& [key, value] : updates) entries_.insert_or_assign(key, value);
        if (generation != generation_) return;
        Followed(last);
        Pull(generation);
      });
}

void KvReplica::MoveAside(uint64_t shared_until, KvPosition last) {
  std::string aside = log_.path() + ".diverged-epoch-" + std::to_string(last.epoch);
  for (int n = 2; std::filesystem::exists(aside); ++n) {
    aside = log_.path() + ".diverged-epoch-" + std::to_string(last.epoch) + "." + std::to_string(n);
  }
  Status moved = log_.TruncateAfter(shared_until, aside);
  if (!moved.ok()) {
    state_ = "cannot move the diverged records aside: " + moved.message();
    std::fprintf(stderr, "kvd: %s\n", state_.c_str());
    return;
  }
  std::fprintf(stderr,
               "kvd: records %llu to %llu are not in the primary's log: moved aside to %s\n",
               static_cast<unsigned long long>(shared_until + 1),
               static_cast<unsigned long long>(last.index), aside.c_str());
  KvLog::Replay replay;
  auto reread = KvLog::Open(log_.path(), &replay);
  if (!reread.ok()) {
    std::fprintf(stderr, "kvd: cannot reread %s: %s; exiting\n", log_.path().c_str(),
                 reread.status().message().c_str());
    std::exit(1);
  }
  entries_ = std::move(replay.entries);
  markers_ = std::move(replay.markers);
}

void KvReplica::Followed(uint64_t index) {
  if (index >= primary_last_) {
    state_ = "streaming";
    return;
  }
  state_ = std::string(acting_ == ReplicaRole::kBuilding ? "building " : "catching-up ") +
           std::to_string(primary_last_ == 0 ? 0 : index * 100 / primary_last_) + "% (" +
           std::to_string(primary_last_ - index) + " records behind)";
}

}  // namespace hafab::apps
