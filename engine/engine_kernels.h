/*
** engine/engine_kernels.h: lpq's compute kernels (the instruction set choice, the vectorised inner
** loops, the GEMM, Winograd), private to engine/: included by engine_internal.h, whose types
** (conv_params_t, kctx_t) it uses. Non-static names start with lpq__.
*/
#ifndef LPQ_ENGINE_KERNELS_H
#define LPQ_ENGINE_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* Instruction set of lpq's kernels (ops_kernels.c): the CPU's best, or lower by LPQ_ISA. */
enum { LPQ_ISA_GENERIC = 0, LPQ_ISA_AVX2 = 1, LPQ_ISA_AVX512 = 2 };
int lpq__isa(void);
/* Hot inner loops, compiled for AVX-512, AVX2 and plain x86-64; lpq__isa() picks the copy
** (ops_kernels.c). Pointers must not overlap. */
void lpq__kern_axpy(float *restrict y, const float *restrict x, float w, size_t n); /* y += w*x */
void lpq__kern_max(float *restrict y, const float *restrict x, size_t n);          /* y = max(y, x) */
void lpq__kern_add(float *restrict y, const float *restrict x, size_t n);          /* y += x */
void lpq__kern_bias_clamp(float *y, float bias, float lo, float hi, size_t n);      /* y = clamp(y+b) */
void lpq__kern_bias_add_clamp(float *restrict y, const float *restrict r, float bias, float lo,
                         float hi, size_t n);                                 /* clamp(y+b+r) */
/* Convs with fewer multiply-adds run on the calling thread alone (ops_conv.c; tests lower it). */
extern int64_t lpq__conv_min_parallel_macs;
/* 1: every MatMul through OpenBLAS, its packed weight unused (ops_gemm.c; tests, benchmarks). */
extern int lpq__matmul_blas;
/* y[i] = f(x[i]) for a transcendental activation, vectorised through libmvec
** (ops_kernels_math.c); x and y may be the same array. */
enum { LPQ_MATH_SIGMOID, LPQ_MATH_SILU, LPQ_MATH_TANH, LPQ_MATH_ERF, LPQ_MATH_EXP, LPQ_MATH_GELU,
       LPQ_MATH_GELU_TANH };
void lpq__kern_math(int kind, const float *x, float *y, size_t n);
/* y = clamp(a x + b, 0, 1) (HardSigmoid), times x when times_x; a NaN x stays NaN. */
void lpq__kern_hard(int times_x, float a, float b, const float *x, float *y, size_t n);
/* y = softmax(x) over one row of n (x and y distinct or the same); lpq__kern_exp_shift: y =
** exp(x - max x), *max = max x, returns the sum of y in double (four partial sums in order). */
void lpq__kern_softmax_row(const float *x, float *y, size_t n);
double lpq__kern_exp_shift(const float *x, float *y, size_t n, float *max);
/* y = (x - mean) / sqrt(var + eps) * scale[i] (+ bias[i]) over one row with a full scale, mean
** and 1/sqrt(var + eps) in double: AVX-512 or AVX2 (1; AVX2 with the plain loop's bits), else 0
** and nothing done. */
int lpq__kern_layernorm_row(const float *x, float *y, size_t n, double eps, const float *scale,
                            const float *bias, double *mean, double *istd);
/* Eight partial double sums added pairwise: LayerNormalization's order, plain and AVX2 alike. */
static inline double lpq__sum8(const double *s) {
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}
/* Depthwise convolution of any window, stride 1 or 2, of one channel plane as one flat pass per
** tap (ops_dwflat.c); scratch: lpq__dwflat_scratch(p) floats. */
int lpq__dwflat_applies(const conv_params_t *p);
size_t lpq__dwflat_scratch(const conv_params_t *p);
void lpq__dwflat_plane(const conv_params_t *p, const float *x, const float *w, float bias,
                       float lo, float hi, float *y, float *scratch);
/* One output row of a 3x3 depthwise conv: y = clamp(bias + sum of w[j] * taps[j][i]). */
void lpq__kern_dw9(float *restrict y, const float *const *taps, const float *w, float bias, float lo,
              float hi, size_t n);
/* The same for stride 2: y[i] = clamp(bias + sum of w[j] * taps[j][2i]), and lpq__kern_dw9 with
** the last partial vector masked rather than lane by lane (AVX-512; ops_kernels_dw.c). Only
** the elements the outputs need are read. */
void lpq__kern_dw9s2(float *restrict y, const float *const *taps, const float *w, float bias,
                     float lo, float hi, size_t n);
