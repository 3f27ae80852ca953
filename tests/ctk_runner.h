// Test helpers for running the ctk binary as a user would: a temporary folder and a captured run.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace compress::testing {

namespace fs = std::filesystem;

// A fresh folder per test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = fs::temp_directory_path() / ("compress_ctk_test_" + std::to_string(::getpid()) + "_" +
                                         std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::string path() const { return path_.string(); }

 private:
  fs::path path_;
};

struct Run {
  int exit_code;
  std::string out;
  std::string err;
};

inline std::string quoted(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Exit code of a run that timeout(1) stopped: a hang fails its test instead
// of the whole suite waiting.
inline constexpr int kTimedOut = 124;

// Runs ctk through the shell with stdout and stderr captured separately,
// stopped after `timeout_s` seconds (exit code kTimedOut).
inline Run ctk(const std::vector<std::string>& args, int timeout_s = 600) {
  TempDir dir;
  std::string cmd = "timeout -k 5 " + std::to_string(timeout_s) + " " + quoted(CTK_PATH);
  for (const std::string& a : args) cmd += " " + quoted(a);
  cmd += " >" + quoted(dir.file("out")) + " 2>" + quoted(dir.file("err")) + " </dev/null";
  const int status = std::system(cmd.c_str());
  Run r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = read_text(dir.file("out"));
  r.err = read_text(dir.file("err"));
  return r;
}

}  // namespace compress::testing
