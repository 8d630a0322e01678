// Helpers shared by the agent's tests.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>

#include "core/status.h"
#include "wire/assignments.h"

namespace hafab::agent::testutil {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/hafab_agent_XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// One assignment from JSON, as the controller sends it.
inline wire::Assignment MakeAssignment(const std::string& json) {
  auto a = wire::ParseAssignment(json);
  HAFAB_CHECK(a.ok(), a.status().ToString());
  return *a;
}

}  // namespace hafab::agent::testutil
