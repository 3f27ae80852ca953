// The Trainer: determinism, learning, optimizers, schedules, clipping, taps against the reference backend, errors.
#include "torch_catch.h"

#include <ATen/ATen.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "compress/eval/activation_probe.h"
#include "compress/eval/dataset.h"
#include "compress/torch/import.h"
#include "compress/torch/tensor_convert.h"
#include "compress/torch/trainable_model.h"
#include "compress/torch/trainer.h"
#include "fashion_data.h"
#include "torch_test_util.h"

using namespace compress;
using compress::torch::CrossEntropyTerm;
using compress::torch::LossTerms;
using compress::torch::OptimizerKind;
using compress::torch::ScheduleKind;
using compress::torch::StepContext;
using compress::torch::TrainableModel;
using compress::torch::Trainer;
using compress::torch::TrainerOptions;

namespace {

// A 784-32-10 MLP with LibTorch's default initialization from `seed`,
// imported from the C++ frontend; its values are named after the children.
std::shared_ptr<TrainableModel> mlp(uint64_t seed) {
  ::torch::manual_seed(seed);
  ::torch::nn::Sequential seq({{"flatten", ::torch::nn::Flatten()},
                               {"fc1", ::torch::nn::Linear(784, 32)},
                               {"relu", ::torch::nn::ReLU()},
                               {"fc2", ::torch::nn::Linear(32, 10)}});
  auto graph = compress::torch::import_sequential(seq, {"image", {1, 1, 28, 28}});
  REQUIRE(graph.has_value());
  auto model = TrainableModel::create(*graph);
  REQUIRE(model.has_value());
  return *model;
}

LossTerms cross_entropy() { return {std::make_shared<CrossEntropyTerm>()}; }

TrainerOptions quiet(int64_t batch, int64_t epochs) {
  TrainerOptions o;
  o.label = "test";
  o.batch = batch;
  o.epochs = epochs;
  o.threads = 1;
  o.progress = false;
  return o;
}

std::vector<double> losses(const compress::torch::TrainResult& r) {
  std::vector<double> out;
  for (const auto& step : r.history) out.push_back(step.loss);
  return out;
}

// Every parameter, detached and copied, by name.
std::map<std::string, at::Tensor> snapshot(const TrainableModel& model) {
  std::map<std::string, at::Tensor> out;
  for (const auto& item : model.named_parameters()) out[item.key()] = item.value().detach().clone();
  return out;
}
std::map<std::string, at::Tensor> gradients(const TrainableModel& model) {
  std::map<std::string, at::Tensor> out;
  for (const auto& item : model.named_parameters()) out[item.key()] = item.value().grad().detach().clone();
  return out;
}
double global_norm(const std::map<std::string, at::Tensor>& tensors) {
  double sum = 0;
  for (const auto& [name, t] : tensors) sum += t.to(at::kDouble).pow(2).sum().item<double>();
  return std::sqrt(sum);
}

// A DataSource with no samples (eval's readers refuse to make one).
class EmptySource : public eval::DataSource {
 public:
  int64_t size() const override { return 0; }
  const ir::Shape& sample_shape() const override { return shape_; }
  bool has_labels() const override { return true; }
  Expected<eval::Batch> batch(int64_t, int64_t) const override { return invalid_argument("no samples"); }
  std::string describe() const override { return "empty-source"; }

 private:
  ir::Shape shape_{1, 28, 28};
};

}  // namespace

TEST_CASE("trainer: a seed and thread count give the same loss curve, another seed another", "[trainer]") {
  auto data = test::fashion_data("train", 160);
  auto run = [&](uint64_t seed, int threads) {
    auto model = mlp(1);
    TrainerOptions o = quiet(16, 2);
    o.seed = seed;
    o.threads = threads;
    auto r = Trainer(o).fit(*model, *data, cross_entropy());
    REQUIRE(r.has_value());
    REQUIRE(r->steps == 20);
    return losses(*r);
  };
  for (int threads : {1, 2}) {
    INFO("threads " << threads);
    const auto a = run(5, threads), b = run(5, threads), c = run(6, threads);
    CHECK(a == b);  // bit-identical
    CHECK(a != c);
    CHECK(a.front() != c.front());  // another shuffle from the first batch on
  }
}

