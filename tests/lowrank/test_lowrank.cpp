// lowrank: the decompositions against their NumPy transcriptions, the passes' rank rules, the latency gate,
// exact full-rank chains on every backend, .cmf round trips, bad options and `ctk lowrank`.
#include <yaml-cpp/yaml.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "compress/eval/dataset.h"
#include "compress/io/cmf.h"
#include "compress/io/npy.h"
#include "compress/ir/verifier.h"
#include "compress/lowrank/decompose.h"
#include "compress/lowrank/lowrank_passes.h"
#include "compress/pass/options.h"
#include "compress/prune/prune_passes.h"
#include "compress/runtime/backend.h"

namespace compress::test {
namespace {

namespace fs = std::filesystem;
using ir::DType;
using ir::Tensor;

const std::string kFixtures = std::string(COMPRESS_TEST_SOURCE_DIR) + "/tests/fixtures/lowrank/";

std::vector<float> values(const Tensor& t) { return std::vector<float>(t.data<float>(), t.data<float>() + t.numel()); }

Tensor fixture(const std::string& name) {
  auto t = io::load_npy(kFixtures + name + ".npy");
  INFO(t.status().to_string());
  REQUIRE(t.has_value());
  return *t;
}

Tensor random_tensor(ir::Shape shape, uint32_t seed, float scale = 1.0f) {
  Tensor t = Tensor::zeros(DType::kF32, std::move(shape)).value();
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = dist(gen);
  return t;
}

// x -> conv(3x3, stride 2, asymmetric padding) -> relu -> conv(1x1) -> flatten -> linear -> linear
ir::Graph small_model() {
  ir::Graph g;
  ir::Value* x = g.add_input("x", ir::ValueType{DType::kF32, {2, 6, 11, 9}, nullptr}).value();
  auto c = [&](const std::string& name, Tensor t) { return g.add_constant(name, std::move(t)).value(); };
  ir::Value* v =
      g.add_node("conv2d",
                 {x, c("conv3.w", random_tensor({12, 6, 3, 3}, 1, 0.3f)), c("conv3.b", random_tensor({12}, 2))},
                 {{"stride", std::vector<int64_t>{2, 1}},
                  {"padding", std::vector<int64_t>{1, 0, 2, 1}},
                  {"dilation", std::vector<int64_t>{1, 2}}},
                 "conv3")
          .value()
          ->output();
  v = g.add_node("relu", {v}, {}, "relu").value()->output();
  v = g.add_node("conv2d", {v, c("conv1.w", random_tensor({10, 12, 1, 1}, 3, 0.3f))}, {}, "conv1").value()->output();
  v = g.add_node("flatten", {v}, {{"start_dim", int64_t{1}}}, "flat").value()->output();
  const int64_t features = v->shape()[1];
  v = g.add_node("linear", {v, c("fc1.w", random_tensor({20, features}, 4, 0.1f)), c("fc1.b", random_tensor({20}, 5))},
                 {}, "fc1")
          .value()
          ->output();
  v = g.add_node("linear", {v, c("fc2.w", random_tensor({7, 20}, 6, 0.3f))}, {}, "fc2").value()->output();
  g.set_outputs({v});
  return g;
}

Tensor run(const ir::Graph& g, const std::string& backend, const Tensor& x) {
  auto b = runtime::make_backend(backend);
  REQUIRE(b.has_value());
  auto plan = (*b)->compile(g);
  INFO(plan.status().to_string());
  REQUIRE(plan.has_value());
  auto out = (*plan)->run({x});
  INFO(out.status().to_string());
  REQUIRE(out.has_value());
  return (*out)[0];
}

double max_rel_diff(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  double peak = 0, diff = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    peak = std::max(peak, std::fabs(static_cast<double>(b.data<float>()[i])));
    diff = std::max(diff, std::fabs(static_cast<double>(a.data<float>()[i] - b.data<float>()[i])));
  }
  return peak == 0 ? diff : diff / peak;
}

pass::PassOptions yaml_options(const std::string& text) {
  auto o = pass::PassOptions::from_yaml(YAML::Load(text), "test.yaml", "stage 1");
  INFO(o.status().to_string());
  REQUIRE(o.has_value());
  return *o;
}

template <typename Pass>
Expected<pass::PassResult> run_pass(ir::Graph& g, const std::string& yaml,
                                    const eval::DataSource* calibration = nullptr) {
  COMPRESS_ASSIGN_OR_RETURN(lowrank::LowrankOptions o, Pass::parse_options(yaml_options(yaml)));
  Pass p(o);
  pass::PassContext ctx;
  ctx.calibration = calibration;
  ctx.progress = false;
  ctx.threads = 1;  // the gate's timings: one thread is the least disturbed by other tests running beside it
  return p.run(g, ctx);
}

std::string available_backend() {
  for (const std::string& b : runtime::available_backends()) {
    if (b == "onednn") return b;
  }
  return "reference";
}

}  // namespace

