#include "tls/certs.h"

#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/ip/address.hpp>
#include <cstdio>
#include <memory>

#include "core/result.h"

namespace hafab::tls {

namespace {

template <typename T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
using Key = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using Cert = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using Bio = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;

// OpenSSL's last error, for a message.
std::string SslError() {
  unsigned long e = ERR_get_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return buf;
}

bool Exists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }

// Writes PEM through `write` into `path` (mode 0600 when `secret`), replacing it atomically.
template <typename Write>
Status WritePem(const std::string& path, bool secret, Write write) {
  const std::string tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, secret ? 0600 : 0644);
  if (fd < 0) return Status::Unavailable(tmp + ": cannot create");
  if (fchmod(fd, secret ? 0600 : 0644) != 0) {
    close(fd);
    return Status::Unavailable(tmp + ": cannot chmod");
  }
  Bio bio(BIO_new_fd(fd, BIO_CLOSE));
  if (!bio || !write(bio.get()) || BIO_flush(bio.get()) != 1 || fsync(fd) != 0) {
    bio.reset();
    unlink(tmp.c_str());
    return Status::Unavailable(path + ": cannot write: " + SslError());
  }
  bio.reset();
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    unlink(tmp.c_str());
    return Status::Unavailable(path + ": cannot rename " + tmp);
  }
  return Status::Ok();
}

Status AddExtension(X509* cert, X509V3_CTX* ctx, int nid, const std::string& value) {
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, ctx, nid, value.c_str());
  if (!ext) return Status::InvalidArgument("certificate extension '" + value + "': " + SslError());
  const int added = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  if (added != 1) return Status::Internal("cannot add '" + value + "': " + SslError());
  return Status::Ok();
}

// A certificate for `name` with `key`'s public key, signed by `issuer_key` (self-signed when
// `issuer` is null).
Result<Cert> MakeCertificate(const std::string& name, EVP_PKEY* key, X509* issuer,
                             EVP_PKEY* issuer_key, bool ca, const std::string& san, int days) {
  Cert cert(X509_new());
  if (!cert) return Status::Internal(SslError());
  X509_set_version(cert.get(), 2);
  std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_free>> serial(BN_new());
  if (!serial || BN_rand(serial.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      !BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get()))) {
    return Status::Internal("certificate serial: " + SslError());
  }
  // An hour of slack for clocks a little behind.
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), static_cast<long>(days) * 86400);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* subject = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(name.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), issuer ? X509_get_subject_name(issuer) : subject);
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer ? issuer : cert.get(), cert.get(), nullptr, nullptr, 0);
  HAFAB_RETURN_IF_ERROR(
      AddExtension(cert.get(), &ctx, NID_basic_constraints, ca ? "critical,CA:TRUE" : "CA:FALSE"));
  HAFAB_RETURN_IF_ERROR(
      AddExtension(cert.get(), &ctx, NID_key_usage,
                   ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature,keyAgreement"));
  HAFAB_RETURN_IF_ERROR(AddExtension(cert.get(), &ctx, NID_subject_key_identifier, "hash"));
  HAFAB_RETURN_IF_ERROR(
      AddExtension(cert.get(), &ctx, NID_authority_key_identifier, "keyid:always"));
  if (!ca) {
    HAFAB_RETURN_IF_ERROR(
        AddExtension(cert.get(), &ctx, NID_ext_key_usage, "serverAuth,clientAuth"));
    HAFAB_RETURN_IF_ERROR(AddExtension(cert.get(), &ctx, NID_subject_alt_name, san));
  }
  if (X509_sign(cert.get(), issuer_key, EVP_sha256()) == 0) {
    return Status::Internal("cannot sign the certificate of " + name + ": " + SslError());
  }
  return cert;
}

Result<Key> NewKey() {
  Key key(EVP_EC_gen("P-256"));
  if (!key) return Status::Internal("cannot make a P-256 key: " + SslError());
  return key;
}

Status WriteKeyAndCert(const std::string& dir, const std::string& base, EVP_PKEY* key, X509* cert) {
  HAFAB_RETURN_IF_ERROR(WritePem(dir + "/" + base + ".key", true, [&](BIO* bio) {
    return PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr) == 1;
  }));
  return WritePem(dir + "/" + base + ".crt", false,
                  [&](BIO* bio) { return PEM_write_bio_X509(bio, cert) == 1; });
}

// A DNS name or an IP address, as a subjectAltName entry.
Result<std::string> SanEntry(const std::string& host) {
  boost::system::error_code ec;
  boost::asio::ip::make_address(host, ec);
  if (!ec) return "IP:" + host;
  bool ok = !host.empty() && host.size() <= 253;
  for (char c : host) {
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '-' || c == '.' || c == '*');
  }
  if (!ok) return Status::InvalidArgument("--host " + host + ": not a DNS name or IP address");
  return "DNS:" + host;
}

bool ValidName(const std::string& name) {
  if (name.empty() || name.size() > 63) return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
          c == '_' || c == '.')) {
      return false;
    }
  }
  return name != "ca" && name[0] != '.';
}

}  // namespace

Status EnsureCa(const std::string& dir, const std::string& cluster, int days) {
  const bool crt = Exists(dir + "/ca.crt"), key = Exists(dir + "/ca.key");
  if (crt && key) return Status::Ok();
  if (crt || key) {
    return Status::InvalidArgument(dir + ": has " +
                                   (crt ? "ca.crt without ca.key" : "ca.key without ca.crt") +
                                   "; restore the missing file, or remove both to make a new CA "
                                   "(then every certificate must be issued again)");
  }
  HAFAB_ASSIGN_OR_RETURN(Key ca_key, NewKey());
  HAFAB_ASSIGN_OR_RETURN(Cert ca, MakeCertificate("hafab CA " + cluster, ca_key.get(), nullptr,
                                                  ca_key.get(), true, "", days));
  return WriteKeyAndCert(dir, "ca", ca_key.get(), ca.get());
}

Status IssueCertificate(const std::string& dir, const std::string& name,
                        const std::vector<std::string>& hosts, int days) {
  if (!ValidName(name)) {
    return Status::InvalidArgument("certificate name '" + name +
                                   "': letters, digits, '-', '_', '.'; at most 63; not 'ca'");
  }
  std::string san = "DNS:" + name;
  for (const std::string& host : hosts) {
    HAFAB_ASSIGN_OR_RETURN(std::string entry, SanEntry(host));
    san += "," + entry;
  }
  auto read = [](const std::string& path, auto reader) {
    FILE* f = fopen(path.c_str(), "r");
    auto* out = f ? reader(f) : nullptr;
    if (f) fclose(f);
    return out;
  };
  Cert ca(
      read(dir + "/ca.crt", [](FILE* f) { return PEM_read_X509(f, nullptr, nullptr, nullptr); }));
  Key ca_key(read(dir + "/ca.key",
                  [](FILE* f) { return PEM_read_PrivateKey(f, nullptr, nullptr, nullptr); }));
  if (!ca || !ca_key) {
    return Status::Unavailable(dir + "/ca.crt, ca.key: cannot read the CA: " + SslError());
  }
  HAFAB_ASSIGN_OR_RETURN(Key key, NewKey());
  HAFAB_ASSIGN_OR_RETURN(
      Cert cert, MakeCertificate(name, key.get(), ca.get(), ca_key.get(), false, san, days));
  return WriteKeyAndCert(dir, name, key.get(), cert.get());
}

}  // namespace hafab::tls
