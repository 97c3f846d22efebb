"""smtpd's AUTH against a real Dovecot (Debian's dovecot-core, started here with a minimal
configuration: a passwd-file with one user, the auth socket where smtpd looks for it, owned by postbus):
PLAIN and LOGIN on 587 after STARTTLS and on 465, never before TLS, wrong passwords refused, and
relaying for authenticated clients only."""
import base64
import os
import smtplib
import ssl
import unittest

import postbus as pb

DOVECOT_DIR = '/etc/postbus-test-dovecot'
DOVECOT_CONF = os.path.join(DOVECOT_DIR, 'dovecot.conf')
AUTH_SOCKET = '/run/dovecot/auth-postbus'
USER, PASSWORD = 'alice', 'correct horse battery'
CLIENT = '127.0.0.2'            # outside mynetworks: may relay only when authenticated


def b64(s):
    return base64.b64encode(s.encode()).decode()


def plain(user, password):
    return b64(f'\0{user}\0{password}')


# Not postbus-*: restart_services() stops those.
DOVECOT_UNIT = 'test-dovecot-for-postbus.service'


def start_dovecot():
    """Runs Dovecot in the foreground as a transient unit, so that systemd owns and stops it."""
    pb.run('systemd-run', '--unit', DOVECOT_UNIT, '--collect', '--', 'dovecot', '-F', '-c', DOVECOT_CONF)
    pb.wait_until(lambda: pb.run_process('doveadm', '-c', DOVECOT_CONF, 'auth', 'test', USER, PASSWORD,
                                         check=False).returncode == 0,
                  what="Dovecot's authentication service")


def stop_dovecot():
    pb.systemctl('stop', DOVECOT_UNIT, check=False)
    pb.wait_until(lambda: not pb.unit_active(DOVECOT_UNIT), what='Dovecot to stop')


def start_dovecot_with_config():
    """Writes the minimal Dovecot configuration (one user, the auth socket for postbus-smtpd) and starts it."""
    pb.systemctl('stop', 'dovecot.service', check=False)
    os.makedirs(DOVECOT_DIR, exist_ok=True)
    with open(os.path.join(DOVECOT_DIR, 'users'), 'w') as f:
        f.write(f'{USER}:{{PLAIN}}{PASSWORD}::::::\n')
    with open(DOVECOT_CONF, 'w') as f:
        f.write(f"""# Authentication only, for postbus's smtpd.
protocols = none
base_dir = /run/dovecot
log_path = /var/log/postbus-test-dovecot.log
auth_mechanisms = plain login
auth_verbose = yes
ssl = no
passdb {{
  driver = passwd-file
  args = {DOVECOT_DIR}/users
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home=/nonexistent
}}
service auth {{
  unix_listener auth-postbus {{
    mode = 0660
    user = postbus-smtpd
    group = postbus-smtpd
  }}
}}
""")
    start_dovecot()


