"""smtpd's restriction lists over real SMTP: smtpd_client/helo/sender/relay/recipient_restrictions with
access(5) tables built by `postbusctl map build`, the built-in restrictions, reject_rbl_client against a
real DNS server (dnsmasq on loopback), smtpd_delay_reject both ways, local_recipient_maps through
alias_maps, smtpd_data_restrictions and smtpd_end_of_data_restrictions (reject_unauth_pipelining,
reject_multi_recipient_bounce), smtpd_restriction_classes, warn_if_reject, defer_if_permit and
defer_if_reject (with the tempfail actions of DNS failures), reject_unlisted_sender, the journal records of
rejections, and configuration errors."""
import os
import re
import shutil
import socket
import struct
import time
import unittest

import postbus as pb

ETC = '/etc/postbus'
DNS_ADDRESS = '127.0.0.53'
RBL = 'zen.test'
RBL_TEXT = 'Listed by zen.test: see https://zen.test/lookup'
RHSBL_TEXT = 'Listed by rhsbl.test'
HOST = 'mx.example.test'   # myhostname: local and fully qualified
DEFAULT_RBL_REPLY = ('$rbl_code Service unavailable; $rbl_class [$rbl_what] blocked using '
                     '$rbl_domain${rbl_reason?; $rbl_reason}')     # Postfix's


def build_table(name, text, aliases=False):
    """Writes /etc/postbus/NAME and compiles it with postbusctl; returns the table spec."""
    path = os.path.join(ETC, name)
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)
    args = ['postbusctl'] + (['--aliases'] if aliases else []) + ['map', 'build', path]
    pb.run(*args)
    assert os.path.exists(path + '.gdbm'), path
    return f'hash:{path}'


class Dns:
    """dnsmasq answering for zen.test and bl.test on 127.0.0.53 and ::1 only, and /etc/resolv.conf
    naming the servers smtpd is to ask (the container is thrown away afterwards)."""

    proc = None

    @classmethod
    def start(cls, *servers, options='timeout:2 attempts:2'):
        """Starts dnsmasq once; writes resolv.conf with servers (default 127.0.0.53) each time. smtpd
        reads resolv.conf when it starts."""
        pb.write_resolv_conf(*servers, options=options)
        if cls.proc:
            return
        cls.proc = pb.start_dnsmasq([
            f'--local=/{RBL}/',
            f'--address=/2.0.0.127.{RBL}/127.0.0.2',
            f'--txt-record=2.0.0.127.{RBL},{RBL_TEXT}',
            f'--address=/9.0.0.127.{RBL}/127.0.0.4',
            # a second list whose answers are filtered (reject_rbl_client bl.test=127.0.0.[3..11])
            '--local=/bl.test/',
            '--address=/10.0.0.127.bl.test/127.0.0.2',
            '--address=/11.0.0.127.bl.test/127.0.0.5',
            # HELO names (reject_unknown_helo_hostname): one with an A record, one with only an MX, the rest
            # of helo.test does not exist; broken.test goes to a server that is not there
            '--local=/helo.test/',
            '--host-record=known.helo.test,127.0.0.40',
            '--mx-host=mx.helo.test,known.helo.test,10',
            '--server=/broken.test/127.0.0.56',
            # a right-hand side list (reject_rhsbl_*): bad.example and its subdomains are listed (the
            # domain itself with a text), filtered.example with an answer outside 127.0.0.[2..3];
            # 127.0.0.32 is verified.bad.example both ways, 127.0.0.31 only by its PTR record
            '--local=/rhsbl.test/',
            '--address=/bad.example.rhsbl.test/127.0.0.2',
            f'--txt-record=bad.example.rhsbl.test,{RHSBL_TEXT}',
            '--address=/filtered.example.rhsbl.test/127.0.0.9',
            '--local=/bad.example/',
            '--host-record=verified.bad.example,127.0.0.32',
            '--ptr-record=31.0.0.127.in-addr.arpa,host.bad.example',
            # allow lists (permit_dnswl_client, permit_rhswl_client): 127.0.0.2 listed, 127.0.0.3 listed with an
            # answer outside 127.0.0.[2..3], verified.bad.example (127.0.0.32) by name; brokenwl.test fails
            '--local=/wl.test/',
            '--address=/2.0.0.127.wl.test/127.0.0.2',
            '--address=/3.0.0.127.wl.test/127.0.0.9',
            '--local=/rhswl.test/',
            '--address=/verified.bad.example.rhswl.test/127.0.0.2',
            '--server=/brokenwl.test/127.0.0.56',
        ], probe=f'2.0.0.127.{RBL}', addresses=(DNS_ADDRESS, '::1'))


def session(test, source='127.0.0.1', helo='client.example.org', greeting=220):
    s = pb.SmtpRaw('127.0.0.1', 25, source=source)
    test.addCleanup(s.close)
    code, text = s.reply()
    test.assertEqual(code, greeting, text)
    if helo is not None and greeting == 220:
        code, text = s.cmd(f'EHLO {helo}')
        test.assertEqual(code, 250, text)
    return s


def rcpt_reply(test, source='127.0.0.1', helo='client.example.org', sender='a@example.org',
               rcpt='erin@mx.example.test'):
    """The reply to RCPT after EHLO and MAIL (both must succeed: smtpd_delay_reject = yes)."""
    s = session(test, source=source, helo=helo)
    code, text = s.cmd(f'MAIL FROM:<{sender}>')
    test.assertEqual(code, 250, text)
    reply = s.cmd(f'RCPT TO:<{rcpt}>')
    s.cmd('QUIT')
    return reply


def reset_smtpd():
    """A role that failed on a bad main.cf is not restarted by systemd: start it afresh."""
    pb.systemctl('reset-failed', 'postbus-smtpd.service', 'postbus-smtpd.socket', check=False)
    pb.systemctl('restart', 'postbus-smtpd.socket', check=False)


