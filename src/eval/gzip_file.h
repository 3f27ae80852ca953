// Whole-file reading through zlib (gzip or plain), kept in its own file:
// zlib declares a global function named `compress`, which clashes with our
// namespace, so the TU that includes zlib.h must not include compress headers.
#pragma once

#include <cstddef>
#include <string>

namespace gzip_file {

// Reads `path`, decompressing gzip data (plain files pass through). Returns
// false with a message in *error on failure; *not_found tells a missing file
// from a corrupt one. Stops with an error beyond `max_bytes`.
bool read(const std::string& path, size_t max_bytes, std::string* out, std::string* error, bool* not_found);

}  // namespace gzip_file