TEST_CASE("truncated SVD, spatial SVD and Tucker-2 match their NumPy transcriptions", "[lowrank]") {
  std::ifstream in(kFixtures + "expected.json");
  REQUIRE(in.good());
  const nlohmann::json expected = nlohmann::json::parse(in);
  auto close = [](double got, double want) { return std::fabs(got - want) <= 1e-5 * std::max(1.0, want); };
  for (const auto& [name, ranks] : expected["svd"].items()) {
    const Tensor w = fixture(name);
    const int64_t m = w.dim(0), n = w.numel() / m;
    for (const auto& [rank, want] : ranks.items()) {
      auto f = lowrank::truncated_svd(values(w), m, n, std::stoll(rank));
      REQUIRE(f.has_value());
      INFO("svd " << name << " rank " << rank << ": " << f->relative_error << " vs numpy " << want.get<double>());
      CHECK(close(f->relative_error, want.get<double>()));
      CHECK(f->first.size() == static_cast<size_t>(std::stoll(rank) * n));
    }
  }
  for (const auto& [name, ranks] : expected["spatial"].items()) {
    const Tensor w = fixture(name);
    for (const auto& [rank, want] : ranks.items()) {
      auto f = lowrank::spatial_svd(values(w), w.dim(0), w.dim(1), w.dim(2), w.dim(3), std::stoll(rank));
      REQUIRE(f.has_value());
      INFO("spatial " << name << " rank " << rank << ": " << f->relative_error << " vs numpy " << want.get<double>());
      CHECK(close(f->relative_error, want.get<double>()));
    }
  }
  for (const auto& [name, ranks] : expected["tucker2"].items()) {
    const Tensor w = fixture(name);
    for (const auto& [key, want] : ranks.items()) {
      const int64_t r_out = std::stoll(key.substr(0, key.find(','))), r_in = std::stoll(key.substr(key.find(',') + 1));
      auto f = lowrank::tucker2(values(w), w.dim(0), w.dim(1), w.dim(2), w.dim(3), r_out, r_in);
      REQUIRE(f.has_value());
      INFO("tucker2 " << name << " ranks " << key << ": hosvd " << f->hosvd_error << " vs " << want["hosvd"]
                      << ", hooi " << f->relative_error << " vs " << want["hooi"] << " after " << f->iterations
                      << " sweeps (numpy " << want["sweeps"] << ")");
      CHECK(close(f->hosvd_error, want["hosvd"].get<double>()));
      CHECK(close(f->relative_error, want["hooi"].get<double>()));
      CHECK(f->relative_error <= f->hosvd_error + 1e-6);  // HOOI never makes it worse
      CHECK(f->core.size() == static_cast<size_t>(r_out * r_in * w.dim(2) * w.dim(3)));
    }
  }
  // CP-ALS is not unique: the same algorithm from the same start, compared on
  // the error it reaches and its sweep count.
  for (const auto& [name, ranks] : expected["cp"].items()) {
    const Tensor w = fixture(name);
    for (const auto& [rank, want] : ranks.items()) {
      auto f = lowrank::cp_als(values(w), w.dim(0), w.dim(1), w.dim(2), w.dim(3), std::stoll(rank));
      REQUIRE(f.has_value());
      INFO("cp " << name << " rank " << rank << ": " << f->relative_error << " after " << f->iterations
                 << " sweeps vs numpy " << want["error"] << " after " << want["sweeps"]);
      CHECK(std::fabs(f->relative_error - want["error"].get<double>()) <= 1e-4);
      CHECK(std::abs(f->iterations - want["sweeps"].get<int>()) <= 2);
    }
  }
}

