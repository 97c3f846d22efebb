"""local delivers without a process per message: the mailboxes are written by a long-lived worker per
recipient identity, which is that user for good, and the files it creates are the user's."""
import os
import signal
import time
import unittest

import postbus as pb


def main_pid():
    return int(pb.unit_property("postbus-local.service", "MainPID"))


def children(pid):
    """The PIDs of the live children of pid (every thread's)."""
    out = set()
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/children") as f:
            out |= {int(x) for x in f.read().split()}
    return out


def uids(pid):
    """The real, effective, saved and file-system uids of pid."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Uid:"):
                return [int(x) for x in line.split()[1:]]
    raise AssertionError(f"no Uid: line for {pid}")


def last_pid():
    """The last PID handed out in the container's PID namespace: it grows by one per fork."""
    with open("/proc/sys/kernel/ns_last_pid") as f:
        return int(f.read())


def send_many(user, n, tag):
    return [pb.send("sender@example.org", f"{user}@localhost", f"Subject: {tag} {i}\n\nbody {i}\n")
            for i in range(n)]


class LocalWorkers(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for u in ("wanda", "xavier", "yvonne", "zack"):
            pb.add_user(u, maildir=True)
        pb.add_user("crew")     # an account too, so that smtpd takes it whatever it knows of the aliases

    def test_no_fork_per_delivery(self):
        # the first delivery starts local and wanda's worker
        before = len(pb.mbox_messages("wanda"))
        send_many("wanda", 1, "warm-up")
        pb.wait_until(lambda: len(pb.mbox_messages("wanda")) == before + 1, what="the warm-up message")
        local = main_pid()
        self.assertGreater(local, 0)
        workers = children(local)
        self.assertEqual(len(workers), 1, workers)
        worker = workers.pop()
        self.assertEqual(uids(worker), [pb.uid("wanda")] * 4)

        cursor = pb.journal_cursor()
        first = last_pid()
        qids = set(send_many("wanda", 20, "batch"))
        pb.wait_until(lambda: len(pb.mbox_messages("wanda")) == before + 21, what="20 messages in /var/mail/wanda")
        forks = last_pid() - first
        # the old local forked at least once per delivery; nothing else in the container forks here
        self.assertLess(forks, 10, f"{forks} processes were started for 20 deliveries")
        self.assertEqual(main_pid(), local)
        self.assertEqual(children(local), {worker})
        subjects = [m for m in pb.mbox_messages("wanda") if "\nSubject: batch " in m]
        self.assertEqual(len(subjects), 20)
        recs = [r for r in pb.journal(POSTBUS_ROLE="local", DELIVERY_STATUS="sent", since=cursor)
                if r.get("QUEUE_ID") in qids]
        self.assertEqual(len(recs), 20, recs)
        self.assertEqual({int(r["_PID"]) for r in recs}, {local})
        st = os.stat("/var/mail/wanda")
        self.assertEqual(st.st_uid, pb.uid("wanda"))
        self.assertEqual(st.st_mode & 0o777, 0o600)

        # the worker keeps its dot-lock file between deliveries (no file made and removed per message): wanda's,
        # with the worker's PID in it, beside the mailbox; no lock is left; it goes when the worker ends
        kept = f"/var/mail/.postbus-lock.{worker}"
        st = os.stat(kept)
        self.assertEqual(st.st_uid, pb.uid("wanda"))
        self.assertEqual(st.st_nlink, 1)
        with open(kept) as f:
            self.assertEqual(f.read(), f"{worker}\n")
        self.assertFalse(os.path.exists("/var/mail/wanda.lock"))
        pb.systemctl("stop", "postbus-local.service")
        pb.wait_until(lambda: not os.path.exists(f"/proc/{worker}"), what="the worker's end")
        self.assertFalse(os.path.exists(kept))

        # a worker that a kill ends leaves it behind; local removes it when it starts again
        send_many("wanda", 1, "after the stop")
        pb.wait_until(lambda: len(pb.mbox_messages("wanda")) == before + 22, what="the message after the stop")
        worker = children(main_pid()).pop()
        kept = f"/var/mail/.postbus-lock.{worker}"
        self.assertTrue(os.path.exists(kept))
        os.kill(worker, signal.SIGKILL)
        pb.wait_until(lambda: not os.path.exists(f"/proc/{worker}"), what="the killed worker's end")
        self.assertTrue(os.path.exists(kept))
        pb.systemctl("restart", "postbus-local.service")
        self.assertFalse(os.path.exists(kept))
        pb.systemctl("stop", "postbus-local.service")

    def test_two_users_own_their_files(self):
        pb.set_config(home_mailbox="Maildir/")
        try:
            for u in ("wanda", "xavier"):
                send_many(u, 3, f"maildir for {u}")
            for u in ("wanda", "xavier"):
                pb.wait_until(lambda: len([m for m in pb.maildir_messages(u) if f"maildir for {u}" in m]) == 3,
                              what=f"3 messages in ~{u}/Maildir")
                home = os.path.expanduser(f"~{u}")
                names = os.listdir(os.path.join(home, "Maildir", "new"))
                self.assertEqual(len(names), 3, names)
                for n in names:
                    st = os.stat(os.path.join(home, "Maildir", "new", n))
                    self.assertEqual(st.st_uid, pb.uid(u), n)
                    self.assertEqual(st.st_nlink, 1, n)
            # a worker or two each (a Maildir takes no lock: a second writes beside a busy first), each its
            # own user for good
            local = main_pid()
            seen = sorted(uids(p)[0] for p in children(local))
            self.assertEqual(sorted(set(seen)), sorted([pb.uid("wanda"), pb.uid("xavier")]))
            self.assertTrue(all(seen.count(u) <= 2 for u in seen), seen)
            for p in children(local):
                self.assertEqual(len(set(uids(p))), 1, uids(p))
        finally:
            pb.set_config(home_mailbox="")

    def test_worker_limit(self):
        # an alias of four users, and room for two workers: the others wait for one to be idle
        saved = {}
        for path in ("/etc/aliases", "/etc/aliases.gdbm"):
            if os.path.exists(path):
                with open(path, "rb") as f:
                    saved[path] = f.read()
        with open("/etc/aliases", "w") as f:
            f.write("crew: wanda, xavier, yvonne, zack\n")
        pb.run("postbusctl", "--aliases", "map", "build", "/etc/aliases")
        pb.set_config(default_process_limit=2)
        try:
            before = {u: len(pb.mbox_messages(u)) for u in ("wanda", "xavier", "yvonne", "zack")}
            cursor = pb.journal_cursor()
            qid = pb.send("sender@example.org", "crew@localhost", "Subject: crew\n\nfor all four\n")
            for u in before:
                pb.wait_until(lambda: len(pb.mbox_messages(u)) == before[u] + 1, what=f"the crew's mail for {u}")
                st = os.stat(f"/var/mail/{u}")
                self.assertEqual(st.st_uid, pb.uid(u))
            pb.wait_until(lambda: len(pb.journal(QUEUE_ID=qid, POSTBUS_ROLE="local", DELIVERY_STATUS="sent",
                                                 since=cursor)) == 4, what="four sent records of the crew")
            # a worker that made way has ended; never more than two stay
            pb.wait_until(lambda: len(children(main_pid())) <= 2, what="at most two workers")
            self.assertLessEqual(len(children(main_pid())), 2)
        finally:
            for path in ("/etc/aliases", "/etc/aliases.gdbm"):
                if path in saved:
                    with open(path, "wb") as f:
                        f.write(saved[path])
                elif os.path.exists(path):
                    os.unlink(path)
            pb.set_config(default_process_limit=100)

    def test_call_lost_on_a_quiet_connection_goes_again(self):
        # A Deliver that local never reads, because its connection closes as the call comes (local exiting
        # idle, here killed while stopped), after the connection had been quiet: qmgr sends it again at
        # once on a new connection, instead of deferring it and suspecting the message.
        self.addCleanup(pb.systemctl, "stop", "postbus-local.service")  # others count a fresh local's workers
        before = len(pb.mbox_messages("zack"))
        send_many("zack", 1, "before the quiet")
        pb.wait_until(lambda: len(pb.mbox_messages("zack")) == before + 1, what="the first message")
        local = main_pid()
        time.sleep(1)   # quiet for longer than qmgr's 0.5 s: local may be exiting idle
        cursor = pb.journal_cursor()
        os.kill(local, signal.SIGSTOP)
        try:
            qid = pb.send("sender@example.org", "zack@localhost", "Subject: lost call\n\nsent again\n")
            pb.wait_until(lambda: pb.journal(QUEUE_ID=qid, SYSLOG_IDENTIFIER="postbus/qmgr", since=cursor),
                          what="the message in qmgr's active queue")
            # qmgr calls local as it activates the message; should it be later still, the next local
            # delivers it and the assertions below hold all the same
            time.sleep(1)
        finally:
            os.kill(local, signal.SIGKILL)
        pb.wait_until(lambda: any("\nSubject: lost call" in m for m in pb.mbox_messages("zack")),
                      what="the message delivered by the next local")
        self.assertEqual(pb.journal(QUEUE_ID=qid, DELIVERY_STATUS="deferred", since=cursor), [])
        died = [m for m in pb.journal_messages(SYSLOG_IDENTIFIER="postbus/qmgr", since=cursor)
                if m and "died with" in m]
        self.assertEqual(died, [])
        self.assertEqual(len(pb.journal(QUEUE_ID=qid, POSTBUS_ROLE="local", DELIVERY_STATUS="sent",
                                        since=cursor)), 1)


if __name__ == "__main__":
    unittest.main()
