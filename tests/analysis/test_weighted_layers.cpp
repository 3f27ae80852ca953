// The weighted-layer view (analysis/weighted_layers.h) and the activation probe (eval/activation_probe.h).
#include <catch2/catch.hpp>

#include <vector>

#include "compress/analysis/weighted_layers.h"
#include "compress/eval/activation_probe.h"
#include "compress/eval/dataset.h"
#include "compress/ir/sparse_layout.h"
#include "compress/runtime/reference.h"

using namespace compress;

namespace {

ir::Tensor ramp(const ir::Shape& shape, float scale) {
  std::vector<float> v(static_cast<size_t>(ir::numel(shape)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = scale * static_cast<float>((static_cast<int64_t>(i) * 7) % 13 - 6);
  return ir::Tensor::from_vector(ir::DType::kF32, shape, v);
}

// x [N,2,4,4] -> conv (constant weight and bias) -> relu -> flatten -> linear
// (constant weight) -> matmul with a constant [5,3] -> matmul with a
// constant [3,3] -> matmul with a computed operand (not a weighted layer).
struct Net {
  ir::Graph g;
  ir::Node *conv, *relu, *linear, *matmul, *square;
};

Net make_net() {
  Net n;
  ir::ValueType image;
  image.shape = {2, 2, 4, 4};
  ir::Graph& g = n.g;
  ir::Value* x = value_or_throw(g.add_input("x", image));
  ir::Value* cw = value_or_throw(g.add_constant("conv.weight", ramp({3, 2, 3, 3}, 0.1f)));
  ir::Value* cb = value_or_throw(g.add_constant("conv.bias", ramp({3}, 0.01f)));
  n.conv = value_or_throw(g.add_node("conv2d", {x, cw, cb}, {{"padding", std::vector<int64_t>{1, 1, 1, 1}}}, "conv"));
  n.relu = value_or_throw(g.add_node("relu", {n.conv->output()}, {}, "relu"));
  ir::Node* flat = value_or_throw(g.add_node("flatten", {n.relu->output()}, {{"start_dim", int64_t{1}}}, "flatten"));
  ir::Value* lw = value_or_throw(g.add_constant("fc.weight", ramp({5, 48}, 0.02f)));
  n.linear = value_or_throw(g.add_node("linear", {flat->output(), lw}, {}, "fc"));
  ir::Value* mw = value_or_throw(g.add_constant("proj", ramp({5, 3}, 0.05f)));
  n.matmul = value_or_throw(g.add_node("matmul", {n.linear->output(), mw}, {}, "proj"));
  ir::Value* t = value_or_throw(g.add_constant("t", ramp({3, 3}, 0.05f)));
  ir::Node* mt = value_or_throw(g.add_node("matmul", {n.matmul->output(), t}, {}, "mix"));
  ir::Node* computed = value_or_throw(g.add_node("relu", {t}, {}, "computed"));
  n.square = value_or_throw(g.add_node("matmul", {mt->output(), computed->output()}, {}, "square"));
  g.set_outputs({n.square->output()});
  return n;
}

}  // namespace

TEST_CASE("weighted layers come from the op table: weight, bias and output-channel axis", "[analysis]") {
  Net n = make_net();
  const std::vector<analysis::WeightedLayer> all = analysis::weighted_layers(n.g);
  REQUIRE(all.size() == 4);  // conv, fc, proj, mix; not square (its second operand is computed)
  CHECK(all[0].node == n.conv);
  CHECK(all[0].weight->name() == "conv.weight");
  REQUIRE(all[0].bias != nullptr);
  CHECK(all[0].bias->name() == "conv.bias");
  CHECK(all[0].out_channels() == 3);
  CHECK(all[1].node == n.linear);
  CHECK(all[1].bias == nullptr);
  CHECK(all[1].out_channels() == 5);
  CHECK(all[2].node == n.matmul);
  CHECK(all[2].spec.weight_out_axis == 1);  // x @ W with W [in, out]
  CHECK(all[2].out_channels() == 3);
  CHECK_FALSE(analysis::as_weighted_layer(*n.square));
  CHECK_FALSE(analysis::as_weighted_layer(*n.relu));

  // By op, and by what the caller needs of the weight.
  analysis::WeightedLayerQuery convs;
  convs.ops = {ir::OpKind::conv2d};
  CHECK(analysis::weighted_layers(n.g, convs).size() == 1);
  const auto owner = analysis::layer_of_weight(*n.g.find_value("fc.weight"));
  REQUIRE(owner);
  CHECK(owner->node == n.linear);
  CHECK_FALSE(analysis::layer_of_weight(*n.g.find_value("conv.bias")));
  CHECK(analysis::is_weighted_op("qconv2d"));
  CHECK_FALSE(analysis::is_weighted_op("relu"));

  // A pruned (CSR) weight is still an f32 weight; an integer one is not.
  ir::Value* w = n.g.find_value("fc.weight");
  w->set_constant(ir::to_csr_layout(ramp({5, 48}, 0.02f)).value());
  CHECK(analysis::as_weighted_layer(*n.linear));
  w->set_constant(value_or_throw(ir::Tensor::zeros(ir::DType::kI32, {5, 48})));
  CHECK_FALSE(analysis::as_weighted_layer(*n.linear));
  analysis::WeightedLayerQuery any_weight;
  any_weight.f32_weight = false;
  CHECK(analysis::as_weighted_layer(*n.linear, any_weight));
}

TEST_CASE("the activation probe hands over intermediate values batch by batch", "[analysis][eval]") {
  Net n = make_net();
  const ir::Tensor samples = ramp({10, 2, 4, 4}, 0.3f);
  auto data = eval::from_tensor(samples, {}, "ramp").value();
  // What the probe must see: the reference run of the whole batch with the
  // values as graph outputs.
  ir::Graph whole = n.g.clone();
  whole.set_outputs({whole.find_value(n.relu->output()->name()), whole.find_value(n.linear->output()->name())});
  const std::vector<ir::Tensor> expected = runtime::run_reference(whole, {samples}).value();

  eval::ProbeOptions options;
  options.samples = 9;  // not a multiple of the batch
  options.batch = 4;
  options.progress = false;
  std::vector<int64_t> counts;
  const std::vector<std::string> names = {n.linear->output()->name(), "x", n.relu->output()->name()};
  const Status st = eval::probe_values(n.g, names, *data, options, [&](const eval::ProbeBatch& b) -> Status {
    counts.push_back(b.count);
    REQUIRE(b.values.size() == 3);
    CHECK(b.values[1]->dim(0) == b.count);  // the input itself
    for (const auto& [probed, want] : {std::pair{b.values[2], &expected[0]}, std::pair{b.values[0], &expected[1]}}) {
      const int64_t per_sample = want->numel() / want->dim(0);
      REQUIRE(probed->numel() == per_sample * b.count);
      for (int64_t i = 0; i < probed->numel(); ++i) {
        CHECK(probed->data<float>()[i] == Approx(want->data<float>()[b.start * per_sample + i]).margin(1e-6));
      }
    }
    return Status::ok();
  });
  REQUIRE(st.is_ok());
  CHECK(counts == std::vector<int64_t>{4, 4, 1});

  // Errors name what is wrong; a visitor's error stops the probe.
  const Status missing = eval::probe_values(n.g, {"nope"}, *data, options, [](const eval::ProbeBatch&) {
    return Status::ok();
  });
  CHECK(missing.code() == StatusCode::kNotFound);
  CHECK_THAT(missing.message(), Catch::Contains("'nope'"));
  int visits = 0;
  const Status stopped = eval::probe_values(n.g, {"x"}, *data, options, [&](const eval::ProbeBatch&) {
    ++visits;
    return invalid_argument("enough");
  });
  CHECK(visits == 1);
  CHECK(stopped.message() == "enough");
  options.batch = 0;
  CHECK(eval::probe_values(n.g, {"x"}, *data, options, [](const eval::ProbeBatch&) { return Status::ok(); }).code() ==
        StatusCode::kInvalidArgument);
}
