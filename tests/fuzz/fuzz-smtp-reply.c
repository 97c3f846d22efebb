/* fuzz-smtp-reply.c: what a remote server sends to postbus-smtp, as its reply parser and the EHLO readers see
 * it: the input split at LF into reply lines (one reply after another), each complete reply read for its
 * features, its SIZE and its AUTH mechanisms, with and without smtp_sasl_mechanism_filter. Whatever the
 * bytes, the parser keeps its limits and the readers stay consistent. */
#include <errno.h>
#include <string.h>

#include "../../src/smtp/smtp.h"
#include "fuzz.h"
#include "sasl-util.h"

static void check_reply(const SmtpReply *r) {
        char *filter[] = { (char *) "login", (char *) "CRAM-MD5", NULL };
        unsigned all, some;
        size_t n_all, n_some;
        uint64_t size;
        char dsn[16];

        CHECK(r->code >= 200 && r->code <= 599);
        /* A NUL the server sent stays in the text (it is escaped with its length): strlen() may be shorter. */
        CHECK(r->text_len <= SMTP_REPLY_TEXT_MAX && strlen(r->text) <= r->text_len);
        CHECK(r->n_lines >= 1 && r->n_lines <= SMTP_REPLY_LINES_MAX);
        (void) smtp_reply_dsn(r, dsn);
        CHECK(dsn[0] == '0' + r->code / 100);
        (void) smtp_ehlo_features(r, &size);
        int a = smtp_ehlo_auth(r, NULL, &all, &n_all);
        int b = smtp_ehlo_auth(r, filter, &some, &n_some);
        CHECK(a == b && (a == 0 || a == 1));
        CHECK(all < (1U << SASL_MECHANISMS_MAX) && (some & ~all) == 0 && (some & 1U) == 0 && n_some <= n_all);
        if (a == 0)
                CHECK(all == 0 && n_all == 0);
        if (all)
                CHECK(smtp_sasl_choose(all, SMTP_SASL_NOANONYMOUS) != NULL);
        CHECK(smtp_sasl_choose(all, SMTP_SASL_NOPLAINTEXT) == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *p = (const char *) data, *end = p + size;
        SmtpReply r;

        smtp_reply_init(&r);
        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t) (end - p));
                size_t len = nl ? (size_t) (nl - p) : (size_t) (end - p);
                int k;

                if (len > 0 && p[len - 1] == '\r')
                        len--;
                k = smtp_reply_add_line(&r, p, MIN(len, (size_t) SMTP_REPLY_LINE_MAX));
                CHECK(k == 0 || k == 1 || k == -EBADMSG || k == -E2BIG);
                if (k == 1)
                        check_reply(&r);
                if (k != 0)
                        smtp_reply_done(&r);
                p += (nl ? (size_t) (nl - p) + 1 : (size_t) (end - p));
        }
        smtp_reply_done(&r);
        return 0;
}
