// Mutual TLS for hafab's HTTP (docs/deploy.md, "TLS"). A server given TlsFiles (Server::UseTls)
// speaks only TLS and accepts only clients presenting a certificate signed by its CA; a client
// given TlsFiles (SetClientTls) uses them for every https:// URL, verifying the server's
// certificate against the CA and the URL's host. The certificates come from `hafab certs`
// (tls/certs.h). http:// URLs and servers without TlsFiles stay plain, as `hafab up` runs.
#pragma once

#include <string>

#include "core/status.h"

namespace hafab::http {

struct TlsFiles {
  std::string ca;    // PEM: the CA certificate the peer's certificate must be signed by
  std::string cert;  // PEM: this side's certificate
  std::string key;   // PEM: its private key
  bool empty() const { return ca.empty() && cert.empty() && key.empty(); }
};

// For a daemon's flags: OK when none or all three are set. Errors: InvalidArgument naming the
// missing flag (`flag_prefix` + "ca", "cert", "key"; upper-cased for a prefix ending in '_').
Status CheckTlsFiles(const TlsFiles& files, const std::string& flag_prefix = "--tls-");

// The CA (and, when cert and key are set, the client certificate) this process uses for every
// https:// URL from now on (Fetch, AsyncFetch); `ca` may not be empty. A server that requires
// client certificates refuses a client without one. Errors: InvalidArgument naming the file
// that could not be loaded and OpenSSL's reason.
Status SetClientTls(const TlsFiles& files);

}  // namespace hafab::http
