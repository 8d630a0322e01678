// OpWrites: the write set a procedure's step (procedure.h) writes into — records, events, a
// forgotten restart count. Nothing written is durable or published until the journal commits
// the write set (and publishes it, when the step asks) after the step returns. Writes are
// visible at once through the OpView the step reads.
#pragma once

#include <map>
#include <string>

#include "controller/records.h"

namespace hafab::controller {

class OpWrites {
 public:
  virtual ~OpWrites() = default;

  // Each returns whether the record changed (false: it was already so).
  virtual bool PutRole(const RoleRecord& r) = 0;
  virtual bool PutInstance(const InstanceRecord& r) = 0;
  virtual void PutOp(const Operation& op) = 0;
  virtual void Emit(const std::string& type, const std::string& message,
                    std::map<std::string, std::string> fields) = 0;
  // The restarts counted for `instance` no longer count: it runs something new, or elsewhere.
  virtual void ForgetRestarts(const std::string& instance) = 0;
};

}  // namespace hafab::controller
