"""Delivery through qmgr, pipe and bounce together: a master.cf pipe transport gets the message and its
argv, a temporary failure is retried with growing waits and a permanent one is returned to the sender;
expiry, delay warnings, relocated users, success notices (NOTIFY=SUCCESS), double bounces, and
fairness between a 10,000-recipient list and single messages. Every notice is an RFC 3464 report
that Python's email package reads into its three parts."""
import email
import email.policy
import email.utils
import os
import smtplib
import time
import unittest

import postbus as pb

TRANSPORT = '/etc/postbus/transport'
RELOCATED = '/etc/postbus/relocated'
MASTER_CF = '/etc/postbus/master.cf'
SCRIPT = '/usr/local/bin/pb-pipe-test'
OUT = '/home/pipeuser/out'     # the pipe unit has a private /tmp and writes only below /home

MASTER = f"""# pipe transports for the test
testpipe  unix  -       n       n       -       -       pipe
  flags=DRhu user=pipeuser argv={SCRIPT} ${{sender}} ${{recipient}} ${{nexthop}} ${{user}}
slowlist  unix  -       n       n       -       4       pipe
  flags=R user=pipeuser argv={SCRIPT} ${{sender}} ${{recipient}} slow
"""


def write_table(path, lines):
    with open(path, 'w') as f:
        f.write(''.join(line + '\n' for line in lines))
    pb.run('postbusctl', 'map', 'build', path)


def reports(user, since_count):
    """The reports in a user's mbox after the first since_count messages, parsed."""
    return [m for m in pb.mbox_messages(user, parsed=True)[since_count:]
            if m.get_content_type() == 'multipart/report']


def about(rep, qid):
    """Whether a report is about the message qid."""
    try:
        return status_fields(rep)[0]['X-Postbus-Queue-ID'] == qid
    except (AssertionError, IndexError, TypeError):
        return False


def wait_reports(user, since_count, qid, n=1, timeout=60):
    """The reports about qid in a user's mbox after the first since_count messages, once there are n."""
    def mine():
        found = [r for r in reports(user, since_count) if about(r, qid)]
        return len(found) >= n and found
    return pb.wait_until(mine, timeout=timeout, what=f'{n} report(s) about {qid} in the mailbox of {user}')


def mbox_count(user):
    try:
        return len(pb.mbox_messages(user))
    except FileNotFoundError:
        return 0


def status_fields(report):
    """(per-message fields, [per-recipient fields]) of a report's message/delivery-status part."""
    parts = report.get_payload()
    ds = parts[1]
    assert ds.get_content_type() == 'message/delivery-status', ds.get_content_type()
    blocks = ds.get_payload()
    return blocks[0], blocks[1:]