TEST_CASE(
    "CP-ALS recovers an exactly rank-3 tensor, and lowrank.cp's chain is its four convs with the layer's "
    "stride, padding and dilation",
    "[lowrank]") {
  // W = sum of 3 rank-one terms.
  const int64_t o = 10, c = 6, kh = 3, kw = 3, r = 3;
  const Tensor fa = random_tensor({o, r}, 21), fb = random_tensor({c, r}, 22), fh = random_tensor({kh, r}, 23),
               fv = random_tensor({kw, r}, 24);
  std::vector<float> w(static_cast<size_t>(o * c * kh * kw), 0.0f);
  for (int64_t q = 0; q < r; ++q) {
    for (int64_t oi = 0; oi < o; ++oi) {
      for (int64_t ci = 0; ci < c; ++ci) {
        for (int64_t i = 0; i < kh; ++i) {
          for (int64_t j = 0; j < kw; ++j) {
            w[static_cast<size_t>(((oi * c + ci) * kh + i) * kw + j)] +=
                fa.data<float>()[oi * r + q] * fb.data<float>()[ci * r + q] * fh.data<float>()[i * r + q] *
                fv.data<float>()[j * r + q];
          }
        }
      }
    }
  }
  auto f = lowrank::cp_als(w, o, c, kh, kw, r, 500, 1e-12);
  REQUIRE(f.has_value());
  INFO("rank-3 CP: error " << f->relative_error << " after " << f->iterations << " sweeps");
  CHECK(f->relative_error < 1e-3);

  // The chain in a graph: its output equals the dense conv with the weight
  // the four factors rebuild (whatever error ALS reached).
  ir::Graph g = small_model();
  const ir::Graph original = g.clone();
  auto res = run_pass<lowrank::CpPass>(g, "{rank: 5, latency_gate: false, max_iterations: 30}");
  INFO(res.status().to_string());
  REQUIRE(res.has_value());
  REQUIRE(g.find_node("conv3.cp_v") != nullptr);
  CHECK(g.find_node("conv3.cp_v")->attr_int("groups") == 5);
  CHECK(res->layers.at("conv3").at("rank") == 5.0);
  auto factor = [&](const char* node) { return g.find_node(node)->input(1)->constant(); };
  const Tensor in = factor("conv3.cp_in"), vert = factor("conv3.cp_v"), hor = factor("conv3.cp_h"),
               out = factor("conv3.cp_out");
  const int64_t oo = 12, cc = 6, rr = 5;
  Tensor rebuilt = Tensor::zeros(DType::kF32, {oo, cc, 3, 3}).value();
  for (int64_t q = 0; q < rr; ++q) {
    for (int64_t oi = 0; oi < oo; ++oi) {
      for (int64_t ci = 0; ci < cc; ++ci) {
        for (int64_t i = 0; i < 3; ++i) {
          for (int64_t j = 0; j < 3; ++j) {
            rebuilt.data<float>()[((oi * cc + ci) * 3 + i) * 3 + j] +=
                out.data<float>()[oi * rr + q] * in.data<float>()[q * cc + ci] * vert.data<float>()[q * 3 + i] *
                hor.data<float>()[q * 3 + j];
          }
        }
      }
    }
  }
  ir::Graph dense = original.clone();
  dense.find_node("conv3")->input(1)->set_constant(rebuilt);
  const Tensor x = random_tensor({2, 6, 11, 9}, 25);
  CHECK(max_rel_diff(run(g, "reference", x), run(dense, "reference", x)) < 1e-4);
  if (available_backend() == "onednn") CHECK(max_rel_diff(run(g, "onednn", x), run(dense, "reference", x)) < 1e-4);
  // energy has no meaning for CP.
  ir::Graph e = original.clone();
  auto bad = run_pass<lowrank::CpPass>(e, "{energy: 0.9, latency_gate: false}");
  REQUIRE_FALSE(bad.has_value());
  CHECK_THAT(bad.status().message(), Catch::Contains("energy is not defined"));
}

