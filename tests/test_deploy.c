/*
** tests/test_deploy.c: the Kubernetes manifests (deploy/k8s/) hold together: yamllint passes;
** the coordinator's database is on its volume claim; workers reach the coordinator through the
** Service by name and port; probes talk to the socket the daemon opens; pods run as non-root
** with a read-only root and resource requests; every key file a daemon is given comes from the
** Secret. The compose file, Dockerfile, systemd units and Slurm scripts: test_deploy_hosts.c.
*/
#include "tests/deploy_yaml.h"

#include <unistd.h>

#define K8S "deploy/k8s/"

typedef struct {
  yfile_t kustomization;
  yfile_t resources[8];
  size_t nresources;
  const char *secret_name;  /* the secretGenerator's name */
  const char *secret_keys[8];
  size_t nsecret_keys;
  yaml_document_t *sts, *deploy; /* the coordinator StatefulSet, the worker Deployment */
} k8s_t;

static yaml_document_t *k8s_object(k8s_t *k, const char *kind, const char *name) {
  for (size_t i = 0; i < k->nresources; i++) {
    yaml_document_t *d = yfile_object(&k->resources[i], kind, name);
    if (d != NULL)
      return d;
  }
  return NULL;
}

/* Loads the kustomization and every resource it lists; reads its secretGenerator. */
static void k8s_load(k8s_t *k) {
  memset(k, 0, sizeof *k);
  yfile_load(&k->kustomization, K8S "kustomization.yaml");
  yaml_document_t *d = &k->kustomization.docs[0];
  yaml_node_t *res = yget(d, yroot(d), "resources");
  cr_assert_gt(ylen(res), 0, "kustomization.yaml lists no resources");
  for (size_t i = 0; i < ylen(res); i++) {
    cr_assert_lt(k->nresources, 8);
    char path[256];
    snprintf(path, sizeof path, K8S "%s", ystr(yitem(d, res, i)));
    cr_assert_eq(access(path, R_OK), 0, "kustomization.yaml lists %s, which is missing", path);
    yfile_load(&k->resources[k->nresources++], path);
  }
  yaml_node_t *gen = yget(d, yroot(d), "secretGenerator");
  cr_assert_eq(ylen(gen), 1, "expected one secretGenerator (the keys and the token)");
  yaml_node_t *g = yitem(d, gen, 0);
  k->secret_name = ystr(yget(d, g, "name"));
  cr_assert_not_null(k->secret_name);
  yaml_node_t *files = yget(d, g, "files");
  for (size_t i = 0; i < ylen(files) && k->nsecret_keys < 8; i++) {
    const char *spec = ystr(yitem(d, files, i)); /* KEY=PATH */
    const char *eq = spec ? strchr(spec, '=') : NULL;
    cr_assert_not_null(eq, "secretGenerator file '%s': expected KEY=PATH", spec);
    cr_assert(strncmp(eq + 1, "keys/", 5) == 0, "%s: keys belong in keys/ (never committed)", spec);
    k->secret_keys[k->nsecret_keys++] = spec;
  }
  k->sts = k8s_object(k, "StatefulSet", "lpq-coordinator");
  k->deploy = k8s_object(k, "Deployment", "lpq-worker");
  cr_assert_not_null(k->sts, "no StatefulSet lpq-coordinator among the resources");
  cr_assert_not_null(k->deploy, "no Deployment lpq-worker among the resources");
}

static void k8s_free(k8s_t *k) {
  yfile_free(&k->kustomization);
  for (size_t i = 0; i < k->nresources; i++)
    yfile_free(&k->resources[i]);
}

static int secret_has_key(const k8s_t *k, const char *key) {
  for (size_t i = 0; i < k->nsecret_keys; i++) {
    size_t n = strlen(key);
    if (strncmp(k->secret_keys[i], key, n) == 0 && k->secret_keys[i][n] == '=')
      return 1;
  }
  return 0;
}

