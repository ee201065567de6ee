/*
** engine/engine.h: lpq's inference engine. It owns the ONNX import (protobuf-c code generated
** from Debian's onnx.proto), the graph and its optimisations (constant folding, BatchNorm and
** activation fusion), the memory plan, the operators and their kernels (lpq's AVX-512/AVX2
** convolution micro-kernels, OpenBLAS for Gemm/MatMul), the hooks through which a quantized
** pass replaces weights and activations, and the ONNX export of a candidate. It includes
** common/common.h and lp/lp.h only; worker/, accel_sim/ and tools/ include this header.
** engine_internal.h is the engine's own (operator table, node helpers, kernels: lpq__*).
*/
#ifndef LPQ_ENGINE_H
#define LPQ_ENGINE_H

#include "common/common.h"
#include "lp/lp.h"

#include <stddef.h>
#include <stdint.h>

/* ---- ONNX import and the inference graph --------------------------------------------------- */

/*
** An ONNX model loaded for inference. The graph is immutable once loaded: weights are read-only
** and several threads may share one graph, each with its own execution context (lpq_exec_t),
** which owns the activation buffers. Shapes are static: the batch size is fixed at load.
**
** Loading checks every size read from the file before allocating, orders the nodes
** topologically (a cycle or a missing input is an error naming the node), folds initializers,
** Constant nodes and every node whose inputs are all constant (so shape sub-graphs such as
** Shape -> Gather -> Concat -> Reshape disappear), folds BatchNormalization into the Conv
** before it, fuses a residual Add into the Conv before it and Relu/Clip into the Conv/Gemm
** before them, packs conv weights for the GEMM kernel, and plans the activation memory so
** buffers are reused once their tensor is dead. Errors name the file, node, op and attribute.
**
** Dense 3x3 stride-1 convolutions run as Winograd F(4x4, 3x3) (maps of 28x28 and more) or
** F(2x2, 3x3), other convolutions as an implicit GEMM (the im2col panels are packed straight
** from the input), both on lpq's AVX-512 or AVX2 GEMM kernel (lpq_engine_isa), else im2col +
** OpenBLAS sgemm; depthwise convs have a direct kernel; Gemm and MatMul use OpenBLAS. Bias,
** a residual Add and Relu/Clip are applied as the kernels store their output. Weights are
** packed at load; when a hook replaces them they are packed again on that run (lpq run
** --swap-weights measures the cost). Setting LPQ_PROFILE=1
** (per op type) or LPQ_PROFILE=nodes (per node) in the environment makes lpq_exec_free print
** the CPU time each took to stderr.
*/
typedef struct lpq_graph_t lpq_graph_t;
typedef struct lpq_exec_t lpq_exec_t;

/* Loads an ONNX file. batch > 0 sets the first dimension of the first input (and of any input
** whose first dimension is symbolic); batch <= 0 keeps the model's own dimensions (a symbolic
** one is then an error). Every other input dimension must be static. NULL with err set on
** failure (LPQ_EIO, LPQ_EFORMAT, LPQ_EUNSUP for an operator/attribute/dtype lpq lacks, ...). */
lpq_graph_t *lpq_graph_load(const char *path, int batch, lpq_error_t *err);
/* The same from a serialized ModelProto in memory; name prefixes error messages. */
lpq_graph_t *lpq_graph_load_buffer(const void *data, size_t len, const char *name, int batch,
                                   lpq_error_t *err);
void lpq_graph_free(lpq_graph_t **g);

/* A graph input or output: name, dtype (LPQ_DT_F32, LPQ_DT_I64 or LPQ_DT_BOOL), static shape
** (the batch is shape[0]), element count. Pointers live as long as the graph. */
typedef struct lpq_tensor_info_t {
  const char *name;
  lpq_dtype_t dtype;
  int ndim;
  const int64_t *shape;
  size_t count;
} lpq_tensor_info_t;

size_t lpq_graph_num_inputs(const lpq_graph_t *g);
size_t lpq_graph_num_outputs(const lpq_graph_t *g);
/* i out of range -> LPQ_EINVAL. */
int lpq_graph_input(const lpq_graph_t *g, size_t i, lpq_tensor_info_t *out);
int lpq_graph_output(const lpq_graph_t *g, size_t i, lpq_tensor_info_t *out);
/* The batch size fixed at load (the first input's first dimension, 1 for a scalar input). */
int64_t lpq_graph_batch(const lpq_graph_t *g);
/* Bytes of activation memory one execution context allocates (arena + scratch). */
size_t lpq_graph_exec_bytes(const lpq_graph_t *g);

