#!/usr/bin/python3
"""relay.py: the inside half of bench/run --relay, --dkim, --local and --blackhole. Runs in the benchmark's systemd container, as
root, next to measure.py (whose Postfix instance, smtp-source driver, cgroup CPU and PSS sampling it reuses).

--relay: smtp-source -> the server under test (postbus on 127.0.0.1:25, then Postfix on 127.0.0.1:2525) ->
Postfix's smtp-sink on 127.0.0.6:2600, each server with relayhost = [127.0.0.6]:2600 and its queue on the real
disk. For each message size and session count, both servers in turn: a warm-up, then MESSAGES messages timed
from smtp-source's start until the server's queue is empty again (every message handed to the sink), and
the CPU its units used meanwhile (cpu.stat of their cgroups; postbus per unit, Postfix per program from
sampled /proc/PID/schedstat and exactly in total), and the peak PSS of its processes.

--dkim: --relay with OpenDKIM signing every message as a milter of both servers (postbus: smtpd_milters, Postfix:
smtpd_milters), the one opendkim process (its own unit, bench-opendkim.service, on a unix socket) serving
both in turn; its CPU is counted apart from each server's own, and every message of a run must have been signed
(opendkim's "DKIM-Signature field added" lines in the journal).

--local: the same, but to local users' mboxes in /var/mail (bound in from the real disk), delivered by postbus's
local and by Postfix's local(8); each measurement is timed until the mailboxes hold every message for every
recipient (the "From " lines counted) and the queue is empty. A point with R recipients sends them in each
transaction (smtp-source -r R: 1bench@localhost ... Rbench@localhost, one user each).

--blackhole: MESSAGES messages for bh.bench, whose two MX hosts of equal preference (dnsmasq on 127.0.0.53)
are mxa (127.0.0.5:2600: accepts connections and never says a word) and mxb (the sink on 127.0.0.6:2600); both
servers with smtp_connect_timeout and smtp_helo_timeout set to --timeout. Timed from smtp-source's start until
the queue is empty, with the connections the black hole got.

Prints the table and writes the figures as JSON. Everything started here is stopped here: Postfix, the sink
unit, opendkim, dnsmasq, the black hole's socket.
"""

import argparse
import glob
import json
import os
import pwd
import re
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time

import measure
from measure import CGROUP2, MemorySampler, log, run, smtp_source

SINK_ADDR, SINK_PORT = "127.0.0.6", 2600
HOLE_ADDR = "127.0.0.5"
DNS_ADDR = "127.0.0.53"
SINK_UNIT = "bench-sink.service"
DOMAIN = "bh.bench"
POSTBUS_MAIN_CF = "/etc/postbus/main.cf"
POSTBUS_TRANSPORT = "/etc/postbus/transport"
MAIL_SPOOL = "/var/mail"
DKIM_UNIT = "bench-opendkim.service"
DKIM_DIR = "/run/bench-dkim"
DKIM_SOCKET = f"unix:{DKIM_DIR}/opendkim.sock"
DKIM_DOMAIN = "bench.localdomain"     # smtp-source's sender, and so its From: header
LOCAL_USER = "bench"


def files_in(directory):
    n = 0
    for _root, _dirs, files in os.walk(directory):
        n += len(files)
    return n


def set_postbus_params(params):
    with open(POSTBUS_MAIN_CF) as f:
        lines = [l for l in f.read().splitlines() if l.split("=")[0].strip() not in params]
    lines += [f"{k} = {v}" for k, v in params.items()]
    with open(POSTBUS_MAIN_CF + ".tmp", "w") as f:
        f.write("\n".join(lines) + "\n")
    os.rename(POSTBUS_MAIN_CF + ".tmp", POSTBUS_MAIN_CF)


def add_local_users(rcpts):
    """bench, and 1bench ... RCPTSbench, the names smtp-source -r gives; /var/mail as Debian has it."""
    shutil.chown(MAIL_SPOOL, "root", "mail")
    os.chmod(MAIL_SPOOL, 0o2775)
    for name in [LOCAL_USER] + [f"{i}{LOCAL_USER}" for i in range(1, rcpts + 1)]:
        try:
            pwd.getpwnam(name)
        except KeyError:
            # a name that starts with a digit is refused without --badname
            run("useradd", "--badname", "--create-home", "--shell", "/bin/sh", name)


