"""The Cockpit queue page (cockpit/, cockpit-postbus) in headless Chromium through Selenium, against the
real cockpit-ws and postbus in the container: a user whom polkit lets manage the queue logs in through
Cockpit's login page, sees a queued message in the page, holds it and watches the hold count change;
filters, details and resuming a destination from the page; a server address the smtp client skips. Saves a screenshot in the build's meson-logs/artifacts."""
import os
import shutil
import socket
import tempfile
import unittest

import postbus as pb

try:
    from selenium import webdriver
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
except ImportError:
    webdriver = None

USER = 'webadmin'
VIEWER = 'viewer'       # may log in and read the queue, but not change it
PASSWORD = 'Cockpit-test-7'
RULES = '/etc/polkit-1/rules.d/50-postbus-cockpit.rules'
BASE = 'http://127.0.0.1:9090'
FRAME = 'cockpit1:localhost/postbus'
CHROMIUM = '/usr/bin/chromium'
CHROMEDRIVER = '/usr/bin/chromedriver'


def port_open(port):
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(('127.0.0.1', port)) == 0


def queue_of(qid):
    for m in pb.busctl_call('ListMessages', 's', '')[0]:
        if m[0] == qid:
            return m[1]
    return None


class CockpitPage(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        missing = [p for p in (CHROMIUM, CHROMEDRIVER, '/usr/lib/cockpit/cockpit-ws',
                               '/usr/share/cockpit/shell/manifest.json') if not os.path.exists(p)]
        if webdriver is None:
            missing.append('python3-selenium')
        if missing:
            raise unittest.SkipTest('not installed (tools/deps.sh): ' + ', '.join(missing))
        datadirs = ('/usr/local/share', '/usr/share')
        if not any(os.path.exists(f'{d}/cockpit/postbus/manifest.json') for d in datadirs):
            raise AssertionError('cockpit-postbus was not installed (meson -Dcockpit=true)')

        # cockpit-ws over plain HTTP on the container's loopback
        os.makedirs('/etc/cockpit', exist_ok=True)
        with open('/etc/cockpit/cockpit.conf', 'w') as f:
            f.write('[WebService]\nAllowUnencrypted = true\n')
        # a user with a password, not root, whom polkit lets manage the queue
        pb.add_user(USER)
        pb.run('groupadd', '-f', 'mailadm')
        pb.run('usermod', '-aG', 'mailadm', USER)
        pb.add_user(VIEWER)
        pb.run('chpasswd', input=f'{USER}:{PASSWORD}\n{VIEWER}:{PASSWORD}\n')
        os.makedirs(os.path.dirname(RULES), exist_ok=True)
        with open(RULES, 'w') as f:
            f.write('polkit.addRule(function(action, subject) {\n'
                    '    if (action.id == "org.postbus.queue.manage" && subject.isInGroup("mailadm"))\n'
                    '        return polkit.Result.YES;\n'
                    '});\n')
        pb.systemctl('try-restart', 'polkit.service', check=False)
        pb.systemctl('start', 'cockpit.socket')
        pb.wait_until(lambda: port_open(9090), what='cockpit.socket listening on 9090')

    def setUp(self):
        # a browser of its own for each test (and so a login of its own)
        self.profile = tempfile.mkdtemp(prefix='chromium-')
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
                    '--no-proxy-server', '--window-size=1400,1300', f'--user-data-dir={self.profile}'):
            options.add_argument(arg)
        self.driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
        self.driver.set_page_load_timeout(60)
        # a message that stays queued: its destination is paused
        pb.busctl_call('PauseDestination', 'ss', 'localhost', 'held back by the test')

    def tearDown(self):
        self.driver.quit()
        shutil.rmtree(self.profile, ignore_errors=True)
        pb.busctl_call('ResumeDestination', 's', 'localhost', check=False)

    # ---- helpers --------------------------------------------------------------------

    # The page redraws its lists when the queue's signals come: an element found may be replaced by
    # the time it is used, so these look it up again until they succeed.

    def find(self, css):
        found = self.driver.find_elements(By.CSS_SELECTOR, css)
        return found[0] if found else None

    def text(self, css):
        try:
            e = self.find(css)
            return e.text if e else None
        except StaleElementReferenceException:
            return None

    def attr(self, css, name):
        try:
            e = self.find(css)
            return e.get_attribute(name) if e else None
        except StaleElementReferenceException:
            return None

    def shown(self, css):
        try:
            e = self.find(css)
            return e is not None and e.is_displayed() and e.is_enabled()
        except StaleElementReferenceException:
            return False

    def click(self, css):
        def try_click():
            try:
                e = self.find(css)
                if e:
                    e.click()
                return e is not None
            except StaleElementReferenceException:
                return False
        pb.wait_until(try_click, interval=0.25, what=f'clicking {css}')

    def wait_css(self, css, what=None, timeout=60):
        return pb.wait_until(lambda: self.find(css), timeout=timeout, interval=0.25, what=what or css)

    def wait_contains(self, css, want, timeout=30):
        pb.wait_until(lambda: want in (self.text(css) or ''), timeout=timeout, interval=0.25,
                      what=f'{css} containing {want!r} (shows {self.text(css)!r})')

    def wait_text(self, css, want, timeout=30):
        pb.wait_until(lambda: self.text(css) == want, timeout=timeout, interval=0.25,
                      what=f'{css} showing {want!r} (shows {self.text(css)!r})')

    def login(self, user):
        try:
            self._login(user)
        except (AssertionError, WebDriverException):
            self.driver.switch_to.default_content()
            failed = os.path.join(os.environ.get('POSTBUS_ARTIFACTS', '/tmp'), 'cockpit-login-failed')
            self.driver.save_screenshot(failed + '.png')
            with open(failed + '.html', 'w') as f:
                f.write(self.driver.page_source)
            raise

    def _login(self, user):
        self.driver.get(BASE + '/')
        # login.js shows the form once it has asked cockpit-ws how to log in
        for css in ('#login-user-input', '#login-password-input', '#login-button'):
            pb.wait_until(lambda: self.shown(css), interval=0.25, what=f'{css} on the login page')
        self.find('#login-user-input').send_keys(user)
        self.find('#login-password-input').send_keys(PASSWORD)
        self.find('#login-button').click()
        # the shell, with the page in its menu; a new page load would end the session, so the menu's link
        self.wait_css('iframe', 'the shell after the login')
        self.wait_css('a[href="/postbus"]', 'the page in the shell\'s menu').click()
        frame = self.wait_css(f'iframe[name="{FRAME}"]', 'the page\'s frame in the shell')
        self.driver.switch_to.frame(frame)
        self.wait_css('.state.live', 'the page reading the queue')

    def screenshot(self):
        # run-test binds BUILDDIR/meson-logs/artifacts in for this
        path = os.path.join(os.environ.get('POSTBUS_ARTIFACTS', '/tmp'), 'cockpit-postbus.png')
        self.driver.switch_to.default_content()
        self.assertTrue(self.driver.save_screenshot(path), 'screenshot not saved')
        self.assertGreater(os.path.getsize(path), 10000)
        print(f'\nscreenshot: {path}', flush=True)
        self.driver.switch_to.frame(self.find(f'iframe[name="{FRAME}"]'))

    # ---- the test -----------------------------------------------------------------

    def test_hold_from_the_page(self):
        pb.busctl_call('PauseDestination', 'ss', 'paused.example', 'a pause the page ends')
        cursor = pb.journal_cursor()
        qid = pb.send('sender@example.org', [f'{USER}@localhost'], 'Subject: cockpit\n\nwaiting in the queue\n')
        pb.wait_until(lambda: queue_of(qid) == 'deferred', what=f'{qid} deferred')
        hold_before = pb.busctl_get('Hold')

        self.login(USER)
        row = f'tr[data-id="{qid}"]'
        self.wait_css(row, f'{qid} in the message list')
        self.assertEqual(self.attr(row, 'data-queue'), 'deferred')
        self.wait_contains(row, f'{USER}@localhost')
        self.wait_contains(row, 'sender@example.org')
        self.wait_text('#count-hold', str(hold_before))
        self.assertGreaterEqual(int(self.text('#count-deferred')), 1)
        # the paused destination, with a button to resume it
        self.wait_css('tr[data-destination="paused.example"][data-state="paused"]', 'paused.example listed')

        # the filters: a recipient that matches nothing, then one that does
        self.find('#filter-recipient').send_keys('nobody-here@localhost')
        self.find('#filter-apply').click()
        pb.wait_until(lambda: self.find(row) is None, interval=0.25, what='the filter hiding the message')
        self.assertTrue(self.find('#messages-empty').is_displayed())
        self.find('#filter-clear').click()
        self.find('#filter-destination').send_keys('LOCALHOST')
        self.find('#filter-apply').click()
        self.wait_css(row, 'the message back with a destination filter')

        # select it and press Hold: the page follows from the bus, without reloading
        self.click(row + ' input[type=checkbox]')
        self.wait_text('#selected-count', '1 selected')
        self.click('#action-hold')
        self.wait_text('#count-hold', str(hold_before + 1))
        pb.wait_until(lambda: self.attr(row, 'data-queue') == 'hold',
                      interval=0.25, what='the row showing the hold queue')
        self.assertEqual(queue_of(qid), 'hold')
        self.assertFalse(self.find('#error').is_displayed(), self.text('#error-text'))

        # the message's details
        self.click(row + ' a.qid')
        self.wait_text('#details-id', qid)
        self.wait_text('#details-queue', 'hold')
        self.wait_contains('#details-recipients', f'{USER}@localhost')
        self.wait_contains('#details-recipients', 'pending')

        # a message queued meanwhile appears by itself (MessageQueued)
        other = pb.send('sender@example.org', [f'{USER}@localhost'], 'Subject: cockpit 2\n\nsecond\n')
        self.wait_css(f'tr[data-id="{other}"]', 'a newly queued message appearing without a reload')

        self.screenshot()

        # resume a destination from the page
        self.click('tr[data-destination="paused.example"] button')
        pb.wait_until(lambda: 'paused.example' not in pb.busctl_get('PausedDestinations'),
                      what='paused.example resumed through the page')
        pb.wait_until(lambda: self.find('tr[data-destination="paused.example"]') is None, interval=0.25,
                      what='paused.example gone from the page')

        # release from the details pane: back to deferred (localhost is still paused)
        self.click('#details-actions button[data-action="release"]')
        self.wait_text('#details-queue', 'deferred')
        self.wait_text('#count-hold', str(hold_before))
        self.assertEqual(queue_of(qid), 'deferred')
        # requeue: resolved again and tried at once, and deferred again by the pause
        self.click('#details-actions button[data-action="requeue"]')
        self.wait_contains('#events', 'requeue: 1 of 1 acted on')

        # delete the other one from the list, through the page's dialog
        self.click(row + ' input[type=checkbox]')          # unchecked
        self.click(f'tr[data-id="{other}"] input[type=checkbox]')
        self.wait_text('#selected-count', '1 selected')
        self.click('#action-delete')
        self.wait_contains('#confirm-text', 'Delete')
        self.click('#confirm-yes')
        pb.wait_until(lambda: queue_of(other) is None, what=f'{other} deleted through the page')
        pb.wait_until(lambda: self.find(f'tr[data-id="{other}"]') is None, interval=0.25,
                      what='the deleted message gone from the page')

        # bounce the first from its details, with a reason
        self.click('#details-actions button[data-action="bounce"]')
        self.wait_contains('#confirm-text', 'Bounce')
        self.find('#confirm-reason').send_keys('returned from the web page')
        self.click('#confirm-yes')
        pb.wait_until(lambda: queue_of(qid) is None, what=f'{qid} bounced through the page')
        pb.wait_until(lambda: self.find(row) is None, interval=0.25, what='the bounced message gone from the page')
        self.wait_contains('#details-props', 'no longer queued')
        pb.wait_until(lambda: any('returned from the web page' in (m or '')
                                  for m in pb.journal_messages(QUEUE_ID=qid, since=cursor)),
                      what='the reason typed in the page in the bounce record')
        self.wait_contains('#events', f'bounced {qid}')
        # the bounce notice to sender@example.org is deferred (no DNS here): flushing activates it
        pb.wait_until(lambda: pb.busctl_get('Deferred') >= 1, what='the bounce notice deferred')
        self.click('#flush-queue')
        pb.wait_until(lambda: any(e.text.endswith('deferred activated') and not e.text.endswith(' 0 deferred activated')
                                  for e in self.driver.find_elements(By.CSS_SELECTOR, '#events li')),
                      interval=0.25, what='the flush activating deferred mail')
        self.assertFalse(self.find('#error').is_displayed(), self.text('#error-text'))

    def test_viewer_may_not_change(self):
        qid = pb.send('sender@example.org', [f'{USER}@localhost'], 'Subject: viewer\n\nlooked at only\n')
        pb.wait_until(lambda: queue_of(qid) == 'deferred', what=f'{qid} deferred')
        self.login(VIEWER)
        row = f'tr[data-id="{qid}"]'
        self.wait_css(row, f'{qid} in the viewer\'s list')
        self.click(row + ' input[type=checkbox]')
        self.click('#action-hold')
        pb.wait_until(lambda: self.find('#error').is_displayed(), interval=0.25, what='an error shown')
        self.wait_contains('#error-text', 'org.postbus.queue.manage')
        self.assertEqual(queue_of(qid), 'deferred')
        self.assertEqual(self.attr(row, 'data-queue'), 'deferred')
        self.assertEqual(pb.busctl_call('DeleteMessages', 'as', [qid])[0], 1)
        pb.wait_until(lambda: self.find(row) is None, interval=0.25,
                      what='the message deleted by root gone from the page')

    def test_skipped_server_listed(self):
        # mail routed to a closed port: the smtp client refuses the address for smtp_host_failure_cache_time,
        # tells qmgr in its answer, and the page lists it under the destinations (ListHostFailures)
        with open('/etc/postbus/transport-cockpit', 'w') as f:
            f.write('refused.example smtp:[127.0.0.1]:2599\n')
        pb.set_config(transport_maps='texthash:/etc/postbus/transport-cockpit')
        qid = pb.send('sender@example.org', ['bob@refused.example'], 'Subject: refused\n\nnot taken\n')
        server = '127.0.0.1[127.0.0.1]:2599'
        pb.wait_until(lambda: any(h[2] == server for h in pb.busctl_call('ListHostFailures')[0]),
                      what='the refused address in ListHostFailures')
        self.login(VIEWER)
        row = f'tr[data-server="{server}"]'
        self.wait_css(row, 'the refused address on the page')
        self.wait_contains(row, 'Connection refused')
        self.wait_contains(row, '[127.0.0.1]:2599')
        self.assertFalse(self.find('#host-failures-empty').is_displayed())
        self.assertEqual(pb.busctl_call('DeleteMessages', 'as', [qid])[0], 1)


if __name__ == '__main__':
    unittest.main()