/* Every key/value of selector (in document ds) is among labels (in document dl). */
static int labels_match(yaml_document_t *ds, yaml_node_t *selector, yaml_document_t *dl,
                        yaml_node_t *labels) {
  if (selector == NULL || selector->type != YAML_MAPPING_NODE ||
      selector->data.mapping.pairs.top == selector->data.mapping.pairs.start)
    return 0;
  for (yaml_node_pair_t *p = selector->data.mapping.pairs.start;
       p < selector->data.mapping.pairs.top; p++) {
    const char *key = ystr(yaml_document_get_node(ds, p->key));
    const char *want = ystr(yaml_document_get_node(ds, p->value));
    const char *have = ystr(yget(dl, labels, key));
    if (want == NULL || have == NULL || strcmp(want, have) != 0)
      return 0;
  }
  return 1;
}

/* The volumeMount of container c with the longest mountPath that holds path, or NULL. */
static yaml_node_t *mount_for(yaml_document_t *d, yaml_node_t *c, const char *path) {
  yaml_node_t *best = NULL, *mounts = yget(d, c, "volumeMounts");
  size_t best_len = 0;
  for (size_t i = 0; i < ylen(mounts); i++) {
    const char *mp = ystr(yget(d, yitem(d, mounts, i), "mountPath"));
    if (mp != NULL && path_under(path, mp) && strlen(mp) > best_len) {
      best = yitem(d, mounts, i);
      best_len = strlen(mp);
    }
  }
  return best;
}

/* A file or folder the daemon writes: on a writable mount of an emptyDir or, when claims is
** given, of one of its volume claim templates (the root file system is read-only). */
static void check_writable(yaml_document_t *d, yaml_node_t *pod, yaml_node_t *c, const char *path,
                           yaml_node_t *claims, const char *what) {
  cr_assert_not_null(path, "%s: option missing", what);
  yaml_node_t *m = mount_for(d, c, path);
  cr_assert_not_null(m, "%s %s is on the read-only root file system", what, path);
  const char *ro = ystr(yget(d, m, "readOnly"));
  cr_assert(ro == NULL || strcmp(ro, "false") == 0, "%s %s: its mount is read-only", what, path);
  const char *name = ystr(yget(d, m, "name"));
  yaml_node_t *v = yfind(d, yget(d, pod, "volumes"), "name", name);
  int ok = v != NULL && yget(d, v, "emptyDir") != NULL;
  for (size_t i = 0; !ok && i < ylen(claims); i++) {
    const char *claim = ypath_str(d, yitem(d, claims, i), "metadata.name");
    ok = claim != NULL && strcmp(claim, name) == 0;
  }
  cr_assert(ok, "%s %s: volume '%s' is neither an emptyDir nor a claim", what, path, name);
}

/* A key file (or, with is_dir, a folder of *.pub keys) the daemon reads: mounted read-only
** from the generated Secret, as an item whose key the generator makes. */
static void check_secret_path(k8s_t *k, yaml_document_t *d, yaml_node_t *pod, yaml_node_t *c,
                              const char *path, int is_dir, const char *what) {
  cr_assert_not_null(path, "%s: option missing", what);
  yaml_node_t *m = mount_for(d, c, path);
  cr_assert_not_null(m, "%s %s: not on any mounted volume", what, path);
  const char *mp = ystr(yget(d, m, "mountPath"));
  cr_assert_str_eq(ystr(yget(d, m, "readOnly")) ? ystr(yget(d, m, "readOnly")) : "", "true",
                   "%s: mount %s should be readOnly", what, mp);
  yaml_node_t *v = yfind(d, yget(d, pod, "volumes"), "name", ystr(yget(d, m, "name")));
  const char *secret = ypath_str(d, v, "secret.secretName");
  cr_assert(secret && strcmp(secret, k->secret_name) == 0,
            "%s %s: volume is not the Secret %s", what, path, k->secret_name);
  yaml_node_t *items = ypath(d, v, "secret.items");
  cr_assert_gt(ylen(items), 0, "%s: mount only the Secret's items it needs", what);
  const char *rel = path + strlen(mp);
  while (*rel == '/')
    rel++;
  int found = 0;
  for (size_t i = 0; i < ylen(items); i++) {
    yaml_node_t *it = yitem(d, items, i);
    const char *key = ystr(yget(d, it, "key")), *ipath = ystr(yget(d, it, "path"));
    cr_assert(key && secret_has_key(k, key), "%s: item key '%s' is not in the Secret", what, key);
    if (is_dir) {
      size_t n = ipath ? strlen(ipath) : 0;
      cr_assert(n > 4 && strcmp(ipath + n - 4, ".pub") == 0, "%s: %s holds '%s', not a *.pub",
                what, path, ipath);
      found = *rel == '\0';
    } else if (ipath && strcmp(ipath, rel) == 0) {
      found = 1;
    }
  }
  cr_assert(found, "%s %s: no Secret item is mounted there", what, path);
}

