#!/usr/bin/python3
"""measure.py: the inside half of bench/run. Runs in the benchmark's systemd container, as root.

Drives smtp-source against postbus (127.0.0.1:25, the installed and started units) and against a
private Postfix instance (127.0.0.1:2525, started here in the transient unit bench-postfix.service,
its configuration and queue under WORK/postfix on the real disk), one session count at a time,
both servers in turn, and writes the figures as JSON.

What is measured for each run of N messages:
- wall time of smtp-source, from its start until it has its last 250 (and QUIT) back;
- CPU time of the server side: usage_usec of the units' cgroups in the cgroup2 hierarchy (the
  cpu.stat every cgroup2 group has, controller or not: it counts processes that exited too),
  after minus before; postbus: every postbus-*.service active after the warm-up (smtpd,
  cleanup, and the roles they call, such as rewrite); Postfix:
  bench-postfix.service (master, smtpd, cleanup, qmgr, trivial-rewrite, anvil, ...);
- memory: the servers' processes are sampled every --interval seconds, and the peak of the sum
  of their RSS and of their PSS is kept (PSS shares a library page among the processes mapping
  it, so it is the fairer figure for a many-process server); plus the largest VmHWM of a single
  process.
Nothing here starts anything it does not stop: Postfix is stopped with 'postfix -c DIR stop',
its master's PID is checked to be gone, and the unit is stopped.
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

CGROUP2 = None
for candidate in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup"):
    if os.path.exists(os.path.join(candidate, "cgroup.controllers")):
        CGROUP2 = candidate
        break

POSTBUS_SPOOL = "/var/spool/postbus"
POSTFIX_UNIT = "bench-postfix.service"
POSTFIX_DAEMONS = "/usr/lib/postfix/sbin/"
SMTP_SOURCE = "/usr/sbin/smtp-source"


def log(msg):
    print("measure: " + msg, file=sys.stderr, flush=True)


def run(*args, check=True, **kw):
    return subprocess.run(list(args), check=check, text=True, **kw)


def systemctl_show(unit, prop):
    return run("systemctl", "show", "-P", prop, unit, capture_output=True).stdout.strip()


def unit_cgroup_dir(unit):
    cg = systemctl_show(unit, "ControlGroup")
    if not cg or CGROUP2 is None:
        return None
    return CGROUP2 + cg


def active_postbus_services():
    """The postbus roles running now: after a warm-up, every role that accepting mail involves
    (smtpd, cleanup, and whatever they call, e.g. rewrite)."""
    out = run("systemctl", "list-units", "--type=service", "--state=active", "--plain", "--no-legend",
              "postbus-*.service", capture_output=True).stdout
    return sorted(line.split()[0] for line in out.splitlines() if line.strip())


def cgroup_dir_cpu_usec(d):
    with open(os.path.join(d, "cpu.stat")) as f:
        for line in f:
            k, v = line.split()
            if k == "usage_usec":
                return int(v)
    raise RuntimeError(f"{d}/cpu.stat has no usage_usec")


def cgroup_cpu_usec(unit):
    d = unit_cgroup_dir(unit)
    if d is None:
        raise RuntimeError(f"no cgroup2 group for {unit}")
    return cgroup_dir_cpu_usec(d)


def cgroup_dir_pids(d):
    pids = []
    for root, _dirs, files in os.walk(d):
        if "cgroup.procs" in files:
            try:
                with open(os.path.join(root, "cgroup.procs")) as f:
                    pids += [int(x) for x in f.read().split()]
            except OSError:
                pass
    return pids


def cgroup_pids(unit):
    d = unit_cgroup_dir(unit)
    return cgroup_dir_pids(d) if d is not None else []


def proc_status_kb(pid, fields):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in fields:
                out[k] = int(v.split()[0])
    return out


def proc_cpu_s(pid):
    """CPU seconds a process has run so far: the first field of /proc/PID/schedstat, in
    nanoseconds (utime + stime of /proc/PID/stat are whole clock ticks, too coarse to sum over a
    hundred short-lived processes)."""
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0]) / 1e9


def proc_children_cpu_s(pid):
    """CPU seconds of the children a process has waited for (cutime + cstime of /proc/PID/stat): what
    its exited children used, however short they lived."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    # fields[0] is the state, field 3; cutime and cstime are fields 16 and 17
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


