"""After-queue content filters (Postfix's content_filter, the amavis pattern): mail that smtpd takes on port 25
(and that pickup takes from sendmail) goes from the queue to the filter, an SMTP server written here that adds
a header and re-injects the message into the submission service, whose content_filter is empty; the mail is
delivered with the header exactly once, and the filter sees each message once. A FILTER action of
header_checks or of an smtpd access table sends a message to another filter instead."""
import json
import os
import re
import threading
import time
import unittest

import postbus as pb
import test_smtp as ts

FILTER_PORT = 10024
SCAN_PORT = 10026
HEADER_CHECKS = '/etc/postbus/header_checks'
SENDER_ACCESS = '/etc/postbus/sender_access'


def installed_sendmail():
    """Where meson installed our sendmail (the machine may have Postfix's as well)."""
    out = pb.run('meson', 'introspect', '--installed', os.environ['POSTBUS_BUILDDIR'])
    return next(dst for dst in json.loads(out).values() if dst.endswith('/sbin/sendmail'))


class Filter(ts.FakeServer):
    """The fake SMTP server of test_smtp, with each transaction it takes re-injected on port 587 with an
    X-Filtered header in front: what an after-queue filter does."""

    def __init__(self, port=FILTER_PORT):
        super().__init__(port=port)
        self.reinjected = []
        threading.Thread(target=self.reinject, daemon=True).start()

    def transactions_with(self, marker):
        with self.lock:
            return [t for t in self.transactions if t.data and marker.encode() in t.data]

    def reinject(self):
        done = 0
        while True:
            with self.lock:
                todo = self.transactions[done:]
            for t in todo:
                sender = re.match(r'MAIL FROM:<([^>]*)>', t.mail, re.I).group(1)
                rcpts = [re.match(r'RCPT TO:<([^>]*)>', r, re.I).group(1) for r in t.rcpts]
                # the header that made header_checks choose this filter goes, or the mail would loop
                body = b'\r\n'.join(l for l in ts.unstuff(t.data) if not l.startswith(b'X-Scan-Me:')) + b'\r\n'
                qid = pb.send(sender, rcpts, b'X-Filtered: by the test filter\r\n' + body, port=587)
                with self.lock:
                    self.reinjected.append(qid)
            done += len(todo)
            time.sleep(0.05)


