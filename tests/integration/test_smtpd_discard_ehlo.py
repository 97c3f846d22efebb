"""smtpd_discard_ehlo_keywords and smtpd_discard_ehlo_keyword_address_maps over real SMTP: the keywords
left out of the EHLO reply, the commands and parameters of a discarded extension refused as Postfix
refuses them (DSN parameters, BDAT, STARTTLS, SMTPUTF8), enhanced status codes dropped from every reply
when ENHANCEDSTATUSCODES is discarded, the "discarding EHLO keywords" journal line and silent-discard, and
a cidr table choosing the keywords per client address."""
import re
import unittest

import postbus as pb

ENHANCED = re.compile(r'^[245]\.[0-9]{1,3}\.[0-9]{1,3} ')
CIDR = '/etc/postbus/ehlo_discard.cidr'


def reconfigure(**params):
    """set_config, with every parameter these tests set back to its default unless given."""
    defaults = {'smtpd_discard_ehlo_keywords': '', 'smtpd_discard_ehlo_keyword_address_maps': '',
                'smtpd_tls_cert_file': '', 'smtpd_tls_key_file': '', 'myhostname': 'localhost'}
    pb.systemctl('reset-failed', 'postbus-smtpd.service', 'postbus-smtpd.socket', check=False)
    pb.set_config(**{**defaults, **params})


