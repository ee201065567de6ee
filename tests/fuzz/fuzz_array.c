/*
** tests/fuzz/fuzz_array.c: the data loaders (.npy, IDX raw and gzip) through lpq_load_array,
** which tells them apart by content. The loaders take a path, so the input goes to a memfd
** and is read back as /proc/self/fd/N. What loads must be a consistent array; what fails must
** say why.
*/
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "tests/fuzz/fuzz.h"

#include "common/common.h"

#include <sys/mman.h>
#include <unistd.h>

static void fuzz_array_check(const lpq_array_t *a) {
  FUZZ_CHECK(a->ndim >= 0 && a->ndim <= LPQ_MAX_DIMS, "ndim %d", a->ndim);
  size_t count = 1;
  for (int i = 0; i < a->ndim; i++) {
    FUZZ_CHECK(a->shape[i] >= 0, "negative dimension %lld", (long long)a->shape[i]);
    count *= (size_t)a->shape[i];
  }
  FUZZ_CHECK(count == a->count, "count %zu, shape gives %zu", a->count, count);
  size_t elem = lpq_dtype_size(a->dtype);
  FUZZ_CHECK(elem > 0, "unknown dtype %d", (int)a->dtype);
  FUZZ_CHECK(a->count == 0 || a->data != NULL, "no data");
  /* Touch every byte, so a short allocation shows up under ASan. */
  volatile unsigned char sum = 0;
  const unsigned char *p = a->data;
  for (size_t i = 0; i < a->count * elem; i++)
    sum ^= p[i];
  (void)sum;
}

void fuzz_array(const uint8_t *data, size_t size) {
  int fd = memfd_create("lpq-fuzz", MFD_CLOEXEC);
  FUZZ_CHECK(fd >= 0, "memfd_create failed");
  size_t done = 0;
  while (done < size) {
    ssize_t n = write(fd, data + done, size - done);
    FUZZ_CHECK(n > 0, "write to the memfd failed");
    done += (size_t)n;
  }
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  lpq_array_t *a = NULL;
  lpq_error_t err;
  int rc = lpq_load_array(path, &a, &err);
  if (rc == 0) {
    FUZZ_CHECK(a != NULL, "success without an array");
    fuzz_array_check(a);
    lpq_array_free(&a);
  } else {
    FUZZ_CHECK(rc < 0 && a == NULL, "rc %d with an array", rc);
    FUZZ_CHECK(err.msg[0] != '\0', "error %d without a message", rc);
  }
  close(fd);
}

LPQ_FUZZ_MAIN(fuzz_array)
