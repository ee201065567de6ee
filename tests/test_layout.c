/* tests/test_layout.c: the structure docs/ARCHITECTURE.md describes, checked on the tree and
** on the built archives: includes follow the layers and reach other folders only through their
** public header; files and headers stay small; every non-static symbol of a library is either
** declared in its public header or carries the internal prefix lpq__. Runs from the repo root
** (as every suite does), with $LPQ_BUILD (default build) holding the archives. */
#include <criterion/criterion.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Each component folder, its public header, and the folders it may include. */
typedef struct component_t {
  const char *dir, *header;
  const char *allowed[10];
} component_t;

static const component_t components[] = {
    {"lp", "lp/lp.h", {NULL}},
    {"common", "common/common.h", {"lp", NULL}},
    {"engine", "engine/engine.h", {"common", "lp", NULL}},
    {"accel_sim", "accel_sim/accel_sim.h", {"engine", "common", "lp", NULL}},
    {"worker", "worker/worker.h", {"accel_sim", "engine", "common", "lp", NULL}},
    {"worker/daemon", NULL, {"worker", "accel_sim", "engine", "common", "lp", NULL}},
    {"coordinator/search", "coordinator/search/search.h", {"common", "lp", NULL}},
    {"coordinator/store", "coordinator/store/store.h", {"coordinator/search", "common", "lp", NULL}},
    {"coordinator/api", "coordinator/api/api.h", {"common", "lp", NULL}},
    {"coordinator/dispatch", "coordinator/dispatch/dispatch.h", {"common", "lp", NULL}},
    {"coordinator/http", "coordinator/http/http.h", {"coordinator/api", "common", "lp", NULL}},
    {"coordinator/daemon", NULL,
     {"coordinator/search", "coordinator/store", "coordinator/api", "coordinator/dispatch",
      "coordinator/http", "engine", "common", "lp", NULL}},
};
#define NCOMP (sizeof components / sizeof components[0])

static const component_t *component_of(const char *dir) {
  for (size_t i = 0; i < NCOMP; i++)
    if (strcmp(components[i].dir, dir) == 0)
      return &components[i];
  return NULL;
}

static int allowed(const component_t *c, const char *dir) {
  for (size_t i = 0; c->allowed[i]; i++)
    if (strcmp(c->allowed[i], dir) == 0)
      return 1;
  return 0;
}

static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Calls fn on every regular .c and .h file under dir (recursively). */
static void walk(const char *dir, void (*fn)(const char *path, void *ctx), void *ctx) {
  DIR *d = opendir(dir);
  if (!d)
    return;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.' || strcmp(e->d_name, "node_modules") == 0)
      continue; /* npm's packages (make deps) are not lpq's code */
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    struct stat st;
    if (stat(path, &st) != 0)
      continue;
    if (S_ISDIR(st.st_mode))
      walk(path, fn, ctx);
    else if (ends_with(path, ".c") || ends_with(path, ".h"))
      fn(path, ctx);
  }
  closedir(d);
}

static const char *const source_roots[] = {"lp",    "common", "engine", "accel_sim", "worker",
                                           "coordinator", "tools", "tests", "bench"};

static void check_includes(const char *path, void *ctx) {
  size_t *bad = ctx;
  char dir[512];
  snprintf(dir, sizeof dir, "%s", path);
  *strrchr(dir, '/') = '\0';
  const component_t *c = component_of(dir);
  if (!c)
    return; /* tools, tests, bench: may include anything */
  FILE *f = fopen(path, "r");
  cr_assert(f, "cannot read %s", path);
  char line[1024];
  while (fgets(line, sizeof line, f)) {
    char inc[512];
    if (sscanf(line, " #include \"%511[^\"]\"", inc) != 1)
      continue;
    char idir[512];
    snprintf(idir, sizeof idir, "%s", inc);
    char *slash = strrchr(idir, '/');
    if (!slash)
      continue;
    *slash = '\0';
    if (strcmp(idir, dir) == 0 || strcmp(idir, "onnx") == 0)
      continue;
    const component_t *ic = component_of(idir);
    if (!allowed(c, idir)) {
      cr_log_error("%s includes %s: %s may not depend on %s", path, inc, dir, idir);
      (*bad)++;
    } else if (!ic || !ic->header || strcmp(inc, ic->header) != 0) {
      cr_log_error("%s includes %s: only %s's public header may be included from %s", path,
                   inc, idir, dir);
      (*bad)++;
    }
  }
  fclose(f);
}

