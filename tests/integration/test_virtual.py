"""Hosted domains (virtual mailboxes) through the real daemons: a domain of virtual_mailbox_domains is resolved to
the virtual transport, and postbus-virtual writes each mailbox below virtual_mailbox_base as the uid and gid the
maps name (a Maildir for bob, an mbox file for carol, each owned by its own mapped uid, never root); smtpd refuses
an unknown hosted user at RCPT with 550 5.1.1; a uid below virtual_minimum_uid defers with 4.3.5 as Postfix does
(the message stays queued, nothing is written); a second hosted domain goes to Dovecot's LMTP server over a unix
socket through transport_maps, and with virtual_transport = lmtp:unix:... a hosted domain goes there too."""
import os
import re
import shutil
import smtplib
import time
import unittest

import postbus as pb

SENDER = 'alice@localhost'
BASE = '/var/mail/vhosts'
VMAILBOX = '/etc/postbus/vmailbox'
VUIDS = '/etc/postbus/vuids'
TRANSPORT = '/etc/postbus/transport'
BOB_UID, CAROL_UID, VGID = 5000, 5001, 5000
DOVECOT = '/tmp/virtual-dovecot'
DOVECOT_RUN = '/run/virtual-dovecot'
LMTP_SOCKET = f'{DOVECOT_RUN}/lmtp'


def write(path, text):
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)


def records(qid, cursor, **fields):
    return [r for r in pb.journal(QUEUE_ID=qid, since=cursor, **fields) if 'RECIPIENT' in r]


def read_text(path):
    with open(path, encoding='utf-8', errors='replace') as f:
        return f.read()


def maildir_files(path):
    out = []
    for sub in ('new', 'cur'):
        d = os.path.join(path, sub)
        if os.path.isdir(d):
            out += [os.path.join(d, n) for n in os.listdir(d)]
    return out


def start_dovecot(dan):
    """Dovecot with LMTP only on a unix socket; dan's mail goes to ~dan/Maildir."""
    shutil.rmtree(DOVECOT, ignore_errors=True)
    os.makedirs(f'{DOVECOT}/state')
    write(f'{DOVECOT}/users', f'dan:{{PLAIN}}secret:{dan.pw_uid}:{dan.pw_gid}::{dan.pw_dir}::\n')
    write(f'{DOVECOT}/dovecot.conf', f"""# Dovecot for test_virtual.py: LMTP only
protocols = lmtp
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
}}
""")
    pb.run('systemd-run', '--quiet', '--unit=virtual-dovecot.service', '--property=Type=simple',
           '/usr/sbin/dovecot', '-F', '-c', f'{DOVECOT}/dovecot.conf')
    pb.wait_until(lambda: os.path.exists(LMTP_SOCKET), what='the Dovecot LMTP socket')


