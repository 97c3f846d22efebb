/* sendmail-options.c: the command line of sendmail, mailq and newaliases, as cron, PHP, git, mutt and
 * logwatch use it; options of other sendmail implementations that mean nothing here are ignored, as
 * Postfix ignores them. */
#include <getopt.h>
#include <stdarg.h>

#include "address.h"
#include "dsn.h"
#include "sendmail.h"
#include "string-util.h"

void sendmail_options_done(SendmailOptions *o) {
        free(o->sender);
        free(o->full_name);
        free(o->dsn_notify);
        free(o->dsn_ret);
        free(o->dsn_envid);
        free(o->verp_delims);
        free(o->body_type);
        free(o->config_dir);
        free(o->flush_site);
        strv_free(o->recipients);
        strv_free(o->warnings);
        *o = (SendmailOptions) {};
}

int sendmail_address_normalize(const char *arg, bool allow_null, char **ret) {
        const char *start = arg, *end = arg + strlen(arg);
        _cleanup_free_ char *s = NULL;

        strstrip_span(&start, &end);
        if (end > start && *start == '<') {
                if (end[-1] != '>')
                        return -EINVAL;
                start++;
                end--;
                strstrip_span(&start, &end);
        }
        s = strndup(start, (size_t) (end - start));
        if (!s)
                return -ENOMEM;
        if (isempty(s) ? !allow_null : !address_valid(s))
                return -EINVAL;
        *ret = TAKE_PTR(s);
        return 0;
}

/* A list of addresses as people write them: "a@b, Name <c@d>, \"x, y\" <e@f>". */
int sendmail_split_addresses(const char *arg, char ***list, size_t *n) {
        const char *p = arg;

        while (*p) {
                const char *start = p, *open = NULL, *close = NULL;
                bool quoted = false;

                for (; *p && (quoted || *p != ','); p++) {
                        if (*p == '\\' && quoted && p[1]) {
                                p++;
                                continue;
                        }
                        if (*p == '"')
                                quoted = !quoted;
                        else if (!quoted && *p == '<' && !open)
                                open = p;
                        else if (!quoted && *p == '>' && open && !close)
                                close = p;
                }
                if (quoted)
                        return -EINVAL;
                _cleanup_free_ char *piece = NULL, *addr = NULL;
                if (open) {
                        if (!close)
                                return -EINVAL;
                        piece = strndup(open + 1, (size_t) (close - open - 1));
                } else
                        piece = strndup(start, (size_t) (p - start));
                if (!piece)
                        return -ENOMEM;
                if (*p == ',')
                        p++;
                const char *s = piece, *e = piece + strlen(piece);
                strstrip_span(&s, &e);
                if (s == e) {
                        if (open)
                                return -EINVAL; /* "<>" is no recipient */
                        continue;               /* "a@b,,c@d" */
                }
                int r = sendmail_address_normalize(piece, false, &addr);
                if (r < 0)
                        return r;
                r = strv_push(list, n, TAKE_PTR(addr));
                if (r < 0)
                        return r;
        }
        return 0;
}

_printf_(2, 3) static int usage_error(char **ret_error, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(ret_error, fmt, ap) < 0)
                *ret_error = NULL;
        va_end(ap);
        return *ret_error ? -EINVAL : -ENOMEM;
}

static int set_string(char **slot, const char *value) {
        char *s = strdup(value);

        if (!s)
                return -ENOMEM;
        free(*slot);
        *slot = s;
        return 0;
}

static int ignored(SendmailOptions *o, size_t *n_warnings, char opt, const char *arg) {
        char *s = NULL;

        if (asprintf(&s, "-%c%s%s is ignored", opt, arg ? " " : "", strempty(arg)) < 0)
                return -ENOMEM;
        return strv_push(&o->warnings, n_warnings, s);
}

static bool mode_set(SendmailOptions *o, SendmailMode mode, bool *explicit_mode) {
        if (*explicit_mode && o->mode != mode)
                return false;
        o->mode = mode;
        *explicit_mode = true;
        return true;
}

static const char *mode_name(SendmailMode m) {
        switch (m) {
        case SENDMAIL_MODE_SMTP: return "-bs";
        case SENDMAIL_MODE_LIST: return "-bp";
        case SENDMAIL_MODE_ALIASES: return "-bi";
        case SENDMAIL_MODE_FLUSH: return "-q";
        default: return "-bm";
        }
}

