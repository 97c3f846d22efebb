"""Local submission: sendmail (-t, -f, -bs, -q, -bi), mailq, the maildrop directory and pickup.

Messages go in as real users (runuser) through the installed sendmail, which is
set-group-ID postdrop; they come out in the users' mailboxes, and the journal and
the queue on D-Bus tell the rest."""
import json
import os
import pwd
import struct
import subprocess
import time
import unittest
import uuid

import postbus as pb

MAILDROP = '/var/spool/postbus/maildrop'
PATH_UNIT = 'postbus-pickup.path'
PICKUP_UNIT = 'postbus-pickup.service'

EX_USAGE, EX_DATAERR, EX_NOPERM = 64, 65, 77


def installed_program(name):
    """Where meson installed one of our programs (the machine may have
    Postfix's sendmail in /usr/sbin as well)."""
    out = pb.run('meson', 'introspect', '--installed', os.environ['POSTBUS_BUILDDIR'])
    for dst in json.loads(out).values():
        if dst.endswith('/sbin/sendmail'):
            return os.path.join(os.path.dirname(dst), name)
    raise AssertionError('sendmail is not among the installed files')


SENDMAIL = installed_program('sendmail')
MAILQ = installed_program('mailq')
NEWALIASES = installed_program('newaliases')


def sendmail(*args, input='', user=None, program=None):
    """Runs sendmail ARGS as user (root if None) with input on stdin."""
    cmd = [program or SENDMAIL] + [str(a) for a in args]
    if user:
        cmd = ['runuser', '-u', user, '--'] + cmd
    # bytes, so that CRLF line ends (sendmail -bs) stay as they are
    p = subprocess.run(cmd, input=input.encode(), capture_output=True, timeout=60)
    return subprocess.CompletedProcess(p.args, p.returncode, p.stdout.decode('utf-8', 'replace'),
                                       p.stderr.decode('utf-8', 'replace'))


def unique_subject(what):
    return f'{what} {uuid.uuid4().hex[:12]}'


def mails_with_subject(user, subject):
    return [m for m in pb.mbox_messages(user, parsed=True) if m['Subject'] == subject]


def wait_for_mail(user, subject, what=None, timeout=30):
    return pb.wait_until(lambda: mails_with_subject(user, subject), timeout=timeout,
                         what=what or f'"{subject}" in /var/mail/{user}')[0]


def maildrop_files():
    return sorted(n for n in os.listdir(MAILDROP) if not n.startswith('.'))


def record(rtype, data=b''):
    if isinstance(data, str):
        data = data.encode()
    return rtype.encode() + struct.pack('>I', len(data)) + data


def maildrop_bytes(sender, recipients, content, extra=()):
    """A maildrop file as sendmail writes it, with extra records before the sender."""
    recs = [record('P', 'postbus-maildrop-1'), record('T', str(int(time.time() * 1e6)))]
    recs += list(extra)
    recs.append(record('S', sender))
    recs += [record('R', r) for r in recipients]
    recs += [record('M'), record('C', content), record('E')]
    return b''.join(recs)


def postdrop_gid():
    return int(pb.run('getent', 'group', 'postdrop').split(':')[2])


def plant(name, data, owner='alice'):
    """Puts a file into the maildrop as sendmail would leave it (owner, postdrop, 0440)."""
    path = os.path.join(MAILDROP, name)
    with open(path, 'wb') as f:
        f.write(data)
    os.chown(path, pb.uid(owner) if isinstance(owner, str) else owner, postdrop_gid())
    os.chmod(path, 0o440)
    return path


