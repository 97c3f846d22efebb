"""smtpd's access(5) actions through the real daemons: HOLD (the message in the hold queue), DISCARD
(accepted, never queued), FILTER (qmgr sends the message to the content filter's transport and next hop),
REDIRECT (delivered to the table's address instead), PREPEND (a header above Received), WARN (a journal
record, the message delivered), REJECT with access_map_reject_code, numeric 4NN/5NN replies, and a malformed action as a configuration error."""
import os
import re
import smtplib
import unittest

import postbus as pb
from test_smtp import FakeServer

ETC = '/etc/postbus'
HOST = 'mx.example.test'
ACCESS = os.path.join(ETC, 'sender_actions')


def mail_with(user, marker):
    return next((m for m in pb.mbox_messages(user) if marker in m), None)


def smtpd_messages(cursor):
    return pb.journal_messages('_SYSTEMD_UNIT=postbus-smtpd.service', since=cursor)


class AccessActions(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        pb.add_user('alice')
        pb.add_user('bob')
        with open(ACCESS, 'w') as f:
            f.write('hold@example.org      HOLD held by the sender table\n'
                    'discard@example.org   DISCARD not wanted\n'
                    'redirect@example.org  REDIRECT bob@localhost\n'
                    'prepend@example.org   PREPEND X-Access: tagged by table\n'
                    'warn@example.org      WARN have a look\n'
                    'slow@example.org      450 4.7.1 slow down\n'
                    'no@example.org        554 5.7.1 custom refusal\n'
                    'reject@example.org    REJECT go away\n'
                    'filter@example.org    FILTER smtp:[127.0.0.1]:10025\n'
                    'badfilter@example.org FILTER nocolon\n')
        pb.run('postbusctl', 'map', 'build', ACCESS)
        pb.set_config(myhostname=HOST, mynetworks='127.0.0.0/8', alias_maps='',
                      smtpd_sender_restrictions=f'check_sender_access hash:{ACCESS}',
                      smtpd_relay_restrictions='permit_mynetworks, reject_unauth_destination',
                      smtpd_recipient_restrictions='')

    def test_hold(self):
        cursor = pb.journal_cursor()
        qid = pb.send('hold@example.org', ['alice@localhost'], 'Subject: hold me\n\nx\n')
        pb.wait_until(lambda: qid in [m[0] for m in pb.busctl_call('ListMessages', 's', 'hold')[0]],
                      what='the message in the hold queue')
        self.assertTrue(any('HOLD' in (m or '') and 'held by the sender table' in (m or '')
                            for m in smtpd_messages(cursor)))
        self.assertIsNone(mail_with('alice', 'hold me'))

    def test_discard(self):
        cursor = pb.journal_cursor()
        qid = pb.send('discard@example.org', ['alice@localhost'], 'Subject: discard me\n\nx\n')
        self.assertTrue(pb.queue_id_valid(qid))
        pb.wait_until(lambda: any('DISCARD: smtpd access' in (m or '') for m in
                                  pb.journal_messages('_SYSTEMD_UNIT=postbus-cleanup.service', since=cursor)),
                      what="cleanup's DISCARD record")
        # never queued: qmgr never heard of it
        self.assertEqual(pb.journal(QUEUE_ID=qid, POSTBUS_ROLE='qmgr', since=cursor), [])
        self.assertIsNone(mail_with('alice', 'discard me'))

    def test_redirect(self):
        qid = pb.send('redirect@example.org', ['alice@localhost'], 'Subject: redirected\n\nx\n')
        pb.wait_until(lambda: mail_with('bob', qid), what='the redirected mail at bob')
        self.assertIsNone(mail_with('alice', 'redirected'))

    def test_prepend_and_warn(self):
        qid = pb.send('prepend@example.org', ['alice@localhost'], 'Subject: prepended\n\nx\n')
        m = pb.wait_until(lambda: mail_with('alice', qid), what='the mail with the added header')
        head = m.split('\n\n', 1)[0]
        self.assertIn('\nX-Access: tagged by table\n', head)
        self.assertLess(head.index('X-Access: tagged by table'), head.index('Received: from'))

        cursor = pb.journal_cursor()
        qid = pb.send('warn@example.org', ['alice@localhost'], 'Subject: warned\n\nx\n')
        pb.wait_until(lambda: mail_with('alice', qid), what='the warned mail, delivered')
        self.assertTrue(any('WARN' in (m or '') and 'have a look' in (m or '') for m in smtpd_messages(cursor)))

    def test_numeric_and_filter(self):
        with self.assertRaises(smtplib.SMTPRecipientsRefused) as e:
            pb.send('slow@example.org', ['alice@localhost'], 'Subject: x\n\nx\n')
        self.assertEqual(e.exception.recipients['alice@localhost'],
                         (450, b'4.7.1 <slow@example.org>: Sender address rejected: slow down'))
        with self.assertRaises(smtplib.SMTPRecipientsRefused) as e:
            pb.send('no@example.org', ['alice@localhost'], 'Subject: x\n\nx\n')
        self.assertEqual(e.exception.recipients['alice@localhost'],
                         (554, b'5.7.1 <no@example.org>: Sender address rejected: custom refusal'))
        with self.assertRaises(smtplib.SMTPRecipientsRefused) as e:
            pb.send('badfilter@example.org', ['alice@localhost'], 'Subject: x\n\nx\n')
        self.assertEqual(e.exception.recipients['alice@localhost'][0], 451)

    def test_reject_code(self):
        # REJECT answers access_map_reject_code, 554 as shipped, with Postfix's text.
        with self.assertRaises(smtplib.SMTPRecipientsRefused) as e:
            pb.send('reject@example.org', ['alice@localhost'], 'Subject: x\n\nx\n')
        self.assertEqual(e.exception.recipients['alice@localhost'],
                         (554, b'5.7.1 <reject@example.org>: Sender address rejected: go away'))
        pb.set_config(access_map_reject_code=550)
        self.addCleanup(pb.set_config, access_map_reject_code=554)
        with self.assertRaises(smtplib.SMTPRecipientsRefused) as e:
            pb.send('reject@example.org', ['alice@localhost'], 'Subject: x\n\nx\n')
        self.assertEqual(e.exception.recipients['alice@localhost'][0], 550)

    def test_filter(self):
        sink = FakeServer(port=10025)
        self.addCleanup(sink.sock.close)
        qid = pb.send('filter@example.org', ['alice@localhost', 'bob@localhost'], 'Subject: to the filter\n\nf\n')
        pb.wait_until(lambda: sink.transactions, what='the message at the content filter')
        t = sink.transactions[0]
        self.assertIn('filter@example.org', t.mail)
        self.assertEqual(sorted(re.match(r'RCPT TO:<([^>]*)>', r, re.I).group(1) for r in t.rcpts),
                         ['alice@localhost', 'bob@localhost'])
        self.assertIn(b'to the filter', t.data if isinstance(t.data, bytes) else t.data.encode())
        self.assertIsNone(mail_with('alice', qid))


if __name__ == '__main__':
    unittest.main()
