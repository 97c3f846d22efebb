"""smtp_generic_maps in the smtp client, through the real daemons, as Postfix 3.7 does it (checked against it):
mail relayed to a fake SMTP server arrives with its envelope sender and recipients and the addresses of its
sender and recipient headers (From, To, Cc, Reply-To, Sender, ... with groups, names and comments kept)
rewritten in generic(5)'s lookup order (user@domain, user for a local domain, @domain); other headers and the
body are left alone, and the journal keeps the addresses as they were."""
import re
import time
import unittest

import postbus as pb
from test_smtp import FakeServer, smtp_records, unstuff

TRANSPORT = '/etc/postbus/transport'
GENERIC = '/etc/postbus/generic'


class SmtpGeneric(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        pb.add_user('alice')
        cls.sink = FakeServer(port=2525)
        with open(TRANSPORT, 'w', encoding='utf-8') as f:
            f.write('sink.test smtp:[127.0.0.1]:2525\n')
        pb.run('postbusctl', 'map', 'build', TRANSPORT)
        with open(GENERIC, 'w', encoding='utf-8') as f:
            f.write('alice@localhost alice@example.com\n'
                    'bob@sink.test robert@sink.test\n'
                    'carol carol.smith@example.org\n'
                    '@localhost @example.net\n')
        pb.run('postbusctl', 'map', 'build', GENERIC)
        pb.set_config(transport_maps=f'gdbm:{TRANSPORT}', smtp_generic_maps=f'gdbm:{GENERIC}')

    def test_envelope_and_headers(self):
        cursor = pb.journal_cursor()
        marker = 'generic-%d' % time.time_ns()
        body = ('From: Alice <alice@localhost>\n'
                'To: bob@sink.test, Dan <dan@sink.test>,\n undisclosed: carol@localhost;\n'
                'Cc: carol@localhost (Carol)\n'
                'Reply-To: alice@localhost\n'
                'Sender: root@localhost\n'
                'X-Other: alice@localhost\n'
                'Message-ID: <id.1@localhost>\n'
                f'Subject: {marker} alice@localhost\n'
                '\n'
                'Body: alice@localhost\n')
        qid = pb.send('alice@localhost', ['bob@sink.test', 'dan@sink.test'], body)
        recs = pb.wait_until(lambda: len(smtp_records(qid, cursor, DELIVERY_STATUS='sent')) == 2
                             and smtp_records(qid, cursor, DELIVERY_STATUS='sent'), what='two sent records')
        [t] = [t for t in self.sink.transactions if t.data and marker.encode() in t.data]
        self.assertRegex(t.mail, r'^MAIL FROM:<alice@example\.com>')
        self.assertEqual([re.match(r'RCPT TO:<([^>]*)>', r).group(1) for r in t.rcpts],
                         ['robert@sink.test', 'dan@sink.test'])
        text = b'\n'.join(unstuff(t.data)).decode()
        self.assertIn('\nFrom: Alice <alice@example.com>\n', '\n' + text)
        self.assertIn('\nTo: robert@sink.test, Dan <dan@sink.test>,\n undisclosed: carol.smith@example.org;\n', text)
        self.assertIn('\nCc: carol.smith@example.org (Carol)\n', text)
        self.assertIn('\nReply-To: alice@example.com\n', text)
        self.assertIn('\nSender: root@example.net\n', text)
        # not an address header, and not the body
        self.assertIn('\nX-Other: alice@localhost\n', text)
        self.assertIn('\nMessage-ID: <id.1@localhost>\n', text)
        self.assertIn(f'\nSubject: {marker} alice@localhost\n', text)
        self.assertIn('\n\nBody: alice@localhost', text)
        # the journal names the recipients as they were, as Postfix's does
        self.assertEqual(sorted(r['RECIPIENT'] for r in recs), ['bob@sink.test', 'dan@sink.test'])

    def test_unmatched_unchanged(self):
        cursor = pb.journal_cursor()
        marker = 'plain-%d' % time.time_ns()
        qid = pb.send('someone@example.org', ['eve@sink.test'],
                      f'From: someone@example.org\nTo: eve@sink.test\nSubject: {marker}\n\nx\n')
        pb.wait_until(lambda: smtp_records(qid, cursor, DELIVERY_STATUS='sent'), what='the sent record')
        [t] = [t for t in self.sink.transactions if t.data and marker.encode() in t.data]
        self.assertRegex(t.mail, r'^MAIL FROM:<someone@example\.org>')
        self.assertEqual([re.match(r'RCPT TO:<([^>]*)>', r).group(1) for r in t.rcpts], ['eve@sink.test'])
        text = b'\n'.join(unstuff(t.data)).decode()
        self.assertIn('\nFrom: someone@example.org\nTo: eve@sink.test\n', text)


if __name__ == '__main__':
    unittest.main()
