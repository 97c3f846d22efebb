"""cleanup, complete: canonical maps, masquerading and virtual aliases (with a loop) changing where mail
goes, header_checks (REJECT, DISCARD, HOLD, IGNORE, PREPEND, REPLACE, and a bad rule as a configuration
error), body_checks (the same actions on body lines, within body_checks_size_limit), the same rules on the
headers of MIME parts and attached messages (mime_header_checks, nested_header_checks), and for
local mail the From, Date and Message-ID headers cleanup adds and sendmail -t recipient extraction with
Bcc removed, submitted over cleanup's own socket as pickup does."""
import fcntl
import os
import smtplib
import unittest

import dbus

import postbus as pb

HOST = 'mail.example.test'
CANONICAL = '/etc/postbus/canonical'
SENDER_CANONICAL = '/etc/postbus/sender_canonical'
VIRTUAL = '/etc/postbus/virtual'
HEADER_CHECKS = '/etc/postbus/header_checks'
BODY_CHECKS = '/etc/postbus/body_checks'


def configure(**params):
    """set_config, with the start-rate counters of the roles reset first: these tests restart the roles
    more often than systemd's default start limit allows in ten seconds."""
    pb.systemctl('reset-failed', 'postbus-*', check=False)
    pb.set_config(**params)


def build_table(path, text):
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)
    pb.run('postbusctl', 'map', 'build', path)


def submit(sender, recipients, content, **attrs):
    """Submits a message to cleanup's org.postbus.Cleanup1.Submit over its socket, as pickup does;
    returns the queue ID. Raises DBusException for a rejection."""
    conn = pb.p2p_connect('unix:path=/run/postbus/cleanup')
    fd = os.memfd_create('message', os.MFD_ALLOW_SEALING)
    try:
        os.write(fd, content.encode('utf-8'))
        # cleanup maps the content, so it takes only a memory file sealed against change
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE)
        obj = conn.get_object(None, '/org/postbus/Cleanup1', introspect=False)
        attributes = dbus.Dictionary({k: str(v) for k, v in attrs.items()}, signature='ss')
        method = obj.get_dbus_method('Submit', 'org.postbus.Cleanup1')
        try:
            return str(method(dbus.types.UnixFd(fd), sender, dbus.Array([(r, '', '') for r in recipients],
                                                                        signature='(sss)'),
                              attributes, signature='hsa(sss)a{ss}'))
        except dbus.exceptions.DBusException as e:
            if 'Malformed' not in str(e) and 'signature' not in str(e).lower():
                raise
            return str(method(dbus.types.UnixFd(fd), sender, dbus.Array(recipients, signature='s'),
                              attributes, signature='hsasa{ss}'))
    finally:
        os.close(fd)
        conn.close()


def submit_inline(sender, recipients, content):
    """Submits a message to Cleanup1.SubmitInline, the content in the call as smtpd sends a small one."""
    conn = pb.p2p_connect('unix:path=/run/postbus/cleanup')
    try:
        obj = conn.get_object(None, '/org/postbus/Cleanup1', introspect=False)
        return str(obj.get_dbus_method('SubmitInline', 'org.postbus.Cleanup1')(
            dbus.ByteArray(content), sender, dbus.Array([(r, '', '') for r in recipients], signature='(sss)'),
            dbus.Dictionary({'protocol': 'ESMTP'}, signature='ss'), signature='aysa(sss)a{ss}'))
    finally:
        conn.close()


def mail_with(user, marker):
    return next((m for m in pb.mbox_messages(user) if marker in m), None)


START = {}     # the journal's cursor when the tests began


def wait_mail(user, marker):
    """The message in user's mailbox with marker in it. For a queue ID, once local has logged the delivery to
    user: a large message is visible in the mbox before its last byte is written."""
    if pb.queue_id_valid(marker):
        pb.wait_until(lambda: any(r.get('RECIPIENT', '').startswith(user + '@')
                                  for r in pb.journal(QUEUE_ID=marker, POSTBUS_ROLE='local', DELIVERY_STATUS='sent',
                                                      since=START['cursor'])),
                      what=f'the delivery of {marker} to {user}')
    return pb.wait_until(lambda: mail_with(user, marker), what=f'mail {marker} for {user}')


