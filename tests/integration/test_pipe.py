"""The pipe delivery role (Postfix's pipe(8)), called directly over its socket as qmgr calls it:
Deliver(queue file, queue ID, sender, transport, nexthop, options, recipients) with a queue file that smtpd
and cleanup wrote while qmgr was stopped. Checks the command line the argv= macros make, the message with
the headers the flags add, the identity, directory and environment the command runs with, the exit status
mapping, the time limit, the refusal of privileged users, the size limit, one command for several
recipients, the journal records, and that commands run side by side."""
import os
import pwd
import threading
import time
import unittest

import dbus

import postbus as pb

PIPE_ADDRESS = 'unix:path=/run/postbus/pipe'
SCRIPTS = '/usr/local/lib/postbus-pipe-test'
USER = 'pipeuser'
OUT = f'/home/{USER}/out'
SENDER = 'sender@example.org'
QMGR_UNITS = ('postbus-qmgr.socket', 'postbus-qmgr.service')

# record TAG ARGS...: what the command got and how it ran, into $OUT/TAG.*
RECORD = f"""#!/bin/sh
tag=$1
shift
out={OUT}
date +%s.%N > "$out/$tag.start"
printf '%s\\n' "$@" > "$out/$tag.argv"
cat > "$out/$tag.msg"
id -u > "$out/$tag.uid"
id -g > "$out/$tag.gid"
pwd > "$out/$tag.cwd"
env > "$out/$tag.env"
ls /sys/class/net > "$out/$tag.net"
date +%s.%N > "$out/$tag.end"
"""

# fail STATUS TEXT...: reads the message, says TEXT, exits STATUS
FAIL = """#!/bin/sh
status=$1
shift
cat > /dev/null
echo "$@"
exit "$status"
"""

# hang TAG: leaves a process behind in its session, then never ends
HANG = f"""#!/bin/sh
sleep 300 &
echo $! > "{OUT}/$1.child"
echo started
sleep 300
"""

# slow TAG SECONDS: when it started and ended, reading the message at the end
SLOW = f"""#!/bin/sh
date +%s.%N > "{OUT}/$1.start"
sleep "$2"
cat > /dev/null
date +%s.%N > "{OUT}/$1.end"
"""


def write_script(name, text):
    path = os.path.join(SCRIPTS, name)
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)
    os.chmod(path, 0o755)
    return path


def out(name):
    with open(os.path.join(OUT, name), encoding='utf-8', newline='') as f:
        return f.read()


def deliver(qid, recipients, options, transport='testpipe', sender=SENDER, nexthop='localhost', conn=None):
    """Calls org.postbus.Delivery1.Deliver on pipe's socket with the queue file of qid, opened read-only;
    recipients are (index, address) pairs. Returns the results as a list of tuples of str and int."""
    own = conn is None
    if own:
        conn = pb.p2p_connect(PIPE_ADDRESS)
    fd = os.open(os.path.join(pb.SPOOL, 'incoming', qid), os.O_RDONLY | os.O_CLOEXEC)
    try:
        obj = conn.get_object(None, '/org/postbus/Delivery1', introspect=False)
        method = obj.get_dbus_method('Deliver', 'org.postbus.Delivery1')
        res, hosts = method(dbus.types.UnixFd(fd), qid, sender, transport, nexthop,
                     dbus.Dictionary(options, signature='ss'),
                     dbus.Array([(dbus.UInt32(i), a) for i, a in recipients], signature='(us)'),
                     signature='hssssa{ss}a(us)', timeout=120)
        assert len(hosts) == 0, hosts   # only smtp and lmtp report server addresses
        return [(int(i), str(s), str(d), str(r), str(t)) for i, s, d, r, t in res]
    finally:
        os.close(fd)
        if own:
            conn.close()


def options(argv, user=USER, **more):
    return dict(argv=argv, user=user, **{k: str(v) for k, v in more.items()})


