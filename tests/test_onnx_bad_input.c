/* tests/test_onnx_bad_input.c: truncated, corrupt and hostile ONNX models. Each must fail
** with an error naming the file, node or field and the reason, never crash or read out of
** bounds (the suite runs under ASan in `make check-asan`). Models are built here by filling
** protobuf-c structs and packing them. */
#include "engine/engine.h"
#include "onnx/onnx.pb-c.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

/* A small valid model: x[1,2,4,4] -> Conv(W[3,2,3,3], pads 1) -> Relu -> y, with hooks for
** each test to break one thing. Everything lives in this struct so it can be edited. */
typedef struct model_t {
  Onnx__ModelProto m;
  Onnx__OperatorSetIdProto opset, *opsets[1];
  Onnx__GraphProto g;
  Onnx__NodeProto conv, relu, *nodes[2];
  char *conv_in[2], *conv_out[1], *relu_in[1], *relu_out[1];
  Onnx__AttributeProto pads, bogus, *attrs[2];
  int64_t pads_v[4];
  Onnx__TensorProto w, *inits[1];
  int64_t w_dims[4];
  float w_data[54];
  Onnx__ValueInfoProto xin, yout, *ins[1], *outs[1];
  Onnx__TypeProto xt;
  Onnx__TypeProto__Tensor xtt;
  Onnx__TensorShapeProto xs;
  Onnx__TensorShapeProto__Dimension xd[4], *xdp[4];
} model_t;

static void model_init(model_t *M) {
  memset(M, 0, sizeof *M);
  onnx__model_proto__init(&M->m);
  onnx__operator_set_id_proto__init(&M->opset);
  onnx__graph_proto__init(&M->g);
  onnx__node_proto__init(&M->conv);
  onnx__node_proto__init(&M->relu);
  onnx__attribute_proto__init(&M->pads);
  onnx__attribute_proto__init(&M->bogus);
  onnx__tensor_proto__init(&M->w);
  onnx__value_info_proto__init(&M->xin);
  onnx__value_info_proto__init(&M->yout);
  onnx__type_proto__init(&M->xt);
  onnx__type_proto__tensor__init(&M->xtt);
  onnx__tensor_shape_proto__init(&M->xs);
  M->m.has_ir_version = 1, M->m.ir_version = 8;
  M->opset.domain = "", M->opset.has_version = 1, M->opset.version = 13;
  M->opsets[0] = &M->opset;
  M->m.n_opset_import = 1, M->m.opset_import = M->opsets;
  M->m.graph = &M->g;
  M->g.name = "bad";
  /* input x: float [1,2,4,4] */
  static const int64_t xdims[4] = {1, 2, 4, 4};
  for (int i = 0; i < 4; i++) {
    onnx__tensor_shape_proto__dimension__init(&M->xd[i]);
    M->xd[i].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
    M->xd[i].dim_value = xdims[i];
    M->xdp[i] = &M->xd[i];
  }
  M->xs.n_dim = 4, M->xs.dim = M->xdp;
  M->xtt.has_elem_type = 1, M->xtt.elem_type = 1, M->xtt.shape = &M->xs;
  M->xt.value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE, M->xt.tensor_type = &M->xtt;
  M->xin.name = "x", M->xin.type = &M->xt;
  M->yout.name = "y";
  M->ins[0] = &M->xin, M->outs[0] = &M->yout;
  M->g.n_input = 1, M->g.input = M->ins;
  M->g.n_output = 1, M->g.output = M->outs;
  /* W [3,2,3,3] */
  static const int64_t wd[4] = {3, 2, 3, 3};
  memcpy(M->w_dims, wd, sizeof wd);
  for (int i = 0; i < 54; i++)
    M->w_data[i] = (float)(i % 7) * 0.1f - 0.3f;
  M->w.name = "W", M->w.n_dims = 4, M->w.dims = M->w_dims;
  M->w.has_data_type = 1, M->w.data_type = 1;
  M->w.has_raw_data = 1, M->w.raw_data.len = sizeof M->w_data;
  M->w.raw_data.data = (uint8_t *)M->w_data;
  M->inits[0] = &M->w;
  M->g.n_initializer = 1, M->g.initializer = M->inits;
  /* Conv(x, W) -> c, pads 1; Relu(c) -> y */
  M->pads.name = "pads", M->pads.has_type = 1;
  M->pads.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
  for (int i = 0; i < 4; i++)
    M->pads_v[i] = 1;
  M->pads.n_ints = 4, M->pads.ints = M->pads_v;
  M->attrs[0] = &M->pads;
  M->conv.name = "conv1", M->conv.op_type = "Conv";
  M->conv_in[0] = "x", M->conv_in[1] = "W", M->conv_out[0] = "c";
  M->conv.n_input = 2, M->conv.input = M->conv_in;
  M->conv.n_output = 1, M->conv.output = M->conv_out;
  M->conv.n_attribute = 1, M->conv.attribute = M->attrs;
  M->relu.name = "relu1", M->relu.op_type = "Relu";
  M->relu_in[0] = "c", M->relu_out[0] = "y";
  M->relu.n_input = 1, M->relu.input = M->relu_in;
  M->relu.n_output = 1, M->relu.output = M->relu_out;
  M->nodes[0] = &M->conv, M->nodes[1] = &M->relu;
  M->g.n_node = 2, M->g.node = M->nodes;
}

