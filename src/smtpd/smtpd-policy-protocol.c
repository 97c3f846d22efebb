/* smtpd-policy-protocol.c: the smtpd process's side of Postfix's policy protocol (SMTPD_POLICY_README), as
 * pure functions: the request written as name=value lines, the reply read strictly, and the endpoint
 * parsed from "inet:host:port" or "unix:/path". */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "macro.h"
#include "smtpd-policy.h"

static bool attr_name_valid(const char *name) {
        if (!name || !*name)
                return false;
        for (const char *p = name; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
                        return false;
        return true;
}

int smtpd_policy_request_format(const SmtpdPolicyAttr *attrs, size_t n, char *buf, size_t size) {
        size_t len = 0;

        if (size > SMTPD_POLICY_REQUEST_MAX)
                size = SMTPD_POLICY_REQUEST_MAX;
        for (size_t i = 0; i < n; i++) {
                const char *v = strempty(attrs[i].value);
                size_t nl = strlen(attrs[i].name ? attrs[i].name : ""), vl = strlen(v);

                if (!attr_name_valid(attrs[i].name))
                        return -EINVAL;
                /* name, '=', value, '\n', and room for the final '\n' */
                if (nl + vl + 3 > size - len)
                        return -E2BIG;
                memcpy(buf + len, attrs[i].name, nl);
                len += nl;
                buf[len++] = '=';
                for (size_t k = 0; k < vl; k++)
                        buf[len++] = (unsigned char) v[k] < 0x20 || v[k] == 0x7F ? '?' : v[k];
                buf[len++] = '\n';
        }
        if (len + 1 > size)
                return -E2BIG;
        buf[len++] = '\n';
        return (int) len;
}

int smtpd_policy_reply_parse(const char *buf, size_t len, char *ret_action, size_t *ret_consumed) {
        char action[SMTPD_POLICY_ACTION_MAX];
        bool have_action = false;
        size_t off = 0;

        while (off < len) {
                const char *line = buf + off, *nl = memchr(line, '\n', len - off);
                size_t line_len;

                if (!nl)
                        break;
                line_len = (size_t) (nl - line);
                off += line_len + 1;
                if (off > SMTPD_POLICY_REPLY_MAX)
                        return -E2BIG;
                if (line_len > 0 && line[line_len - 1] == '\r')
                        line_len--;
                if (line_len == 0) {
                        if (!have_action)
                                return -EBADMSG;
                        memcpy(ret_action, action, strlen(action) + 1);
                        *ret_consumed = off;
                        return 1;
                }
                const char *eq = memchr(line, '=', line_len);
                if (!eq || (size_t) (eq - line) != 6 || memcmp(line, "action", 6) != 0 || have_action)
                        return -EBADMSG;
                const char *value = eq + 1;
                size_t value_len = line_len - 7;
                if (value_len == 0 || value_len >= sizeof action)
                        return -EBADMSG;
                for (size_t i = 0; i < value_len; i++)
                        if (((unsigned char) value[i] < 0x20 && value[i] != '\t') || (unsigned char) value[i] >= 0x7F)
                                return -EBADMSG;
                memcpy(action, value, value_len);
                action[value_len] = '\0';
                have_action = true;
        }
        return len >= SMTPD_POLICY_REPLY_MAX ? -E2BIG : 0;
}

/* Splits "host:port" or "[host]:port"; host and port point into copy. */
static int split_host_port(char *copy, char **ret_host, char **ret_port) {
        char *host = copy, *port;

        if (host[0] == '[') {
                char *end = strchr(host, ']');
                if (!end || end[1] != ':')
                        return -EINVAL;
                *end = '\0';
                host++;
                port = end + 2;
        } else {
                port = strrchr(host, ':');
                if (!port)
                        return -EINVAL;
                *port++ = '\0';
                if (strchr(host, ':'))          /* an IPv6 address must be in brackets */
                        return -EINVAL;
        }
        if (!*host || !*port || strspn(port, "0123456789") != strlen(port) || strlen(port) > 5 || atoi(port) < 1 ||
            atoi(port) > 65535)
                return -EINVAL;
        *ret_host = host;
        *ret_port = port;
        return 0;
}

static int endpoint_parse(const char *spec, bool resolve, SmtpdPolicyEndpoint *ret) {
        SmtpdPolicyEndpoint e = {};
        char copy[256], *host, *port;
        int r;

        if (!spec || strlen(spec) >= sizeof e.text)
                return -EINVAL;
        strcpy(e.text, spec);
        if (strncmp(spec, "unix:", 5) == 0 || spec[0] == '/') {
                struct sockaddr_un *sa = (struct sockaddr_un *) &e.addr;
                const char *path = spec[0] == '/' ? spec : spec + 5;

                if (path[0] != '/' || strlen(path) >= sizeof sa->sun_path)
                        return -EINVAL;
                sa->sun_family = AF_UNIX;
                strcpy(sa->sun_path, path);
                e.family = AF_UNIX;
                e.addr_len = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1);
                *ret = e;
                return 0;
        }
        (void) snprintf(copy, sizeof copy, "%s", strncmp(spec, "inet:", 5) == 0 ? spec + 5 : spec);
        r = split_host_port(copy, &host, &port);
        if (r < 0)
                return r;

        struct sockaddr_in *in4 = (struct sockaddr_in *) &e.addr;
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &e.addr;
        uint16_t p = htons((uint16_t) atoi(port));
        if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
                in4->sin_family = e.family = AF_INET;
                in4->sin_port = p;
                e.addr_len = sizeof *in4;
        } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
                in6->sin6_family = e.family = AF_INET6;
                in6->sin6_port = p;
                e.addr_len = sizeof *in6;
        } else if (!resolve)
                return -EADDRNOTAVAIL;
        else {
                struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG }, *ai = NULL;

                if (getaddrinfo(host, port, &hints, &ai) != 0 || !ai)
                        return -EADDRNOTAVAIL;
                if (ai->ai_addrlen > sizeof e.addr || (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)) {
                        freeaddrinfo(ai);
                        return -EADDRNOTAVAIL;
                }
                memcpy(&e.addr, ai->ai_addr, ai->ai_addrlen);
                e.addr_len = ai->ai_addrlen;
                e.family = ai->ai_family;
                freeaddrinfo(ai);
        }
        *ret = e;
        return 0;
}

int smtpd_policy_endpoint_parse(const char *spec, SmtpdPolicyEndpoint *ret) {
        return endpoint_parse(spec, false, ret);
}

int smtpd_policy_endpoint_resolve(const char *spec, SmtpdPolicyEndpoint *ret) {
        return endpoint_parse(spec, true, ret);
}
