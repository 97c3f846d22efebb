"""SMTP smuggling: the bare LF / bare CR end-of-data variants never end a message and never make a second
one, with smtpd_forbid_bare_newline = normalize (the default: a bare LF or CR is a line end, and the "."
it surrounds is stored as an empty line) and = reject (521 5.5.2 and disconnect at a bare LF, except for
smtpd_forbid_bare_newline_exclusions, $mynetworks, which are normalized). Checked
over raw sockets, in the stored queue files (local held, so that the files stay), and in the mailbox."""
import unittest

import postbus as pb

SMUGGLED = (b"MAIL FROM:<evil@example.org>\r\nRCPT TO:<erin@localhost>\r\nDATA\r\n"
            b"Subject: smuggled\r\n\r\nevil\r\n")

# The sequences some MTA or other reads as the end of DATA.
VARIANTS = {
    "lf-dot-lf": b"\n.\n",
    "lf-dot-crlf": b"\n.\r\n",
    "crlf-dot-lf": b"\r\n.\n",
    "crlf-dot-cr-crlf": b"\r\n.\r\r\n",
    "cr-dot-crlf": b"\r.\r\n",
    "crlf-dot-cr": b"\r\n.\r",
}


def session(test, source="127.0.0.1"):
    s = pb.SmtpRaw("127.0.0.1", 25, source=source)
    test.addCleanup(s.close)
    test.assertEqual(s.reply()[0], 220)
    test.assertEqual(s.cmd("EHLO client.example.org")[0], 250)
    return s


def stored_lines(content):
    return content.split(b"\n")


