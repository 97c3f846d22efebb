/* sasl-util.h: what smtpd's SASL server side and smtp's SASL client side share: the mechanism names postbus
 * speaks (PLAIN and LOGIN), base64 (RFC 4648, through OpenSSL's EVP coder), and the check of base64 text
 * that a peer sent. Pure functions; run in the smtpd and smtp processes. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* The mechanisms postbus speaks, in the order of preference of its client. */
#define SASL_MECHANISMS_MAX 2U
extern const char *const sasl_mechanisms[SASL_MECHANISMS_MAX];

/* The canonical name of a mechanism postbus speaks (case-insensitive match of s[0 .. len)), or NULL. */
const char *sasl_mechanism(const char *s, size_t len);

/* Whether s[0 .. len) is base64 (RFC 4648 alphabet, padded, length a multiple of 4); "" is. */
bool sasl_base64_valid(const char *s, size_t len);

/* The base64 of data[0 .. len), NUL-terminated, in *ret (freed by the caller). -ENOMEM, or -E2BIG past
 * 64 KiB of data. */
int sasl_base64_encode(const void *data, size_t len, char **ret);

/* Decodes base64 text s[0 .. len) (sasl_base64_valid()) into *ret (NUL-terminated for convenience; the
 * decoded length in *ret_len). -EINVAL for text that is not base64, -E2BIG past 64 KiB. */
int sasl_base64_decode(const char *s, size_t len, char **ret, size_t *ret_len);
