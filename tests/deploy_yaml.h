/*
** tests/deploy_yaml.h: small helpers for the checks of deploy/ (tests/test_deploy*.c): YAML
** files loaded with libyaml's document API and looked up by key, the value after an option in
** a command line, files read whole and commands run. Everything is static: only the deploy
** suites include this header and link libyaml (mk/deploy_tests.mk).
*/
#ifndef LPQ_TESTS_DEPLOY_YAML_H
#define LPQ_TESTS_DEPLOY_YAML_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <yaml.h>

#define DEPLOY_MAX_DOCS 16

/* The documents of one YAML file (a file may hold several, separated by ---). */
typedef struct {
  const char *path;
  yaml_document_t docs[DEPLOY_MAX_DOCS];
  size_t count;
} yfile_t;

/* Loads every document of path; a parse error fails the test and names the file and line. */
static inline void yfile_load(yfile_t *f, const char *path) {
  memset(f, 0, sizeof *f);
  f->path = path;
  FILE *in = fopen(path, "rb");
  cr_assert_not_null(in, "cannot open %s", path);
  yaml_parser_t parser;
  cr_assert(yaml_parser_initialize(&parser));
  yaml_parser_set_input_file(&parser, in);
  for (;;) {
    cr_assert_lt(f->count, DEPLOY_MAX_DOCS, "%s: too many documents", path);
    yaml_document_t *d = &f->docs[f->count];
    cr_assert(yaml_parser_load(&parser, d), "%s:%zu: %s", path, parser.problem_mark.line + 1,
              parser.problem ? parser.problem : "YAML error");
    if (yaml_document_get_root_node(d) == NULL) {
      yaml_document_delete(d);
      break;
    }
    f->count++;
  }
  yaml_parser_delete(&parser);
  fclose(in);
}

static inline void yfile_free(yfile_t *f) {
  for (size_t i = 0; i < f->count; i++)
    yaml_document_delete(&f->docs[i]);
  f->count = 0;
}

static inline yaml_node_t *yroot(yaml_document_t *d) { return yaml_document_get_root_node(d); }

/* The scalar text of n, or NULL when n is missing or not a scalar. */
static inline const char *ystr(const yaml_node_t *n) {
  return n != NULL && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* The integer value of scalar n, or -1 when n is missing or not an integer. */
static inline long ylong(const yaml_node_t *n) {
  const char *s = ystr(n);
  char *end = NULL;
  long v = s ? strtol(s, &end, 10) : -1;
  return s && end != s && *end == '\0' ? v : -1;
}

/* The value of key in mapping n (also through a "<<" merge key), or NULL. */
static inline yaml_node_t *yget(yaml_document_t *d, yaml_node_t *n, const char *key) {
  if (n == NULL || n->type != YAML_MAPPING_NODE)
    return NULL;
  yaml_node_t *merged = NULL;
  for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
    const char *k = ystr(yaml_document_get_node(d, p->key));
    if (k != NULL && strcmp(k, key) == 0)
      return yaml_document_get_node(d, p->value);
    if (k != NULL && strcmp(k, "<<") == 0)
      merged = yaml_document_get_node(d, p->value);
  }
  return merged != NULL ? yget(d, merged, key) : NULL;
}

/* A dotted path of keys from n ("spec.template.spec"), or NULL where one is missing. */
static inline yaml_node_t *ypath(yaml_document_t *d, yaml_node_t *n, const char *path) {
  char buf[256];
  snprintf(buf, sizeof buf, "%s", path);
  for (char *save = NULL, *k = strtok_r(buf, ".", &save); k && n; k = strtok_r(NULL, ".", &save))
    n = yget(d, n, k);
  return n;
}

static inline const char *ypath_str(yaml_document_t *d, yaml_node_t *n, const char *path) {
  return ystr(ypath(d, n, path));
}

/* Items of a sequence (0 for anything else) and item i. */
static inline size_t ylen(const yaml_node_t *n) {
  return n != NULL && n->type == YAML_SEQUENCE_NODE
             ? (size_t)(n->data.sequence.items.top - n->data.sequence.items.start)
             : 0;
}

static inline yaml_node_t *yitem(yaml_document_t *d, yaml_node_t *n, size_t i) {
  return i < ylen(n) ? yaml_document_get_node(d, n->data.sequence.items.start[i]) : NULL;
}

