"""The queue as an API on the system bus (org.postbus.Queue1, queue-bus.h): every method, property and
signal through busctl and python3-dbus against the real qmgr; hold that survives a restart; a paused
destination that gets no delivery attempt until resumed; error names for bad input; root, a user that a
real polkitd allows through a rules file, and a user it does not."""
import json
import os
import subprocess
import time
import unittest

import dbus

import postbus as pb

MESSAGE_IFACE = 'org.postbus.Message1'
MESSAGE_PREFIX = '/org/postbus/Queue1/message/'
RULES = '/etc/polkit-1/rules.d/50-postbus.rules'


def bus():
    return dbus.SystemBus()


def queue():
    return dbus.Interface(bus().get_object(pb.QUEUE_BUS_NAME, pb.QUEUE_OBJECT), pb.QUEUE_INTERFACE)


def message_props(qid):
    obj = bus().get_object(pb.QUEUE_BUS_NAME, MESSAGE_PREFIX + qid)
    return dbus.Interface(obj, 'org.freedesktop.DBus.Properties').GetAll(MESSAGE_IFACE)


def queue_of(qid):
    for m in pb.busctl_call('ListMessages', 's', '')[0]:
        if m[0] == qid:
            return m[1]
    return None


def mail_for(user, text):
    return any(text in m for m in pb.mbox_messages(user))


def error_name(fn, *args):
    try:
        fn(*args)
    except dbus.exceptions.DBusException as e:
        return e.get_dbus_name()
    return None


def busctl_as(user, method, signature='', *args, interactive=False):
    cmd = ['busctl', '--system', f'--allow-interactive-authorization={"yes" if interactive else "no"}',
           '--timeout=30', 'call', pb.QUEUE_BUS_NAME, pb.QUEUE_OBJECT, pb.QUEUE_INTERFACE, method]
    if signature:
        cmd += [signature] + pb._busctl_args(args)
    return pb.run_process(*cmd, user=user, check=False)