static uint8_t *pack(const model_t *M, size_t *len) {
  *len = onnx__model_proto__get_packed_size(&M->m);
  uint8_t *buf = malloc(*len + 1);
  cr_assert_not_null(buf);
  onnx__model_proto__pack(&M->m, buf);
  return buf;
}

/* Loads the model; expects failure with code (0: any) and every needle in the message. */
static void expect_fail(const model_t *M, int code, const char *n1, const char *n2) {
  size_t len;
  uint8_t *buf = pack(M, &len);
  lpq_error_t err = {0};
  lpq_graph_t *g = lpq_graph_load_buffer(buf, len, "hostile.onnx", 1, &err);
  free(buf);
  cr_assert_null(g, "a bad model loaded (expected '%s')", n1 ? n1 : "");
  lpq_graph_free(&g);
  if (code)
    cr_assert_eq(err.code, code, "code %d, expected %d: %s", err.code, code, err.msg);
  cr_assert(strstr(err.msg, "hostile.onnx"), "message does not name the file: %s", err.msg);
  if (n1)
    cr_assert(strstr(err.msg, n1), "message lacks '%s': %s", n1, err.msg);
  if (n2)
    cr_assert(strstr(err.msg, n2), "message lacks '%s': %s", n2, err.msg);
}

Test(onnx_bad_input, the_base_model_is_valid) {
  model_t M;
  model_init(&M);
  size_t len;
  uint8_t *buf = pack(&M, &len);
  lpq_error_t err;
  lpq_graph_t *g = lpq_graph_load_buffer(buf, len, "ok.onnx", 1, &err);
  free(buf);
  cr_assert_not_null(g, "%s", err.msg);
  cr_assert_eq(lpq_graph_num_layers(g), 1);
  lpq_graph_free(&g);
  cr_assert_null(g);
}

Test(onnx_bad_input, every_truncation_fails_cleanly) {
  model_t M;
  model_init(&M);
  size_t len;
  uint8_t *buf = pack(&M, &len);
  int loaded = 0;
  for (size_t cut = 0; cut < len; cut++) {
    uint8_t *copy = malloc(cut + 1); /* exact size: ASan sees any read past the end */
    memcpy(copy, buf, cut);
    lpq_error_t err = {0};
    lpq_graph_t *g = lpq_graph_load_buffer(copy, cut, "cut.onnx", 1, &err);
    if (g)
      loaded++;
    else
      cr_assert(strstr(err.msg, "cut.onnx"), "message does not name the file: %s", err.msg);
    lpq_graph_free(&g);
    free(copy);
  }
  /* a prefix can be a valid smaller message, but never the whole model minus its tail nodes
  ** and outputs; most prefixes must fail */
  cr_assert_lt(loaded, (int)(len / 4), "%d of %zu truncations loaded", loaded, len);
  free(buf);
}

Test(onnx_bad_input, random_corruption_never_crashes) {
  model_t M;
  model_init(&M);
  size_t len;
  uint8_t *buf = pack(&M, &len);
  unsigned seed = 12345;
  const int rounds = getenv("LPQ_ASAN") ? 300 : 2000;
  int failed = 0;
  for (int r = 0; r < rounds; r++) {
    uint8_t *copy = malloc(len);
    memcpy(copy, buf, len);
    for (int f = 0; f < 1 + r % 4; f++) {
      seed = seed * 1103515245u + 12345u;
      copy[(seed >> 8) % len] ^= (uint8_t)(1u << ((seed >> 4) % 8));
    }
    lpq_error_t err = {0};
    lpq_graph_t *g = lpq_graph_load_buffer(copy, len, "flip.onnx", 1, &err);
    if (g) { /* still valid: it must run */
      lpq_exec_t *x = lpq_exec_new(g, &err);
      lpq_tensor_info_t in, out;
      if (x && lpq_graph_num_inputs(g) == 1 && lpq_graph_num_outputs(g) == 1 &&
          lpq_graph_input(g, 0, &in) == 0 && lpq_graph_output(g, 0, &out) == 0 &&
          in.dtype == LPQ_DT_F32 && out.dtype == LPQ_DT_F32 && in.count < 100000 &&
          out.count < 100000) {
        float *xi = calloc(in.count + 1, sizeof *xi), *yo = calloc(out.count + 1, sizeof *yo);
        lpq_exec_run(x, xi, yo, NULL, &err);
        free(xi), free(yo);
      }
      lpq_exec_free(&x);
      lpq_graph_free(&g);
    } else {
      failed++;
      cr_assert(err.msg[0], "an error without a message");
    }
    free(copy);
  }
  cr_assert_gt(failed, 0);
  free(buf);
}