def tls_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Auth(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        pb.add_user('erin')
        start_dovecot_with_config()
        cls.cert, cls.key = pb.make_tls_certificate()
        pb.set_config(smtpd_tls_cert_file=cls.cert, smtpd_tls_key_file=cls.key, mynetworks='127.0.0.1/32',
                      smtpd_sasl_path=AUTH_SOCKET)

    @classmethod
    def tearDownClass(cls):
        stop_dovecot()

    def submission(self, port=587):
        """A session on 587 after STARTTLS and EHLO, or on 465 after EHLO; returns it and the EHLO text."""
        # Dovecot delays the answer to failed attempts, the more the more failures came from the client's
        # address (its auth penalty): wait for it.
        s = pb.SmtpRaw('127.0.0.1', port, source=CLIENT, timeout=120)
        self.addCleanup(s.close)
        if port == 465:
            s.starttls()
        self.assertEqual(s.reply()[0], 220)
        if port != 465:
            self.assertEqual(s.cmd('EHLO client.example.org')[0], 250)
            self.assertEqual(s.cmd('STARTTLS')[0], 220)
            s.starttls()
        code, text = s.cmd('EHLO client.example.org')
        self.assertEqual(code, 250)
        return s, text

    def test_broken_sasl_auth_clients(self):
        _, ehlo = self.submission()
        self.assertNotIn('AUTH=', ehlo)
        # Two more restarts of smtpd: systemd's start rate limit is reset first, so that they do not hit it.
        units = ('postbus-smtpd.service', 'postbus-smtpd.socket', 'postbus-submission.socket', 'postbus-smtps.socket')
        self.addCleanup(pb.set_config, broken_sasl_auth_clients='no')
        self.addCleanup(pb.systemctl, 'reset-failed', *units, check=False)
        pb.systemctl('reset-failed', *units, check=False)
        pb.set_config(broken_sasl_auth_clients='yes')
        _, ehlo = self.submission()
        lines = ehlo.split('\n')
        self.assertIn('AUTH PLAIN LOGIN', lines)
        self.assertIn('AUTH=PLAIN LOGIN', lines)

    def test_auth_not_before_tls(self):
        s = pb.SmtpRaw('127.0.0.1', 587, source=CLIENT)
        self.addCleanup(s.close)
        self.assertEqual(s.reply()[0], 220)
        code, text = s.cmd('EHLO client.example.org')
        self.assertNotIn('AUTH', text)
        code, text = s.cmd('AUTH PLAIN ' + plain(USER, PASSWORD))
        self.assertEqual(code, 538)
        self.assertIn('5.7.11 Encryption required', text)

    def test_plain_on_587_may_relay(self):
        cursor = pb.journal_cursor()
        s, ehlo = self.submission()
        self.assertIn('AUTH PLAIN LOGIN', ehlo)
        code, text = s.cmd('AUTH PLAIN ' + plain(USER, PASSWORD))
        self.assertEqual(code, 235, text)
        self.assertIn('2.7.0 Authentication successful', text)
        self.assertEqual(s.cmd('AUTH PLAIN ' + plain(USER, PASSWORD))[0], 503)
        self.assertEqual(s.cmd('MAIL FROM:<alice@example.org> AUTH=<>')[0], 250)
        code, text = s.cmd('RCPT TO:<bob@remote.example>')
        self.assertEqual(code, 250, text)
        self.assertEqual(s.cmd('RCPT TO:<erin@localhost>')[0], 250)
        self.assertEqual(s.cmd('DATA')[0], 354)
        s.send(b'Subject: authenticated\r\n\r\nhello\r\n.\r\n')
        code, text = s.reply()
        self.assertEqual(code, 250, text)
        qid = pb.queue_id_from_text(text)
        self.assertEqual(s.cmd('QUIT')[0], 221)

        msgs = pb.wait_until(lambda: [m for m in pb.mbox_messages('erin', parsed=True)
                                      if m['Subject'] == 'authenticated'], what='the message in the mailbox')
        received = msgs[-1].get_all('Received')[0]
        self.assertIn('(Authenticated sender: alice)', received)
        self.assertIn('with ESMTPSA', received)
        recs = pb.journal(QUEUE_ID=qid, POSTBUS_ROLE='smtpd', since=cursor)
        self.assertTrue(any(r.get('SASL_USERNAME') == USER and r.get('SASL_METHOD') == 'PLAIN' and
                            r['MESSAGE'].endswith(f'client=unknown[{CLIENT}], sasl_method=PLAIN, sasl_username={USER}')
                            for r in recs), recs)

    def test_anonymous_may_not_relay(self):
        s, _ = self.submission()
        self.assertEqual(s.cmd('MAIL FROM:<alice@example.org>')[0], 250)
        code, text = s.cmd('RCPT TO:<bob@remote.example>')
        self.assertEqual(code, 554)
        self.assertIn('5.7.1', text)

    def test_wrong_password(self):
        cursor = pb.journal_cursor()
        s, _ = self.submission()
        code, text = s.cmd('AUTH PLAIN ' + plain(USER, 'wrong'))
        self.assertEqual(code, 535)
        self.assertIn('5.7.8 Error: authentication failed', text)
        code, text = s.cmd('AUTH PLAIN ' + plain('nobody-here', PASSWORD))
        self.assertEqual(code, 535)
        # Still anonymous: no relaying.
        self.assertEqual(s.cmd('MAIL FROM:<alice@example.org>')[0], 250)
        self.assertEqual(s.cmd('RCPT TO:<bob@remote.example>')[0], 554)
        recs = pb.journal_messages(POSTBUS_ROLE='smtpd', CLIENT_ADDRESS=CLIENT, since=cursor)
        self.assertTrue(any(m and 'SASL PLAIN authentication failed' in m for m in recs), recs[-10:])

    def test_login_on_465(self):
        s, ehlo = self.submission(465)
        self.assertIn('AUTH PLAIN LOGIN', ehlo)
        code, text = s.cmd('AUTH LOGIN')
        self.assertEqual(code, 334)
        self.assertEqual(base64.b64decode(text).decode(), 'Username:')
        code, text = s.cmd(b64(USER))
        self.assertEqual(code, 334)
        self.assertEqual(base64.b64decode(text).decode(), 'Password:')
        code, text = s.cmd(b64(PASSWORD))
        self.assertEqual(code, 235, text)
        self.assertEqual(s.cmd('MAIL FROM:<alice@example.org>')[0], 250)
        self.assertEqual(s.cmd('RCPT TO:<bob@remote.example>')[0], 250)

    def test_smtplib_on_465(self):
        with smtplib.SMTP_SSL('127.0.0.1', 465, context=tls_context(), source_address=(CLIENT, 0),
                              timeout=30) as c:
            c.ehlo('client.example.org')
            code, _ = c.login(USER, PASSWORD)
            self.assertEqual(code, 235)
            refused = c.sendmail('alice@example.org', ['bob@remote.example'], b'Subject: x\r\n\r\nbody\r\n')
            self.assertEqual(refused, {})
        with smtplib.SMTP_SSL('127.0.0.1', 465, context=tls_context(), source_address=(CLIENT, 0),
                              timeout=30) as c:
            c.ehlo('client.example.org')
            with self.assertRaises(smtplib.SMTPAuthenticationError) as e:
                c.login(USER, 'not the password')
            self.assertEqual(e.exception.smtp_code, 535)

    def test_swaks_on_587(self):
        if not pb.have('swaks'):
            self.skipTest('swaks not installed')
        p = pb.run_process('swaks', '--server', '127.0.0.1:587', '--local-interface', CLIENT, '--tls',
                           '--auth', 'LOGIN', '--auth-user', USER, '--auth-password', PASSWORD,
                           '--from', 'alice@example.org', '--to', 'bob@remote.example', check=False)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn('235 2.7.0', p.stdout)
        p = pb.run_process('swaks', '--server', '127.0.0.1:587', '--local-interface', CLIENT, '--tls',
                           '--auth', 'PLAIN', '--auth-user', USER, '--auth-password', 'nope',
                           '--from', 'alice@example.org', '--to', 'bob@remote.example', check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn('535 5.7.8', p.stdout)

    def test_exchange_errors(self):
        s, _ = self.submission()
        self.assertEqual(s.cmd('AUTH CRAM-MD5')[0], 504)
        self.assertEqual(s.cmd('AUTH PLAIN not*base64')[0], 501)
        self.assertEqual(s.cmd('AUTH LOGIN')[0], 334)
        code, text = s.cmd('*')
        self.assertEqual(code, 501)
        self.assertIn('Authentication aborted', text)
        self.assertEqual(s.cmd('AUTH LOGIN')[0], 334)
        self.assertEqual(s.cmd('!!notbase64')[0], 501)
        self.assertEqual(s.cmd('AUTH PLAIN')[0], 334)
        self.assertEqual(s.cmd(plain(USER, PASSWORD))[0], 235)

    def test_no_auth_on_25(self):
        s = pb.SmtpRaw('127.0.0.1', 25, source=CLIENT)
        self.addCleanup(s.close)
        self.assertEqual(s.reply()[0], 220)
        self.assertEqual(s.cmd('EHLO client.example.org')[0], 250)
        self.assertEqual(s.cmd('STARTTLS')[0], 220)
        s.starttls()
        code, text = s.cmd('EHLO client.example.org')
        self.assertEqual(code, 250, text)
        self.assertNotIn('AUTH', text)
        self.assertEqual(s.cmd('AUTH PLAIN ' + plain(USER, PASSWORD))[0], 503)

    def test_zz_dovecot_down(self):
        stop_dovecot()
        self.addCleanup(start_dovecot)
        s, _ = self.submission()
        code, text = s.cmd('AUTH PLAIN ' + plain(USER, PASSWORD))
        self.assertEqual(code, 454)
        self.assertIn('4.7.0', text)
        self.assertEqual(s.cmd('NOOP')[0], 250)


if __name__ == '__main__':
    unittest.main()
