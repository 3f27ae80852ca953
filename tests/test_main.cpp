#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

// LeakSanitizer suppressions for the sanitizer build (COMPRESS_SANITIZE=ON),
// compiled into every test binary. Only third-party libraries that are not
// built with the sanitizer belong here; a leak in compress's own code must be
// fixed, never suppressed.
// - LibTorch's TorchScript loader leaks a small allocation when it rejects a
//   corrupt archive (tests/torch: "bad TorchScript files are clear errors").
extern "C" const char* __lsan_default_suppressions() { return "leak:libtorch_cpu.so\n"; }
