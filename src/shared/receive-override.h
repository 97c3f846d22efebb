/* receive-override.h: receive_override_options, Postfix's switches that turn parts of receiving off for a
 * service (typically the smtpd that takes mail back from a content filter): parsed by the roles that take
 * mail in (smtpd, pickup), which pass the parts that are cleanup's on with each message. */
#pragma once

#include "config.h"

typedef enum ReceiveOverride {
        RECEIVE_OVERRIDE_NO_UNKNOWN_RECIPIENT_CHECKS = 1 << 0, /* smtpd: no reject_unlisted_recipient */
        RECEIVE_OVERRIDE_NO_ADDRESS_MAPPINGS = 1 << 1,         /* cleanup: no canonical maps, masquerading,
                                                                * virtual aliases, automatic BCC */
        RECEIVE_OVERRIDE_NO_HEADER_BODY_CHECKS = 1 << 2,       /* cleanup: no header_checks, body_checks */
        RECEIVE_OVERRIDE_NO_MILTERS = 1 << 3,                  /* smtpd, pickup: no milters */
} ReceiveOverride;

/* The options cleanup carries out; the submitter passes them in the attribute RECEIVE_OVERRIDE_ATTR. */
#define RECEIVE_OVERRIDE_CLEANUP (RECEIVE_OVERRIDE_NO_ADDRESS_MAPPINGS | RECEIVE_OVERRIDE_NO_HEADER_BODY_CHECKS)
#define RECEIVE_OVERRIDE_ATTR "receive_override_options"
/* Room for every option's name, comma-separated. */
#define RECEIVE_OVERRIDE_TEXT_MAX 128

/* Parses a list of option names (separated by commas or white space; Postfix's names, in its case) into
 * *ret_mask. -EINVAL for a name that is no option, with a copy of it in *ret_bad (NULL otherwise). */
int receive_override_parse(const char *value, unsigned *ret_mask, char **ret_bad);

/* The options of mask as "name,name" (empty for none), in buf. */
const char *receive_override_format(unsigned mask, char buf[static RECEIVE_OVERRIDE_TEXT_MAX]);

/* receive_override_options of c, where (main.cf:12, master.cf:3) being where it was set for messages: a name
 * that is no option is a configuration error, -EINVAL after logging "where: ...", as Postfix refuses it. */
int receive_override_from_config(const Config *c, const char *where, unsigned *ret_mask);
