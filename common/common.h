/*
** common/common.h: what every lpq process shares (DESIGN section 4): n-dimensional arrays,
** ONNX import and the inference graph, data loaders (.npy, IDX), and logging.
** Other folders include only this header (and lp/lp.h).
*/
#ifndef LPQ_COMMON_H
#define LPQ_COMMON_H

#include "lp/lp.h"

#include <stddef.h>
#include <stdint.h>

/* ---- arrays ------------------------------------------------------------------------------ */

#define LPQ_MAX_DIMS 8

/* Element types, numbered as ONNX's TensorProto.DataType. */
typedef enum lpq_dtype_t {
  LPQ_DT_F32 = 1,
  LPQ_DT_U8 = 2,
  LPQ_DT_I8 = 3,
  LPQ_DT_I32 = 6,
  LPQ_DT_I64 = 7,
  LPQ_DT_BOOL = 9,
  LPQ_DT_F64 = 11,
} lpq_dtype_t;

/* Size in bytes of one element, 0 for an unknown type. */
size_t lpq_dtype_size(lpq_dtype_t t);
const char *lpq_dtype_name(lpq_dtype_t t);

/* A dense C-order array that owns its data. */
typedef struct lpq_array_t {
  lpq_dtype_t dtype;
  int ndim;
  int64_t shape[LPQ_MAX_DIMS];
  size_t count; /* product of shape, 1 for ndim = 0 */
  void *data;   /* count * lpq_dtype_size(dtype) bytes, zero-initialised */
} lpq_array_t;

/* Element count of a shape; LPQ_ERANGE when a dimension is negative, the product overflows,
** or the byte size (count * elem_size) exceeds max_bytes. */
int lpq_shape_count(int ndim, const int64_t *shape, size_t elem_size, size_t max_bytes,
                    size_t *count, lpq_error_t *err);
/* A new zeroed array; NULL with err set on a bad shape or when memory runs out. */
lpq_array_t *lpq_array_new(lpq_dtype_t dtype, int ndim, const int64_t *shape, lpq_error_t *err);
void lpq_array_free(lpq_array_t **a);
/* "[256,1,28,28]" into buf; returns buf. */
char *lpq_shape_str(int ndim, const int64_t *shape, char *buf, size_t len);

/* ---- data loaders (.npy, IDX) -------------------------------------------------------------- */

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
** Convolutions run as an implicit GEMM (the im2col panels are packed straight from the
** input) on lpq's AVX-512 kernel where the CPU has one, else im2col + OpenBLAS sgemm; 3x3
** depthwise convs have a direct kernel; Gemm and MatMul use OpenBLAS. Setting LPQ_PROFILE=1
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
} lpq_hooks_t;

/* One forward pass of a single-input, single-output float graph: input holds the input's
** count floats, output receives the output's count floats. hooks may be NULL (no copies).
** Returns 0 or a negative LPQ_E* with err set. */
int lpq_exec_run(lpq_exec_t *x, const float *input, float *output, const lpq_hooks_t *hooks,
                 lpq_error_t *err);
/* Any graph: inputs[i] points at input i's data (its dtype and count), outputs[i] receives
** output i. */
int lpq_exec_run_multi(lpq_exec_t *x, const void *const *inputs, void *const *outputs,
                       const lpq_hooks_t *hooks, lpq_error_t *err);

/* OpenBLAS 0.3.21 (Debian 12) does not recognise recent AMD CPUs and falls back to its AVX2
** (Haswell) kernels, about 1.5x slower than its AVX-512 (SkylakeX) ones where the CPU has
** AVX-512. The kernel set is chosen when the library loads, from OPENBLAS_CORETYPE, so this
** re-executes the program (argv as given to main) with OPENBLAS_CORETYPE=SkylakeX when that
** is unset, the CPU has AVX-512 (F, BW, DQ, VL) and OpenBLAS picked Haswell or Zen. Returns
** only when nothing needed to change or the exec failed. Call it first thing in main(). An
** OPENBLAS_CORETYPE set by the user is respected. (lpq's convolutions do not use OpenBLAS on
** AVX-512 CPUs; Gemm and MatMul do.) */
void lpq_blas_select_kernels(char **argv);

/* A serialized ONNX TensorProto (e.g. a test's input_0.pb) as an array; the tensor's name is
** copied into name (may be NULL). Every size is checked against the buffer. */
int lpq_tensorproto_load(const void *data, size_t len, lpq_array_t **out, char *name,
                         size_t name_len, lpq_error_t *err);

#endif
