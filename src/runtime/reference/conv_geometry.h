// Conv geometry from actual shapes plus the im2col shared by conv2d and qconv2d.
#pragma once

#include <cstdint>

#include "kernels.h"

namespace compress::runtime::reference {

struct ConvGeometry {
  int64_t n = 0, c = 0, h = 0, w = 0;  // input NCHW
  int64_t o = 0, kh = 0, kw = 0;       // weight [O, C/groups, kh, kw]
  int64_t oh = 0, ow = 0;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  int64_t dil_h = 1, dil_w = 1;
  int64_t groups = 1;

  int64_t c_per_group() const { return c / groups; }
  int64_t o_per_group() const { return o / groups; }
  int64_t patch() const { return c_per_group() * kh * kw; }  // K of the per-group GEMM
  int64_t pixels() const { return oh * ow; }                 // P of the per-group GEMM
};

// Reads stride/padding/dilation/groups from the node and checks them against
// the actual x [N,C,H,W], weight and optional bias shapes.
Expected<ConvGeometry> conv_geometry(const ir::Node& node, const Tensor& x, const Tensor& weight, const Tensor* bias);

// Fills col [patch, pixels] (row-major) for image n, group g. `load(ci, hi, wi)`
// returns the input element as T; padding positions get `pad_value`.
template <typename T, typename Load>
void im2col(const ConvGeometry& g, int64_t group, T pad_value, Load&& load, T* col) {
  const int64_t pixels = g.pixels();
  int64_t row = 0;
  for (int64_t ci = group * g.c_per_group(); ci < (group + 1) * g.c_per_group(); ++ci) {
    for (int64_t ki = 0; ki < g.kh; ++ki) {
      for (int64_t kj = 0; kj < g.kw; ++kj, ++row) {
        T* dst = col + row * pixels;
        for (int64_t y = 0; y < g.oh; ++y) {
          const int64_t hi = y * g.stride_h - g.pad_top + ki * g.dil_h;
          const bool row_inside = hi >= 0 && hi < g.h;
          for (int64_t x = 0; x < g.ow; ++x) {
            const int64_t wi = x * g.stride_w - g.pad_left + kj * g.dil_w;
            dst[y * g.ow + x] = (row_inside && wi >= 0 && wi < g.w) ? load(ci, hi, wi) : pad_value;
          }
        }
      }
    }
  }
}

}  // namespace compress::runtime::reference
