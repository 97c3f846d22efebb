"""relay_domains through the real daemons: a backup-MX domain (and its subdomains) accepted from any
client and relayed by relay_transport (the master.cf `relay` service) to relayhost or to the transport's own
next hop, fake SMTP servers on loopback standing in for the primary MX; other domains refused with
554 5.7.1 Relay access denied; relay_recipient_maps refusing unknown recipients of a relay domain; and
reply code parameters (relay_domains_reject_code, unknown_relay_recipient_reject_code,
unknown_local_recipient_reject_code) changing the replies."""
import os
import re
import smtplib
import unittest

import postbus as pb
from test_smtp import FakeServer

ETC = '/etc/postbus'
HOST = 'mx.example.test'
OUTSIDE = '127.0.0.2'      # a client outside mynetworks


def rcpts(transaction):
    return sorted(re.match(r'RCPT TO:<([^>]*)>', r, re.I).group(1) for r in transaction.rcpts)


def refused(recipient, sender='someone@far.test'):
    """The (code, text) of RCPT from a client outside mynetworks; None when accepted."""
    with pb.connect(source_address=OUTSIDE) as smtp:
        smtp.ehlo()
        code, _ = smtp.mail(sender)
        assert code == 250, code
        code, text = smtp.rcpt(recipient)
        smtp.rset()
    return None if code in (250, 251) else (code, text.decode())


class RelayDomains(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.primary = FakeServer(port=2525)
        cls.other = FakeServer(port=2526)
        path = os.path.join(ETC, 'relay_recipients')
        with open(path, 'w') as f:
            f.write('bob@backup.test x\n@open.backup.test x\n')
        pb.run('postbusctl', 'map', 'build', path)
        pb.set_config(myhostname=HOST, mynetworks='127.0.0.1/32', alias_maps='',
                      smtpd_peername_lookup='no',
                      smtpd_relay_restrictions='permit_mynetworks, reject_unauth_destination',
                      smtpd_recipient_restrictions='',
                      relay_domains='backup.test', relay_recipient_maps=f'hash:{path}',
                      relayhost='[127.0.0.1]:2525')

    def wait_for(self, server, marker):
        def found():
            return next((t for t in server.transactions
                         if marker.encode() in (t.data if isinstance(t.data, bytes) else t.data.encode())), None)
        pb.wait_until(found, what=f'the message "{marker}" at port {server.sock.getsockname()[1]}')
        return found()

    def test_1_relayed_to_relayhost(self):
        # From outside mynetworks, a known recipient of the relay domain (and of a subdomain of it).
        cursor = pb.journal_cursor()
        qid = pb.send('someone@far.test', ['bob@backup.test', 'anyone@open.backup.test'],
                      'Subject: backup mx one\n\nrelay me\n', source_address=OUTSIDE)
        t = self.wait_for(self.primary, 'backup mx one')
        self.assertEqual(rcpts(t), ['anyone@open.backup.test', 'bob@backup.test'])
        pb.wait_until(lambda: any(f'{qid}: to=<bob@backup.test>' in (m or '') and 'status=sent' in (m or '')
                                  for m in pb.journal_messages(since=cursor)),
                      what='the delivery record')

    def test_2_refused(self):
        self.assertEqual(refused('x@elsewhere.test'), (554, '5.7.1 <x@elsewhere.test>: Relay access denied'))
        self.assertEqual(refused('x@notbackup.test'), (554, '5.7.1 <x@notbackup.test>: Relay access denied'))
        self.assertEqual(refused('carol@backup.test'),
                         (550, '5.1.1 <carol@backup.test>: Recipient address rejected: User unknown in relay '
                               'recipient table'))
        self.assertEqual(refused('nosuchuser@localhost'),
                         (550, '5.1.1 <nosuchuser@localhost>: Recipient address rejected: User unknown in local '
                               'recipient table'))
        self.assertIsNone(refused('bob@backup.test'))

    def test_3_codes(self):
        try:
            pb.set_config(relay_domains_reject_code=450, unknown_relay_recipient_reject_code=450,
                          unknown_local_recipient_reject_code=450)
            self.assertEqual(refused('x@elsewhere.test'), (450, '4.7.1 <x@elsewhere.test>: Relay access denied'))
            self.assertEqual(refused('carol@backup.test'),
                             (450, '4.1.1 <carol@backup.test>: Recipient address rejected: User unknown in relay '
                                   'recipient table'))
            self.assertEqual(refused('nosuchuser@localhost'),
                             (450, '4.1.1 <nosuchuser@localhost>: Recipient address rejected: User unknown in '
                                   'local recipient table'))
        finally:
            pb.set_config(relay_domains_reject_code=554, unknown_relay_recipient_reject_code=550,
                          unknown_local_recipient_reject_code=550)

    def test_3_defer_unauth_destination(self):
        # Postfix's defer_unauth_destination: relay_domains_reject_code less 100, not a code of its own.
        try:
            pb.set_config(smtpd_relay_restrictions='permit_mynetworks, defer_unauth_destination')
            self.assertEqual(refused('x@elsewhere.test'), (454, '4.7.1 <x@elsewhere.test>: Relay access denied'))
            self.assertIsNone(refused('bob@backup.test'))
            pb.set_config(relay_domains_reject_code=550)
            self.assertEqual(refused('x@elsewhere.test'), (450, '4.7.1 <x@elsewhere.test>: Relay access denied'))
        finally:
            pb.set_config(smtpd_relay_restrictions='permit_mynetworks, reject_unauth_destination',
                          relay_domains_reject_code=554)

    def test_4_relay_transport(self):
        # relay_transport with a next hop of its own: the relay domain goes there, other mail to relayhost,
        # which shows that the relay class, not default_transport, carried it.
        try:
            pb.set_config(relay_transport='relay:[127.0.0.1]:2526')
            pb.send('someone@far.test', ['bob@backup.test'], 'Subject: backup mx two\n\nx\n',
                    source_address=OUTSIDE)
            pb.send('me@mx.example.test', ['x@elsewhere.test'], 'Subject: outbound two\n\nx\n')
            self.assertEqual(rcpts(self.wait_for(self.other, 'backup mx two')), ['bob@backup.test'])
            self.assertEqual(rcpts(self.wait_for(self.primary, 'outbound two')), ['x@elsewhere.test'])
            self.assertFalse(any(b'outbound two' in (t.data if isinstance(t.data, bytes) else t.data.encode())
                                 for t in self.other.transactions))
        finally:
            pb.set_config(relay_transport='relay')

    def test_5_empty_relay_domains(self):
        try:
            pb.set_config(relay_domains='')
            self.assertEqual(refused('bob@backup.test'), (554, '5.7.1 <bob@backup.test>: Relay access denied'))
        finally:
            pb.set_config(relay_domains='backup.test')


if __name__ == '__main__':
    unittest.main()
