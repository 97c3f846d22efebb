/* table-pcre.c: pcre: tables (pcre_table(5)): the rule file of regexp: (table-regexp.c) with Perl-compatible
 * regular expressions from libpcre2. Every role that reads such a table runs this code. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "log.h"
#include "table-internal.h"

/* A rule's pattern is the administrator's, the key is the peer's: backtracking is bounded so that a bad
 * pattern costs one failed match, not a stuck process. */
#define PCRE_MATCH_LIMIT 1000000U
#define PCRE_DEPTH_LIMIT 10000U

static int pcre_compile_pattern(const char *pattern, const char *flags, const char *path, unsigned line, void **ret,
                                unsigned *ret_nsub) {
        uint32_t options = PCRE2_CASELESS, nsub = 0;
        PCRE2_SIZE offset;
        pcre2_code *code;
        int err;

        for (const char *f = flags; *f; f++)
                switch (*f) {
                case 'i':               /* toggles caseless matching, on by default */
                        options ^= PCRE2_CASELESS;
                        break;
                case 'm':
                        options ^= PCRE2_MULTILINE;
                        break;
                case 's':
                        options ^= PCRE2_DOTALL;
                        break;
                case 'x':
                        options ^= PCRE2_EXTENDED;
                        break;
                case 'A':
                        options ^= PCRE2_ANCHORED;
                        break;
                case 'E':
                        options ^= PCRE2_DOLLAR_ENDONLY;
                        break;
                case 'U':
                        options ^= PCRE2_UNGREEDY;
                        break;
                case 'X':               /* PCRE_EXTRA: what it did is always on in PCRE2 */
                        break;
                default:
                        log_error("%s:%u: unknown regular expression flag '%c'", path, line, *f);
                        return -EINVAL;
                }

        code = pcre2_compile((PCRE2_SPTR) pattern, PCRE2_ZERO_TERMINATED, options, &err, &offset, NULL);
        if (!code) {
                PCRE2_UCHAR msg[256];

                if (err == PCRE2_ERROR_HEAPLIMIT || err == PCRE2_ERROR_NOMEMORY)
                        return -ENOMEM;
                (void) pcre2_get_error_message(err, msg, sizeof msg);
                log_error("%s:%u: bad regular expression /%s/ at offset %zu: %s", path, line, pattern, (size_t) offset,
                          (const char *) msg);
                return -EINVAL;
        }
        (void) pcre2_pattern_info(code, PCRE2_INFO_CAPTURECOUNT, &nsub);
        *ret_nsub = nsub;
        *ret = code;
        return 0;
}

static int pcre_exec_pattern(void *re, unsigned nsub, const char *key, size_t *ovec) {
        pcre2_match_context *ctx = NULL;
        pcre2_match_data *md = NULL;
        size_t n = MIN(nsub, TABLE_REGEXP_SUB_MAX) + 1;
        int r;

        md = pcre2_match_data_create((uint32_t) n, NULL);
        ctx = pcre2_match_context_create(NULL);
        if (!md || !ctx) {
                r = -ENOMEM;
                goto finish;
        }
        (void) pcre2_set_match_limit(ctx, PCRE_MATCH_LIMIT);
        (void) pcre2_set_depth_limit(ctx, PCRE_DEPTH_LIMIT);

        r = pcre2_match(re, (PCRE2_SPTR) key, strlen(key), 0, 0, md, ctx);
        if (r == PCRE2_ERROR_NOMATCH) {
                r = 0;
                goto finish;
        }
        if (r < 0) {
                PCRE2_UCHAR msg[256];

                if (r == PCRE2_ERROR_NOMEMORY || r == PCRE2_ERROR_HEAPLIMIT) {
                        r = -ENOMEM;
                        goto finish;
                }
                /* As Postfix: the rule does not match, and the administrator hears of it. */
                (void) pcre2_get_error_message(r, msg, sizeof msg);
                log_warning("pcre: matcher error: %s; the rule is taken as not matching.", (const char *) msg);
                r = 0;
                goto finish;
        }
        PCRE2_SIZE *v = pcre2_get_ovector_pointer(md);
        uint32_t count = pcre2_get_ovector_count(md);
        for (size_t i = 0; i < n; i++) {
                bool set = i < count && v[2 * i] != PCRE2_UNSET;
                ovec[2 * i] = set ? (size_t) v[2 * i] : SIZE_MAX;
                ovec[2 * i + 1] = set ? (size_t) v[2 * i + 1] : SIZE_MAX;
                /* \K can put the start after the end; such a group is taken as empty. */
                if (set && ovec[2 * i + 1] < ovec[2 * i])
                        ovec[2 * i + 1] = ovec[2 * i];
        }
        r = 1;
finish:
        pcre2_match_context_free(ctx);
        pcre2_match_data_free(md);
        return r;
}

static void pcre_free_pattern(void *re) {
        pcre2_code_free(re);
}

const TableRegexpEngine table_regexp_engine_pcre = {
        .name = "pcre",
        .compile = pcre_compile_pattern,
        .exec = pcre_exec_pattern,
        .free = pcre_free_pattern,
};

static int pcre_parse_data(const char *text, const char *path, void **ret) {
        return table_regexp_parse(text, path, &table_regexp_engine_pcre, (TableRegexp **) ret);
}

static int pcre_table_open(Table *t) {
        return table_file_open(t, pcre_parse_data);
}

static int pcre_table_lookup(Table *t, const char *key, char **ret_value) {
        int r = table_file_refresh(t, pcre_parse_data);

        return r < 0 ? r : table_regexp_match(t->data, key, ret_value);
}

static void pcre_table_free_data(void *data) {
        table_regexp_free(data);
}

const TableType table_type_pcre = {
        .name = "pcre",
        .pattern = true,
        .open = pcre_table_open,
        .lookup = pcre_table_lookup,
        .free_data = pcre_table_free_data,
};
