/* tests/onnx_build.h: what the engine's kernel tests need to write small ONNX models in C and to
** fill them (tests/onnx_build.c): a float tensor's value info, a seeded uniform generator, and
** a weight hook that hands the layer its replacement (as a quantized evaluation does). */
#ifndef LPQ_TESTS_ONNX_BUILD_H
#define LPQ_TESTS_ONNX_BUILD_H

#include "onnx/onnx.pb-c.h"

#include <stddef.h>
#include <stdint.h>

/* vi names a float tensor of ndim dims; d (ndim), dp (ndim), sh, tt, tp are its storage. */
Onnx__ValueInfoProto *test_value_info(const char *name, int ndim, const int64_t *dims,
                                      Onnx__TensorShapeProto__Dimension *d,
                                      Onnx__TensorShapeProto__Dimension **dp,
                                      Onnx__TensorShapeProto *sh, Onnx__TypeProto__Tensor *tt,
                                      Onnx__TypeProto *tp, Onnx__ValueInfoProto *vi);
/* A graph's one input "x" and one output "y", 4-D float tensors of dims xd and yd, and their
** storage: test_io sets gp's inputs and outputs to them (io must outlive gp's packing). */
typedef struct test_io_t {
  Onnx__TensorShapeProto__Dimension d[2][4], *dp[2][4];
  Onnx__TensorShapeProto sh[2];
  Onnx__TypeProto__Tensor tt[2];
  Onnx__TypeProto tp[2];
  Onnx__ValueInfoProto vi[2], *ins[1], *outs[1];
} test_io_t;
void test_io(test_io_t *io, const int64_t *xd, const int64_t *yd, Onnx__GraphProto *gp);
/* gp as a serialized model (opset 13, IR version 8) in a malloc'd buffer of *len bytes. */
uint8_t *test_pack_model(Onnx__GraphProto *gp, size_t *len);
/* Uniform in [-1, 1), from the seed *s (advanced). */
float test_frand(unsigned *s);
/* lpq_hooks_t.weight returning user: every layer's weights replaced by the same array. */
const float *test_swap_weight(void *user, size_t layer, const float *w, size_t count);

#endif
