#include "kv_replica.h"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>

#include "core/json.h"

namespace hafab::apps {

using wire::ReplicaRole;

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr std::string_view kKeyPrefix = "/kv/";
constexpr size_t kMaxPullBytes = 1u << 20;
// Headers of the primary's answer to a follower.
constexpr const char* kLastHeader = "X-Kvd-Last";            // the primary's last durable index
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
                     std::map<std::string, std::string> entries, Options options)
    : io_(io),
      log_(log),
      committer_(committer),
      options_(options),
      pool_(io),
      sweep_(io),
      retry_(io),
      entries_(std::move(entries)) {}

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
    return BecomePrimary();
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
  const uint64_t epoch = LogEpoch();
  const auto deadline = Clock::now() + options_.ack_timeout;
  ++appends_in_flight_;
  std::string key_copy = key;
  std::string value_copy = value;
  committer_.Append(
      std::move(key_copy), std::move(value_copy), epoch,
      [this, epoch, deadline, key = std::move(key), value = std::move(value),
       respond = std::move(respond)](Status written, KvPosition position) mutable {
        --appends_in_flight_;
        if (!written.ok()) {
          std::fprintf(stderr, "kvd: a write failed: %s\n", written.message().c_str());
          return respond(http::Response::Text(500, written.message() + "\n"));
        }
        if (!PrimaryAt(epoch)) {
          // Durable here but never acknowledged; a secondary's map follows its log.
          entries_.insert_or_assign(std::move(key), std::move(value));
          return respond(http::Response::Text(
              503,
              "not acknowledged: this replica is no longer the primary (the write may or "
              "may not survive)\n"));
        }
        unacknowledged_[position.index] = {std::move(key), std::move(value), std::move(respond),
                                           deadline};
        OnLocalDurable(position.index);
      });
}

bool KvReplica::PrimaryAt(uint64_t epoch) const {
  return config_.role == ReplicaRole::kPrimary && LogEpoch() == epoch;
}

void KvReplica::BecomePrimary() {
  ++generation_;  // stops following
  epoch_start_ = 0;
  commit_ = 0;
  match_.clear();
  durable_ = log_.last().index;
  state_ = "promoting: waiting for a quorum to hold the first record of epoch " +
           std::to_string(config_.epoch);
  const uint64_t epoch = LogEpoch();
  ++appends_in_flight_;
  committer_.Append("", "", epoch, [this, epoch](Status written, KvPosition position) {
    --appends_in_flight_;
    if (!written.ok()) {
      // Without its marker this replica cannot commit anything: stop, the fabric fails over.
      std::fprintf(stderr, "kvd: cannot open epoch %llu: %s; exiting\n",
                   static_cast<unsigned long long>(epoch), written.message().c_str());
      std::exit(1);
    }
    if (!PrimaryAt(epoch)) return;
    epoch_start_ = position.index;
    OnLocalDurable(position.index);
  });
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
  epoch_start_ = 0;
  match_.clear();
}

void KvReplica::OnLocalDurable(uint64_t index) {
  durable_ = std::max(durable_, index);
  std::vector<Poll> waiting;
  waiting.swap(polls_);
  for (auto& poll : waiting) {
    if (poll.after < durable_) {
      poll.respond(Records(poll.after));
    } else {
      polls_.push_back(std::move(poll));
    }
  }
  AdvanceCommit();
}

void KvReplica::AdvanceCommit() {
  if (config_.role != ReplicaRole::kPrimary || epoch_start_ == 0) return;
  std::vector<uint64_t> held = {durable_};
  for (const auto& peer : config_.replicas) {
    if (peer.role != ReplicaRole::kSecondary || peer.instance == config_.instance) continue;
    auto it = match_.find(peer.instance);
    held.push_back(it == match_.end() ? 0 : it->second);
  }
  if (held.size() < static_cast<size_t>(config_.quorum)) return;
  std::sort(held.begin(), held.end(), std::greater<>());
  const uint64_t quorum_holds = held[static_cast<size_t>(config_.quorum) - 1];
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
  auto epoch_here = log_.EpochAt(*last_index);
  if (!epoch_here || *epoch_here != *last_epoch) {
    // Record last_index differs (or is not here): the logs share at most what precedes it.
    uint64_t shared =
        *last_index == 0 ? 0 : std::min(log_.EndOfEpoch(*last_epoch), *last_index - 1);
    shared = std::min(shared, durable_);
    http::Response response = http::Response::Text(
        412, "your log diverges from the primary's after index " + std::to_string(shared) + "\n");
    response.headers.emplace_back(kSharedHeader, std::to_string(shared));
    return respond(std::move(response));
  }
  if (peer->role == ReplicaRole::kSecondary) {
    match_[replica] = *last_index;
    AdvanceCommit();
  }
  if (*last_index < durable_) return respond(Records(*last_index));
  polls_.push_back({*last_index, std::move(respond), Clock::now() + options_.poll_wait});
}

http::Response KvReplica::Records(uint64_t after) {
  http::Response response;
  response.content_type = "application/octet-stream";
  response.headers.emplace_back(kLastHeader, std::to_string(durable_));
  if (after >= durable_) return response;
  auto bytes = log_.ReadRange(after + 1, durable_, kMaxPullBytes);
  if (!bytes.ok()) return http::Response::Text(500, bytes.status().message() + "\n");
  response.body = *std::move(bytes);
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
  const std::string url = "http://" + config_.primary->address +
                          "/hafab/v1/replica/log?epoch=" + std::to_string(config_.epoch) +
                          "&replica=" + http::PercentEncode(config_.instance) +
                          "&last_epoch=" + std::to_string(last.epoch) +
                          "&last_index=" + std::to_string(last.index);
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
    if (!record.key.empty()) updates.emplace_back(record.key, record.value);
  }
  ++appends_in_flight_;
  committer_.AppendRecords(*std::move(records),
                           [this, generation, last, updates = std::move(updates)](Status written) {
                             --appends_in_flight_;
                             if (!written.ok()) {
                               if (generation == generation_)
                                 state_ = "cannot append: " + written.message();
                               return RetryPull(generation, 100ms);
                             }
                             // A follower's map follows its durable log (it can be ahead of the
                             // primary's commit).
                             for (const auto& [key, value] : updates)
                               entries_.insert_or_assign(key, value);
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
