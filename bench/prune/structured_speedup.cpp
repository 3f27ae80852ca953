// Structured pruning speedup: each model unpruned vs prune.structured to a
// FLOPs target, on the onednn backend (f32), side by side in one run.
//
//   bench_structured_speedup [MODEL.pt ...] [--size 224] [--threads 2]
//       [--target-flops 0.5] [--round-to 16] [--criterion l1] [--rounds 6] [--iters 30]
//
// Defaults: the torchvision resnet18 and mobilenet_v2 fixtures of tests/torch
// (random seeded weights, randomized BN statistics) imported at
// [1,3,size,size]. The two plans of a model are timed in alternating rounds
// (`iters` runs each per round, after warm-up) so that load changes on a
// shared machine hit both; the table gives the median, p90 and minimum of all
// per-run latencies and the speedup of the medians. Prints Markdown for
// bench/RESULTS.md.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "../bench_options.h"
#include "../bench_util.h"
#include "compress/analysis/model_stats.h"
#include "compress/eval/latency.h"
#include "compress/eval/report.h"
#include "compress/pass/options.h"
#include "compress/prune/structured.h"
#include "compress/runtime/onednn.h"
#include "compress/runtime/reference.h"
#include "compress/support/threads.h"
#include "compress/torch/import.h"

namespace compress {
namespace {

using Clock = std::chrono::steady_clock;

struct Args {
  std::vector<std::string> models;
  int64_t size = 224;
  int threads = 2;
  double target_flops = 0.5;
  int64_t round_to = 16;  // oneDNN blocks f32 channels by 16 with AVX-512 (nChw16c)
  std::string criterion = "l1";
  int rounds = 6;
  int iters = 30;
  std::string command;
};

int fail(const Status& s) {
  std::fprintf(stderr, "bench_structured_speedup: %s\n", s.message().c_str());
  return 1;
}

const char* const kUsage =
    "bench_structured_speedup [MODEL.pt ...] [--size 224] [--threads 2] [--target-flops 0.5] [--round-to 16] "
    "[--criterion l1] [--rounds 6] [--iters 30]";

int run(int argc, char** argv) {
  Args a;
  bench::po::options_description options("options");
  options.add_options()
      ("model", bench::po::value(&a.models), "TorchScript image models (.pt), also positional; default: the "
       "resnet18 and mobilenet_v2 fixtures")
      ("size", bench::po::value(&a.size)->default_value(a.size)->notifier(bench::at_least<int64_t>(1, "size")),
       "image height and width")
      ("threads", bench::po::value(&a.threads)->default_value(a.threads)->notifier(bench::at_least(1, "threads")),
       "threads")
      ("target-flops", bench::po::value(&a.target_flops)->default_value(a.target_flops)->notifier([](double f) {
         if (!(f >= 0.0 && f < 1.0)) throw bench::po::error(fmt::format("--target-flops must be in [0, 1), got {}", f));
       }), "fraction of the FLOPs to remove")
      ("round-to", bench::po::value(&a.round_to)->default_value(a.round_to)->notifier(bench::at_least<int64_t>(1, "round-to")),
       "kept channels rounded to a multiple of this")
      ("criterion", bench::po::value(&a.criterion)->default_value(a.criterion), "channel importance criterion")
      ("rounds", bench::po::value(&a.rounds)->default_value(a.rounds)->notifier(bench::at_least(1, "rounds")),
       "alternating rounds")
      ("iters", bench::po::value(&a.iters)->default_value(a.iters)->notifier(bench::at_least(1, "iters")),
       "timed runs of each plan per round");
  bench::po::positional_options_description positional;
  positional.add("model", -1);
  a.command = bench::parse_bench_args(argc, argv, "bench_structured_speedup", kUsage, options, positional).command;
  if (a.models.empty()) {
    for (const char* m : {"resnet18", "mobilenet_v2"}) {
      a.models.push_back(std::string(COMPRESS_TORCH_FIXTURES) + "/" + m + ".pt");
    }
  }
  set_num_threads(a.threads);
  const double load_before = eval::current_load_average();
  std::string table =
      "| model | variant | GFLOPs | params (M) | p50 ms | p90 ms | min ms | speedup (p50) | "
      "max abs diff onednn vs reference |\n"
      "|---|---|---|---|---|---|---|---|---|\n";
  std::string notes;
  for (const std::string& path : a.models) {
    const std::string name = std::filesystem::path(path).stem().string();
    torch::ImportOptions import;
    import.inputs.push_back({"", {1, 3, a.size, a.size}, ir::DType::kF32});
    auto graph = torch::import_file(path, import);
    if (!graph.has_value()) return fail(graph.status());
    ir::Graph pruned = graph->clone();
    prune::StructuredOptions options;
    options.target_flops = a.target_flops;
    options.round_to = a.round_to;
    options.criterion = a.criterion;
    prune::StructuredPrunePass pass(options);
    pass::PassContext context;
    const auto p0 = Clock::now();
    auto result = pass.run(pruned, context);
    if (!result.has_value()) return fail(result.status());
    const double prune_s = std::chrono::duration<double>(Clock::now() - p0).count();

    ir::Tensor input = ir::Tensor::zeros(ir::DType::kF32, {1, 3, a.size, a.size}).value();
    std::mt19937 gen(7);
    std::normal_distribution<float> dist(0.0f, 1.0f);
    for (int64_t i = 0; i < input.numel(); ++i) input.data<float>()[i] = dist(gen);

    struct Variant {
      std::string name;
      const ir::Graph* graph;
      std::unique_ptr<runtime::ExecutionPlan> plan;
      std::vector<double> ms;
      double diff = 0;
    };
    std::vector<Variant> variants;
    variants.push_back({"unpruned", &graph.value(), nullptr, {}, 0});
    variants.push_back({fmt::format("structured, target_flops {}", a.target_flops), &pruned, nullptr, {}, 0});
    for (Variant& v : variants) {
      runtime::OnednnOptions onednn;
      onednn.threads = a.threads;
      auto plan = runtime::make_onednn_backend(onednn)->compile(*v.graph);
      if (!plan.has_value()) return fail(plan.status());
      v.plan = std::move(plan).value();
      auto out = v.plan->run({input});
      auto ref = runtime::run_reference(*v.graph, {input});
      if (!out.has_value()) return fail(out.status());
      if (!ref.has_value()) return fail(ref.status());
      const ir::Tensor& x = out.value()[0];
      const ir::Tensor& y = ref.value()[0];
      for (int64_t i = 0; i < x.numel(); ++i) {
        v.diff = std::max(v.diff, static_cast<double>(std::fabs(x.data<float>()[i] - y.data<float>()[i])));
      }
      for (int i = 0; i < 5; ++i) (void)v.plan->run({input});  // warm-up
    }
    for (int r = 0; r < a.rounds; ++r) {
      for (Variant& v : variants) {
        for (int i = 0; i < a.iters; ++i) {
          const auto t0 = Clock::now();
          (void)v.plan->run({input});
          v.ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
        }
      }
    }
    const double base = eval::percentile(variants[0].ms, 0.5);
    for (const Variant& v : variants) {
      const analysis::ModelStats stats = analysis::compute_model_stats(*v.graph);
      const double p50 = eval::percentile(v.ms, 0.5);
      table += fmt::format("| {} | {} | {:.3f} | {:.2f} | {:.2f} | {:.2f} | {:.2f} | {:.2f}x | {:.2g} |\n", name,
                           v.name, static_cast<double>(stats.flops) / 1e9, static_cast<double>(stats.num_params) / 1e6,
                           p50, eval::percentile(v.ms, 0.9), eval::percentile(v.ms, 0.0), base / p50, v.diff);
    }
    // Output channels of every conv / linear, before -> after.
    std::string channels;
    for (const auto& [layer, stats] : result.value().layers) {
      const auto before = static_cast<int64_t>(stats.at("channels_before"));
      const auto after = static_cast<int64_t>(stats.at("channels_after"));
      if (before != after) channels += fmt::format(" {} {}->{};", layer, before, after);
    }
    const auto& c = result.value().counters;
    notes += fmt::format(
        "- {}: FLOPs {:.3f} -> {:.3f} G ({:.1f}% kept), params {:.2f} -> {:.2f} M; {} groups pruned, {} skipped; "
        "planning + surgery {:.1f} s.\n  Channels:{}\n",
        name, c.at("flops_before") / 1e9, c.at("flops_after") / 1e9, 100.0 * c.at("flops_after") / c.at("flops_before"),
        c.at("params_before") / 1e6, c.at("params_after") / 1e6, c.at("groups_pruned"), c.at("groups_skipped"),
        prune_s, channels);
  }
  std::printf(
      "### Structured pruning speedup (onednn f32, batch 1)\n\n- Command: `%s`\n- Date: %s\n- Machine: %s, %d threads; load average %.1f before, %.1f after (shared machine)\n- oneDNN: %s\n- Input "
      "[1,3,%lld,%lld] N(0,1); prune.structured target_flops %.2f, round_to %lld, criterion %s; %d alternating rounds "
      "x %d runs per variant after 5 warm-up runs\n\n%s\n%s",
      a.command.c_str(), bench::now_utc().c_str(), bench::machine_description().c_str(), a.threads, load_before, eval::current_load_average(),
      runtime::onednn_runtime_info().c_str(), static_cast<long long>(a.size), static_cast<long long>(a.size),
      a.target_flops, static_cast<long long>(a.round_to), a.criterion.c_str(), a.rounds, a.iters, table.c_str(),
      notes.c_str());
  return 0;
}

}  // namespace
}  // namespace compress

int main(int argc, char** argv) { return compress::run(argc, argv); }
