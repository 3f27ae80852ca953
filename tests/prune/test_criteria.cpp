#include <catch2/catch.hpp>

#include <Eigen/Dense>
#include <random>

#include "compress/ir/sparse_layout.h"
#include "compress/ir/verifier.h"
#include "compress/prune/activation_stats.h"
#include "compress/prune/criteria.h"
#include "compress/prune/masks.h"
#include "compress/prune/prunable_layers.h"
#include "prune_test_util.h"

using namespace compress;
using namespace compress::prune_test;

namespace {

std::vector<float> random_values(size_t count, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(count);
  for (float& x : v) x = normal(rng);
  return v;
}

// Correlated inputs X = Z A (rows x cols), so H = X^T X is far from diagonal.
std::vector<float> correlated_inputs(int64_t rows, int64_t cols, uint64_t seed) {
  const std::vector<float> z = random_values(static_cast<size_t>(rows * cols), seed);
  const std::vector<float> a = random_values(static_cast<size_t>(cols * cols), seed + 1);
  std::vector<float> x(static_cast<size_t>(rows * cols), 0.0f);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < cols; ++j) {
      double s = 0.0;
      for (int64_t k = 0; k < cols; ++k) {
        s += z[static_cast<size_t>(r * cols + k)] * a[static_cast<size_t>(k * cols + j)] * (k < 4 ? 3.0 : 0.3);
      }
      x[static_cast<size_t>(r * cols + j)] = static_cast<float>(s);
    }
  }
  return x;
}

// ||X W^T - X W'^T||_F^2
double output_error(const std::vector<float>& x, const std::vector<float>& w, const std::vector<float>& pruned,
                    int64_t rows, int64_t out, int64_t in) {
  double e = 0.0;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t o = 0; o < out; ++o) {
      double d = 0.0;
      for (int64_t i = 0; i < in; ++i) {
        d += static_cast<double>(x[static_cast<size_t>(r * in + i)]) *
             (w[static_cast<size_t>(o * in + i)] - pruned[static_cast<size_t>(o * in + i)]);
      }
      e += d * d;
    }
  }
  return e;
}

ir::Graph single_linear(const std::vector<float>& w, int64_t out, int64_t in) {
  ir::Graph g;
  ir::Value* x = g.add_input("x", {ir::DType::kF32, {1, in}, nullptr}).value();
  ir::Value* wv = g.add_constant("fc.weight", ir::Tensor::from_vector(ir::DType::kF32, {out, in}, w)).value();
  g.set_outputs({g.add_node("linear", {x, wv}, {}, "fc").value()->output()});
  return g;
}

Expected<pass::PassResult> run_pass(ir::Graph& g, const std::string& name,
                                    const std::vector<std::pair<std::string, std::string>>& options,
                                    const eval::DataSource* calib) {
  COMPRESS_ASSIGN_OR_RETURN(auto p, make_pass(name, options));
  pass::PassContext ctx;
  ctx.progress = false;
  ctx.calibration = calib;
  return p->run(g, ctx);
}

}  // namespace

