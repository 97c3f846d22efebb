"""smtpd_milters and non_smtpd_milters: a test milter on libmilter (python3-milter) refuses at every stage
with every kind of reply, makes every end-of-message change (checked in the delivered Maildir message) and
quarantines to hold; a dead, a hanging and a misbehaving milter get milter_default_action; OpenDKIM as a
milter signs SMTP and sendmail mail, and the signature verifies with python3-dkim against the key."""
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import unittest

import postbus as pb

SOCKDIR = '/run/milter-test'
MILTER = f'unix:{SOCKDIR}/test.sock'
LOG = f'{SOCKDIR}/macros.log'


# ---- the test milter (run as: python3 test_milter.py --milter SOCKET) ------------------------------------

def run_test_milter(spec):
    import Milter

    class TestMilter(Milter.Base):
        def __init__(self):
            self.id = Milter.uniqueID()

        def log(self, line):
            with open(LOG, 'a') as f:
                f.write(line + '\n')

        def connect(self, hostname, family, hostaddr):
            self.client = hostaddr[0] if hostaddr else ''
            self.log(f'connect {hostname} {self.client} j={self.getsymval("j")} '
                     f'daemon_name={self.getsymval("{daemon_name}")}')
            if self.client == '127.0.0.2':
                return Milter.REJECT
            if self.client == '127.0.0.3':
                return Milter.TEMPFAIL
            return Milter.CONTINUE

        def hello(self, name):
            self.helo = name
            if name == 'reject.helo':
                return Milter.REJECT
            if name == 'code.helo':
                self.setreply('550', '5.7.1', 'helo says no')
                return Milter.REJECT
            return Milter.CONTINUE

        def envfrom(self, f, *params):
            self.sender = f.strip('<>')
            self.rcpts = []
            self.headers = []
            self.bodytext = b''
            self.mail_macros = (self.getsymval('{mail_addr}'), self.getsymval('{auth_authen}'))
            self.queue_ids = {'mail': self.getsymval('i')}
            self.mail_params = ','.join(params)
            local = self.sender.split('@')[0]
            if local == 'reject-mail':
                return Milter.REJECT
            if local == 'tempfail-mail':
                return Milter.TEMPFAIL
            if local == 'code-mail':
                self.setreply('553', '5.7.9', 'sender code text')
                return Milter.REJECT
            if local == 'discard-mail':
                return Milter.DISCARD
            if local == 'accept-mail':
                return Milter.ACCEPT
            return Milter.CONTINUE

        def envrcpt(self, to, *params):
            to = to.strip('<>')
            self.rcpt_macro = self.getsymval('{rcpt_addr}')
            self.queue_ids['rcpt'] = self.getsymval('i')
            local = to.split('@')[0]
            if local == 'reject-rcpt':
                self.setreply('550', '5.7.2', 'no such rcpt here')
                return Milter.REJECT
            if local == 'tempfail-rcpt':
                return Milter.TEMPFAIL
            if local == 'discard-rcpt':
                return Milter.DISCARD
            self.rcpts.append(to)
            return Milter.CONTINUE

        def data(self):
            if self.sender.startswith('reject-data@'):
                return Milter.REJECT
            return Milter.CONTINUE

        def header(self, name, value):
            self.headers.append((name, value))
            if name.lower() == 'x-test-reject':
                self.setreply('550', '5.7.3', 'header refused')
                return Milter.REJECT
            return Milter.CONTINUE

        def eoh(self):
            if self.sender.startswith('reject-eoh@'):
                self.setreply('451', '4.7.4', 'eoh says later')
                return Milter.TEMPFAIL
            return Milter.CONTINUE

        def body(self, chunk):
            self.bodytext += chunk
            if b'REJECT-BODY' in chunk:
                self.setreply('554', '5.7.5', 'body refused')
                return Milter.REJECT
            return Milter.CONTINUE

        def eom(self):
            self.queue_ids['eom'] = self.getsymval('i')
            subject = next((v for n, v in self.headers if n.lower() == 'subject'), '')
            if subject == 'eom-reject':
                self.setreply('550', '5.7.6', 'end of message refused')
                return Milter.REJECT
            if subject == 'eom-tempfail':
                return Milter.TEMPFAIL
            if subject == 'eom-discard':
                return Milter.DISCARD
            if subject == 'quarantine':
                self.quarantine('held by the test milter')
            if subject == 'edit':
                self.addheader('X-Milter-Added', 'added by the milter')
                self.addheader('X-Milter-First', 'inserted first', 0)
                self.chgheader('Subject', 1, 'changed by the milter')
                self.chgheader('X-Remove-Me', 1, '')
                crlf = b'\r\n' in self.bodytext
                self.addheader('X-Milter-Macros', f'mail_addr={self.mail_macros[0]} rcpt_addr={self.rcpt_macro} '
                                                  f'body_crlf={crlf} mail_params={self.mail_params}')
                self.addheader('X-Milter-Original', self.bodytext.split(b'\r\n')[0].decode())
                self.addheader('X-Milter-Queue-Id', ' '.join(f'{k}={v}' for k, v in sorted(self.queue_ids.items())))
                self.replacebody(b'The body was replaced.\r\nSecond line.\r\n')
                self.addrcpt('<frank@localhost>')
                self.delrcpt('<erin@localhost>')
                self.chgfrom('<changed-sender@example.org>')
            return Milter.CONTINUE

    Milter.factory = TestMilter
    Milter.set_flags(Milter.ADDHDRS | Milter.CHGHDRS | Milter.CHGBODY | Milter.ADDRCPT | Milter.DELRCPT
                     | Milter.QUARANTINE | Milter.CHGFROM)
    Milter.runmilter('postbus-test', spec, 60)


