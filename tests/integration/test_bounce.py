"""bounce, called directly over its socket (org.postbus.Bounce1) on real queue files: failure reports with
the three RFC 3464 parts arrive in the sender's mailbox (RET=HDRS, ENVID, ORCPT, NOTIFY=NEVER, the
size limit), the postmaster gets the copies notify_classes asks for, a delay warning goes out once,
Expire turns the defer log into failures, successes are reported, mail from <> and from double-bounce
never loops, Reject works without a queue file, Remove removes.

The messages go to a remote domain while qmgr is stopped, so that their queue files wait in incoming/
and nothing but this test talks to bounce about them; the reports are delivered once qmgr is back."""
import email
import email.policy
import email.utils
import fcntl
import os
import subprocess
import sys
import socket
import unittest

import dbus

import postbus as pb

HOST = 'mail.example.test'
SPOOL = '/var/spool/postbus'
BOUNCE_ADDRESS = 'unix:path=/run/postbus/bounce'
BOUNCE_OBJECT = '/org/postbus/Bounce1'
BOUNCE_INTERFACE = 'org.postbus.Bounce1'
QMGR_UNITS = ('postbus-qmgr.socket', 'postbus-qmgr.service')
DISCARDED = '9614e0a77e454a669e2ac7af2402216d'
SENDER = f'alice@{HOST}'
SIZE_LIMIT = 4000


class QmgrHeld:
    """qmgr stopped and masked: new mail waits in incoming/ (cleanup's wake-up finds nobody); qmgr is started
    again afterwards, and its first scan takes in what waited."""

    def __enter__(self):
        pb.systemctl('stop', *QMGR_UNITS)
        pb.systemctl('mask', '--runtime', *QMGR_UNITS)
        return self

    def __exit__(self, *exc):
        pb.systemctl('unmask', '--runtime', *QMGR_UNITS)
        pb.systemctl('reset-failed', 'postbus-qmgr.service', check=False)
        pb.systemctl('start', *QMGR_UNITS)


def configure(**params):
    """main.cf changes for bounce (and the rest): bounce is stopped, its socket starts it again."""
    pb.systemctl('reset-failed', 'postbus-*', check=False)
    pb.set_config(**params)
    pb.systemctl('stop', 'postbus-bounce.service')


def reconfigure_bounce(**params):
    """Only bounce picks up the change (qmgr may be held)."""
    pb.write_config(params)
    pb.systemctl('stop', 'postbus-bounce.service')


def send_dsn(sender, recipients, body, mail_options=(), rcpt_options=None):
    """One message over SMTP with DSN parameters (RET, ENVID on MAIL; NOTIFY, ORCPT per recipient, a dict
    address -> list); returns its queue ID."""
    with pb.connect() as smtp:
        smtp.ehlo()
        code, text = smtp.mail(sender, list(mail_options))
        assert code == 250, (code, text)
        for r in recipients:
            code, text = smtp.rcpt(r, (rcpt_options or {}).get(r, []))
            assert code in (250, 251), (code, text)
        code, text = smtp.data(pb._as_bytes(body))
        assert code == 250, (code, text)
    return pb.queue_id_from_text(text)


def queue_path(qid):
    for q in ('incoming', 'active', 'deferred', 'hold'):
        p = os.path.join(SPOOL, q, qid)
        if os.path.exists(p):
            return p
    raise AssertionError(f'no queue file {qid}')


def arrival_seconds(qid):
    return int(next(d for t, d in pb.queue_file_records(qid) if t == 'T')) // 1000000


def bounce():
    return pb.p2p_connect(BOUNCE_ADDRESS)


def call(conn, method, signature, *args, timeout=60):
    return conn.call_blocking(None, BOUNCE_OBJECT, BOUNCE_INTERFACE, method, signature, args, timeout=timeout)


def record(rcpt, action, status, text, relay='none', original='', orcpt='', notify='', when=1700000000000000):
    return dbus.Struct((rcpt, original, orcpt, notify, action, status, relay, text, dbus.UInt64(when)),
                       signature='sssssssst')


def append(conn, qid, log, *records):
    call(conn, 'Append', 'ssa(sssssssst)', qid, log, dbus.Array(records, signature='(sssssssst)'))


