/*
** common/hash.c: content hashes of blobs (lowercase hex SHA-256), on OpenSSL's libcrypto.
*/
#include "common/common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

struct lpq_sha256_t {
  EVP_MD_CTX *md;
  int started;
};

static void hex_digest(const unsigned char *digest, char out[65])
{
  static const char hex[] = "0123456789abcdef";
  for (size_t i = 0; i < 32; i++) {
    out[2 * i] = hex[digest[i] >> 4];
    out[2 * i + 1] = hex[digest[i] & 15];
  }
  out[64] = '\0';
}

int lpq_sha256_hex(const void *data, size_t len, char out[65])
{
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int dlen = 0;
  if (out == NULL || (data == NULL && len > 0))
    return LPQ_EINVAL;
  if (!EVP_Digest(data, len, digest, &dlen, EVP_sha256(), NULL) || dlen != 32)
    return LPQ_EINVAL;
  hex_digest(digest, out);
  return 0;
}

int lpq_hash_valid(const char *s)
{
  if (s == NULL)
    return 0;
  for (size_t i = 0; i < LPQ_HASH_HEX_LEN; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return 0;
  return s[LPQ_HASH_HEX_LEN] == '\0';
}

lpq_sha256_t *lpq_sha256_new(void)
{
  lpq_sha256_t *h = calloc(1, sizeof *h);
  if (h == NULL)
    return NULL;
  h->md = EVP_MD_CTX_new();
  if (h->md == NULL) {
    free(h);
    return NULL;
  }
  return h;
}

static int sha_start(lpq_sha256_t *h)
{
  if (!h->started) {
    if (!EVP_DigestInit_ex(h->md, EVP_sha256(), NULL))
      return LPQ_ENOMEM;
    h->started = 1;
  }
  return 0;
}

int lpq_sha256_update(lpq_sha256_t *h, const void *data, size_t len)
{
  if (h == NULL || (data == NULL && len > 0))
    return LPQ_EINVAL;
  int rc = sha_start(h);
  if (rc != 0)
    return rc;
  return EVP_DigestUpdate(h->md, data, len) ? 0 : LPQ_EINVAL;
}

int lpq_sha256_final(lpq_sha256_t *h, char out[65])
{
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int dlen = 0;
  if (h == NULL || out == NULL)
    return LPQ_EINVAL;
  int rc = sha_start(h);
  if (rc != 0)
    return rc;
  h->started = 0;
  if (!EVP_DigestFinal_ex(h->md, digest, &dlen) || dlen != 32)
    return LPQ_EINVAL;
  hex_digest(digest, out);
  return 0;
}

void lpq_sha256_free(lpq_sha256_t **h)
{
  if (h == NULL || *h == NULL)
    return;
  EVP_MD_CTX_free((*h)->md);
  free(*h);
  *h = NULL;
}

int lpq_sha256_file_hex(const char *path, char out[65], lpq_error_t *err)
{
  if (path == NULL || out == NULL)
    return lpq_errorf(err, LPQ_EINVAL, "sha256: no file given");
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return lpq_errorf(err, LPQ_EIO, "%s: %s", path, strerror(errno));
  lpq_sha256_t *h = lpq_sha256_new();
  unsigned char *buf = malloc(1 << 16);
  int rc = 0;
  if (h == NULL || buf == NULL) {
    rc = lpq_errorf(err, LPQ_ENOMEM, "%s: out of memory hashing", path);
  } else {
    size_t got;
    while ((got = fread(buf, 1, 1 << 16, f)) > 0)
      lpq_sha256_update(h, buf, got);
    if (ferror(f))
      rc = lpq_errorf(err, LPQ_EIO, "%s: read error", path);
    else
      rc = lpq_sha256_final(h, out);
  }
  free(buf);
  lpq_sha256_free(&h);
  fclose(f);
  return rc;
}
