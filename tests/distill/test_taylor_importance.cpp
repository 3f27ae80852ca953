#include "torch_catch.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

#include "compress/distill/taylor_importance.h"
#include "compress/eval/dataset.h"
#include "compress/eval/metrics.h"
#include "compress/io/cmf.h"
#include "compress/ir/verifier.h"
#include "compress/pass/options.h"
#include "compress/prune/importance.h"
#include "compress/prune/structured.h"
#include "compress/runtime/backend.h"
#include "fashion_data.h"
#include "compress/torch/trainable_model.h"

using namespace compress;
using distill::TaylorImportancePass;

namespace {

ir::Graph scored(int64_t samples, int64_t batch, const eval::DataSource& data) {
  ir::Graph g = test::fashion_cnn();
  pass::PassContext context;
  context.training = &data;
  context.progress = false;
  TaylorImportancePass::Options o;
  o.samples = samples;
  o.batch = batch;
  TaylorImportancePass pass(o);
  auto r = pass.run(g, context);
  REQUIRE(r.has_value());
  REQUIRE(r->counters.at("samples") == samples);
  return g;
}

std::vector<float> stored(const ir::Graph& g, const std::string& node) {
  const ir::Node* n = g.find_node(node);
  REQUIRE(n != nullptr);
  const auto t = prune::stored_channel_importance(g, *n);
  REQUIRE(t.has_value());
  REQUIRE(*t != nullptr);
  return std::vector<float>((*t)->data<float>(), (*t)->data<float>() + (*t)->numel());
}

// The reference, written independently of the pass: for each batch,
// backward() on the mean cross-entropy of the model in eval mode, then by hand
// in double per output channel o the sum of p * grad over row o of every
// parameter in `names` (the layer's weight and bias, the batch norm that
// follows a conv); its absolute value weighted by the batch's share of the
// samples.
std::vector<double> reference(const ir::Graph& graph, const eval::DataSource& data, int64_t samples, int64_t batch,
                              const std::vector<std::string>& names) {
  auto model = compress::torch::TrainableModel::create(graph);
  REQUIRE(model.has_value());
  (*model)->eval();
  const auto params = (*model)->named_parameters();
  for (const std::string& name : names) REQUIRE(params.find(name) != nullptr);
  const int64_t channels = params.find(names[0])->size(0);
  std::vector<double> score(static_cast<size_t>(channels), 0.0);
  for (int64_t start = 0; start < samples; start += batch) {
    const int64_t count = std::min(batch, samples - start);
    auto b = data.batch(start, count);
    REQUIRE(b.has_value());
    std::vector<int64_t> shape(b->inputs.shape().begin(), b->inputs.shape().end());
    at::Tensor images = at::from_blob(const_cast<float*>(b->inputs.data<float>()), shape, at::kFloat).clone();
    at::Tensor labels = at::from_blob(b->labels.data(), {count}, at::kLong).clone();
    for (const auto& item : params) {
      if (item.value().grad().defined()) item.value().mutable_grad().zero_();
    }
    at::Tensor loss = at::cross_entropy_loss((*model)->forward(images), labels);
    loss.backward();
    std::vector<double> sum(static_cast<size_t>(channels), 0.0);
    for (const std::string& name : names) {
      const at::Tensor p = params.find(name)->detach().contiguous();
      const at::Tensor g = params.find(name)->grad().contiguous();
      REQUIRE(p.size(0) == channels);
      const int64_t per = p.numel() / channels;
      const float* pv = p.data_ptr<float>();
      const float* gv = g.data_ptr<float>();
      for (int64_t o = 0; o < channels; ++o) {
        for (int64_t k = 0; k < per; ++k) sum[o] += double(pv[o * per + k]) * double(gv[o * per + k]);
      }
    }
    for (int64_t o = 0; o < channels; ++o) score[o] += std::fabs(sum[o]) * double(count) / double(samples);
  }
  return score;
}

int64_t out_channels(const ir::Graph& g, const std::string& node) {
  const ir::Node* n = g.find_node(node);
  REQUIRE(n != nullptr);
  return n->input(1)->shape()[0];
}

double top1(const ir::Graph& graph, const eval::DataSource& data) {
  auto backend = runtime::make_backend("reference");
  REQUIRE(backend.has_value());
  auto plan = (*backend)->compile(graph);
  REQUIRE(plan.has_value());
  auto acc = eval::evaluate_top1(**plan, data, 100, false);
  REQUIRE(acc.has_value());
  return acc->top1();
}

}  // namespace

TEST_CASE("taylor importance equals w times grad per channel computed by hand", "[distill][taylor]") {
  // 200 samples in batches of 64: three full batches and one of 8.
  auto data = test::fashion_data("train", 300);
  const ir::Graph g = scored(200, 64, *data);
  const ir::Graph original = test::fashion_cnn();
  const std::vector<std::pair<std::string, std::vector<std::string>>> layers = {
      {"conv1", {"conv1.weight", "bn1.weight", "bn1.bias"}},
      {"conv2", {"conv2.weight", "bn2.weight", "bn2.bias"}},
      {"fc1", {"fc1.weight", "fc1.bias"}},
      {"fc2", {"fc2.weight", "fc2.bias"}}};
  for (const auto& [node, names] : layers) {
    INFO(node);
    const std::vector<double> want = reference(original, *data, 200, 64, names);
    const std::vector<float> got = stored(g, node);
    REQUIRE(static_cast<int64_t>(got.size()) == out_channels(original, node));
    REQUIRE(got.size() == want.size());
    const double max = *std::max_element(want.begin(), want.end());
    REQUIRE(max > 0);
    for (size_t o = 0; o < want.size(); ++o) {
      INFO("channel " << o << ": " << got[o] << " vs " << want[o]);
      CHECK(std::fabs(got[o] - want[o]) <= 1e-4 * max);
    }
  }
  // The weights themselves are untouched.
  for (const ir::Value* c : original.constants()) {
    const ir::Tensor& a = c->constant();
    const ir::Tensor& b = g.find_value(c->name())->constant();
    REQUIRE(a.numel() == b.numel());
    CHECK(std::equal(a.data<float>(), a.data<float>() + a.numel(), b.data<float>()));
  }
}