/* The quantizable layers: Conv, Gemm, and MatMul whose weight (B) is a constant. */
typedef enum lpq_layer_kind_t {
  LPQ_LAYER_CONV = 0,
  LPQ_LAYER_GEMM = 1,
  LPQ_LAYER_MATMUL = 2,
} lpq_layer_kind_t;

const char *lpq_layer_kind_name(lpq_layer_kind_t k); /* "conv", "gemm", "matmul" */

typedef struct lpq_layer_t {
  size_t index;          /* stable: position in topological order among quantizable layers */
  const char *name;      /* the ONNX node name, or "<OpType>_<node index>" when it had none */
  lpq_layer_kind_t kind;
  /* The weight as the kernel uses it, BatchNormalization already folded in. Axis 0 is always
  ** the output channel: conv [M, C/groups, kH, kW] (1-D conv: kH = 1); gemm and matmul
  ** [N, K] (transposed at load when the model stores it [K, N]). */
  const float *weight;
  int weight_ndim;
  int64_t weight_shape[4];
  size_t weight_count;
  const float *bias;     /* [M] or NULL (gemm's C is not reported here) */
  size_t bias_count;
  /* The layer's input (the activation) and output shapes, batch included. */
  int in_ndim, out_ndim;
  int64_t in_shape[LPQ_MAX_DIMS], out_shape[LPQ_MAX_DIMS];
  /* conv only (2-D; a 1-D conv has kernel[0] = stride[0] = dilation[0] = 1, pads 0) */
  int groups;
  int kernel[2], stride[2], dilation[2];
  int pads[4]; /* top, left, bottom, right */
  /* gemm/matmul: output rows M (batch and leading dims included), N outputs, K inputs.
  ** conv: the per-image GEMM view, M = output channels, N = OH*OW, K = C/groups*kH*kW. */
  size_t M, N, K;
  uint64_t macs;         /* multiply-accumulates for the whole batch */
  int fused_act;         /* 1 when a Relu/Clip was fused: output and hook see it applied */
  int fused_residual;    /* conv: a following residual Add was fused (output = conv + skip) */
  /* the graph's ids of the tensor the layer reads (input 0) and of the one it writes (output
  ** 0); tensors are written once, so a layer whose in_value is another's out_value reads
  ** exactly what that one wrote (the hooks are called with it) */
  int in_value, out_value;
} lpq_layer_t;

size_t lpq_graph_num_layers(const lpq_graph_t *g);
/* NULL when i is out of range. */
const lpq_layer_t *lpq_graph_layer(const lpq_graph_t *g, size_t i);

/* An execution context: activation arena, scratch, hook buffer; allocated once. One thread. */
lpq_exec_t *lpq_exec_new(const lpq_graph_t *g, lpq_error_t *err);
void lpq_exec_free(lpq_exec_t **x);

/* Lets the context run convolutions and pools on `threads` threads (the caller and
** threads - 1 workers it owns; 1: none, the default). Each thread gets its own scratch. For
** many contexts in parallel, keep 1 thread each. */
int lpq_exec_set_threads(lpq_exec_t *x, int threads, lpq_error_t *err);

/* Hooks into a run, for quantized evaluation. Any callback may be NULL. */
typedef struct lpq_hooks_t {
  void *user;
  /* Before quantizable layer `layer` runs: the weight to use instead of w (same count and
  ** layout, valid until the layer ran), or w itself. NULL aborts the run with an error. */
  const float *(*weight)(void *user, size_t layer, const float *w, size_t count);
  /* The layer's input activation as a private copy the hook may change in place; the change
  ** reaches this layer only, never other consumers of the tensor. Non-zero aborts the run. */
  int (*input)(void *user, size_t layer, float *x, size_t count);
  /* The layer's output right after it ran, with what was fused into it applied (see
  ** lpq_layer_t fused_act, fused_residual). Non-zero aborts. */
  int (*output)(void *user, size_t layer, const float *y, size_t count);
  /* A per-output-channel shift (`channels` floats, axis 0 of the weight) added to the layer's
  ** output before what was fused into it, as an extra bias (bias correction), or NULL for
  ** none. Valid until the layer ran. */
  const float *(*bias)(void *user, size_t layer, size_t channels);
  /* Instead of input, when set: the layer's input x (read only); the hook writes what the
  ** layer is to take into dst (a private buffer of count floats) and returns 1, or returns 0
  ** and the layer takes x as it is, with no copy made. Negative aborts the run. */
  int (*input_to)(void *user, size_t layer, const float *x, float *dst, size_t count);
} lpq_hooks_t;

