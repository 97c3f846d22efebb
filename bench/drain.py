#!/usr/bin/python3
"""drain.py: the inside half of 'bench/run --scheduler'. Runs in the benchmark's container, as root.

How fast each queue manager empties a full queue, and what it costs: postbus's qmgr (the installed
units) and a private Postfix instance's qmgr (bench-postfix.service, configured by measure.py's
Postfix class), each on the same load: MESSAGES messages of one recipient each, all in a domain
that transport_maps sends to the discard transport. For each server in turn:

1. fill: smtp-source sends the messages over reused connections. postbus: postbus-qmgr is masked,
   so they stay in incoming. Postfix: cleanup files them into hold (as in the acceptance
   benchmark; without a qmgr to wake, Postfix's cleanup takes a second a message). Not timed.
2. quiesce: everything the fill started is stopped, so that what runs from now on is the drain's
   own work. postbus: every postbus-*.service. Postfix: the instance is stopped, the files are
   renamed from hold to incoming (where cleanup puts them when nothing holds them: same files,
   same inodes, so the queue IDs still match), and it is started again without qmgr in
   master.cf, so that only its master runs ('postfix start' checks the queue first, untimed).
3. release: postbus: the qmgr units are unmasked and started; Postfix: master.cf gets its qmgr
   line and the master is sent SIGHUP (what 'postfix reload' does, without the two postsuper
   passes over the queue it runs beside it). Both queue managers start, scan incoming and work.
4. drain: timed from the release until incoming and active are both empty; then the deferred,
   hold and corrupt queues are counted (all must stay empty), and CPU and memory read.

CPU. postbus: usage_usec of each postbus-*.service cgroup (qmgr, rewrite, bounce if installed,
any other), all started fresh after the quiesce. Postfix runs every daemon in one unit, so the
unit's usage_usec is the instance's total, and it is split per process: the master's own CPU,
and every daemon process sampled (by --interval) with its name (qmgr, trivial-rewrite, discard,
...) and the CPU it had run (/proc/PID/schedstat). Processes that exit during the drain (discard
processes do, after max_use = 100 deliveries each) are exact in sum: their master waited for them,
so the master's cutime + cstime grew by all they used. Each exited process is counted with what
it had used when last sampled, and the rest of that sum (what they used after their last sample,
and processes that lived less than a sampling interval) goes to the names of the exited processes,
by their number; when they all have one name (normally discard), that is exact.
"""

import argparse
import collections
import json
import os
import signal
import subprocess
import sys
import time

import measure
from measure import (CGROUP2, POSTBUS_SPOOL, POSTFIX_UNIT, MemorySampler, Postbus, Postfix,
                     cgroup_cpu_usec, cgroup_dir_cpu_usec, cgroup_dir_pids, count_queue_files,
                     host_busy_s, log, own_cpu_s, proc_children_cpu_s, proc_comm, proc_cpu_s, run,
                     smtp_source)

DOMAIN = "discard.bench"
RECIPIENT = "bench@" + DOMAIN
# The parts of a server the figures name, in the table's order.
PARTS = ("qmgr", "rewrite", "discard", "bounce", "master", "other")
POLL = 0.02          # seconds between two looks at the queue during a drain
STALL = 120          # seconds without a message leaving the queue: the drain is stuck


def any_entry(directory):
    """Whether a queue directory (or one of its hash subdirectories) holds a file; stops at the first."""
    with os.scandir(directory) as it:
        for e in it:
            if e.is_dir(follow_symlinks=False):
                if any_entry(e.path):
                    return True
            elif not e.name.endswith(".tmp"):
                return True
    return False


def journal(since, identifiers, min_priority=None, grep=None, limit=12):
    """The journal records of some programs since a time (seconds since the epoch), as text lines:
    the last `limit` of those matching grep (a substring) if given."""
    subprocess.run(["journalctl", "--sync"], check=False)
    cmd = ["journalctl", "-q", "--no-pager", "-o", "short-precise", f"--since=@{since:.6f}"]
    if min_priority:
        cmd += ["-p", min_priority]
    for ident in identifiers:
        cmd += ["-t", ident]
    lines = run(*cmd, capture_output=True, check=False).stdout.splitlines()
    if grep:
        lines = [line for line in lines if grep in line]
    return len(lines), lines[-limit:]