class Restrictions(unittest.TestCase):
    """Every list at once, smtpd_delay_reject = yes (the default): every refusal comes at RCPT."""

    @classmethod
    def setUpClass(cls):
        pb.add_user('erin')
        Dns.start(DNS_ADDRESS)
        client = build_table('client_access', '127.0.0.3 REJECT no thanks\n'
                                              '127.0.0.4 550 5.7.0 custom refusal\n'
                                              '127.0.0.5 DEFER\n'
                                              '127.0.7 REJECT\n'
                                              '127.0.7.7 DUNNO\n')
        helo = build_table('helo_access', 'bad.helo.test REJECT\nevil.test 554 5.7.1 evil helo\n')
        sender = build_table('sender_access', 'spammer@example.com REJECT\n'
                                              'example.net 553 5.7.1 not from that domain\n'
                                              'postmaster@ OK\n')
        rcpt = build_table('recipient_access', 'blocked@mx.example.test 550 5.7.1 not this one\n'
                                               'full@mx.example.test 452 4.2.2 Mailbox full\n')
        aliases = build_table('aliases', 'sales: erin\nfull: erin\nblocked: erin\n', aliases=True)
        reset_smtpd()
        pb.set_config(
            myhostname=HOST,
            mynetworks='127.0.0.1/32',
            alias_maps=aliases,
            smtpd_client_restrictions=f'check_client_access {client}, reject_rbl_client {RBL}, '
                                      'reject_rbl_client bl.test=127.0.0.[3..11]',
            smtpd_helo_restrictions=f'check_helo_access {helo}, reject_invalid_helo_hostname, '
                                    'reject_non_fqdn_helo_hostname',
            smtpd_sender_restrictions=f'check_sender_access {sender}, reject_non_fqdn_sender',
            smtpd_relay_restrictions='permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination',
            smtpd_recipient_restrictions=f'check_recipient_access {rcpt}, reject_non_fqdn_recipient, '
                                         'reject_unlisted_recipient',
            smtpd_delay_reject='yes')

    def test_accepted_and_delivered(self):
        qid = pb.send('a@example.org', [f'erin@{HOST}', f'sales@{HOST}'], 'restrictions let this pass\n',
                      helo='client.example.org')
        pb.wait_until(lambda: any(qid in m for m in pb.mbox_messages('erin')), what='the mail in erin\'s mbox')

    def test_check_client_access(self):
        code, text = rcpt_reply(self, source='127.0.0.3')
        self.assertEqual((code, text), (554, '5.7.1 <unknown[127.0.0.3]>: Client host rejected: no thanks'))
        code, text = rcpt_reply(self, source='127.0.0.4')
        self.assertEqual((code, text), (550, '5.7.0 <unknown[127.0.0.4]>: Client host rejected: custom refusal'))
        code, text = rcpt_reply(self, source='127.0.0.5')
        self.assertEqual((code, text), (450, '4.7.1 <unknown[127.0.0.5]>: Client host rejected: Access denied'))
        # a parent network, and DUNNO that stops the search at the more specific key
        code, text = rcpt_reply(self, source='127.0.7.1')
        self.assertEqual(code, 554, text)
        self.assertEqual(rcpt_reply(self, source='127.0.7.7')[0], 250)

    def test_rejection_is_journaled(self):
        cursor = pb.journal_cursor()
        rcpt_reply(self, source='127.0.0.3', sender='journal@example.org', rcpt='erin@mx.example.test')
        recs = pb.journal(POSTBUS_ROLE='smtpd', CLIENT_ADDRESS='127.0.0.3', SENDER='journal@example.org',
                          since=cursor)
        msgs = [r['MESSAGE'] for r in recs]
        want = ('NOQUEUE: reject: RCPT from unknown[127.0.0.3]: 554 5.7.1 <unknown[127.0.0.3]>: Client host '
                'rejected: no thanks; from=<journal@example.org> to=<erin@mx.example.test> proto=ESMTP '
                'helo=<client.example.org>')
        self.assertIn(want, msgs)
        rec = next(r for r in recs if r['MESSAGE'] == want)
        self.assertEqual(rec.get('DSN'), '5.7.1')
        self.assertEqual(rec.get('RECIPIENT'), 'erin@mx.example.test')

    def test_check_helo_access(self):
        code, text = rcpt_reply(self, helo='bad.helo.test')
        self.assertEqual((code, text), (554, '5.7.1 <bad.helo.test>: Helo command rejected: Access denied'))
        # the parent domain matches its subdomains (parent_domain_matches_subdomains)
        code, text = rcpt_reply(self, helo='mx.evil.test')
        self.assertEqual((code, text), (554, '5.7.1 <mx.evil.test>: Helo command rejected: evil helo'))

    def test_helo_hostname_checks(self):
        code, text = rcpt_reply(self, helo='bad_name.example.org')
        self.assertEqual((code, text), (501, '5.5.2 <bad_name.example.org>: Helo command rejected: Invalid name'))
        code, text = rcpt_reply(self, helo='shortname')
        self.assertEqual((code, text),
                         (504, '5.5.2 <shortname>: Helo command rejected: need fully-qualified hostname'))
        self.assertEqual(rcpt_reply(self, helo='[127.0.0.1]')[0], 250)

    def test_check_sender_access(self):
        code, text = rcpt_reply(self, sender='Spammer@Example.com')
        self.assertEqual((code, text), (554, '5.7.1 <Spammer@Example.com>: Sender address rejected: Access denied'))
        code, text = rcpt_reply(self, sender='x@mail.example.net')
        self.assertEqual((code, text),
                         (553, '5.7.1 <x@mail.example.net>: Sender address rejected: not from that domain'))
        # "postmaster@" matches the local part in any domain; OK ends the sender list before
        # reject_non_fqdn_sender
        self.assertEqual(rcpt_reply(self, sender='postmaster@nodots')[0], 250)

    def test_reject_non_fqdn_sender_and_recipient(self):
        code, text = rcpt_reply(self, sender='someone@nodots')
        self.assertEqual((code, text),
                         (504, '5.5.2 <someone@nodots>: Sender address rejected: need fully-qualified address'))
        code, text = rcpt_reply(self, rcpt='erin')
        self.assertEqual((code, text), (504, '5.5.2 <erin>: Recipient address rejected: need fully-qualified address'))
        # the null sender is always fully qualified
        self.assertEqual(rcpt_reply(self, sender='')[0], 250)

    def test_check_recipient_access(self):
        code, text = rcpt_reply(self, rcpt='Blocked@mx.example.test')
        self.assertEqual((code, text), (550, '5.7.1 <Blocked@mx.example.test>: Recipient address rejected: not this one'))
        code, text = rcpt_reply(self, rcpt='full@mx.example.test')
        self.assertEqual((code, text), (452, '4.2.2 <full@mx.example.test>: Recipient address rejected: Mailbox full'))

    def test_reject_unlisted_recipient(self):
        code, text = rcpt_reply(self, rcpt='nosuchuser@mx.example.test')
        self.assertEqual((code, text),
                         (550, '5.1.1 <nosuchuser@mx.example.test>: Recipient address rejected: User unknown in local '
                               'recipient table'))
        # a key of alias_maps is a known local recipient, though no such user exists
        self.assertEqual(rcpt_reply(self, rcpt='sales@mx.example.test')[0], 250)

    def test_reject_unauth_destination(self):
        code, text = rcpt_reply(self, source='127.0.0.6', rcpt='someone@example.com')
        self.assertEqual((code, text), (554, '5.7.1 <someone@example.com>: Relay access denied'))
        # permit_mynetworks
        self.assertEqual(rcpt_reply(self, source='127.0.0.1', rcpt='someone@example.com')[0], 250)

    def test_reject_rbl_client(self):
        code, text = rcpt_reply(self, source='127.0.0.2')
        self.assertEqual((code, text),
                         (554, f'5.7.1 Service unavailable; Client host [127.0.0.2] blocked using {RBL}; {RBL_TEXT}'))
        # listed without a TXT record: no text after the domain
        code, text = rcpt_reply(self, source='127.0.0.9')
        self.assertEqual((code, text), (554, f'5.7.1 Service unavailable; Client host [127.0.0.9] blocked using {RBL}'))
        # not listed (NXDOMAIN)
        self.assertEqual(rcpt_reply(self, source='127.0.0.8')[0], 250)

    def test_reject_rbl_client_filter(self):
        # bl.test answers 127.0.0.5 for 127.0.0.11: inside 127.0.0.[3..11]
        code, text = rcpt_reply(self, source='127.0.0.11')
        self.assertEqual((code, text), (554, '5.7.1 Service unavailable; Client host [127.0.0.11] blocked using bl.test'))
        # and 127.0.0.2 for 127.0.0.10: outside the filter, so not listed
        self.assertEqual(rcpt_reply(self, source='127.0.0.10')[0], 250)

    def test_delay_reject_answers_earlier_commands(self):
        # a client that is refused still gets 250 to EHLO and MAIL: the refusal comes at RCPT
        s = session(self, source='127.0.0.3', helo='bad.helo.test')
        self.assertEqual(s.cmd('MAIL FROM:<spammer@example.com>')[0], 250)
        code, text = s.cmd('RCPT TO:<erin@mx.example.test>')
        self.assertEqual(code, 554)
        self.assertIn('Client host rejected', text)
        self.assertEqual(s.cmd('QUIT')[0], 221)


class ListBasics(unittest.TestCase):
    """permit, reject and defer, and a table that has not been built."""

    @classmethod
    def setUpClass(cls):
        pb.add_user('erin')
        helo = build_table('helo_basic', 'good.example OK\n')
        missing = os.path.join(ETC, 'never_built')
        for path in (missing, missing + '.gdbm'):
            if os.path.exists(path):
                os.unlink(path)
        reset_smtpd()
        pb.set_config(
            myhostname=HOST,
            mynetworks='127.0.0.1/32',
            alias_maps='',
            smtpd_client_restrictions='permit_mynetworks, reject',
            smtpd_helo_restrictions=f'check_helo_access {helo}, defer',
            smtpd_sender_restrictions='permit, reject',
            smtpd_relay_restrictions='reject_unauth_destination',
            smtpd_recipient_restrictions=f'check_recipient_access hash:{missing}',
            smtpd_delay_reject='yes')
        cls.missing = missing

    def test_permit_reject_defer(self):
        code, text = rcpt_reply(self, source='127.0.0.2', helo='good.example', rcpt='erin@mx.example.test')
        self.assertEqual((code, text), (554, '5.7.1 <unknown[127.0.0.2]>: Client host rejected: Access denied'))
        code, text = rcpt_reply(self, helo='other.example', rcpt='erin@mx.example.test')
        self.assertEqual((code, text), (450, '4.3.2 <other.example>: Helo command rejected: Try again later'))

    def test_missing_table_is_a_temporary_failure(self):
        code, text = rcpt_reply(self, helo='good.example', rcpt='erin@mx.example.test')
        self.assertEqual((code, text), (451, '4.3.0 <erin@mx.example.test>: Temporary lookup failure'))
        # once built, the same session set-up passes (and "permit" ended the sender list before "reject")
        build_table('never_built', 'blocked@mx.example.test REJECT\n')
        self.addCleanup(lambda: [os.unlink(p) for p in (self.missing, self.missing + '.gdbm')
                                 if os.path.exists(p)])
        self.assertEqual(rcpt_reply(self, helo='good.example', rcpt='erin@mx.example.test')[0], 250)


