// Strict number parsing for user-written text (recipes, command lines).
#pragma once

#include <cstdint>
#include <string>

namespace compress {

// A whole-string base-10 integer that fits int64_t; false on anything else
// (empty text, trailing characters, overflow).
bool parse_int64(const std::string& text, int64_t* value);

}  // namespace compress
