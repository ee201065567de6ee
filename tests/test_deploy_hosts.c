/*
** tests/test_deploy_hosts.c: the other ways to run the pool hold together. The compose file
** scales workers that reach the coordinator and its keys; the Dockerfile's stages, user, volume
** and health check agree with the daemons' options; the systemd units parse (systemd-analyze
** verify where installed) and carry the hardening; the Slurm scripts pass bash -n and
** shellcheck and run end to end with stub daemons (tests/deploy_slurm.sh).
*/
#include "tests/deploy_yaml.h"

#include <jansson.h>
#include <unistd.h>

/* ---- Dockerfile ---------------------------------------------------------------------- */

typedef struct {
  char keyword[16];
  char *args; /* points into the parsed text */
  size_t stage;
} instruction_t;

typedef struct {
  char *text; /* rewritten in place: one NUL-terminated instruction after another */
  instruction_t ins[128];
  size_t count;
  const char *stage_name[8], *stage_from[8];
  size_t stages;
} dockerfile_t;

/* Instructions with continuation lines joined (a comment inside one is dropped, as Docker
** does); FROM IMAGE AS NAME opens a stage. */
static void dockerfile_load(dockerfile_t *df, const char *path) {
  memset(df, 0, sizeof *df);
  df->text = read_text(path);
  char *out = df->text, *line = df->text, *start = NULL;
  while (*line) {
    char *eol = strchr(line, '\n');
    char *next = eol ? eol + 1 : line + strlen(line);
    size_t len = (size_t)(next - line) - (eol ? 1 : 0);
    const char *first = line + strspn(line, " \t");
    if (*first == '#' || first == line + len) { /* a comment or a blank line */
      line = next;
      continue;
    }
    if (start == NULL)
      start = out;
    int more = len > 0 && line[len - 1] == '\\';
    memmove(out, line, len - (size_t)more);
    out += len - (size_t)more;
    if (!more) {
      *out++ = '\0';
      cr_assert_lt(df->count, 128);
      instruction_t *in = &df->ins[df->count++];
      size_t kw = strcspn(start, " \t");
      cr_assert_lt(kw, sizeof in->keyword, "%s: '%s'", path, start);
      memcpy(in->keyword, start, kw);
      in->args = start + kw + strspn(start + kw, " \t");
      if (strcmp(in->keyword, "FROM") == 0) {
        cr_assert_lt(df->stages, 8);
        char *as = strstr(in->args, " AS ");
        cr_assert_not_null(as, "%s: every stage is named (FROM IMAGE AS NAME)", path);
        *as = '\0';
        df->stage_from[df->stages] = in->args;
        df->stage_name[df->stages++] = as + 4;
      }
      cr_assert_gt(df->stages, 0, "%s: %s before FROM", path, in->keyword);
      in->stage = df->stages - 1;
      start = NULL;
    }
    line = next;
  }
}

static long stage_index(const dockerfile_t *df, const char *name) {
  for (size_t i = 0; i < df->stages; i++)
    if (strcmp(df->stage_name[i], name) == 0)
      return (long)i;
  return -1;
}

/* The last `keyword` instruction of stage `name` (or of a stage it is built FROM), or NULL. */
static const char *stage_instruction(const dockerfile_t *df, const char *name, const char *kw) {
  long s = stage_index(df, name);
  cr_assert_geq(s, 0, "Dockerfile: no stage %s", name);
  for (size_t i = df->count; i-- > 0;)
    if (df->ins[i].stage == (size_t)s && strcmp(df->ins[i].keyword, kw) == 0)
      return df->ins[i].args;
  return stage_index(df, df->stage_from[s]) >= 0 ? stage_instruction(df, df->stage_from[s], kw)
                                                  : NULL;
}

/* The value after option in a JSON-array (exec form) instruction, or NULL; out must hold 256. */
static const char *exec_arg(const char *json_array, const char *option, char out[256]) {
  json_t *a = json_array ? json_loads(json_array, 0, NULL) : NULL;
  cr_assert(json_is_array(a), "not an exec-form JSON array: %s", json_array);
  const char *found = NULL;
  for (size_t i = 0; i + 1 < json_array_size(a); i++)
    if (strcmp(json_string_value(json_array_get(a, i)), option) == 0) {
      snprintf(out, 256, "%s", json_string_value(json_array_get(a, i + 1)));
      found = out;
    }
  json_decref(a);
  return found;
}