TEST_CASE("activation statistics: linear rows and grouped, strided, padded conv2d patches against direct sums") {
  // x -> relu -> conv2d(groups 2, stride 2, padding 1) ; and relu -> flatten -> linear
  const int64_t n = 3, c = 4, h = 5, w = 6;
  const std::vector<float> xs = random_values(static_cast<size_t>(n * c * h * w), 7);
  ir::Graph g;
  ir::Value* x = g.add_input("x", {ir::DType::kF32, {1, c, h, w}, nullptr}).value();
  ir::Node* relu = g.add_node("relu", {x}, {}, "relu").value();
  ir::Value* cw =
      g.add_constant("conv.weight", ir::Tensor::from_vector(ir::DType::kF32, {6, 2, 3, 3}, random_values(108, 8)))
          .value();
  ir::AttributeMap attrs;
  attrs["groups"] = int64_t{2};
  attrs["stride"] = std::vector<int64_t>{2, 2};
  attrs["padding"] = std::vector<int64_t>{1, 1, 1, 1};
  ir::Node* conv = g.add_node("conv2d", {relu->output(), cw}, attrs, "conv").value();
  ir::Node* flat = g.add_node("flatten", {relu->output()}, {}, "flatten").value();
  ir::Value* lw =
      g.add_constant("fc.weight", ir::Tensor::from_vector(ir::DType::kF32, {2, c * h * w},
                                                          random_values(static_cast<size_t>(2 * c * h * w), 9)))
          .value();
  ir::Node* fc = g.add_node("linear", {flat->output(), lw}, {}, "fc").value();
  g.set_outputs({conv->output(), fc->output()});
  REQUIRE(ir::verify(g).is_ok());
  auto data = eval::from_tensor(ir::Tensor::from_vector(ir::DType::kF32, {n, c, h, w}, xs), {}, "random").value();

  const std::vector<prune::PrunableLayer> layers = prune::prunable_layers(g);
  REQUIRE(layers.size() == 2);
  prune::ActivationStatsOptions opts;
  opts.hessian = true;
  opts.batch = 2;  // two batches: the sums must accumulate across them
  const auto stats = prune::collect_input_stats(g, layers, *data, opts).value();

  auto relu_x = [&](int64_t b, int64_t ch, int64_t y, int64_t xx) {
    if (y < 0 || y >= h || xx < 0 || xx >= w) return 0.0;
    return std::max(0.0, static_cast<double>(xs[static_cast<size_t>(((b * c + ch) * h + y) * w + xx)]));
  };
  // conv: output 3x3 positions per image; patch column j = (ci, ky, kx) of the group's 2 channels.
  const auto& s = stats[0];
  CHECK(s.groups == 2);
  CHECK(s.cols == 18);
  CHECK(s.rows_seen == n * 3 * 3);
  for (int64_t grp = 0; grp < 2; ++grp) {
    std::vector<double> hh(18 * 18, 0.0), norms(18, 0.0);
    for (int64_t b = 0; b < n; ++b) {
      for (int64_t oy = 0; oy < 3; ++oy) {
        for (int64_t ox = 0; ox < 3; ++ox) {
          std::vector<double> patch;
          for (int64_t ci = 0; ci < 2; ++ci) {
            for (int64_t ky = 0; ky < 3; ++ky) {
              for (int64_t kx = 0; kx < 3; ++kx) patch.push_back(relu_x(b, grp * 2 + ci, oy * 2 - 1 + ky, ox * 2 - 1 + kx));
            }
          }
          for (size_t i = 0; i < 18; ++i) {
            norms[i] += patch[i] * patch[i];
            for (size_t j = 0; j < 18; ++j) hh[i * 18 + j] += patch[i] * patch[j];
          }
        }
      }
    }
    for (size_t i = 0; i < 18; ++i) CHECK(s.sq_norms[static_cast<size_t>(grp * 18) + i] == Approx(norms[i]).margin(1e-4));
    for (size_t i = 0; i < hh.size(); ++i) {
      CHECK(s.hessian[static_cast<size_t>(grp * 18 * 18) + i] == Approx(hh[i]).margin(1e-4));
    }
  }
  // linear: one row per sample.
  const auto& l = stats[1];
  CHECK(l.rows_seen == n);
  for (int64_t i = 0; i < c * h * w; i += 7) {
    double want = 0.0;
    for (int64_t b = 0; b < n; ++b) {
      const double v = relu_x(b, i / (h * w), (i / w) % h, i % w);
      want += v * v;
    }
    CHECK(l.sq_norms[static_cast<size_t>(i)] == Approx(want).margin(1e-4));
  }
}