class DelayRejectNo(unittest.TestCase):
    """smtpd_delay_reject = no: client restrictions at connect (the greeting waits for the DNS blocklist),
    HELO restrictions at HELO, sender restrictions at MAIL. The first name server of resolv.conf is
    dead (nothing listens on 127.0.0.54: the query goes on to the next) and the second is IPv6."""

    @classmethod
    def setUpClass(cls):
        pb.add_user('erin')
        Dns.start('127.0.0.54', '::1')
        client = build_table('client_access2', '127.0.0.3 REJECT no thanks\n')
        reset_smtpd()
        pb.set_config(
            myhostname=HOST,
            mynetworks='127.0.0.1/32',
            alias_maps='',
            smtpd_client_restrictions=f'check_client_access {client}, reject_rbl_client {RBL}',
            smtpd_helo_restrictions='reject_non_fqdn_helo_hostname',
            smtpd_sender_restrictions='reject_non_fqdn_sender',
            smtpd_relay_restrictions='permit_mynetworks, reject_unauth_destination',
            smtpd_recipient_restrictions='',
            smtpd_delay_reject='no',
            smtpd_helo_required='yes')

    def test_client_refused_at_connect(self):
        cursor = pb.journal_cursor()
        s = session(self, source='127.0.0.3', greeting=554)
        code, text = s.cmd('EHLO client.example.org')
        self.assertEqual((code, text), (503, '5.7.0 Error: access denied for unknown[127.0.0.3]'))
        self.assertEqual(s.cmd('MAIL FROM:<a@example.org>')[0], 503)
        self.assertEqual(s.cmd('QUIT')[0], 221)
        msgs = pb.journal_messages(POSTBUS_ROLE='smtpd', CLIENT_ADDRESS='127.0.0.3', since=cursor)
        self.assertTrue(any(re.search(r'NOQUEUE: reject: CONNECT from unknown\[127\.0\.0\.3\]: 554 5\.7\.1 '
                                      r'<unknown\[127\.0\.0\.3\]>: Client host rejected: no thanks;', m or '')
                            for m in msgs), msgs)

    def test_rbl_refused_at_connect(self):
        s = pb.SmtpRaw('127.0.0.1', 25, source='127.0.0.2')
        self.addCleanup(s.close)
        code, text = s.reply()
        self.assertEqual((code, text),
                         (554, f'5.7.1 Service unavailable; Client host [127.0.0.2] blocked using {RBL}; {RBL_TEXT}'))

    def test_helo_refused_at_helo(self):
        s = session(self, helo=None)
        code, text = s.cmd('EHLO shortname')
        self.assertEqual((code, text), (504, '5.5.2 <shortname>: Helo command rejected: need fully-qualified hostname'))
        # no HELO was accepted (smtpd_helo_required = yes; with no, MAIL may come without one)
        self.assertEqual(s.cmd('MAIL FROM:<a@example.org>')[0], 503)
        self.assertEqual(s.cmd('EHLO client.example.org')[0], 250)
        code, text = s.cmd('MAIL FROM:<a@nodots>')
        self.assertEqual((code, text), (504, '5.5.2 <a@nodots>: Sender address rejected: need fully-qualified address'))
        self.assertEqual(s.cmd('MAIL FROM:<a@example.org>')[0], 250)
        self.assertEqual(s.cmd('RCPT TO:<erin@mx.example.test>')[0], 250)
        s.cmd('QUIT')


class PerService(unittest.TestCase):
    """Each service has its own lists, from master.cf's -o: submission's apply on port 587 only."""

    @classmethod
    def setUpClass(cls):
        pb.add_user('erin')
        reset_smtpd()
        master = '/etc/postbus/master.cf'
        if os.path.exists(master):
            shutil.copy(master, master + '.saved')
            cls.addClassCleanup(os.replace, master + '.saved', master)
        else:
            cls.addClassCleanup(os.unlink, master)
        with open(master, 'w', encoding='utf-8') as f:
            f.write('submission inet n - n - - smtpd\n'
                    # no certificate in this test: let 587 take mail without STARTTLS
                    '  -o smtpd_tls_security_level=none\n'
                    '  -o { smtpd_sender_restrictions = check_sender_access hash:/etc/postbus/submission_senders,'
                    ' reject }\n'
                    'local unix - n n - - local\n')
        pb.set_config(
            myhostname=HOST,
            mynetworks='127.0.0.1/32',
            alias_maps='',
            smtpd_client_restrictions='',
            smtpd_helo_restrictions='',
            smtpd_sender_restrictions='',
            smtpd_relay_restrictions='permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination',
            smtpd_recipient_restrictions='',
            smtpd_delay_reject='yes')
        build_table('submission_senders', 'alice@example.org OK\n')

    def rcpt(self, port, sender):
        with pb.SmtpRaw('127.0.0.1', port) as s:
            self.assertEqual(s.reply()[0], 220)
            self.assertEqual(s.cmd('EHLO client.example.org')[0], 250)
            self.assertEqual(s.cmd(f'MAIL FROM:<{sender}>')[0], 250)
            reply = s.cmd(f'RCPT TO:<erin@{HOST}>')
            s.cmd('QUIT')
            return reply

    def test_submission_lists(self):
        self.assertEqual(self.rcpt(587, 'alice@example.org')[0], 250)
        self.assertEqual(self.rcpt(587, 'mallory@example.org'),
                         (554, '5.7.1 <mallory@example.org>: Sender address rejected: Access denied'))
        # port 25 keeps main.cf's own (empty) sender restrictions
        self.assertEqual(self.rcpt(25, 'mallory@example.org')[0], 250)


class HeldDns:
    """A name server that answers only when told to: it shows what smtpd does while a lookup is
    outstanding."""

    def __init__(self, address):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((address, 53))
        self.sock.settimeout(30)
        self.queries = {}               # (name, qtype) -> (query, client address)

    def close(self):
        self.sock.close()

    def wait_for(self, name, qtypes=(1, 16)):
        """Reads queries until those for name (A and TXT) have come."""
        while not all((name, t) in self.queries for t in qtypes):
            query, peer = self.sock.recvfrom(512)
            labels, off = [], 12
            while query[off]:
                labels.append(query[off + 1:off + 1 + query[off]].decode())
                off += 1 + query[off]
            qtype = struct.unpack('>H', query[off + 1:off + 3])[0]
            self.queries[('.'.join(labels).lower(), qtype)] = (query[:off + 5], peer)

    def answer(self, name, qtype, rdata=None):
        """Answers a query received: with one record of rdata, or NXDOMAIN when rdata is None."""
        query, peer = self.queries.pop((name, qtype))
        flags = 0x8180 if rdata is not None else 0x8183
        reply = query[:2] + struct.pack('>HHHHH', flags, 1, 1 if rdata is not None else 0, 0, 0) + query[12:]
        if rdata is not None:
            reply += struct.pack('>HHHIH', 0xC00C, qtype, 1, 60, len(rdata)) + rdata
        self.sock.sendto(reply, peer)


