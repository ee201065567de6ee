/*
** coordinator/dispatch/zap.c: CURVE on the pool's ROUTER and its ZAP handler (ZeroMQ RFC 27).
** The ROUTER is a CURVE server; libzmq asks the REP socket bound at inproc://zeromq.zap.01
** about every handshake, and we answer from the loop (ZMQ_FD under uv_poll, like the ROUTER):
** a worker's public key is admitted when it is the key of a *.pub file in the keys folder, read
** again on every handshake so that adding or removing a file takes effect at the next connect
** without a restart. Every refusal is logged with the key and the peer's address (repeats of
** the same key and address within DISPATCH_ZAP_QUIET_MS are counted, not logged again: a
** refused peer reconnects every 100 ms).
*/
#include "coordinator/dispatch/dispatch_internal.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

#define ZAP_FRAMES 7          /* version, request id, domain, address, identity, mechanism, key */
#define ZAP_FRAME_MAX 256
#define DISPATCH_ZAP_QUIET_MS 30000

/* 1 when raw (32 bytes) is the key of a DIR/ *.pub file, its file name in which. */
static int key_known(lpq_dispatch_t *d, const uint8_t *raw, char *which, size_t which_len)
{
  DIR *dir = opendir(d->opts.curve_keys_dir);
  if (dir == NULL) {
    lpq__dispatch_log(d, 0, "curve: cannot read the keys folder %s: %s (admitting no worker)",
                 d->opts.curve_keys_dir, strerror(errno));
    return 0;
  }
  int found = 0;
  struct dirent *e;
  while (!found && (e = readdir(dir)) != NULL) {
    size_t n = strlen(e->d_name);
    if (n < 5 || strcmp(e->d_name + n - 4, ".pub") != 0 || e->d_name[0] == '.')
      continue;
    char path[4096], z85[LPQ_CURVE_KEY_LEN + 1];
    uint8_t key[32];
    lpq_error_t err;
    snprintf(path, sizeof path, "%s/%s", d->opts.curve_keys_dir, e->d_name);
    if (lpq_curve_key_read(path, z85, &err) != 0) {
      lpq__dispatch_log(d, 1, "curve: skipping %s", err.msg);
      continue;
    }
    if (zmq_z85_decode(key, z85) != NULL && memcmp(key, raw, sizeof key) == 0) {
      found = 1;
      snprintf(which, which_len, "%s", e->d_name);
    }
  }
  closedir(dir);
  return found;
}

/* Logs a refusal unless the same key and address were logged a moment ago. */
static void log_refusal(lpq_dispatch_t *d, const char *z85, const char *address,
                        const char *why)
{
  uint64_t now = uv_now(d->loop);
  d_zap_refusal_t *slot = &d->zap_refused[0];
  for (size_t i = 0; i < DISPATCH_ZAP_REMEMBER; i++) {
    d_zap_refusal_t *r = &d->zap_refused[i];
    if (strcmp(r->key, z85) == 0 && strcmp(r->address, address) == 0) {
      if (now - r->logged_ms < DISPATCH_ZAP_QUIET_MS) {
        r->repeats++;
        return;
      }
      slot = r;
      break;
    }
    if (r->logged_ms < slot->logged_ms)
      slot = r; /* the oldest is replaced */
  }
  if (slot->repeats > 0 && strcmp(slot->key, z85) == 0)
    lpq__dispatch_log(d, 1, "curve: refused worker key %s from %s %s (and %llu times more)", z85,
                 address, why, (unsigned long long)slot->repeats);
  else
    lpq__dispatch_log(d, 1, "curve: refused worker key %s from %s %s", z85, address, why);
  snprintf(slot->key, sizeof slot->key, "%s", z85);
  snprintf(slot->address, sizeof slot->address, "%s", address);
  slot->logged_ms = now ? now : 1;
  slot->repeats = 0;
}

