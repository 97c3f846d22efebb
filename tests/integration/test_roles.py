"""Trust boundaries between the roles: each role runs as a user of its own (qmgr as postbus, the queue's
owner; local and pipe as root), each peer-to-peer socket admits only the roles that call it, first by the
socket file's owner, group and mode, then by the caller's uid at accept (SO_PEERCRED), which holds even when
the file's mode is opened up and journals each refusal with the caller's uid and pid. local's |commands send
mail with sendmail under NoNewPrivileges= (the postdrop group comes from local). Every unit's exposure score
from systemd-analyze security stays within the limits of the project."""
import grp
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import time
import unittest
import uuid

import postbus as pb

RUNDIR = '/run/postbus'
# postbus's own sendmail, wherever this build installed it (the machine may have Postfix's too)
SENDMAIL = shutil.which('sendmail', path='/usr/local/sbin:/usr/sbin:/usr/local/bin:/usr/bin') or '/usr/sbin/sendmail'

# The unit's user of each role.
ROLE_USERS = {
    'smtpd': 'postbus-smtpd',
    'cleanup': 'postbus-cleanup',
    'rewrite': 'postbus-rewrite',
    'qmgr': 'postbus',
    'pickup': 'postbus-pickup',
    'smtp': 'postbus-smtp',
    'bounce': 'postbus-bounce',
    'local': 'root',
    'pipe': 'root',
}
# Who calls each socket (besides root), and the user its server runs as (which may talk to itself).
CALLERS = {
    'cleanup': {'postbus-smtpd', 'postbus-pickup', 'postbus-bounce'},
    'rewrite': {'postbus-cleanup', 'postbus', 'postbus-smtpd'},
    'qmgr': {'postbus-cleanup', 'postbus-pickup'},
    'bounce': {'postbus', 'postbus-pickup'},
    'local': {'postbus'},
    'pipe': {'postbus'},
    'smtp': {'postbus'},
    'lmtp': {'postbus'},
}
SERVER_USER = {'cleanup': 'postbus-cleanup', 'rewrite': 'postbus-rewrite', 'qmgr': 'postbus',
               'bounce': 'postbus-bounce', 'local': 'root', 'pipe': 'root', 'smtp': 'postbus-smtp',
               'lmtp': 'postbus-smtp'}
SERVICE = {'lmtp': 'smtp'}
# Every role user, and a user of the system that is none.
PEERS = sorted({u for u in ROLE_USERS.values() if u != 'root'} | {'nobody'})

# Tries each socket named in argv[2:] as the user argv[1] (with that user's groups, or with the groups named
# in the environment), and prints its pid and a result per socket: ok (a D-Bus Ping was answered), eacces
# (connect() refused by the socket file's permissions) or refused (the server closed the connection).
CLIENT = r'''
import json, os, pwd, socket, sys
import dbus
pw = pwd.getpwnam(sys.argv[1])
groups = os.environ.get('PEER_GROUPS')
if groups:
    os.setgroups([int(g) for g in groups.split(',')])
else:
    os.initgroups(pw.pw_name, pw.pw_gid)
os.setgid(pw.pw_gid)
os.setuid(pw.pw_uid)
results = {}
for name in sys.argv[2:]:
    path = '/run/postbus/' + name
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    try:
        s.connect(path)
    except PermissionError:
        results[name] = 'eacces'
        continue
    # The server refuses by closing at once, before the first byte of the handshake.
    try:
        s.sendall(b'\0AUTH EXTERNAL ' + str(os.getuid()).encode().hex().encode() + b'\r\n')
        answer = s.recv(256)
    except (ConnectionResetError, BrokenPipeError):
        answer = b''
    except socket.timeout:
        results[name] = 'timeout'
        continue
    s.close()
    if not answer:
        results[name] = 'refused'
        continue
    try:
        conn = dbus.connection.Connection('unix:path=' + path)
        conn.call_blocking(None, '/', 'org.freedesktop.DBus.Peer', 'Ping', '', (), timeout=20)
        conn.close()
        results[name] = 'ok'
    except dbus.exceptions.DBusException as e:
        results[name] = 'dbus-error: ' + str(e)
print(json.dumps({'pid': os.getpid(), 'results': results}))
'''


