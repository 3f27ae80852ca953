#include "torch_catch.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <numeric>

#include "compress/distill/finetune.h"
#include "compress/eval/dataset.h"
#include "compress/eval/metrics.h"
#include "compress/io/cmf.h"
#include "compress/ir/sparse_layout.h"
#include "compress/pass/options.h"
#include "compress/pass/registry.h"
#include "compress/prune/prune_passes.h"
#include "compress/runtime/backend.h"
#include "fashion_data.h"

using namespace compress;
using distill::FinetunePass;

namespace {

double top1(const ir::Graph& graph, const eval::DataSource& data) {
  auto backend = runtime::make_backend("reference");
  REQUIRE(backend.has_value());
  auto plan = (*backend)->compile(graph);
  REQUIRE(plan.has_value());
  auto acc = eval::evaluate_top1(**plan, data, 250, false);
  REQUIRE(acc.has_value());
  return acc->top1();
}

// The weights of conv2d and linear nodes (input 1).
std::vector<ir::Value*> layer_weights(const ir::Graph& graph) {
  std::vector<ir::Value*> out;
  for (ir::Node* node : graph.nodes()) {
    if ((node->op() == "conv2d" || node->op() == "linear") && node->input(1)->is_constant()) {
      out.push_back(node->input(1));
    }
  }
  return out;
}

// Layer-wise unstructured magnitude pruning written independently of any
// prune pass: in each conv2d/linear weight the floor(ratio * numel) entries of
// smallest magnitude become zero and the weight gets a mask layout.
void prune_by_magnitude(ir::Graph& graph, double ratio) {
  for (ir::Value* w : layer_weights(graph)) {
    // A deep copy: constants of a cloned graph share their storage.
    ir::Tensor dense = w->constant().to_dense().value().clone().value();
    float* v = dense.data<float>();
    std::vector<int64_t> idx(static_cast<size_t>(dense.numel()));
    std::iota(idx.begin(), idx.end(), 0);
    std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return std::abs(v[a]) < std::abs(v[b]); });
    const auto k = static_cast<size_t>(std::floor(ratio * static_cast<double>(dense.numel())));
    for (size_t i = 0; i < k; ++i) v[idx[i]] = 0.0f;
    w->set_constant(ir::to_mask_layout(dense).value());
  }
}

// Dense copies of every f32 constant, by name.
std::map<std::string, std::vector<float>> weights_of(const ir::Graph& graph) {
  std::map<std::string, std::vector<float>> out;
  for (const ir::Value* c : graph.constants()) {
    if (c->constant().dtype() != ir::DType::kF32) continue;
    ir::Tensor dense = c->constant().to_dense().value();
    out[c->name()].assign(dense.data<float>(), dense.data<float>() + dense.numel());
  }
  return out;
}

pass::PassOptions options_of(const std::vector<std::pair<std::string, std::string>>& pairs) {
  auto o = pass::PassOptions::from_pairs(pairs, "test");
  REQUIRE(o.has_value());
  return *o;
}

Expected<pass::PassResult> finetune(ir::Graph& graph, const eval::DataSource* training, const ir::Graph* teacher,
                                    const std::vector<std::pair<std::string, std::string>>& options,
                                    uint64_t seed = 7) {
  pass::PassRegistry registry;
  REQUIRE(distill::register_distill_passes(registry).is_ok());
  auto p = registry.create("distill.finetune", options_of(options));
  if (!p.has_value()) return p.status();
  pass::PassContext context;
  context.training = training;
  context.reference_model = teacher;
  context.rng.seed(seed);
  context.progress = false;
  context.threads = 1;
  return (*p)->run(graph, context);
}

}  // namespace

