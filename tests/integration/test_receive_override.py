"""receive_override_options (Postfix's) behind an after-queue content filter: mail that smtpd takes on port 25
has its virtual aliases, automatic BCC and header_checks done there, goes to the filter, and comes back on a
re-injection service. With no_address_mappings,no_header_body_checks there it is expanded, copied and checked
exactly once; on a re-injection service without them it gets a second BCC copy and a second PREPEND.
no_unknown_recipient_checks takes an unknown local user at RCPT that port 25 refuses, and no_milters asks
none of the service's smtpd_milters (a dead one, which refuses every session where it is asked). Last,
no_address_mappings in main.cf puts the mappings after the filter, for smtpd and for pickup alike."""
import json
import os
import re
import smtplib
import subprocess
import threading
import time
import unittest

import postbus as pb
import test_smtp as ts

FILTER_PORT = 10024
OVERRIDE_PORT = 10025   # re-injection with receive_override_options
AFTER_PORT = 10026      # re-injection with the options that go after a filter, for main.cf's before it
PLAIN_PORT = 10027      # re-injection without
MILTER_PORT = 10029     # a dead milter, and no receive_override_options
DEAD_MILTER = 'unix:/run/postbus-test-no-such-milter.sock'
MASTER_CF = '/etc/postbus/master.cf'
ETC = '/etc/postbus'
SOCKETS = [f'postbus-smtpd-127.0.0.1_{p}.socket' for p in (OVERRIDE_PORT, AFTER_PORT, PLAIN_PORT, MILTER_PORT)]


def installed_sendmail():
    """Where meson installed our sendmail (the machine may have Postfix's as well)."""
    out = pb.run('meson', 'introspect', '--installed', os.environ['POSTBUS_BUILDDIR'])
    return next(dst for dst in json.loads(out).values() if dst.endswith('/sbin/sendmail'))


class Filter(ts.FakeServer):
    """The fake SMTP server of test_smtp as an after-queue filter: each transaction is sent back, with an
    X-Filtered header in front, to the port its X-Reinject-Port header names (PLAIN_PORT without one)."""

    def __init__(self):
        super().__init__(port=FILTER_PORT)
        self.replies = {}
        threading.Thread(target=self.reinject, daemon=True).start()

    def filtered(self, marker):
        with self.lock:
            return [t for t in self.transactions if t.data and marker.encode() in t.data]

    def reinject(self):
        done = 0
        while True:
            with self.lock:
                todo = self.transactions[done:]
            for t in todo:
                sender = re.match(r'MAIL FROM:<([^>]*)>', t.mail, re.I).group(1)
                lines = ts.unstuff(t.data)
                port = next((int(l.split(b':')[1]) for l in lines if l.startswith(b'X-Reinject-Port:')), PLAIN_PORT)
                try:
                    reply = pb.send(sender, rcpts(t), b'X-Filtered: yes\r\n' + b'\r\n'.join(lines) + b'\r\n',
                                    port=port)
                except smtplib.SMTPException as e:
                    reply = e
                with self.lock:
                    self.replies[t.data] = reply
            done += len(todo)
            time.sleep(0.05)


def rcpts(transaction):
    return [re.match(r'RCPT TO:<([^>]*)>', r, re.I).group(1) for r in transaction.rcpts]


def mbox_with(user, marker):
    return [m for m in pb.mbox_messages(user) if marker in m]


def rcpt_reply(port, rcpt):
    with pb.connect(port=port) as s:
        s.ehlo()
        s.mail('someone@example.org')
        return s.rcpt(rcpt)


