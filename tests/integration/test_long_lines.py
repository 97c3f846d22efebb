"""Long lines, as Postfix takes them: smtpd accepts a message line of any length (over RFC 5322's 998 octets
and over line_length_limit) after DATA and in BDAT chunks, up to message_size_limit; local delivers it
whole into a Maildir and to a |command, and pipe to its command; a bounce returns it whole; sendmail keeps
it too; and the smtp client wraps it at smtp_line_length_limit (998) with CRLF SPACE, the rest intact."""
import os
import pwd
import shutil
import time
import unittest

import postbus as pb
from test_smtp import FakeServer, smtp_records, unstuff, wait_record

SENDER = 'alice@localhost'
TRANSPORT = '/etc/postbus/transport'
CMD_DIR = '/home/longcmd'
PIPE_OUT = '/home/pipeuser/out'         # the pipe unit writes only below /home
PIPE_SCRIPT = '/usr/local/bin/pb-long-pipe'
SENDMAIL = shutil.which('sendmail', path='/usr/local/sbin:/usr/sbin:/usr/local/bin:/usr/bin') or '/usr/sbin/sendmail'
SIZES = (1500, 10000, 150000)   # over 998, over line_length_limit (2048), over one queue file record (64 KiB)
WRAP = 998


def long_line(n, seed):
    """n octets of printable text with no blank, so that nothing could be taken for a fold or a line end."""
    return ''.join(chr(ord('A') + (i * 7 + seed) % 58) for i in range(n)).replace('\\', '#').replace('`', '@')


def marker():
    return 'long-%d' % time.time_ns()


def body_of(text):
    """The body of a stored message (LF line ends), after the first empty line."""
    return text.split('\n\n', 1)[1]


def wrapped(line, limit=WRAP):
    """The physical lines Postfix's smtp client makes of a logical line: limit octets, then CRLF SPACE and
    limit - 1 octets more at a time."""
    out, rest = [line[:limit]], line[limit:]
    while rest:
        out.append(' ' + rest[:limit - 1])
        rest = rest[limit - 1:]
    return out


