// Sparse (CSR) weight x dense matrix products for linear and convolution: an AVX-512 path and a portable one.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <thread>

#include "compress/runtime/sparse_kernels.h"

#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define COMPRESS_SPARSE_X86 1
#endif

namespace compress::runtime::sparse {
namespace {

// Runs fn(thread, thread_count) on `threads` threads. The onednn backend's
// plans use the same OpenMP runtime as oneDNN (one pool, one thread count).
template <typename Fn>
void run_threads(int threads, const Fn& fn) {
  if (threads <= 1) {
    fn(0, 1);
    return;
  }
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
  fn(omp_get_thread_num(), omp_get_num_threads());
#else
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back([&fn, t, threads] { fn(t, threads); });
  fn(0, threads);
  for (auto& th : pool) th.join();
#endif
}

// The first row of thread t's share: rows split so that each thread gets
// about the same number of stored values (plus a per-row cost for the
// epilogue). Only which thread computes a row depends on the thread count,
// never how the row is computed.
int64_t row_split(const CsrMatrix& w, int64_t t, int64_t nt) {
  if (t <= 0) return 0;
  if (t >= nt) return w.rows;
  constexpr int64_t kRowCost = 8;
  auto cost = [&](int64_t r) { return w.row_ptr[static_cast<size_t>(r)] + kRowCost * r; };
  const int64_t target = cost(w.rows) / nt * t + cost(w.rows) % nt * t / nt;
  int64_t lo = 0, hi = w.rows;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (cost(mid) < target) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

float apply_post(const PostOp& p, float v, const float* residual) {
  switch (p.kind) {
    case PostKind::kRelu:
      return v > 0.0f ? v : 0.0f;
    case PostKind::kClip:
      return std::min(std::max(v, p.alpha), p.beta);
    case PostKind::kLinear:
      return p.alpha * v + p.beta;
    case PostKind::kSilu:
      return v / (1.0f + std::exp(-v));
    case PostKind::kSigmoid:
      return 1.0f / (1.0f + std::exp(-v));
    case PostKind::kTanh:
      return std::tanh(v);
    case PostKind::kHardswish:
      return v * std::min(std::max(v + 3.0f, 0.0f), 6.0f) / 6.0f;
    case PostKind::kGeluErf:
      return 0.5f * v * (1.0f + std::erf(v * 0.70710678118654752f));
    case PostKind::kGeluTanh: {
      const float inner = 0.79788456080286536f * (v + 0.044715f * v * v * v);
      return 0.5f * v * (1.0f + std::tanh(inner));
    }
    case PostKind::kAddResidual:
      return v + *residual;
  }
  return v;
}

// Where C[r, j] goes: c[r * row_stride + j * col_stride] (and the residual
// at the same offset), after bias and posts.
struct Output {
  float* c = nullptr;
  const float* residual = nullptr;
  int64_t row_stride = 0, col_stride = 0;
  const Epilogue* epilogue = nullptr;

  void store(int64_t r, int64_t j0, const float* acc, int64_t n) const {
    const Epilogue& ep = *epilogue;
    const float bias = ep.bias != nullptr ? ep.bias[r] : 0.0f;
    if (col_stride == 1 && ep.posts.empty()) {
      // The common convolution case: a contiguous run, vectorized.
      float* dst = c + r * row_stride + j0;
      for (int64_t j = 0; j < n; ++j) dst[j] = acc[j] + bias;
      return;
    }
    for (int64_t j = 0; j < n; ++j) {
      const int64_t off = r * row_stride + (j0 + j) * col_stride;
      float v = acc[j] + bias;
      for (const PostOp& p : ep.posts) v = apply_post(p, v, residual + off);
      c[off] = v;
    }
  }
};

// ------------------------------------------------------------ portable path

template <typename Idx>
void spmv_portable(const CsrMatrix& w, const Idx* col, const float* x, int64_t r0, int64_t r1, const Output& out) {
  const float* val = w.values.data();
  for (int64_t r = r0; r < r1; ++r) {
    // Four partial sums in a fixed pattern (position mod 4), then combined
    // in a fixed order: deterministic, and not one long dependency chain.
    float s[4] = {0, 0, 0, 0};
    const int64_t p1 = w.row_ptr[static_cast<size_t>(r) + 1];
    int64_t p = w.row_ptr[static_cast<size_t>(r)];
    for (; p + 4 <= p1; p += 4) {
      for (int u = 0; u < 4; ++u) s[u] += val[p + u] * x[col[p + u]];
    }
    for (; p < p1; ++p) s[0] += val[p] * x[col[p]];
    const float acc = (s[0] + s[1]) + (s[2] + s[3]);
    out.store(r, 0, &acc, 1);
  }
}

// GCC/Clang vector extensions: SSE on any x86-64, NEON on ARM, without
// intrinsics; 16 columns as four 4-float vectors held in registers.
typedef float Vec4 __attribute__((vector_size(16)));

inline Vec4 load4(const float* p) {
  Vec4 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <typename Idx>
void spmm_portable(const CsrMatrix& w, const Idx* col, const float* b, int64_t ldb, int64_t n, int64_t r0, int64_t r1,
                   const Output& out) {
  constexpr int64_t kTile = 16;
  const float* val = w.values.data();
  for (int64_t j0 = 0; j0 < n; j0 += kTile) {
    const int64_t width = std::min(kTile, n - j0);
    for (int64_t r = r0; r < r1; ++r) {
      alignas(16) float acc[kTile] = {};
      const int64_t p0 = w.row_ptr[static_cast<size_t>(r)], p1 = w.row_ptr[static_cast<size_t>(r) + 1];
      if (width == kTile) {
        Vec4 a0 = {}, a1 = {}, a2 = {}, a3 = {};
        for (int64_t p = p0; p < p1; ++p) {
          const float v = val[p];
          const Vec4 vv = {v, v, v, v};
          const float* brow = b + static_cast<int64_t>(col[p]) * ldb + j0;
          a0 += vv * load4(brow);
          a1 += vv * load4(brow + 4);
          a2 += vv * load4(brow + 8);
          a3 += vv * load4(brow + 12);
        }
        std::memcpy(acc, &a0, sizeof a0);
        std::memcpy(acc + 4, &a1, sizeof a1);
        std::memcpy(acc + 8, &a2, sizeof a2);
        std::memcpy(acc + 12, &a3, sizeof a3);
      } else {
        for (int64_t p = p0; p < p1; ++p) {
          const float v = val[p];
          const float* brow = b + static_cast<int64_t>(col[p]) * ldb + j0;
          for (int64_t j = 0; j < width; ++j) acc[j] += v * brow[j];
        }
      }
      out.store(r, j0, acc, width);
    }
  }
}

// ------------------------------------------------------------ AVX-512 path

#ifdef COMPRESS_SPARSE_X86
// GCC 12's intrinsics headers build "undefined" vectors from themselves,
// which -Wmaybe-uninitialized reports in every caller (a false positive).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

template <typename Idx>
__attribute__((target("avx512f"))) __m512i load_indices16(const Idx* col) {
  if constexpr (sizeof(Idx) == 2) {
    return _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(col)));
  } else {
    return _mm512_loadu_si512(col);
  }
}

// Batch 1: gathers of x by 16 column indices, two chains of 16 lanes.
template <typename Idx>
__attribute__((target("avx512f"))) void spmv_avx512(const CsrMatrix& w, const Idx* col, const float* x, int64_t r0,
                                                    int64_t r1, const Output& out) {
  const float* val = w.values.data();
  for (int64_t r = r0; r < r1; ++r) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    const int64_t p1 = w.row_ptr[static_cast<size_t>(r) + 1];
    int64_t p = w.row_ptr[static_cast<size_t>(r)];
    for (; p + 32 <= p1; p += 32) {
      const __m512 g0 = _mm512_i32gather_ps(load_indices16(col + p), x, 4);
      const __m512 g1 = _mm512_i32gather_ps(load_indices16(col + p + 16), x, 4);
      a0 = _mm512_fmadd_ps(_mm512_loadu_ps(val + p), g0, a0);
      a1 = _mm512_fmadd_ps(_mm512_loadu_ps(val + p + 16), g1, a1);
    }
    if (p + 16 <= p1) {
      const __m512 g0 = _mm512_i32gather_ps(load_indices16(col + p), x, 4);
      a0 = _mm512_fmadd_ps(_mm512_loadu_ps(val + p), g0, a0);
      p += 16;
    }
    float acc = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
    for (; p < p1; ++p) acc += val[p] * x[col[p]];
    out.store(r, 0, &acc, 1);
  }
}

// One row times NV * 16 columns of B (the last vector masked), with U
// partial accumulators per vector (stored values interleaved mod U) to keep
// U * NV independent FMA chains in flight.
template <typename Idx, int NV, int U>
__attribute__((target("avx512f"))) void spmm_row_avx512(const float* val, const Idx* col, int64_t p0, int64_t p1,
                                                        const float* b, int64_t ldb, __mmask16 last, float* acc_out) {
  __m512 acc[U][NV];
  for (int u = 0; u < U; ++u) {
    for (int i = 0; i < NV; ++i) acc[u][i] = _mm512_setzero_ps();
  }
  int64_t p = p0;
  for (; p + U <= p1; p += U) {
    for (int u = 0; u < U; ++u) {
      const __m512 v = _mm512_set1_ps(val[p + u]);
      const float* brow = b + static_cast<int64_t>(col[p + u]) * ldb;
      for (int i = 0; i + 1 < NV; ++i) acc[u][i] = _mm512_fmadd_ps(v, _mm512_loadu_ps(brow + 16 * i), acc[u][i]);
      acc[u][NV - 1] = _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(last, brow + 16 * (NV - 1)), acc[u][NV - 1]);
    }
  }
  for (; p < p1; ++p) {
    const __m512 v = _mm512_set1_ps(val[p]);
    const float* brow = b + static_cast<int64_t>(col[p]) * ldb;
    for (int i = 0; i + 1 < NV; ++i) acc[0][i] = _mm512_fmadd_ps(v, _mm512_loadu_ps(brow + 16 * i), acc[0][i]);
    acc[0][NV - 1] = _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(last, brow + 16 * (NV - 1)), acc[0][NV - 1]);
  }
  for (int i = 0; i < NV; ++i) {
    __m512 s = acc[0][i];
    for (int u = 1; u < U; ++u) s = _mm512_add_ps(s, acc[u][i]);
    _mm512_storeu_ps(acc_out + 16 * i, s);
  }
}

