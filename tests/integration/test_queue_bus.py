"""The queue on the system bus: message counts as properties, and ListMessages shows a message that
is held back (local stopped and masked) and not one that was delivered."""
import json
import re
import smtplib
import subprocess
import time
import unittest

import postbus as pb


def listed(queue=""):
    data = pb.busctl_call("ListMessages", "s", queue)
    return data[0]


class QueueBus(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        pb.add_user("dave")
        pb.set_config(queue_run_delay="1s", minimal_backoff_time="2s")

    def test_counts_and_list(self):
        for prop in ("Incoming", "Active", "Deferred", "Hold", "Corrupt"):
            self.assertIsInstance(pb.busctl_get(prop), int)

        delivered = pb.send("a@example.org", ["dave@localhost"], "Subject: delivered\n\nnow\n")
        pb.wait_until(lambda: any(delivered in m for m in pb.mbox_messages("dave")), what="first mail delivered")

        pb.systemctl("stop", "postbus-local.socket", "postbus-local.service")
        pb.systemctl("mask", "--runtime", "postbus-local.socket", "postbus-local.service")
        try:
            cursor = pb.journal_cursor()
            held = pb.send("b@example.org", ["dave@localhost"], "Subject: held back\n\nlater\n")
            pb.wait_until(lambda: pb.busctl_get("Deferred") >= 1, what="a deferred message")
            msgs = listed()
            ids = [m[0] for m in msgs]
            self.assertIn(held, ids)
            self.assertNotIn(delivered, ids)
            entry = next(m for m in msgs if m[0] == held)
            self.assertIn(entry[1], ("deferred", "active"))
            self.assertEqual(entry[4], "b@example.org")
            self.assertEqual(entry[5], ["dave@localhost"])
            self.assertGreater(entry[3], 0)
            self.assertIn(held, [m[0] for m in listed("deferred")] + [m[0] for m in listed("active")])
            self.assertEqual(listed("hold"), [])
            recs = pb.journal(QUEUE_ID=held, DELIVERY_STATUS="deferred", since=cursor)
            self.assertTrue(recs, "a deferred record in the journal")
            self.assertFalse(any(held in m for m in pb.mbox_messages("dave")))

            # a bad queue name is a D-Bus error of our own
            out = subprocess.run(["busctl", "--system", "call", "org.postbus.Queue1", "/org/postbus/Queue1",
                                  "org.postbus.Queue1", "ListMessages", "s", "nope"],
                                 capture_output=True, text=True)
            self.assertNotEqual(out.returncode, 0)
            self.assertIn("No queue named", out.stderr)
        finally:
            pb.systemctl("unmask", "--runtime", "postbus-local.socket", "postbus-local.service")
            pb.systemctl("start", "postbus-local.socket")

        # once local is back, the deferred message goes out on a later queue run
        pb.wait_until(lambda: any(held in m for m in pb.mbox_messages("dave")), timeout=60,
                      what="held mail delivered after local came back")
        pb.wait_until(lambda: held not in [m[0] for m in listed()], what="held mail gone from the queue")

    def test_backlog_larger_than_descriptor_limit(self):
        # more deferred messages than a process may hold descriptors (1024): all must go out
        pb.add_user("heidi")
        count = 1500
        cursor = pb.journal_cursor()
        pb.systemctl("stop", "postbus-local.socket", "postbus-local.service")
        pb.systemctl("mask", "--runtime", "postbus-local.socket", "postbus-local.service")
        try:
            conn = smtplib.SMTP("127.0.0.1", 25, timeout=60)
            conn.ehlo("backlog.example.org")
            for i in range(count):
                conn.sendmail("load@example.org", ["heidi@localhost"],
                              f"Subject: backlog-{i:05d}\r\n\r\nbacklog-{i:05d}\r\n")
            conn.quit()
            pb.wait_until(lambda: pb.busctl_get("Deferred") + pb.busctl_get("Active") >= count, timeout=120,
                          what=f"{count} messages queued")
        finally:
            pb.systemctl("unmask", "--runtime", "postbus-local.socket", "postbus-local.service")
            pb.systemctl("start", "postbus-local.socket")

        def delivered():
            try:
                with open("/var/mail/heidi", errors="replace") as f:
                    return len(set(re.findall(r"^backlog-\d+$", f.read(), re.M)))
            except FileNotFoundError:
                return 0
        pb.wait_until(lambda: delivered() == count, timeout=300, interval=1.0,
                      what=f"all {count} backlogged messages delivered")
        warnings = [r["MESSAGE"] for r in pb.journal(POSTBUS_ROLE="qmgr", PRIORITY="3", since=cursor)]
        self.assertFalse(any("Too many open files" in w for w in warnings), warnings[:3])

    def test_properties_changed(self):
        pb.add_user("ivan")
        monitor = subprocess.Popen(
            ["busctl", "--system", "monitor", "--json=short",
             "--match", "type='signal',interface='org.freedesktop.DBus.Properties',member='PropertiesChanged',"
                        "path='/org/postbus/Queue1'"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            time.sleep(0.5)     # the monitor must be in place before the mail moves
            pb.send("a@example.org", ["ivan@localhost"], "Subject: watched\n\nseen on the bus\n")
            pb.wait_until(lambda: any("watched" in m for m in pb.mbox_messages("ivan")), what="mail for ivan")
            time.sleep(2.5)     # signals are sent at most once a second
        finally:
            monitor.terminate()
            out, _ = monitor.communicate(timeout=10)
        signals = [json.loads(line) for line in out.splitlines() if line.strip()]
        signals = [m for m in signals if m.get("member") == "PropertiesChanged"]
        self.assertTrue(signals, "a PropertiesChanged signal of /org/postbus/Queue1")
        changed = signals[-1]["payload"]["data"][1]
        self.assertEqual(set(changed), {"Incoming", "Active", "Deferred", "Hold", "Corrupt"})
        self.assertEqual(changed["Incoming"]["type"], "u")

    def test_introspection(self):
        out = subprocess.run(["busctl", "--system", "introspect", "org.postbus.Queue1", "/org/postbus/Queue1",
                              "org.postbus.Queue1"], capture_output=True, text=True, check=True).stdout
        for name in (".ListMessages", ".Incoming", ".Deferred", ".Corrupt"):
            self.assertIn(name, out)

    def test_unprivileged_user_can_read(self):
        pb.add_user("reader")
        out = subprocess.run(["runuser", "-u", "reader", "--", "busctl", "--system", "--json=short", "get-property",
                              "org.postbus.Queue1", "/org/postbus/Queue1", "org.postbus.Queue1", "Deferred"],
                             capture_output=True, text=True)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(json.loads(out.stdout)["type"], "u")


if __name__ == "__main__":
    unittest.main()
