/* bench/floor.c: the costs that any mail server pays for one message on this machine, whatever its design,
 * measured one at a time so that a server's own figure can be read against them (bench/floor runs it).
 *
 *   floor sink PORT        an SMTP server that does nothing but the dialogue with smtp-source; on SIGTERM
 *                          it prints the CPU seconds it used
 *   floor disk DIR N       N queue files' lives (create, write, rename, fsync, rename, unlink) and N appends
 *                          with an fsync to one mailbox; prints the CPU µs of each per message
 *   floor journal N        N journal records of a delivery's size; prints the CPU µs per record
 *   floor handoff N        N requests and answers between two processes, on one CPU and on two; prints
 *                          the CPU µs of both per round trip
 *
 * CPU time is the process's own (getrusage), so a wait for the disk or for the other side costs nothing
 * here unless it makes work. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

#define MESSAGE_SIZE 1536       /* a 1 KiB body with the headers and envelope a queue file adds */

static double cpu_s(int who) {
        struct rusage u;

        (void) getrusage(who, &u);
        return (double) (u.ru_utime.tv_sec + u.ru_stime.tv_sec) + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

static void die(const char *what) {
        fprintf(stderr, "floor: %s: %s\n", what, strerror(errno));
        exit(EXIT_FAILURE);
}

/* ---- sink ---- */

typedef struct Client {
        int fd;
        int in_data;
        size_t len;
        char buf[8192];
} Client;

static volatile sig_atomic_t stopping;

static void on_term(int sig) {
        (void) sig;
        stopping = 1;
}

static void reply(Client *c, const char *text) {
        (void) send(c->fd, text, strlen(text), MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* Answers every complete line in the client's buffer as an SMTP server that accepts everything would. */
static void client_lines(Client *c) {
        char *end;

        while ((end = memmem(c->buf, c->len, "\r\n", 2))) {
                size_t n = (size_t) (end - c->buf) + 2;

                if (c->in_data) {
                        if (n == 3 && c->buf[0] == '.') {
                                c->in_data = 0;
                                reply(c, "250 2.0.0 Ok: queued as FLOOR\r\n");
                        }
                } else if (!strncasecmp(c->buf, "DATA", 4)) {
                        c->in_data = 1;
                        reply(c, "354 End data with <CR><LF>.<CR><LF>\r\n");
                } else if (!strncasecmp(c->buf, "QUIT", 4))
                        reply(c, "221 2.0.0 Bye\r\n");
                else if (!strncasecmp(c->buf, "HELO", 4) || !strncasecmp(c->buf, "EHLO", 4))
                        reply(c, "250 floor\r\n");
                else
                        reply(c, "250 2.1.0 Ok\r\n");
                memmove(c->buf, c->buf + n, c->len - n);
                c->len -= n;
        }
}

static int run_sink(int port) {
        const struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t) port),
                                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
        int one = 1, ls, ep;

        ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (ls < 0 || setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
            bind(ls, (const struct sockaddr *) &sa, sizeof sa) < 0 || listen(ls, 128) < 0)
                die("listen");
        ep = epoll_create1(EPOLL_CLOEXEC);
        if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev) < 0)
                die("epoll");
        (void) signal(SIGTERM, on_term);
        printf("ready\n");
        fflush(stdout);
        while (!stopping) {
                struct epoll_event e[64];
                int n = epoll_wait(ep, e, 64, -1);

                for (int i = 0; i < n; i++) {
                        Client *c = e[i].data.ptr;
                        ssize_t r;

                        if (!c) {
                                int fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                                if (fd < 0 || !(c = calloc(1, sizeof *c)))
                                        continue;
                                c->fd = fd;
                                ev = (struct epoll_event) { .events = EPOLLIN, .data.ptr = c };
                                (void) epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
                                reply(c, "220 floor ESMTP\r\n");
                                continue;
                        }
                        r = read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
                        if (r <= 0) {
                                (void) close(c->fd);    /* closing takes it out of the epoll set */
                                free(c);
                                continue;
                        }
                        c->len += (size_t) r;
                        client_lines(c);
                        if (c->len == sizeof c->buf)
                                c->len = 0;     /* a line longer than the buffer: smtp-source sends none */
                }
        }
        printf("%.3f\n", cpu_s(RUSAGE_SELF));
        return 0;
}

/* ---- disk ---- */