class NonBlocking(unittest.TestCase):
    """A DNS blocklist lookup holds up only the commands that need it (RCPT here), and no other session."""

    @classmethod
    def setUpClass(cls):
        pb.add_user('erin')
        cls.dns = HeldDns('127.0.0.55')
        Dns.start('127.0.0.55', options='timeout:30 attempts:1')
        reset_smtpd()
        pb.set_config(
            myhostname=HOST,
            mynetworks='127.0.0.1/32',
            alias_maps='',
            smtpd_client_restrictions='reject_rbl_client held.test',
            # the greeting would wait for the client's PTR name, which this server holds too
            smtpd_peername_lookup='no',
            smtpd_helo_restrictions='',
            smtpd_sender_restrictions='',
            smtpd_relay_restrictions='permit_mynetworks, reject_unauth_destination',
            smtpd_recipient_restrictions='',
            smtpd_delay_reject='yes')

    @classmethod
    def tearDownClass(cls):
        cls.dns.close()

    def test_lookup_does_not_stall(self):
        a = session(self, source='127.0.0.2')          # greeted and EHLO answered at once
        self.dns.wait_for('2.0.0.127.held.test')        # while its lookups are outstanding
        self.assertEqual(a.cmd('MAIL FROM:<a@example.org>')[0], 250)
        a.send(f'RCPT TO:<erin@{HOST}>\r\n')         # this one waits

        # another client is served meanwhile, up to its own RCPT
        b = session(self, source='127.0.0.3')
        self.dns.wait_for('3.0.0.127.held.test')
        self.assertEqual(b.cmd('MAIL FROM:<b@example.org>')[0], 250)
        b.send(f'RCPT TO:<erin@{HOST}>\r\n')

        # the lists answer: 127.0.0.2 is listed (with a text), 127.0.0.3 is not
        self.dns.answer('2.0.0.127.held.test', 16, bytes([9]) + b'held list')
        self.dns.answer('2.0.0.127.held.test', 1, bytes([127, 0, 0, 2]))
        self.dns.answer('3.0.0.127.held.test', 1, None)
        self.assertEqual(a.reply(),
                         (554, '5.7.1 Service unavailable; Client host [127.0.0.2] blocked using held.test; held list'))
        self.assertEqual(b.reply()[0], 250)
        self.assertEqual(a.cmd('QUIT')[0], 221)
        self.assertEqual(b.cmd('QUIT')[0], 221)


def base_config(**params):
    """main.cf for a test class: the relay defaults, empty lists, and what the class sets on top."""
    config = dict(
        myhostname=HOST,
        mynetworks='127.0.0.1/32',
        alias_maps='',
        smtpd_client_restrictions='',
        smtpd_helo_restrictions='',
        smtpd_sender_restrictions='',
        smtpd_relay_restrictions='permit_mynetworks, reject_unauth_destination',
        smtpd_recipient_restrictions='',
        smtpd_data_restrictions='',
        smtpd_end_of_data_restrictions='',
        smtpd_delay_reject='yes',
        smtpd_peername_lookup='yes',
        smtpd_tls_cert_file='',
        smtpd_tls_key_file='',
        relay_domains='',
        smtpd_restriction_classes='',
        smtpd_reject_unlisted_sender='no',
        rbl_reply_maps='',
        default_rbl_reply=DEFAULT_RBL_REPLY)
    config.update(params)
    reset_smtpd()
    pb.set_config(**config)


def transaction(test, s, sender, rcpts):
    """MAIL and RCPTs, each answered 250."""
    test.assertEqual(s.cmd(f'MAIL FROM:<{sender}>')[0], 250)
    for rcpt in rcpts:
        code, text = s.cmd(f'RCPT TO:<{rcpt}>')
        test.assertEqual(code, 250, text)


class DataRestrictions(unittest.TestCase):
    """smtpd_data_restrictions at DATA (and the first BDAT), smtpd_end_of_data_restrictions after the final
    dot, with reject_unauth_pipelining and reject_multi_recipient_bounce."""

    @classmethod
    def setUpClass(cls):
        pb.add_user('erin')
        eod = build_table('eod_senders', 'eod@example.org 550 5.7.1 refused after the data\n')
        base_config(smtpd_data_restrictions='reject_unauth_pipelining, reject_multi_recipient_bounce',
                    smtpd_end_of_data_restrictions=f'check_sender_access {eod}')

    def test_unauth_pipelining_helo_client(self):
        # a HELO client does not know of PIPELINING: MAIL, RCPT and DATA in one write is improper
        cursor = pb.journal_cursor()
        s = session(self, source='127.0.0.21', helo=None)
        self.assertEqual(s.cmd('HELO client.example.org')[0], 250)
        s.send(f'MAIL FROM:<a@example.org>\r\nRCPT TO:<erin@{HOST}>\r\nDATA\r\n')
        self.assertEqual(s.reply()[0], 250)
        self.assertEqual(s.reply()[0], 250)
        self.assertEqual(s.reply(), (503, '5.5.0 <DATA>: Data command rejected: Improper use of SMTP command '
                                          'pipelining'))
        self.assertEqual(s.cmd('QUIT')[0], 221)
        msgs = pb.journal_messages(POSTBUS_ROLE='smtpd', CLIENT_ADDRESS='127.0.0.21', since=cursor)
        self.assertTrue(any((m or '').startswith('improper command pipelining after MAIL from unknown[127.0.0.21]: '
                                                 'RCPT TO:<erin@') for m in msgs), msgs)
        self.assertIn('NOQUEUE: reject: DATA from unknown[127.0.0.21]: 503 5.5.0 <DATA>: Data command rejected: '
                      'Improper use of SMTP command pipelining; from=<a@example.org> to=<erin@mx.example.test> '
                      'proto=SMTP helo=<client.example.org>', msgs)

    def test_pipelining_after_ehlo_is_allowed(self):
        # the same write after EHLO is what PIPELINING is for: DATA is answered 354
        s = session(self, source='127.0.0.22')
        s.send(f'MAIL FROM:<a@example.org>\r\nRCPT TO:<erin@{HOST}>\r\nDATA\r\n')
        self.assertEqual([s.reply()[0] for _ in range(3)], [250, 250, 354])
        code, text = s.cmd('Subject: pipelined\r\n\r\nwell pipelined\r\n.')
        self.assertEqual(code, 250, text)
        s.cmd('QUIT')

    def test_unauth_pipelining_after_ehlo_and_data(self):
        # ESMTP, but EHLO itself must end a group: what follows it in the same write is improper
        s = session(self, source='127.0.0.23', helo=None)
        s.send(f'EHLO client.example.org\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<erin@{HOST}>\r\nDATA\r\n')
        self.assertEqual([s.reply()[0] for _ in range(3)], [250, 250, 250])
        self.assertEqual(s.reply()[0], 503)
        s.cmd('QUIT')

    def test_multi_recipient_bounce(self):
        cursor = pb.journal_cursor()
        s = session(self, source='127.0.0.24')
        transaction(self, s, '', [f'erin@{HOST}', f'root@{HOST}'])
        self.assertEqual(s.cmd('DATA'), (550, '5.5.3 <DATA>: Data command rejected: Multi-recipient bounce'))
        # the transaction is over for the client: RSET, and a bounce to one recipient passes
        self.assertEqual(s.cmd('RSET')[0], 250)
        transaction(self, s, '', [f'erin@{HOST}'])
        self.assertEqual(s.cmd('DATA')[0], 354)
        self.assertEqual(s.cmd('Subject: bounce\r\n\r\none recipient\r\n.')[0], 250)
        s.cmd('QUIT')
        msgs = pb.journal_messages(POSTBUS_ROLE='smtpd', CLIENT_ADDRESS='127.0.0.24', since=cursor)
        # many recipients: none is named, as in Postfix
        self.assertIn('NOQUEUE: reject: DATA from unknown[127.0.0.24]: 550 5.5.3 <DATA>: Data command rejected: '
                      'Multi-recipient bounce; from=<> proto=ESMTP helo=<client.example.org>', msgs)

    def test_multi_recipient_bounce_bdat(self):
        s = session(self, source='127.0.0.25')
        transaction(self, s, '', [f'erin@{HOST}', f'root@{HOST}'])
        s.send('BDAT 12 LAST\r\nSubject: x\r\n')
        self.assertEqual(s.reply(), (550, '5.5.3 <DATA>: Data command rejected: Multi-recipient bounce'))
        # the chunk was read and thrown away, not taken for commands
        self.assertEqual(s.cmd('NOOP')[0], 250)
        s.cmd('QUIT')

    def test_end_of_data(self):
        cursor = pb.journal_cursor()
        s = session(self, source='127.0.0.26')
        transaction(self, s, 'eod@example.org', [f'erin@{HOST}'])
        self.assertEqual(s.cmd('DATA')[0], 354)
        code, text = s.cmd('Subject: eod\r\n\r\nrefused only now\r\n.')
        self.assertEqual((code, text), (550, '5.7.1 <eod@example.org>: Sender address rejected: refused after the data'))
        # nothing was queued, and the session goes on with a new transaction
        transaction(self, s, 'other@example.org', [f'erin@{HOST}'])
        self.assertEqual(s.cmd('DATA')[0], 354)
        code, text = s.cmd('Subject: eod\r\n\r\nthis one passes\r\n.')
        self.assertEqual(code, 250, text)
        s.cmd('QUIT')
        msgs = pb.journal_messages(POSTBUS_ROLE='smtpd', CLIENT_ADDRESS='127.0.0.26', since=cursor)
        self.assertIn('NOQUEUE: reject: END-OF-MESSAGE from unknown[127.0.0.26]: 550 5.7.1 <eod@example.org>: Sender '
                      'address rejected: refused after the data; from=<eod@example.org> to=<erin@mx.example.test> '
                      'proto=ESMTP helo=<client.example.org>', msgs)
        self.assertFalse(any('from=<eod@example.org>' in (m or '') and 'queued' in (m or '') for m in msgs))


