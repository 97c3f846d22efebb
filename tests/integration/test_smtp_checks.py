"""smtp_header_checks, smtp_mime_header_checks, smtp_nested_header_checks and smtp_body_checks in the smtp client,
through the real daemons: mail relayed to a fake SMTP server arrives with its headers and body lines changed as
header_checks(5) "FILTERS WHILE DELIVERING MAIL" says (IGNORE, REPLACE, PREPEND, WARN), the MIME parts' headers
and an attached message's headers by their own tables, REJECT logged and ignored; the queue file is untouched
(local delivery of the same message keeps it as it was), and smtp_generic_maps applies after the checks."""
import time
import unittest

import postbus as pb
from test_smtp import FakeServer, smtp_records, unstuff

TRANSPORT = '/etc/postbus/transport'
GENERIC = '/etc/postbus/generic'
HEADER = '/etc/postbus/smtp_header_checks'
MIME = '/etc/postbus/smtp_mime_header_checks'
NESTED = '/etc/postbus/smtp_nested_header_checks'
BODY = '/etc/postbus/smtp_body_checks'


def write(path, text):
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)


class SmtpChecks(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        pb.add_user('alice')
        cls.sink = FakeServer(port=2525)
        write(TRANSPORT, 'sink.test smtp:[127.0.0.1]:2525\n')
        pb.run('postbusctl', 'map', 'build', TRANSPORT)
        write(GENERIC, 'alice@localhost alice@example.com\n')
        pb.run('postbusctl', 'map', 'build', GENERIC)
        write(HEADER, '/^X-Secret:/ IGNORE\n'
                      '/^Subject: (.*) old$/ REPLACE Subject: $1 new\n'
                      '/^X-Tag:/ PREPEND X-Added: before the tag\n'
                      '/^X-Warn:/ WARN noted\n'
                      '/^X-Reject:/ REJECT not here\n'
                      '/^X-Folded: one two$/ REPLACE X-Folded: joined\n')
        write(MIME, '/^Content-Disposition:.*secret\\.txt/ REPLACE Content-Disposition: attachment; filename="removed.txt"\n')
        write(NESTED, '/^Subject: inner/ IGNORE\n')
        write(BODY, '/^password:/ REPLACE password: xxx\n'
                    '/^drop me/ IGNORE\n')
        pb.set_config(transport_maps=f'gdbm:{TRANSPORT}', smtp_generic_maps=f'gdbm:{GENERIC}',
                      smtp_header_checks=f'regexp:{HEADER}', smtp_mime_header_checks=f'regexp:{MIME}',
                      smtp_nested_header_checks=f'regexp:{NESTED}', smtp_body_checks=f'regexp:{BODY}')

    def test_checks(self):
        cursor = pb.journal_cursor()
        marker = 'checks-%d' % time.time_ns()
        body = ('From: Alice <alice@localhost>\n'
                'To: bob@sink.test\n'
                'X-Secret: s3cret\n'
                'X-Folded: one\n two\n'
                'X-Tag: t\n'
                'X-Warn: w\n'
                'X-Reject: r\n'
                f'Subject: {marker} old\n'
                'MIME-Version: 1.0\n'
                'Content-Type: multipart/mixed; boundary="BB"\n'
                '\n'
                'preamble\n'
                '--BB\n'
                'Content-Type: text/plain\n'
                '\n'
                'password: hunter2\n'
                'drop me please\n'
                'X-Secret: in the body\n'
                'kept line\n'
                '--BB\n'
                'Content-Type: text/plain\n'
                'Content-Disposition: attachment; filename="secret.txt"\n'
                '\n'
                'attached text\n'
                '--BB\n'
                'Content-Type: message/rfc822\n'
                '\n'
                'Subject: inner subject\n'
                'From: inner@example.org\n'
                '\n'
                'inner body\n'
                '--BB--\n')
        # the same message to a local mailbox: the queue file is as it came
        qid = pb.send('alice@localhost', ['bob@sink.test', 'alice@localhost'], body)
        pb.wait_until(lambda: smtp_records(qid, cursor, DELIVERY_STATUS='sent'), what='the sent record')
        [t] = [t for t in self.sink.transactions if t.data and marker.encode() in t.data]
        text = '\n' + b'\n'.join(unstuff(t.data)).decode()

        self.assertNotIn('X-Secret: s3cret', text)
        self.assertIn(f'\nSubject: {marker} new\n', text)
        self.assertIn('\nX-Folded: joined\n', text)
        self.assertIn('\nX-Added: before the tag\nX-Tag: t\n', text)
        self.assertIn('\nX-Warn: w\n', text)
        self.assertIn('\nX-Reject: r\n', text)        # REJECT is not for the smtp client: ignored
        # generic maps after the checks
        self.assertIn('\nFrom: Alice <alice@example.com>\n', text)
        # body lines, and the headers of parts and of the attached message by their own tables
        self.assertIn('\npassword: xxx\n', text)
        self.assertNotIn('hunter2', text)
        self.assertNotIn('drop me', text)
        # smtp_header_checks' IGNORE of X-Secret is for headers, not for a body line that looks like one
        self.assertIn('\nX-Secret: in the body\nkept line\n', text)
        self.assertIn('\nContent-Disposition: attachment; filename="removed.txt"\n', text)
        self.assertNotIn('secret.txt', text)
        self.assertNotIn('inner subject', text)
        self.assertIn('\nFrom: inner@example.org\n\ninner body\n--BB--', text)

        local = pb.wait_until(lambda: next((m for m in pb.mbox_messages('alice') if marker in m), None),
                              what='the local copy')
        for kept in ('X-Secret: s3cret', 'hunter2', 'drop me please', 'secret.txt', 'inner subject',
                     f'Subject: {marker} old'):
            self.assertIn(kept, local)

        msgs = [m or '' for m in pb.journal_messages('SYSLOG_IDENTIFIER=postbus/smtp', since=cursor)]
        self.assertTrue(any(f'{qid}: WARN: header X-Warn: w: noted' in m for m in msgs), msgs)
        self.assertTrue(any(f'{qid}: smtp_header_checks: unsupported action REJECT' in m for m in msgs), msgs)
        self.assertTrue(any(f'{qid}: REPLACE: body password: hunter2: password: xxx' in m for m in msgs), msgs)


if __name__ == '__main__':
    unittest.main()
