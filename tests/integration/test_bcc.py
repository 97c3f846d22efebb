"""cleanup's automatic BCC recipients, through the real daemons: always_bcc, sender_bcc_maps and
recipient_bcc_maps add an envelope recipient (never a header) to mail from smtpd and from sendmail; the added
address goes through virtual aliases like any other; it has NOTIFY=NEVER (an undeliverable BCC address sends
the sender nothing); a BCC address that is a recipient anyway gets both copies, as in Postfix; bounces get no
BCC copy."""
import unittest
import uuid

import postbus as pb

HOST = 'mail.example.test'
SENDER_BCC = '/etc/postbus/sender_bcc'
RECIPIENT_BCC = '/etc/postbus/recipient_bcc'
VIRTUAL = '/etc/postbus/virtual'
CLEAR = dict(always_bcc='', sender_bcc_maps='', recipient_bcc_maps='', virtual_alias_maps='',
             recipient_delimiter='')


def configure(**params):
    pb.systemctl('reset-failed', 'postbus-*', check=False)
    pb.set_config(**params)


def build_table(path, text):
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)
    pb.run('postbusctl', 'map', 'build', path)


def marker():
    return 'm-' + uuid.uuid4().hex


def copies(user, text):
    return [m for m in pb.mbox_messages(user) if text in m]


def wait_copies(user, text, n=1):
    return pb.wait_until(lambda: len(copies(user, text)) >= n and copies(user, text),
                         what=f'{n} message(s) {text} for {user}')


def wait_removed(qid, cursor):
    pb.wait_until(lambda: any(r.get('MESSAGE', '').endswith('removed')
                              for r in pb.journal(QUEUE_ID=qid, POSTBUS_ROLE='qmgr', since=cursor)),
                  what=f'{qid} done')


def send_dsn(sender, recipients, body, rcpt_options):
    with pb.connect() as smtp:
        smtp.ehlo()
        code, text = smtp.mail(sender)
        assert code == 250, (code, text)
        for r in recipients:
            code, text = smtp.rcpt(r, rcpt_options.get(r, []))
            assert code in (250, 251), (code, text)
        code, text = smtp.data(pb._as_bytes(body))
        assert code == 250, (code, text)
    return pb.queue_id_from_text(text)