class PostbusDrain(Postbus):
    transport = "/etc/postbus/transport"
    main_cf = "/etc/postbus/main.cf"
    journal_ids = ("postbus/qmgr", "postbus/rewrite", "postbus/bounce")
    qmgr_label = "postbus-qmgr"

    def setup(self):
        super().setup()     # qmgr stopped and masked for this boot
        with open(self.transport, "w") as f:
            f.write(f"{DOMAIN} discard:\n")
        run("postbusctl", "map", "build", self.transport)
        with open(self.main_cf) as f:
            lines = [line for line in f.read().splitlines() if not line.startswith("transport_maps")]
        lines.append(f"transport_maps = hash:{self.transport}")
        with open(self.main_cf + ".tmp", "w") as f:
            f.write("\n".join(lines) + "\n")
        os.rename(self.main_cf + ".tmp", self.main_cf)
        self.bounce_installed = measure.systemctl_show("postbus-bounce.service", "LoadState") == "loaded"

    def fill(self, n):
        self.fresh_start()
        smtp_source(self.args, self.port, self.args.sessions, n)

    def quiesce(self):
        services = measure.active_postbus_services()
        if services:
            run("systemctl", "stop", *services, stderr=subprocess.DEVNULL)
        # Unmasking reloads systemd, which takes a while: not in the drain's time. Nothing starts qmgr
        # until release(): its socket is stopped too, and cleanup is not running.
        run("systemctl", "unmask", "--runtime", "--quiet", "postbus-qmgr.socket", "postbus-qmgr.service")

    def release(self):
        # qmgr tells systemd it is ready only after its first scan: do not wait for that here.
        run("systemctl", "start", "--no-block", "postbus-qmgr.socket", "postbus-qmgr.service")

    def hold_again(self):
        run("systemctl", "stop", "postbus-qmgr.socket", "postbus-qmgr.service")
        run("systemctl", "mask", "--runtime", "--quiet", "postbus-qmgr.socket", "postbus-qmgr.service")

    def queue_path(self, name):
        return os.path.join(POSTBUS_SPOOL, name)

    @staticmethod
    def unit_dirs():
        """unit name -> cgroup directory of every postbus service that has one now."""
        base = os.path.join(CGROUP2, "system.slice")
        return {u: os.path.join(base, u) for u in os.listdir(base)
                if u.startswith("postbus-") and u.endswith(".service")}

    def qmgr_pid(self):
        d = os.path.join(CGROUP2, "system.slice", "postbus-qmgr.service")
        return next((p for p in cgroup_dir_pids(d) if proc_comm(p) == self.qmgr_label), None)

    def drain_pids(self):
        pids = []
        for d in self.unit_dirs().values():
            for pid in cgroup_dir_pids(d):
                try:
                    if proc_comm(pid).startswith("postbus-"):
                        pids.append(pid)    # not systemd's child that has yet to exec the role
                except OSError:
                    pass
        return pids

    def cpu_start(self):
        self.unit_cpu0, self.unit_cpu_seen = {}, {}
        for u, d in self.unit_dirs().items():
            try:
                self.unit_cpu0[u] = cgroup_dir_cpu_usec(d)
            except OSError:
                pass

    def cpu_look(self):
        """During the drain: a unit that stops before the end still counts with what it had used."""
        for u, d in self.unit_dirs().items():
            try:
                self.unit_cpu_seen[u] = cgroup_dir_cpu_usec(d)
            except OSError:
                pass

    def cpu_end(self, sampler):
        self.cpu_look()
        now = self.unit_dirs()
        parts = dict.fromkeys(PARTS, 0.0)
        parts["discard"] = parts["master"] = None    # qmgr discards itself; systemd is the master
        if not self.bounce_installed:
            parts["bounce"] = None
        notes = []
        for u, usec in self.unit_cpu_seen.items():
            s = (usec - self.unit_cpu0.get(u, 0)) / 1e6
            part = u[len("postbus-"):-len(".service")]
            part = part if part in ("qmgr", "rewrite", "bounce") else "other"
            parts[part] = (parts[part] or 0.0) + s
            if u not in now:
                notes.append(f"{u} stopped during the drain: its CPU after the last look is missing")
        total = sum(v for v in parts.values() if v)
        return parts, total, {"units": sorted(self.unit_cpu_seen)}, notes


