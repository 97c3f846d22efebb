"""systemctl reload postbus.target while mail flows: 20 clients send all the time while main.cf changes and
the configuration is reloaded 5 times, and nothing is refused, nothing lost, each message delivered once; new
connections get the new smtpd_banner while a session begun before keeps its old settings; a changed
header_checks table takes effect; a broken main.cf fails the reload with file:line in the journal and the
old configuration keeps serving."""
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import postbus as pb

HEADER_CHECKS = '/etc/postbus/header_checks'
TRANSPORT = '/etc/postbus/transport'
SENDER_ACCESS = '/etc/postbus/sender_access'
USER = 'rose'
CLIENTS = 20
SENDMAIL = shutil.which('sendmail', path='/usr/local/sbin:/usr/sbin:/usr/local/bin:/usr/bin') or '/usr/sbin/sendmail'
RELOADS = 5
BASE_SIZE = 10240000


def banner():
    with pb.SmtpRaw('127.0.0.1', 25) as s:
        code, text = s.reply()
        s.cmd('QUIT')
        return text


def ehlo_size(smtp):
    code, text = smtp.ehlo()
    assert code == 250, (code, text)
    m = re.search(rb'^SIZE (\d+)$', text, re.M)
    assert m, text
    return int(m.group(1))


def reload_target():
    return pb.systemctl('reload', 'postbus.target', check=False)


def write_header_checks(*subjects):
    with open(HEADER_CHECKS, 'w', encoding='utf-8') as f:
        for s in subjects:
            f.write(f'/^Subject: .*{s}/ REJECT 5.7.1 subject {s} refused\n')


def write_table(path, lines):
    with open(path, 'w', encoding='utf-8') as f:
        f.write(''.join(line + '\n' for line in lines))
    pb.run('postbusctl', 'map', 'build', path)


def sent_status(qid, cursor):
    """The DELIVERY_STATUS records of qid since cursor, once there is one."""
    return pb.wait_until(lambda: [r for r in pb.journal(QUEUE_ID=qid, since=cursor) if r.get('DELIVERY_STATUS')],
                         what=f'the delivery record of {qid}')


def subjects_delivered():
    return [m['Subject'] for m in pb.mbox_messages(USER, parsed=True)]


class Load:
    """CLIENTS threads, each sending messages over sessions of three messages each until stopped, and one
    more submitting with sendmail (through pickup); every failure (a refused connection, any reply but
    250, sendmail's exit status) is kept."""

    def __init__(self):
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.sent = []
        self.errors = []
        self.threads = [threading.Thread(target=self.client, args=(i,)) for i in range(CLIENTS)]
        self.threads.append(threading.Thread(target=self.sendmail))

    def sendmail(self):
        n = 0
        while not self.stop.is_set():
            subject = f'pickup-{n}'
            n += 1
            p = pb.run_process(SENDMAIL, '-f', 'load@example.org', f'{USER}@localhost', check=False,
                               input=f'Subject: {subject}\n\nmessage {subject}\n')
            with self.lock:
                if p.returncode == 0:
                    self.sent.append(subject)
                else:
                    self.errors.append(f'sendmail: {p.returncode} {p.stderr}')
            time.sleep(0.2)

    def client(self, i):
        n = 0
        while not self.stop.is_set():
            try:
                with pb.connect() as smtp:
                    for _ in range(3):
                        subject = f'load-{i}-{n}'
                        n += 1
                        smtp.sendmail('load@example.org', [f'{USER}@localhost'],
                                      f'Subject: {subject}\n\nmessage {subject}\n')
                        with self.lock:
                            self.sent.append(subject)
                    smtp.quit()
            except Exception as e:      # noqa: BLE001: every failure is what the test counts
                with self.lock:
                    self.errors.append(f'client {i}: {e!r}')

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(120)


