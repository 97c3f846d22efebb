"""Disk full: the spool on a small file system (a tmpfs of 8 MiB mounted over /var/spool/postbus). smtpd
refuses MAIL with 452 4.3.1 while free space is below 1.5 x message_size_limit or queue_minfree (and for a
SIZE= that would not fit), answers 452 4.3.1 at the end of DATA when cleanup's write runs out of space,
leaving nothing half-written in incoming; sendmail exits EX_TEMPFAIL (75); the messages accepted before are
all delivered once space returns, without anyone's help."""
import errno
import os
import smtplib
import unittest

import postbus as pb

SPOOL = pb.SPOOL
FILLER = os.path.join(SPOOL, 'filler')
LIMIT = 1000000                     # message_size_limit: smtpd wants 1.5 MB free
SIZE = 8 * 1024 * 1024
NO_STORAGE = '452 4.3.1 Insufficient system storage'


def free_bytes():
    st = os.statvfs(SPOOL)
    return st.f_bavail * st.f_frsize


def fill(leave):
    """Makes the filler file take all the space but about leave bytes; leave=0: until ENOSPC."""
    unfill()
    if leave > 0:
        with open(FILLER, 'wb') as f:
            os.posix_fallocate(f.fileno(), 0, max(free_bytes() - leave, 4096))
        return
    with open(FILLER, 'wb', buffering=0) as f:
        chunk = b'\0' * 65536
        try:
            while True:
                f.write(chunk)
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
    assert free_bytes() < 65536, free_bytes()


def unfill():
    if os.path.exists(FILLER):
        os.unlink(FILLER)


def mail_reply(sender='a@example.test', size=None):
    """The reply to MAIL FROM (with SIZE=size if given), as 'code text'."""
    with pb.connect() as smtp:
        smtp.ehlo()
        code, text = smtp.mail(sender, [f'SIZE={size}'] if size else [])
        return f'{code} {text.decode()}'


def smtpd_config(**params):
    """Changes main.cf for smtpd alone: its next connection starts it with the new values (qmgr stays away)."""
    pb.write_config(params)
    pb.systemctl('stop', 'postbus-smtpd.service')


def sendmail(marker):
    return pb.run_process('sendmail', '-f', 'b@example.test', 'dora@localhost', check=False,
                          input=f'Subject: {marker}\n\n{marker}\n', user='nobody')


def delivered(marker):
    return sum(marker in m for m in pb.mbox_messages('dora'))