class Maildirs:
    """Counts the messages in every local user's ~/Maildir/new (home_mailbox = Maildir/, --maildir)."""

    def count(self):
        return sum(len(os.listdir(d)) for d in glob.glob("/home/*/Maildir/new"))


class Mailboxes:
    """Counts the messages in every mbox of MAIL_SPOOL (lines that start with "From "), reading only what was
    appended since the last count."""

    def __init__(self):
        self.offsets = {}
        self.total = 0

    def count(self):
        for name in os.listdir(MAIL_SPOOL):
            path = os.path.join(MAIL_SPOOL, name)
            if not os.path.isfile(path) or name.endswith(".lock"):
                continue
            off = self.offsets.get(name, 0)
            with open(path, "rb") as f:
                f.seek(off)
                data = f.read()
            end = data.rfind(b"\n") + 1      # whole lines only: a delivery may be under way
            if end == 0:
                continue
            chunk = data[:end]
            # every chunk starts at the beginning of a line
            self.total += chunk.count(b"\nFrom ") + chunk.startswith(b"From ")
            self.offsets[name] = off + end
        return self.total


class PostbusRelay(measure.Postbus):
    def setup(self):
        # No reverse lookup of the client, as Postfix is set up here (measure.Postfix's main.cf).
        params = {"smtp_connect_timeout": f"{self.args.timeout}s", "smtp_helo_timeout": f"{self.args.timeout}s",
                  "smtpd_peername_lookup": "no"}
        if self.args.mode in ("relay", "dkim"):
            params["relayhost"] = f"[{SINK_ADDR}]:{SINK_PORT}"
            if self.args.mode == "dkim":
                params["smtpd_milters"] = DKIM_SOCKET
        elif self.args.mode == "blackhole":
            with open(POSTBUS_TRANSPORT, "w") as f:
                f.write(f"{DOMAIN} smtp:{DOMAIN}:{SINK_PORT}\n")
            run("postbusctl", "map", "build", POSTBUS_TRANSPORT)
            params["transport_maps"] = f"hash:{POSTBUS_TRANSPORT}"
        if self.args.mode == "local":
            # one mbox takes every round's messages: more than the default 50 MB
            params["mailbox_size_limit"] = "0"
            if self.args.maildir:
                params["home_mailbox"] = "Maildir/"
        # BENCH_POSTBUS_PARAMS="name=value ...": postbus settings to try (Postfix keeps its own).
        for item in os.environ.get("BENCH_POSTBUS_PARAMS", "").split():
            name, _, value = item.partition("=")
            params[name] = value
        set_postbus_params(params)

    def fresh_start(self):
        """Every role stopped (the smtp agent's host cache goes with it), qmgr started again; the others come
        back by socket activation with the new main.cf."""
        services = measure.active_postbus_services()
        if services:
            run("systemctl", "stop", *services, stderr=subprocess.DEVNULL)
        run("systemctl", "start", "postbus-qmgr.socket", "postbus-qmgr.service")
        measure.wait_port(self.port)

    def queued(self):
        return sum(files_in(os.path.join(measure.POSTBUS_SPOOL, q)) for q in ("incoming", "active", "deferred"))

    def deferred(self):
        return files_in(os.path.join(measure.POSTBUS_SPOOL, "deferred"))

    def pids(self):
        """The processes of every postbus service, read from the cgroup tree at each sample: the roles that
        socket activation starts during a run (the smtp agent, in --blackhole) count too."""
        base = os.path.join(CGROUP2, "system.slice")
        pids = []
        for u in os.listdir(base):
            if u.startswith("postbus-") and u.endswith(".service"):
                pids += measure.cgroup_dir_pids(os.path.join(base, u))
        return pids

    def cpu_by_part(self, cpu, sampler, base):
        """Each unit's own CPU (its cgroup's, exact)."""
        return {u.removeprefix("postbus-").removesuffix(".service"): v for u, v in cpu.items()}


