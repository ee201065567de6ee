/* coordinator/api/base64.c: standard base64 (RFC 4648, with padding) for uploads and exports. */
#include "coordinator/api/api.h"

#include <stdlib.h>

static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *lpq_base64_encode(const void *data, size_t len) {
  const unsigned char *in = data;
  if (len > (SIZE_MAX - 1) / 4 * 3 - 3)
    return NULL;
  size_t out_len = (len + 2) / 3 * 4;
  char *out = malloc(out_len + 1), *p = out;
  if (out == NULL)
    return NULL;
  size_t i = 0;
  for (; i + 3 <= len; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    *p++ = alphabet[v >> 18];
    *p++ = alphabet[(v >> 12) & 63];
    *p++ = alphabet[(v >> 6) & 63];
    *p++ = alphabet[v & 63];
  }
  if (i < len) {
    uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0);
    *p++ = alphabet[v >> 18];
    *p++ = alphabet[(v >> 12) & 63];
    *p++ = i + 1 < len ? alphabet[(v >> 6) & 63] : '=';
    *p++ = '=';
  }
  *p = '\0';
  return out;
}

static int sextet(unsigned char c) {
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '+')
    return 62;
  if (c == '/')
    return 63;
  return -1;
}

int lpq_base64_decode(const char *text, size_t len, unsigned char **out, size_t *out_len,
                      lpq_error_t *err) {
  if (text == NULL || out == NULL || out_len == NULL)
    return lpq_errorf(err, LPQ_EINVAL, "base64: text and outputs are required");
  *out = NULL;
  *out_len = 0;
  if (len % 4 != 0)
    return lpq_errorf(err, LPQ_EFORMAT, "base64: length %zu is not a multiple of 4", len);
  size_t pad = 0;
  if (len >= 4 && text[len - 1] == '=')
    pad = text[len - 2] == '=' ? 2 : 1;
  size_t n = len / 4 * 3 - pad;
  unsigned char *buf = malloc(n ? n : 1);
  if (buf == NULL)
    return lpq_errorf(err, LPQ_ENOMEM, "base64: out of memory for %zu bytes", n);
  size_t o = 0;
  for (size_t i = 0; i < len; i += 4) {
    int v[4];
    for (int k = 0; k < 4; k++) {
      size_t at = i + (size_t)k;
      int is_pad = at >= len - pad;
      v[k] = is_pad ? (text[at] == '=' ? 0 : -1) : sextet((unsigned char)text[at]);
      if (v[k] < 0) {
        free(buf);
        return lpq_errorf(err, LPQ_EFORMAT, "base64: bad character at offset %zu", at);
      }
    }
    uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
    unsigned char bytes[3] = {(unsigned char)(w >> 16), (unsigned char)(w >> 8), (unsigned char)w};
    for (int k = 0; k < 3 && o < n; k++)
      buf[o++] = bytes[k];
  }
  *out = buf;
  *out_len = n;
  return 0;
}
