"""The smtp and lmtp delivery agent against real peers, not fakes: Postfix's smtp-sink (one transaction for 20
recipients, the destination concurrency limit held during a burst), a second, real Postfix instance as the next
hop (mail arrives intact, DSN parameters pass through and come back as Postfix's own success notice), and
Dovecot's LMTP server over a unix socket and over TCP (a known user delivered into its Maildir, an unknown one
bounced with Dovecot's reply in Diagnostic-Code). Each peer runs in this container as a transient unit on its
own loopback address or path, away from postbus's port 25 on 127.0.0.1. RelayedNotice keeps a known fault in
view as an expected failure: postbus sends a "relayed" notice of its own although Postfix took DSN over."""
import glob
import os
import pathlib
import pwd
import re
import shutil
import subprocess
import threading
import time
import unittest

import postbus as pb

TRANSPORT = '/etc/postbus/transport'
SENDER = 'alice@localhost'
SINK_ADDR = '127.0.0.3'
SINK_PORT = 2525
SLOW_PORT = 2526
SINK_DIR = '/tmp/peers-sink'
PEER_ADDR = '127.0.0.2'
PEER_PORT = 2525
PEER = '/tmp/peers-postfix'
PEER_LOG = '/var/log/peers-postfix.log'    # under /var: Postfix's maillog_file_prefixes
DOVECOT = '/tmp/peers-dovecot'
DOVECOT_RUN = '/run/peers-dovecot'
LMTP_SOCKET = f'{DOVECOT_RUN}/lmtp'
UNITS = ('peers-sink.service', 'peers-slowsink.service', 'peers-postfix.service', 'peers-dovecot.service')


def start_unit(name, *cmd):
    pb.run('systemd-run', '--quiet', f'--unit={name}', '--property=Type=simple', *cmd)


def stop_unit(name):
    pb.run('systemctl', 'stop', name, check=False)
    pb.run('systemctl', 'reset-failed', name, check=False)


def listening(addr, port):
    """True if something listens on addr:port (IPv4, /proc/net/tcp state 0A)."""
    want = '%s:%04X' % (''.join('%02X' % int(b) for b in reversed(addr.split('.'))), port)
    with open('/proc/net/tcp', encoding='ascii') as f:
        return any(l.split()[1] == want and l.split()[3] == '0A' for l in f.readlines()[1:])


def established_to(addr, port):
    """How many TCP connections of this machine are established to addr:port, counted at the client's end (the
    socket postbus-smtp holds), so that a server's socket not yet closed after QUIT does not count."""
    want = '%s:%04X' % (''.join('%02X' % int(b) for b in reversed(addr.split('.'))), port)
    with open('/proc/net/tcp', encoding='ascii') as f:
        return sum(1 for l in f.readlines()[1:] if l.split()[2] == want and l.split()[3] == '01')


def sink_dumps(marker):
    """smtp-sink's dump files (one per transaction: X-Mail-Args, an X-Rcpt-Args line per recipient, the message)
    that hold marker."""
    out = []
    for name in sorted(os.listdir(SINK_DIR)):
        with open(os.path.join(SINK_DIR, name), 'rb') as f:
            data = f.read()
        if marker.encode() in data:
            out.append(data.decode('utf-8', 'replace'))
    return out


def smtp_records(qid, since, **fields):
    return pb.journal(QUEUE_ID=qid, POSTBUS_ROLE='smtp', since=since, **fields)


def wait_sent(qid, since, n=1):
    return pb.wait_until(lambda: len(smtp_records(qid, since, DELIVERY_STATUS='sent')) == n
                         and smtp_records(qid, since, DELIVERY_STATUS='sent'), what=f'{n} sent record(s) of {qid}')


def peer_log():
    with open(PEER_LOG, encoding='utf-8', errors='replace') as f:
        return f.read()


def write(path, text, mode=0o644):
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)
    os.chmod(path, mode)


def setUpModule():
    Peers.start_peers()


def tearDownModule():
    Peers.stop_peers()


