"""SIGKILL of cleanup, qmgr or local while mail is in flight loses nothing: every message that got a
250 is delivered (duplicates are allowed, losses are not)."""
import re
import smtplib
import threading
import time
import unittest

import postbus as pb

SENDERS = 4
MIN_MESSAGES = 300
DURATION = 15.0
PAUSE = 0.08        # between messages of one sender: a few hundred messages in all, not tens of thousands


class Crash(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        pb.add_user("frank")
        pb.set_config(queue_run_delay="1s", minimal_backoff_time="1s")

    def test_kill_roles_in_flight(self):
        accepted, refused, lock = [], [], threading.Lock()
        stop = threading.Event()
        counter = iter(range(10**9))

        def sender():
            conn = None
            while not stop.is_set() or len(accepted) < MIN_MESSAGES:
                with lock:
                    n = next(counter)
                marker = f"crash-marker-{n:06d}"
                try:
                    if conn is None:
                        conn = smtplib.SMTP("127.0.0.1", 25, timeout=60)
                        conn.ehlo("crash.example.org")
                    conn.mail("load@example.org")
                    conn.rcpt("frank@localhost")
                    code, text = conn.data(f"Subject: {marker}\r\n\r\n{marker}\r\n".encode())
                    with lock:
                        (accepted if code == 250 else refused).append(marker)
                    time.sleep(PAUSE)
                except (smtplib.SMTPException, OSError):
                    with lock:
                        refused.append(marker)
                    try:
                        conn.close()
                    except Exception:
                        pass
                    conn = None
            if conn:
                try:
                    conn.quit()
                except Exception:
                    pass

        threads = [threading.Thread(target=sender) for _ in range(SENDERS)]
        for t in threads:
            t.start()
        kills = 0
        roles = ["postbus-cleanup.service", "postbus-qmgr.service", "postbus-local.service"]
        deadline = time.monotonic() + DURATION
        while time.monotonic() < deadline:
            time.sleep(1.0)
            pb.systemctl("kill", "--signal=KILL", roles[kills % len(roles)], check=False)
            kills += 1
        stop.set()
        for t in threads:
            t.join(timeout=300)
        self.assertGreaterEqual(len(accepted), MIN_MESSAGES)
        self.assertGreaterEqual(kills, 9)

        def missing():
            try:
                with open("/var/mail/frank", "r", errors="replace") as f:
                    have = set(re.findall(r"^(crash-marker-\d+)$", f.read(), re.M))
            except FileNotFoundError:
                have = set()
            return sorted(set(accepted) - have)

        try:
            pb.wait_until(lambda: not missing(), timeout=180, interval=1.0, what="every accepted message delivered")
        except AssertionError:
            lost = missing()
            self.fail(f"{len(lost)} of {len(accepted)} accepted messages not delivered ({len(refused)} refused, "
                      f"{kills} kills), e.g. {lost[:5]}; queue: {pb.busctl_call('ListMessages', 's', '')[0][:5]}")
        print(f"accepted={len(accepted)} refused={len(refused)} kills={kills}")


if __name__ == "__main__":
    unittest.main()
