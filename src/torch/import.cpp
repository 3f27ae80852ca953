// TorchScript -> IR: load, inline, then walk the graph node by node.
#include "compress/torch/import.h"

#include "compress/support/parse.h"

#include <torch/csrc/jit/passes/inliner.h>
#include <torch/csrc/jit/serialization/import.h>
#include <torch/script.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>

#include "compress/ir/verifier.h"
#include "compress/support/check.h"
#include "compress/torch/tensor_convert.h"
#include "import_context.h"
#include "op_lowering.h"

namespace compress::torch {
namespace jit = ::torch::jit;

// ---- ImportContext helpers ---------------------------------------------------------

std::string ImportContext::where() const {
  if (current_ == nullptr) return source_;
  std::string s = current_->kind().toQualString();
  // A saved TorchScript file keeps, next to its serialized code, the range of
  // the original Python source that generated each node: point there first.
  const jit::SourceRange range = current_->sourceRange();
  if (auto original = range.findSourceRangeThatGenerated()) {
    if (auto loc = original->file_line_col()) {
      s += fmt::format(" at {}:{}:{}", std::get<0>(*loc), std::get<1>(*loc), std::get<2>(*loc));
    }
  } else if (auto loc = range.file_line_col()) {
    s += fmt::format(" at {}:{}:{}", std::get<0>(*loc), std::get<1>(*loc), std::get<2>(*loc));
  }
  s += module_path_.empty() ? " in the top-level module" : " in module " + module_path_;
  return s;
}

Status ImportContext::error(StatusCode code, const std::string& message) const {
  return Status(code, fmt::format("{}: {}: {}", source_, where(), message));
}

Expected<ir::Value*> ImportContext::as_ir(const Known& k, const std::string& fallback_name) {
  switch (k.kind) {
    case Known::Kind::kIr: return k.ir;
    case Known::Kind::kConstant: {
      at::Tensor tensor;
      if (k.constant.isTensor()) {
        tensor = k.constant.toTensor();
      } else if (k.constant.isDouble() || k.constant.isInt() || k.constant.isBool()) {
        return scalar_constant(k.constant.toScalar().toDouble());
      } else {
        return error(StatusCode::kUnsupported,
                     fmt::format("a constant of type {} cannot be used as a tensor", k.constant.tagKind()));
      }
      const void* key = tensor.unsafeGetTensorImpl();
      if (auto it = tensor_constants_.find(key); it != tensor_constants_.end()) return it->second;
      COMPRESS_ASSIGN_OR_RETURN(ir::Tensor value, from_aten(tensor));
      const std::string name = graph_->unique_name(k.path.empty() ? fallback_name : k.path);
      COMPRESS_ASSIGN_OR_RETURN(ir::Value * constant, graph_->add_constant(name, std::move(value)));
      tensor_constants_[key] = constant;
      return constant;
    }
    case Known::Kind::kModule:
      return error(StatusCode::kUnsupported, fmt::format("module '{}' used as a tensor", k.path));
    case Known::Kind::kList:
      return error(StatusCode::kUnsupported, "a list used as a tensor");
    case Known::Kind::kPadded:
      return error(StatusCode::kUnsupported,
                   "the output of constant_pad_nd is read by an op other than conv2d (zero fill) or max_pool2d "
                   "(-inf fill); op set v1 has no pad op");
    case Known::Kind::kUnset: break;
  }
  return error(StatusCode::kInternal, "input value was never produced (unsupported producer?)");
}

Expected<ir::Value*> ImportContext::ir_input(size_t i) {
  const std::string base = module_path_.empty() ? std::string(current_->kind().toUnqualString()) : module_path_;
  return as_ir(known(current_->input(i)), base + ".const");
}

Expected<c10::IValue> ImportContext::constant_input(size_t i) {
  const Known& k = known(current_->input(i));
  if (k.kind != Known::Kind::kConstant) {
    return error(StatusCode::kUnsupported,
                 fmt::format("argument {} must be known at import time (a constant), but depends on the input", i));
  }
  return k.constant;
}

Expected<int64_t> ImportContext::int_input(size_t i) {
  COMPRESS_ASSIGN_OR_RETURN(c10::IValue v, constant_input(i));
  if (v.isInt()) return v.toInt();
  if (v.isBool()) return static_cast<int64_t>(v.toBool());
  if (v.isTensor() && v.toTensor().numel() == 1) return v.toTensor().item<int64_t>();
  return error(StatusCode::kUnsupported, fmt::format("argument {} must be an int, got {}", i, v.tagKind()));
}

Expected<double> ImportContext::double_input(size_t i) {
  COMPRESS_ASSIGN_OR_RETURN(c10::IValue v, constant_input(i));
  if (v.isDouble() || v.isInt() || v.isBool()) return v.toScalar().toDouble();
  if (v.isTensor() && v.toTensor().numel() == 1) return v.toTensor().item<double>();
  return error(StatusCode::kUnsupported, fmt::format("argument {} must be a number, got {}", i, v.tagKind()));
}

Expected<bool> ImportContext::bool_input(size_t i) {
  COMPRESS_ASSIGN_OR_RETURN(int64_t v, int_input(i));
  return v != 0;
}

Expected<std::vector<int64_t>> ImportContext::ints_input(size_t i) {
  COMPRESS_ASSIGN_OR_RETURN(c10::IValue v, constant_input(i));
  if (v.isIntList()) return v.toIntVector();
  if (v.isInt()) return std::vector<int64_t>{v.toInt()};
  if (v.isList()) {
    std::vector<int64_t> out;
    for (const c10::IValue& item : v.toListRef()) {
      if (!item.isInt()) break;
      out.push_back(item.toInt());
    }
    if (out.size() == v.toListRef().size()) return out;
  }
  return error(StatusCode::kUnsupported, fmt::format("argument {} must be a list of ints, got {}", i, v.tagKind()));
}

Expected<std::string> ImportContext::string_input(size_t i) {
  COMPRESS_ASSIGN_OR_RETURN(c10::IValue v, constant_input(i));
  if (v.isString()) return v.toStringRef();
  return error(StatusCode::kUnsupported, fmt::format("argument {} must be a string, got {}", i, v.tagKind()));
}

Expected<ir::Node*> ImportContext::emit_node(ir::OpKind op, const std::vector<ir::Value*>& inputs,
                                             ir::AttributeMap attrs) {
  const std::string name = module_path_.empty() ? std::string(ir::op_name(op)) : module_path_;
  auto node = graph_->add_node(op, inputs, std::move(attrs), name);
  if (!node) return error(node.status().code(), node.status().message());
  return *node;
}

Expected<ir::Value*> ImportContext::emit(ir::OpKind op, const std::vector<ir::Value*>& inputs,
                                         ir::AttributeMap attrs) {
  COMPRESS_ASSIGN_OR_RETURN(ir::Node * node, emit_node(op, inputs, std::move(attrs)));
  return node->output();
}

Expected<ir::Value*> ImportContext::scalar_constant(double value) {
  const std::string base = module_path_.empty() ? std::string("scalar") : module_path_ + ".scalar";
  return graph_->add_constant(graph_->unique_name(base), ir::Tensor::scalar_f32(static_cast<float>(value)));
}

namespace {

// Note [Module paths]
// A node's inlined call stack names the module instances it was called
// through ("layer1", "0", "conv1"). A module reached without a call (an item
// of a ModuleList iterated in forward) is missing from the stack, so each
// step is resolved against the real module tree: a direct child of that name,
// else the nearest descendant of that name and class type
// ("blocks" + "0" -> "blocks.0").
class ModulePaths {
 public:
  explicit ModulePaths(const jit::Module& root) {
    for (const auto& item : root.named_modules()) {
      if (!item.name.empty()) modules_.emplace_back(item.name, item.value.type());
    }
  }