# ---- peers that misbehave ------------------------------------------------------------------------------------

class BadServer:
    """A unix socket server whose connections get `answer` (bytes) and are then left open, unanswered."""

    def __init__(self, path, answer):
        self.path, self.answer, self.conns = path, answer, []
        if os.path.exists(path):
            os.unlink(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        os.chmod(path, 0o777)
        self.sock.listen(16)
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            if self.answer:
                try:
                    c.recv(4096)
                    c.sendall(self.answer)
                except OSError:
                    pass

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


class HangAtEnd(BadServer):
    """A milter that negotiates and answers every command, then never answers the end of the message."""

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self.talk, args=(c,), daemon=True).start()

    def talk(self, c):
        buf = b''
        try:
            while True:
                data = c.recv(65536)
                if not data:
                    return
                buf += data
                while len(buf) >= 4 and len(buf) >= 4 + int.from_bytes(buf[:4], 'big'):
                    n = int.from_bytes(buf[:4], 'big')
                    cmd, buf = buf[4:5], buf[4 + n:]
                    if cmd == b'O':
                        c.sendall((13).to_bytes(4, 'big') + b'O' + (6).to_bytes(4, 'big') +
                                  (0x1ff).to_bytes(4, 'big') + (0).to_bytes(4, 'big'))
                    elif cmd in b'CHMRTLNB':
                        c.sendall(b'\0\0\0\x01c')
        except OSError:
            return


def installed(name):
    """Where meson installed one of our programs (Postfix's may be in /usr/sbin too)."""
    out = pb.run('meson', 'introspect', '--installed', os.environ['POSTBUS_BUILDDIR'])
    for dst in json.loads(out).values():
        if dst.endswith('/sbin/sendmail'):
            return os.path.join(os.path.dirname(dst), name)
    raise AssertionError('sendmail is not among the installed files')


def sendmail(sender, rcpts, text):
    p = subprocess.run([installed('sendmail'), '-f', sender] + rcpts, input=text.encode(), capture_output=True,
                       timeout=60)
    assert p.returncode == 0, p


