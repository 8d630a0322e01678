// The `hafab` binary: one CLI11 app whose subcommands register themselves (command.h).
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <cstdio>
#include <string>
#include <vector>

#include "cli/command.h"
#include "core/log.h"
#include "core/version.h"

int main(int argc, char** argv) {
  // Everything hafab creates (controller.db, tokens, logs, volumes, and what instances write,
  // which inherit it) is private to its user: files 0600, directories 0700.
  umask(077);
  CLI::App app{"hafab: a high-availability fabric for unmodified applications"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("hafab ") + hafab::kVersion);
  std::string log_format = "text";
  std::string log_level = "info";
  app.add_option("--log-format", log_format, "Log format: text or json")
      ->check(CLI::IsMember({"text", "json"}));
  app.add_option("--log-level", log_level, "Log level: trace, debug, info, warn, error");
  app.parse_complete_callback([&] {
    auto st = hafab::InitLogging("hafab", log_format, log_level);
    if (!st.ok()) throw CLI::ValidationError(st.message());
  });
  hafab::cli::AddAllCommands(app);
  // Name an unknown verb and list the real ones (CLI11 alone says "A subcommand is required").
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--log-format" || arg == "--log-level") {
      ++i;
      continue;
    }
    if (arg.empty() || arg[0] == '-') continue;
    auto all = app.get_subcommands([](const CLI::App*) { return true; });
    bool known = std::any_of(all.begin(), all.end(),
                             [&](const CLI::App* sub) { return sub->get_name() == arg; });
    if (!known) {
      std::string verbs;
      for (const auto* sub : all) {
        if (!sub->get_group().empty()) verbs += (verbs.empty() ? "" : ", ") + sub->get_name();
      }
      std::fprintf(stderr, "unknown command \"%s\"; commands: %s (see hafab --help)\n", arg.c_str(),
                   verbs.c_str());
      return hafab::cli::kExitUsage;
    }
    break;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : hafab::cli::kExitUsage;
  }
  return hafab::cli::GetExitCode();
}
