// Report rendering: Note [Saying when compression did not pay] (src/eval/report.cpp) and the load
// warning; the share of the cores other processes take while a plan is timed (Note [Measuring others'
// load], src/eval/latency.cpp).
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "compress/eval/latency.h"
#include "compress/eval/report.h"
#include "compress/runtime/reference.h"

using namespace compress;

namespace {

eval::VariantReport variant(const std::string& name, double b1_ms, double b32_ms) {
  eval::VariantReport v;
  v.name = name;
  v.latency[1].p50_ms = b1_ms;
  v.latency[32].p50_ms = b32_ms;
  return v;
}

}  // namespace

TEST_CASE("a report names the variants that are not clearly faster than the baseline") {
  eval::Report report;
  report.backend = "onednn";
  report.threads = 2;
  report.variants = {variant("fp32", 1.0, 20.0), variant("int8", 0.5, 8.0), variant("sparse80", 0.97, 21.0),
                     variant("pruned", 0.9, 19.5)};
  eval::VariantReport untimed;
  untimed.name = "untimed";
  report.variants.push_back(untimed);

  const std::string md = eval::report_markdown(report, false);
  // sparse80: 1.03x at batch 1 (within noise), 0.95x at 32; pruned: 1.11x, 1.03x.
  CHECK_THAT(md, Catch::Contains("Not clearly faster than fp32 (median speedup below 1.05x at some batch): "
                                 "sparse80 (b1 1.03x, b32 0.95x); pruned (b1 1.11x, b32 1.03x)."));
  CHECK_THAT(md, !Catch::Contains("int8 (b1") && !Catch::Contains("untimed ("));
  CHECK_THAT(eval::report_html(report), Catch::Contains("<p>Not clearly faster than fp32"));

  const nlohmann::json j = nlohmann::json::parse(eval::report_json(report));
  CHECK(j["variants"][0]["clearly_faster"].is_null());  // the baseline
  CHECK(j["variants"][1]["clearly_faster"] == true);
  CHECK(j["variants"][2]["clearly_faster"] == false);
  CHECK(j["variants"][3]["clearly_faster"] == false);
  CHECK(j["variants"][4]["clearly_faster"].is_null());

  report.variants = {variant("fp32", 1.0, 20.0), variant("int8", 0.5, 8.0)};
  CHECK_THAT(eval::report_markdown(report, false), !Catch::Contains("Not clearly faster"));
}

TEST_CASE("the load warning is about other processes while timing, with the load average as a fallback") {
  eval::Report report;
  report.backend = "onednn";
  report.cores = 2;
  report.load_average = 2.6;  // the measurement's own two threads and what ran the minute before
  report.variants = {variant("fp32", 1.0, 20.0), variant("int8", 0.5, 8.0)};
  for (eval::VariantReport& v : report.variants) {
    for (auto& [batch, latency] : v.latency) latency.others_cpu_share = 0.02;
  }
  CHECK(eval::others_cpu_share(report) == Approx(0.02));
  CHECK_THAT(eval::report_markdown(report, false), !Catch::Contains("Warning"));

  report.variants[1].latency[32].others_cpu_share = 0.3;
  CHECK_THAT(eval::report_markdown(report, false),
             Catch::Contains("Warning: other processes used 30% of the 2 cores while the latencies were timed"));
  CHECK(nlohmann::json::parse(eval::report_json(report))["others_cpu_share"] == Approx(0.3));

  for (eval::VariantReport& v : report.variants) {
    for (auto& [batch, latency] : v.latency) latency.others_cpu_share = -1;  // no /proc/stat
  }
  CHECK_THAT(eval::report_markdown(report, false), Catch::Contains("Warning: the load average was 2.6 on 2 cores"));
  CHECK(nlohmann::json::parse(eval::report_json(report))["others_cpu_share"].is_null());
}

TEST_CASE("time_plan measures the share of the cores another process takes while it times") {
  ir::Graph g;
  ir::Value* x = g.add_input("x", {ir::DType::kF32, {64, 256}, nullptr}).value();
  g.set_outputs({g.add_node("relu", {x}, {}, "relu").value()->output()});
  auto plan = runtime::make_reference_backend()->compile(g).value();
  const std::vector<ir::Tensor> inputs = eval::random_inputs(g, 0).value();
  eval::LatencyOptions options;
  options.warmup = 0;
  options.min_time_s = 0.5;
  options.max_runs = 1 << 30;  // the time, not the run count, ends the window

  eval::LatencyOptions short_window = options;
  short_window.max_runs = 10;
  CHECK(eval::time_plan(*plan, inputs, short_window).value().others_cpu_share == -1);  // too few clock ticks

  const eval::LatencyResult alone = eval::time_plan(*plan, inputs, options).value();
  CHECK(alone.others_cpu_share >= 0.0);  // Linux: /proc/stat is there
  CHECK(alone.others_cpu_share <= 1.0);

  // A second process spinning on one core for longer than the timed window.
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(1500);
    volatile uint64_t n = 0;
    while (std::chrono::steady_clock::now() < end) n = n + 1;
    ::_exit(0);
  }
  const eval::LatencyResult busy = eval::time_plan(*plan, inputs, options).value();
  int status = 0;
  ::waitpid(child, &status, 0);
  const double cores = static_cast<double>(std::max(1u, std::thread::hardware_concurrency()));
  // The spinning child gets at least a quarter of a core even when ctest runs
  // other tests beside this one (five runnable threads on two cores: 0.4).
  CHECK(busy.others_cpu_share >= 0.25 / cores);
  CHECK(busy.others_cpu_share <= 1.0);
}
