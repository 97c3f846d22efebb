"""An authenticated smarthost (postbus-smtp's SASL client, as Postfix's smtp_sasl_*): a relayhost that wants
AUTH after STARTTLS gets AUTH PLAIN with the user:password of smtp_sasl_password_maps; a wrong password
defers the mail with the server's 535 in the reason; a server that offers AUTH in clear text never sees the
password (the mail is deferred, as Postfix defers it: no mechanism available); sender_dependent_relayhost_maps
sends a sender's mail to its own relay host, where smtp_sender_dependent_authentication logs in as that
sender; a port-465 server gets TLS from the connect on (smtp_tls_wrappermode) and AUTH LOGIN."""
import base64
import json
import os
import pwd
import socket
import ssl
import threading
import time
import unittest

import postbus as pb
import test_smtp as ts

TRANSPORT = '/etc/postbus/transport'
PASSWD = '/etc/postbus/sasl_passwd'
RELAYS = '/etc/postbus/sender_relay'


def installed(name):
    """Where meson installed one of our programs (the machine may have Postfix's as well)."""
    out = pb.run('meson', 'introspect', '--installed', os.environ['POSTBUS_BUILDDIR'])
    return next(dst for dst in json.loads(out).values() if dst.endswith('/' + name))


def delay_reason(qid):
    """The delay_reason of the message's first recipient in postqueue -j, or None."""
    for line in pb.run(installed('sbin/postqueue'), '-j').splitlines():
        e = json.loads(line)
        if e['queue_id'] == qid and e['recipients'] and 'SASL' in e['recipients'][0].get('delay_reason', ''):
            return e['recipients'][0]['delay_reason']
    return None


class AuthServer:
    """A scripted SMTP server that wants AUTH before MAIL (530 otherwise). tls: (cert, key); starttls: offer
    STARTTLS and AUTH only after it; wrapper: TLS from the accept on; auth_clear: offer AUTH without TLS.
    What it saw: self.logins (user, password, mechanism, over_tls), self.commands, self.transactions
    (dicts of mail, rcpts, data, user)."""

    def __init__(self, port, users, tls=None, starttls=False, wrapper=False, mechanisms='PLAIN LOGIN'):
        self.users = users
        self.tls = tls
        self.starttls = starttls
        self.wrapper = wrapper
        self.mechanisms = mechanisms
        self.logins = []
        self.failures = []
        self.commands = []
        self.transactions = []
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(('127.0.0.1', port))
        self.sock.listen(20)
        threading.Thread(target=self.serve, daemon=True).start()

    def context(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*self.tls)
        return ctx

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def check(self, user, password, mechanism, tls):
        with self.lock:
            if self.users.get(user) == password:
                self.logins.append((user, password, mechanism, tls))
                return True
            self.failures.append((user, password, mechanism, tls))
            return False

    def handle(self, conn):
        tls = False
        try:
            if self.wrapper:
                conn = self.context().wrap_socket(conn, server_side=True)
                tls = True
            f, out = conn.makefile('rb'), conn.makefile('wb')

            def say(line):
                out.write(line.encode() + b'\r\n')
                out.flush()

            def hear():
                raw = f.readline()
                if not raw:
                    raise EOFError
                line = raw.decode('utf-8', 'replace').rstrip('\r\n')
                with self.lock:
                    self.commands.append(line)
                return line

            say('220 relay.test ESMTP')
            user = None
            t = None
            while True:
                line = hear()
                verb = line.split(' ')[0].upper()
                if verb == 'EHLO':
                    lines = ['relay.test', 'PIPELINING', '8BITMIME']
                    if self.starttls and not tls:
                        lines.append('STARTTLS')
                    if tls or not self.starttls:
                        lines.append('AUTH ' + self.mechanisms)
                    for i, l in enumerate(lines):
                        say(('250 ' if i == len(lines) - 1 else '250-') + l)
                elif verb == 'STARTTLS' and self.starttls and not tls:
                    say('220 2.0.0 Ready to start TLS')
                    conn = self.context().wrap_socket(conn, server_side=True)
                    f, out = conn.makefile('rb'), conn.makefile('wb')
                    tls = True
                elif verb == 'AUTH':
                    words = line.split(' ')
                    mech = words[1].upper()
                    if mech == 'PLAIN':
                        if len(words) > 2:
                            response = words[2]
                        else:
                            say('334 ')
                            response = hear()
                        _authz, name, password = base64.b64decode(response).decode().split('\0')
                    elif mech == 'LOGIN':
                        say('334 ' + base64.b64encode(b'Username:').decode())
                        name = base64.b64decode(hear()).decode()
                        say('334 ' + base64.b64encode(b'Password:').decode())
                        password = base64.b64decode(hear()).decode()
                    else:
                        say('504 5.5.4 Unrecognized authentication type')
                        continue
                    if self.check(name, password, mech, tls):
                        user = name
                        say('235 2.7.0 Authentication successful')
                    else:
                        say('535 5.7.8 Error: authentication failed: bad username or password')
                elif verb == 'MAIL':
                    if not user:
                        say('530 5.7.0 Authentication required')
                        continue
                    t = {'mail': line, 'rcpts': [], 'user': user, 'tls': tls}
                    say('250 2.1.0 Ok')
                elif verb == 'RCPT':
                    t['rcpts'].append(line)
                    say('250 2.1.5 Ok')
                elif verb == 'DATA':
                    say('354 End data with <CR><LF>.<CR><LF>')
                    data = b''
                    while not data.endswith(b'\r\n.\r\n'):
                        chunk = f.readline()
                        if not chunk:
                            return
                        data += chunk
                    t['data'] = data
                    with self.lock:
                        self.transactions.append(t)
                    say('250 2.0.0 Ok: queued as AUTH%d' % len(self.transactions))
                elif verb == 'RSET':
                    say('250 2.0.0 Ok')
                elif verb == 'QUIT':
                    say('221 2.0.0 Bye')
                    return
                else:
                    say('502 5.5.2 Error: command not recognized')
        except (OSError, EOFError, ValueError, ssl.SSLError):
            pass
        finally:
            conn.close()

    def with_marker(self, marker):
        with self.lock:
            return [t for t in self.transactions if marker.encode() in t['data']]


