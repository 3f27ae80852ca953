// COMPRESS_CHECK for user errors, COMPRESS_INTERNAL_ASSERT for bugs.
#pragma once

#include "compress/support/status.h"

namespace compress::detail {
[[noreturn]] void internal_assert_failed(const char* condition, const char* file, int line,
                                         const std::string& message);
}  // namespace compress::detail

// Note [CHECK vs INTERNAL_ASSERT]
// COMPRESS_CHECK(cond, code, fmt, ...) returns an error Status from the
// enclosing function (which must return Status or Expected<T>) when a user
// input is wrong: it never aborts. COMPRESS_INTERNAL_ASSERT(cond, fmt, ...)
// states an invariant of compress itself; when it fails it is a bug, and it
// throws compress::Error(kInternal) naming file and line, so a library user's
// process is not torn down by our mistake either.
#define COMPRESS_CHECK(cond, code, ...)                                        \
  do {                                                                         \
    if (!(cond)) return ::compress::Status((code), ::fmt::format(__VA_ARGS__)); \
  } while (0)

#define COMPRESS_INTERNAL_ASSERT(cond, ...)                                              \
  do {                                                                                   \
    if (!(cond))                                                                         \
      ::compress::detail::internal_assert_failed(#cond, __FILE__, __LINE__,              \
                                                 ::fmt::format("" __VA_ARGS__));         \
  } while (0)
