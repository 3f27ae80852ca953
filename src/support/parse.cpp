#include "compress/support/parse.h"

#include <cerrno>
#include <cstdlib>

namespace compress {

bool parse_int64(const std::string& text, int64_t* value) {
  if (text.empty()) return false;
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (end != text.c_str() + text.size() || errno == ERANGE) return false;
  *value = static_cast<int64_t>(v);
  return true;
}

}  // namespace compress
