/*
** engine/engine_internal.h: the inference graph's private structures, shared by the loader
** (onnx_load.c, graph.c, graph_opt.c, graph_plan.c), the executor (graph_exec.c) and the
** operators (ops_*.c). Only files in engine/ include it; everyone else uses engine/engine.h.
** Non-static names declared here start with lpq__ (the generated protobuf-c code: onnx__).
*/
#ifndef LPQ_ENGINE_INTERNAL_H
#define LPQ_ENGINE_INTERNAL_H

#include "engine/engine.h"
#include "onnx/onnx.pb-c.h"

#include <stdint.h>

/* No single tensor may exceed this; a larger shape is hostile or a mistake. */
#define GRAPH_MAX_TENSOR_BYTES ((size_t)4 << 30)
/* Alignment of every activation buffer in the arena (cache line, SIMD friendly). */
#define GRAPH_ALIGN 64

/* A tensor of the graph: a constant (data owned) or a run-time activation (arena offset). */
typedef struct gval_t {
  char *name;
  lpq_dtype_t dtype; /* LPQ_DT_F32, LPQ_DT_I64 or LPQ_DT_BOOL inside the engine */
  int ndim;
  int64_t shape[LPQ_MAX_DIMS];
  size_t count;
  int known;       /* dtype and shape are set */
  void *cdata;     /* constant data, owned; NULL for run-time tensors */
  int producer;    /* node index, -1 for inputs and initializers */
  int input_index; /* >= 0 for a graph input */
  int uses;        /* live consumers (nodes), graph outputs count too */
  int is_output;
  int onnx_type;   /* an initializer's ONNX data type (int4, float8, ...: QuantizeLinear's target) */
  /* memory plan */
  int def_step, last_step;
  size_t offset; /* bytes into the arena */
  int planned;
} gval_t;

typedef struct gnode_t gnode_t;
typedef struct kctx_t kctx_t;
typedef struct threads_t threads_t;
typedef struct dwfuse_t dwfuse_t;

/* One operator: its attribute names (NULL-terminated; any other attribute is refused),
** prepare (checks inputs, parses attributes into n->params, sets the outputs' dtype and shape)
** and run (computes outputs from inputs; the same function folds constants at load). */
typedef struct op_def_t {
  const char *name;
  const char *const *attrs;
  int (*prepare)(lpq_graph_t *g, gnode_t *n, lpq_error_t *err);
  int (*run)(const kctx_t *k);
} op_def_t;

enum { ACT_NONE = 0, ACT_CLIP = 1 };

struct gnode_t {
  const op_def_t *op;
  char *name;      /* the ONNX name, or "OpType_<index>" when it had none */
  char *op_type;   /* as written in the model */
  int nin, nout;
  int *in, *out;   /* value indices; -1 for an omitted optional input or output */
  const Onnx__NodeProto *proto; /* valid while loading only */
  void *params;    /* op-specific, owned (free()) */
  size_t scratch_floats; /* scratch the kernel needs at run time */
  int layer;       /* quantizable layer index, -1 otherwise */
  int dead;        /* folded, fused away or not needed for any output */
  int residual;    /* conv: in[3] is added to the output before the activation */
  int act;         /* fused activation after the kernel */
  float act_lo, act_hi;
  float *wdata, *bdata; /* owned weight/bias (BN folded or re-laid out), or NULL */
  float *wpack;         /* conv: the weight packed for the GEMM kernel, per group, or NULL */
  int64_t wshape[4];
  int wndim;
  size_t wcount, bcount;
  dwfuse_t *fuse; /* owned: on runs without hooks this node and the depthwise conv (and 1x1
                     conv) after it run as one, band by band (ops_dwfuse.c); or NULL */
};

/* What a kernel sees. in[i]/out[i] are NULL for omitted optional tensors. */
struct kctx_t {
  const lpq_graph_t *g;
  const gnode_t *n;
  void *const *in;
  void *const *out;
  float *scratch;       /* n->scratch_floats floats */
  const float *weight;  /* for conv/gemm/matmul: the weight to use (hooked, folded or in[1]) */
  const float *bias;    /* the bias to use or NULL */
  const float *out_shift; /* gemm/matmul: added to every output row before the activation
                             (the bias hook's shift), or NULL */
  lpq_error_t *err;     /* for the rare run-time failure (e.g. an index out of range) */
  threads_t *pool;         /* the context's threads, NULL: run on the caller only */
  size_t scratch_stride; /* floats between the scratch areas of threads 0, 1, ... */
};

