// Calibration cost: quant.ptq's calibration vs the plain f32 forward passes over the same samples.
//
//   bench_calibration MODEL [--samples 512] [--batch 64] [--backend onednn|reference] [--observer minmax]
//                     [--rounds 2] [--threads 2]
//
// MODEL is a .cmf or TorchScript file (with LibTorch). The samples are random
// N(0, 1) images of the model's input shape (the cost does not depend on the
// values). Each round times, on the same backend and threads:
//   forward     compile once, then run every batch of the samples (outputs discarded)
//   calibrate   quant::calibrate() of every value quant.ptq observes: the graph is
//               cloned with those values as extra outputs, compiled and run over
//               the same batches, and each value goes through the observer
// and prints both and their ratio (target: calibrate <= 1.5x forward).
#include <fmt/format.h>

#include <chrono>
#include <cstdlib>
#include <random>
#include <string>

#include "compress/eval/dataset.h"
#include "compress/eval/latency.h"
#include "compress/quant/calibration.h"
#include "compress/quant/layer_plan.h"
#include "compress/runtime/backend.h"
#include "compress/support/logging.h"
#include "compress/support/threads.h"
#include "compress/transforms/fold_batch_norm.h"

#include "../bench_options.h"
#include "bench_models.h"

using namespace compress;
using compress::bench::load_model;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int fail(const Status& s) {
  fmt::print(stderr, "bench_calibration: {}\n", s.message());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  namespace po = bench::po;
  const char* const usage =
      "bench_calibration MODEL [--samples 512] [--batch 64] [--backend onednn|reference] [--observer minmax] "
      "[--rounds 2] [--threads 2]";
  std::string model, backend_name = "onednn", observer = "minmax";
  int64_t samples = 512, batch = 64;
  int rounds = 2, threads = 2;
  po::options_description flags("options");
  flags.add_options()
      ("model", po::value(&model), ".cmf or TorchScript model, also the positional argument")
      ("samples", po::value(&samples)->default_value(samples)->notifier(bench::at_least<int64_t>(1, "samples")),
       "random images calibrated on")
      ("batch", po::value(&batch)->default_value(batch)->notifier(bench::at_least<int64_t>(1, "batch")), "batch size")
      ("backend", po::value(&backend_name)->default_value(backend_name), "onednn | reference")
      ("observer", po::value(&observer)->default_value(observer), "quant.ptq observer")
      ("rounds", po::value(&rounds)->default_value(rounds)->notifier(bench::at_least(1, "rounds")), "rounds")
      ("threads", po::value(&threads)->default_value(threads)->notifier(bench::at_least(1, "threads")), "threads");
  po::positional_options_description positional;
  positional.add("model", 1);
  bench::parse_bench_args(argc, argv, "bench_calibration", usage, flags, positional);
  if (model.empty()) bench::usage_error("bench_calibration", usage, "give a model (.cmf or .pt)");
  set_num_threads(threads);
  set_log_level(LogLevel::kWarning);
  Expected<ir::Graph> graph = load_model(model);
  if (!graph.has_value()) return fail(graph.status());
  // quant.ptq calibrates the graph after batch-norm folding.
  pass::PassContext context;
  transforms::FoldBatchNormPass fold;
  if (auto r = fold.run(*graph, context); !r.has_value()) return fail(r.status());

  Expected<std::vector<ir::Tensor>> images = eval::random_inputs(*graph, samples, 0);
  if (!images.has_value()) return fail(images.status());
  auto data = eval::from_tensor(images->at(0), {}, "random images");
  if (!data.has_value()) return fail(data.status());

  const std::vector<std::string> values = quant::values_to_observe(*graph, quant::quantizable_nodes(*graph));
  quant::CalibrationOptions options;
  options.observer = observer;
  options.samples = samples;
  options.batch = batch;
  options.backend = backend_name;
  options.progress = false;

  fmt::print("{}: {} samples of {}, batch {}, {} backend, {} threads, {} values observed ({})\n", model, samples,
             ir::shape_to_string(graph->inputs().at(0)->shape()), batch, backend_name, threads, values.size(), observer);
  fmt::print("| round | forward s | calibrate s | ratio |\n|---:|---:|---:|---:|\n");
  for (int round = 0; round < rounds; ++round) {
    auto backend = runtime::make_backend(backend_name);
    if (!backend.has_value()) return fail(backend.status());
    auto t0 = std::chrono::steady_clock::now();
    auto plan = (*backend)->compile(*graph);
    if (!plan.has_value()) return fail(plan.status());
    for (int64_t start = 0; start < samples; start += batch) {
      auto b = (*data)->batch(start, std::min(batch, samples - start));
      if (!b.has_value()) return fail(b.status());
      auto out = (*plan)->run({b->inputs});
      if (!out.has_value()) return fail(out.status());
    }
    const double forward_s = seconds_since(t0);
    t0 = std::chrono::steady_clock::now();
    auto calib = quant::calibrate(*graph, values, **data, options);
    if (!calib.has_value()) return fail(calib.status());
    const double calibrate_s = seconds_since(t0);
    fmt::print("| {} | {:.2f} | {:.2f} | {:.2f}x |\n", round + 1, forward_s, calibrate_s, calibrate_s / forward_s);
  }
  return 0;
}
