// Writes a few valid .cmf files (one per feature of the format) into a folder, as a fuzzing seed corpus.
#include <cstdio>
#include <string>

#include "cmf_test_util.h"
#include "compress/io/cmf.h"
#include "compress/ir/sparse_layout.h"

using namespace compress;
using namespace compress::ir;

namespace {

Graph with_constants(const std::string& name, std::vector<std::pair<std::string, Tensor>> tensors) {
  Graph g;
  g.name = name;
  Value* x = g.add_input("x", ValueType{DType::kF32, {2, 3}, nullptr}).value();
  for (auto& [n, t] : tensors) g.add_constant(n, std::move(t)).value();
  g.set_outputs({g.add_node("relu", {x}, {}, "relu").value()->output()});
  return g;
}

Tensor ramp(DType dtype, Shape shape) {
  Tensor t = Tensor::zeros(dtype, std::move(shape)).value();
  auto* p = static_cast<uint8_t*>(t.raw_data());
  for (size_t i = 0; i < t.nbytes(); ++i) p[i] = static_cast<uint8_t>(dtype == DType::kBool ? i & 1 : (i * 7) % 5);
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUTPUT_FOLDER\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  std::vector<std::pair<std::string, Graph>> seeds;
  seeds.emplace_back("tiny", test::tiny_graph());
  // The annotation section, one annotation per target kind (node, value, graph key).
  seeds.emplace_back("annotated", test::annotated_graph());

  std::vector<std::pair<std::string, Tensor>> dtypes;
  for (const DTypeTraits& t : kDTypeTable) dtypes.emplace_back(std::string(t.name), ramp(t.dtype, {3, 5}));
  seeds.emplace_back("dtypes", with_constants("dtypes", std::move(dtypes)));

  const Tensor dense = ramp(DType::kF32, {4, 8});
  seeds.emplace_back("sparse", with_constants("sparse", {{"mask", to_mask_layout(dense).value()},
                                                         {"csr", to_csr_layout(dense).value()},
                                                         {"nm", to_nm_layout(dense, 2, 4).value()},
                                                         {"block", to_block_layout(dense, 2, 4).value()}}));
  QuantParams::Spec group;
  group.storage = DType::kI4;
  group.granularity = QuantGranularity::kPerGroup;
  group.axis = 1;
  group.group_size = 4;
  group.scales = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f};
  seeds.emplace_back("quant", with_constants("quant", {{"g", ramp(DType::kI4, {4, 8}).with_quant(
                                                                 std::make_shared<const QuantParams>(
                                                                     QuantParams::create(group).value()))}}));

  // The other granularities, zero points and a narrowed range, so that
  // mutations start from every branch of the quant record.
  auto quant = [](QuantParams q) { return std::make_shared<const QuantParams>(std::move(q)); };
  QuantParams::Spec narrow;
  narrow.storage = DType::kU4;
  narrow.scales = {0.25f};
  narrow.zero_points = {8};
  narrow.qmin = 1;
  narrow.qmax = 14;
  seeds.emplace_back(
      "quant_kinds",
      with_constants("quant_kinds",
                     {{"per_tensor_u8", ramp(DType::kU8, {2, 6}).with_quant(
                                            quant(QuantParams::per_tensor(DType::kU8, 0.05f, 128).value()))},
                      {"per_axis_i8", ramp(DType::kI8, {3, 4}).with_quant(quant(
                                          QuantParams::per_axis(DType::kI8, 0, {0.1f, 0.2f, 0.3f}, {0, -1, 2}).value()))},
                      {"narrow_u4", ramp(DType::kU4, {2, 4}).with_quant(quant(QuantParams::create(narrow).value()))}}));