/* Threads of an execution context (graph_pool.c). lpq__threads_new(n < 2) is NULL: no threads.
** lpq__threads_run calls fn(arg, task, tid) for every task in [0, ntasks) across the threads (the
** caller is tid 0) and returns when all are done. A NULL pool runs them in order. */
threads_t *lpq__threads_new(int nthreads);
void lpq__threads_free(threads_t **p);
int lpq__threads_count(const threads_t *p);
void lpq__threads_run(threads_t *p, size_t ntasks, void (*fn)(void *arg, size_t task, int tid), void *arg);
static inline float *thread_scratch(const kctx_t *k, int tid) { /* thread tid's scratch */
  return k->scratch + (size_t)tid * k->scratch_stride;
}

struct lpq_graph_t {
  char *name;
  int opset;
  gval_t *vals;
  size_t nvals;
  gnode_t *nodes; /* topological order */
  size_t nnodes;
  int *inputs, *outputs;
  size_t ninputs, noutputs;
  lpq_layer_t *layers;
  size_t nlayers;
  size_t arena_bytes, scratch_floats, hook_floats;
  /* name -> value index (open addressing) */
  int *hash;
  size_t hash_cap;
};

/* Parameters of the operators the graph rewrites look into (graph_opt.c). */
typedef struct conv_params_t {
  int groups;
  int k[2], s[2], d[2], p[4]; /* kernel, stride, dilation (h, w); pads top, left, bottom, right */
  int64_t N, C, H, W, M, OH, OW;
  int spatial, cropped; /* 1 or 2; the run's window without its dead taps (ops_conv.c) */
} conv_params_t;

typedef struct gemm_params_t {
  int trans_a, trans_b;
  float alpha, beta;
  size_t M, N, K;
  int64_t c_shape[2]; /* C broadcast to [M, N] */
  int c_ndim;
} gemm_params_t;

typedef struct matmul_params_t {
  int64_t M, N, K;
  size_t batch;              /* broadcast batch count of the output */
  int nd;                    /* output rank */
  int64_t out_shape[LPQ_MAX_DIMS];
  int64_t a_batch_stride[LPQ_MAX_DIMS], b_batch_stride[LPQ_MAX_DIMS]; /* per output batch dim */
  int b_nk;                  /* the weight was laid out [N, K] at load (a quantizable layer) */
} matmul_params_t;

typedef struct bn_params_t { float eps; } bn_params_t;

typedef struct clip_params_t {
  float lo, hi;
} clip_params_t;