class PostfixRelay(measure.Postfix):
    MASTER_EXTRA = """smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
local     unix  - n n - - local
"""

    def setup(self):
        self.main_cf_extra = (f"smtp_connect_timeout = {self.args.timeout}s\n"
                              f"smtp_helo_timeout = {self.args.timeout}s\n")
        if self.args.mode in ("relay", "dkim"):
            self.main_cf_extra += f"relayhost = [{SINK_ADDR}]:{SINK_PORT}\n"
            if self.args.mode == "dkim":
                self.main_cf_extra += f"smtpd_milters = {DKIM_SOCKET}\n"
        elif self.args.mode == "local":
            # mbox in /var/mail, as postbus; no comsat notice (postbus sends none)
            self.main_cf_extra += f"mail_spool_directory = {MAIL_SPOOL}\nbiff = no\nmailbox_size_limit = 0\n"
            if self.args.maildir:
                self.main_cf_extra += "home_mailbox = Maildir/\n"
        else:
            transport = os.path.join(self.etc, "transport")
            os.makedirs(self.etc, exist_ok=True)
            with open(transport, "w") as f:
                f.write(f"{DOMAIN} smtp:{DOMAIN}:{SINK_PORT}\n")
            self.main_cf_extra += f"transport_maps = texthash:{transport}\n"
        super().setup()
        self.write_master_cf(extra=self.MASTER_EXTRA)

    def queued(self):
        return sum(files_in(os.path.join(self.queue, q)) for q in ("maildrop", "incoming", "active", "deferred"))

    def deferred(self):
        return files_in(os.path.join(self.queue, "deferred"))

    def cpu_by_part(self, cpu, sampler, base):
        """The split by program of what the unit used (its total, in cpu, is exact), from the sampled
        processes: each with what it had used at its last sample, less what it had before the run (base); a
        process that exited between two samples misses its last moments."""
        parts = {}
        for pid, (lab, used) in sampler.cpu_by_pid.items():
            parts[lab] = parts.get(lab, 0.0) + used - base.get(pid, 0.0)
        return parts


class BlackHole:
    """Accepts connections on HOLE_ADDR:SINK_PORT and never says a word."""

    def __init__(self):
        self.connections = 0
        self.held = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((HOLE_ADDR, SINK_PORT))
        self.sock.listen(1000)
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            self.held.append(conn)

    def reset(self):
        for c in self.held:
            c.close()
        self.held = []
        self.connections = 0

    def close(self):
        self.reset()
        self.sock.close()


class OpenDKIM:
    """opendkim in its own unit (bench-opendkim.service), signing for DKIM_DOMAIN with a fresh key, on a unix
    socket that both servers reach (Postfix's smtpd runs as postfix: the socket is open to every user)."""

    def __init__(self):
        self.running = False
        os.makedirs(DKIM_DIR, mode=0o700, exist_ok=True)
        os.chmod(DKIM_DIR, 0o755)
        keydir = os.path.join(DKIM_DIR, "key")
        os.makedirs(keydir, mode=0o700, exist_ok=True)     # opendkim refuses a key others can reach
        run("opendkim-genkey", "-D", keydir, "-d", DKIM_DOMAIN, "-s", "bench")
        os.chmod(os.path.join(keydir, "bench.private"), 0o600)
        self.conf = os.path.join(keydir, "opendkim.conf")
        with open(self.conf, "w") as f:
            f.write(f"Syslog yes\nSyslogSuccess yes\nMode sv\nDomain {DKIM_DOMAIN}\nSelector bench\n"
                    f"KeyFile {keydir}/bench.private\nSocket local:{DKIM_SOCKET[5:]}\nUMask 000\n"
                    f"Canonicalization relaxed/relaxed\nPidFile {keydir}/opendkim.pid\n")
        run("systemd-run", "--quiet", f"--unit={DKIM_UNIT}", "--property=Type=simple", "/usr/sbin/opendkim",
            "-f", "-x", self.conf)
        self.running = True
        deadline = time.monotonic() + 30
        while not os.path.exists(DKIM_SOCKET[5:]):
            if time.monotonic() > deadline:
                raise RuntimeError("opendkim did not make its socket")
            time.sleep(0.1)

    def cpu_s(self):
        return measure.cgroup_cpu_usec(DKIM_UNIT) / 1e6

    def signed_since(self, since, expected):
        """The messages opendkim said it signed from the second since on, once there are expected (its lines reach
        the journal a moment after the message went through), or after 10 s."""
        deadline = time.monotonic() + 10
        while True:
            out = run("journalctl", "-q", "--no-pager", "-o", "cat", f"--since=@{int(since)}",
                      "SYSLOG_IDENTIFIER=opendkim", capture_output=True, check=False).stdout
            n = out.count("DKIM-Signature field added")
            if n >= expected or time.monotonic() > deadline:
                return n
            time.sleep(0.5)

    def stop(self):
        if self.running:
            run("systemctl", "stop", DKIM_UNIT, check=False)
            run("systemctl", "reset-failed", DKIM_UNIT, check=False, stderr=subprocess.DEVNULL)
            self.running = False