class Reload(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        pb.add_user(USER)
        write_header_checks('blocked-one')
        write_table(TRANSPORT, ['dropped.test discard:first table'])
        write_table(SENDER_ACCESS, ['blocked1@example.org REJECT sender blocked1'])
        pb.set_config(smtpd_banner='$myhostname ESMTP generation-0', message_size_limit=BASE_SIZE,
                      header_checks=f'regexp:{HEADER_CHECKS}', transport_maps=f'hash:{TRANSPORT}',
                      smtpd_sender_restrictions=f'check_sender_access hash:{SENDER_ACCESS}',
                      minimal_backoff_time='2s', maximal_backoff_time='60s', queue_run_delay='1s')

    def tearDown(self):
        pb.write_config({'smtpd_banner': '$myhostname ESMTP generation-0', 'message_size_limit': BASE_SIZE,
                         'defer_transports': ''})
        self.assertEqual(reload_target().returncode, 0)

    def test_reload_under_load(self):
        before = len(subjects_delivered())
        cursor = pb.journal_cursor()
        old = pb.connect()
        self.assertEqual(ehlo_size(old), BASE_SIZE)
        with Load() as load:
            pb.wait_until(lambda: len(load.sent) >= 20, timeout=60, what='the clients sending')
            for g in range(1, RELOADS + 1):
                pb.write_config({'smtpd_banner': f'$myhostname ESMTP generation-{g}',
                                 'message_size_limit': BASE_SIZE + g})
                r = reload_target()
                self.assertEqual(r.returncode, 0, r.stderr)
                pb.wait_until(lambda: f'generation-{g}' in banner(), what=f'the banner of generation {g}')
                # new sessions of the clients, under the new configuration, are sending
                mark = len(load.sent)
                pb.wait_until(lambda: len(load.sent) >= mark + 20, timeout=60, what='mail after the reload')
        self.assertEqual(load.errors, [])
        sent = list(load.sent)
        self.assertGreaterEqual(len(sent), 100)

        # the session begun before the first reload still has the settings it began with
        self.assertEqual(ehlo_size(old), BASE_SIZE)
        old.sendmail('load@example.org', [f'{USER}@localhost'], 'Subject: old-session\n\nold\n')
        old.quit()
        with pb.connect() as new:
            self.assertEqual(ehlo_size(new), BASE_SIZE + RELOADS)

        # each message delivered, and once
        pb.wait_until(lambda: len(subjects_delivered()) >= before + len(sent) + 1, timeout=180,
                      what='every message in the mailbox')
        delivered = subjects_delivered()[before:]
        self.assertEqual(sorted(delivered), sorted(sent + ['old-session']))

        # smtpd and cleanup reloaded in place, 5 times each (the reload of tearDown may end after the cursor)
        for role in ('smtpd', 'cleanup'):
            msgs = pb.journal_messages(SYSLOG_IDENTIFIER=f'postbus/{role}', since=cursor)
            self.assertIn(msgs.count('Reloaded the configuration.'), (RELOADS, RELOADS + 1), role)
        self.assertEqual(pb.unit_property('postbus-smtpd.service', 'ReloadResult'), 'success')

    def test_header_checks_change(self):
        write_header_checks('blocked-one')
        self.assertEqual(reload_target().returncode, 0)
        pb.send('x@example.org', f'{USER}@localhost', 'Subject: blocked-two\n\nx\n')
        write_header_checks('blocked-one', 'blocked-two')
        self.assertEqual(reload_target().returncode, 0)

        def refused():
            try:
                pb.send('x@example.org', f'{USER}@localhost', 'Subject: blocked-two\n\nx\n')
            except smtplib.SMTPDataError as e:
                return e
            return None
        e = pb.wait_until(refused, what='the new header_checks rule')
        self.assertEqual(e.smtp_code, 550)
        self.assertIn(b'subject blocked-two refused', e.smtp_error)

    def test_tables_and_qmgr(self):
        # transport_maps (rewrite): the rebuilt table after the reload
        cursor = pb.journal_cursor()
        qid = pb.send('x@example.org', 'a@dropped.test', 'Subject: t1\n\nx\n')
        self.assertIn('status=sent (first table)', sent_status(qid, cursor)[0]['MESSAGE'])
        write_table(TRANSPORT, ['dropped.test discard:second table'])
        self.assertEqual(reload_target().returncode, 0)

        def second():
            c = pb.journal_cursor()
            q = pb.send('x@example.org', 'a@dropped.test', 'Subject: t2\n\nx\n')
            return 'status=sent (second table)' in sent_status(q, c)[0]['MESSAGE']
        pb.wait_until(second, what='the rebuilt transport table')

        # an access table of smtpd, rebuilt: the new sender refused (at RCPT: smtpd_delay_reject)
        def sender_reply():
            with pb.connect() as smtp:
                smtp.ehlo()
                smtp.mail('blocked2@example.org')
                return smtp.rcpt(f'{USER}@localhost')
        self.assertEqual(sender_reply()[0], 250)
        write_table(SENDER_ACCESS, ['blocked2@example.org REJECT sender blocked2'])
        self.assertEqual(reload_target().returncode, 0)
        code, text = pb.wait_until(lambda: (r := sender_reply())[0] != 250 and r, what='the rebuilt access table')
        self.assertEqual(code // 100, 5)
        self.assertIn(b'sender blocked2', text)

        # defer_transports (qmgr) on a reload, in the same qmgr process
        pb.add_user('lily')
        pid = pb.unit_property(pb.QMGR_UNIT, 'MainPID')
        pb.write_config({'defer_transports': 'local'})
        self.assertEqual(reload_target().returncode, 0)

        def deferred():
            c = pb.journal_cursor()
            q = pb.send('x@example.org', 'lily@localhost', 'Subject: t3\n\nx\n')
            r = sent_status(q, c)[0]
            return r['DELIVERY_STATUS'] == 'deferred' and r
        rec = pb.wait_until(deferred, what='defer_transports after the reload')
        self.assertEqual(rec['DSN'], '4.3.2')
        self.assertIn('deferred transport', rec['MESSAGE'])
        self.assertEqual(pb.unit_property(pb.QMGR_UNIT, 'MainPID'), pid)

    def test_notify_protocol(self):
        """What a role tells systemd on SIGHUP: RELOADING=1 with MONOTONIC_USEC=, then READY=1 (rewrite run by
        hand, with a notify socket and a listening socket of our own)."""
        exec_start = pb.unit_property('postbus-rewrite.service', 'ExecStart')
        binary = re.search(r'path=(\S+)', exec_start).group(1)
        with tempfile.TemporaryDirectory() as d:
            notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            notify.bind(os.path.join(d, 'notify'))
            notify.settimeout(30)
            listen = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listen.bind(os.path.join(d, 'rewrite'))
            listen.listen()
            env = dict(os.environ, NOTIFY_SOCKET=os.path.join(d, 'notify'), LISTEN_FDS='1',
                       LISTEN_FDNAMES='rewrite')
            proc = subprocess.Popen(['sh', '-c', f'LISTEN_PID=$$ exec {binary}'], env=env, close_fds=False,
                                    preexec_fn=lambda: os.dup2(listen.fileno(), 3))
            try:
                def until(word):
                    while True:
                        msg = notify.recv(4096).decode()
                        if word in msg.split('\n'):
                            return msg
                until('READY=1')
                proc.send_signal(signal.SIGHUP)
                msg = until('RELOADING=1')
                self.assertRegex(msg, r'(^|\n)MONOTONIC_USEC=[0-9]+(\n|$)')
                until('READY=1')
                self.assertIsNone(proc.poll())
            finally:
                proc.terminate()
                proc.wait(30)
            notify.close()
            listen.close()

    def test_broken_main_cf(self):
        pb.write_config({'smtpd_banner': '$myhostname ESMTP still-good'})
        self.assertEqual(reload_target().returncode, 0)
        pb.wait_until(lambda: 'still-good' in banner(), what='the good banner')
        # the roles on the way of a message are running (one that starts while main.cf is broken stops on it,
        # as at boot: only a running role has an old configuration to keep)
        before = len(subjects_delivered())
        pb.send('x@example.org', f'{USER}@localhost', 'Subject: before-broken\n\nx\n')
        pb.wait_until(lambda: 'before-broken' in subjects_delivered()[before:], what='mail before the failed reload')
        pid = pb.unit_property('postbus-smtpd.service', 'MainPID')

        pb.write_config({'smtpd_banner': '$myhostname ESMTP broken', 'message_size_limit': 'lots'})
        with open(pb.MAIN_CF, encoding='utf-8') as f:
            line = next(n for n, text in enumerate(f, 1) if text.startswith('message_size_limit'))
        cursor = pb.journal_cursor()
        # systemd 252 ends the target's reload job once passed on, whatever the roles' ExecReload= say: the
        # roles' own reloads and postbusctl reload fail
        reload_target()
        r = pb.systemctl('reload', 'postbus-smtpd.service', check=False)
        self.assertNotEqual(r.returncode, 0)
        r = pb.run_process('postbusctl', 'reload', check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('reload failed', r.stderr)
        msgs = pb.journal_messages(SYSLOG_IDENTIFIER='postbus/smtpd', since=cursor)
        self.assertTrue(any(f'main.cf:{line}:' in (m or '') for m in msgs), msgs)
        self.assertEqual(pb.unit_property('postbus-smtpd.service', 'ReloadResult'), 'exit-code')

        # the old configuration serves on, in the same process
        self.assertTrue(pb.unit_active('postbus-smtpd.service'))
        self.assertEqual(pb.unit_property('postbus-smtpd.service', 'MainPID'), pid)
        self.assertIn('still-good', banner())
        before = len(subjects_delivered())
        pb.send('x@example.org', f'{USER}@localhost', 'Subject: after-broken\n\nx\n')
        pb.wait_until(lambda: 'after-broken' in subjects_delivered()[before:], what='mail after the failed reload')

        # fixed: the reload goes through (postbusctl reload too)
        pb.write_config({'message_size_limit': BASE_SIZE})
        r = pb.run_process('postbusctl', 'reload', check=False)
        self.assertEqual(r.returncode, 0, r.stderr)
        pb.wait_until(lambda: 'broken' in banner(), what='the banner after the fix')


if __name__ == '__main__':
    unittest.main()