Test(deploy_hosts, dockerfile) {
  dockerfile_t df;
  dockerfile_load(&df, "deploy/docker/Dockerfile");
  cr_assert_geq(df.stages, 4);
  cr_assert_str_eq(df.stage_from[0], "debian:bookworm");
  cr_assert_str_eq(df.stage_name[0], "build");
  long runtime = stage_index(&df, "runtime");
  cr_assert(runtime > 0 && strcmp(df.stage_from[runtime], "debian:bookworm-slim") == 0,
            "runtime stage: debian:bookworm-slim");
  cr_assert_str_eq(df.stage_from[stage_index(&df, "worker")], "runtime");
  cr_assert_str_eq(df.stage_from[stage_index(&df, "coordinator")], "runtime");
  cr_assert_str_eq(df.stage_name[df.stages - 1], "coordinator", "the default target");
  int runs_deb = 0, runs_deps = 0, installs_deb = 0;
  for (size_t i = 0; i < df.count; i++) {
    const instruction_t *in = &df.ins[i];
    if (in->stage == 0 && strcmp(in->keyword, "RUN") == 0) {
      runs_deb |= strstr(in->args, "make deb") != NULL;
      runs_deps |= strstr(in->args, "scripts/deps.sh") != NULL;
    }
    /* The runtime installs the package (apt brings its Depends), never a copy of build/. */
    if (in->stage == (size_t)runtime && strcmp(in->keyword, "RUN") == 0)
      installs_deb |= strstr(in->args, "apt-get install") && strstr(in->args, ".deb");
    cr_assert(strstr(in->args, "build/bin") == NULL, "%s %s: install the .deb, not build/bin",
              in->keyword, in->args);
    char from[64];
    if (strcmp(in->keyword, "COPY") == 0 && sscanf(in->args, "--from=%63s", from) == 1) {
      long s = stage_index(&df, from);
      cr_assert(s >= 0 && (size_t)s < in->stage, "COPY --from=%s: not an earlier stage", from);
    }
  }
  cr_assert(runs_deb && runs_deps, "the build stage installs scripts/deps.sh and runs make deb");
  cr_assert(installs_deb, "the runtime stage installs the .deb with apt-get install");
  /* The programs the images run are the Makefile's, which the package installs on PATH. */
  char *makefile = read_text("Makefile");
  const char *bins[] = {"lpq-coordinator", "lpq-worker", "lpqctl"};
  for (size_t i = 0; i < 3; i++) {
    char want[64];
    snprintf(want, sizeof want, " %s:", bins[i]);
    cr_assert(strstr(makefile, want), "the Makefile builds no program %s", bins[i]);
  }
  free(makefile);
  /* The package's user _lpq, made with the numeric uid the images run as. */
  int makes_user = 0;
  for (size_t i = 0; i < df.count; i++)
    makes_user |= df.ins[i].stage == (size_t)runtime && strstr(df.ins[i].args, "--uid 10001") &&
                  strstr(df.ins[i].args, " _lpq");
  cr_assert(makes_user, "the runtime stage makes the user _lpq with uid 10001 before the .deb");
  /* A numeric non-root user (what runAsNonRoot can verify). */
  const char *user = stage_instruction(&df, "coordinator", "USER");
  cr_assert(user && atol(user) > 0 && user[strspn(user, "0123456789")] == ':',
            "USER %s: expected UID:GID, not root", user);
  /* The coordinator's volume holds --db; the health check asks its --socket. */
  char db[256], sock[256], hc_sock[256];
  const char *entry = stage_instruction(&df, "coordinator", "ENTRYPOINT");
  cr_assert_not_null(exec_arg(entry, "--db", db));
  cr_assert_not_null(exec_arg(entry, "--socket", sock));
  const char *volume = stage_instruction(&df, "coordinator", "VOLUME");
  json_t *vols = volume ? json_loads(volume, 0, NULL) : NULL;
  cr_assert(json_is_array(vols) && json_array_size(vols) == 1, "VOLUME %s", volume);
  cr_assert(path_under(db, json_string_value(json_array_get(vols, 0))), "--db %s not in VOLUME",
            db);
  json_decref(vols);
  const char *hc = stage_instruction(&df, "coordinator", "HEALTHCHECK");
  cr_assert(hc && strstr(hc, "CMD [\"lpqctl\""), "HEALTHCHECK: an lpqctl call");
  cr_assert_not_null(exec_arg(strstr(hc, "CMD ") + 4, "--socket", hc_sock));
  cr_assert_str_eq(hc_sock, sock, "the health check asks another socket");
  const char *expose = stage_instruction(&df, "coordinator", "EXPOSE");
  cr_assert(expose && strstr(expose, "5555") && strstr(expose, "5556"), "EXPOSE %s", expose);
  const char *wentry = stage_instruction(&df, "worker", "ENTRYPOINT");
  cr_assert(wentry && strncmp(wentry, "[\"lpq-worker\"", 13) == 0, "worker ENTRYPOINT %s", wentry);
  char *ignore = read_text("deploy/docker/Dockerfile.dockerignore");
  cr_assert(strstr(ignore, "\nbuild\n") && strstr(ignore, ".git\n"), "ignore build/ and .git");
  free(ignore);
  free(df.text);
}

