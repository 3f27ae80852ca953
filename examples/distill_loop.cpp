// Knowledge distillation from a user's own LibTorch loop (the C++ way of distill.kd).
//
// 1. Loads a teacher and a student (.cmf or TorchScript); the student becomes
//    a trainable module (compress::torch::TrainableModel).
// 2. compress::distill::Distiller resolves the value pairs, inserts adapters
//    where shapes differ (their tensors join the student's parameters()) and
//    runs the teacher as an inference plan on onednn.
// 3. A plain torch::optim::Adam loop written here calls distiller.loss(x, y)
//    for each batch: logit KD + the pairs + cross-entropy, one torch tensor.
// 4. Writes the trained student back into its graph (no adapter in it),
//    scores it on 2000 test images on onednn and saves it.
//
//   distill_loop TEACHER STUDENT OUT.cmf [--steps N] [--pair S=T[:LOSS]]
// with Fashion-MNIST from /usr/share/datasets/fashion-mnist (the fixtures' data).
#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "compress/distill/distiller.h"
#include "compress/eval/dataset.h"
#include "compress/eval/metrics.h"
#include "compress/io/cmf.h"
#include "compress/pipeline/model_loading.h"
#include "compress/runtime/backend.h"
#include "compress/torch/tensor_convert.h"

namespace {

constexpr float kMean = 0.2860f;  // the Fashion-MNIST fixtures' normalization
constexpr float kStd = 0.3530f;

int fail(const compress::Status& s) {
  std::fprintf(stderr, "distill_loop: %s\n", s.to_string().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: distill_loop TEACHER STUDENT OUT.cmf [--steps N] [--pair S=T[:LOSS]]...\n");
    return 2;
  }
  const std::string teacher_path = argv[1], student_path = argv[2], out_path = argv[3];
  int64_t steps = 400;
  compress::distill::DistillerOptions options;  // alpha 0.5, T 4, logits
  for (int i = 4; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--steps") {
      steps = std::atoll(argv[i + 1]);
    } else if (flag == "--pair") {
      options.pairs.push_back(argv[i + 1]);
    } else {
      std::fprintf(stderr, "distill_loop: unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  ::torch::manual_seed(0);
  auto teacher = compress::pipeline::load_model(teacher_path);
  if (!teacher.has_value()) return fail(teacher.status());
  auto student_graph = compress::pipeline::load_model(student_path);
  if (!student_graph.has_value()) return fail(student_graph.status());
  auto train = compress::eval::open_dataset("fashion-mnist:train", {{kMean, kStd}, -1});
  auto test = compress::eval::open_dataset("fashion-mnist:test", {{kMean, kStd}, 2000});
  if (!train.has_value()) return fail(train.status());
  if (!test.has_value()) return fail(test.status());

  auto student = compress::torch::TrainableModel::create(*student_graph);
  if (!student.has_value()) return fail(student.status());
  auto distiller = compress::distill::Distiller::create(*teacher, **student, options);
  if (!distiller.has_value()) return fail(distiller.status());
  for (const auto& pair : (*distiller)->pairs()) {
    std::printf("pair %s, adapter: %s\n", pair.label().c_str(), pair.adapter.description().c_str());
  }

  // The user's loop: Adam on the student's parameters (adapters included).
  ::torch::optim::Adam adam((*student)->parameters(), ::torch::optim::AdamOptions(3e-3));
  (*student)->train();
  const int64_t batch = 32;
  for (int64_t step = 0; step < steps; ++step) {
    auto b = (*train)->batch((step * batch) % 59968, batch);
    if (!b.has_value()) return fail(b.status());
    auto x = compress::torch::to_aten(b->inputs);
    if (!x.has_value()) return fail(x.status());
    const at::Tensor labels = ::torch::tensor(b->labels, ::torch::kLong);
    adam.zero_grad();
    auto loss = (*distiller)->loss(*x, labels);
    if (!loss.has_value()) return fail(loss.status());
    loss->total.backward();
    adam.step();
    if ((step + 1) % 100 == 0) {
      std::printf("step %lld: loss %.4f (ce %.4f, kd %.4f)\n", static_cast<long long>(step + 1),
                  loss->total.item<double>(), loss->ce.item<double>(), loss->kd.item<double>());
    }
  }
  (*student)->eval();
  const compress::Status written = (*student)->write_back();
  if (!written.is_ok()) return fail(written);

  auto backend = compress::runtime::make_backend("onednn");
  if (!backend.has_value()) return fail(backend.status());
  auto plan = (*backend)->compile((*student)->graph());
  if (!plan.has_value()) return fail(plan.status());
  auto acc = compress::eval::evaluate_top1(**plan, **test, 250, false);
  if (!acc.has_value()) return fail(acc.status());
  std::printf("student top-1 %.2f%% on 2000 test images after %lld steps\n", acc->top1(),
              static_cast<long long>(steps));
  const compress::Status saved = compress::io::save_cmf((*student)->graph(), out_path);
  if (!saved.is_ok()) return fail(saved);
  std::printf("wrote %s\n", out_path.c_str());
  // A random-init student is at ~10%; 200 steps of distillation reach far more.
  return acc->top1() >= 60.0 ? 0 : 1;
}
