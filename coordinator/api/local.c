/*
** coordinator/api/local.c: in-process clients (api.h, lpq_api_local_*): connections without a
** socket, for the dashboard's HTTP bridge. A request takes the path of a socket client's
** (validation, counters, the method) and the answers and notifications reach a callback
** instead of a socket; job.watch works on them as on any connection.
*/
#include "coordinator/api/api_internal.h"

#include <stdlib.h>

struct lpq_api_local_t {
  api_conn_t *conn;
};

lpq_api_local_t *lpq_api_local_new(lpq_api_server_t *s, lpq_api_local_fn on_message, void *ctx) {
  if (s == NULL || on_message == NULL || s->freeing)
    return NULL;
  lpq_api_local_t *l = calloc(1, sizeof *l);
  api_conn_t *c = l ? calloc(1, sizeof *c) : NULL;
  if (c == NULL) {
    free(l);
    return NULL;
  }
  c->server = s;
  c->is_local = 1;
  c->authenticated = 1;
  c->on_message = on_message;
  c->local_ctx = ctx;
  c->accepted_ns = lpq__api_now_ns();
  /* one reference for being open (dropped by the close), one for the handle l */
  c->refs = 2;
  c->next = s->conns;
  if (s->conns)
    s->conns->prev = c;
  s->conns = c;
  l->conn = c;
  return l;
}

int lpq_api_local_call(lpq_api_local_t *l, const char *method, json_t *params, json_int_t id) {
  if (l == NULL || method == NULL) {
    json_decref(params);
    return LPQ_EINVAL;
  }
  if (l->conn->closing) {
    json_decref(params);
    return LPQ_EIO;
  }
  json_t *req = json_pack("{ss sI ss}", "jsonrpc", "2.0", "id", id, "method", method);
  if (req == NULL || (params && json_object_set_new(req, "params", params) != 0)) {
    if (req == NULL)
      json_decref(params);
    json_decref(req);
    return LPQ_ENOMEM;
  }
  lpq__api_handle_request(l->conn, req);
  json_decref(req);
  return 0;
}

void lpq_api_local_free(lpq_api_local_t **lp) {
  if (lp == NULL || *lp == NULL)
    return;
  api_conn_t *c = (*lp)->conn;
  free(*lp);
  *lp = NULL;
  lpq__api_conn_close(c, 0); /* subscriptions end; answers due are dropped (closing) */
  lpq__api_conn_unref(c);    /* the handle's reference; the last call's frees it */
}