TEST_CASE("full-rank chains reproduce each layer on every backend, the graph verifies and round-trips .cmf",
          "[lowrank]") {
  const Tensor x = random_tensor({2, 6, 11, 9}, 7);
  const ir::Graph original = small_model();
  const Tensor want = run(original, "reference", x);
  struct Case {
    const char* method;
    std::string yaml;
    std::vector<std::string> factorized;
  };
  // Full rank: svd min(m, n); spatial min(c*kh, o*kw) = 18; tucker2 both sides.
  const std::vector<Case> cases = {
      {"svd", "{rank: 10, latency_gate: false, exclude: [fc1, fc2]}", {"conv1"}},
      {"svd", "{rank: 20, latency_gate: false, exclude: [conv1, fc2]}", {"fc1"}},
      {"spatial_svd", "{rank: 18, latency_gate: false}", {"conv3"}},
      {"tucker2", "{rank: 12, latency_gate: false}", {"conv3"}},
  };
  for (const Case& c : cases) {
    INFO(c.method << " " << c.yaml);
    ir::Graph g = original.clone();
    Expected<pass::PassResult> r = std::string(c.method) == "svd" ? run_pass<lowrank::SvdPass>(g, c.yaml)
                                   : std::string(c.method) == "spatial_svd"
                                       ? run_pass<lowrank::SpatialSvdPass>(g, c.yaml)
                                       : run_pass<lowrank::Tucker2Pass>(g, c.yaml);
    INFO(r.status().to_string());
    REQUIRE(r.has_value());
    CHECK(r->changed);
    REQUIRE(ir::verify(g).is_ok());
    for (const std::string& layer : c.factorized) {
      INFO(layer);
      CHECK(g.find_node(layer) == nullptr);
      CHECK(r->layers.at(layer).at("factorized") == 1.0);
      CHECK(r->layers.at(layer).at("relative_error") < 1e-5);
    }
    const Tensor got = run(g, "reference", x);
    CHECK(max_rel_diff(got, want) < 1e-4);
    if (available_backend() == "onednn") CHECK(max_rel_diff(run(g, "onednn", x), want) < 1e-4);
    const std::string path =
        (fs::temp_directory_path() / fmt::format("lowrank_{}_{}.cmf", c.method, c.factorized[0])).string();
    REQUIRE(io::save_cmf(g, path).is_ok());
    auto loaded = io::load_cmf(path);
    REQUIRE(loaded.has_value());
    CHECK(run(*loaded, "reference", x).bitwise_equal(got));
    fs::remove(path);
  }
}

TEST_CASE("rank rules: ratio keeps at most F of the MACs, ranks honoured after round_to, energy from the spectrum",
          "[lowrank]") {
  const ir::Graph original = small_model();
  {
    ir::Graph g = original.clone();
    auto r = run_pass<lowrank::Tucker2Pass>(g, "{ratio: 0.5, latency_gate: false}");
    REQUIRE(r.has_value());
    const auto& s = r->layers.at("conv3");
    CHECK(s.at("macs_factorized") <= 0.5 * s.at("macs_dense"));
    // The core conv's weight has the chosen ranks.
    const ir::Node* core = g.find_node("conv3.tucker_core");
    REQUIRE(core != nullptr);
    CHECK(core->input(1)->shape()[0] == static_cast<int64_t>(s.at("rank")));
    CHECK(core->input(1)->shape()[1] == static_cast<int64_t>(s.at("rank_in")));
  }
  {
    ir::Graph g = original.clone();
    auto r = run_pass<lowrank::SvdPass>(g, "{rank: 5, round_to: 4, latency_gate: false}");
    REQUIRE(r.has_value());
    for (const char* layer : {"conv1", "fc1", "fc2"}) {
      INFO(layer);
      CHECK(r->layers.at(layer).at("rank") == 4.0);  // 5 rounds to the nearest multiple of 4
    }
    CHECK(g.find_node("fc1.svd_v")->input(1)->shape() == ir::Shape{4, original.find_node("fc1")->input(1)->shape()[1]});
    CHECK(g.find_node("fc1.svd_u")->num_inputs() == 3);  // the bias on the second layer
    CHECK(g.find_node("fc1.svd_v")->num_inputs() == 2);
  }
  {
    ir::Graph g = original.clone();
    auto r = run_pass<lowrank::SvdPass>(g, "{energy: 0.9, latency_gate: false}");
    REQUIRE(r.has_value());
    const Tensor w = original.find_node("fc1")->input(1)->constant();
    const auto s = lowrank::singular_values(values(w), w.dim(0), w.dim(1)).value();
    const int64_t want = lowrank::rank_for_energy(s, 0.9);
    double total = 0, kept = 0;
    for (double v : s) total += v * v;
    for (int64_t i = 0; i < want; ++i) kept += s[static_cast<size_t>(i)] * s[static_cast<size_t>(i)];
    CHECK(kept >= 0.9 * total);
    CHECK(kept - s[static_cast<size_t>(want - 1)] * s[static_cast<size_t>(want - 1)] < 0.9 * total);
    CHECK(r->layers.at("fc1").at("rank") == static_cast<double>(want));
  }
}

