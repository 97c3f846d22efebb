"""local's luser_relay and mailbox_size_limit, through the real daemons: mail for a local part with neither
alias nor account goes to luser_relay's address ($user expanded) instead of bouncing, with
local_recipient_maps empty as Postfix wants it; and an mbox delivery that would grow the file past
mailbox_size_limit bounces 5.2.2 (File too large), the mailbox cut back to what it was."""
import os
import unittest
import uuid

import postbus as pb

SENDER = "sender@example.org"


def marker():
    return "m-" + uuid.uuid4().hex


def mailbox_with(user, text):
    return next((m for m in pb.mbox_messages(user) if text in m), None)


def records(qid, cursor, **fields):
    return pb.journal(QUEUE_ID=qid, POSTBUS_ROLE="local", since=cursor, **fields)


class Local(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for user in ("catchall", "fuller", "alice"):
            pb.add_user(user)

    def test_luser_relay(self):
        try:
            pb.set_config(luser_relay="catchall+$user@localhost", recipient_delimiter="+",
                          local_recipient_maps="")
            m = marker()
            cursor = pb.journal_cursor()
            qid = pb.send(SENDER, ["nosuchuser@localhost"], f"Subject: lost\n\n{m}\n")
            msg = pb.wait_until(lambda: mailbox_with("catchall", m), what="the unknown user's mail for catchall")
            self.assertIn("\nDelivered-To: catchall+nosuchuser@localhost\n", msg)
            rec = pb.wait_until(lambda: records(qid, cursor, DELIVERY_STATUS="sent"), what="the sent record")[0]
            self.assertIn("nosuchuser", rec["MESSAGE"])
            # a known user is not relayed
            m2 = marker()
            pb.send(SENDER, ["alice@localhost"], f"Subject: known\n\n{m2}\n")
            pb.wait_until(lambda: mailbox_with("alice", m2), what="alice's own mail")
            self.assertIsNone(mailbox_with("catchall", m2))

            # a relay address that is itself unknown bounces once, no loop
            pb.set_config(luser_relay="nobody-here-either@localhost", local_recipient_maps="")
            cursor = pb.journal_cursor()
            qid = pb.send(SENDER, ["ghost@localhost"], "Subject: ghost\n\nx\n")
            [rec] = pb.wait_until(lambda: records(qid, cursor, DELIVERY_STATUS="bounced"), what="the bounce")
            self.assertEqual(rec["DSN"], "5.1.1")
            self.assertIn("nobody-here-either", rec["MESSAGE"])
        finally:
            pb.set_config(luser_relay="", local_recipient_maps="unix:passwd.byname $alias_maps")

        # without luser_relay: the unknown user bounces as before (sendmail: smtpd is not asked)
        cursor = pb.journal_cursor()
        qid = pb.run("sendmail", "-f", SENDER, "nosuchuser@localhost", input="Subject: lost\n\nx\n")
        [rec] = pb.wait_until(lambda: [r for r in pb.journal(POSTBUS_ROLE="local", since=cursor)
                                       if r.get("DELIVERY_STATUS") == "bounced"
                                       and "nosuchuser" in r.get("MESSAGE", "")], what="the bounce")
        self.assertEqual(rec["DSN"], "5.1.1")

    def test_owner_alias(self):
        """An alias list with an owner-list alias: the copy that local forwards for list carries
        owner-list as its envelope sender (Postfix's owner_request_special); an alias without owner keeps
        the original sender."""
        with open("/etc/aliases", "a") as f:
            f.write("ownedlist: faraway@remote.example\nowner-ownedlist: alice\n"
                    "plainlist: other@remote.example\n")
        if pb.have("newaliases"):
            pb.run("newaliases")
        else:
            pb.run("postbusctl", "--aliases", "map", "build", "/etc/aliases")
        cursor = pb.journal_cursor()
        pb.run("sendmail", "-f", SENDER, "ownedlist@localhost", input="Subject: list\n\nx\n")
        pb.run("sendmail", "-f", SENDER, "plainlist@localhost", input="Subject: plain\n\nx\n")

        pb.wait_until(lambda: [r for r in pb.journal(POSTBUS_ROLE="smtp", since=cursor) if r.get("RECIPIENT") == "faraway@remote.example"],
                      what="an smtp attempt of the owned list's forwarded copy")
        pb.wait_until(lambda: [r for r in pb.journal(POSTBUS_ROLE="smtp", since=cursor) if r.get("RECIPIENT") == "other@remote.example"],
                      what="a delivery attempt of the plain list's copy")
        owned = [r for r in pb.journal(POSTBUS_ROLE="smtp", since=cursor) if r.get("RECIPIENT") == "faraway@remote.example"][0]
        plain = [r for r in pb.journal(POSTBUS_ROLE="smtp", since=cursor) if r.get("RECIPIENT") == "other@remote.example"][0]
        senders = {r["QUEUE_ID"]: r["MESSAGE"] for r in pb.journal(POSTBUS_ROLE="qmgr", since=cursor)
                   if "from=<" in (r.get("MESSAGE") or "")}
        self.assertRegex(senders[owned["QUEUE_ID"]], r"from=<owner-ownedlist@[^>]+>")
        self.assertIn(f"from=<{SENDER}>", senders[plain["QUEUE_ID"]])

    def test_mbox_size_limit(self):
        try:
            pb.set_config(message_size_limit=10240, mailbox_size_limit=20000)
            body = ("x" * 70 + "\n") * 100          # about 7 KB
            for i in range(2):
                cursor = pb.journal_cursor()
                qid = pb.send(SENDER, ["fuller@localhost"], f"Subject: fill {i}\n\n{body}")
                pb.wait_until(lambda: records(qid, cursor, DELIVERY_STATUS="sent"), what=f"delivery {i}")
            path = "/var/mail/fuller"
            size = os.stat(path).st_size
            cursor = pb.journal_cursor()
            qid = pb.send(SENDER, ["fuller@localhost"], f"Subject: too much\n\n{body}")
            [rec] = pb.wait_until(lambda: records(qid, cursor, DELIVERY_STATUS="bounced"), what="the bounce")
            self.assertEqual(rec["DSN"], "5.2.2")
            self.assertIn("File too large", rec["MESSAGE"])
            self.assertEqual(os.stat(path).st_size, size)
        finally:
            pb.set_config(message_size_limit=10240000, mailbox_size_limit=51200000)


if __name__ == "__main__":
    unittest.main()
