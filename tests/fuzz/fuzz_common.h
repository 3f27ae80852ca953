// What every fuzz target shares: the sanitizer settings and the rule that an internal error on user input is a finding.
#pragma once

#include <cstdio>

#include "compress/support/status.h"

// Oversized allocations return null (and become Status errors, as they do
// outside ASan) instead of aborting the fuzzer. One definition per fuzzer
// executable: each target is a single translation unit including this.
extern "C" const char* __asan_default_options() { return "allocator_may_return_null=1"; }

namespace compress::fuzz {

// Bad input must come back as an ordinary error; an internal error is an
// assertion of compress failing on user input: a bug even though it came
// back as a Status. `step` names what returned it.
inline void check_not_internal(const Status& st, const char* step = "reader") {
  if (!st.is_ok() && st.code() == StatusCode::kInternal) {
    std::fprintf(stderr, "%s: internal error on fuzz input: %s\n", step, st.message().c_str());
    __builtin_trap();
  }
}

}  // namespace compress::fuzz
