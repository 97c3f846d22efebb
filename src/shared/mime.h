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

/* The header checks' view of the header h (a line and its continuations): line breaks, CR and NUL removed, at
 * most limit bytes. NULL on OOM. */
char *mime_header_logical(const char *h, size_t len, size_t limit);

/* Which header_checks a header goes to: the message's own, a multipart's part's, an attached message's. */
typedef enum MimeHeaderClass {
        MIME_HEADER_PRIMARY,
        MIME_HEADER_PART,
        MIME_HEADER_NESTED,
} MimeHeaderClass;

/* The way through the MIME structure of a message, as Postfix's cleanup follows it, line by line: the
 * boundaries of the multiparts it is in (innermost last), and what the next line is. The caller feeds it the
 * message's own Content-Type, then mime_walk_header_end(); then for each body line: in a header section
 * (in_header), a header goes to mime_walk_content_type() and the line that is not one to
 * mime_walk_header_end() (the empty line is taken by it); any other line to mime_walk_boundary(). */
typedef struct MimeWalk {
        char **boundaries;              /* at most max of them */
        size_t n_boundaries, max;
        MimeHeaderClass header;         /* in a header section: a part's or an attached message's */
        bool in_header;
        MimeContentType next;           /* what the header section in progress makes of what follows it */
        char *next_boundary;
} MimeWalk;

/* max: mime_nesting_limit, the most multiparts and attached messages followed one inside another. */
int mime_walk_init(MimeWalk *w, size_t max);
void mime_walk_done(MimeWalk *w);
/* Notes what the header h, if it is a Content-Type (looked at up to limit bytes), says of the content after its
 * section; -ENOMEM. */
int mime_walk_content_type(MimeWalk *w, size_t limit, const char *h, size_t len);
/* The end of a header section: a multipart pushes its boundary, message/rfc822 starts an attached message's
 * header section, anything else a body. Beyond max, everything is body. */
void mime_walk_header_end(MimeWalk *w);
/* A boundary line of an enclosing multipart: the parts inside it end; a part of it starts (in_header), or the
 * multipart ends. Whether the line was one. */
bool mime_walk_boundary(MimeWalk *w, const char *line, size_t len);
