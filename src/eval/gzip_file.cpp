// Streaming gzip/plain reads of regular files (see gzip_file.h).
#include "gzip_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <climits>
#include <cstring>

namespace gzip_file {

Stream::~Stream() {
  if (gz_ != nullptr) gzclose(static_cast<gzFile>(gz_));
}

bool Stream::open(const std::string& path, std::string* error, bool* not_found) {
  *not_found = false;
  path_ = path;
  // O_NONBLOCK: opening a FIFO must not wait for a writer; fstat rejects it.
  int fd;
  do {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    *not_found = errno == ENOENT;
    *error = path + ": cannot open for reading: " + std::strerror(errno);
    return false;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    *error = path + ": not a regular file (" +
             (S_ISDIR(st.st_mode)    ? "it is a directory"
              : S_ISFIFO(st.st_mode) ? "it is a FIFO; compress reads only regular files, which cannot block"
              : S_ISCHR(st.st_mode)  ? "it is a character device"
                                     : "it is not a plain file") +
             ")";
    ::close(fd);
    return false;
  }
  file_size_ = static_cast<uint64_t>(st.st_size);
  gzFile file = gzdopen(fd, "rb");  // owns fd from here on
  if (file == nullptr) {
    ::close(fd);
    *error = path + ": cannot start reading (out of memory)";
    return false;
  }
  gz_ = file;
  compressed_ = gzdirect(file) == 0;
  return true;
}

long long Stream::read(void* dst, size_t n, std::string* error) {
  auto* out = static_cast<char*>(dst);
  size_t done = 0;
  while (done < n) {
    const unsigned want = static_cast<unsigned>(n - done < (1u << 30) ? n - done : (1u << 30));
    const int got = gzread(static_cast<gzFile>(gz_), out + done, want);
    if (got < 0) {
      int code = 0;
      const char* message = gzerror(static_cast<gzFile>(gz_), &code);
      *error = path_ + ": read failed after " + std::to_string(done) + " bytes: " + (message ? message : "?");
      return -1;
    }
    if (got == 0) break;
    done += static_cast<size_t>(got);
  }
  return static_cast<long long>(done);
}

}  // namespace gzip_file