Test(onnx_bad_input, raw_data_shorter_than_the_shape) {
  model_t M;
  model_init(&M);
  M.w.raw_data.len = sizeof M.w_data - 8;
  expect_fail(&M, LPQ_EFORMAT, "raw_data", "'W'");
}

Test(onnx_bad_input, typed_data_count_wrong) {
  model_t M;
  model_init(&M);
  M.w.has_raw_data = 0;
  M.w.n_float_data = 10, M.w.float_data = M.w_data;
  expect_fail(&M, LPQ_EFORMAT, "float_data", "'W'");
}

Test(onnx_bad_input, overflowing_shape) {
  model_t M;
  model_init(&M);
  M.w_dims[0] = (int64_t)1 << 40, M.w_dims[1] = (int64_t)1 << 40;
  expect_fail(&M, LPQ_ERANGE, "'W'", NULL);
}

Test(onnx_bad_input, negative_dimension) {
  model_t M;
  model_init(&M);
  M.w_dims[2] = -3;
  expect_fail(&M, LPQ_ERANGE, "'W'", "negative");
}

Test(onnx_bad_input, absurd_input_dimension) {
  model_t M;
  model_init(&M);
  M.xd[2].dim_value = (int64_t)1 << 40;
  expect_fail(&M, 0, "'x'", NULL);
}

Test(onnx_bad_input, absurd_output_of_a_constant_shape) {
  /* ConstantOfShape asked for 2^62 elements: refused before allocating */
  model_t M;
  model_init(&M);
  static int64_t big[2] = {(int64_t)1 << 31, (int64_t)1 << 31};
  static int64_t two = 2;
  Onnx__TensorProto shape_t = ONNX__TENSOR_PROTO__INIT;
  shape_t.name = "S", shape_t.n_dims = 1, shape_t.dims = &two;
  shape_t.has_data_type = 1, shape_t.data_type = 7;
  shape_t.n_int64_data = 2, shape_t.int64_data = big;
  Onnx__TensorProto *inits[2] = {&M.w, &shape_t};
  M.g.n_initializer = 2, M.g.initializer = inits;
  Onnx__NodeProto cos = ONNX__NODE_PROTO__INIT;
  char *cin[1] = {"S"}, *cout[1] = {"big"}, *ain[2] = {"c", "big"}, *aout[1] = {"y"};
  cos.name = "make_big", cos.op_type = "ConstantOfShape";
  cos.n_input = 1, cos.input = cin, cos.n_output = 1, cos.output = cout;
  M.relu.op_type = "Add", M.relu.name = "add_big";
  M.relu.n_input = 2, M.relu.input = ain, M.relu.n_output = 1, M.relu.output = aout;
  Onnx__NodeProto *nodes[3] = {&M.conv, &cos, &M.relu};
  M.g.n_node = 3, M.g.node = nodes;
  expect_fail(&M, LPQ_ERANGE, "make_big", "too large");
}

Test(onnx_bad_input, cycle_names_a_node) {
  model_t M;
  model_init(&M);
  M.conv_in[0] = "y"; /* conv reads relu's output, relu reads conv's */
  expect_fail(&M, LPQ_EFORMAT, "cycle", "node '");
}

Test(onnx_bad_input, missing_input_names_node_and_tensor) {
  model_t M;
  model_init(&M);
  M.relu_in[0] = "nowhere";
  expect_fail(&M, LPQ_EFORMAT, "relu1", "'nowhere'");
}

Test(onnx_bad_input, missing_graph_output) {
  model_t M;
  model_init(&M);
  M.yout.name = "ghost";
  expect_fail(&M, LPQ_EFORMAT, "'ghost'", NULL);
}

Test(onnx_bad_input, tensor_defined_twice) {
  model_t M;
  model_init(&M);
  M.relu_out[0] = "c";
  expect_fail(&M, LPQ_EFORMAT, "'c'", "already");
}

Test(onnx_bad_input, unsupported_operator_names_node_and_op) {
  model_t M;
  model_init(&M);
  M.relu.op_type = "FrobnicateV2";
  expect_fail(&M, LPQ_EUNSUP, "relu1", "FrobnicateV2");
}

