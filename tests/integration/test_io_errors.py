"""I/O errors: strace attached to the running cleanup makes every fsync, or every write, fail with EIO. A
message over SMTP gets no 250 (451 4.3.0), the failure is journaled with its errno, and no queue file is
left in incoming; a message from sendmail waits in the maildrop and goes out once the disk behaves again.
Nothing is delivered twice, and cleanup itself neither dies nor restarts."""
import contextlib
import errno
import os
import signal
import smtplib
import subprocess
import unittest

import postbus as pb

SPOOL = pb.SPOOL
CLEANUP = 'postbus-cleanup.service'
STRACE_LOG = '/tmp/strace-cleanup.log'
# strace skips an injected call by turning it into syscall -1, which the kernel then shows to the unit's
# seccomp filter: SystemCallFilter= (an allow list) would kill cleanup with SIGSYS. For this test only, the
# filter goes; everything else of the sandbox stays.
DROP_IN_DIR = '/run/systemd/system/postbus-cleanup.service.d'


def delivered(marker):
    return sum(marker in m for m in pb.mbox_messages('ivan'))


def queue(name):
    return os.listdir(os.path.join(SPOOL, name))


def traced(pid):
    """Whether every thread of pid has a tracer."""
    try:
        tasks = os.listdir(f'/proc/{pid}/task')
        for t in tasks:
            with open(f'/proc/{pid}/task/{t}/status', encoding='ascii') as f:
                if not any(line.startswith('TracerPid:') and line.split()[1] != '0' for line in f):
                    return False
    except FileNotFoundError:
        return False
    return bool(tasks)


