// SimProvider: the provider of the simulated cluster (provider.h), in memory: exclusive
// attachments as a cloud's data disks have them. Attach to one node while attached to another
// is a Conflict; only a detach or a force-detach frees the volume.
#pragma once

#include <map>
#include <string>

#include "provider/provider.h"

namespace hafab::sim {

class SimProvider final : public provider::Provider {
 public:
  Status Attach(const std::string& volume, const std::string& node,
                const std::string& instance) override {
    auto& a = attached_[volume];
    if (!a.node.empty() && a.node != node) {
      return Status::Conflict("volume " + volume + " is attached to node " + a.node + " for " +
                              a.instance);
    }
    a = {node, instance};
    return Status::Ok();
  }
  Status Detach(const std::string& volume, const std::string& node) override {
    auto it = attached_.find(volume);
    if (it != attached_.end() && it->second.node == node) it->second = {};
    return Status::Ok();
  }
  Status ForceDetach(const std::string& volume, const std::string& node) override {
    ++force_detaches_;
    return Detach(volume, node);
  }
  Result<provider::VolumeAttachment> Describe(const std::string& volume) override {
    auto it = attached_.find(volume);
    if (it == attached_.end()) return Status::NotFound("volume " + volume);
    return it->second;
  }
  std::string MountPath(const std::string& volume, const std::string& node) override {
    return "/sim/" + node + "/volumes/" + volume;
  }
  Status AddEndpoint(const std::string&, const std::string&) override { return Status::Ok(); }
  Status RemoveEndpoint(const std::string&, const std::string&) override { return Status::Ok(); }

  // The node `volume` is attached to; "" when none.
  std::string AttachedTo(const std::string& volume) const {
    auto it = attached_.find(volume);
    return it == attached_.end() ? "" : it->second.node;
  }
  int force_detaches() const { return force_detaches_; }

 private:
  std::map<std::string, provider::VolumeAttachment> attached_;
  int force_detaches_ = 0;
};

}  // namespace hafab::sim