void lpq__kern_dw9m(float *restrict y, const float *const *taps, const float *w, float bias,
                    float lo, float hi, size_t n);
/* Output rows [oy0, oy1) (OW wide, out: row oy0) of a 3x3 depthwise conv, stride s (1 or 2),
** pads 1, over a plane of H rows of W whose rows from lo_row on are in E (W apart; zero: a row
** of zeros for rows outside the plane; columns outside [0, W) count as zeros and are never
** read): AVX2 or AVX-512 (both lpq__kern_dw3_rows_avx2, ops_kernels_dw_avx2.c: AVX-512
** versions of these row loops, one chain of masked loads a vector, ran 1.9-2.2x slower on a Zen
** 5 EPYC) only, else returns 0 having done nothing. */
int lpq__kern_dw3_rows(float *out, const float *E, int64_t lo_row, const float *zero,
                       const float *w, float bias, float lo, float hi, int64_t H, int64_t W,
                       int64_t OW, int s, int64_t oy0, int64_t oy1);
int lpq__kern_dw3_rows_avx2(float *out, const float *E, int64_t lo_row, const float *zero,
                            const float *w, float bias, float lo, float hi, int64_t H, int64_t W,
                            int64_t OW, int s, int64_t oy0, int64_t oy1);
/* The same over g planes of H x W back to back (one channel of g images), the taps' masks
** computed once for any number of channels: lpq__kern_dw3_flat_masks fills m (9 per vector of
** 16 outputs) and returns the vector count, or 0 (nothing done) without AVX2 (AVX-512 runs the
** AVX2 loop, lpq__kern_dw3_flat_run_avx2, faster on a Zen 5 EPYC) or when the vectors are more
** than cap; lpq__kern_dw3_flat_run then runs one channel x to y with them.
** Output vector v goes to y + (v / 2) * panel + (v % 2) * 16: panel 32 for a plain row, or
** the stride of a packed GEMM B's 32-column panels (lpq__kern_sgemm_packed). */
size_t lpq__kern_dw3_flat_masks(uint16_t *m, size_t cap, int64_t g, int64_t H, int64_t W);
void lpq__kern_dw3_flat_run(float *y, size_t panel, const float *x, const uint16_t *m,
                            size_t nvec, int64_t g, int64_t H, int64_t W, const float *w,
                            float bias, float lo, float hi);
void lpq__kern_dw3_flat_run_avx2(float *y, size_t panel, const float *x, const uint16_t *m,
                                 size_t nvec, int64_t g, int64_t H, int64_t W, const float *w,
                                 float bias, float lo, float hi);
/* One output row of a 3x3 depthwise conv over DWB channels interleaved (DWB floats a pixel):
** input rows r0..r2 (column 0 is the output's column -1's window start), weights w[9][DWB],
** biases b[DWB], stride s, ow pixels out (ops_kernels_dw.c). */
#define DWB 16
void lpq__kern_dwblk_row(float *restrict y, const float *restrict r0, const float *restrict r1,
                         const float *restrict r2, const float *restrict w,
                         const float *restrict b, float lo, float hi, size_t ow, size_t s);
/* C[M,N] = A[M,K] * B[K,N], row-major with leading dimensions (ops_sgemm.c): lpq's AVX-512/AVX2
** kernel where the CPU has it (lpq__sgemm_packs_a() is 1) and A was packed into Ap by
** lpq__sgemm_pack_a (lpq__sgemm_packed_a_floats(M, K) floats), OpenBLAS otherwise (Ap NULL).
** pack: lpq__sgemm_pack_floats() floats of scratch for the B panels. */
#define SGEMM_MR 8 /* rows of a packed A panel */
#define SGEMM_MC 128
#define SGEMM_KC 256
#define SGEMM_NC 384
/* Applied as C is stored (epi may be NULL): C[i][j] = clamp(C + bias[i] + res[i*ldr + j], lo, hi);
** bias, res NULL when absent. */
typedef struct sgemm_epi_t {
  const float *bias, *res;
  size_t ldr;
  float lo, hi;
} sgemm_epi_t;
int lpq__sgemm_packs_a(void);
size_t lpq__sgemm_pack_floats(size_t N);
size_t lpq__sgemm_packed_a_floats(size_t M, size_t K);
void lpq__sgemm_pack_a(size_t M, size_t K, const float *A, size_t lda, float *Ap);
void lpq__kern_sgemm(size_t M, size_t N, size_t K, const float *A, size_t lda, const float *Ap,
                const float *B, size_t ldb, float *C, size_t ldc, float *pack,
                const sgemm_epi_t *epi);