class Peers(unittest.TestCase):
    @classmethod
    def start_peers(cls):
        for prog in ('/usr/sbin/smtp-sink', '/usr/sbin/postfix', '/usr/sbin/dovecot', '/usr/lib/dovecot/lmtp'):
            if not os.path.exists(prog):
                raise unittest.SkipTest(f'{prog} is not installed (tools/deps.sh: postfix, dovecot-lmtpd)')
        pb.add_user('alice')
        cls.setup_sinks()
        cls.setup_postfix()
        cls.setup_dovecot()
        write(TRANSPORT, f'sink.test smtp:[{SINK_ADDR}]:{SINK_PORT}\n'
                         f'slow.test smtp:[{SINK_ADDR}]:{SLOW_PORT}\n'
                         f'peer.test smtp:[{PEER_ADDR}]:{PEER_PORT}\n'
                         f'lmtpunix.test lmtp:unix:{LMTP_SOCKET}\n'
                         'lmtpinet.test lmtp:inet:127.0.0.1:24\n')
        pb.run('postbusctl', 'map', 'build', TRANSPORT)
        pb.set_config(transport_maps=f'gdbm:{TRANSPORT}', smtp_destination_recipient_limit=50,
                      smtp_destination_concurrency_limit=2)
        for addr, port in ((SINK_ADDR, SINK_PORT), (SINK_ADDR, SLOW_PORT), (PEER_ADDR, PEER_PORT), ('127.0.0.1', 24)):
            pb.wait_until(lambda: listening(addr, port), what=f'a server on {addr}:{port}')
        pb.wait_until(lambda: os.path.exists(LMTP_SOCKET), what='the Dovecot LMTP socket')

    @classmethod
    def stop_peers(cls):
        pb.run('postfix', '-c', f'{PEER}/etc', 'stop', check=False)
        for unit in UNITS:
            stop_unit(unit)

    @classmethod
    def setup_sinks(cls):
        """Two smtp-sinks that keep each transaction in a file of its own: a quick one, and one that waits 1 s
        before it answers DATA, so that a burst of mail piles up sessions at it."""
        shutil.rmtree(SINK_DIR, ignore_errors=True)
        os.makedirs(SINK_DIR)
        os.chmod(SINK_DIR, 0o777)
        start_unit('peers-sink.service', '/usr/sbin/smtp-sink', '-u', 'nobody', '-d', f'{SINK_DIR}/quick.',
                   f'{SINK_ADDR}:{SINK_PORT}', '100')
        start_unit('peers-slowsink.service', '/usr/sbin/smtp-sink', '-u', 'nobody', '-w', '1',
                   '-d', f'{SINK_DIR}/slow.', f'{SINK_ADDR}:{SLOW_PORT}', '100')

    @classmethod
    def setup_postfix(cls):
        """A real Postfix on 127.0.0.2:2525 with its own configuration, queue and log under /tmp: peer.test is
        its virtual mailbox domain (pete@peer.test, into a Maildir), and mail back to localhost goes to postbus
        on 127.0.0.1:25."""
        shutil.rmtree(PEER, ignore_errors=True)
        for d in ('etc', 'queue', 'data', 'mail'):
            os.makedirs(f'{PEER}/{d}')
        os.chmod(PEER, 0o755)
        shutil.chown(f'{PEER}/data', 'postfix')
        nobody = pwd.getpwnam('nobody')
        shutil.chown(f'{PEER}/mail', nobody.pw_uid, nobody.pw_gid)
        write(f'{PEER}/etc/vmailbox', 'pete@peer.test pete/Maildir/\n')
        write(f'{PEER}/etc/transport', 'localhost smtp:[127.0.0.1]:25\n')
        write(f'{PEER}/etc/main.cf', f"""# a second MTA for test_smtp_peers.py
compatibility_level = 3.6
queue_directory = {PEER}/queue
data_directory = {PEER}/data
mail_owner = postfix
setgid_group = postdrop
syslog_name = postfix-peer
maillog_file = {PEER_LOG}
myhostname = mx.peer.test
mydestination =
inet_interfaces = {PEER_ADDR}
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
disable_dns_lookups = yes
smtpd_peername_lookup = no
alias_maps =
alias_database =
virtual_mailbox_domains = peer.test
virtual_mailbox_base = {PEER}/mail
virtual_mailbox_maps = texthash:{PEER}/etc/vmailbox
virtual_uid_maps = static:{nobody.pw_uid}
virtual_gid_maps = static:{nobody.pw_gid}
transport_maps = texthash:{PEER}/etc/transport
""")
        write(f'{PEER}/etc/master.cf', f"""# no chroot
{PEER_ADDR}:{PEER_PORT} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
virtual   unix  - n n - - virtual
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
""")
        # its own address on lo: with 127.0.0.1 among its interfaces, Postfix would refuse to send to postbus
        # there ("mail for 127.0.0.1 loops back to myself")
        if f' {PEER_ADDR}/32 ' not in pb.run('ip', '-o', 'address', 'show', 'dev', 'lo'):
            pb.run('ip', 'address', 'add', f'{PEER_ADDR}/32', 'dev', 'lo')
        pb.run('postfix', '-c', f'{PEER}/etc', 'check')
        start_unit('peers-postfix.service', '/usr/sbin/postfix', '-c', f'{PEER}/etc', 'start-fg')

    @classmethod
    def setup_dovecot(cls):
        """Dovecot with LMTP only, on a unix socket and on 127.0.0.1:24; its users in a passwd-file: dan, whose
        mail goes to ~dan/Maildir, and vince, who has no account here."""
        dan = pb.add_user('dan')
        shutil.rmtree(DOVECOT, ignore_errors=True)
        os.makedirs(DOVECOT)
        # vince has no account on this machine: a user Dovecot alone knows (his mail is kept as dan's)
        os.makedirs(f'{DOVECOT}/vince')
        shutil.chown(f'{DOVECOT}/vince', dan.pw_uid, dan.pw_gid)
        alice = pwd.getpwnam('alice')       # for her bounce reports while local hands mailboxes to Dovecot
        write(f'{DOVECOT}/users', f'dan:{{PLAIN}}secret:{dan.pw_uid}:{dan.pw_gid}::{dan.pw_dir}::\n'
                                  f'vince:{{PLAIN}}secret:{dan.pw_uid}:{dan.pw_gid}::{DOVECOT}/vince::\n'
                                  f'alice:{{PLAIN}}secret:{alice.pw_uid}:{alice.pw_gid}::{alice.pw_dir}::\n')
        write(f'{DOVECOT}/dovecot.conf', f"""# Dovecot for test_smtp_peers.py: LMTP only
protocols = lmtp
listen = 127.0.0.1
base_dir = {DOVECOT_RUN}
state_dir = {DOVECOT}/state
log_path = {DOVECOT}/log
ssl = no
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = username_format=%n {DOVECOT}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%n {DOVECOT}/users
}}
service lmtp {{
  unix_listener lmtp {{
    mode = 0666
  }}
  inet_listener lmtp {{
    address = 127.0.0.1
    port = 24
  }}
}}
""")
        os.makedirs(f'{DOVECOT}/state')
        start_unit('peers-dovecot.service', '/usr/sbin/dovecot', '-F', '-c', f'{DOVECOT}/dovecot.conf')

    # ---- smtp-sink ------------------------------------------------------------------------------------------

    def test_sink_twenty_recipients_one_transaction(self):
        cursor = pb.journal_cursor()
        marker = 'twenty-%d' % time.time_ns()
        rcpts = [f'user{i}@sink.test' for i in range(20)]
        qid = pb.send(SENDER, rcpts, f'Subject: {marker}\n\nbody\n')
        recs = wait_sent(qid, cursor, 20)
        [dump] = sink_dumps(marker)
        got = re.findall(r'^X-Rcpt-Args: <([^>]*)>', dump, re.M)
        self.assertEqual(sorted(got), sorted(rcpts))
        self.assertRegex(dump, r'(?m)^X-Mail-Args: <alice@localhost>$')    # smtp-sink offers no SIZE
        # one session, one transaction: every record has the same remote queue ID
        self.assertEqual(len({re.search(r'status=sent \((.*)\)$', r['MESSAGE']).group(1) for r in recs}), 1)
        for r in recs:
            self.assertEqual(r['RELAY'], f'{SINK_ADDR}[{SINK_ADDR}]:{SINK_PORT}')

    def test_sink_concurrency_limit(self):
        # 12 messages at once for one destination, whose server takes a second for each DATA: postbus opens
        # more than one session, and never runs more than smtp_destination_concurrency_limit (2) deliveries.
        peak = [0]
        seen = []
        stop = threading.Event()

        def watch():
            while not stop.is_set():
                n = established_to(SINK_ADDR, SLOW_PORT)
                seen.append(n)
                peak[0] = max(peak[0], n)
                time.sleep(0.02)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        cursor = pb.journal_cursor()
        marker = 'burst-%d' % time.time_ns()
        records = []
        try:
            qids = [pb.send(SENDER, f'user{i}@slow.test', f'Subject: {marker} {i}\n\nbody {i}\n') for i in range(12)]
            for qid in qids:
                records += wait_sent(qid, cursor)
        finally:
            stop.set()
            watcher.join()
        self.assertEqual(len(sink_dumps(marker)), 12)
        # The deliveries in progress at once, from the records: each ran from its end (the record's time) back
        # over its last two delays= parts (connection setup and transmission). A session idle in the
        # connection cache between two deliveries is no delivery, so the sockets are not what is counted.
        spans = []
        for r in records:
            end = int(r['__REALTIME_TIMESTAMP']) / 1e6
            c, d = (float(x) for x in re.search(r'delays=[\d.]+/[\d.]+/([\d.]+)/([\d.]+)', r['MESSAGE']).groups())
            spans.append((end - c - d + 0.05, end))     # delays= has two decimals: a margin for rounding
        most = max(sum(1 for a, b in spans if a < t <= b) for _, t in spans)
        self.assertEqual(most, 2, spans)
        # and more than one session for a good while, not in one sample by chance
        self.assertGreater(seen.count(2), 10, f'sessions seen at once: {sorted(set(seen))}')

    # ---- a real Postfix as the next hop -----------------------------------------------------------------------

    def peer_messages(self, marker):
        out = []
        for sub in ('new', 'cur'):
            d = f'{PEER}/mail/pete/Maildir/{sub}'
            for name in os.listdir(d) if os.path.isdir(d) else []:
                with open(os.path.join(d, name), 'rb') as f:
                    data = f.read()
                if marker.encode() in data:
                    out.append(data)
        return out

    def test_postfix_next_hop_intact(self):
        cursor = pb.journal_cursor()
        marker = 'intact-%d' % time.time_ns()
        long_line = ''.join(chr(ord('a') + i % 26) for i in range(1500))
        body = (f'Subject: {marker}\nX-Peer-Test: kept\nMessage-ID: <{marker}@localhost>\n\n'
                f'first\n.leading dot\n{long_line}\nlast\n')
        qid = pb.send(SENDER, 'pete@peer.test', body)
        [rec] = wait_sent(qid, cursor)
        self.assertEqual(rec['RELAY'], f'{PEER_ADDR}[{PEER_ADDR}]:{PEER_PORT}')
        self.assertRegex(rec['MESSAGE'], r'status=sent \(250 2\.0\.0 Ok: queued as \w+\)$')
        [data] = pb.wait_until(lambda: self.peer_messages(marker), what='the message in pete\'s Maildir')
        text = data.decode()
        head, _, got_body = text.partition('\n\n')
        self.assertIn(f'Subject: {marker}\n', head)
        self.assertIn('X-Peer-Test: kept\n', head)
        self.assertIn(f'Message-ID: <{marker}@localhost>\n', head)
        self.assertIn(f'Return-Path: <{SENDER}>', head)
        self.assertIn('Delivered-To: pete@peer.test', head)
        # postbus wraps the line at 998 octets (CRLF SPACE); Postfix keeps what it receives
        self.assertEqual(got_body, f'first\n.leading dot\n{long_line[:998]}\n {long_line[998:]}\nlast\n')

    def test_postfix_dsn_pass_through(self):
        cursor = pb.journal_cursor()
        marker = 'dsn-%d' % time.time_ns()
        msg = f'Subject: {marker}\r\nMessage-ID: <{marker}@localhost>\r\n\r\nbody\r\n'.encode()
        with pb.connect() as s:
            s.ehlo()
            s.sendmail(SENDER, ['pete@peer.test'], msg, mail_options=['RET=HDRS', f'ENVID={marker}'],
                       rcpt_options=['NOTIFY=SUCCESS,FAILURE', 'ORCPT=rfc822;orig@peer.test'])
        pb.wait_until(lambda: self.peer_messages(marker), what='the message at Postfix')
        # ... and its success notice (NOTIFY=SUCCESS) comes back to alice through postbus, with ENVID and ORCPT
        # as postbus passed them, and only the headers (RET=HDRS)
        notice = pb.wait_until(lambda: next((m for m in pb.mbox_messages('alice')
                                             if f'Original-Envelope-Id: {marker}' in m
                                             and 'Reporting-MTA: dns; mx.peer.test' in m), None),
                               what="Postfix's success notice in alice's mailbox")
        self.assertIn('Original-Recipient: rfc822;orig@peer.test', notice)
        self.assertIn('Final-Recipient: rfc822; pete@peer.test', notice)
        self.assertIn('Action: delivered', notice)
        self.assertIn('Status: 2.0.0', notice)
        self.assertIn('Reporting-MTA: dns; mx.peer.test', notice)
        # Postfix's own log: its bounce daemon sent the notice the sender asked for
        pb.wait_until(lambda: 'sender delivery status notification' in peer_log(), what="Postfix's record of the notice")
        self.assertIn(f'Message-ID: <{marker}@localhost>', notice)
        self.assertNotIn('\nbody\n', notice.split('Content-Type: text/rfc822-headers')[-1])

    # ---- Dovecot LMTP -----------------------------------------------------------------------------------------

    def test_dovecot_lmtp(self):
        for domain in ('lmtpunix.test', 'lmtpinet.test'):
            with self.subTest(domain=domain):
                cursor = pb.journal_cursor()
                marker = f'{domain}-%d' % time.time_ns()
                qid = pb.send(SENDER, [f'dan@{domain}', f'nosuch@{domain}'], f'Subject: {marker}\n\n.dot\nbody\n')
                [sent] = wait_sent(qid, cursor)
                self.assertEqual(sent['RECIPIENT'], f'dan@{domain}')
                if domain == 'lmtpunix.test':
                    self.assertTrue(sent['RELAY'].endswith(f'[{LMTP_SOCKET}]'), sent['RELAY'])
                else:
                    self.assertEqual(sent['RELAY'], '127.0.0.1[127.0.0.1]:24')
                self.assertRegex(sent['MESSAGE'], rf'status=sent \(250 2\.0\.0 <dan@{re.escape(domain)}> \S+ Saved\)$')
                [msg] = pb.wait_until(lambda: [m for m in pb.maildir_messages('dan') if marker in m],
                                      what="the message in dan's Maildir")
                self.assertIn('\n.dot\nbody\n', msg.replace('\r\n', '\n'))
                self.assertIn(f'Delivered-To: dan@{domain}', msg)

                [bounced] = pb.wait_until(lambda: smtp_records(qid, cursor, DELIVERY_STATUS='bounced'),
                                          what='the bounce record')
                self.assertEqual(bounced['RECIPIENT'], f'nosuch@{domain}')
                self.assertEqual(bounced['DSN'], '5.1.1')
                self.assertRegex(bounced['MESSAGE'], rf"said: 550 5\.1\.1 <nosuch@{re.escape(domain)}> User doesn't "
                                                     r"exist: nosuch@\S+ \(in reply to RCPT TO command\)")
                report = pb.wait_until(lambda: next((m for m in pb.mbox_messages('alice')
                                                     if qid in m and 'Diagnostic-Code' in m), None),
                                       what='the bounce report for alice')
                self.assertRegex(report, rf"Diagnostic-Code: (smtp|lmtp); *550 5\.1\.1 <nosuch@{re.escape(domain)}> "
                                         r"User doesn't exist")
                self.assertIn(f'Final-Recipient: rfc822; nosuch@{domain}', report)
                self.assertNotIn(f'Final-Recipient: rfc822; dan@{domain}', report)

    def test_mailbox_transport(self):
        """local hands mailboxes to Dovecot after aliases (mailbox_transport), users without an account too, and
        only those to it when fallback_transport is set instead; the lmtp agent logs each delivery."""
        write('/etc/aliases', 'danalias: dan\n')
        pb.run('postbusctl', '--aliases', 'map', 'build', '/etc/aliases')
        def vince_mail(marker):
            return [f for f in glob.glob(f'{DOVECOT}/vince/Maildir/new/*') if marker in pathlib.Path(f).read_text()]
        try:
            pb.set_config(mailbox_transport=f'lmtp:unix:{LMTP_SOCKET}', local_recipient_maps='')
            cursor = pb.journal_cursor()
            marker = 'mailbox-transport-%d' % time.time_ns()
            qid = pb.send(SENDER, ['danalias@localhost', 'vince@localhost', 'nosuch@localhost'],
                          f'Subject: {marker}\n\nbody\n')
            sent = {r['RECIPIENT'].split('@')[0]: r for r in wait_sent(qid, cursor, 2)}
            self.assertEqual(set(sent), {'dan', 'vince'})
            self.assertEqual(sent['dan']['ORIGINAL_RECIPIENT'], 'danalias@localhost')
            self.assertTrue(sent['dan']['RELAY'].endswith(f'[{LMTP_SOCKET}]'), sent['dan']['RELAY'])
            [msg] = pb.wait_until(lambda: [m for m in pb.maildir_messages('dan') if marker in m],
                                  what="the message in dan's Maildir, from Dovecot")
            pb.wait_until(lambda: vince_mail(marker), what="vince's message in his Dovecot Maildir")
            # local wrote nothing itself: no mbox, no record of its own for these recipients
            self.assertFalse([m for m in pb.mbox_messages('dan') if marker in m])
            self.assertEqual(pb.journal(QUEUE_ID=qid, POSTBUS_ROLE='local', DELIVERY_STATUS='sent', since=cursor), [])
            # Dovecot's refusal is the recipient's bounce, with its words
            [bounced] = pb.wait_until(lambda: smtp_records(qid, cursor, DELIVERY_STATUS='bounced'),
                                      what='the bounce of nosuch')
            self.assertEqual(bounced['DSN'], '5.1.1')
            # ... in a report that reaches alice through Dovecot too
            report = pb.wait_until(lambda: next((m for m in pb.maildir_messages('alice')
                                                 if qid in m and 'Diagnostic-Code' in m), None),
                                   what="the bounce report in alice's Dovecot Maildir")
            self.assertIn('Final-Recipient: rfc822; nosuch@localhost', report)
            self.assertRegex(report, r"User doesn't exist")

            # a message too large for the call itself goes as the queue file's descriptor, to the agent too
            marker = 'mailbox-transport-large-%d' % time.time_ns()
            big = ''.join(f'line {i:06d} of a large message\n' for i in range(4000))      # ~124 KiB
            pb.send(SENDER, ['vince@localhost'], f'Subject: {marker}\n\n{big}')
            [path] = pb.wait_until(lambda: vince_mail(marker), what="vince's large message")
            self.assertIn(big, pathlib.Path(path).read_text().replace('\r\n', '\n'))

            # fallback_transport: a user with an account keeps local's mailbox; vince goes to Dovecot
            pb.set_config(mailbox_transport='', fallback_transport=f'lmtp:unix:{LMTP_SOCKET}')
            cursor = pb.journal_cursor()
            marker = 'fallback-transport-%d' % time.time_ns()
            qid = pb.send(SENDER, ['alice@localhost', 'vince@localhost'], f'Subject: {marker}\n\nbody\n')
            [sent] = wait_sent(qid, cursor)
            self.assertEqual(sent['RECIPIENT'], 'vince@localhost')
            pb.wait_until(lambda: vince_mail(marker), what="vince's message from fallback_transport")
            pb.wait_until(lambda: [m for m in pb.mbox_messages('alice') if marker in m], what="alice's mbox")

            # a transport that is no lmtp service defers, with the reason
            pb.set_config(fallback_transport='smtp:[127.0.0.1]:2525')
            cursor = pb.journal_cursor()
            qid = pb.send(SENDER, ['vince@localhost'], 'Subject: not lmtp\n\nbody\n')
            [deferred] = pb.wait_until(lambda: pb.journal(QUEUE_ID=qid, POSTBUS_ROLE='local', DELIVERY_STATUS='deferred',
                                                          since=cursor), what='the deferral')
            self.assertIn('local hands mailboxes to lmtp services alone', deferred['MESSAGE'])
        finally:
            pb.set_config(mailbox_transport='', fallback_transport='', local_recipient_maps='unix:passwd.byname $alias_maps')
            os.unlink('/etc/aliases')

    def test_per_user_maps(self):
        """mailbox_transport_maps, mailbox_command_maps and fallback_transport_maps, keyed by the user name."""
        maps = '/etc/postbus/local-maps'
        write(maps + '-transport', f'dan lmtp:unix:{LMTP_SOCKET}\n')
        write(maps + '-command', 'alice cat > /home/alice/command-map.out\n')
        write(maps + '-fallback', f'vince lmtp:unix:{LMTP_SOCKET}\n')
        try:
            pb.set_config(mailbox_transport_maps=f'texthash:{maps}-transport',
                          mailbox_command_maps=f'texthash:{maps}-command',
                          fallback_transport_maps=f'texthash:{maps}-fallback', local_recipient_maps='')
            cursor = pb.journal_cursor()
            marker = 'per-user-maps-%d' % time.time_ns()
            qid = pb.send(SENDER, ['dan@localhost', 'alice@localhost', 'vince@localhost', 'nosuch@localhost'],
                          f'Subject: {marker}\n\nbody\n')
            sent = {r['RECIPIENT'].split('@')[0] for r in wait_sent(qid, cursor, 2)}
            self.assertEqual(sent, {'dan', 'vince'})
            pb.wait_until(lambda: [m for m in pb.maildir_messages('dan') if marker in m], what="dan's mail by Dovecot")
            pb.wait_until(lambda: os.path.exists('/home/alice/command-map.out') and
                          marker in pathlib.Path('/home/alice/command-map.out').read_text(),
                          what="alice's mail through her command")
            self.assertEqual(os.stat('/home/alice/command-map.out').st_uid, pwd.getpwnam('alice').pw_uid)
            # a user neither the system nor the fallback map knows bounces as before
            [bounced] = pb.wait_until(lambda: pb.journal(QUEUE_ID=qid, POSTBUS_ROLE='local',
                                                         DELIVERY_STATUS='bounced', since=cursor),
                                      what='the bounce of nosuch')
            self.assertIn('unknown user: "nosuch"', bounced['MESSAGE'])
        finally:
            pb.set_config(mailbox_transport_maps='', mailbox_command_maps='', fallback_transport_maps='',
                          local_recipient_maps='unix:passwd.byname $alias_maps')