TEST_CASE("trainer: the loss falls on a slice of Fashion-MNIST and throughput is reported", "[trainer]") {
  auto data = test::fashion_data("train", 2000);
  auto model = mlp(3);
  TrainerOptions o = quiet(32, 3);
  o.optimizer.lr = 2e-3;
  o.schedule.kind = ScheduleKind::kCosine;
  auto r = Trainer(o).fit(*model, *data, cross_entropy());
  REQUIRE(r.has_value());
  REQUIRE(r->epochs.size() == 3);
  CHECK(r->steps == 3 * (2000 / 32));
  CHECK(r->samples_seen == r->steps * 32);
  CHECK(r->samples_per_second() > 0);
  CHECK(r->term_names == std::vector<std::string>{"ce"});
  // An untrained 10-class model starts near ln 10.
  CHECK(r->history.front().loss == Approx(std::log(10.0)).epsilon(0.15));
  INFO("epoch losses " << r->epochs[0].loss << ", " << r->epochs[1].loss << ", " << r->epochs[2].loss);
  CHECK(r->epochs[1].loss < r->epochs[0].loss);
  CHECK(r->epochs[2].loss < r->epochs[1].loss);
  CHECK(r->epochs[2].loss < 0.7);
  CHECK(r->epochs[2].terms[0] == Approx(r->epochs[2].loss));
  // The model is left in the mode it had (TrainableModel starts in training mode).
  CHECK(model->is_training());
}

TEST_CASE("trainer: learning-rate schedules follow their formulas", "[trainer]") {
  using compress::torch::LrSchedule;
  using compress::torch::scheduled_lr;
  constexpr double pi = 3.14159265358979323846;
  LrSchedule constant;
  CHECK(scheduled_lr(0.1, constant, 0, 100) == 0.1);
  CHECK(scheduled_lr(0.1, constant, 99, 100) == 0.1);

  LrSchedule cosine;
  cosine.kind = ScheduleKind::kCosine;
  CHECK(scheduled_lr(0.1, cosine, 0, 100) == Approx(0.1));
  CHECK(scheduled_lr(0.1, cosine, 50, 100) == Approx(0.05));
  CHECK(scheduled_lr(0.1, cosine, 25, 100) == Approx(0.1 * 0.5 * (1 + std::cos(pi * 0.25))));
  CHECK(scheduled_lr(0.1, cosine, 99, 100) == Approx(0.1 * 0.5 * (1 + std::cos(pi * 0.99))));

  LrSchedule step;
  step.kind = ScheduleKind::kStep;
  step.step_size = 10;
  step.gamma = 0.5;
  CHECK(scheduled_lr(0.1, step, 9, 100) == Approx(0.1));
  CHECK(scheduled_lr(0.1, step, 10, 100) == Approx(0.05));
  CHECK(scheduled_lr(0.1, step, 35, 100) == Approx(0.0125));

  LrSchedule warm = cosine;
  warm.warmup_steps = 4;
  CHECK(scheduled_lr(0.1, warm, 0, 20) == Approx(0.025));
  CHECK(scheduled_lr(0.1, warm, 3, 20) == Approx(0.1));
  CHECK(scheduled_lr(0.1, warm, 4, 20) == Approx(0.1));  // the cosine starts after the warm-up
  CHECK(scheduled_lr(0.1, warm, 12, 20) == Approx(0.05));
  LrSchedule warm_step = step;
  warm_step.warmup_steps = 5;
  CHECK(scheduled_lr(0.1, warm_step, 14, 100) == Approx(0.1));
  CHECK(scheduled_lr(0.1, warm_step, 15, 100) == Approx(0.05));

  // The optimizer runs at the scheduled rate: plain SGD moves each weight by
  // exactly -lr * grad.
  auto data = test::fashion_data("train", 96);
  for (const LrSchedule& schedule : {warm, warm_step}) {
    auto model = mlp(2);
    TrainerOptions o = quiet(8, 1);
    o.optimizer.kind = OptimizerKind::kSgd;
    o.optimizer.lr = 0.05;
    o.schedule = schedule;
    o.schedule.step_size = 3;
    std::map<std::string, at::Tensor> before, grads;
    std::vector<double> applied;
    compress::torch::TrainerHooks hooks;
    hooks.after_backward = [&](const StepContext&) {
      before = snapshot(*model);
      grads = gradients(*model);
      return Status::ok();
    };
    hooks.after_step = [&](const StepContext& s) {
      const auto after = snapshot(*model);
      for (const auto& [name, w] : after) {
        INFO(name << " at step " << s.step);
        const at::Tensor expected = before.at(name) - grads.at(name) * s.lr;
        CHECK(test::compare(w, expected).max_abs <= 1e-7);
      }
      applied.push_back(s.lr);
      return Status::ok();
    };
    auto r = Trainer(o).fit(*model, *data, cross_entropy(), hooks);
    REQUIRE(r.has_value());
    REQUIRE(applied.size() == 12);
    for (size_t i = 0; i < applied.size(); ++i) {
      CHECK(applied[i] == scheduled_lr(0.05, o.schedule, static_cast<int64_t>(i), 12));
      CHECK(r->history[i].lr == applied[i]);
    }
  }
}

