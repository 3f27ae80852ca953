// Truncated SVD, spatial SVD and Tucker-2 (HOSVD + HOOI) of layer weights, in f64 with Eigen.
#include "compress/lowrank/decompose.h"

#include <cblas.h>

#include <Eigen/Cholesky>
#include <Eigen/Dense>
#include <Eigen/Eigenvalues>
#include <Eigen/SVD>
#include <algorithm>
#include <cmath>
#include <limits>

namespace compress::lowrank {
namespace {

using MatD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

Status check_weight(const std::vector<float>& w, int64_t expected, const char* what) {
  if (static_cast<int64_t>(w.size()) != expected || expected <= 0) {
    return invalid_argument("lowrank: {} has {} values, expected {}", what, w.size(), expected);
  }
  for (size_t i = 0; i < w.size(); ++i) {
    if (!std::isfinite(w[i])) return invalid_argument("lowrank: {} has a non-finite value at flat index {}", what, i);
  }
  return Status::ok();
}

MatD to_matrix(const std::vector<float>& w, int64_t rows, int64_t cols) {
  MatD m(rows, cols);
  for (int64_t i = 0; i < rows * cols; ++i) m.data()[i] = w[static_cast<size_t>(i)];
  return m;
}

// op(a) * op(b) through CBLAS, which resolves to OpenBLAS at run time
// (libblas.so.3, Debian's alternative; multithreaded and vectorized for the
// CPU it runs on, where Eigen's own kernels are compiled for baseline
// x86-64): the Tucker sweeps are GEMMs on the unfoldings.
MatD product(const MatD& a, bool transpose_a, const MatD& b, bool transpose_b) {
  const int64_t m = transpose_a ? a.cols() : a.rows(), k = transpose_a ? a.rows() : a.cols();
  const int64_t n = transpose_b ? b.rows() : b.cols();
  MatD c(m, n);
  if (m == 0 || n == 0) return c;
  cblas_dgemm(CblasRowMajor, transpose_a ? CblasTrans : CblasNoTrans, transpose_b ? CblasTrans : CblasNoTrans,
              static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), 1.0, a.data(), static_cast<int>(a.cols()),
              b.data(), static_cast<int>(b.cols()), 0.0, c.data(), static_cast<int>(n));
  return c;
}

// ||a - b|| / ||a|| (0 when a is zero).
double relative(const MatD& a, const MatD& b) {
  const double norm = a.norm();
  return norm == 0.0 ? 0.0 : (a - b).norm() / norm;
}

// The leading `rank` left singular vectors of a, as columns. For a wide
// matrix (Tucker unfoldings: [o, c*kh*kw]) they are the leading
// eigenvectors of the small Gram matrix a a^T, which costs one GEMM and an
// m x m eigensolve instead of an SVD of the whole matrix. f64 keeps the
// squared spectrum accurate enough for the leading vectors.
MatD leading_left(const MatD& a, int64_t rank) {
  if (a.cols() > 2 * a.rows()) {
    const MatD gram = product(a, false, a, true);
    Eigen::SelfAdjointEigenSolver<MatD> eig(gram);
    // Eigenvalues ascending: the leading vectors are the last columns, reversed.
    return eig.eigenvectors().rightCols(rank).rowwise().reverse();
  }
  Eigen::BDCSVD<MatD> svd(a, Eigen::ComputeThinU);
  return svd.matrixU().leftCols(rank);
}

// The mode-1 unfolding [c, a * K] of a tensor held as [a, c * K]. It swaps
// the first two modes, so it also takes a mode-1 unfolding back to mode 0.
MatD unfold1(const MatD& t, int64_t c, int64_t k) {
  const int64_t a = t.rows();
  MatD out(c, a * k);
  for (int64_t i = 0; i < a; ++i) {
    for (int64_t ci = 0; ci < c; ++ci) {
      for (int64_t kk = 0; kk < k; ++kk) out(ci, i * k + kk) = t(i, ci * k + kk);
    }
  }
  return out;
}

std::vector<double> values_of(const Eigen::VectorXd& v) { return std::vector<double>(v.data(), v.data() + v.size()); }

}  // namespace

Expected<std::vector<double>> singular_values(const std::vector<float>& w, int64_t m, int64_t n) {
  COMPRESS_RETURN_IF_ERROR(check_weight(w, m * n, "the weight"));
  Eigen::BDCSVD<MatD> svd(to_matrix(w, m, n));
  return values_of(svd.singularValues());
}

