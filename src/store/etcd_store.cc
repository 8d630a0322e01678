#include "store/etcd_store.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <utility>

#include "core/json.h"
#include "core/thread_annotations.h"

namespace hafab::store {

using nlohmann::json;
using Retry = EtcdClient::Retry;

namespace {

// int64 fields arrive as JSON strings ("5"), absent when 0.
int64_t Int(const json& object, const char* name) {
  auto it = object.find(name);
  if (it == object.end() || it->is_null()) return 0;
  if (it->is_number_integer()) return it->get<int64_t>();
  if (it->is_string()) {
    const std::string& text = it->get_ref<const std::string&>();
    try {
      return std::stoll(text);
    } catch (...) {
      return 0;
    }
  }
  return 0;
}

// bytes fields arrive base64-encoded, absent when empty.
Result<std::string> Bytes(const json& object, const char* name) {
  auto it = object.find(name);
  if (it == object.end() || !it->is_string()) return std::string();
  auto decoded = Base64Decode(it->get_ref<const std::string&>());
  if (!decoded.ok()) return decoded.status().WithContext(std::string("etcd field ") + name);
  return decoded;
}

Revision HeaderRevision(const json& answer) {
  auto it = answer.find("header");
  if (it == answer.end() || !it->is_object()) return 0;
  return Int(*it, "revision");
}

Result<KeyValue> ParseKeyValue(const json& kv) {
  KeyValue out;
  HAFAB_ASSIGN_OR_RETURN(out.key, Bytes(kv, "key"));
  HAFAB_ASSIGN_OR_RETURN(out.value, Bytes(kv, "value"));
  out.create_revision = Int(kv, "create_revision");
  out.mod_revision = Int(kv, "mod_revision");
  out.version = Int(kv, "version");
  out.lease = Int(kv, "lease");
  return out;
}

// The key and range_end of a prefix range; "" is every key ("\0" to "\0").
json PrefixRange(const std::string& prefix) {
  return {{"key", Base64Encode(prefix.empty() ? std::string(1, '\0') : prefix)},
          {"range_end", Base64Encode(PrefixRangeEnd(prefix))}};
}

const char* TargetName(Compare::Target target) {
  switch (target) {
    case Compare::Target::kValue:
      return "VALUE";
    case Compare::Target::kVersion:
      return "VERSION";
    case Compare::Target::kCreateRevision:
      return "CREATE";
    case Compare::Target::kModRevision:
      return "MOD";
  }
  return "VALUE";
}

const char* ResultName(Compare::Op op) {
  switch (op) {
    case Compare::Op::kEqual:
      return "EQUAL";
    case Compare::Op::kNotEqual:
      return "NOT_EQUAL";
    case Compare::Op::kLess:
      return "LESS";
    case Compare::Op::kGreater:
      return "GREATER";
  }
  return "EQUAL";
}

json CompareJson(const Compare& c) {
  json out = {
      {"key", Base64Encode(c.key)}, {"target", TargetName(c.target)}, {"result", ResultName(c.op)}};
  switch (c.target) {
    case Compare::Target::kValue:
      out["value"] = Base64Encode(c.value);
      break;
    case Compare::Target::kVersion:
      out["version"] = std::to_string(c.number);
      break;
    case Compare::Target::kCreateRevision:
      out["create_revision"] = std::to_string(c.number);
      break;
    case Compare::Target::kModRevision:
      out["mod_revision"] = std::to_string(c.number);
      break;
  }
  return out;
}

json OpJson(const Op& op) {
  switch (op.type) {
    case Op::Type::kPut: {
      json put = {{"key", Base64Encode(op.key)}, {"value", Base64Encode(op.value)}};
      if (op.lease != 0) put["lease"] = std::to_string(op.lease);
      return {{"request_put", std::move(put)}};
    }
    case Op::Type::kDelete:
      return {{"request_delete_range", {{"key", Base64Encode(op.key)}}}};
    case Op::Type::kDeletePrefix:
      return {{"request_delete_range", PrefixRange(op.key)}};
  }
  return json::object();
}

std::string Printable(const std::string& key) {
  std::string out;
  for (unsigned char c : key) {
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      out += static_cast<char>(c);
    } else {
      static const char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

// The Store contract (and etcd) reject a branch that puts a key twice, or puts a key it
// also deletes (by key or by prefix). Checked here to name the key in the error.
Status CheckBranch(const std::vector<Op>& ops, const char* branch) {
  std::set<std::string> puts;
  std::vector<const Op*> deletes;
  for (const Op& op : ops) {
    if (op.type == Op::Type::kPut) {
      if (!puts.insert(op.key).second) {
        return Status::InvalidArgument(std::string("txn: key \"") + Printable(op.key) +
                                       "\" is put twice in the " + branch + " branch");
      }
    } else {
      deletes.push_back(&op);
    }
  }
  for (const Op* del : deletes) {
    for (const std::string& key : puts) {
      bool hit = del->type == Op::Type::kDelete ? key == del->key
                                                : key.compare(0, del->key.size(), del->key) == 0;
      if (hit) {
        return Status::InvalidArgument(std::string("txn: key \"") + Printable(key) +
                                       "\" is both put and deleted in the " + branch + " branch");
      }
    }
  }
  return Status::Ok();
}

}  // namespace

namespace etcd_internal {

class EtcdWatcher;

// The live watchers of one store, so that closing the store ends them.
struct WatchRegistry {
  std::mutex mu;
  std::set<EtcdWatcher*> live GUARDED_BY(mu);
};

class EtcdWatcher final : public Watcher {
 public:
  EtcdWatcher(std::shared_ptr<EtcdClient> client, std::shared_ptr<WatchRegistry> registry,
              std::string prefix)
      : client_(std::move(client)), registry_(std::move(registry)), prefix_(std::move(prefix)) {
    std::lock_guard<std::mutex> lock(registry_->mu);
    registry_->live.insert(this);
  }

  ~EtcdWatcher() override {
    std::lock_guard<std::mutex> lock(registry_->mu);
    registry_->live.erase(this);
  }

  // Opens the stream and waits for etcd to confirm the watch, so that every change
  // committed after Watch returns is seen.
  Status Start(Revision start) {
    next_revision_ = start;
    TimePoint deadline = RealClock().Now() + client_->options().request_timeout;
    return Open(deadline, nullptr);
  }

  Result<WatchBatch> Next(Duration timeout) override {
    Clock& clock = RealClock();
    const TimePoint deadline = clock.Now() + timeout;
    while (true) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (cancelled_) return Status::Unavailable(cancel_reason_);
      }
      if (!final_.ok()) return final_;
      if (stream_ == nullptr) {
        Status opened = Open(deadline, broken_endpoint_ ? &*broken_endpoint_ : nullptr);
        if (opened.ok()) {
          client_->NoteWatchResume();
          spdlog::info("etcd: watch on \"{}\" resumed at revision {} on {}", Printable(prefix_),
                       next_revision_, stream_->endpoint().Name());
          continue;
        }
        if (opened.code() == StatusCode::kConflict ||
            clock.Now() - broken_since_ >= client_->options().request_timeout) {
          final_ = Status(opened.code() == StatusCode::kConflict ? StatusCode::kConflict
                                                                 : StatusCode::kUnavailable,
                          "watch on \"" + Printable(prefix_) + "\" broken (" + broken_reason_ +
                              ") and not resumed: " + opened.message());
          return final_;
        }
        if (clock.Now() >= deadline) return WatchBatch{{}, last_revision_};
        continue;
      }
      auto message = stream_->Next(deadline);
      if (!message.ok()) {
        if (message.status().code() == StatusCode::kDeadlineExceeded) {
          return WatchBatch{{}, last_revision_};
        }
        Break(message.status().message());
        // A member that answers every reopen and breaks the stream again (garbage after
        // "created") must not hold the caller past its timeout: the next call resumes.
        if (clock.Now() >= deadline) return WatchBatch{{}, last_revision_};
        continue;
      }
      std::optional<WatchBatch> batch;
      Status handled = Handle(*message, &batch);
      if (!handled.ok()) {
        final_ = handled;
        return final_;
      }
      if (batch) return std::move(*batch);
      if (clock.Now() >= deadline) return WatchBatch{{}, last_revision_};  // progress only
    }
  }

  void Cancel() override { End("watch cancelled"); }

  // Ends the watch: this and every later Next return Unavailable(reason).
  void End(const std::string& reason) {
    std::lock_guard<std::mutex> lock(mu_);
    if (cancelled_) return;
    cancelled_ = true;
    cancel_reason_ = reason;
    if (stream_ != nullptr) stream_->Interrupt();
  }

 private:
  // Opens a stream from next_revision_ (0 = from now) and waits for its "created", trying
  // the endpoints in turn (a member without a leader answers the watch with an error) until
  // `deadline`. Gives a reopen at least a moment, so that short Next timeouts still resume.
  Status Open(TimePoint deadline, const EtcdEndpoint* avoid) {
    Clock& clock = RealClock();
    const EtcdClientOptions& options = client_->options();
    deadline = std::max(deadline, clock.Now() + std::min<Duration>(options.request_timeout,
                                                                   std::chrono::seconds(1)));
    std::optional<EtcdEndpoint> skip;
    if (avoid != nullptr) skip = *avoid;
    Status last = Status::Unavailable("watch not opened");
    while (true) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (cancelled_) return Status::Unavailable(cancel_reason_);
      }
      last = OpenOnce(deadline, skip ? &*skip : nullptr, &skip);
      if (last.ok() || last.code() == StatusCode::kConflict) return last;
      if (clock.Now() >= deadline) return last;
      std::this_thread::sleep_for(
          std::min<Duration>(options.retry_backoff, deadline - clock.Now()));
    }
  }