TEST_CASE("trainer: sgd, adam and adamw take the steps their formulas give", "[trainer]") {
  auto data = test::fashion_data("train", 64);
  struct Case {
    const char* name;
    compress::torch::OptimizerOptions options;
  };
  std::vector<Case> cases;
  compress::torch::OptimizerOptions sgd;
  sgd.kind = OptimizerKind::kSgd;
  sgd.lr = 0.05;
  sgd.momentum = 0.9;
  sgd.weight_decay = 0.01;
  cases.push_back({"sgd momentum", sgd});
  sgd.nesterov = true;
  cases.push_back({"sgd nesterov", sgd});
  compress::torch::OptimizerOptions adam;
  adam.kind = OptimizerKind::kAdam;
  adam.lr = 1e-3;
  adam.weight_decay = 0.01;
  adam.beta1 = 0.8;
  cases.push_back({"adam", adam});
  adam.kind = OptimizerKind::kAdamW;
  cases.push_back({"adamw", adam});

  for (const Case& c : cases) {
    INFO(c.name);
    const compress::torch::OptimizerOptions& opt = c.options;
    auto model = mlp(4);
    TrainerOptions o = quiet(16, 1);
    o.optimizer = opt;
    // The optimizer's state, recomputed here in double from the gradients.
    std::map<std::string, at::Tensor> w, m, v;
    int64_t t = 0;
    for (const auto& [name, p] : snapshot(*model)) w[name] = p.to(at::kDouble);
    compress::torch::TrainerHooks hooks;
    hooks.after_backward = [&](const StepContext&) {
      ++t;
      for (const auto& [name, g32] : gradients(*model)) {
        at::Tensor g = g32.to(at::kDouble);
        at::Tensor& wn = w[name];
        if (opt.kind == OptimizerKind::kSgd) {
          g = g + wn * opt.weight_decay;
          m[name] = t == 1 ? g : m[name] * opt.momentum + g;
          wn = wn - (opt.nesterov ? g + m[name] * opt.momentum : m[name]) * opt.lr;
          continue;
        }
        if (opt.kind == OptimizerKind::kAdamW) {
          wn = wn * (1 - opt.lr * opt.weight_decay);
        } else {
          g = g + wn * opt.weight_decay;
        }
        m[name] = t == 1 ? g * (1 - opt.beta1) : m[name] * opt.beta1 + g * (1 - opt.beta1);
        v[name] = t == 1 ? g * g * (1 - opt.beta2) : v[name] * opt.beta2 + g * g * (1 - opt.beta2);
        const at::Tensor m_hat = m[name] / (1 - std::pow(opt.beta1, static_cast<double>(t)));
        const at::Tensor v_hat = v[name] / (1 - std::pow(opt.beta2, static_cast<double>(t)));
        wn = wn - m_hat / (v_hat.sqrt() + opt.eps) * opt.lr;
      }
      return Status::ok();
    };
    hooks.after_step = [&](const StepContext& s) {
      for (const auto& [name, p] : snapshot(*model)) {
        INFO(name << " after step " << s.step);
        const auto diff = test::compare(p.to(at::kDouble), w.at(name));
        CHECK(diff.relative() < 1e-5);
      }
      return Status::ok();
    };
    auto r = Trainer(o).fit(*model, *data, cross_entropy(), hooks);
    REQUIRE(r.has_value());
    CHECK(t == 4);
  }

  // kNone computes gradients for the hooks and never moves a weight.
  auto model = mlp(4);
  const auto before = snapshot(*model);
  TrainerOptions o = quiet(16, 1);
  o.optimizer.kind = OptimizerKind::kNone;
  double grad_norm = 0;
  compress::torch::TrainerHooks hooks;
  hooks.after_backward = [&](const StepContext&) {
    grad_norm += global_norm(gradients(*model));
    return Status::ok();
  };
  REQUIRE(Trainer(o).fit(*model, *data, cross_entropy(), hooks).has_value());
  CHECK(grad_norm > 0);
  for (const auto& [name, p] : snapshot(*model)) CHECK(at::equal(p, before.at(name)));
}

