"""smtpd's client name through a real DNS server (dnsmasq on loopback): the PTR name confirmed by its A
record appears in the journal and the Received header and is what check_client_access looks up (with its
parent domains); an address without PTR is "unknown" and fails reject_unknown_reverse_client_hostname; a
PTR name that does not resolve back fails reject_unknown_client_hostname but passes the reverse one; and
a dead name server holds up only the session that waits for it."""
import os
import re
import socket
import unittest

import postbus as pb

ETC = '/etc/postbus'
DNS_ADDRESS = pb.DNS_ADDRESS
HOST = 'mx.example.test'


def build_table(name, text):
    path = os.path.join(ETC, name)
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)
    pb.run('postbusctl', 'map', 'build', path)
    return f'hash:{path}'


def start_dnsmasq():
    """dnsmasq, authoritative for dns.test and 0.0.127.in-addr.arpa (what it does not know is NXDOMAIN):
         127.0.0.20  PTR good.dns.test,          good.dns.test A 127.0.0.20   (confirmed)
         127.0.0.21  no PTR                                                    (unknown)
         127.0.0.22  PTR forged.dns.test,        forged.dns.test A 127.0.0.99 (does not resolve back)
         127.0.0.23  PTR host.blocked.dns.test,  A 127.0.0.23                 (confirmed; parent listed)"""
    return pb.start_dnsmasq([
        '--local=/dns.test/', '--local=/0.0.127.in-addr.arpa/',
        '--ptr-record=20.0.0.127.in-addr.arpa,good.dns.test',
        '--address=/good.dns.test/127.0.0.20',
        '--ptr-record=22.0.0.127.in-addr.arpa,forged.dns.test',
        '--address=/forged.dns.test/127.0.0.99',
        '--ptr-record=23.0.0.127.in-addr.arpa,host.blocked.dns.test',
        '--address=/host.blocked.dns.test/127.0.0.23',
    ], probe='good.dns.test')


def reset_smtpd():
    pb.systemctl('reset-failed', 'postbus-smtpd.service', 'postbus-smtpd.socket', check=False)
    pb.systemctl('restart', 'postbus-smtpd.socket', check=False)


def rcpt_reply(test, source, sender='a@example.org', rcpt=f'erin@{HOST}'):
    with pb.SmtpRaw('127.0.0.1', 25, source=source) as s:
        code, text = s.reply()
        test.assertEqual(code, 220, text)
        test.assertEqual(s.cmd('EHLO client.example.org')[0], 250)
        test.assertEqual(s.cmd(f'MAIL FROM:<{sender}>')[0], 250)
        reply = s.cmd(f'RCPT TO:<{rcpt}>')
        s.cmd('QUIT')
        return reply


