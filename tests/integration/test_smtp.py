"""The smtp and lmtp delivery agent (postbus-smtp, Postfix's smtp(8) and lmtp(8)): mail for other domains,
routed by transport_maps to fake SMTP and LMTP servers written here (threads on 127.0.0.1 ports and a unix
socket, with scripted replies), arrives with exactly its envelope and dot-stuffed content, and each reply
is judged as Postfix judges it: 550 bounces with the remote text, 451 defers and the flush delivers once,
421 greetings and lost connections defer, SIZE and SMTPUTF8 are respected, DSN parameters pass through,
20 recipients go in one transaction, long lines are wrapped, LMTP gives one result per recipient."""
import json
import os
import re
import socket
import ssl
import subprocess
import threading
import time
import unittest

import postbus as pb

TRANSPORT = '/etc/postbus/transport'
LMTP_DIR = '/run/fake-lmtp'
LMTP_SOCKET = f'{LMTP_DIR}/lmtp'
SENDER = 'alice@localhost'
CA_DIR = '/etc/fake-ca'
TLS_POLICY = '/etc/postbus/tls_policy'
BLACKHOLE_TIMEOUT = 5


class Transaction:
    def __init__(self):
        self.mail = None
        self.rcpts = []
        self.data = None
        self.tls = False


class FakeServer:
    """A scripted SMTP (or LMTP) server. Each connection runs handle(); what it received is kept in
    self.transactions (complete DATA transactions) and self.commands (every command line)."""

    def __init__(self, port=None, path=None, host='127.0.0.1', greeting='220 fake.test ESMTP', ehlo=('PIPELINING', 'SIZE', '8BITMIME', 'DSN'),
                 lmtp=False, drop_in_data=False, tls=None, rset_reply='250 2.0.0 Ok', tls_max=None, data_always=False):
        self.greeting = greeting
        self.ehlo = ehlo
        self.lmtp = lmtp
        self.drop_in_data = drop_in_data
        self.data_always = data_always     # 354 to DATA even when no recipient was accepted
        self.tls = tls
        self.rset_reply = rset_reply
        self.defer_all = False
        self.transactions = []
        self.commands = []
        self.connections = 0
        self.snis = []
        # one TLS context for every connection, so that its session tickets resume; session_reused of each
        self.ssl_ctx = None
        self.tls_max = tls_max
        self.tls_resumed = []
        self.seen = {}
        self.lock = threading.Lock()
        if path:
            if os.path.exists(path):
                os.unlink(path)
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.bind(path)
            os.chmod(path, 0o777)
        else:
            self.sock = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind((host, port))
        self.sock.listen(50)
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def rcpt_reply(self, address):
        """The reply to RCPT TO by the recipient's local part: reject550 gets 550, later451 gets 451 the
        first time and 250 after, anything else 250."""
        local = address.split('@')[0]
        if self.defer_all:
            return '451 4.3.0 <%s>: Try again later' % address
        with self.lock:
            n = self.seen.get(address, 0)
            self.seen[address] = n + 1
        if local.startswith('reject550'):
            return '550 5.1.1 <%s>: Recipient address rejected: User unknown in virtual mailbox table' % address
        if local.startswith('later451') and n == 0:
            return '451 4.3.0 <%s>: Temporary lookup failure' % address
        return '250 2.1.5 Ok'

    def data_reply(self, address):
        """LMTP's reply after the dot for one recipient: lmtp452 gets 452, others 250."""
        if address.split('@')[0].startswith('lmtp452'):
            return '452 4.2.2 <%s>: Mailbox is full' % address
        return '250 2.0.0 <%s> delivered' % address

    def handle(self, conn):
        f = conn.makefile('rb')
        out = conn.makefile('wb')

        def say(line):
            out.write(line.encode() + b'\r\n')
            out.flush()

        try:
            say(self.greeting)
            if not self.greeting.startswith('2'):
                f.readline()
                return
            t = Transaction()
            accepted = []
            tls = False
            while True:
                raw = f.readline()
                if not raw:
                    return
                line = raw.decode('utf-8', 'replace').rstrip('\r\n')
                with self.lock:
                    self.commands.append(line)
                verb = line.split(' ')[0].split(':')[0].upper()
                if verb in ('EHLO', 'LHLO'):
                    lines = ['fake.test'] + list(self.ehlo) + (['STARTTLS'] if self.tls and not tls else [])
                    for i, l in enumerate(lines):
                        say(('250 ' if i == len(lines) - 1 else '250-') + l)
                elif verb == 'STARTTLS' and self.tls and not tls:
                    say('220 2.0.0 Ready to start TLS')
                    with self.lock:
                        if not self.ssl_ctx:
                            self.ssl_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                            self.ssl_ctx.load_cert_chain(*self.tls)
                            self.ssl_ctx.sni_callback = lambda _sock, name, _ctx: self.snis.append(name)
                            if self.tls_max:
                                self.ssl_ctx.maximum_version = self.tls_max
                    conn = self.ssl_ctx.wrap_socket(conn, server_side=True)
                    with self.lock:
                        self.tls_resumed.append(conn.session_reused)
                    f = conn.makefile('rb')
                    out = conn.makefile('wb')
                    tls = True
                elif verb == 'HELO':
                    say('250 fake.test')
                elif verb == 'MAIL':
                    t = Transaction()
                    accepted = []
                    t.mail = line
                    t.tls = tls
                    say('250 2.1.0 Ok')
                elif verb == 'RCPT':
                    t.rcpts.append(line)
                    address = re.match(r'RCPT TO:<([^>]*)>', line, re.I).group(1)
                    reply = self.rcpt_reply(address)
                    if reply.startswith('2'):
                        accepted.append(address)
                    say(reply)
                elif verb == 'DATA':
                    if not accepted and not self.data_always:
                        say('554 5.5.1 Error: no valid recipients')
                        continue
                    say('354 End data with <CR><LF>.<CR><LF>')
                    data = b''
                    while not data.endswith(b'\r\n.\r\n'):
                        chunk = f.readline()
                        if not chunk:
                            return
                        data += chunk
                        if self.drop_in_data and len(data) > 100:
                            conn.shutdown(socket.SHUT_RDWR)
                            return
                    t.data = data
                    with self.lock:
                        self.transactions.append(t)
                    if self.lmtp:
                        for a in accepted:
                            say(self.data_reply(a))
                    else:
                        say('250 2.0.0 Ok: queued as FAKE%d' % len(self.transactions))
                elif verb == 'RSET':
                    say(self.rset_reply)
                    if not self.rset_reply.startswith('2'):
                        return
                elif verb == 'QUIT':
                    say('221 2.0.0 Bye')
                    return
                else:
                    say('502 5.5.2 Error: command not recognized')
        except OSError:
            pass
        finally:
            conn.close()


