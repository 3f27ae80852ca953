// Sparse CSR kernel vs oneDNN's dense fp32 inner product on a 4096x4096 linear, by sparsity and batch, side by side.
//
//   bench_sparse [--threads 2] [--reps 40] [--size 4096]
//
// Then a 1x1 convolution (256 -> 256 channels, 28x28, batch 1: 784 output
// columns) and a 3x3 one (128 -> 128, padding 1: im2col) against oneDNN's
// dense convolution, for the crossover of wide products.
//
// Both run in this process on the same weights (the dense one is the sparse
// weight with its zeros stored), the same threads, alternating rep by rep so
// that machine noise hits both alike. Prints best and median times, the
// speedup of the best times, the max relative difference of the outputs, and
// per shape the crossover: the lowest sparsity of the sweep from which on the
// sparse kernel wins at every higher sparsity, judged against the dense
// primitive's best time over the whole sweep (its work does not depend on the
// zeros). Speedups and crossover use best times: the benchmark machine is
// shared, and a median there includes the time the OS gave to other
// processes (OpenMP barriers make a 2-thread run wait for its slowest
// thread). Run with OMP_WAIT_POLICY=passive there (docs/onednn.md, Threads).
// Results go to bench/RESULTS.md.
#include <fmt/core.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <oneapi/dnnl/dnnl.hpp>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "compress/runtime/sparse_kernels.h"

#include "../bench_options.h"

namespace sp = compress::runtime::sparse;
using compress::ir::DType;
using compress::ir::Tensor;

namespace {

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct DenseConv {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  dnnl::convolution_forward prim;
  dnnl::memory src, weights, dst, user_dst;
  std::string impl;

  // k x k, stride 1, padding k / 2: src [1, c, h, w] in the layout oneDNN prefers (reordered once, outside the timing).
  DenseConv(const std::vector<float>& w, const std::vector<float>& x, int64_t out, int64_t c, int64_t h, int64_t wd,
            int64_t k) {
    using tag = dnnl::memory::format_tag;
    using dt = dnnl::memory::data_type;
    const dnnl::memory::desc src_any({1, c, h, wd}, dt::f32, tag::any);
    const dnnl::memory::desc w_any({out, c, k, k}, dt::f32, tag::any);
    const dnnl::memory::desc dst_any({1, out, h, wd}, dt::f32, tag::any);
    dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                                      src_any, w_any, dst_any, {1, 1}, {k / 2, k / 2}, {k / 2, k / 2});
    dnnl::convolution_forward::primitive_desc pd(d, engine);
    prim = dnnl::convolution_forward(pd);
    dnnl::memory plain_w({{out, c, k, k}, dt::f32, tag::abcd}, engine, const_cast<float*>(w.data()));
    weights = dnnl::memory(pd.weights_desc(), engine);
    dnnl::reorder(plain_w, weights).execute(stream, plain_w, weights);
    dnnl::memory plain_x({{1, c, h, wd}, dt::f32, tag::abcd}, engine, const_cast<float*>(x.data()));
    src = dnnl::memory(pd.src_desc(), engine);
    dnnl::reorder(plain_x, src).execute(stream, plain_x, src);
    dst = dnnl::memory(pd.dst_desc(), engine);
    user_dst = dnnl::memory({{1, out, h, wd}, dt::f32, tag::abcd}, engine);
    stream.wait();
    impl = pd.impl_info_str();
  }
  void run() {
    prim.execute(stream, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, dst}});
    stream.wait();
  }
  const float* result() {
    dnnl::reorder(dst, user_dst).execute(stream, dst, user_dst);
    stream.wait();
    return static_cast<const float*>(user_dst.get_data_handle());
  }
};

struct Dense {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  dnnl::inner_product_forward prim;
  dnnl::memory src, weights, dst;

