"""A bad main.cf value stops a role at start, naming the file and line; an unknown name is only
warned about."""
import os
import pathlib
import shutil
import unittest

import postbus as pb

MAIN_CF = pathlib.Path("/etc/postbus/main.cf")


class Config(unittest.TestCase):
    def assert_bad_line_stops(self, role, line_text, message):
        """Appends line_text to main.cf; role then refuses to start, and its journal names main.cf's line in
        message (a format with {line}). main.cf is put back and the role started again."""
        unit = f"postbus-{role}.service"
        original = MAIN_CF.read_text()
        try:
            with open(MAIN_CF, "a") as f:
                f.write(f"\n# added by the test\n{line_text}\n")
            line = len(MAIN_CF.read_text().splitlines())
            cursor = pb.journal_cursor()
            pb.systemctl("restart", unit, check=False)
            pb.wait_until(lambda: not pb.unit_active(unit), what=f"{role} refusing to start")
            recs = pb.journal(_SYSTEMD_UNIT=unit, since=cursor)
            expected = f"/etc/postbus/main.cf:{line}: " + message
            self.assertTrue(any(r["MESSAGE"] == expected for r in recs), [r["MESSAGE"] for r in recs][-5:])
        finally:
            MAIN_CF.write_text(original)
            pb.systemctl("reset-failed", unit, check=False)
            pb.systemctl("restart", unit)
        self.assertTrue(pb.unit_active(unit))

    def test_bad_value_stops_role_with_file_and_line(self):
        self.assert_bad_line_stops("qmgr", "smtpd_timeout = eventually", 'bad value for smtpd_timeout: "eventually"')

    def test_bad_mailbox_delivery_lock_stops_local(self):
        self.assert_bad_line_stops("local", "mailbox_delivery_lock = fcntl, flock",
                                   'mailbox_delivery_lock: "fcntl, flock": only fcntl and dotlock are known')

    def test_bad_always_bcc_stops_cleanup(self):
        self.assert_bad_line_stops("cleanup", "always_bcc = archive@example.org, boss@example.org",
                                   'always_bcc: "archive@example.org, boss@example.org": not one valid address')

    def test_install_keeps_edited_main_cf_and_builds_aliases(self):
        # The install this container got (run-test's meson install) built the aliases database.
        self.assertTrue(os.path.exists("/etc/aliases.gdbm"), "meson install did not run newaliases")
        original = MAIN_CF.read_text()
        try:
            MAIN_CF.write_text(original + "\n# an administrator's edit\n")
            meson = shutil.which("meson")
            pb.run(meson, "install", "-C", os.environ["POSTBUS_BUILDDIR"], "--no-rebuild", "--quiet")
            self.assertIn("# an administrator's edit", MAIN_CF.read_text())
            dist = [p for p in ("/usr/local/share/postbus/main.cf.dist", "/usr/share/postbus/main.cf.dist")
                    if os.path.exists(p)]
            self.assertTrue(dist, "no main.cf.dist installed")
            self.assertEqual(pathlib.Path(dist[0]).read_text(), original)
        finally:
            MAIN_CF.write_text(original)

    def test_postbusctl_config_sets_parameters(self):
        original = MAIN_CF.read_text()
        try:
            pb.run("postbusctl", "config", "smtpd_banner=$myhostname ESMTP edited", "relayhost = [relay.test]:587")
            text = MAIN_CF.read_text()
            self.assertIn("\nsmtpd_banner = $myhostname ESMTP edited\n", text)
            self.assertIn("\nrelayhost = [relay.test]:587\n", text)
            out = pb.run("postbusctl", "config", "-n")
            self.assertIn("relayhost = [relay.test]:587", out)
            self.assertTrue(any(line.startswith("smtpd_banner = ") and line.endswith(" ESMTP edited")
                                for line in out.splitlines()), out)
            # set again: the setting is replaced, not repeated
            pb.run("postbusctl", "config", "relayhost=[other.test]")
            self.assertEqual(MAIN_CF.read_text().count("\nrelayhost ="), 1)
            # a value that does not parse changes nothing and names the file and line
            before = MAIN_CF.read_text()
            p = pb.run_process("postbusctl", "config", "smtpd_timeout=soon", check=False)
            self.assertEqual(p.returncode, 78, p.stderr)
            self.assertIn('/etc/postbus/main.cf:', p.stderr)
            self.assertIn('bad value for smtpd_timeout: "soon"', p.stderr)
            self.assertEqual(MAIN_CF.read_text(), before)
            self.assertEqual(oct(MAIN_CF.stat().st_mode & 0o777), "0o644")
        finally:
            MAIN_CF.write_text(original)

    def test_unknown_name_warned(self):
        original = MAIN_CF.read_text()
        try:
            with open("/etc/postbus/main.cf", "a") as f:
                f.write("\nsome_postfix_only_setting = yes\n")
            cursor = pb.journal_cursor()
            pb.systemctl("restart", "postbus-qmgr.service")
            self.assertTrue(pb.unit_active("postbus-qmgr.service"))
            recs = pb.journal(_SYSTEMD_UNIT="postbus-qmgr.service", PRIORITY="4", since=cursor)
            self.assertTrue(any('unknown parameter "some_postfix_only_setting"' in r["MESSAGE"] for r in recs))
        finally:
            MAIN_CF.write_text(original)
            pb.systemctl("restart", "postbus-qmgr.service")


if __name__ == "__main__":
    unittest.main()
