// JSON from the API printed as block-style YAML, for `-o yaml`.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace hafab::cli {

std::string ToYaml(const nlohmann::json& j);

}  // namespace hafab::cli