TEST_CASE("trainer: gradient clipping caps the global gradient norm", "[trainer]") {
  auto data = test::fashion_data("train", 64);
  for (double clip : {0.05, 1e6}) {
    INFO("clip " << clip);
    auto model = mlp(5);
    TrainerOptions o = quiet(16, 1);
    o.optimizer.kind = OptimizerKind::kSgd;
    o.optimizer.lr = 1.0;
    o.clip_grad_norm = clip;
    std::map<std::string, at::Tensor> before;
    std::vector<double> norms, moved;
    compress::torch::TrainerHooks hooks;
    hooks.after_backward = [&](const StepContext&) {
      before = snapshot(*model);
      norms.push_back(global_norm(gradients(*model)));
      return Status::ok();
    };
    hooks.after_step = [&](const StepContext&) {
      // With lr 1 and no momentum the step is the clipped gradient itself.
      std::map<std::string, at::Tensor> step;
      for (const auto& [name, p] : snapshot(*model)) step[name] = p - before.at(name);
      moved.push_back(global_norm(step));
      return Status::ok();
    };
    auto r = Trainer(o).fit(*model, *data, cross_entropy(), hooks);
    REQUIRE(r.has_value());
    REQUIRE(moved.size() == 4);
    for (size_t i = 0; i < moved.size(); ++i) {
      INFO("step " << i << ": gradient norm " << norms[i] << ", moved " << moved[i]);
      CHECK(r->history[i].grad_norm == Approx(norms[i]).epsilon(1e-4));
      CHECK(moved[i] == Approx(std::min(norms[i], clip)).epsilon(1e-3));
    }
    if (clip < 1) CHECK(norms[0] > 10 * clip);  // the cap did bite
  }
}

