// FakeProvider: a Provider (provider/provider.h) in memory for tests.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "provider/provider.h"

namespace hafab::testing {

// Volumes attached exclusively, as LocalProvider promises, in memory.
class FakeProvider final : public provider::Provider {
 public:
  Status Attach(const std::string& v, const std::string& node, const std::string& inst) override {
    auto& a = att_[v];
    if (!a.node.empty() && a.node != node) {
      return Status::Conflict("volume " + v + " is attached to " + a.node);
    }
    a = {node, inst};
    return Status::Ok();
  }
  Status Detach(const std::string& v, const std::string& node) override {
    auto it = att_.find(v);
    if (it != att_.end() && it->second.node == node) it->second = {};
    return Status::Ok();
  }
  Status ForceDetach(const std::string& v, const std::string& node) override {
    ++force_detaches;
    return Detach(v, node);
  }
  Result<provider::VolumeAttachment> Describe(const std::string& v) override {
    described.push_back(v);
    auto it = att_.find(v);
    if (it == att_.end()) return Status::NotFound("volume " + v);
    return it->second;
  }
  std::string MountPath(const std::string& v, const std::string& node) override {
    return "/tmp/" + v;
  }
  Status AddEndpoint(const std::string&, const std::string&) override { return Status::Ok(); }
  Status RemoveEndpoint(const std::string&, const std::string&) override { return Status::Ok(); }

  // The node `v` is attached to; "" when none.
  std::string AttachedTo(const std::string& v) const {
    auto it = att_.find(v);
    return it == att_.end() ? "" : it->second.node;
  }

  int force_detaches = 0;
  std::vector<std::string> described;  // the volumes Describe was asked about, in order

 private:
  std::map<std::string, provider::VolumeAttachment> att_;
};

}  // namespace hafab::testing
