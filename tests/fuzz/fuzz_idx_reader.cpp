// libFuzzer target for the IDX dataset reader (plain and gzip), images alone or images plus labels.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "compress/eval/dataset.h"
#include "fuzz_common.h"

using namespace compress;

namespace {

// Note [Fuzz input layout for IDX]
//   byte 0: mode. bit 0: a labels file follows; bit 1: options.limit is
//           set, to bits 2..7 (0..63), so the truncating path runs too.
//   with labels: bytes 1..4, little-endian, the length of the images file
//           (clamped to what is there); the labels file is the rest.
//   without: the images file is bytes 1..end.
// Each file is handed to open_idx by path: the reader takes paths, and it
// streams from them through zlib, so a file starting 1f 8b is read as gzip.
constexpr uint8_t kWithLabels = 1;
constexpr uint8_t kWithLimit = 2;

// A memfd is a regular file (open_idx refuses anything else) that lives in
// memory; /proc/self/fd/N opens it again as a new file description, as an
// ordinary path would. One per role, reused for every input.
struct MemFile {
  int fd = -1;
  std::string path;

  explicit MemFile(const char* name) {
    fd = ::memfd_create(name, MFD_CLOEXEC);
    if (fd < 0) {
      std::perror("memfd_create");
      std::abort();
    }
    path = "/proc/self/fd/" + std::to_string(fd);
  }
  void set(const uint8_t* data, size_t size) const {
    if (::ftruncate(fd, 0) != 0) std::abort();
    size_t done = 0;
    while (done < size) {
      const ssize_t n = ::pwrite(fd, data + done, size - done, static_cast<off_t>(done));
      if (n <= 0) std::abort();
      done += static_cast<size_t>(n);
    }
  }
};

// Reads what a calibration or evaluation loop would: the first and last
// samples, with their labels, and one batch of several.
void exercise(const eval::DataSource& source, bool with_labels) {
  (void)source.describe();
  const int64_t n = source.size();
  if (n < 0 || source.has_labels() != (with_labels && n > 0)) __builtin_trap();
  const int64_t probes[][2] = {{0, std::min<int64_t>(n, 3)}, {n > 0 ? n - 1 : 0, n > 0 ? 1 : 0}};
  for (const auto& probe : probes) {
    Expected<eval::Batch> batch = source.batch(probe[0], probe[1]);
    if (!batch) {
      std::fprintf(stderr, "batch [%lld, +%lld) of %lld failed: %s\n", static_cast<long long>(probe[0]),
                   static_cast<long long>(probe[1]), static_cast<long long>(n), batch.status().message().c_str());
      __builtin_trap();
    }
    const ir::Tensor& x = batch->inputs;
    if (x.rank() < 1 || x.dim(0) != probe[1]) __builtin_trap();
    if (x.numel() > 0) (void)x.element_as_double(x.numel() - 1);
    if (source.has_labels() && static_cast<int64_t>(batch->labels.size()) != probe[1]) __builtin_trap();
  }
  // Out of range must be an error, not a read past the end.
  if (source.batch(n, 1).has_value()) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const MemFile images("fuzz-images");
  static const MemFile labels("fuzz-labels");
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  const uint8_t* rest = data + 1;
  size_t rest_size = size - 1;
  const bool with_labels = (mode & kWithLabels) != 0;
  size_t images_size = rest_size;
  if (with_labels) {
    if (rest_size < 4) return 0;
    uint32_t declared = 0;
    for (int i = 3; i >= 0; --i) declared = (declared << 8) | rest[i];
    rest += 4;
    rest_size -= 4;
    images_size = std::min<size_t>(declared, rest_size);
  }
  images.set(rest, images_size);
  if (with_labels) labels.set(rest + images_size, rest_size - images_size);

  eval::DatasetOptions options;
  options.normalization = {0.286f, 0.353f};
  if ((mode & kWithLimit) != 0) options.limit = mode >> 2;
  Expected<std::unique_ptr<eval::DataSource>> source =
      eval::open_idx(images.path, with_labels ? labels.path : std::string(), options);
  if (!source) {
    fuzz::check_not_internal(source.status());
    return 0;
  }
  if (*source == nullptr) __builtin_trap();
  exercise(**source, with_labels);
  return 0;
}
