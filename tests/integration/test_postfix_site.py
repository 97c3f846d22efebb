#!/usr/bin/python3
"""A site's configuration as a Postfix administrator writes it, run unchanged: a relay for its own
networks and for SASL-authenticated users on the submission port, local delivery through a
mailbox_command script, regexp header checks, a cidr client access table, HOLD for one sender, and a
backup-MX domain in relay_domains. main.cf, master.cf and the tables are written whole, in Postfix's
syntax, below; each behaviour is then checked through the real daemons."""

import glob
import os
import smtplib
import unittest

import postbus as pb
import test_smtp as ts
import test_smtpd_auth as auth

SINK_PORT = 2525        # the provider's relay host
BACKUP_PORT = 2526      # the primary MX of the domain this site is backup MX for
MDA = '/usr/local/bin/site-mda'

MAIN_CF = f"""# /etc/postfix/main.cf of a small site: relay for the office network and for
# authenticated users, local mailboxes through a delivery script, backup MX for backup.test.
smtpd_banner = $myhostname ESMTP $mail_name (Debian/GNU)
biff = no
append_dot_mydomain = no
readme_directory = no
compatibility_level = 3.6

myhostname = mail.site.test
mydomain = site.test
myorigin = $mydomain
mydestination = $myhostname, localhost.$mydomain, localhost, $mydomain
mynetworks = 127.0.0.1/32 [::1]/128
inet_interfaces = all
inet_protocols = ipv4
relayhost = [127.0.0.1]:{SINK_PORT}
relay_domains = backup.test
transport_maps = hash:/etc/postbus/transport
alias_maps = hash:/etc/aliases
alias_database = hash:/etc/aliases
recipient_delimiter = +
mailbox_size_limit = 0
mailbox_command = {MDA} "$USER"

smtpd_tls_cert_file = /etc/postbus/tls/cert.pem
smtpd_tls_key_file = /etc/postbus/tls/key.pem
smtpd_tls_security_level = may
smtpd_sasl_type = dovecot
smtpd_sasl_path = {auth.AUTH_SOCKET}

smtpd_client_restrictions = check_client_access cidr:/etc/postbus/client_access.cidr
smtpd_sender_restrictions = check_sender_access hash:/etc/postbus/sender_access
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination
smtpd_recipient_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination
header_checks = regexp:/etc/postbus/header_checks
"""

MASTER_CF = """# service type  private unpriv  chroot  wakeup  maxproc command + args
smtp      inet  n       -       y       -       -       smtpd
submission inet n       -       y       -       -       smtpd
  -o syslog_name=postfix/submission
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_client_restrictions=permit_sasl_authenticated,reject
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
smtp      unix  -       -       y       -       -       smtp
relay     unix  -       -       y       -       -       smtp
local     unix  -       n       n       -       -       local
"""

TABLES = {
    'client_access.cidr': '# a known spammer network, and one address in it that is fine\n'
                          '127.0.0.66/32   OK\n'
                          '127.0.0.64/28   REJECT spam source\n',
    'sender_access': 'review@partner.test  HOLD held for review\n',
    'header_checks': '/^Subject:.*\\bforbidden\\b/  REJECT no forbidden subjects here\n'
                     '/^X-Mailer: BadMailer/       REJECT 5.7.1 mailer not welcome\n',
    'transport': 'backup.test  relay:[127.0.0.1]:%d\n' % BACKUP_PORT,
}


