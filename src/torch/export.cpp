// IR -> TorchScript: emit TorchScript source for forward(), register the
// constants as parameters/buffers, compile with Module::define, save.
#include "compress/torch/export.h"

#include <torch/script.h>

#include <cmath>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "compress/io/atomic_file.h"
#include "compress/ir/verifier.h"
#include "compress/support/check.h"
#include "compress/torch/import.h"
#include "compress/torch/tensor_convert.h"

namespace compress::torch {
namespace {

std::string py_float(double v) {
  if (std::isnan(v)) return "float('nan')";
  if (std::isinf(v)) return v > 0 ? "float('inf')" : "float('-inf')";
  std::string s = fmt::format("{:.17g}", v);
  if (s.find_first_of(".eE") == std::string::npos) s += ".0";
  return s;
}

std::string py_ints(const std::vector<int64_t>& v) { return fmt::format("[{}]", fmt::join(v, ", ")); }

class SourceWriter {
 public:
  explicit SourceWriter(const ir::Graph& graph) : graph_(graph) {}

  Expected<std::string> write() {
    for (const ir::Value* c : graph_.constants()) {
      std::string name = sanitize(c->name());
      while (used_.count(name)) name += "_";
      used_.insert(name);
      names_[c] = "self." + name;
      attribute_names_.emplace_back(c, name);
    }
    std::string args;
    for (size_t i = 0; i < graph_.inputs().size(); ++i) {
      const ir::Value* in = graph_.inputs()[i];
      names_[in] = fmt::format("x{}", i);
      args += fmt::format(", x{}: Tensor", i);
    }
    out_ = fmt::format("def forward(self{}):\n", args);
    for (const ir::Node* node : graph_.nodes()) {
      for (size_t i = 0; i < node->num_outputs(); ++i) names_[node->output(i)] = fmt::format("v{}", next_++);
      COMPRESS_RETURN_IF_ERROR(emit(*node));
    }
    std::vector<std::string> results;
    for (const ir::Value* out : graph_.outputs()) results.push_back(names_.at(out));
    out_ += results.size() == 1 ? fmt::format("    return {}\n", results[0])
                                : fmt::format("    return ({})\n", fmt::join(results, ", "));
    return out_;
  }

  const std::vector<std::pair<const ir::Value*, std::string>>& attributes() const { return attribute_names_; }