class LongLines(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        pb.add_user('alice', maildir=True)
        pb.add_user('carol', maildir=True)
        pb.add_user('longpipe')
        nobody = pwd.getpwnam('nobody')
        shutil.rmtree(CMD_DIR, ignore_errors=True)
        os.makedirs(CMD_DIR, mode=0o1777)
        os.chown(CMD_DIR, nobody.pw_uid, nobody.pw_gid)
        os.chmod(CMD_DIR, 0o1777)
        with open('/etc/aliases', 'a', encoding='utf-8') as f:
            f.write(f'longpipe: "|cat > {CMD_DIR}/msg.txt"\n')
        if pb.have('newaliases'):
            pb.run('newaliases')
        else:
            pb.run('postbusctl', '--aliases', 'map', 'build', '/etc/aliases')
        pw = pb.add_user('pipeuser')
        os.makedirs(PIPE_OUT, exist_ok=True)
        os.chown(PIPE_OUT, pw.pw_uid, pw.pw_gid)
        with open(PIPE_SCRIPT, 'w', encoding='utf-8') as f:
            f.write(f'#!/bin/sh\ncat > {PIPE_OUT}/$1.msg\n')
        os.chmod(PIPE_SCRIPT, 0o755)
        with open('/etc/postbus/master.cf', 'a', encoding='utf-8') as f:
            f.write('longpipe unix - n n - - pipe\n'
                    f'  flags=R user=pipeuser argv={PIPE_SCRIPT} ${{user}}\n')
        cls.sink = FakeServer(port=2525)
        with open(TRANSPORT, 'w', encoding='utf-8') as f:
            f.write('sink.test smtp:[127.0.0.1]:2525\n'
                    'pipe.test longpipe:\n')
        pb.run('postbusctl', 'map', 'build', TRANSPORT)
        pb.set_config(transport_maps=f'gdbm:{TRANSPORT}', home_mailbox='Maildir/')

    def maildir_with(self, user, text):
        return pb.wait_until(lambda: next((m for m in pb.maildir_messages(user) if text in m), None),
                             what=f'mail with {text} in the Maildir of {user}')

    def send_bdat(self, recipient, message, cuts):
        """Sends message (bytes, CRLF line ends) in BDAT chunks cut at the given offsets; checks that each
        chunk gets 250 and returns the queue ID."""
        bounds = [0] + list(cuts) + [len(message)]
        with pb.SmtpRaw() as s:
            self.assertEqual(s.reply()[0], 220)
            code, text = s.cmd('EHLO client.test')
            self.assertEqual(code, 250)
            self.assertIn('CHUNKING', text)
            self.assertEqual(s.cmd(f'MAIL FROM:<{SENDER}>')[0], 250)
            self.assertEqual(s.cmd(f'RCPT TO:<{recipient}>')[0], 250)
            for i in range(len(bounds) - 1):
                chunk = message[bounds[i]:bounds[i + 1]]
                last = ' LAST' if i == len(bounds) - 2 else ''
                s.send(f'BDAT {len(chunk)}{last}\r\n'.encode() + chunk)
                code, text = s.reply()
                self.assertEqual(code, 250, text)
            self.assertEqual(s.cmd('QUIT')[0], 221)
        return pb.queue_id_from_text(text)

    def test_data_to_maildir(self):
        for n in SIZES:
            with self.subTest(n=n):
                m, line = marker(), long_line(n, n)
                body = f'Subject: {m}\n\nbefore\n{line}\n.dot after\nafter\n'
                qid = pb.send(SENDER, ['carol@localhost'], body)
                text = self.maildir_with('carol', m)
                self.assertIn(f'with ESMTP id {qid}', text)
                self.assertEqual(body_of(text), f'before\n{line}\n.dot after\nafter\n')

    def test_bdat_to_maildir(self):
        for n in SIZES:
            with self.subTest(n=n):
                m, line = marker(), long_line(n, n + 1)
                message = f'Subject: {m}\r\n\r\nbefore\r\n{line}\r\n.\r\nafter\r\n'.encode()
                start = message.index(line.encode())
                # chunks that end inside the long line, one between its CR and LF
                cuts = [start + 10, start + n // 2, start + n + 1]
                qid = self.send_bdat('carol@localhost', message, cuts)
                text = self.maildir_with('carol', m)
                self.assertIn(f'with ESMTP id {qid}', text)
                self.assertEqual(body_of(text), f'before\n{line}\n.\nafter\n')

    def test_long_header_line(self):
        m, value = marker(), long_line(5000, 3)
        qid = pb.send(SENDER, ['carol@localhost'], f'Subject: {m}\nX-Long: {value}\n\nbody\n')
        text = self.maildir_with('carol', m)
        self.assertIn(f'with ESMTP id {qid}', text)
        self.assertIn(f'\nX-Long: {value}\n', text)
        self.assertEqual(body_of(text), 'body\n')

    def test_over_size_limit_still_refused(self):
        # message_size_limit still bounds a line: 552, as for any message too big.
        pb.set_config(message_size_limit=20000)
        try:
            with pb.connect() as s:
                s.ehlo()
                s.mail(SENDER)
                s.rcpt('carol@localhost')
                code, text = s.data(f'Subject: big\r\n\r\n{long_line(30000, 5)}\r\n'.encode())
            self.assertEqual(code, 552, text)
            self.assertIn(b'5.3.4', text)
        finally:
            pb.set_config(message_size_limit=10240000)

    def test_command(self):
        line = long_line(10000, 11)
        m = marker()
        pb.send(SENDER, ['longpipe@localhost'], f'Subject: {m}\n\nbefore\n{line}\nafter\n')
        path = os.path.join(CMD_DIR, 'msg.txt')

        def content():
            try:
                with open(path, encoding='utf-8') as f:
                    text = f.read()
            except FileNotFoundError:
                return None
            return text if m in text else None
        text = pb.wait_until(content, what='the message written by the command')
        self.assertTrue(text.endswith(f'\n\nbefore\n{line}\nafter\n'), text[-200:])

    def test_pipe_transport(self):
        line = long_line(10000, 19)
        m = marker()
        pb.send(SENDER, ['piped@pipe.test'], f'Subject: {m}\n\nbefore\n{line}\nafter\n')
        path = os.path.join(PIPE_OUT, 'piped.msg')

        def content():
            try:
                with open(path, encoding='utf-8') as f:
                    text = f.read()
            except FileNotFoundError:
                return None
            return text if m in text else None
        text = pb.wait_until(content, what='the message written by the pipe command')
        self.assertTrue(text.startswith(f'Return-Path: <{SENDER}>\n'), text[:200])
        self.assertTrue(text.endswith(f'\n\nbefore\n{line}\nafter\n'), text[-200:])

    def test_sendmail(self):
        line = long_line(10000, 13)
        m = marker()
        pb.run(SENDMAIL, '-f', SENDER, 'carol@localhost', input=f'Subject: {m}\n\nbefore\n{line}\nafter\n')
        text = self.maildir_with('carol', m)
        self.assertEqual(body_of(text), f'before\n{line}\nafter\n')

    def test_bounce_returns_line_whole(self):
        line = long_line(10000, 17)
        m = marker()
        cursor = pb.journal_cursor()
        qid = pb.send(SENDER, ['reject550@sink.test'], f'Subject: {m}\n\nbefore\n{line}\nafter\n')
        wait_record(qid, cursor, 'bounced')
        report = pb.wait_until(lambda: next((x for x in pb.maildir_messages('alice')
                                             if qid in x and 'Diagnostic-Code' in x), None),
                               what='the bounce report for alice')
        self.assertIn('Content-Type: message/rfc822', report)
        self.assertIn(f'\nbefore\n{line}\nafter\n', report)

    def test_relay_wrapped(self):
        for n in SIZES:
            for bdat in (False, True):
                with self.subTest(n=n, bdat=bdat):
                    cursor = pb.journal_cursor()
                    m, line = marker(), long_line(n, n + 2)
                    lines = ['before', line, '.dot', 'after']
                    message = ('Subject: %s\r\n\r\n' % m + ''.join(l + '\r\n' for l in lines)).encode()
                    if bdat:
                        start = message.index(line.encode())
                        qid = self.send_bdat('bob@sink.test', message, [start + 5, start + n // 3])
                    else:
                        qid = pb.send(SENDER, ['bob@sink.test'], message)
                    wait_record(qid, cursor, 'sent')
                    [t] = [t for t in self.sink.transactions if t.data and m.encode() in t.data]
                    wire = t.data.split(b'\r\n')
                    self.assertTrue(all(len(l) <= WRAP for l in wire), max(len(l) for l in wire))
                    got = [l.decode() for l in unstuff(t.data)]
                    i = got.index('before')
                    pieces = wrapped(line)
                    self.assertEqual(got[i + 1:i + 1 + len(pieces)], pieces)
                    self.assertEqual(got[i + 1 + len(pieces):], ['.dot', 'after'])
                    # the headers before it are as they were
                    self.assertIn(f'Subject: {m}', got)
                    self.assertEqual(len(smtp_records(qid, cursor, DELIVERY_STATUS='sent')), 1)


if __name__ == '__main__':
    unittest.main()