/* ---- compose.yaml -------------------------------------------------------------------- */

/* The volume of service svc mounted at the longest target holding path; *target gets it. */
static const char *compose_volume_for(yaml_document_t *d, yaml_node_t *svc, const char *path,
                                      char target[256]) {
  static char best[256];
  size_t best_len = 0;
  yaml_node_t *vols = yget(d, svc, "volumes");
  for (size_t i = 0; i < ylen(vols); i++) {
    char spec[256]; /* SOURCE:TARGET[:MODE] */
    snprintf(spec, sizeof spec, "%s", ystr(yitem(d, vols, i)) ? ystr(yitem(d, vols, i)) : "");
    char *colon = strchr(spec, ':');
    if (colon == NULL)
      continue;
    *colon = '\0';
    char *dst = colon + 1;
    dst[strcspn(dst, ":")] = '\0';
    if (path_under(path, dst) && strlen(dst) > best_len) {
      best_len = strlen(dst);
      snprintf(best, sizeof best, "%s", spec);
      snprintf(target, 256, "%s", dst);
    }
  }
  return best_len > 0 ? best : NULL;
}

Test(deploy_hosts, compose) {
  yfile_t f;
  yfile_load(&f, "deploy/compose.yaml");
  yaml_document_t *d = &f.docs[0];
  yaml_node_t *services = yget(d, yroot(d), "services");
  yaml_node_t *coord = yget(d, services, "coordinator"), *worker = yget(d, services, "worker");
  cr_assert(coord && worker && yget(d, services, "keys"), "services coordinator, worker, keys");
  /* --scale worker=N: no fixed name, no host port. */
  cr_assert_null(yget(d, worker, "container_name"), "worker: container_name prevents --scale");
  cr_assert_null(yget(d, worker, "ports"), "worker: a published port prevents --scale");
  dockerfile_t df;
  dockerfile_load(&df, "deploy/docker/Dockerfile");
  yaml_node_t *svcs[] = {coord, worker};
  const char *targets[] = {"coordinator", "worker"};
  for (size_t i = 0; i < 2; i++) {
    cr_assert_str_eq(ypath_str(d, svcs[i], "build.target"), targets[i]);
    char path[512];
    snprintf(path, sizeof path, "deploy/%s/%s", ypath_str(d, svcs[i], "build.context"),
             ypath_str(d, svcs[i], "build.dockerfile"));
    cr_assert_eq(access(path, R_OK), 0, "compose builds from %s, which is missing", path);
    cr_assert_str_eq(ypath_str(d, svcs[i], "depends_on.keys.condition"),
                     "service_completed_successfully", "%s waits for its keys", targets[i]);
  }
  /* Workers reach the coordinator's --workers port by its service name. */
  yaml_node_t *ccmd = yget(d, coord, "command"), *wcmd = yget(d, worker, "command");
  long port = endpoint_port(yarg(d, ccmd, "--workers"));
  char want[64];
  snprintf(want, sizeof want, "tcp://coordinator:%ld", port);
  cr_assert(port > 0 && yarg(d, wcmd, "--connect") && strcmp(yarg(d, wcmd, "--connect"), want) == 0,
            "worker --connect %s, coordinator binds port %ld", yarg(d, wcmd, "--connect"), port);
  cr_assert(ytcp_allowed(d, ccmd), "coordinator --tcp %s without --insecure: it refuses to "
            "start", yarg(d, ccmd, "--tcp"));
  /* The database (the image's --db) on a named volume. */
  char db[256], target[256];
  cr_assert_not_null(exec_arg(stage_instruction(&df, "coordinator", "ENTRYPOINT"), "--db", db));
  const char *data = compose_volume_for(d, coord, db, target);
  cr_assert(data && yget(d, yget(d, yroot(d), "volumes"), data), "--db %s: no named volume", db);
  /* Every key file is on a volume that the keys service fills. */
  struct { yaml_node_t *svc, *cmd; const char *option; } keys[] = {
      {coord, ccmd, "--curve-secret"}, {coord, ccmd, "--curve-keys"},
      {coord, ccmd, "--token-file"},   {worker, wcmd, "--curve-secret"},
      {worker, wcmd, "--curve-server-key"}};
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
    const char *path = yarg(d, keys[i].cmd, keys[i].option);
    cr_assert_not_null(path, "%s missing", keys[i].option);
    const char *vol = compose_volume_for(d, keys[i].svc, path, target);
    cr_assert_not_null(vol, "%s %s: on no volume", keys[i].option, path);
    int filled = 0;
    yaml_node_t *kv = ypath(d, services, "keys.volumes");
    for (size_t j = 0; j < ylen(kv); j++)
      filled |= strncmp(ystr(yitem(d, kv, j)), vol, strlen(vol)) == 0 &&
                ystr(yitem(d, kv, j))[strlen(vol)] == ':';
    cr_assert(filled, "%s %s: volume %s is not made by the keys service", keys[i].option, path,
              vol);
  }
  free(df.text);
  yfile_free(&f);
}

