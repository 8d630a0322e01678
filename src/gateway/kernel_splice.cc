#include "gateway/kernel_splice.h"

#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <mutex>
#include <vector>

#ifdef HAFAB_HAVE_BPF
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "gateway_splice.skel.h"  // generated, see CMakeLists.txt
#endif

namespace hafab::gateway {

#ifdef HAFAB_HAVE_BPF
namespace {

constexpr uint8_t kTcpEstablished = 1;  // TCP_ESTABLISHED (include/net/tcp_states.h)
constexpr uint32_t kBroken = 2;         // BROKEN in bpf/gateway_splice.bpf.c

// Must match struct splice_side and struct byte_counts in bpf/gateway_splice.bpf.c.
struct SpliceSide {
  uint64_t peer = 0;
  uint64_t bytes = 0;
  uint64_t peer_base = 0;
  uint64_t checked = 0;
  uint64_t passed = 0;
  uint64_t read_base = 0;
  uint32_t endpoint_ctr = 0;
  uint32_t backend_ctr = 0;
  uint32_t upstream = 0;
  uint32_t paused = 0;  // 0, PAUSED (1) or BROKEN (2)
};
struct ByteCounts {
  uint64_t in = 0, out = 0;
};

int LogLibbpf(enum libbpf_print_level level, const char* format, va_list args) {
  if (level == LIBBPF_DEBUG) return 0;
  char line[512];
  int n = vsnprintf(line, sizeof line, format, args);
  std::string text(line);
  while (!text.empty() && text.back() == '\n') text.pop_back();
  spdlog::debug("gateway: libbpf: {}", text);
  return n;
}

Result<uint64_t> Cookie(int fd) {
  uint64_t cookie = 0;
  socklen_t len = sizeof cookie;
  if (getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len) != 0) {
    return Status::Unavailable(std::string("SO_COOKIE: ") + strerror(errno));
  }
  return cookie;
}

bool GetTcpInfo(int fd, tcp_info* info) {
  socklen_t len = sizeof *info;
  return getsockopt(fd, IPPROTO_TCP, TCP_INFO, info, &len) == 0;
}

// Bytes handed to a TCP socket for sending since it was connected (plus one for a SYN it
// sent): those acknowledged by the peer and those still queued. Read in that order, a
// concurrent acknowledgement can make the sum too low, never too high.
uint64_t HandedToSocket(int fd) {
  tcp_info info{};
  if (!GetTcpInfo(fd, &info)) return 0;
  int queued = 0;
  if (ioctl(fd, SIOCOUTQ, &queued) != 0) queued = 0;
  return info.tcpi_bytes_acked + static_cast<uint64_t>(queued);
}

// Bytes read from a TCP socket so far: received less those still unread. Read in that
// order, a concurrent arrival can make it too low, never too high.
uint64_t ReadSoFar(int fd) {
  tcp_info info{};
  if (!GetTcpInfo(fd, &info)) return 0;
  int unread = 0;
  if (ioctl(fd, SIOCINQ, &unread) != 0) unread = 0;
  return info.tcpi_bytes_received - static_cast<uint64_t>(unread);
}

// A sockhash takes only established TCP sockets: one whose peer has already sent its FIN
// (or reset) stays with user space.
bool Established(int fd) {
  tcp_info info{};
  return GetTcpInfo(fd, &info) && info.tcpi_state == kTcpEstablished;
}

}  // namespace

struct KernelSplice::Bpf {
  ~Bpf() {
    ring_buffer__free(paused_ring);
    gateway_splice_bpf::destroy(skel);
  }
  gateway_splice_bpf* skel = nullptr;
  int socks = -1, sides = -1, counters = -1;
  int cpus = 1;
  ring_buffer* paused_ring = nullptr;
  std::mutex mu;                 // consuming the ring, and `paused`
  std::vector<uint64_t> paused;  // cookies read from the ring, not yet taken
};