TEST_CASE("trainer: taps equal the reference backend's values of the same IR values", "[trainer]") {
  // The fashion CNN in eval mode (batch norm on running statistics, as the
  // reference backend runs it). Bound: relative error (max |diff| / max |ref|) < 1e-5.
  const ir::Graph graph = test::fashion_cnn();
  auto data = test::fashion_data("test", 24);
  const std::vector<std::string> names = {"bn1", "pool1", "relu2", "flatten", "fc1", "image"};
  auto model = TrainableModel::create(graph);
  REQUIRE(model.has_value());
  (*model)->eval();
  REQUIRE((*model)->set_taps(names).is_ok());
  CHECK((*model)->taps() == names);
  eval::ProbeOptions probe;
  probe.samples = 24;
  probe.batch = 12;
  probe.progress = false;
  int batches = 0;
  const Status status = eval::probe_values(graph, names, *data, probe, [&](const eval::ProbeBatch& b) {
    auto batch = data->batch(b.start, b.count);
    REQUIRE(batch.has_value());
    const at::Tensor images = compress::torch::to_aten(batch->inputs).value();
    ::torch::NoGradGuard no_grad;
    const compress::torch::TappedForward out = (*model)->forward_with_taps({images});
    REQUIRE(out.taps.size() == names.size());
    for (size_t i = 0; i < names.size(); ++i) {
      INFO(names[i] << " in batch " << b.start);
      const at::Tensor* tapped = out.taps.find(names[i]);
      REQUIRE(tapped != nullptr);
      const auto diff = test::compare(compress::torch::from_aten(tapped->contiguous()).value(), *b.values[i]);
      CHECK(diff.max_ref > 0);
      CHECK(diff.relative() < 1e-5);
    }
    // The last tap before the head, run on by hand, gives the model's output.
    const at::Tensor fc2 = at::linear(at::relu(*out.taps.find("fc1")), (*model)->named_parameters()["fc2.weight"],
                                      (*model)->named_parameters()["fc2.bias"]);
    CHECK(test::compare(fc2, out.outputs[0]).relative() < 1e-6);
    ++batches;
    return Status::ok();
  });
  REQUIRE(status.is_ok());
  CHECK(batches == 2);
}

TEST_CASE("trainer: a loss term on a tap trains through it", "[trainer]") {
  // Only an activation penalty on the hidden layer: fc1 shrinks, fc2 (after the tap) gets no gradient.
  auto data = test::fashion_data("train", 64);
  auto model = mlp(6);
  const auto before = snapshot(*model);
  TrainerOptions o = quiet(16, 1);
  o.optimizer.kind = OptimizerKind::kSgd;
  o.optimizer.lr = 0.1;
  LossTerms terms = {compress::torch::make_loss_term(
      "act_l2", 1.0,
      [](const StepContext& s) -> Expected<at::Tensor> {
        COMPRESS_ASSIGN_OR_RETURN(at::Tensor hidden, s.tap("relu"));
        return hidden.pow(2).mean();
      },
      {"relu"})};
  auto r = Trainer(o).fit(*model, *data, terms);
  REQUIRE(r.has_value());
  CHECK(r->history.back().loss < r->history.front().loss);
  const auto after = snapshot(*model);
  CHECK_FALSE(at::equal(after.at("fc1.weight"), before.at("fc1.weight")));
  CHECK(at::equal(after.at("fc2.weight"), before.at("fc2.weight")));
  CHECK(model->taps().empty());  // fit restored the model's own (none)
}

