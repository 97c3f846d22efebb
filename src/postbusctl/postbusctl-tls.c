/* postbusctl-tls.c: "postbusctl tls new-server-cert": a new private key and a self-signed certificate for
 * $myhostname, written where smtpd_tls_cert_file and smtpd_tls_key_file point (or into CONFDIR/tls/ and
 * set in main.cf when they are empty), so that smtpd offers STARTTLS. Runs in postbusctl, as root. */
#include <fcntl.h>
#include <grp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "io-util.h"
#include "log.h"
#include "postbus-config.h"
#include "postbusctl.h"
#include "string-util.h"

/* The group smtpd runs with (units/sysusers-postbus.conf): it reads the key. */
#define SMTPD_GROUP "postbus-smtpd"
#define TLS_DIR POSTBUS_CONFDIR "/tls"
#define DEFAULT_CERT_FILE TLS_DIR "/smtpd-cert.pem"
#define DEFAULT_KEY_FILE TLS_DIR "/smtpd-key.pem"
/* As Debian's snakeoil certificate: ten years. */
#define CERT_DAYS 3650

DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_PKEY *, EVP_PKEY_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(X509 *, X509_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(BIO *, BIO_free_all);

/* Logs OpenSSL's error queue under what failed. */
static int log_openssl(const char *what) {
        unsigned long e = ERR_get_error();
        char buf[256] = "unknown error";

        if (e != 0)
                ERR_error_string_n(e, buf, sizeof buf);
        ERR_clear_error();
        log_error("%s: %s", what, buf);
        return -EIO;
}

static int add_extension(X509 *x, int nid, const char *value) {
        X509V3_CTX ctx;
        X509_EXTENSION *ext;
        int ok;

        X509V3_set_ctx_nodb(&ctx);
        X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
        ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
        if (!ext)
                return log_openssl("Cannot make a certificate extension");
        ok = X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
        return ok ? 0 : log_openssl("Cannot add a certificate extension");
}

/* A self-signed certificate for hostname (subject and issuer CN, subjectAltName DNS), signed with key. */
static int make_certificate(EVP_PKEY *key, const char *hostname, X509 **ret) {
        _cleanup_(X509_freep) X509 *x = X509_new();
        _cleanup_free_ char *san = NULL;
        unsigned char serial[16];
        BIGNUM *bn;
        X509_NAME *name;
        int r;

        if (!x)
                return log_oom();
        if (RAND_bytes(serial, sizeof serial) != 1)
                return log_openssl("Cannot make a serial number");
        serial[0] &= 0x7f;                      /* positive, as RFC 5280 4.1.2.2 wants */
        bn = BN_bin2bn(serial, sizeof serial, NULL);
        if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x))) {
                BN_free(bn);
                return log_openssl("Cannot set the serial number");
        }
        BN_free(bn);
        name = X509_get_subject_name(x);
        if (X509_set_version(x, 2) != 1 ||
            !X509_gmtime_adj(X509_getm_notBefore(x), 0) ||
            !X509_gmtime_adj(X509_getm_notAfter(x), 60L * 60 * 24 * CERT_DAYS) ||
            X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *) hostname, -1, -1, 0) != 1 ||
            X509_set_issuer_name(x, name) != 1 || X509_set_pubkey(x, key) != 1)
                return log_openssl("Cannot fill in the certificate");
        if (asprintf(&san, "DNS:%s", hostname) < 0)
                return log_oom();
        r = add_extension(x, NID_subject_alt_name, san);
        if (r >= 0)
                r = add_extension(x, NID_basic_constraints, "critical,CA:FALSE");
        if (r < 0)
                return r;
        if (X509_sign(x, key, EVP_sha256()) <= 0)
                return log_openssl("Cannot sign the certificate");
        *ret = TAKE_PTR(x);
        return 0;
}

/* Writes path anew (a temporary file renamed over it) with this mode, owner root and group gid, and the PEM
 * that write() puts into a BIO. */