  Dense(const std::vector<float>& w, int64_t out, int64_t in, int64_t batch) {
    using tag = dnnl::memory::format_tag;
    using dt = dnnl::memory::data_type;
    const dnnl::memory::desc src_md({batch, in}, dt::f32, tag::ab);
    const dnnl::memory::desc w_any({out, in}, dt::f32, tag::any);
    const dnnl::memory::desc dst_md({batch, out}, dt::f32, tag::ab);
    dnnl::inner_product_forward::desc d(dnnl::prop_kind::forward_inference, src_md, w_any, dst_md);
    dnnl::inner_product_forward::primitive_desc pd(d, engine);
    prim = dnnl::inner_product_forward(pd);
    // Weights reordered once, as the onednn backend does at compile time.
    dnnl::memory plain({{out, in}, dt::f32, tag::ab}, engine, const_cast<float*>(w.data()));
    weights = dnnl::memory(pd.weights_desc(), engine);
    dnnl::reorder(plain, weights).execute(stream, plain, weights);
    stream.wait();
    src = dnnl::memory(src_md, engine);
    dst = dnnl::memory(dst_md, engine);
    impl = pd.impl_info_str();
  }
  void run() {
    prim.execute(stream, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, dst}});
    stream.wait();
  }
  std::string impl;
};

}  // namespace

