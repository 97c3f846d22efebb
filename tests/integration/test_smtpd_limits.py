"""smtpd's abuse limits, from client addresses outside smtpd_client_event_limit_exceptions ($mynetworks):
connections at once and per time unit from one client, messages and recipients per time unit, the error
delay (smtpd_soft_error_limit, smtpd_error_sleep_time: one session waits, the others do not), the hard
error limit, junk commands, smtpd_recipient_limit, smtpd_session_limit; and each refusal's reply code."""
import socket
import time
import unittest

import postbus as pb

BASE = dict(mynetworks="127.0.0.1/32", queue_run_delay="1s", minimal_backoff_time="2s")


def greet(test, source):
    s = pb.SmtpRaw("127.0.0.1", 25, source=source)
    test.addCleanup(s.close)
    return s, s.reply()


def session(test, source):
    s, (code, text) = greet(test, source)
    test.assertEqual(code, 220, text)
    test.assertEqual(s.cmd("EHLO client.example.org")[0], 250)
    return s


def reply_within(s, seconds):
    """The next reply if one comes within seconds, else None (the connection stays usable)."""
    s.sock.settimeout(seconds)
    try:
        return s.reply()
    except (socket.timeout, TimeoutError):
        return None
    finally:
        s.sock.settimeout(30)