class ClientName(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        pb.add_user('erin')
        pb.write_resolv_conf(DNS_ADDRESS)
        cls.dns = start_dnsmasq()
        client = build_table('client_access_dns', 'blocked.dns.test REJECT name blocked\n')
        # a sender whose value is a restriction: reject_unknown_client_hostname for that sender only
        senders = build_table('sender_dns', 'strict@example.org reject_unknown_client_hostname\n')
        reset_smtpd()
        pb.set_config(
            myhostname=HOST,
            mynetworks='127.0.0.1/32',
            alias_maps='',
            unknown_client_reject_code='550',
            smtpd_client_restrictions=f'check_client_access {client}, reject_unknown_reverse_client_hostname',
            smtpd_helo_restrictions='',
            smtpd_sender_restrictions=f'check_sender_access {senders}',
            smtpd_relay_restrictions='permit_mynetworks, reject_unauth_destination',
            smtpd_recipient_restrictions='',
            smtpd_delay_reject='yes')

    @classmethod
    def tearDownClass(cls):
        cls.dns.terminate()
        cls.dns.wait()

    def test_confirmed_name(self):
        cursor = pb.journal_cursor()
        before = len(pb.mbox_messages('erin'))
        qid = pb.send('a@example.org', f'erin@{HOST}', 'hello by name\n', source_address='127.0.0.20')
        pb.wait_until(lambda: len(pb.mbox_messages('erin')) > before, what='delivery to erin')
        received = pb.mbox_messages('erin', parsed=True)[-1].get_all('Received')
        self.assertTrue(any(re.match(r'from client\.test \(good\.dns\.test \[127\.0\.0\.20\]\)', r) for r in received),
                        received)
        msgs = pb.journal_messages(POSTBUS_ROLE='smtpd', CLIENT_ADDRESS='127.0.0.20', since=cursor)
        self.assertIn('connect from good.dns.test[127.0.0.20]', msgs)
        self.assertTrue(any(qid in (m or '') and (m or '').endswith('client=good.dns.test[127.0.0.20]')
                            for m in msgs), msgs)
        self.assertTrue(any((m or '').startswith('disconnect from good.dns.test[127.0.0.20]') for m in msgs), msgs)
        # the strict sender passes too: the name is confirmed
        self.assertEqual(rcpt_reply(self, '127.0.0.20', sender='strict@example.org')[0], 250)

    def test_no_ptr(self):
        cursor = pb.journal_cursor()
        self.assertEqual(rcpt_reply(self, '127.0.0.21'),
                         (550, '5.7.25 Client host rejected: cannot find your reverse hostname, [127.0.0.21]'))
        msgs = pb.journal_messages(POSTBUS_ROLE='smtpd', CLIENT_ADDRESS='127.0.0.21', since=cursor)
        self.assertIn('connect from unknown[127.0.0.21]', msgs)
        self.assertTrue(any(re.match(r'NOQUEUE: reject: RCPT from unknown\[127\.0\.0\.21\]: 550 5\.7\.25 ', m or '')
                            for m in msgs), msgs)

    def test_forged_name(self):
        cursor = pb.journal_cursor()
        # the reverse name exists: reject_unknown_reverse_client_hostname lets it pass
        self.assertEqual(rcpt_reply(self, '127.0.0.22')[0], 250)
        # but it does not resolve back, so the client name is unknown
        self.assertEqual(rcpt_reply(self, '127.0.0.22', sender='strict@example.org'),
                         (550, '5.7.25 Client host rejected: cannot find your hostname, [127.0.0.22]'))
        msgs = pb.journal_messages(POSTBUS_ROLE='smtpd', since=cursor)
        self.assertIn('connect from unknown[127.0.0.22]', msgs)
        self.assertTrue(any('hostname forged.dns.test does not resolve to address 127.0.0.22' in (m or '')
                            for m in msgs), msgs)

    def test_access_by_parent_domain(self):
        self.assertEqual(rcpt_reply(self, '127.0.0.23'),
                         (554, '5.7.1 <host.blocked.dns.test[127.0.0.23]>: Client host rejected: name blocked'))


class Hole:
    """A name server that reads queries and answers only those it is told to."""

    def __init__(self, address):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((address, 53))
        self.sock.settimeout(30)
        self.queries = {}               # query name -> (query up to the end of the question, client)

    def close(self):
        self.sock.close()

    def wait_for(self, *names):
        while not all(n in self.queries for n in names):
            query, peer = self.sock.recvfrom(512)
            labels, off = [], 12
            while query[off]:
                labels.append(query[off + 1:off + 1 + query[off]].decode())
                off += 1 + query[off]
            self.queries['.'.join(labels).lower()] = (query[:off + 5], peer)

    def nxdomain(self, name):
        query, peer = self.queries.pop(name)
        self.sock.sendto(query[:2] + b'\x81\x83\x00\x01\x00\x00\x00\x00\x00\x00' + query[12:], peer)


class DeadDns(unittest.TestCase):
    """A name server that never answers: the temporary failure, within the resolver's deadline
    (timeout:1 attempts:1), answers 450 whatever unknown_client_reject_code says."""

    @classmethod
    def setUpClass(cls):
        pb.add_user('erin')
        cls.hole = Hole('127.0.0.57')
        pb.write_resolv_conf('127.0.0.57', options='timeout:1 attempts:1')
        reset_smtpd()
        pb.set_config(
            myhostname=HOST,
            mynetworks='127.0.0.1/32',
            alias_maps='',
            smtpd_client_restrictions='reject_unknown_client_hostname',
            smtpd_helo_restrictions='',
            smtpd_sender_restrictions='',
            smtpd_relay_restrictions='permit_mynetworks, reject_unauth_destination',
            smtpd_recipient_restrictions='',
            unknown_client_reject_code='550',
            smtpd_delay_reject='yes')

    @classmethod
    def tearDownClass(cls):
        cls.hole.close()

    def test_timeout(self):
        cursor = pb.journal_cursor()
        # SmtpRaw gives up after 10 s: the greeting comes after the 1 s deadline, not c-ares's own retries
        self.assertEqual(rcpt_reply(self, '127.0.0.30'),
                         (450, '4.7.25 Client host rejected: cannot find your hostname, [127.0.0.30]'))
        self.hole.wait_for('30.0.0.127.in-addr.arpa')     # the query did go out
        msgs = pb.journal_messages(POSTBUS_ROLE='smtpd', CLIENT_ADDRESS='127.0.0.30', since=cursor)
        self.assertIn('connect from unknown[127.0.0.30]', msgs)


class HeldDns(unittest.TestCase):
    """A lookup that takes long holds up its own session only: another client is greeted meanwhile."""

    @classmethod
    def setUpClass(cls):
        cls.hole = Hole('127.0.0.58')
        pb.write_resolv_conf('127.0.0.58', options='timeout:30 attempts:1')
        reset_smtpd()
        pb.set_config(
            myhostname=HOST,
            mynetworks='127.0.0.1/32',
            alias_maps='',
            smtpd_client_restrictions='',
            smtpd_helo_restrictions='',
            smtpd_sender_restrictions='',
            smtpd_relay_restrictions='permit_mynetworks, reject_unauth_destination',
            smtpd_recipient_restrictions='',
            unknown_client_reject_code='450')

    @classmethod
    def tearDownClass(cls):
        cls.hole.close()

    def test_other_session_not_stalled(self):
        a = pb.SmtpRaw('127.0.0.1', 25, source='127.0.0.31')
        self.addCleanup(a.close)
        self.hole.wait_for('31.0.0.127.in-addr.arpa')     # a's lookup is out, and stays unanswered
        b = pb.SmtpRaw('127.0.0.1', 25, source='127.0.0.32')
        self.addCleanup(b.close)
        self.hole.wait_for('32.0.0.127.in-addr.arpa')
        self.hole.nxdomain('32.0.0.127.in-addr.arpa')
        self.assertEqual(b.reply()[0], 220)                # within SmtpRaw's 10 s, long before a's 30 s
        self.assertEqual(b.cmd('EHLO client.example.org')[0], 250)
        self.assertEqual(b.cmd('QUIT')[0], 221)
        # a is still waiting for its name: no greeting yet, and nothing it sends is read
        a.send('EHLO early.example.org\r\n')
        self.assertFalse(a.closed(timeout=1))
        a.sock.settimeout(10)
        self.hole.nxdomain('31.0.0.127.in-addr.arpa')
        self.assertEqual(a.reply()[0], 220)
        self.assertEqual(a.reply()[0], 250)                # the early EHLO, answered after the greeting


if __name__ == '__main__':
    unittest.main()