class DiscardEhlo(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        pb.add_user('dora')
        pb.make_tls_certificate()
        with open(CIDR, 'w', encoding='utf-8') as f:
            f.write('127.0.0.2/32  pipelining, size\n127.0.0.3 silent-discard\n')

    def session(self, source='127.0.0.1'):
        s = pb.SmtpRaw('127.0.0.1', 25, source=source)
        self.addCleanup(s.close)
        self.assertEqual(s.reply()[0], 220)
        code, text = s.cmd('EHLO client.example.org')
        self.assertEqual(code, 250, text)
        return s, text.split('\n')[1:]

    def test_dsn_silently_discarded(self):
        reconfigure(mynetworks='127.0.0.1/32', smtpd_discard_ehlo_keywords='silent-discard, DSN')
        cursor = pb.journal_cursor()
        s, keywords = self.session()
        self.assertNotIn('DSN', keywords)
        self.assertIn('PIPELINING', keywords)
        self.assertIn('CHUNKING', keywords)
        for cmd in ('MAIL FROM:<a@example.org> RET=HDRS', 'MAIL FROM:<a@example.org> ENVID=abc'):
            self.assertEqual(s.cmd(cmd), (501, '5.7.1 DSN support is disabled'))
        self.assertEqual(s.cmd('MAIL FROM:<a@example.org>')[0], 250)
        for cmd in ('RCPT TO:<dora@localhost> NOTIFY=NEVER', 'RCPT TO:<dora@localhost> ORCPT=rfc822;dora@localhost'):
            self.assertEqual(s.cmd(cmd), (501, '5.7.1 DSN support is disabled'))
        self.assertEqual(s.cmd('RCPT TO:<dora@localhost>')[0], 250)
        self.assertEqual(s.cmd('QUIT')[0], 221)
        pb.wait_until(lambda: pb.journal_messages(POSTBUS_ROLE='smtpd', since=cursor,
                                                   CLIENT_ADDRESS='127.0.0.1') and
                      any(m.startswith('disconnect from') for m in
                          pb.journal_messages(POSTBUS_ROLE='smtpd', since=cursor)), what='the disconnect line')
        logged = pb.journal_messages(POSTBUS_ROLE='smtpd', since=cursor)
        self.assertFalse([m for m in logged if 'discarding EHLO keywords' in m], logged)

    def test_discarded_commands_and_log(self):
        reconfigure(mynetworks='127.0.0.1/32', smtputf8_enable='yes', smtpd_tls_cert_file='/etc/postbus/tls/cert.pem',
                    smtpd_tls_key_file='/etc/postbus/tls/key.pem',
                    smtpd_discard_ehlo_keywords='chunking starttls smtputf8 8bitmime nosuch')
        cursor = pb.journal_cursor()
        s, keywords = self.session()
        for k in ('CHUNKING', 'STARTTLS', 'SMTPUTF8', '8BITMIME'):
            self.assertNotIn(k, keywords)
        self.assertIn('DSN', keywords)
        self.assertEqual(s.cmd('STARTTLS'), (502, '5.5.1 Error: command not implemented'))
        self.assertEqual(s.cmd('MAIL FROM:<a@example.org> SMTPUTF8'), (555, '5.5.4 Unsupported option: SMTPUTF8'))
        self.assertEqual(s.cmd('MAIL FROM:<a@example.org> RET=HDRS')[0], 250)
        self.assertEqual(s.cmd('RCPT TO:<dora@localhost> NOTIFY=NEVER')[0], 250)
        # the chunk is read all the same: the NOOP in it is no command (its 250 would come before QUIT's 221)
        s.send('BDAT 6 LAST\r\nNOOP\r\n')
        self.assertEqual(s.reply(), (502, '5.5.1 Error: command not implemented'))
        self.assertEqual(s.cmd('QUIT')[0], 221)
        lines = pb.wait_until(lambda: [m for m in pb.journal_messages(POSTBUS_ROLE='smtpd', since=cursor)
                                       if 'discarding EHLO keywords' in m], what='the discarding line')
        self.assertEqual(lines, ['discarding EHLO keywords: 8BITMIME STARTTLS SMTPUTF8 CHUNKING'])

    def test_enhanced_status_codes_discarded(self):
        reconfigure(mynetworks='127.0.0.1/32', smtpd_discard_ehlo_keywords='enhancedstatuscodes')
        s, keywords = self.session()
        self.assertNotIn('ENHANCEDSTATUSCODES', keywords)
        self.assertEqual(s.cmd('MAIL FROM:<a@example.org>'), (250, 'Ok'))
        code, text = s.cmd('RCPT TO:<nosuch@localhost>')
        self.assertEqual(code, 550, text)
        self.assertFalse(ENHANCED.match(text), text)
        self.assertIn('<nosuch@localhost>', text)
        self.assertEqual(s.cmd('NOOP'), (250, 'Ok'))
        # Another client is not concerned.
        reconfigure(mynetworks='127.0.0.1/32')
        s, keywords = self.session()
        self.assertIn('ENHANCEDSTATUSCODES', keywords)
        self.assertEqual(s.cmd('NOOP'), (250, '2.0.0 Ok'))

    def test_address_maps(self):
        reconfigure(mynetworks='127.0.0.0/8', smtpd_discard_ehlo_keywords='dsn',
                    smtpd_discard_ehlo_keyword_address_maps=f'cidr:{CIDR}')
        _, listed = self.session('127.0.0.2')
        self.assertNotIn('PIPELINING', listed)
        self.assertFalse([k for k in listed if k.startswith('SIZE')], listed)
        self.assertIn('DSN', listed)            # the table's value replaces smtpd_discard_ehlo_keywords
        _, silent = self.session('127.0.0.3')
        self.assertIn('PIPELINING', silent)
        self.assertIn('DSN', silent)
        _, other = self.session('127.0.0.4')
        self.assertIn('PIPELINING', other)
        self.assertNotIn('DSN', other)

    def test_unreadable_table(self):
        # A hash table never built: Postfix's answer when it cannot tell what to announce.
        reconfigure(mynetworks='127.0.0.1/32', smtpd_discard_ehlo_keyword_address_maps='hash:/etc/postbus/nosuch')
        cursor = pb.journal_cursor()
        s = pb.SmtpRaw('127.0.0.1', 25)
        self.addCleanup(s.close)
        self.assertEqual(s.reply()[0], 220)
        self.assertEqual(s.cmd('EHLO client.example.org'), (421, '4.3.0 localhost Server local data error'))
        self.assertTrue(s.closed())
        self.assertTrue(pb.wait_until(lambda: [m for m in pb.journal_messages(POSTBUS_ROLE='smtpd', since=cursor)
                                               if m.startswith("don't know what EHLO features to announce to ")],
                                      what='the warning'))


if __name__ == '__main__':
    unittest.main()
