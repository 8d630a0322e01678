#include "http/tls.h"

#include <openssl/ssl.h>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <mutex>

#include "http/tls_context.h"

namespace hafab::http {

namespace ssl = boost::asio::ssl;

namespace {

std::mutex client_mu;
std::shared_ptr<ssl::context> client_context;  // GUARDED_BY(client_mu)

}  // namespace

Status CheckTlsFiles(const TlsFiles& files, const std::string& flag_prefix) {
  if (files.empty()) return Status::Ok();
  // "--tls-" names flags (--tls-ca), "HAFAB_TLS_" environment variables (HAFAB_TLS_CA).
  const bool upper = !flag_prefix.empty() && flag_prefix.back() == '_';
  const std::string ca = flag_prefix + (upper ? "CA" : "ca");
  const std::string cert = flag_prefix + (upper ? "CERT" : "cert");
  const std::string key = flag_prefix + (upper ? "KEY" : "key");
  for (const auto& [name, value] : {std::pair<const std::string&, const std::string&>{ca, files.ca},
                                    {cert, files.cert},
                                    {key, files.key}}) {
    if (value.empty()) {
      return Status::InvalidArgument(name + ": missing; TLS needs " + ca + ", " + cert + " and " +
                                     key + " together (hafab certs create)");
    }
  }
  return Status::Ok();
}

namespace internal {

Result<std::shared_ptr<ssl::context>> MakeTlsContext(const TlsFiles& files, bool server) {
  auto context =
      std::make_shared<ssl::context>(server ? ssl::context::tls_server : ssl::context::tls_client);
  SSL_CTX_set_min_proto_version(context->native_handle(), TLS1_2_VERSION);
  context->set_options(ssl::context::default_workarounds | ssl::context::single_dh_use);
  boost::system::error_code ec;
  auto failed = [&](const char* what, const std::string& file) {
    return Status::InvalidArgument("TLS " + std::string(what) + " " + file + ": " + ec.message());
  };
  if (files.ca.empty()) return Status::InvalidArgument("TLS: no CA certificate given");
  if (context->load_verify_file(files.ca, ec)) return failed("CA certificate", files.ca);
  if (!files.cert.empty() || !files.key.empty()) {
    if (context->use_certificate_chain_file(files.cert, ec)) {
      return failed("certificate", files.cert);
    }
    if (context->use_private_key_file(files.key, ssl::context::pem, ec)) {
      return failed("private key", files.key);
    }
    if (SSL_CTX_check_private_key(context->native_handle()) != 1) {
      return Status::InvalidArgument("TLS private key " + files.key + " does not match " +
                                     files.cert);
    }
  } else if (server) {
    return Status::InvalidArgument("TLS: a server needs a certificate and a key");
  }
  context->set_verify_mode(server ? ssl::verify_peer | ssl::verify_fail_if_no_peer_cert
                                  : ssl::verify_peer);
  return context;
}

std::shared_ptr<ssl::context> ClientTlsContext() {
  std::lock_guard lock(client_mu);
  return client_context;
}

Status NoClientTls(const std::string& what) {
  return Status::InvalidArgument(
      what +
      ": this process has no TLS client certificate (--tls-ca, --tls-cert, --tls-key, or "
      "HAFAB_TLS_CA, HAFAB_TLS_CERT, HAFAB_TLS_KEY for the CLI)");
}

void AsyncClientHandshake(Stream& stream, const std::string& host,
                          std::function<void(boost::system::error_code)> done) {
  Stream::Tls* tls = stream.tls();
  if (!tls) {
    boost::asio::post(stream.get_executor(),
                      [done = std::move(done)] { done(boost::system::error_code()); });
    return;
  }
  boost::system::error_code not_an_address;
  boost::asio::ip::make_address(host, not_an_address);
  if (not_an_address) SSL_set_tlsext_host_name(tls->native_handle(), host.c_str());
  tls->set_verify_callback(ssl::host_name_verification(host));
  tls->async_handshake(ssl::stream_base::client, std::move(done));
}

}  // namespace internal

Status SetClientTls(const TlsFiles& files) {
  HAFAB_ASSIGN_OR_RETURN(auto context, internal::MakeTlsContext(files, /*server=*/false));
  std::lock_guard lock(client_mu);
  client_context = std::move(context);
  return Status::Ok();
}

}  // namespace hafab::http
