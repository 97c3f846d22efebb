#!/usr/bin/python3
"""queue_list.py: how fast org.postbus.Queue1 lists a large queue, and what qmgr's index costs.

Runs as root in a test container with the build installed, through the integration harness:

    sudo tests/integration/run-test build bench/queue_list.py

run-test passes no arguments (and a clean environment): it measures 20,000 and 100,000 messages; run
by hand inside a container, --counts, --rounds and --json apply. For each count: qmgr is stopped,
COUNT queue files of one recipient each are written straight into deferred/ with a retry time a
day away (so nothing moves while we measure), qmgr is started and timed until
it answers on the bus (it reads the files into its index afterwards, at idle priority; the first
ListMessages waits for that), then ListMessages, SelectMessages({}) and a filtered SelectMessages are
timed over python3-dbus (median of --rounds), and ListMessages through busctl (its JSON output) and
`postqueue -j` if a postbus postqueue is installed.
"ListMessages_raw" is the call alone (python3-dbus's low-level send, the reply not turned into Python
objects): qmgr's work, the bus daemon's and libdbus's parsing. qmgr's memory is its PSS (smaps_rollup)
and RSS after all that.

Postfix (when installed): a private instance (bench/measure.py's, with a showq service) is filled to the
same counts over SMTP by smtp-source, its cleanup filing every message into hold (as the acceptance
benchmark does, so nothing is delivered), and `postqueue -c ETC -j` is timed (Postfix keeps no
index: its showq reads every queue file on each listing, so there is no standing memory to compare). The figures print as a table and, with --json FILE,
as JSON.
"""

import argparse
import json
import os
import pwd
import random
import statistics
import subprocess
import sys
import time

import dbus

import measure

SPOOL = '/var/spool/postbus'
QMGR = 'postbus-qmgr.service'
NAME, PATH, IFACE = 'org.postbus.Queue1', '/org/postbus/Queue1', 'org.postbus.Queue1'


def record(kind, data=b''):
    return kind + len(data).to_bytes(4, 'big') + data


def queue_file(arrival_usec, sender, recipient, body):
    out = [record(b'P', b'postbus-queue-1'), record(b'T', str(arrival_usec).encode()),
           record(b'A', b'protocol=ESMTP'), record(b'S', sender.encode()), record(b'R', recipient.encode()),
           record(b'M')]
    out += [record(b'C', line) for line in body]
    out.append(record(b'E'))
    return b''.join(out)


def fill(count, uid, gid):
    """COUNT deferred messages, IDs in arrival order, due in a day."""
    deferred = os.path.join(SPOOL, 'deferred')
    base = int(time.time()) - count // 4096 - 3600
    later = time.time() + 86400
    body = [b'From: bench@example.org', b'To: someone', b'Subject: queue bench', b'',
            b'x' * 400]
    for i in range(count):
        sec, usec = base + i // 4096, (i % 4096) * 200
        qid = f'{sec:08X}{usec:05X}{random.randrange(1 << 28):07X}'
        path = os.path.join(deferred, qid)
        data = queue_file(sec * 10**6 + usec, f'sender{i % 97}@example.org',
                          f'user{i}@dest{i % 50}.example', body)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, data)
        os.fchown(fd, uid, gid)
        os.close(fd)
        os.utime(path, (later, later))


def empty_queue():
    for q in ('incoming', 'active', 'deferred', 'hold', 'corrupt'):
        d = os.path.join(SPOOL, q)
        for n in os.listdir(d):
            os.unlink(os.path.join(d, n))


def qmgr_memory():
    pid = subprocess.run(['systemctl', 'show', '-P', 'MainPID', QMGR], capture_output=True, text=True).stdout.strip()
    pss = rss = 0
    with open(f'/proc/{pid}/smaps_rollup') as f:
        for line in f:
            if line.startswith('Pss:'):
                pss = int(line.split()[1])
            elif line.startswith('Rss:'):
                rss = int(line.split()[1])
    return pss / 1024, rss / 1024


def run_quiet(cmd):
    """Runs cmd with its output thrown away; returns its exit status."""
    return subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode


def timed(fn, rounds):
    times, result = [], None
    for _ in range(rounds):
        t = time.monotonic()
        result = fn()
        times.append(time.monotonic() - t)
    return statistics.median(times), result


def wait_ready(timeout=600):
    t = time.monotonic()
    while time.monotonic() - t < timeout:
        p = subprocess.run(['busctl', '--system', 'get-property', NAME, PATH, IFACE, 'Deferred'],
                           capture_output=True, text=True)
        if p.returncode == 0:
            return time.monotonic() - t
        time.sleep(0.05)
    raise SystemExit('qmgr did not come up')


def ours(program):
    """The path of a postbus postqueue, or None (Postfix's may be installed too)."""
    for d in ('/usr/local/sbin', '/usr/sbin', '/usr/local/bin', '/usr/bin'):
        p = os.path.join(d, program)
        if os.path.exists(p):
            try:
                if b'postbus' in open(p, 'rb').read():
                    return p
            except OSError:
                pass
    return None


