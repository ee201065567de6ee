/* tools/lpqctl/lpqctl.h: `lpqctl`, the client of lpq-coordinator's JSON-RPC API: the connection
** and call helpers every subcommand uses, and the subcommands. */
#ifndef LPQ_TOOL_LPQCTL_H
#define LPQ_TOOL_LPQCTL_H

#include "coordinator/api/api.h"

#include <getopt.h>
#include <stdio.h>

/* Exit statuses. */
enum { CTL_OK = 0, CTL_FAILED = 1, CTL_USAGE = 2, CTL_NOCONNECT = 3 };

/* The connection options shared by every subcommand, and the connection (made on first use). */
typedef struct ctl_t {
  const char *socket_path; /* --socket, else $LPQ_SOCKET, else LPQ_API_DEFAULT_SOCKET */
  const char *tcp;         /* --tcp HOST:PORT */
  const char *token;       /* --token, else $LPQ_TOKEN */
  int json;                /* --json: print the results as JSON */
  int fd;                  /* -1 until connected */
  long next_id;
  char *buf;               /* received bytes not yet framed */
  size_t len, cap;
} ctl_t;

/* The getopt_long rows every command takes, before or after its name: the connection options,
** --json and --help (returned as 'h'). A command's own rows use vals from CTL_OPT_OWN on. */
enum { CTL_OPT_SOCKET = 0x100, CTL_OPT_TCP, CTL_OPT_TOKEN, CTL_OPT_JSON, CTL_OPT_OWN = 0x120 };
#define CTL_COMMON_OPTIONS                                                                       \
  {"socket", required_argument, NULL, CTL_OPT_SOCKET},                                           \
      {"tcp", required_argument, NULL, CTL_OPT_TCP},                                             \
      {"token", required_argument, NULL, CTL_OPT_TOKEN},                                         \
      {"json", no_argument, NULL, CTL_OPT_JSON}, {"help", no_argument, NULL, 'h'}

/* getopt_long over argv (a command's, argv[0] its name; cmd NULL: lpqctl's own, which stop at
** the command) with the short options shortopts and the rows opts (CTL_COMMON_OPTIONS
** included): the next option's val, the common ones applied to ctl and skipped; -1 after the
** last option (the operands are then argv[optind..argc-1]); '?' for an unknown option or a
** missing value, printed as "lpqctl CMD: ...". The caller sets optind = 0 before a scan's
** first call (glibc then forgets the previous scan, its ordering included). */
int ctl_getopt(ctl_t *ctl, const char *cmd, int argc, char **argv, const char *shortopts,
               const struct option *opts);
void ctl_close(ctl_t *ctl);

/* A server-push notification received while waiting for an answer. */
typedef void (*ctl_notify_fn)(void *ctx, const char *method, json_t *params);

/* Calls method with params (stolen; NULL: none) and waits for the answer. On success *result
** is the result (the caller owns it) and CTL_OK is returned; an RPC error is printed as
** "lpqctl: METHOD: message" (and its data) and gives CTL_FAILED; a connection failure prints
** what to check and gives CTL_NOCONNECT. Notifications that arrive meanwhile go to on_notify. */
int ctl_call(ctl_t *ctl, const char *method, json_t *params, json_t **result,
             ctl_notify_fn on_notify, void *ctx);
/* Waits for the next notification (timeout_ms < 0: forever). CTL_OK with *method and *params
** (owned by the caller; free both), CTL_NOCONNECT when the server went away. */
int ctl_next_notification(ctl_t *ctl, int timeout_ms, char **method, json_t **params);

/* Output helpers. */
void ctl_print_json(const json_t *v);
/* A number in a table cell ("-" for null or missing). */
const char *ctl_num(const json_t *v, const char *fmt, char *buf, size_t size);
/* Seconds as "1h02m", "3m20s", "12.5s" ("-" for null). */
const char *ctl_duration(const json_t *v, char *buf, size_t size);
/* Parses a positive job id; prints an error and returns 0 when it is not one. */
long ctl_job_id(const char *cmd, const char *text);

/* Subcommands: argv[0] is the subcommand's name; return an exit status. */
typedef struct ctl_command_t {
  const char *name;
  const char *summary;
  int (*run)(ctl_t *ctl, int argc, char **argv);
} ctl_command_t;

int cmd_submit(ctl_t *ctl, int argc, char **argv);
int cmd_list(ctl_t *ctl, int argc, char **argv);
int cmd_status(ctl_t *ctl, int argc, char **argv);
int cmd_watch(ctl_t *ctl, int argc, char **argv);
int cmd_cancel(ctl_t *ctl, int argc, char **argv);
int cmd_pareto(ctl_t *ctl, int argc, char **argv);
int cmd_sensitivity(ctl_t *ctl, int argc, char **argv);
int cmd_export(ctl_t *ctl, int argc, char **argv);
int cmd_workers(ctl_t *ctl, int argc, char **argv);
int cmd_history(ctl_t *ctl, int argc, char **argv);
int cmd_stats(ctl_t *ctl, int argc, char **argv);
int cmd_keygen(ctl_t *ctl, int argc, char **argv);

/* Follows a job's job.progress notifications until a final one (a bar on a terminal, one line
** per notification otherwise, JSON lines with --json). Used by submit and watch. */
int ctl_follow_job(ctl_t *ctl, long job);

/* Writes the SVG plot of a job.pareto result to path. 0, or -1 with a message printed. */
int ctl_pareto_svg(const json_t *pareto, const char *path);

#endif
