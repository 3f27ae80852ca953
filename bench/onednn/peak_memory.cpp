// Benchmark: peak resident memory of one model run at a batch size, LibTorch frozen TorchScript against the
// onednn backend (f32, and int8 after PTQ), each in a fresh process so that one's peak does not hide the other's.
//
//   bench_peak_memory MODEL.pt [--batch 32] [--size 224] [--threads 2] [--runs 2] [--append bench/RESULTS.md]
//
// The parent imports MODEL.pt once, writes it as a temporary .cmf (f32, and
// the int8 graph: batch norms folded, quant.ptq minmax on 2 random batches),
// then runs itself once per runtime with --child RUNTIME. A child loads only
// what its runtime needs (LibTorch: torch::jit::load + freeze; onednn: the
// .cmf), runs --runs forward passes on random N(0,1) input [batch, 3, size,
// size] with --threads threads, and prints its VmHWM (peak resident set) and
// its resident set before the first run (model and runtime loaded). Every
// child links the same libraries, so the difference is what each runtime
// allocates. The onednn figure includes the plan compile() builds for the
// shape it was saved with (batch 1) and the plan for --batch.
#include <ATen/Parallel.h>
#include <unistd.h>
#include <fmt/format.h>
#include <torch/script.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "../bench_options.h"
#include "child_json.h"
#include "compress/eval/dataset.h"
#include "compress/eval/latency.h"
#include "compress/io/cmf.h"
#include "compress/quant/ptq_pass.h"
#include "compress/runtime/onednn.h"
#include "compress/support/threads.h"
#include "compress/torch/import.h"

using namespace compress;