/* The same with B never stored: pack(ctx, k0, kc, n0, nc, Bp) writes rows [k0, k0 + kc) and
** columns [n0, n0 + nc) of B into Bp as SGEMM_NR-column panels, k-major inside a panel,
** zero past column nc (the convolution packs straight from its input). Only when
** lpq__sgemm_packs_a() and K > 0. */
#define SGEMM_NR 32
void lpq__kern_sgemm_implicit(size_t M, size_t N, size_t K, const float *Ap,
                         void (*pack)(const void *ctx, size_t k0, size_t kc, size_t n0,
                                      size_t nc, float *Bp),
                         const void *ctx, float *C, size_t ldc, float *Bp,
                         const sgemm_epi_t *epi);
/* The same with B packed in full (panels of SGEMM_NR columns over all K rows, k-major, panel
** q/SGEMM_NR at Bp + q * K; zero past column N). Only when lpq__sgemm_packs_a() and K > 0. */
void lpq__kern_sgemm_packed(size_t M, size_t N, size_t K, const float *Ap, const float *Bp,
                            float *C, size_t ldc);
/* Only rows [r0, r1) of it (r0 a multiple of SGEMM_MR; r1 <= M), row r0 written at C, with the
** epilogue epi (NULL: none; its bias and residual indexed by the whole product's rows); for
** M > SGEMM_MR bit for bit those rows of the whole product (output channels split over threads;
** with one row panel the whole product runs all of K in one call, other bits). */
void lpq__kern_sgemm_packed_rows(size_t M, size_t r0, size_t r1, size_t N, size_t K,
                                 const float *Ap, const float *Bp, float *C, size_t ldc,
                                 const sgemm_epi_t *epi);
/* The same with the epilogue epi (NULL: none) as C is stored; B's columns past N may hold
** anything (only C's first N columns are written). */
void lpq__kern_sgemm_packed_epi(size_t M, size_t N, size_t K, const float *Ap, const float *Bp,
                                float *C, size_t ldc, const sgemm_epi_t *epi);
/* Winograd F(2x2, 3x3) transforms of len tiles (ops_kernels_body.h). */
void lpq__kern_wino_in(size_t len, const float *const *E, const float *const *O, float *dst,
                       size_t vstride, size_t col0, size_t pstride);
/* Where lpq__kern_wino_out puts a run of tiles: output rows y[0..rows) from the run's first
** column, w valid columns, bias, residual rows res[] (res NULL: none) and the clamp. */
typedef struct wino_out_t {
  float *y[4];
  const float *const *res;
  float bias, lo, hi;
  size_t w;
  int rows;
} wino_out_t;
void lpq__kern_wino_out(size_t len, const float *s, size_t ystride, const wino_out_t *o);
/* A run of up to 16 tiles over several tile rows (maps whose tile rows are shorter than 16
** tiles), one segment per tile row it touches, lanes [l0, l0 + len), by increasing l0 (the
** first at 0). Input: lane l0 + i's window in input row r is row[r][x0 + 2i .. x0 + 2i + 3].
** With lpq__kern_wino_masked() the rows are the plane's (NULL: a row outside it) and only
** columns [0, W) are read, the rest is zero; else they are zero-padded lines, 36 floats
** readable from x0. Output: the segment's output rows y[i] (i < rows) and residual rows res[i]
** (NULL: none) from its first tile's first column, w of them valid. */
typedef struct wino_iseg_t {
  const float *row[4];
  int64_t x0;
  size_t l0, len;
} wino_iseg_t;
typedef struct wino_oseg_t {
  float *y[2];
  const float *res[2];
  size_t l0, w;
  int rows;
} wino_oseg_t;
int lpq__kern_wino_masked(void);
/* The nt tiles of a block: run k (lanes from block column 16 k) has segments first[k] to
** first[k + 1] (nruns runs); off is added to every row pointer (not NULL) read. */
void lpq__kern_wino_in_segs(size_t nt, const wino_iseg_t *seg, const int *first, size_t nruns,
                            int64_t W, size_t off, float *dst, size_t vstride, size_t pstride);
