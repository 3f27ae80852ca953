#include "compress/support/status.h"

#include "compress/support/check.h"

namespace compress {

const char* status_code_name(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "ok";
    case StatusCode::kInvalidArgument: return "invalid argument";
    case StatusCode::kNotFound: return "not found";
    case StatusCode::kCorruptFile: return "corrupt file";
    case StatusCode::kUnsupported: return "unsupported";
    case StatusCode::kIoError: return "I/O error";
    case StatusCode::kFailedPrecondition: return "failed precondition";
    case StatusCode::kInternal: return "internal error";
    case StatusCode::kResourceExhausted: return "resource limit";
  }
  return "unknown";
}

Status Status::with_context(const std::string& context) const {
  if (is_ok()) return *this;
  return Status(code_, context + ": " + message_);
}

std::string Status::to_string() const {
  if (is_ok()) return "ok";
  return message_;
}

namespace detail {
void internal_assert_failed(const char* condition, const char* file, int line, const std::string& message) {
  throw Error(Status(StatusCode::kInternal,
                     fmt::format("internal error (a bug in compress, please report it): {} at {}:{}{}{}",
                                 condition, file, line, message.empty() ? "" : ": ", message)));
}
}  // namespace detail

}  // namespace compress