class MultiRecipientBounceLater(unittest.TestCase):
    """reject_multi_recipient_bounce at RCPT (here from an access table, for one recipient only) refuses the
    second recipient; at the end of the data it is End-of-data's."""

    @classmethod
    def setUpClass(cls):
        pb.add_user('erin')
        rcpt = build_table('mrb_recipients', f'second@{HOST} reject_multi_recipient_bounce\n')
        aliases = build_table('mrb_aliases', 'second: erin\nthird: erin\n', aliases=True)
        base_config(alias_maps=aliases, smtpd_recipient_restrictions=f'check_recipient_access {rcpt}',
                    smtpd_end_of_data_restrictions='reject_multi_recipient_bounce')

    def test_at_rcpt(self):
        s = session(self, source='127.0.0.27')
        # the first recipient of a bounce is never refused by it
        transaction(self, s, '', [f'second@{HOST}'])
        self.assertEqual(s.cmd('RSET')[0], 250)
        transaction(self, s, '', [f'erin@{HOST}'])
        self.assertEqual(s.cmd(f'RCPT TO:<second@{HOST}>'),
                         (550, f'5.5.3 <second@{HOST}>: Recipient address rejected: Multi-recipient bounce'))
        # a sender that is not null is not a bounce
        self.assertEqual(s.cmd('RSET')[0], 250)
        transaction(self, s, 'a@example.org', [f'erin@{HOST}', f'second@{HOST}'])
        s.cmd('QUIT')

    def test_at_end_of_data(self):
        s = session(self, source='127.0.0.28')
        transaction(self, s, '', [f'erin@{HOST}', f'third@{HOST}'])
        self.assertEqual(s.cmd('DATA')[0], 354)
        self.assertEqual(s.cmd('Subject: b\r\n\r\nx\r\n.'),
                         (550, '5.5.3 <END-OF-DATA>: End-of-data rejected: Multi-recipient bounce'))
        s.cmd('QUIT')


class AuthDestinationAndTls(unittest.TestCase):
    """permit_auth_destination (local, hosted and relayed domains end the list) and reject_plaintext_session
    (a session without STARTTLS)."""

    @classmethod
    def setUpClass(cls):
        pb.add_user('erin')
        cert, key = pb.make_tls_certificate()
        base_config(smtpd_tls_cert_file=cert, smtpd_tls_key_file=key, relay_domains='relay.example',
                    smtpd_recipient_restrictions='permit_auth_destination, reject_plaintext_session')

    def test_plaintext(self):
        s = session(self)
        self.assertEqual(s.cmd('MAIL FROM:<a@example.org>')[0], 250)
        # mynetworks may relay, but not in plaintext
        self.assertEqual(s.cmd('RCPT TO:<someone@example.com>'), (450, '4.7.1 Session encryption is required'))
        # this server's own domain, and one it relays for, end the list before that
        self.assertEqual(s.cmd(f'RCPT TO:<erin@{HOST}>')[0], 250)
        self.assertEqual(s.cmd('RCPT TO:<someone@relay.example>')[0], 250)
        s.cmd('QUIT')

    def test_tls(self):
        s = session(self)
        self.assertEqual(s.cmd('STARTTLS')[0], 220)
        s.starttls()
        self.assertEqual(s.cmd('EHLO client.example.org')[0], 250)
        self.assertEqual(s.cmd('MAIL FROM:<a@example.org>')[0], 250)
        self.assertEqual(s.cmd('RCPT TO:<someone@example.com>')[0], 250)
        s.cmd('QUIT')


class Rhsbl(unittest.TestCase):
    """reject_rhsbl_client, _reverse_client, _helo, _sender (with a reply filter) and _recipient against the
    real DNS server; each lookup starts when its restriction asks, and the command waits for it."""

    @classmethod
    def setUpClass(cls):
        pb.add_user('erin')
        Dns.start(DNS_ADDRESS)
        base_config(smtpd_client_restrictions='reject_rhsbl_client rhsbl.test, reject_rhsbl_reverse_client rhsbl.test',
                    smtpd_helo_restrictions='reject_rhsbl_helo rhsbl.test',
                    smtpd_sender_restrictions='reject_rhsbl_sender rhsbl.test=127.0.0.[2..3]',
                    smtpd_recipient_restrictions='reject_rhsbl_recipient rhsbl.test')

    def test_sender(self):
        cursor = pb.journal_cursor()
        self.assertEqual(rcpt_reply(self, sender='a@bad.example'),
                         (554, f'5.7.1 Service unavailable; Sender address [a@bad.example] blocked using rhsbl.test; '
                               f'{RHSBL_TEXT}'))
        msgs = pb.journal_messages(POSTBUS_ROLE='smtpd', CLIENT_ADDRESS='127.0.0.1', since=cursor)
        self.assertIn('NOQUEUE: reject: RCPT from unknown[127.0.0.1]: 554 5.7.1 Service unavailable; Sender address '
                      f'[a@bad.example] blocked using rhsbl.test; {RHSBL_TEXT}; from=<a@bad.example> '
                      'to=<erin@mx.example.test> proto=ESMTP helo=<client.example.org>', msgs)
        # a subdomain is listed too, without a text
        self.assertEqual(rcpt_reply(self, sender='a@mail.bad.example'),
                         (554, '5.7.1 Service unavailable; Sender address [a@mail.bad.example] blocked using rhsbl.test'))
        # listed, but by an answer the filter does not take; not listed at all; the null sender
        self.assertEqual(rcpt_reply(self, sender='a@filtered.example')[0], 250)
        self.assertEqual(rcpt_reply(self, sender='a@good.example')[0], 250)
        self.assertEqual(rcpt_reply(self, sender='')[0], 250)

    def test_helo(self):
        self.assertEqual(rcpt_reply(self, helo='bad.example'),
                         (554, f'5.7.1 Service unavailable; Helo command [bad.example] blocked using rhsbl.test; '
                               f'{RHSBL_TEXT}'))
        self.assertEqual(rcpt_reply(self, helo='[127.0.0.1]')[0], 250)

    def test_recipient(self):
        self.assertEqual(rcpt_reply(self, rcpt='someone@bad.example'),
                         (554, f'5.7.1 Service unavailable; Recipient address [someone@bad.example] blocked using '
                               f'rhsbl.test; {RHSBL_TEXT}'))
        self.assertEqual(rcpt_reply(self, rcpt='someone@good.example')[0], 250)

    def test_client(self):
        # a verified name
        self.assertEqual(rcpt_reply(self, source='127.0.0.32'),
                         (554, '5.7.1 Service unavailable; Client host [verified.bad.example] blocked using rhsbl.test'))
        # a PTR name that does not resolve back: only reject_rhsbl_reverse_client asks about it
        self.assertEqual(rcpt_reply(self, source='127.0.0.31'),
                         (554, '5.7.1 Service unavailable; Unverified Client host [host.bad.example] blocked using '
                               'rhsbl.test'))