class PostfixSite(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        for user in ('alice', 'bob'):
            pb.add_user(user)
        with open(MDA, 'w') as f:
            f.write('#!/bin/sh\n# the site\'s delivery script: one file per message in the user\'s home\n'
                    'cat > "$HOME/site-mda.$1.$$"\n')
        os.chmod(MDA, 0o755)
        cls.sink = ts.FakeServer(port=SINK_PORT)
        cls.backup = ts.FakeServer(port=BACKUP_PORT)
        pb.make_tls_certificate()
        auth.start_dovecot_with_config()
        for name, text in TABLES.items():
            with open(f'/etc/postbus/{name}', 'w') as f:
                f.write(text)
        for name in ('sender_access', 'transport'):
            pb.run('postbusctl', 'map', 'build', f'/etc/postbus/{name}')
        with open('/etc/postbus/main.cf', 'w') as f:
            f.write(MAIN_CF)
        with open('/etc/postbus/master.cf', 'w') as f:
            f.write(MASTER_CF)
        pb.run('systemctl', 'daemon-reload')
        pb.restart_services()

    @classmethod
    def tearDownClass(cls):
        auth.stop_dovecot()

    def mda_files(self, user, marker):
        found = []
        for path in glob.glob(f'/home/{user}/site-mda.{user}.*'):
            with open(path, 'rb') as f:
                if marker.encode() in f.read():
                    found.append(path)
        return found

    def relayed(self, server, marker):
        with server.lock:
            return [t for t in server.transactions if t.data and marker.encode() in t.data]

    def test_local_mail_goes_through_mailbox_command(self):
        pb.send('someone@example.net', 'alice@site.test', 'Subject: hi\n\nlocal-marker-1\n', source_address='127.0.0.5')
        files = pb.wait_until(lambda: self.mda_files('alice', 'local-marker-1'), what="the script's file for alice")
        self.assertEqual(len(files), 1)
        self.assertEqual(os.stat(files[0]).st_uid, pb.uid('alice'))

    def test_office_network_relays(self):
        pb.send('alice@site.test', 'friend@example.net', 'Subject: out\n\nrelay-marker-1\n')
        [t] = pb.wait_until(lambda: self.relayed(self.sink, 'relay-marker-1'), what='the relayed mail at the relay host')
        self.assertIn('<friend@example.net>', t.rcpts[0])

    def test_outsiders_may_not_relay(self):
        with self.assertRaises(smtplib.SMTPRecipientsRefused) as e:
            pb.send('x@example.org', 'friend@example.net', 'no\n', source_address='127.0.0.5')
        code, text = e.exception.recipients['friend@example.net']
        self.assertEqual(code, 554)
        self.assertIn(b'5.7.1 <friend@example.net>: Relay access denied', text)

    def test_authenticated_submission_relays(self):
        s = pb.SmtpRaw('127.0.0.1', 587, source='127.0.0.5', timeout=60)
        self.addCleanup(s.close)
        self.assertEqual(s.reply()[0], 220)
        self.assertEqual(s.cmd('EHLO laptop.example.org')[0], 250)
        # smtpd_tls_security_level=encrypt on 587: nothing before STARTTLS
        self.assertEqual(s.cmd('MAIL FROM:<alice@site.test>')[0], 530)
        self.assertEqual(s.cmd('STARTTLS')[0], 220)
        s.starttls()
        self.assertEqual(s.cmd('EHLO laptop.example.org')[0], 250)
        self.assertEqual(s.cmd('AUTH PLAIN ' + auth.plain(auth.USER, auth.PASSWORD))[0], 235)
        self.assertEqual(s.cmd('MAIL FROM:<alice@site.test>')[0], 250)
        self.assertEqual(s.cmd('RCPT TO:<friend@example.net>')[0], 250)
        self.assertEqual(s.cmd('DATA')[0], 354)
        s.send('Subject: from the road\r\n\r\nsubmission-marker-1\r\n.\r\n')
        self.assertEqual(s.reply()[0], 250)
        pb.wait_until(lambda: self.relayed(self.sink, 'submission-marker-1'), what='the submitted mail at the relay host')

    def test_submission_refuses_unauthenticated(self):
        s = pb.SmtpRaw('127.0.0.1', 587, source='127.0.0.5', timeout=60)
        self.addCleanup(s.close)
        self.assertEqual(s.reply()[0], 220)
        self.assertEqual(s.cmd('EHLO laptop.example.org')[0], 250)
        self.assertEqual(s.cmd('STARTTLS')[0], 220)
        s.starttls()
        self.assertEqual(s.cmd('EHLO laptop.example.org')[0], 250)
        code, text = s.cmd('MAIL FROM:<alice@site.test>')
        if code == 250:
            code, text = s.cmd('RCPT TO:<alice@site.test>')
        self.assertEqual(code, 554, text)

    def test_cidr_client_access(self):
        with self.assertRaises(smtplib.SMTPRecipientsRefused) as e:
            pb.send('x@example.org', 'alice@site.test', 'no\n', source_address='127.0.0.65')
        code, text = e.exception.recipients['alice@site.test']
        self.assertEqual(code, 554)
        self.assertIn(b'Client host rejected: spam source', text)
        # the exception before it in the file wins
        pb.send('x@example.org', 'alice@site.test', 'Subject: ok\n\ncidr-marker-1\n', source_address='127.0.0.66')
        pb.wait_until(lambda: self.mda_files('alice', 'cidr-marker-1'), what='mail from the excepted address')

    def test_header_checks(self):
        with self.assertRaises(smtplib.SMTPDataError) as e:
            pb.send('x@example.org', 'alice@site.test', 'Subject: a forbidden thing\n\nx\n', source_address='127.0.0.5')
        self.assertEqual(e.exception.smtp_code, 550)
        self.assertIn(b'no forbidden subjects here', e.exception.smtp_error)
        with self.assertRaises(smtplib.SMTPDataError) as e:
            pb.send('x@example.org', 'alice@site.test', 'X-Mailer: BadMailer 1.0\nSubject: x\n\nx\n',
                    source_address='127.0.0.5')
        self.assertEqual(e.exception.smtp_code, 550)
        self.assertIn(b'5.7.1 mailer not welcome', e.exception.smtp_error)

    def test_hold_for_a_sender(self):
        qid = pb.send('review@partner.test', 'bob@site.test', 'Subject: contract\n\nhold-marker-1\n',
                      source_address='127.0.0.5')
        pb.wait_until(lambda: os.path.exists(f'/var/spool/postbus/hold/{qid}'), what='the message in the hold queue')
        self.assertEqual(self.mda_files('bob', 'hold-marker-1'), [])

    def test_backup_mx_domain(self):
        # Anyone may send to a relay_domains domain; it goes to its primary MX, here through transport_maps.
        pb.send('x@example.org', 'user@backup.test', 'Subject: for the primary\n\nbackup-marker-1\n',
                source_address='127.0.0.5')
        [t] = pb.wait_until(lambda: self.relayed(self.backup, 'backup-marker-1'), what='the mail at the primary MX')
        self.assertIn('<user@backup.test>', t.rcpts[0])


if __name__ == '__main__':
    unittest.main()
