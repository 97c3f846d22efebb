/* logical-lines.h: the line structure every Postfix-style file shares (main.cf, master.cf, regexp
 * tables): a logical line starts with non-white-space text, a line that starts with white space
 * continues it, blank lines and '#' comments are skipped and end nothing. */
#pragma once

/* Called for each logical line: the physical lines joined by one space (leading and trailing white space
 * of each dropped), writable and NUL-terminated, with the number of its first physical line. A negative
 * return stops the walk and is returned. */
typedef int (*LogicalLineFunc)(char *line, unsigned lineno, void *userdata);

/* Walks text. A continuation with no line before it fails with -EINVAL after logging
 * "path:N: continuation line without a <what> before it". */
int logical_lines_foreach(const char *text, const char *path, const char *what, LogicalLineFunc f,
                          void *userdata);