Expected<SvdFactors> truncated_svd(const std::vector<float>& w, int64_t m, int64_t n, int64_t rank) {
  COMPRESS_RETURN_IF_ERROR(check_weight(w, m * n, "the weight"));
  const int64_t full = std::min(m, n);
  if (rank < 1 || rank > full)
    return invalid_argument("lowrank: rank {} outside [1, {}] for a {}x{} matrix", rank, full, m, n);
  const MatD a = to_matrix(w, m, n);
  Eigen::BDCSVD<MatD> svd(a, Eigen::ComputeThinU | Eigen::ComputeThinV);
  const Eigen::VectorXd root = svd.singularValues().head(rank).cwiseSqrt();
  const MatD first = root.asDiagonal() * svd.matrixV().leftCols(rank).transpose();
  const MatD second = svd.matrixU().leftCols(rank) * root.asDiagonal();
  SvdFactors f;
  f.rank = rank;
  f.first.assign(static_cast<size_t>(rank * n), 0.0f);
  f.second.assign(static_cast<size_t>(m * rank), 0.0f);
  for (int64_t i = 0; i < rank * n; ++i) f.first[static_cast<size_t>(i)] = static_cast<float>(first.data()[i]);
  for (int64_t i = 0; i < m * rank; ++i) f.second[static_cast<size_t>(i)] = static_cast<float>(second.data()[i]);
  f.relative_error = relative(a, to_matrix(f.second, m, rank) * to_matrix(f.first, rank, n));
  return f;
}

Expected<InputTransform> whitening_transform(const std::vector<double>& gram, int64_t n) {
  if (static_cast<int64_t>(gram.size()) != n * n || n <= 0) {
    return invalid_argument("lowrank: the input Gram matrix has {} values, expected {}", gram.size(), n * n);
  }
  MatD h(n, n);
  for (int64_t i = 0; i < n * n; ++i) h.data()[i] = gram[static_cast<size_t>(i)];
  double mean_diag = h.diagonal().mean();
  if (!std::isfinite(mean_diag) || mean_diag <= 0.0) {
    return invalid_argument("lowrank: the inputs are all zero or not finite (Gram diagonal mean {})", mean_diag);
  }
  Eigen::LLT<MatD> llt(h);
  if (llt.info() != Eigen::Success) {
    h.diagonal().array() += 1e-6 * mean_diag;
    llt.compute(h);
  }
  if (llt.info() != Eigen::Success) {
    return invalid_argument(
        "lowrank: X^T X of the calibration inputs is not positive definite, even with a jitter of "
        "1e-6 x its mean diagonal");
  }
  InputTransform t;
  t.n = n;
  const MatD l = llt.matrixL();
  t.lower.assign(l.data(), l.data() + n * n);
  return t;
}

InputTransform scaling_transform(const std::vector<double>& sq_norms, int64_t rows, double alpha) {
  InputTransform t;
  t.n = static_cast<int64_t>(sq_norms.size());
  t.scale.resize(sq_norms.size());
  double peak = 0.0;
  for (size_t j = 0; j < sq_norms.size(); ++j) {
    t.scale[j] =
        std::pow(std::sqrt(std::max(0.0, sq_norms[j]) / static_cast<double>(std::max<int64_t>(rows, 1))), alpha);
    peak = std::max(peak, t.scale[j]);
  }
  // A column the data never reaches keeps a small positive scale (T stays invertible).
  for (double& s : t.scale) s = std::max(s, peak > 0 ? 1e-6 * peak : 1.0);
  return t;
}

namespace {
MatD transform_matrix(const InputTransform& t) {
  if (!t.lower.empty()) {
    MatD l(t.n, t.n);
    for (int64_t i = 0; i < t.n * t.n; ++i) l.data()[i] = t.lower[static_cast<size_t>(i)];
    return l;
  }
  MatD d = MatD::Zero(t.n, t.n);
  for (int64_t j = 0; j < t.n; ++j) d(j, j) = t.scale[static_cast<size_t>(j)];
  return d;
}
}  // namespace

std::vector<float> transformed(const std::vector<float>& w, int64_t m, int64_t n, const InputTransform& t) {
  const MatD wt = product(to_matrix(w, m, n), false, transform_matrix(t), false);
  std::vector<float> out(static_cast<size_t>(m * n));
  for (int64_t i = 0; i < m * n; ++i) out[static_cast<size_t>(i)] = static_cast<float>(wt.data()[i]);
  return out;
}

