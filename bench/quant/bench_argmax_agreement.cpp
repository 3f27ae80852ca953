// How often the int8 model's top-1 class equals the fp32 model's, on inputs it was not calibrated on.
//
//   bench_argmax_agreement MODEL [--calib 128] [--inputs 256] [--batch 32] [--observer minmax] [--threads 2]
//
// For models without a labelled dataset here (torchvision resnet18 /
// mobilenet_v2 with random weights): folds batch norms, runs quant.ptq
// calibrated on --calib random N(0, 1) images, then compares the argmax of
// the fp32 graph (onednn f32) and the int8 graph (onednn int8) on --inputs
// other random images. Prints one Markdown row: agreement rate, how many
// distinct classes the fp32 model predicted (a random-weight network often
// favours a few, which makes agreement easy), the mean relative L2 error of
// the logits, and the f32 and int8 batch-1 latencies (p50 ms) of the same run.
// Header: | model | observer | calib | argmax agreement | fp32 classes | rel. L2 error | f32 ms | int8 ms | speedup |
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <random>
#include <set>
#include <string>

#include "compress/eval/dataset.h"
#include "compress/eval/latency.h"
#include "compress/quant/ptq_pass.h"
#include "compress/runtime/backend.h"
#include "compress/support/logging.h"
#include "compress/support/threads.h"

#include "../bench_options.h"
#include "bench_models.h"

using namespace compress;
using compress::bench::load_model;

namespace {

int fail(const Status& s) {
  fmt::print(stderr, "bench_argmax_agreement: {}\n", s.message());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  namespace po = bench::po;
  const char* const usage =
      "bench_argmax_agreement MODEL [--calib 128] [--inputs 256] [--batch 32] [--observer minmax] [--threads 2]";
  std::string model, observer = "minmax";
  int64_t calib = 128, inputs = 256, batch = 32;
  int threads = 2;
  po::options_description options("options");
  options.add_options()
      ("model", po::value(&model), ".cmf or TorchScript model, also the positional argument")
      ("calib", po::value(&calib)->default_value(calib)->notifier(bench::at_least<int64_t>(1, "calib")),
       "random calibration images")
      ("inputs", po::value(&inputs)->default_value(inputs)->notifier(bench::at_least<int64_t>(1, "inputs")),
       "other random images compared")
      ("batch", po::value(&batch)->default_value(batch)->notifier(bench::at_least<int64_t>(1, "batch")),
       "calibration batch")
      ("observer", po::value(&observer)->default_value(observer), "quant.ptq observer")
      ("threads", po::value(&threads)->default_value(threads)->notifier(bench::at_least(1, "threads")), "threads");
  po::positional_options_description positional;
  positional.add("model", 1);
  bench::parse_bench_args(argc, argv, "bench_argmax_agreement", usage, options, positional);
  if (model.empty()) bench::usage_error("bench_argmax_agreement", usage, "give a model (.cmf or .pt)");
  set_num_threads(threads);
  set_log_level(LogLevel::kWarning);
  Expected<ir::Graph> fp32 = load_model(model);
  if (!fp32.has_value()) return fail(fp32.status());
  auto calib_images = eval::random_inputs(*fp32, calib, 1);
  auto test_images = eval::random_inputs(*fp32, inputs, 2);
  if (!calib_images.has_value() || !test_images.has_value()) return fail(invalid_argument("cannot allocate inputs"));
  auto calib_data = eval::from_tensor(calib_images->at(0), {}, "random calibration images");
  auto test_data = eval::from_tensor(test_images->at(0), {}, "random test images");
  if (!calib_data.has_value() || !test_data.has_value()) return fail(invalid_argument("bad inputs"));

  ir::Graph int8 = fp32->clone();
  quant::PtqPass::Options ptq;
  ptq.observer = observer;
  ptq.samples = calib;
  ptq.batch = batch;
  ptq.calibration_backend = "onednn";
  pass::PassContext context;
  context.progress = false;
  auto result = quant::quantize_ptq(int8, **calib_data, ptq, context);
  if (!result.has_value()) return fail(result.status());

  auto backend = runtime::make_backend("onednn");
  if (!backend.has_value()) return fail(backend.status());
  auto plan_fp32 = (*backend)->compile(*fp32);
  auto plan_int8 = (*backend)->compile(int8);
  if (!plan_fp32.has_value()) return fail(plan_fp32.status());
  if (!plan_int8.has_value()) return fail(plan_int8.status());
  int64_t agree = 0, total = 0;
  std::set<int64_t> fp32_classes;  // a random-weight net may predict few classes: agreement alone can mislead
  double rel_err_sum = 0;
  for (int64_t start = 0; start < inputs; start += batch) {
    const int64_t n = std::min(batch, inputs - start);
    auto b = (*test_data)->batch(start, n);
    if (!b.has_value()) return fail(b.status());
    auto a = (*plan_fp32)->run({b->inputs});
    auto q = (*plan_int8)->run({b->inputs});
    if (!a.has_value()) return fail(a.status());
    if (!q.has_value()) return fail(q.status());
    const ir::Tensor& fa = a->at(0);
    const ir::Tensor& fq = q->at(0);
    const int64_t classes = fa.numel() / n;
    for (int64_t r = 0; r < n; ++r) {
      const float* x = fa.data<float>() + r * classes;
      const float* y = fq.data<float>() + r * classes;
      const int64_t top = std::max_element(x, x + classes) - x;
      agree += top == (std::max_element(y, y + classes) - y);
      fp32_classes.insert(top);
      double num = 0, den = 0;
      for (int64_t c = 0; c < classes; ++c) {
        num += (double(x[c]) - y[c]) * (double(x[c]) - y[c]);
        den += double(x[c]) * x[c];
      }
      rel_err_sum += std::sqrt(num / std::max(den, 1e-30));
      ++total;
    }
  }
  eval::LatencyOptions timing;
  timing.min_time_s = 2.0;
  auto inputs1 = eval::random_inputs(*fp32, 1);
  if (!inputs1.has_value()) return fail(inputs1.status());
  auto lat_fp32 = eval::time_plan(**plan_fp32, *inputs1, timing);
  auto lat_int8 = eval::time_plan(**plan_int8, *inputs1, timing);
  if (!lat_fp32.has_value()) return fail(lat_fp32.status());
  if (!lat_int8.has_value()) return fail(lat_int8.status());
  fmt::print("| {} | {} | {} | {:.1f}% ({}/{}) | {} | {:.4f} | {:.2f} | {:.2f} | {:.2f}x |\n", model, observer, calib,
             100.0 * double(agree) / double(total), agree, total, fp32_classes.size(), rel_err_sum / double(total),
             lat_fp32->p50_ms,
             lat_int8->p50_ms, lat_fp32->p50_ms / lat_int8->p50_ms);
  return 0;
}
