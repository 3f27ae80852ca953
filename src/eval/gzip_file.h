// Streaming reads of a regular file through zlib (gzip or plain), kept in its own file:
// zlib declares a global function named `compress`, which clashes with our
// namespace, so the TU that includes zlib.h must not include compress headers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace gzip_file {

// A regular file read front to back, decompressed when it is gzip (plain
// files pass through). Only regular files open: a FIFO or device would block
// or never end (Note [Inputs and destinations] in compress/io/files.h).
class Stream {
 public:
  Stream() = default;
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // False with a message in *error; *not_found tells a missing file apart.
  bool open(const std::string& path, std::string* error, bool* not_found);
  // Reads up to n bytes into dst; returns how many (fewer only at the end of
  // the data), or -1 with a message in *error (corrupt gzip data).
  long long read(void* dst, size_t n, std::string* error);
  // Whether the file is gzip-compressed (else its size is the data size).
  bool compressed() const { return compressed_; }
  uint64_t file_size() const { return file_size_; }

 private:
  void* gz_ = nullptr;  // gzFile
  std::string path_;
  bool compressed_ = false;
  uint64_t file_size_ = 0;
};

}  // namespace gzip_file