@contextlib.contextmanager
def failing(pid, calls):
    """Makes the system calls calls (e.g. 'fsync,fdatasync') of every thread of pid fail with EIO while in the
    block: strace attached with fault injection, detached at the end (pid goes on untraced)."""
    strace = subprocess.Popen(['strace', '-f', '-qq', '-o', STRACE_LOG, '-e', f'trace={calls}',
                               '-e', f'inject={calls}:error=EIO', '-p', str(pid)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        pb.wait_until(lambda: traced(pid), what='strace attached to every thread of cleanup')
        yield
    finally:
        strace.send_signal(signal.SIGINT)
        strace.wait(timeout=30)


class IoErrors(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not pb.have('strace'):
            raise unittest.SkipTest('strace is not installed (tools/deps.sh)')
        pb.add_user('ivan')
        os.makedirs(DROP_IN_DIR, exist_ok=True)
        with open(os.path.join(DROP_IN_DIR, 'strace.conf'), 'w', encoding='ascii') as f:
            f.write('[Service]\nSystemCallFilter=\n')
        pb.systemctl('daemon-reload')
        pb.set_config(max_idle='600s')

    def test_fsync_eio(self):
        # cleanup runs (a first message is taken and delivered), then qmgr stays away: incoming shows all.
        pb.send('a@example.test', ['ivan@localhost'], 'Subject: before\n\nbefore\n')
        pb.wait_until(lambda: delivered('before') == 1, what='the first message delivered')
        pb.systemctl('stop', 'postbus-qmgr.socket', 'postbus-qmgr.service')
        pid = int(pb.unit_property(CLEANUP, 'MainPID'))
        self.assertNotEqual(pid, 0)
        restarts = pb.unit_property(CLEANUP, 'NRestarts')
        self.assertEqual(queue('incoming'), [])

        cursor = pb.journal_cursor()
        with failing(pid, 'fsync,fdatasync'):
            with self.assertRaises(smtplib.SMTPDataError) as e:
                pb.send('a@example.test', ['ivan@localhost'], 'Subject: io-fail\n\nio-fail\n')
            reply = f'{e.exception.smtp_code} {e.exception.smtp_error.decode()}'
            print('observed at DATA:', reply)
            self.assertEqual(reply, '451 4.3.0 Error: queue file write error')
            self.assertEqual(queue('incoming'), [])

            # sendmail's message is in the maildrop; pickup cannot hand it on and keeps it.
            p = pb.run_process('sendmail', '-f', 'b@example.test', 'ivan@localhost', check=False,
                               input='Subject: io-wait\n\nio-wait\n', user='nobody')
            self.assertEqual(p.returncode, 0, p.stderr)
            pb.wait_until(lambda: any('must wait' in m for m in pb.journal_messages(POSTBUS_ROLE='pickup',
                                                                                    since=cursor)),
                          what='pickup waiting')
            self.assertEqual(len(queue('maildrop')), 1)
            self.assertEqual(queue('incoming'), [])

        recs = pb.journal(POSTBUS_ROLE='cleanup', since=cursor)
        failed = [r for r in recs if 'failed to write the queue file' in r['MESSAGE']]
        self.assertTrue(failed, [r['MESSAGE'] for r in recs])
        self.assertTrue(all(r.get('ERRNO') == str(errno.EIO) and 'Input/output error' in r['MESSAGE']
                            for r in failed), [r['MESSAGE'] for r in failed])
        print('observed in the journal:', *[f"{r['MESSAGE']} ERRNO={r['ERRNO']}" for r in failed], sep='\n  ')
        with open(STRACE_LOG, encoding='utf-8') as f:
            log = f.read()
        self.assertIn('EIO (Input/output error) (INJECTED)', log)

        # cleanup lived through it, the same process
        self.assertEqual(int(pb.unit_property(CLEANUP, 'MainPID')), pid)
        self.assertEqual(pb.unit_property(CLEANUP, 'NRestarts'), restarts)

        # The disk behaves again: the waiting message goes out, new mail is taken; the refused one never was.
        pb.systemctl('start', 'postbus-qmgr.socket', 'postbus-qmgr.service')
        pb.send('a@example.test', ['ivan@localhost'], 'Subject: after\n\nafter\n')
        pb.wait_until(lambda: delivered('after') == 1, what='new mail delivered')
        pb.wait_until(lambda: delivered('io-wait') == 1, timeout=90, what='the maildrop message delivered')
        self.assertEqual(queue('maildrop'), [])
        self.assertEqual(delivered('io-fail'), 0)
        self.assertEqual(delivered('before'), 1)


    def test_write_eio(self):
        # Without sync threads, cleanup's only write() calls are the queue file's (the bus and the journal
        # use sendmsg/writev; the threads' eventfd would take write() too).
        pb.set_config(cleanup_sync_threads='0')
        pb.send('a@example.test', ['ivan@localhost'], 'Subject: before-write\n\nbefore-write\n')
        pb.wait_until(lambda: delivered('before-write') == 1, what='the first message delivered')
        pid = int(pb.unit_property(CLEANUP, 'MainPID'))
        restarts = pb.unit_property(CLEANUP, 'NRestarts')
        cursor = pb.journal_cursor()
        with failing(pid, 'write'):
            with self.assertRaises(smtplib.SMTPDataError) as e:
                pb.send('a@example.test', ['ivan@localhost'], 'Subject: write-fail\n\nwrite-fail\n')
            reply = f'{e.exception.smtp_code} {e.exception.smtp_error.decode()}'
            print('observed at DATA:', reply)
            self.assertEqual(reply, '451 4.3.0 Error: queue file write error')
            self.assertFalse([f for f in queue('incoming') if f.endswith('.tmp')])
        recs = pb.journal(POSTBUS_ROLE='cleanup', since=cursor)
        failed = [r for r in recs if 'failed to write the queue file' in r['MESSAGE']]
        self.assertTrue(failed, [r['MESSAGE'] for r in recs])
        self.assertTrue(all(r.get('ERRNO') == str(errno.EIO) for r in failed), [r['MESSAGE'] for r in failed])
        print('observed in the journal:', *[f"{r['MESSAGE']} ERRNO={r['ERRNO']}" for r in failed], sep='\n  ')
        with open(STRACE_LOG, encoding='utf-8') as f:
            self.assertIn('EIO (Input/output error) (INJECTED)', f.read())
        self.assertEqual(int(pb.unit_property(CLEANUP, 'MainPID')), pid)
        self.assertEqual(pb.unit_property(CLEANUP, 'NRestarts'), restarts)
        pb.send('a@example.test', ['ivan@localhost'], 'Subject: after-write\n\nafter-write\n')
        pb.wait_until(lambda: delivered('after-write') == 1, what='new mail delivered')
        self.assertEqual(delivered('write-fail'), 0)

    def test_fsync_eio_after_rename(self):
        # With cleanup_directory_sync = no the file is renamed into incoming/ first and synced then: a failed
        # fsync takes the new name away again, and the message is refused, never delivered.
        pb.set_config(cleanup_directory_sync='no')
        try:
            pb.send('a@example.test', ['ivan@localhost'], 'Subject: before-rename\n\nbefore-rename\n')
            pb.wait_until(lambda: delivered('before-rename') == 1, what='the first message delivered')
            pb.systemctl('stop', 'postbus-qmgr.socket', 'postbus-qmgr.service')
            pid = int(pb.unit_property(CLEANUP, 'MainPID'))
            cursor = pb.journal_cursor()
            try:
                with failing(pid, 'fsync,fdatasync'):
                    with self.assertRaises(smtplib.SMTPDataError) as e:
                        pb.send('a@example.test', ['ivan@localhost'], 'Subject: renamed-fail\n\nrenamed-fail\n')
                    self.assertEqual(f'{e.exception.smtp_code} {e.exception.smtp_error.decode()}',
                                     '451 4.3.0 Error: queue file write error')
                    self.assertEqual(queue('incoming'), [])
            finally:
                pb.systemctl('start', 'postbus-qmgr.socket', 'postbus-qmgr.service')
            recs = pb.journal(POSTBUS_ROLE='cleanup', since=cursor)
            self.assertTrue(any('failed to write the queue file' in r['MESSAGE'] and r.get('ERRNO') == str(errno.EIO)
                                for r in recs), [r['MESSAGE'] for r in recs])
            pb.send('a@example.test', ['ivan@localhost'], 'Subject: after-rename\n\nafter-rename\n')
            pb.wait_until(lambda: delivered('after-rename') == 1, what='new mail delivered')
            self.assertEqual(delivered('renamed-fail'), 0)
        finally:
            pb.set_config(cleanup_directory_sync='auto')


if __name__ == '__main__':
    unittest.main()
