/* postbusctl.c: the control tool: option parsing and dispatch to the verbs (postbusctl-<verb>.c).
 *
 * SECURITY: postbusctl runs with the privileges of whoever calls it. "map build" writes a database next
 * to a file the caller may already write; "queue" asks qmgr over the system bus, and qmgr decides who may
 * change the queue; "config" and "map query" only read. */
#include <getopt.h>

#include "log.h"
#include "postbus-config.h"
#include "postbusctl.h"

bool arg_json = false;
bool arg_aliases = false;
bool arg_defaults = false;
bool arg_non_default = false;
bool arg_force = false;
const char *arg_config = NULL;
const char *arg_queue = NULL;
const char *arg_sender = NULL;
const char *arg_recipient = NULL;
const char *arg_destination = NULL;
const char *arg_older_than = NULL;
const char *arg_reason = NULL;

typedef struct Verb {
        const char *name;
        int min_args, max_args;         /* counting the verb itself; -1: no maximum */
        int (*run)(int argc, char **argv);
} Verb;

static const Verb verbs[] = {
        { "map", 2, 4, verb_map },
        { "config", 1, -1, verb_config },
        { "queue", 1, -1, verb_queue },
        { "tls", 2, 2, verb_tls },
        { "reload", 1, 1, verb_reload },
};

static void help(void) {
        printf("postbusctl [OPTIONS...] COMMAND ...\n"
               "\n"
               "Control the postbus mail system.\n"
               "\n"
               "Commands:\n"
               "  map build FILE          Compile the text table FILE into FILE.gdbm\n"
               "  map query TABLE KEY     Look KEY up in TABLE (hash:/path, cidr:/path, ...): print the value;\n"
               "                          exit status 1 when not found, 2 on errors; KEY \"-\": keys\n"
               "                          from standard input, \"key<TAB>value\" for each found\n"
               "  config [NAME...]        Print parameters as main.cf sets them: name = value\n"
               "  config NAME=VALUE...    Set parameters in main.cf (as postconf -e); it must still parse\n"
               "  queue [list [QUEUE]]    List the mail queue as mailq does (--json: as postqueue -j),\n"
               "                          every queue or one (incoming, active, deferred, hold,\n"
               "                          corrupt), or the messages the filter options select\n"
               "  queue show ID           Show one message: sender, recipients, attempts, reasons\n"
               "  queue hold|release|requeue|delete ID...\n"
               "                          Act on messages: IDs, \"-\" to read them from standard\n"
               "                          input, or with none, those the filter options select\n"
               "  queue bounce ID...      Return messages to their senders now (--reason=TEXT)\n"
               "  queue flush [DEST...]   Try deferred mail now: all, or for these destinations\n"
               "  queue pause DEST...     Keep mail for DEST queued until resumed (--reason=TEXT)\n"
               "  queue resume DEST...    End a pause and try the mail now\n"
               "  queue destinations      List the destinations qmgr schedules, with their state\n"
               "  queue hosts             List the server addresses smtp skips for now (host failure\n"
               "                          cache), with the reason and until when\n"
               "  queue watch             Print the queue's signals as they come, one a line\n"
               "  tls new-server-cert     A new key and self-signed certificate for $myhostname where\n"
               "                          smtpd_tls_cert_file/key_file point (empty: into %s/tls/,\n"
               "                          set in main.cf); existing files only with --force\n"
               "  reload                  Reload postbus.target: every running role checks and takes\n"
               "                          main.cf, master.cf and the tables; non-zero if one refused\n"
               "\n"
               "Options:\n"
               "  -h --help               Show this help\n"
               "     --version            Show the version\n"
               "     --aliases            map build: the file is in aliases(5) format (name: value)\n"
               "     --json               queue: one JSON object per message and line\n"
               "     --queue=NAME         queue: only messages in this queue\n"
               "     --sender=ADDRESS     queue: only messages from this sender\n"
               "     --recipient=ADDRESS  queue: only messages with this pending recipient\n"
               "     --destination=DOMAIN queue: only messages with a pending recipient there\n"
               "     --older-than=TIME    queue: only messages older than TIME (30m, 2h, 1d)\n"
               "     --reason=TEXT        queue: only messages whose deferral reason holds TEXT;\n"
               "                          bounce, pause: the reason given\n"
               "  -d --defaults           config: the built-in defaults, ignoring main.cf\n"
               "  -n --non-default        config: only the parameters main.cf sets\n"
               "  -c --config=FILE        config: read FILE instead of %s/main.cf\n"
               "  -f --force              tls new-server-cert: replace existing key and certificate\n",
               POSTBUS_CONFDIR, POSTBUS_CONFDIR);
}

