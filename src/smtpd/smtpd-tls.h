/* smtpd-tls.h: TLS in smtpd: the OpenSSL server context of a service, and a non-blocking TLS layer under
 * one session (handshake, read, write) that the session drives from its sd-event io source. */
#pragma once

#include <errno.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* smtpd_tls_security_level, as Postfix: none, may (STARTTLS offered), encrypt (no mail without TLS). */
typedef enum SmtpdTlsLevel {
        SMTPD_TLS_NONE,
        SMTPD_TLS_MAY,
        SMTPD_TLS_ENCRYPT,
        _SMTPD_TLS_LEVEL_MAX,
        _SMTPD_TLS_LEVEL_INVALID = -EINVAL,
} SmtpdTlsLevel;

SmtpdTlsLevel smtpd_tls_level_from_string(const char *s);
const char *smtpd_tls_level_to_string(SmtpdTlsLevel l);

/* A server context: the certificate chain and key (PEM) from these files, TLS 1.2 at least, no
 * compression, no renegotiation. Logs why on failure, naming where (e.g. "main.cf:12"). */
int smtpd_tls_context_new(const char *cert_file, const char *key_file, const char *where, SSL_CTX **ret);

typedef struct SmtpdTls SmtpdTls;

/* The TLS layer over a connected, non-blocking socket, as the server. The socket stays the caller's. */
int smtpd_tls_new(SSL_CTX *ctx, int fd, SmtpdTls **ret);
SmtpdTls *smtpd_tls_free(SmtpdTls *t);

/* 1: the handshake is complete; 0: call again when smtpd_tls_events() are ready; -EPROTO: it failed
 * (smtpd_tls_error() says why). */
int smtpd_tls_handshake(SmtpdTls *t);

/* Like read(2)/send(2) on the socket: bytes moved (> 0), 0 when the peer closed the connection (read
 * only), -EAGAIN when it would block (wait for smtpd_tls_events()), -EPROTO or -EIO on failure. */
ssize_t smtpd_tls_read(SmtpdTls *t, void *buf, size_t n);
ssize_t smtpd_tls_write(SmtpdTls *t, const void *buf, size_t n);

/* The socket events (EPOLLIN, EPOLLOUT) to wait for, given those the session wants for its own
 * reading (EPOLLIN) and writing (EPOLLOUT): an operation that would block may need the other one. */
uint32_t smtpd_tls_events(const SmtpdTls *t, uint32_t wanted);

/* Whether a read waits for the socket to become writable (then call smtpd_tls_read() on EPOLLOUT). */
bool smtpd_tls_read_wants_write(const SmtpdTls *t);

/* Decrypted bytes that OpenSSL holds: epoll cannot see them, so the caller reads them without waiting. */
bool smtpd_tls_pending(const SmtpdTls *t);

/* Sends close_notify once, without waiting for the peer's. */
void smtpd_tls_shutdown(SmtpdTls *t);

/* "TLSv1.3", "TLS_AES_256_GCM_SHA384", secret bits; the text of the last failure. */
const char *smtpd_tls_version(const SmtpdTls *t);
const char *smtpd_tls_cipher(const SmtpdTls *t);
int smtpd_tls_bits(const SmtpdTls *t);
const char *smtpd_tls_error(const SmtpdTls *t);

/* The session's TLS as Postfix's Received header shows it (smtpd_tls_received_header): cipher gets
 * "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)", kex "key-exchange X25519 server-signature
 * RSA-PSS (2048 bits) server-digest SHA256" (what is known of it; may be empty). After the handshake. */
#define SMTPD_TLS_INFO_MAX 256
void smtpd_tls_received_info(const SmtpdTls *t, char cipher[static SMTPD_TLS_INFO_MAX],
                             char kex[static SMTPD_TLS_INFO_MAX]);
