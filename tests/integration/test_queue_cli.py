"""The queue commands, thin clients of org.postbus.Queue1: mailq and postqueue -p in Postfix's format,
postqueue -j with Postfix's field names, postqueue -f/-s/-i, postsuper -d/-h/-H/-r with IDs, ALL, queue
names and "-", postcat (as root, reading the queue file), postbusctl queue list (filters, --json), show and the commands that act on IDs, watch
printing the signals as they come, and the exit statuses of bad input.

Mail is held back with defer_transports = local: every attempt defers it with "deferred transport", and
a long back-off keeps it in the deferred queue between the attempts that the tests ask for."""
import json
import os
import re
import select
import subprocess
import time
import unittest

import postbus as pb

EX_USAGE, EX_DATAERR, EX_NOINPUT, EX_NOPERM = 64, 65, 66, 77
HEADER = '------Queue ID------- --Size-- ----Arrival Time---- --Sender/Recipient------'
VALID_UNKNOWN_ID = '00000001000000000ABC'       # well-formed, never queued


def installed(name):
    """Where meson installed one of our programs (the machine may have Postfix's as well)."""
    out = pb.run('meson', 'introspect', '--installed', os.environ['POSTBUS_BUILDDIR'])
    for dst in json.loads(out).values():
        if dst.endswith('/' + name):
            return dst
    raise AssertionError(f'{name} is not among the installed files')


POSTQUEUE = installed('sbin/postqueue')
POSTSUPER = installed('sbin/postsuper')
POSTCAT = installed('sbin/postcat')
POSTBUSCTL = installed('sbin/postbusctl')
MAILQ = installed('bin/mailq')
SENDMAIL = installed('sbin/sendmail')


def cmd(program, *args, user=None, input=None):
    return pb.run_process([program, *args], check=False, user=user, input=input)


def queue(name=''):
    return {m[0]: m for m in pb.busctl_call('ListMessages', 's', name)[0]}


def deferred_attempts(qid, cursor):
    return len([r for r in pb.journal(QUEUE_ID=qid, since=cursor) if r.get('DELIVERY_STATUS') == 'deferred'])


def send_held(sender, recipients, subject='held'):
    qid = pb.send(sender, recipients, f'Subject: {subject}\n\nwaits\n')
    pb.wait_until(lambda: qid in queue('deferred'), what=f'{qid} in the deferred queue')
    return qid


def settle(ids, cursor):
    """Waits until each message has had an attempt since cursor and is back in the deferred queue."""
    pb.wait_until(lambda: all(deferred_attempts(q, cursor) for q in ids), what=f'an attempt of each of {ids}')
    pb.wait_until(lambda: set(ids) <= set(queue('deferred')), what=f'{ids} deferred again')


def clear_queue():
    ids = list(queue())
    if ids:
        pb.busctl_call('DeleteMessages', 'as', ids)
    pb.wait_until(lambda: not queue(), what='an empty queue')


class LineReader:
    """Lines of a child's pipe, read with a deadline (never blocking past it)."""

    def __init__(self, f):
        self.fd = f.fileno()
        self.buf = b''

    def until(self, predicate, timeout=30, what='a line'):
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            while b'\n' in self.buf:
                line, self.buf = self.buf.split(b'\n', 1)
                text = line.decode('utf-8', 'replace')
                seen.append(text)
                if predicate(text):
                    return text
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f'timed out waiting for {what}; lines: {seen}')
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                data = os.read(self.fd, 65536)
                if not data:
                    raise AssertionError(f'the pipe closed before {what}; lines: {seen}')
                self.buf += data