class Sendmail(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for u in ('alice', 'bob', 'carol', 'dave'):
            pb.add_user(u)
        pb.run('usermod', '-c', 'Alice Liddell,,,', 'alice')

    def setUp(self):
        # Every test leaves pickup able to run.
        pb.systemctl('start', PATH_UNIT)

    def stop_pickup(self):
        pb.systemctl('stop', PATH_UNIT, PICKUP_UNIT)
        self.addCleanup(pb.systemctl, 'start', PATH_UNIT)

    def test_installed_setgid_postdrop(self):
        st = os.stat(SENDMAIL)
        self.assertTrue(st.st_mode & 0o2000, oct(st.st_mode))
        self.assertEqual(st.st_gid, postdrop_gid())
        self.assertEqual(os.path.realpath(MAILQ), os.path.realpath(SENDMAIL))
        self.assertEqual(os.path.realpath(NEWALIASES), os.path.realpath(SENDMAIL))
        st = os.stat(MAILDROP)
        self.assertEqual(st.st_mode & 0o7777, 0o1730, oct(st.st_mode))
        self.assertEqual(pwd.getpwuid(st.st_uid).pw_name, 'postbus-pickup')

    def test_t_to_cc_bcc(self):
        subject = unique_subject('extract')
        msg = (f'To: bob\nCc: Carol <carol@localhost>\nBcc: dave\nSubject: {subject}\n\n'
               'line one\n.\nstill the body with -i\n')
        cursor = pb.journal_cursor()
        p = sendmail('-t', '-i', input=msg, user='alice')
        self.assertEqual(p.returncode, 0, p.stderr)
        for user in ('bob', 'carol', 'dave'):
            m = wait_for_mail(user, subject)
            self.assertIsNone(m['Bcc'], f'{user} got the Bcc header')
            self.assertIn('still the body with -i', m.get_content())
            self.assertIn('Alice Liddell', m['From'])
            self.assertIn('alice', m['Return-Path'])
        # pickup's record: who submitted it, by uid
        recs = pb.journal(POSTBUS_ROLE='pickup', UID=str(pb.uid('alice')), since=cursor)
        self.assertTrue(any(r['MESSAGE'].endswith(f'uid={pb.uid("alice")} from=<alice>') for r in recs), recs)

    def test_t_without_recipient_headers(self):
        # Postfix's sendmail: EX_USAGE and a clear line, nothing queued, no bounce made.
        before = maildrop_files()
        for msg in ('Subject: nobody\n\nbody\n',
                    'To: undisclosed-recipients:;\nSubject: nobody\n\nbody\n',
                    # the recipients of a resending are those of its Resent- headers
                    'Resent-From: alice\nTo: bob\nSubject: resent\n\nbody\n'):
            p = sendmail('-t', input=msg, user='alice')
            self.assertEqual(p.returncode, 64, (msg, p.stderr))
            self.assertIn('No recipient addresses found in message header', p.stderr)
        self.assertEqual(maildrop_files(), before)
        # a recipient in a continued To: line counts, and so does one on the command line
        subject = unique_subject('folded')
        p = sendmail('-t', input=f'To: "Bob"\n <bob>\nSubject: {subject}\n\nbody\n', user='alice')
        self.assertEqual(p.returncode, 0, p.stderr)
        wait_for_mail('bob', subject)
        subject = unique_subject('cmdline')
        p = sendmail('-t', 'carol', input=f'Subject: {subject}\n\nbody\n', user='alice')
        self.assertEqual(p.returncode, 0, p.stderr)
        wait_for_mail('carol', subject)

    def test_dot_ends_message_without_i(self):
        subject = unique_subject('dot')
        p = sendmail('bob', input=f'Subject: {subject}\n\nbefore\n.\nafter\n', user='alice')
        self.assertEqual(p.returncode, 0, p.stderr)
        m = wait_for_mail('bob', subject)
        self.assertIn('before', m.get_content())
        self.assertNotIn('after', m.get_content())

    def test_f_sets_envelope_sender(self):
        subject = unique_subject('envelope')
        p = sendmail('-f', 'list-owner@example.org', '-F', 'The List', 'bob',
                     input=f'Subject: {subject}\n\nbody\n', user='alice')
        self.assertEqual(p.returncode, 0, p.stderr)
        m = wait_for_mail('bob', subject)
        self.assertEqual(m['Return-Path'], '<list-owner@example.org>')
        self.assertTrue(m.get_unixfrom().startswith('From list-owner@example.org '), m.get_unixfrom())
        self.assertIn('The List', m['From'])
        # the uid in Received is the file's owner, whatever -f says
        self.assertIn(f'from userid {pb.uid("alice")}', str(m['Received']))

    def test_bs_speaks_smtp(self):
        subject = unique_subject('bs')
        dialogue = ('EHLO client.example.org\r\n'
                    'MAIL FROM:<alice@example.org> BODY=8BITMIME\r\n'
                    'RCPT TO:<bob@localhost>\r\n'
                    'RCPT TO:<carol>\r\n'
                    'DATA\r\n'
                    f'Subject: {subject}\r\n\r\n..dot stuffed\r\nplain\r\n.\r\n'
                    'BOGUS\r\n'
                    'RCPT TO:<bob>\r\n'
                    'QUIT\r\n')
        p = sendmail('-bs', input=dialogue, user='alice')
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(p.stdout.endswith('\r\n') and '\n' not in p.stdout.replace('\r\n', ''), p.stdout)
        lines = p.stdout.split('\r\n')
        codes = [line[:4] for line in lines if line]
        self.assertTrue(lines[0].startswith('220 '), lines)
        self.assertIn('250-8BITMIME', lines)
        self.assertIn('250 ENHANCEDSTATUSCODES', lines)
        self.assertEqual([c for c in codes if c[3] == ' '],
                         ['220 ', '250 ', '250 ', '250 ', '250 ', '354 ', '250 ', '502 ', '503 ', '221 '], lines)
        qid = pb.queue_id_from_text(p.stdout)
        self.assertTrue(pb.queue_id_valid(qid))
        for user in ('bob', 'carol'):
            m = wait_for_mail(user, subject)
            self.assertEqual(m['Return-Path'], '<alice@example.org>')
            self.assertIn('.dot stuffed\nplain', m.get_content())
            self.assertNotIn('..dot', m.get_content())

    def test_submitted_while_stopped(self):
        subject = unique_subject('stopped')
        pb.systemctl('stop', 'postbus.target')
        try:
            pb.wait_until(lambda: not pb.unit_active('postbus-qmgr.service') and not pb.unit_active(PATH_UNIT),
                          what='postbus to stop')
            p = sendmail('bob', input=f'Subject: {subject}\n\nqueued while down\n', user='alice')
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertTrue(maildrop_files(), 'nothing in the maildrop')
            time.sleep(0.5)
            self.assertEqual(mails_with_subject('bob', subject), [])
        finally:
            pb.systemctl('start', 'postbus.target')
        wait_for_mail('bob', subject)
        pb.wait_until(lambda: not maildrop_files(), what='an empty maildrop')

    def test_users_cannot_touch_each_others_files(self):
        self.stop_pickup()
        before = set(maildrop_files())
        subject = unique_subject('private')
        p = sendmail('-v', 'carol', input=f'Subject: {subject}\n\nfor carol only\n', user='alice')
        self.assertEqual(p.returncode, 0, p.stderr)
        new = set(maildrop_files()) - before
        self.assertEqual(len(new), 1, new)
        name = new.pop()
        self.assertIn(name, p.stderr)        # -v says where it went
        path = os.path.join(MAILDROP, name)
        st = os.stat(path)
        self.assertEqual(st.st_uid, pb.uid('alice'))
        self.assertEqual(st.st_mode & 0o7777, 0o440, oct(st.st_mode))

        # bob can neither list the directory, nor read, nor remove alice's file
        self.assertNotEqual(pb.run_process('ls', MAILDROP, user='bob', check=False).returncode, 0)
        r = pb.run_process('cat', path, user='bob', check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertNotIn('for carol only', r.stdout)
        self.assertNotEqual(pb.run_process('rm', '-f', path, user='bob', check=False).returncode, 0)
        self.assertNotEqual(pb.run_process('mv', path, '/tmp/stolen', user='bob', check=False).returncode, 0)
        # not even with the postdrop group that sendmail runs with: no listing, and the sticky bit
        for cmd in (['ls', MAILDROP], ['rm', '-f', path], ['mv', path, path + 'x']):
            r = subprocess.run(['runuser', '-u', 'bob', '-g', 'postdrop', '--'] + cmd, capture_output=True)
            self.assertNotEqual(r.returncode, 0, cmd)
        # nor through sendmail itself
        p = sendmail('-C', '/tmp', 'carol', input='x\n', user='bob')
        self.assertEqual(p.returncode, EX_USAGE, p.stderr)
        self.assertTrue(os.path.exists(path))

        pb.systemctl('start', PATH_UNIT)
        wait_for_mail('carol', subject)
        pb.wait_until(lambda: not os.path.exists(path), what='pickup to remove the file')

    def test_hostile_files_are_discarded(self):
        self.stop_pickup()
        cursor = pb.journal_cursor()
        good = unique_subject('good')
        p = sendmail('bob', input=f'Subject: {good}\n\nfine\n', user='alice')
        self.assertEqual(p.returncode, 0, p.stderr)

        base = f'{int(time.time()):08X}00000000'
        names = {}
        def name(tag):
            names[tag] = f'{base}{len(names):016X}'
            return names[tag]
        content = 'Subject: hostile\n\nnot to be delivered\n'
        plant(name('bad-type'), maildrop_bytes('alice', ['bob'], content, [record('X', 'junk')]))
        plant(name('bad-attr'), maildrop_bytes('alice', ['bob'], content, [record('A', 'uid=0')]))
        plant(name('truncated'), maildrop_bytes('alice', ['bob'], content)[:-9])
        huge = plant(name('huge'), b'')
        os.truncate(huge, 64 * 1024 * 1024)           # sparse: far beyond message_size_limit
        plant(name('no-user'), maildrop_bytes('alice', ['bob'], content), owner=54321)
        os.symlink('/etc/shadow', os.path.join(MAILDROP, name('symlink')))
        plant('junk-name', maildrop_bytes('alice', ['bob'], content))
        unreadable = plant(name('unreadable'), maildrop_bytes('alice', ['bob'], content))
        os.chown(unreadable, pb.uid('alice'), pwd.getpwnam('alice').pw_gid)    # not group postdrop
        os.chmod(unreadable, 0o400)
        # what a sendmail killed while writing leaves behind; old enough to be given up
        stale = os.path.join(MAILDROP, f'.{base}{len(names):016X}.tmp')
        names['stale'] = os.path.basename(stale)
        plant(names['stale'], maildrop_bytes('alice', ['bob'], content)[:40])
        os.utime(stale, (time.time() - 3 * 86400, time.time() - 3 * 86400))
        # and a fresh one, which sendmail may still be writing: left alone
        fresh = os.path.join(MAILDROP, f'.{base}{len(names) + 1:016X}.tmp')
        plant(os.path.basename(fresh), b'P')

        pb.systemctl('start', PATH_UNIT)
        wait_for_mail('bob', good)
        pb.wait_until(lambda: not maildrop_files(), what='pickup to clear the maildrop')
        for tag, n in list(names.items()) + [('junk-name', 'junk-name')]:
            recs = pb.wait_until(lambda: pb.journal(POSTBUS_ROLE='pickup', MAILDROP_FILE=n, since=cursor),
                                 what=f'a journal record of the {tag} file')
            self.assertTrue(recs[-1]['MESSAGE'].endswith('removed'), recs[-1]['MESSAGE'])
            self.assertEqual(int(recs[-1]['PRIORITY']), 4)
            self.assertEqual(recs[-1]['MESSAGE_ID'], 'a33b42e5d0dd41009d44c22616f5fcf0')
        # journalctl -x explains it
        out = pb.journal_explained(MESSAGE_ID='a33b42e5d0dd41009d44c22616f5fcf0', since=cursor)
        self.assertIn('was not mail and was removed', out)
        self.assertEqual([m for m in pb.mbox_messages('bob', parsed=True) if m['Subject'] == 'hostile'], [])
        self.assertFalse(os.path.exists(stale))
        self.assertTrue(os.path.exists(fresh))
        os.unlink(fresh)
        self.assertTrue(pb.unit_property(PATH_UNIT, 'ActiveState') == 'active')

    def test_cleanup_unavailable_for_a_while(self):
        # pickup keeps the file and tries again (with back-off) until cleanup is back
        cursor = pb.journal_cursor()
        pb.systemctl('stop', 'postbus-cleanup.socket', 'postbus-cleanup.service')
        try:
            subject = unique_subject('retry')
            p = sendmail('bob', input=f'Subject: {subject}\n\nlater\n', user='alice')
            self.assertEqual(p.returncode, 0, p.stderr)
            pb.wait_until(lambda: any('Cannot reach cleanup' in (r.get('MESSAGE') or '') or
                                      'connection to cleanup failed' in (r.get('MESSAGE') or '')
                                      for r in pb.journal(POSTBUS_ROLE='pickup', since=cursor)),
                          what='pickup to find cleanup unreachable')
            self.assertTrue(maildrop_files())
        finally:
            pb.systemctl('start', 'postbus-cleanup.socket')
        # pickup's back-off is at most 60 s
        wait_for_mail('bob', subject, what='the message after cleanup came back', timeout=150)
        pb.wait_until(lambda: not maildrop_files(), what='an empty maildrop')

    def test_mailq_and_flush(self):
        subject = unique_subject('held')
        cursor = pb.journal_cursor()
        p = sendmail('nobody@remote.example', input=f'Subject: {subject}\n\nwaits\n', user='alice')
        self.assertEqual(p.returncode, 0, p.stderr)

        def listed():
            out = sendmail(program=MAILQ, user='bob').stdout
            return 'nobody@remote.example' in out and out
        out = pb.wait_until(listed, what='the deferred message in mailq')
        # Postfix's postqueue -p header for long queue IDs, as postbus's are
        self.assertTrue(out.startswith('------Queue ID------- --Size-- ----Arrival Time---- '), out)
        self.assertRegex(out, r'-- \d+ Kbytes in \d+ Requests?\.')
        qid = next(line.split()[0].rstrip('*!') for line in out.splitlines()
                   if line[:1].isalnum() and 'alice' in line)
        pb.wait_until(lambda: pb.busctl_call('ListMessages', 's', 'deferred') and
                      any(m[0] == qid for m in pb.busctl_call('ListMessages', 's', 'deferred')[0]),
                      what=f'{qid} in the deferred queue')
        attempts = len([r for r in pb.journal(QUEUE_ID=qid, POSTBUS_ROLE='qmgr', since=cursor)
                        if 'queue active' in r['MESSAGE']])

        p = sendmail('-q', user='bob')
        self.assertEqual(p.returncode, EX_NOPERM, p.stderr)
        r = pb.busctl_call('FlushQueue', user='bob', check=False)
        self.assertNotEqual(r.returncode, 0)
        p = sendmail('-q')
        self.assertEqual(p.returncode, 0, p.stderr)
        pb.wait_until(lambda: len([r for r in pb.journal(QUEUE_ID=qid, POSTBUS_ROLE='qmgr', since=cursor)
                                   if 'queue active' in r['MESSAGE']]) > attempts,
                      what=f'another delivery attempt of {qid} after sendmail -q')
        self.assertEqual(sendmail('-bp', 'x').returncode, EX_USAGE)

    def test_newaliases(self):
        with open('/etc/aliases', 'a') as f:
            f.write('sendmail-test-alias: bob\n')
        p = sendmail(program=NEWALIASES, user='alice')
        self.assertEqual(p.returncode, EX_NOPERM, p.stderr)
        p = sendmail(program=NEWALIASES)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(os.path.exists('/etc/aliases.gdbm'))
        out = pb.run('postbusctl', 'map', 'query', 'hash:/etc/aliases', 'sendmail-test-alias', check=False) \
            if pb.have('postbusctl') else 'bob'
        self.assertIn('bob', out)

    def test_newaliases_builds_alias_database(self):
        # As Postfix: newaliases builds alias_database, not alias_maps (which may list tables it cannot build).
        other = '/etc/postbus/other_aliases'
        with open(other, 'w') as f:
            f.write('other-alias: bob\n')
        self.addCleanup(pb.write_config, {'alias_database': 'hash:/etc/aliases'})
        pb.write_config({'alias_database': f'hash:{other}'})
        before = os.stat('/etc/aliases.gdbm').st_mtime_ns if os.path.exists('/etc/aliases.gdbm') else None
        p = sendmail(program=NEWALIASES)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(os.path.exists(other + '.gdbm'))
        after = os.stat('/etc/aliases.gdbm').st_mtime_ns if os.path.exists('/etc/aliases.gdbm') else None
        self.assertEqual(before, after)

    def test_limits_and_bad_usage(self):
        p = sendmail(input='x\n', user='alice')
        self.assertEqual(p.returncode, EX_USAGE)
        self.assertIn('Recipient addresses must be given', p.stderr)
        for args in (['-Z', 'bob'], ['-N', 'sometimes', 'bob'], ['-R', 'body', 'bob'], ['-bv', 'bob'],
                     ['-t', '-f'], ['-bd'], ['bob@'], ['-V', 'a=b', 'bob']):
            p = sendmail(*args, input='x\n', user='alice')
            self.assertEqual(p.returncode, EX_USAGE, (args, p.stderr))
            self.assertIn('usage:', p.stderr)

        # message_size_limit, from a configuration only root may choose
        os.makedirs('/tmp/small', exist_ok=True)
        with open('/tmp/small/main.cf', 'w') as f:
            f.write('message_size_limit = 1024\n')
        before = set(maildrop_files())
        p = sendmail('-C', '/tmp/small', 'bob', input='Subject: big\n\n' + 'x' * 2000 + '\n')
        self.assertEqual(p.returncode, EX_DATAERR, p.stderr)
        self.assertIn('message_size_limit', p.stderr)
        self.assertEqual(set(maildrop_files()) - before, set())
        p = sendmail('-C', '/tmp/small', 'bob', input='Subject: small\n\nfits\n')
        self.assertEqual(p.returncode, 0, p.stderr)


if __name__ == '__main__':
    unittest.main()