/* Answers one ZAP request (already received as frames). */
static void zap_answer(lpq_dispatch_t *d, uint8_t f[ZAP_FRAMES][ZAP_FRAME_MAX],
                       const size_t *len, size_t nframes)
{
  const char *status = "400", *text = "unknown key";
  char address[ZAP_FRAME_MAX + 1] = "?", z85[LPQ_CURVE_KEY_LEN + 1] = "?", which[256];
  if (nframes >= 4) {
    memcpy(address, f[3], len[3]);
    address[len[3]] = '\0';
  }
  int is_curve = nframes == ZAP_FRAMES && len[5] == 5 && memcmp(f[5], "CURVE", 5) == 0 &&
                 len[6] == 32;
  if (nframes < 2 || len[0] != 3 || memcmp(f[0], "1.0", 3) != 0) {
    /* libzmq never sends this; the REP socket must still answer before its next request */
    lpq__dispatch_log(d, 0, "curve: a malformed ZAP request (%zu frames)", nframes);
    text = "malformed request";
  } else if (!is_curve) {
    text = "CURVE required";
    log_refusal(d, "(none: not CURVE)", address, "(the pool needs CURVE keys)");
  } else {
    zmq_z85_encode(z85, f[6], 32);
    if (key_known(d, f[6], which, sizeof which)) {
      status = "200";
      text = "OK";
      lpq__dispatch_log(d, 2, "curve: admitted worker key %s (%s) from %s", z85, which, address);
    } else {
      log_refusal(d, z85, address, "(not in the keys folder)");
    }
  }
  /* version, request id, status code, status text, user id, metadata */
  const void *out[6] = {"1.0", f[1], status, text, status[0] == '2' ? z85 : "", ""};
  size_t out_len[6] = {3, len[1], 3, strlen(text), status[0] == '2' ? strlen(z85) : 0, 0};
  for (int i = 0; i < 6; i++)
    if (zmq_send(d->zap, out[i], out_len[i], (i < 5 ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT) < 0) {
      lpq__dispatch_log(d, 0, "curve: cannot answer a ZAP request: %s", zmq_strerror(errno));
      return;
    }
}

/* Serves every waiting ZAP request (the FD is edge-triggered: drain until ZMQ_EVENTS says
** nothing is left). */
static void zap_pump(lpq_dispatch_t *d)
{
  uint8_t frames[ZAP_FRAMES][ZAP_FRAME_MAX];
  size_t len[ZAP_FRAMES] = {0};
  for (;;) {
    int events = 0;
    size_t size = sizeof events;
    if (d->zap == NULL || zmq_getsockopt(d->zap, ZMQ_EVENTS, &events, &size) != 0 ||
        !(events & ZMQ_POLLIN))
      return;
    size_t n = 0;
    int more = 1;
    while (more) {
      uint8_t scratch[ZAP_FRAME_MAX];
      int got = zmq_recv(d->zap, n < ZAP_FRAMES ? frames[n] : scratch, ZAP_FRAME_MAX, 0);
      if (got < 0)
        return;
      if (n < ZAP_FRAMES)
        len[n] = (size_t)got < ZAP_FRAME_MAX ? (size_t)got : ZAP_FRAME_MAX;
      n++;
      size = sizeof more;
      zmq_getsockopt(d->zap, ZMQ_RCVMORE, &more, &size);
    }
    zap_answer(d, frames, len, n); /* more than 7 frames: not CURVE, refused */
  }
}

static void on_zap_poll(uv_poll_t *h, int status, int events)
{
  (void)status;
  (void)events;
  zap_pump(h->data);
}

int lpq__dispatch_curve_setup(lpq_dispatch_t *d, const char *endpoint, lpq_error_t *err)
{
  const lpq_dispatch_opts_t *o = &d->opts;
  if (o->curve_secret_key == NULL) {
    if (o->curve_keys_dir != NULL)
      return lpq_errorf(err, LPQ_EINVAL, "dispatch: a CURVE keys folder without a secret key");
    if (!o->insecure && !lpq_curve_endpoint_is_local(endpoint))
      return lpq_errorf(err, LPQ_EINVAL,
                        "dispatch: refusing to serve workers at %s in plain text: other hosts "
                        "need CURVE (--curve-secret FILE --curve-keys DIR); --insecure allows "
                        "it (only on a network you trust), loopback and ipc:// need neither",
                        endpoint);
    return 0;
  }
  if (o->curve_keys_dir == NULL)
    return lpq_errorf(err, LPQ_EINVAL, "dispatch: CURVE needs a keys folder of worker *.pub");
  char pub[LPQ_CURVE_KEY_LEN + 1];
  int rc = lpq_curve_public_of(o->curve_secret_key, pub, err);
  if (rc != 0)
    return lpq_error_prefix(err, "dispatch: the secret key: ");
  DIR *dir = opendir(o->curve_keys_dir);
  if (dir == NULL)
    return lpq_errorf(err, LPQ_EIO, "dispatch: the CURVE keys folder %s: %s", o->curve_keys_dir,
                      strerror(errno));
  size_t keys = 0;
  for (struct dirent *e; (e = readdir(dir)) != NULL;) {
    size_t n = strlen(e->d_name);
    keys += n >= 5 && e->d_name[0] != '.' && strcmp(e->d_name + n - 4, ".pub") == 0;
  }
  closedir(dir);
  lpq__dispatch_log(d, keys ? 2 : 1, "curve: %zu worker keys (*.pub) in %s%s", keys,
               o->curve_keys_dir, keys ? "" : ": no worker can join until one is added");
  /* The handler must be bound before the ROUTER accepts anyone. */
  int zero = 0, one = 1;
  if ((d->zap = zmq_socket(d->zctx, ZMQ_REP)) == NULL ||
      zmq_setsockopt(d->zap, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
      zmq_bind(d->zap, "inproc://zeromq.zap.01") != 0)
    return lpq_errorf(err, LPQ_EIO, "dispatch: the ZAP handler: %s", zmq_strerror(errno));
  if (zmq_setsockopt(d->sock, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
      zmq_setsockopt(d->sock, ZMQ_CURVE_SECRETKEY, o->curve_secret_key, LPQ_CURVE_KEY_LEN) != 0 ||
      zmq_setsockopt(d->sock, ZMQ_ZAP_DOMAIN, "lpq", 3) != 0)
    return lpq_errorf(err, LPQ_EUNSUP, "dispatch: CURVE: %s", zmq_strerror(errno));
  int fd;
  size_t size = sizeof fd;
  if (zmq_getsockopt(d->zap, ZMQ_FD, &fd, &size) != 0 || uv_poll_init(d->loop, &d->zap_poll, fd))
    return lpq_errorf(err, LPQ_EIO, "dispatch: polling the ZAP handler failed");
  d->zap_poll.data = d;
  d->has_zap_poll = 1;
  uv_poll_start(&d->zap_poll, UV_READABLE, on_zap_poll);
  snprintf(d->curve_public, sizeof d->curve_public, "%s", pub);
  return 0;
}
