"""The table types other than hash:, through the real daemons: cidr: client access in smtpd, pcre:
header_checks in cleanup, regexp: transport_maps (rewrite, qmgr) and virtual_alias_maps (cleanup),
inline: and texthash: access maps, static: relocated_maps (qmgr), unix:passwd.byname, `postbusctl map
query` on every type, an edited text table seen without a restart, and a hash: table written but never
built answered with 4xx (smtpd) and a deferral (cleanup), never as an empty table."""
import os
import smtplib
import unittest

import postbus as pb

ETC = '/etc/postbus'
HOST = 'mx.example.test'


def write(name, text):
    path = os.path.join(ETC, name)
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)
    return path


def mail_with(user, marker):
    return next((m for m in pb.mbox_messages(user) if marker in m), None)


def session(test, source='127.0.0.1', helo='client.example.org'):
    s = pb.SmtpRaw('127.0.0.1', 25, source=source)
    test.addCleanup(s.close)
    code, text = s.reply()
    test.assertEqual(code, 220, text)
    code, text = s.cmd(f'EHLO {helo}')
    test.assertEqual(code, 250, text)
    return s


def rcpt_reply(test, source='127.0.0.1', helo='client.example.org', sender='a@example.org',
               rcpt='alice@mx.example.test'):
    s = session(test, source=source, helo=helo)
    code, text = s.cmd(f'MAIL FROM:<{sender}>')
    test.assertEqual(code, 250, text)
    reply = s.cmd(f'RCPT TO:<{rcpt}>')
    s.cmd('QUIT')
    return reply


def query(table, key):
    p = pb.run_process('postbusctl', 'map', 'query', table, key, check=False)
    return p.returncode, p.stdout.strip()