class ReceiveOverride(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for user in ('alice', 'bob', 'archive'):
            pb.add_user(user)
        cls.filter = Filter()
        with open(f'{ETC}/virtual', 'w') as f:
            f.write('team@localhost alice@localhost, bob@localhost\n')
        with open(f'{ETC}/sender_bcc', 'w') as f:
            f.write('boss@example.org archive@localhost\n')
        with open(f'{ETC}/header_checks', 'w') as f:
            f.write('/^Subject: ro-/ PREPEND X-Header-Checked: yes\n'
                    '/^X-Reject-Me:/ REJECT refused by header_checks\n')
        with open(f'{ETC}/body_checks', 'w') as f:
            f.write('/^reject-this-body-line/ REJECT refused by body_checks\n')
        for table in ('virtual', 'sender_bcc'):
            pb.run('postbusctl', 'map', 'build', f'{ETC}/{table}')
        with open(MASTER_CF, 'w', encoding='utf-8') as f:
            f.write(f'127.0.0.1:{OVERRIDE_PORT} inet n - n - - smtpd\n'
                    '  -o content_filter=\n'
                    f'  -o smtpd_milters={DEAD_MILTER}\n'
                    '  -o receive_override_options=no_unknown_recipient_checks,no_header_body_checks,'
                    'no_milters,no_address_mappings\n'
                    f'127.0.0.1:{AFTER_PORT} inet n - n - - smtpd\n'
                    '  -o content_filter=\n'
                    '  -o receive_override_options=no_unknown_recipient_checks,no_header_body_checks\n'
                    f'127.0.0.1:{PLAIN_PORT} inet n - n - - smtpd\n'
                    '  -o content_filter=\n'
                    f'127.0.0.1:{MILTER_PORT} inet n - n - - smtpd\n'
                    '  -o content_filter=\n'
                    f'  -o smtpd_milters={DEAD_MILTER}\n'
                    'local unix - n n - - local\n'
                    'smtp unix - - n - - smtp\n')
        pb.write_config({'content_filter': f'smtp:[127.0.0.1]:{FILTER_PORT}',
                         'virtual_alias_maps': f'hash:{ETC}/virtual',
                         # team@localhost is known also where no_address_mappings leaves virtual_alias_maps out
                         'local_recipient_maps': f'unix:passwd.byname hash:{ETC}/virtual',
                         'sender_bcc_maps': f'hash:{ETC}/sender_bcc',
                         'header_checks': f'regexp:{ETC}/header_checks',
                         'body_checks': f'regexp:{ETC}/body_checks',
                         'milter_default_action': 'tempfail'})
        pb.systemctl('stop', 'postbus-smtpd.service')
        pb.systemctl('daemon-reload')
        pb.restart_services()
        pb.systemctl('start', 'postbus.target', *SOCKETS)

    def through_filter(self, port):
        """A message from boss@example.org (BCC to archive) to team@localhost (alice and bob) on port 25, which
        the filter sends back to port; the marker of its subject."""
        marker = f'ro-{port}-{time.time_ns()}'
        pb.send('boss@example.org', 'team@localhost',
                f'X-Reinject-Port: {port}\nSubject: {marker}\n\nbody {marker}\n')
        [t] = pb.wait_until(lambda: self.filter.filtered(marker), what=f'{marker} at the filter')
        # expanded, copied and checked before the filter
        self.assertEqual(sorted(rcpts(t)), ['alice@localhost', 'archive@localhost', 'bob@localhost'])
        self.assertEqual(ts.unstuff(t.data).count(b'X-Header-Checked: yes'), 1)
        pb.wait_until(lambda: t.data in self.filter.replies, what=f'{marker} re-injected')
        self.assertTrue(pb.queue_id_valid(self.filter.replies[t.data]), self.filter.replies[t.data])
        return marker

    def test_once_with_the_options(self):
        marker = self.through_filter(OVERRIDE_PORT)
        for user in ('alice', 'bob', 'archive'):
            [msg] = pb.wait_until(lambda: mbox_with(user, marker), what=f'{marker} for {user}')
            self.assertEqual(msg.count('X-Filtered: yes'), 1, msg)
            self.assertEqual(msg.count('X-Header-Checked: yes'), 1, msg)
        # no second BCC copy: archive still has the one
        time.sleep(1)
        self.assertEqual(len(mbox_with('archive', marker)), 1)

    def test_twice_without_them(self):
        marker = self.through_filter(PLAIN_PORT)
        for user in ('alice', 'bob'):
            [msg] = pb.wait_until(lambda: mbox_with(user, marker), what=f'{marker} for {user}')
            self.assertEqual(msg.count('X-Header-Checked: yes'), 2, msg)
        # the re-injected archive@localhost, and a new automatic BCC copy to it
        copies = pb.wait_until(lambda: len(mbox_with('archive', marker)) == 2 and mbox_with('archive', marker),
                               what=f'two copies of {marker} for archive')
        self.assertEqual(len(copies), 2)

    def test_no_address_mappings_direct(self):
        """Straight to the re-injection port: team@localhost stays itself, and local finds no such user."""
        cursor = pb.journal_cursor()
        qid = pb.send('someone@example.org', 'team@localhost', 'Subject: direct\n\nunmapped\n', port=OVERRIDE_PORT)
        recs = pb.wait_until(lambda: pb.journal(QUEUE_ID=qid, since=cursor, DELIVERY_STATUS='bounced'),
                             what=f'the bounce of {qid}')
        self.assertEqual({r['RECIPIENT'] for r in recs}, {'team@localhost'})
        self.assertFalse(pb.journal(QUEUE_ID=qid, since=cursor, DELIVERY_STATUS='sent'))
        # the same on the other re-injection port is expanded
        marker = f'ro-direct-{time.time_ns()}'
        pb.send('someone@example.org', 'team@localhost', f'Subject: {marker}\n\n{marker}\n', port=PLAIN_PORT)
        for user in ('alice', 'bob'):
            pb.wait_until(lambda: mbox_with(user, marker), what=f'{marker} for {user}')

    def test_no_header_body_checks_direct(self):
        for text in ('X-Reject-Me: yes\nSubject: x\n\nbody\n', 'Subject: x\n\nreject-this-body-line\n'):
            for port in (25, PLAIN_PORT):
                with self.assertRaises(smtplib.SMTPDataError) as e:
                    pb.send('someone@example.org', 'alice@localhost', text, port=port)
                self.assertEqual(e.exception.smtp_code, 550)
                self.assertIn(b'refused by', e.exception.smtp_error)
            self.assertTrue(pb.queue_id_valid(pb.send('someone@example.org', 'alice@localhost', text,
                                                      port=OVERRIDE_PORT)))

    def test_no_unknown_recipient_checks(self):
        code, text = rcpt_reply(25, 'nosuchuser@localhost')
        self.assertEqual(code, 550, text)
        self.assertIn(b'User unknown in local recipient table', text)
        self.assertEqual(rcpt_reply(PLAIN_PORT, 'nosuchuser@localhost')[0], 550)
        self.assertEqual(rcpt_reply(OVERRIDE_PORT, 'nosuchuser@localhost')[0], 250)
        self.assertEqual(rcpt_reply(OVERRIDE_PORT, 'alice@localhost')[0], 250)

    def test_no_milters(self):
        # the dead milter refuses the session where it is asked (milter_default_action = tempfail) ...
        with pb.connect(port=MILTER_PORT) as s:
            code, text = s.ehlo()
            self.assertEqual(code, 451, text)
        # ... and the service with no_milters, which lists the same milter, never asks it
        marker = f'ro-milter-{time.time_ns()}'
        pb.send('someone@example.org', 'alice@localhost', f'Subject: {marker}\n\n{marker}\n', port=OVERRIDE_PORT)
        pb.wait_until(lambda: mbox_with('alice', marker), what=f'{marker} for alice')

    def test_z_main_cf_before_the_filter(self):
        """no_address_mappings in main.cf (smtpd on port 25, and pickup): the filter sees team@localhost itself,
        and the re-injection service whose -o replaces main.cf's options with those for after a filter expands
        it there, once, as Postfix's manual pairs them."""
        pb.set_config(receive_override_options='no_address_mappings')
        pb.systemctl('start', *SOCKETS)
        marker = f'ro-main-{time.time_ns()}'
        text = f'X-Reinject-Port: {AFTER_PORT}\nSubject: {marker} %s\n\n{marker}\n'
        pb.send('boss@example.org', 'team@localhost', text % 'smtp')
        subprocess.run([installed_sendmail(), '-f', 'boss@example.org', 'team@localhost'],
                       input=(text % 'local').encode(), check=True, timeout=60)
        seen = pb.wait_until(lambda: len(self.filter.filtered(marker)) == 2 and self.filter.filtered(marker),
                             what=f'both {marker} messages at the filter')
        for t in seen:
            # neither expanded nor copied before the filter
            self.assertEqual(rcpts(t), ['team@localhost'])
        # after it: both messages to alice and bob, and one automatic BCC copy of each to archive; the header
        # checks were made before it, and only then
        for t in seen:
            pb.wait_until(lambda: t.data in self.filter.replies, what=f'{marker} re-injected')
            self.assertTrue(pb.queue_id_valid(self.filter.replies[t.data]), self.filter.replies[t.data])
        for user in ('alice', 'bob', 'archive'):
            msgs = pb.wait_until(lambda: len(mbox_with(user, marker)) == 2 and mbox_with(user, marker),
                                 what=f'{marker} twice for {user}')
            for m in msgs:
                self.assertEqual(m.count('X-Header-Checked: yes'), 1, m)
        time.sleep(1)
        self.assertEqual(len(mbox_with('archive', marker)), 2)

        # an option that is no option stops smtpd, naming the line
        cursor = pb.journal_cursor()
        pb.set_config(receive_override_options='no_address_mappings, no_such_option')
        with self.assertRaises(OSError):
            pb.send('boss@example.org', 'alice@localhost', 'Subject: x\n\nx\n', timeout=10)
        messages = pb.wait_until(
            lambda: [m for m in pb.journal_messages(POSTBUS_ROLE='smtpd', since=cursor)
                     if 'receive_override_options: unknown option "no_such_option"' in m],
            what='the configuration error')
        self.assertRegex(messages[0], r'^/etc/postbus/main\.cf:\d+: ')


if __name__ == '__main__':
    unittest.main(verbosity=2)
