/* tools/lpq/lpq.h: the subcommands of the offline tool `lpq`. Each takes the arguments after
** its name (argv[0] is the subcommand) and returns the process exit status. */
#ifndef LPQ_TOOL_LPQ_H
#define LPQ_TOOL_LPQ_H

typedef struct lpq_command_t {
  const char *name;
  const char *summary;
  int (*run)(int argc, char **argv);
} lpq_command_t;

int cmd_format(int argc, char **argv);
int cmd_accel(int argc, char **argv);
int cmd_run(int argc, char **argv);

#endif
