/*
** common/curve.c: ZeroMQ CURVE key files, shared by lpq-coordinator, lpq-worker and
** `lpqctl keygen`. A key file holds one line of 40 Z85 characters (what zmq_curve_keypair
** gives): NAME.key the secret key, NAME.pub the public key. The public key is always derived
** from the secret (zmq_curve_public), so a .key file alone is enough for its owner.
*/
#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

/* Z85's alphabet (ZeroMQ RFC 32). */
static int is_z85(int c)
{
  return c != 0 && strchr("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                          ".-:+=^!/*?&<>()[]{}@%$#",
                          c) != NULL;
}

int lpq_curve_key_check(const char *z85, lpq_error_t *err)
{
  size_t n = z85 ? strlen(z85) : 0;
  if (n != LPQ_CURVE_KEY_LEN)
    return lpq_errorf(err, LPQ_EFORMAT, "a CURVE key is %d Z85 characters, not %zu",
                      LPQ_CURVE_KEY_LEN, n);
  for (size_t i = 0; i < n; i++)
    if (!is_z85((unsigned char)z85[i]))
      return lpq_errorf(err, LPQ_EFORMAT, "a CURVE key: character %zu ('%c') is not Z85", i + 1,
                        z85[i]);
  uint8_t raw[32];
  if (zmq_z85_decode(raw, z85) == NULL)
    return lpq_errorf(err, LPQ_EFORMAT, "a CURVE key does not decode as Z85");
  return 0;
}

int lpq_curve_key_read(const char *path, char z85[LPQ_CURVE_KEY_LEN + 1], lpq_error_t *err)
{
  z85[0] = '\0';
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return lpq_errorf(err, LPQ_EIO, "%s: %s", path, strerror(errno));
  char line[256];
  int found = 0, rc = 0;
  while (!found && fgets(line, sizeof line, f) != NULL) {
    char *s = line;
    while (*s == ' ' || *s == '\t')
      s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
      s[--n] = '\0';
    if (n == 0) /* no comments: '#' is a Z85 character */
      continue;
    if ((rc = lpq_curve_key_check(s, err)) != 0)
      lpq_error_prefix(err, "%s: ", path);
    else
      memcpy(z85, s, LPQ_CURVE_KEY_LEN + 1);
    found = 1;
  }
  fclose(f);
  if (!found)
    return lpq_errorf(err, LPQ_EFORMAT, "%s: no CURVE key in the file (40 Z85 characters)",
                      path);
  return rc;
}

int lpq_curve_public_of(const char *secret_z85, char public_z85[LPQ_CURVE_KEY_LEN + 1],
                        lpq_error_t *err)
{
  int rc = lpq_curve_key_check(secret_z85, err);
  if (rc != 0)
    return rc;
  if (zmq_curve_public(public_z85, secret_z85) != 0)
    return lpq_errorf(err, LPQ_EUNSUP, "zmq_curve_public: %s (libzmq built without CURVE?)",
                      zmq_strerror(errno));
  return 0;
}

/* Writes text + '\n' to a new file of the given mode; LPQ_EIO naming the file. */
static int write_new(const char *path, const char *text, mode_t mode, lpq_error_t *err)
{
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0)
    return lpq_errorf(err, LPQ_EIO, "%s: %s%s", path, strerror(errno),
                      errno == EEXIST ? " (remove it first to make a new key pair)" : "");
  char buf[LPQ_CURVE_KEY_LEN + 2];
  size_t n = (size_t)snprintf(buf, sizeof buf, "%s\n", text);
  int ok = write(fd, buf, n) == (ssize_t)n && fchmod(fd, mode) == 0;
  ok = close(fd) == 0 && ok;
  if (!ok) {
    unlink(path);
    return lpq_errorf(err, LPQ_EIO, "%s: cannot write: %s", path, strerror(errno));
  }
  return 0;
}

int lpq_curve_keygen(const char *name, char public_z85[LPQ_CURVE_KEY_LEN + 1], lpq_error_t *err)
{
  if (name == NULL || name[0] == '\0')
    return lpq_errorf(err, LPQ_EINVAL, "keygen: a NAME is required");
  char secret[LPQ_CURVE_KEY_LEN + 1], key_path[4096], pub_path[4096];
  if ((size_t)snprintf(key_path, sizeof key_path, "%s.key", name) >= sizeof key_path ||
      (size_t)snprintf(pub_path, sizeof pub_path, "%s.pub", name) >= sizeof pub_path)
    return lpq_errorf(err, LPQ_EINVAL, "keygen: the name '%.64s...' is too long", name);
  if (zmq_curve_keypair(public_z85, secret) != 0)
    return lpq_errorf(err, LPQ_EUNSUP, "zmq_curve_keypair: %s (libzmq built without CURVE?)",
                      zmq_strerror(errno));
  /* the public key first: a failure then leaves no secret lying around */
  int rc = write_new(pub_path, public_z85, 0644, err);
  if (rc == 0 && (rc = write_new(key_path, secret, 0600, err)) != 0)
    unlink(pub_path);
  memset(secret, 0, sizeof secret);
  return rc;
}

int lpq_curve_endpoint_is_local(const char *endpoint)
{
  static const char *const local[] = {"ipc://", "inproc://", "tcp://127.", "tcp://[::1]:",
                                      "tcp://localhost:"};
  if (endpoint == NULL)
    return 0;
  for (size_t i = 0; i < sizeof local / sizeof local[0]; i++)
    if (strncmp(endpoint, local[i], strlen(local[i])) == 0)
      return 1;
  return 0;
}
