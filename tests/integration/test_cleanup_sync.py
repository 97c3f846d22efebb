"""cleanup's sync threads: many SMTP sessions at once, their queue files synced and renamed on cleanup's
worker threads (cleanup_sync_threads) while its loop reads the next jobs. Every message gets its 250 with a
queue ID of its own, and each is delivered exactly once; the same with the threads off (0: all in the loop),
and with cleanup_directory_sync = no (each file renamed, then synced; no sync of incoming/)."""
import smtplib
import threading
import unittest

import postbus as pb

SESSIONS = 8
MESSAGES = 50           # per session, over one connection
USER = 'syncer'


def cleanup_threads():
    """The number of threads of the running cleanup process."""
    pid = int(pb.unit_property('postbus-cleanup.service', 'MainPID'))
    if pid == 0:
        return 0
    with open(f'/proc/{pid}/status', encoding='ascii') as f:
        return next(int(line.split()[1]) for line in f if line.startswith('Threads:'))


class CleanupSync(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        pb.add_user(USER)

    def submit_all(self, tag):
        """SESSIONS sessions of MESSAGES messages each, all at once; returns {marker: queue ID}."""
        ids = {}
        errors = []
        lock = threading.Lock()

        def session(s):
            try:
                with smtplib.SMTP('127.0.0.1', 25, timeout=120) as conn:
                    conn.ehlo('sync.example.org')
                    for n in range(MESSAGES):
                        marker = f'{tag}-{s}-{n}'
                        conn.mail('load@example.org')
                        conn.rcpt(f'{USER}@localhost')
                        code, text = conn.data(f'Subject: {marker}\r\n\r\nmarker {marker}\r\n'.encode())
                        with lock:
                            if code != 250:
                                errors.append(f'{marker}: {code} {text!r}')
                            else:
                                ids[marker] = pb.queue_id_from_text(text)
            except (smtplib.SMTPException, OSError) as e:
                with lock:
                    errors.append(f'session {s}: {e}')

        threads = [threading.Thread(target=session, args=(s,)) for s in range(SESSIONS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors[:5], [])
        self.assertEqual(len(ids), SESSIONS * MESSAGES)
        self.assertEqual(len(set(ids.values())), SESSIONS * MESSAGES, 'a queue ID was given twice')
        return ids

    def delivered_exactly_once(self, tag, ids):
        total = SESSIONS * MESSAGES

        def markers():
            return [line.split()[1] for m in pb.mbox_messages(USER) for line in m.splitlines()
                    if line.startswith(f'marker {tag}-')]
        pb.wait_until(lambda: len(markers()) >= total, timeout=300, interval=0.5,
                      what=f'{total} messages delivered')
        got = markers()
        self.assertEqual(len(got), total)
        self.assertEqual(sorted(got), sorted(ids))

    def test_concurrent_sessions_threads(self):
        pb.set_config(cleanup_sync_threads=4)
        ids = self.submit_all('threads')
        # the pool was there: the loop's thread and four workers
        self.assertEqual(cleanup_threads(), 5)
        self.delivered_exactly_once('threads', ids)

    def test_concurrent_sessions_file_carries_name(self):
        # each file renamed first and synced after, no sync of incoming/ (what ext4, XFS and btrfs get)
        pb.set_config(cleanup_sync_threads=4, cleanup_directory_sync='no')
        try:
            ids = self.submit_all('nodirsync')
            self.delivered_exactly_once('nodirsync', ids)
        finally:
            pb.set_config(cleanup_directory_sync='auto')

    def test_concurrent_sessions_in_loop(self):
        pb.set_config(cleanup_sync_threads=0)
        ids = self.submit_all('loop')
        self.assertEqual(cleanup_threads(), 1)
        self.delivered_exactly_once('loop', ids)


if __name__ == '__main__':
    unittest.main()
