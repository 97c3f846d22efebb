/* cleanup-job-fail.c: how a submission ends when it does not end in a queue file: the permanent or
 * temporary answer a step settles on, and the reply that carries it. Runs in the cleanup process. */
#include <stdarg.h>

#include "cleanup.h"
#include "log.h"

void cleanup_job_defer(CleanupJob *j, const char *text) {
        /* The first reason is the one the submitter hears; a rejection outranks any. */
        if (!j->defer && !j->reject)
                j->defer = strdup(text);
}

int cleanup_job_reject(CleanupJob *j, const char *fmt, ...) {
        va_list ap;
        int n;

        free(j->reject);
        va_start(ap, fmt);
        n = vasprintf(&j->reject, fmt, ap);
        va_end(ap);
        if (n < 0) {
                j->reject = NULL;
                return -ENOMEM;
        }
        return 0;
}

void cleanup_job_reply_error(CleanupJob *j) {
        const char *name = j->reject ? POSTBUS_ERROR_REJECTED : POSTBUS_ERROR_TEMPORARY;
        const char *text = j->reject ?: j->defer ?: "451 4.3.0 Error: internal error";
        _cleanup_free_ char *escaped = log_escape(j->sender, strlen(j->sender));

        log_info("reject: from=<%s>: %s", strempty(escaped), text);
        (void) sd_bus_reply_method_error(j->request, &SD_BUS_ERROR_MAKE_CONST(name, text));
        cleanup_job_free(j);
}

void cleanup_job_fail(CleanupJob *j, const char *text) {
        cleanup_job_defer(j, text);
        cleanup_job_reply_error(j);
}
