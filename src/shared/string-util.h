/* string-util.h: small string helpers every role needs: white space stripped from both ends, growing a
 * NULL-terminated string vector (freed with strv_free() from macro.h), and a growing buffer of bytes. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Strips white space (isspace()) from both ends of s in place; returns the first byte that is not. */
char *strstrip(char *s);
/* The same over [*start, *end), moving the two pointers and writing nothing. */
void strstrip_span(const char **start, const char **end);

/* Appends s to the vector *l of *n strings and keeps it NULL-terminated. Takes s in any case: it is freed on
 * failure, and a NULL s (a failed strdup()) is -ENOMEM, so that strv_push(&l, &n, strdup(x)) is safe. */
int strv_push(char ***l, size_t *n, char *s);
/* The number of strings in a NULL-terminated vector; 0 for NULL. */
size_t strv_length(char *const *l);

/* A growing buffer of bytes: data[0..len), allocated bytes in all. Zero-initialized is empty. */
typedef struct Buffer {
        char *data;
        size_t len;
        size_t allocated;
} Buffer;

/* Appends len bytes (it at least doubles, from 4 KiB); -ENOMEM, with b as it was, when it cannot grow. */
int buffer_append(Buffer *b, const void *data, size_t len);
void buffer_done(Buffer *b);

/* A set of bytes, as main.cf's message_reject_characters and message_strip_characters name them. */
typedef struct ByteSet {
        bool any;                       /* not empty */
        bool has[256];
} ByteSet;

/* Reads s, with Postfix's C-like escapes (\a \b \f \n \r \t \v, \ddd of up to three octal digits, \\; a
 * backslash before any other character stands for that character), into *ret. -EINVAL for a backslash at
 * the end, or \ddd above \377. Pure. */
int byte_set_parse(const char *s, ByteSet *ret);
