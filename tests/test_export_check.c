/* tests/test_export_check.c: the exported models are valid ONNX (issue 15's "the ONNX checker
** passes"). Debian's ONNX checker (python3-onnx and libonnx 1.12: IR 8, opsets up to 17, no
** int4/uint4) cannot read opset 21, and npm has none, so two checks stand in for it:
** - a structural check written here from the ONNX specification: IR version and opset imports,
**   every node input defined before it is used (graph inputs, initializers, earlier outputs),
**   each name produced once, every lpq-domain node a call of a model-local function with its
**   arity, function bodies of standard opset-21 ops whose inputs are defined before use, and
**   the types of QuantizeLinear / DequantizeLinear / LPDequantize / LPQuantize consistent
**   (storage types, float scales, zero points of the quantized type, per-channel scales as long
**   as the axis, codes below their table's length, thresholds sorted);
** - ONNX Runtime creating a session with graph optimisation disabled: its Graph::Resolve runs
**   ONNX's own node checker and type inference over every node and inlined function body.
** The check itself is shown to fail on a broken model. */
#include "common/common.h"
#include "onnx/onnx.pb-c.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Problems are logged, except while the test breaks models on purpose. */
static int quiet;
#define note(...) (quiet ? (void)0 : cr_log_warn(__VA_ARGS__))

static const char *bin(void) { return getenv("LPQ_BUILD") ? getenv("LPQ_BUILD") : "build"; }

/* ONNX TensorProto data types */
enum { T_F32 = 1, T_U8 = 2, T_I8 = 3, T_U16 = 4, T_I16 = 5, T_I64 = 7, T_E4M3 = 17,
       T_E5M2 = 19, T_U4 = 21, T_I4 = 22 };

typedef struct names_t {
  const char **v;
  size_t n, cap;
} names_t;

static int has(const names_t *s, const char *name) {
  for (size_t i = 0; i < s->n; i++)
    if (!strcmp(s->v[i], name))
      return 1;
  return 0;
}

/* Adds a produced name; a second producer is an error. */
static int define(names_t *s, const char *name, const char *what) {
  if (has(s, name)) {
    note("%s: '%s' is produced twice", what, name);
    return 1;
  }
  if (s->n == s->cap)
    s->v = realloc(s->v, (s->cap = s->cap ? 2 * s->cap : 256) * sizeof *s->v);
  s->v[s->n++] = name;
  return 0;
}

static const Onnx__TensorProto *init(const Onnx__GraphProto *g, const char *name) {
  for (size_t i = 0; i < g->n_initializer; i++)
    if (!strcmp(g->initializer[i]->name, name))
      return g->initializer[i];
  return NULL;
}

static size_t numel(const Onnx__TensorProto *t) {
  size_t n = 1;
  for (size_t d = 0; d < t->n_dims; d++)
    n *= (size_t)t->dims[d];
  return n;
}

static int64_t attr_int(const Onnx__NodeProto *n, const char *name, int64_t dflt) {
  for (size_t i = 0; i < n->n_attribute; i++)
    if (!strcmp(n->attribute[i]->name, name))
      return n->attribute[i]->i;
  return dflt;
}

static const Onnx__FunctionProto *function(const Onnx__ModelProto *m, const char *domain,
                                           const char *name) {
  for (size_t i = 0; i < m->n_functions; i++)
    if (!strcmp(m->functions[i]->domain, domain) && !strcmp(m->functions[i]->name, name))
      return m->functions[i];
  return NULL;
}

/* The standard ops lpq's function bodies may use (all in the default domain at opset 21). */
static int body_op(const char *op) {
  static const char *ok[] = {"Constant", "DequantizeLinear", "Cast", "Gather", "Mul", "Div",
                             "Abs", "Less", "Add", "Sub", "GreaterOrEqual", "Where", "Sign"};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
    if (!strcmp(op, ok[i]))
      return 1;
  return 0;
}

static int check_function(const Onnx__FunctionProto *f) {
  int bad = 0;
  names_t s = {0};
  int opset = 0;
  for (size_t i = 0; i < f->n_opset_import; i++)
    if (!f->opset_import[i]->domain || !f->opset_import[i]->domain[0])
      opset = (int)f->opset_import[i]->version;
  if (opset != 21)
    note("function %s imports opset %d", f->name, opset), bad++;
  for (size_t i = 0; i < f->n_input; i++)
    bad += define(&s, f->input[i], f->name);
  for (size_t i = 0; i < f->n_node; i++) {
    const Onnx__NodeProto *n = f->node[i];
    if ((n->domain && n->domain[0]) || !body_op(n->op_type))
      note("function %s: node %s is not a standard op", f->name, n->op_type), bad++;
    for (size_t k = 0; k < n->n_input; k++)
      if (n->input[k][0] && !has(&s, n->input[k]))
        note("function %s: %s reads '%s' before it is defined", f->name, n->op_type,
                     n->input[k]), bad++;
    for (size_t k = 0; k < n->n_output; k++)
      bad += define(&s, n->output[k], f->name);
  }
  for (size_t i = 0; i < f->n_output; i++)
    if (!has(&s, f->output[i]))
      note("function %s: output '%s' is never produced", f->name, f->output[i]), bad++;
  free(s.v);
  return bad;
}

