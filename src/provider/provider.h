// Provider: the infrastructure operations of a cluster — data volumes that follow the
// primary, and endpoint hooks — behind one small interface, like the seed's Azure
// PowerShell calls (Add-/Remove-AzureDataDisk, Add-/Remove-AzureEndpoint).
//
// Who calls what:
// - the agent attaches a volume on its own node before starting a primary, and detaches it
//   once no process of the instance holds it any more (its detach is asynchronous);
// - the controller asks Describe() to confirm that a detach really completed before it lets
//   another node attach (the seed's "wait until AttachedTo is empty"), and calls
//   ForceDetach() for a node that is down, only after that node's lease plus the safety
//   margin has expired (the node has fenced itself by then).
// Implementations: LocalProvider (directories under a root shared by the local nodes, an
// exclusive attachment record per volume) and ExecProvider (an operator's scripts, e.g. a
// cloud CLI, run one at a time with a deadline and retries).
#pragma once

#include <string>

#include "core/result.h"

namespace hafab::provider {

struct VolumeAttachment {
  std::string node;      // "" when the volume is attached nowhere
  std::string instance;  // the instance it was attached for
};

// Implementations are thread-safe. Every call is idempotent.
class Provider {
 public:
  virtual ~Provider() = default;

  // Attaches `volume` to `node` for `instance`, exclusively, creating it on first use.
  // OK if already attached to `node`. Conflict if attached to another node (the message
  // names that node and instance: the seed's "attach too soon after detach").
  virtual Status Attach(const std::string& volume, const std::string& node,
                        const std::string& instance) = 0;

  // Detaches `volume` from `node`. OK if it is not attached to `node`.
  // REQUIRES (agent): no process of the instance still holds the volume.
  virtual Status Detach(const std::string& volume, const std::string& node) = 0;

  // Detaches `volume` from a `node` that is down, without its agent. Only the controller
  // calls it, and only after the node's lease plus the safety margin has expired.
  virtual Status ForceDetach(const std::string& volume, const std::string& node) = 0;

  // Where the volume is attached now. NotFound if the volume was never created.
  virtual Result<VolumeAttachment> Describe(const std::string& volume) = 0;

  // The directory an instance on `node` sees as HAFAB_VOLUME_DIR.
  virtual std::string MountPath(const std::string& volume, const std::string& node) = 0;

  // Endpoint hooks, called by the controller when a role's primary changes (the seed's
  // Add-/Remove-AzureEndpoint). LocalProvider does nothing: the gateway is the endpoint.
  virtual Status AddEndpoint(const std::string& role, const std::string& node) = 0;
  virtual Status RemoveEndpoint(const std::string& role, const std::string& node) = 0;
};

}  // namespace hafab::provider
