// TempDir: a fresh directory under /tmp for one test, removed with everything in it.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>

#include "core/status.h"

namespace hafab::testing {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/hafab_test_XXXXXX";
    const char* made = mkdtemp(tmpl);
    HAFAB_CHECK(made != nullptr, "mkdtemp failed");
    path_ = made;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace hafab::testing