TEST_CASE("sparsegpt on one linear layer: exact count and a smaller ||WX - W'X|| than magnitude") {
  const int64_t out = 16, in = 64, rows = 512;
  const std::vector<float> w = random_values(static_cast<size_t>(out * in), 3);
  const std::vector<float> x = correlated_inputs(rows, in, 4);
  std::vector<double> hess(static_cast<size_t>(in * in), 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t i = 0; i < in; ++i) {
      for (int64_t j = 0; j < in; ++j) {
        hess[static_cast<size_t>(i * in + j)] +=
            static_cast<double>(x[static_cast<size_t>(r * in + i)]) * x[static_cast<size_t>(r * in + j)];
      }
    }
  }
  for (bool nm : {false, true}) {
    INFO((nm ? "2:4" : "50%"));
    prune::PruneTarget target;
    target.ratio = 0.5;
    if (nm) {
      target.n = 2;
      target.m = 4;
    }
    std::vector<float> sgpt = w;
    REQUIRE(prune::sparsegpt_prune(sgpt, out, in, hess.data(), target, {0.01, 16}).is_ok());
    std::vector<float> mag = w;
    const std::vector<float> scores = prune::magnitude_scores(w);
    prune::apply_mask(mag, nm ? prune::nm_mask(scores, out, in, 2, 4) : prune::lowest_k(scores, out * in / 2));
    CHECK(zeros(sgpt) == out * in / 2);
    if (nm) CHECK(prune::satisfies_nm(sgpt.data(), out, in, 2, 4));
    const double e_sgpt = output_error(x, w, sgpt, rows, out, in);
    const double e_mag = output_error(x, w, mag, rows, out, in);
    CHECK(e_sgpt < 0.7 * e_mag);
  }

  // The same through prune.magnitude with calibration data (collector + pass).
  auto data = eval::from_tensor(ir::Tensor::from_vector(ir::DType::kF32, {rows, in}, x), {}, "x").value();
  ir::Graph by_mag = single_linear(w, out, in), by_sgpt = single_linear(w, out, in), by_wanda = single_linear(w, out, in);
  REQUIRE(run_pass(by_mag, "prune.magnitude", {{"ratio", "0.5"}}, nullptr).has_value());
  for (auto& [g, criterion] : {std::pair<ir::Graph*, const char*>{&by_sgpt, "sparsegpt"}, {&by_wanda, "wanda"}}) {
    auto r = run_pass(*g, "prune.magnitude", {{"ratio", "0.5"}, {"criterion", criterion}, {"samples", "512"}}, data.get());
    if (!r.has_value()) FAIL(r.status().to_string());
  }
  const double e_mag = output_error(x, w, weight_of(by_mag, "fc"), rows, out, in);
  const double e_sgpt = output_error(x, w, weight_of(by_sgpt, "fc"), rows, out, in);
  const double e_wanda = output_error(x, w, weight_of(by_wanda, "fc"), rows, out, in);
  CHECK(zeros(weight_of(by_sgpt, "fc")) == out * in / 2);
  CHECK(zeros(weight_of(by_wanda, "fc")) == out * in / 2);
  CHECK(e_sgpt < 0.7 * e_mag);
  CHECK(e_wanda < e_mag);
}

TEST_CASE("wanda and sparsegpt beat magnitude on the fixture's logits at 50% and 2:4, with exact counts and the pattern") {
  const ir::Graph dense = test::fashion_cnn();
  auto calib = test::fashion_data("train", 32);
  const ir::Tensor x = test::fashion_data("test", 128)->batch(0, 128).value().inputs;
  const ir::Tensor want = run_graph(dense, "reference", x)[0];
  for (const char* pass_name : {"prune.magnitude", "prune.nm"}) {
    std::map<std::string, double> err;
    for (const char* criterion : {"magnitude", "wanda", "sparsegpt"}) {
      ir::Graph g = dense.clone();
      std::vector<std::pair<std::string, std::string>> opts = {{"criterion", criterion}, {"samples", "32"}};
      if (std::string(pass_name) == "prune.magnitude") opts.emplace_back("ratio", "0.5");
      auto r = run_pass(g, pass_name, opts, calib.get());
      if (!r.has_value()) FAIL(r.status().to_string());
      err[criterion] = mse(run_graph(g, "reference", x)[0], want);
      // The counts (and for N:M the pattern) hold whatever the criterion.
      for (const char* name : {"conv2", "fc1", "fc2"}) {
        INFO(criterion << " " << name);
        const ir::Tensor& t = g.find_node(name)->input(1)->constant();
        int64_t rows = 0, cols = 0;
        ir::matrix_dims(t.shape(), &rows, &cols);
        const std::vector<float> w = dense_values(t);
        CHECK(zeros(w) == rows * cols / 2);
        if (std::string(pass_name) == "prune.nm") CHECK(prune::satisfies_nm(w.data(), rows, cols, 2, 4));
      }
    }
    INFO(pass_name << ": logits MSE magnitude " << err["magnitude"] << ", wanda " << err["wanda"] << ", sparsegpt "
                   << err["sparsegpt"]);
    CHECK(err["wanda"] < err["magnitude"]);
    CHECK(err["sparsegpt"] < err["magnitude"]);
  }
}
