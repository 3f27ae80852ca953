// write_file_atomically: temp file in the target's folder, fsync, rename, fsync folder.
#include "compress/io/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <mutex>
#include <string>

#include "file_util.h"

namespace compress::io {
namespace {

// Chunked writes give the fault hook (and a full disk) a point to fail
// midway, and keep a single write(2) well below its 2 GiB limit.
constexpr size_t kChunkBytes = size_t{4} << 20;

std::mutex g_hook_mutex;
AtomicWriteFaultHook g_fault_hook;

AtomicWriteFaultHook current_hook() {
  std::lock_guard<std::mutex> lock(g_hook_mutex);
  return g_fault_hook;
}

void split_path(const std::string& path, std::string* dir, std::string* base) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) {
    *dir = ".";
    *base = path;
  } else {
    *dir = slash == 0 ? "/" : path.substr(0, slash);
    *base = path.substr(slash + 1);
  }
}

// Unique within the process (counter), across processes (pid) and across
// restarts that reuse a pid (clock); O_EXCL settles any remaining race.
std::string temp_name(const std::string& dir, const std::string& base, int attempt) {
  static std::atomic<uint64_t> counter{0};
  const auto ticks = std::chrono::steady_clock::now().time_since_epoch().count();
  return fmt::format("{}/.{}.tmp-{}-{}-{:x}-{}", dir, base, static_cast<long>(::getpid()), counter++,
                     static_cast<unsigned long long>(ticks) & 0xffffff, attempt);
}

Status write_all(int fd, std::string_view bytes, const std::string& temp, const AtomicWriteFaultHook& hook) {
  size_t written = 0;
  do {
    if (hook) COMPRESS_RETURN_IF_ERROR(hook(written));
    const size_t chunk_end = std::min(bytes.size(), written + kChunkBytes);
    while (written < chunk_end) {
      const ssize_t n = ::write(fd, bytes.data() + written, chunk_end - written);
      if (n < 0) {
        if (errno == EINTR) continue;
        return io_error("{}: write failed after {} of {} bytes: {}", temp, written, bytes.size(),
                        errno_text(errno));
      }
      written += static_cast<size_t>(n);
    }
  } while (written < bytes.size());
  return Status::ok();
}

Status fsync_directory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return io_error("{}: cannot open folder to sync the rename: {}", dir, errno_text(errno));
  UniqueFd guard(fd);
  // Some file systems cannot sync a directory (EINVAL); the rename is then
  // as durable as they make it.
  if (::fsync(fd) != 0 && errno != EINVAL) {
    return io_error("{}: fsync of folder failed: {}", dir, errno_text(errno));
  }
  return Status::ok();
}

}  // namespace

void set_atomic_write_fault_hook_for_testing(AtomicWriteFaultHook hook) {
  std::lock_guard<std::mutex> lock(g_hook_mutex);
  g_fault_hook = std::move(hook);
}

Status write_file_atomically(const std::string& path, std::string_view bytes) {
  if (path.empty() || path.back() == '/') return invalid_argument("'{}' is not a file path", path);
  std::string dir, base;
  split_path(path, &dir, &base);

  // Keep the permissions of a file being replaced; a new file gets 0644 less umask.
  mode_t mode = 0644;
  bool replacing = false;
  struct stat existing {};
  if (::stat(path.c_str(), &existing) == 0 && S_ISREG(existing.st_mode)) {
    mode = existing.st_mode & 07777;
    replacing = true;
  }

  std::string temp;
  UniqueFd fd;
  for (int attempt = 0; attempt < 100 && !fd.valid(); ++attempt) {
    temp = temp_name(dir, base, attempt);
    const int raw = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (raw >= 0) {
      fd = UniqueFd(raw);
    } else if (errno != EEXIST && errno != EINTR) {
      return io_error("{}: cannot create a temporary file in folder '{}': {}", path, dir, errno_text(errno));
    }
  }
  if (!fd.valid()) return io_error("{}: could not find a free temporary file name in '{}'", path, dir);

  // From here on every failure removes the temp file; the target is untouched
  // until the rename, which replaces it in one step.
  auto fail = [&](Status status) {
    fd.reset();
    ::unlink(temp.c_str());
    return status.with_context(fmt::format("writing {}", path));
  };

  // open() applied the umask; a replaced file keeps exactly its old mode.
  if (replacing && ::fchmod(fd.get(), mode) != 0) {
    return fail(io_error("{}: cannot set mode {:o}: {}", temp, mode, errno_text(errno)));
  }
  Status st = write_all(fd.get(), bytes, temp, current_hook());
  if (!st.is_ok()) return fail(st);
  if (::fsync(fd.get()) != 0) return fail(io_error("{}: fsync failed: {}", temp, errno_text(errno)));
  const int raw = fd.release();
  if (::close(raw) != 0) {
    const int err = errno;
    ::unlink(temp.c_str());
    return io_error("writing {}: close of {} failed: {}", path, temp, errno_text(err));
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    return fail(io_error("cannot rename {} over {}: {}", temp, path, errno_text(errno)));
  }
  // The new file is in place; a failed folder sync only weakens durability
  // across a power loss, and is reported so the caller knows.
  return fsync_directory(dir).with_context(fmt::format("{} was written and renamed into place, but", path));
}

}  // namespace compress::io