def queue_files(qid):
    return [q for q in ('incoming', 'active', 'deferred', 'hold', 'corrupt')
            if os.path.exists(f'/var/spool/postbus/{q}/{qid}')]


def maildir_with(user, marker):
    return next((m for m in pb.maildir_messages(user) if marker in m), None)


def wait_maildir(user, marker):
    return pb.wait_until(lambda: maildir_with(user, marker), what=f'mail {marker} for {user}')


def session(source=None, helo='client.example.org'):
    s = pb.SmtpRaw('127.0.0.1', 25, source=source)
    code, text = s.reply()
    return s, code, text


def transaction(s, sender, rcpts, data, mail_params=''):
    """MAIL, RCPTs, DATA and the message; the replies, in order."""
    out = [s.cmd(f'MAIL FROM:<{sender}>{mail_params}')]
    out += [s.cmd(f'RCPT TO:<{r}>') for r in rcpts]
    code, text = s.cmd('DATA')
    out.append((code, text))
    if code == 354:
        s.send(data.replace('\n', '\r\n') + '\r\n.\r\n')
        out.append(s.reply())
    return out


class Milters(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for u in ('erin', 'frank'):
            pb.add_user(u, maildir=True)
        os.makedirs(SOCKDIR, exist_ok=True)
        os.chmod(SOCKDIR, 0o777)
        cls.milter = subprocess.Popen([sys.executable, os.path.abspath(__file__), '--milter', MILTER])
        pb.wait_until(lambda: os.path.exists(MILTER[5:]), what='the test milter socket')
        os.chmod(MILTER[5:], 0o777)

    @classmethod
    def tearDownClass(cls):
        cls.milter.terminate()
        cls.milter.wait()

    def configure(self, milters, **params):
        base = dict(home_mailbox='Maildir/', mynetworks='127.0.0.0/8', smtpd_milters=milters,
                    non_smtpd_milters='', milter_default_action='tempfail', milter_connect_timeout='30s',
                    milter_command_timeout='30s', milter_content_timeout='300s')
        base.update(params)
        # the tests restart smtpd more often than systemd's default start limit allows
        pb.systemctl('reset-failed', 'postbus-*', check=False)
        pb.set_config(**base)

    def test_1_stages_and_replies(self):
        self.configure(MILTER)
        # connect: reject and tempfail answer every command but QUIT
        s, code, _ = session(source='127.0.0.2')
        self.assertEqual(code, 220)
        code, text = s.cmd('EHLO client.example.org')
        self.assertEqual(code, 550, text)
        self.assertEqual(s.cmd('MAIL FROM:<a@example.org>')[0], 550)
        self.assertEqual(s.cmd('QUIT')[0], 221)
        s.close()
        s, _, _ = session(source='127.0.0.3')
        self.assertEqual(s.cmd('HELO client.example.org')[0], 451)
        s.close()

        # HELO: reject, and a reply code with text shown as given
        s, _, _ = session()
        self.assertEqual(s.cmd('EHLO reject.helo')[0], 550)
        self.assertEqual(s.cmd('EHLO code.helo'), (550, '5.7.1 helo says no'))
        self.assertEqual(s.cmd('EHLO client.example.org')[0], 250)
        # MAIL: reject, tempfail, reply code; the session goes on
        self.assertEqual(s.cmd('MAIL FROM:<reject-mail@example.org>')[0], 550)
        self.assertEqual(s.cmd('MAIL FROM:<tempfail-mail@example.org>')[0], 451)
        self.assertEqual(s.cmd('MAIL FROM:<code-mail@example.org>'), (553, '5.7.9 sender code text'))
        # RCPT: a refused recipient is not taken, the others are
        replies = transaction(s, 'plain@example.org', ['reject-rcpt@example.com', 'tempfail-rcpt@example.com',
                                                       'erin@localhost'],
                              'Subject: rcpt stage\n\nrcpt-stage-marker\n')
        self.assertEqual(replies[1], (550, '5.7.2 no such rcpt here'))
        self.assertEqual(replies[2][0], 451)
        self.assertEqual(replies[3][0], 250)
        self.assertEqual(replies[5][0], 250, replies)
        qid = pb.queue_id_from_text(replies[5][1])
        m = wait_maildir('erin', 'rcpt-stage-marker')
        self.assertIn(qid, m)
        # DATA, a header, the end of the headers, the body, the end of the message
        replies = transaction(s, 'reject-data@example.org', ['erin@localhost'], 'Subject: x\n\nx\n')
        self.assertEqual(replies[2][0], 550)
        replies = transaction(s, 'a@example.org', ['erin@localhost'], 'X-Test-Reject: yes\nSubject: h\n\nx\n')
        self.assertEqual(replies[-1], (550, '5.7.3 header refused'))
        replies = transaction(s, 'reject-eoh@example.org', ['erin@localhost'], 'Subject: e\n\nx\n')
        self.assertEqual(replies[-1], (451, '4.7.4 eoh says later'))
        replies = transaction(s, 'a@example.org', ['erin@localhost'], 'Subject: b\n\nline\nREJECT-BODY\n')
        self.assertEqual(replies[-1], (554, '5.7.5 body refused'))
        replies = transaction(s, 'a@example.org', ['erin@localhost'], 'Subject: eom-reject\n\nx\n')
        self.assertEqual(replies[-1], (550, '5.7.6 end of message refused'))
        replies = transaction(s, 'a@example.org', ['erin@localhost'], 'Subject: eom-tempfail\n\nx\n')
        self.assertEqual(replies[-1][0], 451)
        # discard at MAIL, at RCPT and at the end: 250, and nothing delivered
        for sender, rcpt, subject in (('discard-mail@example.org', 'erin@localhost', 'discard one'),
                                      ('a@example.org', 'discard-rcpt@example.com', 'discard two'),
                                      ('a@example.org', 'erin@localhost', 'eom-discard')):
            replies = transaction(s, sender, [rcpt, 'erin@localhost'] if 'rcpt' in rcpt else [rcpt],
                                  f'Subject: {subject}\n\ndiscarded-marker\n')
            self.assertEqual(replies[-1][0], 250, replies)
            self.assertIn('discarded', replies[-1][1])
        # accept at MAIL: the rest of the message is not asked about, and is delivered
        replies = transaction(s, 'accept-mail@example.org', ['erin@localhost'],
                              'Subject: eom-reject\n\naccepted-marker\n')
        self.assertEqual(replies[-1][0], 250, replies)
        wait_maildir('erin', 'accepted-marker')
        self.assertIsNone(maildir_with('erin', 'discarded-marker'))
        self.assertEqual(s.cmd('QUIT')[0], 221)
        s.close()

    def test_2_end_of_message_changes(self):
        self.configure(MILTER)
        s, _, _ = session()
        s.cmd('EHLO client.example.org')
        replies = transaction(s, 'orig@example.org', ['erin@localhost'],
                              'From: orig@example.org\nSubject: edit\nX-Remove-Me: gone\nX-Keep: kept\n\n'
                              'original body edit-marker\n', mail_params=' SIZE=500 BODY=8BITMIME')
        self.assertEqual(replies[-1][0], 250, replies)
        qid = re.search(r'queued as (\S+)', replies[-1][1]).group(1)
        s.cmd('QUIT')
        s.close()
        # erin was deleted and frank added: frank has it, changed
        m = pb.wait_until(lambda: next(iter(pb.maildir_messages('frank', parsed=True)), None),
                          what='the changed message for frank')
        self.assertEqual(m['Subject'], 'changed by the milter')
        self.assertEqual(m['X-Milter-Added'], 'added by the milter')
        self.assertIsNone(m['X-Remove-Me'])
        self.assertEqual(m['X-Keep'], 'kept')
        self.assertIn('mail_addr=orig@example.org', m['X-Milter-Macros'])
        self.assertIn('rcpt_addr=erin@localhost', m['X-Milter-Macros'])
        self.assertIn('body_crlf=True', m['X-Milter-Macros'])
        self.assertIn('mail_params=SIZE=500,BODY=8BITMIME', m['X-Milter-Macros'])
        # the queue ID ("i") from MAIL on is the one the message was queued as
        self.assertEqual(m['X-Milter-Queue-Id'], f'eom={qid} mail={qid} rcpt={qid}')
        self.assertRegex(' '.join(m.get_all('Received')), rf'\sid {qid}\b')
        self.assertEqual(m.get_content(), 'The body was replaced.\nSecond line.\n')
        self.assertIn('changed-sender@example.org', m['Return-Path'])
        raw = pb.maildir_messages('frank')[0]
        # the inserted header is above the message's own (cleanup's Received above all)
        self.assertLess(raw.index('X-Milter-First: inserted first'), raw.index('From: orig@example.org'))
        self.assertNotIn('original body', raw.split('\n\n', 1)[1])
        self.assertIsNone(maildir_with('erin', 'edit-marker'))
        self.assertIsNone(maildir_with('erin', 'The body was replaced'))
        # macros of the connection
        with open(LOG) as f:
            self.assertIn('j=', f.read())

    def test_3_quarantine_to_hold(self):
        self.configure(MILTER)
        qid = pb.send('a@example.org', ['erin@localhost'], 'Subject: quarantine\n\nquarantine-marker\n')
        pb.wait_until(lambda: queue_files(qid) == ['hold'], what='the message in hold')
        out = pb.run(installed('postqueue'), '-p')
        self.assertIn(qid + '!', out)
        time.sleep(1)
        self.assertIsNone(maildir_with('erin', 'quarantine-marker'))

    def expect_tempfail_session(self):
        s, code, _ = session()
        self.assertEqual(code, 220)
        code, text = s.cmd('EHLO client.example.org')
        self.assertEqual(code, 451, text)
        self.assertIn('4.7.1', text)
        self.assertEqual(s.cmd('QUIT')[0], 221)
        s.close()

    def test_4_dead_milter(self):
        dead = f'unix:{SOCKDIR}/nothing-here.sock'
        self.configure(dead)
        self.expect_tempfail_session()
        self.configure(dead, milter_default_action='accept')
        qid = pb.send('a@example.org', ['erin@localhost'], 'Subject: dead accept\n\ndead-accept-marker\n')
        self.assertIn(qid, wait_maildir('erin', 'dead-accept-marker'))
        self.configure(dead, milter_default_action='reject')
        s, _, _ = session()
        self.assertEqual(s.cmd('EHLO client.example.org')[0], 550)
        s.close()
        self.configure(f'inet:127.0.0.1:1 {MILTER}', milter_default_action='quarantine')
        qid = pb.send('a@example.org', ['erin@localhost'], 'Subject: dead quarantine\n\nx\n')
        pb.wait_until(lambda: queue_files(qid) == ['hold'], what='the message in hold')

    def test_5_hanging_milter(self):
        path = f'{SOCKDIR}/hang.sock'
        server = BadServer(path, b'')
        self.addCleanup(server.close)
        self.configure(f'unix:{path}', milter_connect_timeout='2s', milter_command_timeout='2s')
        start = time.monotonic()
        self.expect_tempfail_session()
        self.assertLess(time.monotonic() - start, 30)
        # a hang after the option negotiation: answered, then nothing more
        optneg = (13).to_bytes(4, 'big') + b'O' + (6).to_bytes(4, 'big') + (0x1ff).to_bytes(4, 'big') + \
            (0).to_bytes(4, 'big')
        server2 = BadServer(f'{SOCKDIR}/hang2.sock', optneg)
        self.addCleanup(server2.close)
        self.configure(f'unix:{SOCKDIR}/hang2.sock', milter_command_timeout='2s', milter_content_timeout='2s')
        self.expect_tempfail_session()
        # a hang at the end of the message: milter_content_timeout, then the default action for the message
        server3 = HangAtEnd(f'{SOCKDIR}/hang3.sock', b'')
        self.addCleanup(server3.close)
        self.configure(f'unix:{SOCKDIR}/hang3.sock', milter_content_timeout='2s')
        s, _, _ = session()
        self.assertEqual(s.cmd('EHLO client.example.org')[0], 250)
        replies = transaction(s, 'a@example.org', ['erin@localhost'], 'Subject: hang\n\nhang-end-marker\n')
        self.assertEqual([r[0] for r in replies], [250, 250, 354, 451], replies)
        s.close()
        self.configure(f'unix:{SOCKDIR}/hang3.sock', milter_content_timeout='2s', milter_default_action='accept')
        qid = pb.send('a@example.org', ['erin@localhost'], 'Subject: hang accept\n\nhang-accept-marker\n')
        self.assertIn(qid, wait_maildir('erin', 'hang-accept-marker'))
        self.assertIsNone(maildir_with('erin', 'hang-end-marker'))

    def test_6_misbehaving_milter(self):
        for name, answer in (('oversized', b'\x7f\xff\xff\xffOxxxx'), ('garbage', b'\x00\x00\x00\x05Zjunk'),
                             ('short', b'\x00\x00\x00\x03O\x00\x00')):
            path = f'{SOCKDIR}/{name}.sock'
            server = BadServer(path, answer)
            self.addCleanup(server.close)
            self.configure(f'unix:{path}', milter_command_timeout='3s')
            self.expect_tempfail_session()
            self.configure(f'unix:{path}', milter_command_timeout='3s', milter_default_action='accept')
            qid = pb.send('a@example.org', ['erin@localhost'], f'Subject: {name}\n\n{name}-marker\n')
            self.assertIn(qid, wait_maildir('erin', f'{name}-marker'))
        # smtpd never crashed: its journal has no core dump and it still serves
        self.assertEqual(pb.unit_property('postbus-smtpd.service', 'Result'), 'success')

    def test_7_sendmail_through_non_smtpd_milters(self):
        self.configure('', non_smtpd_milters=MILTER)
        sendmail('orig@example.org', ['erin@localhost'],
                 'From: orig@example.org\nSubject: edit\nX-Remove-Me: x\n\nsendmail-edit-marker\n')

        def changed():
            return next((m for m in pb.maildir_messages('frank', parsed=True)
                         if m['X-Milter-Original'] == 'sendmail-edit-marker'), None)
        m = pb.wait_until(changed, what='the changed sendmail message for frank')
        self.assertEqual(m['Subject'], 'changed by the milter')
        self.assertIsNone(m['X-Remove-Me'])
        self.assertIn('changed-sender@example.org', m['Return-Path'])
        self.assertIn('rcpt_addr=erin@localhost', m['X-Milter-Macros'])
        # pickup's queue ID: the same at each stage, and the message's
        qid = re.fullmatch(r'eom=(\S+) mail=\1 rcpt=\1', m['X-Milter-Queue-Id']).group(1)
        self.assertRegex(' '.join(m.get_all('Received')), rf'\sid {qid}\b')
        self.assertEqual(m.get_content(), 'The body was replaced.\nSecond line.\n')
        self.assertIsNone(maildir_with('erin', 'sendmail-edit-marker'))
        # quarantine of sendmail mail: to hold
        before = set(os.listdir('/var/spool/postbus/hold'))
        sendmail('a@example.org', ['erin@localhost'], 'Subject: quarantine\n\nsendmail-quarantine-marker\n')
        pb.wait_until(lambda: set(os.listdir('/var/spool/postbus/hold')) - before, what='a message in hold')
        # a refusal at the end of the message: returned to the sender, not delivered
        sendmail('erin@localhost', ['frank@localhost'], 'Subject: eom-reject\n\nsendmail-reject-marker\n')
        notice = pb.wait_until(lambda: maildir_with('erin', 'end of message refused'),
                               what='the notice of the refusal')
        self.assertIn('5.7.6', notice)
        self.assertIsNone(maildir_with('frank', 'sendmail-reject-marker'))
        self.assertIsNone(maildir_with('erin', 'sendmail-quarantine-marker'))

    def test_8_opendkim_signs(self):
        if not pb.have('opendkim'):
            raise unittest.SkipTest('opendkim is not installed')
        import dkim
        # OpenDKIM wants its key and configuration where no other user can write
        keydir = '/run/dkim-test'
        os.makedirs(keydir, mode=0o700, exist_ok=True)
        pb.run('opendkim-genkey', '-D', keydir, '-d', 'example.org', '-s', 'test')
        os.chmod(f'{keydir}/test.private', 0o600)
        with open(f'{keydir}/test.txt') as f:
            record = ''.join(re.findall(r'"([^"]*)"', f.read())).encode()
        conf = f'{keydir}/opendkim.conf'
        sock = f'{SOCKDIR}/opendkim.sock'
        with open(conf, 'w') as f:
            f.write(f'Syslog yes\nMode sv\nDomain example.org\nSelector test\nKeyFile {keydir}/test.private\n'
                    f'Socket local:{sock}\nUMask 000\nCanonicalization relaxed/relaxed\n'
                    f'PidFile {keydir}/opendkim.pid\n')
        proc = subprocess.Popen(['opendkim', '-f', '-x', conf])
        self.addCleanup(proc.wait)
        self.addCleanup(proc.terminate)
        pb.wait_until(lambda: os.path.exists(sock), what='the opendkim socket')
        self.configure(f'unix:{sock}', non_smtpd_milters=f'unix:{sock}')

        def dnsfunc(name, timeout=5):
            return record if name in (b'test._domainkey.example.org.', 'test._domainkey.example.org.') else None

        def verified(marker):
            raw = next((r for r in self.raw_maildir('erin') if marker.encode() in r), None)
            if raw is None:
                return None
            self.assertIn(b'DKIM-Signature:', raw)
            return dkim.verify(raw.replace(b'\r\n', b'\n').replace(b'\n', b'\r\n'), dnsfunc=dnsfunc)

        text = ('From: a@example.org\nTo: erin@localhost\nSubject: dkim {0}\nDate: Sun, 6 Dec 2026 08:00:00 +0000\n'
                'Message-ID: <{0}@example.org>\n\nsigned {0} body\nsecond line\n')
        pb.send('a@example.org', ['erin@localhost'], text.format('smtp-dkim-marker'))
        self.assertTrue(pb.wait_until(lambda: verified('smtp-dkim-marker') is not None,
                                      what='the SMTP message signed'))
        self.assertTrue(verified('smtp-dkim-marker'), 'the SMTP message does not verify')
        sendmail('a@example.org', ['erin@localhost'], text.format('sendmail-dkim-marker'))
        pb.wait_until(lambda: verified('sendmail-dkim-marker') is not None, what='the sendmail message signed')
        self.assertTrue(verified('sendmail-dkim-marker'), 'the sendmail message does not verify')
        # the check can fail: a changed body does not verify
        raw = next(r for r in self.raw_maildir('erin') if b'smtp-dkim-marker' in r)
        self.assertFalse(dkim.verify(raw.replace(b'second line', b'other line').replace(b'\n', b'\r\n'),
                                     dnsfunc=dnsfunc))

    def raw_maildir(self, user):
        import pwd
        home = pwd.getpwnam(user).pw_dir
        out = []
        for sub in ('new', 'cur'):
            d = os.path.join(home, 'Maildir', sub)
            for n in sorted(os.listdir(d)):
                with open(os.path.join(d, n), 'rb') as f:
                    out.append(f.read())
        return out


if __name__ == '__main__':
    if sys.argv[1:2] == ['--milter']:
        run_test_milter(sys.argv[2])
    else:
        unittest.main()
