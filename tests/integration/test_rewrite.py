"""The rewrite role (trivial-rewrite): canonical addresses and resolution over its own socket, and
transport_maps changing where mail goes, a rebuilt table taking effect without a restart."""
import os
import unittest

import dbus

import postbus as pb

REWRITE_ADDRESS = 'unix:path=/run/postbus/rewrite'
HOST = 'mail.example.test'
TRANSPORT = '/etc/postbus/transport'


def rewrite(method, address):
    """Calls org.postbus.Rewrite1.<method>(address) over rewrite's peer-to-peer socket."""
    conn = pb.p2p_connect(REWRITE_ADDRESS)
    try:
        obj = conn.get_object(None, '/org/postbus/Rewrite1', introspect=False)
        out = obj.get_dbus_method(method, 'org.postbus.Rewrite1')(address)
        return str(out) if isinstance(out, str) else tuple(str(x) for x in out)
    finally:
        conn.close()


def resolve_sender(sender, address):
    """org.postbus.Rewrite1.ResolveSender(sender, address): (transport, nexthop, address, lasting)."""
    conn = pb.p2p_connect(REWRITE_ADDRESS)
    try:
        obj = conn.get_object(None, '/org/postbus/Rewrite1', introspect=False)
        t, n, a, lasting = obj.get_dbus_method('ResolveSender', 'org.postbus.Rewrite1')(sender, address)
        return str(t), str(n), str(a), bool(lasting)
    finally:
        conn.close()


def build_table(path, text):
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)
    pb.run('postbusctl', 'map', 'build', path)


def mail_with(user, marker):
    return next((m for m in pb.mbox_messages(user) if marker in m), None)


