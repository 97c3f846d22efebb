"""reject_unknown_sender_domain and reject_unknown_recipient_domain through a real DNS server (dnsmasq on
loopback): a domain with an MX or with only an A record passes; a domain that does not exist gets
unknown_address_reject_code (450 4.1.8 / 4.1.2 Domain not found); a name server that fails gets 450 whatever
that code says; a Null MX (RFC 7505) gets nullmx_reject_code (556 5.7.27 / 5.1.10); this server's own
domains are never looked up."""
import unittest

import postbus as pb

HOST = 'mx.example.test'


def start_dnsmasq():
    """dnsmasq, authoritative for dns.test (what it does not know is NXDOMAIN):
         mx.dns.test      MX 10 mail.dns.test, mail.dns.test A 127.0.0.30
         aonly.dns.test   A 127.0.0.31, no MX
         nullmx.dns.test  MX 0 .          (RFC 7505)
       and broken.test forwarded to a server that is not there (a temporary failure)."""
    return pb.start_dnsmasq([
        '--local=/dns.test/',
        '--mx-host=mx.dns.test,mail.dns.test,10',
        '--host-record=mail.dns.test,127.0.0.30',
        '--host-record=aonly.dns.test,127.0.0.31',
        '--dns-rr=nullmx.dns.test,15,000000',
        '--server=/broken.test/127.0.0.54',
    ], probe='aonly.dns.test')


def rcpt_reply(sender, rcpt):
    """The (code, text) of RCPT (sender restrictions answer there, smtpd_delay_reject = yes)."""
    with pb.connect() as smtp:
        smtp.ehlo()
        code, text = smtp.mail(sender)
        assert code == 250, (code, text)
        code, text = smtp.rcpt(rcpt)
        smtp.rset()
    return code, text.decode()


class UnknownDomain(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        pb.write_resolv_conf()
        cls.dns = start_dnsmasq()
        pb.add_user('erin')
        pb.set_config(myhostname=HOST, mynetworks='127.0.0.1/32', alias_maps='', smtpd_peername_lookup='no',
                      smtpd_sender_restrictions='reject_unknown_sender_domain',
                      smtpd_relay_restrictions='permit_mynetworks, reject_unauth_destination',
                      smtpd_recipient_restrictions='reject_unknown_recipient_domain')

    @classmethod
    def tearDownClass(cls):
        cls.dns.terminate()
        cls.dns.wait()

    def test_known(self):
        self.assertEqual(rcpt_reply('a@mx.dns.test', 'x@mx.dns.test')[0], 250)
        self.assertEqual(rcpt_reply('a@aonly.dns.test', 'x@aonly.dns.test')[0], 250)
        # this server's own domain: no lookup (nothing in DNS says it exists)
        self.assertEqual(rcpt_reply(f'a@{HOST}', f'erin@{HOST}')[0], 250)

    def test_sender(self):
        self.assertEqual(rcpt_reply('a@nx.dns.test', f'erin@{HOST}'),
                         (450, '4.1.8 <a@nx.dns.test>: Sender address rejected: Domain not found'))
        self.assertEqual(rcpt_reply('a@nullmx.dns.test', f'erin@{HOST}'),
                         (556, '5.7.27 <a@nullmx.dns.test>: Sender address rejected: Domain nullmx.dns.test does '
                               'not accept mail (nullMX)'))
        self.assertEqual(rcpt_reply('a@x.broken.test', f'erin@{HOST}'),
                         (450, '4.1.8 <a@x.broken.test>: Sender address rejected: Domain not found'))

    def test_recipient(self):
        self.assertEqual(rcpt_reply('a@mx.dns.test', 'x@nx.dns.test'),
                         (450, '4.1.2 <x@nx.dns.test>: Recipient address rejected: Domain not found'))
        self.assertEqual(rcpt_reply('a@mx.dns.test', 'x@nullmx.dns.test'),
                         (556, '5.1.10 <x@nullmx.dns.test>: Recipient address rejected: Domain nullmx.dns.test '
                               'does not accept mail (nullMX)'))

    def test_zz_code(self):
        try:
            pb.set_config(unknown_address_reject_code=550)
            self.assertEqual(rcpt_reply('a@nx.dns.test', f'erin@{HOST}'),
                             (550, '5.1.8 <a@nx.dns.test>: Sender address rejected: Domain not found'))
            # a DNS failure is temporary whatever the code says
            self.assertEqual(rcpt_reply('a@x.broken.test', f'erin@{HOST}'),
                             (450, '4.1.8 <a@x.broken.test>: Sender address rejected: Domain not found'))
        finally:
            pb.set_config(unknown_address_reject_code=450)


if __name__ == '__main__':
    unittest.main()
