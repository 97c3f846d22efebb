"""Lookup tables and the control tool: `postbusctl map build` compiles Postfix-format text into a GDBM
file that standard GDBM readers open, `postbusctl map query` finds keys (postmap -q exit statuses), a
long-lived reader sees a rebuilt table without restarting, a bad line fails with file:line and leaves
the old database in place; `postbusctl config` prints parameters as main.cf sets them; `postbusctl
queue` lists a deferred message, as a mailq table and as JSON lines."""
import dbm.gnu
import hashlib
import json
import os
import select
import shutil
import subprocess
import tempfile
import unittest

import postbus as pb


def postbusctl_path():
    for d in ("/usr/local/sbin", "/usr/sbin"):
        p = os.path.join(d, "postbusctl")
        if os.access(p, os.X_OK):
            return p
    p = shutil.which("postbusctl")
    if not p:
        raise AssertionError("postbusctl is not installed")
    return p


def ctl(*args, input=None):
    return pb.run_process([postbusctl_path(), *args], check=False, input=input)


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class LongLivedQuery:
    """`postbusctl map query TABLE -`: one process that keeps the table open and answers one key per
    line, as a role does across many lookups."""

    def __init__(self, table):
        self.p = subprocess.Popen([postbusctl_path(), "map", "query", table, "-"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)

    def ask(self, key):
        self.p.stdin.write(key + "\n")
        self.p.stdin.flush()
        ready, _, _ = select.select([self.p.stdout], [], [], 30)
        if not ready:
            raise AssertionError(f"no answer for {key!r} from the long-lived query")
        line = self.p.stdout.readline()
        if not line:
            raise AssertionError(f"long-lived query ended: {self.p.stderr.read()}")
        k, _, v = line.rstrip("\n").partition("\t")
        return k, v

    def close(self):
        self.p.stdin.close()
        rc = self.p.wait(timeout=30)
        self.p.stdout.close()
        self.p.stderr.close()
        return rc


class Tables(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="tables-", dir="/etc/postbus")
        self.addCleanup(shutil.rmtree, self.dir)

    def write(self, name, text, mode=0o644):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def test_build_and_query(self):
        src = self.write("access",
                         "# client access\n"
                         "Example.ORG      REJECT\n"
                         "spam@example.net 550 5.7.1\n"
                         "    no spam here\n"
                         "\n"
                         "192.168.1        OK\n", mode=0o640)
        p = ctl("map", "build", src)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("3 entries", p.stdout)
        db = src + ".gdbm"
        self.assertEqual(os.stat(db).st_mode & 0o7777, 0o640)
        self.assertEqual([f for f in os.listdir(self.dir) if ".tmp." in f], [])

        for spec in (src, "gdbm:" + src, "hash:" + src):
            p = ctl("map", "query", spec, "EXAMPLE.org")
            self.assertEqual((p.returncode, p.stdout), (0, "REJECT\n"), p.stderr)
        p = ctl("map", "query", src, "spam@Example.NET")
        self.assertEqual(p.stdout, "550 5.7.1 no spam here\n")

        # not found: exit 1 with a message; errors: exit 2
        p = ctl("map", "query", src, "nobody.example")
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stdout, "")
        self.assertIn("not found", p.stderr)
        p = ctl("map", "query", os.path.join(self.dir, "nothere"), "x")
        self.assertEqual(p.returncode, 2)
        self.assertIn("does not exist", p.stderr)
        p = ctl("map", "query", "ldap:" + src, "x")
        self.assertEqual(p.returncode, 2)
        self.assertIn("Unsupported table type", p.stderr)
        # a map read as regexp rules: its first entry is no rule, named with its line
        p = ctl("map", "query", "regexp:" + src, "x")
        self.assertEqual(p.returncode, 2)
        self.assertIn(src + ":2: a rule starts with /pattern/", p.stderr)

        # a standard GDBM reader opens the file: keys lower-case, values without a NUL
        with dbm.gnu.open(db, "ru") as d:
            self.assertEqual(sorted(d.keys()), [b"192.168.1", b"example.org", b"spam@example.net"])
            self.assertEqual(d[b"192.168.1"], b"OK")

    def test_aliases(self):
        src = self.write("aliases",
                         "postmaster: root\n"
                         "Team: alice,\n"
                         "\tbob,\n"
                         "      carol@example.org\n")
        p = ctl("--aliases", "map", "build", src)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("2 aliases", p.stdout)
        p = ctl("map", "query", src, "team")
        self.assertEqual(p.stdout, "alice, bob, carol@example.org\n")
        # as with postmap, the table may be named with its type
        self.write("aliases", "postmaster: admin\n")
        p = ctl("--aliases", "map", "build", "hash:" + src)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(ctl("map", "query", "hash:" + src, "postmaster").stdout, "admin\n")
        p = ctl("map", "build", "ldap:" + src)
        self.assertEqual(p.returncode, 64)
        self.assertIn("Unsupported table type", p.stderr)
        # a cidr: table has no database; its text is checked, and this one is no cidr table
        p = ctl("map", "build", "cidr:" + src)
        self.assertEqual(p.returncode, 65)
        self.assertIn(src + ":1: bad network address", p.stderr)
        # without --aliases the text is read as a map: "lonely" has no value
        p = ctl("map", "build", self.write("notmap", "postmaster: root\nlonely\n"))
        self.assertEqual(p.returncode, 65)
        self.assertIn("notmap:2: expected format: key whitespace value", p.stderr)

    def test_rebuild_seen_by_long_lived_reader(self):
        src = self.write("transport", "example.org local:\nother.example error:gone\n")
        self.assertEqual(ctl("map", "build", src).returncode, 0)
        reader = LongLivedQuery(src)
        try:
            self.assertEqual(reader.ask("example.org"), ("example.org", "local:"))
            old_inode = os.stat(src + ".gdbm").st_ino

            self.write("transport", "example.org smtp:[relay.example]\nnew.example local:\n")
            p = ctl("map", "build", src)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertNotEqual(os.stat(src + ".gdbm").st_ino, old_inode, "replaced by rename")

            # the same process, its table open all along, sees the new database
            self.assertEqual(reader.ask("example.org"), ("example.org", "smtp:[relay.example]"))
            self.assertEqual(reader.ask("NEW.example"), ("NEW.example", "local:"))
        finally:
            self.assertEqual(reader.close(), 0)

    def test_bad_input_keeps_old_database(self):
        src = self.write("virtual", "info@example.org alice\nsales@example.org bob\n")
        self.assertEqual(ctl("map", "build", src).returncode, 0)
        db = src + ".gdbm"
        before = (digest(db), os.stat(db).st_ino)

        self.write("virtual", "info@example.org carol\n# fine so far\n\nbroken-line\n")
        p = ctl("map", "build", src)
        self.assertEqual(p.returncode, 65)      # EX_DATAERR
        self.assertIn(f"{src}:4: expected format: key whitespace value", p.stderr)
        self.assertEqual((digest(db), os.stat(db).st_ino), before)
        self.assertEqual([f for f in os.listdir(self.dir) if ".tmp." in f], [])
        self.assertEqual(ctl("map", "query", src, "info@example.org").stdout, "alice\n")

        # a duplicate key is a warning naming file and line; the last value wins
        self.write("virtual", "info@example.org carol\nINFO@example.org dave\n")
        p = ctl("map", "build", src)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(f"{src}:2: duplicate entry \"info@example.org\"", p.stderr)
        self.assertEqual(ctl("map", "query", src, "info@example.org").stdout, "dave\n")

    def test_usage_errors(self):
        for args, status in ((["map"], 64), (["map", "frob", "x"], 64), (["nosuch"], 64), ([], 64),
                             (["--bogus", "queue"], 64), (["config", "no_such_parameter"], 64),
                             (["map", "build", "/nonexistent/table"], 66)):
            p = ctl(*args)
            self.assertEqual(p.returncode, status, (args, p.stderr))
            self.assertTrue(p.stderr.strip(), args)

    def test_config(self):
        pb.write_config({"smtpd_timeout": "5m", "myhostname": "mail.tables.example"})
        out = ctl("config").stdout
        lines = dict(line.split(" =", 1) for line in out.splitlines())
        self.assertEqual(lines["smtpd_timeout"].strip(), "300s")
        self.assertEqual(lines["myhostname"].strip(), "mail.tables.example")
        self.assertEqual(lines["myorigin"].strip(), "mail.tables.example")     # $myhostname expanded
        self.assertIn("queue_run_delay", lines)
        self.assertEqual(ctl("config", "smtpd_banner").stdout, "smtpd_banner = mail.tables.example ESMTP postbus\n")
        self.assertNotEqual(ctl("--defaults", "config", "myhostname").stdout,
                            "myhostname = mail.tables.example\n")
        non_default = ctl("-n", "config").stdout
        self.assertIn("smtpd_timeout = 300s", non_default)
        self.assertNotIn("hopcount_limit", non_default)

        bad = self.write("main.cf", "smtpd_timeout = 5m\nline_length_limit = 1\n")
        p = ctl("config", "-c", bad)
        self.assertEqual(p.returncode, 78)      # EX_CONFIG
        self.assertIn(f"{bad}:2", p.stderr)


