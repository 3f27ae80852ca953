// Emitters for data movement (concat, reshape, permute, slice, split) and the native quantize/dequantize/embedding
// kernels.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "builder.h"
#include "compress/runtime/quant_arith.h"

namespace compress::runtime::onednn {
namespace {

using ir::DType;
using ir::Node;
using ir::Value;
constexpr StatusCode kUnsup = StatusCode::kUnsupported;

int64_t normalize_axis(int64_t axis, size_t rank) { return axis < 0 ? axis + static_cast<int64_t>(rank) : axis; }

dims_t plain_strides(const ir::Shape& shape) {
  dims_t strides(std::max<size_t>(shape.size(), 1), 1);
  for (size_t i = shape.size(); i-- > 1;) strides[i - 1] = strides[i] * std::max<int64_t>(shape[i], 1);
  return strides;
}

Status check_dnnl_type(const Value* v, const Node& n) {
  COMPRESS_CHECK(to_dnnl(v->dtype()).has_value(), kUnsup, "{} of {} data (oneDNN has no {} type)", n.op(),
                 ir::dtype_name(v->dtype()), ir::dtype_name(v->dtype()));
  COMPRESS_CHECK(ir::numel(v->shape()) > 0, kUnsup, "{} of empty data", n.op());
  return Status::ok();
}

// Copies the part of `src` that `view` describes (a strided descriptor over
// src's plain bytes) into a new plain buffer for `out`.
Status copy_view(Builder& b, const Group& g, const Value* out, int src, const md_t& view) {
  const int dst = b.new_stored(out, plain_md(out->shape(), view.data_type()));
  return b.add_reorder(src, dst, view, md_t(), "", &g);
}

// Strided view [start : start + len*step : step] along `axis` of a plain tensor.
md_t slice_view(const ir::Shape& src_shape, dt type, const ir::Shape& out_shape, int64_t axis, int64_t start,
                int64_t step) {
  const dims_t strides = plain_strides(src_shape);
  dims_t view_strides = strides;
  view_strides[static_cast<size_t>(axis)] *= step;
  md_t md(to_dims(out_shape), type, view_strides);
  md.data.offset0 = start * strides[static_cast<size_t>(axis)];
  return md;
}

md_t slice_view(const Stored& src, const ir::Shape& out_shape, int64_t axis, int64_t start, int64_t step) {
  return slice_view(src.shape, src.md.data_type(), out_shape, axis, start, step);
}

}  // namespace

Status emit_concat(Builder& b, const Group& g) {
  const Node& n = *g.main;
  const Value* out = n.output(0);
  for (const Value* v : n.inputs()) COMPRESS_RETURN_IF_ERROR(check_dnnl_type(v, n));
  const int axis = static_cast<int>(normalize_axis(n.attr_int("axis"), out->shape().size()));
  std::vector<int> srcs;
  std::vector<md_t> mds;
  bool same_type = true;
  for (const Value* v : n.inputs()) {
    srcs.push_back(b.natural(v));
    mds.push_back(b.stored(srcs.back()).md);
    same_type = same_type && mds.back().data_type() == mds.front().data_type();
  }
  bool convert = false;
  if (!same_type) {
    // Mixed types (a bf16 activation and an f32 constant) meet in the IR type, plain.
    convert = true;
    for (size_t i = 0; i < mds.size(); ++i)
      mds[i] = plain_md(n.input(i)->shape(), to_dnnl(n.input(i)->dtype()).value());
  }
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  auto make_pd = [&](const std::vector<md_t>& srcs) {
    return dnnl::concat::primitive_desc(md_t(to_dims(out->shape()), srcs.front().data_type(), tag::any), axis, srcs,
                                        cpu_engine(), attr);
  };
  dnnl::concat::primitive_desc pd;
  COMPRESS_RETURN_IF_ERROR(try_dnnl("concat", [&] { pd = make_pd(mds); }));
  if (impl_name(pd).find("ref") != std::string::npos) {
    // Mixed layouts (nhwc conv outputs next to a plain split) take oneDNN's
    // reference concat; with all inputs in the first non-plain layout it is a copy.
    const md_t* model = nullptr;
    for (const md_t& md : mds) {
      if (model == nullptr && !is_plain(md) && activation_tag(md)) model = &md;
    }
    if (model != nullptr) {
      std::vector<md_t> alike;
      for (const md_t& md : mds) alike.push_back(like(*model, md.dims(), md.data_type()));
      try {
        auto faster = make_pd(alike);
        if (impl_name(faster).find("ref") == std::string::npos) {
          pd = faster;
          mds = alike;
          convert = true;
        }
      } catch (const dnnl::error&) {
      }
    }
  }
  b.consume(g);
  std::vector<StepArg> args;
  for (size_t i = 0; i < srcs.size(); ++i) {
    int id = srcs[i];
    if (convert) {
      COMPRESS_ASSIGN_OR_RETURN(id, b.get(n.input(i), mds[i]));
    }
    args.push_back({DNNL_ARG_MULTIPLE_SRC + static_cast<int>(i), id, {}});
  }
  const int dst = b.new_stored(out, pd.dst_desc());
  args.push_back({DNNL_ARG_DST, dst, {}});
  OnednnStep info;
  info.kind = "concat";
  info.nodes = g.node_names();
  info.detail = fmt::format("{} inputs along axis {} -> {}", srcs.size(), axis, describe_md(pd.dst_desc()));
  b.add_primitive(dnnl::concat(pd), pd, args, {}, info);
  return Status::ok();
}

Status emit_reshape(Builder& b, const Group& g) {
  const Node& n = *g.main;
  const Value* x = n.input(0);
  int src = b.natural(x);
  if (!b.stored(src).plain) {
    COMPRESS_ASSIGN_OR_RETURN(src, b.get_plain_any(x));
  }
  b.consume(g);
  // No step: the output is the same bytes under its own shape.
  b.alias(n.output(0), src, n.output(0)->shape());
  return Status::ok();
}

Status emit_permute(Builder& b, const Group& g) {
  const Node& n = *g.main;
  const Value* x = n.input(0);
  COMPRESS_RETURN_IF_ERROR(check_dnnl_type(x, n));
  const size_t rank = x->shape().size();
  std::vector<int64_t> perm(rank);
  if (n.is(ir::OpKind::transpose)) {
    for (size_t i = 0; i < rank; ++i) perm[i] = static_cast<int64_t>(i);
    std::swap(perm[static_cast<size_t>(normalize_axis(n.attr_int("dim0"), rank))],
              perm[static_cast<size_t>(normalize_axis(n.attr_int("dim1"), rank))]);
  } else {
    perm = n.attr_ints("perm");
    for (auto& p : perm) p = normalize_axis(p, rank);
  }
  b.consume(g);
  COMPRESS_ASSIGN_OR_RETURN(int src, b.get_plain_any(x));
  // y[i0, i1, ...] = x[... i_k at position perm[k] ...]: x's strides, permuted.
  const dims_t xstrides = plain_strides(x->shape());
  dims_t strides(rank);
  for (size_t i = 0; i < rank; ++i) strides[i] = xstrides[static_cast<size_t>(perm[i])];
  const md_t view(to_dims(n.output(0)->shape()), b.stored(src).md.data_type(), strides);
  return copy_view(b, g, n.output(0), src, view);
}

Status emit_slice(Builder& b, const Group& g) {
  const Node& n = *g.main;
  const Value* x = n.input(0);
  COMPRESS_RETURN_IF_ERROR(check_dnnl_type(x, n));
  COMPRESS_CHECK(ir::numel(n.output(0)->shape()) > 0, kUnsup, "slice with an empty result");
  const int64_t axis = normalize_axis(n.attr_int("axis"), x->shape().size());
  const int64_t dim = x->shape()[static_cast<size_t>(axis)];
  int64_t start = n.attr_int("start");
  if (start < 0) start += dim;
  start = std::clamp<int64_t>(start, 0, dim);
  const int64_t step = n.attr_int("step");
  const ir::Shape& out_shape = n.output(0)->shape();
  // oneDNN decides which strided views it can describe (2.6 refuses some
  // step-N views although nothing overlaps): ask it before committing, so a
  // refused view falls back to the reference kernel with oneDNN's reason.
  COMPRESS_RETURN_IF_ERROR(
      try_dnnl("slice view", [&] { (void)slice_view(x->shape(), dt::f32, out_shape, axis, start, step); }));
  b.consume(g);
  COMPRESS_ASSIGN_OR_RETURN(int src, b.get_plain_any(x));
  return copy_view(b, g, n.output(0), src, slice_view(b.stored(src), out_shape, axis, start, step));
}

Status emit_split(Builder& b, const Group& g) {
  const Node& n = *g.main;
  const Value* x = n.input(0);
  COMPRESS_RETURN_IF_ERROR(check_dnnl_type(x, n));
  for (const Value* out : n.outputs()) {
    COMPRESS_CHECK(ir::numel(out->shape()) > 0, kUnsup, "split with an empty part");
  }
  const int64_t axis = normalize_axis(n.attr_int("axis"), x->shape().size());
  b.consume(g);
  COMPRESS_ASSIGN_OR_RETURN(int src, b.get_plain_any(x));
  int64_t start = 0;
  for (const Value* out : n.outputs()) {
    COMPRESS_RETURN_IF_ERROR(copy_view(b, g, out, src, slice_view(b.stored(src), out->shape(), axis, start, 1)));
    start += out->shape()[static_cast<size_t>(axis)];
  }
  return Status::ok();
}

// ---------------------------------------------------------------- native kernels

namespace {

// Per-tensor or per-axis parameters of a value, as index arithmetic.
struct ParamIndex {
  int64_t inner = 1, dim = 1;  // element i uses parameter (i / inner) % dim
  std::vector<float> scales;
  std::vector<float> inv_scales;
  std::vector<int32_t> zero_points;
  int64_t qmin = 0, qmax = 0;
};

Expected<ParamIndex> param_index(const ir::QuantParams* q, const ir::Shape& shape, const char* what) {
  COMPRESS_CHECK(q != nullptr, kUnsup, "{} without quant params", what);
  ParamIndex p;
  if (q->granularity() == ir::QuantGranularity::kPerAxis) {
    const int64_t axis = normalize_axis(q->axis(), shape.size());
    COMPRESS_CHECK(axis >= 0 && axis < static_cast<int64_t>(shape.size()) &&
                       static_cast<int64_t>(q->scales().size()) == shape[static_cast<size_t>(axis)],
                   kUnsup, "{} params {} do not fit shape {}", what, q->to_string(), ir::shape_to_string(shape));
    p.dim = shape[static_cast<size_t>(axis)];
    for (size_t d = static_cast<size_t>(axis) + 1; d < shape.size(); ++d) p.inner *= shape[d];
  } else {
    COMPRESS_CHECK(q->granularity() == ir::QuantGranularity::kPerTensor, kUnsup, "{} quantized {}", what,
                   q->to_string());
  }
  p.scales = q->scales();
  for (float s : p.scales) p.inv_scales.push_back(quant_inv_scale(s));
  p.zero_points = q->zero_points();
  if (p.zero_points.empty()) p.zero_points.assign(p.scales.size(), 0);
  p.qmin = q->qmin();
  p.qmax = q->qmax();
  return p;
}

// Note [Quantize in any layout]
// With per-tensor parameters quantize and dequantize are elementwise over
// memory, so they run on whatever dense layout the value already has (nhwc,
// or blocked without padding) and write the same layout in the other type.
// A PTQ graph's qconv2d -> dequantize -> add -> quantize -> qconv2d then
// never leaves the convolutions' layout.
std::optional<md_t> same_layout(const md_t& src, dt type) {
  if (src.is_zero()) return std::nullopt;
  const dims_t dims = src.dims();
  size_t count = 1;
  for (int64_t d : dims) count *= static_cast<size_t>(d);
  if (src.get_size() != count * dnnl::memory::data_type_size(src.data_type())) return std::nullopt;  // padded
  if (is_plain(src)) return plain_md(ir::Shape(dims.begin(), dims.end()), type);
  if (auto t = activation_tag(src)) return md_t(dims, type, *t);
  return std::nullopt;
}

// Runs fn(begin, end) over [0, n) on the OpenMP threads (one chunk each);
// small tensors stay on the calling thread.
template <typename Fn>
void parallel_chunks(int64_t n, Fn&& fn) {
  if (n < (int64_t{1} << 15)) {
    fn(int64_t{0}, n);
    return;
  }
#pragma omp parallel
  {
    const int64_t threads = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t chunk = (n + threads - 1) / threads;
    const int64_t begin = std::min(n, t * chunk), end = std::min(n, begin + chunk);
    if (begin < end) fn(begin, end);
  }
}

// Note [Vectorized quantize]
// quantize_value() is the contract's executable form but scalar (an isnan
// branch, a clamp in double). With one scale the loop below computes the
// same code with float operations the compiler vectorizes: the product
// x * (1/scale) (one rounding, as the contract), a clamp to
// [lo - 1, hi + 1] with lo = qmin - zp, hi = qmax - zp (NaN compares false
// and lands on lo - 1, i.e. qmin, as the contract says; +-Inf saturate),
// round-half-even by adding and subtracting 1.5 * 2^23 (exact for
// |v| < 2^22, which the clamp guarantees), a clamp to [lo, hi], and the
// integer zero point. Values beyond the first clamp saturate to the same
// code either way. The int8 tests hold it to the reference bit for bit.
template <typename T>
inline __attribute__((always_inline)) void quantize_body(const float* x, T* q, int64_t begin, int64_t end, float inv,
                                                         int32_t zp, float lo, float hi) {
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23
  for (int64_t i = begin; i < end; ++i) {
    float v = x[i] * inv;
    v = v >= lo - 1.0f ? v : lo - 1.0f;
    v = v <= hi + 1.0f ? v : hi + 1.0f;
    v = (v + kRound) - kRound;
    v = v < lo ? lo : v;
    v = v > hi ? hi : v;
    q[i] = static_cast<T>(static_cast<int32_t>(v) + zp);
  }
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void quantize_u8(const float* x, uint8_t* q, int64_t begin,
                                                                              int64_t end, float inv, int32_t zp,
                                                                              float lo, float hi) {
  quantize_body(x, q, begin, end, inv, zp, lo, hi);
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void quantize_s8(const float* x, int8_t* q, int64_t begin,
                                                                              int64_t end, float inv, int32_t zp,
                                                                              float lo, float hi) {
  quantize_body(x, q, begin, end, inv, zp, lo, hi);
}

template <typename T>
void quantize_loop(const float* x, T* q, int64_t n, const ParamIndex& p) {
  if (p.dim == 1) {
    const int32_t zp = p.zero_points[0];
    const float lo = static_cast<float>(p.qmin - zp), hi = static_cast<float>(p.qmax - zp);
    parallel_chunks(n, [&](int64_t begin, int64_t end) {
      if constexpr (std::is_same_v<T, uint8_t>) {
        quantize_u8(x, q, begin, end, p.inv_scales[0], zp, lo, hi);
      } else {
        quantize_s8(x, q, begin, end, p.inv_scales[0], zp, lo, hi);
      }
    });
    return;
  }
  parallel_chunks(n, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const size_t c = static_cast<size_t>((i / p.inner) % p.dim);
      q[i] = static_cast<T>(quantize_value(x[i], p.inv_scales[c], p.zero_points[c], p.qmin, p.qmax));
    }
  });
}

template <typename T>
void dequantize_loop(const T* q, float* x, int64_t n, const ParamIndex& p) {
  if (p.dim == 1 && sizeof(T) == 1) {
    // (float)(q - zp) * scale: q - zp is exact in int32 for 8-bit codes.
    const int32_t zp = p.zero_points[0];
    const float scale = p.scales[0];
    parallel_chunks(n, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) x[i] = static_cast<float>(static_cast<int32_t>(q[i]) - zp) * scale;
    });
    return;
  }
  parallel_chunks(n, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const size_t c = static_cast<size_t>((i / p.inner) % p.dim);
      x[i] = dequantize_value(q[i], p.scales[c], p.zero_points[c]);
    }
  });
}