class Rewrite(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        pb.add_user('alice')
        pb.set_config(myhostname=HOST, mydomain='example.test', relayhost='', append_dot_mydomain=False,
                      transport_maps='')

    def test_rewrite_and_resolve_methods(self):
        self.assertEqual(rewrite('Rewrite', 'alice'), f'alice@{HOST}')
        self.assertEqual(rewrite('Rewrite', 'alice@'), f'alice@{HOST}')
        self.assertEqual(rewrite('Rewrite', 'bob@example.com.'), 'bob@example.com')
        self.assertEqual(rewrite('Rewrite', '@relay1.test,@relay2.test:bob@example.com'), 'bob@example.com')
        self.assertEqual(rewrite('Rewrite', '"john smith"'), f'"john smith"@{HOST}')
        self.assertEqual(rewrite('Rewrite', 'carol@otherhost'), 'carol@otherhost')   # Postfix 3: no dot added
        with self.assertRaises(dbus.exceptions.DBusException) as e:
            rewrite('Rewrite', '"unbalanced@example.com')
        self.assertEqual(e.exception.get_dbus_name(), 'org.postbus.Error.InvalidArguments')

        self.assertEqual(rewrite('Resolve', 'alice'), ('local', HOST, f'alice@{HOST}'))
        self.assertEqual(rewrite('Resolve', 'alice@localhost'), ('local', HOST, 'alice@localhost'))
        self.assertEqual(rewrite('Resolve', 'bob@example.com'), ('smtp', 'example.com', 'bob@example.com'))

        pb.set_config(relayhost='[relay.example.test]:587', append_dot_mydomain=True)
        try:
            self.assertEqual(rewrite('Resolve', 'bob@example.com'),
                             ('smtp', '[relay.example.test]:587', 'bob@example.com'))
            self.assertEqual(rewrite('Rewrite', 'carol@otherhost'), 'carol@otherhost.example.test')
            self.assertEqual(rewrite('Resolve', 'alice')[0], 'local')
        finally:
            pb.set_config(relayhost='', append_dot_mydomain=False)
        # rewrite is socket-activated, as its own sandboxed unit
        self.assertEqual(pb.unit_property('postbus-rewrite.service', 'TriggeredBy'), 'postbus-rewrite.socket')
        self.assertEqual(pb.unit_property('postbus-rewrite.service', 'User'), 'postbus-rewrite')

    def test_transport_maps(self):
        build_table(TRANSPORT, 'special.test local:\n'
                               '.sub.special.test local:\n'
                               'errors.test error:5.1.1 this domain takes no mail\n')
        pb.set_config(transport_maps=f'gdbm:{TRANSPORT}')
        try:
            self.assertEqual(rewrite('Resolve', 'alice@special.test')[:1], ('local',))
            self.assertEqual(rewrite('Resolve', 'x@deep.sub.special.test')[:1], ('local',))
            self.assertEqual(rewrite('Resolve', 'x@errors.test'),
                             ('error', '5.1.1 this domain takes no mail', 'x@errors.test'))

            # a domain the table sends to local is delivered here, subdomains through ".domain"
            qid = pb.send('sender@example.org', 'alice@special.test', 'Subject: special\n\nt1\n')
            pb.wait_until(lambda: mail_with('alice', qid), what='mail for alice@special.test')
            qid = pb.send('sender@example.org', 'alice@a.sub.special.test', 'Subject: sub\n\nt2\n')
            pb.wait_until(lambda: mail_with('alice', qid), what='mail for alice@a.sub.special.test')

            # error: bounced by qmgr with the table's text, and gone from the queue
            cursor = pb.journal_cursor()
            qid = pb.send('sender@example.org', 'someone@errors.test', 'Subject: err\n\nt3\n')
            rec = pb.wait_until(lambda: [r for r in pb.journal(QUEUE_ID=qid, DELIVERY_STATUS='bounced', since=cursor)],
                                what='the bounce record')
            self.assertEqual(rec[0]['DSN'], '5.1.1')
            self.assertIn('this domain takes no mail', rec[0]['MESSAGE'])
            pb.wait_until(lambda: any(r['MESSAGE'] == f'{qid}: removed'
                                      for r in pb.journal(QUEUE_ID=qid, since=cursor)),
                          what='the bounced message removed')

            # not in the table: smtp, which finds no server for later.test in a container without DNS: deferred
            cursor = pb.journal_cursor()
            qid = pb.send('sender@example.org', 'alice@later.test', 'Subject: later\n\nt4\n')
            rec = pb.wait_until(lambda: pb.journal(QUEUE_ID=qid, DELIVERY_STATUS='deferred', since=cursor),
                                timeout=60, what='the deferral')
            self.assertEqual(rec[0]['POSTBUS_ROLE'], 'smtp')
            self.assertIn('later.test', rec[0]['MESSAGE'])
            self.assertTrue(rec[0]['DSN'].startswith('4.'), rec[0])

            # a rebuilt table takes effect without a restart
            qmgr = pb.unit_property('postbus-qmgr.service', 'InvocationID')
            rw = pb.unit_property('postbus-rewrite.service', 'InvocationID')
            self.assertTrue(rw)
            build_table(TRANSPORT, 'special.test local:\nlater.test local:\n')
            self.assertEqual(rewrite('Resolve', 'alice@later.test')[:1], ('local',))
            qid = pb.send('sender@example.org', 'alice@later.test', 'Subject: later2\n\nt5\n')
            pb.wait_until(lambda: mail_with('alice', qid), what='mail for alice@later.test after the rebuild')
            self.assertEqual(pb.unit_property('postbus-qmgr.service', 'InvocationID'), qmgr)
            self.assertEqual(pb.unit_property('postbus-rewrite.service', 'InvocationID'), rw)
        finally:
            pb.set_config(transport_maps='')

    def test_lasting_answers(self):
        """Without tables an answer follows main.cf alone: rewrite calls it lasting, and qmgr keeps it a few
        seconds; with transport_maps it is not. A reload of postbus.target forgets kept answers: a changed
        default_transport takes effect for the very next message to the same recipient."""
        self.assertEqual(resolve_sender('a@example.org', 'bob@far.test'), ('smtp', 'far.test', 'bob@far.test', True))
        build_table(TRANSPORT, 'special.test local:\n')
        pb.set_config(transport_maps=f'hash:{TRANSPORT}')
        try:
            self.assertFalse(resolve_sender('a@example.org', 'bob@far.test')[3])
        finally:
            pb.set_config(transport_maps='')

        def status(text):
            cursor = pb.journal_cursor()
            qid = pb.send('a@example.org', 'bob@far.test', f'Subject: {text}\n\n{text}\n')
            rec = pb.wait_until(lambda: [r for r in pb.journal(QUEUE_ID=qid, since=cursor) if r.get('DELIVERY_STATUS')],
                                what=f'the delivery record of {qid}')
            return rec[0]['MESSAGE']
        pb.set_config(default_transport='discard:first main.cf')
        try:
            self.assertIn('status=sent (first main.cf)', status('one'))
            self.assertIn('status=sent (first main.cf)', status('two'))
            pb.write_config({'default_transport': 'discard:second main.cf'})
            cursor = pb.journal_cursor()
            self.assertEqual(pb.systemctl('reload', 'postbus.target', check=False).returncode, 0)
            # the target's reload returns before its units' reloads end: wait for qmgr's and rewrite's
            for role in ('qmgr', 'rewrite'):
                pb.wait_until(lambda: 'Reloaded the configuration.' in pb.journal_messages(POSTBUS_ROLE=role,
                                                                                            since=cursor),
                              what=f'{role} reloaded')
            # within the 5 s that "two"'s answer is kept, were it not forgotten
            self.assertIn('status=sent (second main.cf)', status('three'))
        finally:
            pb.set_config(default_transport='smtp')

    def test_bad_transport_is_a_config_error(self):
        cursor = pb.journal_cursor()
        pb.set_config(default_transport='bad transport')
        try:
            with self.assertRaises(dbus.exceptions.DBusException):
                rewrite('Resolve', 'x@example.com')
            pb.wait_until(lambda: any('default_transport = bad transport' in (m or '') for m in
                                      pb.journal_messages('SYSLOG_IDENTIFIER=postbus/rewrite', since=cursor)),
                          what='the configuration error in the journal')
        finally:
            pb.set_config(default_transport='smtp')
            pb.systemctl('reset-failed', 'postbus-rewrite.service', 'postbus-rewrite.socket', check=False)
            pb.systemctl('start', 'postbus-rewrite.socket')


if __name__ == '__main__':
    unittest.main()