class ClientLimits(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        pb.add_user("erin")
        pb.set_config(**BASE, smtpd_client_connection_count_limit=2, smtpd_client_connection_rate_limit=6,
                      smtpd_client_message_rate_limit=2, smtpd_client_recipient_rate_limit=3,
                      anvil_rate_time_unit="1h")

    def test_connection_count(self):
        cursor = pb.journal_cursor()
        a = session(self, "127.0.0.2")
        b = session(self, "127.0.0.2")
        s, (code, text) = greet(self, "127.0.0.2")
        self.assertEqual(code, 421, text)
        self.assertIn("4.7.0", text)
        self.assertIn("too many connections from 127.0.0.2", text)
        self.assertTrue(s.closed())
        # another address, and the exempt $mynetworks, are not affected
        session(self, "127.0.0.12")
        for _ in range(3):
            session(self, "127.0.0.1")
        # once one session ends, there is room again
        a.cmd("QUIT")
        a.close()
        b.cmd("NOOP")

        def admitted():
            s2, (code2, _) = greet(self, "127.0.0.2")
            return code2 == 220
        pb.wait_until(admitted, what="a new session from 127.0.0.2 after one ended")
        recs = pb.journal(CLIENT_ADDRESS="127.0.0.2", SMTP_COMMAND="CONNECT", since=cursor)
        self.assertTrue(any(r.get("DSN") == "4.7.0" for r in recs), recs)

    def test_connection_rate(self):
        codes = []
        for _ in range(8):
            s, (code, _) = greet(self, "127.0.0.3")
            codes.append(code)
            s.close()
        # the count limit (2) never applies here: one session at a time
        self.assertEqual(codes[:6], [220] * 6)
        self.assertEqual(codes[6:], [421, 421])

    def test_message_rate(self):
        s = session(self, "127.0.0.5")
        for _ in range(2):
            self.assertEqual(s.cmd("MAIL FROM:<a@example.org>")[0], 250)
            self.assertEqual(s.cmd("RSET")[0], 250)
        code, text = s.cmd("MAIL FROM:<a@example.org>")
        self.assertEqual(code, 450, text)
        self.assertIn("4.7.1 Error: too much mail from 127.0.0.5", text)
        # counted per client, not per session
        s2 = session(self, "127.0.0.5")
        self.assertEqual(s2.cmd("MAIL FROM:<a@example.org>")[0], 450)

    def test_recipient_rate(self):
        s = session(self, "127.0.0.6")
        self.assertEqual(s.cmd("MAIL FROM:<a@example.org>")[0], 250)
        for _ in range(3):
            self.assertEqual(s.cmd("RCPT TO:<erin@localhost>")[0], 250)
        code, text = s.cmd("RCPT TO:<erin@localhost>")
        self.assertEqual(code, 450, text)
        self.assertIn("4.7.1 Error: too many recipients from 127.0.0.6", text)
        # the transaction goes on with the recipients accepted
        self.assertEqual(s.cmd("DATA")[0], 354)
        s.send(b"Subject: rate\r\n\r\nx\r\n.\r\n")
        self.assertEqual(s.reply()[0], 250)


class ErrorDelay(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        pb.set_config(**BASE, smtpd_soft_error_limit=2, smtpd_error_sleep_time="20s", smtpd_hard_error_limit=20)

    def test_soft_error_delay_does_not_block_others(self):
        s = session(self, "127.0.0.7")
        self.assertEqual(s.cmd("BOGUS1")[0], 500)
        self.assertEqual(s.cmd("BOGUS2")[0], 500)
        # Two errors: from now on each reply of this session waits 20 s, on a timer.
        s.send(b"NOOP\r\n")
        self.assertIsNone(reply_within(s, 3))
        # Meanwhile another session is served at once.
        other = session(self, "127.0.0.8")
        self.assertEqual(other.cmd("NOOP")[0], 250)
        other.cmd("QUIT")
        # And the delayed reply does come.
        s.sock.settimeout(60)
        self.assertEqual(s.reply()[0], 250)


class ErrorLimits(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        pb.add_user("erin")
        pb.set_config(**BASE, smtpd_soft_error_limit=100, smtpd_error_sleep_time="0s", smtpd_hard_error_limit=4,
                      smtpd_junk_command_limit=3, smtpd_recipient_limit=2, smtpd_session_limit=6)

    def test_hard_error_limit(self):
        s = session(self, "127.0.0.9")
        s.sock.settimeout(120)
        for i in range(4):
            self.assertEqual(s.cmd(f"BOGUS{i}")[0], 500)
        code, text = s.cmd("NOOP")
        self.assertEqual(code, 421, text)
        self.assertIn("4.7.0", text)
        self.assertIn("too many errors", text)
        self.assertTrue(s.closed())

    def test_junk_commands(self):
        s = session(self, "127.0.0.10")
        s.sock.settimeout(120)
        # Three junk commands are free; the next ones count as errors, up to the hard limit (4).
        for _ in range(7):
            self.assertEqual(s.cmd("NOOP")[0], 250)
        code, text = s.cmd("NOOP")
        self.assertEqual(code, 421, text)

    def test_recipient_limit(self):
        s = session(self, "127.0.0.1")
        self.assertEqual(s.cmd("MAIL FROM:<a@example.org>")[0], 250)
        self.assertEqual(s.cmd("RCPT TO:<erin@localhost>")[0], 250)
        self.assertEqual(s.cmd("RCPT TO:<root@localhost>")[0], 250)
        code, text = s.cmd("RCPT TO:<erin@localhost>")
        self.assertEqual(code, 452, text)
        self.assertIn("4.5.3", text)

    def test_session_limit(self):
        # smtpd_session_limit = 6 in all (sessions of other tests may still be closing): a 421 comes by the
        # seventh at the latest, after at least one 220.
        codes = []
        while len(codes) < 7 and 421 not in codes:
            s, (code, text) = greet(self, "127.0.0.1")
            codes.append(code)
        self.assertEqual(codes[-1], 421, codes)
        self.assertIn("4.7.0", text)
        self.assertIn("too many connections", text)
        self.assertTrue(all(c == 220 for c in codes[:-1]) and len(codes) >= 2, codes)


class RatesOutliveIdleExit(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        pb.set_config(**BASE, max_idle="2s", smtpd_client_message_rate_limit=1, anvil_rate_time_unit="1h")

    @classmethod
    def tearDownClass(cls):
        pb.set_config(max_idle="100s")

    def test_rate_kept_past_max_idle(self):
        s = session(self, "127.0.0.11")
        self.assertEqual(s.cmd("MAIL FROM:<a@example.org>")[0], 250)
        s.cmd("QUIT")
        s.close()
        pid = pb.unit_property("postbus-smtpd.service", "MainPID")
        # Idle for longer than max_idle: smtpd stays, since it holds a client's rate counters.
        time.sleep(5)
        self.assertEqual(pb.unit_property("postbus-smtpd.service", "MainPID"), pid)
        s = session(self, "127.0.0.11")
        code, text = s.cmd("MAIL FROM:<a@example.org>")
        self.assertEqual(code, 450, text)


if __name__ == "__main__":
    unittest.main()