// Note [Quantized add] (reference/quantized.cpp), elementwise: the first
// operand dequantized (one rounded product), the second added with one
// fused multiply-add, then the contract's requantization.
struct QaddParams {
  float sa = 1, sb = 1, inv_o = 1;
  int32_t za = 0, zb = 0, zo = 0;
  int64_t qmin = 0, qmax = 0;
};

template <typename A, typename B, typename O>
void qadd_loop(const A* a, const B* b, O* out, int64_t n, const QaddParams& p) {
  parallel_chunks(n, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float ra = static_cast<float>(static_cast<int32_t>(a[i]) - p.za) * p.sa;
      const float real = std::fmaf(p.sb, static_cast<float>(static_cast<int32_t>(b[i]) - p.zb), ra);
      if constexpr (std::is_same_v<O, float>) {
        out[i] = real;
      } else {
        out[i] = static_cast<O>(quantize_value(real, p.inv_o, p.zo, p.qmin, p.qmax));
      }
    }
  });
}

template <typename A, typename B>
void qadd_dispatch_out(const A* a, const B* b, void* out, DType o, int64_t n, const QaddParams& p) {
  if (o == DType::kF32) qadd_loop(a, b, static_cast<float*>(out), n, p);
  if (o == DType::kU8) qadd_loop(a, b, static_cast<uint8_t*>(out), n, p);
  if (o == DType::kI8) qadd_loop(a, b, static_cast<int8_t*>(out), n, p);
}