class Normalize(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        pb.add_user("erin")
        pb.set_config(mynetworks="127.0.0.1/32", queue_run_delay="1s", minimal_backoff_time="2s")

    def test_variants_stored_safely(self):
        with pb.LocalHeld():
            for name, seq in VARIANTS.items():
                with self.subTest(variant=name):
                    s = session(self)
                    self.assertEqual(s.cmd("MAIL FROM:<a@example.org>")[0], 250)
                    self.assertEqual(s.cmd("RCPT TO:<erin@localhost>")[0], 250)
                    self.assertEqual(s.cmd("DATA")[0], 354)
                    s.send(b"Subject: " + name.encode() + b"\r\n\r\nbefore" + seq + SMUGGLED + b".\r\n")
                    # One message, one reply: the variant did not end it, the smuggled commands are content.
                    code, text = s.reply()
                    self.assertEqual(code, 250, text)
                    qid = pb.queue_id_from_text(text)
                    code, text = s.cmd("NOOP")
                    self.assertEqual((code, text), (250, "2.0.0 Ok"))   # not the smuggled MAIL
                    s.cmd("QUIT")

                    content = pb.queue_file_content(qid)
                    self.assertIn(b"MAIL FROM:<evil@example.org>\nRCPT TO:<erin@localhost>\nDATA\n", content)
                    self.assertNotIn(b"\r", content)
                    self.assertNotIn(b".", stored_lines(content), content)
                    recs = pb.queue_file_records(qid)
                    self.assertEqual([d for t, d in recs if t == "S"], [b"a@example.org"])

    def test_dot_stuffing_kept(self):
        with pb.LocalHeld():
            s = session(self)
            s.cmd("MAIL FROM:<a@example.org>")
            s.cmd("RCPT TO:<erin@localhost>")
            self.assertEqual(s.cmd("DATA")[0], 354)
            s.send(b"Subject: dots\r\n\r\n..\r\n...x\r\n.\r\n")
            code, text = s.reply()
            self.assertEqual(code, 250, text)
            content = pb.queue_file_content(pb.queue_id_from_text(text))
            # A "." line is stored only where the client sent "..".
            self.assertTrue(content.endswith(b"\n.\n..x\n"), content)

    def test_mailbox_gets_one_message(self):
        s = session(self)
        s.cmd("MAIL FROM:<a@example.org>")
        s.cmd("RCPT TO:<erin@localhost>")
        s.cmd("DATA")
        s.send(b"Subject: one\r\n\r\nbefore\n.\n" + SMUGGLED + b".\r\nQUIT\r\n")
        code, text = s.reply()
        self.assertEqual(code, 250, text)
        qid = pb.queue_id_from_text(text)
        self.assertEqual(s.reply()[0], 221)
        m = pb.wait_until(lambda: next((x for x in pb.mbox_messages("erin") if qid in x), None), what="mail")
        self.assertIn("before\n\nMAIL FROM:<evil@example.org>\n", m)
        # No second message: none from the smuggled sender, none with its subject in its headers.
        self.assertFalse(any(x.startswith("From evil@example.org ") for x in pb.mbox_messages("erin")))
        self.assertFalse(any("Subject: smuggled" in x.split("\n\n", 1)[0] for x in pb.mbox_messages("erin")))

    def test_bare_lf_commands_normalized(self):
        s = session(self)
        s.send(b"NOOP\nNOOP\r\n")
        self.assertEqual(s.reply()[0], 250)
        self.assertEqual(s.reply()[0], 250)


class Reject(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        pb.add_user("erin")
        pb.set_config(mynetworks="127.0.0.1/32", smtpd_forbid_bare_newline="reject")

    @classmethod
    def tearDownClass(cls):
        pb.set_config(smtpd_forbid_bare_newline="normalize")

    def test_bare_lf_in_data(self):
        for name in ("lf-dot-lf", "lf-dot-crlf", "crlf-dot-lf"):
            with self.subTest(variant=name):
                s = session(self, source="127.0.0.2")
                s.cmd("MAIL FROM:<a@example.org>")
                s.cmd("RCPT TO:<erin@localhost>")
                self.assertEqual(s.cmd("DATA")[0], 354)
                s.send(b"Subject: x\r\n\r\nbefore" + VARIANTS[name] + SMUGGLED + b".\r\n")
                code, text = s.reply()
                self.assertEqual(code, 521, text)
                self.assertIn("5.5.2", text)
                self.assertIn("Error: bare <LF> received", text)
                self.assertTrue(s.closed())

    def test_bare_lf_command(self):
        s = session(self, source="127.0.0.2")
        s.send(b"NOOP\n")
        code, text = s.reply()
        self.assertEqual(code, 521, text)
        self.assertTrue(s.closed())

    def test_bare_cr_is_still_normalized(self):
        with pb.LocalHeld():
            s = session(self, source="127.0.0.2")
            s.cmd("MAIL FROM:<a@example.org>")
            s.cmd("RCPT TO:<erin@localhost>")
            self.assertEqual(s.cmd("DATA")[0], 354)
            s.send(b"Subject: cr\r\n\r\nbefore" + VARIANTS["crlf-dot-cr-crlf"] + SMUGGLED + b".\r\n")
            code, text = s.reply()
            self.assertEqual(code, 250, text)
            content = pb.queue_file_content(pb.queue_id_from_text(text))
            self.assertNotIn(b".", stored_lines(content))
            self.assertNotIn(b"\r", content)

    def test_exclusions_are_normalized(self):
        # 127.0.0.1 is in $mynetworks, the default smtpd_forbid_bare_newline_exclusions
        with pb.LocalHeld():
            s = session(self, source="127.0.0.1")
            self.assertEqual(s.cmd("MAIL FROM:<a@example.org>")[0], 250)
            self.assertEqual(s.cmd("RCPT TO:<erin@localhost>")[0], 250)
            self.assertEqual(s.cmd("DATA")[0], 354)
            s.send(b"Subject: excluded\r\n\r\nbefore" + VARIANTS["lf-dot-lf"] + SMUGGLED + b".\r\n")
            code, text = s.reply()
            self.assertEqual(code, 250, text)
            content = pb.queue_file_content(pb.queue_id_from_text(text))
            self.assertIn(b"before\n\nMAIL FROM:<evil@example.org>\n", content)
            self.assertEqual(s.cmd("NOOP"), (250, "2.0.0 Ok"))

    def test_crlf_clients_unaffected(self):
        qid = pb.send("a@example.org", "erin@localhost", "Subject: fine\n\nproper CRLF\n")
        self.assertTrue(pb.queue_id_valid(qid))

    def test_refusal_journaled(self):
        cursor = pb.journal_cursor()
        s = session(self, source="127.0.0.4")
        s.send(b"NOOP\n")
        self.assertEqual(s.reply()[0], 521)
        recs = pb.wait_until(lambda: [r for r in pb.journal(CLIENT_ADDRESS="127.0.0.4", since=cursor)
                                      if r.get("DSN") == "5.5.2"],
                             what="the 521 in the journal")
        self.assertIn("bare <LF> received", recs[0]["MESSAGE"])


if __name__ == "__main__":
    unittest.main()