class RelayedNotice(unittest.TestCase):
    """A known fault, kept in view: Postfix announces DSN and so takes NOTIFY=SUCCESS over, and Postfix's smtp(8)
    then sends no "relayed" notice of its own. postbus does (qmgr gives every smtp success with NOTIFY=SUCCESS
    the action "relayed"; the agent does not tell it whether the server took DSN), so the sender gets two
    notices for one delivery. The message and Postfix's notice are checked in setUpClass, outside the expected
    failure."""

    @classmethod
    def setUpClass(cls):
        cls.marker = 'relayed-%d' % time.time_ns()
        msg = f'Subject: {cls.marker}\r\n\r\nbody\r\n'.encode()
        with pb.connect() as s:
            s.ehlo()
            s.sendmail(SENDER, ['pete@peer.test'], msg, mail_options=[f'ENVID={cls.marker}'],
                       rcpt_options=['NOTIFY=SUCCESS'])
        pb.wait_until(lambda: any(f'Original-Envelope-Id: {cls.marker}' in m and 'Reporting-MTA: dns; mx.peer.test' in m
                                  for m in pb.mbox_messages('alice')), what="Postfix's success notice")
        # postbus's own notice, if it makes one, is written before Postfix's comes back; the queue is empty now
        pb.wait_until(lambda: not any(os.listdir(f'{pb.SPOOL}/{q}') for q in ('incoming', 'active')),
                      what="postbus's queue empty")

    def test_no_relayed_notice_from_postbus(self):
        self.assertEqual([m for m in pb.mbox_messages('alice')
                          if f'Original-Envelope-Id: {self.marker}' in m and 'Action: relayed' in m], [])


if __name__ == '__main__':
    unittest.main(verbosity=2)
