/* smtpd-sasl.c: the client side of Dovecot's authentication protocol (version 1), for smtpd's AUTH.
 *
 * One connection to Dovecot's auth socket per AUTH command: connect, send VERSION and CPID, read the
 * server's handshake up to DONE, send one AUTH request, then relay CONT challenges and responses until
 * OK or FAIL, and close. A connection per attempt costs one local connect (microseconds, against the
 * TLS handshake that precedes every AUTH here), keeps no state between sessions that a restarted Dovecot
 * could invalidate, and lets a stuck or broken exchange affect one session only. Everything that
 * Dovecot sends is bounded (SMTPD_SASL_LINE_MAX) and parsed by the pure functions at the top. */
#include <fcntl.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "daemon.h"
#include "log.h"
#include "sasl-util.h"
#include "smtpd-sasl.h"
#include "string-util.h"

/* The next tab-separated field of line[*pos .. len); *pos moves past it and its tab. */
static bool next_field(const char *line, size_t len, size_t *pos, const char **ret, size_t *ret_len) {
        const char *tab;

        if (*pos > len)
                return false;
        tab = memchr(line + *pos, '\t', len - *pos);
        *ret = line + *pos;
        *ret_len = tab ? (size_t) (tab - (line + *pos)) : len - *pos;
        *pos += *ret_len + 1;
        return true;
}

static bool field_eq(const char *f, size_t n, const char *word) {
        return strlen(word) == n && memcmp(f, word, n) == 0;
}

static int parse_uint(const char *f, size_t n, unsigned *ret) {
        uint64_t v = 0;

        if (n == 0 || n > 10)
                return -EBADMSG;
        for (size_t i = 0; i < n; i++) {
                if (f[i] < '0' || f[i] > '9')
                        return -EBADMSG;
                v = v * 10 + (uint64_t) (f[i] - '0');
        }
        if (v > UINT32_MAX)
                return -EBADMSG;
        *ret = (unsigned) v;
        return 0;
}

/* Undoes Dovecot's tab-escaping into ret (SMTPD_SASL_USER_MAX + 1 bytes). Only printable ASCII may
 * result: the name goes into a header and the journal. */
static int unescape_user(const char *f, size_t n, char ret[static SMTPD_SASL_USER_MAX + 1]) {
        size_t k = 0;

        for (size_t i = 0; i < n; i++) {
                char c = f[i];

                if (c == '\001') {
                        if (++i >= n)
                                return -EBADMSG;
                        switch (f[i]) {
                        case '1': c = '\001'; break;
                        case 't': c = '\t'; break;
                        case 'r': c = '\r'; break;
                        case 'n': c = '\n'; break;
                        default: return -EBADMSG;
                        }
                }
                if ((unsigned char) c < 0x21 || (unsigned char) c > 0x7E || k >= SMTPD_SASL_USER_MAX)
                        return -EBADMSG;
                ret[k++] = c;
        }
        ret[k] = '\0';
        return 0;
}

/* The key=value parameters of OK and FAIL. */
static int parse_params(const char *line, size_t len, size_t pos, SmtpdSaslReply *r) {
        const char *f;
        size_t n;

        while (pos <= len && next_field(line, len, &pos, &f, &n)) {
                if (n >= 5 && memcmp(f, "user=", 5) == 0) {
                        if (unescape_user(f + 5, n - 5, r->user) < 0)
                                return -EBADMSG;
                } else if (field_eq(f, n, "temp"))
                        r->temp = true;
                /* reason=, code=, and the rest are not needed. */
        }
        return 0;
}

