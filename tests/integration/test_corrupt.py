"""A truncated queue file is moved to corrupt/ with a journal record, and other mail still flows."""
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


if __name__ == "__main__":
    unittest.main()