/* ---- systemd ------------------------------------------------------------------------- */

/* The value of the last `key=` line of a unit (continuations joined), or NULL; out: 2048. */
static const char *unit_value(const char *text, const char *key, char out[2048]) {
  const char *found = NULL;
  size_t klen = strlen(key);
  for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
    if (strncmp(l, key, klen) != 0 || l[klen] != '=')
      continue;
    size_t n = 0;
    for (const char *p = l + klen + 1; *p && n < 2047; p++) {
      if (p[0] == '\\' && p[1] == '\n') {
        p++;
        continue;
      }
      if (*p == '\n')
        break;
      out[n++] = *p;
    }
    out[n] = '\0';
    found = out;
  }
  return found;
}

/* The word after `option` in an ExecStart line, or NULL; out: 256. */
static const char *exec_option(const char *exec, const char *option, char out[256]) {
  const char *p = strstr(exec, option);
  while (p && !(p[strlen(option)] == ' ' && (p == exec || p[-1] == ' ')))
    p = strstr(p + 1, option);
  if (p == NULL)
    return NULL;
  p += strlen(option) + strspn(p + strlen(option), " ");
  size_t n = strcspn(p, " ");
  snprintf(out, 256, "%.*s", (int)(n < 255 ? n : 255), p);
  return out;
}