def start_dns():
    p = subprocess.Popen(["dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--no-dhcp-interface=",
                          f"--listen-address={DNS_ADDR}", "--bind-interfaces", "--port=53", "--pid-file=",
                          "--user=root", "--local=/bench/",
                          f"--mx-host={DOMAIN},mxa.{DOMAIN},10", f"--mx-host={DOMAIN},mxb.{DOMAIN},10",
                          f"--host-record=mxa.{DOMAIN},{HOLE_ADDR}", f"--host-record=mxb.{DOMAIN},{SINK_ADDR}"])
    if os.path.lexists("/etc/resolv.conf"):
        os.unlink("/etc/resolv.conf")
    with open("/etc/resolv.conf", "w") as f:
        f.write(f"nameserver {DNS_ADDR}\noptions timeout:1 attempts:2\n")
    # ready when it answers an A query for mxa (one answer record)
    query = bytes.fromhex("123401000001000000000000") + b"".join(
        bytes([len(l)]) + l.encode() for l in f"mxa.{DOMAIN}".split(".")) + bytes([0, 0, 1, 0, 1])
    deadline = time.monotonic() + 10
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.5)
            try:
                s.sendto(query, (DNS_ADDR, 53))
                reply = s.recv(512)
                if reply[:2] == query[:2] and reply[6:8] == b"\x00\x01":
                    return p
            except OSError:
                pass
        if time.monotonic() > deadline or p.poll() is not None:
            p.kill()
            p.wait()
            raise RuntimeError("dnsmasq does not answer")
        time.sleep(0.1)


def wait_empty(server, timeout, mailboxes=None, delivered=0):
    """Until the queue is empty and, with mailboxes, they hold `delivered` messages."""
    deadline = time.monotonic() + timeout
    while server.queued() > 0 or (mailboxes and mailboxes.count() < delivered):
        if server.deferred() > 0:
            raise RuntimeError(f"{server.name}: {server.deferred()} messages deferred")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{server.name}: {server.queued()} messages still queued after {timeout} s"
                               + (f", {mailboxes.count()} of {delivered} delivered" if mailboxes else ""))
        time.sleep(0.02)
    return time.monotonic()


PERFSTAT_EVENTS = "task-clock,context-switches,cpu-migrations,page-faults"


def trace_start(prefix):
    """BENCH_STRACE=postbus-cleanup,postbus-qmgr: counts the system calls of those running units' processes
    during the run (strace -c -f), printed per message; BENCH_PERF=... samples where their CPU time goes
    (perf record), printed as the top functions; BENCH_PERFSTAT=... counts their context switches, CPU
    migrations and page faults (perf stat), printed per message. bench-postfix names Postfix's unit. To find where a role's time goes; the run's own figures
    are then not comparable."""
    tracers = []
    for tool, var in (("strace", "BENCH_STRACE"), ("perf", "BENCH_PERF"), ("perfstat", "BENCH_PERFSTAT")):
        for unit in [u for u in os.environ.get(var, "").split(",") if u.startswith(prefix)]:
            d = measure.unit_cgroup_dir(unit + ".service")
            pids = ",".join(str(p) for p in (measure.cgroup_dir_pids(d) if d else []))
            if not pids:
                log(f"{tool}: {unit} is not running; skipped")
                continue
            out = f"/run/bench-{tool}-{unit}"
            raw = tool == "strace" and os.environ.get("BENCH_STRACE_RAW")
            cmd = (["strace", "-f", "-o", out, "-p", pids] if raw else
                   ["strace", "-c", "-f", "-o", out, "-p", pids] if tool == "strace" else
                   ["perf", "stat", "-x", ",", "-e", PERFSTAT_EVENTS, "-o", out, "-p", pids] if tool == "perfstat" else
                   ["perf", "record", "-q", "-F", "2000", "-g", "-o", out, "-p", pids])
            tracers.append((tool, unit, out, subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                                              stderr=subprocess.DEVNULL)))
    time.sleep(1 if tracers else 0)
    return tracers