class PostfixDrain(Postfix):
    journal_ids = ("postfix-bench/qmgr", "postfix-bench/discard", "postfix-bench/trivial-rewrite",
                   "postfix-bench/master", "postfix-bench/bounce")
    qmgr_label = "qmgr"
    DISCARD = "discard   unix  - - n - - discard\n"

    def write_master_cf(self, qmgr=True):
        super().write_master_cf(qmgr=qmgr, extra=self.DISCARD)

    def setup(self):
        self.transport = os.path.join(self.etc, "transport")
        # The fill goes to hold, as in the acceptance benchmark (see fill()).
        self.main_cf_extra += f"transport_maps = hash:{self.transport}\n"
        super().setup()
        with open(self.transport, "w") as f:
            f.write(f"{DOMAIN} discard:\n")
        run("postmap", "-c", self.etc, f"hash:{self.transport}")

    def fill(self, n):
        # Without a qmgr in master.cf, Postfix's cleanup takes a second a message (smtpd's RCPT waits
        # for it): so the fill runs with qmgr and files the mail into hold, and quiesce() moves it to
        # incoming, where cleanup files it when there is no HOLD.
        self.write_master_cf(qmgr=True)
        self.fresh_start()
        smtp_source(self.args, self.port, self.args.sessions, n)

    def quiesce(self):
        # A fresh master: the fill's smtpd, cleanup and trivial-rewrite processes would otherwise exit
        # during the drain and add their CPU to the master's children. 'postfix start' runs its queue
        # checks (postsuper over every queue file) here, before the drain.
        self.stop()
        hold, incoming = self.queue_path("hold"), self.queue_path("incoming")
        for name in os.listdir(hold):
            os.rename(os.path.join(hold, name), os.path.join(incoming, name))  # same file, same inode
        os.sync()
        self.write_master_cf(qmgr=False)
        self.start(serving=False)
        self.master = self.master_pid()
        others = [p for p in self.pids() if p != self.master]
        if others:
            raise RuntimeError(f"Postfix runs more than its master before the drain: {others}")

    def release(self):
        self.write_master_cf(qmgr=True)
        os.kill(self.master, signal.SIGHUP)

    def hold_again(self):
        self.stop()

    def queue_path(self, name):
        return os.path.join(self.queue, name)

    def drain_pids(self):
        return self.pids()

    def qmgr_pid(self):
        return next((p for p in cgroup_dir_pids(self.unit_dir) if proc_comm(p) == self.qmgr_label), None)

    def cpu_start(self):
        self.unit_dir = measure.unit_cgroup_dir(POSTFIX_UNIT)
        self.unit0 = cgroup_cpu_usec(POSTFIX_UNIT)
        self.master0 = proc_cpu_s(self.master)
        self.children0 = proc_children_cpu_s(self.master)

    def cpu_look(self):
        pass

    def cpu_end(self, sampler):
        total = (cgroup_cpu_usec(POSTFIX_UNIT) - self.unit0) / 1e6
        master = proc_cpu_s(self.master) - self.master0
        exited_total = proc_children_cpu_s(self.master) - self.children0
        alive = set(self.pids())
        names = {"trivial-rewrite": "rewrite", "qmgr": "qmgr", "discard": "discard", "bounce": "bounce"}
        parts = dict.fromkeys(PARTS, 0.0)
        parts["master"] = master
        exited_seen, exited_count = 0.0, {}
        for pid, (label, cpu) in sampler.cpu_by_pid.items():
            if pid == self.master:
                continue
            part = names.get(label, "other")
            parts[part] += cpu
            if pid not in alive:
                exited_seen += cpu
                exited_count[part] = exited_count.get(part, 0) + 1
        unseen = max(0.0, exited_total - exited_seen)
        n_exited = sum(exited_count.values())
        for part, k in exited_count.items():
            parts[part] += unseen * k / n_exited
        notes = []
        if unseen > 0 and not n_exited:
            parts["other"] += unseen
            notes.append(f"{unseen:.3f} CPU s of processes never sampled, counted as other")
        if len(exited_count) > 1:
            notes.append("processes of several programs exited during the drain (%s): their CPU after "
                         "the last sample is shared out by count" % ", ".join(
                             f"{k} {v}" for k, v in sorted(exited_count.items())))
        # What the unit used beyond its daemons: the postfix-script shell that waits for the master.
        parts["other"] += max(0.0, total - sum(parts.values()))
        accounting = {"exited_processes": exited_count, "exited_cpu_s": exited_total,
                      "exited_cpu_sampled_s": exited_seen, "exited_cpu_after_last_sample_s": unseen}
        return parts, total, accounting, notes


