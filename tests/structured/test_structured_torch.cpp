// prune.structured on every architecture of the import issue (torchvision
// CNNs, transformer encoder, GPT decoder): 30% of each group's channels are
// removed; the pruned graph verifies, has the expected channel counts, and
// computes what the original computes with those channels zeroed.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdlib>
#include <iostream>

#include "compress/io/npy.h"
#include "compress/ir/verifier.h"
#include "compress/pass/options.h"
#include "compress/pass/registry.h"
#include "compress/support/logging.h"
#include "compress/torch/import.h"
#include "structured_test_util.h"

namespace compress {
namespace {

std::string fixture(const std::string& name) { return std::string(COMPRESS_TORCH_FIXTURES) + "/" + name; }

struct Pruned {
  ir::Graph original;
  ir::Graph pruned;
  prune::StructuredPlan plan;
};

// Imports NAME.pt, prunes 30% of every prunable group and checks the
// surgery against the zeroed original on NAME.input.npy.
Pruned prune_and_check(const std::string& name, double tolerance = 1e-4) {
  auto t0 = std::chrono::steady_clock::now();
  auto imported = torch::import_file(fixture(name + ".pt"));
  INFO((imported ? std::string() : imported.status().message()));
  REQUIRE(imported.has_value());
  Pruned r{std::move(imported).value(), ir::Graph(), {}};
  prune::StructuredOptions options;
  options.ratio = 0.3;
  auto plan = prune::plan_structured_pruning(r.original, options);
  INFO((plan ? std::string() : plan.status().message()));
  REQUIRE(plan.has_value());
  r.plan = std::move(plan).value();
  CHECK(r.plan.removed_units() > 0);
  r.pruned = r.original.clone();
  const Status applied = prune::apply_structured_plan(r.pruned, r.plan);
  INFO(applied.message());
  REQUIRE(applied.is_ok());
  REQUIRE(ir::verify(r.pruned).is_ok());

  ir::Graph zeroed = r.original.clone();
  test::zero_removed_channels(zeroed, r.plan);
  const ir::Tensor input = io::load_npy(fixture(name + ".input.npy")).value();
  auto expected = runtime::run_reference(zeroed, {input});
  REQUIRE(expected.has_value());
  auto actual = runtime::run_reference(r.pruned, {input});
  INFO((actual.has_value() ? std::string() : actual.status().message()));
  REQUIRE(actual.has_value());
  const test::OutputDifference d = test::compare_outputs(actual.value(), expected.value());
  INFO(name << ": max |pruned - zeroed| = " << d.max_abs << ", max |zeroed| = " << d.max_ref);
  CHECK(d.same_shape);
  CHECK(d.relative() < tolerance);
  if (std::getenv("STRUCTURED_DUMP")) {
    for (size_t g = 0; g < r.plan.analysis.groups.size(); ++g) {
      const auto& group = r.plan.analysis.groups[g];
      std::cout << name << " group " << g << " " << group.label() << " units " << group.num_units << " width "
                << group.unit_width << " members " << group.members.size() << " removed " << r.plan.removed[g].size()
                << (group.prunable ? "" : " BLOCKED: " + group.reason) << "\n";
    }
    std::cout << name << ": " << d.max_abs << " / " << d.max_ref << " in "
              << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() << " s\n";
  }
  return r;
}

// n channels at ratio 0.3 keep n - floor(0.3 n).
int64_t kept(int64_t n) { return n - (3 * n) / 10; }

TEST_CASE("structured 30 percent of resnet18 keeps residual stages consistent") {
  Pruned r = prune_and_check("resnet18");
  // The stem, layer1's second convs and its shortcut share 64 channels.
  CHECK(test::out_channels(r.pruned, "conv1") == kept(64));
  CHECK(test::out_channels(r.pruned, "layer1.0.conv2") == kept(64));
  CHECK(test::out_channels(r.pruned, "layer1.0.conv1") == kept(64));
  CHECK(test::out_channels(r.pruned, "layer2.0.downsample.0") == kept(128));
  CHECK(test::out_channels(r.pruned, "layer4.1.conv2") == kept(512));
  CHECK(test::out_channels(r.pruned, "fc") == 1000);
  CHECK(r.pruned.find_node("fc")->input(1)->shape()[1] == kept(512));
}

// Input channels (weight dim 1) of a conv2d/linear node.
int64_t in_channels(const ir::Graph& graph, const std::string& node) {
  const ir::Node* n = graph.find_node(node);
  return n == nullptr ? -1 : n->input(1)->shape()[1];
}

TEST_CASE("structured 30 percent of resnet50 prunes bottlenecks and stages") {
  Pruned r = prune_and_check("resnet50");
  CHECK(test::out_channels(r.pruned, "conv1") == kept(64));
  CHECK(test::out_channels(r.pruned, "layer1.0.conv1") == kept(64));
  CHECK(test::out_channels(r.pruned, "layer1.0.conv3") == kept(256));
  CHECK(test::out_channels(r.pruned, "layer1.0.downsample.0") == kept(256));
  CHECK(in_channels(r.pruned, "fc") == kept(2048));
}

TEST_CASE("structured 30 percent of mobilenet_v2 keeps depthwise groups tied") {
  Pruned r = prune_and_check("mobilenet_v2");
  CHECK(test::out_channels(r.pruned, "features.0.0") == kept(32));
  CHECK(test::out_channels(r.pruned, "features.2.conv.0.0") == kept(96));
  const ir::Node* dw = r.pruned.find_node("features.2.conv.1.0");
  REQUIRE(dw != nullptr);
  CHECK(dw->input(1)->shape()[0] == kept(96));
  CHECK(dw->attr_int("groups") == kept(96));
  CHECK(test::out_channels(r.pruned, "features.17.conv.2") == kept(320));
  CHECK(in_channels(r.pruned, "classifier.1") == kept(1280));
}

TEST_CASE("structured 30 percent of mobilenet_v3_small prunes squeeze-excitation") {
  Pruned r = prune_and_check("mobilenet_v3_small");
  CHECK(test::out_channels(r.pruned, "features.0.0") == kept(16));
  CHECK(test::out_channels(r.pruned, "features.1.block.1.fc1") == kept(8));
  // fc2 writes the SE scale that multiplies the block's channels.
  CHECK(test::out_channels(r.pruned, "features.1.block.1.fc2") == kept(16));
  CHECK(test::out_channels(r.pruned, "classifier.0") == kept(1024));
}

TEST_CASE("structured 30 percent of efficientnet_b0") {
  Pruned r = prune_and_check("efficientnet_b0");
  CHECK(test::out_channels(r.pruned, "features.1.0.block.1.fc1") == kept(8));
  CHECK(test::out_channels(r.pruned, "features.2.0.block.0.0") == kept(96));
  CHECK(in_channels(r.pruned, "classifier.1") == kept(1280));
}

TEST_CASE("structured 30 percent of squeezenet1_1 follows concat offsets") {
  Pruned r = prune_and_check("squeezenet1_1");
  CHECK(test::out_channels(r.pruned, "features.3.expand1x1") == kept(64));
  CHECK(test::out_channels(r.pruned, "features.3.expand3x3") == kept(64));
  CHECK(in_channels(r.pruned, "features.4.squeeze") == 2 * kept(64));
}

TEST_CASE("structured 30 percent of shufflenet_v2_x1_0 prunes through the channel shuffle") {
  Pruned r = prune_and_check("shufflenet_v2_x1_0");
  CHECK(test::out_channels(r.pruned, "stage2.0.branch2.0") == kept(58));
  // The shuffle (reshape [N,2,C/2,H,W], transpose, merge) interleaves the two
  // concatenated halves, so both halves lose the same number of channels and
  // the reshape's chunk size follows.
  const int64_t half = test::out_channels(r.pruned, "stage2.0.branch2.5");
  CHECK(half < 58);
  CHECK(test::out_channels(r.pruned, "stage2.0.branch1.2") == half);
  const ir::Node* shuffle = r.pruned.find_node("stage2.0_1");
  REQUIRE(shuffle != nullptr);
  CHECK(shuffle->attr_ints("shape") == std::vector<int64_t>{2, 2, half, 12, 12});
  CHECK(test::out_channels(r.pruned, "conv5.0") == kept(1024));
  // Nothing is blocked any more but fc (the graph output); the shuffle's
  // one-unit groups are kept by min_channels.
  for (const std::string& why : r.plan.skipped) {
    INFO(why);
    CHECK((why.rfind("fc:", 0) == 0 || why.find("at min_channels") != std::string::npos));
  }
}

TEST_CASE("structured 30 percent of densenet121 follows dense concats") {
  Pruned r = prune_and_check("densenet121");
  CHECK(test::out_channels(r.pruned, "features.conv0") == kept(64));
  CHECK(test::out_channels(r.pruned, "features.denseblock1.denselayer1.conv2") == kept(32));
  // denselayer2 reads conv0's channels and denselayer1's growth.
  CHECK(in_channels(r.pruned, "features.denseblock1.denselayer2.conv1") == kept(64) + kept(32));
}

TEST_CASE("structured 30 percent of vgg11_bn maps channels through flatten into linear") {
  Pruned r = prune_and_check("vgg11_bn");
  CHECK(test::out_channels(r.pruned, "features.0") == kept(64));
  CHECK(test::out_channels(r.pruned, "features.25") == kept(512));
  // Adaptive pooling to 7x7, flatten: every channel is 49 consecutive features.
  CHECK(in_channels(r.pruned, "classifier.0") == kept(512) * 49);
  CHECK(test::out_channels(r.pruned, "classifier.0") == kept(4096));
}

TEST_CASE("structured 30 percent of regnet_y_400mf removes whole conv groups") {
  Pruned r = prune_and_check("regnet_y_400mf");
  const ir::Node* b = r.pruned.find_node("trunk_output.block1.block1-0.f.b.0");
  REQUIRE(b != nullptr);
  // 6 groups of 8 channels: one group goes.
  CHECK(b->attr_int("groups") == 5);
  CHECK(b->input(1)->shape()[0] == 40);
  CHECK(test::out_channels(r.pruned, "trunk_output.block1.block1-0.f.a.0") == 40);
  CHECK(test::out_channels(r.pruned, "stem.0") == kept(32));
}

TEST_CASE("structured 30 percent of googlenet follows inception concats") {
  Pruned r = prune_and_check("googlenet");
  CHECK(test::out_channels(r.pruned, "inception3a.branch1.conv") == kept(64));
  CHECK(in_channels(r.pruned, "inception3b.branch1.conv") == kept(64) + kept(128) + kept(32) + kept(32));
}

TEST_CASE("structured 30 percent of transformer_encoder removes attention heads and FFN neurons") {
  Pruned r = prune_and_check("transformer_encoder");
  // 4 heads of 8: one head goes from q, k and v (rows of the packed
  // projection) and from the output projection's columns.
  CHECK(test::out_channels(r.pruned, "enc.layers.0") == 3 * 24);
  CHECK(in_channels(r.pruned, "enc.layers.0_11") == 24);
  CHECK(test::out_channels(r.pruned, "enc.layers.0_11") == 32);  // the residual stream feeds layer norms
  CHECK(test::out_channels(r.pruned, "enc.layers.0_14") == kept(64));
  CHECK(in_channels(r.pruned, "enc.layers.1_16") == kept(64));
}

TEST_CASE("structured 30 percent of gpt_decoder prunes MLP neurons") {
  Pruned r = prune_and_check("gpt_decoder");
  CHECK(test::out_channels(r.pruned, "blocks.0.mlp.0") == kept(128));
  CHECK(in_channels(r.pruned, "blocks.1.mlp.2") == kept(128));
  // Heads are folded into the batch dim by a reshape: not traceable, kept.
  CHECK(test::out_channels(r.pruned, "blocks.0.attn_1") == 96);
}

TEST_CASE("structured target_flops 0.5 on resnet18 reaches the target with round_to 8") {
  auto graph = torch::import_file(fixture("resnet18.pt"));
  REQUIRE(graph.has_value());
  pass::PassRegistry registry;
  REQUIRE(prune::register_structured_passes(registry).is_ok());
  auto options = pass::PassOptions::from_pairs({{"target_flops", "0.5"}, {"round_to", "8"}}, "test");
  REQUIRE(options.has_value());
  auto p = registry.create("prune.structured", options.value());
  REQUIRE(p.has_value());
  ir::Graph pruned = graph.value().clone();
  pass::PassContext context;
  auto result = p.value()->run(pruned, context);
  INFO((result ? std::string() : result.status().message()));
  REQUIRE(result.has_value());
  const double before = result.value().counters.at("flops_before");
  const double after = result.value().counters.at("flops_after");
  CHECK(after <= 0.5 * before);
  CHECK(after > 0.4 * before);  // the bisection stops near the target
  for (const ir::Node* n : pruned.nodes()) {
    if (n->op() == "conv2d") CHECK(n->input(1)->shape()[0] % 8 == 0);
  }
  const ir::Tensor input = io::load_npy(fixture("resnet18.input.npy")).value();
  CHECK(runtime::run_reference(pruned, {input}).has_value());
}
}  // namespace
}  // namespace compress
