/* config.h: main.cf in Postfix's syntax, parsed against the declared parameter table. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "macro.h"
#include "postbus-config.h"
#include "config-params.h"

typedef enum ConfigType {
        CONFIG_STRING,
        CONFIG_INT,
        CONFIG_SIZE,
        CONFIG_TIME,
        CONFIG_BOOL,
        _CONFIG_TYPE_MAX,
        _CONFIG_TYPE_INVALID = -EINVAL,
} ConfigType;

typedef enum ConfigParamId {
#define X(name, type, def, min, max, roles, doc) CONFIG_PARAM_##name,
        POSTBUS_CONFIG_PARAMS(X)
#undef X
        _CONFIG_PARAM_MAX,
} ConfigParamId;

typedef struct ConfigParam {
        const char *name;
        ConfigType type;
        const char *def;
        int64_t min, max;
        const char *roles;
        const char *doc;
} ConfigParam;

extern const ConfigParam config_params[_CONFIG_PARAM_MAX];

#define CONFIG_CTYPE_STRING char *
#define CONFIG_CTYPE_INT int64_t
#define CONFIG_CTYPE_SIZE int64_t
#define CONFIG_CTYPE_TIME int64_t
#define CONFIG_CTYPE_BOOL bool

/* Postfix's per-transport parameters: "<transport>_<suffix>" for any transport that master.cf declares
 * ("dovecot_destination_recipient_limit = 1"). main.cf is read before master.cf, so these names are kept
 * (expanded) without a warning and looked up by config_transport_int(). */
#define CONFIG_TRANSPORT_SUFFIXES                                                                       \
        "destination_concurrency_limit", "destination_recipient_limit", "destination_rate_delay",       \
        "destination_concurrency_failed_cohort_limit", "initial_destination_concurrency", "time_limit"

typedef struct ConfigExtra {
        char *name;
        char *value;
        unsigned line;
} ConfigExtra;

typedef struct Config {
        unsigned n_ref;                         /* config_ref(); config_free() drops one reference */
#define X(name, type, def, min, max, roles, doc) CONFIG_CTYPE_##type name;
        POSTBUS_CONFIG_PARAMS(X)
#undef X
        char *path;
        unsigned lines[_CONFIG_PARAM_MAX];      /* line in path where each was set; 0: default */
        ConfigExtra *extras;                    /* <transport>_<suffix> lines (CONFIG_TRANSPORT_SUFFIXES), and the
                                                 * lists of smtpd_restriction_classes */
        size_t n_extras;
} Config;

/* Reads path (NULL: POSTBUS_CONFDIR/main.cf). A missing file means all defaults. A bad value fails
 * with -EINVAL after logging "file:line: ..."; an unknown name is warned about. */
int config_load(const char *path, Config **ret);
struct stat;
/* Reads a configuration file whole (at most 4 MiB, no NUL byte) into *ret_text, and its status into
 * *ret_st if given. -ENOENT, said nothing, when it does not exist; other errors are logged. */
int config_read(const char *path, char **ret_text, struct stat *ret_st);
int config_parse(const char *text, const char *path, Config **ret);
/* A reload (daemon.c) replaces a role's configuration while sessions begun under the old one still read
 * it: each holder takes a reference, and config_free() frees it with the last. */
Config *config_ref(Config *c);
Config *config_free(Config *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(Config *, config_free);

const ConfigParam *config_param_find(const char *name);

/* The parameters as one service sees them: c, then builtin ("name", "value" pairs, NULL-terminated:
 * the service's own defaults), then overrides, the "name=value" of its master.cf -o options (NULL-terminated,
 * may be NULL; where is "master.cf:12" for messages). An -o value may use $name of a string parameter.
 * A name postbus does not use is warned about; a bad value fails with -EINVAL after logging. */
int config_for_service(const Config *c, const char *const *builtin, char *const *overrides, const char *where,
                       Config **ret);

/* Sets a parameter of c, a configuration its caller holds alone (config_for_service()'s), to value as it is
 * (no $name expansion), as a service's own default. A bad value is logged: -EINVAL, or -ERANGE out of
 * bounds. */
int config_set(Config *c, ConfigParamId id, const char *value);

/* "main.cf:12" or "default" for messages about a value. */
const char *config_where(const Config *c, ConfigParamId id, char *buf, size_t size);

/* The value of "<transport>_<suffix>" for a transport: a declared parameter of that name
 * (local_destination_concurrency_limit), else a main.cf line of that name, else the value of fallback,
 * parsed as fallback's type (INT or TIME) and bounds. -EINVAL after logging "file:line: ..." for a bad
 * value. */
int config_transport_int(const Config *c, const char *transport, const char *suffix, ConfigParamId fallback,
                         int64_t *ret);

/* The value of a main.cf line that is no declared parameter but was kept (a restriction class's list, a
 * per-transport limit), and its line in *ret_line if given; NULL when there is none. */
const char *config_extra(const Config *c, const char *name, unsigned *ret_line);

/* The value of an INT, SIZE or TIME parameter; -EINVAL for another type. */
int config_param_int(const Config *c, ConfigParamId id, int64_t *ret);

/* Parses a value of an INT, SIZE or TIME parameter as main.cf does (a TIME without a unit has the unit of
 * the parameter's default): -EINVAL when it is no such value, -ERANGE outside the parameter's bounds. */
int config_param_parse_int(const ConfigParam *p, const char *value, int64_t *ret);

/* Splits a list value on commas and white space into a NULL-terminated vector; a "{ ... }" group inside
 * an item keeps its commas and white space, as in Postfix ("inline:{ a=b, c=d }"). */
int config_split_list(const char *value, char ***ret);
/* A list of words (separated by commas or white space) as the OR of their flags in names (as Postfix's
 * notify_classes, receive_override_options): -EINVAL for a word that is none of them, with a copy of it in
 * *ret_bad (NULL otherwise). ignore_case: the words compare without case. */
typedef struct ConfigFlagName {
        const char *name;
        unsigned flag;
} ConfigFlagName;
int config_parse_flags(const char *value, const ConfigFlagName *names, size_t n_names, bool ignore_case,
                       unsigned *ret_mask, char **ret_bad);

/* Parses a TIME value ("300s", "5m", "1h", "2d", "1w", plain = seconds). */
int config_parse_time(const char *s, int64_t *ret);

/* Whether domain (any case, no trailing dot) is listed in a list value such as mydestination. */
bool config_list_contains_domain(char **list, const char *domain);