int exit_status_from_errno(int r) {
        switch (-r) {
        case ENOENT:
                return EX_NOINPUT;
        case EINVAL:
        case E2BIG:
        case ENAMETOOLONG:
        case EBADMSG:
        case EPROTONOSUPPORT:
                return EX_DATAERR;
        case EACCES:
        case EPERM:
                return EX_NOPERM;
        case ENOMEM:
                return EX_OSERR;
        default:
                return EX_IOERR;
        }
}

static int parse_argv(int argc, char **argv) {
        enum {
                ARG_VERSION = 0x100,
                ARG_ALIASES,
                ARG_JSON,
                ARG_QUEUE,
                ARG_SENDER,
                ARG_RECIPIENT,
                ARG_DESTINATION,
                ARG_OLDER_THAN,
                ARG_REASON,
        };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "aliases", no_argument, NULL, ARG_ALIASES },
                { "json", no_argument, NULL, ARG_JSON },
                { "defaults", no_argument, NULL, 'd' },
                { "non-default", no_argument, NULL, 'n' },
                { "config", required_argument, NULL, 'c' },
                { "force", no_argument, NULL, 'f' },
                { "queue", required_argument, NULL, ARG_QUEUE },
                { "sender", required_argument, NULL, ARG_SENDER },
                { "recipient", required_argument, NULL, ARG_RECIPIENT },
                { "destination", required_argument, NULL, ARG_DESTINATION },
                { "older-than", required_argument, NULL, ARG_OLDER_THAN },
                { "reason", required_argument, NULL, ARG_REASON },
                {},
        };
        int c;

        opterr = 0;
        while ((c = getopt_long(argc, argv, ":hdnfc:", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("postbusctl %s\n", POSTBUS_VERSION);
                        return 0;
                case ARG_ALIASES:
                        arg_aliases = true;
                        break;
                case ARG_JSON:
                        arg_json = true;
                        break;
                case 'd':
                        arg_defaults = true;
                        break;
                case 'n':
                        arg_non_default = true;
                        break;
                case 'f':
                        arg_force = true;
                        break;
                case 'c':
                        arg_config = optarg;
                        break;
                case ARG_QUEUE:
                        arg_queue = optarg;
                        break;
                case ARG_SENDER:
                        arg_sender = optarg;
                        break;
                case ARG_RECIPIENT:
                        arg_recipient = optarg;
                        break;
                case ARG_DESTINATION:
                        arg_destination = optarg;
                        break;
                case ARG_OLDER_THAN:
                        arg_older_than = optarg;
                        break;
                case ARG_REASON:
                        arg_reason = optarg;
                        break;
                case '?':
                        if (optopt > 0 && optopt < 0x80)
                                log_error("Unknown option -%c (see --help).", optopt);
                        else
                                log_error("Invalid option %s (see --help).", argv[optind - 1]);
                        return -EX_USAGE;
                case ':':
                        log_error("Option %s needs an argument (see --help).", argv[optind - 1]);
                        return -EX_USAGE;
                default:
                        return -EX_SOFTWARE;
                }
        return 1;
}

int main(int argc, char **argv) {
        const char *name;
        int r, n;

        log_setup("postbusctl");

        r = parse_argv(argc, argv);
        if (r <= 0)
                return -r;
        if (arg_defaults && (arg_config || arg_non_default)) {
                log_error("--defaults cannot be combined with --config or --non-default.");
                return EX_USAGE;
        }

        n = argc - optind;
        if (n <= 0) {
                log_error("No command given (see --help).");
                return EX_USAGE;
        }
        name = argv[optind];
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++) {
                const Verb *v = verbs + i;

                if (!streq(v->name, name))
                        continue;
                if (n < v->min_args) {
                        log_error("Too few arguments for \"%s\" (see --help).", name);
                        return EX_USAGE;
                }
                if (v->max_args >= 0 && n > v->max_args) {
                        log_error("Too many arguments for \"%s\" (see --help).", name);
                        return EX_USAGE;
                }
                return v->run(n, argv + optind);
        }
        {
                _cleanup_free_ char *e = log_escape(name, strlen(name));
                log_error("Unknown command \"%s\" (see --help).", strna(e));
        }
        return EX_USAGE;
}
