// Atomic writes: failures (real and injected) leave the previous file intact and no temp file behind.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include "cmf_test_util.h"
#include "compress/io/atomic_file.h"
#include "compress/io/cmf.h"

using namespace compress;
using compress::test::TempDir;
using Catch::Matchers::Contains;

namespace {

// Installs a fault hook for one test and always removes it.
struct FaultHookGuard {
  explicit FaultHookGuard(io::AtomicWriteFaultHook hook) { io::set_atomic_write_fault_hook_for_testing(std::move(hook)); }
  ~FaultHookGuard() { io::set_atomic_write_fault_hook_for_testing(nullptr); }
};

std::string pattern(size_t n, char seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(seed + static_cast<char>(i * 31 % 251));
  return s;
}

}  // namespace

TEST_CASE("atomic write creates and replaces files and leaves no temp file") {
  TempDir dir;
  const std::string path = dir.file("data.bin");
  REQUIRE(io::write_file_atomically(path, "first").is_ok());
  CHECK(test::read_bytes(path) == "first");
  REQUIRE(::chmod(path.c_str(), 0600) == 0);
  const std::string big = pattern((size_t{9} << 20) + 17, 'a');  // several chunks
  REQUIRE(io::write_file_atomically(path, big).is_ok());
  CHECK(test::read_bytes(path) == big);
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);  // a replaced file keeps its permissions
  REQUIRE(io::write_file_atomically(path, "").is_ok());
  CHECK(test::read_bytes(path).empty());
  CHECK(dir.list() == std::vector<std::string>{"data.bin"});
}

TEST_CASE("atomic write into a folder that cannot take files fails cleanly") {
  TempDir dir;
  // Root ignores permission bits, so use places that fail for root too: a
  // "folder" that is a regular file, a folder that does not exist, and /proc.
  const std::string not_a_dir = dir.file("plain-file");
  test::write_bytes(not_a_dir, "I am a file");
  Status st = io::write_file_atomically(not_a_dir + "/model.cmf", "data");
  REQUIRE_FALSE(st.is_ok());
  CHECK(st.code() == StatusCode::kIoError);
  CHECK_THAT(st.message(), Contains(not_a_dir + "/model.cmf"));
  CHECK_THAT(st.message(), Contains("Not a directory"));

  st = io::write_file_atomically(dir.file("missing/model.cmf"), "data");
  REQUIRE_FALSE(st.is_ok());
  CHECK_THAT(st.message(), Contains("No such file or directory"));

  st = io::write_file_atomically("/proc/compress-io-test.cmf", "data");
  REQUIRE_FALSE(st.is_ok());
  CHECK_THAT(st.message(), Contains("/proc/compress-io-test.cmf"));

  CHECK(dir.list() == std::vector<std::string>{"plain-file"});
  CHECK(test::read_bytes(not_a_dir) == "I am a file");
}

TEST_CASE("atomic write whose rename fails removes its temp file") {
  TempDir dir;
  // The target is a non-empty folder: rename(2) refuses, even for root.
  const std::string target = dir.file("model.cmf");
  REQUIRE(::mkdir(target.c_str(), 0755) == 0);
  test::write_bytes(target + "/keep", "x");
  const Status st = io::write_file_atomically(target, "new contents");
  REQUIRE_FALSE(st.is_ok());
  CHECK_THAT(st.message(), Contains("cannot rename"));
  CHECK_THAT(st.message(), Contains(target));
  CHECK(dir.list() == std::vector<std::string>{"model.cmf"});
  CHECK(test::read_bytes(target + "/keep") == "x");
  std::remove((target + "/keep").c_str());
}

TEST_CASE("atomic write interrupted midway keeps the previous file byte for byte") {
  TempDir dir;
  const std::string path = dir.file("weights.bin");
  const std::string old_bytes = pattern(5000, 'o');
  REQUIRE(io::write_file_atomically(path, old_bytes).is_ok());

  for (size_t fail_after : {size_t{0}, size_t{4} << 20, size_t{8} << 20}) {
    INFO("fail once " << fail_after << " bytes are written");
    std::vector<size_t> seen;
    FaultHookGuard guard([&](size_t written) -> Status {
      seen.push_back(written);
      if (written >= fail_after) return io_error("simulated: No space left on device");
      return Status::ok();
    });
    const Status st = io::write_file_atomically(path, pattern((size_t{10} << 20) + 3, 'n'));
    REQUIRE_FALSE(st.is_ok());
    CHECK_THAT(st.message(), Contains("No space left on device"));
    CHECK_THAT(st.message(), Contains(path));
    CHECK(seen.back() == fail_after);  // it really stopped midway, not before starting
    CHECK(test::read_bytes(path) == old_bytes);
    CHECK(dir.list() == std::vector<std::string>{"weights.bin"});
  }
}

TEST_CASE("save_cmf interrupted midway keeps the previous model loadable") {
  TempDir dir;
  const std::string path = dir.file("model.cmf");
  const ir::Graph g = test::tiny_graph();
  REQUIRE(io::save_cmf(g, path).is_ok());
  const std::string before = test::read_bytes(path);
  {
    FaultHookGuard guard([](size_t) { return io_error("simulated crash"); });
    const Status st = io::save_cmf(g, path);
    REQUIRE_FALSE(st.is_ok());
    CHECK_THAT(st.message(), Contains("simulated crash"));
  }
  CHECK(test::read_bytes(path) == before);
  CHECK(dir.list() == std::vector<std::string>{"model.cmf"});
  CHECK(io::load_cmf(path).has_value());
  // Without the hook the same save works.
  REQUIRE(io::save_cmf(g, path).is_ok());
  CHECK(test::read_bytes(path) == before);
}
