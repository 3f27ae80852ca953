// libFuzzer target for the .npy reader: no input may crash it, and every accepted array must round-trip through save_npy/load_npy.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "compress/io/npy.h"
#include "fuzz_common.h"

using namespace compress;

namespace {

// A folder of our own on tmpfs: save_npy writes atomically (temp file and
// rename in the destination's folder), so it needs a real folder, and tmpfs
// keeps the per-input round trip in memory.
// Removed at exit (libFuzzer exits normally after -runs or -max_total_time).
std::string scratch_dir;

void remove_scratch() {
  std::error_code ignored;
  std::filesystem::remove_all(scratch_dir, ignored);
}

std::string scratch_path() {
  if (scratch_dir.empty()) {
    const std::string base = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    scratch_dir = base + "/compress-fuzz-npy-" + std::to_string(::getpid());
    std::error_code error;
    std::filesystem::create_directories(scratch_dir, error);
    if (error) {
      std::fprintf(stderr, "cannot create %s: %s\n", scratch_dir.c_str(), error.message().c_str());
      std::abort();
    }
    std::atexit(remove_scratch);
  }
  return scratch_dir + "/a.npy";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  Expected<ir::Tensor> tensor = io::parse_npy(bytes, "fuzz.npy");
  if (!tensor) {
    fuzz::check_not_internal(tensor.status());
    return 0;
  }
  // Touch what a caller would: the shape's element count against the
  // stored bytes, and the last element (an off-by-one in the size check
  // shows up here under ASan).
  const ir::Tensor& t = *tensor;
  if (t.is_sparse() || t.numel() != t.stored_count()) __builtin_trap();
  if (t.numel() > 0) (void)t.element_as_double(t.numel() - 1);

  // Whatever the reader accepts, the writer must write (every dtype the
  // reader produces has a .npy name) and the reader must read back the same.
  const std::string path = scratch_path();
  const Status saved = io::save_npy(t, path);
  if (!saved.is_ok()) {
    std::fprintf(stderr, "save_npy refused an array parse_npy accepted: %s\n", saved.message().c_str());
    __builtin_trap();
  }
  Expected<ir::Tensor> again = io::load_npy(path);
  if (!again || again->dtype() != t.dtype() || again->shape() != t.shape() || !again->bitwise_equal(t)) {
    std::fprintf(stderr, "round trip changed the array: %s\n",
                 again ? "different dtype, shape or values" : again.status().message().c_str());
    __builtin_trap();
  }
  return 0;
}