def with_queue_fd(qid, method, conn=None):
    """Calls Finish, Warn or Expire with a read-only descriptor of the message's queue file."""
    fd = os.open(queue_path(qid), os.O_RDONLY)
    try:
        return call(conn or bounce(), method, 'hs', dbus.types.UnixFd(fd), qid)
    finally:
        os.close(fd)


def log_path(kind, qid):
    return os.path.join(SPOOL, kind, qid)


def log_records(path):
    """The records of a delivery status log, as (type, bytes): the queue file's framing (one type byte, a
    4-byte big-endian length, the data)."""
    with open(path, 'rb') as f:
        data = f.read()
    out, off = [], 0
    while off < len(data):
        n = int.from_bytes(data[off + 1:off + 5], 'big')
        out.append((chr(data[off]), data[off + 5:off + 5 + n]))
        off += 5 + n
    assert off == len(data), f'{path}: trailing bytes'
    return out


def find_report(user, subject, marker):
    for m in pb.mbox_messages(user):
        head = m.split('\n\n', 1)[0]
        if f'\nSubject: {subject}\n' in head and marker in m:
            msg = email.message_from_string(m, policy=email.policy.default)
            msg.raw_head = head
            return msg
    return None


def wait_report(user, subject, marker, timeout=60):
    return pb.wait_until(lambda: find_report(user, subject, marker), timeout=timeout,
                         what=f'"{subject}" about {marker} for {user}')


def dsn_blocks(report):
    """The report's three parts, checked for their types, and its delivery-status field blocks."""
    assert report.get_content_type() == 'multipart/report', report.get_content_type()
    assert report.get_param('report-type') == 'delivery-status'
    parts = report.get_payload()
    assert len(parts) == 3, len(parts)
    assert parts[0].get_content_type() == 'text/plain'
    assert parts[1].get_content_type() == 'message/delivery-status'
    blocks = parts[1].get_payload()
    return parts, blocks[0], blocks[1:]


def date_seconds(value):
    return int(email.utils.parsedate_to_datetime(value).timestamp())


