// Each `hafab` subcommand lives in its own cmd_*.cc beside main.cc and registers itself:
//   HAFAB_COMMAND(20, [](CLI::App& app) { auto* c = app.add_subcommand("agent", "..."); ... });
// The number orders `hafab --help`; each command has its own (the order in which files'
// registrations run is unspecified). Handlers set the process exit code through ExitCode.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace hafab::cli {

// Documented exit codes of the hafab command (README "Exit codes").
enum ExitCode : int {
  kExitOk = 0,
  kExitError = 1,        // the request failed or the input is invalid
  kExitUsage = 2,        // bad flags or arguments
  kExitUnreachable = 3,  // the controller could not be reached
};

using AddCommand = std::function<void(CLI::App&)>;

struct CommandRegistration {
  CommandRegistration(int order, AddCommand add);
};

// Registers every command into `app`, in order.
void AddAllCommands(CLI::App& app);

// Set by a command's callback; main returns it.
void SetExitCode(int code);
int GetExitCode();

}  // namespace hafab::cli

#define HAFAB_CMD_CONCAT_INNER(a, b) a##b
#define HAFAB_CMD_CONCAT(a, b) HAFAB_CMD_CONCAT_INNER(a, b)
#define HAFAB_COMMAND(order, fn) \
  static ::hafab::cli::CommandRegistration HAFAB_CMD_CONCAT(hafab_cmd_, __LINE__)(order, fn)
