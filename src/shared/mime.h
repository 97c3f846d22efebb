/* mime.h: what a header says of the MIME structure of what follows it (RFC 2045, 2046). Pure. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* A header line starts with a field name (printable ASCII except ':') followed by ':'. */
bool mime_is_header_start(const char *p, size_t len);
/* MIME-Version and the Content- headers of RFC 2045 and 2183 (h: a header line and its continuations). */
bool mime_header_is_mime(const char *h, size_t len);

/* What a Content-Type header makes of the lines after the header section it is in. */
typedef enum MimeContentType {
        MIME_CONTENT_OTHER,          /* a body */
        MIME_CONTENT_MULTIPART,      /* parts between boundary lines, each with its own header */
        MIME_CONTENT_MESSAGE,        /* message/rfc822: an attached message, header and body */
} MimeContentType;

/* RFC 2046 5.1.1: a boundary has at most 70 characters; longer ones are not followed. */
#define MIME_BOUNDARY_MAX 70
/* The kind of the logical Content-Type header (name included) and, for multipart, its boundary parameter
 * (NULL when it has none, or one that is empty or too long). -EINVAL without a colon. */
int mime_content_type_parse(const char *logical, MimeContentType *ret_kind, char **ret_boundary);
/* Whether the line (without its line end) is "--boundary": 1 for a part's start, 2 for the closing
 * "--boundary--", 0 for no. */
int mime_boundary_match(const char *line, size_t len, const char *boundary);