  std::string of(const jit::Node* node) {
    std::string path;
    auto cs = node->callstack();
    if (!cs) return path;
    for (const auto& entry : (*cs)->vec()) {
      const auto& info = std::get<jit::kModuleInstanceInfo>(entry);
      if (!info || info->instance_name().empty()) continue;
      path = step(path, info->instance_name(), info->class_type());
    }
    return path;
  }

 private:
  std::string step(const std::string& parent, const std::string& name, const c10::ClassTypePtr& type) {
    const std::string key = parent + "\n" + name + "\n" + (type ? type->name()->qualifiedName() : "");
    if (auto it = cache_.find(key); it != cache_.end()) return it->second;
    const std::string direct = parent.empty() ? name : parent + "." + name;
    std::string found;
    for (const auto& [path, module_type] : modules_) {
      if (path == direct) {
        found = direct;
        break;
      }
    }
    if (found.empty()) {
      const std::string prefix = parent.empty() ? "" : parent + ".";
      size_t best_depth = SIZE_MAX;
      for (const auto& [path, module_type] : modules_) {
        const bool under = prefix.empty() || path.compare(0, prefix.size(), prefix) == 0;
        const bool named = path.size() > name.size() && path.compare(path.size() - name.size(), name.size(), name) == 0 &&
                           path[path.size() - name.size() - 1] == '.';
        if (!under || !named || (type && module_type != type)) continue;
        const size_t depth = static_cast<size_t>(std::count(path.begin(), path.end(), '.'));
        if (depth < best_depth) {
          best_depth = depth;
          found = path;
        }
      }
    }
    if (found.empty()) found = direct;
    cache_[key] = found;
    return found;
  }