TEST_CASE("distill.finetune recovers the accuracy of the fixture pruned to 80 percent with masks intact") {
  const ir::Graph original = test::fashion_cnn();
  ir::Graph graph = original.clone();
  prune_by_magnitude(graph, 0.8);
  const auto pruned_weights = weights_of(graph);
  auto test = test::fashion_data("test", 1000);
  auto train = test::fashion_data("train", 2000);
  const double before = top1(graph, *test);

  auto result = finetune(graph, train.get(), &original, {{"epochs", "1"}, {"lr", "0.003"}, {"batch", "32"}});
  REQUIRE(result.has_value());
  const double after = top1(graph, *test);
  INFO("top-1 on 1000 test images: pruned " << before << "%, fine-tuned " << after << "% (the original: 91.1%)");
  CHECK(after > before + 5.0);
  CHECK(result->changed);
  CHECK(result->counters.at("steps") == 2000 / 32);
  CHECK(result->counters.at("alpha") == 0.5);  // the default with a teacher
  CHECK(std::isfinite(result->counters.at("final_loss")));

  // Every pruned entry is still exactly zero, the layout is still a mask,
  // and the kept weights did train.
  const auto trained = weights_of(graph);
  for (const ir::Value* w : layer_weights(graph)) {
    INFO(w->name());
    REQUIRE(w->constant().is_sparse());
    CHECK(w->constant().sparse_layout()->format == ir::SparseFormat::kMask);
    const auto& old_values = pruned_weights.at(w->name());
    const auto& new_values = trained.at(w->name());
    int64_t zeros = 0, nonzero_kept = 0, changed = 0;
    for (size_t i = 0; i < old_values.size(); ++i) {
      if (old_values[i] == 0.0f) {
        zeros += new_values[i] == 0.0f ? 1 : 0;
        if (new_values[i] != 0.0f) FAIL_CHECK("a pruned entry became " << new_values[i]);
      } else {
        ++nonzero_kept;
        changed += new_values[i] != old_values[i] ? 1 : 0;
      }
    }
    CHECK(zeros == static_cast<int64_t>(std::floor(0.8 * static_cast<double>(old_values.size()))));
    CHECK(changed > nonzero_kept / 2);
  }
  for (const auto& [layer, stats] : result->layers) CHECK(stats.at("sparsity") >= 0.79);
}

TEST_CASE("distill.finetune: the same seed gives bit-identical weights and another seed does not") {
  const ir::Graph original = test::fashion_cnn();
  auto train = test::fashion_data("train", 256);
  auto run = [&](uint64_t seed) {
    ir::Graph g = original.clone();
    prune_by_magnitude(g, 0.5);
    auto r = finetune(g, train.get(), &original, {{"steps", "6"}, {"batch", "32"}}, seed);
    REQUIRE(r.has_value());
    return weights_of(g);
  };
  const auto a = run(11), b = run(11), c = run(12);
  REQUIRE(a.size() == b.size());
  bool any_difference_with_other_seed = false;
  for (const auto& [name, values] : a) {
    INFO(name);
    const auto& other = b.at(name);
    REQUIRE(values.size() == other.size());
    CHECK(std::memcmp(values.data(), other.data(), values.size() * sizeof(float)) == 0);
    if (std::memcmp(values.data(), c.at(name).data(), values.size() * sizeof(float)) != 0) {
      any_difference_with_other_seed = true;
    }
  }
  CHECK(any_difference_with_other_seed);
}

TEST_CASE("distill.finetune without training data or labels is a clear error") {
  ir::Graph graph = test::fashion_cnn();
  auto r = finetune(graph, nullptr, nullptr, {});
  REQUIRE_FALSE(r.has_value());
  CHECK(r.status().code() == StatusCode::kInvalidArgument);
  CHECK_THAT(r.status().message(), Catch::Contains("needs labelled training data"));

  auto unlabelled = eval::from_tensor(ir::Tensor::zeros(ir::DType::kF32, {8, 1, 28, 28}).value(), {}, "zeros");
  REQUIRE(unlabelled.has_value());
  r = finetune(graph, unlabelled->get(), nullptr, {});
  REQUIRE_FALSE(r.has_value());
  CHECK_THAT(r.status().message(), Catch::Contains("has no labels"));

  auto wrong_shape = eval::from_tensor(ir::Tensor::zeros(ir::DType::kF32, {8, 3, 28, 28}).value(),
                                       std::vector<int64_t>(8, 1), "rgb");
  REQUIRE(wrong_shape.has_value());
  r = finetune(graph, wrong_shape->get(), nullptr, {});
  REQUIRE_FALSE(r.has_value());
  CHECK_THAT(r.status().message(), Catch::Contains("[3,28,28]") && Catch::Contains("[1,1,28,28]"));

  auto bad_label = eval::from_tensor(ir::Tensor::zeros(ir::DType::kF32, {8, 1, 28, 28}).value(),
                                     std::vector<int64_t>(8, 10), "label 10");
  REQUIRE(bad_label.has_value());
  r = finetune(graph, bad_label->get(), nullptr, {{"steps", "1"}});
  REQUIRE_FALSE(r.has_value());
  CHECK_THAT(r.status().message(), Catch::Contains("label 10") && Catch::Contains("10 classes"));
}