/* Non-root, no privilege escalation, read-only root, requests and a memory limit. */
static void check_pod_basics(k8s_t *k, yaml_document_t *d, yaml_node_t *pod, yaml_node_t *c,
                             const char *what) {
  cr_assert_str_eq(ypath_str(d, pod, "securityContext.runAsNonRoot"), "true", "%s", what);
  cr_assert_gt(ylong(ypath(d, pod, "securityContext.runAsUser")), 0,
               "%s: runAsUser should be a non-zero uid", what);
  const char *fields[][2] = {{"securityContext.allowPrivilegeEscalation", "false"},
                             {"securityContext.readOnlyRootFilesystem", "true"}};
  for (size_t i = 0; i < 2; i++) {
    const char *v = ypath_str(d, c, fields[i][0]);
    cr_assert(v && strcmp(v, fields[i][1]) == 0, "%s: %s should be %s", what, fields[i][0],
              fields[i][1]);
  }
  yaml_node_t *drop = ypath(d, c, "securityContext.capabilities.drop");
  cr_assert(ylen(drop) == 1 && strcmp(ystr(yitem(d, drop, 0)), "ALL") == 0,
            "%s: drop ALL capabilities", what);
  const char *res[] = {"resources.requests.cpu", "resources.requests.memory",
                       "resources.limits.memory"};
  for (size_t i = 0; i < 3; i++)
    cr_assert_not_null(ypath_str(d, c, res[i]), "%s: %s missing", what, res[i]);
  /* The image is one the kustomization's images list can retarget. */
  char image[128];
  snprintf(image, sizeof image, "%s", ystr(yget(d, c, "image")));
  image[strcspn(image, ":@")] = '\0';
  yaml_document_t *kd = &k->kustomization.docs[0];
  cr_assert_not_null(yfind(kd, yget(kd, yroot(kd), "images"), "name", image),
                     "%s: image %s missing from kustomization images", what, image);
}

/* CPU quantity ("2", "1.5", "500m") in millicores, or -1. */
static long cpu_millis(const char *q) {
  if (q == NULL)
    return -1;
  char *end = NULL;
  double v = strtod(q, &end);
  if (end == q || v <= 0)
    return -1;
  if (strcmp(end, "m") == 0)
    return (long)v;
  return *end == '\0' ? (long)(v * 1000 + 0.5) : -1;
}

static yaml_node_t *pod_spec(yaml_document_t *d) {
  return ypath(d, yroot(d), "spec.template.spec");
}

static yaml_node_t *only_container(yaml_document_t *d, const char *what) {
  yaml_node_t *cs = yget(d, pod_spec(d), "containers");
  cr_assert_eq(ylen(cs), 1, "%s: expected one container", what);
  return yitem(d, cs, 0);
}

Test(deploy, yamllint) {
  char *out = NULL;
  cr_assert(have_program("yamllint"), "yamllint is not installed: run `make deps`");
  int rc = run_command("yamllint -s -f parsable -c deploy/.yamllint deploy/", &out);
  cr_assert_eq(rc, 0, "yamllint found problems:\n%s", out);
  free(out);
}

Test(deploy, k8s_resources) {
  k8s_t k;
  k8s_load(&k);
  yaml_document_t *kd = &k.kustomization.docs[0];
  cr_assert_not_null(ypath_str(kd, yroot(kd), "namespace"), "kustomization sets no namespace");
  /* The generated Secret holds what both workloads need. */
  const char *needed[] = {"coordinator.key", "coordinator.pub", "worker.key", "worker.pub",
                          "api-token"};
  for (size_t i = 0; i < 5; i++)
    cr_assert(secret_has_key(&k, needed[i]), "the Secret lacks %s", needed[i]);
  char *ignore = read_text(K8S "keys/.gitignore");
  cr_assert(strstr(ignore, "\n*\n") || strncmp(ignore, "*\n", 2) == 0,
            "keys/.gitignore must ignore every key file");
  free(ignore);
  for (size_t i = 0; i < k.nresources; i++)
    for (size_t j = 0; j < k.resources[i].count; j++) {
      yaml_document_t *d = &k.resources[i].docs[j];
      cr_assert(ypath_str(d, yroot(d), "apiVersion") && ypath_str(d, yroot(d), "kind") &&
                    ypath_str(d, yroot(d), "metadata.name"),
                "%s: document %zu lacks apiVersion, kind or metadata.name", k.resources[i].path,
                j + 1);
    }
  k8s_free(&k);
}

