/* sys-exits.h: what the exit status of a program run for a delivery (a |command of local, a pipe transport)
 * means for the mail: the <sysexits.h> codes with the enhanced status codes and texts Postfix gives them. */
#pragma once

typedef struct SysExit {
        int status;
        const char *dsn;        /* "5.1.1"; class 4 only for EX_OSERR and EX_TEMPFAIL */
        const char *text;       /* "user unknown" */
} SysExit;

/* The entry of a <sysexits.h> code (EX_USAGE .. EX_CONFIG), or NULL for any other status. */
const SysExit *sys_exit_find(int status);
