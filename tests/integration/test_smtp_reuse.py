"""The smtp agent's connection cache, its "relayed" DSN, smtp_fallback_relay and the address families
(postbus-smtp, as Postfix's smtp(8)): five messages to one destination share fewer connections than five, each
delivered once, with RSET before each reuse and conn_use= in the record; mail sent one message at a time, back
to back, shares connections too; a cached session whose RSET fails is
dropped for a new one; NOTIFY=SUCCESS through a server without DSN gives the sender a report with Action
relayed, and none through a server that took the NOTIFY; the fallback relay takes mail whose MX failed
temporarily (never a 5xx); inet_protocols and smtp_address_preference choose between A and AAAA records."""
import os
import re
import subprocess
import time
import unittest

import postbus as pb
import test_smtp as ts

SENDER = 'alice@localhost'
TRANSPORT = ts.TRANSPORT
CONN_USE = re.compile(r', conn_use=(\d+), delay=')


def sent_records(qids, cursor):
    return [r for q in qids for r in ts.smtp_records(q, cursor, DELIVERY_STATUS='sent')]


def wait_all_sent(qids, cursor):
    return pb.wait_until(lambda: len(sent_records(qids, cursor)) == len(qids) and sent_records(qids, cursor),
                         what=f'{len(qids)} sent records')


def with_marker(server, marker):
    return [t for t in server.transactions if t.data and marker.encode() in t.data]


