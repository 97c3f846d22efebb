/* cleanup-job-headers.c: the header pass of one submission (header_checks, the addresses of sender and
 * recipient headers, the recipients sendmail -t hands over in To, Cc and Bcc), its body pass (body_checks),
 * and the edits of headers and body lines the queue file is written with. Runs in the cleanup process. */
#include <ctype.h>
#include <strings.h>
#include <sys/mman.h>

#include "address.h"
#include "addrlist.h"
#include "cleanup.h"
#include "log.h"

static bool name_is(const char *h, size_t len, const char *name) {
        size_t n = strlen(name);
        return len > n && h[n] == ':' && strncasecmp(h, name, n) == 0;
}

/* Notes the addresses of a sender or recipient header, for canonical maps and masquerading (and for
 * rewrite, in local mail). */
static int collect_header_addresses(CleanupJob *j, const char *h, size_t hlen, size_t start) {
        Cleanup *c = j->cleanup;
        AddressItem *list = NULL;
        bool sender;
        int n;

        bool mapped = !(j->receive_override & RECEIVE_OVERRIDE_NO_ADDRESS_MAPPINGS) &&
                      (!table_list_is_empty(c->canonical_maps) || !table_list_is_empty(c->sender_canonical_maps) ||
                       !table_list_is_empty(c->recipient_canonical_maps) || c->masquerade_domains[0]);

        if (!mapped && !streq(strempty(cleanup_attr_get(j->attrs, "origin")), "pickup"))
                return 0;
        AddrlistHeaderClass class = addrlist_header_class(h, hlen);
        if (class == ADDRLIST_HEADER_OTHER)
                return 0;
        sender = class == ADDRLIST_HEADER_SENDER;
        if (j->n_header_addresses >= CLEANUP_HEADER_ADDRESSES_MAX)
                return 0;

        const char *colon = memchr(h, ':', hlen);
        size_t value = (size_t) (colon + 1 - h);
        n = addrlist_parse(colon + 1, hlen - value, CLEANUP_HEADER_ADDRESSES_MAX - j->n_header_addresses,
                           &list);
        if (n == -E2BIG)
                return 0;       /* too many to rewrite: the header stays as it is */
        if (n < 0)
                return n;
        CleanupHeaderAddress *na = realloc(j->header_addresses,
                                           (j->n_header_addresses + (size_t) n + 1) * sizeof(CleanupHeaderAddress));
        if (!na) {
                addrlist_free(list, (size_t) n);
                return -ENOMEM;
        }
        j->header_addresses = na;
        for (int i = 0; i < n; i++) {
                /* Only plain addr-specs that an envelope could carry, written without comments or white
                 * space inside: the rewritten text replaces the whole span. */
                if (!address_valid(list[i].address) || list[i].end - list[i].start != strlen(list[i].address))
                        continue;
                CleanupHeaderAddress *a = na + j->n_header_addresses;
                a->start = start + value + list[i].start;
                a->end = start + value + list[i].end;
                a->sender = sender;
                a->original = strdup(list[i].address);
                a->address = strdup(list[i].address);
                if (!a->original || !a->address) {
                        free(a->original);
                        free(a->address);
                        addrlist_free(list, (size_t) n);
                        return -ENOMEM;
                }
                j->n_header_addresses++;
        }
        addrlist_free(list, (size_t) n);
        return 0;
}

/* The range start..end of the content is written as text instead (NULL: left out; start == end: text goes
 * in at start). text is taken, also on failure. */
static int add_edit(CleanupJob *j, size_t start, size_t end, char *text) {
        _cleanup_free_ char *t = text;
        CleanupRange *n = realloc(j->drops, (j->n_drops + 1) * sizeof(CleanupRange));
        if (!n)
                return -ENOMEM;
        j->drops = n;
        if (t) {
                char **l = realloc(j->edit_texts, (j->n_edit_texts + 1) * sizeof(char *));
                if (!l)
                        return -ENOMEM;
                j->edit_texts = l;
                j->edit_texts[j->n_edit_texts++] = t;
        }
        j->drops[j->n_drops++] = (CleanupRange) { .start = start, .end = end, .text = TAKE_PTR(t) };
        return 0;
}

/* Does what value, a rule's "ACTION [text]", says to the header or line logical (logical_len bytes, at
 * start..end of the content), found by what ("header", "body", "content"). As cleanup_job_check(). */