def strace_raw_report(unit, out, messages):
    """BENCH_STRACE_RAW=1: the calls per message of the unit's main process apart from those of the processes
    it forked (e.g. local's per-user workers), from a full trace."""
    main = measure.systemctl_show(unit + ".service", "MainPID")
    counts = {}
    with open(out, encoding="utf-8", errors="replace") as f:
        for ln in f:
            m = re.match(r"(\d+)\s+([a-z_0-9]+)\(", ln)
            if not m:
                continue
            who = "main" if m.group(1) == main else "forked"
            counts.setdefault(who, {}).setdefault(m.group(2), 0)
            counts[who][m.group(2)] += 1
    for who, c in sorted(counts.items()):
        top = sorted(((n, name) for name, n in c.items()), reverse=True)
        log(f"strace {unit} ({who}): {sum(c.values()) / messages:.1f} calls per message: " +
            " ".join(f"{name} {n / messages:.2f}" for n, name in top[:24]))


def trace_finish(tracers, messages):
    for tool, unit, out, proc in tracers:
        proc.send_signal(2)
        proc.wait(timeout=60)
        if tool == "strace" and os.environ.get("BENCH_STRACE_RAW"):
            strace_raw_report(unit, out, messages)
            continue
        if tool == "perfstat":
            with open(out, encoding="utf-8") as f:
                rows = [ln.split(",") for ln in f if ln.strip() and not ln.startswith("#")]
            log(f"perf stat {unit}: per message: " +
                " ".join(f"{x[2]} {float(x[0]) / messages:.2f}" for x in rows if len(x) > 2 and
                         x[0].replace(".", "").isdigit()))
            continue
        if tool == "strace":
            with open(out, encoding="utf-8") as f:
                lines = [ln.split() for ln in f if ln.strip() and ln.split()[0][0].isdigit()]
            top = sorted(((int(x[3]), x[-1]) for x in lines if len(x) >= 5 and x[-1] != "total"), reverse=True)
            log(f"strace {unit}: calls per message: " +
                " ".join(f"{name} {calls / messages:.1f}" for calls, name in top[:14]))
            continue
        report = run("perf", "report", "-i", out, "--stdio", "--no-children", "--sort", "dso,sym", "-g", "none",
                     capture_output=True, check=False).stdout
        top = [ln.strip() for ln in report.splitlines() if ln.strip() and not ln.startswith("#")][:25]
        log(f"perf {unit}: where the CPU goes:\n    " + "\n    ".join(top))


def settle(seconds):
    """ext4 without a journal (as on this project's VMs) skips, each time it allocates an inode, every inode of
    the group freed in the last 5 seconds, or 5 minutes while the inode's block is not yet written: a cost that
    grows with the files removed just before, whoever removed them. Written out and aged, they no longer count,
    so that each run pays for the files it removes itself, not for those of the run before it (the other
    server's, or the warm-up's). Not quite for those of the last 5 minutes: a new inode in their block makes it
    dirty again, and they count again; so the first round after a large removal (the work directory of the
    bench before) can still be slow."""
    if seconds > 0:
        os.sync()
        time.sleep(seconds)


