// The LibTorch layer's op table (Note [Torch lowering table] in op_lowering.h):
// one row per op kind with its aten imports, its ATen run and its TorchScript emit.
#include "op_lowering.h"

#include <ATen/ATen.h>

#include <array>
#include <cmath>
#include <limits>

#include "aten_import.h"
#include "compress/ir/op_schema.h"
#include "compress/support/check.h"

namespace compress::torch {
namespace {

using Ints = std::vector<int64_t>;
using K = ir::OpKind;

// --- TorchScript source helpers ---

std::string py_float(double v) {
  if (std::isnan(v)) return "float('nan')";
  if (std::isinf(v)) return v > 0 ? "float('inf')" : "float('-inf')";
  std::string s = fmt::format("{:.17g}", v);
  if (s.find_first_of(".eE") == std::string::npos) s += ".0";
  return s;
}

std::string py_ints(const Ints& v) { return fmt::format("[{}]", fmt::join(v, ", ")); }
const char* py_bool(int64_t v) { return v ? "True" : "False"; }

// --- Asymmetric padding: the IR pads [top, left, bottom, right]; ATen ops pad
// symmetrically, so an asymmetric pad becomes an explicit constant_pad_nd. ---

bool symmetric(const Ints& pad) { return pad[0] == pad[2] && pad[1] == pad[3]; }

at::Tensor pad_asymmetric(const at::Tensor& x, const Ints& pad, double value, Ints* left_for_op) {
  if (symmetric(pad)) {
    *left_for_op = {pad[0], pad[1]};
    return x;
  }
  *left_for_op = {0, 0};
  return at::constant_pad_nd(x, {pad[1], pad[3], pad[0], pad[2]}, value);
}

std::string script_pad(ScriptBuilder& s, const ir::Node& n, const Ints& pad, const char* fill, Ints* left_for_op) {
  if (symmetric(pad)) {
    *left_for_op = {pad[0], pad[1]};
    return s.in(n, 0);
  }
  *left_for_op = {0, 0};
  const std::string padded = s.temp("p");
  s.line(fmt::format("{} = torch.constant_pad_nd({}, [{}, {}, {}, {}], {})", padded, s.in(n, 0), pad[1], pad[3], pad[0],
                     pad[2], fill));
  return padded;
}

// --- fake_quant: the integer range and per-tensor/per-channel form, shared by run and emit ---

struct FakeQuantForm {
  int64_t qmin = 0, qmax = 0;
  bool per_tensor = true;
  int64_t axis = 0;  // normalised, per-channel only
};

FakeQuantForm fake_quant_form(const ir::Node& n) {
  const auto dtype = ir::dtype_from_name(n.attr_string("dtype")).value_or(ir::DType::kI8);
  FakeQuantForm f;
  f.qmin = ir::traits(dtype).min_value;
  f.qmax = ir::traits(dtype).max_value;
  if (n.attr_int("qmin") != 0 || n.attr_int("qmax") != 0) {
    f.qmin = n.attr_int("qmin");
    f.qmax = n.attr_int("qmax");
  }
  if (n.attr_int("group_size") > 0) {
    throw Error(unsupported("fake_quant '{}': per-group fake quantization has no ATen or TorchScript form yet", n.name()));
  }
  f.per_tensor = n.attr_floats("scale").size() == 1 && n.attr_int("axis") == -1;
  f.axis = n.attr_int("axis");
  if (f.axis < 0) f.axis += static_cast<int64_t>(n.input(0)->shape().size());
  return f;
}

int64_t zero_point(const ir::Node& n, size_t i) {
  const auto& zps = n.attr_ints("zero_point");
  return i < zps.size() ? zps[i] : 0;
}

at::Tensor run_fake_quant(const ir::Node& n, const at::Tensor& x) {
  const FakeQuantForm f = fake_quant_form(n);
  const auto& scales = n.attr_floats("scale");
  if (f.per_tensor) return at::fake_quantize_per_tensor_affine(x, scales[0], zero_point(n, 0), f.qmin, f.qmax);
  std::vector<float> s(scales.begin(), scales.end());
  std::vector<int32_t> z(scales.size());
  for (size_t i = 0; i < z.size(); ++i) z[i] = static_cast<int32_t>(zero_point(n, i));
  return at::fake_quantize_per_channel_affine(x, at::tensor(s).to(x.device()), at::tensor(z).to(x.device()), f.axis,
                                              f.qmin, f.qmax);
}

Status emit_fake_quant(ScriptBuilder& s, const ir::Node& n) {
  const FakeQuantForm f = fake_quant_form(n);
  const auto& scales = n.attr_floats("scale");
  if (f.per_tensor) {
    s.line(fmt::format("{} = torch.fake_quantize_per_tensor_affine({}, {}, {}, {}, {})", s.out(n), s.in(n, 0),
                       py_float(scales[0]), zero_point(n, 0), f.qmin, f.qmax));
    return Status::ok();
  }
  std::vector<std::string> sv, zv;
  for (size_t i = 0; i < scales.size(); ++i) {
    sv.push_back(py_float(static_cast<float>(scales[i])));
    zv.push_back(std::to_string(zero_point(n, i)));
  }
  // No dtype= keyword: Module::define resolves torch.int32 as a builtin, not
  // a value. A list of floats is float32 (the default dtype), .int() is int32.
  s.line(fmt::format("{} = torch.fake_quantize_per_channel_affine({}, torch.tensor([{}]), "
                     "torch.tensor([{}]).int(), {}, {}, {})",
                     s.out(n), s.in(n, 0), fmt::join(sv, ", "), fmt::join(zv, ", "), f.axis, f.qmin, f.qmax));
  return Status::ok();
}

// --- scaled_dot_product_attention, written out (TorchScript of LibTorch 1.13 has no fused op) ---

at::Tensor run_attention(const ir::Node& node, const TorchOutputs& in) {
  const at::Tensor& q = in[0];
  const at::Tensor& k = in[1];
  double scale = node.attr_float("scale");
  if (scale == 0.0) scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  at::Tensor scores = at::matmul(q, k.transpose(-2, -1)) * scale;
  if (in.size() > 3) {
    scores = in[3].scalar_type() == at::kBool
                 ? scores.masked_fill(in[3].logical_not(), -std::numeric_limits<float>::infinity())
                 : scores + in[3];
  }
  if (node.attr_int("is_causal") != 0) {
    at::Tensor causal =
        at::ones({q.size(-2), k.size(-2)}, at::TensorOptions().dtype(at::kBool).device(q.device())).triu(1);
    scores = scores.masked_fill(causal, -std::numeric_limits<float>::infinity());
  }
  return at::matmul(at::softmax(scores, -1), in[2]);
}

Status emit_attention(ScriptBuilder& s, const ir::Node& n) {
  const double scale = n.attr_float("scale");
  const std::string a = s.temp("a");
  if (scale == 0.0) {
    s.line(fmt::format("{} = torch.matmul({}, {}.transpose(-2, -1)) / (float({}.size(-1)) ** 0.5)", a, s.in(n, 0),
                       s.in(n, 1), s.in(n, 0)));
  } else {
    s.line(fmt::format("{} = torch.matmul({}, {}.transpose(-2, -1)) * {}", a, s.in(n, 0), s.in(n, 1), py_float(scale)));
  }
  if (n.num_inputs() > 3) {
    if (n.input(3)->dtype() == ir::DType::kBool) {
      s.line(fmt::format("{} = {}.masked_fill({}.logical_not(), float('-inf'))", a, a, s.in(n, 3)));
    } else {
      s.line(fmt::format("{} = {} + {}", a, a, s.in(n, 3)));
    }
  }
  if (n.attr_int("is_causal")) {
    // The mask is built like the scores (batched triu), so it needs no sizes or device.
    s.line(fmt::format("{} = {}.masked_fill(torch.ones_like({}).triu(1) > 0, float('-inf'))", a, a, a));
  }
  s.line(fmt::format("{} = torch.matmul(torch.softmax({}, -1), {})", s.out(n), a, s.in(n, 2)));
  return Status::ok();
}

Ints layer_norm_shape(const ir::Node& n) {
  const auto& shape = n.input(0)->shape();
  return Ints(shape.end() - n.attr_int("normalized_ndim"), shape.end());
}

// The negative dims a trailing norm reduces over: [-k, ..., -1].
Ints trailing_dims(const ir::Node& n) {
  Ints dims;
  for (int64_t d = -n.attr_int("normalized_ndim"); d < 0; ++d) dims.push_back(d);
  return dims;
}

// --- Row builders for the ops that are one ATen call ---

using AtenUnary = at::Tensor (*)(const at::Tensor&);

// An op with one tensor input and no attributes, the same name in aten and TorchScript.
TorchLowering unary_row(K kind, AtenUnary fn) {
  const std::string name(ir::op_name(kind));
  TorchLowering row;
  row.imports = {{"aten::" + name, aten_import::unary(kind)}};
  row.run = [fn](const ir::Node&, const TorchOutputs& in, const TorchRunContext&) { return TorchOutputs{fn(in[0])}; };
  row.emit = [name](ScriptBuilder& s, const ir::Node& n) {
    s.line(fmt::format("{} = torch.{}({})", s.out(n), name, s.in(n, 0)));
    return Status::ok();
  };
  return row;
}

TorchLowering binary_row(K kind, at::Tensor (*fn)(const at::Tensor&, const at::Tensor&), const char* symbol) {
  TorchLowering row;
  row.imports = {{"aten::" + std::string(ir::op_name(kind)), aten_import::binary(kind)}};
  row.run = [fn](const ir::Node&, const TorchOutputs& in, const TorchRunContext&) {
    return TorchOutputs{fn(in[0], in[1])};
  };
  row.emit = [symbol](ScriptBuilder& s, const ir::Node& n) {
    s.line(fmt::format("{} = {} {} {}", s.out(n), s.in(n, 0), symbol, s.in(n, 1)));
    return Status::ok();
  };
  return row;
}

TorchLowering integer_row() {
  TorchLowering row;
  row.not_supported_reason =
      "real integer ops are not trainable and have no TorchScript form; training and TorchScript export use the "
      "fake-quant graph (quant.ptq with convert: fake_quant)";
  return row;
}

at::Tensor optional_input(const TorchOutputs& in, size_t i) { return in.size() > i ? in[i] : at::Tensor(); }

std::array<TorchLowering, ir::kNumOpKinds> build_table() {
  std::array<TorchLowering, ir::kNumOpKinds> t;
  auto row = [&t](K kind) -> TorchLowering& { return t[static_cast<size_t>(kind)]; };

  row(K::conv2d) = {
      {{"aten::_convolution", aten_import::convolution}, {"aten::conv2d", aten_import::conv2d}},
      [](const ir::Node& n, const TorchOutputs& in, const TorchRunContext&) {
        Ints pad;
        at::Tensor x = pad_asymmetric(in[0], n.attr_ints("padding"), 0.0, &pad);
        return TorchOutputs{at::conv2d(x, in[1], optional_input(in, 2), n.attr_ints("stride"), pad,
                                       n.attr_ints("dilation"), n.attr_int("groups"))};
      },
      [](ScriptBuilder& s, const ir::Node& n) {
        Ints pad;
        const std::string x = script_pad(s, n, n.attr_ints("padding"), "0.0", &pad);
        s.line(fmt::format("{} = torch.conv2d({}, {}, {}, {}, {}, {}, {})", s.out(n), x, s.in(n, 1), s.opt(n, 2),
                           py_ints(n.attr_ints("stride")), py_ints(pad), py_ints(n.attr_ints("dilation")),
                           n.attr_int("groups")));
        return Status::ok();
      },
      {}};
  row(K::linear) = {
      {{"aten::linear", aten_import::linear}},
      [](const ir::Node&, const TorchOutputs& in, const TorchRunContext&) {
        return TorchOutputs{at::linear(in[0], in[1], optional_input(in, 2))};
      },
      [](ScriptBuilder& s, const ir::Node& n) {
        s.line(fmt::format("{} = torch.linear({}, {}, {})", s.out(n), s.in(n, 0), s.in(n, 1), s.opt(n, 2)));
        return Status::ok();
      },
      {}};
  row(K::matmul) = {
      {{"aten::matmul", aten_import::matmul}, {"aten::mm", aten_import::matmul}, {"aten::bmm", aten_import::matmul}},
      [](const ir::Node&, const TorchOutputs& in, const TorchRunContext&) {
        return TorchOutputs{at::matmul(in[0], in[1])};
      },
      [](ScriptBuilder& s, const ir::Node& n) {
        s.line(fmt::format("{} = torch.matmul({}, {})", s.out(n), s.in(n, 0), s.in(n, 1)));
        return Status::ok();
      },
      {}};
  for (K kind : {K::qconv2d, K::qlinear, K::qmatmul, K::qadd, K::quantize, K::dequantize}) row(kind) = integer_row();

  row(K::batch_norm) = {
      {{"aten::batch_norm", aten_import::batch_norm}},
      [](const ir::Node& n, const TorchOutputs& in, const TorchRunContext& ctx) {
        // Running statistics are updated in place in training mode, like nn.BatchNorm.
        return TorchOutputs{at::batch_norm(in[0], in[1], in[2], in[3], in[4], ctx.training, ctx.batch_norm_momentum,
                                           n.attr_float("eps"), /*cudnn_enabled=*/false)};
      },
      [](ScriptBuilder& s, const ir::Node& n) {
        s.line(fmt::format("{} = torch.batch_norm({}, {}, {}, {}, {}, False, 0.1, {}, False)", s.out(n), s.in(n, 0),
                           s.in(n, 1), s.in(n, 2), s.in(n, 3), s.in(n, 4), py_float(n.attr_float("eps"))));
        return Status::ok();
      },
      {}};
  row(K::layer_norm) = {
      {{"aten::layer_norm", aten_import::layer_norm}},
      [](const ir::Node& n, const TorchOutputs& in, const TorchRunContext&) {
        return TorchOutputs{at::layer_norm(in[0], layer_norm_shape(n), optional_input(in, 1), optional_input(in, 2),
                                           n.attr_float("eps"))};
      },
      [](ScriptBuilder& s, const ir::Node& n) {
        s.line(fmt::format("{} = torch.layer_norm({}, {}, {}, {}, {}, False)", s.out(n), s.in(n, 0),
                           py_ints(layer_norm_shape(n)), s.opt(n, 1), s.opt(n, 2), py_float(n.attr_float("eps"))));
        return Status::ok();
      },
      {}};
  // No aten op imports as rms_norm: LibTorch 1.13 has no aten::rms_norm
  // (PyTorch 2.4 added it) and the importer does not read its decomposition
  // (pow, mean, rsqrt) yet; graphs get rms_norm from the IR API.
  row(K::rms_norm) = {
      {},
      [](const ir::Node& n, const TorchOutputs& in, const TorchRunContext&) {
        const at::Tensor mean_square = in[0].pow(2).mean(trailing_dims(n), /*keepdim=*/true);
        at::Tensor y = in[0] * at::rsqrt(mean_square + n.attr_float("eps"));
        return TorchOutputs{in.size() > 1 ? y * in[1] : y};
      },
      [](ScriptBuilder& s, const ir::Node& n) {
        s.line(fmt::format("{} = {} * torch.rsqrt({}.pow(2).mean({}, keepdim=True) + {})", s.out(n), s.in(n, 0),
                           s.in(n, 0), py_ints(trailing_dims(n)), py_float(n.attr_float("eps"))));
        if (n.num_inputs() > 1) s.line(fmt::format("{} = {} * {}", s.out(n), s.out(n), s.in(n, 1)));
        return Status::ok();
      },
      {}};

  row(K::relu) = unary_row(K::relu, at::relu);
  row(K::silu) = unary_row(K::silu, at::silu);
  row(K::sigmoid) = unary_row(K::sigmoid, at::sigmoid);
  row(K::tanh) = unary_row(K::tanh, at::tanh);
  row(K::hardswish) = unary_row(K::hardswish, at::hardswish);
  row(K::hardsigmoid) = unary_row(K::hardsigmoid, at::hardsigmoid);
  row(K::relu6) = {
      {{"aten::relu6", aten_import::unary(K::relu6)}},
      [](const ir::Node&, const TorchOutputs& in, const TorchRunContext&) {
        return TorchOutputs{at::hardtanh(in[0], 0.0, 6.0)};
      },
      [](ScriptBuilder& s, const ir::Node& n) {
        s.line(fmt::format("{} = torch.hardtanh({}, 0.0, 6.0)", s.out(n), s.in(n, 0)));
        return Status::ok();
      },
      {}};
  row(K::gelu) = {
      {{"aten::gelu", aten_import::gelu}},
      [](const ir::Node& n, const TorchOutputs& in, const TorchRunContext&) {
        return TorchOutputs{at::gelu(in[0], n.attr_string("approximate"))};
      },
      [](ScriptBuilder& s, const ir::Node& n) {
        s.line(fmt::format("{} = torch.gelu({}, approximate='{}')", s.out(n), s.in(n, 0), n.attr_string("approximate")));
        return Status::ok();
      },
      {}};
  row(K::clamp) = {
      {{"aten::clamp", aten_import::clamp}, {"aten::hardtanh", aten_import::hardtanh}},
      [](const ir::Node& n, const TorchOutputs& in, const TorchRunContext&) {
        return TorchOutputs{at::clamp(in[0], n.attr_float("min"), n.attr_float("max"))};
      },
      [](ScriptBuilder& s, const ir::Node& n) {
        s.line(fmt::format("{} = torch.clamp({}, {}, {})", s.out(n), s.in(n, 0), py_float(n.attr_float("min")),
                           py_float(n.attr_float("max"))));
        return Status::ok();
      },
      {}};

  row(K::add) = binary_row(
      K::add, [](const at::Tensor& a, const at::Tensor& b) { return a + b; }, "+");
  row(K::sub) = binary_row(
      K::sub, [](const at::Tensor& a, const at::Tensor& b) { return a - b; }, "-");
  row(K::sub).imports.emplace_back("aten::rsub", aten_import::rsub);
  row(K::mul) = binary_row(
      K::mul, [](const at::Tensor& a, const at::Tensor& b) { return a * b; }, "*");
  row(K::div) = binary_row(
      K::div, [](const at::Tensor& a, const at::Tensor& b) { return a / b; }, "/");

  row(K::concat) = {
      {{"aten::cat", aten_import::cat}, {"aten::concat", aten_import::cat}},
      [](const ir::Node& n, const TorchOutputs& in, const TorchRunContext&) {
        return TorchOutputs{at::cat(in, n.attr_int("axis"))};
      },
      [](ScriptBuilder& s, const ir::Node& n) {
        std::vector<std::string> parts;
        for (size_t i = 0; i < n.num_inputs(); ++i) parts.push_back(s.in(n, i));
        s.line(fmt::format("{} = torch.cat([{}], {})", s.out(n), fmt::join(parts, ", "), n.attr_int("axis")));
        return Status::ok();
      },
      {}};
  row(K::split) = {
      {{"aten::split", aten_import::split}, {"aten::split_with_sizes", aten_import::split},
       {"aten::chunk", aten_import::chunk}},
      [](const ir::Node& n, const TorchOutputs& in, const TorchRunContext&) {
        auto parts = at::split_with_sizes(in[0], n.attr_ints("sizes"), n.attr_int("axis"));
        return TorchOutputs(parts.begin(), parts.end());
      },
      [](ScriptBuilder& s, const ir::Node& n) {
        const std::string list = s.temp("s");
        s.line(fmt::format("{} = torch.split({}, {}, {})", list, s.in(n, 0), py_ints(n.attr_ints("sizes")),
                           n.attr_int("axis")));
        for (size_t i = 0; i < n.num_outputs(); ++i) s.line(fmt::format("{} = {}[{}]", s.out(n, i), list, i));
        return Status::ok();
      },
      {}};
  row(K::slice) = {
      {{"aten::slice", aten_import::slice}},
      [](const ir::Node& n, const TorchOutputs& in, const TorchRunContext&) {
        return TorchOutputs{
            at::slice(in[0], n.attr_int("axis"), n.attr_int("start"), n.attr_int("end"), n.attr_int("step"))};
      },
      [](ScriptBuilder& s, const ir::Node& n) {
        const int64_t rank = static_cast<int64_t>(n.input(0)->shape().size());
        int64_t axis = n.attr_int("axis");
        if (axis < 0) axis += rank;
        std::vector<std::string> index(static_cast<size_t>(rank), ":");
        const int64_t end = n.attr_int("end");
        index[static_cast<size_t>(axis)] = fmt::format(
            "{}:{}:{}", n.attr_int("start"), end >= INT64_MAX / 2 ? std::string() : std::to_string(end), n.attr_int("step"));
        s.line(fmt::format("{} = {}[{}]", s.out(n), s.in(n, 0), fmt::join(index, ", ")));
        return Status::ok();
      },
      {}};
  row(K::reshape) = {
      {{"aten::view", aten_import::reshape}, {"aten::reshape", aten_import::reshape},
       {"aten::unsqueeze", aten_import::unsqueeze}, {"aten::squeeze", aten_import::squeeze}},
      [](const ir::Node& n, const TorchOutputs& in, const TorchRunContext&) {
        return TorchOutputs{at::reshape(in[0], n.attr_ints("shape"))};
      },
      [](ScriptBuilder& s, const ir::Node& n) {
        s.line(fmt::format("{} = torch.reshape({}, {})", s.out(n), s.in(n, 0), py_ints(n.attr_ints("shape"))));
        return Status::ok();
      },
      {}};
  row(K::flatten) = {
      {{"aten::flatten", aten_import::flatten}},
      [](const ir::Node& n, const TorchOutputs& in, const TorchRunContext&) {
        return TorchOutputs{at::flatten(in[0], n.attr_int("start_dim"), n.attr_int("end_dim"))};
      },
      [](ScriptBuilder& s, const ir::Node& n) {
        s.line(fmt::format("{} = torch.flatten({}, {}, {})", s.out(n), s.in(n, 0), n.attr_int("start_dim"),
                           n.attr_int("end_dim")));
        return Status::ok();
      },
      {}};
  row(K::transpose) = {
      {{"aten::transpose", aten_import::transpose}, {"aten::t", aten_import::transpose}},
      [](const ir::Node& n, const TorchOutputs& in, const TorchRunContext&) {
        return TorchOutputs{at::transpose(in[0], n.attr_int("dim0"), n.attr_int("dim1"))};
      },
      [](ScriptBuilder& s, const ir::Node& n) {
        s.line(fmt::format("{} = torch.transpose({}, {}, {})", s.out(n), s.in(n, 0), n.attr_int("dim0"),
                           n.attr_int("dim1")));
        return Status::ok();
      },
      {}};
  row(K::permute) = {
      {{"aten::permute", aten_import::permute}},
      [](const ir::Node& n, const TorchOutputs& in, const TorchRunContext&) {
        return TorchOutputs{in[0].permute(n.attr_ints("perm"))};
      },
      [](ScriptBuilder& s, const ir::Node& n) {
        s.line(fmt::format("{} = {}.permute({})", s.out(n), s.in(n, 0), py_ints(n.attr_ints("perm"))));
        return Status::ok();
      },
      {}};

  row(K::max_pool2d) = {
      {{"aten::max_pool2d", aten_import::max_pool}},
      [](const ir::Node& n, const TorchOutputs& in, const TorchRunContext&) {
        Ints pad;
        at::Tensor x =
            pad_asymmetric(in[0], n.attr_ints("padding"), -std::numeric_limits<double>::infinity(), &pad);
        return TorchOutputs{at::max_pool2d(x, n.attr_ints("kernel"), n.attr_ints("stride"), pad,
                                           n.attr_ints("dilation"), n.attr_int("ceil_mode") != 0)};
      },
      [](ScriptBuilder& s, const ir::Node& n) {
        Ints pad;
        const std::string x = script_pad(s, n, n.attr_ints("padding"), "float('-inf')", &pad);
        s.line(fmt::format("{} = torch.max_pool2d({}, {}, {}, {}, {}, {})", s.out(n), x, py_ints(n.attr_ints("kernel")),
                           py_ints(n.attr_ints("stride")), py_ints(pad), py_ints(n.attr_ints("dilation")),
                           py_bool(n.attr_int("ceil_mode"))));
        return Status::ok();
      },
      {}};
  // Averaging over a padded border counts the pad cells (count_include_pad);
  // an explicit pad would change that count, so asymmetric padding is refused.
  row(K::avg_pool2d) = {
      {{"aten::avg_pool2d", aten_import::avg_pool}},
      [](const ir::Node& n, const TorchOutputs& in, const TorchRunContext&) {
        const Ints& p = n.attr_ints("padding");
        if (!symmetric(p)) throw Error(unsupported("avg_pool2d '{}': asymmetric padding is not trainable", n.name()));
        return TorchOutputs{at::avg_pool2d(in[0], n.attr_ints("kernel"), n.attr_ints("stride"), {p[0], p[1]},
                                           n.attr_int("ceil_mode") != 0, n.attr_int("count_include_pad") != 0)};
      },
      [](ScriptBuilder& s, const ir::Node& n) -> Status {
        const Ints& p = n.attr_ints("padding");
        if (!symmetric(p)) return unsupported("export: avg_pool2d '{}' has asymmetric padding", n.name());
        s.line(fmt::format("{} = torch.avg_pool2d({}, {}, {}, {}, {}, {})", s.out(n), s.in(n, 0),
                           py_ints(n.attr_ints("kernel")), py_ints(n.attr_ints("stride")), py_ints({p[0], p[1]}),
                           py_bool(n.attr_int("ceil_mode")), py_bool(n.attr_int("count_include_pad"))));
        return Status::ok();
      },
      {}};
  row(K::adaptive_avg_pool2d) = {
      {{"aten::adaptive_avg_pool2d", aten_import::adaptive_pool(K::adaptive_avg_pool2d)}},
      [](const ir::Node& n, const TorchOutputs& in, const TorchRunContext&) {
        return TorchOutputs{at::adaptive_avg_pool2d(in[0], n.attr_ints("output_size"))};
      },
      [](ScriptBuilder& s, const ir::Node& n) {
        s.line(fmt::format("{} = torch.adaptive_avg_pool2d({}, {})", s.out(n), s.in(n, 0),
                           py_ints(n.attr_ints("output_size"))));
        return Status::ok();
      },
      {}};
  row(K::adaptive_max_pool2d) = {
      {{"aten::adaptive_max_pool2d", aten_import::adaptive_pool(K::adaptive_max_pool2d)}},
      [](const ir::Node& n, const TorchOutputs& in, const TorchRunContext&) {
        return TorchOutputs{std::get<0>(at::adaptive_max_pool2d(in[0], n.attr_ints("output_size")))};
      },
      [](ScriptBuilder& s, const ir::Node& n) {
        s.line(fmt::format("{} = torch.adaptive_max_pool2d({}, {})[0]", s.out(n), s.in(n, 0),
                           py_ints(n.attr_ints("output_size"))));
        return Status::ok();
      },
      {}};
  row(K::reduce_mean) = {
      {{"aten::mean", aten_import::mean}},
      [](const ir::Node& n, const TorchOutputs& in, const TorchRunContext&) {
        return TorchOutputs{at::mean(in[0], n.attr_ints("axes"), n.attr_int("keepdim") != 0)};
      },
      [](ScriptBuilder& s, const ir::Node& n) {
        s.line(fmt::format("{} = torch.mean({}, {}, {})", s.out(n), s.in(n, 0), py_ints(n.attr_ints("axes")),
                           py_bool(n.attr_int("keepdim"))));
        return Status::ok();
      },
      {}};
  row(K::softmax) = {
      {{"aten::softmax", aten_import::softmax}},
      [](const ir::Node& n, const TorchOutputs& in, const TorchRunContext&) {
        return TorchOutputs{at::softmax(in[0], n.attr_int("axis"))};
      },
      [](ScriptBuilder& s, const ir::Node& n) {
        s.line(fmt::format("{} = torch.softmax({}, {})", s.out(n), s.in(n, 0), n.attr_int("axis")));
        return Status::ok();
      },
      {}};
  // The IR's embedding takes (indices, table); aten's takes (table, indices).
  row(K::embedding) = {
      {{"aten::embedding", aten_import::embedding}},
      [](const ir::Node&, const TorchOutputs& in, const TorchRunContext&) {
        return TorchOutputs{at::embedding(in[1], in[0])};
      },
      [](ScriptBuilder& s, const ir::Node& n) {
        s.line(fmt::format("{} = torch.embedding({}, {})", s.out(n), s.in(n, 1), s.in(n, 0)));
        return Status::ok();
      },
      {}};
  row(K::scaled_dot_product_attention) = {
      {{"aten::scaled_dot_product_attention", aten_import::attention}},
      [](const ir::Node& n, const TorchOutputs& in, const TorchRunContext&) {
        return TorchOutputs{run_attention(n, in)};
      },
      emit_attention,
      {}};
  row(K::fake_quant) = {
      {},  // TorchScript models carry no fake_quant of their own that op set v1 reads
      [](const ir::Node& n, const TorchOutputs& in, const TorchRunContext&) {
        return TorchOutputs{run_fake_quant(n, in[0])};
      },
      emit_fake_quant,
      {}};
  return t;
}

const std::array<TorchLowering, ir::kNumOpKinds>& table() {
  static const std::array<TorchLowering, ir::kNumOpKinds> rows = build_table();
  return rows;
}

}  // namespace

const TorchLowering& torch_lowering(ir::OpKind kind) {
  static const TorchLowering empty;
  const size_t index = static_cast<size_t>(kind);
  return index < ir::kNumOpKinds ? table()[index] : empty;
}

Expected<TorchOutputs> run_torch_node(const ir::Node& node, const TorchOutputs& inputs, const TorchRunContext& context) {
  const TorchLowering& row = torch_lowering(node.kind());
  if (!row.run) {
    return unsupported("node '{}' ({}): op is not supported by the trainable executor{}{}", node.name(), node.op(),
                       row.not_supported_reason.empty() ? "" : ": ", row.not_supported_reason);
  }
  try {
    return row.run(node, inputs, context);
  } catch (const Error& e) {
    return e.status();
  } catch (const c10::Error& e) {
    return make_error(StatusCode::kInvalidArgument, "node '{}' ({}): {}", node.name(), node.op(),
                      e.what_without_backtrace());
  }
}

Status emit_torchscript(ScriptBuilder& script, const ir::Node& node) {
  const TorchLowering& row = torch_lowering(node.kind());
  if (!row.emit) {
    return unsupported("export: node '{}' ({}) has no TorchScript equivalent{}{}", node.name(), node.op(),
                       row.not_supported_reason.empty() ? "" : ": ", row.not_supported_reason);
  }
  try {
    return row.emit(script, node);
  } catch (const Error& e) {
    return e.status();
  }
}

const std::unordered_map<std::string, OpHandler>& aten_handlers() {
  static const std::unordered_map<std::string, OpHandler> handlers = [] {
    std::unordered_map<std::string, OpHandler> t;
    auto add = [&t](const std::string& name, const OpHandler& handler) {
      const bool inserted = t.emplace(name, handler).second;
      COMPRESS_INTERNAL_ASSERT(inserted, "aten op {} is imported by two rows", name);
    };
    for (const TorchLowering& row : table()) {
      for (const auto& [name, handler] : row.imports) add(name, handler);
    }
    for (const auto& [name, handler] : aten_decompositions()) add(name, handler);
    return t;
  }();
  return handlers;
}

}  // namespace compress::torch