  std::vector<std::pair<std::string, c10::ClassTypePtr>> modules_;
  std::unordered_map<std::string, std::string> cache_;
};

std::string strip_inplace(const std::string& kind) {
  if (kind.size() > 1 && kind.back() == '_' && kind[kind.size() - 2] != '_') return kind.substr(0, kind.size() - 1);
  return kind;
}

// Ops evaluated at import time even though they have handlers when all their
// inputs are constants; these never are (they describe data flow, or touch
// the IR value's static shape).
bool never_fold(const std::string& kind) {
  return kind == "prim::GetAttr" || kind == "aten::size" || kind == "aten::dim" || kind == "prim::Constant";
}

class Importer {
 public:
  Importer(const jit::Module& module, const ImportOptions& options, std::string source)
      : module_(module), options_(options), source_(std::move(source)), ctx_(&graph_, source_), paths_(module) {}

  Expected<ir::Graph> run() {
    jit::Method forward = module_.get_method("forward");
    std::shared_ptr<jit::Graph> graph = forward.graph()->copy();
    jit::Inline(*graph);
    COMPRESS_RETURN_IF_ERROR(bind_inputs(*graph));
    for (jit::Node* node : graph->nodes()) COMPRESS_RETURN_IF_ERROR(import_node(node));
    COMPRESS_RETURN_IF_ERROR(bind_outputs(*graph));
    graph_.remove_dead_nodes();
    graph_.remove_unused_constants();
    COMPRESS_RETURN_IF_ERROR(ir::verify(graph_).with_context(source_ + ": imported graph does not verify"));
    return std::move(graph_);
  }

 private:
  Status bind_inputs(const jit::Graph& graph) {
    const auto inputs = graph.inputs();
    COMPRESS_CHECK(!inputs.empty(), StatusCode::kUnsupported, "{}: forward() has no self argument", source_);
    Known self;
    self.kind = Known::Kind::kModule;
    self.constant = module_._ivalue();
    ctx_.bind(inputs[0], self);
    const size_t count = inputs.size() - 1;
    COMPRESS_CHECK(options_.inputs.size() == count, StatusCode::kInvalidArgument,
                   "{}: forward() takes {} input(s) but {} input shape(s) were given; pass --input-shape "
                   "(e.g. 1,3,224,224) once per input, or save the model with the extra file '{}'",
                   source_, count, options_.inputs.size(), kInputsExtraFile);
    for (size_t i = 0; i < count; ++i) {
      const InputSpec& spec = options_.inputs[i];
      std::string name = spec.name.empty() ? inputs[i + 1]->debugNameBase() : spec.name;
      if (name.empty()) name = fmt::format("input{}", i);
      COMPRESS_ASSIGN_OR_RETURN(ir::Value * v, graph_.add_input(graph_.unique_name(name),
                                                               ir::ValueType{spec.dtype, spec.shape, nullptr}));
      ctx_.bind_ir(inputs[i + 1], v);
    }
    return Status::ok();
  }

  Status bind_outputs(const jit::Graph& graph) {
    std::vector<ir::Value*> outputs;
    std::function<Status(const Known&)> collect = [&](const Known& k) -> Status {
      if (k.kind == Known::Kind::kList) {
        for (const Known& item : k.items) COMPRESS_RETURN_IF_ERROR(collect(item));
        return Status::ok();
      }
      if (k.kind == Known::Kind::kConstant && (k.constant.isTuple() || k.constant.isList())) {
        return unsupported("{}: a constant model output is not supported", source_);
      }
      COMPRESS_ASSIGN_OR_RETURN(ir::Value * v, ctx_.as_ir(k, "output"));
      outputs.push_back(v);
      return Status::ok();
    };
    for (const jit::Value* out : graph.outputs()) COMPRESS_RETURN_IF_ERROR(collect(ctx_.known(out)));
    // Give outputs stable names when they are plain node outputs.
    graph_.set_outputs(outputs);
    return Status::ok();
  }

