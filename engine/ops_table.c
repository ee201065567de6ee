/* engine/ops_table.c: every operator lpq implements, looked up by ONNX op_type. */
#include "engine/engine_internal.h"

#include <string.h>

extern const op_def_t lpq__ops_conv_table[], lpq__ops_gemm_table[], lpq__ops_unary_table[], lpq__ops_binary_table[],
    lpq__ops_norm_table[], lpq__ops_pool_table[], lpq__ops_reduce_table[], lpq__ops_shape_table[], lpq__ops_tensor_table[],
    lpq__ops_quant_table[], lpq__ops_scatter_table[],
    lpq__ops_resize_table[];

static const op_def_t *const tables[] = {
    lpq__ops_conv_table,   lpq__ops_gemm_table,   lpq__ops_unary_table,  lpq__ops_binary_table, lpq__ops_norm_table,
    lpq__ops_pool_table,   lpq__ops_reduce_table, lpq__ops_shape_table,  lpq__ops_tensor_table,
    lpq__ops_quant_table,  lpq__ops_scatter_table, lpq__ops_resize_table,
};

const op_def_t *lpq__ops_find(const char *op_type) {
  for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++)
    for (const op_def_t *d = tables[t]; d->name; d++)
      if (strcmp(d->name, op_type) == 0)
        return d;
  return NULL;
}