Test(layout, includes_follow_the_layers) {
  size_t bad = 0;
  for (size_t i = 0; i < sizeof source_roots / sizeof source_roots[0]; i++)
    walk(source_roots[i], check_includes, &bad);
  cr_assert_eq(bad, 0, "%zu includes break the layering (docs/ARCHITECTURE.md)", bad);
}

typedef struct sizes_t {
  size_t bad, files;
} sizes_t;

static void check_size(const char *path, void *ctx) {
  sizes_t *s = ctx;
  FILE *f = fopen(path, "r");
  cr_assert(f, "cannot read %s", path);
  size_t lines = 0;
  int ch;
  while ((ch = fgetc(f)) != EOF)
    lines += ch == '\n';
  fclose(f);
  s->files++;
  size_t limit = ends_with(path, ".h") ? 349 : 650;
  if (lines > limit) {
    cr_log_error("%s: %zu lines (at most %zu)", path, lines, limit);
    s->bad++;
  }
}

Test(layout, files_and_headers_stay_small) {
  sizes_t s = {0, 0};
  for (size_t i = 0; i < sizeof source_roots / sizeof source_roots[0]; i++)
    walk(source_roots[i], check_size, &s);
  cr_assert_gt(s.files, 100, "the walk found only %zu files: not run from the repo root?", s.files);
  cr_assert_eq(s.bad, 0, "%zu files over the limits (headers < 350 lines, files <= 650)", s.bad);
}

/* 1 when name appears as a whole word in the file at path. */
static int file_has_word(const char *path, const char *name) {
  FILE *f = fopen(path, "r");
  if (!f)
    return 0;
  char line[4096];
  size_t n = strlen(name);
  int found = 0;
  while (!found && fgets(line, sizeof line, f)) {
    for (char *p = strstr(line, name); p; p = strstr(p + 1, name)) {
      char before = p == line ? ' ' : p[-1], after = p[n];
      int word = (after != '_' && !(after >= '0' && after <= '9') &&
                  !((after | 32) >= 'a' && (after | 32) <= 'z'));
      int wordb = (before != '_' && !(before >= '0' && before <= '9') &&
                   !((before | 32) >= 'a' && (before | 32) <= 'z'));
      if (word && wordb) {
        found = 1;
        break;
      }
    }
  }
  fclose(f);
  return found;
}

Test(layout, library_symbols_are_api_or_internal) {
  const char *build = getenv("LPQ_BUILD") ? getenv("LPQ_BUILD") : "build";
  size_t checked = 0, bad = 0;
  for (size_t i = 0; i < NCOMP; i++) {
    const component_t *c = &components[i];
    if (!c->header)
      continue; /* programs have no API */
    char lib[512], cmd[1024];
    snprintf(lib, sizeof lib, "%s/lib/lib%s.a", build, c->dir);
    for (char *p = lib + strlen(build) + 8; *p; p++)
      if (*p == '/')
        *p = '_';
    snprintf(cmd, sizeof cmd, "nm -g --defined-only '%s' 2>/dev/null", lib);
    FILE *nm = popen(cmd, "r");
    cr_assert(nm, "cannot run nm");
    char line[1024];
    while (fgets(line, sizeof line, nm)) {
      char addr[64], type[8], name[512];
      if (sscanf(line, "%63s %7s %511s", addr, type, name) != 3 || !strchr("TDBRGSi", type[0]))
        continue;
      checked++;
      if (strncmp(name, "lpq__", 5) == 0 || strncmp(name, "onnx__", 6) == 0 ||
          strncmp(name, "__", 2) == 0)
        continue; /* internal, the generated protobuf-c code, or the compiler's (ASan) */
      if (!file_has_word(c->header, name)) {
        cr_log_error("%s: %s is neither declared in %s nor named lpq__*", lib, name, c->header);
        bad++;
      }
    }
    pclose(nm);
  }
  cr_assert_gt(checked, 200, "only %zu symbols found: are the archives built in %s/lib?",
               checked, build);
  cr_assert_eq(bad, 0, "%zu library symbols are neither API nor lpq__ internals", bad);
}
