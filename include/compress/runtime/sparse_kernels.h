// CPU kernels for sparse f32 weights x dense activations (linear, 1x1 and im2col convolution), AVX-512 or portable.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "compress/ir/tensor.h"
#include "compress/support/check.h"
#include "compress/support/status.h"

namespace compress::runtime::sparse {

// Note [Sparse weight kernels]
// Every kernel computes C = W * B with W a sparse [rows, cols] matrix in CSR
// (compact column indices: u16 when cols <= 65536) and B a dense matrix whose
// rows are the weight's columns: for a linear, B is the transposed activation
// [in, batch]; for a 1x1 convolution, one image [C, H*W] as it is; for a
// KxK convolution, its im2col matrix. Each output element is one dot product
// over its row's stored values in their stored order, computed by exactly
// one thread: threads split the output rows (balanced by stored values),
// never a reduction, so results do not depend on the thread count. The
// AVX-512 path (chosen at run time when the CPU has it) and the portable path
// sum in different orders and may differ in the last bits.

// A weight viewed as a CSR matrix (the kernels' own copy, built once).
struct CsrMatrix {
  int64_t rows = 0, cols = 0;
  std::vector<int64_t> row_ptr;  // rows + 1
  std::vector<uint16_t> col16;   // column indices when cols <= 65536
  std::vector<int32_t> col32;    // otherwise
  std::vector<float> values;
  int64_t nnz() const { return static_cast<int64_t>(values.size()); }
  // Fraction of the rows * cols entries that are not stored.
  double sparsity() const;
  size_t bytes() const;
};

// From an f32 weight of any layout (dense, mask, CSR, N:M, block): rows =
// shape[0], cols = the product of the rest; zeros are dropped.
Expected<CsrMatrix> csr_from_tensor(const ir::Tensor& weight);

// Element-wise work done as each output element is stored, in order.
enum class PostKind { kRelu, kClip, kLinear, kSilu, kSigmoid, kTanh, kHardswish, kGeluErf, kGeluTanh, kAddResidual };
struct PostOp {
  PostKind kind = PostKind::kRelu;
  float alpha = 0, beta = 0;  // clip: [alpha, beta]; linear: alpha * x + beta
};
struct Epilogue {
  const float* bias = nullptr;  // [rows] (output features / channels)
  std::vector<PostOp> posts;
  const float* residual = nullptr;  // kAddResidual: same shape and layout as the output
};

enum class Isa { kAuto, kPortable, kAvx512 };
struct KernelOptions {
  int threads = 1;
  Isa isa = Isa::kAuto;  // kAvx512 on a CPU without it falls back to portable
};
// The path kAuto takes on this CPU ("avx512" or "portable").
std::string selected_isa();

// y[batch, rows] = x[batch, cols] * W^T (+ epilogue).
Status linear(const CsrMatrix& w, const float* x, int64_t batch, float* y, const Epilogue& epilogue,
              const KernelOptions& options);

struct ConvGeometry {
  int64_t batch = 1, channels = 0, height = 0, width = 0;  // input, NCHW
  int64_t kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t out_h() const;
  int64_t out_w() const;
  bool is_pointwise() const;  // 1x1, stride 1, no padding: no im2col needed
};
// y[batch, rows, out_h, out_w] = conv(x[batch, channels, height, width], W) with
// groups = 1, W [rows, channels, kernel_h, kernel_w] as a [rows, channels*kh*kw]
// matrix (+ epilogue; the bias is per output channel).
Status conv2d(const CsrMatrix& w, const ConvGeometry& geometry, const float* x, float* y, const Epilogue& epilogue,
              const KernelOptions& options);

// Note [Sparse crossover]
// The weight sparsity from which on the sparse kernel beats oneDNN's dense
// fp32 primitive, measured by bench/sparse (bench/RESULTS.md) on the
// benchmark machine with 2 threads: a 4096x4096 linear at batch 1, 16 and 64
// (interpolated between, the batch-64 value beyond), a 1x1 convolution and a
// 3x3 (im2col) convolution, each 28x28 at batch 1 (one measured point each,
// used for every shape of that kind). These are properties of this machine
// and these shapes: a different CPU or a much smaller layer moves them.
enum class Product { kLinear, kPointwiseConv, kIm2colConv };
double crossover_sparsity(Product product, int64_t batch);

}  // namespace compress::runtime::sparse
