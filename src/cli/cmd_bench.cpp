// `ctk bench MODEL --backend onednn|reference --batch B [--dtype f32|bf16] [--json] [--explain]`: latency of a model.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "compress/eval/latency.h"
#include "compress/runtime/backend.h"
#include "compress/support/threads.h"
#include "compress/pipeline/model_loading.h"

namespace compress::cli {

const CommandDoc kBenchDoc = {
    "bench",
    "measure a model's latency, throughput and peak memory on a backend",
    "ctk bench MODEL [--backend onednn|reference] [--batch B] [--dtype f32|bf16] [--threads N] [--json] [--explain]\n"
    "          [--profile]",
    "Compiles MODEL for the backend, runs it once (the first run is reported\n"
    "separately with the compile time), warms up, then times runs on random\n"
    "inputs until both --min-runs and --min-time are reached (at most\n"
    "--max-runs), and prints the median (p50), p90 and minimum latency in\n"
    "milliseconds, throughput (batch / p50, items per second) and the peak\n"
    "resident memory of the process (VmHWM). Inputs are random N(0,1) floats; an\n"
    "integer input that feeds an embedding gets indices within its table.\n"
    "--batch replaces the first dimension of every input (default: the model's).\n"
    "--dtype bf16 runs convolutions, linear layers and matmuls in bf16 (onednn).\n"
    "--explain prints the compiled plan: one line per step (for onednn: primitive,\n"
    "implementation, fused nodes, layouts; for reference: one step per node) and\n"
    "every node that falls back to the reference backend with the reason.\n"
    "--profile (any backend) then times each step\n"
    "of the plan over as many runs as were timed (10 to 100), waiting for every\n"
    "step, and prints the slowest steps and the time per step kind; the latency\n"
    "above is measured without those waits. Thread count: the global --threads.\n"
    "With --json, one object: latency_ms {p50, p90, min}, throughput_per_s,\n"
    "peak_rss_mb, plus compile_ms, first_run_ms, runs, others_cpu_share (the share\n"
    "of the cores other processes used while timing), batch, threads, backend,\n"
    "dtype and fallbacks (each {node, op, reason}); with --profile also profile\n"
    "{runs, ms_per_run, steps: [{index, kind, nodes, implementation, ms}]} (ms per run).",
    "  ctk bench resnet18.cmf --backend onednn --threads 2 --batch 1\n"
    "  ctk bench resnet18.cmf --backend onednn --dtype bf16 --batch 32 --json\n"
    "  ctk bench encoder.cmf --backend onednn --explain\n"
    "  ctk bench model_int8.cmf --profile\n",
};

int run_bench(const std::vector<std::string>& args) {
  CommandLine cl(kBenchDoc);
  cl.options().add_options()
      ("backend,b", po::value<std::string>()->default_value("onednn")->value_name("NAME"), "backend to run on")
      ("batch", po::value<int64_t>()->default_value(0)->value_name("B"), "batch size (0: the model's own)")
      ("dtype", po::value<std::string>()->default_value("f32")->value_name("f32|bf16"),
       "compute type of conv/linear/matmul (bf16: onednn only)")
      ("min-runs", po::value<int>()->default_value(10)->value_name("N"), "timed runs at least")
      ("max-runs", po::value<int>()->default_value(1000)->value_name("N"), "timed runs at most")
      ("min-time", po::value<double>()->default_value(2.0)->value_name("SECONDS"), "timed seconds at least")
      ("warmup", po::value<int>()->default_value(3)->value_name("N"), "untimed runs after the first")
      ("json", po::bool_switch(), "print one JSON object on stdout")
      ("explain", po::bool_switch(), "print the compiled plan and the reference fallbacks with reasons")
      ("profile", po::bool_switch(), "time every step of the plan and print the slowest");
  cl.add_positional("model");
  if (!cl.parse(args)) return kExitOk;
  const std::string path = cl.required_positional("model", "MODEL");
  const std::string backend_name = cl.vm()["backend"].as<std::string>();
  const std::string dtype = cl.vm()["dtype"].as<std::string>();
  const int64_t batch = cl.vm()["batch"].as<int64_t>();
  const int min_runs = cl.vm()["min-runs"].as<int>();
  const int max_runs = cl.vm()["max-runs"].as<int>();
  const double min_time = checked_number(cl, "min-time", 0.0, 3600.0);
  const int warmup = cl.vm()["warmup"].as<int>();
  const bool want_json = cl.vm()["json"].as<bool>();
  const bool explain = cl.vm()["explain"].as<bool>();
  const bool profile = cl.vm()["profile"].as<bool>();
  const std::vector<std::string> backends = runtime::available_backends();
  if (std::find(backends.begin(), backends.end(), backend_name) == backends.end()) {
    cl.usage_error(fmt::format("unknown backend '{}' (available: {})", backend_name, fmt::join(backends, ", ")));
  }
  if (dtype != "f32" && dtype != "bf16") cl.usage_error(fmt::format("bad --dtype '{}' (use f32 or bf16)", dtype));
  if (dtype == "bf16" && backend_name != "onednn") cl.usage_error("--dtype bf16 needs --backend onednn");
  if (batch < 0) cl.usage_error(fmt::format("bad --batch {} (use a size >= 1, or 0 for the model's)", batch));
  if (min_runs < 1 || max_runs < min_runs || warmup < 0 || min_time < 0) {
    cl.usage_error("need 1 <= --min-runs <= --max-runs, --warmup >= 0 and --min-time >= 0");
  }

  Expected<ir::Graph> graph = pipeline::load_model(path, cl.model_options());
  if (!graph.has_value()) return report_failure(kBenchDoc, graph.status());
  Expected<std::vector<ir::Tensor>> inputs = eval::random_inputs(*graph, batch);
  if (!inputs.has_value()) return report_failure(kBenchDoc, inputs.status());

  runtime::BackendOptions backend_options;
  backend_options.compute = dtype;
  Expected<std::unique_ptr<runtime::Backend>> made = runtime::make_backend(backend_name, backend_options);
  if (!made.has_value()) return report_failure(kBenchDoc, made.status());
  std::unique_ptr<runtime::Backend> backend = std::move(*made);

  const auto t0 = std::chrono::steady_clock::now();
  Expected<std::unique_ptr<runtime::ExecutionPlan>> plan = backend->compile(*graph);
  if (!plan.has_value()) return report_failure(kBenchDoc, plan.status().with_context(path));
  const double compile_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  eval::LatencyOptions timing;
  timing.warmup = warmup;
  timing.min_runs = min_runs;
  timing.max_runs = max_runs;
  timing.min_time_s = min_time;
  Expected<eval::LatencyResult> measured = eval::time_plan(**plan, *inputs, timing);
  if (!measured.has_value()) return report_failure(kBenchDoc, measured.status().with_context(path));
  const double first_run_ms = measured->first_run_ms;
  const double p50 = measured->p50_ms, p90 = measured->p90_ms, best = measured->min_ms;
  const int64_t items = measured->batch;
  const double throughput = measured->throughput_per_s();
  const double rss = eval::peak_rss_mb();

  nlohmann::json fallbacks = nlohmann::json::array();
  nlohmann::json profile_json;
  std::string profile_text;
  runtime::PlanReport described = (*plan)->describe();
  for (const runtime::PlanFallback& f : described.fallbacks) {
    fallbacks.push_back({{"node", f.node}, {"op", f.op}, {"reason", f.reason}});
  }
  const std::string plan_text = described.text;
  if (profile) {
    // After the timed runs, so the per-step waits do not touch the latency figures.
    const Status on = (*plan)->set_profiling(true);
    if (!on.is_ok()) return report_failure(kBenchDoc, on.with_context(path));
    const int profile_runs = static_cast<int>(std::clamp<int64_t>(measured->runs, 10, 100));
    for (int i = 0; i < profile_runs; ++i) {
      Expected<std::vector<ir::Tensor>> out = (*plan)->run(*inputs);
      if (!out.has_value()) return report_failure(kBenchDoc, out.status().with_context(path));
    }
    (void)(*plan)->set_profiling(false);
    const runtime::PlanReport r = (*plan)->describe();
    profile_text = r.profile_text;
    const double runs = static_cast<double>(std::max<int64_t>(1, r.profiled_runs));
    nlohmann::json steps = nlohmann::json::array();
    double total = 0;
    for (size_t i = 0; i < r.steps.size(); ++i) {
      total += r.steps[i].profiled_ms / runs;
      steps.push_back({{"index", i}, {"kind", r.steps[i].kind}, {"nodes", r.steps[i].nodes},
                       {"implementation", r.steps[i].implementation}, {"ms", r.steps[i].profiled_ms / runs}});
    }
    profile_json = {{"runs", r.profiled_runs}, {"ms_per_run", total}, {"steps", steps}};
  }

  if (want_json) {
    nlohmann::json out;
    out["model"] = path;
    out["backend"] = backend_name;
    out["dtype"] = dtype;
    out["threads"] = num_threads();
    out["batch"] = items;
    out["latency_ms"] = {{"p50", p50}, {"p90", p90}, {"min", best}};
    out["throughput_per_s"] = throughput;
    out["peak_rss_mb"] = rss;
    out["compile_ms"] = compile_ms;
    out["first_run_ms"] = first_run_ms;
    out["runs"] = measured->runs;
    out["others_cpu_share"] =
        measured->others_cpu_share >= 0 ? nlohmann::json(measured->others_cpu_share) : nlohmann::json();
    out["fallbacks"] = fallbacks;
    if (explain) out["plan"] = plan_text;
    if (profile) out["profile"] = profile_json;
    std::cout << json_text(out, 2) << "\n";
    return kExitOk;
  }
  if (explain) std::cout << plan_text << "\n";
  std::cout << fmt::format("{}: {} backend, {}, batch {}, {} threads\n", path, backend_name, dtype, items, num_threads());
  std::cout << fmt::format("  latency     p50 {:.3f} ms   p90 {:.3f} ms   min {:.3f} ms   ({} runs)\n", p50, p90, best,
                           measured->runs);
  std::cout << fmt::format("  throughput  {:.1f} items/s\n", throughput);
  std::cout << fmt::format("  first run   {:.1f} ms after a {:.1f} ms compile\n", first_run_ms, compile_ms);
  std::cout << fmt::format("  peak RSS    {:.1f} MB\n", rss);
  // Note [Measuring others' load] (support/cpu_load.h).
  if (measured->others_cpu_share > eval::kUnreliableOthersShare) {
    std::cout << fmt::format("  warning     other processes used {:.0f}% of the cores while timing: the figures "
                             "are unreliable\n",
                             100.0 * measured->others_cpu_share);
  }
  if (!fallbacks.empty()) {
    std::cout << fmt::format("  fallbacks   {} node(s) on the reference backend (--explain lists them)\n",
                             fallbacks.size());
  }
  if (!profile_text.empty()) std::cout << "\n" << profile_text;
  return kExitOk;
}

}  // namespace compress::cli
