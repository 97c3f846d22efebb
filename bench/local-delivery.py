"""bench/local-delivery.py: end-to-end local delivery inside the test container (run it with
tests/integration/run-test BUILDDIR bench/local-delivery.py): SMTP in, through the queue, into a local
user's mbox and then Maildir; prints msg/s and CPU seconds per 1000 messages for each postbus unit, read
from the units' cgroup2 cpu.stat. The container's root is in memory, so fsync costs nothing here: the
figures are CPU figures first; msg/s is an upper bound for a real disk."""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
import postbus as pb  # noqa: E402

MESSAGES = int(os.environ.get("BENCH_MESSAGES", "1000"))
SESSIONS = int(os.environ.get("BENCH_SESSIONS", "10"))


def unit_cpu():
    """usage_usec of every running postbus service, by unit."""
    listed = pb.systemctl("list-units", "--type=service", "--state=active", "--plain", "--no-legend",
                          "postbus-*.service").stdout
    out = {}
    for line in listed.splitlines():
        unit = line.split()[0]
        pid = int(pb.unit_property(unit, "MainPID"))
        if pid <= 0:
            continue
        with open(f"/proc/{pid}/cgroup") as f:
            path = next(x.split("::", 1)[1].strip() for x in f if x.startswith("0::"))
        for root in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup"):
            try:
                with open(f"{root}{path}/cpu.stat") as f:
                    out[unit] = int(next(x.split()[1] for x in f if x.startswith("usage_usec")))
                break
            except FileNotFoundError:
                continue
    return out


def mbox_count():
    try:
        with open("/var/mail/bench", "rb") as f:
            return f.read().count(b"\nSubject: bench ")
    except FileNotFoundError:
        return 0


def maildir_count():
    return len(os.listdir(os.path.expanduser("~bench/Maildir/new")))


def run(label, count):
    first = count()
    pb.send("bench@example.org", "bench@localhost", "Subject: bench warm-up\n\nx\n")
    pb.wait_until(lambda: count() > first, what="the warm-up message")
    before = count()
    cpu0 = unit_cpu()
    t0 = time.monotonic()
    body = "Subject: bench {}\n\n" + "x" * 70 + "\n" * 1 + ("y" * 70 + "\n") * 13

    def session(k):
        for i in range(k, MESSAGES, SESSIONS):
            pb.send("bench@example.org", "bench@localhost", body.format(i))

    threads = [threading.Thread(target=session, args=(k,)) for k in range(SESSIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    pb.wait_until(lambda: count() - before >= MESSAGES, timeout=600, interval=0.5,
                  what=f"{MESSAGES} messages delivered")
    wall = time.monotonic() - t0
    cpu1 = unit_cpu()
    print(f"== {label}: {MESSAGES} messages of 1 KB, {SESSIONS} sessions: {MESSAGES / wall:.0f} msg/s end to end")
    total = 0
    for unit in sorted(cpu1):
        used = (cpu1[unit] - cpu0.get(unit, 0)) / 1e6
        total += used
        print(f"   {unit:32} CPU s/1000 msg {used * 1000 / MESSAGES:7.2f}")
    print(f"   {'total':32} CPU s/1000 msg {total * 1000 / MESSAGES:7.2f}")


def main():
    pb.add_user("bench", maildir=True)
    run("mbox in /var/mail", mbox_count)
    pb.set_config(home_mailbox="Maildir/")
    run("Maildir in the home directory", maildir_count)


if __name__ == "__main__":
    main()