def measure_one(server, args, sessions, messages, size, hole=None, rcpts=1, mailboxes=None, dkim=None):
    a = argparse.Namespace(**vars(args))
    a.size = size
    a.rcpts = rcpts
    server.fresh_start()
    if args.warmup and hole is None:
        delivered = mailboxes.count() + args.warmup * rcpts if mailboxes else 0
        smtp_source(a, server.port, sessions, args.warmup)
        wait_empty(server, args.drain_timeout, mailboxes, delivered)
    settle(args.settle)
    delivered = mailboxes.count() + messages * rcpts if mailboxes else 0
    if hole:
        hole.reset()
    # A postbus role that socket activation starts during the run has a new cgroup: it counts from 0.
    cpu0 = {u: measure.cgroup_cpu_usec(u) for u in server.units()}
    base = {}
    for pid in server.pids():
        try:
            base[pid] = measure.proc_cpu_s(pid)
        except (OSError, ValueError):
            pass
    journal0 = measure.cgroup_cpu_usec("systemd-journald.service")
    dkim0 = dkim.cpu_s() if dkim else 0.0
    sampler = MemorySampler(server.pids, args.interval, label=measure.proc_comm)
    sampler.start()
    since = time.time()
    if dkim:
        time.sleep(1.1)     # the journal is asked from this second on: nothing of the warm-up in it
        since = time.time()
    busy0, own0, t0 = measure.host_busy_s(), measure.own_cpu_s(), time.monotonic()
    tracers = trace_start("postbus-" if server.name == "postbus" else "bench-postfix")
    wall_in, client_cpu = smtp_source(a, server.port, sessions, messages)
    t1 = wait_empty(server, args.drain_timeout, mailboxes, delivered)
    trace_finish(tracers, messages)
    busy1, own1 = measure.host_busy_s(), measure.own_cpu_s()
    sampler.finish()
    journal_s = (measure.cgroup_cpu_usec("systemd-journald.service") - journal0) / 1e6
    dkim_s = dkim.cpu_s() - dkim0 if dkim else 0.0
    # every message went to the sink: none bounced (a bounce leaves the queue too) or deferred
    failed = run("journalctl", "-q", "--no-pager", "-o", "cat", f"--since=@{since:.0f}", "-g",
                 "status=(bounced|deferred)", capture_output=True, check=False).stdout.strip()
    if failed:
        raise RuntimeError(f"{server.name}: not every message was sent: {failed.splitlines()[:3]}")
    units = server.units()
    cpu = {u: (measure.cgroup_cpu_usec(u) - cpu0.get(u, 0)) / 1e6 for u in units}
    total = sum(cpu.values())
    others = (busy1 - busy0) - total - client_cpu - (own1 - own0) - journal_s - dkim_s
    parts = server.cpu_by_part(cpu, sampler, base)
    row = {"server": server.name, "sessions": sessions, "messages": messages, "size": size, "rcpts": rcpts,
           "accept_s": wall_in, "wall_s": t1 - t0, "msgs_per_s": messages / (t1 - t0),
           "cpu_s": total, "cpu_s_per_1000": total / messages * 1000,
           "cpu_s_per_1000_by_part": {k: v / messages * 1000 for k, v in sorted(parts.items()) if v > 0.0005},
           "peak_pss_kb": sampler.peak_pss_kb, "peak_processes": sampler.peak_procs, "client_cpu_s": client_cpu,
           "units": units, "other_load_cores": max(0.0, others / (t1 - t0)),
           "journald_cpu_s_per_1000": journal_s / messages * 1000}
    if hole:
        row["blackhole_connections"] = hole.connections
    if dkim:
        signed = dkim.signed_since(since, messages)
        if signed < messages:
            raise RuntimeError(f"{server.name}: opendkim signed {signed} of {messages} messages")
        row["dkim_cpu_s_per_1000"] = dkim_s / messages * 1000
        row["dkim_signed"] = signed
    log(f"{server.name:8} {size:6} B {sessions:3} sessions {messages:5} msgs x {rcpts} rcpts: {row['msgs_per_s']:7.1f} msg/s, "
        f"{row['wall_s']:.1f} s, {row['cpu_s_per_1000']:.3f} CPU s/1000, peak PSS {sampler.peak_pss_kb / 1024:.1f} MiB, "
        f"others busy {row['other_load_cores']:.2f} CPUs"
        + (f", {hole.connections} connections to the black hole" if hole else "")
        + (f", opendkim {row['dkim_cpu_s_per_1000']:.3f} CPU s/1000" if dkim else ""))
    return row


def fmt_parts(parts):
    return " ".join(f"{k} {v:.2f}" for k, v in sorted(parts.items(), key=lambda kv: -kv[1]))


def rounds_by_point(rows, keys):
    """Each point's rows (the values of keys), per server, and the most rounds any has."""
    groups = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in keys), {}).setdefault(r["server"], []).append(r)
    return groups, max((len(g) for p in groups.values() for g in p.values()), default=0)


def print_head(title, keys, columns):
    """A title, then the head of a table whose first columns are keys (right-aligned) and then columns,
    (name, alignment) pairs."""
    print()
    print(title)
    print()
    print("| " + " | ".join(list(keys) + [c for c, _ in columns]) + " |")
    print("| " + " | ".join(["---:"] * len(keys) + [a for _, a in columns]) + " |")


