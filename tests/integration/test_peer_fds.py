"""Descriptors from peers are distrusted: a hostile client (root, whom the sockets admit) passes cleanup,
the delivery agents (local, smtp, pipe) and bounce descriptors they must not use: an unsealed memory file,
one it can still truncate, a file open for writing, a directory. Each is refused with
org.postbus.Error.UntrustedDescriptor and a journal record; the client then truncates what it sent, and
the role is still the same process, not restarted, and still serves a proper call."""
import fcntl
import os
import shutil
import tempfile
import unittest

import dbus

import postbus as pb

REFUSED_ID = 'e853f8191cb9427e980666a6134a5a56'
ERROR = 'org.postbus.Error.UntrustedDescriptor'
SENDER = 'hostile@example.test'
MESSAGE = b'From: a@example.test\nTo: b@example.test\nSubject: hostile\n\n' + b'body line\n' * 2000
SEALS = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE


def memfd(seals):
    """A memory file holding MESSAGE, sealed with seals (None: made without sealing at all)."""
    fd = os.memfd_create('hostile', 0 if seals is None else os.MFD_ALLOW_SEALING)
    os.write(fd, MESSAGE)
    if seals:
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
    return fd


class Bad:
    """The hostile descriptors, by name: each a function returning a new fd."""

    def __init__(self, tmp, queue_copy):
        self.tmp = tmp
        self.queue_copy = queue_copy

    def all(self, sealed_ok):
        kinds = {
            'unsealed memfd': lambda: memfd(None),
            'truncatable memfd': lambda: memfd(fcntl.F_SEAL_WRITE | fcntl.F_SEAL_GROW),
            'writable file': lambda: os.open(self.queue_copy, os.O_RDWR),
            'directory': lambda: os.open(self.tmp, os.O_RDONLY | os.O_DIRECTORY),
        }
        if sealed_ok:
            # content must be sealed: a read-only file (which anyone with write access may truncate) is not
            kinds['read-only regular file'] = lambda: os.open(self.queue_copy, os.O_RDONLY)
        else:
            # a queue file must be opened read-only: even a fully sealed memory file is read-write
            kinds['sealed memfd'] = lambda: memfd(SEALS)
        return kinds


def truncate(fd):
    """What the hostile peer does after the call: cut the file short (refused where sealed)."""
    try:
        os.ftruncate(fd, 0)
    except OSError:
        pass


class PeerFds(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        pb.add_user('hank')
        cls.tmp = tempfile.mkdtemp(prefix='hostile-')
        # A real message's queue file, copied: the hostile descriptors of a queue file point at the copy.
        pb.systemctl('stop', 'postbus-qmgr.socket', 'postbus-qmgr.service')
        try:
            cls.qid = pb.send(SENDER, ['hank@localhost'], 'Subject: template\n\nqueue file\n')
            cls.queue_copy = os.path.join(cls.tmp, cls.qid)
            shutil.copyfile(os.path.join(pb.SPOOL, 'incoming', cls.qid), cls.queue_copy)
        finally:
            pb.systemctl('start', 'postbus-qmgr.socket', 'postbus-qmgr.service')
        pb.wait_until(lambda: any('queue file' in m for m in pb.mbox_messages('hank')), what='the template delivered')
        cls.bad = Bad(cls.tmp, cls.queue_copy)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def role_state(self, unit):
        return (pb.unit_property(unit, 'MainPID'), pb.unit_property(unit, 'NRestarts'))

    def attack(self, role, sealed_ok, call):
        """Passes every hostile descriptor to role with call(conn, fd); checks refusals, records, survival."""
        unit = f'postbus-{role}.service'
        cursor = pb.journal_cursor()
        conn = pb.p2p_connect(f'unix:path=/run/postbus/{role}')
        before = self.role_state(unit)
        self.assertNotEqual(before[0], '0', f'{unit} is not running')
        kinds = self.bad.all(sealed_ok)
        for what, make in kinds.items():
            fd = make()
            try:
                with self.subTest(role=role, descriptor=what):
                    with self.assertRaises(dbus.exceptions.DBusException) as e:
                        call(conn, fd)
                    self.assertEqual(e.exception.get_dbus_name(), ERROR, str(e.exception))
            finally:
                truncate(fd)
                os.close(fd)
        conn.close()
        self.assertTrue(pb.unit_active(unit), f'{unit} is no longer active')
        self.assertEqual(self.role_state(unit), before, f'{unit} was restarted')
        self.assertEqual(pb.unit_property(unit, 'Result'), 'success')
        recs = pb.journal(MESSAGE_ID=REFUSED_ID, POSTBUS_ROLE=role, since=cursor)
        self.assertEqual(len(recs), len(kinds), [r['MESSAGE'] for r in recs])
        messages = [(r.get('PEER_UID'), r['PRIORITY'], r['MESSAGE']) for r in recs]
        self.assertTrue(all(uid == '0' and prio == '4' and 'by uid 0 ' in m for uid, prio, m in messages), messages)
        self.assertTrue(any('not sealed' in m or 'not opened read-only' in m for _, _, m in messages), messages)
        self.assertTrue(any('directory' in m for _, _, m in messages), messages)
        explained = pb.journal_explained(MESSAGE_ID=REFUSED_ID, POSTBUS_ROLE=role, since=cursor)
        self.assertIn('passed with a call', explained)
        return before

    def test_cleanup(self):
        def submit(conn, fd):
            obj = conn.get_object(None, '/org/postbus/Cleanup1', introspect=False)
            return str(obj.Submit(dbus.types.UnixFd(fd), SENDER, dbus.Array([('hank@localhost', '', '')],
                                                                              signature='(sss)'),
                                  dbus.Dictionary({}, signature='ss'), signature='hsa(sss)a{ss}',
                                  dbus_interface='org.postbus.Cleanup1', timeout=30))

        before = self.attack('cleanup', True, submit)
        # The same process still takes a proper message, and it is delivered.
        conn = pb.p2p_connect('unix:path=/run/postbus/cleanup')
        fd = memfd(SEALS)
        try:
            qid = submit(conn, fd)
        finally:
            os.close(fd)
            conn.close()
        self.assertTrue(pb.queue_id_valid(qid), qid)
        self.assertEqual(self.role_state('postbus-cleanup.service'), before)
        pb.wait_until(lambda: any('Subject: hostile' in m for m in pb.mbox_messages('hank')),
                      what='the proper submission delivered')

    def deliver_call(self, transport, nexthop):
        def deliver(conn, fd):
            obj = conn.get_object(None, '/org/postbus/Delivery1', introspect=False)
            return obj.Deliver(dbus.types.UnixFd(fd), self.qid, SENDER, transport, nexthop,
                               dbus.Dictionary({}, signature='ss'),
                               dbus.Array([(dbus.UInt32(0), 'hank@localhost')], signature='(us)'),
                               signature='hssssa{ss}a(us)', dbus_interface='org.postbus.Delivery1', timeout=30)
        return deliver

    def test_local(self):
        self.attack('local', False, self.deliver_call('local', 'localhost'))

    def test_smtp(self):
        self.attack('smtp', False, self.deliver_call('smtp', 'example.test'))

    def test_pipe(self):
        self.attack('pipe', False, self.deliver_call('pipe', 'localhost'))

    def test_bounce(self):
        def finish(conn, fd):
            obj = conn.get_object(None, '/org/postbus/Bounce1', introspect=False)
            return obj.Finish(dbus.types.UnixFd(fd), self.qid, signature='hs', dbus_interface='org.postbus.Bounce1',
                              timeout=30)

        self.attack('bounce', False, finish)


if __name__ == '__main__':
    unittest.main()
