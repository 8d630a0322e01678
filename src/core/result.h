// Result<T>: a value or the Status that explains why there is none.
#pragma once

#include <optional>
#include <utility>

#include "core/status.h"

namespace hafab {

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}         // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {  // NOLINT: implicit by design
    HAFAB_CHECK(!status_.ok(), "Result built from an OK status without a value");
  }

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }

  // REQUIRES: ok().
  T& value() & {
    HAFAB_CHECK(ok(), status_.ToString());
    return *value_;
  }
  const T& value() const& {
    HAFAB_CHECK(ok(), status_.ToString());
    return *value_;
  }
  T&& value() && {
    HAFAB_CHECK(ok(), status_.ToString());
    return std::move(*value_);
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  T value_or(T fallback) const { return ok() ? *value_ : std::move(fallback); }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace hafab

// Assigns the value of a Result expression to `lhs`, or returns its Status.
#define HAFAB_ASSIGN_OR_RETURN(lhs, expr) \
  HAFAB_ASSIGN_OR_RETURN_IMPL(HAFAB_CONCAT(_r, __LINE__), lhs, expr)
#define HAFAB_CONCAT_INNER(a, b) a##b
#define HAFAB_CONCAT(a, b) HAFAB_CONCAT_INNER(a, b)
#define HAFAB_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return tmp.status();               \
  lhs = std::move(tmp).value()