def print_medians(rows, keys):
    """With more than one round: the median of each figure over the rounds, per point and server."""
    groups, rounds = rounds_by_point(rows, keys)
    if rounds < 2:
        return
    print_head(f"Medians of {rounds} rounds:", keys,
               [("server", "---"), ("msg/s", "---:"), ("CPU s/1000 msg", "---:"), ("opendkim CPU s/1000 msg", "---:"),
                ("peak PSS", "---:"), ("others", "---:")])
    for key, p in sorted(groups.items()):
        for server, g in sorted(p.items()):
            med = {f: statistics.median(r[f] for r in g)
                   for f in ("msgs_per_s", "cpu_s_per_1000", "peak_pss_kb", "other_load_cores")}
            med["dkim"] = statistics.median(r.get("dkim_cpu_s_per_1000", 0.0) for r in g)
            print("| " + " | ".join(str(v) for v in key) + f" | {server} | {med['msgs_per_s']:.0f} | "
                  f"{med['cpu_s_per_1000']:.2f} | {med['dkim']:.2f} | {med['peak_pss_kb'] / 1024:.1f} MiB | "
                  f"{med['other_load_cores']:.2f} |")


def print_best(rows, keys):
    """With more than one round: the best of each server over the rounds (the highest msg/s, the least CPU),
    and their ratios. The host's noise (other tenants' time, which this VM counts as ours) only ever adds CPU
    and takes rate, and a short measurement can fall wholly inside a burst of it: the best round is the
    steadiest estimate of what the work itself costs, the median the one to expect on a busy day."""
    groups, rounds = rounds_by_point(rows, keys)
    if rounds < 2:
        return
    print_head(f"Best of {rounds} rounds, postbus / Postfix:", keys,
               [("msg/s", "---:"), ("CPU s/1000 msg", "---:"), ("rate ratio", "---:"), ("CPU ratio", "---:")])
    for key, p in sorted(groups.items()):
        if "postbus" not in p or "Postfix" not in p:
            continue
        rate = {n: max(r["msgs_per_s"] for r in g) for n, g in p.items()}
        cpu = {n: min(r["cpu_s_per_1000"] for r in g) for n, g in p.items()}
        print("| " + " | ".join(str(v) for v in key) + f" | {rate['postbus']:.0f} / {rate['Postfix']:.0f} | "
              f"{cpu['postbus']:.2f} / {cpu['Postfix']:.2f} | {rate['postbus'] / rate['Postfix']:.2f} | "
              f"{cpu['postbus'] / cpu['Postfix']:.2f} |")


