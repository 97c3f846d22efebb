"""A truncated queue file is moved to corrupt/ with a journal record, and other mail still flows: found in
incoming, in active (at qmgr's start), in deferred (at a queue run), and truncated while qmgr holds the
message in active, where the agent finds it corrupt and qmgr, reading it again, sets it aside without
blaming the destination (a file over 64 KiB; a smaller one goes to the agent from qmgr's memory, whole)."""
import os
import unittest

import postbus as pb

SPOOL = "/var/spool/postbus"


class Corrupt(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        pb.add_user("gina")
        pb.set_config(queue_run_delay="1s")

    def test_truncated_file_quarantined(self):
        cursor = pb.journal_cursor()
        pb.systemctl("stop", "postbus-qmgr.socket", "postbus-qmgr.service")
        try:
            bad = pb.send("a@example.org", ["gina@localhost"], "Subject: doomed\n\n" + "body line\n" * 200)
            good = pb.send("a@example.org", ["gina@localhost"], "Subject: fine\n\nstill flows\n")
            path = os.path.join(SPOOL, "incoming", bad)
            size = os.path.getsize(path)
            os.truncate(path, size // 2)
        finally:
            pb.systemctl("start", "postbus-qmgr.socket", "postbus-qmgr.service")

        pb.wait_until(lambda: os.path.exists(os.path.join(SPOOL, "corrupt", bad)), what="file in corrupt/")
        self.assertFalse(os.path.exists(os.path.join(SPOOL, "incoming", bad)))
        self.assertFalse(os.path.exists(os.path.join(SPOOL, "active", bad)))
        recs = pb.journal(QUEUE_ID=bad, POSTBUS_ROLE="qmgr", since=cursor)
        self.assertTrue(any("corrupt" in r["MESSAGE"] and r["PRIORITY"] == "4" for r in recs), recs)
        # an operator gets the explanation from the catalog
        self.assertTrue(any(r.get("MESSAGE_ID") == "ffd08b0ddfd344579c9159edb9f48b81" for r in recs), recs)
        explained = pb.journal_explained(QUEUE_ID=bad, POSTBUS_ROLE="qmgr", since=cursor)
        self.assertIn("moved it to the corrupt queue", explained)

        pb.wait_until(lambda: any(good in m for m in pb.mbox_messages("gina")), what="the good mail delivered")
        self.assertFalse(any(bad in m for m in pb.mbox_messages("gina")))
        self.assertEqual(pb.busctl_get("Corrupt"), 1)

    def test_empty_incoming_file_removed(self):
        """An empty incoming/<ID> is what a crash leaves of a file that cleanup renamed but had not synced yet
        (cleanup_directory_sync = no): never acknowledged, so qmgr removes it, and it is not called corrupt."""
        cursor = pb.journal_cursor()
        corrupt_before = pb.busctl_get("Corrupt")
        pb.systemctl("stop", "postbus-qmgr.socket", "postbus-qmgr.service")
        try:
            cut = pb.send("a@example.org", ["gina@localhost"], "Subject: cut short\n\nnever acknowledged\n")
            good = pb.send("a@example.org", ["gina@localhost"], "Subject: whole\n\nstill flows\n")
            os.truncate(os.path.join(SPOOL, "incoming", cut), 0)
        finally:
            pb.systemctl("start", "postbus-qmgr.socket", "postbus-qmgr.service")
        pb.wait_until(lambda: any(good in m for m in pb.mbox_messages("gina")), what="the good mail delivered")
        pb.wait_until(lambda: not os.path.exists(os.path.join(SPOOL, "incoming", cut)), what="the empty file gone")
        for q in ("active", "corrupt", "deferred", "hold"):
            self.assertFalse(os.path.exists(os.path.join(SPOOL, q, cut)), q)
        recs = pb.journal(QUEUE_ID=cut, POSTBUS_ROLE="qmgr", since=cursor)
        self.assertTrue(any("removed the empty queue file" in r["MESSAGE"] for r in recs), [r["MESSAGE"] for r in recs])
        self.assertEqual(pb.busctl_get("Corrupt"), corrupt_before)

    def assert_quarantined(self, qid, cursor):
        pb.wait_until(lambda: os.path.exists(os.path.join(SPOOL, "corrupt", qid)), what=f"{qid} in corrupt/")
        for q in ("incoming", "active", "deferred"):
            self.assertFalse(os.path.exists(os.path.join(SPOOL, q, qid)), q)
        recs = pb.journal(QUEUE_ID=qid, POSTBUS_ROLE="qmgr", since=cursor)
        self.assertTrue(any(r.get("MESSAGE_ID") == "ffd08b0ddfd344579c9159edb9f48b81" and "corrupt" in r["MESSAGE"]
                            for r in recs), [r["MESSAGE"] for r in recs])
        self.assertFalse(any(qid in m for m in pb.mbox_messages("gina")))

    def test_truncated_in_queues(self):
        """Truncated in active (qmgr finds it at its start) and in deferred (at the next queue run)."""
        cursor = pb.journal_cursor()
        corrupt_before = pb.busctl_get("Corrupt")
        pb.systemctl("stop", "postbus-qmgr.socket", "postbus-qmgr.service")
        try:
            in_active = pb.send("a@example.org", ["gina@localhost"], "Subject: active\n\n" + "line\n" * 300)
            in_deferred = pb.send("a@example.org", ["gina@localhost"], "Subject: deferred\n\n" + "line\n" * 300)
            good = pb.send("a@example.org", ["gina@localhost"], "Subject: fine too\n\nflows past both\n")
            for qid, queue in ((in_active, "active"), (in_deferred, "deferred")):
                path = os.path.join(SPOOL, queue, qid)
                os.rename(os.path.join(SPOOL, "incoming", qid), path)
                os.truncate(path, os.path.getsize(path) * 2 // 3)
        finally:
            pb.systemctl("start", "postbus-qmgr.socket", "postbus-qmgr.service")
        self.assert_quarantined(in_active, cursor)
        self.assert_quarantined(in_deferred, cursor)
        pb.wait_until(lambda: any(good in m for m in pb.mbox_messages("gina")), what="the good mail delivered")
        pb.wait_until(lambda: pb.busctl_get("Corrupt") == corrupt_before + 2, what="Corrupt counting both")

    def test_truncated_while_held(self):
        """Truncated while qmgr holds it in active, waiting for local_destination_rate_delay: local finds it
        corrupt, qmgr reads it again and sets it aside, and the next message to the same destination goes.
        The file is over 64 KiB, so qmgr hands local its descriptor (Deliver), not its bytes."""
        pb.set_config(local_destination_rate_delay="8s")
        cursor = pb.journal_cursor()
        first = pb.send("a@example.org", ["gina@localhost"], "Subject: paces\n\nfirst\n")
        pb.wait_until(lambda: any(first in m for m in pb.mbox_messages("gina")), what="the first mail delivered")
        held = pb.send("a@example.org", ["gina@localhost"], "Subject: held\n\n" + "line\n" * 14000)
        path = os.path.join(SPOOL, "active", held)
        pb.wait_until(lambda: os.path.exists(path), what=f"{held} in active")
        os.truncate(path, os.path.getsize(path) // 2)
        after = pb.send("a@example.org", ["gina@localhost"], "Subject: after\n\nstill flows\n")

        self.assert_quarantined(held, cursor)
        pb.wait_until(lambda: any(after in m for m in pb.mbox_messages("gina")), timeout=60,
                      what="the mail after it delivered")
        local = pb.journal_messages(QUEUE_ID=held, POSTBUS_ROLE="local", since=cursor)
        self.assertTrue(any("queue file is corrupt" in m for m in local), local)
        # nothing was deferred for it, and the destination was not taken for dead
        qmgr = pb.journal_messages(POSTBUS_ROLE="qmgr", since=cursor)
        self.assertFalse(any("status=deferred" in m for m in qmgr), qmgr)
        self.assertFalse(os.listdir(os.path.join(SPOOL, "defer")))

    def test_small_truncated_while_held_delivered_whole(self):
        """A small file is read once, when qmgr takes it into active, and its bytes go to local inside the call
        (DeliverInline): truncated on disk after that, the message is still delivered whole, as cleanup wrote
        it, and its file goes."""
        pb.set_config(local_destination_rate_delay="8s")
        corrupt_before = pb.busctl_get("Corrupt")
        first = pb.send("a@example.org", ["gina@localhost"], "Subject: paces again\n\nfirst\n")
        pb.wait_until(lambda: any(first in m for m in pb.mbox_messages("gina")), what="the first mail delivered")
        body = "".join(f"line {i}\n" for i in range(300))
        held = pb.send("a@example.org", ["gina@localhost"], "Subject: held small\n\n" + body)
        path = os.path.join(SPOOL, "active", held)
        pb.wait_until(lambda: os.path.exists(path), what=f"{held} in active")
        os.truncate(path, os.path.getsize(path) // 2)

        pb.wait_until(lambda: any(held in m for m in pb.mbox_messages("gina")), timeout=60, what="the held mail")
        delivered = [m for m in pb.mbox_messages("gina") if held in m][0]
        self.assertIn(body, delivered.replace("\r\n", "\n"))
        pb.wait_until(lambda: not os.path.exists(path), what="its file gone")
        self.assertFalse(os.path.exists(os.path.join(SPOOL, "corrupt", held)))
        self.assertEqual(pb.busctl_get("Corrupt"), corrupt_before)


if __name__ == "__main__":
    unittest.main()
