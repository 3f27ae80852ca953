#include "gzip_file.h"

#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <memory>

namespace gzip_file {

bool read(const std::string& path, size_t max_bytes, std::string* out, std::string* error, bool* not_found) {
  *not_found = false;
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) {
    *not_found = errno == ENOENT;
    *error = path + ": cannot open (" + std::strerror(errno) + ")";
    return false;
  }
  std::unique_ptr<gzFile_s, int (*)(gzFile)> closer(file, gzclose);
  out->clear();
  char buffer[1 << 16];
  for (;;) {
    const int n = gzread(file, buffer, sizeof buffer);
    if (n < 0) {
      int code = 0;
      const char* message = gzerror(file, &code);
      *error = path + ": read failed after " + std::to_string(out->size()) + " bytes: " + (message ? message : "?");
      return false;
    }
    if (n == 0) break;
    out->append(buffer, static_cast<size_t>(n));
    if (out->size() > max_bytes) {
      *error = path + ": larger than " + std::to_string(max_bytes) + " bytes";
      return false;
    }
  }
  return true;
}

}  // namespace gzip_file
