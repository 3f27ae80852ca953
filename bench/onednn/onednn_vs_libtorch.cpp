// Benchmark: the onednn backend (f32, bf16, int8) against LibTorch's frozen TorchScript and PyTorch's FX int8
// on the same model, inputs and threads.
//
//   bench_onednn_vs_libtorch MODEL.pt [MODEL.pt ...] [--batch 1,32] [--size 224] [--threads 2]
//                            [--rounds 5] [--iters 10] [--calib 8] [--append bench/RESULTS.md]
//                            [--fx-script bench/onednn/fx_int8.py] [--python /usr/bin/python3] [--no-fx]
//                            [--f32-adds] [--interleave-runs] [--explain] [--warmup 15]
//
// "compress onednn int8": the imported graph with batch norms folded and
// quant.ptq applied in process (minmax observer: per-tensor u8 activations,
// per-channel s8 weights), calibrated on --calib random N(0,1) inputs of the
// benchmark's input shape, compiled by the onednn backend.
// "compress onednn int8, f32 residual adds" (--f32-adds): the same
// calibration and layer plan converted with Int8Options::quantized_adds off,
// i.e. the int8 graph before residual adds became qadd (Note [Quantized
// residual adds]), for a before/after in one run.
// "PyTorch FX int8": fx_int8.py (FX graph-mode PTQ, default qconfig mapping
// of the onednn quantized engine, same number of calibration inputs, traced
// and frozen), run as a child process once between the interleaved rounds
// for rounds x iters runs; the model's architecture is the file's stem, or the one it records (make_encoder.py).
// A model whose compress_inputs.json (written by
// tests/fixtures/make_torch_fixtures.py) declares an i64 input [N, L] is a
// token model (transformer_encoder): its input is random ids in [0, 100) of
// shape [batch, L], and --size does not apply.
//
// Every variant runs in the same process on the same input, rounds x iters
// runs each: the rounds interleave the variants (so load from other processes
// on a shared machine falls on all of them alike), and within a round a
// variant runs --iters times back to back, as fx_int8.py times FX int8 in its
// own process (--interleave-runs: one run of each in turn, caches cold). Reported: the
// median, p90 and minimum of the per-iteration latencies, and the ratio of
// each median to LibTorch frozen's. "first run" is the onednn compile plus
// its first run; it is not part of the timed iterations.
#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/script.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "../bench_options.h"
#include "../bench_util.h"
#include "child_json.h"
#include "compress/eval/dataset.h"
#include "compress/eval/latency.h"
#include "compress/eval/report.h"
#include "compress/quant/calibration.h"
#include "compress/quant/layer_plan.h"
#include "compress/quant/ptq_pass.h"
#include "compress/runtime/onednn.h"
#include "compress/transforms/fold_batch_norm.h"
#include "compress/support/threads.h"
#include "compress/torch/import.h"

using namespace compress;