TEST_CASE("distill.finetune options: bad values and combinations name the key") {
  ir::Graph graph = test::fashion_cnn();
  auto train = test::fashion_data("train", 64);
  auto r = finetune(graph, train.get(), nullptr, {{"alpha", "0.5"}});
  REQUIRE_FALSE(r.has_value());
  CHECK_THAT(r.status().message(), Catch::Contains("needs a teacher"));
  r = finetune(graph, train.get(), nullptr, {{"epochs", "1"}, {"steps", "3"}});
  REQUIRE_FALSE(r.has_value());
  CHECK_THAT(r.status().message(), Catch::Contains("either 'epochs' or 'steps'"));
  r = finetune(graph, train.get(), nullptr, {{"optimizer", "rmsprop"}});
  REQUIRE_FALSE(r.has_value());
  CHECK_THAT(r.status().message(), Catch::Contains("optimizer"));
  r = finetune(graph, train.get(), nullptr, {{"momentum", "0.9"}});  // adam has no momentum option
  REQUIRE_FALSE(r.has_value());
  CHECK_THAT(r.status().message(), Catch::Contains("momentum"));
  r = finetune(graph, train.get(), nullptr, {{"lr", "0"}});
  REQUIRE_FALSE(r.has_value());
  CHECK_THAT(r.status().message(), Catch::Contains("lr"));
}

TEST_CASE("distill.finetune without a teacher trains on labels only (sgd)") {
  ir::Graph graph = test::fashion_cnn();
  auto train = test::fashion_data("train", 256);
  auto r = finetune(graph, train.get(), nullptr,
                    {{"steps", "4"}, {"optimizer", "sgd"}, {"momentum", "0.9"}, {"lr", "0.01"}, {"batch", "32"}});
  REQUIRE(r.has_value());
  CHECK(r->counters.at("alpha") == 0.0);
  CHECK(r->counters.at("final_kd") == 0.0);
  CHECK(r->counters.at("steps") == 4);
  CHECK(r->counters.at("final_loss") == Approx(r->counters.at("final_ce")));
}

TEST_CASE("distill.finetune prune_schedule prunes gradually to the exact target sparsity in every layer") {
  const ir::Graph original = test::fashion_cnn();
  ir::Graph graph = original.clone();
  auto test = test::fashion_data("test", 1000);
  auto train = test::fashion_data("train", 2000);
  auto r = finetune(graph, train.get(), &original,
                    {{"steps", "40"}, {"lr", "0.002"}, {"prune_schedule", "{sparsity: 0.8, end: 30, frequency: 5}"}});
  REQUIRE(r.has_value());
  CHECK(r->counters.at("prune_events") == 7);  // steps 0, 5, ..., 30
  CHECK(r->counters.at("prune_sparsity") == 0.8);
  for (const ir::Value* w : layer_weights(graph)) {
    INFO(w->name());
    REQUIRE(w->constant().is_sparse());
    CHECK(w->constant().sparse_layout()->format == ir::SparseFormat::kMask);
    const ir::Tensor dense = w->constant().to_dense().value();
    int64_t zeros = 0;
    for (int64_t i = 0; i < dense.numel(); ++i) zeros += dense.data<float>()[i] == 0.0f ? 1 : 0;
    CHECK(zeros == std::llround(0.8 * static_cast<double>(dense.numel())));
  }
  // One-shot 80% without training scores 20.1% on these images (the first
  // test case measures it); pruning while training keeps the model working.
  const double gradual = top1(graph, *test);
  INFO("gradual pruning to 80% while training: " << gradual << "%");
  CHECK(gradual > 60.0);
}