int sendmail_parse_argv(int argc, char **argv, SendmailOptions *ret, char **ret_error) {
        /* Every option of Postfix's sendmail; those that take a value take it attached or next. */
        static const char optstring[] = "+B:C:F:GIL:N:O:R:UV:X:b:ce:f:h:imno:p:q::r:tvx";
        SendmailOptions o = {};
        const char *name = strrchr(argv[0] ?: "sendmail", '/');
        bool explicit_mode = false;
        size_t n_warnings = 0;
        int c, r;

        *ret_error = NULL;
        name = name ? name + 1 : (argv[0] ?: "sendmail");
        if (streq(name, "mailq"))
                o.mode = SENDMAIL_MODE_LIST;
        else if (streq(name, "newaliases"))
                o.mode = SENDMAIL_MODE_ALIASES;
        o.recipients = calloc(1, sizeof(char *));
        if (!o.recipients)
                return -ENOMEM;

        optind = 0;             /* GNU: start afresh (the unit test parses many command lines) */
        opterr = 0;
        while ((c = getopt(argc, argv, optstring)) >= 0) {
                r = 0;
                switch (c) {
                case 'b':
                        switch (optarg[0]) {
                        case 'm': r = mode_set(&o, SENDMAIL_MODE_DELIVER, &explicit_mode) ? 0 : -EINVAL; break;
                        case 's': r = mode_set(&o, SENDMAIL_MODE_SMTP, &explicit_mode) ? 0 : -EINVAL; break;
                        case 'p': r = mode_set(&o, SENDMAIL_MODE_LIST, &explicit_mode) ? 0 : -EINVAL; break;
                        case 'i': r = mode_set(&o, SENDMAIL_MODE_ALIASES, &explicit_mode) ? 0 : -EINVAL; break;
                        case 'd':
                        case 'D':
                                r = usage_error(ret_error, "-b%s: postbus runs under systemd: use "
                                                "\"systemctl start postbus.target\".", optarg);
                                goto fail;
                        default:
                                r = usage_error(ret_error, "-b%s is not supported (supported: -bm, -bs, -bp, -bi).",
                                                optarg);
                                goto fail;
                        }
                        if (optarg[1] != '\0') {
                                r = usage_error(ret_error, "Unknown mode -b%s.", optarg);
                                goto fail;
                        }
                        if (r < 0) {
                                r = usage_error(ret_error, "-b%s conflicts with %s.", optarg, mode_name(o.mode));
                                goto fail;
                        }
                        break;
                case 'I':
                        if (!mode_set(&o, SENDMAIL_MODE_ALIASES, &explicit_mode)) {
                                r = usage_error(ret_error, "-I conflicts with %s.", mode_name(o.mode));
                                goto fail;
                        }
                        break;
                case 'q':
                        /* -q flushes the queue, -qRsite and -qSsite (or -qR site) the mail for one
                         * destination; -q<interval> is for a daemon that runs queues itself, which qmgr
                         * does (queue_run_delay). */
                        if (optarg && optarg[0] >= '0' && optarg[0] <= '9')
                                r = mode_set(&o, SENDMAIL_MODE_NOTHING, &explicit_mode) ? 0 : -EINVAL;
                        else if (!optarg)
                                r = mode_set(&o, SENDMAIL_MODE_FLUSH, &explicit_mode) ? 0 : -EINVAL;
                        else if (optarg[0] == 'R' || optarg[0] == 'S') {
                                const char *site = optarg[1] ? optarg + 1 : optind < argc ? argv[optind++] : "";

                                if (isempty(site) || site[0] == '-') {
                                        r = usage_error(ret_error, "-q%c needs a site: -q%csitename.", optarg[0],
                                                        optarg[0]);
                                        goto fail;
                                }
                                if (set_string(&o.flush_site, site) < 0) {
                                        r = -ENOMEM;
                                        goto fail;
                                }
                                r = mode_set(&o, SENDMAIL_MODE_FLUSH, &explicit_mode) ? 0 : -EINVAL;
                        } else {
                                r = usage_error(ret_error, "-q%s is not supported (supported: -q, -qRsite, "
                                                "-qSsite, -q<interval>).", optarg);
                                goto fail;
                        }
                        if (r < 0) {
                                r = usage_error(ret_error, "-q conflicts with %s.", mode_name(o.mode));
                                goto fail;
                        }
                        break;
                case 't':
                        o.extract_recipients = true;
                        break;
                case 'i':
                        o.ignore_dots = true;
                        break;
                case 'o':
                        if (optarg[0] == 'i' && optarg[1] == '\0')
                                o.ignore_dots = true;
                        else
                                r = ignored(&o, &n_warnings, 'o', optarg);
                        break;
                case 'f':
                case 'r':
                        r = sendmail_address_normalize(optarg, true, &o.sender);
                        if (r == -EINVAL) {
                                r = usage_error(ret_error, "-%c: invalid sender address \"%s\".", c, optarg);
                                goto fail;
                        }
                        break;
                case 'F':
                        if (!maildrop_full_name_valid(optarg)) {
                                r = usage_error(ret_error, "-F: the full name holds control characters or is "
                                                "longer than %u bytes.", MAILDROP_ATTR_MAX);
                                goto fail;
                        }
                        r = set_string(&o.full_name, optarg);
                        break;
                case 'N': {
                        _cleanup_free_ char *v = strdup(optarg);
                        if (!v) {
                                r = -ENOMEM;
                                goto fail;
                        }
                        /* "delay, failure" as people type it */
                        char *w = v;
                        for (const char *p = v; *p; p++)
                                if (*p != ' ' && *p != '\t')
                                        *w++ = *p;
                        *w = '\0';
                        if (!maildrop_dsn_notify_normalize(v)) {
                                r = usage_error(ret_error, "-N %s: expected \"never\" or a list of \"success\", "
                                                "\"failure\" and \"delay\".", optarg);
                                goto fail;
                        }
                        free(o.dsn_notify);
                        o.dsn_notify = TAKE_PTR(v);
                        break;
                }
                case 'R':
                        r = set_string(&o.dsn_ret, optarg);
                        if (r >= 0 && !maildrop_dsn_ret_normalize(o.dsn_ret)) {
                                r = usage_error(ret_error, "-R %s: expected \"full\" or \"hdrs\".", optarg);
                                goto fail;
                        }
                        break;
                case 'V':
                        if (!maildrop_envid_valid(optarg)) {
                                r = usage_error(ret_error, "-V: an envelope ID is xtext (RFC 3461) of at most %u "
                                                "characters.", DSN_ENVID_MAX);
                                goto fail;
                        }
                        r = set_string(&o.dsn_envid, optarg);
                        break;
                case 'B':
                        r = set_string(&o.body_type, optarg);
                        if (r >= 0 && !maildrop_body_type_normalize(o.body_type)) {
                                r = usage_error(ret_error, "-B %s: expected \"7bit\" or \"8bitmime\".", optarg);
                                goto fail;
                        }
                        break;
                case 'C':
                        r = set_string(&o.config_dir, optarg);
                        break;
                case 'v':
                        o.verbose = true;
                        break;
                case 'X':
                        /* -XV[delims]: VERP for mailing lists (checked against verp_delimiter_filter once the
                         * configuration is read). -X file: a log file, which the journal replaces. */
                        if (optarg[0] == 'V')
                                r = set_string(&o.verp_delims, optarg + 1);
                        else
                                r = ignored(&o, &n_warnings, 'X', optarg);
                        break;
                case 'G': case 'U': case 'c': case 'm': case 'n': case 'x':
                        r = ignored(&o, &n_warnings, (char) c, NULL);
                        break;
                case 'L': case 'O': case 'e': case 'h': case 'p':
                        r = ignored(&o, &n_warnings, (char) c, optarg);
                        break;
                case '?':
                default:
                        if (optopt && strchr(optstring, optopt))
                                r = usage_error(ret_error, "Option -%c needs a value.", optopt);
                        else
                                r = usage_error(ret_error, "Unknown option -%c.", optopt ? optopt : '?');
                        goto fail;
                }
                if (r < 0)
                        goto fail;
        }

        for (int i = optind; i < argc; i++) {
                r = sendmail_split_addresses(argv[i], &o.recipients, &o.n_recipients);
                if (r == -EINVAL) {
                        r = usage_error(ret_error, "Invalid recipient address \"%s\".", argv[i]);
                        goto fail;
                }
                if (r < 0)
                        goto fail;
        }

        switch (o.mode) {
        case SENDMAIL_MODE_DELIVER:
                if (o.n_recipients == 0 && !o.extract_recipients) {
                        r = usage_error(ret_error, "Recipient addresses must be given on the command line or "
                                        "with -t.");
                        goto fail;
                }
                break;
        case SENDMAIL_MODE_SMTP:
                if (o.n_recipients > 0 || o.extract_recipients) {
                        r = usage_error(ret_error, "-bs takes its recipients over SMTP, not from the command "
                                        "line or -t.");
                        goto fail;
                }
                break;
        default:
                if (o.n_recipients > 0) {
                        r = usage_error(ret_error, "%s takes no recipients.", mode_name(o.mode));
                        goto fail;
                }
                break;
        }

        *ret = o;
        return 0;
fail:
        sendmail_options_done(&o);
        if (r == -EINVAL && !*ret_error)
                return usage_error(ret_error, "Invalid usage.");
        return r;
}
