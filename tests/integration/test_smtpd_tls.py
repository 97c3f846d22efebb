"""smtpd's TLS: STARTTLS on port 25 (openssl s_client, swaks, Python's ssl), TLS 1.2 at least, the
STARTTLS command injection refused, implicit TLS on port 465, STARTTLS required on 587, and what the
ports do without a certificate."""
import re
import ssl
import subprocess
import unittest

import postbus as pb


def s_client(*args, input='QUIT\n'):
    """openssl s_client ARGS with CRLF line ends and the given lines as input; returns the
    CompletedProcess (stdout: the server's side of the conversation)."""
    return subprocess.run(['openssl', 's_client', '-crlf', '-quiet', '-verify_quiet', *args], input=input,
                          capture_output=True, text=True, timeout=60)


def reply_codes(output):
    """The codes of the complete SMTP replies in s_client's output, in order (the last line of a reply
    has a space after its code)."""
    return [int(code) for code in re.findall(r'(?m)^([2-5][0-9][0-9]) ', output)]


def smtpd_messages(since, text):
    """smtpd's journal messages after the cursor since that contain text."""
    return [m for m in pb.journal_messages(POSTBUS_ROLE='smtpd', since=since) if m and text in m]


class StartTls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        pb.add_user('erin')
        cls.cert, cls.key = pb.make_tls_certificate()
        pb.set_config(smtpd_tls_cert_file=cls.cert, smtpd_tls_key_file=cls.key, mynetworks='127.0.0.1/32',
                      smtpd_timeout='300s')

    def ehlo(self, port=25):
        s = pb.SmtpRaw('127.0.0.1', port)
        self.addCleanup(s.close)
        self.assertEqual(s.reply()[0], 220)
        code, text = s.cmd('EHLO client.example.org')
        self.assertEqual(code, 250)
        return s, text.split('\n')

    def test_starttls_offered_on_25_and_not_auth(self):
        _, lines = self.ehlo()
        self.assertIn('STARTTLS', lines)
        self.assertFalse(any(line.startswith('AUTH') for line in lines), lines)

    def test_s_client_starttls(self):
        cursor = pb.journal_cursor()
        p = s_client('-starttls', 'smtp', '-connect', '127.0.0.1:25', input='EHLO client.example.org\nQUIT\n')
        # s_client shows only what comes over TLS: the answers to EHLO and QUIT.
        self.assertEqual(reply_codes(p.stdout), [250, 221], p.stdout + p.stderr)
        self.assertIn('221 2.0.0', p.stdout, p.stderr)
        # After the handshake STARTTLS is offered no more.
        ehlo = [line for line in p.stdout.splitlines() if line.startswith('250')]
        self.assertIn('ENHANCEDSTATUSCODES', [line[4:] for line in ehlo], p.stdout)
        self.assertFalse(any('STARTTLS' in line for line in ehlo), p.stdout)
        pb.wait_until(lambda: smtpd_messages(cursor, 'Anonymous TLS connection established from unknown[127.0.0.1]'),
                      what='the TLS connection in the journal')

    def test_tls_1_2_accepted_tls_1_1_refused(self):
        p = s_client('-starttls', 'smtp', '-connect', '127.0.0.1:25', '-tls1_2')
        self.assertEqual(reply_codes(p.stdout), [221], p.stdout + p.stderr)
        self.assertIn('221 2.0.0', p.stdout, p.stderr)
        cursor = pb.journal_cursor()
        # Lower the client's own security level so that it offers TLS 1.1 at all: the refusal must be
        # the server's.
        p = s_client('-starttls', 'smtp', '-connect', '127.0.0.1:25', '-tls1_1', '-cipher', 'DEFAULT@SECLEVEL=0')
        self.assertNotIn('221 2.0.0', p.stdout)
        self.assertNotEqual(p.returncode, 0)
        errors = pb.wait_until(lambda: smtpd_messages(cursor, 'SSL_accept error'),
                               what='the refused handshake in the journal')
        self.assertTrue(any(re.search(r'unsupported protocol|wrong version|version too low', m) for m in errors),
                        errors)

    def test_swaks_tls_delivers_with_esmtps(self):
        if not pb.have('swaks'):
            self.skipTest('swaks not installed')
        p = pb.run_process('swaks', '--server', '127.0.0.1:25', '--tls', '--from', 'a@example.org',
                           '--to', 'erin@localhost', '--header', 'Subject: over tls', '--body', 'secret body',
                           check=False)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn('TLS started', p.stdout + p.stderr)
        msgs = pb.wait_until(lambda: [m for m in pb.mbox_messages('erin', parsed=True)
                                      if m['Subject'] == 'over tls'], what='the message in the mailbox')
        received = msgs[-1].get_all('Received')[0]
        self.assertIn('with ESMTPS', received)
        self.assertNotIn('Authenticated sender', received)

    def test_starttls_injection_is_discarded(self):
        cursor = pb.journal_cursor()
        s, _ = self.ehlo()
        # The attack: a command pipelined after STARTTLS in the same write, in plaintext.
        s.send(b'STARTTLS\r\nRSET\r\n')
        code, text = s.reply()
        self.assertEqual(code, 220, text)
        s.starttls()
        # Had RSET been kept, its "250 2.0.0 Ok" would be the first reply over TLS.
        code, text = s.cmd('EHLO client.example.org')
        self.assertEqual(code, 250)
        self.assertNotIn('2.0.0 Ok', text)
        self.assertIn('ENHANCEDSTATUSCODES', text)
        self.assertEqual(s.cmd('NOOP')[0], 250)
        self.assertEqual(s.cmd('QUIT')[0], 221)
        pb.wait_until(lambda: smtpd_messages(cursor, 'plaintext pipelined after STARTTLS'),
                      what='the discarded plaintext in the journal')

    def test_state_is_reset_after_starttls(self):
        s, _ = self.ehlo()
        self.assertEqual(s.cmd('STARTTLS')[0], 220)
        s.starttls()
        # RFC 3207: the EHLO before the handshake no longer counts. With smtpd_helo_required = no (Postfix's
        # default) MAIL is taken without one, as Postfix takes it (test_smtpd_esmtp covers = yes).
        self.assertEqual(s.cmd('MAIL FROM:<a@example.org>')[0], 250)
        self.assertEqual(s.cmd('RSET')[0], 250)
        self.assertEqual(s.cmd('EHLO client.example.org')[0], 250)
        self.assertEqual(s.cmd('STARTTLS')[0], 554)
        self.assertEqual(s.cmd('MAIL FROM:<a@example.org>')[0], 250)
        self.assertEqual(s.cmd('RCPT TO:<erin@localhost>')[0], 250)
        self.assertEqual(s.cmd('DATA')[0], 354)
        s.send(b'Subject: reset\r\n\r\nhello\r\n.\r\n')
        code, text = s.reply()
        self.assertEqual(code, 250, text)
        self.assertEqual(s.cmd('QUIT')[0], 221)

    def test_pipelining_over_tls(self):
        s, _ = self.ehlo()
        self.assertEqual(s.cmd('STARTTLS')[0], 220)
        s.starttls()
        # A whole transaction in one write: the replies must all come, in order.
        s.send(b'EHLO client.example.org\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<erin@localhost>\r\n'
               b'DATA\r\n')
        self.assertEqual(s.reply()[0], 250)
        self.assertEqual(s.reply()[0], 250)
        self.assertEqual(s.reply()[0], 250)
        self.assertEqual(s.reply()[0], 354)
        s.send(b'Subject: pipelined\r\n\r\n' + b'x' * 900 + b'\r\n' + (b'y' * 998 + b'\r\n') * 200
               + b'.\r\nQUIT\r\n')
        code, text = s.reply()
        self.assertEqual(code, 250, text)
        self.assertEqual(s.reply()[0], 221)

    def test_implicit_tls_on_465(self):
        p = s_client('-connect', '127.0.0.1:465', input='EHLO client.example.org\nQUIT\n')
        self.assertEqual(reply_codes(p.stdout), [220, 250, 221], p.stdout + p.stderr)
        self.assertRegex(p.stdout, r'(?m)^220 ')
        self.assertIn('221 2.0.0', p.stdout, p.stderr)
        self.assertRegex(p.stdout, r'(?m)^250[- ]AUTH PLAIN LOGIN$')
        self.assertNotIn('STARTTLS', p.stdout)

    def test_plaintext_on_465_gets_nothing(self):
        cursor = pb.journal_cursor()
        s = pb.SmtpRaw('127.0.0.1', 465)
        self.addCleanup(s.close)
        s.send(b'EHLO client.example.org\r\n')
        self.assertTrue(s.closed())
        pb.wait_until(lambda: smtpd_messages(cursor, 'SSL_accept error'), what='the failed handshake in the journal')

    def test_submission_requires_starttls(self):
        s, lines = self.ehlo(587)
        self.assertIn('STARTTLS', lines)
        self.assertFalse(any(line.startswith('AUTH') for line in lines), lines)
        code, text = s.cmd('MAIL FROM:<a@example.org>')
        self.assertEqual(code, 530)
        self.assertIn('5.7.0 Must issue a STARTTLS command first', text)
        self.assertEqual(s.cmd('STARTTLS')[0], 220)
        s.starttls()
        code, text = s.cmd('EHLO client.example.org')
        self.assertEqual(code, 250)
        self.assertIn('AUTH PLAIN LOGIN', text)
        self.assertEqual(s.cmd('MAIL FROM:<a@example.org>')[0], 250)

    def test_python_verifies_the_certificate(self):
        # The chain is checked against the test certificate (the name is not: we connect to an address).
        ctx = ssl.create_default_context(cafile=self.cert)
        ctx.check_hostname = False
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        s, _ = self.ehlo()
        self.assertEqual(s.cmd('STARTTLS')[0], 220)
        tls = s.starttls(ctx)
        self.assertIn(tls.version(), ('TLSv1.2', 'TLSv1.3'))
        self.assertEqual(s.cmd('EHLO client.example.org')[0], 250)