static int qtype(int t) {
  return t == T_U8 || t == T_I8 || t == T_U16 || t == T_I16 || t == T_E4M3 || t == T_E5M2 ||
         t == T_U4 || t == T_I4;
}

/* The element values of an integer or float initializer (raw_data, little-endian). */
static double elem(const Onnx__TensorProto *t, size_t i) {
  const uint8_t *r = t->raw_data.data;
  const size_t bits = t->data_type == T_F32 ? 32 : t->data_type == T_U16 ? 16
                      : t->data_type == T_U4 ? 4 : 8;
  if (!t->has_raw_data || (i + 1) * bits > 8 * t->raw_data.len)
    return NAN;
  float f;
  uint16_t u16;
  switch (t->data_type) {
  case T_F32: memcpy(&f, r + 4 * i, 4); return f;
  case T_U8: return r[i];
  case T_U16: memcpy(&u16, r + 2 * i, 2); return u16;
  case T_U4: return (r[i / 2] >> (4 * (i % 2))) & 15;
  default: return NAN;
  }
}

/* The Q/DQ and lpq nodes' operand types. */
static int check_types(const Onnx__GraphProto *g, const Onnx__NodeProto *n) {
  int bad = 0;
  const char *op = n->op_type;
  const Onnx__TensorProto *a = n->n_input > 0 ? init(g, n->input[0]) : NULL;
  const Onnx__TensorProto *b = n->n_input > 1 ? init(g, n->input[1]) : NULL;
  const Onnx__TensorProto *c = n->n_input > 2 && n->input[2][0] ? init(g, n->input[2]) : NULL;
  const Onnx__TensorProto *d = n->n_input > 3 ? init(g, n->input[3]) : NULL;
#define NEED(cond, ...) do { if (!(cond)) { note(__VA_ARGS__); bad++; } } while (0)
  if (!strcmp(op, "DequantizeLinear") || !strcmp(op, "QuantizeLinear")) {
    int dq = op[0] == 'D';
    NEED(b && b->data_type == T_F32, "%s %s: scale is not a float initializer", op, n->name);
    if (dq && a)
      NEED(qtype(a->data_type), "%s %s: input of type %d", op, n->name, a->data_type);
    if (c)
      NEED(numel(c) == 1 && qtype(c->data_type) && (!dq || !a || c->data_type == a->data_type),
           "%s %s: zero point of type %d", op, n->name, c->data_type);
    if (!dq)
      NEED(c != NULL, "%s %s: no zero point (the output type)", op, n->name);
    int64_t axis = attr_int(n, "axis", 1);
    if (b && b->n_dims == 1 && a && dq)
      NEED(axis >= 0 && (size_t)axis < a->n_dims && a->dims[axis] == b->dims[0],
           "%s %s: %lld scales along axis %lld", op, n->name, (long long)b->dims[0],
           (long long)axis);
    else if (b)
      NEED(numel(b) == 1, "%s %s: a scale of %zu values without a matching axis", op, n->name,
           numel(b));
  } else if (!strcmp(op, "LPDequantize")) {
    NEED(a && (a->data_type == T_U4 || a->data_type == T_U8 || a->data_type == T_U16),
         "LPDequantize %s: codes are not uint4/uint8/uint16", n->name);
    NEED(b && b->data_type == T_F32 && b->n_dims == 1, "LPDequantize %s: no float table", n->name);
    NEED(c && c->data_type == T_F32 && c->n_dims <= (a ? a->n_dims : 0),
         "LPDequantize %s: scale is not a float broadcasting onto the codes", n->name);
    if (a && b && c && !bad) {
      for (size_t i = 0; i < numel(a); i++)
        if (!(elem(a, i) < (double)b->dims[0])) {
          note("LPDequantize %s: code %g past its table of %lld", n->name, elem(a, i),
                       (long long)b->dims[0]);
          bad++;
          break;
        }
      for (size_t k = 0; k < c->n_dims; k++) /* broadcast from the right: [M, 1, 1, 1], [N] */
        NEED(c->dims[k] == 1 || c->dims[k] == a->dims[k + a->n_dims - c->n_dims],
             "LPDequantize %s: scale dims", n->name);
    }
  } else if (!strcmp(op, "LPQuantize")) {
    NEED(b && c && d && b->data_type == T_F32 && c->data_type == T_F32 &&
         d->data_type == T_F32 && numel(d) == 1 && b->n_dims == 1 && c->n_dims == 1 &&
         c->dims[0] == b->dims[0] + 1 && ((c->dims[0] & (c->dims[0] - 1)) == 0),
         "LPQuantize %s: thresholds [2^K - 1], magnitudes [2^K], scalar scale expected", n->name);
    for (size_t i = 1; b && c && !bad && i < numel(c); i++)
      NEED((i >= numel(b) || elem(b, i) >= elem(b, i - 1)) && elem(c, i) >= elem(c, i - 1),
           "LPQuantize %s: tables not sorted at %zu", n->name, i);
  }
#undef NEED
  return bad;
}

