"""A fresh install makes a certificate and offers STARTTLS. postbusctl tls new-server-cert: a key and self-signed certificate for $myhostname, set in main.cf, that
smtpd then offers in STARTTLS (Python's ssl verifies it by that name); existing files only with --force.
And smtpd_tls_received_header: the "(using TLSv1.3 with cipher ...)" line in Received over STARTTLS, not
without it."""
import grp
import os
import re
import shutil
import ssl
import stat
import subprocess
import unittest

import postbus as pb

HOSTNAME = 'mx.newcert.test'
CERT = '/etc/postbus/tls/smtpd-cert.pem'
KEY = '/etc/postbus/tls/smtpd-key.pem'


def postbusctl(*args):
    return pb.run_process('postbusctl', *args, check=False)


def param(name):
    return pb.run('postbusctl', 'config', name).split('=', 1)[1].strip()


def starttls(cafile, hostname):
    """A session on port 25 turned into TLS with the certificate checked against cafile and hostname;
    returns (SmtpRaw, the TLS socket)."""
    ctx = ssl.create_default_context(cafile=cafile)
    s = pb.SmtpRaw('127.0.0.1', 25)
    assert s.reply()[0] == 220
    code, text = s.cmd('EHLO client.example.org')
    assert code == 250 and 'STARTTLS' in text.split('\n'), text
    assert s.cmd('STARTTLS')[0] == 220
    s._buf = b''
    s.sock = ctx.wrap_socket(s.sock, server_hostname=hostname)
    return s, s.sock