static int job_act(CleanupJob *j, const char *what, const char *value, const char *logical, size_t logical_len,
                   size_t start, size_t end) {
        HeaderCheckAction action;
        const char *text;
        int r;

        if (header_check_action_parse(value, &action, &text) < 0) {
                /* As Postfix: the administrator hears of it; the message goes on. */
                _cleanup_free_ char *v = log_escape(value, MIN(strlen(value), (size_t) 200));
                log_warning("%s_checks: unknown action, or one without its text, in \"%s\", ignoring", what,
                            strempty(v));
                return 0;
        }
        if (action != HEADER_CHECK_DUNNO) {
                _cleanup_free_ char *escaped = log_escape(logical, MIN(logical_len, (size_t) 200));
                _cleanup_free_ char *sender = log_escape(j->sender, strlen(j->sender));
                const char *name = header_check_action_to_string(action);
                log_mail(LOG_INFO, NULL, LOG_FIELDS({ "CLEANUP_ACTION", name }),
                         "%s: %s %s from sender=<%s>%s%s", name, what, strempty(escaped), strempty(sender),
                         text ? ": " : "", strempty(text));
        }
        switch (action) {
        case HEADER_CHECK_REJECT: {
                const char *t = text ?: "message content rejected";
                /* The text may bring its own enhanced status code. */
                bool has_code = isdigit((unsigned char) t[0]) && t[1] == '.';
                return cleanup_job_reject(j, "550 %s%s", has_code ? "" : "5.7.1 ", t);
        }
        case HEADER_CHECK_DISCARD:
                j->discard = true;
                return 0;
        case HEADER_CHECK_HOLD:
                if (!j->hold) {
                        j->hold = strdup(text ?: what[0] == 'h' ? "header_checks" : "body_checks");
                        if (!j->hold)
                                return -ENOMEM;
                }
                return 0;
        case HEADER_CHECK_FILTER: {
                /* As Postfix: the last FILTER wins, over the content_filter the message came with. */
                char *f = strdup(text);
                if (!f)
                        return -ENOMEM;
                free(j->filter);
                j->filter = f;
                return 0;
        }
        case HEADER_CHECK_IGNORE:
                r = add_edit(j, start, end, NULL);
                return r < 0 ? r : 1;
        case HEADER_CHECK_PREPEND:
        case HEADER_CHECK_REPLACE: {
                char *line;
                if (asprintf(&line, "%s\n", text) < 0)
                        return -ENOMEM;
                if (action == HEADER_CHECK_PREPEND)
                        return add_edit(j, start, start, line);
                r = add_edit(j, start, end, line);
                return r < 0 ? r : 1;
        }
        default:
                return 0;
        }
}

int cleanup_job_check(CleanupJob *j, const char *what, TableList *tables, const char *logical, size_t start,
                      size_t end) {
        _cleanup_free_ char *value = NULL;
        int r;

        r = table_list_lookup(tables, logical, &value);
        if (r < 0) {
                log_warning_errno(r, "%s_checks: lookup failed: %m", what);
                return cleanup_job_reject(j, "451 4.3.0 Temporary lookup failure");
        }
        if (r == 0)
                return 0;
        return job_act(j, what, value, logical, strlen(logical), start, end);
}

/* As Postfix's cleanup: each line, headers and body alike, is looked at as it comes, before the header and
 * body checks; the line end is not part of it. */
int cleanup_job_characters(CleanupJob *j) {
        const ByteSet *reject = &j->cleanup->reject_chars, *strip = &j->cleanup->strip_chars;
        const unsigned char *buf = j->content;
        size_t n_strip = 0;

        if ((!reject->any && !strip->any) || !cleanup_job_content_inspected(j))
                return 0;
        for (size_t i = 0; i < j->size; i++) {
                if (buf[i] == '\n')
                        continue;
                if (reject->has[buf[i]]) {
                        size_t start = i, end = i;
                        while (start > 0 && buf[start - 1] != '\n')
                                start--;
                        while (end < j->size && buf[end] != '\n')
                                end++;
                        return job_act(j, "content", "REJECT disallowed character", (const char *) buf + start,
                                       end - start, start, end);
                }
                n_strip += strip->has[buf[i]];
        }
        if (n_strip == 0)
                return 0;

        /* The job goes on with the stripped copy; what it had goes. */
        char *copy = malloc(MAX(j->size - n_strip, (size_t) 1)), *o = copy;
        if (!copy)
                return -ENOMEM;
        for (size_t i = 0; i < j->size; i++)
                if (buf[i] == '\n' || !strip->has[buf[i]])
                        *o++ = (char) buf[i];
        if (j->mapped)
                (void) munmap(j->content, j->size);
        else if (!j->borrowed)
                free(j->content);
        j->content = copy;
        j->size -= n_strip;
        j->mapped = j->borrowed = false;
        return 0;
}

/* The checks of a header h at start..end of the content, in the section of class cls: header_checks on the
 * message's own, nested_header_checks on an attached message's, mime_header_checks on a part's and on MIME
 * headers anywhere (as Postfix's cleanup). 1 when it is to be left out or replaced, 0 to go on with it; a
 * rejection is j->reject. */
