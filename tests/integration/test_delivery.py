"""A mail sent over SMTP reaches a local user's mailbox (mbox and Maildir) with the headers postbus
adds, and the journal tells its story across smtpd, cleanup, qmgr and local."""
import os
import subprocess
import unittest

import postbus as pb


class Delivery(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        pb.add_user("alice")
        pb.add_user("bob")

    def test_swaks_to_mbox(self):
        # local is socket-activated: not running until the first delivery
        pb.systemctl("stop", "postbus-local.service")
        self.assertFalse(pb.unit_active("postbus-local.service"))
        before = len(pb.mbox_messages("alice"))
        cursor = pb.journal_cursor()
        out = subprocess.run(
            ["swaks", "--server", "127.0.0.1", "--port", "25", "--to", "alice@localhost",
             "--from", "sender@example.org", "--helo", "client.example.org",
             "--data", "Subject: hello alice\n\nfirst line\n.leading dot\nlast line\n"],
            capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        qid = pb.queue_id_from_text(out.stdout)

        msgs = pb.wait_until(lambda: len(pb.mbox_messages("alice")) > before and pb.mbox_messages("alice"),
                             what="mail in /var/mail/alice")
        m = msgs[-1]
        # Postfix's From_ line (two blanks before asctime()'s date) and its delivery headers, in its order
        self.assertRegex(m, r"^From sender@example\.org  \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}\n")
        self.assertIn("\nReturn-Path: <sender@example.org>\nX-Original-To: alice@localhost\n"
                      "Delivered-To: alice@localhost\n", m)
        self.assertIn(f"with ESMTP id {qid}", m)
        self.assertIn("Received: from client.example.org (", m)
        # Postfix's forms: one recipient and the date on the Received header's last line, and the day of the
        # month padded with a blank, not a zero
        date = r"\w{3}, (?: \d|[123]\d) \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4} \(\w+\)"
        self.assertRegex(m, rf"\n\tby [^\n]+ \(postbus\) with ESMTP id {qid}\n\tfor <alice@localhost>; {date}\n")
        self.assertIn("\nMessage-ID: <", m)
        self.assertRegex(m, rf"\nDate: {date}\n")
        self.assertIn("\nFrom: sender@example.org\n", m)
        self.assertIn("\nSubject: hello alice\n", m)
        self.assertIn("\nfirst line\n.leading dot\nlast line\n", m)
        st = os.stat("/var/mail/alice")
        self.assertEqual(st.st_uid, pb.uid("alice"))
        self.assertEqual(st.st_mode & 0o777, 0o600)

        # the journal shows every role's record of this queue ID
        def roles():
            return {r.get("POSTBUS_ROLE") for r in pb.journal(QUEUE_ID=qid, since=cursor)}
        pb.wait_until(lambda: {"smtpd", "cleanup", "qmgr", "local"} <= roles(),
                      what=f"journal records of {qid} from all roles (have {roles()})")
        recs = pb.journal(QUEUE_ID=qid, POSTBUS_ROLE="local", since=cursor)
        sent = [r for r in recs if r.get("DELIVERY_STATUS") == "sent"]
        self.assertEqual(len(sent), 1, recs)
        self.assertEqual(sent[0]["RECIPIENT"], "alice@localhost")
        self.assertEqual(sent[0]["DSN"], "2.0.0")
        self.assertRegex(sent[0]["MESSAGE"], rf"^{qid}: to=<alice@localhost>, relay=local, delay=[0-9.]+, .*"
                                             r"dsn=2\.0\.0, status=sent")
        self.assertTrue(any(r["MESSAGE"] == f"{qid}: removed" for r in pb.journal(QUEUE_ID=qid, since=cursor)))

        # and local was started by its socket for this delivery
        self.assertEqual(pb.unit_property("postbus-local.service", "TriggeredBy"), "postbus-local.socket")
        self.assertTrue(pb.journal(QUEUE_ID=qid, _SYSTEMD_UNIT="postbus-local.service", since=cursor))

    def test_added_headers_kept_when_present(self):
        body = ("From: Someone <someone@example.org>\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n"
                "Message-ID: <fixed@example.org>\nSubject: complete\n\nbody\n")
        qid = pb.send("someone@example.org", ["bob@localhost"], body)
        m = pb.wait_until(lambda: next((x for x in pb.mbox_messages("bob") if qid in x), None),
                          what="mail for bob")
        self.assertEqual(m.count("\nMessage-ID:"), 1)
        self.assertIn("\nMessage-ID: <fixed@example.org>\n", m)
        self.assertEqual(m.count("\nDate:"), 1)
        self.assertEqual(m.count("\nFrom:"), 1)

    def test_mbox_from_quoting(self):
        qid = pb.send("x@example.org", ["bob@localhost"], "Subject: q\n\nFrom here on\n>From there\n")
        m = pb.wait_until(lambda: next((x for x in pb.mbox_messages("bob") if qid in x), None),
                          what="mail for bob")
        # as Postfix does (mboxo): only lines that begin with "From " are quoted
        self.assertIn("\n>From here on\n>From there\n", m)

    def test_maildir(self):
        pb.add_user("carol")
        pb.set_config(home_mailbox="Maildir/")
        try:
            qid = pb.send("x@example.org", ["carol@localhost"], "Subject: to maildir\n\nhi carol\n")
            msgs = pb.wait_until(lambda: pb.maildir_messages("carol"), what="mail in ~carol/Maildir/new")
            # no From_ line in a Maildir file; the delivery headers as in an mbox
            self.assertTrue(msgs[0].startswith("Return-Path: <x@example.org>\nX-Original-To: carol@localhost\n"
                                               "Delivered-To: carol@localhost\n"), msgs[0][:200])
            self.assertIn(qid, msgs[0])
            self.assertIn("hi carol\n", msgs[0])
            new = os.path.expanduser("~carol/Maildir/new")
            f = os.path.join(new, os.listdir(new)[0])
            self.assertEqual(os.stat(f).st_uid, pb.uid("carol"))
            self.assertFalse(os.path.exists("/var/mail/carol"))
        finally:
            pb.set_config(home_mailbox="")

    def test_mailbox_delivery_lock(self):
        """mailbox_delivery_lock = fcntl: someone else's fresh dot-lock file does not hold delivery up (Postfix's
        parameter); with dotlock among the methods, the same file makes the delivery wait and defer."""
        pb.add_user("dave")
        lock = "/var/mail/dave.lock"
        with open(lock, "w") as f:
            f.write(f"{os.getpid()}\n")
        before = os.stat(lock)
        try:
            pb.set_config(mailbox_delivery_lock="fcntl")
            qid = pb.send("x@example.org", ["dave@localhost"], "Subject: fcntl only\n\nhi dave\n")
            pb.wait_until(lambda: any(qid in m for m in pb.mbox_messages("dave")), what="mail for dave")
            after = os.stat(lock)
            self.assertEqual((after.st_ino, after.st_mtime_ns), (before.st_ino, before.st_mtime_ns))

            cursor = pb.journal_cursor()
            pb.set_config(mailbox_delivery_lock="dotlock, fcntl", deliver_lock_attempts="2", deliver_lock_delay="1s")
            qid = pb.send("x@example.org", ["dave@localhost"], "Subject: dot-locked\n\nhi again\n")
            rec = pb.wait_until(lambda: next(iter(pb.journal(QUEUE_ID=qid, POSTBUS_ROLE="local",
                                                             DELIVERY_STATUS="deferred", since=cursor)), None),
                                what="the deferral while the dot-lock is held")
            self.assertIn("lock", rec["MESSAGE"])
            self.assertFalse(any(qid in m for m in pb.mbox_messages("dave")))
        finally:
            os.unlink(lock)
            pb.set_config(mailbox_delivery_lock="fcntl, dotlock", deliver_lock_attempts="20", deliver_lock_delay="1s")


if __name__ == "__main__":
    unittest.main()