def smtp_records(qid, since, **fields):
    return [r for r in pb.journal(QUEUE_ID=qid, POSTBUS_ROLE='smtp', since=since, **fields)]


def wait_record(qid, since, status):
    return pb.wait_until(lambda: smtp_records(qid, since, DELIVERY_STATUS=status),
                         what=f'a {status} record of {qid}')


def unstuff(data):
    """The message as the server saw it, without the final dot, dot-unstuffed."""
    assert data.endswith(b'\r\n.\r\n'), data[-20:]
    lines = data[:-3].split(b'\r\n')[:-1]
    return [l[1:] if l.startswith(b'.') else l for l in lines]


class Smtp(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        pb.add_user('alice')
        os.makedirs(LMTP_DIR, exist_ok=True)
        os.chmod(LMTP_DIR, 0o755)
        cls.sink = FakeServer(port=2525)
        cls.nodsn = FakeServer(port=2526, ehlo=('PIPELINING', 'SIZE 2000'))
        cls.refuse = FakeServer(port=2527, greeting='421 4.3.2 fake.test Service not available')
        cls.drop = FakeServer(port=2528, drop_in_data=True)
        cls.anydata = FakeServer(port=2537, data_always=True)
        cert = pb.make_tls_certificate('/etc/fake-tls', cn='tls.test')
        cls.tlsserver = FakeServer(port=2531, tls=cert)
        cls.tlsres = FakeServer(port=2535, tls=cert)
        cls.tlsres12 = FakeServer(port=2536, tls=cert, tls_max=ssl.TLSVersion.TLSv1_2)
        with open('/etc/postbus/master.cf', 'a', encoding='utf-8') as f:
            f.write('tlsmay unix - - n - - smtp -o smtp_tls_security_level=may\n'
                    'tlsenc unix - - n - - smtp -o smtp_tls_security_level=encrypt\n'
                    'tlsver unix - - n - - smtp -o smtp_tls_security_level=verify -o smtp_tls_verify_cert_match=tls.test\n'
                    # a connection per message, for the session resumption tests: mail that follows a delivery
                    # within a second would otherwise find the last connection still open (back to back)
                    'tlsmay1 unix - - n - - smtp -o smtp_tls_security_level=may -o smtp_connection_cache_on_demand=no\n'
                    'tlsenc1 unix - - n - - smtp -o smtp_tls_security_level=encrypt -o smtp_connection_cache_on_demand=no\n')
        cls.lmtp = FakeServer(path=LMTP_SOCKET, lmtp=True, ehlo=('PIPELINING', 'ENHANCEDSTATUSCODES'))
        with open(TRANSPORT, 'w', encoding='utf-8') as f:
            f.write('sink.test smtp:[127.0.0.1]:2525\n'
                    'nodsn.test smtp:[127.0.0.1]:2526\n'
                    'refuse.test smtp:[127.0.0.1]:2527\n'
                    'drop.test smtp:[127.0.0.1]:2528\n'
                    'anydata.test smtp:[127.0.0.1]:2537\n'
                    'closed.test smtp:[127.0.0.1]:2599\n'
                    'tlsmay.test tlsmay:[127.0.0.1]:2531\n'
                    'plainmay.test tlsmay:[127.0.0.1]:2525\n'
                    'tlsenc.test tlsenc:[127.0.0.1]:2531\n'
                    'plainenc.test tlsenc:[127.0.0.1]:2525\n'
                    'tlsver.test tlsver:[127.0.0.1]:2531\n'
                    'tlsres.test tlsmay1:[127.0.0.1]:2535\n'
                    'tlsresenc.test tlsenc1:[127.0.0.1]:2535\n'
                    'tlsres12.test tlsmay1:[127.0.0.1]:2536\n'
                    'lmtp.test lmtp:unix:%s\n' % LMTP_SOCKET)
        pb.run('postbusctl', 'map', 'build', TRANSPORT)
        pb.set_config(transport_maps=f'gdbm:{TRANSPORT}', smtp_destination_recipient_limit=50)

    def send(self, recipients, body, **kw):
        return pb.send(SENDER, recipients, body, **kw)

    def transactions_with(self, server, marker):
        return [t for t in server.transactions if t.data and marker.encode() in t.data]

    def test_envelope_and_content(self):
        cursor = pb.journal_cursor()
        marker = 'envelope-%d' % time.time_ns()
        body = f'Subject: {marker}\n\nfirst line\n.leading dot\n..two dots\n.\nlast line\n'
        qid = self.send(['bob@sink.test', 'carol@sink.test'], body)
        recs = pb.wait_until(lambda: len(smtp_records(qid, cursor, DELIVERY_STATUS='sent')) == 2
                             and smtp_records(qid, cursor, DELIVERY_STATUS='sent'), what='two sent records')
        [t] = self.transactions_with(self.sink, marker)
        size = re.fullmatch(r'MAIL FROM:<alice@localhost> SIZE=(\d+)', t.mail)
        self.assertTrue(size, t.mail)
        self.assertEqual(t.rcpts, ['RCPT TO:<bob@sink.test>', 'RCPT TO:<carol@sink.test>'])
        # dot-stuffed on the wire, CRLF everywhere, no bare LF
        self.assertIn(b'\r\nfirst line\r\n..leading dot\r\n...two dots\r\n..\r\nlast line\r\n.\r\n', t.data)
        self.assertNotIn(b'\n', t.data.replace(b'\r\n', b''))
        lines = unstuff(t.data)
        self.assertIn(b'.leading dot', lines)
        self.assertEqual(int(size.group(1)), sum(len(l) + 1 for l in lines))
        for r in recs:
            self.assertEqual(r['RELAY'], '127.0.0.1[127.0.0.1]:2525')
            self.assertEqual(r['TLS'], 'none')
            self.assertEqual(r['DSN'], '2.0.0')
            self.assertRegex(r['MESSAGE'], rf'^{qid}: to=<(bob|carol)@sink\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:2525, '
                                           r'delay=[0-9.]+, delays=[0-9./]+, dsn=2\.0\.0, status=sent \(250 2\.0\.0 Ok: queued as FAKE\d+\)$')
        pb.wait_until(lambda: any(r['MESSAGE'] == f'{qid}: removed' for r in pb.journal(QUEUE_ID=qid, since=cursor)),
                      what='the delivered message removed')
        self.assertEqual(pb.unit_property('postbus-smtp.service', 'User'), 'postbus-smtp')

    def test_rcpt_550_bounces_with_remote_text(self):
        cursor = pb.journal_cursor()
        qid = self.send('reject550@sink.test', 'Subject: reject\n\nbody\n')
        [rec] = wait_record(qid, cursor, 'bounced')
        self.assertEqual(rec['DSN'], '5.1.1')
        self.assertIn('status=bounced (host 127.0.0.1[127.0.0.1] said: 550 5.1.1 <reject550@sink.test>: '
                      'Recipient address rejected: User unknown in virtual mailbox table (in reply to RCPT TO command))',
                      rec['MESSAGE'])
        report = pb.wait_until(lambda: next((m for m in pb.mbox_messages('alice')
                                             if qid in m and 'Diagnostic-Code' in m), None),
                               what='the bounce report for alice')
        self.assertRegex(report, r'Diagnostic-Code: smtp; *550 5\.1\.1 <reject550@sink\.test>: Recipient address')
        self.assertIn('Status: 5.1.1', report)

    def test_354_for_no_recipient_gets_no_content(self):
        # with PIPELINING, DATA ends the envelope's group; a server that answers it with 354 although it
        # rejected every recipient gets no content (the connection is dropped), and the recipient bounces
        cursor = pb.journal_cursor()
        before = len(self.anydata.transactions)
        qid = self.send('reject550@anydata.test', 'Subject: no content\n\nbody\n')
        [rec] = wait_record(qid, cursor, 'bounced')
        self.assertEqual(rec['DSN'], '5.1.1')
        self.assertIn('(in reply to RCPT TO command)', rec['MESSAGE'])
        self.assertIn('DATA', self.anydata.commands)
        self.assertEqual(len(self.anydata.transactions), before)

    def test_451_then_250_delivered_once_after_flush(self):
        cursor = pb.journal_cursor()
        marker = 'later-%d' % time.time_ns()
        qid = self.send('later451@sink.test', f'Subject: {marker}\n\nbody\n')
        [rec] = wait_record(qid, cursor, 'deferred')
        self.assertEqual(rec['DSN'], '4.3.0')
        self.assertIn('said: 451 4.3.0 <later451@sink.test>: Temporary lookup failure (in reply to RCPT TO command)',
                      rec['MESSAGE'])
        self.assertEqual(self.transactions_with(self.sink, marker), [])
        pb.run('sendmail', '-q')
        wait_record(qid, cursor, 'sent')
        pb.wait_until(lambda: any(r['MESSAGE'] == f'{qid}: removed' for r in pb.journal(QUEUE_ID=qid, since=cursor)),
                      what='the message removed')
        pb.run('sendmail', '-q')
        time.sleep(1)
        self.assertEqual(len(self.transactions_with(self.sink, marker)), 1)
        self.assertEqual(len(smtp_records(qid, cursor, DELIVERY_STATUS='sent')), 1)

    def test_twenty_recipients_one_transaction(self):
        cursor = pb.journal_cursor()
        marker = 'twenty-%d' % time.time_ns()
        rcpts = [f'user{i}@sink.test' for i in range(20)]
        qid = self.send(rcpts, f'Subject: {marker}\n\nbody\n')
        pb.wait_until(lambda: len(smtp_records(qid, cursor, DELIVERY_STATUS='sent')) == 20, what='20 sent records')
        [t] = self.transactions_with(self.sink, marker)
        self.assertEqual(sorted(t.rcpts), sorted(f'RCPT TO:<{r}>' for r in rcpts))

    def test_long_line_wrapped(self):
        cursor = pb.journal_cursor()
        marker = 'long-%d' % time.time_ns()
        long_line = ''.join(chr(ord('a') + i % 26) for i in range(1500))
        qid = self.send('bob@sink.test', f'Subject: {marker}\n\nbefore\n{long_line}\nafter\n')
        wait_record(qid, cursor, 'sent')
        [t] = self.transactions_with(self.sink, marker)
        wire = t.data.split(b'\r\n')
        self.assertTrue(all(len(l) <= 998 for l in wire), max(len(l) for l in wire))
        i = wire.index(b'before')
        self.assertEqual(wire[i + 1], long_line[:998].encode())
        self.assertEqual(wire[i + 2], b' ' + long_line[998:].encode())
        self.assertEqual(wire[i + 3], b'after')

    def test_dsn_pass_through(self):
        cursor = pb.journal_cursor()
        marker = 'dsn-%d' % time.time_ns()
        msg = f'Subject: {marker}\r\n\r\nbody\r\n'.encode()
        with pb.connect() as s:
            s.ehlo()
            s.sendmail(SENDER, ['bob@sink.test'], msg, mail_options=['RET=HDRS', 'ENVID=env+2Bid42'],
                       rcpt_options=['NOTIFY=SUCCESS,FAILURE', 'ORCPT=rfc822;orig@sink.test'])
        pb.wait_until(lambda: self.transactions_with(self.sink, marker), what='the DSN message at the server')
        [t] = self.transactions_with(self.sink, marker)
        self.assertRegex(t.mail, r'^MAIL FROM:<alice@localhost> SIZE=\d+ RET=HDRS ENVID=env\+2Bid42$')
        self.assertEqual(t.rcpts, ['RCPT TO:<bob@sink.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;orig@sink.test'])

        # a server without DSN gets none of it
        marker = 'nodsn-%d' % time.time_ns()
        msg = f'Subject: {marker}\r\n\r\nbody\r\n'.encode()
        with pb.connect() as s:
            s.ehlo()
            s.sendmail(SENDER, ['bob@nodsn.test'], msg, mail_options=['RET=HDRS', 'ENVID=x'],
                       rcpt_options=['NOTIFY=FAILURE'])
        pb.wait_until(lambda: self.transactions_with(self.nodsn, marker), what='the message at the server without DSN')
        [t] = self.transactions_with(self.nodsn, marker)
        self.assertRegex(t.mail, r'^MAIL FROM:<alice@localhost> SIZE=\d+$')
        self.assertEqual(t.rcpts, ['RCPT TO:<bob@nodsn.test>'])

    def test_size_limit_bounces(self):
        cursor = pb.journal_cursor()
        before = len(self.nodsn.commands)
        qid = self.send('bob@nodsn.test', 'Subject: big\n\n' + ('x' * 70 + '\n') * 100)
        [rec] = wait_record(qid, cursor, 'bounced')
        self.assertEqual(rec['DSN'], '5.3.4')
        self.assertIn('message size exceeds fixed maximum message size', rec['MESSAGE'])
        self.assertFalse(any(c.startswith('MAIL') for c in self.nodsn.commands[before:]), self.nodsn.commands[before:])

    def test_smtputf8_to_server_without_it_bounces(self):
        cursor = pb.journal_cursor()
        msg = 'Subject: utf8\r\n\r\nbody\r\n'.encode()
        with pb.connect() as s:
            s.ehlo()
            s.sendmail('alice@localhost', ['bøb@sink.test'], msg, mail_options=['SMTPUTF8'])
        rec = pb.wait_until(lambda: [r for r in pb.journal(POSTBUS_ROLE='smtp', DELIVERY_STATUS='bounced', since=cursor)
                                     if 'SMTPUTF8' in r['MESSAGE']], what='the SMTPUTF8 bounce')
        self.assertEqual(rec[0]['DSN'], '5.6.7')
        self.assertIn('SMTPUTF8 is required, but was not offered by host 127.0.0.1[127.0.0.1]', rec[0]['MESSAGE'])

    def test_421_greeting_defers(self):
        cursor = pb.journal_cursor()
        qid = self.send('bob@refuse.test', 'Subject: refused\n\nbody\n')
        [rec] = wait_record(qid, cursor, 'deferred')
        self.assertEqual(rec['DSN'], '4.3.2')
        self.assertIn('host 127.0.0.1[127.0.0.1] refused to talk to me: 421 4.3.2 fake.test Service not available',
                      rec['MESSAGE'])
        self.assertEqual(rec['RELAY'], '127.0.0.1[127.0.0.1]:2527')

    def tls_delivery(self, server, domain):
        """Delivers one message to domain, on a connection of its own; returns the smtp agent's TLS record and
        whether the server saw the session resumed."""
        cursor = pb.journal_cursor()
        before = len(server.tls_resumed)
        qid = self.send(f'bob@{domain}', f'Subject: resume-{time.time_ns()}\n\nbody\n')
        wait_record(qid, cursor, 'sent')
        [tls] = pb.wait_until(lambda: [r for r in pb.journal(QUEUE_ID=qid, POSTBUS_ROLE='smtp', since=cursor)
                                       if 'TLS connection established' in r['MESSAGE']], what='the TLS record')
        self.assertEqual(len(server.tls_resumed), before + 1)
        return tls, server.tls_resumed[-1]

    def test_tls_session_resumed(self):
        # TLS 1.3: the second connection to the same next hop and server under the same policy resumes the
        # session (a ticket of the first); the server sees it, and the journal's TLS record says it
        tls, resumed = self.tls_delivery(self.tlsres, 'tlsres.test')
        self.assertEqual((tls['TLS_PROTOCOL'], tls['TLS_SESSION_RESUMED'], resumed), ('TLSv1.3', 'no', False))
        self.assertFalse(tls['MESSAGE'].endswith('session resumed'), tls['MESSAGE'])
        tls, resumed = self.tls_delivery(self.tlsres, 'tlsres.test')
        self.assertEqual((tls['TLS_PROTOCOL'], tls['TLS_SESSION_RESUMED'], resumed), ('TLSv1.3', 'yes', True))
        self.assertRegex(tls['MESSAGE'], r'^\w+: Untrusted TLS connection established to 127\.0\.0\.1\[127\.0\.0\.1\]:2535: '
                                         r'TLSv1\.3 with cipher \S+ \(\d+/\d+ bits\), session resumed$')
        # another policy (encrypt instead of may) for the same next hop and server: not that session
        tls, resumed = self.tls_delivery(self.tlsres, 'tlsresenc.test')
        self.assertEqual((tls['TLS_SESSION_RESUMED'], resumed), ('no', False))
        tls, resumed = self.tls_delivery(self.tlsres, 'tlsresenc.test')
        self.assertEqual((tls['TLS_SESSION_RESUMED'], resumed), ('yes', True))
        # the may session goes on from the tickets of its last connection
        tls, resumed = self.tls_delivery(self.tlsres, 'tlsres.test')
        self.assertEqual((tls['TLS_SESSION_RESUMED'], resumed), ('yes', True))
        # TLS 1.2 sessions resume too
        tls, resumed = self.tls_delivery(self.tlsres12, 'tlsres12.test')
        self.assertEqual((tls['TLS_PROTOCOL'], tls['TLS_SESSION_RESUMED'], resumed), ('TLSv1.2', 'no', False))
        tls, resumed = self.tls_delivery(self.tlsres12, 'tlsres12.test')
        self.assertEqual((tls['TLS_PROTOCOL'], tls['TLS_SESSION_RESUMED'], resumed), ('TLSv1.2', 'yes', True))

    def test_lost_connection_and_refused_connect_defer(self):
        cursor = pb.journal_cursor()
        qid = self.send('bob@drop.test', 'Subject: drop\n\n' + ('y' * 60 + '\n') * 50)
        [rec] = wait_record(qid, cursor, 'deferred')
        self.assertEqual(rec['DSN'], '4.4.2')
        self.assertRegex(rec['MESSAGE'], r'lost connection with 127\.0\.0\.1\[127\.0\.0\.1\] while sending '
                                         r'(message body|end of data)')

        qid = self.send('bob@closed.test', 'Subject: closed\n\nbody\n')
        [rec] = wait_record(qid, cursor, 'deferred')
        self.assertEqual(rec['DSN'], '4.4.1')
        self.assertIn('connect to 127.0.0.1[127.0.0.1]:2599: Connection refused', rec['MESSAGE'])
        self.assertEqual(rec['RELAY'], 'none')

    def test_starttls_may_and_encrypt(self):
        cursor = pb.journal_cursor()
        for domain in ('tlsmay.test', 'tlsenc.test'):
            marker = 'tls-%d' % time.time_ns()
            qid = self.send(f'bob@{domain}', f'Subject: {marker}\n\n.dot\nbody\n')
            [rec] = wait_record(qid, cursor, 'sent')
            self.assertEqual(rec['RELAY'], '127.0.0.1[127.0.0.1]:2531')
            [t] = self.transactions_with(self.tlsserver, marker)
            self.assertTrue(t.tls)
            self.assertIn(b'\r\n..dot\r\n', t.data)
            tls = pb.wait_until(lambda: [r for r in pb.journal(QUEUE_ID=qid, POSTBUS_ROLE='smtp', since=cursor)
                                         if 'TLS connection established' in r['MESSAGE']], what='the TLS record')
            self.assertIn('TLS connection established to 127.0.0.1[127.0.0.1]:2531: TLSv1.', tls[0]['MESSAGE'])
            self.assertTrue(tls[0]['TLS_CIPHER'])
            # a self-signed certificate at may and encrypt: not verified, and the delivery record says so
            self.assertEqual(tls[0]['TLS_TRUST'], 'Untrusted')
            self.assertRegex(rec['TLS'], r'^Untrusted TLSv1\.[23] with cipher \S+$')

        # may: a server without STARTTLS gets the mail in clear text
        marker = 'plainmay-%d' % time.time_ns()
        qid = self.send('bob@plainmay.test', f'Subject: {marker}\n\nbody\n')
        wait_record(qid, cursor, 'sent')
        [t] = self.transactions_with(self.sink, marker)
        self.assertFalse(t.tls)

        # encrypt: never in clear text
        before = len(self.sink.commands)
        qid = self.send('bob@plainenc.test', 'Subject: plainenc\n\nbody\n')
        [rec] = wait_record(qid, cursor, 'deferred')
        self.assertEqual(rec['DSN'], '4.7.4')
        self.assertIn('TLS is required, but was not offered by host 127.0.0.1[127.0.0.1]', rec['MESSAGE'])
        self.assertFalse(any(c.startswith('MAIL') for c in self.sink.commands[before:]), self.sink.commands[before:])

        # verify: the self-signed certificate (right name, no trusted CA) gets no mail
        before = len(self.tlsserver.commands)
        qid = self.send('bob@tlsver.test', 'Subject: tlsver\n\nbody\n')
        [rec] = wait_record(qid, cursor, 'deferred')
        self.assertEqual(rec['DSN'], '4.7.5')
        self.assertIn('status=deferred (Server certificate not verified)', rec['MESSAGE'])
        self.assertTrue(rec['TLS'].startswith('Untrusted TLSv1.'), rec['TLS'])
        self.assertIn('STARTTLS', self.tlsserver.commands[before:])
        self.assertFalse(any(c.startswith('MAIL') for c in self.tlsserver.commands[before:]),
                         self.tlsserver.commands[before:])

    def test_lmtp_per_recipient_replies(self):
        cursor = pb.journal_cursor()
        marker = 'lmtp-%d' % time.time_ns()
        qid = self.send(['dave@lmtp.test', 'lmtp452@lmtp.test'], f'Subject: {marker}\n\n.dot\nbody\n')
        [sent] = wait_record(qid, cursor, 'sent')
        [deferred] = wait_record(qid, cursor, 'deferred')
        self.assertEqual(sent['RECIPIENT'], 'dave@lmtp.test')
        self.assertIn('status=sent (250 2.0.0 <dave@lmtp.test> delivered)', sent['MESSAGE'])
        self.assertEqual(deferred['RECIPIENT'], 'lmtp452@lmtp.test')
        self.assertEqual(deferred['DSN'], '4.2.2')
        self.assertIn('452 4.2.2 <lmtp452@lmtp.test>: Mailbox is full (in reply to end of DATA command)',
                      deferred['MESSAGE'])
        self.assertTrue(sent['RELAY'].endswith(f'[{LMTP_SOCKET}]'), sent['RELAY'])
        [t] = self.transactions_with(self.lmtp, marker)
        self.assertIn(b'\r\n..dot\r\n', t.data)
        self.assertTrue(any(c.startswith('LHLO ') for c in self.lmtp.commands))


def make_ca_and_server_cert(names):
    """A CA (openssl req -x509) and a server certificate it signed for the DNS names; returns (ca, cert, key)."""
    os.makedirs(CA_DIR, mode=0o755, exist_ok=True)
    ca, ca_key = f'{CA_DIR}/ca.pem', f'{CA_DIR}/ca.key'
    cert, key, csr, ext = f'{CA_DIR}/server.pem', f'{CA_DIR}/server.key', f'{CA_DIR}/server.csr', f'{CA_DIR}/ext'
    pb.run('openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', ca_key, '-out', ca, '-days', '2',
           '-subj', '/CN=postbus test CA', '-addext', 'basicConstraints=critical,CA:TRUE',
           '-addext', 'keyUsage=critical,keyCertSign,cRLSign')
    pb.run('openssl', 'req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', csr,
           '-subj', f'/CN={names[0]}')
    with open(ext, 'w', encoding='utf-8') as f:
        f.write('subjectAltName=' + ','.join(f'DNS:{n}' for n in names) + '\n')
    pb.run('openssl', 'x509', '-req', '-in', csr, '-CA', ca, '-CAkey', ca_key, '-CAcreateserial', '-out', cert,
           '-days', '2', '-extfile', ext)
    os.chmod(ca, 0o644)
    # the same CA as a CApath directory
    os.makedirs(f'{CA_DIR}/hashed', mode=0o755, exist_ok=True)
    with open(ca, encoding='utf-8') as src, open(f'{CA_DIR}/hashed/ca.pem', 'w', encoding='utf-8') as dst:
        dst.write(src.read())
    os.chmod(f'{CA_DIR}/hashed/ca.pem', 0o644)
    pb.run('openssl', 'rehash', f'{CA_DIR}/hashed')
    return ca, cert, key


class BlackHole:
    """Accepts connections on host:port and never says a word: a server that hangs before its greeting."""

    def __init__(self, host, port):
        self.connections = 0
        self.held = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(50)
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            self.held.append(conn)


class SmtpDns(unittest.TestCase):
    """Next hops by MX and A records from a real DNS server on loopback (dnsmasq): MX order and fallback to
    the next MX when the first refuses connections, A fallback without MX, Null MX, NXDOMAIN and a DNS
    server failure."""

    @classmethod
    def setUpClass(cls):
        if not pb.have('dnsmasq'):
            raise unittest.SkipTest('dnsmasq is not installed')
        pb.add_user('alice')
        cls.mx2 = FakeServer(port=2530, host='127.0.0.3')
        cls.blackhole = BlackHole('127.0.0.5', 2533)
        cls.bhgood = FakeServer(port=2533, host='127.0.0.6')
        cls.bhbackup = FakeServer(port=2533, host='127.0.0.8')
        ca, cert, key = make_ca_and_server_cert(['mx.tlsv.test', 'mx.tlssec.test'])
        cls.tlsv = FakeServer(port=2534, host='127.0.0.7', tls=(cert, key))
        cls.dns = subprocess.Popen(
            ['dnsmasq', '--keep-in-foreground', '--no-resolv', '--no-hosts', '--no-dhcp-interface=',
             '--listen-address=127.0.0.53', '--bind-interfaces', '--port=53', '--pid-file=', '--user=root',
             '--local=/test/',
             '--mx-host=mxfb.test,mx1.mxfb.test,10', '--mx-host=mxfb.test,mx2.mxfb.test,20',
             '--host-record=mx1.mxfb.test,127.0.0.2', '--host-record=mx2.mxfb.test,127.0.0.3',
             '--host-record=plain.test,127.0.0.3',
             '--mx-host=nullmx.test,.,0',
             '--mx-host=bh.test,mxa.bh.test,10', '--mx-host=bh.test,mxb.bh.test,10',
             '--host-record=mxa.bh.test,127.0.0.5', '--host-record=mxb.bh.test,127.0.0.6',
             '--mx-host=bh.test,mxc.bh.test,20', '--host-record=mxc.bh.test,127.0.0.8',
             *[a for d in ('tlsv', 'tlsbad', 'tlssec', 'tlspol', 'tlspolbad')
               for a in (f'--mx-host={d}.test,mx.{d}.test,10', f'--host-record=mx.{d}.test,127.0.0.7')],
             '--mx-host=tlscapath.test,mx.tlsv.test,10',
             '--server=/servfail.test/127.0.0.1#9'])
        if os.path.islink('/etc/resolv.conf') or os.path.exists('/etc/resolv.conf'):
            os.unlink('/etc/resolv.conf')
        with open('/etc/resolv.conf', 'w', encoding='utf-8') as f:
            f.write('nameserver 127.0.0.53\noptions timeout:1 attempts:1\n')
        with open(TRANSPORT, 'a', encoding='utf-8') as f:
            f.write('mxfb.test smtp:mxfb.test:2530\n'
                    'plain.test smtp:plain.test:2530\n'
                    'nullmx.test smtp:nullmx.test:2530\n'
                    'nxdomain.test smtp:nxdomain.test:2530\n'
                    'servfail.test smtp:servfail.test:2530\n'
                    'bh.test bhole:bh.test:2533\n'
                    'tlsv.test tlsverify:tlsv.test:2534\n'
                    'tlsbad.test tlsverify:tlsbad.test:2534\n'
                    'tlssec.test smtp:tlssec.test:2534\n'
                    'tlspol.test smtp:tlspol.test:2534\n'
                    'tlspolbad.test smtp:tlspolbad.test:2534\n'
                    'tlscapath.test tlscapath:tlscapath.test:2534\n')
        pb.run('postbusctl', 'map', 'build', TRANSPORT)
        with open(TLS_POLICY, 'w', encoding='utf-8') as f:
            f.write('tlssec.test secure\n'
                    'tlspol.test secure match=mx.tlsv.test\n'
                    'tlspolbad.test secure\n')
        pb.run('postbusctl', 'map', 'build', TLS_POLICY)
        with open('/etc/postbus/master.cf', 'a', encoding='utf-8') as f:
            f.write(f'bhole unix - - n - - smtp -o smtp_helo_timeout={BLACKHOLE_TIMEOUT} -o smtp_mx_session_limit=3\n'
                    'tlsverify unix - - n - - smtp -o smtp_tls_security_level=verify\n'
                    'tlscapath unix - - n - - smtp -o smtp_tls_security_level=verify -o smtp_tls_CAfile= '
                    f'-o smtp_tls_CApath={CA_DIR}/hashed\n')
        pb.set_config(transport_maps=f'gdbm:{TRANSPORT}', smtp_tls_CAfile=ca, smtp_tls_policy_maps=f'gdbm:{TLS_POLICY}')

    @classmethod
    def tearDownClass(cls):
        cls.dns.terminate()
        cls.dns.wait()

    def test_mx_order_and_fallback(self):
        cursor = pb.journal_cursor()
        marker = 'mxfb-%d' % time.time_ns()
        qid = pb.send(SENDER, 'bob@mxfb.test', f'Subject: {marker}\n\nbody\n')
        [rec] = wait_record(qid, cursor, 'sent')
        # mx1 (preference 10, nothing listens on 127.0.0.2:2530) first, then mx2
        self.assertEqual(rec['RELAY'], 'mx2.mxfb.test[127.0.0.3]:2530')
        self.assertEqual(len([t for t in self.mx2.transactions if marker.encode() in t.data]), 1)

    def test_host_cache_skips_black_hole(self):
        # mxa.bh.test (127.0.0.5) and mxb.bh.test (127.0.0.6) have preference 10, so either may come first;
        # mxa accepts connections and never greets. mxc.bh.test (127.0.0.8) has 20. While mxb answers 421,
        # the first message meets both mxa and mxb, whatever their order, and goes to mxc.
        self.bhgood.greeting = '421 4.3.2 mxb busy'
        try:
            cursor = pb.journal_cursor()
            qid = pb.send(SENDER, 'bob@bh.test', 'Subject: bh\n\nbody\n')
            [rec] = wait_record(qid, cursor, 'sent')
            self.assertEqual(rec['RELAY'], 'mxc.bh.test[127.0.0.8]:2533')
        finally:
            self.bhgood.greeting = '220 fake.test ESMTP'
        self.assertEqual(self.blackhole.connections, 1)
        [entry] = pb.journal(POSTBUS_ROLE='smtp', HOST_ADDRESS='127.0.0.5', since=cursor)
        self.assertEqual(entry['QUEUE_ID'], qid)
        self.assertEqual(entry['HOST'], 'mxa.bh.test')
        self.assertEqual(entry['RELAY'], 'mxa.bh.test[127.0.0.5]:2533')
        self.assertEqual(entry['MESSAGE'], f'{qid}: host mxa.bh.test[127.0.0.5]:2533 enters the host failure cache '
                                           'for 300s: timed out while receiving the initial server greeting')
        # qmgr learnt it from the agent's answer: ListHostFailures on the bus, and postbusctl queue hosts
        [failure] = self.host_failures()
        transport, destination, server, reason, until = failure
        self.assertEqual((transport, destination, server, reason),
                         ('bhole', 'bh.test:2533', 'mxa.bh.test[127.0.0.5]:2533',
                          'timed out while receiving the initial server greeting'))
        self.assertAlmostEqual(until / 1e6, time.time() + 300, delta=60)
        out = pb.run('postbusctl', 'queue', 'hosts')
        self.assertRegex(out, r'(?m)^bhole +bh\.test:2533 +mxa\.bh\.test\[127\.0\.0\.5\]:2533 +\d{4}-\d\d-\d\d '
                              r'\d\d:\d\d:\d\d timed out while receiving the initial server greeting$')
        self.assertIn('1 failing server address skipped.', out)
        [row] = [json.loads(line) for line in pb.run('postbusctl', '--json', 'queue', 'hosts').splitlines()]
        self.assertEqual(row['server'], 'mxa.bh.test[127.0.0.5]:2533')
        self.assertEqual(row['until_usec'], until)
        # the following messages go to mxb at once, without waiting on mxa
        for _ in range(5):
            start = time.monotonic()
            cursor = pb.journal_cursor()
            qid = pb.send(SENDER, 'bob@bh.test', 'Subject: bh\n\nbody\n')
            [rec] = wait_record(qid, cursor, 'sent')
            self.assertEqual(rec['RELAY'], 'mxb.bh.test[127.0.0.6]:2533')
            self.assertLess(time.monotonic() - start, BLACKHOLE_TIMEOUT)
        self.assertEqual(self.blackhole.connections, 1)
        # each answer reported the same: still skipped, with the same end; mxb and mxc are not listed
        self.assertEqual(self.host_failures(), [failure])

    def host_failures(self):
        return [tuple(f) for f in pb.busctl_call('ListHostFailures')[0]]

    def tls_records(self, qid, cursor):
        return pb.wait_until(lambda: [r for r in pb.journal(QUEUE_ID=qid, POSTBUS_ROLE='smtp', since=cursor)
                                      if 'TLS connection established' in r['MESSAGE']], what='the TLS record')

    def test_tls_verify_and_secure(self):
        # verify (transport -o) checks the MX host name; secure (smtp_tls_policy_maps) the next hop and its
        # subdomains, or the policy's match=. The certificate names mx.tlsv.test and mx.tlssec.test.
        for domain in ('tlsv.test', 'tlssec.test', 'tlspol.test'):
            cursor = pb.journal_cursor()
            marker = 'verified-%d' % time.time_ns()
            qid = pb.send(SENDER, f'bob@{domain}', f'Subject: {marker}\n\nbody\n')
            [rec] = wait_record(qid, cursor, 'sent')
            self.assertEqual(rec['RELAY'], f'mx.{domain}[127.0.0.7]:2534')
            self.assertRegex(rec['TLS'], r'^Verified TLSv1\.[23] with cipher \S+$')
            [tls] = self.tls_records(qid, cursor)
            self.assertRegex(tls['MESSAGE'], rf'^{qid}: Verified TLS connection established to mx\.{domain}'
                                             r'\[127\.0\.0\.7\]:2534: TLSv1\.[23] with cipher \S+ \(\d+/\d+ bits\)$')
            self.assertEqual(tls['TLS_TRUST'], 'Verified')
            [t] = [t for t in self.tlsv.transactions if marker.encode() in t.data]
            self.assertTrue(t.tls)
            # SNI: the MX host's name
            self.assertIn(f'mx.{domain}', self.tlsv.snis)

        # the CA from smtp_tls_CApath alone
        cursor = pb.journal_cursor()
        qid = pb.send(SENDER, 'bob@tlscapath.test', 'Subject: capath\n\nbody\n')
        [rec] = wait_record(qid, cursor, 'sent')
        self.assertEqual(rec['RELAY'], 'mx.tlsv.test[127.0.0.7]:2534')
        self.assertTrue(rec['TLS'].startswith('Verified TLSv1.'), rec['TLS'])

        # a certificate from the trusted CA without the name: deferred, and no mail sent
        for domain in ('tlsbad.test', 'tlspolbad.test'):
            cursor = pb.journal_cursor()
            marker = 'unverified-%d' % time.time_ns()
            qid = pb.send(SENDER, f'bob@{domain}', f'Subject: {marker}\n\nbody\n')
            [rec] = wait_record(qid, cursor, 'deferred')
            self.assertEqual(rec['DSN'], '4.7.5')
            self.assertTrue(rec['MESSAGE'].endswith(', dsn=4.7.5, status=deferred (Server certificate not verified)'),
                            rec['MESSAGE'])
            self.assertTrue(rec['TLS'].startswith('Trusted TLSv1.'), rec['TLS'])
            [tls] = self.tls_records(qid, cursor)
            self.assertIn('Trusted TLS connection established to', tls['MESSAGE'])
            self.assertEqual(tls['TLS_VERIFY_ERROR'], 'hostname mismatch')
            self.assertEqual([t for t in self.tlsv.transactions if marker.encode() in t.data], [])

    def test_a_fallback_without_mx(self):
        cursor = pb.journal_cursor()
        qid = pb.send(SENDER, 'bob@plain.test', 'Subject: plain\n\nbody\n')
        [rec] = wait_record(qid, cursor, 'sent')
        self.assertEqual(rec['RELAY'], 'plain.test[127.0.0.3]:2530')

    def test_nxdomain_bounces(self):
        cursor = pb.journal_cursor()
        qid = pb.send(SENDER, 'bob@nxdomain.test', 'Subject: nx\n\nbody\n')
        [rec] = wait_record(qid, cursor, 'bounced')
        self.assertEqual(rec['DSN'], '5.4.4')
        self.assertIn('Host or domain name not found. Name service error for name=nxdomain.test type=MX: '
                      'Host not found', rec['MESSAGE'])

    def test_servfail_defers(self):
        cursor = pb.journal_cursor()
        qid = pb.send(SENDER, 'bob@servfail.test', 'Subject: sf\n\nbody\n')
        [rec] = wait_record(qid, cursor, 'deferred')
        self.assertEqual(rec['DSN'], '4.4.3')
        self.assertIn('try again', rec['MESSAGE'])

    def test_null_mx_bounces(self):
        cursor = pb.journal_cursor()
        qid = pb.send(SENDER, 'bob@nullmx.test', 'Subject: null\n\nbody\n')
        [rec] = wait_record(qid, cursor, 'bounced')
        self.assertEqual(rec['DSN'], '5.1.10')
        self.assertIn('Domain nullmx.test does not accept mail (nullMX)', rec['MESSAGE'])


if __name__ == '__main__':
    unittest.main(verbosity=2)
