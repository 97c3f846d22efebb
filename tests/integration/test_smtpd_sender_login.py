"""smtpd_sender_login_maps and reject_sender_login_mismatch, reject_known_sender_login_mismatch,
reject_authenticated_sender_login_mismatch and reject_unauthenticated_sender_login_mismatch over real SMTP,
with AUTH checked by a real Dovecot (as test_smtpd_auth sets it up): the owners of an address are found by
the address, without its extension, by the local part in a local domain, and by @domain, as Postfix finds
them; smtpd_delay_reject = no, so that the refusal answers MAIL."""
import os
import unittest

import postbus as pb
from test_smtpd_auth import AUTH_SOCKET, PASSWORD, USER, plain, start_dovecot_with_config, stop_dovecot

HOST = 'mx.example.test'
ETC = '/etc/postbus'


def build_table(name, text):
    path = os.path.join(ETC, name)
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)
    pb.run('postbusctl', 'map', 'build', path)
    return f'hash:{path}'


class SenderLogin(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        start_dovecot_with_config()
        cls.addClassCleanup(stop_dovecot)
        cert, key = pb.make_tls_certificate()
        logins = build_table('sender_logins', f'{USER}@example.org {USER}\n'
                                              'bob@example.org bob\n'
                                              f'shared@example.org bob, {USER.upper()}\n'
                                              '@owned.example carol\n'
                                              f'{USER} {USER}\n')
        pb.set_config(myhostname=HOST, mynetworks='127.0.0.1/32', alias_maps='', smtpd_tls_cert_file=cert,
                      smtpd_tls_key_file=key, smtpd_sasl_path=AUTH_SOCKET, smtpd_sender_login_maps=logins,
                      smtpd_delay_reject='no', recipient_delimiter='+')

    def use(self, restriction):
        pb.set_config(smtpd_sender_restrictions=restriction)

    def authenticated(self):
        """A session on 587 after STARTTLS, logged in as USER."""
        s = pb.SmtpRaw('127.0.0.1', 587, source='127.0.0.2', timeout=60)
        self.addCleanup(s.close)
        self.assertEqual(s.reply()[0], 220)
        self.assertEqual(s.cmd('EHLO client.example.org')[0], 250)
        self.assertEqual(s.cmd('STARTTLS')[0], 220)
        s.starttls()
        self.assertEqual(s.cmd('EHLO client.example.org')[0], 250)
        code, text = s.cmd('AUTH PLAIN ' + plain(USER, PASSWORD))
        self.assertEqual(code, 235, text)
        return s

    def anonymous(self):
        s = pb.SmtpRaw('127.0.0.1', 25, source='127.0.0.3')
        self.addCleanup(s.close)
        self.assertEqual(s.reply()[0], 220)
        self.assertEqual(s.cmd('EHLO client.example.org')[0], 250)
        return s

    def mail(self, s, sender):
        reply = s.cmd(f'MAIL FROM:<{sender}>')
        s.cmd('RSET')
        return reply

    def test_sender_login_mismatch(self):
        self.use('reject_sender_login_mismatch')
        cursor = pb.journal_cursor()
        s = self.authenticated()
        self.assertEqual(self.mail(s, f'{USER}@example.org')[0], 250)
        # without the extension, and whatever the case; one of several owners
        self.assertEqual(self.mail(s, f'{USER.capitalize()}+lists@Example.ORG')[0], 250)
        self.assertEqual(self.mail(s, 'shared@example.org')[0], 250)
        # the local part alone, in a local domain only
        self.assertEqual(self.mail(s, f'{USER}@{HOST}')[0], 250)
        self.assertEqual(self.mail(s, f'{USER}@elsewhere.example'),
                         (553, f'5.7.1 <{USER}@elsewhere.example>: Sender address rejected: not owned by user {USER}'))
        self.assertEqual(self.mail(s, 'bob@example.org'),
                         (553, f'5.7.1 <bob@example.org>: Sender address rejected: not owned by user {USER}'))
        self.assertEqual(self.mail(s, 'x@owned.example'),
                         (553, f'5.7.1 <x@owned.example>: Sender address rejected: not owned by user {USER}'))
        self.assertEqual(self.mail(s, '')[0], 250)
        s.cmd('QUIT')

        a = self.anonymous()
        self.assertEqual(self.mail(a, 'bob@example.org'),
                         (553, '5.7.1 <bob@example.org>: Sender address rejected: not logged in'))
        self.assertEqual(self.mail(a, 'x@owned.example')[0], 553)
        self.assertEqual(self.mail(a, 'nobody@unlisted.example')[0], 250)
        a.cmd('QUIT')
        msgs = pb.journal_messages(POSTBUS_ROLE='smtpd', since=cursor)
        self.assertIn('NOQUEUE: reject: MAIL from unknown[127.0.0.3]: 553 5.7.1 <bob@example.org>: Sender address '
                      'rejected: not logged in; from=<bob@example.org> proto=ESMTP helo=<client.example.org>', msgs)

    def test_known_sender_login_mismatch(self):
        self.use('reject_known_sender_login_mismatch')
        s = self.authenticated()
        # an address nobody owns may be used by anyone logged in
        self.assertEqual(self.mail(s, 'nobody@unlisted.example')[0], 250)
        self.assertEqual(self.mail(s, 'bob@example.org')[0], 553)
        s.cmd('QUIT')
        a = self.anonymous()
        self.assertEqual(self.mail(a, 'bob@example.org'),
                         (553, '5.7.1 <bob@example.org>: Sender address rejected: not logged in'))
        a.cmd('QUIT')

    def test_authenticated_sender_login_mismatch(self):
        self.use('reject_authenticated_sender_login_mismatch')
        s = self.authenticated()
        self.assertEqual(self.mail(s, 'nobody@unlisted.example'),
                         (553, f'5.7.1 <nobody@unlisted.example>: Sender address rejected: not owned by user {USER}'))
        s.cmd('QUIT')
        a = self.anonymous()
        self.assertEqual(self.mail(a, 'bob@example.org')[0], 250)
        a.cmd('QUIT')

    def test_unauthenticated_sender_login_mismatch(self):
        self.use('reject_unauthenticated_sender_login_mismatch')
        s = self.authenticated()
        self.assertEqual(self.mail(s, 'bob@example.org')[0], 250)
        s.cmd('QUIT')
        a = self.anonymous()
        self.assertEqual(self.mail(a, 'bob@example.org')[0], 553)
        self.assertEqual(self.mail(a, f'{USER}@example.org'),
                         (553, f'5.7.1 <{USER}@example.org>: Sender address rejected: not logged in'))
        a.cmd('QUIT')


if __name__ == '__main__':
    unittest.main()