class RblReplyMaps(unittest.TestCase):
    """rbl_reply_maps by the list's domain, else default_rbl_reply, with Postfix's $names filled in per reply."""

    @classmethod
    def setUpClass(cls):
        pb.add_user('erin')
        Dns.start(DNS_ADDRESS)
        table = build_table('rbl_reply', f'{RBL} 550 5.7.2 $client_address ($rbl_class) on $rbl_domain: $rbl_reason; '
                                         'from $sender_name at $sender_domain helo $helo_name\n'
                                         'bl.test 421 no code of its own\n')
        base_config(smtpd_client_restrictions=f'reject_rbl_client {RBL}, reject_rbl_client bl.test=127.0.0.2, '
                                              'reject_rbl_client other.test',
                    rbl_reply_maps=table,
                    default_rbl_reply='$rbl_code 5.7.9 Go away, $rbl_what is on $rbl_domain${rbl_reason?: $rbl_reason}')

    @classmethod
    def tearDownClass(cls):
        # Restrictions and others set their main.cf without base_config()
        pb.write_config({'rbl_reply_maps': '', 'default_rbl_reply': DEFAULT_RBL_REPLY})

    def test_table_template(self):
        self.assertEqual(rcpt_reply(self, source='127.0.0.2', helo='h.example.org', sender='joe@example.org'),
                         (550, f'5.7.2 127.0.0.2 (Client host) on {RBL}: {RBL_TEXT}; from joe at example.org '
                               'helo h.example.org'))
        # a template without an enhanced status code gets X.7.1, of its own code's class
        self.assertEqual(rcpt_reply(self, source='127.0.0.10'), (421, '4.7.1 no code of its own'))

    def test_default_template(self):
        # main.cf's default_rbl_reply, its $names left for smtpd; 127.0.0.9 is listed in zen.test only
        code, text = rcpt_reply(self, source='127.0.0.9')
        self.assertEqual((code, text), (550, f'5.7.2 127.0.0.9 (Client host) on {RBL}: ; from a at example.org '
                                             'helo client.example.org'))
        pb.write_config({'rbl_reply_maps': ''})
        reset_smtpd()
        pb.restart_services()
        try:
            self.assertEqual(rcpt_reply(self, source='127.0.0.2'),
                             (554, f'5.7.9 Go away, 127.0.0.2 is on {RBL}: {RBL_TEXT}'))
        finally:
            pb.write_config({'rbl_reply_maps': f'hash:{ETC}/rbl_reply'})
            reset_smtpd()
            pb.restart_services()


class AllowLists(unittest.TestCase):
    """permit_dnswl_client and permit_rhswl_client against the real DNS server: a listed client is permitted
    (with a reply filter, only by an answer it takes), never past reject_unauth_destination, and a list that
    cannot be asked is a defer_if_reject."""

    @classmethod
    def setUpClass(cls):
        pb.add_user('erin')
        Dns.start(DNS_ADDRESS)
        base_config(smtpd_client_restrictions='permit_dnswl_client wl.test=127.0.0.[2..3], '
                                              'permit_rhswl_client rhswl.test, reject',
                    smtpd_relay_restrictions='permit_dnswl_client wl.test, reject_unauth_destination')

    def test_listed(self):
        self.assertEqual(rcpt_reply(self, source='127.0.0.2')[0], 250)
        self.assertEqual(rcpt_reply(self, source='127.0.0.32')[0], 250)        # verified.bad.example

    def test_not_listed(self):
        # listed, but with an answer the filter does not take; not listed at all
        for source in ('127.0.0.3', '127.0.0.8'):
            self.assertEqual(rcpt_reply(self, source=source),
                             (554, f'5.7.1 <unknown[{source}]>: Client host rejected: Access denied'))

    def test_not_past_reject_unauth_destination(self):
        self.assertEqual(rcpt_reply(self, source='127.0.0.2', rcpt='someone@example.com'),
                         (554, '5.7.1 <someone@example.com>: Relay access denied'))

    def test_lookup_failure(self):
        base_config(smtpd_client_restrictions='permit_dnswl_client brokenwl.test, reject')
        try:
            self.assertEqual(rcpt_reply(self, source='127.0.0.8'),
                             (450, '4.7.1 <127.0.0.8>: Client host rejected: Service unavailable'))
        finally:
            self.setUpClass()


class Sleep(unittest.TestCase):
    """sleep N: the command waits, and every other session is served meanwhile."""

    @classmethod
    def setUpClass(cls):
        pb.add_user('erin')
        base_config(smtpd_client_restrictions='sleep 2')

    def test_sleep_does_not_block(self):
        a = session(self, source='127.0.0.2')
        self.assertEqual(a.cmd('MAIL FROM:<a@example.org>')[0], 250)
        start = time.monotonic()
        a.send(f'RCPT TO:<erin@{HOST}>\r\n')
        b = session(self, source='127.0.0.3')           # greeted, EHLO answered
        self.assertEqual(b.cmd('MAIL FROM:<b@example.org>')[0], 250)
        self.assertLess(time.monotonic() - start, 1.5)
        self.assertEqual(a.reply()[0], 250)
        self.assertGreaterEqual(time.monotonic() - start, 2)
        # the next recipient sleeps again: each evaluation is a new one
        start = time.monotonic()
        self.assertEqual(a.cmd(f'RCPT TO:<erin@{HOST}>')[0], 250)
        self.assertGreaterEqual(time.monotonic() - start, 2)

    def test_zombie_trap(self):
        # Postfix's example: the greeting waits, and a client that talks before it is refused
        base_config(smtpd_client_restrictions='sleep 1, reject_unauth_pipelining', smtpd_delay_reject='no')
        try:
            start = time.monotonic()
            s = pb.SmtpRaw('127.0.0.1', 25, source='127.0.0.2')
            self.addCleanup(s.close)
            s.send(b'EHLO zombie.example.org\r\n')
            self.assertEqual(s.reply(), (503, '5.5.0 <unknown[127.0.0.2]>: Client host rejected: Improper use of '
                                              'SMTP command pipelining'))
            self.assertGreaterEqual(time.monotonic() - start, 1)
            # a client that waits for the greeting gets it, a second later
            start = time.monotonic()
            polite = session(self, source='127.0.0.3')
            self.assertGreaterEqual(time.monotonic() - start, 1)
            self.assertEqual(polite.cmd('QUIT')[0], 221)
        finally:
            self.setUpClass()


class UnknownHeloHostname(unittest.TestCase):
    """reject_unknown_helo_hostname against the real DNS server, at HELO (smtpd_delay_reject = no): the
    command waits for the lookup."""

    @classmethod
    def setUpClass(cls):
        pb.add_user('erin')
        Dns.start(DNS_ADDRESS)
        base_config(smtpd_helo_restrictions='reject_unknown_helo_hostname', smtpd_delay_reject='no',
                    smtpd_peername_lookup='no')

    def ehlo(self, name):
        s = session(self, helo=None)
        reply = s.cmd(f'EHLO {name}')
        s.cmd('QUIT')
        return reply

    def test_known(self):
        self.assertEqual(self.ehlo('known.helo.test')[0], 250)
        self.assertEqual(self.ehlo('mx.helo.test')[0], 250)     # an MX record is enough
        self.assertEqual(self.ehlo('[127.0.0.1]')[0], 250)      # an address literal is not looked up

    def test_unknown(self):
        cursor = pb.journal_cursor()
        self.assertEqual(self.ehlo('nx.helo.test'), (450, '4.7.1 <nx.helo.test>: Helo command rejected: Host not found'))
        msgs = pb.journal_messages(POSTBUS_ROLE='smtpd', CLIENT_ADDRESS='127.0.0.1', since=cursor)
        self.assertIn('NOQUEUE: reject: EHLO from unknown[127.0.0.1]: 450 4.7.1 <nx.helo.test>: Helo command '
                      'rejected: Host not found; proto=SMTP helo=<nx.helo.test>', msgs)

    def test_temporary_failure(self):
        # unknown_helo_hostname_tempfail_action = defer_if_permit (Postfix's default): EHLO and MAIL pass, and
        # the 450 comes at RCPT, where nothing else refuses
        cursor = pb.journal_cursor()
        s = session(self, source='127.0.0.44', helo=None)    # outside mynetworks: it may not relay
        self.assertEqual(s.cmd('EHLO x.broken.test')[0], 250)
        self.assertEqual(s.cmd('MAIL FROM:<a@example.org>')[0], 250)
        self.assertEqual(s.cmd(f'RCPT TO:<erin@{HOST}>'),
                         (450, '4.7.1 <x.broken.test>: Helo command rejected: Host not found'))
        # ...and a refusal of its own comes first
        self.assertEqual(s.cmd('RCPT TO:<someone@example.com>'), (554, '5.7.1 <someone@example.com>: Relay access denied'))
        s.cmd('QUIT')
        msgs = pb.journal_messages(POSTBUS_ROLE='smtpd', CLIENT_ADDRESS='127.0.0.44', since=cursor)
        self.assertIn('NOQUEUE: reject: RCPT from unknown[127.0.0.44]: 450 4.7.1 <x.broken.test>: Helo command '
                      f'rejected: Host not found; from=<a@example.org> to=<erin@{HOST}> proto=ESMTP '
                      'helo=<x.broken.test>', msgs)

    def test_zz_code(self):
        try:
            base_config(smtpd_helo_restrictions='reject_unknown_helo_hostname', smtpd_delay_reject='no',
                        smtpd_peername_lookup='no', unknown_hostname_reject_code=550)
            self.assertEqual(self.ehlo('nx.helo.test'),
                             (550, '5.7.1 <nx.helo.test>: Helo command rejected: Host not found'))
            # a DNS failure is temporary whatever the code says; with the tempfail action defer, at once
            pb.set_config(unknown_helo_hostname_tempfail_action='defer')
            self.assertEqual(self.ehlo('x.broken.test'),
                             (450, '4.7.1 <x.broken.test>: Helo command rejected: Host not found'))
        finally:
            pb.set_config(unknown_hostname_reject_code=450, unknown_helo_hostname_tempfail_action='$reject_tempfail_action')