  Status import_node(const jit::Node* node) {
    const std::string kind = node->kind().toQualString();
    ctx_.set_current(node, paths_.of(node));
    if (!node->blocks().empty()) {
      return ctx_.error(StatusCode::kUnsupported,
                        "control flow (if/loop) is not supported; trace the model with torch.jit.trace, or script "
                        "it without data-dependent branches");
    }
    if (kind == "prim::Constant") {
      Known k;
      k.kind = Known::Kind::kConstant;
      k.constant = *jit::toIValue(node->output());
      ctx_.bind(node->output(), std::move(k));
      return Status::ok();
    }
    if (kind == "prim::GetAttr") return import_get_attr(node);
    if (kind == "aten::size" || kind == "aten::dim") return import_size(node, kind);
    if (kind == "prim::ListUnpack" || kind == "prim::TupleUnpack") return import_unpack(node);
    if ((kind == "aten::__getitem__" || kind == "prim::TupleIndex") &&
        ctx_.known(node->input(0)).kind == Known::Kind::kList) {
      return import_list_item(node);
    }
    if (kind == "prim::ListConstruct" || kind == "prim::TupleConstruct") return import_list(node);
    if (!never_fold(kind) && all_inputs_constant(node) && node->outputs().size() > 0) return fold(node);
    const auto& handlers = aten_handlers();
    auto it = handlers.find(kind);
    if (it == handlers.end()) it = handlers.find(strip_inplace(kind));
    if (it == handlers.end()) {
      return ctx_.error(StatusCode::kUnsupported,
                        "op is not supported by compress's importer (op set v1); see docs/torch.md for the list");
    }
    try {
      return it->second(ctx_, node);
    } catch (const c10::Error& e) {
      return ctx_.error(StatusCode::kInternal, e.what_without_backtrace());
    } catch (const std::exception& e) {
      return ctx_.error(StatusCode::kInternal, e.what());
    }
  }

  bool all_inputs_constant(const jit::Node* node) {
    for (const jit::Value* in : node->inputs()) {
      if (!ctx_.is_constant(in)) return false;
    }
    return true;
  }

  // Evaluates a node whose inputs are all known, with LibTorch's own kernel.
  Status fold(const jit::Node* node) {
    jit::Stack stack;
    for (const jit::Value* in : node->inputs()) stack.push_back(ctx_.known(in).constant);
    try {
      jit::Operation op = node->getOperation();
      op(stack);
    } catch (const c10::Error& e) {
      return ctx_.error(StatusCode::kUnsupported,
                        fmt::format("evaluating a constant expression failed: {}", e.what_without_backtrace()));
    } catch (const std::exception& e) {
      return ctx_.error(StatusCode::kUnsupported, fmt::format("evaluating a constant expression failed: {}", e.what()));
    }
    if (stack.size() != node->outputs().size()) {
      return ctx_.error(StatusCode::kInternal, "constant evaluation returned the wrong number of values");
    }
    for (size_t i = 0; i < node->outputs().size(); ++i) {
      Known k;
      k.kind = Known::Kind::kConstant;
      k.constant = stack[i];
      ctx_.bind(node->output(i), std::move(k));
    }
    return Status::ok();
  }

  Status import_get_attr(const jit::Node* node) {
    const Known& owner = ctx_.known(node->input(0));
    if (owner.kind != Known::Kind::kModule) return ctx_.error(StatusCode::kUnsupported, "attribute of a non-module");
    const std::string name = node->s(c10::attr::name);
    const std::string path = owner.path.empty() ? name : owner.path + "." + name;
    c10::IValue value = owner.constant.toObject()->getAttr(name);
    Known k;
    k.path = path;
    if (value.isModule() || value.isObject()) {
      k.kind = Known::Kind::kModule;
    } else {
      k.kind = Known::Kind::kConstant;
    }
    k.constant = std::move(value);
    ctx_.bind(node->output(), std::move(k));
    return Status::ok();
  }

