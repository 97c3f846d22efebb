"""main.cf names are Postfix's alone, and master.cf configures smtpd's services: a main.cf full of Postfix's
smtp_* client parameters starts every role (none is taken for smtpd's "smtp" service), and the submission
line of master.cf with its -o options configures port 587 and nothing else."""
import unittest

import postbus as pb

HOST = 'mx.example.test'
MASTER_CF = '/etc/postbus/master.cf'

# Postfix's default delivery services, which a master.cf must keep for qmgr.
DELIVERY = '''smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
lmtp      unix  -       -       n       -       -       lmtp
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
'''

# Roles that a configuration error would stop.
ROLES = ('postbus-smtpd.service', 'postbus-cleanup.service', 'postbus-rewrite.service', 'postbus-qmgr.service',
         'postbus-local.service', 'postbus-smtp.service', 'postbus-bounce.service', 'postbus-pipe.service')


def write_master_cf(text):
    with open(MASTER_CF, 'w', encoding='utf-8') as f:
        f.write(text)


def greeting(port):
    with pb.SmtpRaw('127.0.0.1', port) as s:
        code, text = s.reply()
        s.cmd('QUIT')
        return code, text


class PostfixClientParameters(unittest.TestCase):
    """What a Postfix site's main.cf says to its smtp client is the client's (or unknown: a warning)."""

    def test_every_role_starts(self):
        pb.add_user('erin')
        cursor = pb.journal_cursor()
        write_master_cf(DELIVERY)
        for unit in ROLES:
            pb.systemctl('reset-failed', unit, check=False)
        pb.set_config(myhostname=HOST,
                      smtp_line_length_limit='998',     # the client's, in Postfix and in postbus
                      smtp_helo_timeout='300s',
                      smtp_tls_security_level='may',
                      smtp_tls_CApath='/etc/ssl/certs',
                      smtp_tls_loglevel='1',
                      smtp_dns_support_level='enabled',
                      smtp_skip_5xx_greeting='yes',
                      smtp_tls_mandatory_protocols='!SSLv2, !SSLv3',
                      smtp_recipient_limit='5',         # "smtp_" + an smtpd parameter's name: not smtpd's
                      smtp_smtpd_banner='not for smtpd',
                      submission_smtpd_banner='not for submission either')
        for unit in ROLES:
            pb.systemctl('start', unit, check=False)
        for unit in ROLES:
            pb.wait_until(lambda: pb.unit_property(unit, 'ActiveState') != 'activating', what=f'{unit} to start')
            self.assertNotEqual(pb.unit_property(unit, 'ActiveState'), 'failed', unit)
            self.assertEqual(pb.unit_property(unit, 'Result'), 'success', unit)

        code, text = greeting(25)
        self.assertEqual(code, 220)
        self.assertNotIn('not for', text)
        qid = pb.send('alice@example.org', [f'erin@{HOST}'] * 1, 'Subject: roles\n\nevery role\n')
        self.assertTrue(pb.queue_id_valid(qid))
        pb.wait_until(lambda: any('every role' in m for m in pb.mbox_messages('erin')), what='the delivery')
        # Names postbus does not use are said once each, as warnings, never as failures.
        messages = pb.journal_messages('_SYSTEMD_UNIT=postbus-smtpd.service', since=cursor)
        self.assertTrue(any('unknown parameter "smtp_smtpd_banner", ignoring' in m for m in messages), messages)
        self.assertFalse(any('cannot be set for one service' in m for m in messages), messages)


