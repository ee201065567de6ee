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

/* ---- candidate configs (schema/candidate_config.schema.json) ------------------------------- */

/* A per-layer assignment of number formats, as a user or the search writes it:
**   {"version":1, "default":{"w":"lp<8,2,2,0>","a":"fp32"},
**    "layers":[{"name":"conv1","w":"lp<6,1,3,-1>"}, {"index":3,"a":"int8"}]}
** Entries name a quantizable layer by "name" or "index" (both: they must agree); "w" and "a" are
** optional per entry
** (the default applies). The default's own default is fp32. */
typedef struct lpq_config_entry_t {
  char *name;   /* NULL when the entry gives only an index */
  long index;   /* -1 when the entry gives only a name */
  int has_w, has_a;
  lpq_numfmt_t w, a;
} lpq_config_entry_t;

typedef struct lpq_config_t {
  int version;
  lpq_numfmt_t default_w, default_a;
  size_t count;
  lpq_config_entry_t *layers;
} lpq_config_t;

#define LPQ_CONFIG_VERSION 1
#define LPQ_CONFIG_MAX_BYTES ((size_t)16 << 20)

/* Parses a config from JSON text; `source` names it in messages (a file name). Errors name the
** entry and field ("layers[2].w: format 'lp<9,...>': ..."). */
lpq_config_t *lpq_config_parse(const char *text, size_t len, const char *source,
                               lpq_error_t *err);
lpq_config_t *lpq_config_load(const char *path, lpq_error_t *err);
void lpq_config_free(lpq_config_t **c);

/* Resolves the config against a model's quantizable layers (names[i] for layer i): fills
** w[i] and a[i]. An entry naming no layer, an index out of range, or two entries for one
** layer is an error naming the entry. */
int lpq_config_bind(const lpq_config_t *c, size_t nlayers, const char *const *names,
                    lpq_numfmt_t *w, lpq_numfmt_t *a, lpq_error_t *err);

/* The JSON text of a per-layer assignment (every layer listed by name and index); the caller
** frees it. Resolved LP formats are written with their sf. NULL when memory runs out. */
char *lpq_config_to_json(size_t nlayers, const char *const *names, const lpq_numfmt_t *w,
                         const lpq_numfmt_t *a);

/* ---- data loaders (.npy, IDX) -------------------------------------------------------------- */

/* ---- ONNX import and the inference graph --------------------------------------------------- */

#endif