  Status OpenOnce(TimePoint deadline, const EtcdEndpoint* avoid,
                  std::optional<EtcdEndpoint>* failed_on) {
    json create = PrefixRange(prefix_);
    if (next_revision_ > 0) create["start_revision"] = std::to_string(next_revision_);
    create["progress_notify"] = true;
    auto stream = client_->OpenStream("/v3/watch", {{"create_request", create}}, avoid, deadline);
    if (!stream.ok()) return stream.status();
    *failed_on = (*stream)->endpoint();
    auto first = (*stream)->Next(deadline);
    if (!first.ok()) return first.status();
    const json* result = first->contains("result") ? &(*first)["result"] : nullptr;
    if (result == nullptr || !result->value("created", false)) {
      return Status::Unavailable("etcd " + (*stream)->endpoint().Name() +
                                 " did not create the watch: " + Dump(*first).substr(0, 200));
    }
    if (next_revision_ == 0) next_revision_ = HeaderRevision(*result) + 1;
    last_revision_ = std::max(last_revision_, HeaderRevision(*result));
    std::lock_guard<std::mutex> lock(mu_);
    stream_ = std::move(stream).value();
    if (cancelled_) stream_->Interrupt();
    return Status::Ok();
  }

  void Break(const std::string& reason) {
    if (stream_ != nullptr) broken_endpoint_ = stream_->endpoint();
    broken_reason_ = reason;
    broken_since_ = RealClock().Now();
    spdlog::warn("etcd: watch on \"{}\" broke: {}; resuming from revision {}", Printable(prefix_),
                 reason, next_revision_);
    std::lock_guard<std::mutex> lock(mu_);
    stream_.reset();
  }

