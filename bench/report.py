#!/usr/bin/python3
"""report.py RESULTS.json: prints bench/measure.py's figures (or bench/drain.py's, for
'bench/run --scheduler') as a table and a verdict."""

import json
import statistics
import sys


def main():
    with open(sys.argv[1]) as f:
        res = json.load(f)
    rows = res["rows"]
    if not rows:
        sys.exit("report: no measurements")
    if res.get("mode") == "scheduler":
        report_scheduler(res)
        return

    # The median over rounds of each (server, sessions).
    groups = {}
    for r in rows:
        groups.setdefault((r["sessions"], r["server"]), []).append(r)
    keys = ("msgs_per_s", "cpu_s_per_1000", "peak_rss_kb", "peak_pss_kb", "max_process_hwm_kb",
            "peak_processes", "client_cpu_s", "wall_s", "disk_probe_ms", "other_load_cores",
            "journald_cpu_s_per_1000")
    med = {k: {f: statistics.median(r[f] for r in g) for f in keys} | {"messages": g[0]["messages"], "n": len(g)}
           for k, g in groups.items()}

    print()
    print("Acceptance into a durable queue: %d-byte bodies, %s; %s." % (
        res["size"],
        "all messages of a session over one connection" if res["reuse"] else "one connection per message",
        "median of %d rounds" % res["rounds"] if res["rounds"] > 1 else "one round"))
    units = sorted({u.replace("postbus-", "").replace(".service", "") for r in rows if r["server"] == "postbus"
                    for u in r.get("units", [])})
    print("postbus: %s; qmgr stopped (mail stays in incoming)." % (" + ".join(units) or "smtpd + cleanup"))
    print("Postfix: master + smtpd + cleanup + qmgr + trivial-rewrite + anvil ..., mail filed in hold.")
    print()
    head = ("server", "sessions", "messages", "msg/s", "CPU s/1000 msg", "peak RSS MiB", "peak PSS MiB",
            "max proc RSS MiB", "procs", "disk ms", "others")
    fmt = "%-8s %8s %8s %9s %14s %12s %12s %16s %5s %7s %6s"
    print(fmt % head)
    print(fmt % tuple("-" * len(h) for h in head))
    sessions = sorted({k[0] for k in med})
    for s in sessions:
        for server in ("postbus", "Postfix"):
            m = med.get((s, server))
            if not m:
                continue
            print(fmt % (server, s, m["messages"], "%.1f" % m["msgs_per_s"], "%.3f" % m["cpu_s_per_1000"],
                         "%.1f" % (m["peak_rss_kb"] / 1024), "%.1f" % (m["peak_pss_kb"] / 1024),
                         "%.1f" % (m["max_process_hwm_kb"] / 1024), m["peak_processes"],
                         "%.2f" % m["disk_probe_ms"], "%.2f" % m["other_load_cores"]))
    if res["rounds"] > 1:
        print()
        print("Each measurement, in the order run (the table above has the medians):")
        for r in rows:
            print("  round %d  %-8s %3d sessions: %7.1f msg/s  %.3f CPU s/1000  disk %5.2f ms  others %.2f" % (
                r["round"], r["server"], r["sessions"], r["msgs_per_s"], r["cpu_s_per_1000"],
                r["disk_probe_ms"], r["other_load_cores"]))
        print()
    print("(disk ms: a create + 4 KiB write + fsync + rename + directory fsync on the queues' disk just")
    print(" before the measurement, median of 20 (wall time: waiting for a CPU counts); it bounds both rates;")
    print(" others: CPUs kept busy by everything but the server, the client, journald and the bench.)")
    print()
    faster = 0
    compared = 0
    for s in sessions:
        a, b = med.get((s, "postbus")), med.get((s, "Postfix"))
        if not a or not b:
            continue
        compared += 1
        rate = a["msgs_per_s"] / b["msgs_per_s"]
        cpu = a["cpu_s_per_1000"] / b["cpu_s_per_1000"]
        mem = a["peak_pss_kb"] / b["peak_pss_kb"] if b["peak_pss_kb"] else float("nan")
        faster += rate > 1
        print("%2d session%s: postbus %.1f msg/s vs Postfix %.1f msg/s (x%.2f); CPU per message x%.2f; "
              "peak PSS x%.2f" % (s, " " if s == 1 else "s", a["msgs_per_s"], b["msgs_per_s"], rate, cpu, mem))
    busy = sorted({r["sessions"] for r in rows if r["other_load_cores"] > 0.25})
    if busy:
        print("WARNING: other work kept more than a quarter of a CPU busy during the measurements at %s "
              "session(s): those figures say more about the machine than about the servers." %
              ", ".join(map(str, busy)))
    print("verdict: postbus accepts faster than Postfix at %d of %d session counts%s." % (
        faster, compared, "" if faster == compared else
        " (slower at %s)" % ", ".join(str(s) for s in sessions
                                      if (s, "postbus") in med and (s, "Postfix") in med
                                      and med[(s, "postbus")]["msgs_per_s"] <= med[(s, "Postfix")]["msgs_per_s"])))


PARTS = ("qmgr", "rewrite", "discard", "bounce", "master", "other")