namespace {

struct Args {
  std::string model;
  int64_t batch = 32;
  int64_t size = 224;
  int threads = 2;
  int runs = 2;
  std::string child;  // libtorch | onednn (internal)
  std::string cmf;    // the child's .cmf (internal)
  std::string append;
  std::string command;
};

const char* const kUsage =
    "bench_peak_memory MODEL.pt [--batch 32] [--size 224] [--threads 2] [--runs 2] [--append bench/RESULTS.md]";

Args parse(int argc, char** argv) {
  Args a;
  namespace po = bench::po;
  po::options_description options("options");
  options.add_options()
      ("model", po::value(&a.model), "TorchScript image model (.pt), also the positional argument")
      ("batch", po::value(&a.batch)->default_value(a.batch)->notifier(bench::at_least<int64_t>(1, "batch")), "batch size")
      ("size", po::value(&a.size)->default_value(a.size)->notifier(bench::at_least<int64_t>(1, "size")),
       "image height and width")
      ("threads", po::value(&a.threads)->default_value(a.threads)->notifier(bench::at_least(1, "threads")), "threads")
      ("runs", po::value(&a.runs)->default_value(a.runs)->notifier(bench::at_least(1, "runs")),
       "forward passes per runtime")
      ("append", po::value(&a.append), "append the table and the command to this markdown file")
      ("child", po::value(&a.child), "internal: run one runtime (libtorch | onednn, the latter on --cmf)")
      ("cmf", po::value(&a.cmf), "internal: the child's .cmf");
  po::positional_options_description positional;
  positional.add("model", 1);
  a.command = bench::parse_bench_args(argc, argv, "bench_peak_memory", kUsage, options, positional, {"child", "cmf"})
                  .command;
  if (a.model.empty()) bench::usage_error("bench_peak_memory", kUsage, "give a TorchScript image model (.pt)");
  return a;
}

std::vector<float> random_images(const Args& a) {
  std::vector<float> x(static_cast<size_t>(a.batch * 3 * a.size * a.size));
  std::mt19937 gen(7);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (float& v : x) v = dist(gen);
  return x;
}

int run_child(const Args& a) {
  at::set_num_threads(a.threads);
  set_num_threads(a.threads);
  std::vector<float> images = random_images(a);
  double before = 0;
  if (a.child == "libtorch") {
    ::torch::jit::Module module = ::torch::jit::load(a.model);
    module.eval();
    ::torch::jit::Module frozen = ::torch::jit::freeze(module);
    c10::InferenceMode guard;
    const at::Tensor x = at::from_blob(images.data(), {a.batch, 3, a.size, a.size}, at::kFloat);
    before = eval::current_rss_mb();
    for (int r = 0; r < a.runs; ++r) (void)frozen.forward({x});
  } else {
    auto graph = io::load_cmf(a.cmf);
    if (!graph.has_value()) {
      std::fprintf(stderr, "%s\n", graph.status().to_string().c_str());
      return 1;
    }
    runtime::OnednnOptions options;
    options.threads = a.threads;
    auto plan = runtime::make_onednn_backend(options)->compile(*graph);
    if (!plan.has_value()) {
      std::fprintf(stderr, "%s\n", plan.status().to_string().c_str());
      return 1;
    }
    ir::Tensor x = ir::Tensor::zeros(ir::DType::kF32, {a.batch, 3, a.size, a.size}).value();
    std::copy(images.begin(), images.end(), x.data<float>());
    before = eval::current_rss_mb();
    for (int r = 0; r < a.runs; ++r) {
      auto out = (*plan)->run({x});
      if (!out.has_value()) {
        std::fprintf(stderr, "%s\n", out.status().to_string().c_str());
        return 1;
      }
    }
  }
  std::printf("{\"peak_rss_mb\": %.1f, \"rss_before_run_mb\": %.1f}\n", eval::peak_rss_mb(), before);
  return 0;
}

struct ChildResult {
  bool ok = false;
  double peak = 0, before = 0;
  std::string error;
};

ChildResult spawn(const Args& a, const std::string& runtime, const std::string& cmf) {
  const std::string command =
      fmt::format("'/proc/{}/exe' '{}' --child {} --cmf '{}' --batch {} --size {} --threads {} --runs {}", ::getpid(),
                  a.model, runtime, cmf, a.batch, a.size, a.threads, a.runs);
  ChildResult r;
  Expected<nlohmann::json> j = bench::run_for_json(command);
  if (!j.has_value()) {
    r.error = j.status().message();
    return r;
  }
  r.peak = j->value("peak_rss_mb", 0.0);
  r.before = j->value("rss_before_run_mb", 0.0);
  r.ok = r.peak > 0;
  if (!r.ok) r.error = "no peak_rss_mb in " + j->dump();
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = parse(argc, argv);
  if (!args.child.empty()) {
    try {
      return run_child(args);
    } catch (const c10::Error& e) {  // LibTorch: a model it cannot load, say; the parent reports the output
      std::fprintf(stderr, "bench_peak_memory child %s: %s\n", args.child.c_str(), e.what_without_backtrace());
      return 1;
    }
  }

  // The .cmf files the onednn children load: f32 as imported, and int8.
  compress::torch::ImportOptions import;
  import.inputs.push_back({"", {1, 3, args.size, args.size}, ir::DType::kF32});
  auto graph = compress::torch::import_file(args.model, import);
  if (!graph.has_value()) {
    std::fprintf(stderr, "%s\n", graph.status().to_string().c_str());
    return 1;
  }
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / fmt::format("compress_peak_memory_{}", ::getpid());
  std::filesystem::create_directories(dir);
  const std::string f32_cmf = (dir / "f32.cmf").string(), int8_cmf = (dir / "int8.cmf").string();
  ir::Graph int8 = graph->clone();
  Args calib_shape = args;
  calib_shape.batch = 2;
  std::vector<float> calib = random_images(calib_shape);
  ir::Tensor samples = ir::Tensor::zeros(ir::DType::kF32, {2, 3, args.size, args.size}).value();
  std::copy(calib.begin(), calib.end(), samples.data<float>());
  auto data = eval::from_tensor(std::move(samples), {}, "random calibration images").value();
  quant::PtqPass::Options ptq;
  ptq.samples = 2;
  ptq.batch = 1;
  ptq.calibration_backend = "onednn";
  pass::PassContext context;
  context.progress = false;
  auto quantized = quant::quantize_ptq(int8, *data, ptq, context);
  Status saved = io::save_cmf(*graph, f32_cmf);
  if (saved.is_ok() && quantized.has_value()) saved = io::save_cmf(int8, int8_cmf);
  if (!quantized.has_value() || !saved.is_ok()) {
    std::fprintf(stderr, "%s\n", (quantized.has_value() ? saved : quantized.status()).to_string().c_str());
    std::filesystem::remove_all(dir);
    return 1;
  }

  std::string table = "| runtime | peak RSS MB | RSS before the first run MB | peak / LibTorch |\n|---|---|---|---|\n";
  double base = 0;
  int failures = 0;
  for (const auto& [runtime, cmf, label] :
       {std::tuple{std::string("libtorch"), std::string(), std::string("LibTorch frozen TorchScript f32")},
        std::tuple{std::string("onednn"), f32_cmf, std::string("compress onednn f32")},
        std::tuple{std::string("onednn"), int8_cmf, std::string("compress onednn int8")}}) {
    const ChildResult r = spawn(args, runtime, cmf);
    if (!r.ok) {
      std::fprintf(stderr, "%s failed: %s\n", label.c_str(), r.error.c_str());
      ++failures;
      continue;
    }
    if (runtime == "libtorch") base = r.peak;
    table += fmt::format("| {} | {:.1f} | {:.1f} | {} |\n", label, r.peak, r.before,
                         base > 0 ? fmt::format("{:.2f}", r.peak / base) : std::string("-"));
  }
  std::filesystem::remove_all(dir);
  const std::string section = fmt::format(
      "\n## bench_peak_memory — peak resident memory, {} at batch {} ({}x{}), {} threads, {} runs\n\n"
      "- Runtime: {}; OMP_WAIT_POLICY={}\n- Command (Release build):\n\n```\n{}\n```\n\n{}",
      std::filesystem::path(args.model).stem().string(), args.batch, args.size, args.size, args.threads, args.runs,
      runtime::onednn_runtime_info(), std::getenv("OMP_WAIT_POLICY") ? std::getenv("OMP_WAIT_POLICY") : "(unset)",
      args.command, table);
  std::printf("%s", section.c_str());
  if (!args.append.empty()) {
    std::ofstream out(args.append, std::ios::app);
    out << section;
  }
  return failures == 0 ? 0 : 1;
}
