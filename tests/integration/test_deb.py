#!/usr/bin/python3
"""The Debian package: built from this tree with dpkg-buildpackage (tools/build-deb) inside a bare
container, checked by lintian, installed with apt over the container's own MTA, then used, reinstalled
and purged. Runs with run-test --no-postbus: nothing of the build is installed before the package."""

import glob
import os
import pwd
import shutil
import subprocess
import unittest

import postbus

SRCROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = '/var/tmp/postbus-deb'
APT_ENV = dict(os.environ, DEBIAN_FRONTEND='noninteractive')


def apt_get(*args):
    p = subprocess.run(['apt-get', '-y', '-q', *args], env=APT_ENV,
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise AssertionError(f'apt-get {" ".join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}')
    return p.stdout


def package_status():
    p = subprocess.run(['dpkg-query', '-W', '-f', '${db:Status-Abbrev}', 'postbus'], capture_output=True, text=True)
    return p.stdout.strip() if p.returncode == 0 else ''


class DebianPackage(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        env = dict(os.environ, DEB_BUILD_OPTIONS='nocheck')
        p = subprocess.run([os.path.join(SRCROOT, 'tools', 'build-deb'), OUT], env=env,
                           capture_output=True, text=True)
        cls.build = p
        print(p.stdout[-3000:])
        if p.returncode != 0:
            raise AssertionError(f'tools/build-deb failed ({p.returncode}):\n{p.stdout[-6000:]}\n{p.stderr[-4000:]}')
        debs = [d for d in glob.glob(f'{OUT}/postbus_*.deb')]
        assert len(debs) == 1, debs
        cls.deb = debs[0]

    def step_1_build_and_lintian(self):
        self.assertTrue(glob.glob(f'{OUT}/postbus-dbgsym_*.deb'), 'no -dbgsym package')
        with open(f'{OUT}/lintian.txt') as f:
            report = f.read()
        artifacts = os.environ.get('POSTBUS_ARTIFACTS')
        if artifacts and os.path.isdir(artifacts):
            shutil.copy(f'{OUT}/lintian.txt', os.path.join(artifacts, 'lintian.txt'))
            print(f'lintian report: {artifacts}/lintian.txt')
        errors = [line for line in report.splitlines() if line.startswith('E:')]
        self.assertEqual(errors, [], report)
        fields = postbus.run('dpkg-deb', '-f', self.deb, 'Provides', 'Conflicts', 'Replaces')
        for field in ('Provides', 'Conflicts', 'Replaces'):
            self.assertIn(f'{field}: mail-transport-agent', fields)
        files = postbus.run('dpkg-deb', '-c', self.deb)
        for path in ('./usr/sbin/sendmail', './usr/sbin/mailq', './usr/sbin/newaliases', './usr/sbin/postqueue',
                     './usr/sbin/postsuper', './usr/sbin/postcat', './etc/postbus/main.cf'):
            self.assertIn(path, files)
        p = subprocess.run(f'dpkg-deb --ctrl-tarfile {self.deb} | tar -xO ./conffiles', shell=True,
                           capture_output=True, text=True, check=True)
        self.assertIn('/etc/postbus/main.cf', p.stdout.split())

    def step_2_install_delivers(self):
        # A policy-rc.d left by an interrupted tools/deps.sh on the host would keep the package's units
        # from starting: this container is a throwaway overlay, so take it away here.
        if os.path.exists('/usr/sbin/policy-rc.d'):
            os.remove('/usr/sbin/policy-rc.d')
        # The container is the host's Debian with its own MTA (Postfix, for other tests): the package
        # conflicts with mail-transport-agent, so apt replaces it, as it would on a real system.
        apt_get('install', self.deb)
        self.assertEqual(package_status(), 'ii')
        postbus.wait_until(lambda: postbus.unit_active('postbus.target') and postbus.unit_active('postbus-qmgr.service'),
                           timeout=60, what='postbus.target started by the package')
        self.assertEqual(postbus.systemctl('is-enabled', 'postbus.target').stdout.strip(), 'enabled')
        for name in ('postbus',):
            pwd.getpwnam(name)
        mode = os.stat('/usr/sbin/sendmail').st_mode
        self.assertTrue(mode & 0o2000, 'sendmail is not set-group-ID after install')
        self.assertTrue(os.path.exists('/etc/aliases.gdbm'), 'the aliases table was not built on install')

        postbus.add_user('debuser')
        cursor = postbus.journal_cursor()
        message = b'From: root@localhost\nTo: debuser\nSubject: from the package\n\nhello from the .deb\n'
        subprocess.run(['/usr/sbin/sendmail', '-t'], input=message, check=True)
        text = postbus.wait_until(lambda: [m for m in postbus.mbox_messages('debuser') if 'hello from the .deb' in m],
                                  timeout=60, what='the mail in /var/mail/debuser')
        self.assertEqual(len(text), 1)
        postbus.wait_until(lambda: postbus.journal(SYSLOG_IDENTIFIER='postbus/local', since=cursor),
                           timeout=30, what="local's delivery record")
        records = [r['MESSAGE'] for r in postbus.journal(SYSLOG_IDENTIFIER='postbus/local', since=cursor)]
        self.assertTrue(any('to=<debuser@' in r and 'status=sent' in r for r in records), records)
        # The queue answers on the system bus (empty now), and no role asked for newaliases.
        self.assertEqual(postbus.busctl_call('ListMessages', 's', ''), [[]])
        self.assertEqual([r for r in postbus.journal(since=cursor) if 'run newaliases' in r.get('MESSAGE', '')], [])

    def step_3_reinstall_keeps_main_cf(self):
        with open('/etc/postbus/main.cf', 'a') as f:
            f.write('\n# edited by the administrator\ndelay_warning_time = 7h\n')
        apt_get('install', '--reinstall', self.deb)
        with open('/etc/postbus/main.cf') as f:
            self.assertIn('# edited by the administrator', f.read())
        self.assertEqual(package_status(), 'ii')
        postbus.wait_until(lambda: postbus.unit_active('postbus-qmgr.service'), timeout=60,
                           what='postbus running after the reinstall')
        # the edited value is in force (postbusctl shows it in seconds)
        self.assertEqual(postbus.run('postbusctl', 'config', 'delay_warning_time').strip(),
                         'delay_warning_time = 25200s')

    def step_4_purge_removes_users_and_spool(self):
        apt_get('purge', 'postbus')
        self.assertEqual(package_status(), '')
        self.assertFalse(postbus.unit_active('postbus-qmgr.service'))
        self.assertFalse(os.path.exists('/var/spool/postbus'))
        self.assertFalse(os.path.exists('/etc/postbus'))
        users = [p.pw_name for p in pwd.getpwall() if p.pw_name == 'postbus' or p.pw_name.startswith('postbus-')]
        self.assertEqual(users, [])
        self.assertFalse(os.path.exists('/usr/sbin/postqueue'))

    def test_package_life(self):
        # One life, in order: each step builds on the one before.
        for name in sorted(n for n in dir(self) if n.startswith('step_')):
            with self.subTest(step=name):
                getattr(self, name)()


if __name__ == '__main__':
    unittest.main()
