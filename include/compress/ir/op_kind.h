// Interned op kinds: the enum passes and backends compare instead of op-name strings.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace compress::ir {

// Note [Op kinds]
// Every op of the op set has one OpKind, in the spirit of PyTorch's aten::
// interned symbols: passes write `node.kind() == OpKind::conv2d`, so a typo is
// a compile error, not a silently false comparison. The list below only names
// the ops; what an op is (arity, attributes, type inference, FLOPs, channel
// flow, weighted-layer roles) lives in its op table entry (src/ir/ops.cpp),
// which must have exactly one entry per kind (checked when the table is built
// and by tests/runtime/test_op_coverage.cpp). The enum's order is not stored
// anywhere (.cmf stores op names), so inserting a kind is safe.
#define COMPRESS_FORALL_OP_KINDS(_) \
  _(conv2d)                         \
  _(linear)                         \
  _(matmul)                         \
  _(qconv2d)                        \
  _(qlinear)                        \
  _(qmatmul)                        \
  _(qadd)                           \
  _(batch_norm)                     \
  _(layer_norm)                     \
  _(rms_norm)                       \
  _(relu)                           \
  _(relu6)                          \
  _(silu)                           \
  _(sigmoid)                        \
  _(tanh)                           \
  _(hardswish)                      \
  _(hardsigmoid)                    \
  _(gelu)                           \
  _(clamp)                          \
  _(add)                            \
  _(sub)                            \
  _(mul)                            \
  _(div)                            \
  _(concat)                         \
  _(split)                          \
  _(slice)                          \
  _(reshape)                        \
  _(flatten)                        \
  _(transpose)                      \
  _(permute)                        \
  _(max_pool2d)                     \
  _(avg_pool2d)                     \
  _(adaptive_avg_pool2d)            \
  _(adaptive_max_pool2d)            \
  _(reduce_mean)                    \
  _(softmax)                        \
  _(embedding)                      \
  _(scaled_dot_product_attention)   \
  _(quantize)                       \
  _(dequantize)                     \
  _(fake_quant)

enum class OpKind : uint16_t {
#define COMPRESS_OP_KIND_ENUM(name) name,
  COMPRESS_FORALL_OP_KINDS(COMPRESS_OP_KIND_ENUM)
#undef COMPRESS_OP_KIND_ENUM
      kUnknown,  // a node whose op is not in the op set (only files and broken-graph tests make these)
};

inline constexpr size_t kNumOpKinds = static_cast<size_t>(OpKind::kUnknown);

// The op's name as stored in .cmf and printed ("conv2d"); "<unknown>" for kUnknown.
std::string_view op_name(OpKind kind);
// The kind of an op name; nullopt when the name is not in the op set.
std::optional<OpKind> op_kind_from_name(std::string_view name);

}  // namespace compress::ir
