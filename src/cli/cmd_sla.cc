// hafab sla: the fraction of a window during which a role had a routable instance
// (src/controller/availability.h).
#include <cstdio>
#include <iostream>

#include "cli/api_client.h"
#include "cli/command.h"
#include "core/duration.h"

namespace hafab::cli {
namespace {

using nlohmann::json;

std::string Ms(int64_t ms) {
  char buf[64];
  if (ms < 10000) {
    std::snprintf(buf, sizeof buf, "%lldms", static_cast<long long>(ms));
  } else if (ms < 2 * 3600 * 1000) {
    std::snprintf(buf, sizeof buf, "%.1fs", ms / 1000.0);
  } else {
    std::snprintf(buf, sizeof buf, "%.1fh", ms / 3600000.0);
  }
  return buf;
}

HAFAB_COMMAND(46, [](CLI::App& app) {
  auto o = std::make_shared<ApiOptions>();
  auto role = std::make_shared<std::string>();
  auto window = std::make_shared<std::string>("1h");
  auto* cmd = app.add_subcommand(
      "sla", "Fraction of a window during which a role had at least one routable instance");
  cmd->footer(
      "Example:\n  hafab sla echo --window 24h\n\n"
      "From the controller's records of when the role's endpoint had no ready, non-busy\n"
      "instance. While no controller ran, the last recorded state is assumed.");
  cmd->add_option("role", *role, "Role with an endpoint")->required();
  cmd->add_option("--window", *window, "How far back (default 1h)");
  AddApiFlags(cmd, o.get());
  cmd->callback([=] {
    auto w = ParseDuration(*window);
    if (!w.ok() || *w <= Duration::zero()) {
      std::cerr << "hafab sla: --window " << *window << ": want a duration such as 30m, 1h, 7d\n";
      SetExitCode(kExitUsage);
      return;
    }
    int64_t window_ms = std::chrono::duration_cast<std::chrono::milliseconds>(*w).count();
    WithClient(*o, [&](const ApiClient& c) -> Status {
      HAFAB_ASSIGN_OR_RETURN(
          json j,
          c.Call("GET", "/v1/roles/" + *role + "/sla?window_ms=" + std::to_string(window_ms)));
      if (j["availability"].is_null()) {
        std::cout << *role << ": no record yet (" << j.value("note", "") << ")\n";
        return Status::Ok();
      }
      char pct[32];
      std::snprintf(pct, sizeof pct, "%.4f%%", 100.0 * j["availability"].get<double>());
      int64_t observed = j.value("observed_ms", int64_t{0});
      const json outages = j.value("outages", json::array());
      std::cout << *role << ": " << pct << " routable over the last " << Ms(observed)
                << (observed + 1000 < window_ms ? " (recorded since then; window " + *window + ")"
                                                : "")
                << ": " << outages.size() << " outages, "
                << Ms(j.value("unavailable_ms", int64_t{0})) << " without a routable instance\n";
      int64_t to = j.value("to_ms", int64_t{0});
      for (const auto& out : outages) {
        std::cout << "  " << Ms(to - out.value("start_ms", int64_t{0})) << " ago  for "
                  << Ms(out.value("duration_ms", int64_t{0})) << "\n";
      }
      return Status::Ok();
    });
  });
});

}  // namespace
}  // namespace hafab::cli