class RestrictionClasses(unittest.TestCase):
    """smtpd_restriction_classes: a class named in a list, in another class, and as an access table's value;
    reject_unlisted_sender from a table."""

    @classmethod
    def setUpClass(cls):
        pb.add_user('erin')
        senders = build_table('class_senders', 'bad@example.org REJECT\n')
        rcpt = build_table('class_recipients', f'strict@{HOST} strict\n'
                                               f'unlisted@{HOST} reject_unlisted_sender\n')
        aliases = build_table('class_aliases', 'strict: erin\nunlisted: erin\n', aliases=True)
        base_config(alias_maps=aliases, smtpd_restriction_classes='strict, fqdn_only, senders',
                    strict='fqdn_only', fqdn_only='reject_non_fqdn_sender', senders=f'check_sender_access {senders}',
                    smtpd_sender_restrictions='senders',
                    smtpd_recipient_restrictions=f'check_recipient_access {rcpt}')

    def test_class_in_a_list(self):
        self.assertEqual(rcpt_reply(self, sender='bad@example.org'),
                         (554, '5.7.1 <bad@example.org>: Sender address rejected: Access denied'))
        self.assertEqual(rcpt_reply(self, sender='good@example.org')[0], 250)

    def test_class_as_table_value(self):
        # strict is fqdn_only, a class naming a class; only the recipient whose entry names it gets it
        self.assertEqual(rcpt_reply(self, sender='a@nodots', rcpt=f'strict@{HOST}'),
                         (504, '5.5.2 <a@nodots>: Sender address rejected: need fully-qualified address'))
        self.assertEqual(rcpt_reply(self, sender='a@nodots', rcpt=f'erin@{HOST}')[0], 250)

    def test_unlisted_sender_from_table(self):
        self.assertEqual(rcpt_reply(self, sender=f'nosuch@{HOST}', rcpt=f'unlisted@{HOST}'),
                         (550, f'5.1.0 <nosuch@{HOST}>: Sender address rejected: User unknown in local recipient '
                               'table'))
        # a local user, a sender of another domain, the null sender
        self.assertEqual(rcpt_reply(self, sender=f'erin@{HOST}', rcpt=f'unlisted@{HOST}')[0], 250)
        self.assertEqual(rcpt_reply(self, sender='x@example.org', rcpt=f'unlisted@{HOST}')[0], 250)
        self.assertEqual(rcpt_reply(self, sender='', rcpt=f'unlisted@{HOST}')[0], 250)
        # smtpd_reject_unlisted_sender = no (the default): the other recipients take any sender
        self.assertEqual(rcpt_reply(self, sender=f'nosuch@{HOST}', rcpt=f'erin@{HOST}')[0], 250)


class MappedAddressesKnown(unittest.TestCase):
    """As Postfix's smtpd: an address that cleanup will rewrite (virtual_alias_maps, canonical_maps,
    recipient_canonical_maps) is a known recipient, whatever local_recipient_maps says; not on a service with
    receive_override_options = no_address_mappings, where cleanup will not rewrite it."""

    @classmethod
    def setUpClass(cls):
        pb.add_user('erin')
        virtual = build_table('mapped_virtual', f'team@{HOST} erin@{HOST}\n@virtual-only.example erin@{HOST}\n')
        canonical = build_table('mapped_canonical', f'old.name@{HOST} erin@{HOST}\n')
        base_config(virtual_alias_maps=virtual, recipient_canonical_maps=canonical,
                    mydestination=f'{HOST}, virtual-only.example')

    @classmethod
    def tearDownClass(cls):
        base_config(virtual_alias_maps='', recipient_canonical_maps='', mydestination='$myhostname, localhost.$mydomain, localhost')

    def test_mapped_recipients_known(self):
        for rcpt in (f'team@{HOST}', f'old.name@{HOST}', 'anyone@virtual-only.example', f'erin@{HOST}'):
            self.assertEqual(rcpt_reply(self, rcpt=rcpt)[0], 250, rcpt)
        self.assertEqual(rcpt_reply(self, rcpt=f'nosuch@{HOST}'),
                         (550, f'5.1.1 <nosuch@{HOST}>: Recipient address rejected: User unknown in local recipient '
                               'table'))

    def test_not_with_no_address_mappings(self):
        base_config(receive_override_options='no_address_mappings')
        try:
            self.assertEqual(rcpt_reply(self, rcpt=f'team@{HOST}')[0], 550)
        finally:
            base_config(receive_override_options='')


class WarnIfReject(unittest.TestCase):
    """warn_if_reject makes the next restriction's refusal a journal line; smtpd_reject_unlisted_sender
    checks every sender after the sender list (here at RCPT, smtpd_delay_reject = yes)."""

    @classmethod
    def setUpClass(cls):
        pb.add_user('erin')
        warned = build_table('warn_recipients', f'warned@{HOST} REJECT\n')
        blocked = build_table('block_recipients', f'blocked@{HOST} REJECT\nwarned@{HOST} DUNNO\n')
        aliases = build_table('warn_aliases', 'warned: erin\nblocked: erin\n', aliases=True)
        base_config(alias_maps=aliases, smtpd_reject_unlisted_sender='yes', smtpd_peername_lookup='no',
                    smtpd_sender_restrictions='warn_if_reject reject_unlisted_sender',
                    smtpd_recipient_restrictions=f'warn_if_reject check_recipient_access {warned}, '
                                                 f'check_recipient_access {blocked}')

    def test_warning_only(self):
        cursor = pb.journal_cursor()
        self.assertEqual(rcpt_reply(self, source='127.0.0.41', rcpt=f'warned@{HOST}')[0], 250)
        msgs = pb.journal_messages(POSTBUS_ROLE='smtpd', CLIENT_ADDRESS='127.0.0.41', since=cursor)
        self.assertIn(f'NOQUEUE: reject_warning: RCPT from unknown[127.0.0.41]: 554 5.7.1 <warned@{HOST}>: Recipient '
                      f'address rejected: Access denied; from=<a@example.org> to=<warned@{HOST}> proto=ESMTP '
                      'helo=<client.example.org>', msgs)
        self.assertFalse(any((m or '').startswith('NOQUEUE: reject: ') for m in msgs), msgs)

    def test_only_the_next_restriction(self):
        self.assertEqual(rcpt_reply(self, source='127.0.0.42', rcpt=f'blocked@{HOST}'),
                         (554, f'5.7.1 <blocked@{HOST}>: Recipient address rejected: Access denied'))

    def test_unlisted_sender(self):
        # the list's reject_unlisted_sender only warns; smtpd_reject_unlisted_sender = yes refuses after it
        cursor = pb.journal_cursor()
        self.assertEqual(rcpt_reply(self, source='127.0.0.43', sender=f'nosuch@{HOST}'),
                         (550, f'5.1.0 <nosuch@{HOST}>: Sender address rejected: User unknown in local recipient '
                               'table'))
        msgs = pb.journal_messages(POSTBUS_ROLE='smtpd', CLIENT_ADDRESS='127.0.0.43', since=cursor)
        self.assertTrue(any((m or '').startswith('NOQUEUE: reject_warning: RCPT from unknown[127.0.0.43]: 550 5.1.0 '
                                                 f'<nosuch@{HOST}>: Sender address rejected') for m in msgs), msgs)
        self.assertEqual(rcpt_reply(self, source='127.0.0.43', sender=f'erin@{HOST}')[0], 250)
        self.assertEqual(rcpt_reply(self, source='127.0.0.43', sender='')[0], 250)