static int check_header(CleanupJob *j, MimeHeaderClass cls, const char *h, size_t start, size_t end) {
        Cleanup *c = j->cleanup;
        TableList *tables = c->header_checks;

        if (c->mime && (cls == MIME_HEADER_PART || mime_header_is_mime(h, end - start)))
                tables = c->mime_header_checks;
        else if (cls == MIME_HEADER_NESTED)
                tables = c->nested_header_checks;
        if (!tables)
                return 0;

        _cleanup_free_ char *logical = mime_header_logical(h, end - start, (size_t) c->daemon->config->header_size_limit);
        if (!logical)
                return -ENOMEM;
        return cleanup_job_check(j, "header", tables, logical, start, end);
}

/* sendmail -t: the recipients of the To, Cc or Bcc header h at start..end (of the resending when the
 * message has Resent- headers, RFC 5322 3.6.6). */
static int extract_recipients(CleanupJob *j, const char *h, size_t start, size_t end, bool resent) {
        size_t hlen = end - start;
        AddressItem *list = NULL;
        int r;

        if (!addrlist_header_names_recipients(h, hlen, resent))
                return 0;
        const char *colon = memchr(h, ':', hlen);
        r = addrlist_parse(colon + 1, hlen - (size_t) (colon + 1 - h), CLEANUP_RECIPIENTS_MAX - j->n_recipients,
                           &list);
        if (r < 0)
                return r;
        for (int i = 0; i < r; i++) {
                if (!address_valid(list[i].address)) {
                        _cleanup_free_ char *escaped = log_escape(list[i].address, strlen(list[i].address));
                        log_warning("Ignoring the malformed address <%s> in a header.", strempty(escaped));
                        continue;
                }
                int k = cleanup_job_add_recipient(j, list[i].address);
                if (k < 0) {
                        addrlist_free(list, (size_t) r);
                        return k;
                }
        }
        addrlist_free(list, (size_t) r);
        /* Blind copies stay blind: the header goes. */
        return name_is(h, hlen, resent ? "Resent-Bcc" : "Bcc") ? add_edit(j, start, end, NULL) : 0;
}

/* As Postfix's internal_mail_filter_classes: the notices bounce makes (non-delivery, delay, success, the
 * postmaster's) go through header_checks and body_checks only when the parameter names bounce or notify; by
 * default never, so that the rule that refused a message cannot refuse the notice that returns it. */
bool cleanup_job_content_inspected(CleanupJob *j) {
        /* receive_override_options = no_header_body_checks: mail that was checked before a content filter. */
        if (j->receive_override & RECEIVE_OVERRIDE_NO_HEADER_BODY_CHECKS)
                return false;
        return j->cleanup->inspect_notices || !streq(strempty(cleanup_attr_get(j->attrs, "origin")), "bounce");
}

int cleanup_job_header_pass(CleanupJob *j, size_t header_end) {
        const char *buf = j->content;
        bool inspect = cleanup_job_content_inspected(j);
        bool extract = streq(strempty(cleanup_attr_get(j->attrs, "extract_recipients")), "yes");
        bool local = streq(strempty(cleanup_attr_get(j->attrs, "origin")), "pickup");
        /* RFC 5322 3.6.6: with Resent- fields, the recipients are those of the resending. */
        bool resent = addrlist_headers_resent(buf, header_end);
        int r;

        for (size_t off = 0; off < header_end;) {
                size_t start = off, end = off;
                /* One logical header: its first line and the lines that continue it. */
                do {
                        const char *nl = memchr(buf + end, '\n', header_end - end);
                        end = nl ? (size_t) (nl - buf) + 1 : header_end;
                } while (end < header_end && (buf[end] == ' ' || buf[end] == '\t'));
                off = end;
                const char *h = buf + start;
                size_t hlen = end - start;

                r = inspect ? check_header(j, MIME_HEADER_PRIMARY, h, start, end) : 0;
                if (r < 0 || j->reject)
                        return r < 0 ? r : 0;
                if (r > 0)
                        continue;       /* IGNOREd or REPLACEd: as if it were not there */

                r = collect_header_addresses(j, h, hlen, start);
                if (r < 0)
                        return r;

                if (extract)
                        r = extract_recipients(j, h, start, end, resent);
                else if (local && (name_is(h, hlen, "Bcc") || name_is(h, hlen, "Resent-Bcc")))
                        r = add_edit(j, start, end, NULL);    /* local mail never shows its blind copies, -t or not */
                if (r < 0)
                        return r;
        }
        return 0;
}

/* In order of start; at one start, an insertion before the range that starts there. */
static int range_cmp(const void *a, const void *b) {
        const CleanupRange *x = a, *y = b;
        if (x->start != y->start)
                return (x->start > y->start) - (x->start < y->start);
        return (x->end > y->end) - (x->end < y->end);
}

