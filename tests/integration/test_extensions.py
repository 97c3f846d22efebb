"""Address extensions in cleanup's tables and the owner of an alias list, through the real daemons:
propagate_unmatched_extensions (Postfix's default "canonical, virtual") puts the extension that a
canonical(5) or virtual(5) match went without back into the result (joe+foo@ by joe@ gives joe.user+foo@),
and not when the parameter leaves the table out, and with "alias", "forward" and "include" listed local's aliases, ~/.forward (not ~/.forward+ext) and
the :include: files they name do the same;
expand_owner_alias = yes makes the sender of a list's
forwarded copies what owner-<list> expands to, instead of owner-<list>@$myorigin."""
import os
import time
import unittest

import postbus as pb
from test_verp import FakeServer

ETC = '/etc/postbus'
SENDER = 'sender@example.org'


def sendmail(sender, recipient, marker):
    pb.run('sendmail', '-f', sender, recipient, input=f'Subject: {marker}\n\n{marker}\n')


class Extensions(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sink = FakeServer(2525)
        pw = pb.add_user('fwduser')
        path = os.path.join(pw.pw_dir, '.forward')
        with open(path, 'w', encoding='utf-8') as f:
            f.write('member3@sink.test\n')
        os.chown(path, pw.pw_uid, pw.pw_gid)
        os.chmod(path, 0o644)
        tables = {
            'transport': 'sink.test smtp:[127.0.0.1]:2525\n',
            'virtual': 'joe@localhost joe.user@sink.test\n'
                       'team@localhost a@sink.test, b@sink.test\n',
            'canonical': 'jane@localhost jane.doe@sink.test\n',
        }
        for name, text in tables.items():
            with open(f'{ETC}/{name}', 'w', encoding='utf-8') as f:
                f.write(text)
            pb.run('postbusctl', 'map', 'build', f'{ETC}/{name}')
        with open(f'{ETC}/incl-list', 'w', encoding='utf-8') as f:
            f.write('member4@sink.test\n')
        with open('/etc/aliases', 'a', encoding='utf-8') as f:
            f.write('xlist: member@sink.test\nowner-xlist: listboss@sink.test\nfwdx: member2@sink.test\nincl: :include:/etc/postbus/incl-list\n')
        if pb.have('newaliases'):
            pb.run('newaliases')
        else:
            pb.run('postbusctl', '--aliases', 'map', 'build', '/etc/aliases')
        pb.set_config(transport_maps=f'gdbm:{ETC}/transport', virtual_alias_maps=f'gdbm:{ETC}/virtual',
                      canonical_maps=f'gdbm:{ETC}/canonical', recipient_delimiter='+',
                      smtp_destination_recipient_limit=50)

    def marker(self, what):
        return f'{what}-{time.time_ns()}'

    def transaction(self, marker):
        """The (MAIL line, recipients) of the one transaction with marker."""
        [t] = pb.wait_until(lambda: self.sink.with_marker(marker), what=f'the message {marker} at the fake server')
        return t

    def test_virtual_propagates_extension(self):
        marker = self.marker('virtual')
        sendmail(SENDER, 'joe+foo@localhost', marker)
        self.assertEqual(self.transaction(marker)[1], ['joe.user+foo@sink.test'])
        # To each address of a list.
        marker = self.marker('team')
        sendmail(SENDER, 'team+x@localhost', marker)
        self.assertEqual(sorted(self.transaction(marker)[1]), ['a+x@sink.test', 'b+x@sink.test'])

    def test_canonical_propagates_extension(self):
        marker = self.marker('canonical')
        sendmail('jane+news@localhost', 'someone@sink.test', marker)
        mail, rcpts = self.transaction(marker)
        self.assertRegex(mail, r'^MAIL FROM:<jane\.doe\+news@sink\.test>')
        self.assertEqual(rcpts, ['someone@sink.test'])

    def test_lists_not_propagated_by_default(self):
        marker = self.marker('alias-default')
        sendmail(SENDER, 'fwdx+tag@localhost', marker)
        self.assertEqual(self.transaction(marker)[1], ['member2@sink.test'])
        marker = self.marker('forward-default')
        sendmail(SENDER, 'fwduser+tag@localhost', marker)
        self.assertEqual(self.transaction(marker)[1], ['member3@sink.test'])
        marker = self.marker('include-default')
        sendmail(SENDER, 'incl+tag@localhost', marker)
        self.assertEqual(self.transaction(marker)[1], ['member4@sink.test'])

    def test_owner_alias_name(self):
        marker = self.marker('owner')
        sendmail(SENDER, 'xlist@localhost', marker)
        mail, rcpts = self.transaction(marker)
        self.assertEqual(rcpts, ['member@sink.test'])
        self.assertRegex(mail, r'^MAIL FROM:<owner-xlist@[^>]+>')

    def test_zz_settings(self):
        # Last (by name): the configuration changes.
        try:
            pb.set_config(propagate_unmatched_extensions='canonical, alias, forward', expand_owner_alias=True)
            # include not listed: the alias's :include: file does not carry the extension on.
            marker = self.marker('include-unlisted')
            sendmail(SENDER, 'incl+tag@localhost', marker)
            self.assertEqual(self.transaction(marker)[1], ['member4@sink.test'])
            pb.set_config(propagate_unmatched_extensions='canonical, alias, forward, include')
            marker = self.marker('include-propagated')
            sendmail(SENDER, 'incl+tag@localhost', marker)
            self.assertEqual(self.transaction(marker)[1], ['member4+tag@sink.test'])
            marker = self.marker('noprop')
            sendmail(SENDER, 'joe+bar@localhost', marker)
            self.assertEqual(self.transaction(marker)[1], ['joe.user@sink.test'])
            marker = self.marker('canonical-still')
            sendmail('jane+news@localhost', 'someone@sink.test', marker)
            self.assertRegex(self.transaction(marker)[0], r'^MAIL FROM:<jane\.doe\+news@sink\.test>')
            marker = self.marker('alias-propagated')
            sendmail(SENDER, 'fwdx+tag@localhost', marker)
            self.assertEqual(self.transaction(marker)[1], ['member2+tag@sink.test'])
            # ~/.forward (not ~/.forward+tag, which forward_path would take first) for fwduser+tag.
            marker = self.marker('forward-propagated')
            sendmail(SENDER, 'fwduser+tag@localhost', marker)
            self.assertEqual(self.transaction(marker)[1], ['member3+tag@sink.test'])
            marker = self.marker('expanded-owner')
            sendmail(SENDER, 'xlist@localhost', marker)
            self.assertRegex(self.transaction(marker)[0], r'^MAIL FROM:<listboss@sink\.test>')

            pb.set_config(propagate_unmatched_extensions='')
            marker = self.marker('none')
            sendmail('jane+news@localhost', 'someone@sink.test', marker)
            self.assertRegex(self.transaction(marker)[0], r'^MAIL FROM:<jane\.doe@sink\.test>')
        finally:
            pb.set_config(propagate_unmatched_extensions='canonical, virtual', expand_owner_alias=False)


if __name__ == '__main__':
    unittest.main(verbosity=2)