class DeferIf(unittest.TestCase):
    """defer_if_permit (explicit, and from a temporary DNS failure of reject_unknown_sender_domain) gives
    its 450 only when nothing else refuses; defer_if_reject turns the next 5xx refusal into a 450."""

    @classmethod
    def setUpClass(cls):
        pb.add_user('erin')
        Dns.start(DNS_ADDRESS)
        rcpt = build_table('defer_recipients', f'blocked@{HOST} REJECT\n'
                                               f'deferred@{HOST} defer_if_permit reject_non_fqdn_sender\n'
                                               f'guarded@{HOST} defer_if_reject reject_non_fqdn_sender\n'
                                               f'dns@{HOST} reject_unknown_sender_domain\n'
                                               f'dnsblocked@{HOST} reject_unknown_sender_domain reject\n')
        aliases = build_table('defer_aliases', 'blocked: erin\ndeferred: erin\nguarded: erin\ndns: erin\n'
                                               'dnsblocked: erin\n', aliases=True)
        base_config(alias_maps=aliases, smtpd_peername_lookup='no',
                    smtpd_recipient_restrictions=f'check_recipient_access {rcpt}')

    def test_defer_if_permit(self):
        self.assertEqual(rcpt_reply(self, rcpt=f'deferred@{HOST}'),
                         (450, f'4.7.0 <deferred@{HOST}>: Recipient address rejected: defer_if_permit requested'))
        # a later refusal wins
        self.assertEqual(rcpt_reply(self, sender='a@nodots', rcpt=f'deferred@{HOST}'),
                         (504, '5.5.2 <a@nodots>: Sender address rejected: need fully-qualified address'))

    def test_defer_if_reject(self):
        self.assertEqual(rcpt_reply(self, sender='a@nodots', rcpt=f'guarded@{HOST}'),
                         (450, f'4.7.0 <guarded@{HOST}>: Recipient address rejected: defer_if_reject requested'))
        self.assertEqual(rcpt_reply(self, rcpt=f'guarded@{HOST}')[0], 250)

    def test_dns_tempfail(self):
        # broken.test's server does not answer: the sender's domain is neither known nor unknown
        s = session(self)
        self.assertEqual(s.cmd('MAIL FROM:<a@x.broken.test>')[0], 250)
        self.assertEqual(s.cmd(f'RCPT TO:<dnsblocked@{HOST}>'),
                         (554, f'5.7.1 <dnsblocked@{HOST}>: Recipient address rejected: Access denied'))
        self.assertEqual(s.cmd(f'RCPT TO:<dns@{HOST}>'),
                         (450, '4.1.8 <a@x.broken.test>: Sender address rejected: Domain not found'))
        # the deferral belonged to that RCPT's evaluation only
        self.assertEqual(s.cmd(f'RCPT TO:<erin@{HOST}>')[0], 250)
        s.cmd('QUIT')


class ReverseClientHostnameAccess(unittest.TestCase):
    """check_reverse_client_hostname_access: the PTR name (verified or not) and its parents, then the
    address; OK is a configuration error, as in Postfix."""

    @classmethod
    def setUpClass(cls):
        pb.add_user('erin')
        Dns.start(DNS_ADDRESS)
        table = build_table('reverse_access', 'bad.example REJECT\n127.0.0.33 OK\n127.0.0.34 DUNNO\n')
        base_config(smtpd_client_restrictions=f'check_reverse_client_hostname_access {table}')

    def test_ptr_name(self):
        # 127.0.0.31's PTR name host.bad.example does not resolve back: this restriction looks it up all the same
        self.assertEqual(rcpt_reply(self, source='127.0.0.31'),
                         (554, '5.7.1 <host.bad.example>: Unverified Client host rejected: Access denied'))
        self.assertEqual(rcpt_reply(self, source='127.0.0.34')[0], 250)

    def test_ok_is_refused(self):
        self.assertEqual(rcpt_reply(self, source='127.0.0.33'), (451, '4.3.5 Server configuration error'))


class ConfigErrors(unittest.TestCase):
    """A bad restriction list stops smtpd at start, naming the file and line."""

    def setUp(self):
        # Before the test writes its bad main.cf: only what smtpd says about that one counts.
        self.cursor = pb.journal_cursor()

    def tearDown(self):
        pb.set_config(smtpd_client_restrictions='', smtpd_sender_restrictions='', smtpd_recipient_restrictions='',
                      smtpd_data_restrictions='', smtpd_end_of_data_restrictions='', smtpd_restriction_classes='',
                      unknown_address_tempfail_action='$reject_tempfail_action',
                      smtpd_relay_restrictions='permit_mynetworks, permit_sasl_authenticated, '
                                               'reject_unauth_destination')
        reset_smtpd()

    def start_fails(self, what):
        reset_smtpd()
        pb.restart_services()
        # the connection is closed at once: no smtpd serves it
        try:
            with pb.SmtpRaw('127.0.0.1', 25) as s:
                s.reply()
            greeted = True
        except (EOFError, ConnectionError, OSError):
            greeted = False
        self.assertFalse(greeted)
        pb.wait_until(lambda: pb.unit_property('postbus-smtpd.service', 'ExecMainStatus') == '78',
                      what='smtpd to exit with EX_CONFIG')
        with open(pb.MAIN_CF, encoding='utf-8') as f:
            line = next(i + 1 for i, l in enumerate(f.read().splitlines()) if l.startswith(what))
        # ExecMainStatus may still be the previous test's: wait for this start's own record
        try:
            pb.wait_until(lambda: any(f'main.cf:{line}:' in (m or '') for m in pb.journal_messages(
                '_SYSTEMD_UNIT=postbus-smtpd.service', since=self.cursor)), timeout=10,
                what=f'smtpd to name main.cf:{line}')
        except Exception:
            pass
        msgs = pb.journal_messages('_SYSTEMD_UNIT=postbus-smtpd.service', since=self.cursor)
        self.assertTrue(any(f'main.cf:{line}:' in (m or '') for m in msgs), msgs[-10:])
        return msgs

    def test_unknown_restriction(self):
        pb.write_config({'smtpd_client_restrictions': 'permit_mynetworks, reject_everyone_bogus'})
        msgs = self.start_fails('smtpd_client_restrictions')
        self.assertTrue(any('unknown restriction "reject_everyone_bogus"' in (m or '') for m in msgs), msgs[-10:])

    def test_unusable_table(self):
        pb.write_config({'smtpd_sender_restrictions': 'check_sender_access cdb:/etc/postbus/x'})
        self.start_fails('smtpd_sender_restrictions')

    def test_restriction_class_errors(self):
        pb.write_config({'smtpd_restriction_classes': 'loopy', 'loopy': 'permit_mynetworks, loopy'})
        msgs = self.start_fails('loopy')
        self.assertTrue(any('restriction class "loopy" includes itself' in (m or '') for m in msgs), msgs[-10:])

    def test_restriction_class_undefined(self):
        pb.write_config({'smtpd_restriction_classes': 'nowhere'})
        msgs = self.start_fails('smtpd_restriction_classes')
        self.assertTrue(any('class "nowhere" has no definition' in (m or '') for m in msgs), msgs[-10:])

    def test_bad_tempfail_action(self):
        pb.write_config({'unknown_address_tempfail_action': 'permit'})
        self.start_fails('unknown_address_tempfail_action')

    def test_bad_sleep(self):
        pb.write_config({'smtpd_client_restrictions': 'sleep soon'})
        msgs = self.start_fails('smtpd_client_restrictions')
        self.assertTrue(any('sleep soon: expected a number of seconds' in (m or '') for m in msgs), msgs[-10:])

    def test_open_relay_refused(self):
        pb.write_config({'smtpd_relay_restrictions': 'permit_mynetworks', 'smtpd_recipient_restrictions': ''})
        msgs = self.start_fails('smtpd_relay_restrictions')
        self.assertTrue(any('reject_unauth_destination' in (m or '') for m in msgs), msgs[-10:])

    def test_warned_refusal_is_no_relay_control(self):
        # after warn_if_reject, reject_unauth_destination only logs: the server would relay for anyone
        pb.write_config({'smtpd_relay_restrictions': 'permit_mynetworks, warn_if_reject reject_unauth_destination',
                         'smtpd_recipient_restrictions': ''})
        msgs = self.start_fails('smtpd_relay_restrictions')
        self.assertTrue(any('reject_unauth_destination' in (m or '') for m in msgs), msgs[-10:])


if __name__ == '__main__':
    unittest.main()
