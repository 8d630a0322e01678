#include "cli/tls_flags.h"

#include <cstdlib>

namespace hafab::cli {

void AddTlsFlags(CLI::App* cmd, http::TlsFiles* files, const std::string& role) {
  cmd->add_option("--tls-ca", files->ca,
                  "Mutual TLS: the cluster's CA certificate (hafab certs create); with "
                  "--tls-cert and --tls-key")
      ->group("TLS");
  cmd->add_option("--tls-cert", files->cert, "Mutual TLS: " + role)->group("TLS");
  cmd->add_option("--tls-key", files->key, "Mutual TLS: the private key of --tls-cert")
      ->group("TLS");
}

Status UseClientTls(const http::TlsFiles& files) {
  if (files.empty()) return Status::Ok();
  HAFAB_RETURN_IF_ERROR(http::CheckTlsFiles(files));
  return http::SetClientTls(files);
}

Status UseClientTlsFromEnv() {
  auto env = [](const char* name) {
    const char* v = std::getenv(name);
    return std::string(v ? v : "");
  };
  http::TlsFiles files{env("HAFAB_TLS_CA"), env("HAFAB_TLS_CERT"), env("HAFAB_TLS_KEY")};
  if (files.empty()) return Status::Ok();
  HAFAB_RETURN_IF_ERROR(http::CheckTlsFiles(files, "HAFAB_TLS_"));
  return http::SetClientTls(files);
}

}  // namespace hafab::cli