void qadd_dispatch(const void* a, DType ta, const void* b, DType tb, void* out, DType o, int64_t n,
                   const QaddParams& p) {
  if (ta == DType::kU8 && tb == DType::kU8) {
    qadd_dispatch_out(static_cast<const uint8_t*>(a), static_cast<const uint8_t*>(b), out, o, n, p);
  } else if (ta == DType::kU8) {
    qadd_dispatch_out(static_cast<const uint8_t*>(a), static_cast<const int8_t*>(b), out, o, n, p);
  } else if (tb == DType::kU8) {
    qadd_dispatch_out(static_cast<const int8_t*>(a), static_cast<const uint8_t*>(b), out, o, n, p);
  } else {
    qadd_dispatch_out(static_cast<const int8_t*>(a), static_cast<const int8_t*>(b), out, o, n, p);
  }
}

dt dnnl_type(DType t) { return t == DType::kF32 ? dt::f32 : t == DType::kI8 ? dt::s8 : dt::u8; }

}  // namespace

Status emit_quantize(Builder& b, const Group& g) {
  const Node& n = *g.main;
  const Value* x = n.input(0);
  const Value* out = n.output(0);
  COMPRESS_CHECK(x->dtype() == DType::kF32 && (out->dtype() == DType::kI8 || out->dtype() == DType::kU8), kUnsup,
                 "quantize to {} (the native kernel writes i8/u8)", ir::dtype_name(out->dtype()));
  COMPRESS_ASSIGN_OR_RETURN(ParamIndex p, param_index(out->type().quant.get(), out->shape(), "quantize output"));
  b.consume(g);
  int src = -1, dst = -1;
  const md_t have = b.stored(b.natural(x)).md;
  const auto kept = p.dim == 1 && !have.is_zero() && have.data_type() == dt::f32
                        ? same_layout(have, out->dtype() == DType::kI8 ? dt::s8 : dt::u8)
                        : std::nullopt;
  if (kept) {
    src = b.natural(x);
    dst = b.new_stored(out, *kept);
  } else {
    COMPRESS_ASSIGN_OR_RETURN(src, b.get_plain(x, DType::kF32));
    dst = b.new_stored_raw(out, out->dtype(), out->shape());
  }
  const int64_t count = ir::numel(x->shape());
  const bool is_signed = out->dtype() == DType::kI8;
  auto fn = [src, dst, count, p, is_signed](StepContext& ctx) -> Status {
    const float* xs = static_cast<const float*>(ctx.ptr(src));
    if (is_signed) {
      quantize_loop(xs, static_cast<int8_t*>(ctx.ptr(dst)), count, p);
    } else {
      quantize_loop(xs, static_cast<uint8_t*>(ctx.ptr(dst)), count, p);
    }
    return Status::ok();
  };
  OnednnStep info;
  info.kind = "native";
  info.nodes = g.node_names();
  info.detail = fmt::format("quantize f32 -> {} (exact contract), {}", ir::dtype_name(out->dtype()),
                            describe_md(b.stored(dst).md));
  b.add_function(fn, {src}, {dst}, info);
  return Status::ok();
}