Result<std::unique_ptr<KernelSplice>> KernelSplice::Load() {
  libbpf_set_print(LogLibbpf);
  auto bpf = std::make_unique<Bpf>();
  bpf->skel = gateway_splice_bpf::open_and_load();
  if (!bpf->skel) {
    const int e = errno;
    return Status::Unavailable(std::string("cannot load the BPF program: ") + strerror(e) +
                               (e == EPERM ? " (needs root, or CAP_BPF and CAP_NET_ADMIN)" : ""));
  }
  bpf->socks = bpf_map__fd(bpf->skel->maps.socks);
  bpf->sides = bpf_map__fd(bpf->skel->maps.sides);
  bpf->counters = bpf_map__fd(bpf->skel->maps.bytes_by_counter);
  bpf->paused_ring = ring_buffer__new(
      bpf_map__fd(bpf->skel->maps.paused_sides),
      [](void* ctx, void* data, size_t size) {
        if (size >= sizeof(uint64_t)) {
          uint64_t cookie;
          std::memcpy(&cookie, data, sizeof cookie);
          static_cast<Bpf*>(ctx)->paused.push_back(cookie);
        }
        return 0;
      },
      bpf.get(), nullptr);
  if (!bpf->paused_ring) {
    return Status::Unavailable(std::string("cannot open the BPF ring buffer: ") + strerror(errno));
  }
  bpf->cpus = libbpf_num_possible_cpus();
  if (bpf->cpus <= 0) return Status::Unavailable("cannot count the possible CPUs");
  if (bpf_prog_attach(bpf_program__fd(bpf->skel->progs.splice_verdict), bpf->socks,
                      BPF_SK_SKB_STREAM_VERDICT, 0) != 0) {
    return Status::Unavailable(std::string("cannot attach the stream verdict program: ") +
                               strerror(errno));
  }
  return std::unique_ptr<KernelSplice>(new KernelSplice(std::move(bpf)));
}

Status KernelSplice::Insert(int client_fd, int backend_fd, uint32_t endpoint_counter,
                            uint32_t backend_counter, Pair* pair) {
  if (!Established(client_fd) || !Established(backend_fd)) {
    return Status::Unavailable("splice: a socket is no longer established");
  }
  HAFAB_ASSIGN_OR_RETURN(pair->client_cookie, Cookie(client_fd));
  HAFAB_ASSIGN_OR_RETURN(pair->backend_cookie, Cookie(backend_fd));
  pair->client_base = HandedToSocket(client_fd);
  pair->backend_base = HandedToSocket(backend_fd);
  SpliceSide up{.peer = pair->backend_cookie,
                .bytes = 0,
                .peer_base = pair->backend_base,
                .checked = 0,
                .passed = 0,
                .read_base = ReadSoFar(client_fd),
                .endpoint_ctr = endpoint_counter,
                .backend_ctr = backend_counter,
                .upstream = 1,
                .paused = 0};
  SpliceSide down = up;
  down.peer = pair->client_cookie;
  down.peer_base = pair->client_base;
  down.upstream = 0;
  down.read_base = ReadSoFar(backend_fd);
  // The sides first: `sides` is as large as `socks` and holds an entry for every socket in
  // it, so once both sides are in, both sockets fit.
  if (bpf_map_update_elem(bpf_->sides, &pair->client_cookie, &up, BPF_NOEXIST) != 0) {
    return Status::Unavailable(std::string("splice: ") + strerror(errno));
  }
  if (bpf_map_update_elem(bpf_->sides, &pair->backend_cookie, &down, BPF_NOEXIST) != 0) {
    const int e = errno;
    bpf_map_delete_elem(bpf_->sides, &pair->client_cookie);
    return Status::Unavailable(std::string("splice: ") + strerror(e));
  }
  uint64_t fd = static_cast<uint64_t>(client_fd);
  if (bpf_map_update_elem(bpf_->socks, &pair->client_cookie, &fd, BPF_NOEXIST) != 0) {
    const int e = errno;
    Remove(*pair);
    return Status::Unavailable(std::string("splice: sockhash: ") + strerror(e));
  }
  fd = static_cast<uint64_t>(backend_fd);
  if (bpf_map_update_elem(bpf_->socks, &pair->backend_cookie, &fd, BPF_NOEXIST) != 0) {
    const int e = errno;
    // Bytes the client sent in between had no peer to go to and were dropped: the caller
    // must cut this pair, not proxy it.
    bpf_map_delete_elem(bpf_->socks, &pair->client_cookie);
    Remove(*pair);
    return Status::Internal(std::string("splice: sockhash: ") + strerror(e));
  }
  // Bytes that arrived before the sockets were in the sockhash wait in their receive queues
  // until the next arrival runs the verdict. Setting SO_RCVLOWAT runs it now.
  int one = 1;
  setsockopt(client_fd, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof one);
  setsockopt(backend_fd, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof one);
  return Status::Ok();
}