class Monitor:
    """busctl monitor of the signals of org.postbus.Queue1 (and PropertiesChanged), as JSON."""

    def __init__(self):
        self.p = subprocess.Popen(['busctl', '--system', '--json=short', 'monitor', pb.QUEUE_BUS_NAME],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        time.sleep(1)   # in place before anything moves

    def stop(self):
        self.p.terminate()
        out, _ = self.p.communicate(timeout=10)
        msgs = []
        for line in out.splitlines():
            try:
                msgs.append(json.loads(line))
            except ValueError:
                pass    # the last line, cut short by the terminate
        return [m for m in msgs if m.get('type') == 'signal']


class QueueControl(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for u in ('erin', 'frank', 'admin1', 'plain'):
            pb.add_user(u)
        pb.run('groupadd', '-f', 'mailadm')
        pb.run('usermod', '-aG', 'mailadm', 'admin1')
        os.makedirs(os.path.dirname(RULES), exist_ok=True)
        with open(RULES, 'w') as f:
            f.write('polkit.addRule(function(action, subject) {\n'
                    '    if (action.id == "org.postbus.queue.manage" && subject.isInGroup("mailadm"))\n'
                    '        return polkit.Result.YES;\n'
                    '});\n')
        # polkitd is started by D-Bus on first use; a running one rereads its rules
        pb.systemctl('try-restart', 'polkit.service', check=False)
        pb.set_config(queue_run_delay='1s', minimal_backoff_time='2s', maximal_backoff_time='4s')

    def queued_held_back(self, user, subject, count=1):
        """Sends mail to user while localhost is paused, and holds it: the IDs."""
        ids = []
        # local is not asked while localhost is paused (and its client has no failures to back off from)
        pb.busctl_call('PauseDestination', 'ss', 'localhost', 'held back by the test')
        try:
            for i in range(count):
                ids.append(pb.send('sender@example.org', [f'{user}@localhost'], f'Subject: {subject}-{i}\n\n{subject}-{i}\n'))
            for qid in ids:
                pb.wait_until(lambda: queue_of(qid) == 'deferred', what=f'{qid} deferred')
            # hold them all while paused, so that none is delivered before the test wants it
            self.assertEqual(pb.busctl_call('HoldMessages', 'as', ids)[0], len(ids))
        finally:
            pb.busctl_call('ResumeDestination', 's', 'localhost')
        return ids

    def test_hold_release_survives_restart(self):
        (qid,) = self.queued_held_back('erin', 'held-restart')
        self.assertEqual(queue_of(qid), 'hold')
        self.assertTrue(os.path.exists(f'{pb.SPOOL}/hold/{qid}'))
        self.assertGreaterEqual(pb.busctl_get('Hold'), 1)
        # holding again acts on nothing
        self.assertEqual(pb.busctl_call('HoldMessages', 'as', [qid])[0], 0)

        pb.systemctl('restart', pb.QMGR_UNIT)
        pb.wait_until(lambda: pb.run_process('busctl', '--system', 'status', pb.QUEUE_BUS_NAME,
                                             check=False).returncode == 0, what='qmgr back on the bus')
        self.assertEqual(queue_of(qid), 'hold')
        time.sleep(3)   # several queue runs: held mail is not tried
        self.assertFalse(mail_for('erin', 'held-restart'))
        props = message_props(qid)
        self.assertEqual(props['Queue'], 'hold')
        self.assertEqual(props['Sender'], 'sender@example.org')

        self.assertEqual(queue().ReleaseMessages([qid]), 1)
        pb.wait_until(lambda: mail_for('erin', 'held-restart'), what='released mail delivered')
        pb.wait_until(lambda: queue_of(qid) is None, what='released mail gone from the queue')
        self.assertEqual(error_name(queue().GetMessage, qid), 'org.postbus.Error.NoSuchMessage')

    def test_select_and_message_object(self):
        a, b = self.queued_held_back('frank', 'select', count=2)
        q = queue()
        self.assertEqual(set(q.SelectMessages({'queue': 'hold', 'recipient': 'frank@localhost'})), {a, b})
        self.assertEqual(set(q.SelectMessages({'destination': 'LOCALHOST', 'sender': 'sender@example.org'})) & {a, b},
                         {a, b})
        self.assertEqual(list(q.SelectMessages({'recipient': 'nobody-like-this@localhost'})), [])
        self.assertIn(a, q.SelectMessages({}))
        self.assertIn(a, q.SelectMessages({'older_than_usec': dbus.UInt64(0)}))
        self.assertNotIn(a, q.SelectMessages({'older_than_usec': dbus.UInt64(3600 * 10**6)}))
        self.assertIn(a, q.SelectMessages({'reason': 'held by the administrator'}))

        path = q.GetMessage(a)
        self.assertEqual(path, MESSAGE_PREFIX + a)
        props = message_props(a)
        self.assertEqual(props['Id'], a)
        self.assertEqual(props['Queue'], 'hold')
        self.assertGreater(props['Size'], 0)
        self.assertGreater(props['ArrivalUSec'], 0)
        self.assertGreaterEqual(props['Attempts'], 1)
        self.assertEqual(props['NextAttemptUSec'], 0)
        self.assertEqual([tuple(r) for r in props['Recipients']],
                         [('frank@localhost', 'frank@localhost', 'pending', props['Reason'])])
        tree = pb.run('busctl', '--system', 'tree', '--list', pb.QUEUE_BUS_NAME)
        self.assertIn(MESSAGE_PREFIX + a, tree)
        self.assertIn(MESSAGE_PREFIX + b, tree)

        # the per-message methods, as root through busctl
        obj = [pb.QUEUE_BUS_NAME, MESSAGE_PREFIX + a, MESSAGE_IFACE]
        mon = Monitor()
        try:
            pb.run('busctl', '--system', 'call', *obj, 'Release')
            pb.wait_until(lambda: mail_for('frank', 'select-0'), what='released message delivered')
            pb.run('busctl', '--system', 'call', *obj[:1], MESSAGE_PREFIX + b, MESSAGE_IFACE, 'Delete')
            pb.wait_until(lambda: queue_of(b) is None, what='deleted message gone')
            time.sleep(1.5)
        finally:
            signals = mon.stop()
        self.assertFalse(mail_for('frank', 'select-1'))
        members = [(s['member'], s['path']) for s in signals]
        self.assertIn(('MessageRemoved', pb.QUEUE_OBJECT), members)
        removed = [s['payload']['data'][0] for s in signals if s['member'] == 'MessageRemoved']
        self.assertIn(a, removed)
        self.assertIn(b, removed)
        delivered = [s['payload']['data'] for s in signals if s['member'] == 'MessageDelivered']
        self.assertTrue(any(d[0] == a and d[1] == 'frank@localhost' and d[3].startswith('2.') for d in delivered),
                        delivered)
        changed = [s for s in signals if s['member'] == 'PropertiesChanged' and s['path'] == MESSAGE_PREFIX + a]
        self.assertTrue(changed, 'PropertiesChanged of the message object')
        self.assertFalse(os.path.exists(f'{pb.SPOOL}/hold/{b}'))

    def test_requeue_bounce_delete(self):
        ids = self.queued_held_back('erin', 'rbd', count=3)
        cursor = pb.journal_cursor()
        mon = Monitor()
        try:
            # requeue: out of hold, resolved again, delivered
            self.assertEqual(pb.busctl_call('RequeueMessages', 'as', [ids[0]])[0], 1)
            pb.wait_until(lambda: mail_for('erin', 'rbd-0'), what='requeued mail delivered')
            # bounce: the sender gets a notice with the reason
            self.assertEqual(pb.busctl_call('BounceMessages', 'ass', [ids[1]], 'bounced by the test')[0], 1)
            pb.wait_until(lambda: queue_of(ids[1]) is None, what='bounced message gone')
            # delete: gone, no notice
            self.assertEqual(pb.busctl_call('DeleteMessages', 'as', [ids[2], '00000000000000000000'])[0], 1)
            pb.wait_until(lambda: queue_of(ids[2]) is None, what='deleted message gone')
            time.sleep(1.5)
        finally:
            signals = mon.stop()
        bounced = [s['payload']['data'] for s in signals if s['member'] == 'MessageBounced']
        self.assertTrue(any(d[0] == ids[1] and d[1] == 'erin@localhost' and 'bounced by the test' in d[3]
                            for d in bounced), bounced)
        self.assertFalse(mail_for('erin', 'rbd-1'))
        self.assertFalse(mail_for('erin', 'rbd-2'))
        recs = pb.journal(QUEUE_ID=ids[1], DELIVERY_STATUS='bounced', since=cursor)
        self.assertTrue(recs, 'a bounced record in the journal')
        self.assertFalse(pb.journal(QUEUE_ID=ids[2], DELIVERY_STATUS='bounced', since=cursor))
        self.assertTrue(pb.journal(QUEUE_ID=ids[2], QUEUE_ACTION='deleted', since=cursor))

    def test_pause_resume(self):
        q = queue()
        cursor = pb.journal_cursor()
        q.PauseDestination('paused.localhost.test', 'not this one')
        q.PauseDestination('localhost', 'maintenance window')
        self.assertIn('localhost', pb.busctl_get('PausedDestinations'))
        try:
            mon = Monitor()
            try:
                qid = pb.send('sender@example.org', ['frank@localhost'], 'Subject: paused\n\npaused-mail\n')
                pb.wait_until(lambda: queue_of(qid) == 'deferred', what='paused mail deferred')
                time.sleep(0.5)
            finally:
                signals = mon.stop()
            queued = [s['payload']['data'] for s in signals if s['member'] == 'MessageQueued']
            self.assertIn([qid, 'sender@example.org', 1], queued)
            deferred = [s['payload']['data'] for s in signals if s['member'] == 'MessageDeferred']
            self.assertTrue(any(d[0] == qid and d[1] == 'frank@localhost' and d[2] == '4.3.2' and
                                'maintenance window' in d[3] and d[4] > time.time() * 1e6 for d in deferred), deferred)
            pb.wait_until(lambda: qid in q.SelectMessages({'reason': 'maintenance window'}),
                          what='the deferral reason in the index')
            dests = [tuple(d) for d in q.ListDestinations()]
            self.assertIn(('', 'localhost', 'paused', 0, 0, 0, False, 0), dests)
            # a restart keeps the pause
            pb.systemctl('restart', pb.QMGR_UNIT)
            pb.wait_until(lambda: 'localhost' in pb.busctl_get('PausedDestinations'), what='pause after restart')
            q = queue()         # the new qmgr's connection
            time.sleep(4)       # queue runs and retries: still not tried
            self.assertFalse(mail_for('frank', 'paused-mail'))
            self.assertEqual(queue_of(qid), 'deferred')
            deferred = pb.journal(QUEUE_ID=qid, DELIVERY_STATUS='deferred', since=cursor)
            self.assertTrue(deferred)
            self.assertTrue(all('destination paused' in r['MESSAGE'] for r in deferred),
                            [r['MESSAGE'] for r in deferred])
            self.assertFalse(pb.journal(QUEUE_ID=qid, POSTBUS_ROLE='local', since=cursor),
                             'local saw the paused mail')
            # (a queue run may have it in active for a moment: it goes back to deferred, untried)
            pb.wait_until(lambda: pb.busctl_get('OldestDeferredUSec') > 0, what='OldestDeferredUSec set')
            pb.wait_until(lambda: message_props(qid)['NextAttemptUSec'] > 0, what='NextAttemptUSec set')
        finally:
            q.ResumeDestination('localhost')
            q.ResumeDestination('paused.localhost.test')
        pb.wait_until(lambda: mail_for('frank', 'paused-mail'), what='mail delivered after resume')
        self.assertEqual(list(pb.busctl_get('PausedDestinations')), [])

    def test_destination_dead(self):
        # smtp to a port where nothing listens: one failed cohort (the window starts at 1) kills it
        with open('/etc/postbus/transport', 'w', encoding='utf-8') as f:
            f.write('closed.test smtp:[127.0.0.1]:2599\n')
        pb.run('postbusctl', 'map', 'build', '/etc/postbus/transport')
        pb.set_config(transport_maps='gdbm:/etc/postbus/transport', initial_destination_concurrency=1)
        mon = Monitor()
        try:
            qid = pb.send('sender@example.org', ['someone@closed.test'], 'Subject: dead\n\nto a dead end\n')
            pb.wait_until(lambda: any(d[1] == '[127.0.0.1]:2599' and d[2] == 'dead' and d[6]
                                      for d in queue().ListDestinations()), what='a dead destination')
            dest = next(d for d in queue().ListDestinations() if d[1] == '[127.0.0.1]:2599')
            self.assertEqual(dest[0], 'smtp')
            self.assertGreater(dest[7], time.time() * 1e6)       # retried later
            time.sleep(0.5)
        finally:
            signals = mon.stop()
        dead = [s['payload']['data'] for s in signals if s['member'] == 'DestinationDead']
        self.assertTrue(any(d[0] == 'smtp' and d[1] == '[127.0.0.1]:2599' and d[2] for d in dead), dead)
        self.assertEqual(queue().DeleteMessages([qid]), 1)

    def test_flush_destination(self):
        # deferred without a try (defer_transports), then due only in an hour
        pb.set_config(defer_transports='local')
        try:
            qid = pb.send('sender@example.org', ['erin@localhost'], 'Subject: flush\n\nflush-mail\n')
            pb.wait_until(lambda: queue_of(qid) == 'deferred', what='mail deferred')
            later = time.time() + 3600
            os.utime(f'{pb.SPOOL}/deferred/{qid}', (later, later))
        finally:
            pb.set_config(defer_transports='')
        self.assertGreater(message_props(qid)['NextAttemptUSec'], (time.time() + 1800) * 1e6)
        time.sleep(2)
        self.assertFalse(mail_for('erin', 'flush-mail'))
        self.assertEqual(queue_of(qid), 'deferred')
        self.assertEqual(queue().FlushDestination('LocalHost'), 1)
        pb.wait_until(lambda: mail_for('erin', 'flush-mail'), what='flushed mail delivered')
        self.assertEqual(error_name(queue().FlushDestination, 'nothing-queued.example'),
                         'org.postbus.Error.NoSuchDestination')

    def test_bad_input(self):
        q = queue()
        for method in (q.HoldMessages, q.ReleaseMessages, q.RequeueMessages, q.DeleteMessages):
            self.assertEqual(error_name(method, ['not-an-id']), 'org.postbus.Error.InvalidArguments')
            self.assertEqual(error_name(method, ['00000000000000000000']), 'org.postbus.Error.NoSuchMessage')
            self.assertEqual(method([]), 0)
        self.assertEqual(error_name(q.BounceMessages, ['../etc'], 'x'), 'org.postbus.Error.InvalidArguments')
        self.assertEqual(error_name(q.BounceMessages, ['00000000000000000000'], 'x'), 'org.postbus.Error.NoSuchMessage')
        self.assertEqual(error_name(q.GetMessage, 'zz'), 'org.postbus.Error.InvalidArguments')
        self.assertEqual(error_name(q.GetMessage, '00000000000000000000'), 'org.postbus.Error.NoSuchMessage')
        self.assertEqual(error_name(q.SelectMessages, {'colour': 'blue'}), 'org.postbus.Error.InvalidArguments')
        self.assertEqual(error_name(q.SelectMessages, {'queue': 'nope'}), 'org.postbus.Error.InvalidArguments')
        self.assertEqual(error_name(q.SelectMessages, {'older_than_usec': 'soon'}),
                         'org.postbus.Error.InvalidArguments')
        self.assertEqual(error_name(q.PauseDestination, '', 'x'), 'org.postbus.Error.InvalidArguments')
        self.assertEqual(error_name(q.ResumeDestination, 'never-paused.example'),
                         'org.postbus.Error.NoSuchDestination')
        self.assertEqual(error_name(q.FlushDestination, ''), 'org.postbus.Error.InvalidArguments')
        out = pb.run_process('busctl', '--system', 'get-property', pb.QUEUE_BUS_NAME, MESSAGE_PREFIX + '00000000000000000000',
                             MESSAGE_IFACE, 'Queue', check=False)
        self.assertNotEqual(out.returncode, 0)

    def test_alert_on_corrupt_file(self):
        mon = Monitor()
        try:
            path = f'{pb.SPOOL}/incoming/0000000A000000000000'
            with open(path, 'wb') as f:
                f.write(b'not a queue file')
            pb.run('chown', 'postbus:postbus', path)
            pb.wait_until(lambda: os.path.exists(f'{pb.SPOOL}/corrupt/0000000A000000000000'), what='file quarantined')
            time.sleep(0.5)
        finally:
            signals = mon.stop()
        alerts = [s['payload']['data'] for s in signals if s['member'] == 'Alert']
        self.assertTrue(any(a[0] == 'software' and '0000000A000000000000' in a[1] for a in alerts), alerts)
        self.assertEqual(queue_of('0000000A000000000000'), 'corrupt')

    def test_who_may_change(self):
        (qid,) = self.queued_held_back('frank', 'authz')
        changes = [
            ('HoldMessages', 'as', [qid]),
            ('ReleaseMessages', 'as', ['00000000000000000000']),
            ('RequeueMessages', 'as', [qid]),
            ('DeleteMessages', 'as', [qid]),
            ('BounceMessages', 'ass', [qid], 'no'),
            ('FlushQueue', ''),
            ('FlushDestination', 's', 'localhost'),
            ('PauseDestination', 'ss', 'localhost', 'no'),
            ('ResumeDestination', 's', 'localhost'),
        ]
        for call in changes:
            p = busctl_as('plain', *call)
            self.assertNotEqual(p.returncode, 0, call)
            self.assertIn('Access denied', p.stderr, (call, p.stderr))
        # with interactive authorization allowed and no agent to ask: still no
        p = busctl_as('plain', 'DeleteMessages', 'as', [qid], interactive=True)
        self.assertNotEqual(p.returncode, 0)
        for method in ('Hold', 'Delete', 'Release', 'Requeue'):
            p = pb.run_process('runuser', '-u', 'plain', '--', 'busctl', '--system',
                               '--allow-interactive-authorization=no', 'call', pb.QUEUE_BUS_NAME,
                               MESSAGE_PREFIX + qid, MESSAGE_IFACE, method, check=False)
            self.assertIn('Access denied', p.stderr, method)
        self.assertEqual(queue_of(qid), 'hold')
        # reading is open to everyone
        p = busctl_as('plain', 'SelectMessages', 'a{sv}', 0)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(qid, p.stdout)

        # the polkit rule lets the group mailadm
        p = busctl_as('admin1', 'PauseDestination', 'ss', 'polkit.example', 'by admin1')
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn('polkit.example', pb.busctl_get('PausedDestinations'))
        p = busctl_as('admin1', 'ResumeDestination', 's', 'polkit.example')
        self.assertEqual(p.returncode, 0, p.stderr)
        p = busctl_as('admin1', 'DeleteMessages', 'as', [qid])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.split(), ['u', '1'])
        pb.wait_until(lambda: queue_of(qid) is None, what='message deleted by admin1')


if __name__ == '__main__':
    unittest.main()
