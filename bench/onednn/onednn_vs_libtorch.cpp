// Benchmark: the onednn backend (f32, bf16) against LibTorch's frozen TorchScript on the same model, inputs and
// threads.
//
//   bench_onednn_vs_libtorch MODEL.pt [MODEL.pt ...] [--batch 1,32] [--size 224] [--threads 2]
//                            [--rounds 5] [--iters 10] [--append bench/RESULTS.md]
//
// Every variant runs in the same process on the same input, interleaved run
// by run (rounds x iters runs each), so load from other processes on a
// shared machine falls on all of them alike. Reported: the
// median, p90 and minimum of the per-iteration latencies, and the ratio of
// each median to LibTorch frozen's. "first run" is the onednn compile plus
// its first run; it is not part of the timed iterations.
#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/script.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "compress/runtime/onednn.h"
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
  std::string append;
  std::string command;
};

std::vector<int64_t> parse_list(const std::string& text) {
  std::vector<int64_t> out;
  size_t at = 0;
  while (at <= text.size()) {
    const size_t comma = text.find(',', at);
    out.push_back(std::stoll(text.substr(at, comma == std::string::npos ? std::string::npos : comma - at)));
    if (comma == std::string::npos) break;
    at = comma + 1;
  }
  return out;
}

Args parse(int argc, char** argv) {
  Args a;
  a.command = "bench_onednn_vs_libtorch";
  for (int i = 1; i < argc; ++i) {
    const std::string s = argv[i];
    a.command += " " + s;
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error("missing value after " + s);
      a.command += std::string(" ") + argv[i + 1];
      return argv[++i];
    };
    if (s == "--batch") {
      a.batches = parse_list(next());
    } else if (s == "--size") {
      a.size = std::stoll(next());
    } else if (s == "--threads") {
      a.threads = std::stoi(next());
    } else if (s == "--rounds") {
      a.rounds = std::stoi(next());
    } else if (s == "--iters") {
      a.iters = std::stoi(next());
    } else if (s == "--append") {
      a.append = next();
    } else if (!s.empty() && s[0] == '-') {
      throw std::runtime_error("unknown option " + s);
    } else {
      a.models.push_back(s);
    }
  }
  if (a.models.empty()) throw std::runtime_error("give at least one TorchScript model (.pt)");
  return a;
}

struct Variant {
  std::string name;
  std::function<void()> run;
  std::vector<double> ms;
  double first_ms = 0;
};

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5));
  return v[i];
}

std::string now_utc() {
  const std::time_t t = std::time(nullptr);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", std::gmtime(&t));
  return buf;
}

double load_average() {
  std::ifstream in("/proc/loadavg");
  double l = 0;
  in >> l;
  return l;
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  try {
    args = parse(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_onednn_vs_libtorch: %s\n", e.what());
    return 2;
  }
  at::set_num_threads(args.threads);
  set_num_threads(args.threads);
  const double load_before = load_average();
  std::string table =
      fmt::format("| model | batch | variant | p50 ms | p90 ms | min ms | p50 / torch frozen | first run ms |\n");
  table += "|---|---|---|---|---|---|---|---|\n";
  for (const std::string& path : args.models) {
    const std::string name = std::filesystem::path(path).stem().string();
    ::torch::jit::Module module = ::torch::jit::load(path);
    module.eval();
    ::torch::jit::Module frozen = ::torch::jit::freeze(module);
    ::torch::jit::Module optimized = ::torch::jit::optimize_for_inference(frozen);
    for (int64_t batch : args.batches) {
      const std::vector<int64_t> shape = {batch, 3, args.size, args.size};
      ir::Tensor input = ir::Tensor::zeros(ir::DType::kF32, shape).value();
      std::mt19937 gen(7);
      std::normal_distribution<float> dist(0.0f, 1.0f);
      for (int64_t i = 0; i < input.numel(); ++i) input.data<float>()[i] = dist(gen);
      const at::Tensor torch_input = at::from_blob(input.data<float>(), shape, at::kFloat).clone();

      compress::torch::ImportOptions import;
      import.inputs.push_back({"", shape, ir::DType::kF32});
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
      for (runtime::OnednnCompute compute : {runtime::OnednnCompute::kF32, runtime::OnednnCompute::kBF16}) {
        runtime::OnednnOptions options;
        options.compute = compute;
        options.threads = args.threads;
        const auto t0 = Clock::now();
        auto plan = runtime::make_onednn_backend(options)->compile(*graph);
        if (!plan.has_value()) {
          std::fprintf(stderr, "%s\n", plan.status().to_string().c_str());
          return 1;
        }
        runtime::ExecutionPlan* p = plan->get();
        if (!p->run({input}).has_value()) return 1;
        const double first = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        plans.push_back(std::move(*plan));
        variants.push_back({compute == runtime::OnednnCompute::kF32 ? "compress onednn f32" : "compress onednn bf16",
                            [p, &input] { (void)p->run({input}); },
                            {},
                            first});
      }
      for (Variant& v : variants) v.run();  // warm-up (first LibTorch runs profile and optimize)
      for (Variant& v : variants) v.run();
      // One run of each variant in turn: a burst of load from elsewhere
      // lands on all of them, not on whichever was being timed.
      for (int r = 0; r < args.rounds * args.iters; ++r) {
        for (Variant& v : variants) {
          const auto t0 = Clock::now();
          v.run();
          v.ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
        }
      }
      const double base = percentile(variants[0].ms, 0.5);
      for (const Variant& v : variants) {
        const double p50 = percentile(v.ms, 0.5);
        const std::string line = fmt::format("| {} | {} | {} | {:.2f} | {:.2f} | {:.2f} | {:.2f} | {} |\n", name, batch,
                                             v.name, p50, percentile(v.ms, 0.9), percentile(v.ms, 0.0), p50 / base,
                                             v.first_ms > 0 ? fmt::format("{:.0f}", v.first_ms) : std::string("-"));
        std::fputs(line.c_str(), stdout);
        std::fflush(stdout);
        table += line;
      }
    }
  }
  const std::string section = fmt::format(
      "\n## bench_onednn_vs_libtorch — onednn backend vs LibTorch frozen TorchScript\n\n"
      "- Date: {}\n- Machine: {} ({}), {} threads; load average {:.1f} before, {:.1f} after (shared machine)\n"
      "- Runtime: {}; OMP_WAIT_POLICY={}\n- Input: random N(0,1) [batch, 3, {}, {}]; {} x {} runs per variant, "
      "interleaved run by run\n"
      "- Command (Release build):\n\n```\n{}\n```\n\n{}",
      now_utc(), "2-core AMD EPYC Zen 4", "AVX-512, VNNI, BF16", args.threads, load_before, load_average(),
      runtime::onednn_runtime_info(), std::getenv("OMP_WAIT_POLICY") ? std::getenv("OMP_WAIT_POLICY") : "(unset)",
      args.size, args.size, args.rounds, args.iters, args.command, table);
  std::printf("%s", section.c_str());
  if (!args.append.empty()) {
    std::ofstream out(args.append, std::ios::app);
    out << section;
  }
  return 0;
}
