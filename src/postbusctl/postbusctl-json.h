/* postbusctl-json.h: writing JSON strings. Private to postbusctl. */
#pragma once

#include <stdio.h>

/* Writes s as a JSON string: quotes, backslashes and control characters escaped; bytes that are not
 * valid UTF-8 become U+FFFD, so that the output is valid JSON whatever s holds. */
void json_string(FILE *f, const char *s);