def print_tables(rows, mode):
    if mode in ("relay", "local", "dkim"):
        rc = mode == "local"    # a column for the recipients per message
        dk = mode == "dkim"     # a column for opendkim's CPU
        print("| size | sessions | " + "rcpts | " * rc +
              "server | msg/s | CPU s/1000 msg | " + "opendkim CPU s/1000 msg | " * dk +
              "CPU s/1000 by unit/program | peak PSS | others |")
        print("| ---: | ---: | " + "---: | " * rc + "--- | ---: | ---: | " + "---: | " * dk + "--- | ---: | ---: |")
        for r in rows:
            print(f"| {r['size'] // 1024} KiB | {r['sessions']} | " + f"{r['rcpts']} | " * rc + f"{r['server']} | "
                  f"{r['msgs_per_s']:.0f} | {r['cpu_s_per_1000']:.2f} | "
                  + (f"{r.get('dkim_cpu_s_per_1000', 0):.2f} | " if dk else "") +
                  f"{fmt_parts(r['cpu_s_per_1000_by_part'])} | "
                  f"{r['peak_pss_kb'] / 1024:.1f} MiB | {r['other_load_cores']:.2f} |")
        by = {(r["size"], r["sessions"], r["rcpts"], r["round"], r["server"]): r for r in rows}
        print()
        for (size, sessions, rcpts, rnd, name), r in sorted(by.items()):
            other = by.get((size, sessions, rcpts, rnd, "Postfix"))
            if name == "postbus" and other:
                print(f"{size // 1024} KiB, {sessions} sessions, " + f"{rcpts} rcpts, " * rc + f"round {rnd}: postbus/Postfix msg/s "
                      f"{r['msgs_per_s'] / other['msgs_per_s']:.2f}, CPU per message "
                      f"{r['cpu_s_per_1000'] / other['cpu_s_per_1000']:.2f}, peak PSS "
                      f"{r['peak_pss_kb'] / max(other['peak_pss_kb'], 1):.2f}")
        print_medians(rows, ("size", "sessions", "rcpts"))
        print_best(rows, ("size", "sessions", "rcpts"))
    else:
        print("| server | messages | sessions | time to deliver all | msg/s | connections to the black hole | "
              "CPU s/1000 msg | peak PSS | others |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for r in rows:
            print(f"| {r['server']} | {r['messages']} | {r['sessions']} | {r['wall_s']:.1f} s | {r['msgs_per_s']:.0f} | "
                  f"{r['blackhole_connections']} | {r['cpu_s_per_1000']:.2f} | {r['peak_pss_kb'] / 1024:.1f} MiB | "
                  f"{r['other_load_cores']:.2f} |")
        print_medians(rows, ("messages",))


# BENCH_ONLY=postbus (or Postfix): measure that one alone, to follow one's own figures quickly while
# changing it; the comparison needs both.
ONLY = os.environ.get("BENCH_ONLY", "")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--mode", choices=("relay", "dkim", "local", "blackhole"), required=True)
    ap.add_argument("--plan", default="1:500,10:1000,50:1000", help="SESSIONS:MESSAGES,...")
    ap.add_argument("--sizes", default="1024,102400")
    ap.add_argument("--rcpt-point", default="10:200:10",
                    help="--local: SESSIONS:MESSAGES:RECIPIENTS, a point with several recipients per message")
    ap.add_argument("--maildir", action="store_true", help="--local: to ~/Maildir/ (home_mailbox), not /var/mail")
    ap.add_argument("--messages", type=int, default=500, help="--blackhole: messages")
    ap.add_argument("--sessions", type=int, default=10, help="--blackhole: smtp-source sessions")
    ap.add_argument("--timeout", type=int, default=10, help="smtp_connect_timeout and smtp_helo_timeout, seconds")
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--settle", type=float, default=6,
                    help="seconds to wait, after a sync, before each timed run (see settle())")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--interval", type=float, default=0.1)
    ap.add_argument("--drain-timeout", type=int, default=1200)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    args.reuse = False
    args.recipient = {"relay": "bench@relay.bench", "dkim": "bench@relay.bench", "local": f"{LOCAL_USER}@localhost"}.get(args.mode,
                                                                                             f"bench@{DOMAIN}")
    if CGROUP2 is None:
        sys.exit("relay: no cgroup2 hierarchy: cannot account CPU per unit")

    postbus, postfix = PostbusRelay(args), PostfixRelay(args)
    rows = []
    dns = hole = mailboxes = dkim = None
    sink = False
    try:
        run("systemd-run", "--quiet", f"--unit={SINK_UNIT}", "--property=Type=simple", "/usr/sbin/smtp-sink",
            "-u", "nobody", f"{SINK_ADDR}:{SINK_PORT}", "1000")
        sink = True
        points = [(1024, args.sessions, args.messages, 1)]
        if args.mode != "blackhole":
            points = [(size, int(s), int(m), 1) for size in (int(x) for x in args.sizes.split(","))
                      for s, m in (p.split(":") for p in args.plan.split(","))]
        if args.mode == "local":
            if args.rcpt_point:
                s, m, r = (int(x) for x in args.rcpt_point.split(":"))
                points += [(size, s, m, r) for size in (int(x) for x in args.sizes.split(","))]
            add_local_users(max(p[3] for p in points))
            mailboxes = Maildirs() if args.maildir else Mailboxes()
        if args.mode == "dkim":
            dkim = OpenDKIM()
        postbus.setup()
        postfix.setup()
        if args.mode == "blackhole":
            dns = start_dns()
            hole = BlackHole()
        for rnd in range(args.rounds):
            for i, (size, sessions, messages, rcpts) in enumerate(points):
                order = (postbus, postfix) if (i + rnd) % 2 == 0 else (postfix, postbus)
                for server in order:
                    if ONLY and server.name != ONLY:
                        continue
                    row = measure_one(server, args, sessions, messages, size, hole, rcpts, mailboxes, dkim)
                    row["round"] = rnd + 1
                    rows.append(row)
    finally:
        postfix.teardown()
        if sink:
            run("systemctl", "stop", SINK_UNIT, check=False)
        if dkim:
            dkim.stop()
        if hole:
            hole.close()
        if dns:
            dns.terminate()
            dns.wait()
        with open(args.out, "w") as f:
            json.dump({"mode": args.mode, "rows": rows, "timeout": args.timeout, "warmup": args.warmup}, f, indent=1)
    print_tables(rows, args.mode)


if __name__ == "__main__":
    main()
