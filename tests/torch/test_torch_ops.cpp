// Every row of the torch lowering table on the PyTorch op fixtures
// (tests/fixtures/make_op_fixtures.py): the trainable executor's ATen run,
// and TorchScript export run by LibTorch and imported back into the IR.
#include "torch_catch.h"  // first: glog's CHECK must not replace Catch's

#include <filesystem>
#include <map>
#include <set>
#include <string>

#include "../../src/torch/op_lowering.h"
#include "../runtime/op_fixtures.h"
#include "compress/runtime/reference.h"
#include "compress/support/check.h"
#include "compress/torch/export.h"
#include "compress/torch/import.h"
#include "compress/torch/tensor_convert.h"
#include "compress/torch/trainable_model.h"

namespace compress::test {
namespace {

// ATen on the CPU sums and approximates in float32 in its own order, as
// oneDNN does: the same bounds as Note [Backend op bounds]
// (tests/runtime/test_backend_ops.cpp) for the f32 rows.
std::map<std::string, ErrorBound> torch_bounds() {
  const ErrorBound gemm{2e-5, 1e-5}, norm{2e-5, 2e-6}, graph{1e-4, 1e-5};
  return {{"exact", {0, 0}},          {"exact_vs_f32", {0, 0}},    {"gemm", gemm},
          {"gemm_vs_f32", gemm},      {"norm", norm},              {"norm_vs_f32", norm},
          {"transcendental", norm},   {"transcendental_vs_f32", norm}, {"graph", graph},
          {"graph_vs_f32", graph},    {"step1", {0.0, 1.0}}};
}

// Cases whose every node the torch layer runs (integer ops train and export
// in their fake-quant form, so their cases are left out, and said so).
std::vector<OpFixture> torch_cases(std::set<std::string>* left_out) {
  std::vector<OpFixture> out;
  for (const OpFixture& c : load_op_fixtures()) {
    bool runs = true;
    for (const auto& node : c.spec.at("nodes")) {
      const auto kind = ir::op_kind_from_name(node.at("op").get<std::string>());
      if (!kind || !::compress::torch::torch_lowering(*kind).run) {
        runs = false;
        left_out->insert(node.at("op").get<std::string>());
      }
    }
    if (runs) out.push_back(c);
  }
  return out;
}

Expected<std::vector<at::Tensor>> to_aten_all(const std::vector<ir::Tensor>& inputs) {
  std::vector<at::Tensor> out;
  for (const ir::Tensor& t : inputs) {
    COMPRESS_ASSIGN_OR_RETURN(at::Tensor a, ::compress::torch::to_aten(t));
    out.push_back(a);
  }
  return out;
}

Expected<std::vector<ir::Tensor>> from_aten_all(const std::vector<at::Tensor>& outputs) {
  std::vector<ir::Tensor> out;
  for (const at::Tensor& t : outputs) {
    COMPRESS_ASSIGN_OR_RETURN(ir::Tensor v, ::compress::torch::from_aten(t.detach().contiguous()));
    out.push_back(std::move(v));
  }
  return out;
}

}  // namespace

TEST_CASE("torch rows: the trainable executor matches PyTorch on every op fixture", "[torch][ops]") {
  std::set<std::string> left_out;
  const std::vector<OpFixture> cases = torch_cases(&left_out);
  REQUIRE(cases.size() > 50);
  for (const std::string& op : left_out) {
    INFO("op " << op << " is left out of the torch cases");
    CHECK_FALSE(::compress::torch::torch_lowering(*ir::op_kind_from_name(op)).not_supported_reason.empty());
  }
  const GraphRunner run = [](const ir::Graph& graph,
                             const std::vector<ir::Tensor>& inputs) -> Expected<std::vector<ir::Tensor>> {
    COMPRESS_ASSIGN_OR_RETURN(auto model, ::compress::torch::TrainableModel::create(graph));
    model->eval();
    ::torch::NoGradGuard no_grad;
    COMPRESS_ASSIGN_OR_RETURN(std::vector<at::Tensor> in, to_aten_all(inputs));
    COMPRESS_ASSIGN_OR_RETURN(std::vector<at::Tensor> out, model->try_forward(in));
    return from_aten_all(out);
  };
  for (const OpFixture& c : cases) check_fixture(c, torch_bounds(), run);
}

TEST_CASE("torch rows: TorchScript export runs in LibTorch and imports back, on every op fixture", "[torch][ops]") {
  std::set<std::string> left_out;
  const std::vector<OpFixture> cases = torch_cases(&left_out);
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "compress_test_torch_ops";
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "case.pt").string();
  // LibTorch runs the exported module.
  const GraphRunner exported = [&](const ir::Graph& graph,
                                   const std::vector<ir::Tensor>& inputs) -> Expected<std::vector<ir::Tensor>> {
    COMPRESS_RETURN_IF_ERROR(::compress::torch::export_torchscript(graph, path));
    ::torch::jit::Module module = ::torch::jit::load(path);
    COMPRESS_ASSIGN_OR_RETURN(std::vector<at::Tensor> in, to_aten_all(inputs));
    ::torch::NoGradGuard no_grad;
    c10::IValue result = module.forward(std::vector<c10::IValue>(in.begin(), in.end()));
    std::vector<at::Tensor> out;
    if (result.isTuple()) {
      for (const c10::IValue& v : result.toTupleRef().elements()) out.push_back(v.toTensor());
    } else {
      out.push_back(result.toTensor());
    }
    return from_aten_all(out);
  };
  // The exported file imported again (its rows' aten imports) and run on the reference.
  const GraphRunner round_trip = [&](const ir::Graph& graph,
                                     const std::vector<ir::Tensor>& inputs) -> Expected<std::vector<ir::Tensor>> {
    COMPRESS_RETURN_IF_ERROR(::compress::torch::export_torchscript(graph, path));
    COMPRESS_ASSIGN_OR_RETURN(ir::Graph imported, ::compress::torch::import_file(path));
    return runtime::run_reference(imported, inputs);
  };
  for (const OpFixture& c : cases) {
    check_fixture(c, torch_bounds(), exported);
    // rms_norm and attention are exported as their formulas (LibTorch 1.13's
    // TorchScript has neither op), which the importer does not fuse back;
    // fake_quant has no aten import. Their export is checked above.
    bool importable = true;
    for (const auto& node : c.spec.at("nodes")) {
      const auto kind = ir::op_kind_from_name(node.at("op").get<std::string>());
      importable = importable && !::compress::torch::torch_lowering(*kind).imports.empty() &&
                   *kind != ir::OpKind::scaled_dot_product_attention;
    }
    if (importable) check_fixture(c, torch_bounds(), round_trip);
  }
  std::filesystem::remove_all(dir);
}

}  // namespace compress::test