Test(onnx_bad_input, unsupported_attribute_names_it) {
  model_t M;
  model_init(&M);
  M.bogus.name = "quantum_mode", M.bogus.has_type = 1;
  M.bogus.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT, M.bogus.has_i = 1, M.bogus.i = 1;
  M.attrs[1] = &M.bogus;
  M.conv.n_attribute = 2;
  expect_fail(&M, LPQ_EUNSUP, "conv1", "quantum_mode");
}

Test(onnx_bad_input, attribute_of_the_wrong_type) {
  model_t M;
  model_init(&M);
  M.pads.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
  expect_fail(&M, LPQ_EFORMAT, "conv1", "'pads'");
}

Test(onnx_bad_input, weight_that_does_not_fit_the_input) {
  model_t M;
  model_init(&M);
  M.w_dims[1] = 1, M.w_dims[0] = 6; /* 54 floats still, but 1 input channel instead of 2 */
  expect_fail(&M, LPQ_EFORMAT, "conv1", "group");
}

Test(onnx_bad_input, unsupported_input_dtype) {
  model_t M;
  model_init(&M);
  M.xtt.elem_type = 10; /* float16 */
  expect_fail(&M, LPQ_EUNSUP, "'x'", "data type");
}

Test(onnx_bad_input, symbolic_dimension_other_than_batch) {
  model_t M;
  model_init(&M);
  M.xd[3].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
  M.xd[3].dim_param = "width";
  expect_fail(&M, LPQ_EUNSUP, "'x'", "width");
}

Test(onnx_bad_input, huge_pads_are_refused) {
  model_t M;
  model_init(&M);
  M.pads_v[0] = (int64_t)1 << 50;
  expect_fail(&M, LPQ_ERANGE, "conv1", "pads");
}

Test(onnx_bad_input, not_a_model_and_no_file) {
  lpq_error_t err;
  static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x12, 0x34};
  cr_assert_null(lpq_graph_load_buffer(junk, sizeof junk, "junk.onnx", 1, &err));
  cr_assert(strstr(err.msg, "junk.onnx"), "%s", err.msg);
  cr_assert_null(lpq_graph_load_buffer(junk, 0, "empty.onnx", 1, &err));
  cr_assert(strstr(err.msg, "empty.onnx"), "%s", err.msg);
  cr_assert_null(lpq_graph_load("no/such/model.onnx", 1, &err));
  cr_assert_eq(err.code, LPQ_EIO);
  cr_assert(strstr(err.msg, "no/such/model.onnx"), "%s", err.msg);
}

/* Hand-built models from tests/fixtures/make_engine_fixtures.py (op_fixtures). */
static void expect_file_fails(const char *path, int code, const char *n1, const char *n2) {
  lpq_error_t err = {0};
  lpq_graph_t *g = lpq_graph_load(path, 2, &err);
  cr_assert_null(g, "%s loaded (expected '%s')", path, n1);
  cr_assert_eq(err.code, code, "code %d, expected %d: %s", err.code, code, err.msg);
  cr_assert(strstr(err.msg, n1) && strstr(err.msg, n2), "message lacks '%s' or '%s': %s", n1, n2,
            err.msg);
}

Test(onnx_bad_input, dropout_in_training_mode_drops_nothing_only_at_ratio_0) {
  lpq_error_t err;
  lpq_graph_t *g = lpq_graph_load("tests/fixtures/dropout_ratio0.onnx", 2, &err);
  cr_assert_not_null(g, "ratio 0 in training mode is a copy (the ONNX spec): %s", err.msg);
  lpq_exec_t *ex = lpq_exec_new(g, &err);
  cr_assert_not_null(ex, "%s", err.msg);
  const float x[6] = {1, -2, 3, -4, 5, -6};
  float y[6] = {0};
  cr_assert_eq(lpq_exec_run(ex, x, y, NULL, &err), 0, "%s", err.msg);
  cr_assert_arr_eq(x, y, sizeof x);
  lpq_exec_free(&ex);
  lpq_graph_free(&g);
  expect_file_fails("tests/fixtures/dropout_train.onnx", LPQ_EUNSUP, "drop1", "training_mode");
}

Test(onnx_bad_input, scatternd_index_out_of_range_names_node_and_index) {
  expect_file_fails("tests/fixtures/scatternd_bad_index.onnx", LPQ_ERANGE, "scatter1", "index 2");
}

Test(onnx_bad_input, resize_to_a_huge_output_is_refused_by_name) {
  expect_file_fails("tests/fixtures/resize_huge.onnx", LPQ_ERANGE, "resize1", "'y'");
}