def queue_files(qid):
    return [q for q in ('incoming', 'active', 'deferred', 'hold', 'corrupt')
            if os.path.exists(f'/var/spool/postbus/{q}/{qid}')]


class Cleanup(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        START['cursor'] = pb.journal_cursor()
        for u in ('alice', 'bob', 'carol'):
            pb.add_user(u)
        configure(myhostname=HOST, mydomain='example.test', canonical_maps='', sender_canonical_maps='',
                      virtual_alias_maps='', masquerade_domains='', header_checks='', body_checks='')

    def tearDown(self):
        configure(canonical_maps='', sender_canonical_maps='', virtual_alias_maps='',
                      masquerade_domains='', masquerade_exceptions='', header_checks='', body_checks='',
                      mime_header_checks='$header_checks', disable_mime_input_processing='no',
                      message_reject_characters='', message_strip_characters='',
                      always_add_missing_headers='no', undisclosed_recipients_header='')

    def test_canonical_maps(self):
        build_table(CANONICAL, '@legacy.test @mail.example.test\n'
                               'robert@old.test bob\n')
        build_table(SENDER_CANONICAL, 'carol@mail.example.test Carol.Example@example.org\n')
        configure(canonical_maps=f'gdbm:{CANONICAL}', sender_canonical_maps=f'hash:{SENDER_CANONICAL}')

        # @domain keeps the user; a result without a domain gets $myorigin from rewrite
        qid = pb.send('carol@mail.example.test', ['alice@legacy.test', 'robert@old.test'],
                      'From: Carol <carol@mail.example.test>\nTo: alice@legacy.test, Robert <robert@old.test>\n'
                      'Subject: canon\n\nx\n')
        m = wait_mail('alice', qid)
        self.assertIn(f'\nDelivered-To: alice@{HOST}\n', m)
        self.assertIn('\nReturn-Path: <Carol.Example@example.org>\n', m)
        # header addresses too, each by its class (From: sender, To: recipient)
        self.assertIn('\nFrom: Carol <Carol.Example@example.org>\n', m)
        self.assertIn(f'\nTo: alice@{HOST}, Robert <bob@{HOST}>\n', m)
        m = wait_mail('bob', qid)
        self.assertIn(f'\nDelivered-To: bob@{HOST}\n', m)

        # a rebuilt table is used without a restart
        cleanup = pb.unit_property('postbus-cleanup.service', 'InvocationID')
        build_table(CANONICAL, '@legacy.test @mail.example.test\nrobert@old.test carol\n')
        qid = pb.send('x@example.org', ['robert@old.test'], 'Subject: canon2\n\nx\n')
        wait_mail('carol', qid)
        self.assertEqual(pb.unit_property('postbus-cleanup.service', 'InvocationID'), cleanup)

    def test_masquerade(self):
        configure(masquerade_domains='!keep.example.test, example.test', masquerade_exceptions='root')
        qid = pb.send('carol@host.sub.example.test', ['alice@localhost'],
                      'From: Carol <carol@host.sub.example.test>\nCc: dave@a.b.example.test\nSubject: masq\n\nx\n')
        m = wait_mail('alice', qid)
        self.assertIn('\nReturn-Path: <carol@example.test>\n', m)
        self.assertIn('\nFrom: Carol <carol@example.test>\n', m)
        self.assertIn('\nCc: dave@example.test\n', m)
        qid = pb.send('carol@a.keep.example.test', ['alice@localhost'], 'Subject: masq2\n\nx\n')
        self.assertIn('\nReturn-Path: <carol@a.keep.example.test>\n', wait_mail('alice', qid))
        qid = pb.send('root@host.example.test', ['alice@localhost'], 'Subject: masq3\n\nx\n')
        self.assertIn('\nReturn-Path: <root@host.example.test>\n', wait_mail('alice', qid))
        # recipients are not masqueraded
        qid = pb.send('x@example.org', ['bob@localhost'], 'Subject: masq4\n\nx\n')
        self.assertIn('\nDelivered-To: bob@localhost\n', wait_mail('bob', qid))

    def test_virtual_alias(self):
        build_table(VIRTUAL, 'team@virtual.test alice, bob@mail.example.test, nested@virtual.test\n'
                             'nested@virtual.test carol\n'
                             'keep@virtual.test keep@virtual.test, alice\n'
                             '@catchall.test bob\n'
                             'loop1@virtual.test loop2@virtual.test\n'
                             'loop2@virtual.test loop3@virtual.test\n'
                             'loop3@virtual.test loop1@virtual.test\n')
        configure(virtual_alias_maps=f'gdbm:{VIRTUAL}')

        qid = pb.send('x@example.org', ['team@virtual.test'], 'Subject: team\n\nx\n')
        for user in ('alice', 'bob', 'carol'):
            self.assertIn(f'\nDelivered-To: {user}@{HOST}\n', wait_mail(user, qid))
        qid = pb.send('x@example.org', ['anyone@catchall.test'], 'Subject: catch\n\nx\n')
        wait_mail('bob', qid)
        # "a -> a, b" keeps a: keep@virtual.test goes on to smtp (deferred), alice gets her copy
        cursor = pb.journal_cursor()
        qid = pb.send('x@example.org', ['keep@virtual.test'], 'Subject: keep\n\nx\n')
        wait_mail('alice', qid)
        rec = pb.wait_until(lambda: pb.journal(QUEUE_ID=qid, DELIVERY_STATUS='deferred', since=cursor),
                            what='the deferral')
        self.assertEqual(rec[0]['RECIPIENT'], 'keep@virtual.test')

        # a loop ends with a clear rejection, and a journal record saying why
        cursor = pb.journal_cursor()
        with self.assertRaises(smtplib.SMTPDataError) as e:
            pb.send('x@example.org', ['loop1@virtual.test'], 'Subject: loop\n\nx\n')
        self.assertEqual(e.exception.smtp_code, 554)
        self.assertIn(b'5.4.6', e.exception.smtp_error)
        self.assertIn(b'loop', e.exception.smtp_error.lower())
        loops = pb.journal('_SYSTEMD_UNIT=postbus-cleanup.service', MESSAGE_ID='9c59b0bbab0242b6958a0d36612d3724',
                           since=cursor)
        self.assertTrue(loops)
        self.assertIn('virtual alias loop', loops[-1]['MESSAGE'])
        self.assertTrue(loops[-1]['RECIPIENT'].startswith('loop'))
        # journalctl -x explains it from the catalog
        explained = pb.journal_explained(MESSAGE_ID='9c59b0bbab0242b6958a0d36612d3724', since=cursor)
        self.assertIn('break the cycle', ' '.join(explained.replace('\u2591', ' ').split()))
        # and cleanup is still there for the next message
        qid = pb.send('x@example.org', ['nested@virtual.test'], 'Subject: after loop\n\nx\n')
        wait_mail('carol', qid)

    def test_virtual_alias_expansion_limit(self):
        build_table(VIRTUAL, 'many@virtual.test ' + ', '.join(f'u{i}@elsewhere.test' for i in range(20)) + '\n')
        configure(virtual_alias_maps=f'gdbm:{VIRTUAL}', virtual_alias_expansion_limit=10)
        try:
            with self.assertRaises(smtplib.SMTPDataError) as e:
                pb.send('x@example.org', ['many@virtual.test'], 'Subject: many\n\nx\n')
            self.assertEqual(e.exception.smtp_code // 100, 4)
            self.assertIn(b'expansion limit', e.exception.smtp_error)
        finally:
            configure(virtual_alias_expansion_limit=1000)

    def test_header_checks(self):
        with open(HEADER_CHECKS, 'w') as f:
            f.write('# header_checks\n'
                    '/^Subject:.*forbidden/ REJECT 5.7.1 Forbidden subject here\n'
                    '/^X-Multi: first second/ REJECT joined continuation\n'
                    '/^X-Discard:/ DISCARD\n'
                    '/^X-Hold:/ HOLD held for review\n'
                    '/^X-Secret:/ IGNORE\n')
        configure(header_checks=f'regexp:{HEADER_CHECKS}')

        with self.assertRaises(smtplib.SMTPDataError) as e:
            pb.send('x@example.org', ['alice@localhost'], 'Subject: a forbidden word\n\nx\n')
        self.assertEqual(e.exception.smtp_code, 550)
        self.assertIn(b'5.7.1 Forbidden subject here', e.exception.smtp_error)
        with self.assertRaises(smtplib.SMTPDataError) as e:
            pb.send('x@example.org', ['alice@localhost'], 'X-Multi: first\n second\nSubject: m\n\nx\n')
        self.assertIn(b'joined continuation', e.exception.smtp_error)

        # DISCARD: accepted, never queued
        cursor = pb.journal_cursor()
        qid = pb.send('x@example.org', ['alice@localhost'], 'X-Discard: yes\nSubject: discard me\n\nx\n')
        self.assertEqual(queue_files(qid), [])
        self.assertTrue(any('DISCARD: header X-Discard: yes' in (m or '') for m in
                            pb.journal_messages('_SYSTEMD_UNIT=postbus-cleanup.service', since=cursor)))

        # HOLD: in the hold queue, listed there by the queue's API, not delivered
        cursor = pb.journal_cursor()
        qid = pb.send('x@example.org', ['alice@localhost'], 'X-Hold: yes\nSubject: hold me\n\nx\n')
        pb.wait_until(lambda: queue_files(qid) == ['hold'], what='the message in hold')
        listed = pb.busctl_call('ListMessages', 's', 'hold')[0]
        self.assertIn(qid, [m[0] for m in listed])
        self.assertTrue(pb.journal(QUEUE_ID=qid, POSTBUS_ROLE='qmgr', since=cursor))

        # IGNORE: the header is gone, the rest delivered
        qid = pb.send('x@example.org', ['alice@localhost'], 'X-Secret: s3cret\nSubject: ignore\n\nbody\n')
        m = wait_mail('alice', qid)
        self.assertNotIn('X-Secret', m)
        self.assertIn('\nSubject: ignore\n', m)
        self.assertIsNone(mail_with('alice', 'hold me'))

    def test_header_checks_prepend_replace(self):
        with open(HEADER_CHECKS, 'w') as f:
            f.write('/^X-Old: (.*)/ REPLACE X-New: was $1\n'
                    '/^Subject:/ PREPEND X-Seen: subject checked\n')
        configure(header_checks=f'regexp:{HEADER_CHECKS}')
        qid = pb.send('x@example.org', ['alice@localhost'], 'X-Old: value\nSubject: pr\n\nbody\n')
        m = wait_mail('alice', qid)
        self.assertNotIn('X-Old', m)
        self.assertIn('\nX-New: was value\n', m)
        self.assertIn('\nX-Seen: subject checked\nSubject: pr\n', m)

    def test_body_checks(self):
        with open(BODY_CHECKS, 'w') as f:
            f.write('# body_checks\n'
                    '/^BUY NOW/ REJECT 5.7.1 No spam in the body\n'
                    '/^discard this/ DISCARD\n'
                    '/^hold this/ HOLD body held\n'
                    '/^secret line/ IGNORE\n'
                    '/^http:.*bad/ REPLACE [link removed]\n'
                    '/^signature/ PREPEND -- sig\n'
                    '/^Subject: header/ REJECT headers are not body lines\n')
        configure(body_checks=f'regexp:{BODY_CHECKS}', body_checks_size_limit=200)

        with self.assertRaises(smtplib.SMTPDataError) as e:
            pb.send('x@example.org', ['alice@localhost'], 'Subject: spam\n\nhello\nBUY NOW cheap\n')
        self.assertEqual(e.exception.smtp_code, 550)
        self.assertIn(b'5.7.1 No spam in the body', e.exception.smtp_error)

        # Edits: a line left out, one replaced, one with a line before it; a header is no body line.
        qid = pb.send('x@example.org', ['alice@localhost'],
                      'Subject: header\n\nfirst\nsecret line here\nhttp://bad.example/x\nsignature me\nlast\n')
        m = wait_mail('alice', qid)
        body = m.split('\n\n', 1)[1]
        self.assertEqual(body.rstrip('\n').split('\n')[-5:],
                         ['first', '[link removed]', '-- sig', 'signature me', 'last'])
        self.assertNotIn('secret line', m)

        # Beyond body_checks_size_limit (200 bytes here), nothing is looked at.
        qid = pb.send('x@example.org', ['alice@localhost'],
                      'Subject: long\n\n' + 'filler line\n' * 30 + 'BUY NOW late\n')
        self.assertIn('BUY NOW late', wait_mail('alice', qid))

        cursor = pb.journal_cursor()
        qid = pb.send('x@example.org', ['alice@localhost'], 'Subject: d\n\ndiscard this\n')
        self.assertEqual(queue_files(qid), [])
        self.assertTrue(any('DISCARD: body discard this' in (m or '') for m in
                            pb.journal_messages('SYSLOG_IDENTIFIER=postbus/cleanup', since=cursor)))
        qid = pb.send('x@example.org', ['alice@localhost'], 'Subject: h\n\nhold this\n')
        pb.wait_until(lambda: queue_files(qid) == ['hold'], what='the message in hold')

    def test_mime_header_checks(self):
        """header_checks reach the headers of MIME parts (mime_header_checks = $header_checks) and of attached
        messages (nested_header_checks = $header_checks), as Postfix's do; part headers are not body lines,
        boundaries are."""
        with open(HEADER_CHECKS, 'w') as f:
            f.write('/^Content-(Disposition|Type):.*name *= *"?[^"]*\\.(exe|bat)"?/ REJECT 5.7.1 Attachment not allowed\n'
                    '/^X-Part-Secret:/ IGNORE\n'
                    '/^Subject:.*nested-bad/ REJECT nested subject\n')
        with open(BODY_CHECKS, 'w') as f:
            f.write('/^Content-Type: text\\/secret/ REJECT part headers are not body lines\n'
                    '/^--reject-this-boundary$/ REJECT boundary seen\n')
        configure(header_checks=f'regexp:{HEADER_CHECKS}', body_checks=f'regexp:{BODY_CHECKS}')

        def multipart(filename, boundary='frontier', part_headers='', attached=''):
            return ('Subject: mime\nMIME-Version: 1.0\n'
                    f'Content-Type: multipart/mixed;\n boundary="{boundary}"\n\n'
                    'preamble\n'
                    f'--{boundary}\nContent-Type: text/secret\n{part_headers}\nthe text part\n'
                    f'--{boundary}\nContent-Type: application/octet-stream\n'
                    f'Content-Disposition: attachment;\n filename="{filename}"\n\nAAAA\n'
                    + (f'--{boundary}\nContent-Type: message/rfc822\n\n{attached}' if attached else '')
                    + f'--{boundary}--\nepilogue\n')

        with self.assertRaises(smtplib.SMTPDataError) as e:
            pb.send('x@example.org', ['alice@localhost'], multipart('setup.exe'))
        self.assertEqual(e.exception.smtp_code, 550)
        self.assertIn(b'5.7.1 Attachment not allowed', e.exception.smtp_error)

        qid = pb.send('x@example.org', ['alice@localhost'],
                      multipart('notes.txt', part_headers='X-Part-Secret: hidden\n',
                                attached='Subject: a fine nested one\nFrom: y@example.org\n\nnested body\n'))
        m = wait_mail('alice', qid)
        self.assertNotIn('X-Part-Secret', m)
        self.assertIn('\nContent-Type: text/secret\n\nthe text part\n', m)
        self.assertIn('\nSubject: a fine nested one\n', m)

        with self.assertRaises(smtplib.SMTPDataError) as e:
            pb.send('x@example.org', ['alice@localhost'],
                    multipart('notes.txt', attached='From: y@example.org\nSubject: nested-bad\n\nbody\n'))
        self.assertIn(b'nested subject', e.exception.smtp_error)
        with self.assertRaises(smtplib.SMTPDataError) as e:
            pb.send('x@example.org', ['alice@localhost'], multipart('notes.txt', boundary='reject-this-boundary'))
        self.assertIn(b'boundary seen', e.exception.smtp_error)

        # An empty mime_header_checks lets the attachment through; header_checks still sees the message's own.
        configure(mime_header_checks='')
        qid = pb.send('x@example.org', ['alice@localhost'], multipart('setup.exe'))
        self.assertIn('filename="setup.exe"', wait_mail('alice', qid))

        # Without MIME processing, everything after the message's header is body.
        configure(mime_header_checks=f'regexp:{HEADER_CHECKS}', disable_mime_input_processing='yes')
        with self.assertRaises(smtplib.SMTPDataError) as e:
            pb.send('x@example.org', ['alice@localhost'], multipart('setup.exe'))
        self.assertIn(b'part headers are not body lines', e.exception.smtp_error)

    def test_message_characters(self):
        """message_reject_characters refuses a message with one of its bytes in a header or body line, as
        Postfix's "REJECT disallowed character"; message_strip_characters removes its bytes before the header
        and body checks see the lines; both take Postfix's C-like escapes."""
        with open(HEADER_CHECKS, 'w') as f:
            f.write('/^Subject: stripped here$/ PREPEND X-Seen: stripped before header_checks\n')
        configure(header_checks=f'regexp:{HEADER_CHECKS}', message_reject_characters='\\0\\177',
                  message_strip_characters='\\001Q')

        cursor = pb.journal_cursor()
        with self.assertRaises(smtplib.SMTPDataError) as e:
            pb.send('x@example.org', ['alice@localhost'], 'Subject: del\n\nline with a \x7f in it\n')
        self.assertEqual(e.exception.smtp_code, 550)
        self.assertIn(b'5.7.1 disallowed character', e.exception.smtp_error)
        pb.wait_until(lambda: any('REJECT: content line with a' in (m or '') for m in
                                  pb.journal_messages('SYSLOG_IDENTIFIER=postbus/cleanup', since=cursor)),
                      what='the rejected line in the journal')
        # \0 (octal escape), in a header this time, over cleanup's own socket.
        with self.assertRaises(dbus.exceptions.DBusException) as d:
            submit('x@example.org', ['alice@localhost'], 'Subject: nul \x00 here\n\nbody\n')
        self.assertIn('550 5.7.1 disallowed character', str(d.exception))

        qid = pb.send('x@example.org', ['alice@localhost'],
                      'Subject: stQrQipped \x01here\n\nbody \x01one\nQQtwo\x01\n')
        m = wait_mail('alice', qid)
        self.assertIn('\nX-Seen: stripped before header_checks\nSubject: stripped here\n', m)
        body = m.split('\n\n', 1)[1]
        self.assertEqual(body.rstrip('\n').split('\n')[-2:], ['body one', 'two'])
        self.assertNotIn('\x01', m)

    def test_header_checks_bad_rule(self):
        cursor = pb.journal_cursor()
        with open(HEADER_CHECKS, 'w') as f:
            f.write('/^Subject: fine/ REJECT fine\n/^Subject: (broken/ REJECT broken\n')
        configure(header_checks=f'regexp:{HEADER_CHECKS}')
        with self.assertRaises(smtplib.SMTPDataError) as e:
            pb.send('x@example.org', ['alice@localhost'], 'Subject: x\n\nx\n')
        self.assertEqual(e.exception.smtp_code // 100, 4)
        pb.wait_until(lambda: any(f'{HEADER_CHECKS}:2: bad regular expression' in (m or '') for m in
                                  pb.journal_messages('SYSLOG_IDENTIFIER=postbus/cleanup', since=cursor)),
                      what='the file:line of the bad rule in the journal')
        pb.systemctl('reset-failed', 'postbus-cleanup.service', 'postbus-cleanup.socket', check=False)
        pb.systemctl('start', 'postbus-cleanup.socket')

    def test_local_mail_headers(self):
        qid = submit('alice', ['bob'], 'Subject: from pickup\n\nhello\n',
                     origin='pickup', uid=pb.uid('alice'), full_name='Alice Example')
        m = wait_mail('bob', qid)
        self.assertIn(f'\nFrom: Alice Example <alice@{HOST}>\n', m)
        self.assertIn('\nDate: ', m)
        self.assertIn(f'\nMessage-ID: <', m)
        self.assertIn(f'\nReturn-Path: <alice@{HOST}>\n', m)
        self.assertIn(f'\nDelivered-To: bob@{HOST}\n', m)
        # local mail never shows a Bcc header, even without -t; its address gets no copy then
        qid = submit('alice', ['bob'], 'Bcc: carol\nSubject: bcc kept blind\n\nhello\n', origin='pickup')
        self.assertNotIn('\nBcc:', wait_mail('bob', qid))
        # a submitter cannot put mail on hold: that is cleanup's own attribute
        qid = submit('alice', ['bob'], 'Subject: not held\n\nhello\n', origin='pickup', hold='please')
        wait_mail('bob', qid)
        # a full name with specials is quoted
        qid = submit('alice', ['bob'], 'Subject: quoted\n\nhello\n', origin='pickup', full_name='Example, Alice')
        self.assertIn(f'\nFrom: "Example, Alice" <alice@{HOST}>\n', wait_mail('bob', qid))

    def test_missing_headers_remote(self):
        """As Postfix's cleanup (2.6 and later, local_header_rewrite_clients = permit_inet_interfaces): mail from
        another host's SMTP client keeps its header as it came unless always_add_missing_headers = yes; local
        mail gets From, Date, Message-ID; undisclosed_recipients_header goes where those do, without To or Cc."""
        configure(undisclosed_recipients_header='To: undisclosed-recipients:;')
        remote = dict(client_address='192.0.2.7', client_name='unknown', protocol='ESMTP')
        qid = submit('x@example.org', ['bob'], 'Subject: remote bare\n\nhello\n', **remote)
        m = wait_mail('bob', qid)
        header = m.split('\n\n', 1)[0] + '\n'
        for absent in ('\nDate: ', '\nMessage-ID: ', '\nFrom: ', '\nTo: '):
            self.assertNotIn(absent, header)
        self.assertIn('\nReceived: from unknown (unknown [192.0.2.7])', header)

        # a loopback client is local: it gets them all
        qid = submit('x@example.org', ['bob'], 'Subject: loopback bare\n\nhello\n',
                     client_address='127.0.0.1', client_name='localhost', protocol='ESMTP')
        header = wait_mail('bob', qid).split('\n\n', 1)[0] + '\n'
        for present in ('\nDate: ', '\nMessage-ID: <', '\nFrom: x@example.org\n', '\nTo: undisclosed-recipients:;\n'):
            self.assertIn(present, header)
        # a Cc is a visible recipient: no To then
        qid = submit('alice', ['bob'], 'Cc: bob\nSubject: with cc\n\nhello\n', origin='pickup')
        self.assertNotIn('undisclosed-recipients', wait_mail('bob', qid))

        configure(always_add_missing_headers='yes')
        qid = submit('x@example.org', ['bob'], 'Subject: remote always\n\nhello\n', **remote)
        header = wait_mail('bob', qid).split('\n\n', 1)[0] + '\n'
        for present in ('\nDate: ', '\nMessage-ID: <', '\nFrom: x@example.org\n', '\nTo: undisclosed-recipients:;\n'):
            self.assertIn(present, header)

    def test_extract_recipients(self):
        content = ('From: alice\nTo: Bob <bob>, undisclosed:;\nCc: "Carol (C)" <carol@mail.example.test>\n'
                   'Bcc: alice@localhost\nSubject: extract\n\nbody\n')
        qid = submit('alice', [], content, origin='pickup', extract_recipients='yes')
        for user in ('alice', 'bob', 'carol'):
            m = wait_mail(user, qid)
            self.assertNotIn('\nBcc:', m)
            # local mail: header addresses in canonical form too
            self.assertIn(f'\nTo: Bob <bob@{HOST}>, undisclosed:;\n', m)
            self.assertIn(f'\nFrom: alice@{HOST}\n', m)
        # with Resent- headers, only the Resent- recipients
        content = ('From: alice\nTo: bob\nResent-From: alice\nResent-To: carol\nResent-Bcc: alice\n'
                   'Subject: resent\n\nbody\n')
        cursor = pb.journal_cursor()
        qid = submit('alice', [], content, origin='pickup', extract_recipients='yes')
        m = wait_mail('carol', qid)
        self.assertNotIn('Resent-Bcc', m)
        wait_mail('alice', qid)
        rcpts = {r.get('RECIPIENT') for r in pb.journal(QUEUE_ID=qid, DELIVERY_STATUS='sent', since=cursor)}
        self.assertEqual(rcpts, {f'carol@{HOST}', f'alice@{HOST}'})
        # more addresses than cleanup asks rewrite about at once
        many = [f'user{i}@remote{i}.test' for i in range(70)]
        qid = submit('alice', [], f'To: bob\nCc: {", ".join(many)}\nSubject: many\n\nbody\n',
                     origin='pickup', extract_recipients='yes')
        wait_mail('bob', qid)
        listed = pb.wait_until(lambda: [m for m in pb.busctl_call('ListMessages', 's', 'deferred')[0] if m[0] == qid],
                               what='the remote recipients deferred')
        self.assertEqual(sorted(listed[0][5]), sorted(many))
        # no recipient anywhere: rejected
        with self.assertRaises(dbus.exceptions.DBusException) as e:
            submit('alice', [], 'Subject: nobody\n\nx\n', origin='pickup', extract_recipients='yes')
        self.assertIn('No recipient addresses found', str(e.exception))

    def test_content_inline_and_memory_file(self):
        """smtpd sends a message of up to 64 KiB in the call itself (Cleanup1.SubmitInline) and a larger one in a
        sealed memory file (Submit): both arrive byte for byte, on either side of the boundary."""
        for size in (64 * 1024 - 200, 64 * 1024 + 200, 300 * 1024):
            line = f'{size:07d} ' + 'x' * 70 + '\n'
            body = (line * (size // len(line) + 1))[:size - size % len(line)]
            marker = f'inline-{size}'
            qid = pb.send('carol@example.org', ['alice@localhost'], f'Subject: {marker}\n\n{body}')
            m = wait_mail('alice', qid)
            self.assertTrue(m.rstrip('\n').endswith(body.rstrip('\n')), f'{size}: the body changed')
            self.assertEqual(m.count(line), body.count(line), size)
        # SubmitInline over cleanup's socket, as smtpd calls it
        qid = submit_inline('carol@example.org', ['bob@localhost'], b'Subject: direct inline\n\nhello\n')
        self.assertIn('hello', wait_mail('bob', qid))
        # message_size_limit holds for inline content too
        configure(message_size_limit='2000')
        try:
            with self.assertRaises(dbus.exceptions.DBusException) as e:
                submit_inline('carol@example.org', ['bob@localhost'], b'Subject: big\n\n' + b'y' * 3000 + b'\n')
            self.assertIn('552 5.3.4', str(e.exception))
        finally:
            configure(message_size_limit='10240000')

if __name__ == '__main__':
    unittest.main()