class Bounce(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for u in ('alice', 'pmaster'):
            pb.add_user(u)
        configure(myhostname=HOST, mydomain='example.test', queue_run_delay='1s',
                  notify_classes='bounce, 2bounce, delay, resource, software',
                  bounce_notice_recipient='pmaster', **{'2bounce_notice_recipient': 'pmaster'},
                  delay_notice_recipient='pmaster', bounce_size_limit=SIZE_LIMIT)

    def setUp(self):
        self.cursor = pb.journal_cursor()

    def test_failure_report(self):
        body = ('From: Alice <alice@mail.example.test>\nTo: bob@remote.test\nSubject: lunch\n\n'
                'Shall we have lunch?\n')
        with QmgrHeld():
            qid = send_dsn(SENDER, ['bob@remote.test', 'carol@remote.test', 'dan@remote.test'], body,
                           mail_options=['RET=HDRS', 'ENVID=lunch+2B1'],
                           rcpt_options={'bob@remote.test': ['NOTIFY=FAILURE', 'ORCPT=rfc822;bob+40remote.test'],
                                         'carol@remote.test': ['NOTIFY=NEVER'],
                                         'dan@remote.test': ['NOTIFY=SUCCESS']})
            conn = bounce()
            append(conn, qid, 'bounce',
                   record('bob@remote.test', 'failed', '5.1.1',
                          'host mx.remote.test[192.0.2.25] said: 550 5.1.1 <bob@remote.test>: User unknown '
                          '(in reply to RCPT TO command)', relay='mx.remote.test[192.0.2.25]:25',
                          orcpt='rfc822;bob+40remote.test', notify='FAILURE'),
                   record('carol@remote.test', 'failed', '5.1.1', 'no such user', notify='NEVER'),
                   record('dan@remote.test', 'failed', '5.2.1', 'mailbox disabled', notify='SUCCESS'))
            self.assertTrue(os.path.exists(log_path('bounce', qid)))
            self.assertEqual(os.stat(log_path('bounce', qid)).st_mode & 0o777, 0o600)
            ids = with_queue_fd(qid, 'Finish', conn)
            # one report to the sender, and the postmaster's copy (notify_classes has bounce)
            self.assertEqual(len(ids), 2, ids)
            for kind in ('bounce', 'defer', 'trace'):
                self.assertFalse(os.path.exists(log_path(kind, qid)), kind)
            arrival = arrival_seconds(qid)

        recs = pb.journal(since=self.cursor, QUEUE_ID=qid, POSTBUS_ROLE='bounce')
        self.assertIn(f'{qid}: sender non-delivery notification: {ids[0]}', [r['MESSAGE'] for r in recs])
        self.assertIn(f'{qid}: postmaster non-delivery notification: {ids[1]}', [r['MESSAGE'] for r in recs])

        report = wait_report('alice', 'Undelivered Mail Returned to Sender', qid)
        self.assertIn(f'\nFrom: Mail Delivery System <MAILER-DAEMON@{HOST}>\n', report.raw_head)
        # made by postbus itself: no user in its Received header, as Postfix's notices have none
        self.assertRegex(report.raw_head, r'\nReceived: by \S+ \(postbus\)\n\tid [0-9A-F]+; ')
        self.assertEqual(report['To'], SENDER)
        self.assertEqual(report['Auto-Submitted'], 'auto-replied')
        self.assertEqual(report['MIME-Version'], '1.0')
        self.assertTrue(report['Message-ID'] and report['Date'])
        self.assertEqual(report['Return-Path'], '<>')
        parts, per_message, per_recipient = dsn_blocks(report)
        human = parts[0].get_content()
        self.assertIn(f'This is the mail system at host {HOST}.', human)
        self.assertIn('<bob@remote.test>: host mx.remote.test[192.0.2.25] said: 550 5.1.1', human)
        # NOTIFY=NEVER never, and NOTIFY without FAILURE not for a failure
        self.assertNotIn('carol@remote.test', report.as_string())
        self.assertNotIn('dan@remote.test>:', human)

        self.assertEqual(per_message['Reporting-MTA'], f'dns; {HOST}')
        self.assertEqual(per_message['X-Postbus-Queue-ID'], qid)
        self.assertEqual(per_message['X-Postbus-Sender'], f'rfc822; {SENDER}')
        self.assertEqual(per_message['Original-Envelope-Id'], 'lunch+1')
        self.assertEqual(date_seconds(per_message['Arrival-Date']), arrival)
        self.assertEqual(len(per_recipient), 1)
        r = per_recipient[0]
        self.assertEqual(r['Final-Recipient'], 'rfc822; bob@remote.test')
        self.assertEqual(r['Original-Recipient'], 'rfc822;bob@remote.test')
        self.assertEqual(r['Action'], 'failed')
        self.assertEqual(r['Status'], '5.1.1')
        self.assertEqual(r['Remote-MTA'], 'dns; mx.remote.test')
        self.assertEqual(r['Diagnostic-Code'], 'smtp; 550 5.1.1 <bob@remote.test>: User unknown')
        self.assertEqual(date_seconds(r['Last-Attempt-Date']), 1700000000)
        # RET=HDRS: the headers of the original, not its body
        self.assertEqual(parts[2].get_content_type(), 'text/rfc822-headers')
        returned = parts[2].get_payload()
        self.assertIn('Subject: lunch', returned)
        self.assertNotIn('Shall we', returned)

        copy = wait_report('pmaster', 'Postmaster Copy: Undelivered Mail', qid)
        self.assertEqual(copy['Return-Path'], f'<double-bounce@{HOST}>')
        self.assertEqual(copy['Auto-Submitted'], 'auto-generated')
        parts, _, per_recipient = dsn_blocks(copy)
        self.assertEqual(parts[2].get_content_type(), 'text/rfc822-headers')
        self.assertEqual(per_recipient[0]['Final-Recipient'], 'rfc822; bob@remote.test')

    def test_whole_message_and_size_limit(self):
        small = 'Subject: small one\n\nthe whole of it\n'
        large = 'Subject: large one\n\n' + 'a line of the body that is long enough\n' * (SIZE_LIMIT // 30)
        with QmgrHeld():
            conn = bounce()
            qids = []
            for body in (small, large):
                qid = pb.send(SENDER, ['erin@remote.test'], body)
                append(conn, qid, 'bounce', record('erin@remote.test', 'failed', '5.4.4', 'Host not found',
                                                   relay='none'))
                self.assertEqual(len(with_queue_fd(qid, 'Finish', conn)), 2)
                qids.append(qid)

        parts, _, per_recipient = dsn_blocks(wait_report('alice', 'Undelivered Mail Returned to Sender', qids[0]))
        self.assertEqual(parts[2].get_content_type(), 'message/rfc822')
        returned = parts[2].get_payload()[0]
        self.assertEqual(returned['Subject'], 'small one')
        self.assertEqual(returned.get_content().strip(), 'the whole of it')
        self.assertEqual(per_recipient[0]['Diagnostic-Code'], 'X-Postfix; Host not found')
        self.assertIsNone(per_recipient[0]['Remote-MTA'])

        parts, _, _ = dsn_blocks(wait_report('alice', 'Undelivered Mail Returned to Sender', qids[1]))
        self.assertEqual(parts[2].get_content_type(), 'text/rfc822-headers')
        self.assertIn('Subject: large one', parts[2].get_payload())
        self.assertNotIn('a line of the body', parts[2].get_payload())

    def test_delay_warning_once(self):
        with QmgrHeld():
            qid = send_dsn(SENDER, ['fred@remote.test', 'gail@remote.test'], 'Subject: slow\n\nslow\n',
                           rcpt_options={'gail@remote.test': ['NOTIFY=FAILURE']})
            conn = bounce()
            append(conn, qid, 'defer',
                   record('fred@remote.test', 'delayed', '4.4.1', 'connect to mx.remote.test[192.0.2.25]:25: '
                          'Connection timed out', relay='mx.remote.test[192.0.2.25]:25'),
                   record('gail@remote.test', 'delayed', '4.4.1', 'connect timed out', notify='FAILURE'))
            first = with_queue_fd(qid, 'Warn', conn)
            self.assertTrue(pb.queue_id_valid(first), first)
            # once per message: the second call sends nothing, and the defer log says why
            self.assertEqual(with_queue_fd(qid, 'Warn', conn), '')
            types = [t for t, _ in log_records(log_path('defer', qid))]
            self.assertEqual(types[0], 'P')
            self.assertEqual(types[-1], 'W')
            self.assertEqual(types.count('R'), 2)
            arrival = arrival_seconds(qid)

        self.assertIn(f'{qid}: sender delay notification: {first}',
                      pb.journal_messages(since=self.cursor, QUEUE_ID=qid, POSTBUS_ROLE='bounce'))
        report = wait_report('alice', 'Delayed Mail (still being retried)', qid)
        parts, per_message, per_recipient = dsn_blocks(report)
        self.assertIn('warning only', parts[0].get_content())
        self.assertEqual(len(per_recipient), 1)
        r = per_recipient[0]
        self.assertEqual(r['Final-Recipient'], 'rfc822; fred@remote.test')
        self.assertEqual(r['Action'], 'delayed')
        self.assertEqual(r['Status'], '4.4.1')
        self.assertEqual(date_seconds(r['Will-Retry-Until']), arrival + 5 * 86400)
        self.assertEqual(parts[2].get_content_type(), 'text/rfc822-headers')
        wait_report('pmaster', 'Postmaster Warning: Delayed Mail', qid)
        # exactly one warning arrived
        self.assertEqual(sum(1 for m in pb.mbox_messages('alice') if qid in m and 'Delayed Mail' in m), 1)

        # Remove takes the logs of a message deleted without notices
        conn = bounce()
        self.assertTrue(os.path.exists(log_path('defer', qid)))
        call(conn, 'Remove', 's', qid)
        self.assertFalse(os.path.exists(log_path('defer', qid)))
        call(conn, 'Remove', 's', qid)     # nothing left to remove is fine

    def test_concurrent_warnings(self):
        """Calls on one message wait for each other: of several Warn calls at once, one sends the warning.
        Each caller connects first and then waits for a word on stdin, so that the calls arrive together."""
        script = ('import os, sys, dbus, postbus\n'
                  'conn = postbus.p2p_connect(sys.argv[1])\n'
                  'fd = os.open(sys.argv[2], os.O_RDONLY)\n'
                  'print("ready", flush=True)\n'
                  'sys.stdin.readline()\n'
                  'print(conn.call_blocking(None, sys.argv[3], sys.argv[4], "Warn", "hs", '
                  '(dbus.types.UnixFd(fd), sys.argv[5]), timeout=60))\n')
        with QmgrHeld():
            qid = pb.send(SENDER, ['olga@remote.test'], 'Subject: crowded\n\nslow\n')
            append(bounce(), qid, 'defer', record('olga@remote.test', 'delayed', '4.4.1', 'busy'))
            procs = [subprocess.Popen([sys.executable, '-c', script, BOUNCE_ADDRESS, queue_path(qid), BOUNCE_OBJECT,
                                       BOUNCE_INTERFACE, qid], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      text=True)
                     for _ in range(6)]
            for p in procs:
                self.assertEqual(p.stdout.readline().strip(), 'ready')
            for p in procs:
                p.stdin.write('go\n')
                p.stdin.flush()
            answers = [p.communicate(timeout=90)[0].strip() for p in procs]
            self.assertEqual([p.returncode for p in procs], [0] * len(procs))
            sent = [a for a in answers if a]
            self.assertEqual(len(sent), 1, answers)
            self.assertTrue(pb.queue_id_valid(sent[0]))
        wait_report('alice', 'Delayed Mail (still being retried)', qid)
        self.assertEqual(sum(1 for m in pb.mbox_messages('alice') if qid in m and 'Delayed Mail' in m), 1)

    def test_expire(self):
        with QmgrHeld():
            qid = pb.send(SENDER, ['hank@remote.test', 'ida@remote.test'], 'Subject: too old\n\nold\n')
            conn = bounce()
            append(conn, qid, 'defer',
                   record('hank@remote.test', 'delayed', '4.4.1', 'first try', relay='none'),
                   record('hank@remote.test', 'delayed', '4.4.2', 'host mx.remote.test[192.0.2.25] said: 421 '
                          '4.4.2 too busy (in reply to MAIL FROM command)', relay='mx.remote.test[192.0.2.25]:25'))
            with_queue_fd(qid, 'Expire', conn)
            self.assertTrue(os.path.exists(log_path('bounce', qid)))
            ids = with_queue_fd(qid, 'Finish', conn)
            self.assertEqual(len(ids), 2)
        report = wait_report('alice', 'Undelivered Mail Returned to Sender', qid)
        _, _, per_recipient = dsn_blocks(report)
        got = {r['Final-Recipient']: r for r in per_recipient}
        self.assertEqual(set(got), {'rfc822; hank@remote.test', 'rfc822; ida@remote.test'})
        hank, ida = got['rfc822; hank@remote.test'], got['rfc822; ida@remote.test']
        # the last deferral's reason for one, a plain expiry for the other; both failed for good
        self.assertEqual((hank['Action'], hank['Status']), ('failed', '4.4.2'))
        self.assertEqual(hank['Diagnostic-Code'], 'smtp; 421 4.4.2 too busy')
        self.assertEqual((ida['Action'], ida['Status']), ('failed', '4.7.0'))
        self.assertEqual(ida['Diagnostic-Code'], 'X-Postfix; message expired')

    def test_success_report(self):
        with QmgrHeld():
            qid = send_dsn(SENDER, ['jack@remote.test'], 'Subject: tell me\n\nplease\n',
                           mail_options=['RET=FULL'], rcpt_options={'jack@remote.test': ['NOTIFY=SUCCESS']})
            conn = bounce()
            append(conn, qid, 'trace', record('jack@remote.test', 'relayed', '2.0.0',
                                              'host mx.remote.test[192.0.2.25] said: 250 2.0.0 Ok: queued',
                                              relay='mx.remote.test[192.0.2.25]:25', notify='SUCCESS'))
            ids = with_queue_fd(qid, 'Finish', conn)
            self.assertEqual(len(ids), 1)     # no postmaster copies of good news
        self.assertIn(f'{qid}: sender delivery status notification: {ids[0]}',
                      pb.journal_messages(since=self.cursor, QUEUE_ID=qid, POSTBUS_ROLE='bounce'))
        parts, _, per_recipient = dsn_blocks(wait_report('alice', 'Successful Mail Delivery Report', qid))
        self.assertEqual(per_recipient[0]['Action'], 'relayed')
        self.assertEqual(per_recipient[0]['Status'], '2.0.0')
        self.assertEqual(parts[2].get_content_type(), 'message/rfc822')   # RET=FULL

    def test_no_loops(self):
        conn = None
        with QmgrHeld():
            conn = bounce()
            # mail from <> that fails: the report goes to 2bounce_notice_recipient, from double-bounce
            from_null = pb.send('', ['kate@remote.test'], 'Subject: a notice itself\n\nx\n')
            append(conn, from_null, 'bounce', record('kate@remote.test', 'failed', '5.1.1', 'no such user'))
            ids = with_queue_fd(from_null, 'Finish', conn)
            self.assertEqual(len(ids), 1)
            # a postmaster notice that fails is only logged
            from_dbs = pb.send(f'double-bounce@{HOST}', ['liam@remote.test'], 'Subject: to postmaster\n\nx\n')
            append(conn, from_dbs, 'bounce', record('liam@remote.test', 'failed', '5.1.1', 'no such user'))
            self.assertEqual(with_queue_fd(from_dbs, 'Finish', conn), [])
            self.assertFalse(os.path.exists(log_path('bounce', from_dbs)))
            # without 2bounce in notify_classes, mail from <> gets no report at all
            reconfigure_bounce(notify_classes='resource, software')
            try:
                conn = bounce()
                dropped = pb.send('', ['mona@remote.test'], 'Subject: another notice\n\nx\n')
                append(conn, dropped, 'bounce', record('mona@remote.test', 'failed', '5.1.1', 'no such user'))
                self.assertEqual(with_queue_fd(dropped, 'Finish', conn), [])
            finally:
                reconfigure_bounce(notify_classes='bounce, 2bounce, delay, resource, software')

        report = wait_report('pmaster', 'Postmaster Copy: Undelivered Mail', from_null)
        self.assertEqual(report['Return-Path'], f'<double-bounce@{HOST}>')
        self.assertEqual(report['To'], 'pmaster')
        _, per_message, _ = dsn_blocks(report)
        self.assertEqual(per_message['X-Postbus-Sender'], 'rfc822;')
        self.assertIn(f'{from_null}: postmaster non-delivery notification: {ids[0]}',
                      pb.journal_messages(since=self.cursor, QUEUE_ID=from_null, POSTBUS_ROLE='bounce'))
        for qid, text in ((from_dbs, 'undeliverable postmaster notification discarded'),
                          (dropped, 'notify_classes has no 2bounce')):
            recs = pb.journal(since=self.cursor, QUEUE_ID=qid, POSTBUS_ROLE='bounce', MESSAGE_ID=DISCARDED)
            self.assertTrue(any(text in r['MESSAGE'] for r in recs), recs)
        explained = pb.journal_explained(since=self.cursor, QUEUE_ID=dropped, MESSAGE_ID=DISCARDED)
        self.assertIn('2bounce_notice_recipient', ' '.join(explained.replace('\u2591', ' ').split()))
        # nothing about the dropped ones reached anybody
        for user in ('alice', 'pmaster'):
            self.assertFalse(any(from_dbs in m or dropped in m for m in pb.mbox_messages(user)))

    def test_reject(self):
        content = b'From: alice@mail.example.test\nSubject: never queued\n\nrefused\n'
        conn = bounce()
        fd = os.memfd_create('rejected', os.MFD_ALLOW_SEALING)
        try:
            os.write(fd, content)
            # a descriptor its sender can still change is refused
            with self.assertRaises(dbus.exceptions.DBusException) as e:
                call(conn, 'Reject', 'hsasss', dbus.types.UnixFd(fd), SENDER, ['nora@remote.test'], '5.7.1',
                     'message refused')
            self.assertEqual(e.exception.get_dbus_name(), 'org.postbus.Error.UntrustedDescriptor')
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE)
            nid = call(conn, 'Reject', 'hsasss', dbus.types.UnixFd(fd), SENDER, ['nora@remote.test'], '5.7.1',
                       'message refused')
        finally:
            os.close(fd)
        self.assertTrue(pb.queue_id_valid(nid))
        report = wait_report('alice', 'Undelivered Mail Returned to Sender', 'nora@remote.test')
        parts, per_message, per_recipient = dsn_blocks(report)
        self.assertIsNone(per_message['X-Postbus-Queue-ID'])
        self.assertEqual(per_recipient[0]['Status'], '5.7.1')
        self.assertEqual(parts[2].get_content_type(), 'message/rfc822')
        self.assertEqual(parts[2].get_payload()[0]['Subject'], 'never queued')

    def test_bad_requests(self):
        conn = bounce()
        for qid in ('../../etc/passwd', '', 'abc'):
            with self.assertRaises(dbus.exceptions.DBusException) as e:
                append(conn, qid, 'bounce', record('x@remote.test', 'failed', '5.1.1', 'x'))
            self.assertEqual(e.exception.get_dbus_name(), 'org.postbus.Error.InvalidArguments')
        qid = '6553F100000A0B1C2D3E'
        for bad in (record('x@remote.test', 'bounced', '5.1.1', 'x'),
                    record('x@remote.test', 'failed', '5.1', 'x'),
                    record('x@remote.test', 'failed', '5.1.1', 'two\nlines'),
                    record('x y@remote.test', 'failed', '5.1.1', 'x'),
                    record('x@remote.test', 'failed', '5.1.1', 'x', notify='SOMETIMES')):
            with self.assertRaises(dbus.exceptions.DBusException) as e:
                append(conn, qid, 'bounce', bad)
            self.assertEqual(e.exception.get_dbus_name(), 'org.postbus.Error.InvalidArguments')
        with self.assertRaises(dbus.exceptions.DBusException):
            append(conn, qid, 'elsewhere', record('x@remote.test', 'failed', '5.1.1', 'x'))
        self.assertFalse(os.path.exists(log_path('bounce', qid)))
        # bounce is still there, and its unit is sandboxed as its peers are
        call(conn, 'Remove', 's', qid)
        self.assertEqual(pb.unit_property('postbus-bounce.service', 'User'), 'postbus-bounce')
        self.assertEqual(pb.unit_property('postbus-bounce.service', 'PrivateNetwork'), 'yes')

    def test_unknown_notify_class_stops_bounce(self):
        with open(pb.MAIN_CF) as f:
            original = f.read()
        try:
            with open(pb.MAIN_CF, 'a') as f:
                f.write('\nnotify_classes = bounce, everything\n')
            with open(pb.MAIN_CF) as f:
                line = len(f.read().splitlines())
            pb.systemctl('stop', 'postbus-bounce.service')
            # A connection starts the role through its socket; the role stops at once, and while the
            # connection waits the socket starts it again (no start limit: a role always comes back), so
            # the client is the one to give up.
            waiting = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.addCleanup(waiting.close)
            waiting.connect('/run/postbus/bounce')
            want = f'{pb.MAIN_CF}:{line}: notify_classes: unknown class "everything".'
            pb.wait_until(lambda: want in pb.journal_messages('SYSLOG_IDENTIFIER=postbus/bounce', since=self.cursor),
                          what='the configuration error in the journal')
            pb.wait_until(lambda: pb.unit_property('postbus-bounce.service', 'ExecMainStatus') == '78',
                          what='bounce to stop with EX_CONFIG')
            waiting.close()
        finally:
            with open(pb.MAIN_CF, 'w') as f:
                f.write(original)
            pb.systemctl('reset-failed', 'postbus-bounce.service', 'postbus-bounce.socket', check=False)
            pb.systemctl('start', 'postbus-bounce.socket')
        call(bounce(), 'Remove', 's', '6553F100000A0B1C2D3E')


if __name__ == '__main__':
    unittest.main()
