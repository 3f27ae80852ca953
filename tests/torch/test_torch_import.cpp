#include "torch_catch.h"

#include <torch/script.h>

#include "compress/ir/verifier.h"
#include "compress/runtime/reference.h"
#include "compress/torch/import.h"
#include "compress/torch/tensor_convert.h"
#include "torch_test_util.h"

using namespace compress;
using compress::test::torch_fixture;

namespace {

// Imports a fixture, runs it on the reference backend and compares with
// PyTorch's output. Bound: relative error (max |diff| / max |ref|) < 1e-4.
void check_parity(const std::string& name, double bound = 1e-4) {
  auto graph = compress::torch::import_file(torch_fixture(name + ".pt"));
  INFO(name << ": " << (graph ? "" : graph.status().message()));
  REQUIRE(graph.has_value());
  REQUIRE(ir::verify(*graph).is_ok());
  const ir::Tensor input = test::load_fixture_npy(name + ".input.npy");
  auto outputs = runtime::run_reference(*graph, {input});
  INFO((outputs ? "" : outputs.status().message()));
  REQUIRE(outputs.has_value());
  REQUIRE(outputs->size() == 1);
  const auto diff = test::compare((*outputs)[0], test::load_fixture_npy(name + ".output.npy"));
  WARN(name << ": " << graph->num_nodes() << " nodes, max abs error " << diff.max_abs << ", relative "
            << diff.relative());
  CHECK(diff.relative() < bound);
}

}  // namespace

TEST_CASE("import + parity: resnet18") { check_parity("resnet18"); }
TEST_CASE("import + parity: resnet50") { check_parity("resnet50"); }
TEST_CASE("import + parity: mobilenet_v2") { check_parity("mobilenet_v2"); }
TEST_CASE("import + parity: mobilenet_v3_small") { check_parity("mobilenet_v3_small"); }
TEST_CASE("import + parity: efficientnet_b0") { check_parity("efficientnet_b0"); }
TEST_CASE("import + parity: squeezenet1_1") { check_parity("squeezenet1_1"); }
TEST_CASE("import + parity: shufflenet_v2_x1_0") { check_parity("shufflenet_v2_x1_0"); }
TEST_CASE("import + parity: densenet121") { check_parity("densenet121"); }
TEST_CASE("import + parity: vgg11_bn") { check_parity("vgg11_bn"); }
TEST_CASE("import + parity: regnet_y_400mf") { check_parity("regnet_y_400mf"); }
TEST_CASE("import + parity: googlenet") { check_parity("googlenet"); }
TEST_CASE("import + parity: transformer encoder classifier") { check_parity("transformer_encoder"); }
TEST_CASE("import + parity: GPT-style decoder") { check_parity("gpt_decoder"); }

TEST_CASE("imported names follow the module paths") {
  auto graph = compress::torch::import_file(torch_fixture("resnet18.pt"));
  REQUIRE(graph.has_value());
  CHECK(graph->find_value("layer1.0.conv1.weight") != nullptr);
  CHECK(graph->find_value("layer1.0.bn1.running_var") != nullptr);
  CHECK(graph->find_node("layer1.0.conv1") != nullptr);
  CHECK(graph->find_node("fc") != nullptr);
  CHECK((graph->inputs()[0]->shape() == ir::Shape{1, 3, 224, 224}));
  auto gpt = compress::torch::import_file(torch_fixture("gpt_decoder.pt"));
  REQUIRE(gpt.has_value());
  // A ModuleList item is named through its list ("blocks.0"), not just "0".
  CHECK(gpt->find_node("blocks.0.ln1") != nullptr);
  // No dropout survives import.
  for (const ir::Node* node : gpt->nodes()) CHECK(node->op().find("dropout") == std::string::npos);
}

TEST_CASE("import from an in-memory module with explicit input shapes") {
  ::torch::jit::Module module = ::torch::jit::load(torch_fixture("grad_cnn_eval.pt"));
  module.eval();
  compress::torch::ImportOptions options;
  options.inputs = {compress::torch::parse_input_spec("4x1x14x14").value()};
  auto graph = compress::torch::import_module(module, options);
  REQUIRE(graph.has_value());
  CHECK((graph->inputs()[0]->shape() == ir::Shape{4, 1, 14, 14}));
  options.inputs.clear();
  auto missing = compress::torch::import_module(module, options);
  REQUIRE_FALSE(missing.has_value());
  CHECK(missing.status().message().find("--input-shape") != std::string::npos);
}

