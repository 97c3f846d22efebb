#!/usr/bin/python3
"""The test harness itself: the container that run-test boots gives the tests a
real systemd, journald, system bus and socket activation on a private loopback
network, and the postbus.py helpers do what they say. Needs no postbus units
(run with run-test --no-postbus)."""

import json
import os
import socket
import socketserver
import subprocess
import tempfile
import threading
import unittest
import uuid

import postbus


class Container(unittest.TestCase):

    def test_pid1_is_systemd(self):
        with open('/proc/1/comm') as f:
            self.assertEqual(f.read().strip(), 'systemd')

    def test_boot_finished(self):
        state = postbus.systemctl('is-system-running', check=False).stdout.strip()
        self.assertIn(state, ('running', 'degraded'))

    def test_root_is_a_throwaway_overlay(self):
        with open('/proc/self/mountinfo') as f:
            roots = [line.split(' - ')[1].split()[0] for line in f if line.split()[4] == '/']
        self.assertEqual(roots[-1], 'overlay')

    def test_network_is_loopback_only(self):
        self.assertEqual(sorted(os.listdir('/sys/class/net')), ['lo'])

    def test_journald_answers(self):
        token = f'harness-{uuid.uuid4().hex}'
        cursor = postbus.journal_cursor()
        subprocess.run(['systemd-cat', '-t', 'pb-harness', 'echo', token], check=True)
        records = postbus.wait_until(
            lambda: postbus.journal(SYSLOG_IDENTIFIER='pb-harness', MESSAGE=token, since=cursor),
            timeout=10, what='the line logged with systemd-cat')
        self.assertEqual(records[0]['MESSAGE'], token)
        self.assertEqual(postbus.journal(SYSLOG_IDENTIFIER='pb-harness', MESSAGE='no-' + token, since=cursor), [])

    def test_journal_reads_after_the_cursor_only(self):
        # What a step before the cursor logged cannot satisfy a check of what comes after it, whether
        # the record at the cursor matches the query or not (journalctl --after-cursor of Debian 12 gets
        # the second case wrong: it drops the first match).
        tag = f'pb-harness-{uuid.uuid4().hex[:12]}'

        def log(ident, text):
            subprocess.run(['systemd-cat', '-t', ident, 'echo', text], check=True)

        def cursor_of(ident, text, since):
            return postbus.wait_until(lambda: postbus.journal(SYSLOG_IDENTIFIER=ident, MESSAGE=text, since=since),
                                      timeout=10, what=f'{text!r} in the journal')[0]['__CURSOR']

        start = postbus.journal_cursor()
        log(tag, 'before')
        at_match = cursor_of(tag, 'before', start)
        log(tag + '-other', 'unrelated')
        at_other = cursor_of(tag + '-other', 'unrelated', start)
        log(tag, 'after')
        cursor_of(tag, 'after', start)
        self.assertEqual(postbus.journal_messages(SYSLOG_IDENTIFIER=tag, since=start), ['before', 'after'])
        self.assertEqual(postbus.journal_messages(SYSLOG_IDENTIFIER=tag, since=at_match), ['after'])
        self.assertEqual(postbus.journal_messages(SYSLOG_IDENTIFIER=tag, since=at_other), ['after'])
        self.assertEqual(postbus.journal_messages(SYSLOG_IDENTIFIER=tag, since=postbus.journal_cursor()), [])
        explained = postbus.journal_explained(SYSLOG_IDENTIFIER=tag, since=at_match)
        self.assertIn('after', explained)
        self.assertNotIn('before', explained)
        # There is no reading of the whole journal.
        with self.assertRaises(TypeError):
            postbus.journal(SYSLOG_IDENTIFIER=tag)
        with self.assertRaises(TypeError):
            postbus.journal(SYSLOG_IDENTIFIER=tag, since=None)

    def test_system_bus_answers(self):
        names = postbus.run('busctl', '--system', 'list', '--no-legend').split()
        self.assertIn('org.freedesktop.DBus', names)

        def systemd_pid():
            p = postbus.run_process('busctl', '--system', '--json=short', 'call', 'org.freedesktop.DBus',
                            '/org/freedesktop/DBus', 'org.freedesktop.DBus',
                            'GetConnectionUnixProcessID', 's', 'org.freedesktop.systemd1',
                            check=False)
            return p.returncode == 0 and json.loads(p.stdout)['data']
        # PID 1 connects to the bus once it is up, which may be after our call woke it.
        self.assertEqual(postbus.wait_until(systemd_pid, timeout=10,
                                            what='systemd on the system bus'), [1])

    def test_socket_activation(self):
        # An echo service started by its socket on the first connection.
        units = {
            'pb-harness-echo.socket':
                '[Socket]\nListenStream=127.0.0.1:7007\nAccept=yes\n',
            'pb-harness-echo@.service':
                '[Service]\nExecStart=/bin/cat\nStandardInput=socket\n',
        }
        for name, text in units.items():
            with open(f'/run/systemd/system/{name}', 'w') as f:
                f.write(text)
        postbus.systemctl('daemon-reload')
        postbus.systemctl('start', 'pb-harness-echo.socket')
        try:
            self.assertTrue(postbus.unit_active('pb-harness-echo.socket'))
            with socket.create_connection(('127.0.0.1', 7007), timeout=10) as s:
                s.sendall(b'ping\n')
                self.assertEqual(s.makefile('rb').readline(), b'ping\n')
        finally:
            postbus.systemctl('stop', 'pb-harness-echo.socket')
            for name in units:
                os.unlink(f'/run/systemd/system/{name}')
            postbus.systemctl('daemon-reload')