class Virtual(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        pb.add_user('alice')
        cls.dan = pb.add_user('dan')
        shutil.rmtree(BASE, ignore_errors=True)
        os.makedirs(f'{BASE}/hosted.test', mode=0o755)
        # bob and carol share the domain's directory (group 5000), each with a uid of their own.
        os.chown(f'{BASE}/hosted.test', BOB_UID, VGID)
        os.chmod(f'{BASE}/hosted.test', 0o770)
        write(VMAILBOX, 'bob@hosted.test hosted.test/bob/\n'
                        'carol@hosted.test hosted.test/carol\n'
                        'rooted@hosted.test hosted.test/rooted/\n'
                        'low@hosted.test hosted.test/low/\n'
                        'dan@lmtp.test lmtp.test/dan/\n'
                        'dan@hosted2.test unused\n'
                        'full@hosted.test hosted.test/full\n'
                        'evil@hosted.test hosted.test/evil\n')
        write(VUIDS, f'bob@hosted.test {BOB_UID}\ncarol@hosted.test {CAROL_UID}\n'
                     'rooted@hosted.test 0\nlow@hosted.test 99\nfull@hosted.test 5000\nevil@hosted.test 5000\n')
        write(TRANSPORT, f'lmtp.test lmtp:unix:{LMTP_SOCKET}\n')
        for t in (VMAILBOX, VUIDS, TRANSPORT):
            pb.run('postbusctl', 'map', 'build', t)
        cls.dovecot = os.path.exists('/usr/sbin/dovecot') and os.path.exists('/usr/lib/dovecot/lmtp')
        if cls.dovecot:
            start_dovecot(cls.dan)
        pb.set_config(virtual_mailbox_domains='hosted.test, lmtp.test', virtual_mailbox_base=BASE,
                      virtual_mailbox_maps=f'hash:{VMAILBOX}', virtual_uid_maps=f'hash:{VUIDS}',
                      virtual_gid_maps=f'static:{VGID}', transport_maps=f'hash:{TRANSPORT}',
                      recipient_delimiter='+')

    @classmethod
    def tearDownClass(cls):
        pb.run('systemctl', 'stop', 'virtual-dovecot.service', check=False)

    def test_maildir_as_mapped_uid(self):
        cursor = pb.journal_cursor()
        marker = 'maildir-%d' % time.time_ns()
        qid = pb.send(SENDER, 'bob+tag@hosted.test', f'Subject: {marker}\n\nFrom the start\nbody\n')
        [rec] = pb.wait_until(lambda: records(qid, cursor, DELIVERY_STATUS='sent'), what='the delivery record')
        self.assertEqual(rec['RELAY'], 'virtual')
        self.assertEqual(rec['_SYSTEMD_UNIT'], 'postbus-virtual.service')
        self.assertRegex(rec['MESSAGE'], rf'^{qid}: to=<bob\+tag@hosted\.test>, relay=virtual, delay=[0-9.]+, '
                                         r'delays=[0-9.]+/[0-9.]+/[0-9.]+/[0-9.]+, dsn=2\.0\.0, '
                                         r'status=sent \(delivered to maildir\)$')
        files = [p for p in maildir_files(f'{BASE}/hosted.test/bob') if marker in read_text(p)]
        self.assertEqual(len(files), 1, files)
        st = os.stat(files[0])
        self.assertEqual((st.st_uid, st.st_gid), (BOB_UID, VGID))
        self.assertEqual(st.st_mode & 0o777, 0o600)
        for d in ('', 'new', 'cur', 'tmp'):
            self.assertEqual(os.stat(f'{BASE}/hosted.test/bob/{d}').st_uid, BOB_UID, d)
        with open(files[0], encoding='utf-8') as f:
            text = f.read()
        self.assertTrue(text.startswith(f'Return-Path: <{SENDER}>\nX-Original-To: bob+tag@hosted.test\n'
                                        'Delivered-To: bob+tag@hosted.test\n'), text[:200])
        self.assertIn('\nFrom the start\nbody\n', text)     # Maildir: no >From quoting
        self.assertEqual(os.listdir(f'{BASE}/hosted.test/bob/tmp'), [])
        # The role is socket-activated, and its unit may write below the mailbox base alone.
        self.assertEqual(pb.unit_property('postbus-virtual.service', 'TriggeredBy'), 'postbus-virtual.socket')
        self.assertEqual(pb.unit_property('postbus-virtual.service', 'ProtectSystem'), 'strict')
        self.assertIn(BASE, pb.unit_property('postbus-virtual.service', 'ReadWritePaths'))
        self.assertEqual(pb.unit_property('postbus-virtual.service', 'PrivateNetwork'), 'yes')

    def test_mbox_as_mapped_uid(self):
        cursor = pb.journal_cursor()
        marker = 'mbox-%d' % time.time_ns()
        qid = pb.send(SENDER, 'carol@hosted.test', f'Subject: {marker}\n\nFrom the start\nbody\n')
        [rec] = pb.wait_until(lambda: records(qid, cursor, DELIVERY_STATUS='sent'), what='the delivery record')
        self.assertRegex(rec['MESSAGE'], r'to=<carol@hosted\.test>, relay=virtual, .*dsn=2\.0\.0, '
                                         r'status=sent \(delivered to mailbox\)$')
        path = f'{BASE}/hosted.test/carol'
        st = os.stat(path)
        self.assertEqual((st.st_uid, st.st_gid), (CAROL_UID, VGID))
        with open(path, 'rb') as f:
            msgs = [m.decode() for m in pb.mbox_split(f.read()) if marker.encode() in m]
        self.assertEqual(len(msgs), 1)
        self.assertRegex(msgs[0], rf'^From {re.escape(SENDER)}  \w{{3}} \w{{3}} [ \d]\d \d\d:\d\d:\d\d \d{{4}}\n')
        self.assertIn('\n>From the start\nbody\n', msgs[0])
        self.assertFalse(os.path.exists(path + '.lock'))

    def test_symlink_not_followed(self):
        """An mbox that is a symbolic link (to a file the uid could write) is refused, as local refuses it."""
        target = f'{BASE}/hosted.test/target'
        write(target, 'untouched\n')
        os.chown(target, BOB_UID, VGID)
        link = f'{BASE}/hosted.test/evil'
        if not os.path.islink(link):
            os.symlink(target, link)
        cursor = pb.journal_cursor()
        qid = pb.send(SENDER, 'evil@hosted.test', 'Subject: symlink\n\nbody\n')
        [rec] = pb.wait_until(lambda: records(qid, cursor, DELIVERY_STATUS='bounced'), what='the bounce')
        self.assertEqual(rec['DSN'], '5.2.0')
        self.assertIn('is a symbolic link', rec['MESSAGE'])
        self.assertEqual(read_text(target), 'untouched\n')

    def test_unknown_user_refused_at_rcpt(self):
        with pb.connect() as smtp:
            smtp.ehlo()
            smtp.mail(SENDER)
            code, text = smtp.rcpt('nosuch@hosted.test')
            self.assertEqual(code, 550)
            self.assertEqual(text.decode(), '5.1.1 <nosuch@hosted.test>: Recipient address rejected: '
                                            'User unknown in virtual mailbox table')
            code, _ = smtp.rcpt('bob@hosted.test')
            self.assertEqual(code, 250)
            # A domain that is not hosted is not judged by the virtual table.
            code, text = smtp.rcpt('nosuch@localhost')
            self.assertEqual(code, 550)
            self.assertIn(b'User unknown in local recipient table', text)

    def test_unknown_user_bounced_by_agent(self):
        """Mail that did not pass smtpd (sendmail) for an unknown hosted user bounces in the agent, 5.1.1."""
        cursor = pb.journal_cursor()
        marker = 'unknown-%d' % time.time_ns()
        pb.run('sendmail', '-f', SENDER, 'nosuch@hosted.test', input=f'Subject: {marker}\n\nbody\n')
        [rec] = pb.wait_until(lambda: [r for r in pb.journal(DELIVERY_STATUS='bounced', since=cursor)
                                       if r.get('RECIPIENT') == 'nosuch@hosted.test'], what='the bounce record')
        self.assertEqual(rec['DSN'], '5.1.1')
        self.assertRegex(rec['MESSAGE'], r'to=<nosuch@hosted\.test>, relay=virtual, .*dsn=5\.1\.1, '
                                         r'status=bounced \(unknown user: "nosuch@hosted\.test"\)$')
        pb.wait_until(lambda: [m for m in pb.mbox_messages('alice') if marker in m and 'Diagnostic-Code' in m],
                      what='the bounce report for alice')

    def test_mailbox_limit(self):
        """An mbox file that would grow past virtual_mailbox_limit: the message bounces 5.2.2 and the file is
        cut back to what it was."""
        try:
            pb.set_config(message_size_limit=10240, virtual_mailbox_limit=20000)
            path = f'{BASE}/hosted.test/full'
            body = ('x' * 70 + '\n') * 100          # about 7 KB
            for i in range(2):
                cursor = pb.journal_cursor()
                qid = pb.send(SENDER, 'full@hosted.test', f'Subject: fill {i}\n\n{body}')
                pb.wait_until(lambda: records(qid, cursor, DELIVERY_STATUS='sent'), what=f'delivery {i}')
            size = os.stat(path).st_size
            cursor = pb.journal_cursor()
            qid = pb.send(SENDER, 'full@hosted.test', f'Subject: too much\n\n{body}')
            [rec] = pb.wait_until(lambda: records(qid, cursor, DELIVERY_STATUS='bounced'), what='the bounce')
            self.assertEqual(rec['DSN'], '5.2.2')
            self.assertIn('File too large', rec['MESSAGE'])
            self.assertEqual(os.stat(path).st_size, size)
        finally:
            pb.set_config(message_size_limit=10240000, virtual_mailbox_limit=51200000)

    def test_uid_below_minimum_defers(self):
        for user, uid in (('rooted', 0), ('low', 99)):
            with self.subTest(uid=uid):
                cursor = pb.journal_cursor()
                qid = pb.send(SENDER, f'{user}@hosted.test', f'Subject: uid {uid}\n\nbody\n')
                [rec] = pb.wait_until(lambda: records(qid, cursor, DELIVERY_STATUS='deferred'),
                                      what='the deferral')
                self.assertEqual(rec['DSN'], '4.3.5')
                self.assertRegex(rec['MESSAGE'], rf'to=<{user}@hosted\.test>, relay=virtual, .*dsn=4\.3\.5, '
                                                 r'status=deferred \(mail system configuration error\)$')
                warn = pb.wait_until(lambda: [m for m in pb.journal_messages(
                    '_SYSTEMD_UNIT=postbus-virtual.service', since=cursor) if f'bad uid {uid}' in m],
                    what='the warning about the uid')
                self.assertIn(f'recipient {user}@hosted.test', warn[0])
                self.assertFalse(os.path.exists(f'{BASE}/hosted.test/{user}'))
                # Still queued, for the administrator to fix the map; not bounced.
                self.assertIn(qid, pb.run('mailq'))
                self.assertEqual(records(qid, cursor, DELIVERY_STATUS='bounced'), [])
                pb.run('postsuper', '-d', qid)

    def test_second_domain_to_dovecot_lmtp(self):
        if not self.dovecot:
            self.skipTest('dovecot is not installed (tools/deps.sh: dovecot-core, dovecot-lmtpd)')
        cursor = pb.journal_cursor()
        marker = 'lmtp-%d' % time.time_ns()
        qid = pb.send(SENDER, 'dan@lmtp.test', f'Subject: {marker}\n\nbody\n')
        [rec] = pb.wait_until(lambda: records(qid, cursor, DELIVERY_STATUS='sent'), what='the LMTP delivery')
        self.assertTrue(rec['RELAY'].endswith(f'[{LMTP_SOCKET}]'), rec['RELAY'])
        self.assertRegex(rec['MESSAGE'], r'status=sent \(250 2\.0\.0 <dan@lmtp\.test> \S+ Saved\)$')
        [msg] = pb.wait_until(lambda: [m for m in pb.maildir_messages('dan') if marker in m],
                              what="the message in dan's Maildir")
        self.assertIn('Delivered-To: dan@lmtp.test', msg)
        self.assertFalse(os.path.exists(f'{BASE}/lmtp.test'))
        # smtpd knows the domain as hosted too.
        with pb.connect() as smtp:
            smtp.ehlo()
            smtp.mail(SENDER)
            code, _ = smtp.rcpt('nosuch@lmtp.test')
            self.assertEqual(code, 550)

    def test_virtual_transport_lmtp(self):
        """virtual_transport = lmtp:unix:/path sends every hosted domain to Dovecot, without transport_maps."""
        if not self.dovecot:
            self.skipTest('dovecot is not installed (tools/deps.sh: dovecot-core, dovecot-lmtpd)')
        try:
            pb.set_config(virtual_mailbox_domains='hosted.test, lmtp.test, hosted2.test',
                          virtual_transport=f'lmtp:unix:{LMTP_SOCKET}')
            cursor = pb.journal_cursor()
            marker = 'vtransport-%d' % time.time_ns()
            qid = pb.send(SENDER, 'dan@hosted2.test', f'Subject: {marker}\n\nbody\n')
            [rec] = pb.wait_until(lambda: records(qid, cursor, DELIVERY_STATUS='sent'), what='the LMTP delivery')
            self.assertTrue(rec['RELAY'].endswith(f'[{LMTP_SOCKET}]'), rec['RELAY'])
            pb.wait_until(lambda: [m for m in pb.maildir_messages('dan') if marker in m],
                          what="the message in dan's Maildir")
            self.assertFalse(os.path.exists(f'{BASE}/hosted2.test'))
        finally:
            pb.set_config(virtual_mailbox_domains='hosted.test, lmtp.test', virtual_transport='virtual')


if __name__ == '__main__':
    unittest.main()