static void check_unit(const char *unit, const char *binary, const char *env_example) {
  char path[256], v[2048], opt[256];
  snprintf(path, sizeof path, "deploy/systemd/%s", unit);
  char *text = read_text(path);
  const char *must[][2] = {
      {"Restart", "on-failure"},       {"User", "_lpq"},             {"ProtectSystem", "strict"},
      {"Group", "_lpq"},
      {"ProtectHome", "yes"},          {"PrivateTmp", "yes"},        {"NoNewPrivileges", "yes"},
      {"CapabilityBoundingSet", ""},   {"SystemCallArchitectures", "native"},
      {"KillSignal", "SIGTERM"},       {"WantedBy", "multi-user.target"}};
  for (size_t i = 0; i < sizeof must / sizeof must[0]; i++) {
    const char *got = unit_value(text, must[i][0], v);
    cr_assert(got && strcmp(got, must[i][1]) == 0, "%s: %s=%s expected, found %s", unit,
              must[i][0], must[i][1], got ? got : "nothing");
  }
  cr_assert(strstr(text, "\nSystemCallFilter=@system-service\n"), "%s: SystemCallFilter", unit);
  /* The package's system user (debian/lpq.postinst, lpq.sysusers), not a dynamic one. */
  cr_assert_null(unit_value(text, "DynamicUser", v), "%s: User=_lpq, not DynamicUser", unit);
  char *sysusers = read_text("deploy/systemd/lpq.sysusers");
  cr_assert(strstr(sysusers, "\nu _lpq "), "lpq.sysusers does not declare the user _lpq");
  free(sysusers);
  cr_assert(unit_value(text, "RestrictAddressFamilies", v) && !strstr(v, "AF_PACKET"), "%s", unit);
  /* The EnvironmentFile is the example shipped beside the unit, and defines every ${VAR}. */
  snprintf(path, sizeof path, "EnvironmentFile=/etc/lpq/%s\n", env_example);
  cr_assert(strstr(text, path), "%s: EnvironmentFile /etc/lpq/%s", unit, env_example);
  snprintf(path, sizeof path, "deploy/systemd/%s", env_example);
  char *env = read_text(path);
  cr_assert_not_null(unit_value(text, "ExecStart", v), "%s: no ExecStart", unit);
  cr_assert(strncmp(v, binary, strlen(binary)) == 0, "%s: ExecStart runs %s", unit, binary);
  for (const char *p = strchr(v, '$'); p; p = strchr(p + 1, '$')) {
    char var[64];
    if (sscanf(p, "${%63[A-Z_]}", var) != 1 && sscanf(p, "$%63[A-Z_]", var) != 1)
      continue;
    char def[80];
    snprintf(def, sizeof def, "\n%s=", var);
    cr_assert(strstr(env, def), "%s: $%s is not set in %s", unit, var, env_example);
  }
  /* Secrets are credentials (%d/NAME) that LoadCredential provides. */
  const char *secret_opts[] = {"--curve-secret", "--token-file"};
  for (size_t i = 0; i < 2; i++)
    if (exec_option(v, secret_opts[i], opt)) {
      cr_assert(strncmp(opt, "%d/", 3) == 0, "%s: %s %s is not a credential", unit,
                secret_opts[i], opt);
      char cred[300];
      snprintf(cred, sizeof cred, "\nLoadCredential=%s:", opt + 3);
      cr_assert(strstr(text, cred), "%s: no LoadCredential for %s", unit, opt + 3);
    }
  /* Files the daemon writes are in the directories systemd makes for it. */
  const char *dirs[][3] = {{"--db", "%S/", "StateDirectory"},
                           {"--socket", "%t/", "RuntimeDirectory"},
                           {"--cache-dir", "%C/", "CacheDirectory"}};
  for (size_t i = 0; i < 3; i++) {
    if (!exec_option(v, dirs[i][0], opt))
      continue;
    char d[2048], want[2100];
    cr_assert_not_null(unit_value(text, dirs[i][2], d), "%s: %s without %s", unit, dirs[i][0],
                       dirs[i][2]);
    snprintf(want, sizeof want, "%s%s", dirs[i][1], d);
    cr_assert(path_under(opt, want), "%s: %s %s is not in %s=%s", unit, dirs[i][0], opt,
              dirs[i][2], d);
  }
  free(env);
  free(text);
}

