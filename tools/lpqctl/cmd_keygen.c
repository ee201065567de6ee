/* tools/lpqctl/cmd_keygen.c: `lpqctl keygen NAME`: a CURVE key pair for the worker pool
** (NAME.key, the secret, mode 0600; NAME.pub, the public key). Needs no coordinator. */
#include "tools/lpqctl/lpqctl.h"

#include <string.h>

int cmd_keygen(ctl_t *ctl, int argc, char **argv) {
  if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
    printf("usage: lpqctl keygen NAME\n"
           "Writes a ZeroMQ CURVE key pair: NAME.key (the secret key, mode 0600) and NAME.pub\n"
           "(the public key), 40 Z85 characters each. The coordinator loads its NAME.key with\n"
           "--curve-secret and admits the workers whose NAME.pub is in its --curve-keys folder;\n"
           "a worker loads its own NAME.key with --curve-secret and the coordinator's .pub with\n"
           "--curve-server-key. Existing files are not overwritten.\n");
    return CTL_OK;
  }
  if (argc != 2 || argv[1][0] == '-') {
    fprintf(stderr, "usage: lpqctl keygen NAME\n");
    return CTL_USAGE;
  }
  char pub[LPQ_CURVE_KEY_LEN + 1];
  lpq_error_t err = {0};
  if (lpq_curve_keygen(argv[1], pub, &err) != 0) {
    fprintf(stderr, "lpqctl: keygen: %s\n", err.msg);
    return CTL_FAILED;
  }
  if (ctl->json)
    printf("{\"key\": \"%s.key\", \"pub\": \"%s.pub\", \"public_key\": \"%s\"}\n", argv[1],
           argv[1], pub);
  else
    printf("wrote %s.key (secret, mode 0600) and %s.pub (public key %s)\n", argv[1], argv[1],
           pub);
  return CTL_OK;
}
