// prune.structured without LibTorch: the Fashion-MNIST fixture, small
// hand-built graphs (concat + slice, split, attention heads, a blocked group)
// and the option / bad-input errors.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <random>

#include "compress/io/cmf.h"
#include "compress/ir/verifier.h"
#include "compress/pass/options.h"
#include "compress/pass/registry.h"
#include "compress/support/logging.h"
#include "structured_test_util.h"
#include "fashion_data.h"

namespace compress {
namespace {

ir::Tensor random_tensor(ir::Shape shape, uint64_t seed, float scale = 1.0f) {
  std::mt19937 rng(static_cast<uint32_t>(seed));
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(ir::numel(shape)));
  for (float& x : v) x = dist(rng);
  return ir::Tensor::from_vector(ir::DType::kF32, std::move(shape), v);
}

ir::Graph load_fashion() {
  auto g = io::load_cmf(test::fashion_cnn_path());
  REQUIRE(g.has_value());
  return std::move(g).value();
}

// Plans with `options`, applies, and checks the pruned graph against the
// zeroed original on `input`.
prune::StructuredPlan prune_and_compare(const ir::Graph& graph, const prune::StructuredOptions& options,
                                        const std::vector<ir::Tensor>& inputs, ir::Graph* pruned_out,
                                        bool zeroing_matters = true) {
  auto plan = prune::plan_structured_pruning(graph, options);
  INFO((plan ? std::string() : plan.status().message()));
  REQUIRE(plan.has_value());
  ir::Graph pruned = graph.clone();
  const Status s = prune::apply_structured_plan(pruned, plan.value());
  INFO(s.message());
  REQUIRE(s.is_ok());
  REQUIRE(ir::verify(pruned).is_ok());
  ir::Graph zeroed = graph.clone();
  test::zero_removed_channels(zeroed, plan.value());
  auto expected = runtime::run_reference(zeroed, inputs);
  auto actual = runtime::run_reference(pruned, inputs);
  REQUIRE(expected.has_value());
  REQUIRE(actual.has_value());
  const test::OutputDifference d = test::compare_outputs(actual.value(), expected.value());
  INFO("max |pruned - zeroed| = " << d.max_abs << ", max |zeroed| = " << d.max_ref);
  CHECK(d.same_shape);
  CHECK(d.relative() < 1e-5);
  // The zeroing must matter (random weights): the unpruned original computes
  // something else. A trained model may lose only dead units.
  if (!zeroing_matters) {
    *pruned_out = std::move(pruned);
    return std::move(plan).value();
  }
  auto original = runtime::run_reference(graph, inputs);
  REQUIRE(original.has_value());
  if (plan.value().removed_units() > 0) CHECK(test::compare_outputs(original.value(), expected.value()).max_abs > 0);
  *pruned_out = std::move(pruned);
  return std::move(plan).value();
}

prune::StructuredOptions ratio(double r) {
  prune::StructuredOptions o;
  o.ratio = r;
  return o;
}

// A tiny graph builder over the checked Graph API.
struct Builder {
  ir::Graph g;
  uint64_t seed = 1;
  ir::Value* input(const std::string& name, ir::Shape shape) {
    return g.add_input(name, ir::ValueType{ir::DType::kF32, std::move(shape), nullptr}).value();
  }
  ir::Value* constant(const std::string& name, ir::Shape shape) {
    return g.add_constant(name, random_tensor(std::move(shape), seed++, 0.5f)).value();
  }
  ir::Value* node(const std::string& op, std::vector<ir::Value*> inputs, ir::AttributeMap attrs,
                  const std::string& name) {
    auto n = g.add_node(op, inputs, std::move(attrs), name);
    INFO((n ? std::string() : n.status().message()));
    REQUIRE(n.has_value());
    return n.value()->output(0);
  }
  ir::Value* conv(ir::Value* x, int64_t out, const std::string& name, int64_t k = 1) {
    const int64_t in = x->shape()[1];
    ir::Value* w = constant(name + ".weight", {out, in, k, k});
    ir::Value* b = constant(name + ".bias", {out});
    const int64_t p = k / 2;
    return node("conv2d", {x, w, b}, {{"padding", std::vector<int64_t>{p, p, p, p}}}, name);
  }
  ir::Value* linear(ir::Value* x, int64_t out, const std::string& name) {
    ir::Value* w = constant(name + ".weight", {out, x->shape().back()});
    ir::Value* b = constant(name + ".bias", {out});
    return node("linear", {x, w, b}, {}, name);
  }
};

TEST_CASE("structured 30 percent of the Fashion-MNIST CNN maps conv channels through flatten") {
  const ir::Graph graph = load_fashion();
  ir::Graph pruned;
  const ir::Tensor x = random_tensor({3, 1, 28, 28}, 7);
  prune::StructuredPlan plan = prune_and_compare(graph, ratio(0.3), {x}, &pruned);
  CHECK(test::out_channels(pruned, "conv1") == 12);  // 16 - floor(4.8)
  CHECK(test::out_channels(pruned, "conv2") == 23);  // 32 - floor(9.6)
  CHECK(test::out_channels(pruned, "fc1") == 90);    // 128 - floor(38.4)
  CHECK(pruned.find_node("fc1")->input(1)->shape()[1] == 23 * 49);
  CHECK(pruned.find_value("bn2.running_var")->shape() == ir::Shape{23});
  CHECK(test::out_channels(pruned, "fc2") == 10);  // the graph output keeps its classes
  REQUIRE(plan.skipped.size() == 1);
  CHECK(plan.skipped[0].find("fc2") != std::string::npos);
}

TEST_CASE("structured l1 removes the filters with the smallest L1 norm") {
  const ir::Graph graph = load_fashion();
  auto plan = prune::plan_structured_pruning(graph, ratio(0.3));
  REQUIRE(plan.has_value());
  // Independent reference: rank conv1's filters by sum |w|.
  const ir::Tensor& w = graph.find_value("conv1.weight")->constant();
  std::vector<std::pair<double, int64_t>> norms;
  for (int64_t o = 0; o < 16; ++o) {
    double s = 0;
    for (int64_t k = 0; k < 9; ++k) s += std::fabs(w.data<float>()[o * 9 + k]);
    norms.emplace_back(s, o);
  }
  std::sort(norms.begin(), norms.end());
  std::vector<int64_t> expected;
  for (int i = 0; i < 4; ++i) expected.push_back(norms[i].second);
  std::sort(expected.begin(), expected.end());
  const auto& groups = plan.value().analysis.groups;
  REQUIRE(groups[0].producers == std::vector<std::string>{"conv1"});
  std::vector<int64_t> removed_channels;
  for (int64_t u : plan.value().removed[0]) removed_channels.push_back(groups[0].members[0].indices[u][0]);
  CHECK(removed_channels == expected);
}

TEST_CASE("structured bn_gamma removes the channels with the smallest batch-norm scale") {
  const ir::Graph graph = load_fashion();
  prune::StructuredOptions o = ratio(0.3);
  o.criterion = "bn_gamma";
  ir::Graph pruned;
  prune_and_compare(graph, o, {random_tensor({1, 1, 28, 28}, 3)}, &pruned);
  const ir::Tensor& gamma = graph.find_value("bn2.weight")->constant();
  std::vector<float> sorted(gamma.data<float>(), gamma.data<float>() + 32);
  for (float& g : sorted) g = std::fabs(g);
  std::sort(sorted.begin(), sorted.end());
  // The 23 kept gammas are the 23 largest in magnitude.
  const ir::Tensor& kept = pruned.find_value("bn2.weight")->constant();
  REQUIRE(kept.numel() == 23);
  for (int64_t i = 0; i < 23; ++i) CHECK(std::fabs(kept.data<float>()[i]) >= sorted[8]);
}

TEST_CASE("structured round_to and exclude") {
  const ir::Graph graph = load_fashion();
  prune::StructuredOptions o = ratio(0.3);
  o.round_to = 8;
  o.exclude = {"conv2"};
  ir::Graph pruned;
  // fc1's weakest neurons are dead ReLUs of the trained model: zeroing them changes nothing.
  prune_and_compare(graph, o, {random_tensor({2, 1, 28, 28}, 4)}, &pruned, false);
  CHECK(test::out_channels(pruned, "conv1") == 16);  // 12 rounded up to a multiple of 8
  CHECK(test::out_channels(pruned, "conv2") == 32);  // excluded
  CHECK(test::out_channels(pruned, "fc1") == 96);    // 90 rounded up
}

TEST_CASE("structured target_flops on the Fashion-MNIST CNN removes half the FLOPs") {
  ir::Graph graph = load_fashion();
  pass::PassRegistry registry;
  REQUIRE(prune::register_structured_passes(registry).is_ok());
  auto options = pass::PassOptions::from_pairs({{"target_flops", "0.5"}}, "test");
  REQUIRE(options.has_value());
  auto p = registry.create("prune.structured", options.value());
  REQUIRE(p.has_value());
  pass::PassContext context;
  auto result = p.value()->run(graph, context);
  INFO((result ? std::string() : result.status().message()));
  REQUIRE(result.has_value());
  const auto& c = result.value().counters;
  CHECK(c.at("flops_after") <= 0.5 * c.at("flops_before"));
  CHECK(c.at("flops_after") > 0.45 * c.at("flops_before"));
  CHECK(result.value().layers.at("conv2").at("channels_before") == 32);
  CHECK(result.value().layers.at("conv2").at("channels_after") < 32);
  CHECK(ir::verify(graph).is_ok());
}

TEST_CASE("structured concat offsets and slice bounds are rewritten") {
  Builder b;
  ir::Value* x = b.input("x", {1, 3, 6, 6});
  ir::Value* a = b.node("relu", {b.conv(x, 8, "a", 3)}, {}, "a_relu");
  ir::Value* c = b.conv(x, 4, "b");
  ir::Value* cat = b.node("concat", {a, c}, {{"axis", int64_t{1}}}, "cat");
  ir::Value* sl = b.node("slice", {cat}, {{"axis", int64_t{1}}, {"start", int64_t{2}}, {"end", int64_t{10}}}, "sl");
  ir::Value* y1 = b.conv(sl, 5, "c");
  ir::Value* y2 = b.conv(cat, 5, "d");
  b.g.set_outputs({b.node("add", {y1, y2}, {}, "out")});
  REQUIRE(ir::verify(b.g).is_ok());
  ir::Graph pruned;
  prune::StructuredPlan plan = prune_and_compare(b.g, ratio(0.5), {random_tensor({2, 3, 6, 6}, 9)}, &pruned);
  // The slice splits each producer's channels into those it reads and those
  // it does not (concat channels 2..9 of 0..11): four groups of units, each
  // losing half.
  CHECK(plan.analysis.groups.size() == 4 + 1);  // + c and d, coupled by the add, reaching the output
  CHECK(test::out_channels(pruned, "a") == 4);
  CHECK(test::out_channels(pruned, "b") == 2);
  CHECK(pruned.find_node("d")->input(1)->shape()[1] == 6);
  CHECK(pruned.find_node("c")->input(1)->shape()[1] == 4);
  CHECK(pruned.find_node("sl")->attr_int("start") == 1);
  CHECK(pruned.find_node("sl")->attr_int("end") == 5);
}

TEST_CASE("structured split sizes follow the pruned channels") {
  Builder b;
  ir::Value* x = b.input("x", {1, 3, 5, 5});
  ir::Value* a = b.conv(x, 12, "a");
  auto split = b.g.add_node("split", {a}, {{"axis", int64_t{1}}, {"sizes", std::vector<int64_t>{4, 8}}}, "split");
  REQUIRE(split.has_value());
  ir::Value* y1 = b.conv(split.value()->output(0), 6, "p");
  ir::Value* y2 = b.conv(split.value()->output(1), 6, "q");
  b.g.set_outputs({b.node("add", {y1, y2}, {}, "out")});
  ir::Graph pruned;
  prune::StructuredPlan plan = prune_and_compare(b.g, ratio(0.3), {random_tensor({1, 3, 5, 5}, 5)}, &pruned);
  // One producer, two groups: the channels read by p and those read by q.
  CHECK(test::out_channels(pruned, "a") == 3 + 6);
  CHECK(pruned.find_node("split")->attr_ints("sizes") == std::vector<int64_t>{3, 6});
}

TEST_CASE("structured removes attention heads from q, k, v and the output projection") {
  Builder b;
  ir::Value* x = b.input("x", {2, 4, 8});
  auto heads = [&](ir::Value* v, const std::string& name) {
    ir::Value* r = b.node("reshape", {v}, {{"shape", std::vector<int64_t>{2, 4, 2, 4}}}, name + "_r");
    return b.node("permute", {r}, {{"perm", std::vector<int64_t>{0, 2, 1, 3}}}, name + "_p");
  };
  ir::Value* q = heads(b.linear(x, 8, "q"), "qh");
  ir::Value* k = heads(b.linear(x, 8, "k"), "kh");
  ir::Value* v = heads(b.linear(x, 8, "v"), "vh");
  ir::Value* att = b.node("scaled_dot_product_attention", {q, k, v}, {}, "att");
  ir::Value* m = b.node("permute", {att}, {{"perm", std::vector<int64_t>{0, 2, 1, 3}}}, "merge_p");
  m = b.node("reshape", {m}, {{"shape", std::vector<int64_t>{2, 4, 8}}}, "merge_r");
  b.g.set_outputs({b.node("add", {x, b.linear(m, 8, "o")}, {}, "out")});
  ir::Graph pruned;
  prune::StructuredPlan plan = prune_and_compare(b.g, ratio(0.5), {random_tensor({2, 4, 8}, 11)}, &pruned);
  bool found = false;
  for (size_t g = 0; g < plan.analysis.groups.size(); ++g) {
    const auto& group = plan.analysis.groups[g];
    if (group.producers == std::vector<std::string>{"q", "k", "v"}) {
      found = true;
      CHECK(group.num_units == 2);
      CHECK(group.unit_width == 4);
      CHECK(plan.removed[g].size() == 1);
    }
  }
  CHECK(found);
  for (const char* n : {"q", "k", "v"}) CHECK(test::out_channels(pruned, n) == 4);
  CHECK(pruned.find_node("o")->input(1)->shape()[1] == 4);
  CHECK(pruned.find_node("qh_r")->attr_ints("shape") == std::vector<int64_t>{2, 4, 1, 4});
}

TEST_CASE("structured prunes through a channel shuffle") {
  Builder b;
  ir::Value* x = b.input("x", {1, 3, 4, 4});
  ir::Value* cat = b.node("concat", {b.conv(x, 4, "a"), b.conv(x, 4, "b")}, {{"axis", int64_t{1}}}, "cat");
  ir::Value* r = b.node("reshape", {cat}, {{"shape", std::vector<int64_t>{1, 2, 4, 4, 4}}}, "split_r");
  ir::Value* t = b.node("transpose", {r}, {{"dim0", int64_t{1}}, {"dim1", int64_t{2}}}, "shuffle_t");
  ir::Value* m = b.node("reshape", {t}, {{"shape", std::vector<int64_t>{1, -1, 4, 4}}}, "merge_r");
  b.g.set_outputs({b.conv(m, 3, "c")});
  ir::Graph pruned;
  prune::StructuredPlan plan = prune_and_compare(b.g, ratio(0.5), {random_tensor({1, 3, 4, 4}, 13)}, &pruned);
  // Channel j of a and channel j of b land side by side: they are one unit.
  REQUIRE(plan.analysis.groups.size() == 2);
  CHECK(plan.analysis.groups[0].producers == std::vector<std::string>{"a", "b"});
  CHECK(plan.analysis.groups[0].num_units == 4);
  CHECK(test::out_channels(pruned, "a") == 2);
  CHECK(test::out_channels(pruned, "b") == 2);
  CHECK(pruned.find_node("split_r")->attr_ints("shape") == std::vector<int64_t>{1, 2, 2, 4, 4});
  CHECK(pruned.find_node("c")->input(1)->shape()[1] == 4);
}

TEST_CASE("structured skips a group that cannot be pruned and names it") {
  Builder b;
  ir::Value* x = b.input("x", {1, 3, 4, 4});
  ir::Value* s = b.node("softmax", {b.conv(x, 6, "c1")}, {{"axis", int64_t{1}}}, "sm");
  ir::Value* h = b.node("tanh", {b.conv(s, 6, "c2")}, {}, "h");
  b.g.set_outputs({b.conv(h, 2, "c3")});
  std::vector<std::string> warnings;
  const LogLevel level = log_level();
  set_log_level(LogLevel::kWarning);
  set_log_sink([&](LogLevel l, const std::string& m) {
    if (l == LogLevel::kWarning) warnings.push_back(m);
  });
  auto planned = prune::plan_structured_pruning(b.g, ratio(0.3));
  set_log_sink(nullptr);
  set_log_level(level);
  REQUIRE(planned.has_value());
  bool warned = false;
  for (const std::string& w : warnings) {
    warned = warned || (w.find("c1") != std::string::npos && w.find("softmax") != std::string::npos);
  }
  CHECK(warned);
  ir::Graph pruned;
  prune::StructuredPlan plan = prune_and_compare(b.g, ratio(0.3), {random_tensor({1, 3, 4, 4}, 2)}, &pruned);
  CHECK(test::out_channels(pruned, "c1") == 6);
  CHECK(test::out_channels(pruned, "c2") == 5);
  bool named = false;
  for (const std::string& why : plan.skipped) {
    named = named || (why.find("c1") == 0 && why.find("softmax") != std::string::npos);
  }
  CHECK(named);
}

TEST_CASE("structured taylor: stored importance is sliced with the channels, on a clone, and saved") {
  // x -> conv1 (4) -> relu -> conv2 (3, the graph output: not pruned).
  Builder b;
  ir::Value* x = b.input("x", {1, 2, 4, 4});
  ir::Value* c1 = b.conv(x, 4, "conv1");
  ir::Value* r = b.node("relu", {c1}, {}, "relu");
  b.g.set_outputs({b.conv(r, 3, "conv2")});
  REQUIRE(prune::store_channel_importance(b.g, "conv1", {0.1f, 5.0f, 0.2f, 3.0f}).is_ok());
  REQUIRE(prune::store_channel_importance(b.g, "conv2", {1.0f, 2.0f, 3.0f}).is_ok());
  auto stored = [](const ir::Graph& g, const std::string& node) {
    const auto t = prune::stored_channel_importance(g, *g.find_node(node));
    REQUIRE(t.has_value());
    REQUIRE(*t != nullptr);
    return std::vector<float>((*t)->data<float>(), (*t)->data<float>() + (*t)->numel());
  };
  prune::StructuredOptions o = ratio(0.5);
  o.criterion = "taylor";
  ir::Graph pruned;
  prune_and_compare(b.g, o, {random_tensor({1, 2, 4, 4}, 3)}, &pruned);
  // conv1 keeps its two best channels (1 and 3), and their scores.
  CHECK(test::out_channels(pruned, "conv1") == 2);
  CHECK(stored(pruned, "conv1") == std::vector<float>{5.0f, 3.0f});
  CHECK(stored(pruned, "conv2") == std::vector<float>{1.0f, 2.0f, 3.0f});
  CHECK(stored(b.g, "conv1").size() == 4);  // the original is untouched
  const std::string bytes = io::serialize_cmf(pruned).value();
  auto loaded = io::parse_cmf(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "pruned");
  REQUIRE(loaded.has_value());
  CHECK(stored(*loaded, "conv1") == std::vector<float>{5.0f, 3.0f});
  // Scores are stored on nodes: a name that is not one is an error naming it.
  const Status missing = prune::store_channel_importance(b.g, "conv9", {1.0f});
  CHECK(missing.code() == StatusCode::kNotFound);
  CHECK(missing.message().find("'conv9'") != std::string::npos);
}

TEST_CASE("structured errors: ratio range, conflicting targets, unmatched pattern, nothing prunable") {
  pass::PassRegistry registry;
  REQUIRE(prune::register_structured_passes(registry).is_ok());
  auto create = [&](std::vector<std::pair<std::string, std::string>> pairs) {
    auto o = pass::PassOptions::from_pairs(pairs, "test");
    REQUIRE(o.has_value());
    return registry.create("prune.structured", o.value());
  };
  for (const char* bad : {"1.0", "1.5", "-0.1"}) {
    auto p = create({{"ratio", bad}});
    REQUIRE(!p.has_value());
    CHECK(p.status().message().find("ratio") != std::string::npos);
  }
  CHECK(!create({{"target_flops", "1"}}).has_value());
  CHECK(!create({{"ratio", "0.3"}, {"target_flops", "0.5"}}).has_value());
  CHECK(!create({{"criterion", "hessian"}}).has_value());
  CHECK(!create({{"ratoi", "0.3"}}).has_value());

  const ir::Graph fashion = load_fashion();
  prune::StructuredOptions o = ratio(0.3);
  o.exclude = {"layer9.*"};
  auto unmatched = prune::plan_structured_pruning(fashion, o);
  REQUIRE(!unmatched.has_value());
  CHECK(unmatched.status().message().find("layer9.*") != std::string::npos);

  o.exclude = {"conv*", "fc1"};
  auto all_excluded = prune::plan_structured_pruning(fashion, o);
  REQUIRE(!all_excluded.has_value());
  CHECK(all_excluded.status().message().find("nothing prunable") != std::string::npos);

  Builder b;
  ir::Value* x = b.input("x", {2, 4});
  b.g.set_outputs({b.linear(x, 3, "only")});
  auto nothing = prune::plan_structured_pruning(b.g, ratio(0.3));
  REQUIRE(!nothing.has_value());
  CHECK(nothing.status().message().find("nothing prunable") != std::string::npos);
  CHECK(nothing.status().message().find("only") != std::string::npos);

  prune::StructuredOptions unreachable;
  unreachable.target_params = 0.99;
  unreachable.min_channels = 8;
  auto too_far = prune::plan_structured_pruning(fashion, unreachable);
  REQUIRE(!too_far.has_value());
  CHECK(too_far.status().message().find("cannot be reached") != std::string::npos);
}

}  // namespace
}  // namespace compress