/* One forward pass of a single-input, single-output float graph: input holds the input's
** count floats, output receives the output's count floats. hooks may be NULL (no copies).
** Returns 0 or a negative LPQ_E* with err set. */
int lpq_exec_run(lpq_exec_t *x, const float *input, float *output, const lpq_hooks_t *hooks,
                 lpq_error_t *err);
/* Cuts. The state of a run just before quantizable layer `layer`'s node: the run-time tensors
** computed before it that it or a later node reads (lpq_graph_cut_bytes bytes; 0 for an
** invalid layer, or where only the graph's input is live). A hook of that layer (input or
** weight) may save it during a run (any context of the graph); a later run of the same graph
** on the same input, in any context, may then resume there instead of computing every node
** before the layer again: its outputs are bit for bit those of a whole run whose nodes before
** the layer computed the same tensors. Hooks are called only for the nodes that run. */
size_t lpq_graph_cut_bytes(const lpq_graph_t *g, size_t layer);
int lpq_exec_cut_save(const lpq_exec_t *x, size_t layer, void *state, size_t bytes,
                      lpq_error_t *err);
int lpq_exec_run_from(lpq_exec_t *x, size_t layer, const void *state, size_t bytes,
                      const float *input, float *output, const lpq_hooks_t *hooks,
                      lpq_error_t *err);
/* Any graph: inputs[i] points at input i's data (its dtype and count), outputs[i] receives
** output i. */
int lpq_exec_run_multi(lpq_exec_t *x, const void *const *inputs, void *const *outputs,
                       const lpq_hooks_t *hooks, lpq_error_t *err);

/* OpenBLAS 0.3.21 (Debian 12) does not recognise recent AMD CPUs and falls back to its AVX2
** (Haswell) kernels, about 1.5x slower than its AVX-512 (SkylakeX) ones where the CPU has
** AVX-512, and on CPUs it does not know at all (recent Xeons under a hypervisor) to its SSE3
** ones (Prescott). The kernel set is chosen when the library loads, from OPENBLAS_CORETYPE, so
** this re-executes the program (argv as given to main) with OPENBLAS_CORETYPE=SkylakeX when
** that is unset, the CPU has AVX-512 (F, BW, DQ, VL) and OpenBLAS picked Haswell, Zen or an
** SSE kernel set (Haswell for such a set on an AVX2+FMA CPU without AVX-512). Returns
** only when nothing needed to change or the exec failed. Call it first thing in main(). An
** OPENBLAS_CORETYPE set by the user is respected. (lpq's convolutions do not use OpenBLAS on
** AVX-512 CPUs; Gemm and MatMul do.) */
void lpq_blas_select_kernels(char **argv);
/* OpenBLAS on one thread (the caller's), for programs whose own threads use the cores: sets
** its thread count to 1 and stops the threads its pthread build started at load, which
** otherwise spin on sched_yield for about 0.1 s and took a core from the engine's second
** thread (`lpq run --threads 2` on a small model: 10 against 5.5 ms a batch over its first
** runs). A build of OpenBLAS without that entry point (serial, OpenMP) is left as it is. */
void lpq_blas_single_thread(void);
/* The instruction set lpq's own kernels use: "avx512", "avx2" or "generic" (the best the CPU
** has, chosen once per process; LPQ_ISA=avx2 or LPQ_ISA=generic in the environment forces a
** lower one, e.g. to check the AVX2 code on an AVX-512 machine). */
const char *lpq_engine_isa(void);

/* A serialized ONNX TensorProto (e.g. a test's input_0.pb) as an array; the tensor's name is
** copied into name (may be NULL). Every size is checked against the buffer. */
int lpq_tensorproto_load(const void *data, size_t len, lpq_array_t **out, char *name,
                         size_t name_len, lpq_error_t *err);

/* ---- statistics-driven starting points ---------------------------------------------------- */

/* Per quantizable layer, the sf that lp<6,1,3,auto> takes on its weights (weight_sf) and, when
** act_sf is not NULL, on its FP input over the calibration batch calib (the graph's input,
** batch included): the centres of the search's sf windows. */
int lpq_graph_sf_seeds(const lpq_graph_t *g, const float *calib, int *weight_sf, int *act_sf,
                       lpq_error_t *err);

/* ---- a candidate's deliverables ---------------------------------------------------------- */

/* The ONNX model at model_path with the weight initializer of every quantizable layer named
** names[i] rounded to weight_formats[i] (fp32: left as is; a scale that depends on the data is
** calibrated on the initializer, per output channel for auto_ch): a model any ONNX runtime runs,
** computing with the LP values. *out is malloc'd. A weight that is not an initializer, or a
** layer name the model lacks, is an error naming it. (When lpq folds a BatchNormalization into
** a Conv, the export rounds the Conv's own weights; the BN scale then applies at run time.) */
int lpq_onnx_export_rounded(const char *model_path, size_t nlayers, const char *const *names,
                            const lpq_numfmt_t *weight_formats, void **out, size_t *out_len,
                            lpq_error_t *err);