template <typename Idx, int NV, int U>
__attribute__((target("avx512f"))) void spmm_tile_avx512(const CsrMatrix& w, const Idx* col, const float* b,
                                                         int64_t ldb, int64_t j0, int64_t width, int64_t r0,
                                                         int64_t r1, const Output& out) {
  alignas(64) float acc[64];
  const int64_t rem = width - 16 * (NV - 1);
  const __mmask16 last = static_cast<__mmask16>(rem >= 16 ? 0xffff : (1u << rem) - 1u);
  for (int64_t r = r0; r < r1; ++r) {
    spmm_row_avx512<Idx, NV, U>(w.values.data(), col, w.row_ptr[static_cast<size_t>(r)],
                                w.row_ptr[static_cast<size_t>(r) + 1], b + j0, ldb, last, acc);
    out.store(r, j0, acc, width);
  }
}

template <typename Idx>
void spmm_avx512(const CsrMatrix& w, const Idx* col, const float* b, int64_t ldb, int64_t n, int64_t r0, int64_t r1,
                 const Output& out) {
  // Column tiles of up to 64 (four vectors): the B tile a thread sweeps
  // with all of its rows stays in L2 for the convolution shapes.
  for (int64_t j0 = 0; j0 < n; j0 += 64) {
    const int64_t width = std::min<int64_t>(64, n - j0);
    switch ((width + 15) / 16) {
      case 1:
        spmm_tile_avx512<Idx, 1, 4>(w, col, b, ldb, j0, width, r0, r1, out);
        break;
      case 2:
        spmm_tile_avx512<Idx, 2, 2>(w, col, b, ldb, j0, width, r0, r1, out);
        break;
      case 3:
        spmm_tile_avx512<Idx, 3, 2>(w, col, b, ldb, j0, width, r0, r1, out);
        break;
      default:
        spmm_tile_avx512<Idx, 4, 2>(w, col, b, ldb, j0, width, r0, r1, out);
        break;
    }
  }
}