def measure_postbus(count, rounds):
    pw = pwd.getpwnam('postbus')
    subprocess.run(['systemctl', 'stop', QMGR], check=True)
    empty_queue()
    t = time.monotonic()
    fill(count, pw.pw_uid, pw.pw_gid)
    fill_s = time.monotonic() - t
    subprocess.run(['sync'], check=True)
    subprocess.run(['sh', '-c', 'echo 3 > /proc/sys/vm/drop_caches'], check=False)
    t = time.monotonic()
    subprocess.run(['systemctl', 'start', QMGR], check=True)
    start_s = (time.monotonic() - t) + wait_ready()

    q = dbus.Interface(dbus.SystemBus().get_object(NAME, PATH), IFACE)
    res = {'count': count, 'fill_s': round(fill_s, 2), 'qmgr_start_s': round(start_s, 3)}
    conn = dbus.SystemBus()

    def raw():
        msg = dbus.lowlevel.MethodCallMessage(NAME, PATH, IFACE, 'ListMessages')
        msg.append('', signature='s')
        return conn.send_message_with_reply_and_block(msg, 600)
    s, _ = timed(raw, 1)     # the first call waits for the start-up read of the index to finish
    res['first_ListMessages_raw_s'] = round(s, 3)
    s, _ = timed(raw, rounds)
    res['ListMessages_raw_s'] = round(s, 3)
    s, listed = timed(lambda: q.ListMessages('', timeout=600), rounds)
    assert len(listed) == count, (len(listed), count)
    res['ListMessages_python_s'] = round(s, 3)
    s, sel = timed(lambda: q.SelectMessages({}, timeout=600), rounds)
    assert len(sel) == count
    res['SelectMessages_all_s'] = round(s, 3)
    s, sel = timed(lambda: q.SelectMessages({'destination': 'dest7.example', 'sender': 'sender3@example.org'},
                                            timeout=600), rounds)
    res['SelectMessages_filtered_s'] = round(s, 3)
    res['SelectMessages_filtered_n'] = len(sel)
    s, rc = timed(lambda: run_quiet(['busctl', '--system', '--json=short', '--timeout=600', 'call', NAME, PATH,
                                     IFACE, 'ListMessages', 's', '']), rounds)
    assert rc == 0
    res['busctl_ListMessages_s'] = round(s, 3)
    pq = ours('postqueue')
    if pq:
        s, p = timed(lambda: subprocess.run([pq, '-j'], capture_output=True), rounds)
        res['postqueue_j_s'] = round(s, 3) if p.returncode == 0 else None
        res['postqueue_j_lines'] = p.stdout.count(b'\n')
    res['qmgr_pss_mib'], res['qmgr_rss_mib'] = (round(x, 1) for x in qmgr_memory())

    subprocess.run(['systemctl', 'stop', QMGR], check=True)
    empty_queue()
    subprocess.run(['systemctl', 'start', QMGR], check=True)
    return res


def postfix_measure(counts, rounds):
    """postqueue -j of a Postfix instance holding each count of messages."""
    work = '/var/tmp/queue-bench'
    os.makedirs(work, exist_ok=True)
    args = argparse.Namespace(work=work, size=400, recipient='someone@example.org', reuse=True)
    pf = measure.Postfix(args)
    pf.setup()
    pf.write_master_cf(extra='showq     unix  n - n - - showq\npickup    unix  n - n 60 1 pickup\n')
    pf.start()
    results, have = [], 0
    try:
        for count in counts:
            t = time.monotonic()
            while have < count:
                n = min(count - have, 10000)
                measure.smtp_source(args, pf.port, 10, n)
                have += n
            fill_s = time.monotonic() - t
            queued = sum(len(files) for _, _, files in os.walk(os.path.join(pf.queue, 'hold')))
            times = []
            for _ in range(rounds):
                t = time.monotonic()
                run_quiet(['postqueue', '-c', pf.etc, '-j'])
                times.append(time.monotonic() - t)
            lines = subprocess.run(['postqueue', '-c', pf.etc, '-j'], capture_output=True).stdout.count(b'\n')
            results.append({'count': count, 'postfix_fill_s': round(fill_s, 1), 'postfix_queued': queued,
                            'postfix_postqueue_j_s': round(statistics.median(times), 3),
                            'postfix_postqueue_j_lines': lines})
    finally:
        pf.teardown()
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--counts', default='20000,100000')
    ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--json')
    ap.add_argument('-v', action='store_true', help=argparse.SUPPRESS)     # from run-test
    args = ap.parse_args()
    counts = [int(c) for c in args.counts.split(',')]
    results = [measure_postbus(c, args.rounds) for c in counts]
    print(json.dumps(results), flush=True)
    if os.path.exists('/usr/sbin/postfix') and os.path.exists(measure.SMTP_SOURCE):
        for r, pf in zip(results, postfix_measure(counts, args.rounds)):
            r.update(pf)
    keys = [k for k in results[-1] if k != 'count']
    print('messages'.ljust(28) + ''.join(f'{r["count"]:>12}' for r in results))
    for k in keys:
        print(k.ljust(28) + ''.join(f'{str(r.get(k)):>12}' for r in results))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=1)
    print(json.dumps(results))


if __name__ == '__main__':
    main()
