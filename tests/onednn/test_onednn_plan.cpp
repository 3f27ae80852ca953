// onednn plans: fusion patterns, fallbacks with reasons, batch changes, determinism, threads, memory reuse, errors.
#include <catch2/catch.hpp>
#include <cstdio>
#include <cstring>
#include <string>

#include "compress/runtime/backend.h"
#include "compress/runtime/onednn.h"
#include "compress/runtime/reference.h"
#include "compress/support/threads.h"
#include "onednn_test_util.h"

namespace compress::test {
namespace {

using ir::DType;
using ir::Tensor;
using ir::Value;

const Bound kGemm{1e-5, 2e-6};

Value* conv(GraphBuilder& g, Value* x, int64_t out, uint32_t seed, int64_t k = 3) {
  const int64_t in = x->shape()[1];
  const int64_t p = k / 2;
  return g.node("conv2d", {x, g.constant("w" + std::to_string(seed), random_f32({out, in, k, k}, seed, -0.2f, 0.2f))},
                {{"padding", std::vector<int64_t>{p, p, p, p}}}, "conv" + std::to_string(seed));
}

Value* batch_norm(GraphBuilder& g, Value* x, uint32_t seed) {
  const int64_t c = x->shape()[1];
  return g.node("batch_norm",
                {x, g.constant("g" + std::to_string(seed), random_f32({c}, seed, 0.5f, 1.5f)),
                 g.constant("b" + std::to_string(seed), random_f32({c}, seed + 1)),
                 g.constant("m" + std::to_string(seed), random_f32({c}, seed + 2)),
                 g.constant("v" + std::to_string(seed), random_f32({c}, seed + 3, 0.5f, 2.0f))},
                {}, "bn" + std::to_string(seed));
}

int count_kind(const runtime::OnednnPlanReport& r, const std::string& kind) {
  int n = 0;
  for (const auto& s : r.steps) n += s.kind == kind;
  return n;
}

const runtime::OnednnStep* step_with_node(const runtime::OnednnPlanReport& r, const std::string& node) {
  for (const auto& s : r.steps) {
    for (const auto& n : s.nodes) {
      if (n == node) return &s;
    }
  }
  return nullptr;
}

// A ResNet basic block: conv-bn-relu, conv-bn, + identity, relu.
GraphBuilder residual_block() {
  GraphBuilder g;
  Value* x = g.input("x", {2, 16, 10, 10});
  Value* stem = g.node("relu", {conv(g, x, 32, 1)}, {}, "stem_relu");
  Value* a = g.node("relu", {batch_norm(g, conv(g, stem, 32, 2), 10)}, {}, "relu_a");
  Value* b = batch_norm(g, conv(g, a, 32, 3), 20);
  Value* sum = g.node("add", {b, stem}, {}, "residual_add");
  g.outputs({g.node("relu", {sum}, {}, "out_relu")});
  return g;
}

}  // namespace

TEST_CASE("conv + batch_norm + relu is one convolution with the batch norm folded and relu a post-op",
          "[onednn][fusion]") {
  GraphBuilder g;
  Value* x = g.input("x", {2, 8, 9, 9});
  g.outputs({g.node("relu", {batch_norm(g, conv(g, x, 16, 1), 5)}, {}, "relu")});
  RunResult r = run_both(g.graph, {random_f32({2, 8, 9, 9}, 2)});
  const Comparison c = compare(r.got[0], r.want[0], kGemm);
  INFO(c.to_string() << "\n" << r.report.to_string());
  CHECK(c.worst <= 1.0);
  CHECK(count_kind(r.report, "convolution") == 1);
  CHECK(count_kind(r.report, "batch_normalization") == 0);
  CHECK(count_kind(r.report, "eltwise") == 0);
  CHECK(r.report.fused_nodes == 2);
  const runtime::OnednnStep* s = step_with_node(r.report, "relu");
  REQUIRE(s != nullptr);
  CHECK(s->kind == "convolution");
  CHECK_THAT(s->detail, Catch::Contains("post-ops: relu"));

  // Without fusion: a batch-norm primitive and an eltwise, same numbers.
  RunResult u = run_both(g.graph, {random_f32({2, 8, 9, 9}, 2)}, f32_options(false));
  CHECK(compare(u.got[0], u.want[0], kGemm).worst <= 1.0);
  CHECK(count_kind(u.report, "batch_normalization") == 1);
  CHECK(count_kind(u.report, "eltwise") == 1);
  CHECK(u.report.fused_nodes == 0);
}

TEST_CASE("conv + add + relu: the residual add is a sum post-op written in place", "[onednn][fusion]") {
  GraphBuilder g = residual_block();
  for (const runtime::OnednnOptions& options : {f32_options(), bf16_options()}) {
    const bool bf16 = options.compute == runtime::OnednnCompute::kBF16;
    if (bf16 && skip_bf16()) continue;
    RunResult r = run_both(g.graph, {random_f32({2, 16, 10, 10}, 3, -1, 1, true)}, options);
    const Comparison c = compare(r.got[0], r.want[0], bf16 ? Bound{2e-2, 2e-2} : kGemm);
    INFO(c.to_string() << "\n" << r.report.to_string());
    CHECK(c.worst <= 1.0);
    CHECK(count_kind(r.report, "convolution") == 3);
    CHECK(count_kind(r.report, "binary") == 0);
    CHECK(count_kind(r.report, "eltwise") == 0);
    const runtime::OnednnStep* s = step_with_node(r.report, "residual_add");
    REQUIRE(s != nullptr);
    CHECK(s->kind == "convolution");
    CHECK_THAT(s->detail, Catch::Contains("post-ops: sum, relu"));
    CHECK_THAT(s->detail, Catch::Contains("sum in place"));
    CHECK(r.report.fused_nodes == 2 + 1 + 2 + 1);  // 2 folded BNs, stem relu, relu_a, add + relu
  }
}

TEST_CASE("linear + gelu is one inner product - a residual add after a linear is a sum post-op", "[onednn][fusion]") {
  GraphBuilder g;
  Value* x = g.input("x", {2, 6, 32});
  Value* h =
      g.node("gelu",
             {g.node("linear", {x, g.constant("w1", random_f32({64, 32}, 1)), g.constant("b1", random_f32({64}, 2))},
                     {}, "fc1")},
             {}, "act");
  Value* y = g.node("linear", {h, g.constant("w2", random_f32({32, 64}, 3))}, {}, "fc2");
  g.outputs({g.node("add", {x, y}, {}, "residual")});
  RunResult r = run_both(g.graph, {random_f32({2, 6, 32}, 4)});
  const Comparison c = compare(r.got[0], r.want[0], Bound{1e-5, 2e-6});
  INFO(c.to_string() << "\n" << r.report.to_string());
  CHECK(c.worst <= 1.0);
  CHECK(count_kind(r.report, "inner_product") == 2);
  CHECK(r.report.steps.size() == 3);  // the graph input is copied into fc2's destination for the sum
  CHECK_THAT(step_with_node(r.report, "act")->detail, Catch::Contains("post-ops: gelu"));
  CHECK_THAT(step_with_node(r.report, "residual")->detail, Catch::Contains("post-ops: sum"));
}

TEST_CASE("ops oneDNN lacks run on the reference, node by node, and the plan lists why", "[onednn][fallback]") {
  GraphBuilder g;
  Value* x = g.input("x", {2, 8, 7, 7});
  Value* c = g.node("relu", {conv(g, x, 8, 1)}, {}, "relu");
  Value* pooled = g.node("adaptive_avg_pool2d", {c}, {{"output_size", std::vector<int64_t>{3, 3}}}, "uneven_pool");
  Value* fq = g.node("fake_quant", {pooled}, {{"scale", std::vector<double>{0.05}}}, "fake_quant");
  g.outputs({g.node("sigmoid", {fq}, {}, "after")});

  auto backend = runtime::make_onednn_backend();
  CHECK(backend->supports(*g.graph.find_node("relu")).supported);
  const runtime::SupportDecision d = backend->supports(*g.graph.find_node("fake_quant"));
  CHECK_FALSE(d.supported);
  CHECK_THAT(d.reason, Catch::Contains("training-time op"));

  RunResult r = run_both(g.graph, {random_f32({2, 8, 7, 7}, 2)});
  const Comparison cmp = compare(r.got[0], r.want[0], Bound{1e-5, 1e-6});
  INFO(cmp.to_string() << "\n" << r.report.to_string());
  CHECK(cmp.worst <= 1.0);
  REQUIRE(r.fallbacks.size() == 2);
  CHECK(r.fallbacks[0].node == "uneven_pool");
  CHECK_THAT(r.fallbacks[0].reason, Catch::Contains("uneven bins"));
  CHECK(r.fallbacks[1].node == "fake_quant");
  CHECK(r.fallbacks[1].op == "fake_quant");
  const std::string text = r.report.to_string();
  CHECK_THAT(text, Catch::Contains("fallbacks to the reference backend: 2"));
  CHECK_THAT(text, Catch::Contains("fake_quant (fake_quant): fake_quant is a training-time op"));
  CHECK(count_kind(r.report, "reference") == 2);
}

TEST_CASE("a graph whose op has no kernel anywhere fails to compile with the node named", "[onednn][fallback]") {
  GraphBuilder g;
  Value* x = g.input("x", {1, 4});
  ir::Node* odd = g.graph.add_node_unchecked("fancy_op", {x}, {}, "odd", {ir::ValueType{DType::kF32, {1, 4}, nullptr}});
  g.outputs({odd->output()});
  auto plan = runtime::make_onednn_backend()->compile(g.graph);
  REQUIRE_FALSE(plan.has_value());
  CHECK_THAT(plan.status().message(), Catch::Contains("fancy_op"));
}

TEST_CASE("another batch compiles (and caches) a plan for that shape", "[onednn][plan]") {
  GraphBuilder g = residual_block();
  runtime::OnednnOptions options;
  options.max_cached_shapes = 2;
  auto plan = runtime::make_onednn_backend(options)->compile(g.graph);
  REQUIRE(plan.has_value());
  const runtime::OnednnPlan* p = runtime::as_onednn_plan(**plan);
  REQUIRE(p != nullptr);
  CHECK(p->report().input_shapes == std::vector<std::vector<int64_t>>{{2, 16, 10, 10}});
  for (int64_t batch : {5, 1, 5, 3, 2}) {
    const Tensor x = random_f32({batch, 16, 10, 10}, static_cast<uint32_t>(batch));
    auto got = (*plan)->run({x});
    REQUIRE(got.has_value());
    auto want = runtime::run_reference(g.graph, {x});
    REQUIRE(want.has_value());
    CHECK(p->report().input_shapes == std::vector<std::vector<int64_t>>{{batch, 16, 10, 10}});
    CHECK(compare((*got)[0], (*want)[0], kGemm).worst <= 1.0);
  }
}

TEST_CASE("weights are reordered once and shared by the plans of every batch", "[onednn][plan]") {
  GraphBuilder g = residual_block();
  auto plan = runtime::make_onednn_backend()->compile(g.graph);
  REQUIRE(plan.has_value());
  const runtime::OnednnPlan* p = runtime::as_onednn_plan(**plan);
  const size_t first = p->report().weight_bytes;
  CHECK(first > 0);
  REQUIRE((*plan)->run({random_f32({2, 16, 10, 10}, 1)}).has_value());
  REQUIRE((*plan)->run({random_f32({3, 16, 10, 10}, 1)}).has_value());
  // A new batch may pick other layouts for some weights, never all of them again.
  CHECK(p->report().weight_bytes < 2 * first);
}

TEST_CASE("results are identical across repeated runs and across plans", "[onednn][plan]") {
  GraphBuilder g = residual_block();
  const Tensor x = random_f32({2, 16, 10, 10}, 7);
  auto backend = runtime::make_onednn_backend();
  auto plan = backend->compile(g.graph);
  REQUIRE(plan.has_value());
  auto first = (*plan)->run({x});
  REQUIRE(first.has_value());
  for (int i = 0; i < 3; ++i) {
    auto again = (*plan)->run({x});
    REQUIRE(again.has_value());
    CHECK((*again)[0].bitwise_equal((*first)[0]));
  }
  auto other = backend->compile(g.graph);
  REQUIRE(other.has_value());
  auto second = (*other)->run({x});
  REQUIRE(second.has_value());
  CHECK((*second)[0].bitwise_equal((*first)[0]));
  // The output tensors are the caller's: a later run does not overwrite them.
  const Tensor kept = (*first)[0].clone().value();
  REQUIRE((*plan)->run({random_f32({2, 16, 10, 10}, 8)}).has_value());
  CHECK((*first)[0].bitwise_equal(kept));
}

TEST_CASE("output storage is recycled only after the caller released it", "[onednn][plan]") {
  GraphBuilder g = residual_block();
  const Tensor x1 = random_f32({2, 16, 10, 10}, 7), x2 = random_f32({2, 16, 10, 10}, 8);
  auto plan = runtime::make_onednn_backend()->compile(g.graph).value();
  const Tensor expect1 = plan->run({x1}).value()[0].clone().value();
  const Tensor expect2 = plan->run({x2}).value()[0].clone().value();
  // Released outputs: the next run writes into the same storage, with the right values.
  const void* storage = nullptr;
  {
    auto out = plan->run({x1}).value();
    storage = out[0].raw_data();
  }
  auto reused = plan->run({x2}).value();
  CHECK(reused[0].raw_data() == storage);
  CHECK(reused[0].bitwise_equal(expect2));
  // Held outputs: a new run allocates afresh and leaves them alone.
  auto held = plan->run({x1}).value();
  auto next = plan->run({x2}).value();
  CHECK(next[0].raw_data() != held[0].raw_data());
  CHECK(held[0].bitwise_equal(expect1));
  CHECK(next[0].bitwise_equal(expect2));
}

TEST_CASE("activation buffers are reused: a deep chain needs a fraction of its total", "[onednn][plan]") {
  GraphBuilder g;
  Value* x = g.input("x", {1, 16, 32, 32});
  Value* h = x;
  for (uint32_t i = 0; i < 12; ++i) h = g.node("relu", {conv(g, h, 16, 100 + i)});
  g.outputs({h});
  RunResult r = run_both(g.graph, {random_f32({1, 16, 32, 32}, 1)});
  CHECK(compare(r.got[0], r.want[0], Bound{1e-4, 1e-5}).worst <= 1.0);
  INFO(r.report.to_string());
  const size_t one = 16 * 32 * 32 * sizeof(float);
  CHECK(r.report.unshared_bytes >= 12 * one);
  CHECK(r.report.arena_bytes <= 3 * one);
}

TEST_CASE("outputs that are inputs, constants or read again later, and multi-output nodes", "[onednn][plan]") {
  GraphBuilder g;
  Value* x = g.input("x", {2, 16, 4, 4});
  Value* c = conv(g, x, 16, 1, 1);
  Value* r = g.node("relu", {c}, {}, "relu");  // c is an output and is read by relu: not fused, not overwritten
  Value* k = g.constant("k", random_f32({3}, 2));
  auto parts = g.node_outputs("split", {r}, {{"axis", int64_t{1}}, {"sizes", std::vector<int64_t>{4, 12}}});
  g.outputs({c, r, x, k, parts[1], parts[0]});
  check_against_reference(g.graph, {random_f32({2, 16, 4, 4}, 3)}, f32_options(), kGemm);
}

TEST_CASE("bad inputs are errors that say what was expected", "[onednn][errors]") {
  GraphBuilder g;
  Value* x = g.input("x", {2, 8, 4, 4});
  g.outputs({g.node("reshape", {g.node("relu", {x})}, {{"shape", std::vector<int64_t>{2, 128}}})});
  auto plan = runtime::make_onednn_backend()->compile(g.graph);
  REQUIRE(plan.has_value());
  auto wrong_dtype = (*plan)->run({Tensor::zeros(DType::kI32, {2, 8, 4, 4}).value()});
  REQUIRE_FALSE(wrong_dtype.has_value());
  CHECK(wrong_dtype.status().code() == StatusCode::kInvalidArgument);
  CHECK_THAT(wrong_dtype.status().message(), Catch::Contains("'x'"));
  auto wrong_shape = (*plan)->run({Tensor::zeros(DType::kF32, {2, 8, 5, 4}).value()});
  REQUIRE_FALSE(wrong_shape.has_value());
  CHECK_THAT(wrong_shape.status().message(), Catch::Contains("any batch"));
  // The reshape hard-codes the batch (the graph's choice): another batch fails, with the node named.
  auto other_batch = (*plan)->run({Tensor::zeros(DType::kF32, {3, 8, 4, 4}).value()});
  REQUIRE_FALSE(other_batch.has_value());
  CHECK_THAT(other_batch.status().message(), Catch::Contains("reshape"));

  // An empty batch runs (on the reference: oneDNN primitives do not take empty tensors).
  GraphBuilder z;
  z.outputs({z.node("relu", {z.input("x", {2, 8, 4, 4})})});
  auto zplan = runtime::make_onednn_backend()->compile(z.graph);
  REQUIRE(zplan.has_value());
  auto empty = (*zplan)->run({Tensor::zeros(DType::kF32, {0, 8, 4, 4}).value()});
  REQUIRE(empty.has_value());
  CHECK((*empty)[0].shape() == ir::Shape{0, 8, 4, 4});

  GraphBuilder e;
  Value* idx = e.input("tokens", {1, 3}, DType::kI64);
  e.outputs({e.node("embedding", {idx, e.constant("table", random_f32({4, 2}, 1))}, {}, "emb")});
  auto eplan = runtime::make_onednn_backend()->compile(e.graph);
  REQUIRE(eplan.has_value());
  auto bad = (*eplan)->run({Tensor::from_vector<int64_t>(DType::kI64, {1, 3}, {0, 4, 1})});
  REQUIRE_FALSE(bad.has_value());
  CHECK_THAT(bad.status().message(), Catch::Contains("'emb'"));
  CHECK_THAT(bad.status().message(), Catch::Contains("index 4"));
}

TEST_CASE("the backend is registered and reports its runtime", "[onednn][plan]") {
  const auto names = runtime::available_backends();
  CHECK(std::find(names.begin(), names.end(), "onednn") != names.end());
  auto backend = runtime::make_backend("onednn");
  REQUIRE(backend.has_value());
  CHECK((*backend)->name() == "onednn");
  const std::string info = runtime::onednn_runtime_info();
  CHECK_THAT(info, Catch::StartsWith("oneDNN 2."));
  CHECK_THAT(info, Catch::Contains("OpenMP"));
  GraphBuilder g;
  g.outputs({g.node("relu", {g.input("x", {1, 4})})});
  auto plan = (*backend)->compile(g.graph);
  REQUIRE(plan.has_value());
  CHECK(runtime::as_onednn_plan(**plan) != nullptr);
  auto ref = runtime::make_backend("reference").value()->compile(g.graph);
  REQUIRE(ref.has_value());
  CHECK(runtime::as_onednn_plan(**ref) == nullptr);
}

namespace {

// Runs the probe in a fresh process: "plan_threads=N tasks=M".
std::pair<int, int> probe(int threads, const char* mode) {
  const std::string command = std::string(ONEDNN_THREAD_PROBE) + " " + std::to_string(threads) + " " + mode;
  FILE* pipe = popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  char line[256] = {0};
  const bool read = std::fgets(line, sizeof line, pipe) != nullptr;
  const int rc = pclose(pipe);
  INFO(command << " -> rc " << rc << ": " << line);
  REQUIRE(read);
  REQUIRE(rc == 0);
  int plan_threads = -1, tasks = -1;
  REQUIRE(std::sscanf(line, "plan_threads=%d tasks=%d", &plan_threads, &tasks) == 2);
  return {plan_threads, tasks};
}

std::string probe_checksum(int threads, const char* mode) {
  const std::string command = std::string(ONEDNN_THREAD_PROBE) + " " + std::to_string(threads) + " " + mode;
  FILE* pipe = popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  char line[256] = {0};
  const bool read = std::fgets(line, sizeof line, pipe) != nullptr;
  REQUIRE(pclose(pipe) == 0);
  REQUIRE(read);
  const char* at = std::strstr(line, "checksum=");
  REQUIRE(at != nullptr);
  return at;
}

}  // namespace

TEST_CASE("the thread count is respected (compress::set_num_threads, or OnednnOptions::threads)", "[onednn][threads]") {
  // A fresh process has only main + the OpenMP workers the plan used.
  for (const char* mode : {"global", "option"}) {
    INFO(mode);
    const auto one = probe(1, mode);
    CHECK(one.first == 1);
    CHECK(one.second == 1);
    const auto two = probe(2, mode);
    CHECK(two.first == 2);
    CHECK(two.second == 2);
    const auto three = probe(3, mode);
    CHECK(three.first == 3);
    CHECK(three.second == 3);
  }
}

TEST_CASE("the spin throttle parks an OpenMP pool and changes no result", "[onednn][threads]") {
  // Note [Spinning on a busy machine]: forced on, a parked pool of cores + 1
  // threads exists beside the plan's own; the output is bit for bit the same.
  const auto off = probe(2, "global");
  const auto on = probe(2, "throttle");
  CHECK(on.first == 2);
  CHECK(on.second > off.second);
  CHECK(probe_checksum(2, "throttle") == probe_checksum(2, "global"));
}

}  // namespace compress::test