static int write_pem(const char *path, mode_t mode, gid_t gid, int (*write)(BIO *b, void *data), void *data) {
        _cleanup_free_ char *tmp = NULL;
        _cleanup_(BIO_free_allp) BIO *b = NULL;
        _cleanup_close_ int fd = -EBADF;
        char *pem;
        long n;

        if (asprintf(&tmp, "%s.XXXXXX", path) < 0)
                return log_oom();
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return log_error_errno(errno, "Cannot create a file next to %s: %m", path);
        b = BIO_new(BIO_s_mem());
        if (!b || write(b, data) != 1) {
                (void) unlink(tmp);
                return log_openssl("Cannot encode PEM");
        }
        n = BIO_get_mem_data(b, &pem);
        /* The mode and owner first: the key is never readable by others, not even for a moment. */
        if (fchown(fd, 0, gid) < 0 || fchmod(fd, mode) < 0 || write_full(fd, pem, (size_t) n) < 0 ||
            fsync(fd) < 0 || rename(tmp, path) < 0) {
                int r = log_error_errno(errno, "Cannot write %s: %m", path);
                (void) unlink(tmp);
                return r;
        }
        (void) fsync_directory_of(path);
        return 0;
}

static int write_key(BIO *b, void *data) {
        return PEM_write_bio_PrivateKey(b, data, NULL, NULL, 0, NULL, NULL);
}

static int write_cert(BIO *b, void *data) {
        return PEM_write_bio_X509(b, data);
}

static int new_server_cert(void) {
        _cleanup_(config_freep) Config *c = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_(X509_freep) X509 *x = NULL;
        const char *cert_file, *key_file;
        bool deploy;
        struct group *g;
        int r;

        r = config_load(arg_config, &c);
        if (r < 0)
                return r == -ENOMEM ? (log_oom(), EX_OSERR) : EX_CONFIG;     /* config_load() said why */
        deploy = isempty(c->smtpd_tls_cert_file);
        cert_file = deploy ? DEFAULT_CERT_FILE : c->smtpd_tls_cert_file;
        key_file = deploy ? DEFAULT_KEY_FILE : c->smtpd_tls_key_file;
        /* Postfix allows the key inside the certificate file; this command writes two files. */
        if (!deploy && (isempty(key_file) || streq(cert_file, key_file))) {
                log_error("smtpd_tls_cert_file and smtpd_tls_key_file are the same file (%s); set "
                          "smtpd_tls_key_file to a file of its own.", cert_file);
                return EX_CONFIG;
        }
        if (!arg_force)
                for (const char *const *f = (const char *const[]) { cert_file, key_file, NULL }; *f; f++)
                        if (access(*f, F_OK) == 0) {
                                log_error("%s exists; --force replaces it.", *f);
                                return EX_CANTCREAT;
                        }

        g = getgrnam(SMTPD_GROUP);
        if (!g) {
                log_error("There is no group " SMTPD_GROUP " (systemd-sysusers creates it).");
                return EX_NOUSER;
        }
        if (deploy && mkdir(TLS_DIR, 0755) < 0 && errno != EEXIST)
                return log_error_errno(errno, "Cannot create " TLS_DIR ": %m"), EX_CANTCREAT;

        key = EVP_RSA_gen(2048);
        if (!key)
                return log_openssl("Cannot make an RSA key"), EX_SOFTWARE;
        r = make_certificate(key, c->myhostname, &x);
        if (r < 0)
                return r == -ENOMEM ? EX_OSERR : EX_SOFTWARE;

        r = write_pem(key_file, 0640, g->gr_gid, write_key, key);
        if (r >= 0)
                r = write_pem(cert_file, 0644, 0, write_cert, x);
        if (r < 0)
                return EX_CANTCREAT;
        log_info("New self-signed certificate for %s in %s, its key in %s.", c->myhostname, cert_file, key_file);

        if (deploy) {
                _cleanup_free_ char *set_cert = NULL, *set_key = NULL;

                if (asprintf(&set_cert, "smtpd_tls_cert_file=%s", cert_file) < 0 ||
                    asprintf(&set_key, "smtpd_tls_key_file=%s", key_file) < 0)
                        return log_oom(), EX_OSERR;
                r = verb_config(3, (char *[]) { (char *) "config", set_cert, set_key, NULL });
                if (r != 0)
                        return r;
                log_info("Set smtpd_tls_cert_file and smtpd_tls_key_file in main.cf; restart postbus-smtpd "
                         "to offer STARTTLS.");
        }
        return 0;
}

int verb_tls(int argc, char **argv) {
        if (argc == 2 && streq(argv[1], "new-server-cert"))
                return new_server_cert();
        log_error("Unknown tls command (see --help): only new-server-cert.");
        return EX_USAGE;
}