class Notices(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        pb.add_user('alice')
        pw = pb.add_user('pipeuser')
        pb.add_user('gone')     # smtpd accepts only known local users; qmgr then finds them relocated
        os.makedirs(OUT, exist_ok=True)
        os.chown(OUT, pw.pw_uid, pw.pw_gid)
        with open(SCRIPT, 'w') as f:
            # Records who ran it with what, then exits as told by the recipient's local part.
            f.write('#!/bin/sh\n'
                    f'out={OUT}/$$\n'
                    'echo "uid=$(id -u) args=$*" > $out.args\n'
                    'cat > $out.msg\n'
                    'case "$2" in\n'
                    '  tempfail*) echo "try again later" ; exit 75 ;;\n'
                    '  nouser*) echo "no such mailbox here" ; exit 67 ;;\n'
                    'esac\n'
                    '[ "$3" = slow ] && { date +%s.%N >> ' + OUT + '/slow.$2 ; sleep 0.02 ; }\n'
                    'exit 0\n')
        os.chmod(SCRIPT, 0o755)
        with open(MASTER_CF, 'w') as f:
            f.write(MASTER)
        write_table(TRANSPORT, ['pipe.test testpipe:pipe.test', 'list.test slowlist:', 'single.test slowlist:',
                                'retry.test retry:4.4.1 the next hop is out to lunch'])
        write_table(RELOCATED, ['gone@localhost carol@elsewhere.example'])
        pb.set_config(transport_maps=f'hash:{TRANSPORT}', relocated_maps=f'hash:{RELOCATED}',
                      minimal_backoff_time='1s', maximal_backoff_time='30s', queue_run_delay='1s',
                      smtpd_recipient_limit=20000, slowlist_destination_recipient_limit=1,
                      testpipe_destination_recipient_limit=1, notify_classes='resource, software')

    def test_pipe_gets_message_and_argv(self):
        qid = pb.send('alice@localhost', 'Bob.Smith@pipe.test', 'Subject: to pipe\n\nhello pipe\n')
        pb.wait_until(lambda: any(r.get('DELIVERY_STATUS') == 'sent' for r in pb.journal(QUEUE_ID=qid, since=self.cursor)),
                      what='delivered through the pipe')
        args = [open(os.path.join(OUT, f)).read() for f in os.listdir(OUT) if f.endswith('.args')]
        mine = [a for a in args if 'Bob.Smith@pipe.test' in a or 'bob.smith@pipe.test' in a]
        self.assertTrue(mine, args)
        self.assertIn(f'uid={pb.uid("pipeuser")} ', mine[0])
        # flags=u lower-cases the user, h the next hop
        self.assertIn('args=alice@localhost ', mine[0])
        self.assertIn(' pipe.test bob.smith', mine[0])
        msgs = [open(os.path.join(OUT, f)).read() for f in os.listdir(OUT) if f.endswith('.msg')]
        msg = [m for m in msgs if 'hello pipe' in m]
        self.assertTrue(msg)
        self.assertIn('Return-Path: <alice@localhost>', msg[0])
        self.assertIn('Delivered-To: ', msg[0])

    def setUp(self):
        self.cursor = pb.journal_cursor()

    def test_tempfail_retried_then_bounced_5_1_1(self):
        before = mbox_count('alice')
        qid = pb.send('alice@localhost', 'tempfail@pipe.test', 'Subject: tf\n\nbody\n')
        # deferred, with growing waits read from the queue file's due time
        dues = []
        deadline = time.time() + 30
        while len(dues) < 3 and time.time() < deadline:
            try:
                due = os.stat(os.path.join(pb.SPOOL, 'deferred', qid)).st_mtime
                if not dues or due != dues[-1][0]:
                    dues.append((due, time.time()))
            except FileNotFoundError:
                pass
            time.sleep(0.05)
        self.assertEqual(len(dues), 3, dues)
        waits = [d - t for d, t in dues]
        self.assertGreater(waits[-1], waits[0], waits)
        recs = [r for r in pb.journal(QUEUE_ID=qid, since=self.cursor) if r.get('DELIVERY_STATUS') == 'deferred']
        self.assertEqual(recs[0]['DSN'], '4.3.0')
        self.assertIn('try again later', recs[0]['MESSAGE'])
        pb.systemctl('stop', pb.QMGR_UNIT)
        os.unlink(os.path.join(pb.SPOOL, 'deferred', qid))
        pb.systemctl('start', pb.QMGR_UNIT)

        qid = pb.send('alice@localhost', 'nouser@pipe.test', 'Subject: nu\n\nbody\n')
        rep = wait_reports('alice', before, qid)[-1]
        self.check_report(rep, qid, 'nouser@pipe.test', 'failed', '5.1.1', 'no such mailbox here')
        self.assertEqual(rep['Subject'], 'Undelivered Mail Returned to Sender')

    def check_report(self, rep, qid, rcpt, action, status, diag=None):
        self.assertEqual(rep.get_content_type(), 'multipart/report')
        self.assertEqual(rep.get_param('report-type'), 'delivery-status')
        parts = rep.get_payload()
        self.assertEqual(len(parts), 3, [p.get_content_type() for p in parts])
        self.assertEqual(parts[0].get_content_type(), 'text/plain')
        self.assertIn(parts[2].get_content_type(), ('message/rfc822', 'text/rfc822-headers'))
        msg, rcpts = status_fields(rep)
        self.assertTrue(msg['Reporting-MTA'].startswith('dns;'))
        self.assertEqual(msg['X-Postbus-Queue-ID'], qid)
        self.assertIn('Arrival-Date', msg)
        mine = [r for r in rcpts if rcpt.lower() in r['Final-Recipient'].lower()]
        self.assertEqual(len(mine), 1, [dict(r) for r in rcpts])
        self.assertEqual(mine[0]['Action'], action)
        self.assertEqual(mine[0]['Status'], status)
        if diag:
            self.assertIn(diag, mine[0]['Diagnostic-Code'])
        self.assertTrue(email.utils.parseaddr(str(rep['From']))[1].startswith('MAILER-DAEMON@'), rep['From'])
        return mine[0]

    def test_expiry_bounces_failed(self):
        pb.write_config({'maximal_queue_lifetime': '3s'})
        pb.restart_services()
        try:
            before = mbox_count('alice')
            qid = pb.send('alice@localhost', 'x@retry.test', 'Subject: ex\n\nbody\n')
            rep = wait_reports('alice', before, qid)[-1]
            r = self.check_report(rep, qid, 'x@retry.test', 'failed', '4.4.1', 'out to lunch')
            self.assertIn('Diagnostic-Code', r)
            self.assertTrue(any(r.get('DELIVERY_STATUS') == 'expired' for r in pb.journal(QUEUE_ID=qid, since=self.cursor)))
        finally:
            pb.write_config({'maximal_queue_lifetime': '5d'})
            pb.restart_services()

    def test_delay_warning_once(self):
        pb.write_config({'delay_warning_time': '2s'})
        pb.restart_services()
        try:
            before = mbox_count('alice')
            qid = pb.send('alice@localhost', 'y@retry.test', 'Subject: dw\n\nbody\n')
            rep = wait_reports('alice', before, qid)[-1]
            self.assertEqual(rep['Subject'], 'Delayed Mail (still being retried)')
            r = self.check_report(rep, qid, 'y@retry.test', 'delayed', '4.4.1')
            self.assertIn('Will-Retry-Until', r)
            time.sleep(8)       # several more attempts
            self.assertEqual(len([r for r in reports('alice', before) if about(r, qid)]), 1)
        finally:
            pb.write_config({'delay_warning_time': '0h'})
            pb.restart_services()

    def test_relocated_5_1_6(self):
        before = mbox_count('alice')
        qid = pb.send('alice@localhost', 'gone@localhost', 'Subject: rel\n\nbody\n')
        rep = wait_reports('alice', before, qid)[-1]
        self.check_report(rep, qid, 'gone@localhost', 'failed', '5.1.6', 'user has moved to carol@elsewhere.example')

    def test_notify_success_delivered(self):
        before = mbox_count('alice')
        pb.add_user('dave')
        with pb.connect() as smtp:
            smtp.ehlo()
            code, _ = smtp.mail('alice@localhost', ['RET=HDRS', 'ENVID=abc123'])
            self.assertEqual(code, 250)
            code, _ = smtp.rcpt('dave@localhost', ['NOTIFY=SUCCESS', 'ORCPT=rfc822;dave@localhost'])
            self.assertEqual(code, 250)
            code, text = smtp.data(b'Subject: dsn\r\n\r\nbody\r\n')
            qid = pb.queue_id_from_text(text.decode())
        rep = wait_reports('alice', before, qid)[-1]
        self.assertEqual(rep['Subject'], 'Successful Mail Delivery Report')
        r = self.check_report(rep, qid, 'dave@localhost', 'delivered', '2.0.0')
        self.assertIn('dave@localhost', r['Original-Recipient'])
        msg, _ = status_fields(rep)
        self.assertEqual(msg['Original-Envelope-Id'], 'abc123')
        self.assertEqual(rep.get_payload()[2].get_content_type(), 'text/rfc822-headers')

    def test_double_bounce_per_notify_classes(self):
        pb.add_user('pmaster')
        before = mbox_count('pmaster')
        # A failure of a null-sender message is a double bounce: without 2bounce in notify_classes it
        # is only logged ...
        qid = pb.send('<>', 'nouser@pipe.test', 'Subject: db1\n\nbody\n')
        pb.wait_until(lambda: any(m == f'{qid}: removed' for m in pb.journal_messages(QUEUE_ID=qid, since=self.cursor)),
                      what=f'{qid} removed')
        time.sleep(2)
        self.assertEqual(mbox_count('pmaster'), before)
        # ... with it, it goes to 2bounce_notice_recipient, and never loops
        pb.write_config({'notify_classes': 'resource, software, 2bounce',
                         '2bounce_notice_recipient': 'pmaster@localhost'})
        pb.restart_services()
        try:
            qid = pb.send('<>', 'nouser@pipe.test', 'Subject: db2\n\nbody\n')
            pb.wait_until(lambda: mbox_count('pmaster') > before, what='a double bounce for the postmaster')
            time.sleep(3)
            self.assertEqual(mbox_count('pmaster'), before + 1)
        finally:
            pb.write_config({'notify_classes': 'resource, software'})
            pb.restart_services()

    def test_maildrop_reject_returned(self):
        # Mail that cleanup refuses when pickup brings it from the maildrop is returned to its sender
        # through bounce (Reject), and its maildrop file goes.
        with open('/etc/postbus/header_checks', 'w') as f:
            f.write('/^Subject: forbidden/ REJECT no forbidden subjects here\n')
        pb.set_config(header_checks='regexp:/etc/postbus/header_checks')
        try:
            before = mbox_count('alice')
            pb.run('sendmail', '-i', 'dave@localhost', user='alice',
                   input='Subject: forbidden fruit\n\nbody\n')
            def returned():
                return [r for r in reports('alice', before)
                        if 'no forbidden subjects here' in status_fields(r)[1][0].get('Diagnostic-Code', '')]
            rep = pb.wait_until(returned, what='the rejected message returned to alice')[0]
            self.assertEqual(rep['Subject'], 'Undelivered Mail Returned to Sender')
            self.assertEqual(status_fields(rep)[1][0]['Action'], 'failed')
            self.assertTrue(status_fields(rep)[1][0]['Status'].startswith('5.'))
            pb.wait_until(lambda: not [f for f in os.listdir(os.path.join(pb.SPOOL, 'maildrop'))
                                       if not f.startswith('.')], what='the maildrop file removed')
            msgs = pb.journal_messages('_SYSTEMD_UNIT=postbus-pickup.service', since=self.cursor)
            self.assertTrue(any('rejected by cleanup' in (m or '') and 'sender notified as' in (m or '')
                                for m in msgs), msgs)
        finally:
            pb.set_config(header_checks='')

    def test_fairness_list_does_not_hold_up_single_messages(self):
        # 10,000 recipients through a transport of 4 processes, one recipient per delivery (each
        # takes 20 ms or more): hours of work in line. Single messages to another destination of the
        # same transport, sent after it, are delivered while the list is still being worked on.
        n = 10000
        with pb.connect(timeout=120) as smtp:
            smtp.ehlo()
            smtp.mail('alice@localhost')
            for i in range(n):
                code, _ = smtp.rcpt(f'm{i}@list.test')
                self.assertEqual(code, 250)
            code, text = smtp.data(b'Subject: big list\r\n\r\nbody\r\n')
            self.assertEqual(code, 250, text)
        list_qid = pb.queue_id_from_text(text.decode())
        pb.wait_until(lambda: len([f for f in os.listdir(OUT) if f.startswith('slow.m')]) >= 20,
                      what='the list being delivered')
        singles = [pb.send('alice@localhost', f's{i}@single.test', f'Subject: s{i}\n\nbody\n') for i in range(5)]
        pb.wait_until(lambda: all(os.path.exists(os.path.join(OUT, f'slow.s{i}@single.test')) for i in range(5)),
                      timeout=30, what='the single messages delivered')
        done = len([f for f in os.listdir(OUT) if f.startswith('slow.m')])
        self.assertLess(done, n // 2, 'the singles waited for most of the list')
        pb.systemctl('stop', pb.QMGR_UNIT)
        for q in pb.QUEUES:
            try:
                os.unlink(os.path.join(pb.SPOOL, q, list_qid))
            except FileNotFoundError:
                pass
        pb.systemctl('start', pb.QMGR_UNIT)
        self.assertTrue(singles)


if __name__ == '__main__':
    unittest.main()
