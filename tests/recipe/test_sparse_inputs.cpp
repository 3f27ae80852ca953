// Every pass given a pruned model loaded from a file (csr, mask, n:m) computes what it computes on the dense equivalent.
//
// A loaded sparse weight stores only its nonzeros; passes that read the
// stored values as if they were the logical ones once folded garbage into
// the model (every output NaN after transforms.fold_batch_norm of a csr
// model) or quantized it wrongly. Each case runs one stage, configured as a
// recipe configures it, with the registry ctk uses, on the model saved and
// loaded in each layout and on the same weights stored dense, then compares
// the two results on the same images (reference backend), and checks that a
// pruned model stays as sparse as it was.
#include <unistd.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "compress/eval/metrics.h"
#include "compress/io/cmf.h"
#include "compress/ir/sparse_layout.h"
#include "compress/pass/pass_manager.h"
#include "compress/pass/recipe.h"
#include "compress/runtime/backend.h"
#include "compress/runtime/reference.h"
#include "fashion_data.h"
#include "compress/pipeline/registry.h"

using namespace compress;

namespace {

// Fraction of zeros over the weights of the model's layers (int8 ones too).
double weight_sparsity(const ir::Graph& g) {
  double zeros = 0, total = 0;
  for (const ir::Node* n : g.nodes()) {
    const bool layer = n->op() == "conv2d" || n->op() == "linear" || n->op() == "qconv2d" || n->op() == "qlinear";
    if (!layer || !n->input(1)->is_constant()) continue;
    const ir::Tensor& w = n->input(1)->constant();
    zeros += w.sparsity() * static_cast<double>(w.numel());
    total += static_cast<double>(w.numel());
  }
  return total > 0 ? zeros / total : 0.0;
}

float max_abs_diff(const ir::Tensor& a, const ir::Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  float d = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const float x = a.data<float>()[i], y = b.data<float>()[i];
    REQUIRE(std::isfinite(x));
    d = std::max(d, std::fabs(x - y));
  }
  return d;
}

// The graph after the one stage written as `stage_yaml`, run with 64
// calibration / training / evaluation images.
ir::Graph run_stage(const ir::Graph& model, const std::string& stage_yaml) {
  const pass::Recipe recipe =
      pass::parse_recipe("model: m.cmf\noutput: o.cmf\nstages: [" + stage_yaml + "]\n", "stage.yaml").value();
  const pass::PassRegistry registry = pipeline::make_pass_registry().value();
  auto passes = pass::create_passes(recipe, registry);
  INFO(passes.status().to_string());
  REQUIRE(passes.has_value());
  static const auto calibration = test::fashion_data("train", 64);
  static const auto evaluation = test::fashion_data("test", 64);
  auto backend = runtime::make_backend("reference").value();
  pass::PassContext context;
  context.calibration = calibration.get();
  context.training = calibration.get();
  context.reference_model = &model;
  context.progress = false;
  context.metric = [&](const ir::Graph& candidate) -> Expected<double> {
    COMPRESS_ASSIGN_OR_RETURN(auto plan, backend->compile(candidate));
    COMPRESS_ASSIGN_OR_RETURN(eval::AccuracyResult acc, eval::evaluate_top1(*plan, *evaluation, 64, false));
    return acc.top1();
  };
  pass::PassManager pipeline;
  for (auto& p : *passes) pipeline.add(std::move(p));
  ir::Graph g = model.clone();
  auto results = pipeline.run(g, context);
  INFO(results.status().to_string());
  REQUIRE(results.has_value());
  return g;
}

struct Stage {
  const char* name;
  const char* yaml;     // the stage as written under stages:
  bool keeps_sparsity;  // the result is at least as sparse as the input
};