int smtpd_sasl_reply_parse(const char *line, size_t len, SmtpdSaslReply *ret) {
        static const char *const names[_SMTPD_SASL_REPLY_TYPE_MAX] = {
                [SMTPD_SASL_REPLY_VERSION] = "VERSION", [SMTPD_SASL_REPLY_MECH] = "MECH",
                [SMTPD_SASL_REPLY_SPID] = "SPID",       [SMTPD_SASL_REPLY_CUID] = "CUID",
                [SMTPD_SASL_REPLY_COOKIE] = "COOKIE",   [SMTPD_SASL_REPLY_DONE] = "DONE",
                [SMTPD_SASL_REPLY_OK] = "OK",           [SMTPD_SASL_REPLY_CONT] = "CONT",
                [SMTPD_SASL_REPLY_FAIL] = "FAIL",
        };
        SmtpdSaslReply r = {};
        const char *f;
        size_t n, pos = 0;
        int k;

        if (memchr(line, '\0', len) || memchr(line, '\n', len))
                return -EBADMSG;
        (void) next_field(line, len, &pos, &f, &n);
        for (r.type = 0; r.type < _SMTPD_SASL_REPLY_TYPE_MAX; r.type++)
                if (field_eq(f, n, names[r.type]))
                        break;
        switch (r.type) {
        case SMTPD_SASL_REPLY_VERSION:
                if (!next_field(line, len, &pos, &f, &n) || parse_uint(f, n, &r.version_major) < 0)
                        return -EBADMSG;
                break;
        case SMTPD_SASL_REPLY_MECH:
        case SMTPD_SASL_REPLY_SPID:
        case SMTPD_SASL_REPLY_CUID:
        case SMTPD_SASL_REPLY_COOKIE:
                if (!next_field(line, len, &pos, &f, &n) || n == 0)
                        return -EBADMSG;
                break;
        case SMTPD_SASL_REPLY_DONE:
                break;
        case SMTPD_SASL_REPLY_OK:
        case SMTPD_SASL_REPLY_FAIL:
        case SMTPD_SASL_REPLY_CONT:
                if (!next_field(line, len, &pos, &f, &n) || parse_uint(f, n, &r.id) < 0)
                        return -EBADMSG;
                if (r.type == SMTPD_SASL_REPLY_CONT) {
                        /* The challenge is the rest of the line; it may be empty. */
                        if (pos > len) {
                                r.challenge = line + len;
                                r.challenge_len = 0;
                        } else {
                                r.challenge = line + pos;
                                r.challenge_len = len - pos;
                        }
                        if (!sasl_base64_valid(r.challenge, r.challenge_len))
                                return -EBADMSG;
                        break;
                }
                k = parse_params(line, len, pos, &r);
                if (k < 0)
                        return k;
                break;
        default:
                return -EOPNOTSUPP;
        }
        *ret = r;
        return 0;
}

/* The client. */

#define SASL_REQUEST_ID 1U

typedef enum SmtpdSaslState {
        SMTPD_SASL_STATE_HANDSHAKE,     /* reading Dovecot's handshake up to DONE */
        SMTPD_SASL_STATE_WAIT,          /* the request or a response is sent: waiting for Dovecot */
        SMTPD_SASL_STATE_CLIENT,        /* a challenge went to the SMTP client: waiting for its answer */
        _SMTPD_SASL_STATE_MAX,
        _SMTPD_SASL_STATE_INVALID = -EINVAL,
} SmtpdSaslState;

struct SmtpdSasl {
        SmtpdSaslState state;
        int fd;
        sd_event_source *io;
        sd_event_source *timer;
        bool got_version;
        char *request;                  /* the AUTH line, sent after DONE */
        Buffer out;                     /* to the Dovecot server, not yet sent */
        char in[SMTPD_SASL_LINE_MAX + 1];
        size_t in_len;
        SmtpdSaslCallback callback;
        void *userdata;
};

SmtpdSasl *smtpd_sasl_free(SmtpdSasl *a) {
        if (!a)
                return NULL;
        sd_event_source_disable_unref(a->io);
        sd_event_source_disable_unref(a->timer);
        safe_close(a->fd);
        free(a->request);
        buffer_done(&a->out);
        free(a);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(SmtpdSasl *, smtpd_sasl_free);

/* Ends the exchange with a result. The callback may free a: return at once after this. */
static void finish(SmtpdSasl *a, SmtpdSaslResult result, const char *text) {
        (void) sd_event_source_set_enabled(a->io, SD_EVENT_OFF);
        (void) sd_event_source_set_enabled(a->timer, SD_EVENT_OFF);
        a->callback(a, result, text, a->userdata);
}

/* Writes what can be written; -errno when the connection failed. */
static int flush_out(SmtpdSasl *a) {
        while (a->out.len > 0) {
                ssize_t n = send(a->fd, a->out.data, a->out.len, MSG_DONTWAIT | MSG_NOSIGNAL);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return errno == EAGAIN ? 0 : -errno;
                }
                memmove(a->out.data, a->out.data + n, a->out.len - (size_t) n);
                a->out.len -= (size_t) n;
        }
        return 0;
}

