"""smtpd_reject_footer and smtpd_reject_footer_maps over real SMTP: the footer on a line of its own with the
reply's codes, after "\\c" on the same line, "\\n" making more lines, its $names filled in per session
(main.cf leaves them alone, also in a master.cf -o), a regexp table choosing a footer by the reply, no
footer on 2xx replies, and the journal's record of the refusal without it."""
import os
import unittest

import postbus as pb

REGEXP = '/etc/postbus/footer.regexp'
MASTER_CF = '/etc/postbus/master.cf'


def reconfigure(**params):
    defaults = {'smtpd_reject_footer': '', 'smtpd_reject_footer_maps': '', 'myhostname': 'mx.footer.test',
                'mynetworks': '127.0.0.1/32'}
    pb.systemctl('reset-failed', 'postbus-smtpd.service', 'postbus-smtpd.socket', check=False)
    pb.set_config(**{**defaults, **params})


class RejectFooter(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        pb.add_user('fred')
        with open(REGEXP, 'w', encoding='utf-8') as f:
            f.write('/^550 5\\.1\\.1 / \\c (unknown user; client $$client_address)\n'
                    '/Relay access denied/ relay help: https://help.test/$${client_name}\n')

    def session(self, source='127.0.0.1'):
        s = pb.SmtpRaw('127.0.0.1', 25, source=source)
        self.addCleanup(s.close)
        self.assertEqual(s.reply()[0], 220)
        return s

    def test_footer_own_lines(self):
        reconfigure(smtpd_reject_footer='For help: $server_name, client [$client_address]:$client_port\\n'
                                        'at $localtime, helo=$helo_name')
        cursor = pb.journal_cursor()
        s = self.session()
        self.assertEqual(s.cmd('EHLO helo.footer.test')[0], 250)
        self.assertEqual(s.cmd('MAIL FROM:<a@example.org>'), (250, '2.1.0 Ok'))
        port = s.sock.getsockname()[1]
        s.send(b'RCPT TO:<nosuch@mx.footer.test>\r\n')
        lines = [s.readline() for _ in range(3)]
        self.assertRegex(lines[0], r'^550-5\.1\.1 <nosuch@mx\.footer\.test>: Recipient address rejected')
        self.assertEqual(lines[1], f'550-5.1.1 For help: mx.footer.test, client [127.0.0.1]:{port}')
        self.assertRegex(lines[2], r'^550 5\.1\.1 at [A-Z][a-z]{2} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2}, '
                                   r'helo=helo\.footer\.test$')
        self.assertEqual(s.cmd('RCPT TO:<fred@mx.footer.test>'), (250, '2.1.5 Ok'))   # no footer on 2xx
        self.assertEqual(s.cmd('QUIT')[0], 221)
        rejects = pb.wait_until(lambda: [m for m in pb.journal_messages(POSTBUS_ROLE='smtpd', since=cursor)
                                         if m.startswith('NOQUEUE: reject: RCPT')], what='the reject line')
        self.assertNotIn('For help', rejects[0])
        self.assertIn('Recipient address rejected', rejects[0])

    def test_footer_same_line_and_protocol_errors(self):
        reconfigure(smtpd_reject_footer='\\c (see $server_name)')
        s = self.session()
        self.assertEqual(s.cmd('RCPT TO:<x@y>'), (503, '5.5.1 Error: need MAIL command (see mx.footer.test)'))
        self.assertEqual(s.cmd('FOO'), (500, '5.5.2 Error: command not recognized (see mx.footer.test)'))
        self.assertEqual(s.cmd('NOOP'), (250, '2.0.0 Ok'))

    def test_footer_censored(self):
        # the HELO name is the client's: what is not printable ASCII does not reach the reply
        reconfigure(smtpd_reject_footer='\\c [$helo_name]')
        s = self.session()
        self.assertEqual(s.cmd('EHLO h\u00e9llo.test')[0], 250)
        self.assertEqual(s.cmd('RCPT TO:<x@y>'), (503, '5.5.1 Error: need MAIL command [h__llo.test]'))

    def test_footer_maps(self):
        reconfigure(smtpd_reject_footer='generic footer', smtpd_reject_footer_maps=f'regexp:{REGEXP}')
        s = self.session()
        self.assertEqual(s.cmd('EHLO c.test')[0], 250)
        self.assertEqual(s.cmd('MAIL FROM:<a@example.org>')[0], 250)
        code, text = s.cmd('RCPT TO:<nosuch@mx.footer.test>')
        self.assertEqual(code, 550)
        self.assertRegex(text, r'^5\.1\.1 <nosuch@mx\.footer\.test>: Recipient address rejected: .* '
                               r'\(unknown user; client 127\.0\.0\.1\)$')
        self.assertNotIn('\n', text)
        # not 127.0.0.1: outside mynetworks, so relaying is refused
        s2 = self.session('127.0.0.5')
        self.assertEqual(s2.cmd('EHLO c.test')[0], 250)
        self.assertEqual(s2.cmd('MAIL FROM:<a@example.org>')[0], 250)
        code, text = s2.cmd('RCPT TO:<a@elsewhere.test>')
        self.assertEqual(code, 554)
        self.assertEqual(text.split('\n')[1:], ['5.7.1 relay help: https://help.test/unknown'])
        # any other refusal: smtpd_reject_footer
        code, text = s2.cmd('BDAT x')
        self.assertEqual((code, text.split('\n')), (501, ['5.5.4 Syntax: BDAT count [LAST]', '5.5.4 generic footer']))

    def test_footer_in_master_cf(self):
        # An -o value keeps its $names too.
        def remove():
            os.unlink(MASTER_CF)
            reconfigure()
        with open(MASTER_CF, 'w', encoding='utf-8') as f:
            f.write('smtp      inet  n       -       n       -       -       smtpd\n'
                    '  -o { smtpd_reject_footer = \\c [$client_address] }\n'
                    'local     unix  -       n       n       -       -       local\n')
        self.addCleanup(remove)
        reconfigure()
        s = self.session()
        self.assertEqual(s.cmd('RCPT TO:<x@y>'), (503, '5.5.1 Error: need MAIL command [127.0.0.1]'))


if __name__ == '__main__':
    unittest.main()
