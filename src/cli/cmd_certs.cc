// `hafab certs create`: the CA and per-component certificates of a mutual-TLS deployment
// (tls/certs.h, docs/deploy.md "TLS").
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "cli/command.h"
#include "tls/certs.h"

namespace hafab::cli {
namespace {

constexpr char kCertsHelp[] =
    R"(Makes DIR/NAME.crt and DIR/NAME.key (0600): a P-256 key and a certificate for NAME, signed
by the cluster's CA DIR/ca.crt + DIR/ca.key, which the first call creates (and later calls
keep). Each certificate is good as a server and as a client certificate; --host lists the
names and addresses clients dial it by (a controller replica's --advertise host, an etcd
member's address), checked by every client. Give each component its own: every controller
replica, agent, gateway, etcd member and operator. Then start the daemons with --tls-ca
DIR/ca.crt --tls-cert DIR/NAME.crt --tls-key DIR/NAME.key, and the CLI with HAFAB_TLS_CA,
HAFAB_TLS_CERT, HAFAB_TLS_KEY. Keep ca.key off the machines (it makes certificates).

Examples:
  hafab certs create c1 --host 10.0.0.1 --dir tls      # controller replica on 10.0.0.1
  hafab certs create m1-agent --dir tls
  hafab certs create operator --dir tls)";

struct CertsFlags {
  std::string name;
  std::vector<std::string> hosts;
  std::string dir = "tls";
  std::string cluster = "hafab";
  int days = 825;
};

void Create(const CertsFlags& f) {
  if (f.days < 1) {
    std::cerr << "hafab certs create: --days: must be 1 or more\n";
    return SetExitCode(kExitUsage);
  }
  std::error_code ec;
  std::filesystem::create_directories(f.dir, ec);
  if (ec) {
    std::cerr << "hafab certs create: --dir " << f.dir << ": " << ec.message() << "\n";
    return SetExitCode(kExitError);
  }
  Status st = tls::EnsureCa(f.dir, f.cluster, f.days * 4);
  if (st.ok()) st = tls::IssueCertificate(f.dir, f.name, f.hosts, f.days);
  if (!st.ok()) {
    std::cerr << "hafab certs create: " << st.message() << "\n";
    return SetExitCode(st.code() == StatusCode::kInvalidArgument ? kExitUsage : kExitError);
  }
  std::cout << f.dir << "/" << f.name << ".crt, " << f.dir << "/" << f.name << ".key (CA " << f.dir
            << "/ca.crt)\n";
  SetExitCode(kExitOk);
}

HAFAB_COMMAND(71, [](CLI::App& app) {
  auto* certs = app.add_subcommand("certs", "Create the TLS CA and per-component certificates");
  certs->require_subcommand(1);
  auto* cmd = certs->add_subcommand("create", "Create the certificate of one component");
  cmd->footer(kCertsHelp);
  auto f = std::make_shared<CertsFlags>();
  cmd->add_option("name", f->name, "The component (its certificate's common name)")->required();
  cmd->add_option("--host", f->hosts,
                  "DNS names or IP addresses clients dial it by, comma-separated")
      ->delimiter(',');
  cmd->add_option("--dir", f->dir, "Where the CA and the certificates are")->capture_default_str();
  cmd->add_option("--cluster", f->cluster, "Named in a new CA's common name")
      ->capture_default_str();
  cmd->add_option("--days", f->days, "Validity of the certificate (a new CA: four times it)")
      ->capture_default_str();
  cmd->callback([f] { Create(*f); });
});

}  // namespace
}  // namespace hafab::cli
