// The per-input-shape plan of the onednn backend (buffers, steps, primitives) and the builder that emits it.
#pragma once

#include <climits>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "compress/runtime/onednn.h"
#include "compress/support/check.h"
#include "dnnl_util.h"
#include "prepare.h"

namespace compress::runtime::onednn {

// Constant weights (and biases, BN statistics) in the layout a primitive
// asked for, shared by the plans of every input shape of one compiled graph:
// a new batch size reorders only weights whose preferred layout changed.
class WeightCache {
 public:
  // `purpose` distinguishes different derived tensors of one constant
  // ("centered s8", "bias as binary src", ...).
  Expected<dnnl::memory> get(const ir::Value* value, const std::string& purpose, const md_t& want,
                             const std::function<Expected<dnnl::memory>()>& make);
  size_t bytes() const;

 private:
  struct Entry {
    const ir::Value* value;
    std::string purpose;
    md_t md;
    dnnl::memory memory;
  };
  std::vector<Entry> entries_;
};

enum class BufferKind { kArena, kInput, kConstant };

struct Buffer {
  BufferKind kind = BufferKind::kArena;
  size_t bytes = 0;
  int input_index = -1;        // kInput
  const void* data = nullptr;  // kConstant
  int first = INT_MAX, last = -1;
  bool pinned = false;      // a graph output: lives until the copy-out
  std::vector<int> stored;  // the stored values that live in it (aliases)
};

// One layout of one value: a descriptor over a buffer. A value may have
// several (its producer's blocked layout, a plain copy for a reshape, ...).
struct Stored {
  int buffer = -1;
  md_t md;                            // empty for dtypes oneDNN lacks (i64, bool): then plain
  ir::DType dtype = ir::DType::kF32;  // physical element type (bf16 for f32 values in bf16 mode)
  ir::Shape shape;
  bool plain = true;
  const ir::Value* value = nullptr;
};

class ShapePlan;

// What native and fallback steps see at run time.
struct StepContext {
  ShapePlan* plan;
  void* ptr(int stored) const;
};

struct StepArg {
  int arg;
  int stored;
  md_t md;  // when not empty: the primitive sees the buffer through this descriptor
};

struct Step {
  enum class Kind { kPrimitive, kFunction };
  Kind kind = Kind::kPrimitive;
  dnnl::primitive primitive;
  std::vector<StepArg> args;
  std::vector<std::pair<int, dnnl::memory>> fixed;  // weights, biases, post-op operands
  std::function<Status(StepContext&)> fn;
  std::vector<int> reads, writes;  // stored ids, for lifetimes
  OnednnStep info;
  std::unordered_map<int, dnnl::memory> exec_args;  // built by finalize()
};

// The compiled plan for one set of input shapes.
class ShapePlan {
 public:
  std::vector<Buffer> buffers;
  std::vector<Stored> stored;
  std::vector<Step> steps;
  std::vector<int> output_stored;  // per graph output: plain, IR dtype
  std::vector<std::shared_ptr<const ir::QuantParams>> output_quant;
  std::vector<ir::Shape> input_shapes;
  std::vector<ir::Tensor> keep_alive;  // densified sparse constants
  // The output tensors of the last run (Note [Recycled outputs]).
  std::vector<ir::Tensor> recycled_outputs;
  OnednnPlanReport report;

  // Places arena buffers, allocates the arena and binds memory objects.
  Status finalize();
  // With `profile`, each step is waited for and its time added to report.steps[i].profiled_ms.
  Expected<std::vector<ir::Tensor>> run(const std::vector<ir::Tensor>& inputs, dnnl::stream& stream, int threads,
                                        bool profile = false);

  void* buffer_ptr(int buffer) const;

 private:
  struct Binding {
    size_t step;
    int arg;
    int input;
  };
  std::vector<Binding> input_bindings_;
  std::vector<const void*> input_ptrs_;
  std::shared_ptr<uint8_t> arena_;
  std::vector<size_t> offsets_;
};

struct BuildConfig {
  OnednnOptions options;
  int threads = 1;
};

// Builds a ShapePlan for the prepared graph, whose value types have been
// inferred for the concrete input shapes.
class Builder {
 public:
  Builder(PreparedGraph& prepared, const BuildConfig& config, WeightCache& weights, ShapePlan& plan);
  Status build();

  // --- used by the emitters (emit_*.cpp) ---
  const BuildConfig& config() const { return config_; }
  dt compute_type() const { return config_.options.compute == OnednnCompute::kBF16 ? dt::bf16 : dt::f32; }
  const Stored& stored(int id) const { return plan_.stored[static_cast<size_t>(id)]; }
  // The variant the producer wrote (the natural layout of the value).
  int natural(const ir::Value* v);
  // A variant with exactly this descriptor (a reorder step when needed).
  Expected<int> get(const ir::Value* v, const md_t& want);
  // A plain variant with this physical dtype.
  Expected<int> get_plain(const ir::Value* v, ir::DType dtype);
  // A plain variant in whatever float type it already has (f32 or bf16), or the IR dtype.
  Expected<int> get_plain_any(const ir::Value* v);
  // A new arena buffer holding `v` in this layout.
  int new_stored(const ir::Value* v, const md_t& md);
  int new_stored_raw(const ir::Value* v, ir::DType dtype, const ir::Shape& shape);  // dtypes oneDNN lacks
  // A buffer no value owns (statistics a primitive writes and nobody reads).
  int new_temp(const md_t& md);
  // `v` written in place over `source`'s buffer, in the same layout.
  int share(const ir::Value* v, int source);
  // `v` viewed through another plain descriptor of the same bytes (reshape).
  int alias(const ir::Value* v, int source, const ir::Shape& shape);
  // Whether a step may write over `stored` (its buffer holds nothing anyone
  // reads later, and no other input of the step lives there).
  // `self_read_ok`: `stored` itself may be among the reads (an elementwise
  // step reads each element before writing it); not for a primitive that
  // keeps reading its sources while it writes (a convolution's sum post-op).
  bool can_overwrite(int stored, const std::vector<int>& other_reads, bool self_read_ok = true) const;
  // Marks the group's inputs as read (call once, when the emitter commits).
  void consume(const Group& group);
  void consume_node(const ir::Node& node);

