// Checks across fields and roles, after every field has been read on its own: duplicates,
// what each mode allows, endpoints and their allow lists, and warnings that explain a
// consequence (an active-passive role without a volume or without a standby, an endpoint
// open to every source).
#pragma once

#include "manifest/model.h"
#include "manifest/yaml_reader.h"

namespace hafab::manifest {

// Reports problems of `manifest` through `reader`, at the positions the reader recorded.
// Relationships inside a role are checked only when every field of that role read cleanly,
// so one typo does not cascade into errors about defaults the operator never wrote.
void ValidateManifest(const Manifest& manifest, YamlReader& reader);

}  // namespace hafab::manifest
