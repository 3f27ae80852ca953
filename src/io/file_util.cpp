// POSIX file helpers for io/ (see file_util.h).
#include "file_util.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <limits>
#include <new>
#include <stdexcept>
#include <system_error>

namespace compress::io {

std::string errno_text(int err) { return std::generic_category().message(err); }

void UniqueFd::reset() {
  if (fd_ >= 0) {
    // The descriptor is released even when close reports an error (Linux
    // semantics), so retrying on EINTR would risk closing someone else's fd.
    ::close(fd_);
    fd_ = -1;
  }
}

namespace {

// What a stat mode is, for "not a regular file (it is a FIFO)".
const char* file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "it is a directory";
  if (S_ISFIFO(mode)) return "it is a FIFO; compress reads only regular files, which cannot block";
  if (S_ISCHR(mode)) return "it is a character device";
  if (S_ISBLK(mode)) return "it is a block device";
  if (S_ISSOCK(mode)) return "it is a socket";
  return "it is not a plain file";
}

}  // namespace

Expected<OpenFile> open_for_reading(const std::string& path) {
  int fd;
  do {
    // O_NONBLOCK: opening a FIFO must not wait for a writer; the fstat below
    // then rejects it. It changes nothing for regular files.
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    const int err = errno;
    const StatusCode code = err == ENOENT ? StatusCode::kNotFound : StatusCode::kIoError;
    return Status(code, fmt::format("{}: cannot open for reading: {}", path, errno_text(err)));
  }
  OpenFile file;
  file.fd = UniqueFd(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) return io_error("{}: cannot stat: {}", path, errno_text(errno));
  if (!S_ISREG(st.st_mode)) return invalid_argument("{}: not a regular file ({})", path, file_kind(st.st_mode));
  file.size = static_cast<uint64_t>(st.st_size);
  return file;
}

Status pread_exact(int fd, uint64_t offset, void* dst, size_t n, const std::string& path) {
  auto* out = static_cast<uint8_t*>(dst);
  size_t done = 0;
  while (done < n) {
    const uint64_t at = offset + done;
    if (at > static_cast<uint64_t>(std::numeric_limits<off_t>::max())) {
      return corrupt_file("{}: read at byte {} is beyond what this system can address", path, at);
    }
    // Large reads are split so that one call never exceeds what read(2) returns at once.
    const size_t want = std::min<size_t>(n - done, size_t{1} << 30);
    const ssize_t got = ::pread(fd, out + done, want, static_cast<off_t>(at));
    if (got < 0) {
      if (errno == EINTR) continue;
      return io_error("{}: read of {} bytes at byte {} failed: {}", path, want, at, errno_text(errno));
    }
    if (got == 0) {
      return corrupt_file("{}: unexpected end of file at byte {} (needed {} more bytes; was the file truncated "
                          "while being read?)",
                          path, at, n - done);
    }
    done += static_cast<size_t>(got);
  }
  return Status::ok();
}

Expected<std::string> read_file(const std::string& path, uint64_t max_bytes) {
  COMPRESS_ASSIGN_OR_RETURN(OpenFile file, open_for_reading(path));
  if (file.size > max_bytes) {
    return Status(StatusCode::kResourceExhausted,
                  fmt::format("{}: file is {} bytes, more than the {} this reader accepts", path, file.size, max_bytes));
  }
  std::string bytes;
  try {
    bytes.resize(static_cast<size_t>(file.size));
  } catch (const std::exception&) {  // bad_alloc, or length_error past max_size()
    return io_error("{}: out of memory reading {} bytes", path, file.size);
  }
  COMPRESS_RETURN_IF_ERROR(pread_exact(file.fd.get(), 0, bytes.data(), bytes.size(), path));
  return bytes;
}