// Note [Latency gate]: a layer cut to 5% of its MACs at batch 32 runs faster;
// one at full rank (two layers doing twice the work of one) does not.
TEST_CASE("the latency gate keeps a faster factorization and leaves a slower one dense, with both times", "[lowrank]") {
  ir::Graph g;
  ir::Value* x = g.add_input("x", ir::ValueType{DType::kF32, {32, 1024}, nullptr}).value();
  ir::Value* big =
      g.add_node("linear", {x, g.add_constant("big.w", random_tensor({1024, 1024}, 8, 0.03f)).value()}, {}, "big")
          .value()
          ->output();
  ir::Value* narrow =
      g.add_node("linear", {big, g.add_constant("narrow.w", random_tensor({64, 1024}, 9, 0.03f)).value()}, {}, "narrow")
          .value()
          ->output();
  ir::Value* small =
      g.add_node("linear", {narrow, g.add_constant("small.w", random_tensor({64, 64}, 10, 0.1f)).value()}, {}, "small")
          .value()
          ->output();
  g.set_outputs({small});
  const std::string backend = available_backend();
  ir::Graph slow = g.clone();
  auto r = run_pass<lowrank::SvdPass>(
      g, fmt::format("{{backend: {}, exclude: [narrow, small], ratio: 0.05, gate_batches: [32, 4]}}", backend));
  INFO(r.status().to_string());
  REQUIRE(r.has_value());
  // Full rank: twice the MACs of the dense layer, in two primitives.
  auto rs = run_pass<lowrank::SvdPass>(slow, fmt::format("{{backend: {}, exclude: [big, narrow], rank: 64}}", backend));
  INFO(rs.status().to_string());
  REQUIRE(rs.has_value());
  const auto& b = r->layers.at("big");
  const auto& s = rs->layers.at("small");
  INFO("big: dense " << b.at("dense_ms") << " ms, chain " << b.at("factorized_ms") << " ms; small: dense "
                     << s.at("dense_ms") << " ms, chain " << s.at("factorized_ms") << " ms on " << backend);
  CHECK(b.at("factorized") == 1.0);
  CHECK(b.at("factorized_ms") < b.at("dense_ms"));
  // Timed at each of gate_batches, faster at both; the first is the headline.
  CHECK(b.at("factorized_ms_batch4") < b.at("dense_ms_batch4"));
  CHECK(b.at("dense_ms_batch32") == b.at("dense_ms"));
  CHECK(g.find_node("big") == nullptr);
  CHECK(s.at("factorized") == 0.0);
  CHECK(s.at("factorized_ms") >= s.at("dense_ms"));
  CHECK(slow.find_node("small") != nullptr);  // left dense, untouched
  CHECK(rs->counters.at("layers_left_dense") == 1.0);
  CHECK_FALSE(rs->changed);
}