 private:
  static std::string sanitize(const std::string& name) {
    std::string s = "c_";
    for (char ch : name) s.push_back(std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_');
    return s;
  }

  std::string in(const ir::Node& n, size_t i) const { return names_.at(n.input(i)); }
  std::string out(const ir::Node& n, size_t i = 0) const { return names_.at(n.output(i)); }
  void line(const std::string& text) { out_ += "    " + text + "\n"; }

  // Pads H/W when padding is asymmetric; returns the tensor expression and the
  // symmetric padding that is left for the op.
  std::string pad_input(const ir::Node& n, const std::vector<int64_t>& pad, const std::string& fill,
                        std::vector<int64_t>* symmetric) {
    if (pad[0] == pad[2] && pad[1] == pad[3]) {
      *symmetric = {pad[0], pad[1]};
      return in(n, 0);
    }
    *symmetric = {0, 0};
    const std::string padded = fmt::format("p{}", next_++);
    line(fmt::format("{} = torch.constant_pad_nd({}, [{}, {}, {}, {}], {})", padded, in(n, 0), pad[1], pad[3], pad[0],
                     pad[2], fill));
    return padded;
  }

  Status emit(const ir::Node& n) {
    const std::string& op = n.op();
    const std::string y = out(n);
    auto opt = [&](size_t i) { return n.num_inputs() > i ? in(n, i) : std::string("None"); };
    if (op == "conv2d") {
      std::vector<int64_t> pad;
      const std::string x = pad_input(n, n.attr_ints("padding"), "0.0", &pad);
      line(fmt::format("{} = torch.conv2d({}, {}, {}, {}, {}, {}, {})", y, x, in(n, 1), opt(2),
                       py_ints(n.attr_ints("stride")), py_ints(pad), py_ints(n.attr_ints("dilation")),
                       n.attr_int("groups")));
    } else if (op == "linear") {
      line(fmt::format("{} = torch.linear({}, {}, {})", y, in(n, 0), in(n, 1), opt(2)));
    } else if (op == "matmul") {
      line(fmt::format("{} = torch.matmul({}, {})", y, in(n, 0), in(n, 1)));
    } else if (op == "batch_norm") {
      line(fmt::format("{} = torch.batch_norm({}, {}, {}, {}, {}, False, 0.1, {}, False)", y, in(n, 0), in(n, 1),
                       in(n, 2), in(n, 3), in(n, 4), py_float(n.attr_float("eps"))));
    } else if (op == "layer_norm") {
      const auto& shape = n.input(0)->shape();
      const int64_t k = n.attr_int("normalized_ndim");
      std::vector<int64_t> normalized(shape.end() - k, shape.end());
      line(fmt::format("{} = torch.layer_norm({}, {}, {}, {}, {}, False)", y, in(n, 0), py_ints(normalized), opt(1),
                       opt(2), py_float(n.attr_float("eps"))));
    } else if (op == "relu" || op == "sigmoid" || op == "tanh") {
      line(fmt::format("{} = torch.{}({})", y, op, in(n, 0)));
    } else if (op == "silu" || op == "hardswish" || op == "hardsigmoid") {
      line(fmt::format("{} = torch.{}({})", y, op, in(n, 0)));
    } else if (op == "relu6") {
      line(fmt::format("{} = torch.hardtanh({}, 0.0, 6.0)", y, in(n, 0)));
    } else if (op == "gelu") {
      line(fmt::format("{} = torch.gelu({}, approximate='{}')", y, in(n, 0), n.attr_string("approximate")));
    } else if (op == "clamp") {
      line(fmt::format("{} = torch.clamp({}, {}, {})", y, in(n, 0), py_float(n.attr_float("min")),
                       py_float(n.attr_float("max"))));
    } else if (op == "add" || op == "sub" || op == "mul" || op == "div") {
      const char* sym = op == "add" ? "+" : op == "sub" ? "-" : op == "mul" ? "*" : "/";
      line(fmt::format("{} = {} {} {}", y, in(n, 0), sym, in(n, 1)));
    } else if (op == "concat") {
      std::vector<std::string> parts;
      for (size_t i = 0; i < n.num_inputs(); ++i) parts.push_back(in(n, i));
      line(fmt::format("{} = torch.cat([{}], {})", y, fmt::join(parts, ", "), n.attr_int("axis")));
    } else if (op == "split") {
      std::vector<std::string> outs;
      for (size_t i = 0; i < n.num_outputs(); ++i) outs.push_back(out(n, i));
      const std::string list = fmt::format("s{}", next_++);
      line(fmt::format("{} = torch.split({}, {}, {})", list, in(n, 0), py_ints(n.attr_ints("sizes")), n.attr_int("axis")));
      for (size_t i = 0; i < outs.size(); ++i) line(fmt::format("{} = {}[{}]", outs[i], list, i));
    } else if (op == "slice") {
      const int64_t rank = static_cast<int64_t>(n.input(0)->shape().size());
      int64_t axis = n.attr_int("axis");
      if (axis < 0) axis += rank;
      std::vector<std::string> index(static_cast<size_t>(rank), ":");
      const int64_t end = n.attr_int("end");
      index[static_cast<size_t>(axis)] = fmt::format("{}:{}:{}", n.attr_int("start"),
                                                     end >= INT64_MAX / 2 ? std::string() : std::to_string(end),
                                                     n.attr_int("step"));
      line(fmt::format("{} = {}[{}]", y, in(n, 0), fmt::join(index, ", ")));
    } else if (op == "reshape") {
      line(fmt::format("{} = torch.reshape({}, {})", y, in(n, 0), py_ints(n.attr_ints("shape"))));
    } else if (op == "flatten") {
      line(fmt::format("{} = torch.flatten({}, {}, {})", y, in(n, 0), n.attr_int("start_dim"), n.attr_int("end_dim")));
    } else if (op == "transpose") {
      line(fmt::format("{} = torch.transpose({}, {}, {})", y, in(n, 0), n.attr_int("dim0"), n.attr_int("dim1")));
    } else if (op == "permute") {
      line(fmt::format("{} = {}.permute({})", y, in(n, 0), py_ints(n.attr_ints("perm"))));
    } else if (op == "max_pool2d") {
      std::vector<int64_t> pad;
      const std::string x = pad_input(n, n.attr_ints("padding"), "float('-inf')", &pad);
      line(fmt::format("{} = torch.max_pool2d({}, {}, {}, {}, {}, {})", y, x, py_ints(n.attr_ints("kernel")),
                       py_ints(n.attr_ints("stride")), py_ints(pad), py_ints(n.attr_ints("dilation")),
                       n.attr_int("ceil_mode") ? "True" : "False"));
    } else if (op == "avg_pool2d") {
      const auto& p = n.attr_ints("padding");
      if (p[0] != p[2] || p[1] != p[3]) return unsupported("export: avg_pool2d '{}' has asymmetric padding", n.name());
      line(fmt::format("{} = torch.avg_pool2d({}, {}, {}, {}, {}, {})", y, in(n, 0),
                       py_ints(n.attr_ints("kernel")), py_ints(n.attr_ints("stride")), py_ints({p[0], p[1]}),
                       n.attr_int("ceil_mode") ? "True" : "False", n.attr_int("count_include_pad") ? "True" : "False"));
    } else if (op == "adaptive_avg_pool2d") {
      line(fmt::format("{} = torch.adaptive_avg_pool2d({}, {})", y, in(n, 0),
                       py_ints(n.attr_ints("output_size"))));
    } else if (op == "adaptive_max_pool2d") {
      line(fmt::format("{} = torch.adaptive_max_pool2d({}, {})[0]", y, in(n, 0),
                       py_ints(n.attr_ints("output_size"))));
    } else if (op == "reduce_mean") {
      line(fmt::format("{} = torch.mean({}, {}, {})", y, in(n, 0), py_ints(n.attr_ints("axes")),
                       n.attr_int("keepdim") ? "True" : "False"));
    } else if (op == "softmax") {
      line(fmt::format("{} = torch.softmax({}, {})", y, in(n, 0), n.attr_int("axis")));
    } else if (op == "embedding") {
      line(fmt::format("{} = torch.embedding({}, {})", y, in(n, 1), in(n, 0)));
    } else if (op == "scaled_dot_product_attention") {
      const double scale = n.attr_float("scale");
      const std::string s = fmt::format("a{}", next_++);
      if (scale == 0.0) {
        line(fmt::format("{} = torch.matmul({}, {}.transpose(-2, -1)) / (float({}.size(-1)) ** 0.5)", s, in(n, 0), in(n, 1),
                         in(n, 0)));
      } else {
        line(fmt::format("{} = torch.matmul({}, {}.transpose(-2, -1)) * {}", s, in(n, 0), in(n, 1), py_float(scale)));
      }
      if (n.num_inputs() > 3) {
        if (n.input(3)->dtype() == ir::DType::kBool) {
          line(fmt::format("{} = {}.masked_fill({}.logical_not(), float('-inf'))", s, s, in(n, 3)));
        } else {
          line(fmt::format("{} = {} + {}", s, s, in(n, 3)));
        }
      }
      if (n.attr_int("is_causal")) {
        line(fmt::format("{} = {}.masked_fill(torch.ones({}.size(-2), {}.size(-1), dtype=torch.bool, "
                         "device={}.device).triu(1), float('-inf'))",
                         s, s, s, s, s));
      }
      line(fmt::format("{} = torch.matmul(torch.softmax({}, -1), {})", y, s, in(n, 2)));
    } else if (op == "fake_quant") {
      const auto dtype = ir::dtype_from_name(n.attr_string("dtype")).value_or(ir::DType::kI8);
      int64_t qmin = ir::traits(dtype).min_value, qmax = ir::traits(dtype).max_value;
      if (n.attr_int("qmin") != 0 || n.attr_int("qmax") != 0) {
        qmin = n.attr_int("qmin");
        qmax = n.attr_int("qmax");
      }
      const auto& scales = n.attr_floats("scale");
      const auto& zps = n.attr_ints("zero_point");
      if (n.attr_int("group_size") > 0) return unsupported("export: per-group fake_quant '{}'", n.name());
      if (scales.size() == 1 && n.attr_int("axis") == -1) {
        line(fmt::format("{} = torch.fake_quantize_per_tensor_affine({}, {}, {}, {}, {})", y, in(n, 0),
                         py_float(scales[0]), zps.empty() ? 0 : zps[0], qmin, qmax));
      } else {
        std::vector<std::string> s, z;
        for (size_t i = 0; i < scales.size(); ++i) {
          s.push_back(py_float(static_cast<float>(scales[i])));
          z.push_back(std::to_string(i < zps.size() ? zps[i] : 0));
        }
        int64_t axis = n.attr_int("axis");
        if (axis < 0) axis += static_cast<int64_t>(n.input(0)->shape().size());
        line(fmt::format("{} = torch.fake_quantize_per_channel_affine({}, torch.tensor([{}], dtype=torch.float32), "
                         "torch.tensor([{}], dtype=torch.int32), {}, {}, {})",
                         y, in(n, 0), fmt::join(s, ", "), fmt::join(z, ", "), axis, qmin, qmax));
      }
    } else {
      return unsupported(
          "export: node '{}' ({}) has no TorchScript equivalent; real integer graphs are exported in their "
          "fake-quant form",
          n.name(), op);
    }
    return Status::ok();
  }

  const ir::Graph& graph_;
  std::string out_;
  std::unordered_map<const ir::Value*, std::string> names_;
  std::vector<std::pair<const ir::Value*, std::string>> attribute_names_;
  std::unordered_set<std::string> used_;
  int next_ = 0;
};

}  // namespace

Expected<std::string> torchscript_source(const ir::Graph& graph) {
  COMPRESS_RETURN_IF_ERROR(ir::verify(graph).with_context("export"));
  SourceWriter writer(graph);
  return writer.write();
}

Status export_torchscript(const ir::Graph& graph, const std::string& path) {
  COMPRESS_RETURN_IF_ERROR(ir::verify(graph).with_context("export"));
  SourceWriter writer(graph);
  COMPRESS_ASSIGN_OR_RETURN(std::string source, writer.write());
  try {
    ::torch::jit::Module module(c10::QualifiedName("__torch__.compress.ExportedModel"));
    for (const auto& [value, name] : writer.attributes()) {
      COMPRESS_ASSIGN_OR_RETURN(at::Tensor tensor, to_aten(value->constant()));
      const bool parameter = value->dtype() == ir::DType::kF32 && value->shape().size() > 0;
      module.register_parameter(name, tensor, /*is_buffer=*/!parameter);
    }
    module.define(source);
    module.eval();
    // Record the input shapes so that re-importing needs no --input-shape.
    std::string inputs = "{\"inputs\": [";
    for (size_t i = 0; i < graph.inputs().size(); ++i) {
      const ir::Value* in = graph.inputs()[i];
      inputs += fmt::format("{}{{\"name\": \"{}\", \"shape\": [{}], \"dtype\": \"{}\"}}", i ? ", " : "", in->name(),
                            fmt::join(in->shape(), ", "), ir::dtype_name(in->dtype()));
    }
    inputs += "]}";
    std::ostringstream stream;
    module.save(stream, {{kInputsExtraFile, inputs}});
    return io::write_file_atomically(path, stream.str());
  } catch (const c10::Error& e) {
    return make_error(StatusCode::kInternal, "export to {}: TorchScript rejected the generated model: {}", path,
                      e.what_without_backtrace());
  } catch (const std::exception& e) {
    return make_error(StatusCode::kInternal, "export to {}: {}", path, e.what());
  }
}

}  // namespace compress::torch
