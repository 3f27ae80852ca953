// Random DAGs (shared inputs, residuals, multiple outputs) against the reference: the plan's in-place and buffer reuse
// must never clobber a live value.
#include <catch2/catch.hpp>
#include <random>

#include "../../src/runtime/onednn/memory_planner.h"
#include "onednn_test_util.h"

namespace compress::test {
namespace {

using ir::Value;

// Every value has shape [2, 16, 6, 6], so any value can feed any node.
GraphBuilder random_graph(uint32_t seed, int nodes) {
  std::mt19937 gen(seed);
  GraphBuilder g;
  std::vector<Value*> values = {g.input("x", {2, 16, 6, 6}), g.input("y", {2, 16, 6, 6})};
  auto pick = [&]() { return values[std::uniform_int_distribution<size_t>(0, values.size() - 1)(gen)]; };
  for (int i = 0; i < nodes; ++i) {
    const int kind = std::uniform_int_distribution<int>(0, 9)(gen);
    Value* a = pick();
    Value* out = nullptr;
    switch (kind) {
      case 0:
      case 1:
        out = g.node("conv2d",
                     {a, g.constant("w" + std::to_string(i), random_f32({16, 16, 1, 1}, seed * 100 + i, -0.3f, 0.3f)),
                      g.constant("b" + std::to_string(i), random_f32({16}, seed * 100 + i + 50))});
        break;
      case 2:
        out = g.node("relu", {a});
        break;
      case 3:
        out = g.node("sigmoid", {a});
        break;
      case 4:
      case 5:
        out = g.node("add", {a, pick()});
        break;
      case 6:
        out = g.node("mul", {a, pick()});
        break;
      case 7:
        out = g.node("max_pool2d", {a},
                     {{"kernel", std::vector<int64_t>{3, 3}},
                      {"stride", std::vector<int64_t>{1, 1}},
                      {"padding", std::vector<int64_t>{1, 1, 1, 1}}});
        break;
      case 8: {
        Value* f = g.node("flatten", {a});
        out = g.node("reshape", {f}, {{"shape", std::vector<int64_t>{2, 16, 6, 6}}});
        break;
      }
      default: {
        Value* p = g.node("permute", {a}, {{"perm", std::vector<int64_t>{0, 2, 3, 1}}});
        out = g.node("permute", {g.node("tanh", {p})}, {{"perm", std::vector<int64_t>{0, 3, 1, 2}}});
        break;
      }
    }
    values.push_back(out);
  }
  // The last value and two random earlier ones (possibly an input) are outputs.
  std::vector<Value*> outputs = {values.back(), pick(), pick()};
  g.outputs(outputs);
  return g;
}

}  // namespace

TEST_CASE("random DAGs match the reference, fused and unfused, f32 and bf16", "[onednn][plan][random]") {
  // (300 graphs of 25 nodes passed when this was written; 25 keep the suite quick.)
  for (uint32_t seed = 1; seed <= 25; ++seed) {
    GraphBuilder g = random_graph(seed, 14);
    const std::vector<ir::Tensor> inputs = {random_f32({2, 16, 6, 6}, seed, -1, 1, true),
                                            random_f32({2, 16, 6, 6}, seed + 1000, -1, 1, true)};
    INFO("seed " << seed);
    check_against_reference(g.graph, inputs, f32_options(true), Bound{1e-5, 1e-5});
    check_against_reference(g.graph, inputs, f32_options(false), Bound{1e-5, 1e-5});
    check_against_reference(g.graph, inputs, bf16_options(true), Bound{5e-2, 5e-2});
  }
}

TEST_CASE("arena placement: buffers alive at the same step never share bytes", "[onednn][plan]") {
  std::mt19937 gen(3);
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<runtime::onednn::BufferLifetime> buffers(40);
    for (auto& b : buffers) {
      b.first = std::uniform_int_distribution<int>(0, 30)(gen);
      b.last = b.first + std::uniform_int_distribution<int>(0, 8)(gen);
      b.bytes = std::uniform_int_distribution<size_t>(1, 5000)(gen);
    }
    const runtime::onednn::ArenaLayout layout = runtime::onednn::plan_arena(buffers);
    size_t sum = 0;
    for (size_t i = 0; i < buffers.size(); ++i) {
      sum += (buffers[i].bytes + 63) / 64 * 64;
      CHECK(layout.offsets[i] % 64 == 0);
      CHECK(layout.offsets[i] + buffers[i].bytes <= layout.total_bytes);
      for (size_t j = i + 1; j < buffers.size(); ++j) {
        const bool alive_together = !(buffers[i].last < buffers[j].first || buffers[j].last < buffers[i].first);
        const bool overlap = layout.offsets[i] < layout.offsets[j] + buffers[j].bytes &&
                             layout.offsets[j] < layout.offsets[i] + buffers[i].bytes;
        CHECK_FALSE((alive_together && overlap));
      }
    }
    CHECK(layout.total_bytes <= sum);
  }
}

}  // namespace compress::test