// Note [Activation-aware SVD]: inputs whose features differ in scale by
// 10^3 and are correlated; held-out inputs from the same distribution.
TEST_CASE("activation-aware SVD: whitening and ASVD lower the output error on held-out inputs, with fallbacks",
          "[lowrank]") {
  const int64_t n = 32, m = 24;
  auto inputs = [&](int64_t rows, uint32_t seed) {
    Tensor z = random_tensor({rows, n}, seed);
    Tensor x = Tensor::zeros(DType::kF32, {rows, n}).value();
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t j = 0; j < n; ++j) {
        const float mix = z.data<float>()[r * n + j] + 0.5f * z.data<float>()[r * n + (j + 1) % n];
        x.data<float>()[r * n + j] = mix * std::pow(10.0f, -3.0f * static_cast<float>(j) / static_cast<float>(n));
      }
    }
    return x;
  };
  ir::Graph g;
  ir::Value* x = g.add_input("x", ir::ValueType{DType::kF32, {16, n}, nullptr}).value();
  g.set_outputs(
      {g.add_node("linear", {x, g.add_constant("w", random_tensor({m, n}, 31)).value()}, {}, "fc").value()->output()});
  auto calib = eval::from_tensor(inputs(512, 32), {}, "calibration").value();
  const Tensor held_out = inputs(256, 33);
  auto frobenius = [](const Tensor& got, const Tensor& ref) {  // ||got - ref|| / ||ref||
    double d = 0, r = 0;
    for (int64_t i = 0; i < ref.numel(); ++i) {
      const double e = static_cast<double>(got.data<float>()[i]) - static_cast<double>(ref.data<float>()[i]);
      d += e * e;
      r += static_cast<double>(ref.data<float>()[i]) * static_cast<double>(ref.data<float>()[i]);
    }
    return std::sqrt(d / r);
  };
  const Tensor want = run(g, "reference", held_out);
  auto output_error = [&](const std::string& aware) {
    ir::Graph f = g.clone();
    auto r = run_pass<lowrank::SvdPass>(
        f, fmt::format("{{rank: 6, latency_gate: false, activation_aware: {}, samples: 512}}", aware), calib.get());
    INFO(aware << ": " << r.status().to_string());
    REQUIRE(r.has_value());
    if (aware == "whiten") CHECK(r->layers.at("fc").at("output_error") < r->layers.at("fc").at("relative_error"));
    return frobenius(run(f, "reference", held_out), want);
  };
  const double plain = output_error("none"), asvd = output_error("asvd"), whiten = output_error("whiten");
  INFO("held-out output error at rank 6: plain " << plain << ", asvd " << asvd << ", whiten " << whiten);
  CHECK(whiten <= 0.5 * plain);
  CHECK(asvd < plain);
  CHECK(whiten <= asvd);

  // Without calibration data: an error naming the need, and the pass says so up front.
  auto opts = lowrank::SvdPass::parse_options(yaml_options("{activation_aware: whiten}"));
  REQUIRE(opts.has_value());
  CHECK(lowrank::SvdPass(*opts).needs().calibration);
  ir::Graph f = g.clone();
  auto missing = run_pass<lowrank::SvdPass>(f, "{activation_aware: whiten, latency_gate: false}");
  REQUIRE_FALSE(missing.has_value());
  CHECK_THAT(missing.status().message(), Catch::Contains("needs calibration data"));
  // All-zero inputs: X^T X is not positive definite; plain SVD, marked.
  auto zeros = eval::from_tensor(Tensor::zeros(DType::kF32, {64, n}).value(), {}, "zeros").value();
  ir::Graph z = g.clone();
  auto fallback =
      run_pass<lowrank::SvdPass>(z, "{rank: 6, latency_gate: false, activation_aware: whiten}", zeros.get());
  REQUIRE(fallback.has_value());
  CHECK(fallback->layers.at("fc").at("whitening_fallback") == 1.0);
  CHECK(frobenius(run(z, "reference", held_out), want) == Approx(plain).margin(1e-6));
  // Only lowrank.svd reads the activation options.
  pass::PassRegistry registry;
  REQUIRE(lowrank::register_lowrank_passes(registry).is_ok());
  CHECK_FALSE(registry.create("lowrank.tucker2", yaml_options("{activation_aware: whiten}")).has_value());
  CHECK_THAT(lowrank::SvdPass::parse_options(yaml_options("{activation_aware: magic}")).status().message(),
             Catch::Contains("'magic'"));
}

