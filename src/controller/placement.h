// Placement: where a new (or relocated) instance of a role goes, and which port it gets.
// Pure functions of their inputs, so the rules are unit-tested without a controller.
#pragma once

#include <functional>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace hafab::controller {

// The names are views into the caller's records (a placement looks at every node: no copies).
struct NodeCandidate {
  std::string_view name;
  std::string_view fault_domain;
  std::string_view update_domain;
  int capacity = 0;  // max instances; 0 = unlimited
  int load = 0;      // instances assigned to the node now (all roles)
};

// Where the role's other instances are.
struct Peer {
  std::string_view node;
  std::string_view fault_domain;
  std::string_view update_domain;
};

// Picks a node among `candidates` (already filtered to live, undrained nodes) for one more
// instance of a role whose other instances are `peers`. Rules, in order:
//   1. capacity: a node at its capacity is never chosen;
//   2. prefer a node with no instance of the role;
//   3. spread: fewest peers sharing the node's fault domain plus its update domain (so the
//      first two instances land in a different fault domain AND update domain when the
//      nodes allow it);
//   4. the least loaded node; then the name, so the choice is deterministic.
// nullopt when no candidate has room. Candidates for which `skip` says true are passed over.
std::optional<std::string> PickNode(const std::vector<NodeCandidate>& candidates,
                                    const std::vector<Peer>& peers,
                                    const std::function<bool(std::string_view)>& skip = {});

// A standby failover could promote (already filtered to live, undrained nodes, not failed).
struct StandbyCandidate {
  std::string instance;
  std::string fault_domain;  // its node's
  bool reported = false;     // its agent reports it: a known standby, not one never seen
  int ordinal = 0;
};

// The standby to promote when the primary in fault domain `old_fault_domain` fails. Rules, in
// order: outside the failed primary's fault domain (whatever took it down may take its
// neighbours); one its agent reports; the lowest ordinal. "" when there is no candidate.
std::string PickStandby(const std::vector<StandbyCandidate>& candidates,
                        const std::string& old_fault_domain);

// The port for an instance on a node address whose ports in use are `used`: `preferred`
// if free (the role's port, for ordinal 0), else the next free one above it (above 20000
// when the role names no port).
int PickPort(int preferred, const std::set<int>& used);

}  // namespace hafab::controller
