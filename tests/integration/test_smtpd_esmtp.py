"""smtpd's ESMTP extensions with real clients: PIPELINING (swaks --pipeline, whole transactions in one
write), SIZE, 8BITMIME, SMTPUTF8 (smtplib), DSN parameters kept in the queue file, ENHANCEDSTATUSCODES on
every reply, CHUNKING (BDAT, also pipelined), VRFY per disable_vrfy_command, the journal record of
every refusal, smtputf8_enable = no, and MAIL without HELO per smtpd_helo_required."""
import os
import re
import smtplib
import subprocess
import unittest

import postbus as pb

SIZE_LIMIT = 50000
ENHANCED = re.compile(r'[245]\.[0-9]{1,3}\.[0-9]{1,3}( |$)')


def reconfigure(**params):
    """set_config, with systemd's start rate limit of the smtpd units reset first: the tests below restart
    smtpd more often than StartLimitBurst= allows in StartLimitIntervalSec=."""
    pb.systemctl('reset-failed', 'postbus-smtpd.service', 'postbus-smtpd.socket', 'postbus-submission.socket',
                 'postbus-smtps.socket', check=False)
    pb.set_config(**params)


def in_mailbox(user, qid):
    return next((m for m in pb.mbox_messages(user) if qid in m), None)


class Esmtp(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        pb.add_user("erin")
        pb.set_config(mynetworks="127.0.0.1/32", message_size_limit=SIZE_LIMIT, queue_run_delay="1s",
                      minimal_backoff_time="2s")

    def session(self, source="127.0.0.1"):
        s = pb.SmtpRaw("127.0.0.1", 25, source=source)
        self.addCleanup(s.close)
        self.assertEqual(s.reply()[0], 220)
        code, text = s.cmd("EHLO client.example.org")
        self.assertEqual(code, 250, text)
        return s, text.split("\n")[1:]

    def test_ehlo_keywords(self):
        _, keywords = self.session()
        for k in ("PIPELINING", f"SIZE {SIZE_LIMIT}", "VRFY", "ENHANCEDSTATUSCODES", "8BITMIME", "DSN",
                  "SMTPUTF8", "CHUNKING"):
            self.assertIn(k, keywords)

    def test_swaks_pipeline(self):
        out = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", "25", "--pipeline",
                              "--to", "erin@localhost", "--from", "p@example.org", "--helo", "client.example.org",
                              "--data", "Subject: pipelined\n\nsent with swaks --pipeline\n"],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn("PIPELINING", out.stdout)
        qid = pb.queue_id_from_text(out.stdout)
        m = pb.wait_until(lambda: in_mailbox("erin", qid), what="the pipelined mail")
        self.assertIn("sent with swaks --pipeline", m)

    def test_pipelined_transactions_in_one_write(self):
        s, _ = self.session()
        # Two whole transactions and QUIT in one write; a refused recipient in the middle.
        s.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<erin@localhost>\r\nRCPT TO:<nosuch@localhost>\r\n"
               b"DATA\r\nSubject: first\r\n\r\none\r\n.\r\n"
               b"MAIL FROM:<b@example.org>\r\nRCPT TO:<erin@localhost>\r\nDATA\r\nSubject: second\r\n\r\n"
               b"two\r\n.\r\nQUIT\r\n")
        codes = [s.reply() for _ in range(10)]
        self.assertEqual([c for c, _ in codes], [250, 250, 550, 354, 250, 250, 250, 354, 250, 221], codes)
        first, second = pb.queue_id_from_text(codes[4][1]), pb.queue_id_from_text(codes[8][1])
        self.assertNotEqual(first, second)
        self.assertIn("\none\n", pb.wait_until(lambda: in_mailbox("erin", first), what="first"))
        self.assertIn("\ntwo\n", pb.wait_until(lambda: in_mailbox("erin", second), what="second"))

    def test_size(self):
        s, _ = self.session()
        code, text = s.cmd(f"MAIL FROM:<a@example.org> SIZE={SIZE_LIMIT + 1}")
        self.assertEqual(code, 552, text)
        self.assertTrue(text.startswith("5.3.4"), text)
        self.assertEqual(s.cmd(f"MAIL FROM:<a@example.org> SIZE={SIZE_LIMIT - 100}")[0], 250)
        self.assertEqual(s.cmd("RCPT TO:<erin@localhost>")[0], 250)
        self.assertEqual(s.cmd("DATA")[0], 354)
        s.send(b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 60 + b".\r\n")
        code, text = s.reply()
        self.assertEqual(code, 552, text)
        self.assertIn("5.3.4", text)
        code, text = s.cmd("MAIL FROM:<a@example.org> SIZE=abc")
        self.assertEqual(code, 501, text)

    def test_8bitmime_and_smtputf8(self):
        body = "Grüße aus Köln, 東京\n"
        with pb.connect() as smtp:
            smtp.ehlo()
            self.assertTrue(smtp.has_extn("smtputf8") and smtp.has_extn("8bitmime"))
            # A UTF-8 address needs the SMTPUTF8 parameter (RFC 6531); smtplib sends it as UTF-8 here.
            smtp.command_encoding = "utf-8"
            code, text = smtp.mail("jörg@example.org")
            self.assertEqual(code, 553, text)
            self.assertIn(b"5.6.7", text)
            smtp.rset()
            msg = f"From: Jörg <jörg@example.org>\nTo: erin@localhost\nSubject: Grüße\n\n{body}"
            refused = smtp.sendmail("jörg@example.org", ["erin@localhost"], msg.encode("utf-8"),
                                    mail_options=["SMTPUTF8", "BODY=8BITMIME"])
            self.assertEqual(refused, {})
            # A UTF-8 recipient without SMTPUTF8 is refused too.
            self.assertEqual(smtp.mail("a@example.org")[0], 250)
            code, text = smtp.rcpt("δοκιμή@example.com")
            self.assertEqual(code, 553, text)
            smtp.rset()
            self.assertEqual(smtp.mail("a@example.org", ["SMTPUTF8"])[0], 250)
            self.assertEqual(smtp.rcpt("δοκιμή@example.com")[0], 250)     # relayed from mynetworks
            smtp.rset()
        m = pb.wait_until(lambda: next((x for x in pb.mbox_messages("erin") if "Subject: Grüße" in x), None),
                          what="the UTF-8 mail")
        self.assertIn("From: Jörg <jörg@example.org>", m)
        self.assertIn(body, m)

    def test_smtputf8_disabled(self):
        self.addCleanup(reconfigure, smtputf8_enable="yes")
        reconfigure(smtputf8_enable="no")
        s, keywords = self.session()
        self.assertNotIn("SMTPUTF8", keywords)
        self.assertIn("8BITMIME", keywords)
        code, text = s.cmd("MAIL FROM:<a@example.org> SMTPUTF8")
        self.assertEqual((code, text), (555, "5.5.4 Unsupported option: SMTPUTF8"))
        self.assertEqual(s.cmd("MAIL FROM:<a@example.org> BODY=8BITMIME")[0], 250)
        self.assertEqual(s.cmd("RCPT TO:<erin@localhost>")[0], 250)

    def test_helo_required(self):
        self.addCleanup(reconfigure, smtpd_helo_required="no")
        reconfigure(smtpd_helo_required="yes")
        s = pb.SmtpRaw("127.0.0.1", 25)
        self.addCleanup(s.close)
        self.assertEqual(s.reply()[0], 220)
        self.assertEqual(s.cmd("MAIL FROM:<a@example.org>"), (503, "5.5.1 Error: send HELO/EHLO first"))
        self.assertEqual(s.cmd("HELO client.example.org")[0], 250)
        self.assertEqual(s.cmd("MAIL FROM:<a@example.org>")[0], 250)

    def test_mail_without_helo(self):
        # Postfix's default, smtpd_helo_required = no: a client may start with MAIL. The Received header
        # then names the client as its DNS name (or "unknown"), and the log has an empty helo=<>.
        cursor = pb.journal_cursor()
        s = pb.SmtpRaw("127.0.0.1", 25)
        self.addCleanup(s.close)
        self.assertEqual(s.reply()[0], 220)
        self.assertEqual(s.cmd("MAIL FROM:<nohelo@example.org>")[0], 250)
        self.assertEqual(s.cmd("RCPT TO:<nosuch@localhost>")[0], 550)
        self.assertEqual(s.cmd("RCPT TO:<erin@localhost>")[0], 250)
        self.assertEqual(s.cmd("DATA")[0], 354)
        code, text = s.cmd("Subject: no helo\r\n\r\nsent without HELO\r\n.")
        self.assertEqual(code, 250, text)
        qid = pb.queue_id_from_text(text)
        m = pb.wait_until(lambda: in_mailbox("erin", qid), what="the mail sent without HELO")
        self.assertRegex(m, r"Received: from (\S+) \(\1 \[127\.0\.0\.1\]\)\n\tby ")
        self.assertIn("sent without HELO", m)
        refusals = [x for x in pb.journal_messages(since=cursor) if x and "nosuch@localhost" in x]
        self.assertTrue(refusals and "proto=SMTP helo=<>" in refusals[0], refusals)

    def test_bare_addresses(self):
        # strict_rfc821_envelopes = no, Postfix's default: an address without <> is the first word after the
        # colon, and the words after it are parameters; nothing at all is a syntax error, as in Postfix
        s, _ = self.session()
        self.assertEqual(s.cmd("MAIL FROM:"), (501, "5.5.4 Syntax: MAIL FROM:<address>"))
        self.assertEqual(s.cmd("MAIL FROM:<a@example.org> BODY=BINARYMIME"),
                         (555, "5.5.4 Unsupported option: BODY=BINARYMIME"))
        self.assertEqual(s.cmd("MAIL FROM:Name <a@example.org>"),
                         (555, "5.5.4 Unsupported option: <a@example.org>"))
        self.assertEqual(s.cmd("MAIL FROM: bare@example.org SIZE=100")[0], 250)
        self.assertEqual(s.cmd("RCPT TO:"), (501, "5.5.4 Syntax: RCPT TO:<address>"))
        self.assertEqual(s.cmd("RCPT TO:erin@localhost NOTIFY=NEVER")[0], 250)
        self.assertEqual(s.cmd("DATA")[0], 354)
        code, text = s.cmd("Subject: bare\r\n\r\nno brackets\r\n.")
        self.assertEqual(code, 250, text)
        qid = pb.queue_id_from_text(text)
        m = pb.wait_until(lambda: in_mailbox("erin", qid), what="the mail with bare addresses")
        self.assertIn("\nReturn-Path: <bare@example.org>\n", m)

        # strict_rfc821_envelopes = yes: the brackets are required
        self.addCleanup(reconfigure, strict_rfc821_envelopes="no")
        reconfigure(strict_rfc821_envelopes="yes")
        s, _ = self.session()
        self.assertEqual(s.cmd("MAIL FROM:bare@example.org"), (501, "5.1.7 Bad sender address syntax"))
        self.assertEqual(s.cmd("MAIL FROM:<bare@example.org>")[0], 250)
        self.assertEqual(s.cmd("RCPT TO:erin@localhost"), (501, "5.1.3 Bad recipient address syntax"))

    def test_dsn_parameters_in_queue_file(self):
        with pb.LocalHeld():
            s, _ = self.session()
            # Refused values first: each is a syntax error with an enhanced code.
            for bad in ("RET=ALL", "ENVID=a=b", "RET=FULL RET=HDRS"):
                code, text = s.cmd(f"MAIL FROM:<a@example.org> {bad}")
                self.assertEqual(code, 501, (bad, text))
                self.assertTrue(text.startswith("5.5.4"), text)
            self.assertEqual(s.cmd("MAIL FROM:<a@example.org> RET=HDRS ENVID=QQ314159+2Bx")[0], 250)
            for bad in ("NOTIFY=NEVER,SUCCESS", "NOTIFY=SOMETIMES", "ORCPT=erin@localhost", "ORCPT=rfc822;a=b"):
                code, text = s.cmd(f"RCPT TO:<erin@localhost> {bad}")
                self.assertEqual(code, 501, (bad, text))
            self.assertEqual(s.cmd("RCPT TO:<erin@localhost> NOTIFY=success,FAILURE "
                                   "ORCPT=rfc822;erin+40localhost")[0], 250)
            self.assertEqual(s.cmd("RCPT TO:<root@localhost> NOTIFY=NEVER")[0], 250)
            self.assertEqual(s.cmd("RCPT TO:<someone@example.com>")[0], 250)
            self.assertEqual(s.cmd("DATA")[0], 354)
            s.send(b"Subject: dsn\r\n\r\nkept\r\n.\r\n")
            code, text = s.reply()
            self.assertEqual(code, 250, text)
            qid = pb.queue_id_from_text(text)
            s.cmd("QUIT")

            recs = pb.queue_file_records(qid)
            attrs = [d.decode() for t, d in recs if t == "A"]
            self.assertIn("dsn_ret=HDRS", attrs)
            self.assertIn("dsn_envid=QQ314159+2Bx", attrs)
            # Each recipient record, followed by its options record where it had any.
            env = [(t, d.decode()) for t, d in recs if t in "RDO"]
            i = next(k for k, (t, d) in enumerate(env) if d == "erin@localhost")
            self.assertEqual(env[i + 1], ("O", "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;erin+40localhost"))
            i = next(k for k, (t, d) in enumerate(env) if d.startswith("root@"))
            self.assertEqual(env[i + 1], ("O", "NOTIFY=NEVER"))
            i = next(k for k, (t, d) in enumerate(env) if d == "someone@example.com")
            self.assertNotEqual(env[i + 1:i + 2] and env[i + 1][0], "O")

    def test_dsn_options_follow_virtual_aliases(self):
        table = "/etc/postbus/virtual-dsn"
        with open(table, "w", encoding="utf-8") as f:
            f.write("team@virtual.test erin@localhost, root@localhost\n")
        pb.run("postbusctl", "map", "build", table)
        pb.systemctl("reset-failed", "postbus-*", check=False)
        pb.set_config(virtual_alias_maps=f"gdbm:{table}")
        try:
            with pb.LocalHeld():
                s, _ = self.session()
                self.assertEqual(s.cmd("MAIL FROM:<a@example.org>")[0], 250)
                self.assertEqual(s.cmd("RCPT TO:<team@virtual.test> NOTIFY=SUCCESS,DELAY "
                                       "ORCPT=rfc822;team+40virtual.test")[0], 250)
                self.assertEqual(s.cmd("RCPT TO:<other@example.com>")[0], 250)
                self.assertEqual(s.cmd("DATA")[0], 354)
                s.send(b"Subject: team\r\n\r\nx\r\n.\r\n")
                code, text = s.reply()
                self.assertEqual(code, 250, text)
                env = [(t, d.decode()) for t, d in pb.queue_file_records(pb.queue_id_from_text(text))
                       if t in "RDO"]
                # Each address the alias expands to keeps the options of the recipient it came from.
                for rcpt in ("erin@", "root@"):
                    i = next(k for k, (t, d) in enumerate(env) if t in "RD" and d.startswith(rcpt))
                    self.assertEqual(env[i + 1], ("O", "NOTIFY=SUCCESS,DELAY ORCPT=rfc822;team+40virtual.test"))
                i = next(k for k, (t, d) in enumerate(env) if d == "other@example.com")
                self.assertTrue(i + 1 == len(env) or env[i + 1][0] != "O", env)
        finally:
            pb.systemctl("reset-failed", "postbus-*", check=False)
            pb.set_config(virtual_alias_maps="")

    def test_enhanced_status_codes_everywhere(self):
        s, _ = self.session(source="127.0.0.2")
        replies = []
        for line in ("NOOP", "VRFY erin", "VRFY nosuch", "VRFY", "BOGUS", "MAIL FROM:<a@example.org> XYZ=1",
                     "RCPT TO:<erin@localhost>", "MAIL FROM:<bad address>", "MAIL FROM:<a@example.org>",
                     "MAIL FROM:<a@example.org>", "RCPT TO:<x@example.com>", "RCPT TO:<erin@localhost> FOO",
                     "DATA x", "BDAT x", "RCPT TO:<erin@localhost>", "RSET", "HELO", "NOOP " + "x" * 5000):
            replies.append((line, s.cmd(line)))
        replies.append(("QUIT", s.cmd("QUIT")))
        for line, (code, text) in replies:
            self.assertRegex(text, ENHANCED, (line, code, text))
            self.assertEqual(text[0], str(code)[0], (line, code, text))

    def test_bdat(self):
        s, _ = self.session()
        self.assertEqual(s.cmd("MAIL FROM:<a@example.org>")[0], 250)
        self.assertEqual(s.cmd("RCPT TO:<erin@localhost>")[0], 250)
        first = b"Subject: chunked\r\n\r\nfirst chunk\r\n.\r\n"
        # the reply comes once the whole chunk is read
        s.send(b"BDAT %d\r\n" % len(first))
        s.send(first)
        code, text = s.reply()
        self.assertEqual(code, 250, text)
        self.assertIn(f"{len(first)} bytes", text)
        last = b"a line with a lone dot above\r\n"
        s.send(b"BDAT %d LAST\r\n" % len(last) + last)
        code, text = s.reply()
        self.assertEqual(code, 250, text)
        qid = pb.queue_id_from_text(text)
        # DATA after BDAT in the same transaction is refused
        self.assertEqual(s.cmd("MAIL FROM:<a@example.org>")[0], 250)
        self.assertEqual(s.cmd("RCPT TO:<erin@localhost>")[0], 250)
        s.send(b"BDAT 3\r\nabc")
        self.assertEqual(s.reply()[0], 250)
        code, text = s.cmd("DATA")
        self.assertEqual(code, 503, text)
        self.assertEqual(s.cmd("RSET")[0], 250)
        m = pb.wait_until(lambda: in_mailbox("erin", qid), what="the chunked mail")
        # BDAT content is not dot-stuffed: the "." line is content, delivered as it is.
        self.assertIn("\nfirst chunk\n.\na line with a lone dot above\n", m)

    def test_bdat_pipelined_and_refused(self):
        s, _ = self.session()
        # A refused chunk is still read: its bytes are never taken for commands.
        s.send(b"BDAT 21\r\nRCPT TO:<x@example>\r\nNOOP\r\n")
        code, text = s.reply()
        self.assertEqual(code, 503, text)
        self.assertEqual(s.reply()[0], 250)        # the NOOP after the chunk
        # A whole transaction in one write, in chunks.
        body = b"Subject: pipelined chunks\r\n\r\nhello\r\n"
        s.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<erin@localhost>\r\nBDAT 10\r\n" + body[:10] +
               b"BDAT %d LAST\r\n" % (len(body) - 10) + body[10:] + b"NOOP\r\n")
        codes = [s.reply() for _ in range(5)]
        self.assertEqual([c for c, _ in codes], [250, 250, 250, 250, 250], codes)
        qid = pb.queue_id_from_text(codes[3][1])
        self.assertIn("\nhello\n", pb.wait_until(lambda: in_mailbox("erin", qid), what="pipelined chunks"))
        # Chunks beyond message_size_limit: refused, read to the end, and the transaction is over at LAST.
        self.assertEqual(s.cmd("MAIL FROM:<a@example.org>")[0], 250)
        self.assertEqual(s.cmd("RCPT TO:<erin@localhost>")[0], 250)
        big = (b"y" * 998 + b"\r\n") * 60
        s.send(b"BDAT %d\r\n" % len(big) + big)
        code, text = s.reply()
        self.assertEqual(code, 552, text)
        self.assertIn("5.3.4", text)
        s.send(b"BDAT 5 LAST\r\nabcde")
        code, text = s.reply()
        self.assertEqual(code, 503, text)
        self.assertEqual(s.cmd("BDAT x")[0], 501)
        self.assertEqual(s.cmd("NOOP")[0], 250)

    def test_vrfy(self):
        s, _ = self.session()
        # as Postfix: the address echoed without its brackets
        self.assertEqual(s.cmd("VRFY erin"), (252, "2.0.0 erin"))
        self.assertEqual(s.cmd("VRFY <erin@localhost>"), (252, "2.0.0 erin@localhost"))
        code, text = s.cmd("VRFY nosuchuser")
        self.assertEqual(code, 550, text)
        self.assertIn("5.1.1", text)
        s.close()
        pb.set_config(disable_vrfy_command=True)
        try:
            s, keywords = self.session()
            self.assertNotIn("VRFY", keywords)
            code, text = s.cmd("VRFY erin")
            self.assertEqual(code, 502, text)
            self.assertIn("5.5.1 VRFY command is disabled", text)
        finally:
            pb.set_config(disable_vrfy_command=False)

    def test_refusals_are_journaled(self):
        cursor = pb.journal_cursor()
        s, _ = self.session(source="127.0.0.3")
        self.assertEqual(s.cmd("EHLO back\\slash.example")[0], 250)
        self.assertEqual(s.cmd("RCPT TO:<erin@localhost>")[0], 503)
        s.cmd("QUIT")

        def refusals():
            recs = pb.journal(POSTBUS_ROLE="smtpd", CLIENT_ADDRESS="127.0.0.3", since=cursor)
            return [r for r in recs if r.get("SMTP_COMMAND") and r.get("DSN")] or None
        recs = pb.wait_until(refusals, what="journaled refusals")
        rcpt = next(r for r in recs if r["SMTP_COMMAND"] == "RCPT")
        self.assertEqual(rcpt["DSN"], "5.5.1")
        self.assertIn("NOQUEUE: reject: RCPT from unknown[127.0.0.3]: 503 5.5.1", rcpt["MESSAGE"])
        # peer text is escaped in the journal
        self.assertIn("helo=<back\\\\slash.example>", rcpt["MESSAGE"])

    def test_every_reply_journaled_at_debug_level(self):
        dropin = "/run/systemd/system/postbus-smtpd.service.d"
        os.makedirs(dropin, exist_ok=True)
        with open(f"{dropin}/50-debug.conf", "w") as f:
            f.write("[Service]\nEnvironment=POSTBUS_LOG_LEVEL=debug\n")
        try:
            pb.systemctl("daemon-reload")
            pb.systemctl("stop", "postbus-smtpd.service")
            cursor = pb.journal_cursor()
            s, _ = self.session(source="127.0.0.5")
            self.assertEqual(s.cmd("NOOP")[0], 250)
            s.cmd("QUIT")

            def noop():
                return [r for r in pb.journal(CLIENT_ADDRESS="127.0.0.5", SMTP_COMMAND="NOOP", since=cursor)
                        if r.get("DSN") == "2.0.0"]
            recs = pb.wait_until(noop, what="the NOOP reply in the journal")
            self.assertIn("reply: NOOP from unknown[127.0.0.5]: 250 2.0.0 Ok", recs[0]["MESSAGE"])
        finally:
            os.unlink(f"{dropin}/50-debug.conf")
            pb.systemctl("daemon-reload")
            pb.systemctl("stop", "postbus-smtpd.service")
        # without it, only refusals are journaled
        cursor = pb.journal_cursor()
        s, _ = self.session(source="127.0.0.6")
        self.assertEqual(s.cmd("NOOP")[0], 250)
        self.assertEqual(s.cmd("BOGUS")[0], 500)
        s.cmd("QUIT")
        pb.wait_until(lambda: pb.journal(CLIENT_ADDRESS="127.0.0.6", SMTP_COMMAND="UNKNOWN", since=cursor),
                      what="the 500")
        self.assertEqual(pb.journal(CLIENT_ADDRESS="127.0.0.6", SMTP_COMMAND="NOOP", since=cursor), [])


if __name__ == "__main__":
    unittest.main()
