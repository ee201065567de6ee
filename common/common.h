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

#endif
