// Quantization-aware training from a user's own LibTorch loop (the C++ way of quant.qat).
//
// 1. Loads an f32 model (.cmf or TorchScript) and prepares it for QAT:
//    compress::quant::QatModel::prepare calibrates the initial ranges, plans
//    the int8 boundaries and returns a trainable module whose parameters()
//    include the learned step sizes.
// 2. Trains it with a plain torch::optim::Adam loop written here (any
//    optimizer and loss would do), calling after_step() after each update.
// 3. Converts to the deployable int8 graph, runs it on onednn against the
//    trained fake-quant module (they must agree), and saves it.
//
//   qat_loop MODEL OUT.cmf [--steps N] [--weight-bits B] [--activation-bits B]
// with Fashion-MNIST data from /usr/share/datasets/fashion-mnist (the fixtures').
#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "compress/eval/dataset.h"
#include "compress/io/cmf.h"
#include "compress/pipeline/model_loading.h"
#include "compress/quant/qat_model.h"
#include "compress/runtime/backend.h"
#include "compress/torch/tensor_convert.h"

namespace {

constexpr float kMean = 0.2860f;  // the Fashion-MNIST fixtures' normalization
constexpr float kStd = 0.3530f;

int fail(const compress::Status& s) {
  std::fprintf(stderr, "qat_loop: %s\n", s.to_string().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: qat_loop MODEL OUT.cmf [--steps N] [--weight-bits B] [--activation-bits B]\n");
    return 2;
  }
  const std::string model_path = argv[1], out_path = argv[2];
  int64_t steps = 300;
  compress::quant::QatOptions options;
  for (int i = 3; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const long long value = std::atoll(argv[i + 1]);
    if (flag == "--steps") {
      steps = value;
    } else if (flag == "--weight-bits") {
      options.weight_bits = value;
    } else if (flag == "--activation-bits") {
      options.activation_bits = value;
    } else {
      std::fprintf(stderr, "qat_loop: unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  ::torch::manual_seed(0);
  auto graph = compress::pipeline::load_model(model_path);
  if (!graph.has_value()) return fail(graph.status());
  auto train = compress::eval::open_dataset("fashion-mnist:train", {{kMean, kStd}, -1});
  auto test = compress::eval::open_dataset("fashion-mnist:test", {{kMean, kStd}, 2000});
  if (!train.has_value()) return fail(train.status());
  if (!test.has_value()) return fail(test.status());

  // 1. Prepare: calibration on 512 training images, then the learned quantizers.
  auto qat = compress::quant::QatModel::prepare(*graph, **train, options);
  if (!qat.has_value()) return fail(qat.status());
  compress::torch::TrainableModel& module = (*qat)->module();
  (*qat)->freeze_batch_norm();  // running statistics: the deployed model's batch norm

  // 2. The user's loop: Adam on every parameter, scales included, cross-entropy.
  ::torch::optim::Adam adam(module.parameters(), ::torch::optim::AdamOptions(1e-4));
  module.train();
  const int64_t batch = 32;
  for (int64_t step = 0; step < steps; ++step) {
    auto b = (*train)->batch((step * batch) % 59968, batch);
    if (!b.has_value()) return fail(b.status());
    auto x = compress::torch::to_aten(b->inputs);
    if (!x.has_value()) return fail(x.status());
    const at::Tensor labels = ::torch::tensor(b->labels, ::torch::kLong);
    adam.zero_grad();
    const at::Tensor loss = ::torch::nn::functional::cross_entropy(module.forward(*x), labels);
    loss.backward();
    adam.step();
    const compress::Status ok = (*qat)->after_step(step);
    if (!ok.is_ok()) return fail(ok);
    if ((step + 1) % 100 == 0) std::printf("step %lld: loss %.4f\n", static_cast<long long>(step + 1), loss.item<double>());
  }
  module.eval();

  // 3. Convert, check sim = deploy on the test images, save.
  auto int8 = (*qat)->convert();
  if (!int8.has_value()) return fail(int8.status());
  auto backend = compress::runtime::make_backend("onednn");
  if (!backend.has_value()) return fail(backend.status());
  auto plan = (*backend)->compile(*int8);
  if (!plan.has_value()) return fail(plan.status());
  auto b = (*test)->batch(0, 2000);
  if (!b.has_value()) return fail(b.status());
  auto deployed = (*plan)->run({b->inputs});
  if (!deployed.has_value()) return fail(deployed.status());
  auto x = compress::torch::to_aten(b->inputs);
  auto d = compress::torch::to_aten((*deployed)[0]);
  if (!x.has_value() || !d.has_value()) return fail(compress::invalid_argument("tensor conversion failed"));
  const at::Tensor sim = module.forward(*x).detach();
  const at::Tensor labels = ::torch::tensor(b->labels, ::torch::kLong);
  const int64_t agree = sim.argmax(1).eq(d->argmax(1)).sum().item<int64_t>();
  const double top1 = 100.0 * d->argmax(1).eq(labels).sum().item<double>() / 2000.0;
  std::printf("int8 top-1 %.2f%% on 2000 test images; fake-quant and int8 agree on %lld/2000\n", top1,
              static_cast<long long>(agree));
  const compress::Status saved = compress::io::save_cmf(*int8, out_path);
  if (!saved.is_ok()) return fail(saved);
  std::printf("wrote %s\n", out_path.c_str());
  return agree >= 1998 ? 0 : 1;
}
