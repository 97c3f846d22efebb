#!/usr/bin/python3
"""report.py RESULTS.json: prints bench/measure.py's figures as a table and a verdict."""

import json
import statistics
import sys


def main():
    with open(sys.argv[1]) as f:
        res = json.load(f)
    rows = res["rows"]
    if not rows:
        sys.exit("report: no measurements")

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


if __name__ == "__main__":
    main()
