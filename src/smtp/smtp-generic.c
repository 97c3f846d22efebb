/* smtp-generic.c: smtp_generic_maps (generic(5)) in the smtp process: the envelope sender and recipients and the
 * addresses of the sender and recipient headers of mail leaving by SMTP, rewritten as Postfix's smtp(8) does,
 * with the lookup order of address-map.c. The header rewriting is pure over (buf, len), for the unit test. */
#include <strings.h>

#include "address.h"
#include "address-map.h"
#include "addrlist.h"
#include "smtp.h"
#include "string-util.h"

/* The tables of the last spec used, kept while the transports use the same one (as the SASL tables): a
 * rebuilt GDBM file is seen without reopening. mydestination and propagate_unmatched_extensions with them. */
static struct {
        char *spec, *mydestination_text, *propagate_text;
        TableList *tables;
        char **mydestination;
        bool propagate;
} generic;

void smtp_generic_cleanup(void) {
        generic.spec = mfree(generic.spec);
        generic.mydestination_text = mfree(generic.mydestination_text);
        generic.propagate_text = mfree(generic.propagate_text);
        generic.tables = table_list_free(generic.tables);
        generic.mydestination = strv_free(generic.mydestination);
        generic.propagate = false;
}

static int generic_open(const Config *cfg, const char *spec) {
        _cleanup_strv_free_ char **propagate = NULL;
        int r;

        if (generic.spec && streq(generic.spec, spec) && streq(generic.mydestination_text, cfg->mydestination) &&
            streq(generic.propagate_text, cfg->propagate_unmatched_extensions))
                return 0;
        smtp_generic_cleanup();
        r = table_list_open(spec, &generic.tables);
        if (r < 0)
                return r;
        if (config_split_list(cfg->mydestination, &generic.mydestination) < 0 ||
            config_split_list(cfg->propagate_unmatched_extensions, &propagate) < 0)
                return -ENOMEM;
        for (char **w = propagate; *w; w++)
                generic.propagate = generic.propagate || streq(*w, "generic");
        generic.spec = strdup(spec);
        generic.mydestination_text = strdup(cfg->mydestination);
        generic.propagate_text = strdup(cfg->propagate_unmatched_extensions);
        if (!generic.spec || !generic.mydestination_text || !generic.propagate_text) {
                smtp_generic_cleanup();
                return -ENOMEM;
        }
        return 0;
}

int smtp_generic_address(const Config *cfg, const char *spec, const char *addr, char **ret) {
        _cleanup_free_ char *value = NULL;
        int r;

        if (isempty(spec) || isempty(addr))
                return 0;
        r = generic_open(cfg, spec);
        if (r < 0)
                return r;
        r = address_map_find(address_map_table_lookup, generic.tables, addr, generic.mydestination, cfg->myorigin,
                             cfg->recipient_delimiter, generic.propagate, &value);
        if (r <= 0)
                return r;
        /* One address: the first if a table gives more. */
        value[strcspn(value, ", \t")] = '\0';
        if (isempty(value) || !address_valid(value) || streq(value, addr))
                return 0;
        *ret = TAKE_PTR(value);
        return 1;
}

int smtp_generic_headers(const char *buf, size_t len, SmtpGenericFunc map, void *userdata, char **ret,
                         size_t *ret_len) {
        _cleanup_(buffer_done) Buffer out = {};
        size_t copied = 0;              /* buf[0..copied) is in out */
        int r;

        for (size_t off = 0; off < len;) {
                size_t start = off, end = off;
                /* One logical header: its first line and the lines that continue it. */
                do {
                        const char *nl = memchr(buf + end, '\n', len - end);
                        end = nl ? (size_t) (nl - buf) + 1 : len;
                } while (end < len && (buf[end] == ' ' || buf[end] == '\t'));
                off = end;

                const char *h = buf + start, *colon = memchr(h, ':', end - start);
                if (!colon || addrlist_header_class(h, end - start) == ADDRLIST_HEADER_OTHER)
                        continue;
                size_t value = (size_t) (colon + 1 - buf);
                AddressItem *list = NULL;
                int n = addrlist_parse(buf + value, end - value, SMTP_GENERIC_HEADER_ADDRESSES_MAX, &list);
                if (n == -E2BIG)
                        continue;       /* more than anyone writes: left as it is */
                if (n < 0)
                        return n;
                r = 0;
                for (int i = 0; i < n && r >= 0; i++) {
                        _cleanup_free_ char *to = NULL;

                        r = map(list[i].address, &to, userdata);
                        if (r <= 0)
                                continue;
                        /* The addr-spec is replaced where it stands: names, comments and folding stay. */
                        r = buffer_append(&out, buf + copied, value + list[i].start - copied);
                        if (r >= 0)
                                r = buffer_append(&out, to, strlen(to));
                        copied = value + list[i].end;
                }
                addrlist_free(list, (size_t) n);
                if (r < 0)
                        return r;
        }
        if (copied == 0)
                return 0;
        r = buffer_append(&out, buf + copied, len - copied);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(out.data);
        *ret_len = out.len;
        return 1;
}
