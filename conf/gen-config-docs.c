/* gen-config-docs.c: run at build time. Writes the shipped main.cf, or the main.cf manual page
 * (postbus.conf(5)), from the one parameter table (config-params.h): every parameter, its default and
 * its meaning, grouped by the role that reads it, each group opened by its notes from main.cf.notes.
 *   gen-config-docs main.cf|man NOTES_FILE > OUTPUT */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

/* The groups, in the order a reader meets the roles along a message's way. */
static const char *const groups[] = { "all", "smtpd", "rewrite", "cleanup", "qmgr", "local", "pipe", "bounce",
                                      "smtp", NULL };

/* The first word of a parameter's roles: the group it is listed in. */
static int param_group(const ConfigParam *p) {
        size_t n = strcspn(p->roles, " ");
        for (int g = 0; groups[g]; g++)
                if (strlen(groups[g]) == n && strncmp(p->roles, groups[g], n) == 0)
                        return g;
        return 0;
}

/* The notes of a group: the lines after "[group]" up to the next "[" line, or NULL; the caller frees. */
static char *group_notes(const char *notes, const char *group) {
        char head[64];
        snprintf(head, sizeof head, "[%s]\n", group);
        for (const char *p = notes; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
                if (strncmp(p, head, strlen(head)) == 0) {
                        const char *start = p + strlen(head), *end = start;
                        while (*end && *end != '[') {
                                const char *nl = strchr(end, '\n');
                                end = nl ? nl + 1 : end + strlen(end);
                        }
                        return strndup(start, (size_t) (end - start));
                }
        return NULL;
}

/* Prints text wrapped at width columns, each line after prefix. */
static void wrap(const char *prefix, const char *text, size_t width) {
        size_t col = 0;

        for (const char *w = text; *w;) {
                size_t n = strcspn(w, " ");
                if (col > 0 && col + 1 + n > width) {
                        putchar('\n');
                        col = 0;
                }
                if (col == 0) {
                        fputs(prefix, stdout);
                        col = strlen(prefix);
                } else {
                        putchar(' ');
                        col++;
                }
                fwrite(w, 1, n, stdout);
                col += n;
                w += n;
                w += strspn(w, " ");
        }
        if (col > 0)
                putchar('\n');
}

/* roff: a backslash and a leading dot or quote must not be taken as requests. */
static void roff(const char *s) {
        for (; *s; s++)
                if (*s == '\\')
                        fputs("\\e", stdout);
                else if (*s == '-')
                        fputs("\\-", stdout);
                else
                        putchar(*s);
}

static const char *const type_names[] = {
        [CONFIG_STRING] = "string", [CONFIG_INT] = "number", [CONFIG_SIZE] = "size in bytes",
        [CONFIG_TIME] = "time (s, m, h, d, w)", [CONFIG_BOOL] = "yes or no",
};

/* What main.cf sets in the shipped file; every other parameter is there, commented out. */
static int shipped_set(const char *name) {
        return strcmp(name, "mydestination") == 0 || strcmp(name, "mynetworks") == 0;
}

static void write_main_cf(const char *notes) {
        printf("# /etc/postbus/main.cf: postbus's configuration, in Postfix's syntax (name = value, $name\n"
               "# expansion, lines that start with white space continue the one before). Each parameter is\n"
               "# listed with its meaning and, commented out, its default; postbus.conf(5) says more, and\n"
               "# `postbusctl config -n` shows what this file changes. Roles read this file when they start:\n"
               "# restart them after a change (systemctl restart postbus.target).\n"
               "# Generated from src/shared/config-params.h; the default is also in main.cf.dist.\n");
        for (int g = 0; groups[g]; g++) {
                printf("\n# ==== %s ====\n", strcmp(groups[g], "all") == 0 ? "every role" : groups[g]);
                char *n = group_notes(notes, groups[g]);
                if (n && *n) {
                        for (char *line = strtok(n, "\n"); line; line = strtok(NULL, "\n"))
                                printf("#%s%s\n", strcmp(line, ".") == 0 ? "" : " ", strcmp(line, ".") == 0 ? "" : line);
                }
                free(n);
                for (int i = 0; i < _CONFIG_PARAM_MAX; i++) {
                        const ConfigParam *p = config_params + i;
                        if (param_group(p) != g)
                                continue;
                        putchar('\n');
                        wrap("# ", p->doc, 100);
                        printf("%s%s =%s%s\n", shipped_set(p->name) ? "" : "#", p->name, *p->def ? " " : "",
                               p->def);
                }
        }
}

static void write_man(const char *notes) {
        printf(".TH POSTBUS.CONF 5 \"\" postbus \"File Formats\"\n"
               ".SH NAME\npostbus.conf \\- the parameters of /etc/postbus/main.cf\n"
               ".SH DESCRIPTION\n"
               "postbus reads \\fI/etc/postbus/main.cf\\fR in Postfix's syntax: \\fIname\\fR = \\fIvalue\\fR,\n"
               "\\fB$name\\fR and \\fB${name}\\fR expand to other parameters, and a line that starts with\n"
               "white space continues the one before. A parameter not set has its default. A value that\n"
               "does not parse stops the role that reads it, with the file and line in the journal.\n"
               "Parameters with Postfix's names mean what they mean in Postfix.\n"
               ".PP\n\\fBpostbusctl config\\fR prints what main.cf resolves to; \\fB\\-n\\fR only what it\n"
               "sets, \\fB\\-d\\fR the defaults.\n");
        for (int g = 0; groups[g]; g++) {
                printf(".SH %s\n", strcmp(groups[g], "all") == 0 ? "EVERY ROLE" : groups[g]);
                char *n = group_notes(notes, groups[g]);
                if (n && *n) {
                        /* Indented lines are examples, shown as they are. */
                        bool example = false;
                        for (char *line = strtok(n, "\n"); line; line = strtok(NULL, "\n")) {
                                if ((line[0] == ' ') != example) {
                                        example = !example;
                                        puts(example ? ".PP\n.nf" : ".fi");
                                }
                                if (strcmp(line, ".") == 0) {
                                        puts(".PP");
                                        continue;
                                }
                                roff(line);
                                putchar('\n');
                        }
                        puts(example ? ".fi\n.PP" : ".PP");
                }
                free(n);
                for (int i = 0; i < _CONFIG_PARAM_MAX; i++) {
                        const ConfigParam *p = config_params + i;
                        if (param_group(p) != g)
                                continue;
                        printf(".TP\n\\fB");
                        roff(p->name);
                        printf("\\fR (%s; default: ", type_names[p->type]);
                        roff(*p->def ? p->def : "empty");
                        printf("; read by ");
                        roff(p->roles);
                        printf(")\n");
                        roff(p->doc);
                        putchar('\n');
                }
        }
        printf(".SH SEE ALSO\n\\fBpostbus\\fR(8), \\fBpostbusctl\\fR(1), \\fBpostconf\\fR(5)\n");
}

int main(int argc, char **argv) {
        char *notes = NULL;
        size_t size = 0;
        FILE *f;

        if (argc != 3 || (strcmp(argv[1], "main.cf") != 0 && strcmp(argv[1], "man") != 0)) {
                fprintf(stderr, "usage: gen-config-docs main.cf|man NOTES_FILE\n");
                return 2;
        }
        f = fopen(argv[2], "re");
        if (!f || getdelim(&notes, &size, '\0', f) < 0) {
                perror(argv[2]);
                return 1;
        }
        fclose(f);
        if (strcmp(argv[1], "main.cf") == 0)
                write_main_cf(notes);
        else
                write_man(notes);
        free(notes);
        return fflush(stdout) == 0 ? 0 : 1;
}