def try_sockets(user, sockets, groups=None):
    env = dict(os.environ)
    env.pop('PEER_GROUPS', None)
    if groups is not None:
        env['PEER_GROUPS'] = ','.join(str(g) for g in groups)
    p = subprocess.run([sys.executable, '-c', CLIENT, user] + list(sockets), capture_output=True, text=True,
                       env=env, timeout=300, cwd='/')
    if p.returncode != 0:
        raise AssertionError(f'client as {user} failed: {p.stderr}')
    out = json.loads(p.stdout)
    return out['pid'], out['results']


def socket_owner(name):
    st = os.stat(os.path.join(RUNDIR, name))
    return pwd.getpwuid(st.st_uid).pw_name


class Roles(unittest.TestCase):
    def test_units_run_as_their_users(self):
        for role, user in ROLE_USERS.items():
            self.assertEqual(pb.unit_property(f'postbus-{role}.service', 'User'), user, role)
        self.assertEqual(pb.unit_property('postbus-cleanup.service', 'Group'), 'postbus')
        self.assertIn('postdrop', pb.unit_property('postbus-pickup.service', 'SupplementaryGroups').split())
        self.assertEqual(pb.unit_property('postbus-local.service', 'NoNewPrivileges'), 'yes')
        caps = pb.unit_property('postbus-local.service', 'CapabilityBoundingSet').split()
        self.assertEqual(sorted(caps), ['cap_chown', 'cap_kill', 'cap_setgid', 'cap_setuid'])
        # the running processes, not only the units
        for unit, user in (('postbus-qmgr.service', 'postbus'),):
            pid = int(pb.unit_property(unit, 'MainPID'))
            self.assertEqual(os.stat(f'/proc/{pid}').st_uid, pwd.getpwnam(user).pw_uid)

    def test_queue_layout(self):
        def owner(path):
            st = os.stat(os.path.join(pb.SPOOL, path))
            return (pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name, st.st_mode & 0o7777)
        self.assertEqual(owner('incoming'), ('postbus', 'postbus', 0o770))
        for q in ('active', 'deferred', 'hold', 'corrupt', 'state'):
            self.assertEqual(owner(q), ('postbus', 'postbus', 0o700), q)
        for q in ('bounce', 'defer', 'trace'):
            self.assertEqual(owner(q), ('postbus', 'postbus-bounce', 0o770), q)
        self.assertEqual(owner('maildrop'), ('postbus-pickup', 'postdrop', 0o1730))
        pb.add_user('alice')
        # a message written by cleanup is its file, readable and writable by qmgr's group alone
        with pb.LocalHeld():
            qid = pb.send('sender@example.org', ['alice@localhost'], 'Subject: layout\n\nx\n')
            path = os.path.join(pb.SPOOL, 'deferred', qid)
            pb.wait_until(lambda: os.path.exists(path), what='the message deferred')
            st = os.stat(path)
            # qmgr set its retry time (CAP_FOWNER), which is in the future
            self.assertGreater(st.st_mtime, time.time())
            self.assertEqual(pwd.getpwuid(st.st_uid).pw_name, 'postbus-cleanup')
            self.assertEqual(grp.getgrgid(st.st_gid).gr_name, 'postbus')
            self.assertEqual(st.st_mode & 0o777, 0o660)
            # cleanup cannot reach it there; qmgr can
            for user, ok in (('postbus-cleanup', False), ('postbus', True), ('postbus-smtpd', False)):
                p = pb.run_process('runuser', '-u', user, '--', 'test', '-r', path, check=False)
                self.assertEqual(p.returncode == 0, ok, user)

    def test_socket_files(self):
        for name, callers in CALLERS.items():
            st = os.stat(os.path.join(RUNDIR, name))
            if name in ('local', 'pipe', 'smtp'):
                self.assertEqual((socket_owner(name), st.st_mode & 0o777), ('postbus', 0o600), name)
            elif name == 'lmtp':
                # local's too, through a group of no members that its unit adds (mailbox_transport)
                self.assertEqual((socket_owner(name), st.st_mode & 0o777), ('postbus', 0o660), name)
                self.assertEqual(grp.getgrgid(st.st_gid).gr_name, 'postbus-to-lmtp')
                self.assertEqual(grp.getgrgid(st.st_gid).gr_mem, [])
                self.assertEqual(pb.unit_property('postbus-local.service', 'SupplementaryGroups'), 'postbus-to-lmtp')
            else:
                self.assertEqual(socket_owner(name), SERVER_USER[name], name)
                self.assertEqual(st.st_mode & 0o777, 0o660, name)
                members = set(grp.getgrgid(st.st_gid).gr_mem)
                self.assertEqual(grp.getgrgid(st.st_gid).gr_name, f'postbus-to-{name}')
                self.assertEqual(members, callers, name)

    def test_peers_as_installed(self):
        """Each caller gets an answer; every other user is stopped by the socket file."""
        for user in PEERS:
            _, results = try_sockets(user, CALLERS)
            for name, callers in CALLERS.items():
                allowed = user in callers or user == socket_owner(name)
                self.assertEqual(results[name], 'ok' if allowed else 'eacces', f'{user} on {name}')

    def test_peers_refused_at_accept(self):
        """With the socket files opened to all, the check at accept alone stops the wrong users, with a
        journal record of their uid and pid."""
        modes = {}
        for name in CALLERS:
            path = os.path.join(RUNDIR, name)
            modes[path] = os.stat(path).st_mode & 0o777
            os.chmod(path, 0o666)
        try:
            cursor = pb.journal_cursor()
            refused = []
            for user in PEERS:
                pid, results = try_sockets(user, CALLERS)
                for name, callers in CALLERS.items():
                    allowed = user in callers or user == SERVER_USER[name]
                    self.assertEqual(results[name], 'ok' if allowed else 'refused', f'{user} on {name}')
                    if not allowed:
                        refused.append((user, pid, name))
            self.assertTrue(refused)
            for user, pid, name in refused:
                unit = f'postbus-{SERVICE.get(name, name)}.service'
                recs = pb.wait_until(lambda: pb.journal(since=cursor, PEER_PID=str(pid), _SYSTEMD_UNIT=unit),
                                     what=f'the refusal of {user} by {unit}')
                self.assertTrue(all(r['PEER_UID'] == str(pb.uid(user)) for r in recs), recs)
                self.assertTrue(any(re.search(rf'Refused a connection.* from uid {pb.uid(user)} \({user}\) '
                                              rf'\(pid {pid}\)', r['MESSAGE']) for r in recs), recs)
        finally:
            for path, mode in modes.items():
                os.chmod(path, mode)

    def test_socket_group_alone_is_not_enough(self):
        """A user who gets into a socket's group (an administrator's mistake) is still refused at accept."""
        cursor = pb.journal_cursor()
        for name in ('cleanup', 'rewrite', 'qmgr', 'bounce'):
            gid = grp.getgrnam(f'postbus-to-{name}').gr_gid
            for user in ('nobody', 'postbus-rewrite' if name != 'rewrite' else 'postbus-bounce'):
                pid, results = try_sockets(user, [name], groups=[gid])
                self.assertEqual(results[name], 'refused', f'{user} on {name}')
                pb.wait_until(lambda: pb.journal(since=cursor, PEER_PID=str(pid), SOCKET=name),
                              what=f'the refusal of {user} on {name}')

    def test_forward_command_sends_mail_without_setgid(self):
        """A .forward |command runs without new privileges, with the postdrop group from local, and its
        sendmail submits mail through the maildrop as the user."""
        pb.add_user('rose')
        pb.add_user('tom')
        pb.set_config(allow_mail_to_commands='alias, forward')
        rose = pwd.getpwnam('rose')
        script = os.path.join(rose.pw_dir, 'fwd.sh')
        with open(script, 'w', encoding='utf-8') as f:
            f.write('#!/bin/sh\n'
                    'grep NoNewPrivs /proc/self/status > "$HOME/nnp"\n'
                    'id -Gn > "$HOME/groups"\n'
                    f'exec {SENDMAIL} -i tom\n')
        os.chmod(script, 0o755)
        os.chown(script, rose.pw_uid, rose.pw_gid)
        forward = os.path.join(rose.pw_dir, '.forward')
        with open(forward, 'w', encoding='utf-8') as f:
            f.write(f'"|{script}"\n')
        os.chown(forward, rose.pw_uid, rose.pw_gid)
        os.chmod(forward, 0o644)
        marker = uuid.uuid4().hex
        cursor = pb.journal_cursor()
        pb.send('sender@example.org', ['rose@localhost'], f'Subject: resend\n\n{marker}\n')
        pb.wait_until(lambda: any(marker in m for m in pb.mbox_messages('tom')), what="rose's command's mail for tom")
        with open(os.path.join(rose.pw_dir, 'nnp'), encoding='utf-8') as f:
            self.assertEqual(f.read().split(), ['NoNewPrivs:', '1'])
        with open(os.path.join(rose.pw_dir, 'groups'), encoding='utf-8') as f:
            self.assertIn('postdrop', f.read().split())
        # pickup took it as rose's, from her maildrop file
        recs = pb.wait_until(lambda: [r for r in pb.journal(since=cursor, _SYSTEMD_UNIT='postbus-pickup.service')
                                      if f'uid={rose.pw_uid} ' in r['MESSAGE']],
                             what="pickup's record of rose's file")
        self.assertTrue(recs)

    def test_zz_default_privs_is_no_role(self):
        """Commands never run as a role's user, which the roles' sockets would admit: local refuses such a
        default_privs at start, as Postfix refuses mail_owner. Last (by name): it changes main.cf."""
        cursor = pb.journal_cursor()
        pb.set_config(default_privs='postbus-cleanup')
        try:
            pb.systemctl('start', 'postbus-local.service', check=False)
            pb.wait_until(lambda: any('default_privs: "postbus-cleanup": must not be a mail system user'
                                      in (r.get('MESSAGE') or '')
                                      for r in pb.journal(_SYSTEMD_UNIT='postbus-local.service', since=cursor)),
                          what="local's refusal of default_privs")
        finally:
            pb.set_config(default_privs='nobody')
            pb.systemctl('reset-failed', 'postbus-local.service', 'postbus-local.socket', check=False)
            pb.systemctl('start', 'postbus-local.socket')

    def test_security_scores(self):
        limits = {role: 2.5 if role in ('local', 'pipe') else 1.5 for role in ROLE_USERS}
        # virtual runs as root (it takes each mailbox's uid) but has no network at all: 1.7 as installed
        limits['virtual'] = 2.0
        scores = {}
        for role, limit in limits.items():
            unit = f'postbus-{role}.service'
            out = pb.run('systemd-analyze', 'security', '--no-pager', unit)
            m = re.search(r'Overall exposure level for \S+: ([0-9.]+)', out)
            self.assertIsNotNone(m, out)
            scores[role] = float(m.group(1))
        print('systemd-analyze security: ' + ', '.join(f'{r} {s}' for r, s in scores.items()), file=sys.stderr)
        for role, score in scores.items():
            self.assertLessEqual(score, limits[role], f'postbus-{role}.service scores {score}')


if __name__ == '__main__':
    unittest.main()
