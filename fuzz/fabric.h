// For the controller's fuzz targets: a controller with its HTTP API on a FakeClock and an
// in-memory SQLite store (as the controller's unit tests), the quickstart manifest applied,
// and fake agents for its three nodes. Requests go through Api::Handle, the handler the
// daemon's http::Server calls, after http::ParseTarget decodes their target as the server does.
#pragma once

#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "controller/api.h"
#include "manifest/parser.h"
#include "testing/fake_agent.h"
#include "testing/fake_clock.h"
#include "testing/fake_provider.h"
#include "testing/memory_store.h"

namespace hafab::fuzz {

// Splits `text` at each "\n%%\n": one request (or heartbeat) per part.
inline std::vector<std::string_view> SplitParts(std::string_view text) {
  std::vector<std::string_view> parts;
  constexpr std::string_view kSep = "\n%%\n";
  while (true) {
    size_t at = text.find(kSep);
    parts.push_back(text.substr(0, at));
    if (at == std::string_view::npos) return parts;
    text.remove_prefix(at + kSep.size());
  }
}

inline void Fail(const std::string& what) {
  std::fprintf(stderr, "%s\n", what.c_str());
  std::abort();
}

class Fabric {
 public:
  Fabric() {
    static const manifest::Manifest quickstart = [] {
      spdlog::set_level(spdlog::level::off);  // per-request logs would drown the fuzzer's
      auto parsed = manifest::LoadManifestFile(HAFAB_SOURCE_DIR "/examples/quickstart.yaml");
      if (!parsed.manifest) Fail("examples/quickstart.yaml does not parse");
      return *parsed.manifest;
    }();
    if (!c_.Start().ok()) Fail("controller did not start");
    api_ = std::make_unique<controller::Api>(c_, clock_, controller::Tokens{"admin", "read"});
    if (!c_.Apply(quickstart).ok()) Fail("quickstart did not apply");
    for (const char* n : {"n1", "n2", "n3"}) {
      agents_.push_back(std::make_unique<testing::FakeAgent>(n, std::string("fd") + n[1],
                                                             std::string("ud") + n[1], &provider_));
    }
  }

  // Sends one request through the API; the answer when given at once. Every answer must
  // be JSON, and none may be a 500 (the store never fails here: a 500 is a bug).
  std::optional<http::Response> Send(std::string method, std::string_view target, std::string body,
                                     const std::string& token = "admin") {
    http::Request r;
    r.method = std::move(method);
    r.target = std::string(target);
    http::ParseTarget(target, r);
    r.body = std::move(body);
    r.headers["authorization"] = "Bearer " + token;
    // A long-poll is answered later, after this returns: the responder owns its slot.
    auto answer = std::make_shared<std::optional<http::Response>>();
    api_->Handle(std::move(r), [answer](http::Response resp) {
      Check(resp);
      *answer = std::move(resp);
    });
    return *answer;
  }

  // 100 ms pass: the agents named in `steps` report and sync, the controller ticks, the
  // gateway acknowledges the routes, long-polls whose wait ended are answered.
  void Advance(const std::vector<std::string>& steps = {"n1", "n2", "n3"}) {
    clock_.Advance(std::chrono::milliseconds(100));
    for (auto& a : agents_) {
      for (const auto& s : steps) {
        if (a->node() == s) a->Step(c_);
      }
    }
    (void)c_.GatewayHeartbeat("gw1", testing::GatewayAck(c_.RoutesVersion()));
    c_.Tick();
    api_->ExpireWaits();
  }

  void Finish() { api_->FlushAll(); }

  controller::Controller& controller() { return c_; }

 private:
  static void Check(const http::Response& resp) {
    if (resp.status == 500) Fail("HTTP 500: " + resp.body);
    if (nlohmann::json::parse(resp.body, nullptr, false).is_discarded()) {
      Fail("answer is not JSON: " + resp.body);
    }
  }

  testing::FakeClock clock_;
  testing::MemoryStore store_{clock_};
  testing::FakeProvider provider_;
  controller::Controller c_{store_, clock_, &provider_, controller::ControllerOptions{}};
  std::unique_ptr<controller::Api> api_;
  std::vector<std::unique_ptr<testing::FakeAgent>> agents_;
};

}  // namespace hafab::fuzz
