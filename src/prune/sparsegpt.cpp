// SparseGPT one-shot pruning with OBS weight updates: Note [SparseGPT].
#include <Eigen/Cholesky>
#include <Eigen/Dense>
#include <algorithm>
#include <cmath>

#include "compress/prune/criteria.h"
#include "compress/prune/masks.h"
#include "compress/prune/schedule.h"

namespace compress::prune {
namespace {

using RowMatrixD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// U with (H + damp*I)^-1 = U^T U, the upper Cholesky factor of the inverse.
// With J the order-reversing permutation, chol(J H J) = M M^T gives
// H = A A^T for the upper triangular A = J M J, so H^-1 = A^-T A^-1 and
// U = A^-1: one factorization and one triangular inverse instead of
// inverting H and factoring the inverse (a third of the work at 1568 columns).
// H is positive semi-definite in exact arithmetic; rounding (or a rank-
// deficient X with few samples) can make the damped matrix fail the
// factorization, so the damping grows tenfold until it succeeds.
Expected<Eigen::MatrixXd> inverse_cholesky_upper(const Eigen::MatrixXd& h, double damp) {
  const int64_t n = h.rows();
  const double mean_diag = h.diagonal().mean();
  double lambda = damp * (mean_diag > 0.0 ? mean_diag : 1.0);
  Eigen::MatrixXd work(n, n);
  for (int attempt = 0; attempt < 6; ++attempt, lambda *= 10.0) {
    work = h.reverse();  // J H J
    work.diagonal().array() += lambda;
    Eigen::LLT<Eigen::Ref<Eigen::MatrixXd>> llt(work);  // factors in place
    if (llt.info() != Eigen::Success) continue;
    // M^-1 (lower), then U = J M^-1 J (upper).
    Eigen::MatrixXd u = Eigen::MatrixXd::Identity(n, n);
    llt.matrixL().solveInPlace(u);
    u.reverseInPlace();
    if (!u.allFinite()) continue;
    return u;
  }
  return invalid_argument("sparsegpt: the layer Hessian is not positive definite even with damping {:.3g}", lambda);
}

}  // namespace

Status sparsegpt_prune(std::vector<float>& w, int64_t rows, int64_t cols, const double* hessian,
                       const PruneTarget& target, const SparseGptOptions& options) {
  if (rows <= 0 || cols <= 0) return Status::ok();
  if (target.is_nm() && cols % target.m != 0) {
    return invalid_argument("sparsegpt: {} columns are not a multiple of m = {}", cols, target.m);
  }
  RowMatrixD W(rows, cols);
  for (int64_t i = 0; i < rows * cols; ++i) W.data()[i] = static_cast<double>(w[static_cast<size_t>(i)]);
  Eigen::MatrixXd H = Eigen::Map<const Eigen::MatrixXd>(hessian, cols, cols);
  // Weights that are already zero and weights on always-zero inputs are pruned first.
  std::vector<uint8_t> prior(static_cast<size_t>(rows * cols), 0);
  for (int64_t j = 0; j < cols; ++j) {
    const bool dead = H(j, j) == 0.0;
    if (dead) H(j, j) = 1.0;
    for (int64_t r = 0; r < rows; ++r) {
      if (dead || W(r, j) == 0.0) prior[static_cast<size_t>(r * cols + j)] = 1;
    }
  }
  Expected<Eigen::MatrixXd> factored = inverse_cholesky_upper(H, options.damp);
  H = Eigen::MatrixXd();  // not needed any more: free it before the column loop
  if (!factored.has_value()) return factored.status();
  const Eigen::MatrixXd& U = *factored;

  const int64_t total = target.count >= 0 ? target.count : pruned_count(target.ratio, rows * cols);
  int64_t block = std::max<int64_t>(1, options.block_size);
  if (target.is_nm()) block = (block + target.m - 1) / target.m * target.m;  // groups never straddle blocks

  RowMatrixD W1, Err1;
  std::vector<float> scores;
  std::vector<uint8_t> block_prior, mask;
  for (int64_t i1 = 0; i1 < cols; i1 += block) {
    const int64_t i2 = std::min(cols, i1 + block), count = i2 - i1;
    W1 = W.middleCols(i1, count);
    Err1.setZero(rows, count);
    mask.assign(static_cast<size_t>(rows * count), 0);
    if (!target.is_nm()) {
      // OBS saliency w^2 / [H^-1]_jj, with [H^-1]_jj from the Cholesky factor as the paper does.
      scores.resize(static_cast<size_t>(rows * count));
      block_prior.resize(scores.size());
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t j = 0; j < count; ++j) {
          const double d = U(i1 + j, i1 + j);
          scores[static_cast<size_t>(r * count + j)] = static_cast<float>(W1(r, j) * W1(r, j) / (d * d));
          block_prior[static_cast<size_t>(r * count + j)] = prior[static_cast<size_t>(r * cols + i1 + j)];
        }
      }
      const int64_t k = std::llround(static_cast<double>(total) * static_cast<double>(i2) / static_cast<double>(cols)) -
                        std::llround(static_cast<double>(total) * static_cast<double>(i1) / static_cast<double>(cols));
      mask = lowest_k(scores, k, &block_prior);
    }
    for (int64_t i = 0; i < count; ++i) {
      const int64_t col = i1 + i;
      if (target.is_nm() && i % target.m == 0) {
        // Choose this group's m - n by the saliency of the weights as updated so far.
        std::vector<float> group(static_cast<size_t>(target.m));
        std::vector<uint8_t> group_prior(static_cast<size_t>(target.m));
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t j = 0; j < target.m; ++j) {
            const double d = U(col + j, col + j);
            group[static_cast<size_t>(j)] = static_cast<float>(W1(r, i + j) * W1(r, i + j) / (d * d));
            group_prior[static_cast<size_t>(j)] = prior[static_cast<size_t>(r * cols + col + j)];
          }
          const std::vector<uint8_t> pick = lowest_k(group, target.m - target.n, &group_prior);
          for (int64_t j = 0; j < target.m; ++j) mask[static_cast<size_t>(r * count + i + j)] = pick[static_cast<size_t>(j)];
        }
      }
      const double d = U(col, col);
      for (int64_t r = 0; r < rows; ++r) {
        if (mask[static_cast<size_t>(r * count + i)] != 0) {
          Err1(r, i) = W1(r, i) / d;
          W1(r, i) = 0.0;
        }
      }
      // Spread each pruned weight's error over the remaining columns of the block.
      if (i + 1 < count) {
        W1.rightCols(count - i - 1).noalias() -= Err1.col(i) * U.row(col).segment(col + 1, count - i - 1);
      }
    }
    // Pruned entries stay exactly zero: the updates above only touch later columns.
    W.middleCols(i1, count) = W1;
    if (i2 < cols) W.rightCols(cols - i2).noalias() -= Err1 * U.block(i1, i2, count, cols - i2);
  }
  for (int64_t i = 0; i < rows * cols; ++i) w[static_cast<size_t>(i)] = static_cast<float>(W.data()[i]);
  return Status::ok();
}

}  // namespace compress::prune