/* The item of sequence n whose `key` is `value` (e.g. a container by name), or NULL. */
static inline yaml_node_t *yfind(yaml_document_t *d, yaml_node_t *n, const char *key, const char *value) {
  for (size_t i = 0; i < ylen(n); i++) {
    const char *v = ystr(yget(d, yitem(d, n, i), key));
    if (v != NULL && strcmp(v, value) == 0)
      return yitem(d, n, i);
  }
  return NULL;
}

/* The document of f whose kind and metadata.name are these, or NULL. */
static inline yaml_document_t *yfile_object(yfile_t *f, const char *kind, const char *name) {
  for (size_t i = 0; i < f->count; i++) {
    yaml_document_t *d = &f->docs[i];
    const char *k = ypath_str(d, yroot(d), "kind");
    const char *m = ypath_str(d, yroot(d), "metadata.name");
    if (k && m && strcmp(k, kind) == 0 && strcmp(m, name) == 0)
      return d;
  }
  return NULL;
}

/* The item after `option` in a sequence of scalars (a command line), or NULL. */
static inline const char *yarg(yaml_document_t *d, yaml_node_t *argv, const char *option) {
  for (size_t i = 0; i + 1 < ylen(argv); i++) {
    const char *a = ystr(yitem(d, argv, i));
    if (a != NULL && strcmp(a, option) == 0)
      return ystr(yitem(d, argv, i + 1));
  }
  return NULL;
}

/* Whether a command line's --tcp HOST:PORT may start: the coordinator refuses a HOST beyond
** loopback without --insecure (the bearer token is plain text). */
static inline int ytcp_allowed(yaml_document_t *d, yaml_node_t *argv) {
  const char *tcp = yarg(d, argv, "--tcp");
  if (tcp == NULL || strncmp(tcp, "127.", 4) == 0 || strncmp(tcp, "localhost:", 10) == 0)
    return 1;
  for (size_t i = 0; i < ylen(argv); i++)
    if (ystr(yitem(d, argv, i)) && strcmp(ystr(yitem(d, argv, i)), "--insecure") == 0)
      return 1;
  return 0;
}

/* Whether path lies under folder dir (dir itself counts). */
static int path_under(const char *path, const char *dir) {
  size_t n = strlen(dir);
  while (n > 1 && dir[n - 1] == '/')
    n--;
  return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

/* The port of an endpoint "tcp://HOST:PORT" or "HOST:PORT", or -1. */
static inline long endpoint_port(const char *endpoint) {
  const char *colon = endpoint ? strrchr(endpoint, ':') : NULL;
  if (colon == NULL)
    return -1;
  char *end = NULL;
  long port = strtol(colon + 1, &end, 10);
  return end != colon + 1 && *end == '\0' && port > 0 && port < 65536 ? port : -1;
}

/* A whole file as a NUL-terminated string (the caller frees it). */
static inline char *read_text(const char *path) {
  FILE *in = fopen(path, "rb");
  cr_assert_not_null(in, "cannot open %s", path);
  cr_assert_eq(fseek(in, 0, SEEK_END), 0);
  long size = ftell(in);
  cr_assert(size >= 0 && size < (1L << 24), "%s: unexpected size %ld", path, size);
  rewind(in);
  char *text = malloc((size_t)size + 1);
  cr_assert_not_null(text);
  cr_assert_eq(fread(text, 1, (size_t)size, in), (size_t)size, "%s: short read", path);
  text[size] = '\0';
  fclose(in);
  return text;
}

/* Runs a shell command; returns its exit status (-1 if it did not exit) and, when out is not
** NULL, what it printed on stdout and stderr (the caller frees it). */
static int run_command(const char *cmd, char **out) {
  char full[4096];
  snprintf(full, sizeof full, "(%s) 2>&1", cmd);
  FILE *p = popen(full, "r");
  cr_assert_not_null(p, "cannot run %s", cmd);
  size_t cap = 4096, n = 0, got;
  char *buf = malloc(cap);
  cr_assert_not_null(buf);
  while ((got = fread(buf + n, 1, cap - n - 1, p)) > 0) {
    n += got;
    if (n + 1 >= cap) {
      buf = realloc(buf, cap *= 2);
      cr_assert_not_null(buf);
    }
  }
  buf[n] = '\0';
  int status = pclose(p);
  if (out != NULL)
    *out = buf;
  else
    free(buf);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Whether a program is on PATH. */
static int have_program(const char *name) {
  char cmd[256];
  snprintf(cmd, sizeof cmd, "command -v %s >/dev/null", name);
  return run_command(cmd, NULL) == 0;
}

#endif