  // CSR tensors of at least kCsrBitmaskMinElements are stored with their
  // indices as one bitmask (Note [Compact CSR indices]); the small "csr"
  // seed above keeps the plain row_ptr/col_idx form.
  Tensor wide = Tensor::zeros(DType::kF32, {64, 64}).value();
  for (int64_t i = 0; i < wide.numel(); i += 5) wide.data<float>()[i] = 0.5f + static_cast<float>(i % 7);
  seeds.emplace_back("csr_bitmask", with_constants("csr_bitmask", {{"wide", to_csr_layout(wide).value()}}));

  // A pruned and quantized weight, as prune then quant.ptq leave it, when
  // the layouts take quantized tensors (skipped, not fatal, if not).
  const Tensor q8 = ramp(DType::kI8, {4, 8}).with_quant(quant(QuantParams::per_tensor(DType::kI8, 0.1f, 0).value()));
  std::vector<std::pair<std::string, Tensor>> sparse_quant;
  if (Expected<Tensor> t = to_nm_layout(q8, 2, 4)) sparse_quant.emplace_back("nm_i8", std::move(*t));
  if (Expected<Tensor> t = to_csr_layout(q8)) sparse_quant.emplace_back("csr_i8", std::move(*t));
  if (Expected<Tensor> t = to_block_layout(q8, 2, 4)) sparse_quant.emplace_back("block_i8", std::move(*t));
  if (!sparse_quant.empty()) seeds.emplace_back("sparse_quant", with_constants("sparse_quant", std::move(sparse_quant)));

  {
    // Many ops and every attribute kind, so mutations reach shape inference.
    Graph g;
    g.name = "ops";
    Value* x = g.add_input("image", ValueType{DType::kF32, {1, 3, 8, 8}, nullptr}).value();
    Value* w = g.add_constant("conv.weight", ramp(DType::kF32, {4, 3, 3, 3})).value();
    Value* v = g.add_node("conv2d", {x, w},
                          {{"stride", std::vector<int64_t>{2, 2}}, {"padding", std::vector<int64_t>{1, 1, 1, 1}}},
                          "conv")
                   .value()
                   ->output();
    std::vector<Value*> bn = {v};
    for (const char* p : {"bn.w", "bn.b", "bn.m", "bn.v"}) bn.push_back(g.add_constant(p, ramp(DType::kF32, {4})).value());
    v = g.add_node("batch_norm", bn, {{"eps", 1e-3}}, "bn").value()->output();
    v = g.add_node("gelu", {v}, {{"approximate", std::string("tanh")}}, "act").value()->output();
    v = g.add_node("max_pool2d", {v}, {{"kernel", std::vector<int64_t>{2, 2}}, {"stride", std::vector<int64_t>{2, 2}}},
                   "pool")
            .value()
            ->output();
    v = g.add_node("flatten", {v}, {}, "flatten").value()->output();
    Value* fw = g.add_constant("fc.weight", ramp(DType::kF32, {6, 16})).value();
    v = g.add_node("linear", {v, fw}, {}, "fc").value()->output();
    Node* q = g.add_node("quantize", {v},
                         {{"dtype", std::string("u8")}, {"scale", std::vector<double>{0.1}},
                          {"zero_point", std::vector<int64_t>{128}}},
                         "q")
                  .value();
    v = g.add_node("dequantize", {q->output()}, {}, "dq").value()->output();
    Node* split = g.add_node("split", {v}, {{"axis", int64_t{1}}, {"sizes", std::vector<int64_t>{2, 4}}}, "split").value();
    Value* sm = g.add_node("softmax", {split->output(1)}, {}, "softmax").value()->output();
    Value* r = g.add_node("reshape", {split->output(0)}, {{"shape", std::vector<int64_t>{2, -1}}}, "reshape").value()->output();
    g.set_outputs({r, sm});
    seeds.emplace_back("ops", std::move(g));
  }

  for (const auto& [name, graph] : seeds) {
    const Status st = io::save_cmf(graph, dir + "/" + name + ".cmf");
    if (!st.is_ok()) {
      std::fprintf(stderr, "%s\n", st.message().c_str());
      return 1;
    }
  }
  return 0;
}
