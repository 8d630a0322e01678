// `hafab token create`: the credential of one agent or gateway (controller/tokens.h), derived
// from the cluster key the controllers hold; the controller stores no per-component token.
#include <iostream>
#include <memory>
#include <string>

#include "cli/command.h"
#include "controller/tokens.h"
#include "manifest/units.h"

namespace hafab::cli {
namespace {

constexpr char kTokenHelp[] =
    R"(Prints (or writes, mode 0600, with --out) the credential of one agent or gateway:
  agent.NODE.MAC or gateway.ID.MAC, MAC = HMAC-SHA256 under the cluster key.
An agent's credential lets it heartbeat and read assignments for its own node only; a
gateway's lets it read routes and acknowledge them for its own id only. Anything else it asks
is answered 403. Run it where the cluster key is (a controller's --state-dir holds
cluster.key); every controller replica must have the same key. Replacing cluster.key (and
restarting the controllers) revokes every agent and gateway credential at once.

Examples:
  hafab token create --node m1 --state-dir /var/lib/hafab/controller --out m1.token
  hafab token create --gateway gw-m1 --key-file cluster.key)";

struct TokenFlags {
  std::string node;
  std::string gateway;
  std::string state_dir = ".hafab";
  std::string key_file;
  std::string out;
};

void Create(const TokenFlags& f) {
  if (f.node.empty() == f.gateway.empty()) {
    std::cerr << "hafab token create: give one of --node NODE or --gateway ID\n";
    return SetExitCode(kExitUsage);
  }
  const std::string& name = f.node.empty() ? f.gateway : f.node;
  if (!manifest::IsValidName(name)) {
    std::cerr << "hafab token create: " << (f.node.empty() ? "--gateway" : "--node") << " " << name
              << ": not a valid name (" << manifest::kNameRule << ")\n";
    return SetExitCode(kExitUsage);
  }
  const std::string key_file = f.key_file.empty() ? f.state_dir + "/cluster.key" : f.key_file;
  auto key = controller::ReadTokenFile(key_file);
  if (!key.ok()) {
    std::cerr << "hafab token create: the cluster key: " << key.status().message()
              << " (a controller creates STATE_DIR/cluster.key at its first start)\n";
    return SetExitCode(kExitError);
  }
  const std::string credential = f.node.empty() ? controller::GatewayCredential(*key, name)
                                                : controller::AgentCredential(*key, name);
  if (f.out.empty()) {
    std::cout << credential << "\n";
  } else if (Status st = controller::WriteSecretFile(f.out, credential); !st.ok()) {
    std::cerr << "hafab token create: --out: " << st.message() << "\n";
    return SetExitCode(kExitError);
  }
  SetExitCode(kExitOk);
}

HAFAB_COMMAND(70, [](CLI::App& app) {
  auto* token = app.add_subcommand("token", "Create the credential of an agent or a gateway");
  token->require_subcommand(1);
  auto* cmd = token->add_subcommand("create", "Print the credential of one agent or gateway");
  cmd->footer(kTokenHelp);
  auto f = std::make_shared<TokenFlags>();
  cmd->add_option("--node", f->node, "The agent's node");
  cmd->add_option("--gateway", f->gateway, "The gateway's id (its --id)");
  cmd->add_option("--state-dir", f->state_dir,
                  "A controller's state directory, holding cluster.key (default .hafab)");
  cmd->add_option("--key-file", f->key_file,
                  "The cluster key file (default STATE_DIR/cluster.key)");
  cmd->add_option("--out", f->out, "Write it to this file (mode 0600) instead of printing it");
  cmd->callback([f] { Create(*f); });
});

}  // namespace
}  // namespace hafab::cli