  // Turns one stream message into a batch (events), nothing (progress, created), a broken
  // stream, or a final error (compaction).
  Status Handle(const json& message, std::optional<WatchBatch>* batch) {
    if (message.contains("error")) {
      const json& e = message["error"];
      Break(e.is_object() ? e.value("message", Dump(e)) : Dump(e));
      return Status::Ok();
    }
    auto it = message.find("result");
    if (it == message.end() || !it->is_object()) {
      Break("unexpected message " + Dump(message).substr(0, 200));
      return Status::Ok();
    }
    const json& result = *it;
    Revision compacted = Int(result, "compact_revision");
    if (compacted > 0) {
      return Status::Conflict("revision " + std::to_string(next_revision_) +
                              " compacted; oldest is " + std::to_string(compacted));
    }
    if (result.value("canceled", false)) {
      Break("cancelled by etcd: " + result.value("cancel_reason", std::string("no reason")));
      return Status::Ok();
    }
    Revision revision = HeaderRevision(result);
    last_revision_ = std::max(last_revision_, revision);
    auto events = result.find("events");
    if (events == result.end() || !events->is_array() || events->empty()) return Status::Ok();
    WatchBatch out;
    out.revision = last_revision_;
    for (const json& e : *events) {
      Event event;
      event.type = e.value("type", std::string("PUT")) == "DELETE" ? Event::Type::kDelete
                                                                   : Event::Type::kPut;
      auto kv = ParseKeyValue(e.value("kv", json::object()));
      if (!kv.ok()) return kv.status();
      event.kv = std::move(kv).value();
      // A resumed stream starts after what was delivered; skip anything older anyway.
      if (event.kv.mod_revision < next_revision_) continue;
      out.events.push_back(std::move(event));
    }
    if (out.events.empty()) return Status::Ok();
    next_revision_ = out.events.back().kv.mod_revision + 1;
    *batch = std::move(out);
    return Status::Ok();
  }

