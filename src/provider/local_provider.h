// LocalProvider: volumes as directories under a root shared by every node of one machine
// (`hafab up` uses <state-dir>/volumes). Volume V is <root>/V/data; its attachment is the
// record <root>/V/attachment naming the node and instance, created with link(2) under an
// flock(2) of <root>/V/.lock, so two attaches never both win, even from two processes.
#pragma once

#include <string>

#include "provider/provider.h"

namespace hafab::provider {

class LocalProvider final : public Provider {
 public:
  explicit LocalProvider(std::string root);

  Status Attach(const std::string& volume, const std::string& node,
                const std::string& instance) override;
  Status Detach(const std::string& volume, const std::string& node) override;
  Status ForceDetach(const std::string& volume, const std::string& node) override;
  Result<VolumeAttachment> Describe(const std::string& volume) override;
  std::string MountPath(const std::string& volume, const std::string& node) override;
  Status AddEndpoint(const std::string& role, const std::string& node) override;
  Status RemoveEndpoint(const std::string& role, const std::string& node) override;

  const std::string& root() const { return root_; }

 private:
  Status RemoveIfHeldBy(const std::string& volume, const std::string& node);
  std::string root_;
};

// Checks that `name` can be a file name: not empty, no '/', not "." or "..".
// InvalidArgument naming `what` otherwise.
Status ValidateName(const std::string& what, const std::string& name);

}  // namespace hafab::provider
