/*
** worker/daemon/worker_daemon.h: what the files of the lpq-worker program share.
*/
#ifndef LPQ_WORKER_DAEMON_H
#define LPQ_WORKER_DAEMON_H

#include "worker/worker.h"

#include <stdlib.h>

/* The evaluator registered under name ("synthetic", "real"), built with its option argument
** (synthetic: milliseconds; real: the cut cache's MiB, or NULL for the default). LPQ_EUNSUP
** when that evaluator is not built in. */
int worker_evaluator_create(const char *name, const char *arg, lpq_worker_evaluator_t *out,
                            lpq_error_t *err);

#endif