/* The packed LP codes of every quantizable layer's weights (.lpw; layout in engine/onnx_export.c:
** "LPQW", version 2, per layer its name, format, per-channel sf's, shape and 1- or 2-byte
** codes). LP or fp32 formats only (LPQ_EUNSUP naming the layer otherwise). *out malloc'd. */
int lpq_pack_weights(const lpq_graph_t *g, const lpq_numfmt_t *weight_formats, void **out,
                     size_t *out_len, lpq_error_t *err);

/* ---- the quantized ONNX export (engine/onnx_quant.c; layout: docs/FORMATS.md) ----------- */

/* The exported model and its encodings JSON, both malloc'd (lpq_qexport_clear frees them). */
typedef struct lpq_qexport_t {
  void *onnx;
  size_t onnx_len;
  char *encodings; /* per quantized tensor: format text, bits, scale or sf, per channel or not */
} lpq_qexport_t;

/* The model at model_path as it is scored with weight formats w[i] and input-activation formats
** a[i] (lpq_graph_num_layers(g) each; g loaded from model_path with the calibration batch):
** int and FP8 formats as opset-21 QuantizeLinear/DequantizeLinear with narrow weights (int4,
** int8, float8e4m3fn, ...; per channel along the output-channel axis), LP and the other
** formats as uint4/uint8/uint16 codes with their value table decoded by the model-local
** function lpq.LPDequantize, activations quantized by QDQ or lpq.LPQuantize (lpq's rounding).
** Formats resolve as lpq's scorer resolves them: weights on the layer's weight (per channel on
** each channel), activations on a strided sample of the FP input over calib
** (lpq_graph_batch(g) samples; may be NULL when no activation format needs data). Each layer's
** formats go into metadata_props ("lpq.layer.NAME"), the encodings into "lpq.encodings" too.
** bias_shift (NULL: none) holds per layer NULL or its bias correction, M floats added to the
** output as lpq's scorer adds them (lpq_bias_shifts): written into a Conv's bias, after a
** Gemm/MatMul as an Add. Errors name the layer (a node lpq runs with other weights than its
** initializer, e.g. a folded BatchNormalization, is LPQ_EUNSUP). */
int lpq_onnx_export_quantized(const char *model_path, const lpq_graph_t *g,
                              const lpq_numfmt_t *w, const lpq_numfmt_t *a, const float *calib,
                              const float *const *bias_shift, lpq_qexport_t *out,
                              lpq_error_t *err);
void lpq_qexport_clear(lpq_qexport_t *x);

/* ---- bias correction after weight quantization (bias.c) ---- */

/* The mean FP input each weight element of layer L multiplies, over the batch and the output
** positions: [C][kH*kW] for a conv (input channel, tap; zero padding counts as 0), [K] for a
** gemm or matmul (the last axis of its input). x holds count floats of L's input shape.
** Returns a new array of *entries floats (the caller frees it), or NULL when memory runs out
** or the count does not match the shape. */
float *lpq_bias_input_means(const lpq_layer_t *L, const float *x, size_t count, size_t *entries);
/* The shift that cancels the mean output error of quantized weights wq against L's FP weights:
** shift[m] = -sum_k (wq - w)[m, k] E[x_k] for every output channel m (axis 0 of the weight;
** groups respected), E[x_k] from lpq_bias_input_means. */
void lpq_bias_shift(const lpq_layer_t *L, const float *wq, const float *in_mean, float *shift);
/* The output shifts lpq's scorer adds with bias correction on, for an export to write them into
** the model (lpq export, job.export): for each layer whose weight format w[i] is not fp32,
** shift[i] gets its M output channels' -(Wq - W) E[x] (malloc'd; the caller frees each), E[x]
** over the FP inputs of calib (lpq_graph_batch(g) samples, as the scorer's calibration batch),
** Wq the weights quantized as the scorer quantizes them; shift[i] = NULL for fp32 layers. */
int lpq_bias_shifts(const lpq_graph_t *g, const lpq_numfmt_t *w, const float *calib,
                    float **shift, lpq_error_t *err);

/* The strided sample of a layer's input that activation formats are calibrated on (every
** ceil(count / LPQ_ACT_SAMPLE_MAX)-th value): malloc'd, *n values; NULL when memory runs out. */
#define LPQ_ACT_SAMPLE_MAX 65536
float *lpq_act_sample(const float *x, size_t count, size_t *n);

#endif