def journal_sent_times(since, identifiers):
    """Times (seconds since the epoch) of the journal's delivery records with status=sent since a time."""
    cmd = ["journalctl", "-q", "--no-pager", "-o", "short-unix", f"--since=@{since:.6f}"]
    for ident in identifiers:
        cmd += ["-t", ident]
    out = run(*cmd, capture_output=True, check=False).stdout
    return [float(line.split(None, 1)[0]) for line in out.splitlines() if "status=sent" in line]


def proc_state(pid):
    """R running or waiting for a CPU, S sleeping (waiting for an event), D waiting for the disk."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rpartition(")")[2].split()[0]


def proc_schedstat_s(pid):
    """Seconds a process has run on a CPU, and seconds it has waited for one while runnable."""
    with open(f"/proc/{pid}/schedstat") as f:
        on_cpu, waiting = f.read().split()[:2]
    return int(on_cpu) / 1e9, int(waiting) / 1e9


def queue_left(server):
    return sum(count_queue_files(server.queue_path(q)) for q in ("incoming", "active"))


def drain(server, args, messages):
    if queue_left(server):
        raise RuntimeError(f"{server.name}: incoming or active is not empty before the fill")
    t_fill = time.monotonic()
    server.fill(messages)
    fill_s = time.monotonic() - t_fill
    server.quiesce()
    queued = queue_left(server)
    if queued != messages:
        raise RuntimeError(f"{server.name}: {messages} messages sent, {queued} queued in incoming")
    time.sleep(1)   # let the fill's writes settle before the clock starts

    server.cpu_start()
    journal0 = cgroup_cpu_usec("systemd-journald.service")
    busy0, own0 = host_busy_s(), own_cpu_s()
    sampler = MemorySampler(server.drain_pids, args.interval, label=proc_comm)
    sampler.start()
    since = time.time()
    t0 = time.monotonic()
    server.release()

    incoming, active = server.queue_path("incoming"), server.queue_path("active")
    last_left, last_change, last_look = queued, t0, t0
    qmgr, qmgr_seen, states = None, None, collections.Counter()
    while any_entry(incoming) or any_entry(active):   # incoming first: a file moves from it to active
        now = time.monotonic()
        try:
            if not qmgr:
                qmgr = server.qmgr_pid()
                qmgr_seen = now - t0 if qmgr else None
            if qmgr:
                states[proc_state(qmgr)] += 1
        except OSError:
            qmgr = None
        if now - last_look >= 1.0:
            last_look = now
            server.cpu_look()
            left = queue_left(server)
            if left != last_left:
                last_left, last_change = left, now
            elif now - last_change > STALL:
                n, lines = journal(since, server.journal_ids, min_priority="warning")
                raise RuntimeError(f"{server.name}: the drain is stuck: {left} messages in incoming and "
                                   f"active for {STALL} s; {n} warnings in the journal, the last:\n" +
                                   "\n".join(lines))
        time.sleep(POLL)
    t1 = time.monotonic()
    drain_s = t1 - t0
    try:
        qmgr_cpu_s, qmgr_wait_s = proc_schedstat_s(qmgr) if qmgr else (None, None)
    except OSError:
        qmgr_cpu_s = qmgr_wait_s = None
    sampler.finish()
    parts, total, accounting, notes = server.cpu_end(sampler)
    journal_s = (cgroup_cpu_usec("systemd-journald.service") - journal0) / 1e6
    busy1, own1, t2 = host_busy_s(), own_cpu_s(), time.monotonic()
    others = (busy1 - busy0) - total - (own1 - own0) - journal_s

    left = {q: count_queue_files(server.queue_path(q)) for q in ("deferred", "hold", "corrupt")}
    n_warn, warnings = journal(since, server.journal_ids, min_priority="warning")
    n_deferred, deferred_lines = journal(since, server.journal_ids, grep="status=deferred")
    sent = journal_sent_times(since, server.journal_ids)
    _, suppressed = journal(since, ["systemd-journald"], grep="Suppressed")
    notes = notes + [f"journald: {line.split(': ', 1)[-1]}" for line in suppressed]
    if len(sent) != messages:
        notes.append(f"{len(sent)} delivery records (status=sent) in the journal for {messages} messages")
    server.hold_again()

    per1000 = {p: (v / messages * 1000 if v is not None else None) for p, v in parts.items()}
    row = {
        "server": server.name, "messages": messages, "size": args.size, "fill_sessions": args.sessions,
        "fill_s": fill_s, "drain_s": drain_s, "msgs_per_s": messages / drain_s,
        "cpu_s": parts, "cpu_s_per_1000": per1000, "total_cpu_s": total,
        "total_cpu_s_per_1000": total / messages * 1000, "accounting": accounting, "notes": notes,
        "qmgr_peak_pss_kb": sampler.peak_pss_kb_by_label.get(server.qmgr_label, 0),
        "peak_pss_kb": sampler.peak_pss_kb, "peak_rss_kb": sampler.peak_rss_kb,
        "peak_pss_kb_by_program": sampler.peak_pss_kb_by_label,
        "peak_processes": sampler.peak_procs, "memory_samples": sampler.samples,
        # qmgr started after the release: its whole life is the drain's
        "journal_sent": len(sent),
        # how long the first message waited for its delivery, and the last
        "first_sent_after_s": min(sent) - since if sent else None,
        "last_sent_after_s": max(sent) - since if sent else None,
        "qmgr_started_after_s": qmgr_seen, "qmgr_on_cpu_s": qmgr_cpu_s, "qmgr_waiting_for_cpu_s": qmgr_wait_s,
        "qmgr_states": {k: v / max(1, sum(states.values())) for k, v in sorted(states.items())},
        "left": left, "journal_warnings": n_warn, "journal_warning_lines": warnings,
        "journal_deferred": n_deferred, "journal_deferred_lines": deferred_lines,
        "journald_cpu_s_per_1000": journal_s / messages * 1000,
        "other_load_cores": max(0.0, others / (t2 - t0)), "ncpu": os.cpu_count(),
    }
    log(f"{server.name:8} drained {messages} in {drain_s:.2f} s: {row['msgs_per_s']:.0f} msg/s, "
        f"qmgr {per1000['qmgr']:.3f} CPU s/1000, total {row['total_cpu_s_per_1000']:.3f}, "
        f"qmgr peak PSS {row['qmgr_peak_pss_kb'] / 1024:.1f} MiB, left {left}, "
        f"{n_warn} journal warnings, others busy {row['other_load_cores']:.2f} of {os.cpu_count()} CPUs; "
        f"first delivery after {row['first_sent_after_s'] or 0:.2f} s, "
        f"qmgr on CPU {qmgr_cpu_s or 0:.2f} s, waiting for one {qmgr_wait_s or 0:.2f} s, states " +
        " ".join(f"{k} {v:.0%}" for k, v in row["qmgr_states"].items()))
    for line in warnings[-5:]:
        log("  journal: " + line)
    return row


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--messages", type=int, default=10000)
    ap.add_argument("--sessions", type=int, default=10, help="smtp-source sessions for the fill")
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--interval", type=float, default=0.05, help="seconds between process samples")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    args.recipient = RECIPIENT
    args.reuse = True   # the fill is not measured: fewer connections, less time
    # Every message to a recipient of its own (smtp-source -N), as in real mail: Postfix's qmgr keeps
    # the last answer of trivial-rewrite and would not ask again for a recipient repeated.
    args.numbered_recipients = True

    if CGROUP2 is None:
        sys.exit("drain: no cgroup2 hierarchy: cannot account CPU per unit")
    postbus, postfix = PostbusDrain(args), PostfixDrain(args)
    rows = []
    try:
        postbus.setup()
        postfix.setup()
        for rnd in range(args.rounds):
            order = (postbus, postfix) if rnd % 2 == 0 else (postfix, postbus)
            for server in order:
                row = drain(server, args, args.messages)
                row["round"] = rnd + 1
                rows.append(row)
    finally:
        postfix.teardown()
        with open(args.out, "w") as f:
            json.dump({"mode": "scheduler", "rows": rows, "messages": args.messages, "size": args.size,
                       "fill_sessions": args.sessions, "rounds": args.rounds,
                       "bounce_installed": postbus.__dict__.get("bounce_installed")}, f, indent=1)


if __name__ == "__main__":
    main()