class Bcc(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for u in ('alice', 'bob', 'carol', 'dave'):
            pb.add_user(u)
        configure(myhostname=HOST, mydomain='example.test', **CLEAR)

    def tearDown(self):
        configure(**CLEAR)

    def test_always_bcc(self):
        configure(always_bcc='carol')
        m = marker()
        qid = pb.send('x@example.org', ['alice@localhost'],
                      f'From: x@example.org\nTo: alice@localhost\nSubject: {m}\n\nbody\n')
        [a] = wait_copies('alice', m)
        [c] = wait_copies('carol', m)
        # an envelope recipient, in canonical form ($myorigin), and no header says so
        self.assertIn(f'\nDelivered-To: carol@{HOST}\n', c)
        self.assertNotIn('\nBcc:', c)
        self.assertNotIn('carol', a)
        self.assertIn(qid, c)

        # local submissions too (sendmail, through pickup)
        m = marker()
        pb.run('sendmail', '-f', 'dave', 'bob', input=f'Subject: {m}\n\nlocal\n', user='dave')
        wait_copies('bob', m)
        wait_copies('carol', m)

    def test_bcc_is_notify_never_and_not_deduplicated(self):
        # an undeliverable BCC address: local bounces it, and the sender hears nothing of it
        configure(always_bcc=f'nobody-here@{HOST}')
        m = marker()
        cursor = pb.journal_cursor()
        qid = pb.send(f'dave@{HOST}', ['alice@localhost'], f'Subject: {m}\n\nx\n')
        wait_copies('alice', m)
        [rec] = pb.wait_until(lambda: pb.journal(QUEUE_ID=qid, POSTBUS_ROLE='local', DELIVERY_STATUS='bounced',
                                                 since=cursor), what='the BCC address bounced')
        self.assertEqual(rec['RECIPIENT'], f'nobody-here@{HOST}')
        wait_removed(qid, cursor)
        self.assertEqual(pb.journal(QUEUE_ID=qid, POSTBUS_ROLE='bounce', since=cursor), [])
        self.assertEqual([x for x in pb.mbox_messages('dave') if m in x], [])

        # the BCC address is a recipient already, who asked for a success notice: two copies (Postfix tells
        # the two apart by their NOTIFY), and the notice names the asked-for delivery once
        configure(always_bcc=f'bob@{HOST}')
        m = marker()
        cursor = pb.journal_cursor()
        qid = send_dsn(f'dave@{HOST}', [f'bob@{HOST}'], f'Subject: {m}\n\nx\n',
                       {f'bob@{HOST}': ['NOTIFY=SUCCESS']})
        wait_copies('bob', m, n=2)
        sent = pb.wait_until(lambda: [r for r in pb.journal(QUEUE_ID=qid, POSTBUS_ROLE='local', DELIVERY_STATUS='sent',
                                                            since=cursor)
                                      if len(pb.journal(QUEUE_ID=qid, POSTBUS_ROLE='local', DELIVERY_STATUS='sent',
                                                        since=cursor)) == 2], what='both deliveries')
        self.assertEqual({r['RECIPIENT'] for r in sent}, {f'bob@{HOST}'})
        notice = pb.wait_until(lambda: next((x for x in pb.mbox_messages('dave')
                                             if 'Successful Mail Delivery Report' in x and qid in x), None),
                               what='the success notice')
        self.assertEqual(notice.count(f'Final-Recipient: rfc822; bob@{HOST}'), 1)

    def test_sender_and_recipient_maps(self):
        build_table(SENDER_BCC, 'boss@example.org carol\n'
                                '@partner.test dave\n')
        build_table(RECIPIENT_BCC, 'alice archive@virtual.test\n'
                                   'bob@localhost dave@localhost\n')
        build_table(VIRTUAL, 'archive@virtual.test carol\n')
        configure(sender_bcc_maps=f'gdbm:{SENDER_BCC}', recipient_bcc_maps=f'gdbm:{RECIPIENT_BCC}',
                  virtual_alias_maps=f'gdbm:{VIRTUAL}', recipient_delimiter='+')

        # by sender: user+ext@domain finds user@domain; @domain
        m = marker()
        pb.send('boss+tag@example.org', ['bob@localhost'], f'Subject: {m}\n\nx\n')
        wait_copies('bob', m)
        wait_copies('carol', m)
        wait_copies('dave', m)       # recipient_bcc_maps: bob@localhost

        m = marker()
        pb.send('someone@partner.test', ['alice@localhost'], f'Subject: {m}\n\nx\n')
        wait_copies('alice', m)
        wait_copies('dave', m)
        # by recipient: "alice" is the local part of a local domain; its BCC address is a virtual alias of carol
        [c] = wait_copies('carol', m)
        self.assertIn(f'\nDelivered-To: carol@{HOST}\n', c)

        # an unlisted sender and recipient: no copy
        m = marker()
        cursor = pb.journal_cursor()
        qid = pb.send('other@example.org', ['dave@localhost'], f'Subject: {m}\n\nx\n')
        wait_copies('dave', m)
        wait_removed(qid, cursor)
        self.assertEqual(copies('carol', m), [])
        self.assertEqual(len(copies('dave', m)), 1)

    def test_no_bcc_of_bounces(self):
        configure(always_bcc='carol')
        m = marker()
        cursor = pb.journal_cursor()
        pb.run('sendmail', '-f', 'dave', 'nobody-here', input=f'Subject: {m}\n\nx\n', user='dave')
        bounce = pb.wait_until(lambda: next((x for x in pb.mbox_messages('dave')
                                             if m in x and x.startswith('From MAILER-DAEMON')), None),
                               what='the bounce to dave')
        self.assertIn('Undelivered Mail Returned to Sender', bounce)
        # the bounce is done with (delivered, its queue file removed): carol got the original only
        notice = pb.wait_until(lambda: next((r['MESSAGE'] for r in pb.journal(POSTBUS_ROLE='bounce', since=cursor)
                                             if 'sender non-delivery notification: ' in r.get('MESSAGE', '')),
                                            None), what="bounce's record")
        wait_removed(notice.rsplit(' ', 1)[1], cursor)
        [c] = wait_copies('carol', m)
        self.assertFalse(c.startswith('From MAILER-DAEMON'))


if __name__ == '__main__':
    unittest.main()
