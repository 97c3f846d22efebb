/* postbusctl-config.c: "config [NAME...]" prints parameters as main.cf resolves them, in main.cf syntax
 * (name = value), from the declared parameter table: every parameter, or the named ones. */
#include <assert.h>
#include <inttypes.h>

#include "config.h"
#include "log.h"
#include "postbusctl.h"

static void print_param(const Config *c, ConfigParamId id, const void *field) {
        const ConfigParam *p = config_params + id;

        if (arg_non_default && c->lines[id] == 0)
                return;
        switch (p->type) {
        case CONFIG_STRING: {
                const char *s = *(char *const *) field;
                printf("%s =%s%s\n", p->name, isempty(s) ? "" : " ", strempty(s));
                break;
        }
        case CONFIG_INT:
        case CONFIG_SIZE:
                printf("%s = %" PRIi64 "\n", p->name, *(const int64_t *) field);
                break;
        case CONFIG_TIME:
                printf("%s = %" PRIi64 "s\n", p->name, *(const int64_t *) field);
                break;
        case CONFIG_BOOL:
                printf("%s = %s\n", p->name, *(const bool *) field ? "yes" : "no");
                break;
        default:
                assert(!"unknown parameter type");
        }
}

/* The field of parameter id in c, whatever its type. */
static const void *param_field(const Config *c, ConfigParamId id) {
        switch (id) {
#define X(n, t, d, lo, hi, roles, doc)                  \
        case CONFIG_PARAM_##n:                          \
                return &c->n;
                POSTBUS_CONFIG_PARAMS(X)
#undef X
        default:
                return NULL;
        }
}

int verb_config(int argc, char **argv) {
        _cleanup_(config_freep) Config *c = NULL;
        int r;

        /* Check the names first, so that a typo is a usage error whatever main.cf holds. */
        for (int i = 1; i < argc; i++)
                if (!config_param_find(argv[i])) {
                        _cleanup_free_ char *e = log_escape(argv[i], strlen(argv[i]));
                        log_error("Unknown parameter \"%s\".", strna(e));
                        return EX_USAGE;
                }

        /* main.cf may be missing (all defaults), but a file named on the command line must exist. */
        if (arg_config && access(arg_config, R_OK) < 0) {
                r = log_error_errno(errno, "Cannot read %s: %m", arg_config);
                return r == -ENOENT ? EX_NOINPUT : EX_CONFIG;
        }

        if (arg_defaults)
                r = config_parse("", "defaults", &c);
        else
                r = config_load(arg_config, &c);
        if (r < 0) {
                if (r == -ENOMEM)
                        log_oom();
                return r == -ENOMEM ? EX_OSERR : EX_CONFIG;  /* config_load() named file and line */
        }

        if (argc > 1)
                for (int i = 1; i < argc; i++) {
                        ConfigParamId id = (ConfigParamId) (config_param_find(argv[i]) - config_params);
                        print_param(c, id, param_field(c, id));
                }
        else
                for (ConfigParamId id = 0; id < _CONFIG_PARAM_MAX; id++)
                        print_param(c, id, param_field(c, id));

        if (fflush(stdout) != 0) {
                log_error_errno(errno, "Failed to write: %m");
                return EX_IOERR;
        }
        return 0;
}
