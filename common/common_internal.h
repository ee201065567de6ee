/* common/common_internal.h: what common/'s files share and no other folder sees (non-static
** names lpq__*). Everyone else uses common/common.h. */
#ifndef LPQ_COMMON_INTERNAL_H
#define LPQ_COMMON_INTERNAL_H

#include "common/common.h"

#include <stddef.h>

/* Byte order helpers the loaders share (npy.c): 1 on a little-endian host; reverses the bytes
** of each of count elements of elem_size bytes in place. */
int lpq__host_is_little_endian(void);
void lpq__bswap(void *data, size_t count, size_t elem_size);

#endif