class FakeSmtp(socketserver.StreamRequestHandler):
    """Just enough of an SMTP server to check the client helpers against."""

    def reply(self, text):
        self.wfile.write(text.encode() + b'\r\n')

    def handle(self):
        self.reply('220 fake.test ESMTP')
        while line := self.rfile.readline():
            verb = line[:4].upper()
            if verb == b'EHLO':
                self.reply('250-fake.test\r\n250-PIPELINING\r\n250 8BITMIME')
            elif verb == b'MAIL':
                self.reply('250 2.1.0 Ok')
            elif verb == b'RCPT':
                self.reply('550 5.1.1 No such user' if b'nobody' in line else '250 2.1.5 Ok')
            elif verb == b'DATA':
                self.reply('354 End data with <CR><LF>.<CR><LF>')
                data = b''
                while (chunk := self.rfile.readline()) not in (b'.\r\n', b''):
                    data += chunk
                self.server.messages.append(data)
                self.reply('250 2.0.0 Ok: queued as 4F2A9C1B3D')
            elif verb == b'QUIT':
                self.reply('221 2.0.0 Bye')
                return
            elif verb == b'BYE!':
                return
            else:
                self.reply('502 5.5.2 Error: command not recognized')


class Helpers(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.server = socketserver.ThreadingTCPServer(('127.0.0.1', 0), FakeSmtp)
        cls.server.daemon_threads = True
        cls.server.messages = []
        cls.port = cls.server.server_address[1]
        threading.Thread(target=cls.server.serve_forever, daemon=True).start()

    @classmethod
    def tearDownClass(cls):
        cls.server.shutdown()
        cls.server.server_close()

    def test_send_returns_queue_id(self):
        qid = postbus.send('a@example.org', ['b@example.org'], 'Subject: x\n\n.dot\nbody\n',
                           port=self.port)
        self.assertEqual(qid, '4F2A9C1B3D')
        self.assertEqual(postbus.queue_id_from_text('250 2.0.0 Ok: queued as 8C1E\n'), '8C1E')
        with self.assertRaises(AssertionError):
            postbus.queue_id_from_text('250 2.0.0 Ok')
        self.assertEqual(self.server.messages[-1], b'Subject: x\r\n\r\n..dot\r\nbody\r\n')

    def test_send_raises_on_refused_recipient(self):
        with self.assertRaises(postbus.smtplib.SMTPRecipientsRefused) as cm:
            postbus.send('a@example.org', ['b@example.org', 'nobody@example.org'], 'x', port=self.port)
        self.assertEqual(cm.exception.recipients['nobody@example.org'][0], 550)

    def test_smtp_raw(self):
        with postbus.SmtpRaw(port=self.port, source='127.0.0.2') as s:
            self.assertEqual(s.reply(), (220, 'fake.test ESMTP'))
            self.assertEqual(s.cmd('EHLO me'), (250, 'fake.test\nPIPELINING\n8BITMIME'))
            s.send(b'MAIL FROM:<a@b>\r\nRCPT TO:<nobody@b>\r\n')
            self.assertEqual(s.reply(), (250, '2.1.0 Ok'))
            self.assertEqual(s.reply(), (550, '5.1.1 No such user'))
            self.assertEqual(s.cmd('FOO'), (502, '5.5.2 Error: command not recognized'))
            s.send('BYE!\r\n')
            self.assertTrue(s.closed(timeout=5))

    def test_send_from_another_address(self):
        self.assertEqual(postbus.send('a@example.org', 'b@example.org', b'x\n', port=self.port,
                                      source_address='127.0.0.3'), '4F2A9C1B3D')

    def test_write_config(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, 'main.cf')
            with open(path, 'w') as f:
                f.write('# comment = 1\nmyhostname = old\nmydestination = a,\n    b\n'
                        'relayhost =\n')
            postbus.write_config({'mydestination': ['localhost', 'example.org'],
                                  'smtpd_tls': False, 'message_size_limit': 1000,
                                  'myhostname': ''}, path=path)
            with open(path) as f:
                self.assertEqual(f.read(), '# comment = 1\nmyhostname =\n'
                                 'mydestination = localhost, example.org\nrelayhost =\n'
                                 'smtpd_tls = no\nmessage_size_limit = 1000\n')

    def test_mailboxes(self):
        postbus.add_user('pb-harness', maildir=True)
        postbus.add_user('pb-harness')                      # again: no error
        self.assertTrue(os.path.isdir(os.path.expanduser('~pb-harness/Maildir/new')))
        self.assertEqual(postbus.mbox_messages('pb-harness'), [])
        self.assertEqual(postbus.maildir_messages('pb-harness'), [])
        with open('/var/mail/pb-harness', 'wb') as f:
            f.write(b'From a@b Thu Jan  1 00:00:00 2025\nSubject: one\n\nbody\n\n'
                    b'From c@d Thu Jan  1 00:00:01 2025\nSubject: two\n\nbody\n\n')
        msgs = postbus.mbox_messages('pb-harness')
        self.assertEqual(len(msgs), 2)
        self.assertTrue(msgs[1].startswith('From c@d '))
        self.assertIn('\nSubject: two\n', msgs[1])
        self.assertEqual(postbus.mbox_messages('pb-harness', parsed=True)[0]['Subject'], 'one')
        with open(os.path.expanduser('~pb-harness/Maildir/new/1.x'), 'w') as f:
            f.write('Subject: md\n\nhi\n')
        self.assertEqual(postbus.maildir_messages('pb-harness'), ['Subject: md\n\nhi\n'])
        self.assertEqual(postbus.uid('pb-harness'), os.stat(os.path.expanduser('~pb-harness')).st_uid)

    def test_mbox_split(self):
        data = (b'From a@b Thu Jan  1 00:00:00 2025\nSubject: one\n\n>From here\n\n'
                b'From c@d Thu Jan  1 00:00:01 2025\nSubject: two\n\nbody\n\n')
        parts = postbus.mbox_split(data)
        self.assertEqual(len(parts), 2)
        msgs = [postbus._parse(p) for p in parts]
        self.assertEqual([m['Subject'] for m in msgs], ['one', 'two'])
        self.assertEqual(msgs[1].get_unixfrom(), 'From c@d Thu Jan  1 00:00:01 2025')
        self.assertEqual(postbus.mbox_split(b''), [])

    def test_wait_until(self):
        self.assertEqual(postbus.wait_until(lambda: 42, what='x'), 42)
        with self.assertRaisesRegex(AssertionError, 'the impossible'):
            postbus.wait_until(lambda: False, timeout=0.3, what='the impossible')


if __name__ == '__main__':
    unittest.main()