TEST_CASE("input specs parse and reject garbage") {
  auto spec = compress::torch::parse_input_spec("i64:2,16");
  REQUIRE(spec.has_value());
  CHECK(spec->dtype == ir::DType::kI64);
  CHECK((spec->shape == ir::Shape{2, 16}));
  CHECK_FALSE(compress::torch::parse_input_spec("1,,3").has_value());
  CHECK_FALSE(compress::torch::parse_input_spec("1,-3").has_value());
  CHECK_FALSE(compress::torch::parse_input_spec("q8:1,3").has_value());
  CHECK_FALSE(compress::torch::parse_input_spec("99999999999999999999").has_value());
}

TEST_CASE("bad TorchScript files are clear errors") {
  for (const char* name : {"random_bytes.pt", "empty_zip.pt", "truncated.pt"}) {
    auto graph = compress::torch::import_file(torch_fixture(name));
    INFO(name);
    REQUIRE_FALSE(graph.has_value());
    CHECK(graph.status().code() == StatusCode::kCorruptFile);
    CHECK(graph.status().message().find(name) != std::string::npos);
    CHECK(graph.status().message().find("not a loadable TorchScript file") != std::string::npos);
  }
  auto missing = compress::torch::import_file(torch_fixture("no_such_model.pt"));
  CHECK(missing.status().code() == StatusCode::kNotFound);
}

TEST_CASE("an unsupported op names the op, its source location and module path") {
  auto graph = compress::torch::import_file(torch_fixture("unsupported_op.pt"));
  REQUIRE_FALSE(graph.has_value());
  const std::string message = graph.status().message();
  INFO(message);
  CHECK(graph.status().code() == StatusCode::kUnsupported);
  CHECK(message.find("aten::erfinv") != std::string::npos);
  CHECK(message.find("make_torch_fixtures.py:") != std::string::npos);
  CHECK(message.find("top-level module") != std::string::npos);
}

TEST_CASE("import_sequential hands a C++-frontend model over in-process") {
  namespace nn = ::torch::nn;
  ::torch::manual_seed(3);
  nn::Sequential seq;
  seq->push_back("conv", nn::Conv2d(nn::Conv2dOptions(2, 4, 3).padding(1).stride(2)));
  seq->push_back("bn", nn::BatchNorm2d(4));
  seq->push_back("act", nn::Hardtanh(nn::HardtanhOptions().min_val(0).max_val(6)));
  seq->push_back("pool", nn::AvgPool2d(nn::AvgPool2dOptions(2)));
  seq->push_back("gap", nn::AdaptiveAvgPool2d(nn::AdaptiveAvgPool2dOptions({1, 1})));
  seq->push_back("flat", nn::Flatten());
  seq->push_back("drop", nn::Dropout(0.5));
  seq->push_back("fc", nn::Linear(4, 3));
  seq->push_back("gelu", nn::GELU());
  {
    ::torch::NoGradGuard guard;
    auto* bn = seq[1]->as<nn::BatchNorm2dImpl>();
    bn->running_mean.uniform_(-0.5, 0.5);
    bn->running_var.uniform_(0.5, 1.5);
  }
  seq->eval();
  auto graph = compress::torch::import_sequential(seq, {"x", {3, 2, 8, 8}});
  INFO((graph ? "" : graph.status().message()));
  REQUIRE(graph.has_value());
  CHECK(graph->find_value("conv.weight") != nullptr);
  CHECK(graph->find_node("act")->op() == "relu6");
  const at::Tensor x = at::randn({3, 2, 8, 8});
  const at::Tensor expected = seq->forward(x).detach();
  auto out = runtime::run_reference(*graph, {compress::torch::from_aten(x).value()});
  REQUIRE(out.has_value());
  CHECK(test::compare((*out)[0], compress::torch::from_aten(expected).value()).relative() < 1e-5);

  nn::Sequential unsupported;
  unsupported->push_back("lstm", nn::LSTM(4, 4));
  auto bad = compress::torch::import_sequential(unsupported, {"x", {1, 4}});
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.status().message().find("child 'lstm'") != std::string::npos);
}