Expected<MappedFile> map_file_private(const std::string& path) {
  COMPRESS_ASSIGN_OR_RETURN(OpenFile file, open_for_reading(path));
  MappedFile mapped;
  if (file.size == 0) return mapped;  // mmap of length 0 is invalid; the parser reports "empty"
  if (file.size > std::numeric_limits<size_t>::max()) {
    return unsupported("{}: file of {} bytes cannot be mapped on this system", path, file.size);
  }
  const size_t size = static_cast<size_t>(file.size);
  // PROT_WRITE with MAP_PRIVATE: a pass that modifies a borrowed tensor in
  // place gets its own copy of the page instead of a SIGSEGV or a modified file.
  void* addr = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, file.fd.get(), 0);
  if (addr == MAP_FAILED) return io_error("{}: mmap of {} bytes failed: {}", path, size, errno_text(errno));
  try {
    mapped.mapping = std::shared_ptr<void>(addr, [size](void* p) { ::munmap(p, size); });
  } catch (const std::bad_alloc&) {
    ::munmap(addr, size);
    return io_error("{}: out of memory", path);
  }
  mapped.data = static_cast<const uint8_t*>(addr);
  mapped.size = size;
  // The descriptor closes here; the mapping stays valid without it.
  return mapped;
}

Status check_readable_file(const std::string& path) { return open_for_reading(path).status(); }

bool same_file(const std::string& a, const std::string& b) {
  struct stat sa {}, sb {};
  if (::stat(a.c_str(), &sa) != 0 || ::stat(b.c_str(), &sb) != 0) return false;
  return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

namespace {

// The folder a path's file goes into ("." for a bare name).
std::string folder_of(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

Status check_folder_exists(const std::string& folder, const std::string& path, std::string_view what) {
  struct stat st {};
  if (::stat(folder.c_str(), &st) != 0) {
    const int err = errno;
    return Status(err == ENOENT ? StatusCode::kNotFound : StatusCode::kIoError,
                  fmt::format("{} '{}': its folder '{}' {}", what, path, folder,
                              err == ENOENT ? "does not exist" : "cannot be used: " + errno_text(err)));
  }
  if (!S_ISDIR(st.st_mode)) return invalid_argument("{} '{}': '{}' is not a folder", what, path, folder);
  if (::access(folder.c_str(), W_OK | X_OK) != 0) {
    return io_error("{} '{}': cannot write into the folder '{}': {}", what, path, folder, errno_text(errno));
  }
  return Status::ok();
}

}  // namespace

Status check_output_file(const std::string& path, const std::vector<std::string>& inputs, std::string_view what) {
  if (path.empty()) return invalid_argument("{}: the output path is empty", what);
  if (path.back() == '/') return invalid_argument("{} '{}': names a folder, not a file", what, path);
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    struct stat target {};
    // A symlink is replaced by the new file; what it points to stays.
    const bool is_link = S_ISLNK(st.st_mode);
    if (!is_link || ::stat(path.c_str(), &target) == 0) {
      const mode_t mode = is_link ? target.st_mode : st.st_mode;
      if (S_ISDIR(mode)) return invalid_argument("{} '{}': is a directory", what, path);
      if (!is_link && !S_ISREG(mode)) {
        return invalid_argument("{} '{}': exists and is not a regular file ({}); writing would replace it",
                                what, path, file_kind(mode));
      }
    }
    for (const std::string& input : inputs) {
      if (same_file(path, input)) {
        return invalid_argument("{} '{}' is the input '{}': choose another output, compress never replaces an "
                                "input",
                                what, path, input);
      }
    }
  } else if (errno != ENOENT) {
    return io_error("{} '{}': {}", what, path, errno_text(errno));
  }
  return check_folder_exists(folder_of(path), path, what);
}

Status check_output_folder(const std::string& dir, std::string_view what) {
  if (dir.empty()) return invalid_argument("{}: the folder path is empty", what);
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) return invalid_argument("{} '{}': exists and is not a folder", what, dir);
    if (::access(dir.c_str(), W_OK | X_OK) != 0) {
      return io_error("{} '{}': cannot write into it: {}", what, dir, errno_text(errno));
    }
    return Status::ok();
  }
  if (errno != ENOENT) return io_error("{} '{}': {}", what, dir, errno_text(errno));
  // Missing folders are created when written: the nearest existing ancestor
  // must be a folder that can be written into.
  std::string ancestor = dir;
  for (;;) {
    while (ancestor.size() > 1 && ancestor.back() == '/') ancestor.pop_back();
    ancestor = folder_of(ancestor);
    if (::stat(ancestor.c_str(), &st) == 0 || errno != ENOENT || ancestor == "." || ancestor == "/") break;
  }
  return check_folder_exists(ancestor, dir, what);
}

}  // namespace compress::io
