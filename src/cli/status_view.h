// Text rendering of the controller's JSON for people: the status table, events, operations.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace hafab::cli {

// A fixed-width table: one row per instance (role, mode, instance, node, FD/UD, state,
// ready/busy, epoch, restarts, age), then one line per node.
std::string RenderStatusTable(const nlohmann::json& status);

// The controller replicas: [{"url", "role" (leader|follower|unreachable), "leader_for_ms"}]
// as a table; the leader's row says for how long it has led.
std::string RenderControllers(const nlohmann::json& replicas);

// New events of a GET /v1/events answer, one line each; advances *last_seq.
std::string RenderEvents(const nlohmann::json& events, int64_t* last_seq);

// Operations with their step timelines.
std::string RenderOps(const nlohmann::json& ops);

// Columns padded to the widest cell; the first row is the header.
std::string FormatTable(const std::vector<std::vector<std::string>>& rows);

}  // namespace hafab::cli