def median_or_none(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def report_scheduler(res):
    """bench/drain.py's figures: one row per server, medians over the rounds."""
    rows = res["rows"]
    med = {}
    for server in ("postbus", "Postfix"):
        g = [r for r in rows if r["server"] == server]
        if not g:
            continue
        m = {k: statistics.median(r[k] for r in g) for k in (
            "drain_s", "msgs_per_s", "total_cpu_s_per_1000", "qmgr_peak_pss_kb", "peak_pss_kb",
            "peak_processes", "other_load_cores", "journald_cpu_s_per_1000", "fill_s")}
        m["parts"] = {p: median_or_none(r["cpu_s_per_1000"][p] for r in g) for p in PARTS}
        m["deferred"] = max(r["left"]["deferred"] for r in g)
        m["hold_corrupt"] = max(r["left"]["hold"] + r["left"]["corrupt"] for r in g)
        m["warnings"] = max(r["journal_warnings"] for r in g)
        med[server] = m

    print()
    print("Draining a queue of %d messages (one recipient each, all different, transport discard); %s." % (
        res["messages"], "median of %d rounds" % res["rounds"] if res["rounds"] > 1 else "one round"))
    print("postbus: qmgr discards itself (no delivery process), asking rewrite to resolve each recipient; "
          "bounce %s." % ("installed" if res.get("bounce_installed") else "not installed (column '-')"))
    print("Postfix: qmgr hands each message to a discard process (max_use 100), asking trivial-rewrite to "
          "resolve; master spawns them.")
    print()
    head = ("server", "msgs", "drain s", "msg/s", "qmgr", "rewrite", "discard", "bounce", "master", "other",
            "total", "qmgr PSS", "all PSS", "procs", "deferred", "others")
    fmt = "%-8s %6s %7s %7s %6s %7s %7s %6s %6s %6s %6s %8s %7s %5s %8s %6s"
    print(" " * 32 + "CPU s per 1000 messages" + " " * 25 + "peak MiB")
    print(fmt % head)
    print(fmt % tuple("-" * len(h) for h in head))

    def cpu(v):
        return "-" if v is None else "%.3f" % v

    for server, m in med.items():
        print(fmt % (server, res["messages"], "%.2f" % m["drain_s"], "%.0f" % m["msgs_per_s"],
                     *(cpu(m["parts"][p]) for p in PARTS), "%.3f" % m["total_cpu_s_per_1000"],
                     "%.1f" % (m["qmgr_peak_pss_kb"] / 1024), "%.1f" % (m["peak_pss_kb"] / 1024),
                     m["peak_processes"], m["deferred"], "%.2f" % m["other_load_cores"]))
    if res["rounds"] > 1:
        print()
        print("Each drain, in the order run (the table above has the medians):")
        for r in rows:
            print("  round %d  %-8s %6.0f msg/s  qmgr %.3f  total %.3f CPU s/1000  others %.2f" % (
                r["round"], r["server"], r["msgs_per_s"], r["cpu_s_per_1000"]["qmgr"],
                r["total_cpu_s_per_1000"], r["other_load_cores"]))
    print()
    print("qmgr's time, median of the rounds (its whole life is the drain; states sampled every 20 ms):")
    for server in med:
        g = [r for r in rows if r["server"] == server and r.get("qmgr_on_cpu_s") is not None]
        if not g:
            continue
        states = {}
        for r in g:
            for k, v in r["qmgr_states"].items():
                states.setdefault(k, []).append(v)
        print("  %-8s running %.2f s after the release, first delivery %.2f s after it; on a CPU %.2f s, "
              "runnable but waiting for one %.2f s, of %.2f s; %s" % (
            server, statistics.median(r["qmgr_started_after_s"] for r in g),
            statistics.median(r["first_sent_after_s"] for r in g),
            statistics.median(r["qmgr_on_cpu_s"] for r in g),
            statistics.median(r["qmgr_waiting_for_cpu_s"] for r in g),
            statistics.median(r["drain_s"] for r in g),
            ", ".join("%s %.0f%%" % ({"R": "running", "S": "sleeping", "D": "in disk wait"}.get(k, k),
                                     100 * statistics.median(v)) for k, v in sorted(states.items()))))
    print()
    print("(drain: from starting the queue manager until incoming and active are empty; '-': no such part;")
    print(" rewrite: postbus-rewrite / trivial-rewrite; total: every postbus unit / the whole Postfix unit;")
    print(" deferred: messages left in the deferred queue; others: CPUs kept busy by everything else.)")
    for r in rows:
        for note in r["notes"]:
            print("note: %s round %d: %s" % (r["server"], r["round"], note))
        if r["left"]["deferred"] or r["left"]["hold"] or r["left"]["corrupt"]:
            print("WARNING: %s round %d left %s, with %d journal warnings and %d deferrals; the last:" % (
                r["server"], r["round"], r["left"], r["journal_warnings"], r["journal_deferred"]))
            for line in r["journal_warning_lines"][-6:] + r["journal_deferred_lines"][-3:]:
                print("    " + line)
        elif r["journal_warnings"]:
            print("%s round %d: %d warnings in the journal during the drain, the last:" % (
                r["server"], r["round"], r["journal_warnings"]))
            for line in r["journal_warning_lines"][-3:]:
                print("    " + line)
    print()
    a, b = med.get("postbus"), med.get("Postfix")
    if a and b:
        def ratio(x, y):
            return "x%.2f" % (x / y) if x is not None and y else "n/a"
        print("postbus drains at %.0f msg/s vs Postfix %.0f (%s); qmgr CPU per message %s, all of it %s; "
              "qmgr peak PSS %s" % (a["msgs_per_s"], b["msgs_per_s"], ratio(a["msgs_per_s"], b["msgs_per_s"]),
                                    ratio(a["parts"]["qmgr"], b["parts"]["qmgr"]),
                                    ratio(a["total_cpu_s_per_1000"], b["total_cpu_s_per_1000"]),
                                    ratio(a["qmgr_peak_pss_kb"], b["qmgr_peak_pss_kb"])))
    busy = sorted({r["server"] for r in rows if r["other_load_cores"] > 0.25})
    if busy:
        print("WARNING: other work kept more than a quarter of a CPU busy during the drains of %s: those "
              "figures say more about the machine than about the servers." % ", ".join(busy))


if __name__ == "__main__":
    main()