Status emit_dequantize(Builder& b, const Group& g) {
  const Node& n = *g.main;
  const Value* x = n.input(0);
  const Value* out = n.output(0);
  const DType t = x->dtype();
  COMPRESS_CHECK(t == DType::kI8 || t == DType::kU8 || t == DType::kI32, kUnsup,
                 "dequantize from {} (the native kernel reads i8/u8/i32)", ir::dtype_name(t));
  const ir::QuantParams* q = x->type().quant.get();
  if (x->is_constant() && x->constant().quant()) q = x->constant().quant().get();
  COMPRESS_ASSIGN_OR_RETURN(ParamIndex p, param_index(q, x->shape(), "dequantize input"));
  b.consume(g);
  int src = -1, dst = -1;
  const md_t have = b.stored(b.natural(x)).md;
  const auto kept = p.dim == 1 ? same_layout(have, dt::f32) : std::nullopt;
  if (kept) {
    src = b.natural(x);
    dst = b.new_stored(out, *kept);
  } else {
    COMPRESS_ASSIGN_OR_RETURN(src, b.get_plain(x, t));
    dst = b.new_stored_raw(out, DType::kF32, out->shape());
  }
  const int64_t count = ir::numel(x->shape());
  auto fn = [src, dst, count, p, t](StepContext& ctx) -> Status {
    float* xs = static_cast<float*>(ctx.ptr(dst));
    const void* qs = ctx.ptr(src);
    if (t == DType::kI8) dequantize_loop(static_cast<const int8_t*>(qs), xs, count, p);
    if (t == DType::kU8) dequantize_loop(static_cast<const uint8_t*>(qs), xs, count, p);
    if (t == DType::kI32) dequantize_loop(static_cast<const int32_t*>(qs), xs, count, p);
    return Status::ok();
  };
  OnednnStep info;
  info.kind = "native";
  info.nodes = g.node_names();
  info.detail =
      fmt::format("dequantize {} -> f32 (exact contract), {}", ir::dtype_name(t), describe_md(b.stored(dst).md));
  b.add_function(fn, {src}, {dst}, info);
  return Status::ok();
}

