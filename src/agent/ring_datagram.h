// RingDatagram: a ring probe (wire::RingMessage) as one authenticated UDP datagram
// (docs/architecture.md, "Ring failure detection"). Layout, integers big-endian:
//
//   "HR1" | kind (1: 0 ping, 1 ack, 2 ping-req) | seq (8) | len (1) from | len (1) subject |
//   len (1) subject_address | mac
//
// A ping-req carries the subject's ring address ("host:port"): the helper asked to probe it
// need not be its neighbour, and learns where it is from the asker, under the mac.
// where mac is the first 16 bytes of HMAC-SHA256, under the ring key the controller hands out
// with the assignments, of everything before it. Without the key nobody can make an agent
// believe a dead neighbour answered (a forged ack) or that a live one did not (only by
// dropping packets, which the indirect probes and the controller's check are for). Seqs start
// at a random value per agent run, so an ack recorded in an earlier run answers no probe of
// this one.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "core/result.h"
#include "wire/ring.h"

namespace hafab::agent {

inline constexpr size_t kMaxRingName = 255;
inline constexpr size_t kMaxRingAddress = 64;
// The largest valid datagram: two names, an address and the fixed parts.
inline constexpr size_t kMaxRingDatagram =
    3 + 1 + 8 + 1 + kMaxRingName + 1 + kMaxRingName + 1 + kMaxRingAddress + 16;

struct RingDatagram {
  wire::RingMessage message;
  std::string subject_address;  // a ping-req's: where the subject listens; "" otherwise

  bool operator==(const RingDatagram&) const = default;
};

// The datagram carrying `d`, signed with `key`. InvalidArgument when a name is empty or longer
// than kMaxRingName, or the address longer than kMaxRingAddress. REQUIRES: `key` not empty.
Result<std::string> EncodeRingDatagram(const RingDatagram& d, std::string_view key);

// What `datagram` carries. InvalidArgument, saying why, when it is too short or too long, not a
// ring datagram, of an unknown kind, has an empty name, or its mac is not `key`'s (a forgery,
// or a datagram of another cluster). Never reads past `datagram`. REQUIRES: `key` not empty.
Result<RingDatagram> DecodeRingDatagram(std::string_view datagram, std::string_view key);

}  // namespace hafab::agent