Test(deploy, k8s_coordinator) {
  k8s_t k;
  k8s_load(&k);
  yaml_document_t *d = k.sts;
  yaml_node_t *spec = yget(d, yroot(d), "spec"), *pod = pod_spec(d);
  yaml_node_t *c = only_container(d, "coordinator");
  cr_assert_str_eq(ypath_str(d, spec, "replicas"), "1", "one coordinator: SQLite has one writer");
  cr_assert_str_eq(ystr(yitem(d, yget(d, c, "command"), 0)), "lpq-coordinator");
  yaml_node_t *args = yget(d, c, "args");

  /* The database on the volume claim, the socket on a writable volume. */
  yaml_node_t *claims = yget(d, spec, "volumeClaimTemplates");
  cr_assert_gt(ylen(claims), 0, "no volumeClaimTemplates");
  const char *db = yarg(d, args, "--db");
  check_writable(d, pod, c, db, claims, "--db");
  const char *claim = ystr(yget(d, mount_for(d, c, db), "name"));
  yaml_node_t *pvc = NULL;
  for (size_t i = 0; i < ylen(claims); i++)
    if (claim && ypath_str(d, yitem(d, claims, i), "metadata.name") &&
        strcmp(ypath_str(d, yitem(d, claims, i), "metadata.name"), claim) == 0)
      pvc = yitem(d, claims, i);
  cr_assert_not_null(pvc, "--db %s is not on a volume claim template", db);
  cr_assert_str_eq(ystr(yitem(d, ypath(d, pvc, "spec.accessModes"), 0)), "ReadWriteOnce");
  cr_assert_not_null(ypath_str(d, pvc, "spec.resources.requests.storage"));
  const char *sock = yarg(d, args, "--socket");
  check_writable(d, pod, c, sock, NULL, "--socket");

  /* Probes ask the daemon through that very socket. */
  const char *probes[] = {"livenessProbe", "readinessProbe"};
  for (size_t i = 0; i < 2; i++) {
    yaml_node_t *p = yget(d, c, probes[i]);
    cr_assert_not_null(p, "no %s", probes[i]);
    yaml_node_t *cmd = ypath(d, p, "exec.command");
    cr_assert_str_eq(ystr(yitem(d, cmd, 0)), "lpqctl", "%s: not an lpqctl call", probes[i]);
    cr_assert(yarg(d, cmd, "--socket") && strcmp(yarg(d, cmd, "--socket"), sock) == 0,
              "%s asks a socket other than --socket %s", probes[i], sock);
  }

  /* Workers' and API ports are container ports; other hosts can reach the workers' one. */
  const char *workers = yarg(d, args, "--workers"), *tcp = yarg(d, args, "--tcp");
  cr_assert(workers && strncmp(workers, "tcp://0.0.0.0:", 14) == 0,
            "--workers %s does not accept other hosts", workers);
  cr_assert(ytcp_allowed(d, args), "--tcp %s without --insecure: the coordinator refuses it",
            tcp);
  long ports[2] = {endpoint_port(workers), endpoint_port(tcp)};
  for (size_t i = 0; i < 2; i++) {
    int found = 0;
    yaml_node_t *cp = yget(d, c, "ports");
    for (size_t j = 0; j < ylen(cp); j++)
      found |= ylong(yget(d, yitem(d, cp, j), "containerPort")) == ports[i];
    cr_assert(found, "port %ld is not a containerPort", ports[i]);
  }

  /* CURVE and the token come from the Secret. */
  check_secret_path(&k, d, pod, c, yarg(d, args, "--curve-secret"), 0, "--curve-secret");
  check_secret_path(&k, d, pod, c, yarg(d, args, "--token-file"), 0, "--token-file");
  check_secret_path(&k, d, pod, c, yarg(d, args, "--curve-keys"), 1, "--curve-keys");
  check_pod_basics(&k, d, pod, c, "coordinator");

  /* The governing Service is headless and selects this pod. */
  const char *svc_name = ypath_str(d, spec, "serviceName");
  yaml_document_t *sd = k8s_object(&k, "Service", svc_name ? svc_name : "");
  cr_assert_not_null(sd, "serviceName %s: no such Service", svc_name);
  cr_assert_str_eq(ypath_str(sd, yroot(sd), "spec.clusterIP"), "None");
  cr_assert(labels_match(sd, ypath(sd, yroot(sd), "spec.selector"), d,
                         ypath(d, spec, "template.metadata.labels")));
  k8s_free(&k);
}