TEST_CASE("trainer: bad input is a clear error naming it", "[trainer]") {
  auto data = test::fashion_data("train", 32);
  auto model = mlp(7);

  // Unknown taps, on the model and through a loss term.
  Status s = model->set_taps({"fc1", "fc9"});
  REQUIRE_FALSE(s.is_ok());
  CHECK(s.code() == StatusCode::kNotFound);
  CHECK_THAT(s.message(), Catch::Contains("'fc9'"));
  CHECK(model->taps().empty());
  s = model->set_taps({"fc1", "fc1"});
  CHECK_THAT(s.message(), Catch::Contains("'fc1' is tapped twice"));
  TrainerOptions o = quiet(16, 1);
  LossTerms bad_tap = {compress::torch::make_loss_term(
      "feature", 1.0, [](const StepContext& st) { return st.tap("fc1"); }, {"hidden_layer"})};
  auto r = Trainer(o).fit(*model, *data, bad_tap);
  REQUIRE_FALSE(r.has_value());
  CHECK_THAT(r.status().message(), Catch::StartsWith("test: ") && Catch::Contains("'hidden_layer'"));
  // A term that reads a value it did not ask for is told which were tapped.
  LossTerms unasked = {compress::torch::make_loss_term(
      "feature", 1.0, [](const StepContext& st) { return st.tap("fc1"); }, {"relu"})};
  r = Trainer(o).fit(*model, *data, unasked);
  REQUIRE_FALSE(r.has_value());
  CHECK_THAT(r.status().message(), Catch::Contains("loss term 'feature' at step 1") && Catch::Contains("'fc1'") &&
                                       Catch::Contains("tapped: relu"));
  // A term whose value is not a scalar.
  LossTerms vector_loss = {compress::torch::make_loss_term(
      "per_sample", 1.0, [](const StepContext& st) -> Expected<at::Tensor> { return st.outputs[0].sum(1); })};
  r = Trainer(o).fit(*model, *data, vector_loss);
  REQUIRE_FALSE(r.has_value());
  CHECK_THAT(r.status().message(), Catch::Contains("'per_sample'") && Catch::Contains("not a scalar"));

  // Empty data.
  EmptySource empty;
  r = Trainer(o).fit(*model, empty, cross_entropy());
  REQUIRE_FALSE(r.has_value());
  CHECK_THAT(r.status().message(), Catch::Contains("empty-source is empty"));

  // A label outside the classes names the label, the sample and the class count.
  std::vector<int64_t> labels(8, 3);
  labels[5] = 12;
  auto bad_label = eval::from_tensor(ir::Tensor::zeros(ir::DType::kF32, {8, 1, 28, 28}).value(), labels, "labels");
  REQUIRE(bad_label.has_value());
  o.shuffle = false;
  r = Trainer(o).fit(*model, **bad_label, cross_entropy());
  REQUIRE_FALSE(r.has_value());
  CHECK_THAT(r.status().message(),
             Catch::Contains("label 12 of sample 5") && Catch::Contains("outside the graph's 10 classes"));
  // Unlabelled data with a cross-entropy term.
  auto unlabelled = eval::from_tensor(ir::Tensor::zeros(ir::DType::kF32, {8, 1, 28, 28}).value(), {}, "unlabelled");
  REQUIRE(unlabelled.has_value());
  r = Trainer(o).fit(*model, **unlabelled, cross_entropy());
  REQUIRE_FALSE(r.has_value());
  CHECK_THAT(r.status().message(), Catch::Contains("needs labels"));

  // Options, each named.
  auto option_error = [&](TrainerOptions bad) {
    auto result = Trainer(bad).fit(*model, *data, cross_entropy());
    REQUIRE_FALSE(result.has_value());
    return result.status().message();
  };
  TrainerOptions bad = quiet(0, 1);
  CHECK_THAT(option_error(bad), Catch::Contains("batch must be >= 1"));
  bad = quiet(8, 1);
  bad.optimizer.lr = 0;
  CHECK_THAT(option_error(bad), Catch::Contains("lr must be"));
  bad = quiet(8, 1);
  bad.optimizer.kind = OptimizerKind::kSgd;
  bad.optimizer.nesterov = true;
  CHECK_THAT(option_error(bad), Catch::Contains("nesterov needs momentum"));
  bad = quiet(8, 1);
  bad.schedule.kind = ScheduleKind::kStep;
  bad.schedule.step_size = 0;
  CHECK_THAT(option_error(bad), Catch::Contains("step_size"));
  bad = quiet(8, 1);
  bad.clip_grad_norm = -1;
  CHECK_THAT(option_error(bad), Catch::Contains("clip_grad_norm"));
  auto no_terms = Trainer(quiet(8, 1)).fit(*model, *data, {});
  REQUIRE_FALSE(no_terms.has_value());
  CHECK_THAT(no_terms.status().message(), Catch::Contains("no loss terms"));
}
