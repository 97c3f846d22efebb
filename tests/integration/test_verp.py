"""VERP as Postfix has it (VERP_README): a message asks for it with sendmail -XV[xy] or SMTP's MAIL FROM ...
XVERP[=xy] (only from smtpd_authorized_verp_clients, who alone see XVERP in the EHLO reply); each recipient
then gets it from a sender that names it: the smtp client's MAIL FROM (one transaction per recipient), local's
Return-Path, pipe's ${sender}; and each failed recipient's bounce goes to its own VERP address, or with
disable_verp_bounces = yes one bounce to the plain sender."""
import os
import re
import socket
import subprocess
import threading
import time
import unittest

import postbus as pb

TRANSPORT = '/etc/postbus/transport'
SCRIPTS = '/usr/local/lib/postbus-verp-test'
LIST = 'listowner@localhost'
AUTHORIZED = '127.0.0.1'
OUTSIDER = '127.0.0.2'

# record: the command line a pipe transport ran, into the user's home (one file per run)
RECORD = """#!/bin/sh
cat > /dev/null
printf '%s\\n' "$@" > "/home/carol/pipe-argv.$$"
"""


class FakeServer:
    """An SMTP server that keeps each transaction's MAIL and RCPT lines and content; RCPT to a local part
    starting with "reject" gets 550."""

    def __init__(self, port):
        self.transactions = []
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(('127.0.0.1', port))
        self.sock.listen(20)
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            conn, _ = self.sock.accept()
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn):
        f = conn.makefile('rb')

        def say(line):
            conn.sendall(line.encode() + b'\r\n')

        try:
            say('220 fake.test ESMTP')
            mail, rcpts = None, []
            while True:
                raw = f.readline()
                if not raw:
                    return
                line = raw.decode('utf-8', 'replace').rstrip('\r\n')
                verb = line.split(' ')[0].split(':')[0].upper()
                if verb == 'EHLO':
                    say('250-fake.test')
                    say('250 PIPELINING')
                elif verb == 'MAIL':
                    mail, rcpts = line, []
                    say('250 2.1.0 Ok')
                elif verb == 'RCPT':
                    address = re.match(r'RCPT TO:<([^>]*)>', line, re.I).group(1)
                    if address.startswith('reject'):
                        say(f'550 5.1.1 <{address}>: Recipient address rejected: User unknown')
                    else:
                        rcpts.append(address)
                        say('250 2.1.5 Ok')
                elif verb == 'DATA':
                    if not rcpts:
                        say('554 5.5.1 Error: no valid recipients')
                        continue
                    say('354 End data with <CR><LF>.<CR><LF>')
                    data = b''
                    while not data.endswith(b'\r\n.\r\n'):
                        chunk = f.readline()
                        if not chunk:
                            return
                        data += chunk
                    with self.lock:
                        self.transactions.append((mail, rcpts, data))
                    say('250 2.0.0 Ok: queued as FAKE')
                elif verb == 'RSET':
                    say('250 2.0.0 Ok')
                elif verb == 'QUIT':
                    say('221 2.0.0 Bye')
                    return
                else:
                    say('502 5.5.2 Error: command not recognized')
        except OSError:
            pass
        finally:
            conn.close()

    def with_marker(self, marker):
        with self.lock:
            return [(m, r) for m, r, d in self.transactions if marker.encode() in d]


