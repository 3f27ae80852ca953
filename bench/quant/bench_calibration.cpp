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
  std::string model, backend_name = "onednn", observer = "minmax";
  int64_t samples = 512, batch = 64;
  int rounds = 2, threads = 2;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        fmt::print(stderr, "bench_calibration: {} needs a value\n", a);
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--samples") samples = std::atoll(next().c_str());
    else if (a == "--batch") batch = std::atoll(next().c_str());
    else if (a == "--backend") backend_name = next();
    else if (a == "--observer") observer = next();
    else if (a == "--rounds") rounds = std::atoi(next().c_str());
    else if (a == "--threads") threads = std::atoi(next().c_str());
    else if (model.empty() && a[0] != '-') model = a;
    else {
      fmt::print(stderr, "usage: bench_calibration MODEL [--samples N] [--batch B] [--backend NAME] [--observer NAME] "
                         "[--rounds R] [--threads T]\n");
      return 2;
    }
  }
  if (model.empty() || samples < 1 || batch < 1 || rounds < 1 || threads < 1) {
    fmt::print(stderr, "usage: bench_calibration MODEL [--samples N] [--batch B] [--backend NAME] [--observer NAME]\n");
    return 2;
  }
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