def proc_comm(pid):
    with open(f"/proc/{pid}/comm") as f:
        return f.read().strip()


def proc_pss_kb(pid):
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


class MemorySampler(threading.Thread):
    """Samples the summed RSS and PSS of the processes that select() returns, until stopped.

    With label (a function of a PID, e.g. proc_comm), it also keeps the peak PSS of each label's
    processes, and the CPU seconds each process had run when last seen (proc_cpu_s), so that a
    process that exits between two samples still counts with what it had used by then."""

    def __init__(self, select, interval, label=None):
        super().__init__(daemon=True)
        self.select = select
        self.interval = interval
        self.label = label
        self.stop_event = threading.Event()
        self.peak_rss_kb = 0
        self.peak_pss_kb = 0
        self.peak_hwm_kb = 0
        self.peak_procs = 0
        self.peak_pss_kb_by_label = {}
        self.cpu_by_pid = {}  # pid -> (label, CPU seconds when last seen)
        self.samples = 0

    def sample(self):
        rss = pss = n = 0
        by_label = {}
        for pid in self.select():
            try:
                st = proc_status_kb(pid, ("VmRSS", "VmHWM"))
                p = proc_pss_kb(pid)
                if self.label:
                    lab = self.label(pid)
                    self.cpu_by_pid[pid] = (lab, proc_cpu_s(pid))
                    by_label[lab] = by_label.get(lab, 0) + p
            except (OSError, ValueError):
                continue  # it exited meanwhile
            rss += st.get("VmRSS", 0)
            pss += p
            n += 1
            self.peak_hwm_kb = max(self.peak_hwm_kb, st.get("VmHWM", 0))
        self.peak_rss_kb = max(self.peak_rss_kb, rss)
        self.peak_pss_kb = max(self.peak_pss_kb, pss)
        self.peak_procs = max(self.peak_procs, n)
        for lab, kb in by_label.items():
            self.peak_pss_kb_by_label[lab] = max(self.peak_pss_kb_by_label.get(lab, 0), kb)
        self.samples += 1

    def run(self):
        while not self.stop_event.is_set():
            self.sample()
            self.stop_event.wait(self.interval)

    def finish(self):
        self.stop_event.set()
        self.join()
        self.sample()  # once more at the end: VmHWM of the long-lived processes is exact