#pragma GCC diagnostic pop

bool cpu_has_avx512() {
  static const bool has = __builtin_cpu_supports("avx512f");
  return has;
}
#else
bool cpu_has_avx512() { return false; }
#endif

bool use_avx512(Isa isa) { return isa != Isa::kPortable && cpu_has_avx512(); }

// C[rows, n] = W * B[cols, n] (row stride ldb), rows split across threads.
void spmm(const CsrMatrix& w, const float* b, int64_t ldb, int64_t n, const Output& out,
          const KernelOptions& options) {
  const bool avx512 = use_avx512(options.isa);
  const int threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(options.threads, w.rows)));
  run_threads(threads, [&](int t, int nt) {
    const int64_t r0 = row_split(w, t, nt), r1 = row_split(w, t + 1, nt);
    if (r0 >= r1) return;
    auto body = [&](const auto* col) {
#ifdef COMPRESS_SPARSE_X86
      if (avx512) {
        if (n == 1 && ldb == 1) {
          spmv_avx512(w, col, b, r0, r1, out);
        } else {
          spmm_avx512(w, col, b, ldb, n, r0, r1, out);
        }
        return;
      }
#endif
      if (n == 1 && ldb == 1) {
        spmv_portable(w, col, b, r0, r1, out);
      } else {
        spmm_portable(w, col, b, ldb, n, r0, r1, out);
      }
    };
    if (!w.col16.empty() || w.col32.empty()) {
      body(w.col16.data());
    } else {
      body(w.col32.data());
    }
  });
}

