// The decompositions behind the lowrank passes: truncated SVD, spatial SVD and Tucker-2 of layer weights (Eigen, f64).
#pragma once

#include <cstdint>
#include <vector>

#include "compress/support/status.h"

namespace compress::lowrank {

// Every function takes a row-major f32 weight, computes in f64 and returns
// f32 factors whose product approximates it; relative_error is
// ||W - W_r||_F / ||W||_F of the returned (f32) factors. A non-finite weight
// is an error; an all-zero weight factors exactly (error 0).

// Singular values of W[m, n], descending (Eigen's BDCSVD).
Expected<std::vector<double>> singular_values(const std::vector<float>& w, int64_t m, int64_t n);

// W[m, n] ~= second[m, r] * first[r, n], the best rank-r approximation
// (Eckart-Young): first = sqrt(S_r) V_r^T, second = U_r sqrt(S_r), so the
// two factors have the same scale.
struct SvdFactors {
  int64_t rank = 0;
  std::vector<float> first;   // [rank, n]
  std::vector<float> second;  // [m, rank]
  double relative_error = 0;
};
Expected<SvdFactors> truncated_svd(const std::vector<float>& w, int64_t m, int64_t n, int64_t rank);

// Note [Activation-aware SVD]
// What matters is the layer's output error ||(W - W_r) X^T|| on its inputs
// X, not ||W - W_r||. With an invertible T, the truncated SVD of W T mapped
// back (W_r = (W T)_r T^-1) minimizes ||(W - W_r) T||:
//  - whitening (SVD-LLM): T = L with L L^T = X^T X (Cholesky), so
//    ||(W - W_r) L|| = ||(W - W_r) X^T||: the best rank-r output error on the
//    calibration inputs. A Hessian that is not positive definite gets a
//    jitter of 1e-6 x its mean diagonal; if it still is not, an error (the
//    pass then falls back to plain SVD, with a warning);
//  - scaling (ASVD): T = diag(s), s_j = rms(X_j)^alpha, the input columns'
//    root-mean-square from the calibration data (the paper's mean |x|,
//    replaced by the RMS the activation probe collects).
struct InputTransform {
  int64_t n = 0;
  std::vector<double> lower;  // whitening: L [n, n] row-major, lower triangular
  std::vector<double> scale;  // scaling: s [n]
};
Expected<InputTransform> whitening_transform(const std::vector<double>& gram, int64_t n);
InputTransform scaling_transform(const std::vector<double>& sq_norms, int64_t rows, double alpha);
// W T, row-major [m, n] (the matrix whose spectrum the energy rule reads).
std::vector<float> transformed(const std::vector<float>& w, int64_t m, int64_t n, const InputTransform& t);
// The rank-r truncation of W T mapped back to W's space: `relative_error` is
// ||W - W_r|| / ||W||, `transformed_error` ||(W - W_r) T|| / ||W T|| (for
// whitening, the relative output error on the calibration inputs).
Expected<SvdFactors> transformed_svd(const std::vector<float>& w, int64_t m, int64_t n, int64_t rank,
                                     const InputTransform& t, double* transformed_error);

// Note [Spatial SVD]
// A conv weight W[o, c, kh, kw] as the matrix M[(c, i), (o, j)] =
// W[o, c, i, j] (rows: an input channel and a kernel row; columns: an output
// channel and a kernel column). Its rank-r SVD is a (kh x 1) conv c -> r
// followed by a (1 x kw) conv r -> o: sum_k V[k, c, i] H[o, k, j] = M.
struct SpatialFactors {
  int64_t rank = 0;
  std::vector<float> vertical;    // [rank, c, kh, 1]
  std::vector<float> horizontal;  // [o, rank, 1, kw]
  double relative_error = 0;
};
// The matrix of Note [Spatial SVD], row-major [c * kh, o * kw].
std::vector<float> spatial_matrix(const std::vector<float>& w, int64_t o, int64_t c, int64_t kh, int64_t kw);
Expected<SpatialFactors> spatial_svd(const std::vector<float>& w, int64_t o, int64_t c, int64_t kh, int64_t kw,
                                     int64_t rank);

// Note [Tucker-2]
// W[o, c, kh, kw] ~= core x_0 U_out x_1 U_in: a 1x1 conv c -> r_in (U_in^T),
// a kh x kw conv r_in -> r_out (the core, with the layer's stride, padding
// and dilation), and a 1x1 conv r_out -> o (U_out). U_out and U_in start as
// the leading left singular vectors of W's mode-0 and mode-1 unfoldings
// (HOSVD) and are refined by HOOI (alternating: each factor the leading
// singular vectors of W projected on the other) until the error improves by
// less than `tolerance` (relative) or after `max_iterations` sweeps.
struct Tucker2Factors {
  int64_t rank_in = 0, rank_out = 0;
  std::vector<float> first;  // [rank_in, c]: U_in^T
  std::vector<float> core;   // [rank_out, rank_in, kh, kw]
  std::vector<float> last;   // [o, rank_out]: U_out
  double relative_error = 0;
  double hosvd_error = 0;  // before the HOOI sweeps
  int iterations = 0;      // HOOI sweeps run
};
Expected<Tucker2Factors> tucker2(const std::vector<float>& w, int64_t o, int64_t c, int64_t kh, int64_t kw,
                                 int64_t rank_out, int64_t rank_in, int max_iterations = 20, double tolerance = 1e-7);
// Note [CP decomposition]
// W[o, c, kh, kw] ~= sum_r A[o, r] B[c, r] H[i, r] V[j, r] (rank-R CP,
// Lebedev et al. 2015): a 1x1 conv c -> R (B^T), a kh x 1 depthwise conv
// (H, the vertical stride/padding/dilation), a 1 x kw depthwise conv (V,
// the horizontal ones) and a 1x1 conv R -> o (A). CP-ALS: each factor in
// turn is the least-squares solution with the others fixed (its MTTKRP times
// the inverse of the Hadamard product of the others' Gram matrices, with a
// 1e-10 ridge), from a deterministic start (cp_initial_factor), until the
// error improves by less than `tolerance` (relative) or after
// `max_iterations` sweeps. Column norms are balanced across the four
// factors at the end. Unlike SVD there is no optimality guarantee: the
// stated error is what ALS reached.
struct CpFactors {
  int64_t rank = 0;
  std::vector<float> first;       // [rank, c]: B^T
  std::vector<float> vertical;    // [rank, kh]: H^T
  std::vector<float> horizontal;  // [rank, kw]: V^T
  std::vector<float> last;        // [o, rank]: A
  double relative_error = 0;
  int iterations = 0;
};
Expected<CpFactors> cp_als(const std::vector<float>& w, int64_t o, int64_t c, int64_t kh, int64_t kw, int64_t rank,
                           int max_iterations = 100, double tolerance = 1e-6);
// The starting factor [dim, rank] of CP-ALS for a mode: column r is
// cos(0.7 (r + 1) (i + 1) + 0.3 r) over i (deterministic, full rank where
// rank <= dim; the NumPy transcription uses the same formula).
std::vector<double> cp_initial_factor(int64_t dim, int64_t rank);

// Singular values of W's mode-0 (output channels, [o, c*kh*kw]) or mode-1
// (input channels, [c, o*kh*kw]) unfolding: the energy rule's spectrum.
Expected<std::vector<double>> mode_singular_values(const std::vector<float>& w, int64_t o, int64_t c, int64_t kh,
                                                   int64_t kw, int mode);

// The smallest r whose leading singular values keep `energy` (in (0, 1]) of
// sum s^2; 1 for an all-zero spectrum.
int64_t rank_for_energy(const std::vector<double>& singular_values, double energy);

}  // namespace compress::lowrank
