// Text rendering of the controller's JSON for people: the status table, events, operations.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

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

using Rows = std::vector<std::vector<std::string>>;

// The table of `hafab get KIND`: a header, then one row per object, named by its first cell.
// KIND is roles, nodes, volumes, gateways (`doc` = the answer of GET /v1/KIND) or instances
// (`doc` = GET /v1/status). The default columns are the ones an operator reads first;
// `wide` (-o wide) adds the rest. Volatile columns (ages, heartbeats) are headed AGE or
// HEARTBEAT.
Rows ListingRows(const std::string& kind, const nlohmann::json& doc, bool wide);

// Columns padded to the widest cell; the first row is the header.
std::string FormatTable(const Rows& rows);

// One line of a table whose columns are `width` wide (wider cells push the next ones right).
std::string FormatRow(const std::vector<std::string>& row, const std::vector<size_t>& width);

}  // namespace hafab::cli
