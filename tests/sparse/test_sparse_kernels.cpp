// The sparse weight kernels against a dense double-precision reference: odd shapes, empty rows, all-zero and
// fully dense weights, batch 1 and more, every ISA path, thread-count independence, epilogues and layouts.
#include <catch2/catch.hpp>
#include <cmath>
#include <random>
#include <vector>

#include "compress/ir/sparse_layout.h"
#include "compress/runtime/sparse_kernels.h"

namespace sp = compress::runtime::sparse;
using compress::ir::DType;
using compress::ir::Tensor;

namespace {

// A [rows, cols] weight with about `sparsity` zeros; every third row empty when asked.
Tensor random_weight(int64_t rows, int64_t cols, double sparsity, bool empty_rows, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> value(-1.0f, 1.0f);
  std::uniform_real_distribution<double> keep(0.0, 1.0);
  std::vector<float> w(static_cast<size_t>(rows * cols), 0.0f);
  for (int64_t r = 0; r < rows; ++r) {
    if (empty_rows && r % 3 == 1) continue;
    for (int64_t c = 0; c < cols; ++c) {
      if (keep(rng) >= sparsity) w[static_cast<size_t>(r * cols + c)] = value(rng);
    }
  }
  return Tensor::from_vector(DType::kF32, {rows, cols}, w);
}

std::vector<float> random_vector(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> value(-2.0f, 2.0f);
  std::vector<float> v(n);
  for (float& x : v) x = value(rng);
  return v;
}

// y[b, r] = sum_c w[r, c] x[b, c] in double, and the sum of |terms| for the tolerance.
void reference_linear(const Tensor& w, const std::vector<float>& x, int64_t batch, std::vector<double>* y,
                      std::vector<double>* magnitude) {
  const int64_t rows = w.dim(0), cols = w.dim(1);
  const float* wd = w.data<float>();
  y->assign(static_cast<size_t>(batch * rows), 0.0);
  magnitude->assign(y->size(), 0.0);
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t r = 0; r < rows; ++r) {
      double s = 0, m = 0;
      for (int64_t c = 0; c < cols; ++c) {
        const double t = static_cast<double>(wd[r * cols + c]) * x[static_cast<size_t>(b * cols + c)];
        s += t;
        m += std::fabs(t);
      }
      (*y)[static_cast<size_t>(b * rows + r)] = s;
      (*magnitude)[static_cast<size_t>(b * rows + r)] = m;
    }
  }
}

std::vector<sp::Isa> isas() {
  std::vector<sp::Isa> v = {sp::Isa::kPortable};
  if (sp::selected_isa() == "avx512") v.push_back(sp::Isa::kAvx512);
  return v;
}

const char* isa_name(sp::Isa isa) { return isa == sp::Isa::kPortable ? "portable" : "avx512"; }

}  // namespace

TEST_CASE("sparse linear matches the dense reference for odd shapes, empty rows and batches", "[sparse]") {
  struct Shape {
    int64_t rows, cols;
  };
  const std::vector<Shape> shapes = {{7, 13}, {1, 1}, {33, 65}, {40, 300}};
  const std::vector<double> sparsities = {0.0, 0.5, 0.9, 1.0};
  uint32_t seed = 1;
  for (const Shape& s : shapes) {
    for (double sparsity : sparsities) {
      for (bool empty_rows : {false, true}) {
        const Tensor w = random_weight(s.rows, s.cols, sparsity, empty_rows, seed++);
        auto csr = sp::csr_from_tensor(w);
        REQUIRE(csr.has_value());
        CHECK(csr->nnz() == static_cast<int64_t>(std::llround((1.0 - w.sparsity()) * s.rows * s.cols)));
        for (int64_t batch : {1, 2, 16, 17, 70}) {
          const std::vector<float> x = random_vector(static_cast<size_t>(batch * s.cols), seed++);
          std::vector<double> ref, mag;
          reference_linear(w, x, batch, &ref, &mag);
          for (sp::Isa isa : isas()) {
            INFO(s.rows << "x" << s.cols << " sparsity " << sparsity << " empty rows " << empty_rows << " batch "
                        << batch << " " << isa_name(isa));
            std::vector<float> y(ref.size(), -7.0f);
            REQUIRE(sp::linear(*csr, x.data(), batch, y.data(), {}, {2, isa}).is_ok());
            for (size_t i = 0; i < y.size(); ++i) {
              INFO("element " << i);
              REQUIRE(std::fabs(y[i] - ref[i]) <= 1e-5 * mag[i] + 1e-6);
            }
          }
        }
      }
    }
  }
}