class HandshakeTimeout(unittest.TestCase):
    """smtpd_timeout bounds the whole TLS handshake: a client that never finishes it is dropped."""

    @classmethod
    def setUpClass(cls):
        cls.cert, cls.key = pb.make_tls_certificate()
        pb.set_config(smtpd_tls_cert_file=cls.cert, smtpd_tls_key_file=cls.key, smtpd_timeout='2s')

    def stalled(self, s, cursor):
        self.assertTrue(s.closed(timeout=60))
        pb.wait_until(lambda: smtpd_messages(cursor, 'timeout during the TLS handshake'),
                      what='the handshake timeout in the journal')

    def test_silent_client_on_465(self):
        cursor = pb.journal_cursor()
        with pb.SmtpRaw('127.0.0.1', 465) as s:
            self.stalled(s, cursor)

    def test_half_a_client_hello_after_starttls(self):
        cursor = pb.journal_cursor()
        with pb.SmtpRaw('127.0.0.1', 25) as s:
            self.assertEqual(s.reply()[0], 220)
            self.assertEqual(s.cmd('STARTTLS')[0], 220)
            # A TLS record header that announces more than ever comes.
            s.send(b'\x16\x03\x01\x02\x00\x01')
            self.stalled(s, cursor)


class NoCertificate(unittest.TestCase):
    """The default install has no certificate: 25 offers no STARTTLS, 587 refuses mail (no STARTTLS, no
    AUTH), 465 refuses connections with a journal record."""

    @classmethod
    def setUpClass(cls):
        pb.set_config(smtpd_tls_cert_file='', smtpd_tls_key_file='', smtpd_timeout='300s')

    def test_port_25_without_starttls(self):
        with pb.SmtpRaw('127.0.0.1', 25) as s:
            self.assertEqual(s.reply()[0], 220)
            code, text = s.cmd('EHLO client.example.org')
            self.assertEqual(code, 250, text)
            self.assertNotIn('STARTTLS', text)
            self.assertEqual(s.cmd('STARTTLS')[0], 502)
            self.assertEqual(s.cmd('MAIL FROM:<a@example.org>')[0], 250)

    def test_port_587_refuses_mail(self):
        with pb.SmtpRaw('127.0.0.1', 587) as s:
            self.assertEqual(s.reply()[0], 220)
            code, text = s.cmd('EHLO client.example.org')
            self.assertEqual(code, 250)
            self.assertNotIn('STARTTLS', text)
            self.assertNotIn('AUTH', text)
            self.assertEqual(s.cmd('MAIL FROM:<a@example.org>')[0], 530)
            self.assertEqual(s.cmd('AUTH PLAIN AGFsaWNlAHNlY3JldA==')[0], 538)

    def test_port_465_refused_with_a_record(self):
        cursor = pb.journal_cursor()
        with pb.SmtpRaw('127.0.0.1', 465) as s:
            self.assertTrue(s.closed())
        pb.wait_until(lambda: smtpd_messages(cursor, 'smtps: no TLS certificate'), what='the refusal in the journal')


class TlsLogLevel(unittest.TestCase):
    """smtpd_tls_loglevel = 0: no record of each TLS session (Postfix's default); 1, postbus's: one."""

    @classmethod
    def setUpClass(cls):
        cls.cert, cls.key = pb.make_tls_certificate()
        pb.set_config(smtpd_tls_cert_file=cls.cert, smtpd_tls_key_file=cls.key, smtpd_tls_loglevel='0')

    @classmethod
    def tearDownClass(cls):
        pb.set_config(smtpd_tls_loglevel='1')

    def test_level_0_logs_no_tls_session(self):
        cursor = pb.journal_cursor()
        p = s_client('-starttls', 'smtp', '-connect', '127.0.0.1:25', input='EHLO client.example.org\nQUIT\n')
        self.assertEqual(reply_codes(p.stdout), [250, 221], p.stdout + p.stderr)
        pb.wait_until(lambda: smtpd_messages(cursor, 'disconnect from'), what='the disconnect in the journal')
        self.assertEqual(smtpd_messages(cursor, 'TLS connection established'), [])


if __name__ == '__main__':
    unittest.main()