Expected<SvdFactors> transformed_svd(const std::vector<float>& w, int64_t m, int64_t n, int64_t rank,
                                     const InputTransform& t, double* transformed_error) {
  COMPRESS_RETURN_IF_ERROR(check_weight(w, m * n, "the weight"));
  if (t.n != n) return invalid_argument("lowrank: an input transform of size {} for {} input features", t.n, n);
  const int64_t full = std::min(m, n);
  if (rank < 1 || rank > full)
    return invalid_argument("lowrank: rank {} outside [1, {}] for a {}x{} matrix", rank, full, m, n);
  const MatD a = to_matrix(w, m, n);
  const MatD tm = transform_matrix(t);
  const MatD at = product(a, false, tm, false);
  Eigen::BDCSVD<MatD> svd(at, Eigen::ComputeThinU | Eigen::ComputeThinV);
  const Eigen::VectorXd root = svd.singularValues().head(rank).cwiseSqrt();
  const MatD first_t = root.asDiagonal() * svd.matrixV().leftCols(rank).transpose();  // [r, n] in T's space
  const MatD second = svd.matrixU().leftCols(rank) * root.asDiagonal();
  // first = first_t T^-1: solve first T = first_t, i.e. T^T first^T = first_t^T.
  MatD first;
  if (!t.lower.empty()) {
    first = tm.transpose().triangularView<Eigen::Upper>().solve(first_t.transpose()).transpose();
  } else {
    first = first_t;
    for (int64_t j = 0; j < n; ++j) first.col(j) /= t.scale[static_cast<size_t>(j)];
  }
  SvdFactors f;
  f.rank = rank;
  f.first.resize(static_cast<size_t>(rank * n));
  f.second.resize(static_cast<size_t>(m * rank));
  for (int64_t i = 0; i < rank * n; ++i) f.first[static_cast<size_t>(i)] = static_cast<float>(first.data()[i]);
  for (int64_t i = 0; i < m * rank; ++i) f.second[static_cast<size_t>(i)] = static_cast<float>(second.data()[i]);
  const MatD rebuilt = to_matrix(f.second, m, rank) * to_matrix(f.first, rank, n);
  f.relative_error = relative(a, rebuilt);
  if (transformed_error != nullptr) *transformed_error = relative(at, product(rebuilt, false, tm, false));
  return f;
}

std::vector<float> spatial_matrix(const std::vector<float>& w, int64_t o, int64_t c, int64_t kh, int64_t kw) {
  std::vector<float> m(static_cast<size_t>(o * c * kh * kw));
  for (int64_t oi = 0; oi < o; ++oi) {
    for (int64_t ci = 0; ci < c; ++ci) {
      for (int64_t i = 0; i < kh; ++i) {
        for (int64_t j = 0; j < kw; ++j) {
          m[static_cast<size_t>((ci * kh + i) * (o * kw) + oi * kw + j)] =
              w[static_cast<size_t>(((oi * c + ci) * kh + i) * kw + j)];
        }
      }
    }
  }
  return m;
}

Expected<SpatialFactors> spatial_svd(const std::vector<float>& w, int64_t o, int64_t c, int64_t kh, int64_t kw,
                                     int64_t rank) {
  COMPRESS_RETURN_IF_ERROR(check_weight(w, o * c * kh * kw, "the conv weight"));
  COMPRESS_ASSIGN_OR_RETURN(SvdFactors svd, truncated_svd(spatial_matrix(w, o, c, kh, kw), c * kh, o * kw, rank));
  SpatialFactors f;
  f.rank = rank;
  f.relative_error = svd.relative_error;  // the rearrangement only permutes entries
  f.vertical.resize(static_cast<size_t>(rank * c * kh));
  f.horizontal.resize(static_cast<size_t>(o * rank * kw));
  for (int64_t k = 0; k < rank; ++k) {
    for (int64_t row = 0; row < c * kh; ++row) {  // row = (ci, i): vertical[k, ci, i, 0]
      f.vertical[static_cast<size_t>(k * c * kh + row)] = svd.second[static_cast<size_t>(row * rank + k)];
    }
    for (int64_t oi = 0; oi < o; ++oi) {
      for (int64_t j = 0; j < kw; ++j) {  // horizontal[oi, k, 0, j]
        f.horizontal[static_cast<size_t>((oi * rank + k) * kw + j)] =
            svd.first[static_cast<size_t>(k * o * kw + oi * kw + j)];
      }
    }
  }
  return f;
}