static void update_events(SmtpdSasl *a) {
        (void) sd_event_source_set_io_events(a->io, EPOLLIN | (a->out.len > 0 ? EPOLLOUT : 0));
}

/* Handles one line from Dovecot. Returns 1 when the exchange ended (a may be freed), 0 to go on. */
static int handle_line(SmtpdSasl *a, const char *line, size_t len, bool more) {
        SmtpdSaslReply r;
        int k;

        k = smtpd_sasl_reply_parse(line, len, &r);
        if (k == -EOPNOTSUPP)
                return 0;
        if (k < 0) {
                finish(a, SMTPD_SASL_TEMPFAIL, "malformed line from the authentication server");
                return 1;
        }

        if (a->state == SMTPD_SASL_STATE_HANDSHAKE) {
                if (r.type == SMTPD_SASL_REPLY_VERSION) {
                        if (r.version_major != 1) {
                                finish(a, SMTPD_SASL_TEMPFAIL, "unsupported authentication protocol version");
                                return 1;
                        }
                        a->got_version = true;
                } else if (r.type == SMTPD_SASL_REPLY_DONE) {
                        if (!a->got_version || buffer_append(&a->out, a->request, strlen(a->request)) < 0) {
                                finish(a, SMTPD_SASL_TEMPFAIL, a->got_version ? "out of memory"
                                                                              : "no VERSION in the handshake");
                                return 1;
                        }
                        a->state = SMTPD_SASL_STATE_WAIT;
                }
                return 0;
        }

        if (r.type != SMTPD_SASL_REPLY_OK && r.type != SMTPD_SASL_REPLY_CONT && r.type != SMTPD_SASL_REPLY_FAIL)
                return 0;
        if (a->state != SMTPD_SASL_STATE_WAIT || r.id != SASL_REQUEST_ID || more) {
                finish(a, SMTPD_SASL_TEMPFAIL, "unexpected answer from the authentication server");
                return 1;
        }
        if (r.type == SMTPD_SASL_REPLY_CONT) {
                char challenge[SMTPD_SASL_LINE_MAX + 1];

                memcpy(challenge, r.challenge, r.challenge_len);
                challenge[r.challenge_len] = '\0';
                a->state = SMTPD_SASL_STATE_CLIENT;
                /* The exchange goes on: a is not freed by the callback. */
                a->callback(a, SMTPD_SASL_CONTINUE, challenge, a->userdata);
                return 1;
        }
        if (r.type == SMTPD_SASL_REPLY_OK) {
                if (r.user[0] == '\0')
                        finish(a, SMTPD_SASL_TEMPFAIL, "no user name in the answer of the authentication server");
                else
                        finish(a, SMTPD_SASL_OK, r.user);
                return 1;
        }
        finish(a, r.temp ? SMTPD_SASL_TEMPFAIL : SMTPD_SASL_FAIL, r.temp ? "temporary failure" : "");
        return 1;
}

static int on_io(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        SmtpdSasl *a = userdata;
        ssize_t n;
        int r;

        r = flush_out(a);
        if (r < 0) {
                finish(a, SMTPD_SASL_TEMPFAIL, "connection to the authentication server failed");
                return 0;
        }
        if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                n = read(a->fd, a->in + a->in_len, SMTPD_SASL_LINE_MAX + 1 - a->in_len);
                if (n < 0 && (errno == EAGAIN || errno == EINTR))
                        n = -1;
                else if (n <= 0) {
                        finish(a, SMTPD_SASL_TEMPFAIL, "connection closed by the authentication server");
                        return 0;
                }
                if (n > 0)
                        a->in_len += (size_t) n;
        }

        for (;;) {
                char *nl = memchr(a->in, '\n', a->in_len);
                size_t len;

                if (!nl) {
                        if (a->in_len > SMTPD_SASL_LINE_MAX) {
                                finish(a, SMTPD_SASL_TEMPFAIL, "overlong line from the authentication server");
                                return 0;
                        }
                        break;
                }
                len = (size_t) (nl - a->in);
                if (a->state == SMTPD_SASL_STATE_CLIENT) {
                        finish(a, SMTPD_SASL_TEMPFAIL, "unexpected answer from the authentication server");
                        return 0;
                }
                /* handle_line() copies what it passes on: the buffer may move after it. */
                bool more = a->in_len > len + 1;
                char line[SMTPD_SASL_LINE_MAX + 1];
                memcpy(line, a->in, len);
                memmove(a->in, nl + 1, a->in_len - len - 1);
                a->in_len -= len + 1;
                if (handle_line(a, line, len, more) > 0)
                        return 0;
        }

        r = flush_out(a);
        if (r < 0) {
                finish(a, SMTPD_SASL_TEMPFAIL, "connection to the authentication server failed");
                return 0;
        }
        update_events(a);
        return 0;
}