/* s as lpq__kern_wino_out (16 lanes); off is added to every y and res pointer. */
void lpq__kern_wino_out_segs(const float *s, size_t ystride, const wino_oseg_t *seg,
                             size_t nseg, size_t off, float bias, float lo, float hi);
/* p_q[u] = x[4u + q] for u < n. */
void lpq__kern_deinterleave4(float *restrict p0, float *restrict p1, float *restrict p2,
                             float *restrict p3, const float *restrict x, size_t n);
/* The same for F(4x4, 3x3): P[4r + q] is input row r's column phase q (r < 6). */
void lpq__kern_wino4_in(size_t len, const float *const *P, float *dst, size_t vstride,
                        size_t col0, size_t pstride);
void lpq__kern_wino4_out(size_t len, const float *s, size_t ystride, const wino_out_t *o);
/* Splits x[0..n) into even[i] = x[2i] and odd[i] = x[2i+1]. */
void lpq__kern_deinterleave(float *restrict even, float *restrict odd, const float *restrict x,
                       size_t n);

/* Winograd F(2x2, 3x3) / F(4x4, 3x3) (ops_conv_wino.c): whether it runs conv p (dense 3x3
** stride 1, lpq's GEMM kernel; LPQ_WINOGRAD=0 turns it off, =2 keeps 2x2 tiles), its packed
** weights (lpq__wino_packed_floats), its scratch per thread, and a run with the clamp [lo, hi].
** Only where its 16 GEMMs' columns (2x2 tiles over the batch), rounded up to the kernel's
** 32-column panels, times 16 are fewer than the implicit GEMM's (outputs over the batch) times
** 9: on small maps at small batches (ResNet-34's 5x5 layers at batch 1: 9 tiles, a panel
** nearly empty, 16/9 the weights to read) the implicit GEMM is faster (2.0 -> 1.2 ms a layer on
** one thread of a Zen 5 EPYC, 1.7 -> 0.7 on two). */
int lpq__wino_applies(const conv_params_t *p);
size_t lpq__wino_packed_floats(const conv_params_t *p);
void lpq__wino_pack_weights(const conv_params_t *p, const float *w, float *out);
size_t lpq__wino_scratch(const conv_params_t *p);
int lpq__wino_run(const kctx_t *k, float lo, float hi);
/* Tests: nonzero runs every F(2x2) layer tile row by tile row (the path for rows of 16 tiles
** or more), to compare the multi-row path with it; set before a run, not during one. */
extern int lpq__wino_row_path;
/* Tests: nonzero applies Winograd whatever the batch and map (the rule above off), so small
** maps still reach its kernels; set before a graph is loaded, reset after it is freed. */
extern int lpq__wino_any_batch;
/* Tests: 1 sends the depthwise windows other than 3x3 on small maps to the flat path
** (ops_dwflat.c) instead of the channel blocks (ops_dwblock.c), which give the same bits. */
extern int lpq__dwblock_any_off;
/* Direct convolution for few input channels and large kernels (ops_conv_direct.c, AVX-512 or
** AVX2; an image network's stem): whether it runs conv p (LPQ_DIRECT=0 turns it off), its
** scratch per thread, and a run with the clamp [lo, hi]. */
int lpq__direct_applies(const conv_params_t *p);
size_t lpq__direct_scratch(const conv_params_t *p);
int lpq__direct_run(const kctx_t *k, float lo, float hi);
/* The same conv with the MaxPool of window w that alone reads its output (a ResNet's stem): the
** pooled rows written to y as the conv rows are made, the conv's output never stored. The
** scratch per thread, 0 where it does not apply (the conv is not direct, or w does not fit). */
size_t lpq__direct_pool_scratch(const conv_params_t *p, const conv_params_t *w);
int lpq__direct_pool_run(const kctx_t *k, float lo, float hi, const conv_params_t *w, float *y);
/* MaxPool n's window when it runs row by row (ops_pool.c: 2-D, undilated, width stride <= 2,
** height stride under the height), else NULL; and one input row's max under each output
** column's window (-inf where none), as that path takes it (even, odd: W + 2 floats). */
const conv_params_t *lpq__maxpool_window(const gnode_t *n);
void lpq__maxpool_row(const conv_params_t *w, const float *xr, float *even, float *odd,
                      float *acc);

#endif