  Status import_size(const jit::Node* node, const std::string& kind) {
    const Known& x = ctx_.known(node->input(0));
    ir::Shape shape;
    if (x.kind == Known::Kind::kIr) {
      shape = x.ir->shape();
    } else if (x.kind == Known::Kind::kConstant && x.constant.isTensor()) {
      shape = x.constant.toTensor().sizes().vec();
    } else {
      return ctx_.error(StatusCode::kUnsupported, "size of a non-tensor");
    }
    Known k;
    k.kind = Known::Kind::kConstant;
    if (kind == "aten::dim") {
      k.constant = static_cast<int64_t>(shape.size());
    } else if (node->inputs().size() == 1) {
      k.constant = c10::IValue(shape);
    } else {
      COMPRESS_ASSIGN_OR_RETURN(int64_t dim, ctx_.int_input(1));
      const int64_t rank = static_cast<int64_t>(shape.size());
      if (dim < 0) dim += rank;
      if (dim < 0 || dim >= rank) return ctx_.error(StatusCode::kInvalidArgument, "size() dim out of range");
      k.constant = shape[static_cast<size_t>(dim)];
    }
    ctx_.bind(node->output(), std::move(k));
    return Status::ok();
  }

  // Lists of constant numbers become constant IValue lists (the arguments of
  // most aten ops); anything else stays a list of Known items.
  Status import_list(const jit::Node* node) {
    Known k;
    bool all_ints = true, all_doubles = true;
    for (const jit::Value* in : node->inputs()) {
      const Known& item = ctx_.known(in);
      const bool constant = item.kind == Known::Kind::kConstant;
      all_ints = all_ints && constant && item.constant.isInt();
      all_doubles = all_doubles && constant && item.constant.isDouble();
      k.items.push_back(item);
    }
    const bool is_list = node->kind() == c10::prim::ListConstruct;
    if (is_list && all_ints) {
      std::vector<int64_t> values;
      for (const Known& item : k.items) values.push_back(item.constant.toInt());
      k.kind = Known::Kind::kConstant;
      k.constant = c10::IValue(values);
    } else if (is_list && all_doubles && !k.items.empty()) {
      std::vector<double> values;
      for (const Known& item : k.items) values.push_back(item.constant.toDouble());
      k.kind = Known::Kind::kConstant;
      k.constant = c10::IValue(values);
    } else {
      k.kind = Known::Kind::kList;
    }
    ctx_.bind(node->output(), std::move(k));
    return Status::ok();
  }

  Status import_list_item(const jit::Node* node) {
    const std::vector<Known>& items = ctx_.known(node->input(0)).items;
    COMPRESS_ASSIGN_OR_RETURN(int64_t index, ctx_.int_input(1));
    const int64_t size = static_cast<int64_t>(items.size());
    if (index < 0) index += size;
    if (index < 0 || index >= size) return ctx_.error(StatusCode::kInvalidArgument, "list index out of range");
    ctx_.bind(node->output(), items[static_cast<size_t>(index)]);
    return Status::ok();
  }

  Status import_unpack(const jit::Node* node) {
    const Known& list = ctx_.known(node->input(0));
    std::vector<Known> items;
    if (list.kind == Known::Kind::kList) {
      items = list.items;
    } else if (list.kind == Known::Kind::kConstant && (list.constant.isList() || list.constant.isTuple())) {
      const auto elements = list.constant.isList() ? list.constant.toListRef().vec()
                                                   : list.constant.toTupleRef().elements().vec();
      for (const c10::IValue& e : elements) {
        Known item;
        item.kind = Known::Kind::kConstant;
        item.constant = e;
        items.push_back(std::move(item));
      }
    } else {
      return ctx_.error(StatusCode::kUnsupported, "unpacking a value that is not a list");
    }
    if (items.size() != node->outputs().size()) {
      return ctx_.error(StatusCode::kInvalidArgument,
                        fmt::format("unpacking {} values into {}", items.size(), node->outputs().size()));
    }
    for (size_t i = 0; i < items.size(); ++i) ctx_.bind(node->output(i), items[i]);
    return Status::ok();
  }