Expected<Tucker2Factors> tucker2(const std::vector<float>& w, int64_t o, int64_t c, int64_t kh, int64_t kw,
                                 int64_t rank_out, int64_t rank_in, int max_iterations, double tolerance) {
  COMPRESS_RETURN_IF_ERROR(check_weight(w, o * c * kh * kw, "the conv weight"));
  if (rank_out < 1 || rank_out > o || rank_in < 1 || rank_in > c) {
    return invalid_argument("lowrank: Tucker-2 ranks (out {}, in {}) outside [1, {}] x [1, {}]", rank_out, rank_in, o,
                            c);
  }
  const int64_t k = kh * kw;
  // Both unfoldings once; every mode product is then one GEMM on one of them
  // (unfold1(W x_1 B) = B unfold1(W), unfold0(W x_0 A) = A unfold0(W)).
  const MatD t0 = to_matrix(w, o, c * k);  // [o, c*K]
  const MatD t1 = unfold1(t0, c, k);       // [c, o*K]
  const double norm2 = t0.squaredNorm();
  MatD u_out = leading_left(t0, rank_out);
  MatD u_in = leading_left(t1, rank_in);
  // With orthonormal factors the core is the projection and
  // ||W - W_hat||^2 = ||W||^2 - ||core||^2 (in any layout).
  auto core1_of = [&](const MatD& uo, const MatD& ui) {  // the core's mode-1 unfolding [r_in, r_out*K]
    return product(ui, true, unfold1(product(uo, true, t0, false), c, k), false);
  };
  auto error_of = [&](const MatD& core1) {
    return norm2 == 0.0 ? 0.0 : std::sqrt(std::max(0.0, norm2 - core1.squaredNorm()) / norm2);
  };
  MatD core1 = core1_of(u_out, u_in);
  Tucker2Factors f;
  f.hosvd_error = error_of(core1);
  double error = f.hosvd_error;
  for (int sweep = 0; sweep < max_iterations && error > 0.0; ++sweep) {
    u_out = leading_left(unfold1(product(u_in, true, t1, false), o, k), rank_out);  // W x_1 U_in^T, mode 0
    u_in = leading_left(unfold1(product(u_out, true, t0, false), c, k), rank_in);   // W x_0 U_out^T, mode 1
    core1 = core1_of(u_out, u_in);
    const double next = error_of(core1);
    f.iterations = sweep + 1;
    const bool settled = error - next <= tolerance * std::max(error, 1e-30);
    error = std::min(error, next);
    if (settled) break;
  }
  const MatD core0 = unfold1(core1, rank_out, k);  // [r_out, r_in*K]
  f.rank_in = rank_in;
  f.rank_out = rank_out;
  f.first.resize(static_cast<size_t>(rank_in * c));
  f.core.resize(static_cast<size_t>(rank_out * rank_in * k));
  f.last.resize(static_cast<size_t>(o * rank_out));
  for (int64_t r = 0; r < rank_in; ++r) {
    for (int64_t ci = 0; ci < c; ++ci) f.first[static_cast<size_t>(r * c + ci)] = static_cast<float>(u_in(ci, r));
  }
  for (int64_t i = 0; i < rank_out * rank_in * k; ++i) {
    f.core[static_cast<size_t>(i)] = static_cast<float>(core0.data()[i]);
  }
  for (int64_t i = 0; i < o * rank_out; ++i) f.last[static_cast<size_t>(i)] = static_cast<float>(u_out.data()[i]);
  // The error of what is stored: rebuild W's mode-1 unfolding from the f32 factors.
  const MatD outer = to_matrix(f.last, o, rank_out) * to_matrix(f.core, rank_out, rank_in * k);   // [o, r_in*K]
  const MatD rebuilt1 = to_matrix(f.first, rank_in, c).transpose() * unfold1(outer, rank_in, k);  // [c, o*K]
  f.relative_error = relative(t1, rebuilt1);
  return f;
}

std::vector<double> cp_initial_factor(int64_t dim, int64_t rank) {
  std::vector<double> f(static_cast<size_t>(dim * rank));
  for (int64_t i = 0; i < dim; ++i) {
    for (int64_t r = 0; r < rank; ++r) {
      f[static_cast<size_t>(i * rank + r)] =
          std::cos(0.7 * static_cast<double>((r + 1) * (i + 1)) + 0.3 * static_cast<double>(r));
    }
  }
  return f;
}

