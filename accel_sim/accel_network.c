/* accel_sim/accel_network.c: layer descriptors, their checks, and the built-in shape tables of
** ResNet-50 and ViT-B/16 (torchvision layouts, 224x224, batch 1; bench/accel_shapes.py checks
** them against torchvision). */
#include "accel_sim/accel_sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const accel_builtin_networks[] = {"resnet50", "vit_b16", NULL};

static size_t conv_out(size_t in, size_t kernel, size_t stride, size_t pad, size_t dilation) {
  size_t span = dilation * (kernel - 1) + 1;
  if (in + 2 * pad < span)
    return 0;
  return (in + 2 * pad - span) / stride + 1;
}

int accel_layer_validate(const accel_layer_t *l, lpq_error_t *err) {
#define NEED_POSITIVE(field)                                                                  \
  if (l->field == 0)                                                                          \
    return lpq_errorf(err, LPQ_EINVAL, "layer '%s': " #field " = 0 must be positive", l->name);
  NEED_POSITIVE(batch);
  switch (l->kind) {
  case ACCEL_CONV:
    NEED_POSITIVE(in_channels);
    NEED_POSITIVE(out_channels);
    NEED_POSITIVE(groups);
    NEED_POSITIVE(in_h);
    NEED_POSITIVE(in_w);
    NEED_POSITIVE(kernel_h);
    NEED_POSITIVE(kernel_w);
    NEED_POSITIVE(stride_h);
    NEED_POSITIVE(stride_w);
    NEED_POSITIVE(dilation_h);
    NEED_POSITIVE(dilation_w);
    if (l->in_channels % l->groups || l->out_channels % l->groups)
      return lpq_errorf(err, LPQ_EINVAL,
                        "layer '%s': channels %zu -> %zu are not divisible by groups = %zu",
                        l->name, l->in_channels, l->out_channels, l->groups);
    size_t oh = conv_out(l->in_h, l->kernel_h, l->stride_h, l->pad_h, l->dilation_h);
    size_t ow = conv_out(l->in_w, l->kernel_w, l->stride_w, l->pad_w, l->dilation_w);
    if (oh != l->out_h || ow != l->out_w)
      return lpq_errorf(err, LPQ_EINVAL,
                        "layer '%s': output %zux%zu does not match input %zux%zu, kernel %zux%zu, "
                        "stride %zu, pad %zu, dilation %zu (expected %zux%zu)",
                        l->name, l->out_h, l->out_w, l->in_h, l->in_w, l->kernel_h, l->kernel_w,
                        l->stride_h, l->pad_h, l->dilation_h, oh, ow);
    return 0;
  case ACCEL_GEMM:
  case ACCEL_MATMUL:
    NEED_POSITIVE(m);
    NEED_POSITIVE(n);
    NEED_POSITIVE(k);
    NEED_POSITIVE(batch_count);
    return 0;
  }
#undef NEED_POSITIVE
  return lpq_errorf(err, LPQ_EINVAL, "layer '%s': kind = %d is not conv, gemm or matmul", l->name,
                    (int)l->kind);
}

uint64_t accel_layer_macs(const accel_layer_t *l) {
  if (l->kind == ACCEL_CONV)
    return (uint64_t)l->batch * l->out_channels * l->out_h * l->out_w *
           (l->in_channels / (l->groups ? l->groups : 1)) * l->kernel_h * l->kernel_w;
  return (uint64_t)l->batch * l->batch_count * l->m * l->n * l->k;
}

accel_network_t *accel_network_new(const char *name, size_t count, lpq_error_t *err) {
  accel_network_t *net = calloc(1, sizeof *net);
  if (net == NULL || (count > 0 && (net->layers = calloc(count, sizeof *net->layers)) == NULL)) {
    free(net);
    lpq_errorf(err, LPQ_ENOMEM, "network '%s': out of memory for %zu layers", name, count);
    return NULL;
  }
  snprintf(net->name, sizeof net->name, "%s", name);
  net->count = count;
  return net;
}

void accel_network_free(accel_network_t **net) {
  if (net == NULL || *net == NULL)
    return;
  free((*net)->layers);
  free(*net);
  *net = NULL;
}

/* ---- builders ---- */

typedef struct builder_t {
  accel_network_t *net;
  size_t used;
} builder_t;

static accel_layer_t *next_layer(builder_t *b, const char *name) {
  accel_layer_t *l = &b->net->layers[b->used++];
  snprintf(l->name, sizeof l->name, "%s", name);
  l->batch = 1;
  return l;
}

/* A square conv; returns its output size. */
static size_t add_conv(builder_t *b, const char *name, size_t cin, size_t cout, size_t hw,
                       size_t kernel, size_t stride, size_t pad) {
  accel_layer_t *l = next_layer(b, name);
  l->kind = ACCEL_CONV;
  l->in_channels = cin;
  l->out_channels = cout;
  l->groups = 1;
  l->in_h = l->in_w = hw;
  l->kernel_h = l->kernel_w = kernel;
  l->stride_h = l->stride_w = stride;
  l->pad_h = l->pad_w = pad;
  l->dilation_h = l->dilation_w = 1;
  l->out_h = l->out_w = conv_out(hw, kernel, stride, pad, 1);
  return l->out_h;
}

static void add_gemm(builder_t *b, const char *name, accel_layer_kind_t kind, size_t heads,
                     size_t m, size_t k, size_t n) {
  accel_layer_t *l = next_layer(b, name);
  l->kind = kind;
  l->batch_count = heads;
  l->m = m;
  l->k = k;
  l->n = n;
}

/* torchvision resnet50: Bottleneck blocks [3, 4, 6, 3], stride on the 3x3 conv (v1.5). */
static void build_resnet50(builder_t *b) {
  static const size_t blocks[4] = {3, 4, 6, 3};
  char name[ACCEL_NAME_MAX];
  size_t hw = add_conv(b, "conv1", 3, 64, 224, 7, 2, 3);
  hw = (hw + 2 - 3) / 2 + 1; /* maxpool 3x3, stride 2, pad 1: 112 -> 56 */
  size_t cin = 64;
  for (size_t stage = 0; stage < 4; stage++) {
    size_t width = (size_t)64 << stage, cout = width * 4;
    for (size_t blk = 0; blk < blocks[stage]; blk++) {
      size_t stride = (stage > 0 && blk == 0) ? 2 : 1;
      snprintf(name, sizeof name, "layer%zu.%zu.conv1", stage + 1, blk);
      add_conv(b, name, cin, width, hw, 1, 1, 0);
      snprintf(name, sizeof name, "layer%zu.%zu.conv2", stage + 1, blk);
      size_t out_hw = add_conv(b, name, width, width, hw, 3, stride, 1);
      snprintf(name, sizeof name, "layer%zu.%zu.conv3", stage + 1, blk);
      add_conv(b, name, width, cout, out_hw, 1, 1, 0);
      if (blk == 0) {
        snprintf(name, sizeof name, "layer%zu.%zu.downsample.0", stage + 1, blk);
        add_conv(b, name, cin, cout, hw, 1, stride, 0);
      }
      cin = cout;
      hw = out_hw;
    }
  }
  add_gemm(b, "fc", ACCEL_GEMM, 1, 1, 2048, 1000);
}

/* torchvision vit_b_16: 16x16 patches of 224x224 -> 196 tokens + class token, 12 blocks of
** width 768, 12 heads of 64, MLP 3072; the head reads the class token only. */
static void build_vit_b16(builder_t *b) {
  const size_t tokens = 197, d = 768, heads = 12, dh = 64, mlp = 3072;
  char name[ACCEL_NAME_MAX];
  add_conv(b, "conv_proj", 3, d, 224, 16, 16, 0);
  for (size_t i = 0; i < 12; i++) {
#define LAYER_NAME(suffix) (snprintf(name, sizeof name, "encoder_layer_%zu." suffix, i), name)
    add_gemm(b, LAYER_NAME("self_attention.in_proj"), ACCEL_GEMM, 1, tokens, d, 3 * d);
    add_gemm(b, LAYER_NAME("self_attention.q_kT"), ACCEL_MATMUL, heads, tokens, dh, tokens);
    add_gemm(b, LAYER_NAME("self_attention.attn_v"), ACCEL_MATMUL, heads, tokens, tokens, dh);
    add_gemm(b, LAYER_NAME("self_attention.out_proj"), ACCEL_GEMM, 1, tokens, d, d);
    add_gemm(b, LAYER_NAME("mlp.0"), ACCEL_GEMM, 1, tokens, d, mlp);
    add_gemm(b, LAYER_NAME("mlp.3"), ACCEL_GEMM, 1, tokens, mlp, d);
#undef LAYER_NAME
  }
  add_gemm(b, "heads.head", ACCEL_GEMM, 1, 1, d, 1000);
}

accel_network_t *accel_network_builtin(const char *name, lpq_error_t *err) {
  size_t count;
  void (*build)(builder_t *);
  if (name != NULL && strcmp(name, "resnet50") == 0) {
    count = 54;
    build = build_resnet50;
  } else if (name != NULL && strcmp(name, "vit_b16") == 0) {
    count = 74;
    build = build_vit_b16;
  } else {
    lpq_errorf(err, LPQ_ENOTFOUND, "network '%s': not built in (resnet50, vit_b16)",
               name ? name : "(null)");
    return NULL;
  }
  accel_network_t *net = accel_network_new(name, count, err);
  if (net == NULL)
    return NULL;
  builder_t b = {net, 0};
  build(&b);
  net->count = b.used; /* equal to count; kept honest by tests */
  return net;
}
