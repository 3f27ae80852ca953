// The plan builder's core (values, layouts, reorders, fallbacks) and running a finished ShapePlan.
#include "builder.h"
#include "spin_throttle.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <unordered_set>

#include "compress/runtime/reference.h"
#include "memory_planner.h"

namespace compress::runtime::onednn {
namespace {

using ir::DType;
using ir::Tensor;

size_t dtype_bytes(DType dtype, const ir::Shape& shape) {
  const auto n = ir::checked_numel(shape);
  const auto bytes = ir::storage_bytes(dtype, n ? static_cast<uint64_t>(*n) : 0);
  return bytes ? static_cast<size_t>(*bytes) : 0;
}

std::string node_list(const Group& g) {
  std::string s;
  for (const ir::Node* n : g.nodes()) s += (s.empty() ? "" : "+") + n->name();
  return s;
}

}  // namespace

// ---------------------------------------------------------------- WeightCache

Expected<dnnl::memory> WeightCache::get(const ir::Value* value, const std::string& purpose, const md_t& want,
                                        const std::function<Expected<dnnl::memory>()>& make) {
  for (const Entry& e : entries_) {
    if (e.value == value && e.purpose == purpose && e.md == want) return e.memory;
  }
  COMPRESS_ASSIGN_OR_RETURN(dnnl::memory m, make());
  entries_.push_back({value, purpose, want, m});
  return m;
}

size_t WeightCache::bytes() const {
  size_t total = 0;
  for (const Entry& e : entries_) total += e.md.get_size();
  return total;
}

// ---------------------------------------------------------------- ShapePlan

void* StepContext::ptr(int stored) const { return plan->buffer_ptr(plan->stored[static_cast<size_t>(stored)].buffer); }

void* ShapePlan::buffer_ptr(int buffer) const {
  const Buffer& b = buffers[static_cast<size_t>(buffer)];
  switch (b.kind) {
    case BufferKind::kArena:
      return arena_.get() + offsets_[static_cast<size_t>(buffer)];
    case BufferKind::kInput:
      return const_cast<void*>(input_ptrs_[static_cast<size_t>(b.input_index)]);
    case BufferKind::kConstant:
      return const_cast<void*>(b.data);
  }
  return nullptr;
}

Status ShapePlan::finalize() {
  const int n_steps = static_cast<int>(steps.size());
  for (int s = 0; s < n_steps; ++s) {
    for (const auto* ids : {&steps[static_cast<size_t>(s)].reads, &steps[static_cast<size_t>(s)].writes}) {
      for (int id : *ids) {
        Buffer& b = buffers[static_cast<size_t>(stored[static_cast<size_t>(id)].buffer)];
        b.first = std::min(b.first, s);
        b.last = std::max(b.last, s);
      }
    }
  }
  std::vector<BufferLifetime> lifetimes;
  std::vector<size_t> arena_ids;
  size_t unshared = 0;
  for (size_t i = 0; i < buffers.size(); ++i) {
    Buffer& b = buffers[i];
    if (b.kind != BufferKind::kArena || b.first == INT_MAX) continue;
    if (b.pinned) b.last = n_steps;
    lifetimes.push_back({b.bytes, b.first, b.last});
    arena_ids.push_back(i);
    unshared += b.bytes;
  }
  const ArenaLayout layout = plan_arena(lifetimes);
  offsets_.assign(buffers.size(), 0);
  for (size_t k = 0; k < arena_ids.size(); ++k) offsets_[arena_ids[k]] = layout.offsets[k];
  // aligned_alloc needs a size that is a multiple of the alignment, also for
  // a plan whose steps need no arena at all (a reshape-only graph).
  const size_t arena_bytes = std::max<size_t>(4096, (layout.total_bytes + 4095) / 4096 * 4096);
  void* raw = std::aligned_alloc(4096, arena_bytes);
  if (raw == nullptr)
    return make_error(StatusCode::kInternal, "cannot allocate a {}-byte activation arena", arena_bytes);
  arena_ = std::shared_ptr<uint8_t>(static_cast<uint8_t*>(raw), [](uint8_t* p) { std::free(p); });
  report.arena_bytes = layout.total_bytes;
  report.unshared_bytes = unshared;

  input_ptrs_.assign(input_shapes.size(), nullptr);
  for (size_t s = 0; s < steps.size(); ++s) {
    Step& step = steps[s];
    if (step.kind != Step::Kind::kPrimitive) continue;
    for (const StepArg& a : step.args) {
      const Stored& st = stored[static_cast<size_t>(a.stored)];
      const Buffer& b = buffers[static_cast<size_t>(st.buffer)];
      const md_t& md = a.md.data.ndims != 0 ? a.md : st.md;
      step.exec_args[a.arg] =
          dnnl::memory(md, cpu_engine(), b.kind == BufferKind::kInput ? nullptr : buffer_ptr(st.buffer));
      if (b.kind == BufferKind::kInput) input_bindings_.push_back({s, a.arg, b.input_index});
    }
    for (const auto& [arg, mem] : step.fixed) step.exec_args[arg] = mem;
  }
  return Status::ok();
}

Expected<std::vector<Tensor>> ShapePlan::run(const std::vector<Tensor>& inputs, dnnl::stream& stream, int threads,
                                             bool profile) {
  update_spin_throttle();  // Note [Spinning on a busy machine]
  ThreadScope scope(threads);
  for (size_t i = 0; i < inputs.size(); ++i) input_ptrs_[i] = inputs[i].raw_data();
  for (const Binding& b : input_bindings_) {
    steps[b.step].exec_args.at(b.arg).set_data_handle(const_cast<void*>(input_ptrs_[static_cast<size_t>(b.input)]));
  }
  StepContext ctx{this};
  try {
    for (size_t i = 0; i < steps.size(); ++i) {
      Step& step = steps[i];
      const auto start = profile ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point();
      if (step.kind == Step::Kind::kPrimitive) {
        step.primitive.execute(stream, step.exec_args);
      } else {
        stream.wait();
        Status s = step.fn(ctx);
        if (!s.is_ok()) return s;
      }
      if (profile) {
        stream.wait();
        report.steps[i].profiled_ms +=
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
      }
    }
    stream.wait();
    if (profile) ++report.profiled_runs;
  } catch (const dnnl::error& e) {
    return make_error(StatusCode::kInternal, "oneDNN failed while running the plan: {}", e.what());
  }
  // Note [Recycled outputs]
  // Outputs are copies out of the arena. A caller that runs the plan in a
  // loop (calibration, evaluation, benchmarks) has usually dropped the last
  // run's outputs by the next run; their storage, held only by the plan then,
  // is reused instead of allocating afresh. Fresh large allocations are
  // mmapped and page-faulted in on every run, which cost calibration with 31
  // observed outputs more than running the convolutions. A tensor the caller
  // still holds is never written: its storage has another owner.
  recycled_outputs.resize(output_stored.size());
  std::vector<Tensor> outputs;
  for (size_t o = 0; o < output_stored.size(); ++o) {
    const Stored& st = stored[static_cast<size_t>(output_stored[o])];
    Tensor& old = recycled_outputs[o];
    Tensor t;
    if (old.defined() && old.storage().use_count() == 1 && old.dtype() == st.dtype && old.shape() == st.shape) {
      t = old;
    } else {
      COMPRESS_ASSIGN_OR_RETURN(t, Tensor::zeros(st.dtype, st.shape));
    }
    if (t.nbytes() > 0) std::memcpy(t.raw_data(), buffer_ptr(st.buffer), t.nbytes());
    old = t;
    if (output_quant[o]) t = t.with_quant(output_quant[o]);
    outputs.push_back(std::move(t));
  }
  for (auto& p : input_ptrs_) p = nullptr;
  return outputs;
}

// ---------------------------------------------------------------- Builder

Builder::Builder(PreparedGraph& prepared, const BuildConfig& config, WeightCache& weights, ShapePlan& plan)
    : prepared_(prepared), config_(config), weights_(weights), plan_(plan) {}

int Builder::natural(const ir::Value* v) {
  auto it = variants_.find(v);
  if (it != variants_.end() && !it->second.empty()) return it->second.front();
  COMPRESS_INTERNAL_ASSERT(v->is_constant(), "value '{}' read before it was produced", v->name());
  const Tensor& t = v->constant();
  Buffer b;
  b.kind = BufferKind::kConstant;
  b.bytes = t.nbytes();
  b.data = t.raw_data();
  if (t.is_sparse()) {
    // The densified copy lives as long as the plan.
    auto dense = t.to_dense();
    COMPRESS_INTERNAL_ASSERT(dense.has_value(), "densifying '{}': {}", v->name(), dense.status().to_string());
    plan_.keep_alive.push_back(*dense);
    b.data = plan_.keep_alive.back().raw_data();
    b.bytes = plan_.keep_alive.back().nbytes();
  }
  Stored s;
  s.dtype = t.dtype();
  s.shape = t.shape();
  s.value = v;
  if (auto type = to_dnnl(t.dtype())) s.md = plain_md(t.shape(), *type);
  return add_buffer(b, std::move(s));
}

// Note: every arena buffer starts with exactly one stored view; a view that
// belongs to a value is also one of the value's variants.
int Builder::add_buffer(Buffer buffer, Stored view) {
  plan_.buffers.push_back(std::move(buffer));
  view.buffer = static_cast<int>(plan_.buffers.size() - 1);
  const ir::Value* owner = view.value;
  plan_.stored.push_back(std::move(view));
  const int id = static_cast<int>(plan_.stored.size() - 1);
  plan_.buffers.back().stored.push_back(id);
  if (owner != nullptr) variants_[owner].push_back(id);
  return id;
}

int Builder::new_stored(const ir::Value* v, const md_t& md) {
  const int id = new_temp(md);
  Stored& s = plan_.stored[static_cast<size_t>(id)];
  s.shape = v->shape();
  s.value = v;
  variants_[v].push_back(id);
  return id;
}

int Builder::new_temp(const md_t& md) {
  Buffer b;
  b.bytes = md.get_size();
  Stored s;
  s.md = md;
  s.dtype = from_dnnl(md.data_type());
  s.plain = is_plain(md);
  return add_buffer(b, std::move(s));
}

int Builder::new_stored_raw(const ir::Value* v, DType dtype, const ir::Shape& shape) {
  if (auto type = to_dnnl(dtype)) {
    const int id = new_stored(v, plain_md(shape, *type));
    plan_.stored[static_cast<size_t>(id)].shape = shape;
    return id;
  }
  Buffer b;
  b.bytes = dtype_bytes(dtype, shape);
  Stored s;
  s.dtype = dtype;
  s.shape = shape;
  s.value = v;
  return add_buffer(b, std::move(s));
}

int Builder::share(const ir::Value* v, int source) {
  Stored s = stored(source);
  s.value = v;
  s.shape = v->shape();
  plan_.stored.push_back(s);
  const int id = static_cast<int>(plan_.stored.size() - 1);
  plan_.buffers[static_cast<size_t>(s.buffer)].stored.push_back(id);
  variants_[v].push_back(id);
  return id;
}

int Builder::alias(const ir::Value* v, int source, const ir::Shape& shape) {
  const Stored src = stored(source);
  Stored s;
  s.buffer = src.buffer;
  s.dtype = src.dtype;
  s.shape = shape;
  s.value = v;
  if (auto type = to_dnnl(src.dtype)) s.md = plain_md(shape, *type);
  plan_.stored.push_back(s);
  const int id = static_cast<int>(plan_.stored.size() - 1);
  plan_.buffers[static_cast<size_t>(src.buffer)].stored.push_back(id);
  variants_[v].push_back(id);
  return id;
}

Expected<int> Builder::get(const ir::Value* v, const md_t& want) {
  const int first = natural(v);
  int source = first;
  for (int id : variants_[v]) {
    if (stored(id).md == want) return id;
    if (stored(id).dtype == from_dnnl(want.data_type()) && stored(source).dtype != stored(id).dtype) source = id;
  }
  if (want.dims() != to_dims(v->shape())) {
    // The same elements under other dims (a broadcast operand with leading
    // 1s): read a plain variant through a plain descriptor of those dims.
    COMPRESS_ASSIGN_OR_RETURN(int plain, get_plain_any(v));
    const dims_t dims = want.dims();
    const md_t view = plain_md(ir::Shape(dims.begin(), dims.end()), stored(plain).md.data_type());
    const int to = new_stored(v, want);
    COMPRESS_RETURN_IF_ERROR(add_reorder(plain, to, view));
    return to;
  }
  const int to = new_stored(v, want);
  COMPRESS_RETURN_IF_ERROR(add_reorder(source, to));
  return to;
}

Expected<int> Builder::get_plain(const ir::Value* v, DType dtype) {
  const int first = natural(v);
  for (int id : variants_[v]) {
    if (stored(id).plain && stored(id).dtype == dtype) return id;
  }
  const auto type = to_dnnl(dtype);
  COMPRESS_CHECK(type.has_value() && !stored(first).md.is_zero(), StatusCode::kUnsupported,
                 "value '{}' ({}) cannot be converted to plain {} by oneDNN", v->name(),
                 ir::dtype_name(stored(first).dtype), ir::dtype_name(dtype));
  return get(v, plain_md(v->shape(), *type));
}

Expected<int> Builder::get_plain_any(const ir::Value* v) {
  const int first = natural(v);
  for (int id : variants_[v]) {
    if (stored(id).plain) return id;
  }
  return get_plain(v, stored(first).dtype);
}

bool Builder::can_overwrite(int id, const std::vector<int>& other_reads, bool self_read_ok) const {
  const Stored& s = stored(id);
  const Buffer& b = plan_.buffers[static_cast<size_t>(s.buffer)];
  if (b.kind != BufferKind::kArena || b.pinned) return false;
  for (int other : other_reads) {
    if ((other != id || !self_read_ok) && stored(other).buffer == s.buffer) return false;
  }
  for (int alias_id : b.stored) {
    const ir::Value* v = stored(alias_id).value;
    auto it = pending_.find(v);
    if (it != pending_.end() && it->second > 0) return false;
  }
  return true;
}

void Builder::consume_node(const ir::Node& node) {
  for (const ir::Value* in : node.inputs()) --pending_[in];
}

void Builder::consume(const Group& group) {
  for (const ir::Node* n : group.nodes()) consume_node(*n);
  // Values produced and used inside the group were never stored: their
  // uses are not reads of a buffer.
}

Expected<dnnl::memory> Builder::weight(const ir::Value* v, const std::string& purpose, const md_t& source_md,
                                       const void* source_data, const md_t& want) {
  Expected<dnnl::memory> copy = weights_.get(v, purpose, want, [&]() -> Expected<dnnl::memory> {
    dnnl::memory dst(want, cpu_engine());
    dnnl::memory src(source_md, cpu_engine(), const_cast<void*>(source_data));
    try {
      dnnl::stream stream(cpu_engine());
      dnnl::reorder(src, dst).execute(stream, src, dst);
      stream.wait();
    } catch (const dnnl::error& e) {
      return make_error(StatusCode::kInternal, "reordering weight '{}' to {}: {}", v->name(), describe_md(want),
                        e.what());
    }
    return dst;
  });
  // Note [Releasing copied weights] (dnnl_util.h): the plan's copy stands for
  // `v` whether it was reordered from v's bytes or from a converted copy of
  // them (centered s8), and whether this call made it or found it cached
  // (an emitter may have read v again to convert it).
  if (copy.has_value() && v->is_constant()) release_mapped_pages(v->constant());
  return copy;
}

Expected<dnnl::memory> Builder::constant_memory(const ir::Value* v, const std::string& purpose, const md_t& md,
                                                const std::function<void(void*)>& fill) {
  return weights_.get(v, purpose, md, [&]() -> Expected<dnnl::memory> {
    dnnl::memory m(md, cpu_engine());
    fill(m.get_data_handle());
    return m;
  });
}

void Builder::add_primitive(dnnl::primitive primitive, const dnnl::primitive_desc_base& pd, std::vector<StepArg> args,
                            std::vector<std::pair<int, dnnl::memory>> fixed, OnednnStep info) {
  Step step;
  step.kind = Step::Kind::kPrimitive;
  step.primitive = std::move(primitive);
  const md_t scratch = pd.scratchpad_desc();
  if (scratch.get_size() > 0) {
    Buffer b;
    b.bytes = scratch.get_size();
    plan_.buffers.push_back(b);
    Stored s;
    s.buffer = static_cast<int>(plan_.buffers.size() - 1);
    s.md = scratch;
    s.plain = false;
    plan_.stored.push_back(s);
    const int id = static_cast<int>(plan_.stored.size() - 1);
    plan_.buffers.back().stored.push_back(id);
    args.push_back({DNNL_ARG_SCRATCHPAD, id, md_t()});
  }
  // oneDNN names inputs and outputs by argument id; what is read and what is
  // written only matters for lifetimes, where both count the same.
  for (const StepArg& a : args) step.reads.push_back(a.stored);
  step.args = std::move(args);
  step.fixed = std::move(fixed);
  if (info.implementation.empty()) info.implementation = impl_name(pd);
  step.info = std::move(info);
  plan_.steps.push_back(std::move(step));
}

void Builder::add_function(std::function<Status(StepContext&)> fn, std::vector<int> reads, std::vector<int> writes,
                           OnednnStep info) {
  Step step;
  step.kind = Step::Kind::kFunction;
  step.fn = std::move(fn);
  step.reads = std::move(reads);
  step.writes = std::move(writes);
  step.info = std::move(info);
  plan_.steps.push_back(std::move(step));
}

Status Builder::add_reorder(int from, int to, const md_t& from_md, const md_t& to_md, const std::string& why,
                            const Group* op_group) {
  const md_t src = from_md.is_zero() ? stored(from).md : from_md;
  const md_t dst = to_md.is_zero() ? stored(to).md : to_md;
  dnnl::reorder::primitive_desc pd;
  try {
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    pd = dnnl::reorder::primitive_desc(cpu_engine(), src, cpu_engine(), dst, attr);
  } catch (const dnnl::error& e) {
    return make_error(StatusCode::kInternal, "oneDNN cannot reorder {} to {}: {}", describe_md(src), describe_md(dst),
                      e.what());
  }
  OnednnStep info;
  info.kind = "reorder";
  info.detail = fmt::format("{} -> {}{}{}", describe_md(src), describe_md(dst), why.empty() ? "" : ": ", why);
  if (op_group != nullptr) {
    info.kind = op_group->main->op();
    for (const ir::Node* n : op_group->nodes()) info.nodes.push_back(n->name());
  } else if (const ir::Value* v = stored(to).value) {
    info.detail = fmt::format("'{}' {}", v->name(), info.detail);
  }
  add_primitive(dnnl::reorder(pd), pd, {{DNNL_ARG_FROM, from, from_md}, {DNNL_ARG_TO, to, to_md}}, {}, info);
  if (op_group == nullptr) ++plan_.report.reorders;
  return Status::ok();
}

namespace {

using Emitter = Status (*)(Builder&, const Group&);
using ir::OpKind;

// What the backend does with each op: an emitter, or the reason it has none
// (the node then runs on the reference kernel). Indexed by OpKind; the
// eltwise rows come from emit_compute.cpp's eltwise table.
struct OpMapping {
  Emitter emit = nullptr;
  std::string_view not_supported_reason;
};

const std::array<OpMapping, ir::kNumOpKinds>& op_mappings() {
  static const auto table = [] {
    std::array<OpMapping, ir::kNumOpKinds> t{};
    auto set = [&t](OpKind kind, Emitter emit) { t[static_cast<size_t>(kind)].emit = emit; };
    for (size_t i = 0; i < ir::kNumOpKinds; ++i) {
      if (is_eltwise_op(static_cast<OpKind>(i))) set(static_cast<OpKind>(i), emit_eltwise);
    }
    set(OpKind::conv2d, emit_conv);
    set(OpKind::linear, emit_linear);
    set(OpKind::matmul, emit_matmul);
    set(OpKind::qconv2d, emit_qconv);
    set(OpKind::qlinear, emit_qlinear);
    set(OpKind::qmatmul, emit_qmatmul);
    set(OpKind::add, emit_binary);
    set(OpKind::sub, emit_binary);
    set(OpKind::mul, emit_binary);
    set(OpKind::div, emit_binary);
    set(OpKind::max_pool2d, emit_pool);
    set(OpKind::avg_pool2d, emit_pool);
    set(OpKind::adaptive_avg_pool2d, emit_pool);
    set(OpKind::adaptive_max_pool2d, emit_pool);
    set(OpKind::batch_norm, emit_batch_norm);
    set(OpKind::layer_norm, emit_layer_norm);
    set(OpKind::rms_norm, emit_rms_norm);
    set(OpKind::softmax, emit_softmax);
    set(OpKind::reduce_mean, emit_reduce_mean);
    set(OpKind::concat, emit_concat);
    set(OpKind::reshape, emit_reshape);
    set(OpKind::flatten, emit_reshape);
    set(OpKind::transpose, emit_permute);
    set(OpKind::permute, emit_permute);
    set(OpKind::slice, emit_slice);
    set(OpKind::split, emit_split);
    set(OpKind::quantize, emit_quantize);
    set(OpKind::dequantize, emit_dequantize);
    set(OpKind::qadd, emit_qadd);
    set(OpKind::embedding, emit_embedding);
    set(OpKind::scaled_dot_product_attention, emit_attention);
    t[static_cast<size_t>(OpKind::fake_quant)].not_supported_reason =
        "fake_quant is a training-time op; runs on the reference kernel (deploy with quantize/qconv2d)";
    return t;
  }();
  return table;
}

const OpMapping* mapping_of(OpKind kind) {
  return kind == OpKind::kUnknown ? nullptr : &op_mappings()[static_cast<size_t>(kind)];
}

}  // namespace

OpCoverage op_coverage(ir::OpKind kind) {
  const OpMapping* m = mapping_of(kind);
  if (m == nullptr) return {false, ""};
  return {m->emit != nullptr, std::string(m->not_supported_reason)};
}

Status Builder::emit_group(const Group& g) {
  const OpMapping* m = mapping_of(g.main->kind());
  if (m == nullptr || m->emit == nullptr) return Status(StatusCode::kUnsupported, unmapped_reason(*g.main));
  return m->emit(*this, g);
}

std::string unmapped_reason(const ir::Node& node) {
  const OpMapping* m = mapping_of(node.kind());
  if (m != nullptr && !m->not_supported_reason.empty()) return std::string(m->not_supported_reason);
  return fmt::format("no oneDNN mapping for op '{}'", node.op());
}

Status Builder::emit_alone(const ir::Node& node) {
  Group single;
  single.main = const_cast<ir::Node*>(&node);
  Status s = emit_group(single);
  if (s.code() == StatusCode::kUnsupported) return emit_fallback(node, s.message());
  return s.with_context(fmt::format("node '{}'", node.name()));
}

Status Builder::emit_fallback(const ir::Node& node, const std::string& reason) {
  plan_.report.fallbacks.push_back({node.name(), node.op(), reason});
  struct Arg {
    int stored = -1;  // -1: a constant passed as its own tensor
    Tensor constant;
    const ir::Value* value = nullptr;
  };
  std::vector<Arg> ins;
  std::vector<int> reads;
  for (const ir::Value* v : node.inputs()) {
    Arg a;
    a.value = v;
    if (v->is_constant()) {
      a.constant = v->constant();
    } else {
      COMPRESS_ASSIGN_OR_RETURN(a.stored, get_plain(v, v->dtype()));
      reads.push_back(a.stored);
    }
    ins.push_back(std::move(a));
  }
  consume_node(node);
  std::vector<int> outs;
  for (const ir::Value* v : node.outputs()) outs.push_back(new_stored_raw(v, v->dtype(), v->shape()));
  // Views of plan buffers: a non-null owner marks the storage as borrowed,
  // and the plan outlives every run of its steps.
  std::shared_ptr<void> keep(static_cast<void*>(&plan_), [](void*) {});
  const ir::Node* n = &node;
  auto fn = [n, ins, outs, keep](StepContext& ctx) -> Status {
    std::vector<Tensor> args;
    args.reserve(ins.size());
    for (const Arg& a : ins) {
      if (a.stored < 0) {
        args.push_back(a.constant);
        continue;
      }
      const Stored& st = ctx.plan->stored[static_cast<size_t>(a.stored)];
      const size_t bytes = ctx.plan->buffers[static_cast<size_t>(st.buffer)].bytes;
      const size_t need = dtype_bytes(st.dtype, st.shape);
      auto storage = ir::Storage::borrow(ctx.ptr(a.stored), std::min(bytes, need), keep);
      COMPRESS_ASSIGN_OR_RETURN(Tensor t, Tensor::from_storage(st.dtype, st.shape, storage, a.value->type().quant));
      args.push_back(std::move(t));
    }
    COMPRESS_ASSIGN_OR_RETURN(std::vector<Tensor> results, run_reference_node(*n, args));
    for (size_t o = 0; o < outs.size() && o < results.size(); ++o) {
      const Stored& st = ctx.plan->stored[static_cast<size_t>(outs[o])];
      COMPRESS_CHECK(results[o].shape() == st.shape && results[o].dtype() == st.dtype && !results[o].is_sparse(),
                     StatusCode::kInternal, "node '{}': the reference kernel returned {}{} where the plan expects {}{}",
                     n->name(), ir::dtype_name(results[o].dtype()), ir::shape_to_string(results[o].shape()),
                     ir::dtype_name(st.dtype), ir::shape_to_string(st.shape));
      if (results[o].nbytes() > 0) std::memcpy(ctx.ptr(outs[o]), results[o].raw_data(), results[o].nbytes());
    }
    return Status::ok();
  };
  OnednnStep info;
  info.kind = "reference";
  info.nodes = {node.name()};
  info.detail = reason;
  add_function(fn, reads, outs, info);
  return Status::ok();
}

Status Builder::emit_outputs() {
  const ir::Graph& g = prepared_.graph;
  for (const ir::Value* v : g.outputs()) {
    int id = -1;
    if (to_dnnl(v->dtype()).has_value()) {
      COMPRESS_ASSIGN_OR_RETURN(id, get_plain(v, v->dtype()));
    } else {
      id = natural(v);
    }
    plan_.buffers[static_cast<size_t>(stored(id).buffer)].pinned = true;
    plan_.output_stored.push_back(id);
    plan_.output_quant.push_back(v->type().quant);
  }
  return Status::ok();
}

Status Builder::build() {
  ThreadScope scope(config_.threads);
  const ir::Graph& g = prepared_.graph;
  for (const ir::Value* v : g.values()) pending_[v] = static_cast<int>(v->uses().size()) + (g.is_output(v) ? 1 : 0);
  for (size_t i = 0; i < g.inputs().size(); ++i) {
    const ir::Value* v = g.inputs()[i];
    Buffer b;
    b.kind = BufferKind::kInput;
    b.input_index = static_cast<int>(i);
    b.bytes = dtype_bytes(v->dtype(), v->shape());
    plan_.buffers.push_back(b);
    Stored s;
    s.buffer = static_cast<int>(plan_.buffers.size() - 1);
    s.dtype = v->dtype();
    s.shape = v->shape();
    s.value = v;
    if (auto type = to_dnnl(v->dtype())) s.md = plain_md(v->shape(), *type);
    plan_.stored.push_back(s);
    const int id = static_cast<int>(plan_.stored.size() - 1);
    plan_.buffers.back().stored.push_back(id);
    variants_[v].push_back(id);
  }

  for (const Group& group : prepared_.groups) {
    Status s = emit_group(group);
    if (s.is_ok()) {
      plan_.report.fused_nodes += static_cast<int>(group.posts.size());
      continue;
    }
    if (s.code() != StatusCode::kUnsupported) return s.with_context(fmt::format("nodes {}", node_list(group)));
    if (group.requantize != nullptr) {
      // The layer and its eltwise posts without the fused quantize (Note
      // [Requantizing after f32 post-ops]), before splitting them up.
      Group without = group;
      without.posts.pop_back();
      without.requantize = nullptr;
      if (emit_group(without).is_ok()) {
        plan_.report.fused_nodes += static_cast<int>(without.posts.size());
        COMPRESS_RETURN_IF_ERROR(emit_alone(*group.requantize));
        continue;
      }
    }
    if (!group.posts.empty()) {
      // Try the members one by one before giving any of them to the reference.
      for (const ir::Node* n : group.nodes()) COMPRESS_RETURN_IF_ERROR(emit_alone(*n));
      continue;
    }
    COMPRESS_RETURN_IF_ERROR(emit_fallback(*group.main, s.message()));
  }
  COMPRESS_RETURN_IF_ERROR(emit_outputs());
  plan_.report.fused_nodes += prepared_.folded_batch_norms;
  for (const Step& step : plan_.steps) plan_.report.steps.push_back(step.info);
  return Status::ok();
}

}  // namespace compress::runtime::onednn