TEST_CASE("sparse linear results do not depend on the thread count", "[sparse]") {
  const Tensor w = random_weight(257, 1000, 0.9, true, 42);
  const sp::CsrMatrix csr = *sp::csr_from_tensor(w);
  for (int64_t batch : {1, 5, 40}) {
    const std::vector<float> x = random_vector(static_cast<size_t>(batch * 1000), 7);
    for (sp::Isa isa : isas()) {
      std::vector<float> y1(static_cast<size_t>(batch * 257)), y2(y1.size()), y3(y1.size());
      REQUIRE(sp::linear(csr, x.data(), batch, y1.data(), {}, {1, isa}).is_ok());
      REQUIRE(sp::linear(csr, x.data(), batch, y2.data(), {}, {2, isa}).is_ok());
      REQUIRE(sp::linear(csr, x.data(), batch, y3.data(), {}, {3, isa}).is_ok());
      CHECK(y1 == y2);
      CHECK(y1 == y3);
    }
  }
}

TEST_CASE("sparse linear applies bias, posts and a residual in order", "[sparse]") {
  const Tensor w = random_weight(9, 31, 0.8, false, 3);
  const sp::CsrMatrix csr = *sp::csr_from_tensor(w);
  const int64_t batch = 4;
  const std::vector<float> x = random_vector(static_cast<size_t>(batch * 31), 4);
  const std::vector<float> bias = random_vector(9, 5);
  const std::vector<float> residual = random_vector(static_cast<size_t>(batch * 9), 6);
  std::vector<double> ref, mag;
  reference_linear(w, x, batch, &ref, &mag);
  sp::Epilogue ep;
  ep.bias = bias.data();
  ep.residual = residual.data();
  ep.posts = {{sp::PostKind::kAddResidual, 0, 0}, {sp::PostKind::kRelu, 0, 0}, {sp::PostKind::kClip, 0.f, 0.75f}};
  for (sp::Isa isa : isas()) {
    std::vector<float> y(ref.size());
    REQUIRE(sp::linear(csr, x.data(), batch, y.data(), ep, {2, isa}).is_ok());
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t r = 0; r < 9; ++r) {
        const size_t i = static_cast<size_t>(b * 9 + r);
        const double want = std::min(std::max(ref[i] + bias[static_cast<size_t>(r)] + residual[i], 0.0), 0.75);
        REQUIRE(std::fabs(y[i] - want) <= 1e-5 * (mag[i] + 4) + 1e-6);
      }
    }
  }
}

TEST_CASE("sparse conv2d matches a direct convolution for 1x1 and im2col geometries", "[sparse]") {
  struct Case {
    sp::ConvGeometry g;
    int64_t out_channels;
  };
  std::vector<Case> cases;
  {
    sp::ConvGeometry g;  // pointwise, odd spatial size and channel counts
    g.batch = 2, g.channels = 13, g.height = 5, g.width = 7;
    cases.push_back({g, 7});
  }
  {
    sp::ConvGeometry g;  // 3x3, stride 2, asymmetric padding, dilation
    g.batch = 2, g.channels = 5, g.height = 9, g.width = 11;
    g.kernel_h = 3, g.kernel_w = 3, g.stride_h = 2, g.stride_w = 1;
    g.pad_top = 1, g.pad_left = 2, g.pad_bottom = 0, g.pad_right = 1;
    g.dilation_w = 2;
    cases.push_back({g, 6});
  }
  uint32_t seed = 100;
  for (const Case& c : cases) {
    const sp::ConvGeometry& g = c.g;
    const int64_t k = g.channels * g.kernel_h * g.kernel_w;
    const Tensor w2 = random_weight(c.out_channels, k, 0.7, true, seed++);
    auto w4 = w2.reshaped({c.out_channels, g.channels, g.kernel_h, g.kernel_w});
    REQUIRE(w4.has_value());
    const sp::CsrMatrix csr = *sp::csr_from_tensor(*w4);
    const std::vector<float> x = random_vector(static_cast<size_t>(g.batch * g.channels * g.height * g.width), seed++);
    const std::vector<float> bias = random_vector(static_cast<size_t>(c.out_channels), seed++);
    const int64_t oh = g.out_h(), ow = g.out_w();
    const float* wd = w2.data<float>();
    for (sp::Isa isa : isas()) {
      std::vector<float> y(static_cast<size_t>(g.batch * c.out_channels * oh * ow));
      sp::Epilogue ep;
      ep.bias = bias.data();
      REQUIRE(sp::conv2d(csr, g, x.data(), y.data(), ep, {2, isa}).is_ok());
      for (int64_t n = 0; n < g.batch; ++n) {
        for (int64_t o = 0; o < c.out_channels; ++o) {
          for (int64_t oy = 0; oy < oh; ++oy) {
            for (int64_t ox = 0; ox < ow; ++ox) {
              double s = bias[static_cast<size_t>(o)], m = std::fabs(s);
              for (int64_t ch = 0; ch < g.channels; ++ch) {
                for (int64_t kh = 0; kh < g.kernel_h; ++kh) {
                  for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
                    const int64_t iy = oy * g.stride_h - g.pad_top + kh * g.dilation_h;
                    const int64_t ix = ox * g.stride_w - g.pad_left + kw * g.dilation_w;
                    if (iy < 0 || iy >= g.height || ix < 0 || ix >= g.width) continue;
                    const double t = static_cast<double>(wd[o * k + (ch * g.kernel_h + kh) * g.kernel_w + kw]) *
                                     x[static_cast<size_t>(((n * g.channels + ch) * g.height + iy) * g.width + ix)];
                    s += t;
                    m += std::fabs(t);
                  }
                }
              }
              const float got = y[static_cast<size_t>(((n * c.out_channels + o) * oh + oy) * ow + ox)];
              INFO(isa_name(isa) << " n " << n << " o " << o << " y " << oy << " x " << ox);
              REQUIRE(std::fabs(got - s) <= 1e-5 * m + 1e-6);
            }
          }
        }
      }
    }
  }
}