class Pipe(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for u in ('alice', 'bob', USER):
            pb.add_user(u)
        os.makedirs(SCRIPTS, mode=0o755, exist_ok=True)
        cls.record = write_script('record', RECORD)
        cls.fail = write_script('fail', FAIL)
        cls.hang = write_script('hang', HANG)
        cls.slow = write_script('slow', SLOW)
        pw = pwd.getpwnam(USER)
        os.makedirs(OUT, exist_ok=True)
        os.chown(OUT, pw.pw_uid, pw.pw_gid)

        # qmgr stays away, so that the messages stay in incoming/ for these calls.
        pb.systemctl('stop', *QMGR_UNITS)
        pb.systemctl('mask', '--runtime', *QMGR_UNITS)
        body = 'Subject: piped\nDelivered-To: carol@example.net\n\nFrom the start\n.a dot\nlast line\n'
        cls.qid = pb.send(SENDER, ['alice@localhost', 'bob@localhost'], body)
        pb.wait_until(lambda: os.path.exists(os.path.join(pb.SPOOL, 'incoming', cls.qid)),
                      what=f'{cls.qid} in incoming')
        cls.content = pb.queue_file_content(cls.qid).decode()
        cls.rcpts = [d.decode() for t, d in pb.queue_file_records(cls.qid) if t == 'R']

    @classmethod
    def tearDownClass(cls):
        os.unlink(os.path.join(pb.SPOOL, 'incoming', cls.qid))
        pb.systemctl('unmask', '--runtime', *QMGR_UNITS)
        pb.systemctl('start', *QMGR_UNITS)

    def setUp(self):
        self.cursor = pb.journal_cursor()

    def journal(self, transport):
        return pb.journal(QUEUE_ID=self.qid, POSTBUS_ROLE='pipe', RELAY=transport, since=self.cursor)

    def test_delivery(self):
        argv = f'{self.record} t1 ${{sender}} ${{recipient}} ${{user}} ${{domain}} ${{nexthop}} ${{client_address}} ' \
               f'${{queue_id}} ${{size}}'
        res = deliver(self.qid, [(0, 'Alice@LocalHost')], options(argv, flags='DRhu'), transport='dovecot',
                      nexthop='LocalHost')
        self.assertEqual(res, [(0, 'sent', '2.0.0', 'dovecot', 'delivered via dovecot service')])

        # the macros, with h and u folding the recipient and the next hop
        self.assertEqual(out('t1.argv').splitlines(),
                         [SENDER, 'alice@localhost', 'alice', 'localhost', 'localhost', '127.0.0.1', self.qid,
                          str(len(self.content.encode()))])
        # the headers R and D ask for, then the message as the queue has it
        self.assertEqual(out('t1.msg'),
                         f'Return-Path: <{SENDER}>\nDelivered-To: Alice@LocalHost\n' + self.content)
        pw = pwd.getpwnam(USER)
        self.assertEqual(int(out('t1.uid')), pw.pw_uid)
        self.assertEqual(int(out('t1.gid')), pw.pw_gid)
        self.assertEqual(out('t1.cwd').strip(), pw.pw_dir)
        env = dict(line.split('=', 1) for line in out('t1.env').splitlines() if '=' in line)
        self.assertEqual(env.get('PATH'), '/usr/bin:/bin')
        for leaked in ('INVOCATION_ID', 'LISTEN_FDS', 'NOTIFY_SOCKET', 'WATCHDOG_USEC', 'JOURNAL_STREAM'):
            self.assertNotIn(leaked, env)

        recs = pb.wait_until(lambda: self.journal('dovecot'), what='the journal record of the delivery')
        self.assertEqual(len(recs), 1, recs)
        r = recs[0]
        self.assertEqual((r['RECIPIENT'], r['ORIGINAL_RECIPIENT'], r['DSN'], r['DELIVERY_STATUS']),
                         ('Alice@LocalHost', self.rcpts[0], '2.0.0', 'sent'))
        self.assertEqual(r['DSN_ACTION'], 'relayed')
        self.assertRegex(r['MESSAGE'], rf'^{self.qid}: to=<Alice@LocalHost>, orig_to=<{self.rcpts[0]}>, '
                                       r'relay=dovecot, delay=[0-9.]+, delays=[0-9./]+, dsn=2\.0\.0, status=sent '
                                       r'\(delivered via dovecot service\)$')
        # socket-activated: running now, for this call; its commands inside its sandbox (no network)
        self.assertTrue(pb.unit_active('postbus-pipe.service'))
        self.assertEqual(pb.unit_property('postbus-pipe.service', 'TriggeredBy'), 'postbus-pipe.socket')
        self.assertEqual(out('t1.net').split(), ['lo'])

    def test_flags_and_eol(self):
        res = deliver(self.qid, [(1, 'bob@localhost')],
                      options(f'{self.record} t2 ${{mailbox}}', flags='FOX.>B', eol='\\r\\n'), transport='flags')
        self.assertEqual([x[1] for x in res], ['sent'])
        msg = out('t2.msg')
        self.assertRegex(msg, rf'^From {SENDER}  \w\w\w \w\w\w [ 0-9]\d \d\d:\d\d:\d\d \d{{4}}\r\n'
                              rf'X-Original-To: {self.rcpts[1]}\r\n')
        self.assertIn('\r\n>From the start\r\n..a dot\r\nlast line\r\n\r\n', msg)
        self.assertTrue(msg.endswith('last line\r\n\r\n'))
        self.assertNotIn('\n', msg.replace('\r\n', ''))
        recs = pb.wait_until(lambda: self.journal('flags'), what='the journal record')
        self.assertEqual(recs[0]['DSN_ACTION'], 'delivered')   # X: final delivery

    def test_exit_status(self):
        res = deliver(self.qid, [(0, 'alice@localhost')], options(f'{self.fail} 75 try later'), transport='st75')
        self.assertEqual(res, [(0, 'deferred', '4.3.0', 'st75', 'temporary failure. Command output: try later')])
        res = deliver(self.qid, [(0, 'alice@localhost')], options(f'{self.fail} 67 no such user here'),
                      transport='st67')
        self.assertEqual(res, [(0, 'bounced', '5.1.1', 'st67', 'user unknown. Command output: no such user here')])
        res = deliver(self.qid, [(0, 'alice@localhost')], options(f'{self.fail} 3 bad luck'), transport='st3')
        self.assertEqual(res, [(0, 'bounced', '5.3.0', 'st3',
                                f'Command died with status 3: "{self.fail}". Command output: bad luck')])
        res = deliver(self.qid, [(0, 'alice@localhost')], options(f'{self.fail} 1 4.2.2 Mailbox full'),
                      transport='stdsn')
        self.assertEqual(res, [(0, 'deferred', '4.2.2', 'stdsn', 'Mailbox full')])

        rec = pb.wait_until(lambda: self.journal('st67'), what='the journal record')[0]
        self.assertEqual((rec['DSN'], rec['DELIVERY_STATUS']), ('5.1.1', 'bounced'))
        self.assertIn('status=bounced (user unknown. Command output: no such user here)', rec['MESSAGE'])

    def test_time_limit(self):
        t0 = time.monotonic()
        res = deliver(self.qid, [(0, 'alice@localhost')], options(f'{self.hang} t4', time_limit=2),
                      transport='slowpoke')
        self.assertLess(time.monotonic() - t0, 60)
        # as Postfix's pipe: the mail is returned; the command's output is in the text
        self.assertEqual(res, [(0, 'bounced', '5.3.0', 'slowpoke',
                                f'Command time limit exceeded: "{self.hang}". Command output: started')])
        # what it left behind in its session was killed with it
        child = int(out('t4.child'))
        pb.wait_until(lambda: not os.path.exists(f'/proc/{child}'), what=f'process {child} gone')

    def test_refused_users(self):
        for user, says in (('root', 'refusing to run a command as root'),
                           ('postbus', 'refusing to run a command as the mail system owner'),
                           ('postbus-smtpd', "refusing to run a command as a mail system role's user"),
                           (f'{USER}:postdrop',
                            f'user={USER}:postdrop: refusing to run a command with a mail system group'),
                           ('nosuchuser', 'unknown user name: nosuchuser')):
            res = deliver(self.qid, [(0, 'alice@localhost')], options(f'{self.record} t5', user=user),
                          transport='refused')
            self.assertEqual(len(res), 1)
            self.assertEqual(res[0][:4], (0, 'deferred', '4.3.5', 'refused'))
            self.assertIn(says, res[0][4])
        self.assertFalse(os.path.exists(os.path.join(OUT, 't5.argv')))
        warnings = [r['MESSAGE'] for r in pb.journal(QUEUE_ID=self.qid, POSTBUS_ROLE='pipe', PRIORITY='4', since=self.cursor)]
        self.assertTrue(any('transport refused: user=root: refusing to run a command as root' in w for w in warnings),
                        warnings)

    def test_limits_and_configuration_errors(self):
        res = deliver(self.qid, [(0, 'alice@localhost')], options(f'{self.record} t6', size=10), transport='small')
        self.assertEqual(res, [(0, 'bounced', '5.2.3', 'small', 'message too large')])
        self.assertFalse(os.path.exists(os.path.join(OUT, 't6.argv')))

        res = deliver(self.qid, [(0, 'alice@localhost')], options(f'{self.record} t6 ${{nosuch}}'), transport='bad')
        self.assertEqual(res[0][:3], (0, 'deferred', '4.3.5'))
        self.assertIn('unknown macro name "nosuch"', res[0][4])
        res = deliver(self.qid, [(0, 'alice@localhost')], options(f'{self.record} t6', chroot='/var/empty'),
                      transport='bad')
        self.assertEqual(res[0][:3], (0, 'deferred', '4.3.5'))
        # D and O write one recipient's headers: not for two
        res = deliver(self.qid, [(0, 'alice@localhost'), (1, 'bob@localhost')],
                      options(f'{self.record} t6 ${{recipient}}', flags='D'), transport='multi')
        self.assertEqual([x[:3] for x in res], [(0, 'deferred', '4.3.5'), (1, 'deferred', '4.3.5')])
        self.assertFalse(os.path.exists(os.path.join(OUT, 't6.argv')))

        # D: the message has been through this address already
        res = deliver(self.qid, [(0, 'Carol@Example.NET')], options(f'{self.record} t6', flags='D'), transport='loop')
        self.assertEqual(res, [(0, 'bounced', '5.4.6', 'loop', 'mail forwarding loop for Carol@Example.NET')])
        self.assertFalse(os.path.exists(os.path.join(OUT, 't6.argv')))

        # a call that is wrong as a whole is an error, not a result
        with self.assertRaises(dbus.exceptions.DBusException) as e:
            deliver(self.qid, [(7, 'alice@localhost')], options(f'{self.record} t6'))
        self.assertEqual(e.exception.get_dbus_name(), 'org.postbus.Error.InvalidArguments')
        with self.assertRaises(dbus.exceptions.DBusException) as e:
            deliver(self.qid, [(0, 'alice@localhost')], options(f'{self.record} t6'), transport='bad name')
        self.assertEqual(e.exception.get_dbus_name(), 'org.postbus.Error.InvalidArguments')

    def test_several_recipients_one_command(self):
        res = deliver(self.qid, [(0, 'alice@localhost'), (1, 'bob@localhost')],
                      options(f'{self.record} t7 -f ${{sender}} -- ${{recipient}}'), transport='several')
        self.assertEqual(res, [(0, 'sent', '2.0.0', 'several', 'delivered via several service'),
                               (1, 'sent', '2.0.0', 'several', 'delivered via several service')])
        self.assertEqual(out('t7.argv').splitlines(), ['-f', SENDER, '--', 'alice@localhost', 'bob@localhost'])
        self.assertEqual(out('t7.msg'), self.content)
        recs = pb.wait_until(lambda: len(self.journal('several')) == 2 and self.journal('several'),
                             what='a journal record per recipient')
        self.assertEqual(sorted(r['RECIPIENT'] for r in recs), ['alice@localhost', 'bob@localhost'])

    def test_commands_run_side_by_side(self):
        results, errors = {}, []

        def call(tag):
            try:
                results[tag] = deliver(self.qid, [(0, 'alice@localhost')], options(f'{self.slow} {tag} 3'),
                                       transport='side')
            except Exception as e:  # noqa: BLE001 -- reported below
                errors.append(e)

        threads = [threading.Thread(target=call, args=(f'c{i}',)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        self.assertEqual(errors, [])
        self.assertEqual(sorted(results), ['c0', 'c1', 'c2'])
        for r in results.values():
            self.assertEqual(r[0][1], 'sent')
        starts = [float(out(f'c{i}.start')) for i in range(3)]
        ends = [float(out(f'c{i}.end')) for i in range(3)]
        # one after another, each would start after the one before ended; side by side, all have started
        # before the first one ends
        self.assertLess(max(starts), min(ends))

    def test_process_limit_and_call_deadline(self):
        pb.write_config({'default_process_limit': 1, 'daemon_timeout': '10s'})
        pb.systemctl('stop', 'postbus-pipe.service')     # its socket starts it again with these
        try:
            # One command at a time: the second call waits for the first command to end.
            results = {}

            def call(tag, argv, transport):
                results[tag] = deliver(self.qid, [(0, 'alice@localhost')], options(argv, time_limit=100),
                                       transport=transport)

            first = threading.Thread(target=call, args=('l0', f'{self.slow} l0 2', 'limit'))
            first.start()
            pb.wait_until(lambda: os.path.exists(os.path.join(OUT, 'l0.start')), what='the first command')
            second = threading.Thread(target=call, args=('l1', f'{self.slow} l1 0', 'limit'))
            second.start()
            first.join(timeout=60)
            second.join(timeout=60)
            self.assertEqual([results[t][0][1] for t in ('l0', 'l1')], ['sent', 'sent'])
            self.assertGreaterEqual(float(out('l1.start')), float(out('l0.end')))

            # A call answers before qmgr would give up on it (9/10 of daemon_timeout): its command is
            # killed and the mail deferred, whatever the command's own time limit.
            t0 = time.monotonic()
            call('d0', f'{self.hang} d0', 'deadline')
            self.assertEqual(results['d0'], [(0, 'deferred', '4.3.0', 'deadline', 'delivery time limit exceeded')])
            self.assertLess(time.monotonic() - t0, 60)
            child = int(out('d0.child'))
            pb.wait_until(lambda: not os.path.exists(f'/proc/{child}'), what=f'process {child} gone')
        finally:
            pb.write_config({'default_process_limit': 100, 'daemon_timeout': '18000s'})
            pb.systemctl('stop', 'postbus-pipe.service')


if __name__ == '__main__':
    unittest.main()