class SmtpSasl(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        pb.add_user('alice')
        cert = pb.make_tls_certificate('/etc/fake-tls', cn='relay.test')
        # the relayhost: AUTH only after STARTTLS
        cls.relay = AuthServer(2587, {'alice': 'secret'}, tls=cert, starttls=True)
        # the same, with a password in the table that it refuses
        cls.wrongpw = AuthServer(2588, {'alice': 'secret'}, tls=cert, starttls=True)
        # AUTH in clear text, no STARTTLS
        cls.clear = AuthServer(2589, {'alice': 'clearpw'})
        # the boss's own relay host, with the boss's own login
        cls.bossrelay = AuthServer(2590, {'boss': 'bosspw'}, tls=cert, starttls=True)
        # port 465 style: TLS from the connect on, LOGIN only
        cls.smtps = AuthServer(2465, {'carol': 'pw465'}, tls=cert, wrapper=True, mechanisms='LOGIN')
        with open('/etc/postbus/master.cf', 'a', encoding='utf-8') as f:
            f.write('smtps unix - - n - - smtp -o smtp_tls_wrappermode=yes\n')
        with open(TRANSPORT, 'w', encoding='utf-8') as f:
            f.write('wrongpw.test smtp:[127.0.0.1]:2588\n'
                    'clear.test smtp:[127.0.0.1]:2589\n'
                    'wrapper.test smtps:[127.0.0.1]:2465\n')
        with open(PASSWD, 'w', encoding='utf-8') as f:
            f.write('[127.0.0.1]:2587 alice:secret\n'
                    '[127.0.0.1]:2588 alice:wrong\n'
                    '[127.0.0.1]:2589 alice:clearpw\n'
                    '[127.0.0.1]:2465 carol:pw465\n'
                    'boss@localhost boss:bosspw\n')
        with open(RELAYS, 'w', encoding='utf-8') as f:
            f.write('boss@localhost [127.0.0.1]:2590\n')
        for table in (TRANSPORT, PASSWD, RELAYS):
            pb.run('postbusctl', 'map', 'build', table)
        # the password table: readable by the user postbus-smtp that smtp runs as, by no one else
        for path in (PASSWD, PASSWD + '.gdbm'):
            os.chown(path, 0, pwd.getpwnam('postbus-smtp').pw_gid)
            os.chmod(path, 0o640)
        pb.set_config(relayhost='[127.0.0.1]:2587', transport_maps=f'gdbm:{TRANSPORT}',
                      smtp_tls_security_level='may', smtp_sasl_auth_enable='yes',
                      smtp_sasl_password_maps=f'hash:{PASSWD}', smtp_sasl_tls_security_options='noanonymous',
                      smtp_sender_dependent_authentication='yes',
                      sender_dependent_relayhost_maps=f'hash:{RELAYS}')

    def send(self, rcpt, marker, sender='alice@localhost'):
        return pb.send(sender, rcpt, f'Subject: {marker}\n\nbody {marker}\n')

    def test_relayhost_auth_after_starttls(self):
        cursor = pb.journal_cursor()
        marker = 'relay-%d' % time.time_ns()
        qid = self.send('bob@example.net', marker)
        [rec] = ts.wait_record(qid, cursor, 'sent')
        self.assertEqual(rec['RELAY'], '127.0.0.1[127.0.0.1]:2587')
        [t] = self.relay.with_marker(marker)
        self.assertEqual(t['user'], 'alice')
        self.assertTrue(t['tls'])
        self.assertIn(('alice', 'secret', 'PLAIN', True), self.relay.logins)
        # the password is in no journal record
        self.assertFalse([r for r in pb.journal(POSTBUS_ROLE='smtp', since=cursor) if 'secret' in r['MESSAGE']])

    def test_wrong_password_defers_with_535(self):
        cursor = pb.journal_cursor()
        qid = self.send('bob@wrongpw.test', 'wrongpw')
        [rec] = ts.wait_record(qid, cursor, 'deferred')
        self.assertEqual(rec['DSN'], '4.7.8')
        self.assertIn('(SASL authentication failed; server 127.0.0.1[127.0.0.1] said: 535 5.7.8 Error: '
                      'authentication failed: bad username or password)', rec['MESSAGE'])
        self.assertIn(('alice', 'wrong', 'PLAIN', True), self.wrongpw.failures)
        self.assertFalse(self.wrongpw.transactions)
        # the reason is the queue's too (postqueue -j's delay_reason)
        self.assertIn('said: 535 5.7.8 Error: authentication failed', pb.wait_until(
            lambda: delay_reason(qid), what='the delay reason in postqueue -j'))

    def test_auth_in_clear_text_never_gets_the_password(self):
        cursor = pb.journal_cursor()
        qid = self.send('bob@clear.test', 'clear')
        [rec] = ts.wait_record(qid, cursor, 'deferred')
        self.assertEqual(rec['DSN'], '4.7.0')
        self.assertIn('SASL authentication failed; cannot authenticate to server 127.0.0.1[127.0.0.1]: '
                      'no mechanism available', rec['MESSAGE'])
        with self.clear.lock:
            commands = list(self.clear.commands)
        self.assertTrue(any(c.startswith('EHLO') for c in commands), commands)
        self.assertFalse([c for c in commands if c.upper().startswith('AUTH')], commands)
        secret = base64.b64encode(b'\0alice\0clearpw').decode()
        self.assertFalse([c for c in commands if 'clearpw' in c or secret in c
                          or base64.b64encode(b'clearpw').decode() in c], commands)
        self.assertFalse(self.clear.logins or self.clear.failures)

    def test_sender_dependent_relayhost_and_authentication(self):
        cursor = pb.journal_cursor()
        marker = 'boss-%d' % time.time_ns()
        qid = self.send('carl@example.net', marker, sender='boss@localhost')
        [rec] = ts.wait_record(qid, cursor, 'sent')
        self.assertEqual(rec['RELAY'], '127.0.0.1[127.0.0.1]:2590')
        [t] = self.bossrelay.with_marker(marker)
        self.assertEqual(t['user'], 'boss')
        self.assertIn('MAIL FROM:<boss@localhost>', t['mail'])
        self.assertFalse(self.relay.with_marker(marker))
        # another sender, to the same recipient: the relayhost, with the host's login
        marker = 'alice-%d' % time.time_ns()
        qid = self.send('carl@example.net', marker)
        [rec] = ts.wait_record(qid, cursor, 'sent')
        self.assertEqual(rec['RELAY'], '127.0.0.1[127.0.0.1]:2587')
        [t] = self.relay.with_marker(marker)
        self.assertEqual(t['user'], 'alice')
        self.assertFalse(self.bossrelay.with_marker(marker))

    def test_wrapper_mode_port_465(self):
        cursor = pb.journal_cursor()
        marker = 'smtps-%d' % time.time_ns()
        qid = self.send('dave@wrapper.test', marker)
        [rec] = ts.wait_record(qid, cursor, 'sent')
        self.assertEqual(rec['RELAY'], '127.0.0.1[127.0.0.1]:2465')
        self.assertRegex(rec['TLS'], r'^Untrusted TLSv1\.[23] with cipher \S+$')
        [t] = self.smtps.with_marker(marker)
        self.assertEqual(t['user'], 'carol')
        self.assertTrue(t['tls'])
        self.assertIn(('carol', 'pw465', 'LOGIN', True), self.smtps.logins)


if __name__ == '__main__':
    unittest.main()
