// SPDX-License-Identifier: GPL-2.0-only
// The gateway's kernel data path: established client/backend pairs live in a sockhash keyed
// by socket cookie, and this stream verdict program sends every byte a socket receives
// straight out of its peer, without waking the gateway. User space decides everything else
// (routing, ACL, epochs) before it inserts a pair, and removes it by closing the sockets.
#include <linux/bpf.h>
// After linux/bpf.h, whose types it uses.
#include <bpf/bpf_helpers.h>

// Bytes redirected to a peer and not yet handed to its socket (they wait in the peer's
// work queue, which has no limit of its own) beyond which a side pauses: its bytes stay on
// its socket, whose receive window then closes, and user space takes the direction over.
#define MAX_QUEUED (1 << 20)
// The peer is looked at once per this many bytes (a look-up and a reference per skb would
// cost small requests more than the redirect itself): the queue stays under the sum.
#define CHECK_EVERY (256 << 10)

// What the verdict needs to know about one socket of a spliced pair.
struct splice_side {
  __u64 peer;          // the peer's socket cookie: its key in `socks`
  __u64 bytes;         // received on this socket and redirected to the peer
  __u64 peer_base;     // bytes handed to the peer's socket before the pair was spliced
  __u64 checked;       // `bytes` when the peer was last looked at
  __u64 passed;        // received once paused, and left on this socket for user space
  __u64 read_base;     // bytes user space had read from this socket when it was spliced
  __u32 endpoint_ctr;  // index in `bytes_by_counter` of the endpoint's counters
  __u32 backend_ctr;   // and of the backend's
  __u32 upstream;      // 1: this is the client socket (its bytes go client -> backend)
  __u32 paused;        // 0, PAUSED or BROKEN (below)
};

// splice_side.paused: past MAX_QUEUED once, its bytes stay on the socket from then on;
// or the kernel showed the verdict more bytes than the socket received, and the pair must
// be reset (see the verdict).
#define PAUSED 1
#define BROKEN 2

// The fields of the kernel's struct tcp_sock that the verdict reads (CO-RE: their offsets
// come from the running kernel's BTF at load time).
struct tcp_sock {
  __u64 bytes_acked;
  __u32 write_seq;
  __u32 snd_una;
  __u64 bytes_received;
} __attribute__((preserve_access_index));

struct byte_counts {
  __u64 in;   // client -> backend
  __u64 out;  // backend -> client
};

struct {
  __uint(type, BPF_MAP_TYPE_SOCKHASH);
  __uint(max_entries, 1 << 18);
  __type(key, __u64);
  __type(value, __u64);
} socks SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 1 << 18);
  __type(key, __u64);
  __type(value, struct splice_side);
} sides SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1 << 16);
  __type(key, __u32);
  __type(value, struct byte_counts);
} bytes_by_counter SEC(".maps");

// The cookies of sides that paused, for user space.
struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 1 << 16);
} paused_sides SEC(".maps");

static __always_inline void count(__u32 ctr, __u32 upstream, __u64 len) {
  struct byte_counts* c = bpf_map_lookup_elem(&bytes_by_counter, &ctr);
  if (!c) return;
  if (upstream)
    c->in += len;
  else
    c->out += len;
}

SEC("sk_skb/stream_verdict")
int splice_verdict(struct __sk_buff* skb) {
  __u64 cookie = bpf_get_socket_cookie(skb);
  struct splice_side* s = bpf_map_lookup_elem(&sides, &cookie);
  // Not (or no longer) a pair: the bytes stay on this socket for the gateway to read.
  if (!s) return SK_PASS;
  // A FIN's empty segment: the socket has noted the FIN, and user space passes it on once
  // the bytes before it are through. Sent on, or left on the socket, it would count as a
  // failed send of zero bytes: the kernel then reports a broken pipe and stops sending
  // anything more out of that socket's queue, bytes redirected to it included.
  if (skb->len == 0) return SK_DROP;
  if (s->paused == BROKEN) return SK_DROP;
  if (s->paused) {
    // Once a side's bytes stay on its socket, this kernel (6.18) has been seen to run the
    // verdict twice over one segment, which user space then reads twice: 64 KiB repeated
    // in the stream of a bidirectional 8 MiB transfer. The bytes received so far bound the
    // bytes seen; past them, the pair is cut (reset), not passed on corrupted.
    struct tcp_sock* me = skb->sk ? bpf_skc_to_tcp_sock(skb->sk) : NULL;
    if (me && s->read_base + s->bytes + s->passed + skb->len > me->bytes_received) {
      s->paused = BROKEN;
      bpf_ringbuf_output(&paused_sides, &cookie, sizeof cookie, 0);
      return SK_DROP;
    }
    __sync_fetch_and_add(&s->passed, skb->len);
    return SK_PASS;
  }
  // Bytes handed to the peer's socket so far: acknowledged plus queued in it (what user
  // space reads as TCP_INFO's bytes_acked plus SIOCOUTQ).
  struct bpf_sock* peer = NULL;
  if (s->bytes - s->checked >= CHECK_EVERY) {
    s->checked = s->bytes;
    peer = bpf_map_lookup_elem(&socks, &s->peer);
  }
  if (peer) {
    struct tcp_sock* tp = bpf_skc_to_tcp_sock(peer);
    __u64 handed = tp ? tp->bytes_acked + (__u32)(tp->write_seq - tp->snd_una) : 0;
    bpf_sk_release(peer);
    if (tp && s->bytes > handed - s->peer_base + MAX_QUEUED) {
      s->paused = PAUSED;
      __sync_fetch_and_add(&s->passed, skb->len);
      bpf_ringbuf_output(&paused_sides, &cookie, sizeof cookie, 0);
      return SK_PASS;
    }
  }
  __sync_fetch_and_add(&s->bytes, skb->len);
  count(s->endpoint_ctr, s->upstream, skb->len);
  count(s->backend_ctr, s->upstream, skb->len);
  return bpf_sk_redirect_hash(skb, &socks, &s->peer, 0);
}

char LICENSE[] SEC("license") = "GPL";
