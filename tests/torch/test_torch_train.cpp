#include "torch_catch.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <fstream>

#include "compress/ir/sparse_layout.h"
#include "compress/runtime/reference.h"
#include "compress/torch/import.h"
#include "compress/torch/tensor_convert.h"
#include "compress/torch/trainable_model.h"
#include "torch_test_util.h"

using namespace compress;
using compress::torch::TrainableModel;
using compress::test::torch_fixture;

namespace {

std::shared_ptr<TrainableModel> trainable(const std::string& fixture) {
  auto graph = compress::torch::import_file(torch_fixture(fixture + ".pt"));
  REQUIRE(graph.has_value());
  auto model = TrainableModel::create(*graph);
  REQUIRE(model.has_value());
  return *model;
}

// Backpropagates sum(out * w) and compares every parameter's gradient with
// PyTorch's. Bound: relative error < 1e-4 per parameter.
void check_gradients(const std::string& fixture, bool train) {
  auto model = trainable(fixture);
  model->train(train);
  const at::Tensor input = test::load_fixture_aten(fixture + ".input.npy");
  const at::Tensor weights = test::load_fixture_aten(fixture + ".loss_weights.npy");
  at::Tensor out = model->forward(input);
  const auto out_diff = test::compare(out, test::load_fixture_aten(fixture + ".train_output.npy"));
  CHECK(out_diff.relative() < 1e-4);
  (out * weights).sum().backward();

  std::ifstream names_file(torch_fixture(fixture + ".grads.json"));
  const auto names = nlohmann::json::parse(names_file).get<std::vector<std::string>>();
  const auto params = model->named_parameters();
  for (const std::string& name : names) {
    INFO(fixture << " parameter " << name);
    const at::Tensor* param = params.find(name);
    REQUIRE(param != nullptr);
    REQUIRE(param->grad().defined());
    const auto diff = test::compare(param->grad(), test::load_fixture_aten(fixture + ".grad." + name + ".npy"));
    CHECK(diff.relative() < 1e-4);
  }
  CHECK(params.size() == names.size());
}

}  // namespace

TEST_CASE("gradients match PyTorch: CNN with batch norm, eval mode") { check_gradients("grad_cnn_eval", false); }
TEST_CASE("gradients match PyTorch: CNN with batch norm, train mode") { check_gradients("grad_cnn_train", true); }
TEST_CASE("gradients match PyTorch: transformer encoder") { check_gradients("grad_encoder", false); }

TEST_CASE("parameters look like a torch::nn::Module's and train with a LibTorch optimizer") {
  auto model = trainable("grad_cnn_eval");
  const auto named = model->named_parameters();
  CHECK(named.contains("conv1.weight"));
  CHECK(named.contains("bn1.weight"));
  CHECK_FALSE(named.contains("bn1.running_mean"));  // a buffer
  CHECK(model->named_buffers().contains("bn1.running_mean"));
  for (const auto& p : model->parameters()) CHECK(p.requires_grad());

  const at::Tensor input = test::load_fixture_aten("grad_cnn_eval.input.npy");
  const at::Tensor target = at::tensor(std::vector<int64_t>{1, 2, 3, 4});
  ::torch::optim::SGD optimizer(model->parameters(), ::torch::optim::SGDOptions(0.05));
  model->train();
  double first = 0, last = 0;
  for (int step = 0; step < 20; ++step) {
    optimizer.zero_grad();
    at::Tensor loss = at::cross_entropy_loss(model->forward(input), target);
    loss.backward();
    optimizer.step();
    (step == 0 ? first : last) = loss.item<double>();
  }
  CHECK(last < first * 0.5);

  // write_back puts the trained values into the IR; the reference backend
  // then computes what the trainable model computes in eval mode.
  model->eval();
  REQUIRE(model->write_back().is_ok());
  const at::Tensor expected = model->forward(input).detach();
  auto ir_input = compress::torch::from_aten(input).value();
  auto reference = runtime::run_reference(model->graph(), {ir_input});
  REQUIRE(reference.has_value());
  CHECK(test::compare((*reference)[0], compress::torch::from_aten(expected).value()).relative() < 1e-5);
}

TEST_CASE("masked (pruned) weights stay zero and get zero gradient") {
  ir::Graph g;
  ir::Value* x = g.add_input("x", ir::ValueType{ir::DType::kF32, {2, 4}, nullptr}).value();
  ir::Tensor w = ir::Tensor::from_vector(ir::DType::kF32, {3, 4},
                                         std::vector<float>{1, 0, 2, 0, 0, 3, 0, 4, 5, 0, 0, 6});
  ir::Value* wv = g.add_constant("fc.weight", ir::to_mask_layout(w).value()).value();
  g.set_outputs({g.add_node("linear", {x, wv}, {}, "fc").value()->output()});
  auto model = TrainableModel::create(g).value();
  at::Tensor input = at::randn({2, 4});
  model->forward(input).sum().backward();
  const at::Tensor param = *model->named_parameters().find("fc.weight");
  const at::Tensor mask = param.detach().ne(0);
  CHECK(param.grad().masked_select(mask.logical_not()).abs().max().item<float>() == 0.0f);
  // An optimizer step with weight decay would make pruned entries nonzero in
  // the parameter, but the forward pass and write_back keep them at zero.
  {
    ::torch::NoGradGuard guard;
    param.add_(1.0);
  }
  REQUIRE(model->write_back().is_ok());
  const ir::Tensor& updated = model->graph().find_value("fc.weight")->constant();
  CHECK(updated.sparse_layout()->format == ir::SparseFormat::kMask);
  CHECK(updated.sparsity() == Approx(w.sparsity()));
}

TEST_CASE("fake_quant is honoured in forward and backward") {
  ir::Graph g;
  ir::Value* x = g.add_input("x", ir::ValueType{ir::DType::kF32, {1, 6}, nullptr}).value();
  ir::Node* fq = g.add_node("fake_quant", {x},
                            {{"dtype", std::string("u8")}, {"scale", std::vector<double>{0.1}},
                             {"zero_point", std::vector<int64_t>{10}}},
                            "fq")
                     .value();
  g.set_outputs({fq->output()});
  auto model = TrainableModel::create(g).value();
  at::Tensor input = at::tensor(std::vector<float>{-2.0f, -0.5f, 0.04f, 0.05f, 0.15f, 30.0f}).reshape({1, 6});
  input.set_requires_grad(true);
  at::Tensor out = model->forward(input);
  auto reference = runtime::run_reference(g, {compress::torch::from_aten(input.detach()).value()});
  REQUIRE(reference.has_value());
  CHECK(test::compare(out, compress::torch::to_aten((*reference)[0]).value()).max_abs == 0.0);
  out.sum().backward();
  // Straight-through inside [qmin, qmax] in real terms: [-1.0, 24.5]; zero outside.
  const std::vector<float> expected_grad{0, 1, 1, 1, 1, 0};
  for (int i = 0; i < 6; ++i) CHECK(input.grad()[0][i].item<float>() == expected_grad[i]);
}
