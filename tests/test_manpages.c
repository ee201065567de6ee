/*
** tests/test_manpages.c: the man pages (man/NAME.SECTION.md, turned into roff by go-md2man in
** $LPQ_BUILD/man) cannot drift from the programs: every option and command that a program's
** --help lists, and each command's own --help, appears in its page; each page has the sections
** a man page needs; groff renders each built page without a warning (what lintian checks).
*/
#include <criterion/criterion.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *build_dir(void) {
  return getenv("LPQ_BUILD") ? getenv("LPQ_BUILD") : "build";
}

/* The output (stdout and stderr) of a shell command, NUL-terminated; the caller frees it. */
static char *command_output(const char *cmd, int *status) {
  FILE *p = popen(cmd, "r");
  cr_assert_not_null(p, "cannot run %s", cmd);
  size_t len = 0, cap = 4096;
  char *buf = malloc(cap);
  cr_assert_not_null(buf);
  size_t n;
  while ((n = fread(buf + len, 1, cap - len - 1, p)) > 0) {
    len += n;
    if (cap - len < 2) {
      buf = realloc(buf, cap *= 2);
      cr_assert_not_null(buf);
    }
  }
  buf[len] = '\0';
  int rc = pclose(p);
  if (status)
    *status = rc;
  return buf;
}

static char *read_file(const char *path) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, "cat '%s'", path);
  int rc = 0;
  char *text = command_output(cmd, &rc);
  cr_assert_eq(rc, 0, "cannot read %s", path);
  return text;
}

static int option_char(char c) {
  return isalnum((unsigned char)c) || c == '-' || c == '_';
}

/* 1 when word occurs in text with no option character right before or after it. */
static int has_word(const char *text, const char *word) {
  size_t n = strlen(word);
  for (const char *p = strstr(text, word); p; p = strstr(p + 1, word))
    if ((p == text || !option_char(p[-1])) && !option_char(p[n]))
      return 1;
  return 0;
}

/* Checks that every --option (and -x short option) in help appears in page; returns how many
** options were found in help. */
static size_t check_options(const char *help, const char *page, const char *page_path,
                            const char *what) {
  size_t found = 0;
  for (const char *p = help; *p; p++) {
    if (p[0] != '-' || (p > help && option_char(p[-1])))
      continue;
    char opt[64];
    size_t n = 0;
    if (p[1] == '-' && isalnum((unsigned char)p[2])) {
      while (n < sizeof opt - 1 && option_char(p[n]))
        opt[n] = p[n], n++;
    } else if (isalpha((unsigned char)p[1]) && !option_char(p[2])) {
      opt[0] = '-', opt[1] = p[1], n = 2;
    } else {
      continue;
    }
    opt[n] = '\0';
    while (n > 0 && opt[n - 1] == '-') /* "--foo-" at a line break: keep the option */
      opt[--n] = '\0';
    found++;
    cr_expect(has_word(page, opt), "%s: %s lists %s, which %s does not mention", page_path,
              what, opt, page_path);
    p += n - 1;
  }
  return found;
}

/* The commands a top-level --help lists under "commands:": lines "  NAME  what it does". */
static size_t list_commands(const char *help, char names[][32], size_t max) {
  const char *p = strstr(help, "\ncommands:\n");
  cr_assert_not_null(p, "no 'commands:' section in:\n%s", help);
  size_t count = 0;
  for (p = strchr(p + 1, '\n') + 1; *p == ' ' && count < max; p = strchr(p, '\n') + 1) {
    if (sscanf(p, " %31[a-z0-9-]", names[count]) == 1)
      count++;
    if (strchr(p, '\n') == NULL)
      break;
  }
  return count;
}

typedef struct {
  const char *program, *page;
  int has_commands; /* lpq COMMAND, lpqctl COMMAND */
} manpage_t;

static const manpage_t pages[] = {
    {"lpq", "man/lpq.1.md", 1},
    {"lpqctl", "man/lpqctl.1.md", 1},
    {"lpq-coordinator", "man/lpq-coordinator.8.md", 0},
    {"lpq-worker", "man/lpq-worker.8.md", 0},
};
#define NPAGES (sizeof pages / sizeof pages[0])