class FreshInstall(unittest.TestCase):
    """conf/install-config, the last step of meson install onto the live system: with no main.cf (a fresh
    install) and the postbus users there, it makes the certificate, and port 25 offers STARTTLS."""

    def test_fresh_install_offers_starttls(self):
        sbindir = os.path.dirname(shutil.which('postbusctl'))
        dist = os.path.join(os.path.dirname(sbindir), 'share', 'postbus', 'main.cf.dist')
        self.assertTrue(os.path.exists(dist), dist)
        with open(pb.MAIN_CF, 'rb') as f:
            saved = f.read()
        self.addCleanup(pb.restart_services)
        self.addCleanup(pb.write_config, {'smtpd_tls_cert_file': '', 'smtpd_tls_key_file': ''})

        def restore():
            with open(pb.MAIN_CF, 'wb') as f:
                f.write(saved)
        self.addCleanup(restore)
        for f in (CERT, KEY, pb.MAIN_CF):
            if os.path.exists(f):
                os.unlink(f)
        script = os.path.join(os.environ['POSTBUS_SRCDIR'], 'conf', 'install-config')
        env = {k: v for k, v in os.environ.items() if k != 'DESTDIR'}
        p = subprocess.run([script, '/etc/postbus', dist, sbindir], env=env, capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(param('smtpd_tls_cert_file'), CERT)
        self.assertEqual(param('smtpd_tls_security_level'), 'may')
        pb.restart_services()
        s, tls = starttls(CERT, param('myhostname'))
        with s:
            self.assertEqual(s.cmd('EHLO client.example.org')[0], 250)

        # Again (an upgrade: main.cf is kept): the certificate is left alone.
        with open(CERT, 'rb') as f:
            before = f.read()
        p = subprocess.run([script, '/etc/postbus', dist, sbindir], env=env, capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        with open(CERT, 'rb') as f:
            self.assertEqual(f.read(), before)


class NewServerCert(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for f in (CERT, KEY):
            if os.path.exists(f):
                os.unlink(f)
        pb.set_config(smtpd_tls_cert_file='', smtpd_tls_key_file='', myhostname=HOSTNAME)

    @classmethod
    def tearDownClass(cls):
        pb.set_config(smtpd_tls_cert_file='', smtpd_tls_key_file='', myhostname='')

    def test_1_makes_deploys_and_smtpd_offers_it(self):
        p = postbusctl('tls', 'new-server-cert')
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        key, cert = os.stat(KEY), os.stat(CERT)
        self.assertEqual(stat.S_IMODE(key.st_mode), 0o640)
        self.assertEqual((key.st_uid, key.st_gid), (0, grp.getgrnam('postbus-smtpd').gr_gid))
        self.assertEqual(stat.S_IMODE(cert.st_mode), 0o644)
        self.assertEqual(cert.st_uid, 0)
        self.assertEqual(param('smtpd_tls_cert_file'), CERT)
        self.assertEqual(param('smtpd_tls_key_file'), KEY)
        with open(KEY) as f:
            self.assertIn('PRIVATE KEY', f.read())

        pb.restart_services()
        s, tls = starttls(CERT, HOSTNAME)
        with s:
            subject = dict(x[0] for x in tls.getpeercert()['subject'])
            self.assertEqual(subject['commonName'], HOSTNAME)
            self.assertIn(('DNS', HOSTNAME), tls.getpeercert()['subjectAltName'])
            self.assertEqual(s.cmd('EHLO client.example.org')[0], 250)
        # Another name does not verify: the certificate is for $myhostname only.
        with self.assertRaises(ssl.SSLCertVerificationError):
            starttls(CERT, 'other.test')

    def test_2_refuses_existing_files_and_replaces_with_force(self):
        with open(CERT, 'rb') as f:
            before = f.read()
        with open(KEY, 'rb') as f:
            key_before = f.read()
        p = postbusctl('tls', 'new-server-cert')
        self.assertNotEqual(p.returncode, 0)
        self.assertIn('--force', p.stderr)
        with open(CERT, 'rb') as f:
            self.assertEqual(f.read(), before)

        p = postbusctl('--force', 'tls', 'new-server-cert')
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        with open(CERT, 'rb') as f:
            self.assertNotEqual(f.read(), before)
        with open(KEY, 'rb') as f:
            self.assertNotEqual(f.read(), key_before)
        self.assertEqual(stat.S_IMODE(os.stat(KEY).st_mode), 0o640)
        pb.restart_services()
        s, tls = starttls(CERT, HOSTNAME)
        with s:
            self.assertEqual(s.cmd('EHLO client.example.org')[0], 250)

    def test_3_unknown_tls_command(self):
        p = postbusctl('tls', 'no-such-thing')
        self.assertEqual(p.returncode, 64)


class ReceivedTlsLine(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        pb.add_user('tess')
        cls.cert, cls.key = pb.make_tls_certificate(cn='mail.test')
        pb.set_config(smtpd_tls_cert_file=cls.cert, smtpd_tls_key_file=cls.key, mynetworks='127.0.0.1/32')

    @classmethod
    def tearDownClass(cls):
        pb.set_config(smtpd_tls_cert_file='', smtpd_tls_key_file='', smtpd_tls_received_header='no')

    def send_over_tls(self, subject):
        s, tls = starttls(self.cert, 'mail.test')
        with s:
            self.assertEqual(s.cmd('EHLO client.example.org')[0], 250)
            self.assertEqual(s.cmd('MAIL FROM:<a@example.org>')[0], 250)
            self.assertEqual(s.cmd('RCPT TO:<tess@localhost>')[0], 250)
            self.assertEqual(s.cmd('DATA')[0], 354)
            code, text = s.cmd(f'Subject: {subject}\r\n\r\nbody\r\n.')
            self.assertEqual(code, 250, text)
            version, cipher = tls.version(), tls.cipher()
        msgs = pb.wait_until(lambda: [m for m in pb.mbox_messages('tess') if f'\nSubject: {subject}\n' in m],
                             what='the message in the mailbox')
        return msgs[-1], version, cipher

    @staticmethod
    def received(text):
        """The first Received header as written, with its folded lines."""
        m = re.search(r'(?ms)^Received: .*?(?=^\S)', text)
        assert m, text
        return m.group(0)

    def test_yes_adds_the_using_line(self):
        pb.set_config(smtpd_tls_received_header='yes')
        msg, version, (name, _, bits) = self.send_over_tls('received yes')
        raw = self.received(msg)
        # The unfolded text, and the folded lines as written (Postfix's shape: "(using" starts a line).
        text = ' '.join(raw.split())
        self.assertIn(f'(using {version} with cipher {name} ({bits}/{bits} bits)', text)
        self.assertIn('(No client certificate requested)', text)
        self.assertIn('with ESMTPS', text)
        if version == 'TLSv1.3':
            self.assertIn('key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256)', text)
        lines = raw.split('\n')
        self.assertEqual(lines[1], f'\t(using {version} with cipher {name} ({bits}/{bits} bits)', raw)
        # TLS 1.3 has the key exchange on a line of its own, then the client certificate line.
        self.assertIn('\t(No client certificate requested)', lines[2:4], raw)

    def test_no_leaves_it_out(self):
        pb.set_config(smtpd_tls_received_header='no')
        msg, _, _ = self.send_over_tls('received no')
        raw = self.received(msg)
        self.assertIn('with ESMTPS', raw)
        self.assertNotIn('(using', raw)
        self.assertNotIn('cipher', raw)


if __name__ == '__main__':
    unittest.main()
