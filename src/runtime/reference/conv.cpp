// conv2d: im2col per (image, group) and an Eigen GEMM in double.
#include <Eigen/Core>

#include "compress/support/threads.h"
#include "conv_geometry.h"

namespace compress::runtime::reference {

constexpr StatusCode kBad = StatusCode::kInvalidArgument;

Expected<ConvGeometry> conv_geometry(const ir::Node& node, const Tensor& x, const Tensor& weight, const Tensor* bias) {
  COMPRESS_RETURN_IF_ERROR(check_rank(x, 4, "input"));
  COMPRESS_RETURN_IF_ERROR(check_rank(weight, 4, "weight"));
  const auto& stride = node.attr_ints("stride");
  const auto& pad = node.attr_ints("padding");
  const auto& dil = node.attr_ints("dilation");
  COMPRESS_CHECK(stride.size() == 2 && pad.size() == 4 && dil.size() == 2, kBad,
                 "stride {} / dilation {} need 2 values and padding {} needs 4 (top, left, bottom, right)",
                 ir::shape_to_string(stride), ir::shape_to_string(dil), ir::shape_to_string(pad));
  ConvGeometry g;
  g.n = x.dim(0), g.c = x.dim(1), g.h = x.dim(2), g.w = x.dim(3);
  g.o = weight.dim(0), g.kh = weight.dim(2), g.kw = weight.dim(3);
  g.groups = node.attr_int("groups");
  g.stride_h = stride[0], g.stride_w = stride[1];
  g.pad_top = pad[0], g.pad_left = pad[1], g.pad_bottom = pad[2], g.pad_right = pad[3];
  g.dil_h = dil[0], g.dil_w = dil[1];
  COMPRESS_CHECK(g.groups >= 1 && g.c % g.groups == 0 && g.o % g.groups == 0 && weight.dim(1) * g.groups == g.c, kBad,
                 "input {} does not match weight {} with groups={} (weight expects {} input channels)",
                 ir::shape_to_string(x.shape()), ir::shape_to_string(weight.shape()), g.groups,
                 weight.dim(1) * g.groups);
  if (bias != nullptr) {
    COMPRESS_CHECK(bias->shape() == Shape{g.o}, kBad, "bias shape {} must be [{}]", ir::shape_to_string(bias->shape()),
                   g.o);
  }
  COMPRESS_ASSIGN_OR_RETURN(g.oh, window_output_size(g.h, g.kh, g.stride_h, g.pad_top, g.pad_bottom, g.dil_h, false));
  COMPRESS_ASSIGN_OR_RETURN(g.ow, window_output_size(g.w, g.kw, g.stride_w, g.pad_left, g.pad_right, g.dil_w, false));
  return g;
}

Expected<Tensors> conv2d(const ir::Node& node, const Tensors& in) {
  const Tensor& x = in[0];
  const Tensor& weight = in[1];
  const Tensor* bias = in.size() > 2 ? &in[2] : nullptr;
  COMPRESS_RETURN_IF_ERROR(check_f32(x, "input"));
  COMPRESS_RETURN_IF_ERROR(check_f32(weight, "weight"));
  if (bias != nullptr) COMPRESS_RETURN_IF_ERROR(check_f32(*bias, "bias"));
  COMPRESS_ASSIGN_OR_RETURN(ConvGeometry g, conv_geometry(node, x, weight, bias));
  COMPRESS_ASSIGN_OR_RETURN(Tensor out, new_tensor(DType::kF32, Shape{g.n, g.o, g.oh, g.ow}));

  using RowMajor = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const int64_t k = g.patch(), p = g.pixels(), og = g.o_per_group();
  // Weight [O, C/groups, kh, kw] is already the row-major [O, K] matrix.
  const RowMajor w = Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(
                         weight.data<float>(), g.o, k)
                         .cast<double>();
  const float* xd = x.data<float>();
  const float* bd = bias ? bias->data<float>() : nullptr;
  float* yd = out.data<float>();

  parallel_for(static_cast<long>(g.n * g.groups), [&](long begin, long end) {
    RowMajor col(k, p);
    RowMajor acc(og, p);
    for (long unit = begin; unit < end; ++unit) {
      const int64_t n = unit / g.groups, group = unit % g.groups;
      const float* image = xd + n * g.c * g.h * g.w;
      im2col<double>(
          g, group, 0.0,
          [&](int64_t ci, int64_t hi, int64_t wi) { return static_cast<double>(image[(ci * g.h + hi) * g.w + wi]); },
          col.data());
      acc.noalias() = w.middleRows(group * og, og) * col;
      for (int64_t o = 0; o < og; ++o) {
        const int64_t oc = group * og + o;
        const double b = bd ? static_cast<double>(bd[oc]) : 0.0;
        float* dst = yd + (n * g.o + oc) * p;
        for (int64_t i = 0; i < p; ++i) dst[i] = static_cast<float>(acc(o, i) + b);
      }
    }
  });
  return Tensors{std::move(out)};
}

}  // namespace compress::runtime::reference