Test(manpages, every_option_of_help_is_in_the_page) {
  for (size_t i = 0; i < NPAGES; i++) {
    const manpage_t *m = &pages[i];
    char *page = read_file(m->page), cmd[512], what[128];
    int rc = 0;
    snprintf(cmd, sizeof cmd, "'%s/bin/%s' --help 2>&1", build_dir(), m->program);
    char *help = command_output(cmd, &rc);
    cr_assert_eq(rc, 0, "%s --help failed:\n%s", m->program, help);
    snprintf(what, sizeof what, "%s --help", m->program);
    size_t options = check_options(help, page, m->page, what);
    if (m->has_commands) {
      char names[32][32];
      size_t count = list_commands(help, names, 32);
      cr_assert_gt(count, 3, "%s --help lists only %zu commands", m->program, count);
      for (size_t k = 0; k < count; k++) {
        cr_expect(has_word(page, names[k]), "%s: command %s is not in the page", m->page,
                  names[k]);
        snprintf(cmd, sizeof cmd, "'%s/bin/%s' %s --help 2>&1", build_dir(), m->program,
                 names[k]);
        char *sub = command_output(cmd, &rc);
        cr_expect_eq(rc, 0, "%s %s --help failed:\n%s", m->program, names[k], sub);
        snprintf(what, sizeof what, "%s %s --help", m->program, names[k]);
        options += check_options(sub, page, m->page, what);
        free(sub);
      }
    }
    cr_expect_gt(options, 3, "%s: only %zu options found in --help", m->program, options);
    free(help);
    free(page);
  }
}

Test(manpages, pages_have_the_sections_of_a_man_page) {
  const char *sections[] = {"# NAME\n", "# SYNOPSIS\n", "# DESCRIPTION\n", "# EXIT STATUS\n",
                            "# ENVIRONMENT\n", "# FILES\n", "# EXAMPLES\n", "# SEE ALSO\n"};
  for (size_t i = 0; i < NPAGES; i++) {
    char *page = read_file(pages[i].page);
    for (size_t k = 0; k < sizeof sections / sizeof sections[0]; k++)
      cr_expect(strstr(page, sections[k]), "%s: no section %.*s", pages[i].page,
                (int)strlen(sections[k]) - 1, sections[k]);
    /* The title line names the program in capitals, with the section of the file name. */
    char title[64];
    const char *dot = strrchr(pages[i].page, '.') - 1;
    snprintf(title, sizeof title, "%s %c ", pages[i].program, *dot);
    for (char *c = title; *c; c++)
      *c = (char)toupper((unsigned char)*c);
    cr_expect(strncmp(page, title, strlen(title)) == 0, "%s: the title line should start '%s'",
              pages[i].page, title);
    free(page);
  }
}

/* What lintian runs on every page: groff's warnings (a line starting with '.', a bad escape). */
Test(manpages, groff_renders_every_page_without_a_warning) {
  int rc = 0;
  free(command_output("command -v man > /dev/null", &rc));
  if (rc != 0) {
    fprintf(stderr, "manpages: groff rendering skipped: man is not installed\n");
    cr_skip_test("man is not installed: the built pages were not rendered");
  }
  for (size_t i = 0; i < NPAGES; i++) {
    char cmd[1024], built[256];
    const char *name = strrchr(pages[i].page, '/') + 1;
    snprintf(built, sizeof built, "%s/man/%.*s", build_dir(), (int)(strlen(name) - 3), name);
    snprintf(cmd, sizeof cmd,
             "test -s '%s' && LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z "
             "'%s' 2>&1 > /dev/null",
             built, built);
    char *out = command_output(cmd, &rc);
    cr_expect_eq(rc, 0, "%s is not built (make man) or man failed:\n%s", built, out);
    cr_expect_eq(out[0], '\0', "%s: groff warns:\n%s", built, out);
    free(out);
  }
}
