"""soft_bounce = yes, through the real daemons, as Postfix 3.7 behaves (checked against it): an unknown local
user at RCPT gets 450 4.1.1 where it would get 550 5.1.1, and smtpd journals the 450; local's 5.1.1 for mail
that came by sendmail becomes "dsn=4.1.1, status=SOFTBOUNCE (unknown user: ...)", the message stays in the
deferred queue and the sender gets no bounce; qmgr's own refusals (relocated_maps) are deferred the same way.
With soft_bounce = no again, the next attempt returns the kept mail to its sender."""
import unittest
import uuid

import postbus as pb

RELOCATED = '/etc/postbus/relocated'


def marker():
    return 'm-' + uuid.uuid4().hex


def in_queue(qid, queue):
    return any(m[0] == qid for m in pb.busctl_call('ListMessages', 's', queue)[0])


def local_records(qid, cursor, **fields):
    return pb.journal(QUEUE_ID=qid, POSTBUS_ROLE='local', since=cursor, **fields)


def bounces_for(user, text):
    return [m for m in pb.mbox_messages(user) if m.startswith('From MAILER-DAEMON') and text in m]


class SoftBounce(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for u in ('alice', 'dave', 'gone'):
            pb.add_user(u)
        with open(RELOCATED, 'w') as f:
            f.write('gone@localhost gone@elsewhere.example\n')
        pb.run('postbusctl', 'map', 'build', RELOCATED)
        pb.set_config(soft_bounce='yes', relocated_maps=f'gdbm:{RELOCATED}', minimal_backoff_time='1s',
                      maximal_backoff_time='2s', queue_run_delay='1s')

    @classmethod
    def tearDownClass(cls):
        pb.set_config(soft_bounce='no', relocated_maps='')

    def test_smtpd_450_for_550(self):
        cursor = pb.journal_cursor()
        with pb.connect() as smtp:
            smtp.ehlo()
            self.assertEqual(smtp.mail('x@example.org')[0], 250)
            code, text = smtp.rcpt('nosuchuser@localhost')
            self.assertEqual(code, 450)
            self.assertEqual(text.decode(), '4.1.1 <nosuchuser@localhost>: Recipient address rejected: '
                                            'User unknown in local recipient table')
            # a good recipient is still taken, and so is the message
            self.assertEqual(smtp.rcpt('alice@localhost')[0], 250)
            code, text = smtp.data(b'Subject: soft\r\n\r\nx\r\n')
            self.assertEqual(code, 250)
        # the journal says what the client was told, as Postfix's does
        msgs = pb.journal_messages('_SYSTEMD_UNIT=postbus-smtpd.service', since=cursor)
        self.assertTrue(any('NOQUEUE: reject: RCPT from' in (m or '') and ': 450 4.1.1 <nosuchuser@localhost>:' in m
                            for m in msgs), msgs[-5:])
        self.assertFalse(any(': 550 5.1.1' in (m or '') for m in msgs))

    def test_local_failure_stays_queued(self):
        m = marker()
        cursor = pb.journal_cursor()
        pb.run('sendmail', '-f', 'dave', 'nosuchuser', input=f'Subject: {m}\n\nx\n', user='dave')
        qid = pb.wait_until(lambda: next((r['QUEUE_ID'] for r in pb.journal(POSTBUS_ROLE='local', since=cursor)
                                          if r.get('RECIPIENT', '').startswith('nosuchuser@')), None),
                            what="local's record")
        [rec] = local_records(qid, cursor)[:1]
        self.assertEqual(rec['DELIVERY_STATUS'], 'SOFTBOUNCE')
        self.assertEqual(rec['DSN'], '4.1.1')
        self.assertRegex(rec['MESSAGE'], r'^' + qid + r': to=<nosuchuser@[^>]+>, relay=local, .*'
                                          r'dsn=4\.1\.1, status=SOFTBOUNCE \(unknown user: "nosuchuser"\)$')
        pb.wait_until(lambda: in_queue(qid, 'deferred'), what='the message in the deferred queue')
        # it is tried again, and stays
        pb.wait_until(lambda: len(local_records(qid, cursor)) >= 2, what='a second attempt')
        self.assertTrue(in_queue(qid, 'deferred') or in_queue(qid, 'active'))
        self.assertEqual(pb.journal(QUEUE_ID=qid, POSTBUS_ROLE='bounce', since=cursor), [])
        self.assertEqual(bounces_for('dave', m), [])

        # soft_bounce off: the next attempt returns it
        try:
            pb.set_config(soft_bounce='no')
            pb.wait_until(lambda: local_records(qid, cursor, DELIVERY_STATUS='bounced'), what='the bounce')
            pb.wait_until(lambda: bounces_for('dave', m), what='the bounce in dave\'s mailbox')
        finally:
            pb.set_config(soft_bounce='yes')

    def test_relocated_deferred(self):
        cursor = pb.journal_cursor()
        qid = pb.send('alice@localhost', ['gone@localhost'], 'Subject: moved\n\nx\n')
        rec = pb.wait_until(lambda: [r for r in pb.journal(QUEUE_ID=qid, POSTBUS_ROLE='qmgr', since=cursor)
                                     if r.get('DELIVERY_STATUS')], what="qmgr's record")[0]
        self.assertEqual(rec['DELIVERY_STATUS'], 'SOFTBOUNCE')
        self.assertEqual(rec['DSN'], '4.1.6')
        self.assertIn('user has moved to gone@elsewhere.example', rec['MESSAGE'])
        pb.wait_until(lambda: in_queue(qid, 'deferred'), what='the message in the deferred queue')
        self.assertEqual(pb.journal(QUEUE_ID=qid, POSTBUS_ROLE='bounce', since=cursor), [])


if __name__ == '__main__':
    unittest.main()
