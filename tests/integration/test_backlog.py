"""A backlog after a restart: with qmgr stopped, 5,000 messages (POSTBUS_BACKLOG_MESSAGES) are queued;
then qmgr starts and drains them. Flow control per connection (a window of Resolve calls on qmgr's rewrite
connection, each with its own timeout counted from when it is sent) keeps rewrite from being flooded:
nothing is deferred, nothing times out, and the queue drains. The drain rate is printed."""
import os
import smtplib
import threading
import time
import unittest

import postbus as pb

# CI queues 5,000 to keep the suite short; the figure is 20,000:
# POSTBUS_BACKLOG_MESSAGES=20000 meson test -C build test_backlog --timeout-multiplier 4
MESSAGES = int(os.environ.get("POSTBUS_BACKLOG_MESSAGES") or 5000)
SENDERS = 4
RECIPIENTS = 2          # per message: the Resolve calls are twice the messages


def queue_files(q):
    return [n for n in os.listdir(f"{pb.SPOOL}/{q}") if pb.queue_id_valid(n)]


class Backlog(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # Every recipient goes to qmgr's own discard transport: the drain measures qmgr and rewrite, not
        # a delivery agent's disk.
        pb.set_config(default_transport="discard:backlog", queue_run_delay="300s")

    def test_drain_after_restart(self):
        # The delivery side is down: qmgr and its socket (cleanup's wake-ups would start it again).
        pb.systemctl("stop", "postbus-qmgr.socket", "postbus-qmgr.service")
        counter = iter(range(MESSAGES))
        lock = threading.Lock()
        errors = []

        def sender():
            conn = smtplib.SMTP("127.0.0.1", 25, timeout=120)
            conn.ehlo("backlog.example.org")
            while True:
                with lock:
                    n = next(counter, None)
                if n is None:
                    break
                rcpts = [f"r{n}-{k}@remote{k}.example" for k in range(RECIPIENTS)]
                try:
                    conn.sendmail("load@example.org", rcpts, f"Subject: backlog {n}\r\n\r\nbody {n}\r\n".encode())
                except smtplib.SMTPException as e:
                    with lock:
                        errors.append(f"{n}: {e}")
            conn.quit()

        start = time.monotonic()
        threads = [threading.Thread(target=sender) for _ in range(SENDERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        queued_in = time.monotonic() - start
        self.assertEqual(errors, [])
        pb.wait_until(lambda: len(queue_files("incoming")) >= MESSAGES, timeout=120,
                      what=f"{MESSAGES} messages in incoming")
        self.assertEqual(len(queue_files("active")), 0)

        cursor = pb.journal_cursor()
        start = time.monotonic()
        pb.systemctl("start", "postbus-qmgr.socket", "postbus-qmgr.service")
        pb.wait_until(lambda: not queue_files("incoming") and not queue_files("active"),
                      timeout=900, interval=1.0, what="the backlog drained")
        drained_in = time.monotonic() - start
        self.assertEqual(queue_files("deferred"), [])

        # Each recipient was resolved and discarded: none deferred, for a timeout or anything else.
        records = pb.journal(since=cursor, POSTBUS_ROLE="qmgr")
        statuses = [r.get("DELIVERY_STATUS") for r in records if r.get("DELIVERY_STATUS")]
        deferred = [r["MESSAGE"] for r in records if r.get("DELIVERY_STATUS") == "deferred"]
        timeouts = [r["MESSAGE"] for r in pb.journal(since=cursor) if "time" in r.get("MESSAGE", "") and
                    ("timed out" in r["MESSAGE"] or "timeout" in r["MESSAGE"])]
        self.assertEqual(deferred[:5], [])
        self.assertEqual(timeouts[:5], [])
        self.assertEqual(statuses.count("sent"), MESSAGES * RECIPIENTS)
        print(f"backlog: {MESSAGES} messages ({MESSAGES * RECIPIENTS} recipients) queued in {queued_in:.1f} s, "
              f"drained in {drained_in:.1f} s: {MESSAGES / drained_in:.0f} msg/s, "
              f"{MESSAGES * RECIPIENTS / drained_in:.0f} recipients/s")

    def test_idle_exit_with_connections_open(self):
        # Open connections are not work: rewrite and cleanup exit idle although qmgr and smtpd keep
        # theirs, and the next message reaches them again through their sockets.
        pb.set_config(default_transport="discard:backlog", queue_run_delay="300s", max_idle="2s")
        for n in range(2):
            cursor = pb.journal_cursor()
            qid = pb.send("load@example.org", [f"idle{n}@remote.example"], f"Subject: idle {n}\n\nbody\n")
            pb.wait_until(lambda: any(r.get("DELIVERY_STATUS") == "sent"
                                      for r in pb.journal(QUEUE_ID=qid, since=cursor)), what=f"{qid} discarded")
            pb.wait_until(lambda: not pb.unit_active("postbus-rewrite.service") and
                          not pb.unit_active("postbus-cleanup.service"), timeout=60,
                          what="rewrite and cleanup exited idle")
            self.assertTrue(pb.unit_active("postbus-qmgr.service"))
        records = pb.journal(since=cursor, POSTBUS_ROLE="qmgr")
        self.assertEqual([r["MESSAGE"] for r in records if r.get("DELIVERY_STATUS") == "deferred"], [])


if __name__ == "__main__":
    unittest.main()
