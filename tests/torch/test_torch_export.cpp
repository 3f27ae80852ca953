#include "torch_catch.h"

#include <cstdlib>
#include <filesystem>

#include "compress/io/cmf.h"
#include "compress/io/npy.h"
#include "compress/lowrank/lowrank_passes.h"
#include "compress/runtime/reference.h"
#include "compress/torch/export.h"
#include "compress/torch/import.h"
#include "torch_test_util.h"

using namespace compress;
using compress::test::torch_fixture;

namespace {

std::string scratch(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / "compress_export_test";
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

// TorchScript -> IR -> TorchScript, then PyTorch itself runs the exported file
// on the fixture input; its output must equal the original model's output.
void check_round_trip(const std::string& name) {
  auto graph = compress::torch::import_file(torch_fixture(name + ".pt"));
  REQUIRE(graph.has_value());
  const std::string exported = scratch(name + ".exported.pt");
  const std::string output = scratch(name + ".exported.output.npy");
  std::filesystem::remove(output);
  const Status status = compress::torch::export_torchscript(*graph, exported);
  INFO(status.message());
  REQUIRE(status.is_ok());
  const std::string command = std::string(COMPRESS_PYTHON) + " " + COMPRESS_TEST_SOURCE_DIR +
                              "/tests/fixtures/run_torchscript.py " + exported + " " +
                              torch_fixture(name + ".input.npy") + " " + output;
  REQUIRE(std::system(command.c_str()) == 0);
  const auto diff = test::compare(io::load_npy(output).value(), test::load_fixture_npy(name + ".output.npy"));
  WARN(name << " exported: max abs error " << diff.max_abs << ", relative " << diff.relative());
  CHECK(diff.relative() < 1e-5);

  // And back into compress: the re-imported export computes the same.
  auto again = compress::torch::import_file(exported);
  INFO((again ? "" : again.status().message()));
  REQUIRE(again.has_value());
  auto out = runtime::run_reference(*again, {test::load_fixture_npy(name + ".input.npy")});
  REQUIRE(out.has_value());
  CHECK(test::compare((*out)[0], test::load_fixture_npy(name + ".output.npy")).relative() < 1e-4);
}

}  // namespace

TEST_CASE("export round trip: resnet18") { check_round_trip("resnet18"); }
TEST_CASE("export round trip: mobilenet_v3_small") { check_round_trip("mobilenet_v3_small"); }
TEST_CASE("export round trip: shufflenet_v2_x1_0") { check_round_trip("shufflenet_v2_x1_0"); }
TEST_CASE("export round trip: transformer encoder") { check_round_trip("transformer_encoder"); }
TEST_CASE("export round trip: GPT-style decoder") { check_round_trip("gpt_decoder"); }

// Issue 15: factorized graphs (Tucker-2 and CP chains, with depthwise convs
// and asymmetric strides) export as they are and run in PyTorch as on the
// reference backend.
TEST_CASE("export of Tucker-2 and CP factorized graphs runs in PyTorch like the reference") {
  for (const char* method : {"lowrank.tucker2", "lowrank.cp"}) {
    INFO(method);
    ir::Graph g =
        io::load_cmf(std::string(COMPRESS_TEST_SOURCE_DIR) + "/tests/fixtures/models/fashion_resnet.cmf").value();
    pass::PassRegistry registry;
    REQUIRE(lowrank::register_lowrank_passes(registry).is_ok());
    auto options = pass::PassOptions::from_pairs({{"ratio", "0.6"}, {"latency_gate", "false"}}, method);
    REQUIRE(options.has_value());
    auto p = registry.create(method, *options);
    REQUIRE(p.has_value());
    pass::PassContext ctx;
    ctx.progress = false;
    auto r = (*p)->run(g, ctx);
    INFO(r.status().to_string());
    REQUIRE(r.has_value());
    REQUIRE(r->changed);
    const std::string stem = scratch(std::string(method) + ".exported");
    REQUIRE(compress::torch::export_torchscript(g, stem + ".pt").is_ok());
    ir::Tensor x = ir::Tensor::zeros(ir::DType::kF32, {3, 1, 28, 28}).value();
    for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = static_cast<float>((i * 7919) % 255) / 255.0f - 0.3f;
    REQUIRE(io::save_npy(x, stem + ".input.npy").is_ok());
    std::filesystem::remove(stem + ".output.npy");
    const std::string command = std::string(COMPRESS_PYTHON) + " " + COMPRESS_TEST_SOURCE_DIR +
                                "/tests/fixtures/run_torchscript.py " + stem + ".pt " + stem + ".input.npy " + stem +
                                ".output.npy";
    REQUIRE(std::system(command.c_str()) == 0);
    auto want = runtime::run_reference(g, {x});
    REQUIRE(want.has_value());
    const auto diff = test::compare(io::load_npy(stem + ".output.npy").value(), (*want)[0]);
    WARN(method << " exported: max abs error " << diff.max_abs << ", relative " << diff.relative());
    CHECK(diff.relative() < 1e-4);
  }
}

TEST_CASE("export rejects graphs with real integer ops, and writes nothing") {
  ir::Graph g;
  ir::Value* x = g.add_input("x", ir::ValueType{ir::DType::kF32, {1, 4}, nullptr}).value();
  ir::Node* q = g.add_node("quantize", {x}, {{"scale", std::vector<double>{0.1}}}, "q").value();
  ir::Node* dq = g.add_node("dequantize", {q->output()}, {}, "dq").value();
  g.set_outputs({dq->output()});
  const std::string path = scratch("int_graph.pt");
  std::filesystem::remove(path);
  const Status status = compress::torch::export_torchscript(g, path);
  CHECK(status.code() == StatusCode::kUnsupported);
  CHECK(status.message().find("'q' (quantize)") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(path));
}