namespace {

using Clock = std::chrono::steady_clock;

struct Args {
  std::vector<std::string> models;
  std::vector<int64_t> batches = {1, 32};
  int64_t size = 224;
  int threads = 2;
  int rounds = 5;
  int iters = 10;
  int calib = 8;
  // Untimed runs of each variant first. LibTorch's profiling executor
  // specializes and fuses over its first runs: the transformer encoder at
  // batch 32 took 34-92 ms for each of its first 10 runs, then 0.8-1.1 ms
  // (frozen, 2 threads, torch 1.13).
  int warmup = 15;
  bool fx = true;
  bool f32_adds = false;
  bool interleave_runs = false;
  bool explain = false;  // print each int8 plan (as ctk bench --explain)
  std::string fx_script = "bench/onednn/fx_int8.py";
  std::string python = "/usr/bin/python3";
  std::string append;
  std::string command;
};

const char* const kUsage =
    "bench_onednn_vs_libtorch MODEL.pt [MODEL.pt ...] [--batch 1,32] [--size 224] [--threads 2] [--rounds 5] "
    "[--iters 10] [--warmup 15] [--calib 8] [--append bench/RESULTS.md] [--fx-script bench/onednn/fx_int8.py] "
    "[--python /usr/bin/python3] [--no-fx] [--f32-adds] [--interleave-runs] [--explain]";

Args parse(int argc, char** argv) {
  Args a;
  bench::po::options_description options("options");
  options.add_options()
      ("model", bench::po::value(&a.models), "TorchScript models (.pt), also given as positional arguments")
      ("batch", bench::po::value<std::string>()->default_value("1,32")->notifier([&a](const std::string& s) {
         a.batches = bench::parse_positive_list(s, "batch");
       }), "batch sizes, comma-separated")
      ("size", bench::po::value(&a.size)->default_value(a.size)->notifier(bench::at_least<int64_t>(1, "size")),
       "image height and width (image models)")
      ("threads", bench::po::value(&a.threads)->default_value(a.threads)->notifier(bench::at_least(1, "threads")),
       "threads for every runtime")
      ("rounds", bench::po::value(&a.rounds)->default_value(a.rounds)->notifier(bench::at_least(1, "rounds")),
       "interleaved rounds over the variants")
      ("iters", bench::po::value(&a.iters)->default_value(a.iters)->notifier(bench::at_least(1, "iters")),
       "timed runs of each variant per round")
      ("warmup", bench::po::value(&a.warmup)->default_value(a.warmup)->notifier(bench::at_least(0, "warmup")),
       "untimed runs of each variant first")
      ("calib", bench::po::value(&a.calib)->default_value(a.calib)->notifier(bench::at_least(1, "calib")),
       "random calibration inputs for the int8 variants")
      ("append", bench::po::value(&a.append), "append the table and the command to this markdown file")
      ("fx-script", bench::po::value(&a.fx_script)->default_value(a.fx_script), "PyTorch FX int8 timing script")
      ("python", bench::po::value(&a.python)->default_value(a.python), "the interpreter with torch for --fx-script")
      ("no-fx", "skip PyTorch's FX int8")
      ("f32-adds", bench::po::bool_switch(&a.f32_adds), "also time int8 with f32 residual adds (before qadd)")
      ("interleave-runs", bench::po::bool_switch(&a.interleave_runs), "alternate the variants run by run")
      ("explain", bench::po::bool_switch(&a.explain), "print each int8 plan (as ctk bench --explain)");
  bench::po::positional_options_description positional;
  positional.add("model", -1);
  const bench::BenchCommandLine cl =
      bench::parse_bench_args(argc, argv, "bench_onednn_vs_libtorch", kUsage, options, positional);
  if (a.models.empty()) bench::usage_error("bench_onednn_vs_libtorch", kUsage, "give at least one TorchScript model (.pt)");
  a.fx = cl.vm.count("no-fx") == 0;
  a.command = cl.command;
  return a;
}

struct Variant {
  std::string name;
  std::function<void()> run;
  std::vector<double> ms;
  double first_ms = 0;
};

// The token length L of a model whose compress_inputs.json declares an i64
// input [N, L]; 0 for image models.
int64_t token_length(const std::string& path) {
  ::torch::jit::ExtraFilesMap extra{{"compress_inputs.json", ""}};
  (void)::torch::jit::load(path, c10::nullopt, extra);
  const std::string& json = extra["compress_inputs.json"];
  if (json.find("\"i64\"") == std::string::npos) return 0;
  const size_t shape = json.find("\"shape\": [");
  if (shape == std::string::npos) return 0;
  const size_t comma = json.find(',', shape);
  return comma == std::string::npos ? 0 : std::strtoll(json.c_str() + comma + 1, nullptr, 10);
}

struct FxResult {
  bool ok = false;
  double p50 = 0, p90 = 0, min = 0;
  std::string engine;
  std::string error;
};

FxResult run_fx(const Args& args, const std::string& path, const std::string& arch, int64_t batch, int64_t seq) {
  const std::string command = fmt::format(
      "'{}' '{}' '{}' --arch {} --batch {} --size {}{} --threads {} --runs {} --calib {} --warmup {}", args.python,
      args.fx_script, path, arch, batch, args.size, seq > 0 ? fmt::format(" --seq {}", seq) : std::string(),
      args.threads, args.rounds * args.iters, args.calib, args.warmup);
  FxResult r;
  Expected<nlohmann::json> j = bench::run_for_json(command);
  if (!j.has_value()) {
    r.error = j.status().message();
    return r;
  }
  if (!j->contains("p50_ms")) {
    r.error = "no p50_ms in " + j->dump();
    return r;
  }
  r.p50 = j->value("p50_ms", std::nan(""));
  r.p90 = j->value("p90_ms", std::nan(""));
  r.min = j->value("min_ms", std::nan(""));
  r.engine = j->value("engine", std::string());
  r.ok = std::isfinite(r.p50);
  return r;
}

int run(const Args& args) {
  at::set_num_threads(args.threads);
  set_num_threads(args.threads);
  const double load_before = eval::current_load_average();
  std::string table =
      fmt::format("| model | batch | variant | p50 ms | p90 ms | min ms | p50 / torch frozen | p50 / FX int8 | first run ms |\n");
  table += "|---|---|---|---|---|---|---|---|---|\n";
  std::string notes;
  for (const std::string& path : args.models) {
    const std::string name = std::filesystem::path(path).stem().string();
    const int64_t seq = token_length(path);
    ::torch::jit::Module module = ::torch::jit::load(path);
    module.eval();
    ::torch::jit::Module frozen = ::torch::jit::freeze(module);
    ::torch::jit::Module optimized = ::torch::jit::optimize_for_inference(frozen);
    for (int64_t batch : args.batches) {
      const bool tokens = seq > 0;
      const std::vector<int64_t> shape = tokens ? std::vector<int64_t>{batch, seq}
                                                : std::vector<int64_t>{batch, 3, args.size, args.size};
      const ir::DType in_dtype = tokens ? ir::DType::kI64 : ir::DType::kF32;
      std::normal_distribution<float> dist(0.0f, 1.0f);
      std::uniform_int_distribution<int64_t> ids(0, 99);
      // Random N(0,1) images or token ids in [0, 100).
      auto fill = [&](ir::Tensor& t, std::mt19937& g) {
        for (int64_t i = 0; i < t.numel(); ++i) {
          if (tokens) {
            t.data<int64_t>()[i] = ids(g);
          } else {
            t.data<float>()[i] = dist(g);
          }
        }
      };
      ir::Tensor input = ir::Tensor::zeros(in_dtype, shape).value();
      std::mt19937 gen(7);
      fill(input, gen);
      const at::Tensor torch_input =
          at::from_blob(input.raw_data(), shape, tokens ? at::kLong : at::kFloat).clone();

      compress::torch::ImportOptions import;
      import.inputs.push_back({"", shape, in_dtype});
      auto graph = compress::torch::import_file(path, import);
      if (!graph.has_value()) {
        std::fprintf(stderr, "%s\n", graph.status().to_string().c_str());
        return 1;
      }
      std::vector<Variant> variants;
      c10::InferenceMode guard;
      variants.push_back({"LibTorch frozen", [&] { frozen.forward({torch_input}); }, {}, 0});
      variants.push_back(
          {"LibTorch frozen + optimize_for_inference", [&] { optimized.forward({torch_input}); }, {}, 0});
      std::vector<std::unique_ptr<runtime::ExecutionPlan>> plans;
      // Compiles `g` on onednn, runs it once (the "first run" column: compile
      // + first run) and adds it as a variant; null on failure (reported).
      auto add_onednn_variant = [&](const std::string& label, const ir::Graph& g,
                                    runtime::OnednnCompute compute) -> runtime::ExecutionPlan* {
        runtime::OnednnOptions options;
        options.compute = compute;
        options.threads = args.threads;
        const auto t0 = Clock::now();
        auto plan = runtime::make_onednn_backend(options)->compile(g);
        Status ran = plan.has_value() ? (*plan)->run({input}).status() : plan.status();
        if (!ran.is_ok()) {
          std::fprintf(stderr, "%s: %s\n", label.c_str(), ran.to_string().c_str());
          return nullptr;
        }
        const double first = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        runtime::ExecutionPlan* p = plan->get();
        plans.push_back(std::move(*plan));
        variants.push_back({label, [p, &input] { (void)p->run({input}); }, {}, first});
        return p;
      };
      // args.calib random inputs of this shape, the same for every int8 variant.
      auto calibration_data = [&] {
        std::vector<int64_t> calib_shape = shape;
        calib_shape[0] = batch * args.calib;
        ir::Tensor samples = ir::Tensor::zeros(in_dtype, calib_shape).value();
        std::mt19937 calib_gen(11);
        fill(samples, calib_gen);
        return eval::from_tensor(std::move(samples), {}, "random benchmark inputs").value();
      };
      if (add_onednn_variant("compress onednn f32", *graph, runtime::OnednnCompute::kF32) == nullptr ||
          add_onednn_variant("compress onednn bf16", *graph, runtime::OnednnCompute::kBF16) == nullptr) {
        return 1;
      }
      {
        // int8: fold batch norms, then quant.ptq calibrated on args.calib random inputs of this shape.
        ir::Graph int8_graph = graph->clone();
        auto data = calibration_data();
        quant::PtqPass::Options ptq;
        ptq.observer = "minmax";
        ptq.samples = batch * args.calib;
        ptq.batch = batch;
        ptq.calibration_backend = "onednn";
        pass::PassContext context;
        context.progress = false;
        context.threads = args.threads;
        const auto q0 = Clock::now();
        auto result = quant::quantize_ptq(int8_graph, *data, ptq, context);
        if (!result.has_value()) {
          std::fprintf(stderr, "%s\n", result.status().to_string().c_str());
          return 1;
        }
        const double quantize_ms = std::chrono::duration<double, std::milli>(Clock::now() - q0).count();
        runtime::ExecutionPlan* p =
            add_onednn_variant("compress onednn int8", int8_graph, runtime::OnednnCompute::kF32);
        if (p == nullptr) return 1;
        std::string fallbacks;
        if (auto* onednn = dynamic_cast<runtime::OnednnPlan*>(p)) {
          for (const runtime::OnednnFallback& f : onednn->fallbacks()) fallbacks += " " + f.node + " (" + f.op + ")";
          if (args.explain) std::printf("%s int8, batch %lld:\n%s\n", name.c_str(), static_cast<long long>(batch),
                                        onednn->report().to_string().c_str());
        }
        int qadds = 0, qdq = 0;
        for (const ir::Node* n : int8_graph.nodes()) {
          qadds += n->op() == "qadd";
          qdq += n->op() == "quantize" || n->op() == "dequantize";
        }
        const std::string note = fmt::format(
            "- {} batch {}: int8 graph: {} layers quantized, {} qadd, {} quantize/dequantize; {} calibration samples "
            "({} inputs of {}) in {:.0f} ms; reference fallbacks:{}\n",
            name, batch, result->layers.size(), qadds, qdq, batch * args.calib, args.calib,
            ir::shape_to_string(shape), quantize_ms, fallbacks.empty() ? std::string(" none") : fallbacks);
        std::fputs(note.c_str(), stdout);
        notes += note;
      }
      if (args.f32_adds) {
        // The same PTQ by hand (what quant.ptq does with these options), converted with f32 residual adds.
        ir::Graph before = graph->clone();
        auto data = calibration_data();
        pass::PassContext context;
        context.progress = false;
        context.threads = args.threads;
        transforms::FoldBatchNormPass fold;
        quant::CalibrationOptions copts;
        copts.observer = "minmax";
        copts.samples = batch * args.calib;
        copts.batch = batch;
        copts.backend = "onednn";
        copts.progress = false;
        quant::Int8Options no_qadd;
        no_qadd.quantized_adds = false;
        const auto nodes = [&] {
          (void)fold.run(before, context);
          return quant::quantizable_nodes(before);
        }();
        auto calib = quant::calibrate(before, quant::values_to_observe(before, nodes), *data, copts);
        auto layers = calib.has_value() ? quant::plan_layers(before, nodes, *calib)
                                        : Expected<std::vector<quant::LayerQuant>>(calib.status());
        if (!layers.has_value() || !quant::convert_to_int8(before, *layers, no_qadd).is_ok()) {
          std::fprintf(stderr, "int8 with f32 adds: %s\n", layers.status().to_string().c_str());
          return 1;
        }
        if (add_onednn_variant("compress onednn int8, f32 residual adds", before, runtime::OnednnCompute::kF32) ==
            nullptr) {
          return 1;
        }
      }
      for (int i = 0; i < args.warmup; ++i) {
        for (Variant& v : variants) v.run();  // first LibTorch runs profile and optimize
      }
      // Rounds interleave the variants, so a burst of load from elsewhere
      // lands on all of them, not on whichever was being timed. Within a
      // round each variant runs --iters times back to back, the way a
      // deployed model runs and the way fx_int8.py times PyTorch's int8 path
      // in its own process; --interleave-runs alternates run by run instead,
      // which leaves every variant with caches the previous one evicted.
      FxResult fx;
      const int block = args.interleave_runs ? 1 : args.iters;
      for (int r = 0; r < args.rounds * args.iters; r += block) {
        if (args.fx && r == (args.rounds / 2) * args.iters) fx = run_fx(args, path, name, batch, seq);
        for (Variant& v : variants) {
          for (int i = 0; i < block; ++i) {
            const auto t0 = Clock::now();
            v.run();
            v.ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
          }
        }
      }
      const double base = eval::percentile(variants[0].ms, 0.5);
      auto fx_ratio = [&](double p50) { return fx.ok ? fmt::format("{:.2f}", p50 / fx.p50) : std::string("-"); };
      // Three decimals below a millisecond (the transformer encoder runs in tens of microseconds).
      auto ms = [](double v) { return fmt::format(v < 1.0 ? "{:.3f}" : "{:.2f}", v); };
      for (const Variant& v : variants) {
        const double p50 = eval::percentile(v.ms, 0.5);
        const std::string line =
            fmt::format("| {} | {} | {} | {} | {} | {} | {:.2f} | {} | {} |\n", name, batch, v.name, ms(p50),
                        ms(eval::percentile(v.ms, 0.9)), ms(eval::percentile(v.ms, 0.0)), p50 / base, fx_ratio(p50),
                        v.first_ms > 0 ? fmt::format("{:.0f}", v.first_ms) : std::string("-"));
        std::fputs(line.c_str(), stdout);
        std::fflush(stdout);
        table += line;
      }
      if (args.fx) {
        const std::string line =
            fx.ok ? fmt::format("| {} | {} | PyTorch FX int8 ({} engine{}) | {} | {} | {} | {:.2f} | 1.00 | - |\n",
                                name, batch, fx.engine, fx.engine == "onednn" ? "" : ", onednn engine not available",
                                ms(fx.p50), ms(fx.p90), ms(fx.min), fx.p50 / base)
                  : fmt::format("| {} | {} | PyTorch FX int8 | failed | - | - | - | - | - |\n", name, batch);
        if (!fx.ok) std::fprintf(stderr, "PyTorch FX int8: %s\n", fx.error.c_str());
        std::fputs(line.c_str(), stdout);
        std::fflush(stdout);
        table += line;
      }
    }
  }
  const std::string section = fmt::format(
      "\n## bench_onednn_vs_libtorch — onednn backend vs LibTorch frozen TorchScript\n\n"
      "- Date: {}\n- Machine: {}, {} threads; load average {:.1f} before, {:.1f} after (shared machine)\n"
      "- Runtime: {}; OMP_WAIT_POLICY={}\n- Input: random N(0,1) [batch, 3, {}, {}] (token models: random ids "
      "[batch, L]); {} x {} runs per variant, {}\n"
      "- Command (Release build):\n\n```\n{}\n```\n\n{}\n{}",
      bench::now_utc(), bench::machine_description(), args.threads, load_before,
      eval::current_load_average(),
      runtime::onednn_runtime_info(), std::getenv("OMP_WAIT_POLICY") ? std::getenv("OMP_WAIT_POLICY") : "(unset)",
      args.size, args.size, args.rounds, args.iters,
      args.interleave_runs ? "interleaved run by run" : "rounds interleaved, runs within a round back to back",
      args.command, notes, table);
  std::printf("%s", section.c_str());
  if (!args.append.empty()) {
    std::ofstream out(args.append, std::ios::app);
    out << section;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = parse(argc, argv);
  try {
    return run(args);
  } catch (const c10::Error& e) {  // LibTorch: an unreadable model, say
    std::fprintf(stderr, "bench_onednn_vs_libtorch: %s\n", e.what_without_backtrace());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_onednn_vs_libtorch: %s\n", e.what());
  }
  return 1;
}
