// The dashboard's files (src/controller/ui/), embedded into the binary at build time by
// cmake/embed_files.cmake: the controller serves them without reading the disk, and a
// release needs no separate web root or build step.
#pragma once

#include <string_view>

namespace hafab::controller {

struct DashboardAsset {
  std::string_view name;          // "index.html", "app.js", "app.css"
  std::string_view content_type;  // from the name's extension
  std::string_view body;
};

// The file called `name`, or null when there is none.
const DashboardAsset* FindDashboardAsset(std::string_view name);

}  // namespace hafab::controller