class SubmissionOptions(unittest.TestCase):
    """master.cf's submission line and its -o options configure port 587, as in Postfix."""

    @classmethod
    def setUpClass(cls):
        pb.add_user('erin')
        table = '/etc/postbus/submission_senders'
        with open(table, 'w', encoding='utf-8') as f:
            f.write('alice@example.org OK\n')
        pb.run('postbusctl', 'map', 'build', table)
        write_master_cf(
            'smtp      inet  n       -       n       -       -       smtpd\n'
            'submission inet n       -       n       -       -       smtpd\n'
            '  -o syslog_name=postfix/submission\n'
            '  -o smtpd_tls_security_level=none\n'       # no certificate in this test
            '  -o smtpd_sasl_auth_enable=no\n'
            '  -o { smtpd_banner = $myhostname submission port }\n'
            f'  -o smtpd_sender_restrictions=check_sender_access,hash:{table},reject\n'
            '  -o smtpd_recipient_limit=3\n'             # the same for every service: a warning
            + DELIVERY)
        pb.set_config(myhostname=HOST, mynetworks='127.0.0.1/32', smtpd_sender_restrictions='',
                      smtpd_recipient_restrictions='', smtpd_delay_reject='yes',
                      smtpd_banner='$myhostname ESMTP main')

    def rcpt(self, port, sender):
        with pb.SmtpRaw('127.0.0.1', port) as s:
            self.assertEqual(s.reply()[0], 220)
            self.assertEqual(s.cmd('EHLO client.example.org')[0], 250)
            self.assertEqual(s.cmd(f'MAIL FROM:<{sender}>')[0], 250)
            reply = s.cmd(f'RCPT TO:<erin@{HOST}>')
            s.cmd('QUIT')
            return reply

    def test_banner(self):
        self.assertEqual(greeting(587), (220, f'{HOST} submission port'))
        self.assertEqual(greeting(25), (220, f'{HOST} ESMTP main'))

    def test_sender_restrictions(self):
        self.assertEqual(self.rcpt(587, 'alice@example.org')[0], 250)
        self.assertEqual(self.rcpt(587, 'mallory@example.org'),
                         (554, '5.7.1 <mallory@example.org>: Sender address rejected: Access denied'))
        # port 25 keeps main.cf's own (empty) sender restrictions
        self.assertEqual(self.rcpt(25, 'mallory@example.org')[0], 250)

    def test_warnings(self):
        """An -o postbus cannot take per service is said, with master.cf's line, and smtpd serves."""
        cursor = pb.journal_cursor()
        pb.systemctl('stop', 'postbus-smtpd.service')
        self.assertEqual(greeting(587)[0], 220)
        messages = pb.journal_messages('_SYSTEMD_UNIT=postbus-smtpd.service', since=cursor)
        self.assertTrue(any(f'{MASTER_CF}:2: -o smtpd_recipient_limit=3: smtpd takes smtpd_recipient_limit from '
                            'main.cf for every service, ignoring' in m for m in messages), messages)
        self.assertTrue(any(f'{MASTER_CF}:2: -o syslog_name=postfix/submission: not a parameter postbus uses'
                            in m for m in messages), messages)


class Sockets(unittest.TestCase):
    """postbus-generator: the address of master.cf's submission line is where 587 listens, and another inet
    smtpd line (a re-injection port) gets a socket of its own, served by smtpd with that line's -o."""

    @classmethod
    def setUpClass(cls):
        pb.add_user('erin')
        write_master_cf(
            '127.0.0.1:submission inet n - n - - smtpd\n'
            '  -o smtpd_tls_security_level=none\n'
            '127.0.0.1:10025 inet n - n - - smtpd\n'
            '  -o { smtpd_banner = $myhostname reinjection }\n'
            + DELIVERY)
        cls.addClassCleanup(cls.restore)
        pb.write_config({'myhostname': HOST, 'smtpd_banner': '$myhostname ESMTP main'})
        pb.systemctl('stop', 'postbus-smtpd.service')
        pb.systemctl('daemon-reload')
        pb.systemctl('restart', 'postbus-submission.socket')
        pb.systemctl('start', 'postbus.target')

    @classmethod
    def restore(cls):
        write_master_cf(DELIVERY)
        pb.systemctl('stop', 'postbus-smtpd.service', 'postbus-smtpd-127.0.0.1_10025.socket', check=False)
        pb.systemctl('daemon-reload')
        pb.systemctl('restart', 'postbus-submission.socket')

    def test_reinjection_port(self):
        self.assertIn('postbus-smtpd-127.0.0.1_10025.socket', pb.unit_property('postbus.target', 'Wants'))
        self.assertEqual(pb.unit_property('postbus-smtpd-127.0.0.1_10025.socket', 'ActiveState'), 'active')
        self.assertEqual(greeting(10025), (220, f'{HOST} reinjection'))
        self.assertEqual(greeting(25), (220, f'{HOST} ESMTP main'))
        qid = pb.send('alice@example.org', f'erin@{HOST}', 'Subject: again\n\nre-injected\n', port=10025)
        self.assertTrue(pb.queue_id_valid(qid))

    def test_submission_address(self):
        self.assertEqual(greeting(587)[0], 220)
        with self.assertRaises(OSError):
            pb.SmtpRaw('127.0.0.2', 587, timeout=5).reply()


if __name__ == '__main__':
    unittest.main(verbosity=2)
