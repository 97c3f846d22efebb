"""Debian 12's Postfix main.cf (as "Internet Site" writes it) given to postbus whole: no parameter is
unknown, and each line has Postfix's meaning: the banner's $mail_name, myorigin from /etc/mailname,
${data_directory}, mailbox_size_limit = 0, defer_unauth_destination (454), the IPv4-mapped network in
mynetworks, the empty item in mydestination, newaliases building alias_database, inet_interfaces
checked against smtpd's sockets, and Debian's other debconf choice, mailbox_command."""
import os
import re
import unittest

import postbus as pb

MAILNAME = 'mail.debian.example'

DEBIAN_MAIN_CF = """\
# See /usr/share/postfix/main.cf.dist for a commented, more complete version


# Debian specific:  Specifying a file name will cause the first
# line of that file to be used as the name.  The Debian default
# is /etc/mailname.
#myorigin = /etc/mailname

smtpd_banner = $myhostname ESMTP $mail_name (Debian/GNU)
biff = no

# appending .domain is the MUA's job.
append_dot_mydomain = no

# Uncomment the next line to generate "delayed mail" warnings
#delay_warning_time = 4h

readme_directory = no

# See http://www.postfix.org/COMPATIBILITY_README.html -- default to 3.6 on
# fresh installs.
compatibility_level = 3.6



# TLS parameters
smtpd_tls_cert_file=/etc/ssl/certs/ssl-cert-snakeoil.pem
smtpd_tls_key_file=/etc/ssl/private/ssl-cert-snakeoil.key
smtpd_tls_security_level=may

smtp_tls_CApath=/etc/ssl/certs
smtp_tls_security_level=may
smtp_tls_session_cache_database = btree:${data_directory}/smtp_scache


smtpd_relay_restrictions = permit_mynetworks permit_sasl_authenticated defer_unauth_destination
myhostname = debian
alias_maps = hash:/etc/aliases
alias_database = hash:/etc/aliases
myorigin = /etc/mailname
mydestination = $myhostname, debian, localhost.localdomain, , localhost
relayhost =
mynetworks = 127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128
mailbox_size_limit = 0
recipient_delimiter = +
inet_interfaces = all
inet_protocols = all
"""


def snakeoil():
    """What Debian's ssl-cert package makes, for smtpd_tls_*_file: a self-signed certificate, its key in
    /etc/ssl/private (0710 root:ssl-cert), and the user postbus in the group ssl-cert to read it."""
    cert, key = '/etc/ssl/certs/ssl-cert-snakeoil.pem', '/etc/ssl/private/ssl-cert-snakeoil.key'
    if not os.path.exists(cert):
        os.makedirs('/etc/ssl/private', exist_ok=True)
        pb.run('openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert,
               '-days', '2', '-subj', '/CN=debian')
    if pb.run_process('getent', 'group', 'ssl-cert', check=False).returncode != 0:
        pb.run('groupadd', '--system', 'ssl-cert')
    pb.run('chgrp', 'ssl-cert', '/etc/ssl/private', key)
    os.chmod('/etc/ssl/private', 0o710)
    os.chmod(key, 0o640)
    os.chmod(cert, 0o644)
    pb.run('usermod', '-a', '-G', 'ssl-cert', 'postbus-smtpd')


def reconfigure(**params):
    """set_config, with systemd's start rate limit of the smtpd units reset first: the tests here restart
    smtpd more often than StartLimitBurst= allows in StartLimitIntervalSec=."""
    pb.systemctl('reset-failed', 'postbus-smtpd.service', 'postbus-smtpd.socket', 'postbus-submission.socket',
                 'postbus-smtps.socket', check=False)
    pb.set_config(**params)


def read(path):
    """The text of path, or '' while it does not exist."""
    try:
        with open(path, encoding='utf-8') as f:
            return f.read()
    except FileNotFoundError:
        return ''


def in_mailbox(user, text):
    return next((m for m in pb.mbox_messages(user) if text in m), None)