  const jit::Module& module_;
  const ImportOptions& options_;
  std::string source_;
  ir::Graph graph_;
  ImportContext ctx_;
  ModulePaths paths_;
};

Expected<std::vector<InputSpec>> inputs_from_extra_file(const std::string& text, const std::string& source) {
  try {
    const nlohmann::json doc = nlohmann::json::parse(text);
    std::vector<InputSpec> specs;
    for (const auto& entry : doc.at("inputs")) {
      InputSpec spec;
      spec.name = entry.value("name", "");
      spec.shape = entry.at("shape").get<std::vector<int64_t>>();
      const auto dtype = ir::dtype_from_name(entry.value("dtype", "f32"));
      COMPRESS_CHECK(dtype.has_value(), StatusCode::kCorruptFile, "{}: {}: unknown dtype", source, kInputsExtraFile);
      spec.dtype = *dtype;
      specs.push_back(std::move(spec));
    }
    return specs;
  } catch (const nlohmann::json::exception& e) {
    return corrupt_file("{}: extra file {} is not valid: {}", source, kInputsExtraFile, e.what());
  }
}

}  // namespace

Expected<InputSpec> parse_input_spec(const std::string& text) {
  InputSpec spec;
  std::string dims = text;
  if (auto colon = text.find(':'); colon != std::string::npos) {
    const auto dtype = ir::dtype_from_name(text.substr(0, colon));
    COMPRESS_CHECK(dtype.has_value(), StatusCode::kInvalidArgument, "input shape '{}': unknown dtype '{}'", text,
                   text.substr(0, colon));
    spec.dtype = *dtype;
    dims = text.substr(colon + 1);
  }
  // "1,3,224,224" or "1x3x224x224": the separator is ',' when the text has
  // one, so "1,x,28" names 'x' as the bad dimension rather than an empty one.
  const char separator = dims.find(',') != std::string::npos ? ',' : 'x';
  size_t start = 0;
  for (;;) {
    const size_t end = std::min(dims.find(separator, start), dims.size());
    const std::string item = dims.substr(start, end - start);
    int64_t d = 0;
    COMPRESS_CHECK(parse_int64(item, &d) && d >= 1 && d <= (int64_t{1} << 31), StatusCode::kInvalidArgument,
                   "input shape '{}': '{}' is not a dimension (use integers >= 1 separated by ',' or 'x', e.g. "
                   "1,3,224,224)",
                   text, item);
    spec.shape.push_back(d);
    if (end == dims.size()) break;
    start = end + 1;
  }
  return spec;
}

Expected<ir::Graph> import_module(const jit::Module& module, const ImportOptions& options) {
  try {
    Importer importer(module, options, "<module>");
    return importer.run();
  } catch (const c10::Error& e) {
    return make_error(StatusCode::kInternal, "TorchScript import failed: {}", e.what_without_backtrace());
  }
}

Expected<ir::Graph> import_file(const std::string& path, const ImportOptions& options) {
  {
    std::ifstream probe(path, std::ios::binary);
    COMPRESS_CHECK(probe.good(), StatusCode::kNotFound, "{}: cannot open TorchScript file", path);
  }
  jit::Module module;
  jit::ExtraFilesMap extra{{kInputsExtraFile, ""}};
  try {
    module = jit::load(path, c10::kCPU, extra);
    module.eval();
  } catch (const c10::Error& e) {
    return corrupt_file("{}: not a loadable TorchScript file: {}", path, e.what_without_backtrace());
  } catch (const std::exception& e) {
    return corrupt_file("{}: not a loadable TorchScript file: {}", path, e.what());
  }
  ImportOptions resolved = options;
  if (resolved.inputs.empty() && !extra[kInputsExtraFile].empty()) {
    COMPRESS_ASSIGN_OR_RETURN(resolved.inputs, inputs_from_extra_file(extra[kInputsExtraFile], path));
  }
  try {
    Importer importer(module, resolved, path);
    auto graph = importer.run();
    if (graph && graph->name.empty()) {
      const auto slash = path.find_last_of('/');
      graph->name = path.substr(slash == std::string::npos ? 0 : slash + 1);
      if (graph->name.size() > 3 && graph->name.substr(graph->name.size() - 3) == ".pt") graph->name.resize(graph->name.size() - 3);
    }
    return graph;
  } catch (const c10::Error& e) {
    return make_error(StatusCode::kInternal, "{}: TorchScript import failed: {}", path, e.what_without_backtrace());
  }
}

}  // namespace compress::torch
