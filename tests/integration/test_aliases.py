"""local's aliases and .forward files, as a Postfix administrator knows them: an alias reaches each of its
targets, a |command alias runs the command (as default_privs, with a clean environment and the message
on stdin), a /file alias appends in mbox format, a user's .forward sends the mail to another local user
and to a remote address (a new queued message, submitted through cleanup), an unsafe .forward is
ignored with a journal record, and Delivered-To and alias loops are bounced."""
import os
import pwd
import re
import shutil
import unittest
import uuid

import postbus as pb

SENDER = "sender@example.org"
CMD_DIR = "/home/cmdout"
FILE_DIR = "/home/filedrop"
INC_DIR = "/etc/postbus-test"
# postbus's own sendmail (set-group-ID postdrop), wherever this build installed it
SENDMAIL = shutil.which("sendmail", path="/usr/local/sbin:/usr/sbin:/usr/local/bin:/usr/bin") or "/usr/sbin/sendmail"

# The alias names are also accounts, so that smtpd takes them whether or not it knows alias_maps; an
# alias wins over the account of the same name, as in Postfix.
ALIASES = f"""\
# test aliases
team:     alice, bob
pipe:     "|/usr/bin/env > {CMD_DIR}/env.txt && cat > {CMD_DIR}/msg.txt"
archive:  {FILE_DIR}/archive
loopa:    loopb
loopb:    loopa
failcmd:  "|echo no such mailbox >&2; exit 67"
tempcmd:  "|exit 75"
slowcmd:  "|sleep 600"
selfref:  selfref, bob
devnull:  /dev/null
envcmd:   "|/usr/bin/env > {CMD_DIR}/env-ext.txt"
incroot:  :include:{INC_DIR}/root.list
incbob:   :include:{INC_DIR}/bob.list
incww:    :include:{INC_DIR}/ww.list
autoreply: "|{{ echo 'Subject: auto reply'; echo; echo reply-from-autoreply; }} | {SENDMAIL} -f autoreply@localhost bob@localhost"
"""
USERS = ("alice", "bob", "carol", "dan", "erin", "team", "pipe", "archive", "loopa", "loopb", "failcmd",
         "tempcmd", "slowcmd", "selfref", "devnull", "envcmd", "gina", "incroot", "incbob", "incww", "autoreply")


def build_aliases():
    """Compiles /etc/aliases with newaliases when the build has it, else with postbusctl."""
    if pb.have("newaliases"):
        pb.run("newaliases")
    else:
        pb.run("postbusctl", "--aliases", "map", "build", "/etc/aliases")


def marker():
    return "m-" + uuid.uuid4().hex


def local_records(qid, since):
    return pb.journal(QUEUE_ID=qid, POSTBUS_ROLE="local", since=since)


def wait_local(qid, since, predicate, what):
    """Waits for a journal record of local for qid, logged after the cursor since, that satisfies
    predicate; returns it."""
    return pb.wait_until(lambda: next((r for r in local_records(qid, since) if predicate(r)), None),
                         what=f"{what} ({qid})")


def mailbox_with(user, text):
    return next((m for m in pb.mbox_messages(user) if text in m), None)


def process_command_lines():
    out = []
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                out.append(f.read())
        except (OSError, ValueError):
            pass
    return out


def write_forward(user, content, mode):
    pw = pwd.getpwnam(user)
    path = os.path.join(pw.pw_dir, ".forward")
    with open(path, "w") as f:
        f.write(content)
    os.chown(path, pw.pw_uid, pw.pw_gid)
    os.chmod(path, mode)


