// Status: the outcome of an operation that can fail, without exceptions.
#pragma once

#include <string>
#include <string_view>
#include <utility>

namespace hafab {

enum class StatusCode {
  kOk = 0,
  kNotFound,          // the named thing does not exist
  kConflict,          // a compare failed, or the thing exists / is held elsewhere
  kUnavailable,       // a peer or resource cannot be reached now; retrying may help
  kDeadlineExceeded,  // the operation did not finish in its time
  kInvalidArgument,   // the caller's input is wrong; retrying the same input will not help
  kPermissionDenied,  // missing or insufficient credentials
  kInternal,          // a bug or an unexpected environment failure
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  static Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
  static Status Conflict(std::string m) { return {StatusCode::kConflict, std::move(m)}; }
  static Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
  static Status DeadlineExceeded(std::string m) {
    return {StatusCode::kDeadlineExceeded, std::move(m)};
  }
  static Status InvalidArgument(std::string m) {
    return {StatusCode::kInvalidArgument, std::move(m)};
  }
  static Status PermissionDenied(std::string m) {
    return {StatusCode::kPermissionDenied, std::move(m)};
  }
  static Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "NotFound: key /a not found", or "OK".
  std::string ToString() const;

  // Returns a copy whose message is prefixed with `context + ": "`.
  Status WithContext(std::string_view context) const;

  bool operator==(const Status& o) const = default;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// Ends the process with `message` when a condition that cannot happen does.
[[noreturn]] void CheckFailed(const char* file, int line, const char* expr, std::string_view msg);

}  // namespace hafab

// HAFAB_CHECK(cond, "why"): for invariants; never for errors from users, peers or the OS.
#define HAFAB_CHECK(cond, msg)                                           \
  do {                                                                   \
    if (!(cond)) ::hafab::CheckFailed(__FILE__, __LINE__, #cond, (msg)); \
  } while (0)

// Propagates a non-OK Status from an expression that yields Status.
#define HAFAB_RETURN_IF_ERROR(expr) \
  do {                              \
    ::hafab::Status _st = (expr);   \
    if (!_st.ok()) return _st;      \
  } while (0)
