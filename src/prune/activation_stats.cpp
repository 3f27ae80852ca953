// Input-activation statistics (column norms, Hessians) of prunable layers: Note [Layer input statistics].
#include "compress/prune/activation_stats.h"

#include <Eigen/Dense>
#include <algorithm>
#include <map>
#include <memory>

#include "compress/eval/activation_probe.h"

namespace compress::prune {
namespace {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Rows of X per accumulation chunk: bounds the im2col buffer (chunk * cols floats).
constexpr int64_t kChunkRows = 2048;

void accumulate(const RowMatrix& x, int64_t group, LayerInputStats& s) {
  const int64_t cols = s.cols;
  double* norms = s.sq_norms.data() + group * cols;
  const Eigen::RowVectorXf sq = x.colwise().squaredNorm();
  for (int64_t j = 0; j < cols; ++j) norms[j] += static_cast<double>(sq[j]);
  if (!s.hessian.empty()) {
    // Lower triangle only (symmetrize() fills the rest once at the end); the
    // f32 chunk product is summed in f64. The scratch is reused across chunks:
    // at 4608 columns (resnet's last convs) it is 85 MB.
    static thread_local Eigen::MatrixXf xtx;
    xtx.setZero(cols, cols);
    xtx.selfadjointView<Eigen::Lower>().rankUpdate(x.transpose());
    Eigen::Map<Eigen::MatrixXd> h(s.hessian.data() + group * cols * cols, cols, cols);
    h.triangularView<Eigen::Lower>() += xtx.cast<double>();
  }
}

void symmetrize(LayerInputStats& s) {
  for (int64_t g = 0; g < s.groups && !s.hessian.empty(); ++g) {
    Eigen::Map<Eigen::MatrixXd> h(s.hessian.data() + g * s.cols * s.cols, s.cols, s.cols);
    h.triangularView<Eigen::StrictlyUpper>() = h.transpose();
  }
}

// Rows of a linear / matmul input [..., K].
void accumulate_rows(const ir::Tensor& x, LayerInputStats& s) {
  const int64_t k = s.cols;
  const int64_t rows = x.numel() / k;
  const float* data = x.data<float>();
  for (int64_t start = 0; start < rows; start += kChunkRows) {
    const int64_t count = std::min(kChunkRows, rows - start);
    RowMatrix chunk = Eigen::Map<const RowMatrix>(data + start * k, count, k);
    accumulate(chunk, 0, s);
  }
  s.rows_seen += rows;
}

// im2col patches of a conv2d input [N, C, H, W], one matrix per group.
void accumulate_patches(const ir::Tensor& x, const ir::Node& conv, const ir::Shape& wshape, LayerInputStats& s) {
  const int64_t n = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3);
  const int64_t groups = s.groups, cg = c / groups, kh = wshape[2], kw = wshape[3];
  const auto& stride = conv.attr_ints("stride");
  const auto& pad = conv.attr_ints("padding");  // top, left, bottom, right
  const auto& dil = conv.attr_ints("dilation");
  const int64_t oh = (h + pad[0] + pad[2] - dil[0] * (kh - 1) - 1) / stride[0] + 1;
  const int64_t ow = (w + pad[1] + pad[3] - dil[1] * (kw - 1) - 1) / stride[1] + 1;
  const int64_t positions = n * oh * ow;
  const float* data = x.data<float>();
  RowMatrix chunk;
  for (int64_t g = 0; g < groups; ++g) {
    for (int64_t start = 0; start < positions; start += kChunkRows) {
      const int64_t count = std::min(kChunkRows, positions - start);
      chunk.resize(count, s.cols);
      for (int64_t r = 0; r < count; ++r) {
        const int64_t p = start + r;
        const int64_t b = p / (oh * ow), oy = (p / ow) % oh, ox = p % ow;
        float* row = chunk.data() + r * s.cols;
        for (int64_t ci = 0; ci < cg; ++ci) {
          const float* plane = data + ((b * c) + g * cg + ci) * h * w;
          for (int64_t ky = 0; ky < kh; ++ky) {
            const int64_t iy = oy * stride[0] - pad[0] + ky * dil[0];
            for (int64_t kx = 0; kx < kw; ++kx) {
              const int64_t ix = ox * stride[1] - pad[1] + kx * dil[1];
              const bool inside = iy >= 0 && iy < h && ix >= 0 && ix < w;
              *row++ = inside ? plane[iy * w + ix] : 0.0f;
            }
          }
        }
      }
      accumulate(chunk, g, s);
    }
  }
  s.rows_seen += positions;
}

}  // namespace

Expected<std::vector<LayerInputStats>> collect_input_stats(const ir::Graph& graph,
                                                           const std::vector<PrunableLayer>& layers,
                                                           const eval::DataSource& data,
                                                           const ActivationStatsOptions& options) {
  std::vector<LayerInputStats> stats(layers.size());
  // Each layer's input, through the activation probe: only what those
  // values need is computed (SparseGPT collects layer by layer, and an
  // early layer should not pay for running the whole network).
  std::vector<std::string> inputs;
  for (size_t i = 0; i < layers.size(); ++i) {
    const PrunableLayer& l = layers[i];
    LayerInputStats& s = stats[i];
    s.groups = l.groups;
    s.cols = l.cols;
    s.sq_norms.assign(static_cast<size_t>(s.groups * s.cols), 0.0);
    if (options.hessian) s.hessian.assign(static_cast<size_t>(s.groups * s.cols * s.cols), 0.0);
    const ir::Value* in = l.node->input(0);
    if (in->dtype() != ir::DType::kF32) {
      return unsupported("activation statistics: input '{}' of '{}' is {}, not f32", in->name(), l.name(),
                         ir::dtype_name(in->dtype()));
    }
    inputs.push_back(in->name());
  }
  eval::ProbeOptions probe;
  probe.samples = options.samples;
  probe.batch = options.batch;
  probe.backend = options.backend;
  probe.title = options.label;
  probe.progress = options.progress;
  COMPRESS_RETURN_IF_ERROR(eval::probe_values(graph, inputs, data, probe, [&](const eval::ProbeBatch& batch) -> Status {
    for (size_t i = 0; i < layers.size(); ++i) {
      COMPRESS_ASSIGN_OR_RETURN(ir::Tensor dense, batch.values[i]->to_dense());
      if (layers[i].node->is(ir::OpKind::conv2d)) {
        if (dense.rank() != 4 || dense.dim(1) != layers[i].groups * layers[i].weight->shape()[1]) {
          return make_error(StatusCode::kInternal, "activation statistics: conv input of '{}' has shape {}",
                            layers[i].name(), ir::shape_to_string(dense.shape()));
        }
        accumulate_patches(dense, *layers[i].node, layers[i].weight->shape(), stats[i]);
      } else {
        if (dense.rank() < 1 || dense.dim(-1) != layers[i].cols) {
          return make_error(StatusCode::kInternal, "activation statistics: input of '{}' has shape {}",
                            layers[i].name(), ir::shape_to_string(dense.shape()));
        }
        accumulate_rows(dense, stats[i]);
      }
    }
    return Status::ok();
  }));
  for (LayerInputStats& s : stats) symmetrize(s);
  return stats;
}

}  // namespace compress::prune
