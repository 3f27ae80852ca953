// Sim = deploy for quant.qat: the trained fake-quant module against the converted int8 graph on onednn, all test images.
//
//   bench_qat_sim_deploy MODEL.cmf [--steps N] [--weight-bits B] [--activation-bits B]
//
// Prepares MODEL for QAT (512 calibration images), trains N steps (default 1875, one epoch of
// Fashion-MNIST at batch 32) with the pass's loop (torch::Trainer, Adam 1e-4 cosine, CE), converts,
// and runs the 10,000 test images through both in batches of 500. Prints the class agreement and the
// largest logit difference, next to the quantization step of the last layer's f32 output for scale.
#include <ATen/ATen.h>
#include <fmt/format.h>

#include <cstdlib>
#include <string>

#include "compress/eval/dataset.h"
#include "compress/io/cmf.h"
#include "compress/quant/qat_model.h"
#include "compress/runtime/backend.h"
#include "compress/torch/tensor_convert.h"
#include "compress/torch/trainer.h"

using namespace compress;

int main(int argc, char** argv) {
  if (argc < 2) {
    fmt::print(stderr, "usage: bench_qat_sim_deploy MODEL.cmf [--steps N] [--weight-bits B] [--activation-bits B]\n");
    return 2;
  }
  int64_t steps = 1875;
  quant::QatOptions options;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const int64_t v = std::atoll(argv[i + 1]);
    if (flag == "--steps") steps = v;
    else if (flag == "--weight-bits") options.weight_bits = v;
    else if (flag == "--activation-bits") options.activation_bits = v;
    else return 2;
  }
  auto fail = [](const Status& s) {
    fmt::print(stderr, "bench_qat_sim_deploy: {}\n", s.to_string());
    return 1;
  };
  auto graph = io::load_cmf(argv[1]);
  if (!graph.has_value()) return fail(graph.status());
  const eval::Normalization norm{0.2860f, 0.3530f};
  auto train = eval::open_dataset("fashion-mnist:train", {norm, -1});
  auto test = eval::open_dataset("fashion-mnist:test", {norm, -1});
  if (!train.has_value()) return fail(train.status());
  if (!test.has_value()) return fail(test.status());
  auto qat = quant::QatModel::prepare(*graph, **train, options, false);
  if (!qat.has_value()) return fail(qat.status());
  (*qat)->freeze_batch_norm();
  compress::torch::TrainerOptions t;
  t.label = "qat";
  t.steps = steps;
  t.progress = false;
  t.optimizer.lr = 1e-4;
  t.schedule.kind = compress::torch::ScheduleKind::kCosine;
  compress::torch::TrainerHooks hooks;
  hooks.after_step = [&](const compress::torch::StepContext& s) { return (*qat)->after_step(s.step); };
  auto fit = compress::torch::Trainer(t).fit((*qat)->module(), **train,
                                             {std::make_shared<compress::torch::CrossEntropyTerm>()}, hooks);
  if (!fit.has_value()) return fail(fit.status());
  (*qat)->module().eval();
  auto int8 = (*qat)->convert();
  if (!int8.has_value()) return fail(int8.status());
  auto backend = runtime::make_backend("onednn");
  if (!backend.has_value()) return fail(backend.status());
  auto plan = (*backend)->compile(*int8);
  if (!plan.has_value()) return fail(plan.status());
  int64_t agree = 0, correct_sim = 0, correct_int8 = 0, n = 0;
  double max_diff = 0.0, max_logit = 0.0;
  for (int64_t start = 0; start < (*test)->size(); start += 500) {
    auto b = (*test)->batch(start, 500);
    if (!b.has_value()) return fail(b.status());
    auto out = (*plan)->run({b->inputs});
    if (!out.has_value()) return fail(out.status());
    const at::Tensor deployed = compress::torch::to_aten((*out)[0]).value();
    const at::Tensor sim = (*qat)->module().forward(compress::torch::to_aten(b->inputs).value()).detach();
    const at::Tensor labels = at::tensor(b->labels, at::kLong);
    agree += sim.argmax(1).eq(deployed.argmax(1)).sum().item<int64_t>();
    correct_sim += sim.argmax(1).eq(labels).sum().item<int64_t>();
    correct_int8 += deployed.argmax(1).eq(labels).sum().item<int64_t>();
    max_diff = std::max(max_diff, (sim - deployed).abs().max().item<double>());
    max_logit = std::max(max_logit, deployed.abs().max().item<double>());
    n += b->labels.size();
  }
  // The last layer's input step times its largest |weight| row sum bounds what one flipped input step moves a logit.
  auto learned = (*qat)->learned_layers();
  if (!learned.has_value()) return fail(learned.status());
  const quant::LayerQuant& last = learned->back();
  fmt::print("{}: W{}A{}, {} QAT steps; on {} test images: classes agree {}/{}, top-1 fake-quant {:.2f}% int8 {:.2f}%, "
             "max |logit difference| {:.3g} (largest |logit| {:.3g}; last layer '{}' input step {:.3g})\n",
             argv[1], options.weight_bits, options.activation_bits, steps, n, agree, n, 100.0 * correct_sim / n,
             100.0 * correct_int8 / n, max_diff, max_logit, last.node, last.input_params.scales()[0]);
  return 0;
}