int cleanup_job_body_pass(CleanupJob *j, size_t header_end) {
        Cleanup *c = j->cleanup;
        const char *buf = j->content;
        /* The MIME structure is followed whenever MIME processing is on: part headers are never body lines. */
        bool mime = c->mime, headers_anywhere = mime && (c->mime_header_checks || c->nested_header_checks);
        _cleanup_(mime_walk_done) MimeWalk w = {};
        size_t off = 0, limit;
        int r;

        if ((!c->body_checks && !headers_anywhere) || !cleanup_job_content_inspected(j))
                return 0;
        if (mime && mime_walk_init(&w, (size_t) c->daemon->config->mime_nesting_limit) < 0)
                return -ENOMEM;
        /* The message's own Content-Type says how its body is made. */
        while (mime && off < header_end) {
                size_t start = off;
                do {
                        const char *nl = memchr(buf + off, '\n', header_end - off);
                        off = nl ? (size_t) (nl - buf) + 1 : header_end;
                } while (off < header_end && (buf[off] == ' ' || buf[off] == '\t'));
                r = mime_walk_content_type(&w, (size_t) c->daemon->config->header_size_limit, buf + start, off - start);
                if (r < 0)
                        return r;
        }
        mime_walk_header_end(&w);
        off = header_end;
        /* The empty line that ends the headers is not a body line. */
        if (off < j->size && buf[off] == '\n')
                off++;
        /* As Postfix: body lines that start within body_checks_size_limit bytes of the body are looked at,
         * each no longer than line_length_limit; the MIME headers wherever they are. */
        limit = off + MIN(j->size - off, (size_t) c->daemon->config->body_checks_size_limit);
        while (off < j->size && (headers_anywhere || off < limit)) {
                const char *nl = memchr(buf + off, '\n', j->size - off);
                size_t end = nl ? (size_t) (nl - buf) + 1 : j->size, len = end - off - (nl ? 1 : 0);

                if (w.in_header && len == 0) {
                        mime_walk_header_end(&w);       /* the empty line after a part's header */
                        off = end;
                        continue;
                }
                if (w.in_header && mime_is_header_start(buf + off, len)) {
                        /* One logical header: its first line and the lines that continue it. */
                        while (end < j->size && (buf[end] == ' ' || buf[end] == '\t')) {
                                nl = memchr(buf + end, '\n', j->size - end);
                                end = nl ? (size_t) (nl - buf) + 1 : j->size;
                        }
                        r = mime_walk_content_type(&w, (size_t) c->daemon->config->header_size_limit, buf + off, end - off);
                        if (r >= 0)
                                r = check_header(j, w.header, buf + off, off, end);
                        if (r < 0 || j->reject)
                                return r < 0 ? r : 0;
                        off = end;
                        continue;
                }
                if (w.in_header)
                        mime_walk_header_end(&w);       /* a line that is no header ends the section */
                if (mime)
                        (void) mime_walk_boundary(&w, buf + off, len);
                if (c->body_checks && off < limit) {
                        _cleanup_free_ char *line = strndup(buf + off, MIN(len, (size_t) c->daemon->config->line_length_limit));
                        if (!line)
                                return -ENOMEM;
                        r = cleanup_job_check(j, "body", c->body_checks, line, off, end);
                        if (r < 0 || j->reject)
                                return r < 0 ? r : 0;
                }
                off = end;
        }
        return 0;
}

int cleanup_job_header_edits(CleanupJob *j, CleanupRange **ret, size_t *ret_n) {
        CleanupRange *edits = calloc(j->n_drops + j->n_header_addresses + 1, sizeof(CleanupRange));
        size_t n = 0;

        if (!edits)
                return -ENOMEM;
        for (size_t i = 0; i < j->n_drops; i++)
                edits[n++] = j->drops[i];
        for (size_t i = 0; i < j->n_header_addresses; i++) {
                const CleanupHeaderAddress *a = j->header_addresses + i;
                bool dropped = false;
                if (streq(a->address, a->original))
                        continue;
                for (size_t d = 0; d < j->n_drops && !dropped; d++)
                        dropped = j->drops[d].start < j->drops[d].end && a->start >= j->drops[d].start &&
                                  a->end <= j->drops[d].end;
                if (!dropped)
                        edits[n++] = (CleanupRange) { a->start, a->end, a->address };
        }
        qsort(edits, n, sizeof(CleanupRange), range_cmp);
        *ret = edits;
        *ret_n = n;
        return 0;
}

void cleanup_job_header_addresses_free(CleanupJob *j) {
        for (size_t i = 0; i < j->n_header_addresses; i++) {
                free(j->header_addresses[i].original);
                free(j->header_addresses[i].address);
        }
        j->header_addresses = mfree(j->header_addresses);
        j->n_header_addresses = 0;
}
