// Status and Expected<T>: how every user-facing failure travels in compress.
#pragma once

#include <fmt/format.h>

#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>

namespace compress {

// The kind of failure: callers branch on it, messages are for people.
enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  // bad option, bad shape, bad value handed to an API
  kNotFound,         // missing file, unknown op, unknown name
  kCorruptFile,      // a file that fails a structural or checksum check
  kUnsupported,      // valid input that this version cannot handle
  kIoError,          // the operating system refused (disk full, permissions)
  kFailedPrecondition,
  kInternal,         // a bug in compress
  kResourceExhausted,  // a declared size above a limit (Note [Resource limits], limits.h)
};

const char* status_code_name(StatusCode code);

// Note [Status messages]
// A message says what went wrong, where (file, offset, node, key) and, when
// there is one, what to do about it. Context is prepended by callers with
// Status::with_context() as the error travels up, so that the final line reads
// "loading model.cmf: tensor 'fc.weight': data length 12 != 16 (shape x dtype)".
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() { return Status(); }
  bool is_ok() const { return code_ == StatusCode::kOk; }
  explicit operator bool() const { return is_ok(); }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // "context: message"; an OK status stays OK.
  Status with_context(const std::string& context) const;
  std::string to_string() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// The exception thrown at the C++ API boundary (see docs/errors.md): the
// library internals return Status/Expected, the convenience wrappers throw.
class Error : public std::runtime_error {
 public:
  explicit Error(Status status) : std::runtime_error(status.to_string()), status_(std::move(status)) {}
  const Status& status() const { return status_; }

 private:
  Status status_;
};

template <typename... Args>
Status make_error(StatusCode code, fmt::format_string<Args...> format, Args&&... args) {
  return Status(code, fmt::format(format, std::forward<Args>(args)...));
}
template <typename... Args>
Status invalid_argument(fmt::format_string<Args...> format, Args&&... args) {
  return Status(StatusCode::kInvalidArgument, fmt::format(format, std::forward<Args>(args)...));
}
template <typename... Args>
Status corrupt_file(fmt::format_string<Args...> format, Args&&... args) {
  return Status(StatusCode::kCorruptFile, fmt::format(format, std::forward<Args>(args)...));
}
template <typename... Args>
Status unsupported(fmt::format_string<Args...> format, Args&&... args) {
  return Status(StatusCode::kUnsupported, fmt::format(format, std::forward<Args>(args)...));
}
template <typename... Args>
Status not_found(fmt::format_string<Args...> format, Args&&... args) {
  return Status(StatusCode::kNotFound, fmt::format(format, std::forward<Args>(args)...));
}
template <typename... Args>
Status io_error(fmt::format_string<Args...> format, Args&&... args) {
  return Status(StatusCode::kIoError, fmt::format(format, std::forward<Args>(args)...));
}

// A value or the Status that explains why there is none.
template <typename T>
class [[nodiscard]] Expected {
 public:
  Expected(T value) : state_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  Expected(Status status) : state_(std::in_place_index<1>, std::move(status)) {  // NOLINT
    if (std::get<1>(state_).is_ok()) {
      state_.template emplace<1>(StatusCode::kInternal, "Expected constructed from an OK status");
    }
  }

  bool has_value() const { return state_.index() == 0; }
  explicit operator bool() const { return has_value(); }

  T& value() & {
    throw_if_error();
    return std::get<0>(state_);
  }
  const T& value() const& {
    throw_if_error();
    return std::get<0>(state_);
  }
  T&& value() && {
    throw_if_error();
    return std::get<0>(std::move(state_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  // OK when a value is held.
  Status status() const { return has_value() ? Status::ok() : std::get<1>(state_); }

 private:
  void throw_if_error() const {
    if (!has_value()) throw Error(std::get<1>(state_));
  }
  std::variant<T, Status> state_;
};

// Throws compress::Error when the status is not OK (API-boundary helper).
inline void throw_if_error(const Status& status) {
  if (!status.is_ok()) throw Error(status);
}
template <typename T>
T value_or_throw(Expected<T> expected) {
  return std::move(expected).value();
}

}  // namespace compress

// Early-return helpers for functions returning Status or Expected<T>.
#define COMPRESS_CONCAT_INNER(a, b) a##b
#define COMPRESS_CONCAT(a, b) COMPRESS_CONCAT_INNER(a, b)

#define COMPRESS_RETURN_IF_ERROR(expr)                   \
  do {                                                   \
    ::compress::Status compress_status_ = (expr);        \
    if (!compress_status_.is_ok()) return compress_status_; \
  } while (0)

#define COMPRESS_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                   \
  if (!tmp.has_value()) return tmp.status();           \
  lhs = std::move(*tmp)

#define COMPRESS_ASSIGN_OR_RETURN(lhs, expr) \
  COMPRESS_ASSIGN_OR_RETURN_IMPL(COMPRESS_CONCAT(compress_expected_, __LINE__), lhs, expr)
