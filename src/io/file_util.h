// POSIX file helpers for io/: an owning fd, errno text, exact positional reads, mmap.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "compress/io/files.h"
#include "compress/support/status.h"

namespace compress::io {

// strerror text for an errno value (thread-safe).
std::string errno_text(int err);

// Closes the descriptor on destruction.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = other.release();
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset();

 private:
  int fd_ = -1;
};

// An open regular file and its size at open time.
struct OpenFile {
  UniqueFd fd;
  uint64_t size = 0;
};
// Opens for reading; a missing file is kNotFound, a directory or device kInvalidArgument.
Expected<OpenFile> open_for_reading(const std::string& path);

// Reads exactly `n` bytes at `offset`; a short read (file shrank) is kCorruptFile.
Status pread_exact(int fd, uint64_t offset, void* dst, size_t n, const std::string& path);


// A private, copy-on-write mapping of a whole file (PROT_READ|PROT_WRITE,
// MAP_PRIVATE): writes through it never reach the file. `mapping` unmaps when
// the last reference goes; tensors borrowing the data hold a copy of it.
struct MappedFile {
  const uint8_t* data = nullptr;  // null for an empty file
  size_t size = 0;
  std::shared_ptr<void> mapping;
};
Expected<MappedFile> map_file_private(const std::string& path);

}  // namespace compress::io
