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

        pb.wait_until(lambda: not missing(), timeout=240, interval=1.0,
                      what=f"every accepted message delivered ({len(accepted)} accepted, "
                           f"{len(refused)} refused, {kills} kills)")
        print(f"accepted={len(accepted)} refused={len(refused)} kills={kills}")


if __name__ == "__main__":
    unittest.main()
