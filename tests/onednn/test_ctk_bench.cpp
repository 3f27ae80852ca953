// End-to-end tests of `ctk bench`: JSON keys, --explain with fallback reasons, usage errors.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <set>
#include <nlohmann/json.hpp>
#include <string>

#include "compress/io/cmf.h"
#include "onednn_test_util.h"

namespace compress::test {
namespace {

namespace fs = std::filesystem;
using ir::Value;

struct Run {
  int exit_code = -1;
  std::string out;
};

Run ctk(const std::string& arguments) {
  Run r;
  const std::string command = std::string(CTK_PATH) + " " + arguments + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) r.out.append(buf, n);
  const int status = pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// A small conv net ending in fake_quant (which falls back), saved as .cmf.
std::string save_model() {
  GraphBuilder g;
  Value* x = g.input("x", {1, 4, 8, 8});
  Value* c = g.node("relu",
                    {g.node("conv2d", {x, g.constant("w", random_f32({8, 4, 3, 3}, 1))},
                            {{"padding", std::vector<int64_t>{1, 1, 1, 1}}}, "conv")},
                    {}, "relu");
  g.outputs({g.node("fake_quant", {c}, {{"scale", std::vector<double>{0.05}}}, "fq")});
  const std::string path =
      (fs::temp_directory_path() / ("compress_ctk_bench_" + std::to_string(::getpid()) + ".cmf")).string();
  const Status saved = io::save_cmf(g.graph, path);
  INFO(saved.to_string());
  REQUIRE(saved.is_ok());
  return path;
}

}  // namespace

TEST_CASE("ctk bench --json prints latency, throughput and peak memory", "[onednn][cli]") {
  const std::string model = save_model();
  for (const char* backend : {"onednn", "reference"}) {
    const Run r = ctk(
        fmt::format("bench {} --backend {} --threads 1 --batch 3 --min-runs 3 --min-time 0 --json", model, backend));
    INFO(r.out);
    REQUIRE(r.exit_code == 0);
    const nlohmann::json j = nlohmann::json::parse(r.out);
    CHECK(j["backend"] == backend);
    CHECK(j["batch"] == 3);
    CHECK(j["threads"] == 1);
    CHECK(j["runs"].get<int>() >= 3);
    for (const char* k : {"p50", "p90", "min"}) CHECK(j["latency_ms"][k].get<double>() > 0);
    CHECK(j["latency_ms"]["min"].get<double>() <= j["latency_ms"]["p50"].get<double>());
    CHECK(j["latency_ms"]["p50"].get<double>() <= j["latency_ms"]["p90"].get<double>());
    CHECK(j["throughput_per_s"].get<double>() > 0);
    CHECK(j["peak_rss_mb"].get<double>() > 1);
    CHECK(j["compile_ms"].get<double>() >= 0);
  }
  fs::remove(model);
}

TEST_CASE("ctk bench --explain lists the plan and names each fallback with its reason", "[onednn][cli]") {
  const std::string model = save_model();
  // Note [int8 and bf16 by CPU ISA]: without bf16 kernels, --dtype bf16 is refused with the reason.
  const bool bf16 = runtime::onednn_cpu_support().bf16;
  if (!bf16) {
    const Run refused = ctk(fmt::format("bench {} --backend onednn --dtype bf16 --min-runs 1 --min-time 0", model));
    INFO(refused.out);
    CHECK(refused.exit_code != 0);
    CHECK_THAT(refused.out, Catch::Contains("bf16 compute needs a CPU with AVX-512"));
  }
  const Run r = ctk(fmt::format("bench {} --backend onednn --dtype {} --min-runs 1 --min-time 0 --explain", model,
                                bf16 ? "bf16" : "f32"));
  INFO(r.out);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains(bf16 ? "bf16 compute" : "f32 compute"));
  CHECK_THAT(r.out, Catch::Contains("convolution"));
  CHECK_THAT(r.out, Catch::Contains("conv+relu"));
  CHECK_THAT(r.out, Catch::Contains("fallbacks to the reference backend: 1"));
  CHECK_THAT(r.out, Catch::Contains("fq (fake_quant): fake_quant is a training-time op"));
  CHECK_THAT(r.out, Catch::Contains("latency     p50"));
  const Run j = ctk(fmt::format("bench {} --min-runs 1 --min-time 0 --json", model));
  REQUIRE(j.exit_code == 0);
  const nlohmann::json parsed = nlohmann::json::parse(j.out);
  REQUIRE(parsed["fallbacks"].size() == 1);
  CHECK(parsed["fallbacks"][0]["node"] == "fq");
  CHECK(parsed["fallbacks"][0]["op"] == "fake_quant");
  fs::remove(model);
}

TEST_CASE("ctk bench usage errors exit with 2 and say why", "[onednn][cli]") {
  const std::string model = save_model();
  Run r = ctk(fmt::format("bench {} --backend tpu", model));
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.out, Catch::Contains("unknown backend 'tpu'"));
  r = ctk(fmt::format("bench {} --backend reference --dtype bf16", model));
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.out, Catch::Contains("--dtype bf16 needs --backend onednn"));
  r = ctk("bench");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.out, Catch::Contains("missing MODEL"));
  r = ctk("bench /nonexistent/model.cmf");
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.out, Catch::Contains("no such file"));
  fs::remove(model);
}

TEST_CASE("ctk bench --profile times every step of the plan, and other backends refuse it", "[onednn][cli]") {
  const std::string model = save_model();
  const Run r = ctk(fmt::format("bench {} --threads 1 --min-runs 3 --max-runs 5 --min-time 0 --profile --json", model));
  INFO(r.out);
  REQUIRE(r.exit_code == 0);
  const nlohmann::json j = nlohmann::json::parse(r.out);
  const nlohmann::json& p = j["profile"];
  CHECK(p["runs"].get<int>() == 10);  // at least 10 profiled runs, however few were timed
  double sum = 0;
  std::set<std::string> kinds;
  for (const auto& step : p["steps"]) {
    CHECK(step["ms"].get<double>() >= 0);
    sum += step["ms"].get<double>();
    kinds.insert(step["kind"].get<std::string>());
  }
  CHECK(p["steps"].size() >= 2);
  CHECK(kinds.count("convolution") == 1);
  CHECK(kinds.count("reference") == 1);  // the fake_quant fallback is timed too
  CHECK(p["ms_per_run"].get<double>() == Approx(sum));
  CHECK(p["ms_per_run"].get<double>() > 0);

  const Run text = ctk(fmt::format("bench {} --threads 1 --min-runs 1 --min-time 0 --profile", model));
  INFO(text.out);
  REQUIRE(text.exit_code == 0);
  CHECK_THAT(text.out, Catch::Contains("profile over 10 runs") && Catch::Contains("by kind:"));

  // Every backend describes and profiles its plan the same way: the
  // reference backend as one step per node.
  const Run reference = ctk(fmt::format("bench {} --backend reference --min-runs 1 --min-time 0 --profile --explain --json", model));
  INFO(reference.out);
  REQUIRE(reference.exit_code == 0);
  const auto ref_json = nlohmann::json::parse(reference.out);
  CHECK_THAT(ref_json["plan"].get<std::string>(), Catch::Contains("reference plan:") && Catch::Contains("fallbacks: none"));
  CHECK(ref_json["profile"]["runs"].get<int64_t>() >= 10);
  REQUIRE_FALSE(ref_json["profile"]["steps"].empty());
  CHECK(ref_json["profile"]["steps"][0]["implementation"] == "reference");
  fs::remove(model);
}

}  // namespace compress::test