TEST_CASE("taylor scores survive cmf save and load, and drive prune.structured", "[distill][taylor]") {
  auto data = test::fashion_data("train", 128);
  const ir::Graph g = scored(128, 64, *data);
  const std::string path = "test_taylor_importance.cmf";
  REQUIRE(io::save_cmf(g, path).is_ok());
  auto loaded = io::load_cmf(path);
  std::remove(path.c_str());
  REQUIRE(loaded.has_value());
  for (const char* node : {"conv1", "conv2", "fc1", "fc2"}) CHECK(stored(*loaded, node) == stored(g, node));

  const std::vector<float> conv1 = stored(*loaded, "conv1");
  const ir::Tensor conv1_weight = loaded->find_value("conv1.weight")->constant();
  prune::StructuredOptions o;
  o.criterion = "taylor";
  o.ratio = 0.5;
  prune::StructuredPrunePass pass(o);
  pass::PassContext context;
  auto r = pass.run(*loaded, context);
  REQUIRE(r.has_value());
  REQUIRE(ir::verify(*loaded).is_ok());
  // Every prunable group halves; fc2 writes the graph output and keeps 10.
  CHECK(out_channels(*loaded, "conv1") == 8);
  CHECK(out_channels(*loaded, "conv2") == 16);
  CHECK(out_channels(*loaded, "fc1") == 64);
  CHECK(out_channels(*loaded, "fc2") == 10);
  // conv1 is a group of its own: the kept filters are the 8 of highest score.
  std::vector<int64_t> order(conv1.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return conv1[a] > conv1[b]; });
  std::vector<int64_t> kept(order.begin(), order.begin() + 8);
  std::sort(kept.begin(), kept.end());
  const ir::Tensor& pruned = loaded->find_value("conv1.weight")->constant();
  REQUIRE(pruned.numel() == 8 * 9);
  for (size_t k = 0; k < kept.size(); ++k) {
    INFO("kept filter " << kept[k]);
    CHECK(std::equal(pruned.data<float>() + k * 9, pruned.data<float>() + (k + 1) * 9,
                     conv1_weight.data<float>() + kept[k] * 9));
  }
  // The stored scores were sliced with their channels (no stale lengths).
  for (const char* node : {"conv1", "conv2", "fc1", "fc2"}) {
    INFO(node);
    const std::vector<float> s = stored(*loaded, node);
    CHECK(static_cast<int64_t>(s.size()) == out_channels(*loaded, node));
  }
  const std::vector<float> conv1_after = stored(*loaded, "conv1");
  for (size_t k = 0; k < kept.size(); ++k) CHECK(conv1_after[k] == conv1[kept[k]]);
  // The pruned graph runs and still classifies (no fine-tuning).
  auto test = test::fashion_data("train", 300);
  CHECK(top1(*loaded, *test) > 0.3);
  // And it saves and loads again.
  REQUIRE(io::save_cmf(*loaded, path).is_ok());
  auto again = io::load_cmf(path);
  std::remove(path.c_str());
  REQUIRE(again.has_value());
}

TEST_CASE("taylor criterion without stored scores and the pass without training data are errors",
          "[distill][taylor]") {
  ir::Graph g = test::fashion_cnn();
  prune::StructuredOptions o;
  o.criterion = "taylor";
  o.target_flops = 0.5;
  prune::StructuredPrunePass prune_pass(o);
  pass::PassContext context;
  auto r = prune_pass.run(g, context);
  REQUIRE_FALSE(r.has_value());
  const std::string message = r.status().message();
  CHECK(message.find("distill.taylor_importance") != std::string::npos);
  CHECK(message.find("conv1") != std::string::npos);

  TaylorImportancePass taylor;
  auto t = taylor.run(g, context);
  REQUIRE_FALSE(t.has_value());
  CHECK(t.status().message().find("training data") != std::string::npos);
  CHECK(prune::stored_channel_importance(g, *g.find_node("conv1")).value() == nullptr);

  // A stored score of the wrong length is named, not read past its end.
  REQUIRE(prune::store_channel_importance(g, "conv1", std::vector<float>(3, 1.0f)).is_ok());
  auto bad = prune_pass.run(g, context);
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.status().message().find("stored importance of 'conv1'") != std::string::npos);

  // Recipe options.
  auto parsed = TaylorImportancePass::parse_options(
      pass::PassOptions::from_pairs({{"samples", "256"}, {"batch", "32"}}, "test").value());
  REQUIRE(parsed.has_value());
  CHECK(parsed->samples == 256);
  CHECK(parsed->batch == 32);
  CHECK_FALSE(TaylorImportancePass::parse_options(pass::PassOptions::from_pairs({{"batch", "0"}}, "test").value())
                  .has_value());
}