  const std::shared_ptr<EtcdClient> client_;
  const std::shared_ptr<WatchRegistry> registry_;
  const std::string prefix_;
  Revision next_revision_ = 0;  // the first revision not yet delivered
  Revision last_revision_ = 0;  // the newest store revision seen
  Status final_;                // once not OK, every Next returns it
  std::optional<EtcdEndpoint> broken_endpoint_;
  std::string broken_reason_;
  TimePoint broken_since_;
  std::mutex mu_;
  bool cancelled_ GUARDED_BY(mu_) = false;
  std::string cancel_reason_ GUARDED_BY(mu_);
  // Replaced only by the thread in Next (under mu_); Cancel interrupts it under mu_.
  std::unique_ptr<EtcdStream> stream_;
};

}  // namespace etcd_internal

using etcd_internal::EtcdWatcher;

Result<std::unique_ptr<EtcdStore>> EtcdStore::Open(const std::string& url, Options options) {
  HAFAB_ASSIGN_OR_RETURN(auto endpoints, ParseEtcdUrl(url));
  return Open(std::move(endpoints), options);
}

Result<std::unique_ptr<EtcdStore>> EtcdStore::Open(std::vector<EtcdEndpoint> endpoints,
                                                   Options options) {
  if (endpoints.empty()) return Status::InvalidArgument("etcd store: no endpoint");
  if (options.request_timeout <= Duration::zero()) {
    return Status::InvalidArgument("etcd store: request_timeout must be positive");
  }
  auto client = std::make_shared<EtcdClient>(std::move(endpoints), options);
  auto status = client->Call("/v3/maintenance/status", json::object(), Retry::kIdempotent);
  if (!status.ok())
    return status.status().WithContext("opening etcd store " + client->EndpointList());
  return std::unique_ptr<EtcdStore>(new EtcdStore(std::move(client)));
}

EtcdStore::EtcdStore(std::shared_ptr<EtcdClient> client)
    : client_(std::move(client)), watches_(std::make_shared<etcd_internal::WatchRegistry>()) {}

EtcdStore::~EtcdStore() {
  std::lock_guard<std::mutex> lock(watches_->mu);
  for (EtcdWatcher* w : watches_->live) w->End("store closed");
}

Result<KeyValue> EtcdStore::Get(const std::string& key) {
  HAFAB_ASSIGN_OR_RETURN(
      json answer, client_->Call("/v3/kv/range", {{"key", Base64Encode(key)}}, Retry::kIdempotent));
  auto kvs = answer.find("kvs");
  if (kvs == answer.end() || !kvs->is_array() || kvs->empty()) {
    return Status::NotFound("key \"" + Printable(key) + "\" not found");
  }
  return ParseKeyValue(kvs->front());
}

Result<RangeResult> EtcdStore::Range(const std::string& prefix) {
  HAFAB_ASSIGN_OR_RETURN(json answer,
                         client_->Call("/v3/kv/range", PrefixRange(prefix), Retry::kIdempotent));
  RangeResult out;
  out.revision = HeaderRevision(answer);
  auto kvs = answer.find("kvs");
  if (kvs != answer.end() && kvs->is_array()) {
    out.kvs.reserve(kvs->size());
    for (const json& kv : *kvs) {
      HAFAB_ASSIGN_OR_RETURN(KeyValue parsed, ParseKeyValue(kv));
      out.kvs.push_back(std::move(parsed));
    }
  }
  return out;
}

