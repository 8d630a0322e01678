// Reading the members of a wire message's JSON objects: optional members (absent or null
// leave the output unchanged), type and range checked, errors naming the member's path
// ("instances[1].restarts: must be an integer"). Never throws.
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace hafab::wire {

// "path.key", or "key" at the top level.
inline std::string Where(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : path + "." + std::string(key);
}

// `index`-th element of the array at `path`: "path[index]".
inline std::string At(const std::string& path, size_t index) {
  return path + "[" + std::to_string(index) + "]";
}

Status Read(const nlohmann::json& obj, std::string_view key, const std::string& path,
            std::string* out);
Status Read(const nlohmann::json& obj, std::string_view key, const std::string& path, bool* out);
Status Read(const nlohmann::json& obj, std::string_view key, const std::string& path, double* out);
// Integers: in [min, max] (both inclusive), else "must be between min and max".
Status Read(const nlohmann::json& obj, std::string_view key, const std::string& path, int64_t* out,
            int64_t min = std::numeric_limits<int64_t>::min(),
            int64_t max = std::numeric_limits<int64_t>::max());
Status Read(const nlohmann::json& obj, std::string_view key, const std::string& path,
            uint64_t* out);
Status Read(const nlohmann::json& obj, std::string_view key, const std::string& path, int* out);
Status Read(const nlohmann::json& obj, std::string_view key, const std::string& path,
            std::vector<std::string>* out);
Status Read(const nlohmann::json& obj, std::string_view key, const std::string& path,
            std::map<std::string, std::string>* out);

// An enum member by its wire name: `parse` maps a name to the value (nullopt: unknown),
// `names` lists the allowed ones for the error.
template <typename E>
Status ReadEnum(const nlohmann::json& obj, std::string_view key, const std::string& path,
                std::optional<E> (*parse)(std::string_view), std::string (*names)(), E* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return Status::Ok();
  if (!it->is_string()) return Status::InvalidArgument(Where(path, key) + ": must be a string");
  const std::string& name = it->template get_ref<const std::string&>();
  std::optional<E> value = parse(name);
  if (!value) {
    return Status::InvalidArgument(Where(path, key) + ": '" + name + "' is not one of " + names());
  }
  *out = *value;
  return Status::Ok();
}

// The array member `key` (absent or null: empty), at most `max` elements.
Status ReadArray(const nlohmann::json& obj, std::string_view key, const std::string& path,
                 size_t max, const nlohmann::json** out);

}  // namespace hafab::wire
