"""The journal as existing log tools read it: `journalctl -u 'postbus-*' -o short` piped into Debian's
pflogsumm counts what a test sent: received (smtpd and pickup), delivered, deferred, bounced and
rejected."""
import re
import subprocess
import unittest

import postbus as pb


def pflogsumm(cursor):
    pb.journal_sync()
    log = pb.run('journalctl', '-u', 'postbus-*', '-o', 'short', '--no-pager', f'--after-cursor={cursor}')
    p = subprocess.run(['pflogsumm', '--syslog-name=postbus', '--problems-first'],
                       input=log, capture_output=True, text=True, check=True)
    counts = {}
    for what in ('received', 'delivered', 'deferred', 'bounced', 'rejected'):
        m = re.search(rf'^\s*(\d+)\s+{what}\b', p.stdout, re.M)
        counts[what] = int(m.group(1)) if m else None
    return counts, log, p.stdout


class Pflogsumm(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for u in ('alice', 'bob'):
            pb.add_user(u)
        # Mail for other domains waits (qmgr defers it) instead of going out; gone.test fails for good.
        with open('/etc/postbus/transport', 'w') as f:
            f.write('gone.test error:5.1.2 no such domain here\n')
        pb.run('postbusctl', 'map', 'build', '/etc/postbus/transport')
        pb.set_config(defer_transports='smtp', transport_maps='hash:/etc/postbus/transport')

    def test_counts_match(self):
        if not pb.have('pflogsumm'):
            self.fail('pflogsumm is not installed (tools/deps.sh lists it)')
        cursor = pb.journal_cursor()
        ids = []
        for i in range(3):              # received over SMTP, delivered
            ids.append(pb.send('alice@localhost', 'bob@localhost', f'Subject: counted {i}\n\nbody\n'))
        # received through sendmail (pickup), delivered
        pb.run('sendmail', '-f', 'alice@localhost', 'bob@localhost', input='Subject: picked up\n\nbody\n')
        # rejected at RCPT: no such local user
        with self.assertRaises(Exception):
            pb.send('alice@localhost', 'nobody-here@localhost', 'Subject: rejected\n\nbody\n')
        # received, then deferred (defer_transports)
        ids.append(pb.send('alice@localhost', 'someone@remote.test', 'Subject: deferred\n\nbody\n'))
        # received, then bounced (the error transport); the notice to alice is delivered
        ids.append(pb.send('alice@localhost', 'someone@gone.test', 'Subject: bounced\n\nbody\n'))

        def settled():
            log = pb.run('journalctl', '-u', 'postbus-*', '-o', 'cat', '--no-pager', f'--after-cursor={cursor}')
            return log.count('status=sent') >= 5 and 'status=deferred' in log and 'status=bounced' in log
        pb.wait_until(settled, what='the deliveries and the deferral in the journal')
        counts, log, report = pflogsumm(cursor)
        self.assertEqual(counts['received'], 6, report + log)
        self.assertEqual(counts['delivered'], 5, report)
        self.assertEqual(counts['deferred'], 1, report)
        self.assertEqual(counts['bounced'], 1, report)
        self.assertEqual(counts['rejected'], 1, report)
        self.assertIn('bob@localhost', report)          # per-recipient detail parsed too


if __name__ == '__main__':
    unittest.main()
