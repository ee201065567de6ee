/* tests/test_wire.c: the pool's wire messages round-trip, and truncated, altered or random
** frames are errors with a message, never a crash; blob hashes. */
#include "common/common.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

static void sample_task(lpq_task_t *t, lpq_layer_formats_t *layers, size_t count) {
  memset(t, 0, sizeof *t);
  t->task_id = 0x1122334455667788ull;
  t->job_id = 42;
  lpq_sha256_hex("model", 5, t->model_hash);
  lpq_sha256_hex("data", 4, t->data_hash);
  t->settings_json = "{\"temperature\":0.5,\"objective\":\"bits\"}";
  for (size_t i = 0; i < count; i++) {
    layers[i].weight = (lp_format_t){2 + (int)(i % 7), (int)(i % 4), 1, -(int)i};
    layers[i].act = (i % 3 == 0) ? (lp_format_t){0, 0, 0, 0} : (lp_format_t){8, 2, 7, 64};
    layers[i].weight_per_channel = (int)(i % 2);
  }
  t->layer_count = count;
  t->layers = layers;
}

Test(wire, sha256_of_known_vectors_and_file) {
  char h[65];
  /* FIPS 180-2 examples */
  cr_assert_eq(lpq_sha256_hex("abc", 3, h), 0);
  cr_assert_str_eq(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  cr_assert_eq(lpq_sha256_hex("", 0, h), 0);
  cr_assert_str_eq(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  cr_assert(lpq_hash_valid(h));
  cr_assert_not(lpq_hash_valid("E3B0"));
  h[10] = 'G';
  cr_assert_not(lpq_hash_valid(h));
  cr_assert_not(lpq_hash_valid("../../etc/passwd"));
  /* incremental in odd chunks equals one shot, and a file equals its bytes */
  size_t n = 100003;
  unsigned char *buf = malloc(n);
  for (size_t i = 0; i < n; i++)
    buf[i] = (unsigned char)(i * 131 + (i >> 7));
  char one[65], inc[65], file[65];
  lpq_sha256_hex(buf, n, one);
  lpq_sha256_t *s = lpq_sha256_new();
  for (size_t off = 0; off < n; off += 777)
    lpq_sha256_update(s, buf + off, off + 777 < n ? 777 : n - off);
  cr_assert_eq(lpq_sha256_final(s, inc), 0);
  lpq_sha256_free(&s);
  cr_assert_null(s);
  cr_assert_str_eq(one, inc);
  char path[] = "/tmp/lpq_wire_XXXXXX";
  int fd = mkstemp(path);
  cr_assert(fd >= 0);
  FILE *f = fdopen(fd, "wb");
  fwrite(buf, 1, n, f);
  fclose(f);
  lpq_error_t err;
  cr_assert_eq(lpq_sha256_file_hex(path, file, &err), 0);
  cr_assert_str_eq(one, file);
  unlink(path);
  cr_assert_eq(lpq_sha256_file_hex(path, file, &err), LPQ_EIO);
  cr_assert(strstr(err.msg, path) != NULL);
  free(buf);
}

Test(wire, every_message_round_trips) {
  lpq_wire_buf_t b = {0};
  lpq_error_t err;
  lpq_msg_type_t type;

  lpq_ready_t r = {.worker_id = "w1", .host = "node7", .pid = 1234, .threads = 3,
                   .capabilities = "synthetic,real", .version = "0.1"};
  cr_assert_eq(lpq_wire_encode_ready(&b, &r, &err), 0, "%s", err.msg);
  lpq_ready_t r2;
  cr_assert_eq(lpq_wire_decode_ready(b.data, b.len, &r2, &err), 0, "%s", err.msg);
  cr_assert_str_eq(r2.worker_id, "w1");
  cr_assert_str_eq(r2.host, "node7");
  cr_assert_eq(r2.pid, 1234);
  cr_assert_eq(r2.threads, 3);
  cr_assert_str_eq(r2.capabilities, "synthetic,real");

  lpq_layer_formats_t layers[50];
  lpq_task_t t, t2;
  sample_task(&t, layers, 50);
  cr_assert_eq(lpq_wire_encode_task(&b, &t, &err), 0, "%s", err.msg);
  cr_assert_eq(lpq_wire_peek(b.data, b.len, &type, &err), 0);
  cr_assert_eq(type, LPQ_MSG_TASK);
  cr_assert_eq(lpq_wire_decode_task(b.data, b.len, &t2, &err), 0, "%s", err.msg);
  cr_assert_eq(t2.task_id, t.task_id);
  cr_assert_eq(t2.job_id, 42);
  cr_assert_str_eq(t2.model_hash, t.model_hash);
  cr_assert_str_eq(t2.labels_hash, "");
  cr_assert_str_eq(t2.settings_json, t.settings_json);
  cr_assert_eq(t2.layer_count, 50);
  cr_assert_eq(memcmp(t2.layers, layers, sizeof layers), 0);
  lpq_task_clear(&t2);
  cr_assert_null(t2.layers);

  lpq_result_t res, res2;
  lpq_result_init(&res, 99);
  res.l_co = 0.25;
  res.l_cr = 1.0 / 3;
  res.latency_s = 1e-3;
  res.eval_ms = 12.5;
  res.top1 = 0.75;
  cr_assert_eq(lpq_wire_encode_result(&b, &res, &err), 0);
  cr_assert_eq(lpq_wire_decode_result(b.data, b.len, &res2, &err), 0, "%s", err.msg);
  cr_assert_eq(res2.task_id, 99);
  cr_assert_eq(res2.status, 0);
  cr_assert_eq(res2.l_cr, res.l_cr);
  cr_assert_eq(res2.top1, 0.75);
  cr_assert(isnan(res2.edp_js));
  res.status = LPQ_EUNSUP;
  snprintf(res.error, sizeof res.error, "model uses op 'Foo'");
  cr_assert_eq(lpq_wire_encode_result(&b, &res, &err), 0);
  cr_assert_eq(lpq_wire_decode_result(b.data, b.len, &res2, &err), 0, "%s", err.msg);
  cr_assert_eq(res2.status, LPQ_EUNSUP);
  cr_assert_str_eq(res2.error, "model uses op 'Foo'");

  lpq_blob_get_t g = {.offset = 1 << 20, .max_len = 65536}, g2;
  strcpy(g.hash, t.model_hash);
  cr_assert_eq(lpq_wire_encode_blob_get(&b, &g, &err), 0);
  cr_assert_eq(lpq_wire_decode_blob_get(b.data, b.len, &g2, &err), 0, "%s", err.msg);
  cr_assert_str_eq(g2.hash, g.hash);
  cr_assert_eq(g2.offset, g.offset);
  cr_assert_eq(g2.max_len, g.max_len);

  uint8_t bytes[1000];
  for (size_t i = 0; i < sizeof bytes; i++)
    bytes[i] = (uint8_t)(i * 7);
  lpq_blob_chunk_t c = {.total_size = 5000, .offset = 4000, .data = bytes, .len = 1000}, c2;
  strcpy(c.hash, t.data_hash);
  cr_assert_eq(lpq_wire_encode_blob(&b, &c, &err), 0, "%s", err.msg);
  cr_assert_eq(lpq_wire_decode_blob(b.data, b.len, &c2, &err), 0, "%s", err.msg);
  cr_assert_eq(c2.len, 1000);
  cr_assert_eq(c2.total_size, 5000);
  cr_assert_eq(memcmp(c2.data, bytes, 1000), 0);
  c.offset = 4500; /* past the end of the blob: refused */
  cr_assert_eq(lpq_wire_encode_blob(&b, &c, &err), LPQ_EINVAL);

  const int empty[] = {LPQ_MSG_HEARTBEAT, LPQ_MSG_BYE, LPQ_MSG_DISCONNECT};
  for (int k = 0; k < 3; k++) {
    int ty = empty[k];
    cr_assert_eq(lpq_wire_encode_empty(&b, (lpq_msg_type_t)ty, &err), 0);
    cr_assert_eq(lpq_wire_peek(b.data, b.len, &type, &err), 0);
    cr_assert_eq((int)type, ty);
  }
  cr_assert_eq(lpq_wire_encode_empty(&b, LPQ_MSG_TASK, &err), LPQ_EINVAL);
  lpq_wire_buf_clear(&b);
}

/* Decodes a frame as the type its header claims; returns the decoder's code. */
static int decode_any(const uint8_t *p, size_t len, lpq_error_t *err) {
  lpq_msg_type_t type;
  int rc = lpq_wire_peek(p, len, &type, err);
  if (rc != 0)
    return rc;
  lpq_ready_t r;
  lpq_task_t t;
  lpq_result_t res;
  lpq_blob_get_t g;
  lpq_blob_chunk_t c;
  switch (type) {
  case LPQ_MSG_READY: return lpq_wire_decode_ready(p, len, &r, err);
  case LPQ_MSG_TASK:
    rc = lpq_wire_decode_task(p, len, &t, err);
    if (rc == 0)
      lpq_task_clear(&t);
    return rc;
  case LPQ_MSG_RESULT: return lpq_wire_decode_result(p, len, &res, err);
  case LPQ_MSG_BLOB_GET: return lpq_wire_decode_blob_get(p, len, &g, err);
  case LPQ_MSG_BLOB: return lpq_wire_decode_blob(p, len, &c, err);
  default: return 0;
  }
}

Test(wire, truncated_and_corrupted_frames_are_errors) {
  lpq_wire_buf_t b = {0};
  lpq_error_t err;
  lpq_layer_formats_t layers[6];
  lpq_task_t t;
  sample_task(&t, layers, 6);
  lpq_result_t res;
  lpq_result_init(&res, 5);
  lpq_ready_t r = {.worker_id = "w", .host = "h", .pid = 1, .threads = 1};
  lpq_blob_get_t g = {.max_len = 10};
  strcpy(g.hash, t.model_hash);
  uint8_t bytes[64] = {1, 2, 3};
  lpq_blob_chunk_t c = {.total_size = 64, .data = bytes, .len = 64};
  strcpy(c.hash, t.model_hash);
  for (int m = 0; m < 5; m++) {
    switch (m) {
    case 0: lpq_wire_encode_task(&b, &t, &err); break;
    case 1: lpq_wire_encode_result(&b, &res, &err); break;
    case 2: lpq_wire_encode_ready(&b, &r, &err); break;
    case 3: lpq_wire_encode_blob_get(&b, &g, &err); break;
    default: lpq_wire_encode_blob(&b, &c, &err); break;
    }
    cr_assert_eq(decode_any(b.data, b.len, &err), 0, "%s", err.msg);
    /* Every strict prefix is refused with a message; so is one extra byte. Each copy is an
    ** exact-size allocation, so ASan catches any read past the frame. */
    for (size_t len = 0; len < b.len; len++) {
      uint8_t *p = malloc(len ? len : 1);
      memcpy(p, b.data, len);
      err.msg[0] = '\0';
      cr_assert_neq(decode_any(p, len, &err), 0, "message %d cut at %zu decoded", m, len);
      cr_assert(strlen(err.msg) > 0);
      free(p);
    }
    uint8_t *p = malloc(b.len + 1);
    memcpy(p, b.data, b.len);
    p[b.len] = 0;
    cr_assert_eq(decode_any(p, b.len + 1, &err), LPQ_EFORMAT);
    /* TASK's layer count must match the bytes left, so it names that field instead */
    cr_assert(strstr(err.msg, m == 0 ? "layer_count" : "trailing") != NULL, "%s", err.msg);
    free(p);
  }
  /* a huge layer count with few bytes is refused before allocating */
  lpq_wire_encode_task(&b, &t, &err);
  size_t count_at = b.len - 6 * 9 - 4; /* 9 bytes a layer: two formats and the flag */
  memset(b.data + count_at, 0xff, 4);
  cr_assert_eq(decode_any(b.data, b.len, &err), LPQ_EFORMAT);
  cr_assert(strstr(err.msg, "layer_count") != NULL, "%s", err.msg);
  /* an invalid format in a layer names the layer */
  lpq_wire_encode_task(&b, &t, &err);
  b.data[count_at + 4 + 2 * 9 + 1] = 9; /* layer 2's weight es */
  cr_assert_eq(decode_any(b.data, b.len, &err), LPQ_EFORMAT);
  cr_assert(strstr(err.msg, "layer 2") != NULL, "%s", err.msg);
  /* a per-channel flag other than 0 or 1 is refused, naming the layer */
  lpq_wire_encode_task(&b, &t, &err);
  b.data[count_at + 4 + 3 * 9 + 8] = 2; /* layer 3's flag */
  cr_assert_eq(decode_any(b.data, b.len, &err), LPQ_EFORMAT);
  cr_assert(strstr(err.msg, "layer 3") != NULL, "%s", err.msg);
  /* another protocol version */
  b.data[2] = LPQ_WIRE_VERSION + 1;
  cr_assert_eq(decode_any(b.data, b.len, &err), LPQ_EUNSUP);
  lpq_wire_buf_clear(&b);
}

Test(wire, random_frames_never_crash) {
  /* Random bytes behind a valid header, and random single-byte flips of valid messages. */
  srand(7);
  lpq_wire_buf_t b = {0};
  lpq_error_t err;
  lpq_layer_formats_t layers[4];
  lpq_task_t t;
  sample_task(&t, layers, 4);
  lpq_wire_encode_task(&b, &t, &err);
  int iterations = getenv("LPQ_ASAN") ? 20000 : 200000, decoded = 0;
  for (int i = 0; i < iterations; i++) {
    size_t len;
    uint8_t *p;
    if (i % 2) {
      len = (size_t)(rand() % 200);
      p = malloc(len + 1);
      for (size_t k = 0; k < len; k++)
        p[k] = (uint8_t)rand();
      if (len >= 4) {
        p[0] = 'L', p[1] = 'Q', p[2] = LPQ_WIRE_VERSION;
        p[3] = (uint8_t)(1 + rand() % 8);
      }
    } else {
      len = b.len;
      p = malloc(len);
      memcpy(p, b.data, len);
      p[(size_t)rand() % len] ^= (uint8_t)(1 + rand() % 255);
    }
    decoded += decode_any(p, len, &err) == 0;
    free(p);
  }
  /* flips inside layer formats or text fields may still decode; most frames must not */
  cr_assert(decoded < iterations, "every random frame decoded");
  lpq_wire_buf_clear(&b);
}