// Runs in the layout the first operand already has when it is dense
// (Note [Quantize in any layout]); the second is brought to the same one.
Status emit_qadd(Builder& b, const Group& g) {
  const Node& n = *g.main;
  const Value* a = n.input(0);
  const Value* bv = n.input(1);
  const Value* out = n.output(0);
  COMPRESS_CHECK(a->shape() == bv->shape() && out->shape() == a->shape(), kUnsup, "qadd of shapes {} and {}",
                 ir::shape_to_string(a->shape()), ir::shape_to_string(bv->shape()));
  QaddParams p;
  for (const Value* v : {a, bv}) {
    COMPRESS_CHECK((v->dtype() == DType::kU8 || v->dtype() == DType::kI8) && v->type().quant != nullptr &&
                       v->type().quant->granularity() == ir::QuantGranularity::kPerTensor,
                   kUnsup, "qadd operand '{}' is not an i8/u8 per-tensor quantized value", v->name());
  }
  COMPRESS_ASSIGN_OR_RETURN(ParamIndex pa, param_index(a->type().quant.get(), a->shape(), "qadd input 0"));
  COMPRESS_ASSIGN_OR_RETURN(ParamIndex pb, param_index(bv->type().quant.get(), bv->shape(), "qadd input 1"));
  p.sa = pa.scales[0];
  p.za = pa.zero_points[0];
  p.sb = pb.scales[0];
  p.zb = pb.zero_points[0];
  const DType ot = out->dtype();
  if (ot != DType::kF32) {
    COMPRESS_CHECK(ot == DType::kU8 || ot == DType::kI8, kUnsup, "qadd to {}", ir::dtype_name(ot));
    COMPRESS_ASSIGN_OR_RETURN(ParamIndex po, param_index(out->type().quant.get(), out->shape(), "qadd output"));
    p.inv_o = po.inv_scales[0];
    p.zo = po.zero_points[0];
    p.qmin = po.qmin;
    p.qmax = po.qmax;
  }
  b.consume(g);
  int sa = -1, sb = -1, dst = -1;
  const md_t have = b.stored(b.natural(a)).md;
  const auto kept_b = same_layout(have, dnnl_type(bv->dtype()));
  const auto kept_o = same_layout(have, dnnl_type(ot));
  if (kept_b && kept_o) {
    sa = b.natural(a);
    COMPRESS_ASSIGN_OR_RETURN(sb, b.get(bv, *kept_b));
    dst = b.new_stored(out, *kept_o);
  } else {
    COMPRESS_ASSIGN_OR_RETURN(sa, b.get_plain(a, a->dtype()));
    COMPRESS_ASSIGN_OR_RETURN(sb, b.get_plain(bv, bv->dtype()));
    dst = b.new_stored_raw(out, ot, out->shape());
  }
  const int64_t count = ir::numel(out->shape());
  const DType ta = a->dtype(), tb = bv->dtype();
  auto fn = [sa, sb, dst, count, p, ta, tb, ot](StepContext& ctx) -> Status {
    qadd_dispatch(ctx.ptr(sa), ta, ctx.ptr(sb), tb, ctx.ptr(dst), ot, count, p);
    return Status::ok();
  };
  OnednnStep info;
  info.kind = "native";
  info.nodes = g.node_names();
  info.detail = fmt::format("qadd {} + {} -> {} (exact contract), {}", ir::dtype_name(ta), ir::dtype_name(tb),
                            ir::dtype_name(ot), describe_md(b.stored(dst).md));
  b.add_function(fn, {sa, sb}, {dst}, info);
  return Status::ok();
}

