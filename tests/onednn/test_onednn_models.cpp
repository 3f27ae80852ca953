// Whole-model parity of the onednn backend with the reference on the imported torchvision and transformer fixtures.
#include <catch2/catch.hpp>
#include <string>

#include "compress/io/npy.h"
#include "compress/torch/import.h"
#include "onednn_test_util.h"

namespace compress::test {
namespace {

// Note [onednn model bounds]
// Whole graphs against the reference (f32 with double sums), relative to
// the output's range (Note [onednn error bounds]):
//   f32   rtol 1e-4, atol 2e-5   (measured: at most 1.2e-6 of the range)
//   bf16  rtol 3e-2, atol 3e-2   (measured: at most 7.5e-3 of the range), and the same top-1 class
// and, as a sanity check, f32 against PyTorch's own output with the bound
// the torch tests use for the reference (rtol 1e-4, atol 1e-4).
const Bound kModelF32{1e-4, 2e-5};
const Bound kModelBf16{3e-2, 3e-2};
const Bound kVsTorch{1e-4, 1e-4};

std::string fixture(const std::string& name) { return std::string(COMPRESS_TORCH_FIXTURES) + "/" + name; }

struct Model {
  ir::Graph graph;
  std::vector<ir::Tensor> inputs;
  ir::Tensor torch_output;
};

Model load(const std::string& name) {
  Model m;
  auto graph = torch::import_file(fixture(name + ".pt"));
  INFO(name << ": " << graph.status().to_string());
  REQUIRE(graph.has_value());
  m.graph = std::move(*graph);
  auto input = io::load_npy(fixture(name + ".input.npy"));
  REQUIRE(input.has_value());
  m.inputs.push_back(std::move(*input));
  auto output = io::load_npy(fixture(name + ".output.npy"));
  REQUIRE(output.has_value());
  m.torch_output = std::move(*output);
  return m;
}

int64_t argmax_row(const ir::Tensor& t, int64_t row) {
  const int64_t cols = t.numel() / t.dim(0);
  const float* p = t.data<float>() + row * cols;
  int64_t best = 0;
  for (int64_t c = 1; c < cols; ++c) best = p[c] > p[best] ? c : best;
  return best;
}

void check_model(const std::string& name, bool also_bf16) {
  const Model m = load(name);
  {
    RunResult r = run_both(m.graph, m.inputs, f32_options());
    const Comparison c = compare(r.got[0], r.want[0], kModelF32);
    INFO(name << " f32 vs reference: " << c.to_string() << "\n" << r.report.to_string());
    CHECK(c.worst <= 1.0);
    const Comparison t = compare(r.got[0], m.torch_output, kVsTorch);
    INFO(name << " f32 vs PyTorch: " << t.to_string());
    CHECK(t.worst <= 1.0);
    // Only the documented fallback: VGG's 2x2 -> 7x7 adaptive pool (uneven bins).
    for (const auto& f : r.fallbacks) {
      INFO(f.node << " (" << f.op << "): " << f.reason);
      CHECK(f.op == "adaptive_avg_pool2d");
    }
  }
  if (also_bf16) {
    RunResult r = run_both(m.graph, m.inputs, bf16_options());
    const Comparison c = compare(r.got[0], r.want[0], kModelBf16);
    INFO(name << " bf16 vs reference: " << c.to_string() << "\n" << r.report.to_string());
    CHECK(c.worst <= 1.0);
    if (r.want[0].rank() == 2) {
      for (int64_t row = 0; row < r.want[0].dim(0); ++row)
        CHECK(argmax_row(r.got[0], row) == argmax_row(r.want[0], row));
    }
  }
}

}  // namespace

TEST_CASE("torchvision CNNs match the reference (f32 - resnet18 and mobilenet_v2 in bf16 too)", "[onednn][models]") {
  for (const char* name : {"resnet18", "mobilenet_v2"}) check_model(name, true);
  for (const char* name : {"resnet50", "mobilenet_v3_small", "efficientnet_b0", "squeezenet1_1", "shufflenet_v2_x1_0",
                           "densenet121", "vgg11_bn", "regnet_y_400mf", "googlenet"}) {
    check_model(name, false);
  }
}

TEST_CASE("the transformer encoder and the GPT decoder match the reference (f32 and bf16)", "[onednn][models]") {
  for (const char* name : {"transformer_encoder", "gpt_decoder"}) check_model(name, true);
}

TEST_CASE("an imported model keeps its parity at another batch size", "[onednn][models]") {
  const Model m = load("mobilenet_v2");
  auto plan = runtime::make_onednn_backend()->compile(m.graph);
  REQUIRE(plan.has_value());
  // The fixture has batch 2; run its first image alone.
  const ir::Tensor& x = m.inputs[0];
  ir::Tensor one = ir::Tensor::zeros(ir::DType::kF32, {1, x.dim(1), x.dim(2), x.dim(3)}).value();
  std::copy(x.data<float>(), x.data<float>() + one.numel(), one.data<float>());
  auto got = (*plan)->run({one});
  REQUIRE(got.has_value());
  const int64_t cols = m.torch_output.dim(1);
  ir::Tensor first = ir::Tensor::zeros(ir::DType::kF32, {1, cols}).value();
  std::copy(m.torch_output.data<float>(), m.torch_output.data<float>() + cols, first.data<float>());
  const Comparison c = compare((*got)[0], first, kVsTorch);
  INFO(c.to_string());
  CHECK(c.worst <= 1.0);
}

}  // namespace compress::test
