/* tools/lpqctl/cmd_keygen.c: `lpqctl keygen NAME`: a CURVE key pair for the worker pool
** (NAME.key, the secret, mode 0600; NAME.pub, the public key). Needs no coordinator. */
#include "tools/lpqctl/lpqctl.h"

#include <stdio.h>

int cmd_keygen(ctl_t *ctl, int argc, char **argv) {
  static const struct option opts[] = {CTL_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
  int c;
  optind = 0;
  while ((c = ctl_getopt(ctl, "keygen", argc, argv, "h", opts)) != -1) {
    if (c != 'h') {
      fprintf(stderr, "usage: lpqctl keygen NAME\n");
      return CTL_USAGE;
    }
    printf("usage: lpqctl keygen NAME [--json]\n"
           "Writes a ZeroMQ CURVE key pair: NAME.key (the secret key, mode 0600) and NAME.pub\n"
           "(the public key), 40 Z85 characters each. The coordinator loads its NAME.key with\n"
           "--curve-secret and admits the workers whose NAME.pub is in its --curve-keys folder;\n"
           "a worker loads its own NAME.key with --curve-secret and the coordinator's .pub with\n"
           "--curve-server-key. Existing files are not overwritten.\n");
    return CTL_OK;
  }
  if (optind != argc - 1) {
    fprintf(stderr, "usage: lpqctl keygen NAME\n");
    return CTL_USAGE;
  }
  const char *name = argv[optind];
  char pub[LPQ_CURVE_KEY_LEN + 1];
  lpq_error_t err = {0};
  if (lpq_curve_keygen(name, pub, &err) != 0) {
    fprintf(stderr, "lpqctl: keygen: %s\n", err.msg);
    return CTL_FAILED;
  }
  if (ctl->json)
    printf("{\"key\": \"%s.key\", \"pub\": \"%s.pub\", \"public_key\": \"%s\"}\n", name, name,
           pub);
  else
    printf("wrote %s.key (secret, mode 0600) and %s.pub (public key %s)\n", name, name, pub);
  return CTL_OK;
}