class DiskFull(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        pb.add_user('dora')
        # Every role that holds the spool's directories open stops; the small file system goes over the
        # spool, and setup-in-container makes its directories and starts postbus again.
        pb.systemctl('stop', 'postbus.target', 'postbus-*.socket', 'postbus-*.path', 'postbus-*.service')
        pb.wait_until(lambda: not pb.systemctl('list-units', '--plain', '--no-legend', '--state=active,deactivating',
                                               'postbus-*').stdout.strip(), what='postbus stopped')
        pb.run('mount', '-t', 'tmpfs', '-o', f'size={SIZE},mode=0755', 'tmpfs', SPOOL)
        pb.run(os.path.join(os.environ['POSTBUS_SRCDIR'], 'tests', 'integration', 'setup-in-container'))
        pb.set_config(message_size_limit=str(LIMIT), queue_run_delay='2s', minimal_backoff_time='2s',
                      maximal_backoff_time='4s')

    def test_disk_full(self):
        cursor = pb.journal_cursor()
        # Accepted before the disk fills, held in incoming while qmgr is away.
        pb.systemctl('stop', 'postbus-qmgr.socket', 'postbus-qmgr.service')
        accepted = [pb.send('a@example.test', ['dora@localhost'], f'Subject: early{i}\n\nearly{i}\n')
                    for i in range(3)]
        p = sendmail('early-sendmail')
        self.assertEqual(p.returncode, 0, p.stderr)
        pb.wait_until(lambda: len(os.listdir(os.path.join(SPOOL, 'incoming'))) == 4 and
                      not os.listdir(os.path.join(SPOOL, 'maildrop')), what='the sendmail message in incoming')
        early = set(os.listdir(os.path.join(SPOOL, 'incoming')))
        self.assertTrue(set(accepted) <= early)

        # Less free than 1.5 x message_size_limit: MAIL is refused.
        fill(LIMIT)
        self.assertEqual(mail_reply(), NO_STORAGE)
        recs = pb.journal_messages(POSTBUS_ROLE='smtpd', since=cursor)
        self.assertTrue(any('Not enough free space in the mail queue' in m for m in recs), recs)
        self.assertTrue(any('NOQUEUE: reject: MAIL' in m and NO_STORAGE in m for m in recs), recs)
        print('observed at MAIL:', *[m for m in recs if 'space' in m or 'NOQUEUE' in m], sep='\n  ')

        # Enough for that: taken; queue_minfree above the free space: refused again.
        fill(3 * LIMIT)
        self.assertTrue(mail_reply().startswith('250 '), mail_reply())
        smtpd_config(queue_minfree=str(4 * LIMIT))
        self.assertEqual(mail_reply(), NO_STORAGE)
        # queue_minfree below the free space, but not leaving 1.5 x an announced SIZE: refused; a smaller one fits.
        smtpd_config(queue_minfree=str(2 * LIMIT))
        self.assertEqual(mail_reply(size=900000), NO_STORAGE)
        self.assertTrue(mail_reply(size=300000).startswith('250 '))
        smtpd_config(queue_minfree='0')

        # MAIL taken, then the disk fills before the end of DATA: cleanup cannot write, smtpd says 452.
        cursor = pb.journal_cursor()
        with pb.connect() as smtp:
            smtp.ehlo()
            self.assertEqual(smtp.mail('a@example.test')[0], 250)
            self.assertEqual(smtp.rcpt('dora@localhost')[0], 250)
            fill(0)
            code, text = smtp.data(b'Subject: too-late\r\n\r\n' + (b'y' * 76 + b'\r\n') * 3000)
        self.assertEqual(f'{code} {text.decode()}', NO_STORAGE)
        recs = pb.journal(POSTBUS_ROLE='cleanup', since=cursor)
        failed = [r for r in recs if 'failed to write the queue file' in r['MESSAGE']]
        self.assertTrue(failed, [r['MESSAGE'] for r in recs])
        self.assertEqual(failed[0].get('ERRNO'), str(errno.ENOSPC))
        self.assertIn('No space left on device', failed[0]['MESSAGE'])
        print('observed at DATA:', f'{code} {text.decode()}', f"{failed[0]['MESSAGE']} ERRNO={failed[0]['ERRNO']}",
              *[r['MESSAGE'] for r in recs if 'reject' in r['MESSAGE']], sep='\n  ')
        # nothing half-written is left behind; what was there before is intact
        self.assertEqual(set(os.listdir(os.path.join(SPOOL, 'incoming'))), early)

        # sendmail cannot write into the maildrop: EX_TEMPFAIL, and no file is left there.
        p = sendmail('while-full')
        self.assertEqual(p.returncode, 75, p.stderr)
        print('observed from sendmail: exit', p.returncode, p.stderr.strip())
        self.assertFalse(os.listdir(os.path.join(SPOOL, 'maildrop')))

        # qmgr comes back while the disk is still full, then space returns: everything accepted is delivered.
        pb.systemctl('start', 'postbus-qmgr.socket', 'postbus-qmgr.service')
        unfill()
        for i in range(3):
            pb.wait_until(lambda: delivered(f'early{i}') == 1, timeout=60, what=f'early{i} delivered')
        pb.wait_until(lambda: delivered('early-sendmail') == 1, timeout=60, what='the sendmail message delivered')
        self.assertEqual(delivered('too-late'), 0)
        self.assertEqual(delivered('while-full'), 0)
        # and new mail is taken again, by both ways
        self.assertTrue(mail_reply().startswith('250 '))
        p = sendmail('after')
        self.assertEqual(p.returncode, 0, p.stderr)
        pb.send('a@example.test', ['dora@localhost'], 'Subject: after-smtp\n\nafter-smtp\n')
        pb.wait_until(lambda: delivered('after') == 2, timeout=60, what='new mail delivered')
        pb.wait_until(lambda: not any(os.listdir(os.path.join(SPOOL, q)) for q in ('incoming', 'active', 'deferred')),
                      timeout=60, what='an empty queue')
        self.assertFalse(os.listdir(os.path.join(SPOOL, 'corrupt')))


if __name__ == '__main__':
    unittest.main()