class Held(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        pb.add_user('qcli')
        pb.add_user('qreader')
        pb.set_config(defer_transports='local', queue_run_delay='1s', minimal_backoff_time='1000s',
                      maximal_backoff_time='2000s')

    def setUp(self):
        clear_queue()

    def test_mailq_format(self):
        one = send_held('alice@example.org', ['qcli@localhost'])
        two = send_held('', ['qcli@localhost', 'root@localhost'])      # the null sender
        out = cmd(MAILQ, user='qreader')
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout, cmd(POSTQUEUE, '-p').stdout)
        lines = out.stdout.splitlines()
        self.assertEqual(lines[0], HEADER)
        self.assertEqual(lines[-1], '-- %d Kbytes in 2 Requests.'
                         % (sum(m[3] for m in queue().values()) // 1024))
        self.assertEqual(lines[-2], '')
        for qid, sender in ((one, 'alice@example.org'), (two, 'MAILER-DAEMON')):
            line = next(x for x in lines if x.startswith(qid))
            n = len(qid)                                      # 20
            self.assertEqual(line[n], ' ')                    # status: deferred
            self.assertEqual(line[n + 1], ' ')
            self.assertEqual(int(line[n + 2:n + 10]), queue()[qid][3])
            self.assertRegex(line[n + 11:n + 30], r'^\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d$')
            self.assertEqual(line[n + 30:], ' ' + sender)
        # the reason of deferral, right-aligned in parentheses, once for the recipients that share it
        reasons = [x for x in lines if re.fullmatch(r' *\(.*deferred transport.*\)', x)]
        self.assertEqual(len(reasons), 2, out.stdout)
        self.assertTrue(all(len(x) == 78 or x.startswith('(') for x in reasons), reasons)
        indent = ' ' * (len(one) + 31)
        self.assertIn(indent + 'root@localhost', lines)
        self.assertEqual(lines.count(indent + 'qcli@localhost'), 2)

        # `mailq | tail -1`, as administrators' scripts read it
        tail = subprocess.run(f'{MAILQ} | tail -1', shell=True, capture_output=True, text=True).stdout
        self.assertRegex(tail, r'^-- \d+ Kbytes in 2 Requests\.\n$')
        clear_queue()
        self.assertEqual(cmd(MAILQ).stdout, 'Mail queue is empty\n')

    def test_postqueue_json(self):
        qid = send_held('bob@example.org', ['qcli@localhost', 'root@localhost'])
        out = cmd(POSTQUEUE, '-j', user='qreader')
        self.assertEqual(out.returncode, 0, out.stderr)
        entries = [json.loads(line) for line in out.stdout.splitlines()]
        self.assertEqual(len(entries), 1, out.stdout)
        e = entries[0]
        self.assertEqual(list(e), ['queue_name', 'queue_id', 'arrival_time', 'message_size', 'forced_expire',
                                   'sender', 'recipients'])
        self.assertEqual(e['queue_name'], 'deferred')
        self.assertEqual(e['queue_id'], qid)
        self.assertEqual(e['sender'], 'bob@example.org')
        self.assertIs(e['forced_expire'], False)
        self.assertAlmostEqual(e['arrival_time'], time.time(), delta=120)
        self.assertEqual(e['message_size'], queue()[qid][3])
        self.assertEqual(sorted(r['address'] for r in e['recipients']), ['qcli@localhost', 'root@localhost'])
        for r in e['recipients']:
            self.assertEqual(set(r), {'address', 'delay_reason'})
            self.assertIn('deferred transport', r['delay_reason'])

    def test_postqueue_flush(self):
        qid = send_held('carol@example.org', ['qcli@localhost'])
        for args in (['-f'], ['-s', 'localhost'], ['-i', qid]):
            cursor = pb.journal_cursor()
            p = cmd(POSTQUEUE, *args)
            self.assertEqual(p.returncode, 0, (args, p.stderr))
            pb.wait_until(lambda: deferred_attempts(qid, cursor) >= 1, what=f'an attempt of {qid} after {args}')
            pb.wait_until(lambda: qid in queue('deferred'), what=f'{qid} deferred again')

        self.assertEqual(cmd(POSTQUEUE, '-s', 'nothing-queued.example').returncode, 0)   # as Postfix
        p = cmd(POSTQUEUE, '-i', 'not/an-id')
        self.assertEqual(p.returncode, EX_USAGE)
        self.assertIn('invalid name', p.stderr)
        p = cmd(POSTQUEUE, '-i', VALID_UNKNOWN_ID)
        self.assertEqual(p.returncode, EX_NOINPUT, p.stderr)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
        p = cmd(POSTQUEUE, '-f', user='qreader')
        self.assertEqual(p.returncode, EX_NOPERM, p.stderr)
        self.assertEqual(cmd(POSTQUEUE).returncode, EX_USAGE)
        self.assertEqual(cmd(POSTQUEUE, '-p', '-j').returncode, EX_USAGE)

    def test_sendmail_flush_site(self):
        """sendmail -qRsite and -qSsite: qmgr's FlushDestination for that site, as postqueue -s; mail for
        another destination (deferred with a long backoff) is left alone."""
        here = send_held('carol@example.org', ['qcli@localhost'])
        elsewhere = pb.send('carol@example.org', ['nobody@remote.example'], 'Subject: away\n\nwaits\n')
        pb.wait_until(lambda: elsewhere in queue('deferred'), what=f'{elsewhere} in the deferred queue')
        cursor = pb.journal_cursor()
        for args in (['-qRlocalhost'], ['-qSlocalhost'], ['-qR', 'localhost']):
            n = deferred_attempts(here, cursor)
            p = cmd(SENDMAIL, *args)
            self.assertEqual(p.returncode, 0, (args, p.stderr))
            pb.wait_until(lambda: deferred_attempts(here, cursor) > n, what=f'an attempt of {here} after {args}')
            pb.wait_until(lambda: here in queue('deferred'), what=f'{here} deferred again')
        self.assertEqual(deferred_attempts(elsewhere, cursor), 0)
        self.assertEqual(cmd(SENDMAIL, '-qRnothing-queued.example').returncode, 0)   # as Postfix
        self.assertEqual(cmd(SENDMAIL, '-qRlocalhost', user='qreader').returncode, EX_NOPERM)
        self.assertEqual(cmd(SENDMAIL, '-qR').returncode, EX_USAGE)

    def test_postsuper(self):
        a = send_held('dave@example.org', ['qcli@localhost'])
        b = send_held('erin@example.org', ['qcli@localhost'])
        c = send_held('frank@example.org', ['root@localhost'])

        p = cmd(POSTSUPER, '-h', a)
        self.assertEqual((p.returncode, p.stderr), (0, 'postsuper: Placed on hold: 1 message\n'))
        self.assertEqual(set(queue('hold')), {a})
        self.assertTrue(any(x.startswith(a + '!') for x in cmd(MAILQ).stdout.splitlines()))
        cursor = pb.journal_cursor()
        p = cmd(POSTSUPER, '-H', a)
        self.assertEqual((p.returncode, p.stderr), (0, 'postsuper: Released from hold: 1 message\n'))
        self.assertEqual(queue('hold'), {})
        settle([a], cursor)             # released mail is due at once

        p = cmd(POSTSUPER, '-h', 'ALL', 'deferred')
        self.assertEqual((p.returncode, p.stderr), (0, 'postsuper: Placed on hold: 3 messages\n'))
        self.assertEqual(set(queue('hold')), {a, b, c})
        cursor = pb.journal_cursor()
        p = cmd(POSTSUPER, '-H', 'ALL')
        self.assertEqual((p.returncode, p.stderr), (0, 'postsuper: Released from hold: 3 messages\n'))
        settle([a, b, c], cursor)

        cursor = pb.journal_cursor()
        p = cmd(POSTSUPER, '-r', 'ALL')
        self.assertEqual((p.returncode, p.stderr), (0, 'postsuper: Requeued: 3 messages\n'))
        settle([a, b, c], cursor)

        # "-": IDs on standard input
        p = cmd(POSTSUPER, '-d', '-', input=f'{a}\n\n  {b}  \n')
        self.assertEqual((p.returncode, p.stderr), (0, 'postsuper: Deleted: 2 messages\n'))
        self.assertEqual(set(queue()), {c})

        # ALL limited to a queue: the held message stays
        d = send_held('gina@example.org', ['qcli@localhost'])
        self.assertEqual(cmd(POSTSUPER, '-h', d).returncode, 0)
        p = cmd(POSTSUPER, '-d', 'ALL', 'deferred')
        self.assertEqual((p.returncode, p.stderr), (0, 'postsuper: Deleted: 1 message\n'))
        self.assertEqual(set(queue()), {d})
        p = cmd(POSTSUPER, '-d', 'ALL')
        self.assertEqual((p.returncode, p.stderr), (0, 'postsuper: Deleted: 1 message\n'))
        self.assertEqual(queue(), {})

    def test_postsuper_errors(self):
        qid = send_held('hank@example.org', ['qcli@localhost'])
        p = cmd(POSTSUPER, '-d', 'not-an-id!')
        self.assertEqual(p.returncode, EX_USAGE)
        self.assertEqual(p.stderr, 'postsuper: fatal: invalid mail queue id: not-an-id!\n')
        p = cmd(POSTSUPER, '-d', 'ALL', 'nosuchqueue')
        self.assertEqual(p.returncode, EX_USAGE)
        self.assertIn('invalid directory name', p.stderr)
        p = cmd(POSTSUPER, '-d', VALID_UNKNOWN_ID)         # nothing to do, as in Postfix
        self.assertEqual((p.returncode, p.stderr), (0, ''))
        p = cmd(POSTSUPER, '-d', qid, user='qreader')
        self.assertEqual(p.returncode, EX_NOPERM, p.stderr)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
        self.assertIn(qid, queue())
        self.assertEqual(cmd(POSTSUPER).returncode, EX_USAGE)

    def test_postcat(self):
        qid = pb.send('kate@example.org', ['qcli@localhost', 'root@localhost'],
                      'Subject: for postcat\nX-Mark: 1\n\nfirst body line\nsecond\n')
        pb.wait_until(lambda: qid in queue('deferred'), what=f'{qid} in the deferred queue')
        name = f'deferred/{qid}'

        out = cmd(POSTCAT, '-q', qid)
        self.assertEqual(out.returncode, 0, out.stderr)
        lines = out.stdout.splitlines()
        self.assertEqual(lines[0], f'*** ENVELOPE RECORDS {name} ***')
        self.assertRegex(lines[1], r'^message_size: +(\d+) +\d+ +2 +0 +\1 +0$')
        self.assertEqual(int(lines[1].split()[1]), queue()[qid][3])
        self.assertRegex(lines[2], r'^message_arrival_time: \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}$')
        self.assertIn('named_attribute: client_address=127.0.0.1', lines)
        self.assertIn('sender: kate@example.org', lines)
        self.assertEqual([x for x in lines if x.startswith('recipient: ')],
                         ['recipient: qcli@localhost', 'recipient: root@localhost'])
        contents = lines.index(f'*** MESSAGE CONTENTS {name} ***')
        self.assertLess(lines.index('sender: kate@example.org'), contents)
        self.assertIn('Subject: for postcat', lines[contents:])
        self.assertEqual(lines[-4:], ['first body line', 'second', f'*** HEADER EXTRACTED {name} ***',
                                      f'*** MESSAGE FILE END {name} ***'])

        header = cmd(POSTCAT, '-hq', qid).stdout
        self.assertRegex(header, r'^Received: ')
        self.assertIn('X-Mark: 1\n', header)
        self.assertNotIn('first body line', header)
        self.assertNotIn('***', header)
        self.assertEqual(cmd(POSTCAT, '-bq', qid).stdout, '\nfirst body line\nsecond\n')
        self.assertEqual(cmd(POSTCAT, '-bhq', qid).stdout, header + '\nfirst body line\nsecond\n')
        envelope = cmd(POSTCAT, '-eq', qid).stdout.splitlines()
        self.assertEqual(envelope[-3:], [f'*** MESSAGE CONTENTS {name} ***', f'*** HEADER EXTRACTED {name} ***',
                                         f'*** MESSAGE FILE END {name} ***'])
        self.assertIn('regular_text: Subject: for postcat', cmd(POSTCAT, '-vq', qid).stdout.splitlines())
        # a path is taken as it is, and named so
        path = f'/var/spool/postbus/{name}'
        self.assertEqual(cmd(POSTCAT, path).stdout.splitlines()[0], f'*** ENVELOPE RECORDS {path} ***')

        p = cmd(POSTCAT, '-q', VALID_UNKNOWN_ID)
        self.assertEqual((p.returncode, p.stdout), (EX_NOINPUT, ''))
        self.assertEqual(p.stderr, f'postcat: fatal: open queue file {VALID_UNKNOWN_ID}: No such file or directory\n')
        self.assertEqual(cmd(POSTCAT, '-q', '../../etc/passwd').returncode, EX_USAGE)
        p = cmd(POSTCAT, '-q', qid, user='qreader')        # the queue is postbus's
        self.assertEqual((p.returncode, p.stdout), (EX_NOPERM, ''), p.stderr)
        p = cmd(POSTCAT, '/etc/passwd')
        self.assertEqual(p.returncode, EX_DATAERR)
        self.assertIn('not a postbus queue file', p.stderr)

    def test_postbusctl_list_filters(self):
        a = send_held('ivy@example.org', ['qcli@localhost'])
        b = send_held('jack@example.org', ['root@localhost'])

        def listed(*args):
            p = cmd(POSTBUSCTL, 'queue', 'list', '--json', *args, user='qreader')
            self.assertEqual(p.returncode, 0, (args, p.stderr))
            return sorted(json.loads(line)['queue_id'] for line in p.stdout.splitlines())

        self.assertEqual(listed(), sorted([a, b]))
        self.assertEqual(listed('--sender=ivy@example.org'), [a])
        self.assertEqual(listed('--recipient=root@localhost'), [b])
        self.assertEqual(listed('--destination=localhost'), sorted([a, b]))
        self.assertEqual(listed('--destination=elsewhere.example'), [])
        self.assertEqual(listed('--queue=deferred', '--sender=jack@example.org'), [b])
        self.assertEqual(listed('--queue=hold'), [])
        self.assertEqual(listed('--older-than=1h'), [])
        self.assertEqual(listed('--reason=deferred transport'), sorted([a, b]))
        self.assertEqual(listed('--reason=no such words'), [])
        table = cmd(POSTBUSCTL, 'queue', 'list', '--sender=ivy@example.org').stdout
        self.assertEqual(table.splitlines()[0], HEADER)
        self.assertTrue(table.endswith('in 1 Request.\n'), table)

        p = cmd(POSTBUSCTL, 'queue', 'list', '--older-than=soon')
        self.assertEqual(p.returncode, EX_USAGE)

        # show: the message object's properties
        p = cmd(POSTBUSCTL, 'queue', 'show', a, user='qreader')
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout, r'(?m)^ *Sender: ivy@example\.org$')
        self.assertRegex(p.stdout, r'(?m)^ *Queue: deferred$')
        self.assertRegex(p.stdout, r'(?m)^ *Recipients: qcli@localhost pending \(.*deferred transport.*\)$')
        shown = json.loads(cmd(POSTBUSCTL, 'queue', 'show', '--json', a).stdout)
        self.assertEqual(shown['Id'], a)
        self.assertEqual(shown['Size'], queue()[a][3])
        self.assertEqual(shown['Recipients'][0]['address'], 'qcli@localhost')
        self.assertEqual(shown['Recipients'][0]['state'], 'pending')

        # acting on IDs, and on what a filter selects
        p = cmd(POSTBUSCTL, 'queue', 'hold', a)
        self.assertEqual((p.returncode, p.stdout), (0, 'Held 1 message.\n'), p.stderr)
        self.assertEqual(set(queue('hold')), {a})
        p = cmd(POSTBUSCTL, 'queue', 'release', '--queue=hold')
        self.assertEqual((p.returncode, p.stdout), (0, 'Released 1 message.\n'), p.stderr)
        p = cmd(POSTBUSCTL, 'queue', 'hold')
        self.assertEqual(p.returncode, EX_USAGE)            # no IDs, no filter: never everything
        p = cmd(POSTBUSCTL, 'queue', 'delete', '-', input=b + '\n')
        self.assertEqual((p.returncode, p.stdout), (0, 'Deleted 1 message.\n'), p.stderr)
        self.assertNotIn(b, queue())

        cursor = pb.journal_cursor()
        p = cmd(POSTBUSCTL, 'queue', 'flush', 'localhost')
        self.assertEqual((p.returncode, p.stdout), (0, 'localhost: 1 message to be tried now.\n'), p.stderr)
        settle([a], cursor)

        # bounce: the message leaves the queue, and its sender's notice enters it
        p = cmd(POSTBUSCTL, 'queue', 'bounce', '--reason=returned by the postmaster', a)
        self.assertEqual((p.returncode, p.stdout), (0, 'Bounced 1 message.\n'), p.stderr)
        pb.wait_until(lambda: a not in queue(), what=f'{a} bounced and gone')
        notice = pb.wait_until(lambda: [m for m in queue().values() if m[4] == '' and m[5] == ['ivy@example.org']],
                               what='the non-delivery notice to ivy@example.org queued')
        self.assertEqual(len(notice), 1, notice)

    def test_postbusctl_errors(self):
        qid = send_held('kim@example.org', ['qcli@localhost'])
        for args, status in ((['show', 'bad/id'], EX_USAGE), (['show', VALID_UNKNOWN_ID], EX_NOINPUT),
                             (['hold', 'bad/id'], EX_USAGE), (['delete', VALID_UNKNOWN_ID], EX_NOINPUT),
                             (['list', 'nosuchqueue'], EX_USAGE), (['frobnicate'], EX_USAGE),
                             (['resume', 'never-paused.example'], EX_NOINPUT)):
            p = cmd(POSTBUSCTL, 'queue', *args)
            self.assertEqual(p.returncode, status, (args, p.stderr))
            self.assertEqual(len(p.stderr.strip().splitlines()), 1, (args, p.stderr))
        p = cmd(POSTBUSCTL, 'queue', 'delete', qid, user='qreader')
        self.assertEqual(p.returncode, EX_NOPERM, p.stderr)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
        self.assertIn(qid, queue())

    def test_postbusctl_pause_and_destinations(self):
        p = cmd(POSTBUSCTL, 'queue', 'pause', 'paused.example', '--reason=maintenance')
        self.assertEqual(p.returncode, 0, p.stderr)
        try:
            self.assertIn('paused.example', pb.busctl_get('PausedDestinations'))
            p = cmd(POSTBUSCTL, 'queue', 'destinations', '--json')
            self.assertEqual(p.returncode, 0, p.stderr)
            dests = [json.loads(line) for line in p.stdout.splitlines()]
            self.assertTrue(any(d['destination'] == 'paused.example' and d['state'] == 'paused' for d in dests),
                            dests)
            table = cmd(POSTBUSCTL, 'queue', 'destinations').stdout
            self.assertRegex(table, r'(?m)^\S+ +paused\.example +paused ')
        finally:
            p = cmd(POSTBUSCTL, 'queue', 'resume', 'paused.example')
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertNotIn('paused.example', pb.busctl_get('PausedDestinations'))


class Watch(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        pb.add_user('qwatch')
        pb.set_config(defer_transports='', queue_run_delay='1s', minimal_backoff_time='2s')
        # one message through first, so that qmgr's scan after its restart is over when the tests send
        qid = pb.send('warmup@example.org', ['qwatch@localhost'], 'Subject: warm-up\n\nfirst\n')
        pb.wait_until(lambda: qid not in queue(), what='the warm-up message delivered')

    def watch(self, *args):
        p = subprocess.Popen([POSTBUSCTL, 'queue', 'watch', *args], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        self.addCleanup(p.wait, 10)
        self.addCleanup(p.kill)
        LineReader(p.stderr).until(lambda x: x.startswith('Watching'), what='watch to be ready')
        return p

    def test_watch_lines(self):
        p = self.watch()
        out = LineReader(p.stdout)
        qid = pb.send('lena@example.org', ['qwatch@localhost'], 'Subject: watched\n\nseen\n')
        out.until(lambda x: x == f'{qid}: queued, from=<lena@example.org>, nrcpt=1', what='the queued line')
        line = out.until(lambda x: x.startswith(f'{qid}: delivered'), what='the delivered line')
        self.assertIn('to=<qwatch@localhost>', line)
        self.assertIn('dsn=2.', line)
        out.until(lambda x: x == f'{qid}: removed', what='the removed line')

    def test_watch_json(self):
        p = self.watch('--json')
        out = LineReader(p.stdout)
        qid = pb.send('', ['qwatch@localhost'], 'Subject: watched json\n\nseen\n')
        line = out.until(lambda x: f'"{qid}"' in x and 'MessageQueued' in x, what='MessageQueued')
        self.assertEqual(json.loads(line), {'signal': 'MessageQueued', 'id': qid, 'sender': '', 'recipients': 1})
        line = out.until(lambda x: f'"{qid}"' in x and 'MessageDelivered' in x, what='MessageDelivered')
        d = json.loads(line)
        self.assertEqual(set(d), {'signal', 'id', 'recipient', 'relay', 'dsn'})
        self.assertEqual(d['recipient'], 'qwatch@localhost')


if __name__ == '__main__':
    unittest.main()
