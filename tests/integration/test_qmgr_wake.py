"""qmgr's wake-up with the queue file's bytes (WakeInline, queue-bus.h): cleanup sends the file it just wrote
with the wake-up, and qmgr takes the message from those bytes instead of reading the file again. Only
cleanup's bytes (or root's) are taken: pickup may call the same socket, and a pickup that lied about what a
file in incoming/ holds must not change where its mail goes.

Each case places a real queue file for alice in incoming/ by hand (qmgr scans incoming/ only every
queue_run_delay, so it waits there) and calls WakeInline with bytes that say "bobby" where the file says
"alice": as root they are taken (bobby gets it, which shows the bytes are what qmgr used); as the pickup
user they are not (qmgr reads the file, alice gets it)."""
import os
import secrets
import unittest

import postbus as pb

CALL = """
import sys, dbus
conn = dbus.connection.Connection('unix:path=/run/postbus/qmgr')
data = open(sys.argv[2], 'rb').read()
conn.call_blocking(None, '/org/postbus/QueueManager1', 'org.postbus.QueueManager1', 'WakeInline', 'say',
                   (sys.argv[1], dbus.ByteArray(data)), timeout=10)
"""


class QmgrWake(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        pb.add_user('alice')
        pb.add_user('bobby')
        pb.set_config(queue_run_delay='3600s')
        # a real queue file for alice: kept deferred while local is away, copied, then the original deleted
        with pb.LocalHeld():
            qid = pb.send('sender@example.org', 'alice@localhost', 'Subject: wake\n\nfor alice\n')
            path = os.path.join(pb.SPOOL, 'deferred', qid)
            pb.wait_until(lambda: os.path.exists(path), what=f'{qid} deferred')
            with open(path, 'rb') as f:
                cls.file = f.read()
            st = os.stat(path)
            cls.owner = (st.st_uid, st.st_gid, st.st_mode & 0o7777)
            pb.run('postsuper', '-d', qid)
        assert b'alice@' in cls.file
        cls.forged = cls.file.replace(b'alice', b'bobby')      # same length: the records stay whole

    def place(self):
        """The file for alice in incoming/ under a new queue ID, as cleanup leaves it."""
        qid = secrets.token_hex(10).upper()
        path = os.path.join(pb.SPOOL, 'incoming', qid)
        with open(path, 'wb') as f:
            f.write(self.file)
        os.chown(path, self.owner[0], self.owner[1])
        os.chmod(path, self.owner[2])
        return qid

    def wake(self, qid, user=None):
        forged = '/run/forged-queue-file'
        with open(forged, 'wb') as f:
            f.write(self.forged)
        os.chmod(forged, 0o644)
        cmd = ['python3', '-c', CALL, qid, forged]
        pb.run(*(['runuser', '-u', user, '--'] + cmd if user else cmd))

    def delivered(self, user, qid, cursor):
        pb.wait_until(lambda: any(m == f'{qid}: removed' for m in pb.journal_messages(QUEUE_ID=qid, since=cursor)),
                      what=f'{qid} delivered and removed')
        recs = [r for r in pb.journal(QUEUE_ID=qid, since=cursor) if r.get('DELIVERY_STATUS')]
        self.assertTrue(recs, f'{qid}: no delivery record')
        self.assertEqual(recs[-1]['DELIVERY_STATUS'], 'sent', recs)
        self.assertRegex(recs[-1]['MESSAGE'], rf'^{qid}: to=<{user}@')
        other = 'alice' if user == 'bobby' else 'bobby'
        self.assertFalse([r for r in recs if f'to=<{other}@' in r['MESSAGE']], recs)

    def test_root_bytes_are_taken(self):
        cursor = pb.journal_cursor()
        qid = self.place()
        self.wake(qid)
        self.delivered('bobby', qid, cursor)
        self.assertFalse(os.path.exists(os.path.join(pb.SPOOL, 'incoming', qid)))

    def test_pickup_bytes_are_not_taken(self):
        cursor = pb.journal_cursor()
        qid = self.place()
        self.wake(qid, user='postbus-pickup')
        self.delivered('alice', qid, cursor)


if __name__ == '__main__':
    unittest.main()
