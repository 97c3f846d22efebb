"""qmgr's scheduling through the real daemons: transports from master.cf and transport_maps (discard,
retry, unknown), the deferred queue's back-off growing with age and kept in the file across a restart,
defer_transports, a bad master.cf line, and local's per-user concurrency limit."""
import os
import time
import unittest

import postbus as pb

TRANSPORT = '/etc/postbus/transport'
MASTER_CF = '/etc/postbus/master.cf'


def deferred_due(qid):
    """The time a deferred message is due again (its file's modification time), or None."""
    try:
        return os.stat(os.path.join(pb.SPOOL, 'deferred', qid)).st_mtime
    except FileNotFoundError:
        return None


def write_transport(lines):
    with open(TRANSPORT, 'w') as f:
        f.write(''.join(line + '\n' for line in lines))
    pb.run('postbusctl', 'map', 'build', TRANSPORT)


class Qmgr(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        pb.add_user('alice')
        write_transport(['discard.test discard:dropped by policy',
                         'retry.test retry:4.4.1 try later',
                         'nowhere.test nosuch:',
                         'slowpoke.test slowpoke:'])
        pb.set_config(transport_maps=f'hash:{TRANSPORT}', minimal_backoff_time='2s',
                      maximal_backoff_time='60s', queue_run_delay='1s')

    def tearDown(self):
        if os.path.exists(MASTER_CF):
            os.unlink(MASTER_CF)
            pb.write_config({'defer_transports': ''})
            pb.restart_services()

    def test_discard(self):
        cursor = pb.journal_cursor()
        qid = pb.send('sender@example.org', 'someone@discard.test', 'Subject: d\n\nbody\n')
        pb.wait_until(lambda: any(m == f'{qid}: removed' for m in pb.journal_messages(QUEUE_ID=qid, since=cursor)),
                      what=f'{qid} removed')
        recs = [r for r in pb.journal(QUEUE_ID=qid, since=cursor) if r.get('DELIVERY_STATUS')]
        self.assertEqual(len(recs), 1, recs)
        self.assertEqual(recs[0]['DELIVERY_STATUS'], 'sent')
        self.assertRegex(recs[0]['MESSAGE'], rf'^{qid}: to=<someone@discard\.test>, relay=none, delay=[0-9.]+, '
                                             r'delays=[0-9.]+/[0-9.]+/0/[0-9.]+, dsn=2\.0\.0, '
                                             r'status=sent \(dropped by policy\)$')

    def test_unknown_transport_defers(self):
        cursor = pb.journal_cursor()
        qid = pb.send('sender@example.org', 'x@nowhere.test', 'Subject: n\n\nbody\n')
        pb.wait_until(lambda: deferred_due(qid), what=f'{qid} deferred')
        recs = [r for r in pb.journal(QUEUE_ID=qid, since=cursor) if r.get('DELIVERY_STATUS')]
        self.assertEqual(recs[0]['DELIVERY_STATUS'], 'deferred')
        self.assertIn('no transport nosuch in master.cf', recs[0]['MESSAGE'])

    def test_retry_backoff_grows_with_age(self):
        cursor = pb.journal_cursor()
        qid = pb.send('sender@example.org', 'x@retry.test', 'Subject: r\n\nbody\n')
        # Each attempt moves the file to deferred with a new due time; the wait grows with the
        # message's age (at least minimal_backoff_time, 2 s here).
        waits, last = [], None
        deadline = time.time() + 60
        while len(waits) < 4 and time.time() < deadline:
            due = deferred_due(qid)
            if due is not None and due != last:
                waits.append(due - time.time())
                last = due
            time.sleep(0.05)
        self.assertEqual(len(waits), 4, waits)
        self.assertTrue(all(w > 0.5 for w in waits), waits)
        self.assertGreater(waits[-1], waits[0] + 1.5, waits)
        recs = [r for r in pb.journal(QUEUE_ID=qid, since=cursor) if r.get('DELIVERY_STATUS') == 'deferred']
        self.assertGreaterEqual(len(recs), 4)
        self.assertEqual(recs[0]['DSN'], '4.4.1')
        self.assertIn('status=deferred (try later)', recs[0]['MESSAGE'])

    def test_deferred_schedule_survives_restart(self):
        pb.write_config({'minimal_backoff_time': '3000s', 'maximal_backoff_time': '4000s'})
        pb.restart_services()
        try:
            n = 5000
            with pb.connect() as smtp:
                smtp.ehlo()
                ids = []
                for i in range(n):
                    smtp.mail('sender@example.org')
                    smtp.rcpt(f'u{i}@retry.test')
                    code, text = smtp.data(f'Subject: {i}\n\nbody\n'.encode())
                    self.assertEqual(code, 250, text)
                    ids.append(pb.queue_id_from_text(text.decode()))
            pb.wait_until(lambda: sum(deferred_due(q) is not None for q in ids[-50:]) == 50, timeout=120,
                          what='the last messages deferred')
            pb.wait_until(lambda: len(os.listdir(os.path.join(pb.SPOOL, 'deferred'))) >= n, timeout=120,
                          what=f'{n} messages deferred')
            before = {q: deferred_due(q) for q in ids}
            self.assertTrue(all(v is not None and v > time.time() + 2000 for v in before.values()))
            pb.systemctl('restart', pb.QMGR_UNIT)
            time.sleep(3)       # a few scans of queue_run_delay = 1s
            after = {q: deferred_due(q) for q in ids}
            self.assertEqual(before, after)
            self.assertGreaterEqual(pb.busctl_get('Deferred'), n)     # with earlier tests' mail
        finally:
            for q in os.listdir(os.path.join(pb.SPOOL, 'deferred')):
                os.unlink(os.path.join(pb.SPOOL, 'deferred', q))
            pb.write_config({'minimal_backoff_time': '2s', 'maximal_backoff_time': '60s'})
            pb.restart_services()

    def test_defer_transports(self):
        with open(MASTER_CF, 'w') as f:
            f.write('slowpoke unix - n n - - smtp\n')
        pb.write_config({'defer_transports': 'slowpoke'})
        pb.restart_services()
        cursor = pb.journal_cursor()
        qid = pb.send('sender@example.org', 'x@slowpoke.test', 'Subject: s\n\nbody\n')
        pb.wait_until(lambda: deferred_due(qid), what=f'{qid} deferred')
        recs = [r for r in pb.journal(QUEUE_ID=qid, since=cursor) if r.get('DELIVERY_STATUS')]
        self.assertEqual(recs[0]['DSN'], '4.3.2', recs)
        self.assertIn('deferred transport', recs[0]['MESSAGE'])

    def test_bad_master_cf_stops_qmgr(self):
        with open(MASTER_CF, 'w') as f:
            f.write('# a comment\nslowpoke unix - n n - - pipe flags=R user=nobody\n')
        cursor = pb.journal_cursor()
        pb.systemctl('restart', pb.QMGR_UNIT, check=False)
        pb.wait_until(lambda: pb.unit_property(pb.QMGR_UNIT, 'ActiveState') in ('failed', 'inactive'),
                      what='qmgr stopped')
        msgs = pb.journal_messages('_SYSTEMD_UNIT=postbus-qmgr.service', since=cursor)
        self.assertTrue(any(f'{MASTER_CF}:2: pipe service slowpoke needs argv=' in (m or '') for m in msgs), msgs)
        self.assertEqual(pb.unit_property(pb.QMGR_UNIT, 'ExecMainStatus'), '78')   # EX_CONFIG: no restart

    def test_local_per_user_concurrency(self):
        # A slow command in alice's .forward logs when each delivery starts and ends; qmgr must never
        # run more than local_destination_concurrency_limit (2) deliveries to her at once.
        pw = pb.add_user('carol')
        log = os.path.join(pw.pw_dir, 'times')
        script = os.path.join(pw.pw_dir, 'slow')
        with open(script, 'w') as f:
            f.write(f'#!/bin/sh\necho "start $(date +%s.%N)" >> {log}\nsleep 1\n'
                    f'echo "end $(date +%s.%N)" >> {log}\ncat > /dev/null\n')
        os.chmod(script, 0o755)
        with open(os.path.join(pw.pw_dir, '.forward'), 'w') as f:
            f.write(f'"|{script}"\n')
        for p in (script, os.path.join(pw.pw_dir, '.forward')):
            os.chown(p, pw.pw_uid, pw.pw_gid)
        n = 6
        for i in range(n):
            pb.send('sender@example.org', 'carol@localhost', f'Subject: {i}\n\nbody\n')
        pb.wait_until(lambda: os.path.exists(log) and open(log).read().count('end') == n, timeout=60,
                      what='all deliveries to carol')
        events = []
        for line in open(log):
            kind, t = line.split()
            events.append((float(t), 1 if kind == 'start' else -1))
        events.sort(key=lambda e: (e[0], e[1]))
        cur = peak = 0
        for _, d in events:
            cur += d
            peak = max(peak, cur)
        self.assertEqual(peak, 2, events)


if __name__ == '__main__':
    unittest.main()