Status check_matrix(const CsrMatrix& w) {
  COMPRESS_CHECK(w.rows >= 0 && w.cols >= 0 && w.row_ptr.size() == static_cast<size_t>(w.rows) + 1 &&
                     w.row_ptr.back() == w.nnz() &&
                     (w.cols <= 65536 ? w.col16.size() : w.col32.size()) == static_cast<size_t>(w.nnz()),
                 StatusCode::kInvalidArgument, "malformed CsrMatrix ({} x {}, {} values)", w.rows, w.cols, w.nnz());
  return Status::ok();
}

// Reused between calls on the calling thread (the workers only read it).
std::vector<float>& scratch(size_t floats) {
  thread_local std::vector<float> buffer;
  if (buffer.size() < floats) buffer.resize(floats);
  return buffer;
}

}  // namespace

std::string selected_isa() { return cpu_has_avx512() ? "avx512" : "portable"; }

Status linear(const CsrMatrix& w, const float* x, int64_t batch, float* y, const Epilogue& epilogue,
              const KernelOptions& options) {
  COMPRESS_RETURN_IF_ERROR(check_matrix(w));
  COMPRESS_CHECK(batch >= 0, StatusCode::kInvalidArgument, "negative batch {}", batch);
  if (batch == 0 || w.rows == 0) return Status::ok();
  Output out;
  out.c = y;
  out.residual = epilogue.residual;
  out.row_stride = 1;
  out.col_stride = w.rows;
  out.epilogue = &epilogue;
  if (batch == 1) {
    spmm(w, x, 1, 1, out, options);
    return Status::ok();
  }
  // B = x^T [cols, batch]: each stored value then meets a contiguous run of
  // the batch (one vector load per 16 samples).
  std::vector<float>& xt = scratch(static_cast<size_t>(w.cols * batch));
  float* b = xt.data();
  const int64_t cols = w.cols;
  run_threads(static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(options.threads, cols / 256 + 1))),
              [&](int t, int nt) {
                const int64_t k0 = cols * t / nt, k1 = cols * (t + 1) / nt;
                for (int64_t s = 0; s < batch; ++s) {
                  const float* xs = x + s * cols;
                  for (int64_t k = k0; k < k1; ++k) b[k * batch + s] = xs[k];
                }
              });
  spmm(w, b, batch, batch, out, options);
  return Status::ok();
}

