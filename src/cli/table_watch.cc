#include "cli/table_watch.h"

#include <algorithm>

namespace hafab::cli {

TableWatch::TableWatch(std::set<std::string> volatile_headers)
    : volatile_headers_(std::move(volatile_headers)) {}

std::string TableWatch::Key(const std::vector<std::string>& row) const {
  std::string key;
  for (size_t i = 0; i < row.size(); ++i) {
    if (i < volatile_.size() && volatile_[i]) continue;
    key += row[i];
    key += '\0';
  }
  return key;
}

std::string TableWatch::Update(const Rows& rows) {
  if (rows.empty()) return "";
  std::string out;
  if (!started_) {
    started_ = true;
    for (const auto& h : rows[0]) volatile_.push_back(volatile_headers_.count(h) > 0);
    for (const auto& r : rows) {
      if (width_.size() < r.size()) width_.resize(r.size(), 0);
      for (size_t i = 0; i < r.size(); ++i) width_[i] = std::max(width_[i], r[i].size());
    }
    out = FormatTable(rows);
    for (size_t i = 1; i < rows.size(); ++i) last_[rows[i][0]] = {rows[i], Key(rows[i])};
    return out;
  }
  std::set<std::string> seen;
  for (size_t i = 1; i < rows.size(); ++i) {
    const auto& row = rows[i];
    if (row.empty()) continue;
    seen.insert(row[0]);
    std::string key = Key(row);
    auto it = last_.find(row[0]);
    if (it != last_.end() && it->second.second == key) continue;
    out += FormatRow(row, width_);
    last_[row[0]] = {row, key};
  }
  for (auto it = last_.begin(); it != last_.end();) {
    if (seen.count(it->first) > 0) {
      ++it;
      continue;
    }
    std::vector<std::string> gone = it->second.first;
    gone.push_back("(gone)");
    out += FormatRow(gone, width_);
    it = last_.erase(it);
  }
  return out;
}

}  // namespace hafab::cli