static int on_timeout(sd_event_source *source, uint64_t usec, void *userdata) {
        finish(userdata, SMTPD_SASL_TEMPFAIL, "timeout talking to the authentication server");
        return 0;
}

int smtpd_sasl_new(sd_event *event, const char *path, uint64_t timeout_usec, const SmtpdSaslRequest *req,
                   SmtpdSaslCallback callback, void *userdata, SmtpdSasl **ret) {
        _cleanup_(smtpd_sasl_freep) SmtpdSasl *a = NULL;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        char hello[64];
        int r, n;

        if (!path || path[0] != '/' || strlen(path) >= sizeof sa.sun_path || !req->mechanism)
                return -EINVAL;
        if (req->initial_response && !sasl_base64_valid(req->initial_response, strlen(req->initial_response)))
                return -EINVAL;
        a = calloc(1, sizeof(SmtpdSasl));
        if (!a)
                return -ENOMEM;
        a->fd = -EBADF;
        a->callback = callback;
        a->userdata = userdata;
        /* Postfix's request: no login (the user only authenticates), the addresses for Dovecot's log
         * and its per-address penalties, "secured" over TLS so that plaintext mechanisms are allowed. */
        n = asprintf(&a->request, "AUTH\t%u\t%s\tservice=smtp\tnologin%s%s\trip=%s%s%s%s\n", SASL_REQUEST_ID,
                     req->mechanism, req->local_address ? "\tlip=" : "", strempty(req->local_address),
                     req->client_address, req->secured ? "\tsecured" : "",
                     req->initial_response ? "\tresp=" : "", strempty(req->initial_response));
        if (n < 0) {
                a->request = NULL;
                return -ENOMEM;
        }
        if (strpbrk(req->client_address, "\t\n") || (req->local_address && strpbrk(req->local_address, "\t\n")))
                return -EINVAL;

        a->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (a->fd < 0)
                return -errno;
        strcpy(sa.sun_path, path);
        /* A local stream connect completes at once or fails (EAGAIN: the backlog is full). */
        if (connect(a->fd, (struct sockaddr *) &sa, sizeof sa) < 0)
                return -errno;
        n = snprintf(hello, sizeof hello, "VERSION\t1\t2\nCPID\t%d\n", (int) getpid());
        r = buffer_append(&a->out, hello, (size_t) n);
        if (r < 0)
                return r;
        r = sd_event_add_io(event, &a->io, a->fd, EPOLLIN | EPOLLOUT, on_io, a);
        if (r < 0)
                return r;
        r = sd_event_add_time(event, &a->timer, CLOCK_MONOTONIC, now_monotonic_usec() + timeout_usec,
                              USEC_PER_SEC / 10, on_timeout, a);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(a);
        return 0;
}

int smtpd_sasl_respond(SmtpdSasl *a, const char *response, size_t len) {
        char head[32];
        int n, r;

        if (a->state != SMTPD_SASL_STATE_CLIENT || !sasl_base64_valid(response, len))
                return -EINVAL;
        n = snprintf(head, sizeof head, "CONT\t%u\t", SASL_REQUEST_ID);
        r = buffer_append(&a->out, head, (size_t) n);
        if (r >= 0)
                r = buffer_append(&a->out, response, len);
        if (r >= 0)
                r = buffer_append(&a->out, "\n", 1);
        if (r < 0)
                return r;
        a->state = SMTPD_SASL_STATE_WAIT;
        r = flush_out(a);
        if (r < 0)
                return r;
        update_events(a);
        return 0;
}