class DebianMainCf(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        pb.add_user('erin')
        snakeoil()
        with open('/etc/mailname', 'w') as f:
            f.write(MAILNAME + '\n')
        with open('/etc/aliases', 'a') as f:
            # Not "erin": a bare name gets @$myorigin, here a domain that is not in mydestination.
            f.write('debianalias: erin@localhost\n')
        cls.cursor = pb.journal_cursor()
        with open(pb.MAIN_CF, 'w') as f:
            f.write(DEBIAN_MAIN_CF)
        pb.restart_services()
        # newaliases builds alias_database (here also alias_maps).
        pb.run('newaliases')

    def smtp(self, source=None):
        s = pb.SmtpRaw('127.0.0.1', 25, source=source)
        self.addCleanup(s.close)
        code, text = s.reply()
        self.assertEqual(code, 220)
        self.assertEqual(s.cmd('EHLO client.example.org')[0], 250)
        return s, text

    def test_1_mail_arrives_and_no_warning(self):
        s, banner = self.smtp()
        self.assertEqual(banner, 'debian ESMTP postbus (Debian/GNU)')
        self.assertEqual(s.cmd('MAIL FROM:<someone@example.org>')[0], 250)
        # mydestination's items around the empty one: all local.
        for rcpt in ('erin@debian', 'erin@localhost.localdomain', 'erin+ext@localhost', 'debianalias@localhost'):
            self.assertEqual(s.cmd(f'RCPT TO:<{rcpt}>')[0], 250, rcpt)
        self.assertEqual(s.cmd('DATA')[0], 354)
        code, text = s.cmd('Subject: debian main.cf\r\n\r\nunder Debian\'s main.cf\r\n.')
        self.assertEqual(code, 250, text)
        qid = pb.queue_id_from_text(text)
        pb.wait_until(lambda: len([m for m in pb.mbox_messages('erin') if qid in m]) == 4,
                      what='the four copies in erin\'s mailbox (mailbox_size_limit = 0: no limit)')

        # Every role that read main.cf (smtpd, cleanup, rewrite, qmgr, local) took every line.
        messages = [m for m in pb.journal_messages(since=self.cursor) if m]
        self.assertFalse([m for m in messages if 'unknown parameter' in m], messages)
        self.assertFalse([m for m in messages if 'main.cf:' in m and 'ignoring' in m], messages)
        self.assertFalse([m for m in messages if 'inet_interfaces' in m], messages)

    def test_myorigin_from_mailname(self):
        pb.run('sendmail', '-i', 'erin@localhost', user='erin',
               input='Subject: from sendmail\n\nposted locally\n')
        m = pb.wait_until(lambda: in_mailbox('erin', 'Subject: from sendmail'), what='the sendmail mail')
        self.assertRegex(m, re.compile(r'^From: .*erin@' + re.escape(MAILNAME), re.M))
        self.assertRegex(m, re.compile(r'^Return-Path: <erin@' + re.escape(MAILNAME) + '>', re.M))

    def test_relay_from_mynetworks(self):
        # 127.0.0.2 is in 127.0.0.0/8: relaying is allowed (the RSET keeps it from being sent).
        s, _ = self.smtp(source='127.0.0.2')
        self.assertEqual(s.cmd('MAIL FROM:<a@example.org>')[0], 250)
        self.assertEqual(s.cmd('RCPT TO:<someone@example.com>')[0], 250)
        self.assertEqual(s.cmd('RSET')[0], 250)

    def test_relay_denied_is_deferred(self):
        # Only the IPv4-mapped form of 127.0.0.1, and ::1: 127.0.0.1 may relay, 127.0.0.2 may not, and
        # defer_unauth_destination answers 454 where reject_unauth_destination would say 554.
        self.addCleanup(reconfigure, mynetworks='127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128')
        reconfigure(mynetworks='[::ffff:127.0.0.1]/128 [::1]/128')
        s, _ = self.smtp(source='127.0.0.1')
        self.assertEqual(s.cmd('MAIL FROM:<a@example.org>')[0], 250)
        self.assertEqual(s.cmd('RCPT TO:<someone@example.com>')[0], 250)
        s2, _ = self.smtp(source='127.0.0.2')
        self.assertEqual(s2.cmd('MAIL FROM:<a@example.org>')[0], 250)
        self.assertEqual(s2.cmd('RCPT TO:<someone@example.com>'),
                         (454, '4.7.1 <someone@example.com>: Relay access denied'))
        self.assertEqual(s2.cmd('RCPT TO:<erin@debian>')[0], 250)

    def test_inet_interfaces_mismatch_warned(self):
        # systemd's ListenStream=25 is a wildcard socket: "all" says so (no warning in test_1), a single
        # address does not, and smtpd says where the listening addresses are really set.
        self.addCleanup(reconfigure, inet_interfaces='all')
        cursor = pb.journal_cursor()
        reconfigure(inet_interfaces='127.0.0.1')
        s, _ = self.smtp()
        self.assertEqual(s.cmd('NOOP')[0], 250)
        msgs = pb.wait_until(lambda: [m for m in pb.journal_messages(since=cursor)
                                      if m and 'inet_interfaces = 127.0.0.1, but smtpd listens on' in m],
                             what='the inet_interfaces warning')
        self.assertIn('ListenStream=', msgs[0])

    def test_mailbox_command(self):
        # What Debian's debconf sets when procmail is there: mailbox_command = procmail -a "$EXTENSION".
        # The command runs as erin with local's environment; $EXTENSION is the shell's, not main.cf's.
        home = pb.run('getent', 'passwd', 'erin').strip().split(':')[5]
        self.addCleanup(reconfigure, mailbox_command='')
        reconfigure(mailbox_command='cat > "$HOME/mbcmd-$EXTENSION-$(id -un)"')
        qid = pb.send('a@example.org', 'erin+box@localhost', 'Subject: to the command\n\nfor procmail\n')
        path = os.path.join(home, 'mbcmd-box-erin')
        pb.wait_until(lambda: 'for procmail' in read(path), what='the message in the file the mailbox_command wrote')
        self.assertIn('Subject: to the command', read(path))
        self.assertFalse(in_mailbox('erin', qid))
        pb.wait_until(lambda: any('delivered to command' in (m or '')
                                  for m in pb.journal_messages(since=self.cursor, QUEUE_ID=qid)),
                      what='the journal record of the delivery to the command')


if __name__ == '__main__':
    unittest.main(verbosity=2)