/* The whole of file path (malloc'ed) and its length. */
static uint8_t *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  cr_assert_not_null(f, "%s", path);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
  cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
  fclose(f);
  *len = (size_t)n;
  return buf;
}

/* Problems found in model file `path` (each logged). */
static int check_model(const char *path) {
  size_t len;
  uint8_t *buf = slurp(path, &len);
  Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, len, buf);
  free(buf);
  cr_assert_not_null(m, "%s: not a protobuf ModelProto", path);
  const Onnx__GraphProto *g = m->graph;
  int bad = 0, opset = 0, lpq = 0;
  if (m->ir_version != 10)
    note("%s: IR version %lld", path, (long long)m->ir_version), bad++;
  for (size_t i = 0; i < m->n_opset_import; i++) {
    const char *d = m->opset_import[i]->domain;
    if (!d || !d[0])
      opset = (int)m->opset_import[i]->version;
    else if (!strcmp(d, "lpq"))
      lpq = (int)m->opset_import[i]->version;
  }
  if (opset != 21 || (m->n_functions && lpq != 1))
    note("%s: opset imports '' %d, lpq %d", path, opset, lpq), bad++;
  for (size_t i = 0; i < m->n_functions; i++)
    bad += check_function(m->functions[i]);
  names_t s = {0};
  for (size_t i = 0; i < g->n_input; i++)
    bad += define(&s, g->input[i]->name, path);
  for (size_t i = 0; i < g->n_initializer; i++)
    if (!has(&s, g->initializer[i]->name)) /* an initializer may also be a graph input */
      define(&s, g->initializer[i]->name, path);
  for (size_t i = 0; i < g->n_node; i++) {
    const Onnx__NodeProto *n = g->node[i];
    if (n->domain && n->domain[0]) {
      const Onnx__FunctionProto *fn = function(m, n->domain, n->op_type);
      if (!fn || fn->n_input != n->n_input || fn->n_output != n->n_output)
        note("%s: node %s calls %s.%s, which the model does not define with %zu inputs",
                     path, n->name, n->domain, n->op_type, n->n_input), bad++;
    }
    for (size_t k = 0; k < n->n_input; k++)
      if (n->input[k][0] && !has(&s, n->input[k]))
        note("%s: node %s (%s) reads '%s' before it is defined", path, n->name,
                     n->op_type, n->input[k]), bad++;
    for (size_t k = 0; k < n->n_output; k++)
      bad += define(&s, n->output[k], path);
    bad += check_types(g, n);
  }
  for (size_t i = 0; i < g->n_output; i++)
    if (!has(&s, g->output[i]->name))
      note("%s: graph output '%s' is never produced", path, g->output[i]->name), bad++;
  free(s.v);
  onnx__model_proto__free_unpacked(m, NULL);
  return bad;
}

static char dir[64];

static void setup(void) {
  snprintf(dir, sizeof dir, "/tmp/lpq_export_check_XXXXXX");
  cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  cr_assert_eq(system(cmd), 0);
}

TestSuite(export_check, .init = setup, .fini = teardown, .timeout = 300);

