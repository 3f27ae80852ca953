// Small graph builders shared by the IR tests.
#pragma once

#include "compress/ir/graph.h"
#include "compress/ir/op_schema.h"

namespace compress::test {

inline ir::Tensor filled(ir::Shape shape, float start = 0.0f, float step = 0.01f) {
  ir::Tensor t = ir::Tensor::zeros(ir::DType::kF32, std::move(shape)).value();
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = start + step * static_cast<float>(i % 97);
  return t;
}

// x[1,3,8,8] -> conv(4) -> relu -> add(residual conv) -> flatten -> linear(10)
inline ir::Graph small_cnn() {
  using namespace ir;
  Graph g;
  g.name = "small_cnn";
  Value* x = g.add_input("x", ValueType{DType::kF32, {1, 3, 8, 8}, nullptr}).value();
  Value* w1 = g.add_constant("conv1.weight", filled({4, 3, 3, 3})).value();
  Value* b1 = g.add_constant("conv1.bias", filled({4})).value();
  Value* c1 = g.add_node("conv2d", {x, w1, b1}, {{"padding", std::vector<int64_t>{1, 1, 1, 1}}}, "conv1").value()->output();
  Value* r1 = g.add_node("relu", {c1}, {}, "relu1").value()->output();
  Value* w2 = g.add_constant("conv2.weight", filled({4, 4, 1, 1})).value();
  Value* c2 = g.add_node("conv2d", {r1, w2}, {}, "conv2").value()->output();
  Value* sum = g.add_node("add", {c2, r1}, {}, "residual").value()->output();
  Value* flat = g.add_node("flatten", {sum}, {}, "flatten").value()->output();
  Value* wf = g.add_constant("fc.weight", filled({10, 256})).value();
  Value* bf = g.add_constant("fc.bias", filled({10})).value();
  Value* fc = g.add_node("linear", {flat, wf, bf}, {}, "fc").value()->output();
  g.set_outputs({fc});
  return g;
}

}  // namespace compress::test