def wait_port(port, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.recv(512)  # the banner: the server is really there
                s.sendall(b"QUIT\r\n")
                s.recv(512)
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing answers on 127.0.0.1:{port}")


def count_queue_files(directory):
    n = 0
    for _root, _dirs, files in os.walk(directory):
        n += sum(1 for f in files if not f.endswith(".tmp"))
    return n


# Queues are never emptied between measurements: on this file system (ext4 without a journal)
# creating a file costs more when inodes of its block group were freed recently (the kernel's
# find_inode_bit() skips them, reading each one's deletion time), and thousands of deletions just
# before a measurement would slow whichever server came next. Each measurement counts the new
# files instead; the work directory goes at the end.


class Postbus:
    name = "postbus"
    port = 25

    def __init__(self, args):
        self.args = args
        self.services = []

    def setup(self):
        # Delivery must not compete: qmgr stays stopped (masked for this boot only), so accepted
        # mail stays in incoming, durably queued, like Postfix's hold queue. cleanup's wake-up
        # call to qmgr fails fast and is retried with back-off (best effort by design).
        run("systemctl", "stop", "postbus-qmgr.socket", "postbus-qmgr.service")
        run("systemctl", "mask", "--runtime", "--quiet", "postbus-qmgr.socket", "postbus-qmgr.service")
        # No reverse lookup of the client, as Postfix is set up below. --param: main.cf lines, e.g.
        # cleanup_sync_threads=0, read by each role at its next start.
        with open("/etc/postbus/main.cf", "a") as f:
            f.write("smtpd_peername_lookup = no\n")
            f.write("".join(f"{p.split('=', 1)[0].strip()} = {p.split('=', 1)[1].strip()}\n"
                            for p in self.args.param))

    def fresh_start(self):
        """Stops the roles (their sockets stay) and lets socket activation start them again on the
        first connection. The queue is left as it is (see count_queue_files)."""
        # not: "can still be activated by"
        services = active_postbus_services()
        if services:
            run("systemctl", "stop", *services, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def queue_dir(self):
        return os.path.join(POSTBUS_SPOOL, "incoming")

    def units(self):
        return active_postbus_services()

    def pids(self):
        pids = []
        for u in self.services:
            pids += cgroup_pids(u)
        return pids

    def teardown(self):
        pass  # the container goes with everything in it; bench/run takes it down


class Postfix:
    name = "Postfix"
    port = 2525

    def __init__(self, args):
        self.args = args
        self.base = os.path.join(args.work, "postfix")
        self.etc = os.path.join(self.base, "etc")
        self.queue = os.path.join(self.base, "queue")
        self.data = os.path.join(self.base, "data")
        self.running = False

    # The acceptance benchmark: cleanup files every accepted message straight into the hold queue
    # (after the same fsync before 250), so qmgr never schedules a delivery.
    main_cf_extra = """# Accept to the queue and stop there.
smtpd_end_of_data_restrictions = check_client_access static:HOLD
"""
    MASTER_CF_HEAD = "# Written by bench/measure.py. No chroot, as Debian's package would not do either here.\n"
    QMGR_SERVICE = "qmgr      unix  n - n 300 1 qmgr\n"
    OTHER_SERVICES = """127.0.0.1:2525 inet n - n - - smtpd
cleanup   unix  n - n - 0 cleanup
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""

    def write_main_cf(self):
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write(f"""# Written by bench/measure.py: a private Postfix instance for the benchmark.
compatibility_level = 3.6
queue_directory = {self.queue}
data_directory = {self.data}
mail_owner = postfix
setgid_group = postdrop
syslog_name = postfix-bench
myhostname = bench.localdomain
mydestination = localhost
mynetworks = 127.0.0.0/8
inet_interfaces = loopback-only
inet_protocols = ipv4
alias_maps =
alias_database =
# postbus does no reverse lookup of the client's address: neither does this instance.
smtpd_peername_lookup = no
""" + self.main_cf_extra)

    def write_master_cf(self, qmgr=True, extra=""):
        """master.cf, with or without the qmgr service (bench/drain.py leaves it out until it releases
        the queue; mail must not arrive meanwhile: with no qmgr to wake, cleanup waits a second a
        message)."""
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(self.MASTER_CF_HEAD + (self.QMGR_SERVICE if qmgr else "") + self.OTHER_SERVICES + extra)

    def setup(self):
        for d in (self.etc, self.queue, self.data):
            os.makedirs(d, exist_ok=True)
        shutil.chown(self.data, "postfix")
        self.write_main_cf()
        self.write_master_cf()
        run("postfix", "-c", self.etc, "check")

    def master_pid(self):
        try:
            with open(os.path.join(self.queue, "pid", "master.pid")) as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def start(self, serving=True):
        """Starts the instance; waits until smtpd answers, or (serving=False) only until the master
        runs, so that no daemon process is started by the wait itself."""
        run("systemd-run", "--quiet", "--unit=" + POSTFIX_UNIT, "--property=Type=simple",
            "/usr/sbin/postfix", "-c", self.etc, "start-fg")
        self.running = True
        if serving:
            wait_port(self.port)
            return
        deadline = time.monotonic() + 30
        # The master locks master.pid before it writes its PID there: wait for a PID of this unit.
        while self.master_pid() not in cgroup_pids(POSTFIX_UNIT):
            if time.monotonic() > deadline:
                raise RuntimeError("the Postfix master did not start")
            time.sleep(0.1)

    def stop(self):
        if not self.running:
            return
        pid = self.master_pid()
        run("postfix", "-c", self.etc, "stop", check=False, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while pid and os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            time.sleep(0.1)
        if pid and os.path.exists(f"/proc/{pid}"):
            log(f"Postfix master {pid} is still there after 'postfix stop'; the unit's stop ends it")
        run("systemctl", "stop", POSTFIX_UNIT, check=False)
        run("systemctl", "reset-failed", POSTFIX_UNIT, check=False, stderr=subprocess.DEVNULL)
        left = cgroup_pids(POSTFIX_UNIT)
        if pid and os.path.exists(f"/proc/{pid}") or left:
            raise RuntimeError(f"Postfix did not stop (master {pid}, processes {left})")
        self.running = False

    def fresh_start(self):
        self.stop()
        self.start()

    def queue_dir(self):
        return os.path.join(self.queue, "hold")

    def units(self):
        return [POSTFIX_UNIT]

    def pids(self):
        out = []
        for pid in cgroup_pids(POSTFIX_UNIT):
            try:
                if os.readlink(f"/proc/{pid}/exe").startswith(POSTFIX_DAEMONS):
                    out.append(pid)  # not the postfix-script shell that waits for master
            except OSError:
                pass
        return out

    def teardown(self):
        self.stop()


def smtp_source(args, port, sessions, messages):
    cmd = [SMTP_SOURCE, "-s", str(sessions), "-m", str(messages), "-l", str(args.size),
           "-f", "bench@bench.localdomain", "-t", args.recipient, "-M", "client.localdomain"]
    if args.reuse:
        cmd.append("-d")
    if getattr(args, "rcpts", 1) > 1:
        cmd += ["-r", str(args.rcpts)]   # 1bench@..., 2bench@..., ... in each transaction
    if getattr(args, "numbered_recipients", False):
        cmd.append("-N")    # 1bench@..., 2bench@...: no cache hits on one recipient repeated
    cmd.append(f"127.0.0.1:{port}")
    before = os.times()
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, cwd="/")
    wall = time.monotonic() - t0
    after = os.times()
    client_cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    if p.returncode != 0 or p.stderr.strip():
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {p.returncode}): {p.stderr.strip()[:500]}")
    return wall, client_cpu


def disk_probe(directory, n=20):
    """Median milliseconds of what a durable queue write costs on this disk right now: create,
    write 4 KiB, fsync, rename, fsync the directory. The disk is shared with whatever else runs on
    the machine, and its latency bounds both servers' rate: this says how it was at the time."""
    # The files stay (nothing is deleted before a measurement, see above): a fresh directory each time.
    directory = tempfile.mkdtemp(dir=directory)
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    times = []
    try:
        for i in range(n):
            t0 = time.monotonic()
            fd = os.open(f"{i}.tmp", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=dfd)
            os.write(fd, b"x" * 4096)
            os.fsync(fd)
            os.close(fd)
            os.rename(f"{i}.tmp", str(i), src_dir_fd=dfd, dst_dir_fd=dfd)
            os.fsync(dfd)
            times.append((time.monotonic() - t0) * 1000)
    finally:
        os.close(dfd)
    return statistics.median(times)


def host_busy_s():
    """CPU seconds all CPUs of the machine have been busy (the container shares /proc/stat with
    the host): user, nice, system, irq, softirq, steal."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def own_cpu_s():
    t = os.times()
    return t.user + t.system


def measure(server, args, sessions, messages):
    server.fresh_start()
    probe_dir = os.path.join(args.work, "probe")
    os.makedirs(probe_dir, exist_ok=True)
    disk_ms = disk_probe(probe_dir)
    if args.warmup:
        smtp_source(args, server.port, sessions, args.warmup)
    before_files = count_queue_files(server.queue_dir())
    units = server.units()
    server.services = units
    unit_cpu0 = {u: cgroup_cpu_usec(u) for u in units}
    cpu0 = sum(unit_cpu0.values())
    journal0 = cgroup_cpu_usec("systemd-journald.service")
    busy0, own0, t0 = host_busy_s(), own_cpu_s(), time.monotonic()
    sampler = MemorySampler(server.pids, args.interval)
    sampler.start()
    wall, client_cpu = smtp_source(args, server.port, sessions, messages)
    time.sleep(0.3)  # the last sessions' QUIT and close, still the server's work
    sampler.finish()
    unit_cpu1 = {u: cgroup_cpu_usec(u) for u in units}
    cpu1 = sum(unit_cpu1.values())
    journal1 = cgroup_cpu_usec("systemd-journald.service")
    busy1, own1, t1 = host_busy_s(), own_cpu_s(), time.monotonic()
    journal_s = (journal1 - journal0) / 1e6
    # What else kept the machine's CPUs busy meanwhile (other people's builds and tests): the
    # servers get less CPU then, and a server of two processes loses more of it to the
    # scheduler's per-task fairness than one of a hundred.
    others = (busy1 - busy0) - (cpu1 - cpu0) / 1e6 - client_cpu - (own1 - own0) - journal_s
    queued = count_queue_files(server.queue_dir()) - before_files
    if queued != messages:
        raise RuntimeError(f"{server.name}: {messages} messages sent, {queued} queued")
    row = {
        "server": server.name, "sessions": sessions, "messages": messages, "size": args.size,
        "wall_s": wall, "msgs_per_s": messages / wall,
        "server_cpu_s": (cpu1 - cpu0) / 1e6, "cpu_s_per_1000": (cpu1 - cpu0) / 1e6 / messages * 1000,
        "client_cpu_s": client_cpu,
        # each unit's own: postbus's roles apart (Postfix is one unit)
        "unit_cpu_s_per_1000": {u: (unit_cpu1[u] - unit_cpu0[u]) / 1e6 / messages * 1000 for u in units},
        "peak_rss_kb": sampler.peak_rss_kb, "peak_pss_kb": sampler.peak_pss_kb,
        "max_process_hwm_kb": sampler.peak_hwm_kb, "peak_processes": sampler.peak_procs,
        "memory_samples": sampler.samples, "queued": queued, "disk_probe_ms": disk_ms,
        "journald_cpu_s_per_1000": journal_s / messages * 1000, "units": units,
        "other_load_cores": max(0.0, others / (t1 - t0)), "ncpu": os.cpu_count(),
    }
    log(f"{server.name:8} {sessions:3} sessions {messages:6} msgs: {row['msgs_per_s']:8.1f} msg/s, "
        f"{row['cpu_s_per_1000']:.3f} CPU s/1000, peak PSS {row['peak_pss_kb'] / 1024:.1f} MiB, "
        f"disk probe {disk_ms:.2f} ms, others busy {row['other_load_cores']:.2f} of {os.cpu_count()} CPUs")
    return row


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--plan", required=True, help="SESSIONS:MESSAGES,... e.g. 1:2000,10:5000,50:5000")
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--reuse", action="store_true")
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--interval", type=float, default=0.1)
    ap.add_argument("--recipient", default="root@localhost")
    ap.add_argument("--out", required=True)
    ap.add_argument("--param", action="append", default=[], help="NAME=VALUE for postbus's main.cf")
    args = ap.parse_args()

    if CGROUP2 is None:
        sys.exit("measure: no cgroup2 hierarchy: cannot account CPU per unit")
    plan = []
    for item in args.plan.split(","):
        s, _, m = item.partition(":")
        plan.append((int(s), int(m)))

    postbus, postfix = Postbus(args), Postfix(args)
    rows = []
    try:
        postbus.setup()
        postfix.setup()
        for rnd in range(args.rounds):
            for i, (sessions, messages) in enumerate(plan):
                # Alternate who goes first, so that neither always runs on a warmer (or fuller) disk.
                order = (postbus, postfix) if (i + rnd) % 2 == 0 else (postfix, postbus)
                for server in order:
                    row = measure(server, args, sessions, messages)
                    row["round"] = rnd + 1
                    rows.append(row)
    finally:
        postfix.teardown()
        with open(args.out, "w") as f:
            json.dump({"rows": rows, "plan": plan, "size": args.size, "reuse": args.reuse,
                       "warmup": args.warmup, "rounds": args.rounds}, f, indent=1)


if __name__ == "__main__":
    main()
