"""smtpd's policy and limits: relaying, unknown users, the end of DATA, overlong lines, oversized
messages; and whether the session goes on afterwards."""
import unittest

import postbus as pb


class Policy(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        pb.add_user("erin")
        pb.set_config(mynetworks="127.0.0.1/32", message_size_limit="20000", line_length_limit="1000",
                      queue_run_delay="1s", minimal_backoff_time="2s")

    def session(self, source="127.0.0.1"):
        s = pb.SmtpRaw("127.0.0.1", 25, source=source)
        self.addCleanup(s.close)
        code, _ = s.reply()
        self.assertEqual(code, 220)
        code, _ = s.cmd("EHLO client.example.org")
        self.assertEqual(code, 250)
        return s

    def test_relay_denied_outside_mynetworks(self):
        cursor = pb.journal_cursor()
        s = self.session(source="127.0.0.2")
        self.assertEqual(s.cmd("MAIL FROM:<a@example.org>")[0], 250)
        code, text = s.cmd("RCPT TO:<someone@example.com>")
        self.assertEqual(code, 554)
        self.assertIn("5.7.1", text)
        self.assertIn("Relay access denied", text)
        # local mail is still accepted from there
        self.assertEqual(s.cmd("RCPT TO:<erin@localhost>")[0], 250)
        self.assertEqual(s.cmd("QUIT")[0], 221)
        recs = pb.journal(POSTBUS_ROLE="smtpd", CLIENT_ADDRESS="127.0.0.2", since=cursor)
        self.assertTrue(any("5.7.1" in r.get("MESSAGE", "") for r in recs), recs)

    def test_relay_allowed_inside_mynetworks(self):
        s = self.session(source="127.0.0.1")
        self.assertEqual(s.cmd("MAIL FROM:<a@example.org>")[0], 250)
        self.assertEqual(s.cmd("RCPT TO:<someone@example.com>")[0], 250)
        s.cmd("QUIT")

    def test_unknown_local_user(self):
        s = self.session()
        s.cmd("MAIL FROM:<a@example.org>")
        code, text = s.cmd("RCPT TO:<nosuchuser@localhost>")
        self.assertEqual(code, 550)
        self.assertIn("5.1.1", text)
        self.assertEqual(s.cmd("NOOP")[0], 250)
        s.cmd("QUIT")

    def test_bare_lf_dot_does_not_end_data(self):
        s = self.session()
        s.cmd("MAIL FROM:<a@example.org>")
        s.cmd("RCPT TO:<erin@localhost>")
        self.assertEqual(s.cmd("DATA")[0], 354)
        s.send(b"Subject: smuggle\r\n\r\nbefore\n.\nMAIL FROM:<x@example.org>\r\nafter\r\n.\r\n")
        code, text = s.reply()
        self.assertEqual(code, 250, text)
        qid = pb.queue_id_from_text(text)
        s.cmd("QUIT")
        m = pb.wait_until(lambda: next((x for x in pb.mbox_messages("erin") if qid in x), None), what="mail")
        # smtpd_forbid_bare_newline = normalize: the bare LFs end lines, and the "." between them is
        # content (an empty line once unstuffed), never the end of the message
        self.assertIn("before\n\nMAIL FROM:<x@example.org>\nafter\n", m)

    def test_overlong_command_line(self):
        s = self.session()
        code, text = s.cmd("NOOP " + "x" * 5000)
        self.assertEqual(code, 500)
        self.assertIn("5.5.", text)
        self.assertEqual(s.cmd("NOOP")[0], 250)     # the session goes on
        s.cmd("QUIT")

    def test_overlong_data_line(self):
        # A message line longer than line_length_limit is taken whole, as Postfix takes it; only
        # message_size_limit bounds it (and the smtp client wraps it on the way out).
        s = self.session()
        s.cmd("MAIL FROM:<a@example.org>")
        s.cmd("RCPT TO:<erin@localhost>")
        s.cmd("DATA")
        s.send(b"Subject: long\r\n\r\n" + b"y" * 3000 + b"\r\n.\r\n")
        code, text = s.reply()
        self.assertEqual(code, 250, text)
        qid = pb.queue_id_from_text(text)
        self.assertEqual(s.cmd("NOOP")[0], 250)
        s.cmd("QUIT")
        m = pb.wait_until(lambda: next((x for x in pb.mbox_messages("erin") if qid in x), None), what="mail")
        self.assertIn("\n\n" + "y" * 3000 + "\n", m)

    def test_oversized_message(self):
        s = self.session()
        s.cmd("MAIL FROM:<a@example.org>")
        s.cmd("RCPT TO:<erin@localhost>")
        s.cmd("DATA")
        s.send(b"Subject: big\r\n\r\n" + (b"z" * 900 + b"\r\n") * 40 + b".\r\n")
        code, text = s.reply()
        self.assertEqual(code, 552, text)
        self.assertIn("5.3.4", text)
        # the next transaction in the same session works
        self.assertEqual(s.cmd("MAIL FROM:<a@example.org>")[0], 250)
        self.assertEqual(s.cmd("RCPT TO:<erin@localhost>")[0], 250)
        self.assertEqual(s.cmd("DATA")[0], 354)
        s.send(b"Subject: small\r\n\r\nok\r\n.\r\n")
        self.assertEqual(s.reply()[0], 250)
        s.cmd("QUIT")

    def test_sequence_errors(self):
        s = self.session()
        self.assertEqual(s.cmd("RCPT TO:<erin@localhost>")[0], 503)
        self.assertEqual(s.cmd("DATA")[0], 503)
        self.assertEqual(s.cmd("BOGUS")[0], 500)
        self.assertEqual(s.cmd("RSET")[0], 250)
        self.assertEqual(s.cmd("QUIT")[0], 221)


if __name__ == "__main__":
    unittest.main()