Expected<CpFactors> cp_als(const std::vector<float>& w, int64_t o, int64_t c, int64_t kh, int64_t kw, int64_t rank,
                           int max_iterations, double tolerance) {
  COMPRESS_RETURN_IF_ERROR(check_weight(w, o * c * kh * kw, "the conv weight"));
  if (rank < 1) return invalid_argument("lowrank: CP rank {} must be >= 1", rank);
  const int64_t k = kh * kw;
  const MatD t = to_matrix(w, o * c, k);  // rows (o, c), columns (i, j)
  const double norm2 = t.squaredNorm();
  auto initial = [&](int64_t dim) {
    const std::vector<double> v = cp_initial_factor(dim, rank);
    MatD m(dim, rank);
    for (int64_t i = 0; i < dim * rank; ++i) m.data()[i] = v[static_cast<size_t>(i)];
    return m;
  };
  MatD a = initial(o), b = initial(c), h = initial(kh), v = initial(kw);
  // Khatri-Rao of two factors over a shared rank: row (x, y) = f[x, :] .* g[y, :].
  auto khatri_rao = [&](const MatD& f, const MatD& g) {
    MatD kr(f.rows() * g.rows(), rank);
    for (int64_t x = 0; x < f.rows(); ++x) {
      for (int64_t y = 0; y < g.rows(); ++y) kr.row(x * g.rows() + y) = f.row(x).cwiseProduct(g.row(y));
    }
    return kr;
  };
  auto solve = [&](const MatD& mttkrp, MatD gram) {  // mttkrp * gram^-1, gram symmetric
    gram.diagonal().array() += 1e-10 * std::max(1.0, gram.diagonal().maxCoeff());
    return MatD(gram.ldlt().solve(mttkrp.transpose()).transpose());
  };
  auto error_of = [&](const MatD& m0) {  // m0: the mode-0 MTTKRP with b, h, v as they are now
    const double inner = (a.cwiseProduct(m0)).sum();
    const MatD gram = (a.transpose() * a)
                          .cwiseProduct(b.transpose() * b)
                          .cwiseProduct(h.transpose() * h)
                          .cwiseProduct(v.transpose() * v);
    const double model2 = gram.sum();
    return norm2 == 0.0 ? 0.0 : std::sqrt(std::max(0.0, norm2 - 2.0 * inner + model2) / norm2);
  };
  CpFactors f;
  double error = std::numeric_limits<double>::infinity();
  MatD m0;
  for (int sweep = 0; sweep < std::max(1, max_iterations); ++sweep) {
    // Modes 0 and 1 through P[(o, c), r] = sum_{i,j} T[(o, c), (i, j)] H[i, r] V[j, r].
    MatD p = product(t, false, khatri_rao(h, v), false);  // [o*c, R]
    MatD m(o, rank);
    for (int64_t oi = 0; oi < o; ++oi) {
      m.row(oi).setZero();
      for (int64_t ci = 0; ci < c; ++ci) m.row(oi) += p.row(oi * c + ci).cwiseProduct(b.row(ci));
    }
    a = solve(m, (b.transpose() * b).cwiseProduct(h.transpose() * h).cwiseProduct(v.transpose() * v));
    m.resize(c, rank);
    for (int64_t ci = 0; ci < c; ++ci) {
      m.row(ci).setZero();
      for (int64_t oi = 0; oi < o; ++oi) m.row(ci) += p.row(oi * c + ci).cwiseProduct(a.row(oi));
    }
    b = solve(m, (a.transpose() * a).cwiseProduct(h.transpose() * h).cwiseProduct(v.transpose() * v));
    // Modes 2 and 3 through Q[(i, j), r] = sum_{o,c} T[(o, c), (i, j)] A[o, r] B[c, r].
    const MatD q = product(t, true, khatri_rao(a, b), false);  // [K, R]
    m.resize(kh, rank);
    for (int64_t i = 0; i < kh; ++i) {
      m.row(i).setZero();
      for (int64_t j = 0; j < kw; ++j) m.row(i) += q.row(i * kw + j).cwiseProduct(v.row(j));
    }
    h = solve(m, (a.transpose() * a).cwiseProduct(b.transpose() * b).cwiseProduct(v.transpose() * v));
    m.resize(kw, rank);
    for (int64_t j = 0; j < kw; ++j) {
      m.row(j).setZero();
      for (int64_t i = 0; i < kh; ++i) m.row(j) += q.row(i * kw + j).cwiseProduct(h.row(i));
    }
    v = solve(m, (a.transpose() * a).cwiseProduct(b.transpose() * b).cwiseProduct(h.transpose() * h));
    // The error with the new factors: the mode-0 MTTKRP against the new b, h, v.
    p = product(t, false, khatri_rao(h, v), false);
    m0.resize(o, rank);
    for (int64_t oi = 0; oi < o; ++oi) {
      m0.row(oi).setZero();
      for (int64_t ci = 0; ci < c; ++ci) m0.row(oi) += p.row(oi * c + ci).cwiseProduct(b.row(ci));
    }
    const double next = error_of(m0);
    f.iterations = sweep + 1;
    const bool settled = error - next <= tolerance * std::max(next, 1e-30);
    error = next;
    if (settled) break;
  }
  // Balance: every factor's column r gets the 4th root of the product of the four column norms.
  for (int64_t r = 0; r < rank; ++r) {
    double prod = 1.0;
    for (MatD* m : {&a, &b, &h, &v}) prod *= m->col(r).norm();
    const double target = std::pow(prod, 0.25);
    for (MatD* m : {&a, &b, &h, &v}) {
      const double n = m->col(r).norm();
      if (n > 0) m->col(r) *= target / n;
    }
  }
  f.rank = rank;
  f.last.resize(static_cast<size_t>(o * rank));
  f.first.resize(static_cast<size_t>(rank * c));
  f.vertical.resize(static_cast<size_t>(rank * kh));
  f.horizontal.resize(static_cast<size_t>(rank * kw));
  for (int64_t r = 0; r < rank; ++r) {
    for (int64_t oi = 0; oi < o; ++oi) f.last[static_cast<size_t>(oi * rank + r)] = static_cast<float>(a(oi, r));
    for (int64_t ci = 0; ci < c; ++ci) f.first[static_cast<size_t>(r * c + ci)] = static_cast<float>(b(ci, r));
    for (int64_t i = 0; i < kh; ++i) f.vertical[static_cast<size_t>(r * kh + i)] = static_cast<float>(h(i, r));
    for (int64_t j = 0; j < kw; ++j) f.horizontal[static_cast<size_t>(r * kw + j)] = static_cast<float>(v(j, r));
  }
  // The error of what is stored, from the f32 factors.
  MatD rebuilt = MatD::Zero(o * c, k);
  for (int64_t r = 0; r < rank; ++r) {
    for (int64_t oi = 0; oi < o; ++oi) {
      for (int64_t ci = 0; ci < c; ++ci) {
        const double ab = static_cast<double>(f.last[static_cast<size_t>(oi * rank + r)]) *
                          static_cast<double>(f.first[static_cast<size_t>(r * c + ci)]);
        for (int64_t i = 0; i < kh; ++i) {
          for (int64_t j = 0; j < kw; ++j) {
            rebuilt(oi * c + ci, i * kw + j) += ab * static_cast<double>(f.vertical[static_cast<size_t>(r * kh + i)]) *
                                                static_cast<double>(f.horizontal[static_cast<size_t>(r * kw + j)]);
          }
        }
      }
    }
  }
  f.relative_error = relative(t, rebuilt);
  return f;
}

Expected<std::vector<double>> mode_singular_values(const std::vector<float>& w, int64_t o, int64_t c, int64_t kh,
                                                   int64_t kw, int mode) {
  COMPRESS_RETURN_IF_ERROR(check_weight(w, o * c * kh * kw, "the conv weight"));
  const MatD t = to_matrix(w, o, c * kh * kw);
  Eigen::BDCSVD<MatD> svd(mode == 0 ? t : unfold1(t, c, kh * kw));
  return values_of(svd.singularValues());
}

int64_t rank_for_energy(const std::vector<double>& singular_values, double energy) {
  double total = 0.0;
  for (double s : singular_values) total += s * s;
  if (total == 0.0) return 1;
  double kept = 0.0;
  for (size_t r = 0; r < singular_values.size(); ++r) {
    kept += singular_values[r] * singular_values[r];
    // A relative slack so that energy 1.0 is reached despite rounding.
    if (kept >= energy * total * (1.0 - 1e-12)) return static_cast<int64_t>(r + 1);
  }
  return static_cast<int64_t>(singular_values.size());
}

}  // namespace compress::lowrank