Result<TxnResult> EtcdStore::Commit(const Txn& txn) {
  HAFAB_RETURN_IF_ERROR(CheckBranch(txn.success, "success"));
  HAFAB_RETURN_IF_ERROR(CheckBranch(txn.failure, "failure"));
  json request = json::object();
  if (!txn.compares.empty()) {
    json compares = json::array();
    for (const Compare& c : txn.compares) compares.push_back(CompareJson(c));
    request["compare"] = std::move(compares);
  }
  for (auto [ops, name] :
       {std::pair{&txn.success, "success"}, std::pair{&txn.failure, "failure"}}) {
    if (ops->empty()) continue;
    json list = json::array();
    for (const Op& op : *ops) list.push_back(OpJson(op));
    request[name] = std::move(list);
  }
  auto answer = client_->Call("/v3/kv/txn", request, Retry::kOnlyUnapplied);
  if (!answer.ok()) {
    const Status& failed = answer.status();
    if (failed.message().find("lease not found") != std::string::npos) {
      return Status::InvalidArgument("txn names a lease that does not exist or has expired: " +
                                     failed.message());
    }
    if (failed.code() == StatusCode::kNotFound) return Status::InvalidArgument(failed.message());
    return failed;
  }
  TxnResult out;
  out.succeeded = answer->value("succeeded", false);
  out.revision = HeaderRevision(*answer);
  return out;
}

Result<std::unique_ptr<Watcher>> EtcdStore::Watch(const std::string& prefix, Revision start) {
  if (start < 0) return Status::InvalidArgument("watch start revision must be >= 0");
  auto watcher = std::make_unique<EtcdWatcher>(client_, watches_, prefix);
  HAFAB_RETURN_IF_ERROR(watcher->Start(start));
  return std::unique_ptr<Watcher>(std::move(watcher));
}

Result<LeaseId> EtcdStore::GrantLease(Duration ttl) {
  if (ttl <= Duration::zero()) {
    return Status::InvalidArgument("lease ttl must be positive, got " +
                                   std::to_string(static_cast<long long>(ToMillis(ttl))) + "ms");
  }
  // etcd counts whole seconds: round up.
  auto seconds = std::chrono::ceil<std::chrono::seconds>(ttl).count();
  // A grant repeated after a lost answer leaves an unused lease that simply expires.
  HAFAB_ASSIGN_OR_RETURN(
      json answer,
      client_->Call("/v3/lease/grant", {{"TTL", std::to_string(seconds)}}, Retry::kIdempotent));
  LeaseId id = Int(answer, "ID");
  if (id == 0) {
    return Status::Internal("etcd granted no lease: " + answer.value("error", Dump(answer)));
  }
  const Duration granted = std::chrono::seconds(Int(answer, "TTL"));
  if (granted > std::chrono::seconds(seconds)) {
    Duration prev = raised_ttl_.load();
    while (prev < granted && !raised_ttl_.compare_exchange_weak(prev, granted)) {
    }
    if (prev == Duration::zero()) {
      spdlog::warn(
          "etcd: a lease of {} s was asked for and {} s granted (etcd's floor is 1.5 times "
          "its --election-timeout): a leader key outlives a dead holder by up to {} s",
          seconds, ToMillis(granted) / 1000, ToMillis(granted) / 1000);
    }
  }
  return id;
}

Status EtcdStore::KeepAlive(LeaseId lease) {
  auto answer =
      client_->Call("/v3/lease/keepalive", {{"ID", std::to_string(lease)}}, Retry::kIdempotent);
  if (!answer.ok()) return answer.status();
  const json& result = answer->contains("result") ? (*answer)["result"] : *answer;
  if (Int(result, "TTL") <= 0) {
    return Status::NotFound("lease " + std::to_string(lease) + " expired or was revoked");
  }
  return Status::Ok();
}

Status EtcdStore::RevokeLease(LeaseId lease) {
  auto answer =
      client_->Call("/v3/lease/revoke", {{"ID", std::to_string(lease)}}, Retry::kOnlyUnapplied);
  if (!answer.ok()) {
    if (answer.status().code() == StatusCode::kNotFound) {
      return Status::NotFound("lease " + std::to_string(lease) +
                              " not found: " + answer.status().message());
    }
    return answer.status();
  }
  return Status::Ok();
}

}  // namespace hafab::store