  Expected<dnnl::memory> weight(const ir::Value* v, const std::string& purpose, const md_t& source_md,
                                const void* source_data, const md_t& want);
  Expected<dnnl::memory> constant_memory(const ir::Value* v, const std::string& purpose, const md_t& md,
                                         const std::function<void(void*)>& fill);

  // Adds a primitive step; a user-mode scratchpad becomes a step-local arena buffer.
  void add_primitive(dnnl::primitive primitive, const dnnl::primitive_desc_base& pd, std::vector<StepArg> args,
                     std::vector<std::pair<int, dnnl::memory>> fixed, OnednnStep info);
  void add_function(std::function<Status(StepContext&)> fn, std::vector<int> reads, std::vector<int> writes,
                    OnednnStep info);
  // A reorder from one stored value to another (layout, dtype, or a copy).
  // Inserted reorders (layout or dtype changes) are counted in the report;
  // with `op_group` the reorder is that node's own work (permute, slice).
  Status add_reorder(int from, int to, const md_t& from_md = md_t(), const md_t& to_md = md_t(),
                     const std::string& why = "", const Group* op_group = nullptr);

  void note_fused(int n) { plan_.report.fused_nodes += n; }
  const ir::Graph& graph() const { return prepared_.graph; }

 private:
  // Appends a buffer with its first view; registers the view as a variant of its value.
  int add_buffer(Buffer buffer, Stored view);
  Status emit_group(const Group& group);
  // `node` as a group of its own, or on the reference backend when oneDNN
  // cannot run it.
  Status emit_alone(const ir::Node& node);
  Status emit_fallback(const ir::Node& node, const std::string& reason);
  Status emit_outputs();

  PreparedGraph& prepared_;
  BuildConfig config_;
  WeightCache& weights_;
  ShapePlan& plan_;
  std::unordered_map<const ir::Value*, std::vector<int>> variants_;
  std::unordered_map<const ir::Value*, int> pending_;
};

// Whether the backend has an emitter for an op, or why not (Backend::op_coverage).
OpCoverage op_coverage(ir::OpKind kind);
// Why a node's op has no oneDNN mapping at all (the reason Backend::supports
// and the plan report give).
std::string unmapped_reason(const ir::Node& node);

// The emitters, one per op family. Each returns kUnsupported (and changes
// nothing) when oneDNN cannot do the group, so the builder can fall back.
Status emit_conv(Builder& b, const Group& g);
Status emit_linear(Builder& b, const Group& g);
Status emit_matmul(Builder& b, const Group& g);
Status emit_qconv(Builder& b, const Group& g);
Status emit_qlinear(Builder& b, const Group& g);
Status emit_qmatmul(Builder& b, const Group& g);
Status emit_eltwise(Builder& b, const Group& g);
Status emit_binary(Builder& b, const Group& g);
Status emit_pool(Builder& b, const Group& g);
Status emit_batch_norm(Builder& b, const Group& g);
Status emit_layer_norm(Builder& b, const Group& g);
Status emit_rms_norm(Builder& b, const Group& g);
Status emit_softmax(Builder& b, const Group& g);
Status emit_reduce_mean(Builder& b, const Group& g);
Status emit_concat(Builder& b, const Group& g);
Status emit_reshape(Builder& b, const Group& g);
Status emit_permute(Builder& b, const Group& g);
Status emit_slice(Builder& b, const Group& g);
Status emit_split(Builder& b, const Group& g);
Status emit_quantize(Builder& b, const Group& g);
Status emit_dequantize(Builder& b, const Group& g);
Status emit_qadd(Builder& b, const Group& g);
Status emit_embedding(Builder& b, const Group& g);
Status emit_attention(Builder& b, const Group& g);

// The group's posts as oneDNN post-ops, in order (a fused add is the sum
// post-op); kUnsupported for an op oneDNN lacks.
Status append_posts(const Group& g, dnnl::post_ops& ops);
// oneDNN algorithm and alpha/beta of an eltwise node (hardsigmoid takes two).
struct EltwiseSpec {
  dnnl::algorithm alg;
  float alpha = 0, beta = 0;
};
Expected<std::vector<EltwiseSpec>> eltwise_spec(const ir::Node& node);
std::string post_summary(const Group& g);
// The destination of a group's main primitive: in place over the residual
// when the group ends in a fused add (f32 sum or qadd) and the residual's
// buffer is free and not one of `reads` (the primitive's own sources), else
// a new buffer with the residual copied in first for the sum.
Expected<int> group_destination(Builder& b, const Group& g, const md_t& dst_md, const std::vector<int>& reads,
                                std::string* detail);

// A oneDNN call that throws dnnl::error becomes kUnsupported naming what was tried.
template <typename Fn>
Status try_dnnl(const std::string& what, Fn&& fn) {
  try {
    fn();
    return Status::ok();
  } catch (const dnnl::error& e) {
    return unsupported("oneDNN cannot create the {} primitive ({})", what, e.what());
  }
}

}  // namespace compress::runtime::onednn