/* ---- helpers for operators (graph.c) ---- */
static inline gval_t *gv(const lpq_graph_t *g, int i) { return &g->vals[i]; }
/* Sets err to "node 'NAME' (OP): <message>" and returns code. */
int lpq__node_err(lpq_error_t *err, int code, const gnode_t *n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Defines output k of n: dtype and shape, checking the size. */
int lpq__set_output(lpq_graph_t *g, gnode_t *n, int k, lpq_dtype_t dt, int ndim, const int64_t *shape,
               lpq_error_t *err);
/* Requires input i to exist (and n->nin within [min,max] inputs, checked by lpq__check_arity). */
int lpq__check_arity(const gnode_t *n, int min_in, int max_in, int min_out, int max_out,
                lpq_error_t *err);
int lpq__need_input(const gnode_t *n, int i, lpq_error_t *err);
/* Input i's value must be one of the given dtype mask (1 << dtype). */
int lpq__need_dtype(const lpq_graph_t *g, const gnode_t *n, int i, unsigned mask, lpq_error_t *err);
#define DT(t) (1u << (t))
#define DT_NUM (DT(LPQ_DT_F32) | DT(LPQ_DT_I64))
#define DT_ANY (DT(LPQ_DT_F32) | DT(LPQ_DT_I64) | DT(LPQ_DT_BOOL))
/* Reads a constant integer input (1-D or scalar int64) into out (at most max values). */
int lpq__const_ints(const lpq_graph_t *g, const gnode_t *n, int i, int64_t *out, size_t max,
               size_t *count, lpq_error_t *err);
/* Normalises axis (negative counts from the end) against rank; error names the node. */
int lpq__norm_axis(const gnode_t *n, int64_t axis, int rank, int *out, lpq_error_t *err);

/* Attributes: absent -> default / count 0. Wrong type -> LPQ_EFORMAT naming the attribute. */
const Onnx__AttributeProto *lpq__attr_find(const gnode_t *n, const char *name);
int lpq__attr_int(const gnode_t *n, const char *name, int64_t def, int64_t *out, lpq_error_t *err);
int lpq__attr_float(const gnode_t *n, const char *name, float def, float *out, lpq_error_t *err);
int lpq__attr_ints(const gnode_t *n, const char *name, int64_t *out, size_t max, size_t *count,
              lpq_error_t *err);
int lpq__attr_floats(const gnode_t *n, const char *name, float *out, size_t max, size_t *count,
                lpq_error_t *err);
/* Copies a string attribute (NUL-terminated) into out; def when absent. */
int lpq__attr_string(const gnode_t *n, const char *name, const char *def, char *out, size_t len,
                lpq_error_t *err);
/* A tensor attribute converted to an engine array (caller frees); NULL with err when absent. */
int lpq__attr_tensor(const gnode_t *n, const char *name, lpq_array_t **out, lpq_error_t *err);

/* TensorProto -> array (any dtype lpq_array_t knows), checking every size (tensorproto.c).
** The quantized export's narrow types come out as the engine computes in them: int4, uint4,
** int16, uint16 as int64, float8e4m3fn and float8e5m2 as their float values. */
int lpq__tensorproto_to_array(const Onnx__TensorProto *t, lpq_array_t **out, lpq_error_t *err);
/* The float value of an FP8 byte (ONNX_DT_F8E4M3FN or ONNX_DT_F8E5M2), and the nearest FP8
** value of x (ties to even; beyond the largest: the largest when saturate, else Inf/NaN). */
float lpq__fp8_value(int onnx_type, uint8_t b);
float lpq__fp8_round(int onnx_type, float x, int saturate);
/* Converts a to an engine dtype in place (ints -> int64, uint8 bool stays bool); LPQ_EUNSUP
** for float64 and other types the engine does not compute in. */
int lpq__array_to_engine_dtype(lpq_array_t *a, lpq_error_t *err);

/* Model-local functions inlined (onnx_inline.c): *out is m's graph with every call of a
** function of m replaced by copies of its body (the copies in *owned, freed after the build). */
typedef struct lpq__inlined_t {
  Onnx__NodeProto **nodes; /* the copies */
  size_t count;
  Onnx__NodeProto **array; /* out->node */
} lpq__inlined_t;
int lpq__inline_functions(const Onnx__ModelProto *m, Onnx__GraphProto *out,
                          lpq__inlined_t *owned, lpq_error_t *err);
void lpq__inlined_free(lpq__inlined_t *o);

/* Operator table lookup (ops_table.c). NULL when lpq does not implement op_type. */
const op_def_t *lpq__ops_find(const char *op_type);

int lpq__graph_plan(lpq_graph_t *g, lpq_error_t *err); /* the arena offsets (graph_plan.c) */
/* Depthwise conv of a channel plane, bias and clamp too; scratch floats (ops_depthwise.c). */
size_t lpq__depthwise_scratch(const conv_params_t *p);
void lpq__depthwise_plane(const conv_params_t *p, const float *x, const float *w, float bias,
                     float lo, float hi, float *y, float *scratch);
/* 3x3 depthwise output rows [oy0, oy1) of one channel (stride 1 or 2, pads 1) into out (row
** oy0 first, OW apart), read from E, the plane's rows from lo_row on (W apart; only columns
** [0, W) of the rows the windows cover are read); zero: a row of W zeros (ops_depthwise.c). */
void lpq__dw3_rows(const conv_params_t *p, const float *E, int64_t lo_row, const float *zero,
                   const float *w, float b, float lo, float hi, int64_t oy0, int64_t oy1,
                   float *out);
/* The depthwise conv on small maps, DWB channels at a time (ops_dwblock.c): 0 when it
** does not apply (then the planes one by one), else 1 after the whole run. Its scratch. */
int lpq__dwblock_run(const kctx_t *k, float lo, float hi);
size_t lpq__dwblock_scratch(const conv_params_t *p);

/* The implicit GEMM's B packer (ops_conv_pack.c), a pack callback of lpq__kern_sgemm_implicit: x
** is image 0's first channel of the group, pos0 the output position of column 0 (past OH OW:
** the next images, img_stride floats apart). Only with lpq's GEMM kernel (lpq__sgemm_packs_a()). */
typedef struct conv_implicit_t {
  const conv_params_t *p;
  const float *x;
  int64_t pos0, img_stride;
} conv_implicit_t;
void lpq__conv_pack_b(const void *ctx, size_t k0, size_t kc, size_t n0, size_t nc, float *Bp);
/* The same for a pointwise conv over several images (columns from c0 on, image-major). */
typedef struct conv_pointwise_t {
  const float *x; /* image 0's first channel of the group */
  int64_t c0, OHW, HW, img_stride;
} conv_pointwise_t;
void lpq__conv_pack_pointwise(const void *ctx, size_t k0, size_t kc, size_t n0, size_t nc,
                              float *Bp);

/* Fused depthwise chains (ops_dwfuse.c): a 1x1 conv -> 3x3 depthwise conv -> 1x1 conv (either
** 1x1 may be absent, not both) computed a band of rows at a time, the intermediate tensors kept
** in the thread's cache, never written. lpq__dwfuse_plan marks each chain's first node (after
** the weights are packed, before the memory plan; LPQ_DWFUSE=0: none; also a 1x1 conv whose
** output only a GlobalAveragePool reads, pooled without writing it); lpq__dwfuse_run runs
** chain n from the tensors' data (ptr: every value's) and returns how many of the nodes after n
** it covered (the next live ones), or < 0 with err. Hooked runs keep to the nodes one by one. */
int lpq__dwfuse_plan(lpq_graph_t *g, lpq_error_t *err);
int lpq__dwfuse_run(const lpq_graph_t *g, const gnode_t *n, void *const *ptr, float *scratch,
                    threads_t *pool, size_t scratch_stride, lpq_error_t *err);
/* The last node of chain n (the memory plan keeps n's inputs alive to it), -1 when none. */
int lpq__dwfuse_end(const gnode_t *n);
/* Tests: the smallest map (H * W) fused, a band's floats (read at load), chain runs split. */
extern int64_t lpq__dwfuse_min_hw, lpq__dwfuse_band_floats, lpq__dwfuse_split_runs;
/* Constant weights packed once at load for lpq's GEMM kernel (ops_conv.c; ops_gemm.c: a Gemm's
** or MatMul's constant B, nothing without one). */
int lpq__conv_prepack(lpq_graph_t *g, gnode_t *n, lpq_error_t *err);
int lpq__gemm_prepack(lpq_graph_t *g, gnode_t *n, lpq_error_t *err),
    lpq__matmul_prepack(lpq_graph_t *g, gnode_t *n, lpq_error_t *err);
/* Graph rewrites after folding (graph_opt.c), and the nodes they turn into a SiLU (a Sigmoid
** node, ops_unary.c) or a LayerNormalization of value x without scale (ops_norm.c). */
int lpq__graph_optimize(lpq_graph_t *g, lpq_error_t *err);
void lpq__unary_silu(gnode_t *n);
int lpq__ln_adopt(gnode_t *n, int x, size_t outer, size_t inner, float eps, lpq_error_t *err);
/* Quantizable layer table (graph_opt.c). */
int lpq__graph_build_layers(lpq_graph_t *g, lpq_error_t *err);

/* Runs one node (graph_exec.c): in/out are data pointers per input/output; weight_override
** replaces the layer weight when not NULL. Used by the executor and by constant folding. */
int lpq__graph_run_node(const lpq_graph_t *g, const gnode_t *n, void *const *in, void *const *out,
                   float *scratch, const float *weight_override, threads_t *pool,
                   size_t scratch_stride, lpq_error_t *err);

/* Convolution/pooling windows (ops_conv.c). lpq__conv_out_dim: one axis's output size and pads
** (auto_pad NOTSET/SAME_UPPER/SAME_LOWER/VALID, ceil_mode for pools). lpq__read_window: the
** kernel_shape/strides/dilations/pads attributes for 1 or 2 spatial axes in 2-D form. */
int lpq__conv_out_dim(const gnode_t *n, const char *auto_pad, int64_t in, int k, int s, int d,
                 int *pb, int *pe, int ceil_mode, int64_t *out, lpq_error_t *err);
int lpq__read_window(const gnode_t *n, int spatial, const int64_t *wk, int with_dil, int k[2],
                int s[2], int d[2], int p[4], char *auto_pad, size_t ap_len, lpq_error_t *err);

/* Applies the fused activation of n to y[0..count). */
void lpq__apply_act(const gnode_t *n, float *y, size_t count);

#include "engine/engine_kernels.h" /* the kernels: instruction set, inner loops, GEMM */


/* ---- building ONNX messages by hand (onnx_pb.c) and the export's functions (onnx_quant_fn.c) ----
** Built parts are malloc'd as protobuf-c's unpacker lays them out, so free_unpacked frees a
** model mixing both. A failed allocation sets pb->oom and yields NULL; check pb->oom at the end. */
typedef struct lpq_pb_t {
  int oom;
} lpq_pb_t;

#define LPQ_ONNX_DOMAIN "lpq"
/* ONNX TensorProto.DataType numbers the export writes beyond lpq_dtype_t's */
enum { ONNX_DT_U16 = 4, ONNX_DT_I16 = 5, ONNX_DT_F8E4M3FN = 17, ONNX_DT_F8E5M2 = 19,
       ONNX_DT_U4 = 21, ONNX_DT_I4 = 22 };

/* Appends item to a protobuf repeated field (array_p: address of the array pointer). */
void *lpq__pb_push(lpq_pb_t *pb, void *array_p, size_t *count, void *item);
char *lpq__pb_str(lpq_pb_t *pb, const char *s);
Onnx__NodeProto *lpq__pb_node(lpq_pb_t *pb, const char *op, const char *domain, const char *name,
                              size_t nin, const char *const *in, size_t nout,
                              const char *const *out);
void lpq__pb_attr_int(lpq_pb_t *pb, Onnx__NodeProto *n, const char *name, int64_t v);
void lpq__pb_attr_tensor(lpq_pb_t *pb, Onnx__NodeProto *n, const char *name,
                         Onnx__TensorProto *t);
/* A tensor with raw_data (little-endian, as ONNX); name may be NULL (Constant values). */
Onnx__TensorProto *lpq__pb_tensor(lpq_pb_t *pb, const char *name, int dtype, int ndim,
                                  const int64_t *dims, const void *raw, size_t raw_len);
Onnx__TensorProto *lpq__pb_scalar(lpq_pb_t *pb, const char *name, int dtype, const void *v,
                                  size_t size);
/* ONNX's 4-bit layout: element 2i in the low nibble of byte i, 2i+1 in the high one. */
void lpq__pack_nibbles(const uint8_t *v, size_t count, uint8_t *out);
Onnx__FunctionProto *lpq__pb_function(lpq_pb_t *pb, const char *domain, const char *name,
                                      size_t nin, const char *const *in, size_t nout,
                                      const char *const *out, int opset);
/* Reads and unpacks an ONNX file (LPQ_EIO / LPQ_EFORMAT naming it). */
int lpq__onnx_read_model(const char *path, Onnx__ModelProto **m, lpq_error_t *err);
void lpq__pb_metadata(lpq_pb_t *pb, Onnx__ModelProto *m, const char *key, const char *value);
/* Sets (or adds) the model's import of domain ("" = the default) to version. */
void lpq__pb_opset(lpq_pb_t *pb, Onnx__ModelProto *m, const char *domain, int64_t version);
/* Formats the export writes as QuantizeLinear/DequantizeLinear (INT, FP8 E4M3/E5M2); an FP8
** format's ONNX type; a type's name; the value multiplier of a resolved format (INT and
** minifloat scale, afloat 2^bias, LP 2^-sf, posit 1); n codes of f (lpq's: two's complement of
** sign and magnitude index) as the raw_data of the ONNX type set in *dtype (*len bytes). */
int lpq__qdq_family(const lpq_numfmt_t *f);
int lpq__fp8_type(const lpq_numfmt_t *f);
const char *lpq__onnx_type_name(int dtype);
double lpq__fmt_scale(const lpq_numfmt_t *f);
uint8_t *lpq__store_codes(const lpq_numfmt_t *f, const uint16_t *codes, size_t n, int *dtype,
                          size_t *len);
/* lpq.LPDequantize(codes, table, scale) and lpq.LPQuantize(x, thresholds, magnitudes, scale)
** with a binary search of `steps` steps (thresholds padded to 2^steps - 1 entries). */
Onnx__FunctionProto *lpq__fn_lpdequantize(lpq_pb_t *pb);
Onnx__FunctionProto *lpq__fn_lpquantize(lpq_pb_t *pb, int steps);

#endif
