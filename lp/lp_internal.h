/* lp/lp_internal.h: what lp/'s files share and no other folder sees (non-static names lpq__*).
** Everyone else uses lp/lp.h. */
#ifndef LPQ_LP_INTERNAL_H
#define LPQ_LP_INTERNAL_H

#include "lp/lp.h"

#include <stddef.h>

/* LP "auto" (lp_calibrate.c): sets f's sf (p[3]) to the sf in a window around the centre of
** x's log-magnitudes with the least squared error, plus f->sf_offset, clamped to the sf range;
** f is then resolved. LPQ_ENOMEM, or LPQ_ENAN for a NaN in x. */
int lpq__lp_calibrate_sf(lpq_numfmt_t *f, const float *x, size_t count, lpq_error_t *err);

#endif