class Verp(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for user in ('listowner', 'bob', 'carol'):
            pb.add_user(user)
        cls.sink = FakeServer(2525)
        os.makedirs(SCRIPTS, exist_ok=True)
        with open(f'{SCRIPTS}/record', 'w', encoding='utf-8') as f:
            f.write(RECORD)
        os.chmod(f'{SCRIPTS}/record', 0o755)
        with open('/etc/postbus/master.cf', 'a', encoding='utf-8') as f:
            f.write(f'verppipe unix - n n - - pipe user=carol argv={SCRIPTS}/record ${{sender}} ${{recipient}}\n')
        with open(TRANSPORT, 'w', encoding='utf-8') as f:
            f.write('sink.test smtp:[127.0.0.1]:2525\n'
                    'pipe.test verppipe:\n')
        pb.run('postbusctl', 'map', 'build', TRANSPORT)
        pb.set_config(transport_maps=f'gdbm:{TRANSPORT}', smtpd_authorized_verp_clients=AUTHORIZED,
                      recipient_delimiter='+', smtp_destination_recipient_limit=50)

    def marker(self, what):
        return f'{what}-{time.time_ns()}'

    def mail_from(self, marker, n):
        """The (MAIL line, recipients) of the n transactions the fake server got with marker."""
        return pb.wait_until(lambda: len(self.sink.with_marker(marker)) == n and self.sink.with_marker(marker),
                             what=f'{n} transactions with {marker}')

    def xverp_send(self, sender, recipients, body, param='XVERP', source=AUTHORIZED):
        with pb.connect(source_address=source) as s:
            code, text = s.ehlo()
            self.assertEqual(code, 250)
            code, text = s.docmd(f'MAIL FROM:<{sender}> {param}')
            self.assertEqual(code, 250, text)
            for r in recipients:
                self.assertEqual(s.rcpt(r)[0], 250)
            code, text = s.data(body.encode())
            self.assertEqual(code, 250, text)
            return pb.queue_id_from_text(text)

    def test_ehlo_offers_xverp_to_authorized_clients_only(self):
        with pb.connect(source_address=AUTHORIZED) as s:
            s.ehlo()
            self.assertTrue(s.has_extn('xverp'), s.esmtp_features)
        with pb.connect(source_address=OUTSIDER) as s:
            s.ehlo()
            self.assertFalse(s.has_extn('xverp'), s.esmtp_features)

    def test_outsider_xverp_refused_as_postfix_does(self):
        with pb.connect(source_address=OUTSIDER) as s:
            s.ehlo()
            self.assertEqual(s.docmd(f'MAIL FROM:<{LIST}> XVERP'),
                             (555, b'5.5.4 Unsupported option: XVERP'))
            self.assertEqual(s.docmd(f'MAIL FROM:<{LIST}> XVERP=-='),
                             (555, b'5.5.4 Unsupported option: XVERP=-='))
            # Without it the same client may send.
            self.assertEqual(s.docmd(f'MAIL FROM:<{LIST}>')[0], 250)

    def test_bad_xverp_requests(self):
        with pb.connect(source_address=AUTHORIZED) as s:
            s.ehlo()
            self.assertEqual(s.docmd(f'MAIL FROM:<{LIST}> XVERP=ab'),
                             (501, b'5.5.4 Error: XVERP needs two characters from -=+'))
            self.assertEqual(s.docmd(f'MAIL FROM:<{LIST}> XVERP=+=-'),
                             (501, b'5.5.4 Error: XVERP needs two characters from -=+'))
            self.assertEqual(s.docmd('MAIL FROM:<> XVERP'),
                             (503, b'5.5.4 Error: XVERP requires non-null sender'))

    def test_smtp_mail_from_per_recipient(self):
        marker = self.marker('xverp')
        qid = self.xverp_send(LIST, ['user1@sink.test', 'user2@sink.test', 'bob@localhost'],
                              f'Subject: {marker}\r\n\r\n{marker}\r\n')
        got = sorted(self.mail_from(marker, 2))
        self.assertEqual(got, [('MAIL FROM:<listowner+user1=sink.test@localhost>', ['user1@sink.test']),
                               ('MAIL FROM:<listowner+user2=sink.test@localhost>', ['user2@sink.test'])])
        # local: the Return-Path names bob.
        msg = pb.wait_until(lambda: next((m for m in pb.mbox_messages('bob') if marker in m), None),
                            what="the message in bob's mailbox")
        self.assertIn('Return-Path: <listowner+bob=localhost@localhost>', msg)
        self.assertTrue(msg.startswith('From listowner+bob=localhost@localhost '), msg[:80])
        self.assertTrue(pb.queue_id_valid(qid))

    def test_smtp_explicit_delimiters(self):
        marker = self.marker('delims')
        self.xverp_send(LIST, ['user3@sink.test'], f'Subject: {marker}\r\n\r\n{marker}\r\n', param='XVERP=-=')
        [(mail, rcpts)] = self.mail_from(marker, 1)
        self.assertEqual(mail, 'MAIL FROM:<listowner-user3=sink.test@localhost>')

    def test_plain_mail_unchanged(self):
        marker = self.marker('plain')
        pb.send(LIST, ['user4@sink.test', 'user5@sink.test'], f'Subject: {marker}\r\n\r\n{marker}\r\n',
                source_address=AUTHORIZED)
        [(mail, rcpts)] = self.mail_from(marker, 1)
        self.assertEqual(mail, f'MAIL FROM:<{LIST}>')
        self.assertEqual(sorted(rcpts), ['user4@sink.test', 'user5@sink.test'])

    def test_sendmail_xv(self):
        marker = self.marker('sendmail')
        pb.run('sendmail', '-XV', '-f', LIST, 'user6@sink.test', 'user7@sink.test',
               input=f'Subject: {marker}\n\n{marker}\n')
        got = sorted(self.mail_from(marker, 2))
        self.assertEqual([m for m, _ in got], ['MAIL FROM:<listowner+user6=sink.test@localhost>',
                                               'MAIL FROM:<listowner+user7=sink.test@localhost>'])
        marker = self.marker('sendmail-delims')
        pb.run('sendmail', '-XV-=', '-f', LIST, 'user8@sink.test', input=f'Subject: {marker}\n\n{marker}\n')
        [(mail, _)] = self.mail_from(marker, 1)
        self.assertEqual(mail, 'MAIL FROM:<listowner-user8=sink.test@localhost>')

    def test_sendmail_bs_xverp(self):
        # sendmail -bs: local submission may always ask, as in Postfix.
        marker = self.marker('bs')
        dialogue = (f'EHLO client.test\r\nMAIL FROM:<{LIST}> XVERP=-=\r\nRCPT TO:<user11@sink.test>\r\nDATA\r\n'
                    f'Subject: {marker}\r\n\r\n{marker}\r\n.\r\nQUIT\r\n')
        out = pb.run('sendmail', '-bs', input=dialogue)
        self.assertIn('250-XVERP', out)
        [(mail, _)] = self.mail_from(marker, 1)
        self.assertEqual(mail, 'MAIL FROM:<listowner-user11=sink.test@localhost>')

    def test_sendmail_bad_delimiters(self):
        r = subprocess.run(['sendmail', '-XVab', '-f', LIST, 'user9@sink.test'], input=b'Subject: x\n\nx\n',
                           capture_output=True, check=False)
        self.assertEqual(r.returncode, 64, r.stderr)
        self.assertIn(b'-XV requires two characters from -=+', r.stderr)

    def test_pipe_sender(self):
        marker = self.marker('pipe')
        self.xverp_send(LIST, ['dave@pipe.test'], f'Subject: {marker}\r\n\r\n{marker}\r\n')

        def argv():
            home = '/home/carol'
            for name in os.listdir(home):
                if name.startswith('pipe-argv.'):
                    with open(os.path.join(home, name), encoding='utf-8') as f:
                        lines = f.read().splitlines()
                    if lines[1:] == ['dave@pipe.test']:
                        return lines
            return None
        lines = pb.wait_until(argv, what="the pipe command's argv")
        self.assertEqual(lines[0], 'listowner+dave=pipe.test@localhost')

    def bounces(self, marker):
        return [m for m in pb.mbox_messages('listowner') if marker in m and 'Final-Recipient' in m]

    def test_bounce_per_recipient_to_its_verp_address(self):
        marker = self.marker('bounce')
        cursor = pb.journal_cursor()
        qid = self.xverp_send(LIST, ['reject1@sink.test', 'reject2@sink.test', 'user10@sink.test'],
                              f'Subject: {marker}\r\n\r\n{marker}\r\n')
        reports = pb.wait_until(lambda: len(self.bounces(marker)) == 2 and self.bounces(marker),
                                what='two bounces in the list owner\'s mailbox')
        by_rcpt = {}
        for r in reports:
            finals = re.findall(r'Final-Recipient: rfc822; ?(\S+)', r)
            self.assertEqual(len(finals), 1, r)
            by_rcpt[finals[0]] = r
        self.assertEqual(sorted(by_rcpt), ['reject1@sink.test', 'reject2@sink.test'])
        for rcpt, r in by_rcpt.items():
            local = rcpt.split('@')[0]
            self.assertRegex(r, rf'(?m)^To: <?listowner\+{local}=sink\.test@localhost>?$')
            self.assertIn('Return-Path: <>', r)
        wait_removed(qid, cursor)
        self.assertEqual(sorted(r['RECIPIENT'] for r in notices(qid, cursor)),
                         ['listowner+reject1=sink.test@localhost', 'listowner+reject2=sink.test@localhost'])

    def test_zz_disable_verp_bounces(self):
        # Last (by name): it changes the configuration.
        pb.set_config(disable_verp_bounces=True)
        try:
            marker = self.marker('onebounce')
            cursor = pb.journal_cursor()
            qid = self.xverp_send(LIST, ['reject3@sink.test', 'reject4@sink.test'], f'Subject: {marker}\r\n\r\n{marker}\r\n')
            [report] = pb.wait_until(lambda: self.bounces(marker), what='the bounce')
            self.assertRegex(report, r'(?m)^To: <?listowner@localhost>?$')
            self.assertEqual(sorted(re.findall(r'Final-Recipient: rfc822; ?(\S+)', report)),
                             ['reject3@sink.test', 'reject4@sink.test'])
            # bounce logs each report it queued before the message is removed.
            wait_removed(qid, cursor)
            self.assertEqual([r['RECIPIENT'] for r in notices(qid, cursor)], [LIST])
        finally:
            pb.set_config(disable_verp_bounces=False)


def wait_removed(qid, cursor):
    pb.wait_until(lambda: any(r['MESSAGE'] == f'{qid}: removed' for r in pb.journal(QUEUE_ID=qid, since=cursor)),
                  what=f'{qid} removed')


def notices(qid, cursor):
    """bounce's records of the reports it queued for qid."""
    return [r for r in pb.journal(QUEUE_ID=qid, POSTBUS_ROLE='bounce', since=cursor) if 'NOTICE_QUEUE_ID' in r]


if __name__ == '__main__':
    unittest.main(verbosity=2)
