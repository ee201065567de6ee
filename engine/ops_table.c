/* common/ops_table.c: every operator lpq implements, looked up by ONNX op_type. */
#include "engine/engine_internal.h"

#include <string.h>

extern const op_def_t ops_conv_table[], ops_gemm_table[], ops_unary_table[], ops_binary_table[],
    ops_norm_table[], ops_pool_table[], ops_reduce_table[], ops_shape_table[], ops_tensor_table[];

static const op_def_t *const tables[] = {
    ops_conv_table,   ops_gemm_table,   ops_unary_table,  ops_binary_table, ops_norm_table,
    ops_pool_table,   ops_reduce_table, ops_shape_table,  ops_tensor_table,
};

const op_def_t *ops_find(const char *op_type) {
  for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++)
    for (const op_def_t *d = tables[t]; d->name; d++)
      if (strcmp(d->name, op_type) == 0)
        return d;
  return NULL;
}