class TableTypes(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        pb.add_user('alice')
        pb.add_user('bob')
        cls.cidr = write('client.cidr', '# the first match in file order decides\n'
                                        '127.0.0.3 REJECT cidr says no\n'
                                        '127.0.0.0/29 OK\n'
                                        '::1 OK\n')
        cls.sender = write('sender.texthash', 'Spammer@Example.COM 550 5.7.1 texthash says no\n')
        cls.header_checks = write('header_checks.pcre',
                                  '/^Subject:.*\\bforbidden\\d+\\b/ REJECT 5.7.1 pcre says no\n'
                                  'if /^X-/\n'
                                  '/^X-Drop:\\s+yes$/ DISCARD\n'
                                  'endif\n')
        cls.transport = write('transport.regexp', '/@nowhere\\.example$/ error:5.7.1 regexp transport says no\n')
        cls.virtual = write('virtual.regexp', '/^(alice|bob)\\.alias@virtual\\.example$/ $1@localhost\n')
        pb.set_config(
            myhostname=HOST,
            mynetworks='127.0.0.0/8',
            alias_maps='',
            relayhost='',
            smtpd_client_restrictions=f'check_client_access cidr:{cls.cidr}, reject',
            smtpd_helo_restrictions='check_helo_access inline:{ evil.example=REJECT, '
                                    '{ bad.example = 554 5.7.1 inline says no } }',
            smtpd_sender_restrictions=f'check_sender_access texthash:{cls.sender}',
            smtpd_relay_restrictions='permit_mynetworks, reject_unauth_destination',
            smtpd_recipient_restrictions='',
            header_checks=f'pcre:{cls.header_checks}',
            transport_maps=f'regexp:{cls.transport}',
            virtual_alias_maps=f'regexp:{cls.virtual}',
            relocated_maps='')

    def test_cidr_client_access(self):
        code, text = rcpt_reply(self, source='127.0.0.3')
        self.assertEqual((code, text), (554, '5.7.1 <unknown[127.0.0.3]>: Client host rejected: cidr says no'))
        # 127.0.0.2 is in 127.0.0.0/29: OK; 127.0.0.9 is in no rule: the list's final reject
        self.assertEqual(rcpt_reply(self, source='127.0.0.2')[0], 250)
        code, text = rcpt_reply(self, source='127.0.0.9')
        self.assertEqual(code, 554, text)
        self.assertIn('Client host rejected', text)

    def test_inline_helo_and_texthash_sender(self):
        code, text = rcpt_reply(self, helo='evil.example')
        self.assertEqual((code, text), (554, '5.7.1 <evil.example>: Helo command rejected: Access denied'))
        code, text = rcpt_reply(self, helo='mail.bad.example')    # a parent domain: inline: is asked it
        self.assertEqual((code, text), (554, '5.7.1 <mail.bad.example>: Helo command rejected: inline says no'))
        code, text = rcpt_reply(self, sender='spammer@example.com')
        self.assertEqual((code, text), (550, '5.7.1 <spammer@example.com>: Sender address rejected: texthash says no'))
        self.assertEqual(rcpt_reply(self, sender='friend@example.com')[0], 250)

    def test_pcre_header_checks(self):
        with self.assertRaises(smtplib.SMTPDataError) as e:
            pb.send('x@example.org', ['alice@localhost'], 'Subject: a forbidden42 word\n\nx\n')
        self.assertEqual(e.exception.smtp_code, 550)
        self.assertIn(b'5.7.1 pcre says no', e.exception.smtp_error)
        # \b and \d are PCRE's: "forbiddenX" is no match
        qid = pb.send('x@example.org', ['alice@localhost'], 'Subject: forbiddenX\n\nfine\n')
        pb.wait_until(lambda: mail_with('alice', qid), what='the message that passed the pcre checks')

        cursor = pb.journal_cursor()
        qid = pb.send('x@example.org', ['alice@localhost'], 'X-Drop: yes\nSubject: drop me\n\nx\n')
        pb.wait_until(lambda: any('DISCARD: header X-Drop: yes' in (m or '') for m in
                                  pb.journal_messages('_SYSTEMD_UNIT=postbus-cleanup.service', since=cursor)),
                      what='the DISCARD of the if block')
        self.assertIsNone(mail_with('alice', 'drop me'))

    def test_regexp_virtual_and_transport(self):
        qid = pb.send('x@example.org', ['bob.alias@virtual.example'], 'Subject: virtual regexp\n\nv\n')
        m = pb.wait_until(lambda: mail_with('bob', qid), what='mail for bob through the regexp virtual table')
        self.assertIn('Subject: virtual regexp', m)

        cursor = pb.journal_cursor()
        qid = pb.send('x@example.org', ['someone@nowhere.example'], 'Subject: nowhere\n\nn\n')
        rec = pb.wait_until(lambda: pb.journal(QUEUE_ID=qid, DELIVERY_STATUS='bounced', since=cursor),
                            what='the bounce by the regexp transport')
        self.assertEqual(rec[0]['DSN'], '5.7.1')
        self.assertIn('regexp transport says no', rec[0]['MESSAGE'])

    def test_edited_text_table_without_restart(self):
        self.assertEqual(rcpt_reply(self, sender='late@example.com')[0], 250)
        write('sender.texthash', 'Spammer@Example.COM 550 5.7.1 texthash says no\n'
                                 'late@example.com REJECT added later\n')
        self.addCleanup(write, 'sender.texthash', 'Spammer@Example.COM 550 5.7.1 texthash says no\n')
        code, text = rcpt_reply(self, sender='late@example.com')
        self.assertEqual((code, text), (554, '5.7.1 <late@example.com>: Sender address rejected: added later'))

    def test_map_query_every_type(self):
        self.assertEqual(query(f'cidr:{self.cidr}', '127.0.0.3'), (0, 'REJECT cidr says no'))
        self.assertEqual(query(f'cidr:{self.cidr}', '10.0.0.1')[0], 1)
        self.assertEqual(query(f'regexp:{self.virtual}', 'alice.alias@virtual.example'), (0, 'alice@localhost'))
        self.assertEqual(query(f'pcre:{self.header_checks}', 'Subject: forbidden7'), (0, 'REJECT 5.7.1 pcre says no'))
        self.assertEqual(query(f'texthash:{self.sender}', 'SPAMMER@example.com'),
                         (0, '550 5.7.1 texthash says no'))
        self.assertEqual(query('inline:{ a=1, { b = two words } }', 'b'), (0, 'two words'))
        self.assertEqual(query('static:{ the same }', 'anything'), (0, 'the same'))
        pw = pb.run('getent', 'passwd', 'alice').strip()
        self.assertEqual(query('unix:passwd.byname', 'alice'), (0, pw))
        self.assertEqual(query('unix:passwd.byname', 'no-such-user')[0], 1)
        # a mistake in a text table: map build checks it, naming the line
        bad = write('bad.regexp', '/fine/ OK\n/(broken/ REJECT\n')
        p = pb.run_process('postbusctl', 'map', 'build', f'regexp:{bad}', check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(f'{bad}:2', p.stderr)
        p = pb.run_process('postbusctl', 'map', 'build', f'cidr:{self.cidr}', check=False)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn('no database to build', p.stdout)

    def test_static_relocated_maps(self):
        pb.set_config(relocated_maps='static:{ somebody@new.example }')
        try:
            cursor = pb.journal_cursor()
            qid = pb.send('x@example.org', ['alice@localhost'], 'Subject: moved\n\nm\n')
            rec = pb.wait_until(lambda: pb.journal(QUEUE_ID=qid, DELIVERY_STATUS='bounced', since=cursor),
                                what='the bounce of a relocated user')
            self.assertEqual(rec[0]['DSN'], '5.1.6')
            self.assertIn('user has moved to somebody@new.example', rec[0]['MESSAGE'])
        finally:
            pb.set_config(relocated_maps='')

    def test_never_built_table_is_a_temporary_failure(self):
        missing = os.path.join(ETC, 'never_built')
        write('never_built', 'blocked@mx.example.test REJECT\n')
        if os.path.exists(missing + '.gdbm'):
            os.unlink(missing + '.gdbm')
        pb.set_config(smtpd_recipient_restrictions=f'check_recipient_access hash:{missing}',
                      virtual_alias_maps=f'hash:{missing}')
        try:
            code, text = rcpt_reply(self)
            self.assertEqual((code, text), (451, '4.3.0 <alice@mx.example.test>: Temporary lookup failure'))

            # smtpd looks virtual_alias_maps up at RCPT (an address it lists is a known one), as Postfix does
            pb.set_config(smtpd_recipient_restrictions='')
            with self.assertRaises(smtplib.SMTPRecipientsRefused) as e:
                pb.send('x@example.org', ['alice@localhost'], 'Subject: never built\n\nx\n')
            self.assertEqual(e.exception.recipients['alice@localhost'],
                             (451, b'4.3.0 <alice@localhost>: Temporary lookup failure'))

            # cleanup's virtual_alias_maps (smtpd checks no recipient here): the message is not accepted, with a
            # 4xx, never delivered unaliased
            pb.set_config(smtpd_reject_unlisted_recipient='no')
            with self.assertRaises(smtplib.SMTPDataError) as e:
                pb.send('x@example.org', ['alice@localhost'], 'Subject: never built\n\nx\n')
            self.assertEqual(e.exception.smtp_code // 100, 4)
            self.assertIn(b'4.3.0', e.exception.smtp_error)
            self.assertIsNone(mail_with('alice', 'never built'))

            # once built, both pass
            pb.run('postbusctl', 'map', 'build', missing)
            qid = pb.send('x@example.org', ['alice@localhost'], 'Subject: built now\n\nx\n')
            pb.wait_until(lambda: mail_with('alice', qid), what='the message once the table is built')
        finally:
            pb.set_config(smtpd_recipient_restrictions='', virtual_alias_maps=f'regexp:{self.virtual}',
                          smtpd_reject_unlisted_recipient='yes')


if __name__ == '__main__':
    unittest.main()