// Issue 15 item 9: a pruned model factorizes, a factorized model prunes
// (the channel groups see the chains' 1x1 convs as ordinary layers).
TEST_CASE("structured pruning and Tucker-2 compose in either order: the graph verifies and runs alike on every backend",
          "[lowrank]") {
  pass::PassRegistry registry;
  REQUIRE(prune::register_prune_passes(registry).is_ok());
  REQUIRE(lowrank::register_lowrank_passes(registry).is_ok());
  auto run_stage = [&](ir::Graph& g, const std::string& name, const std::string& yaml) {
    auto p = registry.create(name, yaml_options(yaml));
    INFO(name << ": " << p.status().to_string());
    REQUIRE(p.has_value());
    pass::PassContext ctx;
    ctx.progress = false;
    auto r = (*p)->run(g, ctx);
    INFO(name << ": " << r.status().to_string());
    REQUIRE(r.has_value());
    CHECK(r->changed);
    REQUIRE(ir::verify(g).is_ok());
  };
  const ir::Graph model =
      io::load_cmf(std::string(COMPRESS_TEST_SOURCE_DIR) + "/tests/fixtures/models/fashion_resnet.cmf").value();
  const Tensor x = random_tensor({2, 1, 28, 28}, 41);
  for (bool prune_first : {true, false}) {
    INFO((prune_first ? "prune.structured then lowrank.tucker2" : "lowrank.tucker2 then prune.structured"));
    ir::Graph g = model.clone();
    if (prune_first) {
      run_stage(g, "prune.structured", "{target_flops: 0.4}");
      run_stage(g, "lowrank.tucker2", "{ratio: 0.6, latency_gate: false}");
    } else {
      run_stage(g, "lowrank.tucker2", "{ratio: 0.6, latency_gate: false}");
      run_stage(g, "prune.structured", "{target_flops: 0.3}");
    }
    bool chains = false;
    for (const ir::Node* n : g.nodes()) chains = chains || n->name().find(".tucker_core") != std::string::npos;
    CHECK(chains);
    const Tensor ref = run(g, "reference", x);
    if (available_backend() == "onednn") CHECK(max_rel_diff(run(g, "onednn", x), ref) < 1e-4);
  }
}

TEST_CASE("lowrank: bad options, unmatched patterns, bad weights and layers a method cannot factorize", "[lowrank]") {
  auto error_of = [](const std::string& yaml) {
    auto o = lowrank::SvdPass::parse_options(yaml_options(yaml));
    return o.has_value() ? std::string("no error") : o.status().message();
  };
  CHECK_THAT(error_of("{rank: 0}"), Catch::Contains("'rank'"));
  CHECK_THAT(error_of("{ratio: 0}"), Catch::Contains("'ratio'"));
  CHECK_THAT(error_of("{ratio: 1.5}"), Catch::Contains("'ratio'"));
  CHECK_THAT(error_of("{energy: 0}"), Catch::Contains("'energy'"));
  CHECK_THAT(error_of("{rank: 4, ratio: 0.5}"), Catch::Contains("one of rank, ratio and energy"));
  CHECK_THAT(error_of("{backend: tpu}"), Catch::Contains("'tpu'"));
  CHECK_THAT(error_of("{round_to: 0}"), Catch::Contains("'round_to'"));
  pass::PassRegistry registry;
  REQUIRE(lowrank::register_lowrank_passes(registry).is_ok());
  auto svd = registry.create("lowrank.svd", yaml_options("{max_iterations: 3}"));  // tucker2 only
  REQUIRE_FALSE(svd.has_value());
  CHECK_THAT(svd.status().message(), Catch::Contains("max_iterations"));
  CHECK(registry.create("lowrank.tucker2", yaml_options("{max_iterations: 3}")).has_value());

  const ir::Graph original = small_model();
  {
    ir::Graph g = original.clone();
    auto r = run_pass<lowrank::SvdPass>(g, "{exclude: [nothing*], latency_gate: false}");
    REQUIRE_FALSE(r.has_value());
    CHECK_THAT(r.status().message(), Catch::Contains("'nothing*' matches no") && Catch::Contains("fc1"));
  }
  {
    ir::Graph g = original.clone();
    auto r = run_pass<lowrank::SvdPass>(g, "{rank: 11, latency_gate: false}");
    REQUIRE_FALSE(r.has_value());
    CHECK_THAT(r.status().message(), Catch::Contains("layer 'conv1'") && Catch::Contains("above the full rank 10"));
  }
  {
    ir::Graph g = original.clone();
    Tensor w = g.find_node("fc1")->input(1)->constant().clone().value();
    w.data<float>()[3] = std::nanf("");
    g.find_node("fc1")->input(1)->set_constant(w);
    auto r = run_pass<lowrank::SvdPass>(g, "{latency_gate: false}");
    REQUIRE_FALSE(r.has_value());
    CHECK_THAT(r.status().message(), Catch::Contains("layer 'fc1'") && Catch::Contains("non-finite"));
  }
  {
    // A depthwise conv: spatial_svd and tucker2 leave it alone, say so, change nothing.
    ir::Graph g;
    ir::Value* x = g.add_input("x", ir::ValueType{DType::kF32, {1, 8, 6, 6}, nullptr}).value();
    ir::Value* y = g.add_node("conv2d", {x, g.add_constant("dw.w", random_tensor({8, 1, 3, 3}, 11)).value()},
                              {{"groups", int64_t{8}}}, "dw")
                       .value()
                       ->output();
    g.set_outputs({y});
    auto r = run_pass<lowrank::Tucker2Pass>(g, "{latency_gate: false}");
    REQUIRE(r.has_value());
    CHECK_FALSE(r->changed);
    CHECK(r->counters.at("layers_skipped") == 1.0);
    CHECK(g.find_node("dw") != nullptr);
  }
}

