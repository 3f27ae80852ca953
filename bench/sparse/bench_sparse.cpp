// Sparse CSR kernel vs oneDNN's dense fp32 inner product on a 4096x4096 linear, by sparsity and batch, side by side.
//
//   bench_sparse [--threads 2] [--reps 40] [--size 4096]
//
// Both run in this process on the same weights (the dense one is the sparse
// weight with its zeros stored), the same threads, alternating rep by rep so
// that machine noise hits both alike. Prints median and best times, the
// speedup, the max relative difference of the outputs, and per batch the
// crossover: the lowest sparsity of the sweep from which on the sparse kernel
// wins at every higher sparsity. Results go to bench/RESULTS.md.
#include <fmt/core.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <oneapi/dnnl/dnnl.hpp>
#include <random>
#include <string>
#include <vector>

#include "compress/runtime/sparse_kernels.h"

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
  int threads = 2, reps = 40;
  int64_t size = 4096;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--threads") threads = std::atoi(argv[i + 1]);
    if (a == "--reps") reps = std::atoi(argv[i + 1]);
    if (a == "--size") size = std::atoll(argv[i + 1]);
  }
  omp_set_num_threads(threads);
  const std::vector<double> sparsities = {0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95};
  const std::vector<int64_t> batches = {1, 16, 64};
  fmt::print("bench_sparse: {0}x{0} linear, {1} threads, {2} reps, sparse path {3}\n", size, threads, reps,
             sp::selected_isa());

  std::mt19937 rng(1234);
  std::uniform_real_distribution<float> value(-1.0f, 1.0f);
  std::uniform_real_distribution<double> keep(0.0, 1.0);
  for (int64_t batch : batches) {
    fmt::print("\nbatch {}\n", batch);
    fmt::print("{:>8} {:>14} {:>14} {:>14} {:>14} {:>9} {:>10}\n", "sparsity", "dense med ms", "sparse med ms",
               "dense best ms", "sparse best ms", "speedup", "max rel");
    std::vector<float> x(static_cast<size_t>(batch * size));
    for (float& v : x) v = value(rng);
    std::vector<std::pair<double, double>> speed;  // sparsity, speedup (medians)
    std::string dense_impl;
    for (double s : sparsities) {
      std::vector<float> w(static_cast<size_t>(size * size), 0.0f);
      for (float& v : w) v = keep(rng) >= s ? value(rng) : 0.0f;
      const Tensor wt = Tensor::from_vector(DType::kF32, {size, size}, w);
      const sp::CsrMatrix csr = *sp::csr_from_tensor(wt);
      Dense dense(w, size, size, batch);
      dense_impl = dense.impl;
      std::memcpy(dense.src.get_data_handle(), x.data(), x.size() * sizeof(float));
      std::vector<float> y(static_cast<size_t>(batch * size));
      const sp::KernelOptions options{threads, sp::Isa::kAuto};
      std::vector<double> td, ts;
      for (int r = 0; r < reps + 3; ++r) {
        double t0 = now_ms();
        dense.run();
        double t1 = now_ms();
        if (!sp::linear(csr, x.data(), batch, y.data(), {}, options).is_ok()) return 1;
        double t2 = now_ms();
        if (r >= 3) {
          td.push_back(t1 - t0);
          ts.push_back(t2 - t1);
        }
      }
      const float* yd = static_cast<const float*>(dense.dst.get_data_handle());
      double max_rel = 0, scale = 0;
      for (size_t i = 0; i < y.size(); ++i) scale = std::max(scale, std::fabs(static_cast<double>(yd[i])));
      for (size_t i = 0; i < y.size(); ++i) {
        max_rel = std::max(max_rel, std::fabs(static_cast<double>(y[i]) - yd[i]) / std::max(scale, 1e-30));
      }
      const double md = median(td), ms = median(ts);
      speed.emplace_back(s, md / ms);
      fmt::print("{:>8.2f} {:>14.3f} {:>14.3f} {:>14.3f} {:>14.3f} {:>8.2f}x {:>10.1e}\n", s, md, ms,
                 *std::min_element(td.begin(), td.end()), *std::min_element(ts.begin(), ts.end()), md / ms, max_rel);
    }
    // Crossover: the lowest sparsity from which on the sparse kernel wins at every measured point.
    double crossover = -1;
    for (auto it = speed.rbegin(); it != speed.rend() && it->second > 1.0; ++it) crossover = it->first;
    if (crossover < 0) {
      fmt::print("crossover (batch {}): none, dense wins even at {:.2f}\n", batch, speed.back().first);
    } else {
      fmt::print("crossover (batch {}): sparse wins from sparsity {:.2f} up (dense impl {})\n", batch, crossover,
                 dense_impl);
    }
  }
  return 0;
}
