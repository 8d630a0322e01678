// store::Open: a Store from a store URL, as `--store` flags take it.
#pragma once

#include <memory>
#include <string>

#include "core/clock.h"
#include "core/result.h"
#include "http/tls.h"
#include "store/store.h"

namespace hafab::store {

// Opens the store named by `url`:
//   "sqlite:PATH" or a plain path ("/var/lib/hafab/controller.db", "state.db") -> SqliteStore
//     (":memory:" for a private in-memory store); leases follow `clock`;
//   "etcd://h1:2379,h2:2379,h3:2379" -> EtcdStore (leases follow etcd's own real time);
//     `etcd_request_timeout` is the budget of each call over all endpoints; with `etcd_tls`
//     set, over TLS with that client certificate.
// `clock` must outlive the store. Errors: InvalidArgument naming the URL and the accepted
// forms; otherwise the backend's own errors (Unavailable when it cannot be reached).
Result<std::unique_ptr<Store>> Open(const std::string& url, Clock& clock,
                                    Duration etcd_request_timeout = std::chrono::seconds(5),
                                    const http::TlsFiles& etcd_tls = {});

}  // namespace hafab::store
