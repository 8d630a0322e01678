// The mutual-TLS flags of the daemons (--tls-ca, --tls-cert, --tls-key; docs/deploy.md,
// "TLS") and the CLI's environment (HAFAB_TLS_CA, HAFAB_TLS_CERT, HAFAB_TLS_KEY).
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "core/status.h"
#include "http/tls.h"

namespace hafab::cli {

// Adds --tls-ca, --tls-cert and --tls-key to `cmd`; `role` says what the certificate is for.
void AddTlsFlags(CLI::App* cmd, http::TlsFiles* files, const std::string& role);

// The client certificate of this process for https:// controller URLs: `files` when any is
// set (all three required), else none. Errors: InvalidArgument naming the flag or file.
Status UseClientTls(const http::TlsFiles& files);

// The CLI's: from HAFAB_TLS_CA, HAFAB_TLS_CERT and HAFAB_TLS_KEY when any is set.
Status UseClientTlsFromEnv();

}  // namespace hafab::cli