Test(deploy, k8s_worker) {
  k8s_t k;
  k8s_load(&k);
  yaml_document_t *d = k.deploy, *cd = k.sts;
  yaml_node_t *pod = pod_spec(d), *c = only_container(d, "worker");
  yaml_node_t *cc = only_container(cd, "coordinator");
  cr_assert_str_eq(ystr(yitem(d, yget(d, c, "command"), 0)), "lpq-worker");
  yaml_node_t *args = yget(d, c, "args");

  /* --connect tcp://SERVICE:PORT: a Service selecting the coordinator pod, whose PORT leads
  ** to the container port the coordinator's --workers binds. */
  const char *connect = yarg(d, args, "--connect");
  cr_assert(connect && strncmp(connect, "tcp://", 6) == 0, "--connect %s", connect);
  char host[128];
  snprintf(host, sizeof host, "%s", connect + 6);
  host[strcspn(host, ":")] = '\0';
  long port = endpoint_port(connect);
  yaml_document_t *sd = k8s_object(&k, "Service", host);
  cr_assert_not_null(sd, "--connect %s: no Service named %s", connect, host);
  cr_assert(labels_match(sd, ypath(sd, yroot(sd), "spec.selector"), cd,
                         ypath(cd, yroot(cd), "spec.template.metadata.labels")),
            "Service %s does not select the coordinator pod", host);
  yaml_node_t *sp = ypath(sd, yroot(sd), "spec.ports"), *svc_port = NULL;
  for (size_t i = 0; i < ylen(sp); i++)
    if (ylong(yget(sd, yitem(sd, sp, i), "port")) == port)
      svc_port = yitem(sd, sp, i);
  cr_assert_not_null(svc_port, "Service %s has no port %ld", host, port);
  const char *target = ystr(yget(sd, svc_port, "targetPort"));
  yaml_node_t *cports = yget(cd, cc, "ports"), *cport = NULL;
  for (size_t i = 0; target && i < ylen(cports); i++) {
    yaml_node_t *p = yitem(cd, cports, i);
    const char *name = ystr(yget(cd, p, "name")), *num = ystr(yget(cd, p, "containerPort"));
    if ((name && strcmp(name, target) == 0) || (num && strcmp(num, target) == 0))
      cport = p;
  }
  cr_assert_not_null(cport, "targetPort %s is no port of the coordinator", target);
  long bound = endpoint_port(yarg(cd, yget(cd, cc, "args"), "--workers"));
  cr_assert_eq(ylong(yget(cd, cport, "containerPort")), bound,
               "the Service leads to port %s, the coordinator binds %ld",
               ystr(yget(cd, cport, "containerPort")), bound);

  /* One evaluation per core: --threads fits the CPU limit. */
  const char *threads = yarg(d, args, "--threads");
  long limit = cpu_millis(ypath_str(d, c, "resources.limits.cpu"));
  cr_assert(threads && atol(threads) > 0, "--threads missing or not a number");
  cr_assert(limit > 0 && atol(threads) * 1000 <= limit, "--threads %s exceeds the CPU limit %ldm",
            threads, limit);
  check_writable(d, pod, c, yarg(d, args, "--cache-dir"), NULL, "--cache-dir");
  check_secret_path(&k, d, pod, c, yarg(d, args, "--curve-secret"), 0, "worker --curve-secret");
  check_secret_path(&k, d, pod, c, yarg(d, args, "--curve-server-key"), 0, "--curve-server-key");
  check_pod_basics(&k, d, pod, c, "worker");
  cr_assert_not_null(ypath_str(d, yroot(d), "spec.replicas"));
  k8s_free(&k);
}