void KernelSplice::Remove(const Pair& pair) {
  bpf_map_delete_elem(bpf_->sides, &pair.client_cookie);
  bpf_map_delete_elem(bpf_->sides, &pair.backend_cookie);
}

namespace {
SpliceSide Side(int sides, const KernelSplice::Pair& pair, bool from_client) {
  SpliceSide side;
  const uint64_t key = from_client ? pair.client_cookie : pair.backend_cookie;
  if (bpf_map_lookup_elem(sides, &key, &side) != 0) return SpliceSide{};
  return side;
}
}  // namespace

uint64_t KernelSplice::Moved(const Pair& pair, bool from_client) const {
  return Side(bpf_->sides, pair, from_client).bytes;
}

uint64_t KernelSplice::Passed(const Pair& pair, bool from_client) const {
  return Side(bpf_->sides, pair, from_client).passed;
}

bool KernelSplice::Broken(const Pair& pair) const {
  return Side(bpf_->sides, pair, true).paused == kBroken ||
         Side(bpf_->sides, pair, false).paused == kBroken;
}

bool KernelSplice::Flushed(const Pair& pair, bool from_client, int dst_fd) const {
  const uint64_t base = from_client ? pair.backend_base : pair.client_base;
  return HandedToSocket(dst_fd) - base >= Moved(pair, from_client);
}

int KernelSplice::PausedFd() const { return ring_buffer__epoll_fd(bpf_->paused_ring); }

bool KernelSplice::TakePaused(const std::function<bool(uint64_t)>& mine,
                              std::vector<uint64_t>* cookies) {
  std::lock_guard lock(bpf_->mu);
  ring_buffer__consume(bpf_->paused_ring);
  std::erase_if(bpf_->paused, [&](uint64_t cookie) {
    if (mine(cookie)) {
      cookies->push_back(cookie);
      return true;
    }
    SpliceSide side;  // a pair closed since it paused has no side left
    return bpf_map_lookup_elem(bpf_->sides, &cookie, &side) != 0;
  });
  return !bpf_->paused.empty();
}

void KernelSplice::Add(uint32_t counter, uint64_t* in, uint64_t* out) const {
  std::vector<ByteCounts> per_cpu(bpf_->cpus);
  if (bpf_map_lookup_elem(bpf_->counters, &counter, per_cpu.data()) != 0) return;
  for (const ByteCounts& c : per_cpu) {
    *in += c.in;
    *out += c.out;
  }
}

#else  // !HAFAB_HAVE_BPF: Load says why; no KernelSplice is ever made.

struct KernelSplice::Bpf {};

Result<std::unique_ptr<KernelSplice>> KernelSplice::Load() {
  return Status::Unavailable(
      "this build has no kernel data path (libbpf-dev, bpftool or clang were missing when it "
      "was configured)");
}
Status KernelSplice::Insert(int, int, uint32_t, uint32_t, Pair*) {
  return Status::Unavailable("no kernel data path");
}
void KernelSplice::Remove(const Pair&) {}
uint64_t KernelSplice::Moved(const Pair&, bool) const { return 0; }
uint64_t KernelSplice::Passed(const Pair&, bool) const { return 0; }
bool KernelSplice::Broken(const Pair&) const { return false; }
bool KernelSplice::Flushed(const Pair&, bool, int) const { return true; }
int KernelSplice::PausedFd() const { return -1; }
bool KernelSplice::TakePaused(const std::function<bool(uint64_t)>&, std::vector<uint64_t>*) {
  return false;
}
void KernelSplice::Add(uint32_t, uint64_t*, uint64_t*) const {}

#endif

KernelSplice::KernelSplice(std::unique_ptr<Bpf> bpf) : bpf_(std::move(bpf)) {}
KernelSplice::~KernelSplice() = default;

}  // namespace hafab::gateway
