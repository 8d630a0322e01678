#include "store/open.h"

#include <utility>

#include "http/tls_context.h"
#include "store/etcd_store.h"
#include "store/sqlite_store.h"

namespace hafab::store {

Result<std::unique_ptr<Store>> Open(const std::string& url, Clock& clock,
                                    Duration etcd_request_timeout, const http::TlsFiles& etcd_tls) {
  constexpr char kForms[] = "sqlite:PATH, a file path, or etcd://host:port[,host:port...]";
  if (url.empty()) return Status::InvalidArgument(std::string("store URL is empty; use ") + kForms);
  if (url.rfind("etcd://", 0) == 0) {
    EtcdStore::Options options;
    options.request_timeout = etcd_request_timeout;
    if (!etcd_tls.empty()) {
      HAFAB_RETURN_IF_ERROR(http::CheckTlsFiles(etcd_tls, "--etcd-"));
      HAFAB_ASSIGN_OR_RETURN(options.tls, http::internal::MakeTlsContext(etcd_tls, false));
    }
    HAFAB_ASSIGN_OR_RETURN(auto etcd, EtcdStore::Open(url, options));
    return std::unique_ptr<Store>(std::move(etcd));
  }
  std::string path = url;
  if (url.rfind("sqlite:", 0) == 0) {
    path = url.substr(7);
    if (path.rfind("//", 0) == 0) path = path.substr(2);  // "sqlite:///var/..." as well
    if (path.empty()) return Status::InvalidArgument("store URL \"" + url + "\" names no file");
  } else {
    size_t scheme = url.find("://");
    size_t slash = url.find('/');
    if (scheme != std::string::npos && (slash == std::string::npos || scheme < slash)) {
      return Status::InvalidArgument("store URL \"" + url + "\": unknown scheme \"" +
                                     url.substr(0, scheme) + "\"; use " + kForms);
    }
  }
  HAFAB_ASSIGN_OR_RETURN(auto sqlite, SqliteStore::Open(path, clock));
  return std::unique_ptr<Store>(std::move(sqlite));
}

}  // namespace hafab::store