Test(deploy_hosts, systemd_units) {
  check_unit("lpq-coordinator.service", "/usr/local/bin/lpq-coordinator ", "coordinator.env");
  check_unit("lpq-worker@.service", "/usr/local/bin/lpq-worker ", "worker.env");
  char *w = read_text("deploy/systemd/lpq-worker@.service");
  cr_assert(strstr(w, "--id %H-%i"), "each worker instance has its own id");
  free(w);
  if (!have_program("systemd-analyze")) {
    fprintf(stderr, "deploy_hosts: systemd_units: systemd-analyze verify skipped: "
            "systemd-analyze is not installed (the units got the key checks only)\n");
    cr_skip_test("systemd-analyze is not installed: the units got the key checks only");
  }
  /* systemd-analyze verify in a scratch root: the units, their EnvironmentFiles, stand-ins for
  ** the binaries and the system's own units (for the targets they name). */
  char *out = NULL;
  int rc = run_command(
      "set -e; r=$(mktemp -d); trap 'rm -rf \"$r\"' EXIT; "
      "mkdir -p \"$r/usr/local/bin\" \"$r/etc/systemd/system\" \"$r/etc/lpq\" \"$r/usr/lib/systemd\"; "
      "for b in lpq-coordinator lpq-worker; do printf '#!/bin/sh\\n' > \"$r/usr/local/bin/$b\"; "
      "chmod 755 \"$r/usr/local/bin/$b\"; done; "
      "cp deploy/systemd/*.service \"$r/etc/systemd/system/\"; "
      "cp deploy/systemd/*.env \"$r/etc/lpq/\"; "
      "if [ -d /usr/lib/systemd/system ]; then cp -r /usr/lib/systemd/system \"$r/usr/lib/systemd/\"; fi; "
      "cd \"$r/etc/systemd/system\"; "
      "systemd-analyze verify --root=\"$r\" --man=no lpq-coordinator.service lpq-worker@1.service",
      &out);
  cr_assert_eq(rc, 0, "systemd-analyze verify failed:\n%s", out);
  cr_assert_eq(out[0], '\0', "systemd-analyze verify complained:\n%s", out);
  free(out);
}

/* ---- Slurm --------------------------------------------------------------------------- */

Test(deploy_hosts, slurm_scripts) {
  const char *scripts[] = {"deploy/slurm/lpq-coordinator.sbatch", "deploy/slurm/lpq-workers.sbatch"};
  char cmd[512], *out = NULL;
  cr_assert(have_program("shellcheck"), "shellcheck is not installed: run `make deps`");
  for (size_t i = 0; i < 2; i++) {
    snprintf(cmd, sizeof cmd, "bash -n %s && shellcheck -s bash %s", scripts[i], scripts[i]);
    cr_assert_eq(run_command(cmd, &out), 0, "%s:\n%s", scripts[i], out);
    free(out);
    /* sbatch reads #SBATCH lines only until the first command. */
    char *text = read_text(scripts[i]);
    const char *last = NULL, *first_cmd = NULL;
    for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
      if (strncmp(l, "#SBATCH", 7) == 0)
        last = l;
      else if (first_cmd == NULL && *l != '#' && *l != '\n')
        first_cmd = l;
    }
    cr_assert(last && (first_cmd == NULL || last < first_cmd),
              "%s: an #SBATCH line after the first command is ignored by sbatch", scripts[i]);
    cr_assert_eq(strstr(text, "#SBATCH --array") != NULL, i == 1, "%s: --array", scripts[i]);
    free(text);
  }
  cr_assert_eq(run_command("bash tests/deploy_slurm.sh", &out), 0, "%s", out);
  free(out);
}

Test(deploy_hosts, readme) {
  char *readme = read_text("deploy/README.md");
  const char *mentions[] = {
      "systemd/lpq-coordinator.service", "systemd/lpq-worker@.service", "docker/Dockerfile",
      "compose.yaml", "k8s/kustomization.yaml", "slurm/lpq-coordinator.sbatch",
      "slurm/lpq-workers.sbatch", "--scale worker=", "kubectl apply -k", "sbatch --dependency",
      "systemctl enable", "lpqctl keygen", "Sizing", "Failures", "Disk full", "partition"};
  for (size_t i = 0; i < sizeof mentions / sizeof mentions[0]; i++)
    cr_assert(strstr(readme, mentions[i]), "deploy/README.md does not mention %s", mentions[i]);
  free(readme);
}
