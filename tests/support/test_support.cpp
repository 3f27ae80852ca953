#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <vector>

#include "compress/support/check.h"
#include "compress/support/logging.h"
#include "compress/support/progress.h"
#include "compress/support/threads.h"

using namespace compress;

namespace {
Status positive(int x) {
  COMPRESS_CHECK(x > 0, StatusCode::kInvalidArgument, "x must be positive, got {}", x);
  return Status::ok();
}
Expected<int> doubled(int x) {
  COMPRESS_RETURN_IF_ERROR(positive(x));
  return 2 * x;
}
Expected<int> quadrupled(int x) {
  COMPRESS_ASSIGN_OR_RETURN(int d, doubled(x));
  return 2 * d;
}
}  // namespace

TEST_CASE("Status and Expected carry errors with context") {
  CHECK(positive(1).is_ok());
  Status s = positive(-3);
  CHECK_FALSE(s.is_ok());
  CHECK(s.code() == StatusCode::kInvalidArgument);
  CHECK(s.message() == "x must be positive, got -3");
  CHECK(s.with_context("loading m.cmf").message() == "loading m.cmf: x must be positive, got -3");
  CHECK(*quadrupled(2) == 8);
  auto bad = quadrupled(0);
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.status().message() == "x must be positive, got 0");
  CHECK_THROWS_AS(bad.value(), Error);
  // An Expected built from an OK status is a bug, reported as internal.
  Expected<int> odd{Status::ok()};
  CHECK(odd.status().code() == StatusCode::kInternal);
}

TEST_CASE("COMPRESS_INTERNAL_ASSERT throws an internal Error naming the condition") {
  try {
    COMPRESS_INTERNAL_ASSERT(1 + 1 == 3, "math is {}", "broken");
    FAIL("no throw");
  } catch (const Error& e) {
    CHECK(e.status().code() == StatusCode::kInternal);
    CHECK(std::string(e.what()).find("1 + 1 == 3") != std::string::npos);
    CHECK(std::string(e.what()).find("math is broken") != std::string::npos);
  }
}

TEST_CASE("logging respects the level and the sink") {
  std::vector<std::string> lines;
  set_log_sink([&](LogLevel, const std::string& m) { lines.push_back(m); });
  const LogLevel saved = log_level();
  set_log_level(LogLevel::kWarning);
  log_info("hidden {}", 1);
  log_warning("shown {}", 2);
  set_log_level(saved);
  set_log_sink(nullptr);
  REQUIRE(lines.size() == 1);
  CHECK(lines[0] == "shown 2");
  LogLevel parsed;
  CHECK(parse_log_level("DEBUG", &parsed));
  CHECK(parsed == LogLevel::kDebug);
  CHECK_FALSE(parse_log_level("loud", &parsed));
}

TEST_CASE("progress prints plain lines when not a terminal") {
  std::FILE* f = std::tmpfile();
  REQUIRE(f != nullptr);
  {
    ProgressReporter p("calibrating", 20, ProgressReporter::Mode::kLines, f);
    for (int i = 0; i < 20; ++i) p.advance();
  }
  std::rewind(f);
  std::string text;
  char buf[256];
  while (std::fgets(buf, sizeof buf, f)) text += buf;
  std::fclose(f);
  CHECK(text.find("calibrating: 20/20 (100%)") != std::string::npos);
  CHECK(text.find('\r') == std::string::npos);
  // At most one line per 10% step plus the start.
  CHECK(std::count(text.begin(), text.end(), '\n') <= 12);
}

TEST_CASE("progress lines end with the detail text set last") {
  std::FILE* f = std::tmpfile();
  REQUIRE(f != nullptr);
  {
    ProgressReporter p("training", 2, ProgressReporter::Mode::kLines, f);
    p.set_detail("loss 2.3026");
    p.advance();
    p.set_detail("loss 1.5000, 640 samples/s");
    p.advance();
  }
  std::rewind(f);
  std::string text;
  char buf[256];
  while (std::fgets(buf, sizeof buf, f)) text += buf;
  std::fclose(f);
  CHECK(text.find("training: 1/2 (50%)") != std::string::npos);
  CHECK(text.find(", loss 2.3026\n") != std::string::npos);
  CHECK(text.find("training: 2/2 (100%)") != std::string::npos);
  CHECK(text.find(", loss 1.5000, 640 samples/s\n") != std::string::npos);
}

TEST_CASE("parallel_for covers every index once, for any thread count") {
  for (int threads : {1, 2, 3, 8}) {
    set_num_threads(threads);
    CHECK(num_threads() == threads);
    std::vector<std::atomic<int>> hits(1001);
    parallel_for(1001, [&](long begin, long end) {
      for (long i = begin; i < end; ++i) hits[static_cast<size_t>(i)]++;
    });
    for (auto& h : hits) REQUIRE(h.load() == 1);
  }
  set_num_threads(0);
  CHECK(num_threads() == default_num_threads());
}