class ContentFilter(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        pb.add_user('alice')
        cls.filter = Filter()
        cls.scanner = Filter(SCAN_PORT)
        with open(HEADER_CHECKS, 'w', encoding='utf-8') as f:
            f.write(f'/^X-Scan-Me:/ FILTER smtp:[127.0.0.1]:{SCAN_PORT}\n')
        with open(SENDER_ACCESS, 'w', encoding='utf-8') as f:
            f.write(f'scanme@example.org FILTER smtp:[127.0.0.1]:{SCAN_PORT}\n')
        pb.run('postbusctl', 'map', 'build', SENDER_ACCESS)
        # The re-injection service, as Postfix sites write it in master.cf: no filter, no access table
        # again, plain SMTP from the filter on 127.0.0.1.
        master = '/etc/postbus/master.cf'
        with open(master, 'w', encoding='utf-8') as f:
            f.write('submission inet n - n - - smtpd\n'
                    '  -o content_filter=\n'
                    '  -o smtpd_sender_restrictions=\n'
                    '  -o smtpd_tls_security_level=may\n'
                    '  -o smtpd_sasl_auth_enable=no\n'
                    'local unix - n n - - local\n'
                    'smtp unix - - n - - smtp\n')
        cls.addClassCleanup(os.unlink, master)
        pb.set_config(content_filter=f'smtp:[127.0.0.1]:{FILTER_PORT}',
                      header_checks=f'regexp:{HEADER_CHECKS}',
                      smtpd_sender_restrictions=f'check_sender_access hash:{SENDER_ACCESS}')

    def delivered(self, marker):
        return [m for m in pb.mbox_messages('alice') if marker in m]

    def check_filtered_once(self, marker, qid, cursor):
        [msg] = pb.wait_until(lambda: self.delivered(marker), what=f'the filtered message {marker}')
        self.assertEqual(msg.count('X-Filtered: by the test filter'), 1, msg)
        # the filter saw it once: the re-injected copy was not filtered again
        self.assertEqual(len(self.filter.transactions_with(marker)), 1)
        # the original went to the filter, through the smtp transport, not to the local mailbox
        [rec] = ts.wait_record(qid, cursor, 'sent')
        self.assertEqual(rec['RELAY'], f'127.0.0.1[127.0.0.1]:{FILTER_PORT}')
        [t] = self.filter.transactions_with(marker)
        self.assertEqual(t.rcpts, ['RCPT TO:<alice@localhost>'])

    def test_smtp_mail_filtered_once(self):
        cursor = pb.journal_cursor()
        marker = 'cf-smtp-%d' % time.time_ns()
        qid = pb.send('sender@example.org', 'alice@localhost', f'Subject: {marker}\n\nbody {marker}\n')
        self.check_filtered_once(marker, qid, cursor)

    def test_sendmail_mail_filtered_once(self):
        cursor = pb.journal_cursor()
        marker = 'cf-local-%d' % time.time_ns()
        pb.run(installed_sendmail(), '-f', 'root@localhost', 'alice@localhost',
               input=f'Subject: {marker}\n\nbody {marker}\n')
        [msg] = pb.wait_until(lambda: self.delivered(marker), what=f'the filtered message {marker}')
        self.assertEqual(msg.count('X-Filtered: by the test filter'), 1, msg)
        self.assertEqual(len(self.filter.transactions_with(marker)), 1)
        recs = pb.wait_until(lambda: [r for r in pb.journal(POSTBUS_ROLE='smtp', since=cursor)
                                      if r.get('RELAY') == f'127.0.0.1[127.0.0.1]:{FILTER_PORT}'],
                             what='the delivery to the filter')
        self.assertTrue(recs)


    def test_header_checks_filter_wins(self):
        cursor = pb.journal_cursor()
        marker = 'cf-scan-%d' % time.time_ns()
        qid = pb.send('sender@example.org', 'alice@localhost', f'X-Scan-Me: yes\nSubject: {marker}\n\nbody {marker}\n')
        [msg] = pb.wait_until(lambda: self.delivered(marker), what=f'the scanned message {marker}')
        self.assertEqual(msg.count('X-Filtered: by the test filter'), 1, msg)
        self.assertEqual(len(self.scanner.transactions_with(marker)), 1)
        # FILTER replaced content_filter: the other filter never saw it
        self.assertFalse(self.filter.transactions_with(marker))
        [rec] = ts.wait_record(qid, cursor, 'sent')
        self.assertEqual(rec['RELAY'], f'127.0.0.1[127.0.0.1]:{SCAN_PORT}')


    def test_access_table_filter(self):
        cursor = pb.journal_cursor()
        marker = 'cf-access-%d' % time.time_ns()
        qid = pb.send('scanme@example.org', 'alice@localhost', f'Subject: {marker}\n\nbody {marker}\n')
        [msg] = pb.wait_until(lambda: self.delivered(marker), what=f'the scanned message {marker}')
        self.assertEqual(msg.count('X-Filtered: by the test filter'), 1, msg)
        self.assertEqual(len(self.scanner.transactions_with(marker)), 1)
        self.assertFalse(self.filter.transactions_with(marker))
        [rec] = ts.wait_record(qid, cursor, 'sent')
        self.assertEqual(rec['RELAY'], f'127.0.0.1[127.0.0.1]:{SCAN_PORT}')
        logged = pb.journal_messages(POSTBUS_ROLE='smtpd', since=cursor)
        self.assertTrue([m for m in logged if 'triggers FILTER action: smtp:[127.0.0.1]:10026' in m], logged)


if __name__ == '__main__':
    unittest.main()
