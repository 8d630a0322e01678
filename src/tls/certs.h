// The certificates of a mutual-TLS deployment (docs/deploy.md, "TLS"), made with OpenSSL:
// one CA per cluster, and per component (controller replica, agent, gateway, operator, etcd
// member) a key and a certificate signed by it, good as both server and client certificate.
// `hafab certs create` is the command around this.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"

namespace hafab::tls {

// DIR/ca.crt and DIR/ca.key (0600): a new CA named `cluster`, valid `days`, unless both exist
// already (then they are kept). Errors: Unavailable naming the file that cannot be written;
// InvalidArgument when only one of the two exists.
Status EnsureCa(const std::string& dir, const std::string& cluster, int days);

// DIR/NAME.crt and DIR/NAME.key (0600), replacing them: a new P-256 key and a certificate for
// common name `name`, signed by DIR's CA, valid `days`, with `hosts` (DNS names or IP
// addresses, which a client checks against the URL it dialed) as subject alternative names,
// and both the serverAuth and clientAuth extended key usages. Errors: InvalidArgument (a bad
// name or host), Unavailable (the CA cannot be read, a file cannot be written).
Status IssueCertificate(const std::string& dir, const std::string& name,
                        const std::vector<std::string>& hosts, int days);

}  // namespace hafab::tls
