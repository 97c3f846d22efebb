/* verp.h: variable envelope return paths, as Postfix has them: the two delimiters a message asks for
 * (sendmail -XV, SMTP MAIL ... XVERP), kept in its queue file, and the per-recipient sender they make
 * (owner-list@origin for user@domain becomes owner-list+user=domain@origin). Used by smtpd, sendmail,
 * cleanup, qmgr and bounce. */
#pragma once

#include <stdbool.h>

/* The queue file attribute that holds a message's delimiters (two characters, already checked). */
#define VERP_ATTR "verp_delimiters"

/* Whether delims is exactly two characters, each one of filter (verp_delimiter_filter). */
bool verp_delimiters_valid(const char *delims, const char *filter);

/* The sender for one recipient: the sender's local part, delims[0], the recipient's local part, then
 * delims[1] and the recipient's domain when it has one, then '@' and the sender's domain when it has one.
 * -EINVAL: delims not two characters, or the null sender. */
int verp_sender(const char *sender, const char *delims, const char *recipient, char **ret);