/* Every format family, on the three bundled models, bias correction written in: both checks
** pass. */
Test(export_check, exports_are_valid_onnx) {
  static const char *cases[][2] = {
      {"resnet18", "{\"version\":1,\"default\":{\"w\":\"lp<4,1,3,auto_ch>\",\"a\":\"lp<8,1,3,auto>\"}}"},
      {"resnet18", "{\"version\":1,\"default\":{\"w\":\"int4_ch\",\"a\":\"int8\"}}"},
      {"resnet18", "{\"version\":1,\"default\":{\"w\":\"fp8_e4m3\",\"a\":\"fp8_e5m2\"}}"},
      {"resnet18", "{\"version\":1,\"default\":{\"w\":\"posit<8,1>\",\"a\":\"afloat<6,3>\"}}"},
      {"resnet18", "{\"version\":1,\"default\":{\"w\":\"lp<10,2,4,auto>\",\"a\":\"int<12>\"}}"},
      {"resnet18", "{\"version\":1,\"default\":{\"w\":\"minifloat<3,2>\",\"a\":\"lp<5,0,3,auto>\"}}"},
      {"mobilenetv2", "{\"version\":1,\"default\":{\"w\":\"int<5,ch>\",\"a\":\"lp<6,1,3,auto>\"}}"},
      {"vit", "{\"version\":1,\"default\":{\"w\":\"lp<4,1,3,auto_ch>\",\"a\":\"lp<8,1,3,auto>\"}}"},
      {"vit", "{\"version\":1,\"default\":{\"w\":\"afloat<5,2>\",\"a\":\"fp8_e4m3\"}}"},
      {"resnet18", "{\"version\":1,\"bias_correction\":true,\"default\":{\"w\":\"int4_ch\",\"a\":\"int8\"}}"},
      {"vit", "{\"version\":1,\"bias_correction\":true,\"default\":{\"w\":\"lp<4,1,3,auto_ch>\",\"a\":\"lp<8,1,3,auto>\"}}"}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char cfg[256], q[256], cmd[2048];
    snprintf(cfg, sizeof cfg, "%s/c%zu.json", dir, i);
    snprintf(q, sizeof q, "%s/q%zu.onnx", dir, i);
    FILE *f = fopen(cfg, "w");
    cr_assert_not_null(f);
    fputs(cases[i][1], f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s/bin/lpq export --model models/%s.onnx --config %s --calib-data "
             "models/fashion_calib_256.npy --calib 16 --out %s >/dev/null", bin(), cases[i][0],
             cfg, q);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    cr_expect_eq(check_model(q), 0, "%s %s: structural check", cases[i][0], cases[i][1]);
    snprintf(cmd, sizeof cmd, "node -e \"require('./bench/engine/node_modules/onnxruntime-node')"
             ".InferenceSession.create('%s', {graphOptimizationLevel: 'disabled'}).catch(e => "
             "{ console.error(e.message); process.exit(1); })\"", q);
    cr_expect_eq(system(cmd), 0, "%s %s: ONNX Runtime refuses it", cases[i][0], cases[i][1]);
  }
}

/* The check finds what it looks for: an input removed, a function body with a foreign op. */
Test(export_check, finds_broken_models) {
  char q[256], cmd[1024];
  snprintf(q, sizeof q, "%s/q.onnx", dir);
  snprintf(cmd, sizeof cmd, "%s/bin/lpq export --model models/resnet18.onnx --config "
           "bench/configs/lp4_ch.json --calib-data models/fashion_calib_256.npy --calib 16 "
           "--out %s >/dev/null", bin(), q);
  cr_assert_eq(system(cmd), 0);
  cr_assert_eq(check_model(q), 0);
  size_t len;
  uint8_t *buf = slurp(q, &len);
  quiet = 1;
  for (int broken = 0; broken < 3; broken++) {
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, len, buf);
    cr_assert_not_null(m);
    if (broken == 0) { /* the last initializer gone: its reader reads nothing */
      onnx__tensor_proto__free_unpacked(m->graph->initializer[--m->graph->n_initializer], NULL);
    } else if (broken == 1) { /* a body op of another domain */
      Onnx__NodeProto *n = m->functions[0]->node[1];
      free(n->domain);
      n->domain = strdup("com.example");
    } else { /* a codes tensor as float */
      for (size_t i = 0; i < m->graph->n_initializer; i++)
        if (strstr(m->graph->initializer[i]->name, "/codes"))
          m->graph->initializer[i]->data_type = T_F32;
    }
    size_t n = onnx__model_proto__get_packed_size(m);
    uint8_t *out = malloc(n);
    onnx__model_proto__pack(m, out);
    onnx__model_proto__free_unpacked(m, NULL);
    snprintf(q, sizeof q, "%s/broken%d.onnx", dir, broken);
    FILE *f = fopen(q, "wb");
    fwrite(out, 1, n, f);
    fclose(f);
    free(out);
    cr_expect_gt(check_model(q), 0, "broken model %d passes the check", broken);
    snprintf(cmd, sizeof cmd, "node -e \"require('./bench/engine/node_modules/onnxruntime-node')"
             ".InferenceSession.create('%s', {graphOptimizationLevel: 'disabled'}).catch(e => "
             "process.exit(1))\"", q);
    cr_expect_neq(system(cmd), 0, "ONNX Runtime loads broken model %d", broken);
  }
  free(buf);
}
