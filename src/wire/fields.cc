#include "wire/fields.h"

namespace hafab::wire {
namespace {

using nlohmann::json;

const json* Member(const json& obj, std::string_view key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

const json kEmptyArray = json::array();

}  // namespace

Status Read(const json& obj, std::string_view key, const std::string& path, std::string* out) {
  const json* m = Member(obj, key);
  if (m == nullptr) return Status::Ok();
  if (!m->is_string()) return Status::InvalidArgument(Where(path, key) + ": must be a string");
  *out = m->get<std::string>();
  return Status::Ok();
}

Status Read(const json& obj, std::string_view key, const std::string& path, bool* out) {
  const json* m = Member(obj, key);
  if (m == nullptr) return Status::Ok();
  if (!m->is_boolean())
    return Status::InvalidArgument(Where(path, key) + ": must be true or false");
  *out = m->get<bool>();
  return Status::Ok();
}

Status Read(const json& obj, std::string_view key, const std::string& path, double* out) {
  const json* m = Member(obj, key);
  if (m == nullptr) return Status::Ok();
  if (!m->is_number()) return Status::InvalidArgument(Where(path, key) + ": must be a number");
  *out = m->get<double>();
  return Status::Ok();
}

Status Read(const json& obj, std::string_view key, const std::string& path, int64_t* out,
            int64_t min, int64_t max) {
  const json* m = Member(obj, key);
  if (m == nullptr) return Status::Ok();
  if (!m->is_number_integer()) {
    return Status::InvalidArgument(Where(path, key) + ": must be an integer");
  }
  // An unsigned value above INT64_MAX is out of range whatever the bounds.
  bool in_range = !m->is_number_unsigned() ||
                  m->get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  int64_t v = in_range ? m->get<int64_t>() : 0;
  if (!in_range || v < min || v > max) {
    return Status::InvalidArgument(Where(path, key) + ": must be between " + std::to_string(min) +
                                   " and " + std::to_string(max));
  }
  *out = v;
  return Status::Ok();
}

Status Read(const json& obj, std::string_view key, const std::string& path, uint64_t* out) {
  int64_t v = static_cast<int64_t>(*out);
  Status st = Read(obj, key, path, &v, 0);
  if (st.ok()) *out = static_cast<uint64_t>(v);
  return st;
}

Status Read(const json& obj, std::string_view key, const std::string& path, int* out) {
  int64_t v = *out;
  Status st =
      Read(obj, key, path, &v, std::numeric_limits<int>::min(), std::numeric_limits<int>::max());
  if (st.ok()) *out = static_cast<int>(v);
  return st;
}

Status Read(const json& obj, std::string_view key, const std::string& path,
            std::vector<std::string>* out) {
  const json* m = Member(obj, key);
  if (m == nullptr) return Status::Ok();
  if (!m->is_array()) return Status::InvalidArgument(Where(path, key) + ": must be an array");
  std::vector<std::string> v;
  for (size_t i = 0; i < m->size(); ++i) {
    if (!(*m)[i].is_string()) {
      return Status::InvalidArgument(At(Where(path, key), i) + ": must be a string");
    }
    v.push_back((*m)[i].get<std::string>());
  }
  *out = std::move(v);
  return Status::Ok();
}

Status Read(const json& obj, std::string_view key, const std::string& path,
            std::map<std::string, std::string>* out) {
  const json* m = Member(obj, key);
  if (m == nullptr) return Status::Ok();
  if (!m->is_object()) return Status::InvalidArgument(Where(path, key) + ": must be an object");
  std::map<std::string, std::string> v;
  for (const auto& [k, value] : m->items()) {
    if (!value.is_string()) {
      return Status::InvalidArgument(Where(Where(path, key), k) + ": must be a string");
    }
    v[k] = value.get<std::string>();
  }
  *out = std::move(v);
  return Status::Ok();
}

Status ReadArray(const json& obj, std::string_view key, const std::string& path, size_t max,
                 const json** out) {
  const json* m = Member(obj, key);
  *out = &kEmptyArray;
  if (m == nullptr) return Status::Ok();
  if (!m->is_array()) return Status::InvalidArgument(Where(path, key) + ": must be an array");
  if (m->size() > max) {
    return Status::InvalidArgument(Where(path, key) + ": " + std::to_string(m->size()) +
                                   " listed; at most " + std::to_string(max));
  }
  *out = m;
  return Status::Ok();
}

}  // namespace hafab::wire