TEST_CASE("csr_from_tensor reads every sparse layout the same as its dense form", "[sparse]") {
  const Tensor dense = random_weight(8, 16, 0.6, true, 9);
  const sp::CsrMatrix want = *sp::csr_from_tensor(dense);
  std::vector<Tensor> layouts = {*compress::ir::to_csr_layout(dense), *compress::ir::to_mask_layout(dense),
                                 *compress::ir::to_block_layout(dense, 2, 4)};
  for (const Tensor& t : layouts) {
    auto got = sp::csr_from_tensor(t);
    REQUIRE(got.has_value());
    CHECK(got->row_ptr == want.row_ptr);
    CHECK(got->col16 == want.col16);
    CHECK(got->values == want.values);
  }
  // N:M keeps 2 of every 4: the kernel sees exactly the kept entries.
  const Tensor nm = *compress::ir::to_nm_layout(dense, 2, 4);
  const sp::CsrMatrix from_nm = *sp::csr_from_tensor(nm);
  const sp::CsrMatrix from_nm_dense = *sp::csr_from_tensor(*nm.to_dense());
  CHECK(from_nm.values == from_nm_dense.values);
  CHECK(from_nm.nnz() <= 8 * 16 / 2);
}

TEST_CASE("sparse linear with more than 65536 columns uses 32-bit indices", "[sparse]") {
  const Tensor w = random_weight(3, 70001, 0.99, false, 11);
  const sp::CsrMatrix csr = *sp::csr_from_tensor(w);
  CHECK(csr.col16.empty());
  CHECK(static_cast<int64_t>(csr.col32.size()) == csr.nnz());
  for (int64_t batch : {1, 3}) {
    const std::vector<float> x = random_vector(static_cast<size_t>(batch * 70001), 12);
    std::vector<double> ref, mag;
    reference_linear(w, x, batch, &ref, &mag);
    for (sp::Isa isa : isas()) {
      std::vector<float> y(ref.size());
      REQUIRE(sp::linear(csr, x.data(), batch, y.data(), {}, {2, isa}).is_ok());
      for (size_t i = 0; i < y.size(); ++i) REQUIRE(std::fabs(y[i] - ref[i]) <= 1e-5 * mag[i] + 1e-6);
    }
  }
}

TEST_CASE("sparse kernels reject a non-f32 weight and a mismatched conv geometry", "[sparse]") {
  const Tensor i32 = Tensor::from_vector(DType::kI32, {2, 2}, std::vector<int32_t>{1, 0, 0, 1});
  CHECK(sp::csr_from_tensor(i32).status().code() == compress::StatusCode::kInvalidArgument);
  const sp::CsrMatrix csr = *sp::csr_from_tensor(random_weight(4, 6, 0.5, false, 1));
  sp::ConvGeometry g;
  g.channels = 5, g.height = 3, g.width = 3;
  std::vector<float> x(45), y(36);
  const auto st = sp::conv2d(csr, g, x.data(), y.data(), {}, {1, sp::Isa::kAuto});
  CHECK(st.code() == compress::StatusCode::kInvalidArgument);
  CHECK_THAT(st.message(), Catch::Contains("columns"));
}
