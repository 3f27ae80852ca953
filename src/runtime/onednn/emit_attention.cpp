// scaled_dot_product_attention composed from oneDNN primitives: matmul (scale and masks as post-ops), softmax, matmul.
#include <cmath>
#include <limits>

#include "builder.h"

namespace compress::runtime::onednn {
namespace {

using ir::DType;
using ir::Node;
using ir::Value;
constexpr StatusCode kUnsup = StatusCode::kUnsupported;

ir::Shape padded(ir::Shape s, size_t rank) {
  while (s.size() < rank) s.insert(s.begin(), 1);
  return s;
}

}  // namespace

// Note [Attention from primitives]
// oneDNN 2.6 has no attention primitive, so softmax(q k^T * scale + M) v is
//   scores = matmul(q, k viewed transposed)  output scale `scale`, masks as binary-add post-ops
//   scores = softmax(scores) along the last axis, in place
//   out    = matmul(scores, v)
// in f32 (also in bf16 mode: the scores and their softmax are where bf16
// would lose the most). The causal mask and a constant bool mask become
// constant f32 masks of 0 and -inf made at compile time; a float mask is
// added as it is. A row with every position masked is NaN, as in the
// reference (softmax of all -inf).
Status emit_attention(Builder& b, const Group& g) {
  const Node& n = *g.main;
  const Value* q = n.input(0);
  const Value* k = n.input(1);
  const Value* v = n.input(2);
  const Value* mask = n.num_inputs() > 3 ? n.input(3) : nullptr;
  for (const Value* x : {q, k, v}) {
    COMPRESS_CHECK(x->dtype() == DType::kF32 && x->shape().size() >= 2, kUnsup, "attention on {}{}",
                   ir::dtype_name(x->dtype()), ir::shape_to_string(x->shape()));
  }
  const ir::Shape& ys = n.output(0)->shape();
  const size_t rank = ys.size();
  const ir::Shape qs = padded(q->shape(), rank), ks = padded(k->shape(), rank), vs = padded(v->shape(), rank);
  const int64_t l = qs[rank - 2], e = qs[rank - 1], s = ks[rank - 2];
  ir::Shape scores_shape(ys.begin(), ys.end() - 2);
  scores_shape.push_back(l);
  scores_shape.push_back(s);
  const bool causal = n.attr_int("is_causal") != 0;
  const double scale_attr = n.attr_float("scale");
  const float scale = static_cast<float>(scale_attr == 0.0 ? 1.0 / std::sqrt(static_cast<double>(e)) : scale_attr);
  if (mask != nullptr) {
    COMPRESS_CHECK(mask->dtype() == DType::kF32 || (mask->dtype() == DType::kBool && mask->is_constant()), kUnsup,
                   "attention with a non-constant {} mask", ir::dtype_name(mask->dtype()));
    COMPRESS_CHECK(mask->shape().size() <= rank, kUnsup, "attention mask of rank {}", mask->shape().size());
  }
  const float neg_inf = -std::numeric_limits<float>::infinity();

  // k [..., S, E] read as [..., E, S]: its plain strides with the last two swapped.
  dims_t kt_dims = to_dims(ks), kt_strides(rank, 1);
  for (size_t i = rank - 1; i-- > 0;) kt_strides[i] = kt_strides[i + 1] * ks[i + 1];
  std::swap(kt_dims[rank - 1], kt_dims[rank - 2]);
  std::swap(kt_strides[rank - 1], kt_strides[rank - 2]);
  const md_t q_md = plain_md(qs, dt::f32);
  const md_t kt_md(kt_dims, dt::f32, kt_strides);
  const md_t scores_md = plain_md(scores_shape, dt::f32);
  const md_t v_md = plain_md(vs, dt::f32);
  const md_t out_md = plain_md(ys, dt::f32);
  const md_t causal_md = plain_md(padded({l, s}, rank), dt::f32);
  const md_t mask_md = mask ? plain_md(padded(mask->shape(), rank), dt::f32) : md_t();

  dnnl::primitive_attr attr1;
  attr1.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  attr1.set_output_scales(0, {scale});
  dnnl::post_ops ops;
  int post = 0;
  int causal_arg = -1, mask_arg = -1;
  if (causal) {
    ops.append_binary(dnnl::algorithm::binary_add, causal_md);
    causal_arg = DNNL_ARG_ATTR_MULTIPLE_POST_OP(post++) | DNNL_ARG_SRC_1;
  }
  if (mask != nullptr) {
    ops.append_binary(dnnl::algorithm::binary_add, mask_md);
    mask_arg = DNNL_ARG_ATTR_MULTIPLE_POST_OP(post++) | DNNL_ARG_SRC_1;
  }
  attr1.set_post_ops(ops);
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::matmul::primitive_desc scores_pd, out_pd;
  dnnl::softmax_v2_forward::primitive_desc softmax_pd;
  COMPRESS_RETURN_IF_ERROR(try_dnnl("attention matmul", [&] {
    scores_pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(q_md, kt_md, scores_md), attr1, cpu_engine());
    softmax_pd = dnnl::softmax_v2_forward::primitive_desc(
        dnnl::softmax_v2_forward::desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::softmax_accurate, scores_md,
                                       scores_md, static_cast<int>(rank) - 1),
        attr, cpu_engine());
    out_pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(scores_md, v_md, out_md), attr, cpu_engine());
  }));

  b.consume(g);
  COMPRESS_ASSIGN_OR_RETURN(int qid, b.get_plain(q, DType::kF32));
  COMPRESS_ASSIGN_OR_RETURN(int kid, b.get_plain(k, DType::kF32));
  COMPRESS_ASSIGN_OR_RETURN(int vid, b.get_plain(v, DType::kF32));
  std::vector<StepArg> args1 = {{DNNL_ARG_SRC, qid, q_md}, {DNNL_ARG_WEIGHTS, kid, kt_md}};
  std::vector<std::pair<int, dnnl::memory>> fixed1;
  if (causal) {
    COMPRESS_ASSIGN_OR_RETURN(dnnl::memory m,
                              b.constant_memory(n.output(0), "causal mask", causal_md, [l, s, neg_inf](void* p) {
                                float* f = static_cast<float*>(p);
                                for (int64_t i = 0; i < l; ++i) {
                                  for (int64_t j = 0; j < s; ++j) f[i * s + j] = j > i ? neg_inf : 0.0f;
                                }
                              }));
    fixed1.emplace_back(causal_arg, m);
  }
  if (mask != nullptr) {
    if (mask->dtype() == DType::kBool) {
      const ir::Tensor& t = mask->constant();
      COMPRESS_ASSIGN_OR_RETURN(ir::Tensor dense, t.to_dense());
      COMPRESS_ASSIGN_OR_RETURN(dnnl::memory m,
                                b.constant_memory(mask, "bool mask as -inf", mask_md, [dense, neg_inf](void* p) {
                                  float* f = static_cast<float*>(p);
                                  for (int64_t i = 0; i < dense.numel(); ++i) {
                                    f[i] = dense.data<uint8_t>()[i] ? 0.0f : neg_inf;
                                  }
                                }));
      fixed1.emplace_back(mask_arg, m);
    } else {
      COMPRESS_ASSIGN_OR_RETURN(int mid, b.get_plain(mask, DType::kF32));
      args1.push_back({mask_arg, mid, mask_md});
    }
  }
  const int scores = b.new_temp(scores_md);
  args1.push_back({DNNL_ARG_DST, scores, {}});
  const std::vector<std::string> nodes = {n.name()};
  OnednnStep info;
  info.kind = "matmul";
  info.nodes = nodes;
  info.detail =
      fmt::format("attention scores {} x {}^T * {}{}{}", describe_md(q_md), describe_md(plain_md(ks, dt::f32)), scale,
                  causal ? " + causal mask" : "", mask ? " + mask" : "");
  b.add_primitive(dnnl::matmul(scores_pd), scores_pd, args1, fixed1, info);
  info.kind = "softmax";
  info.detail = "attention softmax, in place";
  b.add_primitive(dnnl::softmax_v2_forward(softmax_pd), softmax_pd,
                  {{DNNL_ARG_SRC, scores, {}}, {DNNL_ARG_DST, scores, {}}}, {}, info);
  const int out = b.new_stored(n.output(0), out_md);
  info.kind = "matmul";
  info.detail = fmt::format("attention output {} x {}", describe_md(scores_md), describe_md(v_md));
  b.add_primitive(dnnl::matmul(out_pd), out_pd,
                  {{DNNL_ARG_SRC, scores, {}}, {DNNL_ARG_WEIGHTS, vid, v_md}, {DNNL_ARG_DST, out, {}}}, {}, info);
  return Status::ok();
}

}  // namespace compress::runtime::onednn