class Queue(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        pb.add_user("tina")
        pb.set_config(queue_run_delay="1s", minimal_backoff_time="2s")

    def test_queue_lists_deferred_message(self):
        p = ctl("queue")
        self.assertEqual(p.returncode, 0, p.stderr)

        pb.systemctl("stop", "postbus-local.socket", "postbus-local.service")
        pb.systemctl("mask", "--runtime", "postbus-local.socket", "postbus-local.service")
        try:
            held = pb.send("sender@example.org", ["tina@localhost"], "Subject: held\n\nwaiting\n")
            pb.wait_until(lambda: pb.busctl_get("Deferred") >= 1, what="a deferred message")

            p = ctl("queue", "--json")
            self.assertEqual(p.returncode, 0, p.stderr)
            entries = [json.loads(line) for line in p.stdout.splitlines()]
            entry = next((e for e in entries if e["queue_id"] == held), None)
            self.assertIsNotNone(entry, p.stdout)
            self.assertIn(entry["queue_name"], ("deferred", "active"))
            self.assertEqual(entry["sender"], "sender@example.org")
            self.assertEqual([r["address"] for r in entry["recipients"]], ["tina@localhost"])
            if entry["queue_name"] == "deferred":       # why, as Postfix's postqueue -j says it
                self.assertIn("delay_reason", entry["recipients"][0])
            self.assertGreater(entry["message_size"], 0)
            self.assertGreater(entry["arrival_time"], 1_600_000_000)

            p = ctl("queue")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn(held, p.stdout)
            self.assertIn("sender@example.org", p.stdout)
            self.assertRegex(p.stdout, r"-- \d+ Kbytes in \d+ Requests?\.")

            p = ctl("queue", "list", "nosuchqueue")
            self.assertEqual(p.returncode, 64)
            self.assertIn("No queue named", p.stderr)
            p = ctl("queue", "nosuchcommand")
            self.assertEqual(p.returncode, 64)
            self.assertIn("Unknown queue command", p.stderr)
            self.assertEqual(ctl("queue", "list", "--json", "hold").stdout, "")
        finally:
            pb.systemctl("unmask", "--runtime", "postbus-local.socket", "postbus-local.service")
            pb.systemctl("start", "postbus-local.socket")

        pb.wait_until(lambda: held not in ctl("queue", "--json").stdout, timeout=60,
                      what="the held message delivered and gone from the queue")


if __name__ == "__main__":
    unittest.main()
