// The command registry and the exit code (command.h), in the CLI library so that its
// users (the `hafab` binary, tests) share them.
#include "cli/command.h"

#include <algorithm>
#include <cassert>
#include <utility>
#include <vector>

namespace hafab::cli {
namespace {

std::vector<std::pair<int, AddCommand>>& Registry() {
  static std::vector<std::pair<int, AddCommand>> r;
  return r;
}
int g_exit_code = kExitOk;

}  // namespace

CommandRegistration::CommandRegistration(int order, AddCommand add) {
  Registry().emplace_back(order, std::move(add));
}

void AddAllCommands(CLI::App& app) {
  auto& r = Registry();
  std::stable_sort(r.begin(), r.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  assert(std::adjacent_find(r.begin(), r.end(), [](const auto& a, const auto& b) {
           return a.first == b.first;
         }) == r.end());  // two commands with one number: an order that depends on the link
  for (auto& [order, add] : r) add(app);
}

void SetExitCode(int code) { g_exit_code = code; }
int GetExitCode() { return g_exit_code; }

}  // namespace hafab::cli