static int run_disk(const char *dir, int n) {
        char body[MESSAGE_SIZE];
        int d, in, act, box;
        double t0, t1, t2;

        memset(body, 'x', sizeof body);
        body[sizeof body - 1] = '\n';
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                die(dir);
        d = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (d < 0 || (mkdirat(d, "incoming", 0700) < 0 && errno != EEXIST) ||
            (mkdirat(d, "active", 0700) < 0 && errno != EEXIST))
                die("queue directories");
        in = openat(d, "incoming", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        act = openat(d, "active", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        box = openat(d, "mbox", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (in < 0 || act < 0 || box < 0)
                die("open");

        /* The queue file: made durable under its name, moved to be delivered, removed once delivered. */
        t0 = cpu_s(RUSAGE_SELF);
        for (int i = 0; i < n; i++) {
                char tmp[32], id[32];
                int fd;

                snprintf(tmp, sizeof tmp, "Q%d.tmp", i);
                snprintf(id, sizeof id, "Q%d", i);
                fd = openat(in, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
                if (fd < 0 || write(fd, body, sizeof body) != (ssize_t) sizeof body ||
                    renameat(in, tmp, in, id) < 0 || fsync(fd) < 0 || close(fd) < 0 ||
                    renameat(in, id, act, id) < 0 || unlinkat(act, id, 0) < 0)
                        die("queue file");
        }
        t1 = cpu_s(RUSAGE_SELF);
        /* The delivery: appended to the mailbox and made durable there. */
        for (int i = 0; i < n; i++)
                if (write(box, body, sizeof body) != (ssize_t) sizeof body || fsync(box) < 0)
                        die("mailbox");
        t2 = cpu_s(RUSAGE_SELF);
        (void) unlinkat(d, "mbox", 0);
        printf("queue_file_us %.1f\nmailbox_append_us %.1f\n", (t1 - t0) / n * 1e6, (t2 - t1) / n * 1e6);
        return 0;
}

/* ---- journal ---- */

static int run_journal(int n) {
        double t0 = cpu_s(RUSAGE_SELF);

        for (int i = 0; i < n; i++) {
                int r = sd_journal_send("MESSAGE=%08X: to=<user@example.org>, relay=local, delay=0.01, "
                                        "dsn=2.0.0, status=sent (delivered to mailbox)", (unsigned) i,
                                        "PRIORITY=6", "SYSLOG_IDENTIFIER=floor", "FLOOR_RECORD=%d", i, NULL);
                if (r < 0) {
                        errno = -r;
                        die("sd_journal_send");
                }
        }
        printf("journal_record_us %.1f\n", (cpu_s(RUSAGE_SELF) - t0) / n * 1e6);
        return 0;
}

/* ---- handoff ---- */

static void pin(int cpu) {
        cpu_set_t set;

        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        if (sched_setaffinity(0, sizeof set, &set) < 0)
                die("sched_setaffinity");
}

/* N requests and answers between this process on CPU 0 and a child on CPU other; the CPU µs of both. */
static double handoff(int n, int other) {
        char msg[512] = {};
        int sv[2];
        pid_t pid;
        double t0;

        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                die("socketpair");
        t0 = cpu_s(RUSAGE_SELF) + cpu_s(RUSAGE_CHILDREN);
        pid = fork();
        if (pid < 0)
                die("fork");
        if (pid == 0) {
                pin(other);
                for (int i = 0; i < n; i++)
                        if (recv(sv[1], msg, sizeof msg, 0) <= 0 || send(sv[1], msg, 64, 0) < 0)
                                _exit(EXIT_FAILURE);
                _exit(EXIT_SUCCESS);
        }
        pin(0);
        for (int i = 0; i < n; i++)
                if (send(sv[0], msg, sizeof msg, 0) < 0 || recv(sv[0], msg, sizeof msg, 0) <= 0)
                        die("handoff");
        (void) waitpid(pid, NULL, 0);
        (void) close(sv[0]);
        (void) close(sv[1]);
        return (cpu_s(RUSAGE_SELF) + cpu_s(RUSAGE_CHILDREN) - t0) / n * 1e6;
}

/* Both on one CPU, then on two: where the scheduler puts the two sides decides the cost, and an idle CPU
 * woken from its sleep (in a virtual machine, by the host) is the dear case. */
static int run_handoff(int n) {
        printf("handoff_same_cpu_us %.1f\n", handoff(n, 0));
        if (sysconf(_SC_NPROCESSORS_ONLN) > 1)
                printf("handoff_other_cpu_us %.1f\n", handoff(n, 1));
        return 0;
}

int main(int argc, char **argv) {
        int n = argc > 2 ? atoi(argv[argc - 1]) : 0;

        if (n <= 0) {
                fprintf(stderr, "usage: floor sink PORT | disk DIR N | journal N | handoff N\n");
                return 2;
        }
        if (argc == 3 && !strcmp(argv[1], "sink"))
                return run_sink(n);
        if (argc == 4 && !strcmp(argv[1], "disk"))
                return run_disk(argv[2], n);
        if (argc == 3 && !strcmp(argv[1], "journal"))
                return run_journal(n);
        if (argc == 3 && !strcmp(argv[1], "handoff"))
                return run_handoff(n);
        fprintf(stderr, "usage: floor sink PORT | disk DIR N | journal N | handoff N\n");
        return 2;
}