int64_t ConvGeometry::out_h() const {
  return (height + pad_top + pad_bottom - dilation_h * (kernel_h - 1) - 1) / stride_h + 1;
}
int64_t ConvGeometry::out_w() const {
  return (width + pad_left + pad_right - dilation_w * (kernel_w - 1) - 1) / stride_w + 1;
}
bool ConvGeometry::is_pointwise() const {
  return kernel_h == 1 && kernel_w == 1 && stride_h == 1 && stride_w == 1 && pad_top == 0 && pad_left == 0 &&
         pad_bottom == 0 && pad_right == 0;
}

Status conv2d(const CsrMatrix& w, const ConvGeometry& g, const float* x, float* y, const Epilogue& epilogue,
              const KernelOptions& options) {
  COMPRESS_RETURN_IF_ERROR(check_matrix(w));
  COMPRESS_CHECK(g.batch >= 0 && g.channels >= 0 && g.height >= 0 && g.width >= 0 && g.kernel_h > 0 &&
                     g.kernel_w > 0 && g.stride_h > 0 && g.stride_w > 0 && g.dilation_h > 0 && g.dilation_w > 0 &&
                     g.pad_top >= 0 && g.pad_left >= 0 && g.pad_bottom >= 0 && g.pad_right >= 0,
                 StatusCode::kInvalidArgument, "invalid convolution geometry");
  COMPRESS_CHECK(w.cols == g.channels * g.kernel_h * g.kernel_w, StatusCode::kInvalidArgument,
                 "sparse conv weight has {} columns, the geometry needs {} (channels x kernel)", w.cols,
                 g.channels * g.kernel_h * g.kernel_w);
  const int64_t oh = g.out_h(), ow = g.out_w();
  COMPRESS_CHECK(oh > 0 && ow > 0, StatusCode::kInvalidArgument, "convolution with an empty output");
  const int64_t hw = g.height * g.width, ohw = oh * ow;
  const bool pointwise = g.is_pointwise();
  float* cols = pointwise ? nullptr : scratch(static_cast<size_t>(w.cols * ohw)).data();
  for (int64_t i = 0; i < g.batch; ++i) {
    const float* xi = x + i * g.channels * hw;
    Output out;
    out.c = y + i * w.rows * ohw;
    out.residual = epilogue.residual != nullptr ? epilogue.residual + i * w.rows * ohw : nullptr;
    out.row_stride = ohw;
    out.col_stride = 1;
    out.epilogue = &epilogue;
    if (pointwise) {
      spmm(w, xi, hw, hw, out, options);
      continue;
    }
    // im2col: row (c, kh, kw) of B holds the input pixels that tap meets, in
    // output order (0 where it falls in the padding).
    const int64_t k_rows = w.cols;
    run_threads(static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(options.threads, k_rows))),
                [&](int t, int nt) {
                  for (int64_t kr = k_rows * t / nt; kr < k_rows * (t + 1) / nt; ++kr) {
                    const int64_t c = kr / (g.kernel_h * g.kernel_w);
                    const int64_t kh = kr / g.kernel_w % g.kernel_h, kw = kr % g.kernel_w;
                    float* dst = cols + kr * ohw;
                    const float* plane = xi + c * hw;
                    for (int64_t oy = 0; oy < oh; ++oy) {
                      const int64_t iy = oy * g.stride_h - g.pad_top + kh * g.dilation_h;
                      float* row = dst + oy * ow;
                      if (iy < 0 || iy >= g.height) {
                        std::fill(row, row + ow, 0.0f);
                        continue;
                      }
                      for (int64_t ox = 0; ox < ow; ++ox) {
                        const int64_t ix = ox * g.stride_w - g.pad_left + kw * g.dilation_w;
                        row[ox] = ix >= 0 && ix < g.width ? plane[iy * g.width + ix] : 0.0f;
                      }
                    }
                  }
                });
    spmm(w, cols, ohw, ohw, out, options);
  }
  return Status::ok();
}

}  // namespace compress::runtime::sparse