class Aliases(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for u in USERS:
            pb.add_user(u)
        nobody = pwd.getpwnam("nobody")
        for d in (CMD_DIR, FILE_DIR):
            shutil.rmtree(d, ignore_errors=True)
            os.makedirs(d, mode=0o755)
            os.chown(d, nobody.pw_uid, nobody.pw_gid)
        os.chmod(CMD_DIR, 0o1777)      # commands run as nobody and as bob write here
        os.makedirs(INC_DIR, mode=0o755, exist_ok=True)
        bob = pwd.getpwnam("bob")
        for name, content, owner, mode in (
                ("root.list", f'carol\n"|/usr/bin/id -u > {CMD_DIR}/inc-root.txt"\n', 0, 0o644),
                ("bob.list", f'# the list of bob\n"|/usr/bin/id -u > {CMD_DIR}/inc-bob.txt"\n{FILE_DIR}/inc\n', bob.pw_uid,
                 0o644),
                ("ww.list", "carol\n", 0, 0o666)):
            path = os.path.join(INC_DIR, name)
            with open(path, "w") as f:
                f.write(content)
            os.chown(path, owner, 0)
            os.chmod(path, mode)
        with open("/etc/aliases", "w") as f:
            f.write(ALIASES)
        build_aliases()
        assert os.path.exists("/etc/aliases.gdbm")
        pb.set_config(command_time_limit="3s", queue_run_delay="1s", minimal_backoff_time="1s",
                      recipient_delimiter="+", allow_mail_to_commands="alias, forward, include")

    def setUp(self):
        # Each test reads the journal from here on: what earlier tests logged cannot answer its checks.
        self.cursor = pb.journal_cursor()

    def test_alias_reaches_both_targets(self):
        m = marker()
        qid = pb.send(SENDER, ["team@localhost"], f"Subject: team\n\n{m}\n")
        a = pb.wait_until(lambda: mailbox_with("alice", m), what="the alias's mail for alice")
        b = pb.wait_until(lambda: mailbox_with("bob", m), what="the alias's mail for bob")
        # Postfix's local: the alias as X-Original-To, the mailbox's owner as Delivered-To
        self.assertRegex(a, r"\nX-Original-To: team@localhost\nDelivered-To: alice@[^\n]+\n")
        self.assertRegex(b, r"\nX-Original-To: team@localhost\nDelivered-To: bob@[^\n]+\n")
        self.assertIsNone(mailbox_with("team", m))
        for user in ("alice", "bob"):
            rec = wait_local(qid, self.cursor, lambda r: r.get("RECIPIENT", "").startswith(user + "@"),
                             f"record for {user}")
            self.assertEqual(rec["DELIVERY_STATUS"], "sent")
            self.assertEqual(rec["ORIGINAL_RECIPIENT"], "team@localhost")
            self.assertRegex(rec["MESSAGE"], rf"^{qid}: to=<{user}@[^>]+>, orig_to=<team@localhost>, relay=local, "
                                             r"delay=[0-9.]+, delays=[0-9./]+, dsn=2\.0\.0, status=sent \(delivered to mailbox\)$")

    def test_alias_expanding_to_itself(self):
        m = marker()
        pb.send(SENDER, ["selfref@localhost"], f"Subject: self\n\n{m}\n")
        pb.wait_until(lambda: mailbox_with("selfref", m), what="selfref's own copy")
        pb.wait_until(lambda: mailbox_with("bob", m), what="bob's copy")

    def test_command_alias(self):
        m = marker()
        qid = pb.send(SENDER, ["pipe@localhost"], f"Subject: to a command\n\n{m}\nFrom here\n")
        msg_path = os.path.join(CMD_DIR, "msg.txt")

        def content():
            try:
                with open(msg_path) as f:
                    text = f.read()
            except FileNotFoundError:
                return None
            return text if m in text else None
        text = pb.wait_until(content, what="the command's output file")
        rec = wait_local(qid, self.cursor, lambda r: r.get("DELIVERY_STATUS") == "sent", "the command delivery record")

        # the message on stdin: a From_ line, Return-Path, X-Original-To and Delivered-To, the content unquoted
        self.assertTrue(text.startswith(f"From {SENDER}  "), text[:80])
        self.assertIn(f"\nReturn-Path: <{SENDER}>\nX-Original-To: pipe@localhost\nDelivered-To: pipe@localhost\n", text)
        self.assertIn(f"\n{m}\nFrom here\n", text)
        nobody = pwd.getpwnam("nobody")
        self.assertEqual(os.stat(msg_path).st_uid, nobody.pw_uid)   # a root-owned alias table: default_privs

        with open(os.path.join(CMD_DIR, "env.txt")) as f:
            env = dict(line.split("=", 1) for line in f.read().splitlines() if "=" in line)
        self.assertEqual(env["PATH"], "/usr/bin:/bin")
        self.assertEqual(env["SENDER"], SENDER)
        self.assertEqual(env["RECIPIENT"], "pipe@localhost")
        self.assertEqual(env["ORIGINAL_RECIPIENT"], "pipe@localhost")
        self.assertEqual(env["LOCAL"], "pipe")
        self.assertEqual(env["DOMAIN"], "localhost")
        self.assertEqual(env["USER"], "nobody")
        self.assertEqual(env["LOGNAME"], "nobody")
        self.assertEqual(env["HOME"], nobody.pw_dir)
        self.assertEqual(env["CLIENT_ADDRESS"], "127.0.0.1")
        allowed = {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "SENDER", "RECIPIENT", "ORIGINAL_RECIPIENT",
                   "LOCAL", "DOMAIN", "EXTENSION", "CLIENT_ADDRESS", "CLIENT_HOSTNAME", "CLIENT_HELO",
                   "CLIENT_PROTOCOL", "PWD", "SHLVL", "_"}     # the last three are the shell's own
        self.assertLessEqual(set(env), allowed, "the command saw variables of the daemon's environment")

        self.assertEqual(rec["RECIPIENT"], "pipe@localhost")
        self.assertIn("status=sent (delivered to command: /usr/bin/env > /home/cmdout/env.txt", rec["MESSAGE"])

    def test_file_alias_appends(self):
        path = os.path.join(FILE_DIR, "archive")
        m1, m2 = marker(), marker()
        q1 = pb.send(SENDER, ["archive@localhost"], f"Subject: one\n\n{m1}\n")
        wait_local(q1, self.cursor, lambda r: r.get("DELIVERY_STATUS") == "sent", "the first file delivery")
        q2 = pb.send(SENDER, ["archive@localhost"], f"Subject: two\n\nFrom the start\n{m2}\n")
        rec = wait_local(q2, self.cursor, lambda r: r.get("DELIVERY_STATUS") == "sent", "the second file delivery")
        self.assertIn(f"status=sent (delivered to file: {path})", rec["MESSAGE"])

        with open(path, "rb") as f:
            msgs = [x.decode() for x in pb.mbox_split(f.read())]
        self.assertEqual(len(msgs), 2, msgs)
        self.assertIn(m1, msgs[0])
        self.assertIn(m2, msgs[1])
        self.assertIn("\n>From the start\n", msgs[1])
        self.assertTrue(msgs[1].startswith(f"From {SENDER} "))
        self.assertEqual(os.stat(path).st_uid, pwd.getpwnam("nobody").pw_uid)

    def test_dev_null_discards(self):
        m = marker()
        qid = pb.send(SENDER, ["devnull@localhost"], f"Subject: discard\n\n{m}\n")
        rec = wait_local(qid, self.cursor, lambda r: r.get("DELIVERY_STATUS"), "the /dev/null delivery")
        self.assertIn("dsn=2.0.0, status=sent (delivered to file: /dev/null)", rec["MESSAGE"])
        self.assertIsNone(mailbox_with("devnull", m))

    def sendmail(self, rcpt, body):
        """Submits with sendmail, which smtpd's recipient checks do not see (user+ext is for local)."""
        if not pb.have("sendmail"):
            self.skipTest("no sendmail in this build")
        pb.run("sendmail", "-f", SENDER, rcpt, input=body)

    def test_address_extensions(self):
        # user+ext: the user's mailbox, with the whole address in Delivered-To
        m = marker()
        self.sendmail("alice+tag@localhost", f"Subject: ext\n\n{m}\n")
        a = pb.wait_until(lambda: mailbox_with("alice", m), what="alice+tag's mail")
        self.assertIn("\nDelivered-To: alice+tag@localhost\n", a)

        # alias+ext: the alias of the user part, and the command sees the extension
        m = marker()
        self.sendmail("envcmd+x1@localhost", f"Subject: ext\n\n{m}\n")
        path = os.path.join(CMD_DIR, "env-ext.txt")
        def read_env():
            try:
                with open(path) as f:
                    text = f.read()
            except FileNotFoundError:
                return None
            return "EXTENSION=x1\n" in text and dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
        env = pb.wait_until(read_env, what="the command's environment")
        self.assertEqual(env["LOCAL"], "envcmd+x1")
        self.assertEqual(env["RECIPIENT"], "envcmd+x1@localhost")

        # forward_path's default: ~/.forward+ext for user+ext, ~/.forward otherwise
        write_forward("gina", "carol\n", 0o644)
        os.rename(os.path.join(pwd.getpwnam("gina").pw_dir, ".forward"),
                  os.path.join(pwd.getpwnam("gina").pw_dir, ".forward+lists"))
        m1, m2 = marker(), marker()
        self.sendmail("gina+lists@localhost", f"Subject: lists\n\n{m1}\n")
        self.sendmail("gina@localhost", f"Subject: plain\n\n{m2}\n")
        pb.wait_until(lambda: mailbox_with("carol", m1), what="gina+lists forwarded to carol")
        pb.wait_until(lambda: mailbox_with("gina", m2), what="plain mail for gina in her mailbox")
        self.assertIsNone(mailbox_with("gina", m1))
        self.assertIsNone(mailbox_with("carol", m2))

    def test_command_sends_mail_with_sendmail(self):
        # as vacation(1) does: a command run by local submits new mail through the maildrop
        qid = pb.send(SENDER, ["autoreply@localhost"], "Subject: are you there\n\nx\n")
        wait_local(qid, self.cursor, lambda r: r.get("DELIVERY_STATUS") == "sent", "the command delivery")
        reply = pb.wait_until(lambda: mailbox_with("bob", "reply-from-autoreply"), what="the reply in bob's mailbox")
        self.assertIn("\nReturn-Path: <autoreply@localhost>\n", reply)
        self.assertIn("\nSubject: auto reply\n", reply)

    def test_include_files(self):
        def file_text(name):
            try:
                with open(os.path.join(CMD_DIR, name)) as f:
                    return f.read().strip() or None
            except FileNotFoundError:
                return None

        # a root-owned :include: file: its commands run as default_privs
        m = marker()
        pb.send(SENDER, ["incroot@localhost"], f"Subject: include\n\n{m}\n")
        pb.wait_until(lambda: mailbox_with("carol", m), what="carol's mail through root.list")
        self.assertEqual(pb.wait_until(lambda: file_text("inc-root.txt"), what="inc-root.txt"),
                         str(pwd.getpwnam("nobody").pw_uid))

        # an :include: file of bob's: its commands run as bob; files in :include: are not allowed by default
        qid = pb.send(SENDER, ["incbob@localhost"], "Subject: include\n\nx\n")
        self.assertEqual(pb.wait_until(lambda: file_text("inc-bob.txt"), what="inc-bob.txt"),
                         str(pwd.getpwnam("bob").pw_uid))
        rec = wait_local(qid, self.cursor, lambda r: r.get("DELIVERY_STATUS") == "bounced", "the restricted file")
        self.assertEqual(rec["DSN"], "5.7.1")
        self.assertIn("status=bounced (mail to file is restricted)", rec["MESSAGE"])
        self.assertFalse(os.path.exists(os.path.join(FILE_DIR, "inc")))

        # a world-writable :include: file is not used: the mail waits for the administrator
        m = marker()
        qid = pb.send(SENDER, ["incww@localhost"], f"Subject: include\n\n{m}\n")
        rec = wait_local(qid, self.cursor, lambda r: r.get("DELIVERY_STATUS") == "deferred",
                         "the unsafe include deferral")
        self.assertIn(f"include file {INC_DIR}/ww.list is world writable", rec["MESSAGE"])
        self.assertIsNone(mailbox_with("carol", m))

    def test_forward_to_local_and_remote(self):
        write_forward("dan", "# dan is away\ncarol, remote@example.net\n", 0o644)
        m = marker()
        qid = pb.send(SENDER, ["dan@localhost"], f"Subject: for dan\n\n{m}\n")

        c = pb.wait_until(lambda: mailbox_with("carol", m), what="dan's mail forwarded to carol")
        self.assertRegex(c, r"\nDelivered-To: carol@[^\n]+\n")
        rec = wait_local(qid, self.cursor, lambda r: r.get("RECIPIENT") == "remote@example.net",
                         "the forwarding record")
        self.assertEqual(rec["DELIVERY_STATUS"], "sent")
        self.assertEqual(rec["ORIGINAL_RECIPIENT"], "dan@localhost")
        new_id = re.search(r"status=sent \(forwarded as ([0-9A-F]+)\)$", rec["MESSAGE"]).group(1)
        self.assertNotEqual(new_id, qid)
        self.assertIsNone(mailbox_with("dan", m))

        # the forwarded copy is a new message in the queue (example.net cannot be reached from the container)
        def listed():
            return next((x for x in pb.busctl_call("ListMessages", "s", "")[0] if x[0] == new_id), None)
        entry = pb.wait_until(listed, what=f"{new_id} in ListMessages")
        self.assertEqual(entry[4], SENDER)
        self.assertEqual(entry[5], ["remote@example.net"])
        data = pb.queue_file_content(new_id)       # in whichever queue it is by now
        self.assertIn(b"Delivered-To: dan@localhost\n", data)
        self.assertIn(m.encode(), data)
        self.assertTrue(any(r.get("POSTBUS_ROLE") == "cleanup" for r in pb.journal(QUEUE_ID=new_id, since=self.cursor)))

    def test_world_writable_forward_is_ignored(self):
        write_forward("erin", "carol\n", 0o666)
        m = marker()
        qid = pb.send(SENDER, ["erin@localhost"], f"Subject: for erin\n\n{m}\n")
        pb.wait_until(lambda: mailbox_with("erin", m), what="erin's own mailbox")
        warn = wait_local(qid, self.cursor, lambda r: "world writable" in r.get("MESSAGE", ""), "the warning")
        self.assertIn("warning: file /home/erin/.forward is world writable -- ignored", warn["MESSAGE"])
        self.assertEqual(warn["MESSAGE_ID"], "7fd47c8f70c14cc6acf7a9aaebcc212b")    # explained by journalctl -x
        self.assertEqual(warn["FORWARD_FILE"], "/home/erin/.forward")
        self.assertEqual(warn["PRIORITY"], "4")
        explained = pb.journal_explained(QUEUE_ID=qid, MESSAGE_ID="7fd47c8f70c14cc6acf7a9aaebcc212b",
                                         since=self.cursor)
        self.assertIn("chmod go-w ~/.forward", explained)
        self.assertIsNone(mailbox_with("carol", m))

    def test_forward_read_with_the_users_rights_only(self):
        """local reads a .forward as its user, with no group of its own: a file only root's group may read
        (owned by root, as a .forward may be) is not read through a symbolic link in the user's home."""
        secret = os.path.join(INC_DIR, "root-group-only")
        with open(secret, "w") as f:
            f.write("carol\n")
        os.chown(secret, 0, 0)
        os.chmod(secret, 0o640)
        pw = pwd.getpwnam("erin")
        link = os.path.join(pw.pw_dir, ".forward")
        if os.path.lexists(link):
            os.unlink(link)
        os.symlink(secret, link)
        try:
            m = marker()
            qid = pb.send(SENDER, ["erin@localhost"], f"Subject: for erin\n\n{m}\n")
            pb.wait_until(lambda: mailbox_with("erin", m), what="erin's own mailbox")
            warn = wait_local(qid, self.cursor, lambda r: "cannot be read" in r.get("MESSAGE", ""), "the warning")
            self.assertIn("Permission denied", warn["MESSAGE"])
            self.assertIsNone(mailbox_with("carol", m))
        finally:
            os.unlink(link)

    def test_delivered_to_loop_bounces(self):
        m = marker()
        body = f"Delivered-To: alice@localhost\nSubject: loop\n\n{m}\n"
        qid = pb.send(SENDER, ["alice@localhost"], body)
        rec = wait_local(qid, self.cursor, lambda r: r.get("DELIVERY_STATUS") == "bounced", "the loop bounce")
        self.assertEqual(rec["DSN"], "5.4.6")
        self.assertIn("status=bounced (mail forwarding loop for alice@localhost)", rec["MESSAGE"])
        pb.wait_until(lambda: any(x.get("MESSAGE") == f"{qid}: removed"
                                  for x in pb.journal(QUEUE_ID=qid, since=self.cursor)),
                      what=f"{qid} removed")
        self.assertIsNone(mailbox_with("alice", m))

    def test_alias_loop_terminates(self):
        m = marker()
        qid = pb.send(SENDER, ["loopa@localhost"], f"Subject: alias loop\n\n{m}\n")
        rec = wait_local(qid, self.cursor, lambda r: r.get("DELIVERY_STATUS") == "bounced", "the alias loop bounce")
        self.assertEqual(rec["DSN"], "5.4.6")
        self.assertRegex(rec["MESSAGE"], r"status=bounced \(alias database loop for loop[ab]@")
        pb.wait_until(lambda: any(x.get("MESSAGE") == f"{qid}: removed"
                                  for x in pb.journal(QUEUE_ID=qid, since=self.cursor)),
                      what=f"{qid} removed")
        self.assertIsNone(mailbox_with("loopa", m))
        self.assertIsNone(mailbox_with("loopb", m))

    def test_command_exit_status(self):
        q1 = pb.send(SENDER, ["failcmd@localhost"], "Subject: fail\n\nx\n")
        rec = wait_local(q1, self.cursor, lambda r: r.get("DELIVERY_STATUS") == "bounced", "the EX_NOUSER bounce")
        self.assertEqual(rec["DSN"], "5.1.1")
        self.assertIn("status=bounced (user unknown. Command output: no such mailbox)", rec["MESSAGE"])

        q2 = pb.send(SENDER, ["tempcmd@localhost"], "Subject: temp\n\nx\n")
        rec = wait_local(q2, self.cursor, lambda r: r.get("DELIVERY_STATUS") == "deferred", "the EX_TEMPFAIL deferral")
        self.assertEqual(rec["DSN"], "4.3.0")
        self.assertIn("status=deferred (temporary failure)", rec["MESSAGE"])
        listed = pb.busctl_call("ListMessages", "s", "")[0]
        self.assertTrue(any(x[0] == q2 for x in listed), "a deferred message stays in the queue")

    def test_command_time_limit(self):
        qid = pb.send(SENDER, ["slowcmd@localhost"], "Subject: slow\n\nx\n")
        rec = wait_local(qid, self.cursor, lambda r: r.get("DELIVERY_STATUS") == "bounced", "the time limit bounce")
        self.assertEqual(rec["DSN"], "5.3.0")
        self.assertIn('status=bounced (Command time limit exceeded: "sleep 600")', rec["MESSAGE"])
        # the whole process group is gone
        self.assertFalse(any(b"sleep\x00600" in cmdline for cmdline in process_command_lines()))

    def test_zz_bad_default_privs_stops_local(self):
        # last (by name): it changes main.cf and puts it back. The cursor is from before the change: local
        # may read it at once, woken by qmgr's retry of a deferred message.
        pb.set_config(default_privs="root")
        try:
            m = marker()
            pb.send(SENDER, ["bob@localhost"], f"Subject: while local is misconfigured\n\n{m}\n")
            pb.wait_until(lambda: any('default_privs: "root": must not be a privileged user' in (r.get("MESSAGE") or "")
                                      for r in pb.journal(_SYSTEMD_UNIT="postbus-local.service", since=self.cursor)),
                          what="local's configuration error")
            self.assertIsNone(mailbox_with("bob", m))
        finally:
            pb.set_config(default_privs="nobody")
        pb.wait_until(lambda: mailbox_with("bob", m), what="the mail once local is set up right")


if __name__ == "__main__":
    unittest.main()