int main(int argc, char** argv) {
  namespace po = compress::bench::po;
  int threads = 2, reps = 40;
  int64_t size = 4096;
  po::options_description flags("options");
  flags.add_options()
      ("threads", po::value(&threads)->default_value(threads)->notifier(compress::bench::at_least(1, "threads")),
       "threads")
      ("reps", po::value(&reps)->default_value(reps)->notifier(compress::bench::at_least(1, "reps")),
       "timed runs of each kernel per point")
      ("size", po::value(&size)->default_value(size)->notifier(compress::bench::at_least<int64_t>(1, "size")),
       "the linear layer's width and height");
  compress::bench::parse_bench_args(argc, argv, "bench_sparse", "bench_sparse [--threads 2] [--reps 40] [--size 4096]",
                                    flags);
  omp_set_num_threads(threads);
  const std::vector<double> sparsities = {0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95};
  const std::vector<int64_t> batches = {1, 16, 64};
  fmt::print("bench_sparse: {0}x{0} linear, {1} threads, {2} reps, sparse path {3}\n", size, threads, reps,
             sp::selected_isa());

  std::mt19937 rng(1234);
  std::uniform_real_distribution<float> value(-1.0f, 1.0f);
  std::uniform_real_distribution<double> keep(0.0, 1.0);
  const sp::KernelOptions options{threads, sp::Isa::kAuto};

  // One shape: for each sparsity, time `dense()` and `sparse()` alternately.
  auto sweep = [&](const std::string& title, const auto& make) {
    fmt::print("\n{}\n", title);
    fmt::print("{:>8} {:>14} {:>14} {:>14} {:>14} {:>9} {:>10}\n", "sparsity", "dense best ms", "sparse best ms",
               "dense med ms", "sparse med ms", "speedup", "max rel");
    std::vector<std::pair<double, double>> best;  // sparsity, best sparse time
    double dense_best = 1e30;
    std::string dense_impl;
    for (double s : sparsities) {
      auto [dense, sparse, compare, impl] = make(s);
      dense_impl = impl;
      std::vector<double> td, ts;
      for (int r = 0; r < reps + 3; ++r) {
        const double t0 = now_ms();
        dense();
        const double t1 = now_ms();
        sparse();
        const double t2 = now_ms();
        if (r >= 3) {
          td.push_back(t1 - t0);
          ts.push_back(t2 - t1);
        }
      }
      const double bd = *std::min_element(td.begin(), td.end()), bs = *std::min_element(ts.begin(), ts.end());
      best.emplace_back(s, bs);
      dense_best = std::min(dense_best, bd);
      fmt::print("{:>8.2f} {:>14.3f} {:>14.3f} {:>14.3f} {:>14.3f} {:>8.2f}x {:>10.1e}\n", s, bd, bs, median(td),
                 median(ts), bd / bs, compare());
    }
    // The dense primitive does the same work whatever the zeros: its best
    // time over the whole sweep is the fairest dense figure on a noisy machine.
    fmt::print("dense best over the sweep {:.3f} ms ({}); sparse speedup against it:", dense_best, dense_impl);
    double crossover = -1;
    for (const auto& [s, t] : best) fmt::print(" {:.2f}:{:.2f}x", s, dense_best / t);
    for (auto it = best.rbegin(); it != best.rend() && it->second < dense_best; ++it) crossover = it->first;
    if (crossover < 0) {
      fmt::print("\ncrossover: none, dense wins even at {:.2f}\n", best.back().first);
    } else {
      fmt::print("\ncrossover: sparse wins from sparsity {:.2f} up\n", crossover);
    }
  };
  auto max_rel = [](const float* got, const float* want, size_t n) {
    double scale = 0, worst = 0;
    for (size_t i = 0; i < n; ++i) scale = std::max(scale, std::fabs(static_cast<double>(want[i])));
    for (size_t i = 0; i < n; ++i) {
      worst = std::max(worst, std::fabs(static_cast<double>(got[i]) - want[i]) / std::max(scale, 1e-30));
    }
    return worst;
  };

  for (int64_t batch : batches) {
    std::vector<float> x(static_cast<size_t>(batch * size));
    for (float& v : x) v = value(rng);
    std::vector<float> y(static_cast<size_t>(batch * size));
    std::shared_ptr<Dense> dense;
    std::shared_ptr<sp::CsrMatrix> csr;
    sweep(fmt::format("linear {0}x{0}, batch {1}", size, batch), [&](double s) {
      std::vector<float> w(static_cast<size_t>(size * size), 0.0f);
      for (float& v : w) v = keep(rng) >= s ? value(rng) : 0.0f;
      csr = std::make_shared<sp::CsrMatrix>(*sp::csr_from_tensor(Tensor::from_vector(DType::kF32, {size, size}, w)));
      dense = std::make_shared<Dense>(w, size, size, batch);
      std::memcpy(dense->src.get_data_handle(), x.data(), x.size() * sizeof(float));
      return std::make_tuple([&] { dense->run(); },
                             [&] {
                               if (!sp::linear(*csr, x.data(), batch, y.data(), {}, options).is_ok()) std::abort();
                             },
                             [&] {
                               return max_rel(y.data(), static_cast<const float*>(dense->dst.get_data_handle()),
                                              y.size());
                             },
                             dense->impl);
    });
  }

  // Convolutions: 1x1 (the kernel reads the image as it is) and 3x3 (im2col first).
  for (int64_t k : {1, 3}) {
    const int64_t c = k == 1 ? 256 : 128, h = 28, wd = 28;
    std::vector<float> x(static_cast<size_t>(c * h * wd));
    for (float& v : x) v = value(rng);
    std::vector<float> y(static_cast<size_t>(c * h * wd));
    std::shared_ptr<DenseConv> dense;
    std::shared_ptr<sp::CsrMatrix> csr;
    sp::ConvGeometry g;
    g.channels = c, g.height = h, g.width = wd, g.kernel_h = g.kernel_w = k;
    g.pad_top = g.pad_left = g.pad_bottom = g.pad_right = k / 2;
    sweep(fmt::format("conv {0}x{0} {1} -> {1} channels, 28x28, batch 1 (784 output columns{2})", k, c,
                      k == 1 ? "" : ", im2col"),
          [&](double s) {
            std::vector<float> w(static_cast<size_t>(c * c * k * k), 0.0f);
            for (float& v : w) v = keep(rng) >= s ? value(rng) : 0.0f;
            csr = std::make_shared<sp::CsrMatrix>(
                *sp::csr_from_tensor(Tensor::from_vector(DType::kF32, {c, c, k, k}, w)));
            dense = std::make_shared<DenseConv>(w, x, c, c, h, wd, k);
            return std::make_tuple([&] { dense->run(); },
                                   [&] {
                                     if (!sp::conv2d(*csr, g, x.data(), y.data(), {}, options).is_ok()) std::abort();
                                   },
                                   [&] { return max_rel(y.data(), dense->result(), y.size()); }, dense->impl);
          });
  }
  return 0;
}