TEST_CASE("distill.finetune prune_schedule: bad schedules are errors") {
  ir::Graph graph = test::fashion_cnn();
  auto train = test::fashion_data("train", 256);
  auto r = finetune(graph, train.get(), nullptr, {{"steps", "4"}, {"prune_schedule", "{sparsity: 0.5, end: 10}"}});
  REQUIRE_FALSE(r.has_value());
  CHECK_THAT(r.status().message(), Catch::Contains("only 4 steps"));
  r = finetune(graph, train.get(), nullptr, {{"prune_schedule", "{sparsity: 0.5, frequncy: 10}"}});
  REQUIRE_FALSE(r.has_value());
  CHECK_THAT(r.status().message(), Catch::Contains("unknown key 'frequncy'"));
  r = finetune(graph, train.get(), nullptr, {{"prune_schedule", "{sparsity: 1.0}"}});
  REQUIRE_FALSE(r.has_value());
  CHECK_THAT(r.status().message(), Catch::Contains("[0, 1)"));
  r = finetune(graph, train.get(), nullptr, {{"prune_schedule", "{frequency: 10}"}});
  REQUIRE_FALSE(r.has_value());
  CHECK_THAT(r.status().message(), Catch::Contains("'sparsity'"));
}

// Reads "key=value key=value" from an environment variable.
std::vector<std::pair<std::string, std::string>> env_pairs(const char* name) {
  std::vector<std::pair<std::string, std::string>> out;
  if (const char* env = std::getenv(name)) {
    std::istringstream in(env);
    std::string kv;
    while (in >> kv) {
      const size_t eq = kv.find('=');
      REQUIRE(eq != std::string::npos);
      out.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
    }
  }
  return out;
}

// The issue-6 measurement: fashion_cnn pruned 80% by prune.magnitude, then one
// epoch of KD fine-tuning on the full training set, top-1 on the full test
// set. Hidden (about a minute): test_distill "[.measure]", with
// DISTILL_MEASURE_PRUNE="scope=global" (prune.magnitude options, ratio 0.8
// by default), DISTILL_MEASURE_OPTIONS="lr=0.003 batch=32" (distill.finetune
// options) and DISTILL_MEASURE_SEED.
TEST_CASE("measure: 80 percent magnitude pruning plus one epoch of KD fine-tuning", "[.measure]") {
  const ir::Graph original = test::fashion_cnn();
  auto test = test::fashion_data("test", -1);
  auto train = test::fashion_data("train", -1);
  ir::Graph graph = original.clone();
  {
    pass::PassRegistry registry;
    REQUIRE(prune::register_prune_passes(registry).is_ok());
    auto prune_options = env_pairs("DISTILL_MEASURE_PRUNE");
    if (std::none_of(prune_options.begin(), prune_options.end(), [](const auto& kv) { return kv.first == "ratio"; })) {
      prune_options.emplace_back("ratio", "0.8");
    }
    auto p = registry.create("prune.magnitude", options_of(prune_options));
    REQUIRE(p.has_value());
    pass::PassContext context;
    context.progress = false;
    REQUIRE((*p)->run(graph, context).has_value());
  }
  const double original_top1 = top1(original, *test);
  const double pruned_top1 = top1(graph, *test);
  const char* seed = std::getenv("DISTILL_MEASURE_SEED");
  const auto t0 = std::chrono::steady_clock::now();
  auto r = finetune(graph, train.get(), &original, env_pairs("DISTILL_MEASURE_OPTIONS"),
                    seed != nullptr ? std::stoull(seed) : 7);
  REQUIRE(r.has_value());
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double tuned_top1 = top1(graph, *test);
  WARN("original " << original_top1 << "%, pruned 80% " << pruned_top1 << "%, after 1 epoch KD " << tuned_top1
                   << "% (fine-tuning " << seconds << " s, " << r->counters.at("steps") << " steps, final loss "
                   << r->counters.at("final_loss") << ")");
}