TEST_CASE("ctk lowrank: tucker2 on fashion_resnet prints the table and writes a model, bad flags write nothing",
          "[lowrank][cli]") {
  const std::string model = std::string(COMPRESS_TEST_SOURCE_DIR) + "/tests/fixtures/models/fashion_resnet.cmf";
  const fs::path dir = fs::temp_directory_path() / "ctk_lowrank_test";
  fs::remove_all(dir);
  fs::create_directories(dir);
  auto ctk = [&](const std::string& args, std::string* out) {
    const std::string cmd = std::string(CTK_PATH) + " lowrank " + args + " 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    REQUIRE(p != nullptr);
    char buf[4096];
    size_t n;
    out->clear();
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out->append(buf, n);
    return WEXITSTATUS(pclose(p));
  };
  std::string out;
  const std::string dst = (dir / "t2.cmf").string();
  CHECK(ctk(fmt::format("{} {} --method tucker2 --ratio 0.5 --no-latency-gate --quiet", model, dst), &out) == 0);
  INFO(out);
  CHECK_THAT(out,
             Catch::Contains("lowrank.tucker2") && Catch::Contains("block2.conv1") && Catch::Contains("factorized"));
  auto g = io::load_cmf(dst);
  REQUIRE(g.has_value());
  CHECK(ir::verify(*g).is_ok());
  CHECK(g->find_node("block2.conv1.tucker_core") != nullptr);
  // Whitened SVD of the transformer's linears from 64 calibration images.
  const std::string transformer =
      std::string(COMPRESS_TEST_SOURCE_DIR) + "/tests/fixtures/models/fashion_transformer.cmf";
  CHECK(ctk(fmt::format("{} {} --method svd --ratio 0.5 --activation-aware whiten --calib fashion-mnist:train --mean "
                        "0.286 --std 0.353 --samples 64 --no-latency-gate --quiet",
                        transformer, (dir / "tw.cmf").string()),
            &out) == 0);
  CHECK_THAT(out, Catch::Contains("out error") && Catch::Contains("blocks.0.fc1"));
  const std::string bad = (dir / "bad.cmf").string();
  CHECK(ctk(fmt::format("{} {} --method svd --activation-aware whiten", transformer, bad), &out) == 2);
  CHECK_THAT(out, Catch::Contains("--activation-aware needs --calib"));
  CHECK(ctk(fmt::format("{} {} --method vbmf", model, bad), &out) == 2);
  CHECK_THAT(out, Catch::Contains("unknown --method 'vbmf'"));
  CHECK(ctk(fmt::format("{} {} --method svd --max-iterations 3", model, bad), &out) == 2);
  CHECK(ctk(fmt::format("{} {} --method svd --ratio 2", model, bad), &out) == 2);
  CHECK_THAT(out, Catch::Contains("--ratio"));
  CHECK(ctk(fmt::format("{} {} --method svd --rank 4 --energy 0.9", model, bad), &out) == 2);
  CHECK(ctk(fmt::format("{} {} --method tucker2 --exclude 'nope*'", model, bad), &out) != 0);
  CHECK_THAT(out, Catch::Contains("'nope*' matches no"));
  CHECK_FALSE(fs::exists(bad));
  fs::remove_all(dir);
}

}  // namespace compress::test
