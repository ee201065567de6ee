/* tests/onnx_build.c: see onnx_build.h. */
#include "tests/onnx_build.h"

#include <stdlib.h>

Onnx__ValueInfoProto *test_value_info(const char *name, int ndim, const int64_t *dims,
                                      Onnx__TensorShapeProto__Dimension *d,
                                      Onnx__TensorShapeProto__Dimension **dp,
                                      Onnx__TensorShapeProto *sh, Onnx__TypeProto__Tensor *tt,
                                      Onnx__TypeProto *tp, Onnx__ValueInfoProto *vi) {
  for (int i = 0; i < ndim; i++) {
    onnx__tensor_shape_proto__dimension__init(&d[i]);
    d[i].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
    d[i].dim_value = dims[i];
    dp[i] = &d[i];
  }
  onnx__tensor_shape_proto__init(sh);
  sh->n_dim = (size_t)ndim, sh->dim = dp;
  onnx__type_proto__tensor__init(tt);
  tt->has_elem_type = 1, tt->elem_type = 1, tt->shape = sh;
  onnx__type_proto__init(tp);
  tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE, tp->tensor_type = tt;
  onnx__value_info_proto__init(vi);
  vi->name = (char *)name, vi->type = tp;
  return vi;
}

void test_io(test_io_t *io, const int64_t *xd, const int64_t *yd, Onnx__GraphProto *gp) {
  io->ins[0] = test_value_info("x", 4, xd, io->d[0], io->dp[0], &io->sh[0], &io->tt[0],
                               &io->tp[0], &io->vi[0]);
  io->outs[0] = test_value_info("y", 4, yd, io->d[1], io->dp[1], &io->sh[1], &io->tt[1],
                                &io->tp[1], &io->vi[1]);
  gp->n_input = 1, gp->input = io->ins, gp->n_output = 1, gp->output = io->outs;
}

uint8_t *test_pack_model(Onnx__GraphProto *gp, size_t *len) {
  Onnx__OperatorSetIdProto op = ONNX__OPERATOR_SET_ID_PROTO__INIT, *ops[1] = {&op};
  op.domain = "", op.has_version = 1, op.version = 13;
  Onnx__ModelProto mp = ONNX__MODEL_PROTO__INIT;
  mp.has_ir_version = 1, mp.ir_version = 8, mp.n_opset_import = 1, mp.opset_import = ops;
  mp.graph = gp;
  *len = onnx__model_proto__get_packed_size(&mp);
  uint8_t *buf = malloc(*len);
  if (buf)
    onnx__model_proto__pack(&mp, buf);
  return buf;
}

float test_frand(unsigned *s) {
  *s = *s * 1103515245u + 12345u;
  return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

const float *test_swap_weight(void *user, size_t layer, const float *w, size_t count) {
  (void)layer, (void)w, (void)count;
  return user;
}
