// `hafab validate FILE`: checks a manifest without contacting anything.
#include <unistd.h>

#include <iostream>
#include <string>

#include "cli/command.h"
#include "manifest/parser.h"

namespace hafab::cli {
namespace {

constexpr char kValidateHelp[] =
    R"(Check a manifest: YAML syntax, known keys, types, ranges and the rules
across roles. Prints each problem as FILE:LINE:COL: error|warning: MESSAGE, then "ok"
when there is no error. Warnings do not make the manifest invalid.
Exit status: 0 valid, 1 invalid or unreadable, 2 bad arguments.

Example:
  $ hafab validate examples/bad.yaml
  examples/bad.yaml:6:11: error: roles[0].mode: "activ-passive" is not one of active-passive, load-balanced, replicated
  examples/bad.yaml:8:5: error: unknown key "instnaces" in roles[0]; did you mean "instances"?
  ...
  $ hafab validate examples/quickstart.yaml
  ok)";

// Users are per node, so whether a role's user exists is for each agent to say; what can be
// said here is that, run by an agent as root (as this command is), a role without user: runs
// as root.
void WarnRolesRunAsRoot(manifest::ParseOutcome* outcome) {
  if (geteuid() != 0 || !outcome->manifest) return;
  const auto& roles = outcome->manifest->roles;
  for (size_t i = 0; i < roles.size(); ++i) {
    if (!roles[i].user.empty()) continue;
    outcome->diagnostics.push_back(
        {roles[i].pos, true,
         "roles[" + std::to_string(i) + "] (" + roles[i].name +
             "): no user:, so an agent running as root runs it as root; name an unprivileged "
             "account (user: app), as some programs require (PostgreSQL refuses root)"});
  }
}

void Validate(const std::string& path, bool print) {
  manifest::ParseOutcome outcome = manifest::LoadManifestFile(path);
  WarnRolesRunAsRoot(&outcome);
  for (const manifest::Diagnostic& d : outcome.diagnostics) {
    (print ? std::cerr : std::cout) << d.ToString() << "\n";
  }
  if (!outcome.ok()) {
    SetExitCode(kExitError);
    return;
  }
  if (print) {
    std::cout << manifest::PrintManifest(*outcome.manifest);
  } else {
    std::cout << "ok\n";
  }
  SetExitCode(kExitOk);
}

HAFAB_COMMAND(90, [](CLI::App& app) {
  auto* cmd = app.add_subcommand("validate", "Check a manifest file and explain every problem");
  cmd->footer(kValidateHelp);
  auto path = std::make_shared<std::string>();
  auto print = std::make_shared<bool>(false);
  cmd->add_option("FILE", *path, "The manifest (YAML)")->required();
  cmd->add_flag("--print", *print,
                "Print the manifest back in canonical form (defaults left out) instead of "
                "\"ok\"; diagnostics go to stderr");
  cmd->callback([path, print] { Validate(*path, *print); });
});

}  // namespace
}  // namespace hafab::cli
