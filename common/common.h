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

/* Every loader checks what the file claims (magic, header, dtype, shape) against the file's
** real size before allocating, and on failure returns a negative LPQ_E* with a message that
** names the file and what is wrong (bad magic, header, dtype, shape, "truncated ... at byte X
** of Y"); *out is then NULL. On success the caller owns *out (lpq_array_free). */

/* A NumPy .npy file, format 1.0, 2.0 or 3.0: float32, float64, int64, int32, uint8, int8 or
** bool, little-endian, C order (fortran_order True is LPQ_EUNSUP). The data must be exactly the
** bytes the shape needs. */
int lpq_load_npy(const char *path, lpq_array_t **out, lpq_error_t *err);
/* Writes a as a .npy file (format 1.0, header padded to 64 bytes, as numpy writes it). */
int lpq_save_npy(const char *path, const lpq_array_t *a, lpq_error_t *err);
/* An MNIST-family IDX file, raw or gzip (told apart by the gzip magic, not the name). Type
** codes 0x08 uint8, 0x09 int8, 0x0B int16 (widened to int32), 0x0C int32, 0x0D float32,
** 0x0E float64; big-endian dimensions and values, converted to the host's order. */
int lpq_load_idx(const char *path, lpq_array_t **out, lpq_error_t *err);
/* By content: the .npy magic, else an IDX file (gzip or raw); else LPQ_EFORMAT. */
int lpq_load_array(const char *path, lpq_array_t **out, lpq_error_t *err);
/* Model input from images: uint8 pixels become x / 255 in float32, then (x - mean) / std;
** float32 input is only normalised (mean 0, std 1 copies it). A 3-d [N,H,W] input becomes
** [N,1,H,W] so a model's NCHW input fits; other shapes are kept. *out is new, caller owns it.
** LPQ_EINVAL for std <= 0 or non-finite mean/std, LPQ_EUNSUP for other element types. */
int lpq_images_to_f32(const lpq_array_t *in, double mean, double std, lpq_array_t **out,
                      lpq_error_t *err);

/* Byte order helpers the loaders share: 1 on a little-endian host; reverses the bytes of each
** of count elements of elem_size bytes in place. */
int lpq_host_is_little_endian(void);
void lpq_bswap(void *data, size_t count, size_t elem_size);

/* ---- ONNX import and the inference graph --------------------------------------------------- */

#endif