class Reuse(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        pb.add_user('alice')
        cls.cached = ts.FakeServer(port=2540)
        cls.ondemand = ts.FakeServer(port=2541)
        cls.badrset = ts.FakeServer(port=2542, rset_reply='554 5.5.1 Error: no RSET today')
        cls.nodsn = ts.FakeServer(port=2543, ehlo=('PIPELINING', 'SIZE'))
        cls.dsn = ts.FakeServer(port=2544)
        with open('/etc/postbus/master.cf', 'a', encoding='utf-8') as f:
            f.write('keep unix - - n - - smtp -o smtp_connection_cache_time_limit=20s '
                    '-o smtp_connection_cache_destinations=[127.0.0.1]:2540,[127.0.0.1]:2542\n'
                    'ondemand unix - - n - - smtp -o smtp_connection_cache_time_limit=20s\n')
        with open(TRANSPORT, 'w', encoding='utf-8') as f:
            f.write('cached.test keep:[127.0.0.1]:2540\n'
                    'ondemand.test ondemand:[127.0.0.1]:2541\n'
                    'badrset.test keep:[127.0.0.1]:2542\n'
                    'nodsn.test smtp:[127.0.0.1]:2543\n'
                    'dsn.test smtp:[127.0.0.1]:2544\n')
        pb.run('postbusctl', 'map', 'build', TRANSPORT)
        # one delivery at a time per destination, so that a kept session can be the next one's
        pb.set_config(transport_maps=f'gdbm:{TRANSPORT}', keep_destination_concurrency_limit=1,
                      ondemand_destination_concurrency_limit=1)

    def test_five_messages_fewer_connections(self):
        cursor = pb.journal_cursor()
        before = self.cached.connections
        markers = ['cached-%d-%d' % (i, time.time_ns()) for i in range(5)]
        qids = [pb.send(SENDER, 'bob@cached.test', f'Subject: {m}\n\nbody {m}\n') for m in markers]
        recs = wait_all_sent(qids, cursor)
        for m in markers:
            self.assertEqual(len(with_marker(self.cached, m)), 1, m)
        connections = self.cached.connections - before
        self.assertLess(connections, 5)
        self.assertGreaterEqual(connections, 1)
        # each connection's first delivery has no conn_use=, the others count on from 2
        uses = sorted(int(r.get('CONN_USE', '1')) for r in recs)
        self.assertEqual(uses.count(1), connections, uses)
        self.assertGreaterEqual(max(uses), 2, uses)
        for r in recs:
            self.assertEqual(r['RELAY'], '127.0.0.1[127.0.0.1]:2540')
            m = CONN_USE.search(r['MESSAGE'])
            if 'CONN_USE' in r:
                self.assertEqual(m.group(1), r['CONN_USE'])
                self.assertIn(', relay=127.0.0.1[127.0.0.1]:2540, conn_use=', r['MESSAGE'])
            else:
                self.assertIsNone(m, r['MESSAGE'])
        # a reuse begins with RSET, and each message was one transaction
        self.assertGreaterEqual(self.cached.commands.count('RSET'), 5 - connections)

    def test_cache_on_demand_with_backlog(self):
        # five deferred messages, flushed at once: qmgr has more for the destination while it hands out each
        self.ondemand.defer_all = True
        cursor = pb.journal_cursor()
        markers = ['demand-%d-%d' % (i, time.time_ns()) for i in range(5)]
        qids = [pb.send(SENDER, 'bob@ondemand.test', f'Subject: {m}\n\nbody\n') for m in markers]
        pb.wait_until(lambda: all(ts.smtp_records(q, cursor, DELIVERY_STATUS='deferred') for q in qids),
                      what='five deferred records')
        self.ondemand.defer_all = False
        before = self.ondemand.connections
        cursor = pb.journal_cursor()
        pb.run('sendmail', '-q')
        recs = wait_all_sent(qids, cursor)
        for m in markers:
            self.assertEqual(len(with_marker(self.ondemand, m)), 1, m)
        self.assertLess(self.ondemand.connections - before, 5)
        self.assertTrue(any(int(r.get('CONN_USE', '1')) >= 2 for r in recs), [r['MESSAGE'] for r in recs])

    def test_cache_on_demand_back_to_back(self):
        # one message at a time, each sent once the one before is delivered: nothing waits behind any, but each
        # follows a delivery to the destination within a second, so the session is kept for it (as Postfix's
        # qmgr judges back-to-back delivery). Without that, four connections; the test's own pace (a journal
        # read, a submission) leaves room for a slow gap or two on a busy machine, so fewer than four is asked.
        cursor = pb.journal_cursor()
        before = self.ondemand.connections
        qids = []
        for i in range(4):
            marker = 'b2b-%d-%d' % (i, time.time_ns())
            qids.append(pb.send(SENDER, 'bob@ondemand.test', f'Subject: {marker}\n\nbody\n'))
            wait_all_sent(qids[-1:], cursor)
            self.assertEqual(len(with_marker(self.ondemand, marker)), 1, marker)
        recs = sent_records(qids, cursor)
        self.assertLess(self.ondemand.connections - before, 4, [r['MESSAGE'] for r in recs])
        self.assertTrue(any(int(r.get('CONN_USE', '1')) >= 2 for r in recs), [r['MESSAGE'] for r in recs])

    def test_failed_rset_takes_a_new_connection(self):
        cursor = pb.journal_cursor()
        before = self.badrset.connections
        m1, m2 = 'rset1-%d' % time.time_ns(), 'rset2-%d' % time.time_ns()
        q1 = pb.send(SENDER, 'bob@badrset.test', f'Subject: {m1}\n\nbody\n')
        wait_all_sent([q1], cursor)
        q2 = pb.send(SENDER, 'bob@badrset.test', f'Subject: {m2}\n\nbody\n')
        [rec] = wait_all_sent([q2], cursor)
        self.assertIn('RSET', self.badrset.commands)
        self.assertEqual(self.badrset.connections - before, 2)
        self.assertEqual(len(with_marker(self.badrset, m1)), 1)
        self.assertEqual(len(with_marker(self.badrset, m2)), 1)
        self.assertNotIn('CONN_USE', rec)
        self.assertEqual(rec['DSN'], '2.0.0')

    def notify_success(self, rcpt, marker):
        """Sends a message with NOTIFY=SUCCESS; returns its queue ID."""
        msg = f'Subject: {marker}\r\n\r\nbody\r\n'.encode()
        with pb.connect() as s:
            s.ehlo()
            self.assertEqual(s.mail(SENDER)[0], 250)
            self.assertEqual(s.rcpt(rcpt, options=['NOTIFY=SUCCESS'])[0], 250)
            code, text = s.data(msg)
            self.assertEqual(code, 250)
        return pb.queue_id_from_text(text.decode())

    def reports_about(self, marker):
        return [m for m in pb.mbox_messages('alice') if 'Action:' in m and marker in m]

    def test_relayed_dsn_for_server_without_dsn(self):
        # a server that announced DSN got NOTIFY=SUCCESS and reports itself: no report from us
        cursor = pb.journal_cursor()
        passed = 'passed-%d' % time.time_ns()
        qid = self.notify_success('bob@dsn.test', passed)
        pb.wait_until(lambda: with_marker(self.dsn, passed), what='the message at the DSN server')
        [t] = with_marker(self.dsn, passed)
        self.assertEqual(t.rcpts, ['RCPT TO:<bob@dsn.test> NOTIFY=SUCCESS'])
        pb.wait_until(lambda: any(r['MESSAGE'] == f'{qid}: removed' for r in pb.journal(QUEUE_ID=qid, since=cursor)),
                      what='the first message removed')

        relayed = 'relayed-%d' % time.time_ns()
        self.notify_success('bob@nodsn.test', relayed)
        report = pb.wait_until(lambda: self.reports_about(relayed), what='the success report')[0]
        [t] = with_marker(self.nodsn, relayed)
        self.assertEqual(t.rcpts, ['RCPT TO:<bob@nodsn.test>'])
        self.assertRegex(report, r'Action: relayed')
        self.assertRegex(report, r'Final-Recipient: rfc822; ?bob@nodsn\.test')
        self.assertIn('Status: 2.0.0', report)
        self.assertRegex(report, r'Remote-MTA: dns; ?127\.0\.0\.1\n')
        # the report about the later message is here; none about the earlier one came before it
        self.assertEqual(self.reports_about(passed), [])


class Addresses(unittest.TestCase):
    """smtp_fallback_relay, inet_protocols and smtp_address_preference, with a real DNS server (dnsmasq)."""

    @classmethod
    def setUpClass(cls):
        if not pb.have('dnsmasq'):
            raise unittest.SkipTest('dnsmasq is not installed')
        pb.add_user('alice')
        cls.fallback = ts.FakeServer(port=2545, host='127.0.0.21')
        cls.mx5 = ts.FakeServer(port=2545, host='127.0.0.22')
        cls.v4 = ts.FakeServer(port=2546, host='127.0.0.23')
        cls.v6 = ts.FakeServer(port=2546, host='::1')
        cls.dns = subprocess.Popen(
            ['dnsmasq', '--keep-in-foreground', '--no-resolv', '--no-hosts', '--no-dhcp-interface=',
             '--listen-address=127.0.0.53', '--bind-interfaces', '--port=53', '--pid-file=', '--user=root',
             '--local=/test/',
             # mx.fb.test: nothing listens there
             '--mx-host=fb.test,mx.fb.test,10', '--host-record=mx.fb.test,127.0.0.20',
             '--mx-host=fb5.test,mx.fb5.test,10', '--host-record=mx.fb5.test,127.0.0.22',
             '--host-record=dual.test,127.0.0.23,::1',
             '--server=/fbservfail.test/127.0.0.1#9'])
        if os.path.islink('/etc/resolv.conf') or os.path.exists('/etc/resolv.conf'):
            os.unlink('/etc/resolv.conf')
        with open('/etc/resolv.conf', 'w', encoding='utf-8') as f:
            f.write('nameserver 127.0.0.53\noptions timeout:1 attempts:1\n')
        with open('/etc/postbus/master.cf', 'a', encoding='utf-8') as f:
            f.write('fbk unix - - n - - smtp -o smtp_fallback_relay=[127.0.0.21]:2545\n'
                    'pref4 unix - - n - - smtp -o smtp_address_preference=ipv4\n'
                    'pref6 unix - - n - - smtp -o smtp_address_preference=ipv6\n'
                    'only4 unix - - n - - smtp -o inet_protocols=ipv4 -o smtp_address_preference=ipv6\n'
                    'only6 unix - - n - - smtp -o inet_protocols=ipv6 -o smtp_address_preference=ipv4\n')
        with open(TRANSPORT, 'w', encoding='utf-8') as f:
            f.write('fb.test fbk:fb.test:2545\n'
                    'fb5.test fbk:fb5.test:2545\n'
                    'fbservfail.test fbk:fbservfail.test:2545\n'
                    'pref4.test pref4:[dual.test]:2546\n'
                    'pref6.test pref6:[dual.test]:2546\n'
                    'only4.test only4:[dual.test]:2546\n'
                    'only6.test only6:[dual.test]:2546\n')
        pb.run('postbusctl', 'map', 'build', TRANSPORT)
        pb.set_config(transport_maps=f'gdbm:{TRANSPORT}')

    @classmethod
    def tearDownClass(cls):
        cls.dns.terminate()
        cls.dns.wait()

    def test_fallback_relay_after_temporary_failures(self):
        for domain in ('fb.test', 'fbservfail.test'):
            cursor = pb.journal_cursor()
            marker = 'fallback-%d' % time.time_ns()
            qid = pb.send(SENDER, f'bob@{domain}', f'Subject: {marker}\n\nbody\n')
            [rec] = ts.wait_record(qid, cursor, 'sent')
            self.assertEqual(rec['RELAY'], '127.0.0.21[127.0.0.21]:2545')
            self.assertEqual(len(with_marker(self.fallback, marker)), 1)

        # a 451 to RCPT at the MX: the fallback relay takes the recipient
        self.mx5.defer_all = True
        try:
            cursor = pb.journal_cursor()
            marker = 'fallback451-%d' % time.time_ns()
            qid = pb.send(SENDER, 'bob@fb5.test', f'Subject: {marker}\n\nbody\n')
            [rec] = ts.wait_record(qid, cursor, 'sent')
        finally:
            self.mx5.defer_all = False
        self.assertEqual(rec['RELAY'], '127.0.0.21[127.0.0.21]:2545')
        self.assertIn('RCPT TO:<bob@fb5.test>', self.mx5.commands)
        self.assertEqual(len(with_marker(self.fallback, marker)), 1)
        self.assertEqual(with_marker(self.mx5, marker), [])

    def test_no_fallback_after_5xx(self):
        cursor = pb.journal_cursor()
        before = len(self.fallback.commands)
        qid = pb.send(SENDER, 'reject550@fb5.test', 'Subject: fb5\n\nbody\n')
        [rec] = ts.wait_record(qid, cursor, 'bounced')
        self.assertEqual(rec['DSN'], '5.1.1')
        self.assertEqual(rec['RELAY'], 'mx.fb5.test[127.0.0.22]:2545')
        self.assertEqual(self.fallback.commands[before:], [])

    def test_address_families(self):
        for domain, relay in (('pref4.test', 'dual.test[127.0.0.23]:2546'), ('pref6.test', 'dual.test[::1]:2546'),
                              ('only4.test', 'dual.test[127.0.0.23]:2546'), ('only6.test', 'dual.test[::1]:2546')):
            cursor = pb.journal_cursor()
            marker = f'{domain}-{time.time_ns()}'
            qid = pb.send(SENDER, f'bob@{domain}', f'Subject: {marker}\n\nbody\n')
            [rec] = ts.wait_record(qid, cursor, 'sent')
            self.assertEqual(rec['RELAY'], relay, domain)
            server = self.v6 if '::1' in relay else self.v4
            self.assertEqual(len(with_marker(server, marker)), 1, domain)


if __name__ == '__main__':
    unittest.main(verbosity=2)