// One stage per registered pass (and PTQ's two outputs).
const std::vector<Stage> kStages = {
    {"fold_batch_norm", "transforms.fold_batch_norm", true},
    {"cle", "quant.cle", true},
    {"bias_correction", "{quant.bias_correction: {samples: 64}}", true},
    {"smoothquant", "{quant.smoothquant: {samples: 64}}", true},
    {"sensitivity", "{quant.sensitivity: {samples: 64}}", true},
    {"ptq", "{quant.ptq: {samples: 64}}", true},
    {"fake_quant", "{quant.ptq: {samples: 64, fake_quant: true}}", false},
    {"magnitude", "{prune.magnitude: {ratio: 0.6}}", true},
    {"wanda", "{prune.magnitude: {ratio: 0.6, criterion: wanda, samples: 64}}", true},
    {"sparsegpt", "{prune.nm: {pattern: '2:4', criterion: sparsegpt, samples: 64}}", false},
    {"nm", "{prune.nm: {pattern: '2:4'}}", true},
    {"structured", "{prune.structured: {ratio: 0.25}}", false},
};

// The fixture pruned to half its weights in `format`, saved and loaded back.
ir::Graph pruned_from_file(const std::string& format) {
  const std::string stage = format == "nm" ? "{prune.nm: {pattern: '2:4', format: nm}}"
                                           : "{prune.magnitude: {ratio: 0.5, format: " + format + "}}";
  const ir::Graph pruned = run_stage(test::fashion_cnn(), stage);
  const std::string path = "test_sparse_inputs." + format + "." + std::to_string(::getpid()) + ".cmf";
  REQUIRE(io::save_cmf(pruned, path).is_ok());
  ir::Graph loaded = io::load_cmf(path).value();
  std::remove(path.c_str());
  bool has_layout = false;
  for (const ir::Value* c : loaded.constants()) {
    has_layout = has_layout || (c->constant().is_sparse() &&
                                ir::sparse_format_name(c->constant().sparse_layout()->format) == format);
  }
  REQUIRE(has_layout);  // else the case would test nothing
  return loaded;
}

ir::Graph densified(const ir::Graph& g) {
  ir::Graph dense = g.clone();
  for (ir::Value* c : dense.constants()) {
    if (c->constant().is_sparse()) c->set_constant(c->constant().to_dense().value());
  }
  return dense;
}

}  // namespace

TEST_CASE("every pass on a csr, mask or n:m model loaded from a file equals the pass on its dense equivalent",
          "[recipe][sparse]") {
  const ir::Tensor images = test::fashion_data("test", 8)->batch(0, 8).value().inputs;
  for (const char* format : {"csr", "mask", "nm"}) {
    const ir::Graph sparse = pruned_from_file(format);
    const ir::Graph dense = densified(sparse);
    const double sparsity_before = weight_sparsity(sparse);
    for (const Stage& stage : kStages) {
      DYNAMIC_SECTION(format << " then " << stage.name) {
        const ir::Graph from_sparse = run_stage(sparse, stage.yaml);
        const ir::Graph from_dense = run_stage(dense, stage.yaml);
        const ir::Tensor ys = runtime::run_reference(from_sparse, {images}).value()[0];
        const ir::Tensor yd = runtime::run_reference(from_dense, {images}).value()[0];
        CHECK(max_abs_diff(ys, yd) <= 1e-4f);
        if (stage.keeps_sparsity) CHECK(weight_sparsity(from_sparse) >= sparsity_before - 1e-9);
      }
    }
  }
}

TEST_CASE("fine-tuning and Taylor importance keep a pruned model loaded from a file pruned", "[recipe][sparse]") {
  const std::vector<std::string> families = pipeline::built_families();
  if (std::find(families.begin(), families.end(), "distill") == families.end()) {
    WARN("skipped: this build has no distill family (no LibTorch)");
    return;
  }
  for (const char* format : {"csr", "mask"}) {
    DYNAMIC_SECTION(format) {
      const ir::Graph sparse = pruned_from_file(format);
      const ir::Graph tuned = run_stage(sparse, "distill.taylor_importance, {distill.finetune: {epochs: 1}}");
      CHECK(weight_sparsity(tuned) >= weight_sparsity(sparse) - 1e-9);
    }
  }
}