Status emit_embedding(Builder& b, const Group& g) {
  const Node& n = *g.main;
  const Value* idx = n.input(0);
  const Value* table = n.input(1);
  COMPRESS_CHECK(idx->dtype() == DType::kI64 || idx->dtype() == DType::kI32, kUnsup, "embedding indices of {}",
                 ir::dtype_name(idx->dtype()));
  COMPRESS_CHECK(table->dtype() == DType::kF32 && table->shape().size() == 2, kUnsup,
                 "embedding table must be f32 [rows, width]");
  b.consume(g);
  const int src = b.natural(idx);
  COMPRESS_ASSIGN_OR_RETURN(int tab, b.get_plain(table, DType::kF32));
  const Value* out = n.output(0);
  const int dst = b.new_stored_raw(out, DType::kF32, out->shape());
  const int64_t count = ir::numel(idx->shape());
  const int64_t rows = table->shape()[0], width = table->shape()[1];
  const bool wide = idx->dtype() == DType::kI64;
  const std::string name = n.name();
  const ir::Shape idx_shape = idx->shape();
  auto fn = [=](StepContext& ctx) -> Status {
    const float* t = static_cast<const float*>(ctx.ptr(tab));
    float* y = static_cast<float*>(ctx.ptr(dst));
    for (int64_t i = 0; i < count; ++i) {
      const int64_t row =
          wide ? static_cast<const int64_t*>(ctx.ptr(src))[i] : static_cast<const int32_t*>(ctx.ptr(src))[i];
      // Indices are data: a bad one is the caller's error, never an out-of-bounds read.
      COMPRESS_CHECK(
          row >= 0 && row < rows, StatusCode::kInvalidArgument,
          "node '{}' (embedding): index {} at position {} of indices {} is out of range for a table of {} rows", name,
          row, i, ir::shape_to_string(idx_shape), rows);
      if (width > 0) std::memcpy(y + i * width, t + row * width, static_cast<size_t>(width) * sizeof(float));
    }
    return Status::ok();
  };
  OnednnStep info;
  info.kind = "native";
  info.nodes = g.node_names();
  info.detail = fmt::format("embedding gather {} rows of {}", count, width);
  b.add_function(fn, {src, tab}, {dst}, info);
  return Status::ok();
}

}  // namespace compress::runtime::onednn
