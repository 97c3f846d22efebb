"""Helpers for postbus integration tests.

The tests run as root inside a throwaway systemd container (see run-test) in which
postbus has been installed and started, so these helpers act on the real system:
they add users, rewrite /etc/postbus/main.cf, restart units, speak SMTP over
loopback, read mailboxes, the journal (from a cursor) and the D-Bus API. Standard library only.
"""

import email
import email.message
import email.policy
import json
import os
import pwd
import re
import shutil
import smtplib
import socket
import subprocess
import tempfile
import time

MAIN_CF = '/etc/postbus/main.cf'
MAIL_SPOOL = '/var/mail'

QMGR_UNIT = 'postbus-qmgr.service'
# Socket-activated roles: stopping them is enough, their sockets start them again
# (with the new configuration) on the next connection.
SOCKET_ACTIVATED_UNITS = ('postbus-smtpd.service', 'postbus-cleanup.service', 'postbus-local.service',
                          'postbus-rewrite.service', 'postbus-virtual.service')

QUEUE_BUS_NAME = 'org.postbus.Queue1'
QUEUE_OBJECT = '/org/postbus/Queue1'
QUEUE_INTERFACE = 'org.postbus.Queue1'

_QUEUED_AS = re.compile(r'queued as ([0-9A-Za-z]+)')


# ---- processes and units --------------------------------------------------------

def run_process(*cmd, check=True, input=None, user=None):
    """Runs a command (no shell) and returns the CompletedProcess, with stdout and
    stderr as text. The command is given as arguments, run_process('ls', '-l'), or
    as one list, run_process(['ls', '-l']). With check, a non-zero exit status
    raises CommandError, which shows stderr. With user, it runs as that user."""
    if len(cmd) == 1 and isinstance(cmd[0], (list, tuple)):
        cmd = cmd[0]
    cmd = [str(c) for c in cmd]
    if user is not None:
        cmd = ['runuser', '-u', user, '--'] + cmd
    p = subprocess.run(cmd, input=input, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise CommandError(p)
    return p


def run(*cmd, check=True, input=None, user=None):
    """Like run_process, but returns the command's standard output."""
    return run_process(*cmd, check=check, input=input, user=user).stdout


class CommandError(subprocess.CalledProcessError):
    """A command failed; str() shows the command, its status and its stderr."""

    def __init__(self, p):
        super().__init__(p.returncode, p.args, p.stdout, p.stderr)

    def __str__(self):
        return f'{super().__str__()}\nstderr: {self.stderr.strip()}'


def systemctl(*args, check=True):
    """systemctl ARGS...; returns the CompletedProcess."""
    return run_process('systemctl', *args, check=check)


def unit_active(name):
    """True if the unit is active right now."""
    return systemctl('is-active', '--quiet', name, check=False).returncode == 0


def unit_property(name, prop):
    """The value of one property of a unit (systemctl show -P)."""
    return systemctl('show', '-P', prop, name).stdout.strip()


# ---- waiting ----------------------------------------------------------------------

def wait_until(predicate, timeout=30, interval=0.1, what='the condition'):
    """Calls predicate() until it returns something true, and returns that.

    Raises AssertionError naming `what` if that does not happen within timeout
    seconds. The predicate is always tried once more at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        last_try = time.monotonic() >= deadline
        value = predicate()
        if value:
            return value
        if last_try:
            raise AssertionError(f'timed out after {timeout} s waiting for {what}')
        time.sleep(interval)


# ---- users and configuration ------------------------------------------------------


# ---- a name server on loopback ------------------------------------------------------------------------------

DNS_ADDRESS = '127.0.0.53'


def write_resolv_conf(*servers, options='timeout:2 attempts:2'):
    """/etc/resolv.conf naming servers (default DNS_ADDRESS); smtpd reads it when it starts."""
    if os.path.islink('/etc/resolv.conf'):
        os.unlink('/etc/resolv.conf')
    with open('/etc/resolv.conf', 'w') as f:
        f.write(''.join(f'nameserver {a}\n' for a in servers or (DNS_ADDRESS,)) + f'options {options}\n')


def start_dnsmasq(records, probe, addresses=(DNS_ADDRESS,)):
    """dnsmasq on addresses (IPv4 or IPv6), port 53, answering from records alone (its options:
    --local=/zone/, --ptr-record=, --mx-host=, ...; neither /etc/hosts nor an upstream server), once it
    answers an A query for the name probe on each. The caller stops it (terminate(), wait())."""
    dnsmasq = shutil.which('dnsmasq') or '/usr/sbin/dnsmasq'
    proc = subprocess.Popen([
        dnsmasq, '--keep-in-foreground', '--conf-file=/dev/null', '--no-resolv', '--no-hosts',
        '--bind-interfaces', f'--listen-address={",".join(addresses)}', '--port=53', '--user=root', *records,
    ], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    query = (b'\x42\x42\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00'
             + b''.join(bytes([len(label)]) + label.encode() for label in probe.split('.'))
             + b'\x00\x00\x01\x00\x01')

    def answers(address):
        with socket.socket(socket.AF_INET6 if ':' in address else socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(1)
            try:
                s.sendto(query, (address, 53))
                return s.recv(512)[:2] == b'\x42\x42'
            except OSError:
                return False
    wait_until(lambda: all(answers(a) for a in addresses) or proc.poll() is not None, what='dnsmasq to answer')
    if proc.poll() is not None:
        raise AssertionError(f'dnsmasq exited: {proc.stderr.read()!r}')
    return proc

def add_user(name, maildir=False):
    """Creates a local user with a home directory, unless it exists; returns its
    pwd entry. With maildir, also creates ~/Maildir/{tmp,new,cur} owned by the
    user (which format postbus delivers in is up to main.cf, home_mailbox)."""
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        run('useradd', '--create-home', '--shell', '/bin/sh', name)
        pw = pwd.getpwnam(name)
    if not os.path.isdir(pw.pw_dir):
        os.makedirs(pw.pw_dir, mode=0o750)
        os.chown(pw.pw_dir, pw.pw_uid, pw.pw_gid)
    if maildir:
        for sub in ('', 'tmp', 'new', 'cur'):
            path = os.path.join(pw.pw_dir, 'Maildir', sub)
            os.makedirs(path, mode=0o700, exist_ok=True)
            os.chown(path, pw.pw_uid, pw.pw_gid)
    return pw


def uid(user):
    """The user ID of a user name."""
    return pwd.getpwnam(user).pw_uid


def _format_value(value):
    if isinstance(value, bool):
        return 'yes' if value else 'no'
    if isinstance(value, (list, tuple)):
        return ', '.join(str(v) for v in value)
    return str(value)


def write_config(params, path=MAIN_CF):
    """Sets parameters in a main.cf (Postfix syntax, `name = value`) without
    restarting anything. A parameter already defined is replaced where it stands,
    continuation lines included; new ones are appended. Values may be str, int,
    bool (yes/no) or a list (joined with ', '). The file is replaced atomically."""
    values = {name: _format_value(v) for name, v in params.items()}
    for name, value in values.items():
        if not re.fullmatch(r'[A-Za-z0-9_]+', name):
            raise ValueError(f'bad parameter name {name!r}')
        if '\n' in value:
            raise ValueError(f'parameter {name}: value contains a newline')
    try:
        with open(path, encoding='utf-8') as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        lines = []

    def definition(name):
        return f'{name} = {values[name]}' if values[name] else f'{name} ='

    out, done, skipping = [], set(), False
    for line in lines:
        if skipping and line[:1] in (' ', '\t') and line.strip():
            continue                       # continuation of a replaced definition
        skipping = False
        m = re.match(r'([A-Za-z0-9_]+)\s*=', line)
        if m and m.group(1) in values:
            name = m.group(1)
            if name not in done:
                out.append(definition(name))
                done.add(name)
            skipping = True                # drop its continuation lines
            continue
        out.append(line)
    out += [definition(n) for n in values if n not in done]

    directory = os.path.dirname(path) or '.'
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix='.main.cf.')
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as f:
            f.write('\n'.join(out) + '\n')
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def restart_services():
    """Makes the running postbus services pick up a changed configuration: restarts
    qmgr (which waits until it is ready again) and stops every other running
    postbus service, which its socket starts again on the next connection."""
    listed = systemctl('list-units', '--type=service', '--state=active,activating,reloading',
                       '--plain', '--no-legend', 'postbus-*.service').stdout
    running = {line.split()[0] for line in listed.splitlines() if line.strip()}
    # A role that is not installed (yet) has nothing to stop.
    installed = {u for u in SOCKET_ACTIVATED_UNITS if unit_property(u, 'LoadState') == 'loaded'}
    stop = sorted((running | installed) - {QMGR_UNIT})
    if stop:
        systemctl('stop', *stop)
    systemctl('restart', QMGR_UNIT)


def set_config(**params):
    """Sets main.cf parameters (see write_config) and restarts postbus to use them."""
    write_config(params)
    restart_services()


def make_tls_certificate(directory='/etc/postbus/tls', cn='mail.test'):
    """Makes a self-signed certificate and its key (openssl req -x509) in directory,
    readable by the user postbus-smtpd that smtpd runs as; returns (cert, key) paths."""
    os.makedirs(directory, mode=0o755, exist_ok=True)
    cert, key = os.path.join(directory, 'cert.pem'), os.path.join(directory, 'key.pem')
    run('openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert,
        '-days', '2', '-subj', f'/CN={cn}', '-addext', f'subjectAltName=DNS:{cn}')
    pw = pwd.getpwnam('postbus-smtpd')
    os.chown(key, 0, pw.pw_gid)
    os.chmod(key, 0o640)
    os.chmod(cert, 0o644)
    return cert, key


# ---- SMTP -------------------------------------------------------------------------

def _as_bytes(message):
    """A message as bytes with CRLF line ends, whatever form it was given in."""
    if isinstance(message, email.message.Message):
        return message.as_bytes(policy=email.policy.SMTP)
    if isinstance(message, str):
        message = message.encode('utf-8')
    return re.sub(rb'\r?\n', b'\r\n', bytes(message))


def make_message(sender, recipients, body, subject='test', headers=None):
    """A simple message (EmailMessage) with From, To, Subject and the given body."""
    if isinstance(recipients, str):
        recipients = [recipients]
    msg = email.message.EmailMessage()
    msg['From'] = sender
    msg['To'] = ', '.join(recipients)
    msg['Subject'] = subject
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    return msg


def _source(address):
    """A source address for a client socket: None, an IP address or (IP, port)."""
    return (address, 0) if isinstance(address, str) else address


def connect(host='127.0.0.1', port=25, source_address=None, timeout=30, helo='client.test'):
    """An smtplib.SMTP connected to postbus, greeting read, EHLO not yet sent.
    source_address is an IP address of this machine (such as '127.0.0.2') or an
    (address, port) pair."""
    # local_hostname given so that smtplib does not look our name up in DNS.
    return smtplib.SMTP(host, port, local_hostname=helo, timeout=timeout,
                        source_address=_source(source_address))


def send(sender, recipients, body_or_message, host='127.0.0.1', port=25,
         source_address=None, timeout=30, helo='client.test'):
    """Sends one message over SMTP and returns the queue ID from the final reply
    ("250 2.0.0 Ok: queued as <ID>").

    recipients is an address or a list of them. body_or_message is an
    email.message.Message, or str/bytes sent as they are (bare LF becomes CRLF;
    postbus adds the headers that are missing). Raises SMTPSenderRefused,
    SMTPRecipientsRefused (if any recipient is refused; its .recipients maps each
    to (code, text)) or SMTPDataError; AssertionError if the reply names no ID."""
    if isinstance(recipients, str):
        recipients = [recipients]
    data = _as_bytes(body_or_message)
    with connect(host, port, source_address, timeout, helo) as smtp:
        code, text = smtp.ehlo()
        if code != 250:
            raise smtplib.SMTPHeloError(code, text)
        code, text = smtp.mail(sender)
        if code != 250:
            raise smtplib.SMTPSenderRefused(code, text, sender)
        refused = {}
        for rcpt in recipients:
            code, text = smtp.rcpt(rcpt)
            if code not in (250, 251):
                refused[rcpt] = (code, text)
        if refused:
            raise smtplib.SMTPRecipientsRefused(refused)
        code, text = smtp.data(data)
        if code != 250:
            raise smtplib.SMTPDataError(code, text)
        reply = text.decode('utf-8', 'replace')
    return queue_id_from_text(reply)


def queue_id_from_text(text):
    """The queue ID in text holding a "queued as <ID>" reply (an SMTP reply, or
    the output of swaks). AssertionError if there is none."""
    if isinstance(text, bytes):
        text = text.decode('utf-8', 'replace')
    m = _QUEUED_AS.search(text)
    if not m:
        raise AssertionError(f'no "queued as <ID>" in: {text!r}')
    return m.group(1)


class SmtpRaw:
    """A raw SMTP client for protocol edge cases: sends exactly the bytes it is
    given and reads whole (multi-line) replies. Nothing is read or sent unasked,
    not even the greeting:

        with SmtpRaw(source='127.0.0.2') as s:
            code, text = s.reply()                     # the greeting
            code, text = s.cmd('EHLO client.example.org')
            s.send(b'MAIL FROM:<a@b>\\r\\nRCPT TO:<c@d>\\r\\n')   # pipelined
            s.reply(); s.reply()

    source is the local IP address to connect from (any of 127.0.0.0/8 works on
    the loopback interface)."""

    def __init__(self, host='127.0.0.1', port=25, source=None, timeout=10):
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=_source(source))
        self._buf = b''

    def send(self, data):
        """Sends bytes (or str, as UTF-8) as they are: no line end is added."""
        if isinstance(data, str):
            data = data.encode('utf-8')
        self.sock.sendall(data)

    def readline(self):
        """One line from the server, without its line end. EOFError if the
        server closed the connection first."""
        while True:
            i = self._buf.find(b'\n')
            if i >= 0:
                line, self._buf = self._buf[:i + 1], self._buf[i + 1:]
                return line.rstrip(b'\r\n').decode('utf-8', 'replace')
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError('the server closed the connection'
                               + (f' after {self._buf!r}' if self._buf else ''))
            self._buf += chunk

    def reply(self):
        """Reads one complete reply; returns (code, text) with the lines' texts
        joined by '\\n'. AssertionError if the reply is malformed."""
        code, texts = None, []
        while True:
            line = self.readline()
            m = re.fullmatch(r'([2-5][0-9][0-9])([ -])(.*)', line) or re.fullmatch(r'([2-5][0-9][0-9])()', line)
            if not m:
                raise AssertionError(f'malformed SMTP reply line: {line!r}')
            if code is not None and int(m.group(1)) != code:
                raise AssertionError(f'reply code changed within a reply: {line!r}')
            code = int(m.group(1))
            texts.append(m.group(3) if m.lastindex == 3 else '')
            if m.group(2) != '-':
                return code, '\n'.join(texts)

    def cmd(self, line):
        """Sends one command line (CRLF added) and returns its reply."""
        if isinstance(line, str):
            line = line.encode('utf-8')
        self.send(line + b'\r\n')
        return self.reply()

    def starttls(self, context=None):
        """Turns the connection into TLS (after a 220 to STARTTLS, or at once for
        port 465), verifying nothing unless a context says so. Input read but not
        consumed before is dropped, as a client must (RFC 3207)."""
        import ssl
        if context is None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        self._buf = b''
        self.sock = context.wrap_socket(self.sock)
        return self.sock

    def closed(self, timeout=5):
        """True if the server closes the connection within timeout seconds
        (anything it sends first is discarded)."""
        self.sock.settimeout(timeout)
        try:
            while self.sock.recv(65536):
                pass
            return True
        except (socket.timeout, TimeoutError):
            return False
        except ConnectionResetError:
            return True

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---- mailboxes --------------------------------------------------------------------

def _parse(raw):
    return email.message_from_bytes(raw, policy=email.policy.default)


def mbox_split(data):
    """Splits the bytes of an mbox file into its messages (bytes, each starting
    with its 'From ' line). Lines of a body that begin with 'From ' are quoted in
    an mbox ('>From '), so every line that begins so starts a message."""
    if not data:
        return []
    parts = re.split(rb'\n(?=From )', data)
    if not parts[0].startswith(b'From '):
        raise AssertionError(f'mbox does not start with a From line: {parts[0][:80]!r}')
    return [p if p.endswith(b'\n') else p + b'\n' for p in parts]


def _text(raw):
    return raw.decode('utf-8', 'replace')


def mbox_messages(user, parsed=False):
    """The messages in /var/mail/<user>, oldest first, each as text from its
    'From ' line on ([] if there is no mailbox). With parsed, as EmailMessage
    objects instead (the 'From ' line is then in get_unixfrom())."""
    try:
        with open(os.path.join(MAIL_SPOOL, user), 'rb') as f:
            data = f.read()
    except FileNotFoundError:
        return []
    return [_parse(p) if parsed else _text(p) for p in mbox_split(data)]


def maildir_messages(user, parsed=False):
    """The messages in ~user/Maildir/new and cur, oldest first (by mtime, then
    name), as text; with parsed, as EmailMessage objects."""
    home = pwd.getpwnam(user).pw_dir
    paths = []
    for sub in ('new', 'cur'):
        d = os.path.join(home, 'Maildir', sub)
        try:
            paths += [os.path.join(d, n) for n in os.listdir(d) if not n.startswith('.')]
        except FileNotFoundError:
            pass
    paths.sort(key=lambda p: (os.stat(p).st_mtime_ns, os.path.basename(p)))
    out = []
    for p in paths:
        with open(p, 'rb') as f:
            raw = f.read()
        out.append(_parse(raw) if parsed else _text(raw))
    return out


# ---- journal ----------------------------------------------------------------------
#
# A test reads only the records logged after the step it checks: it takes a cursor
# first, then reads from it, so that a record left by an earlier step or test cannot
# satisfy its check:
#
#     cursor = pb.journal_cursor()
#     qid = pb.send(...)
#     pb.wait_until(lambda: pb.journal(QUEUE_ID=qid, since=cursor), what='...')
#
# journal() and the others below have no way to read the whole journal.

def journal_sync():
    """Makes journald store everything sent to it so far."""
    run('journalctl', '--sync', check=False)


def journal_cursor():
    """A cursor at the newest record of the journal, once journald has stored all
    that was sent to it before the call: records logged after it (the step a test
    checks) come after the cursor, all earlier ones at or before it."""
    journal_sync()
    out = run('journalctl', '-b', '-q', '-n', '0', '--show-cursor', '--no-pager')
    m = re.search(r'^-- cursor: (\S+)$', out, re.M)
    if not m:
        raise AssertionError(f'journalctl printed no cursor: {out!r}')
    return m.group(1)


def _cursor_key(cursor):
    """What names a record in a cursor: the ID of its sequence and its number there."""
    parts = dict(p.split('=', 1) for p in cursor.split(';') if '=' in p)
    return parts.get('s'), parts.get('i')


def _journal_args(matches, fields, cursor):
    if not isinstance(cursor, str) or not cursor:
        raise TypeError('since must be a cursor from journal_cursor()')
    return (['-b', '--no-pager', f'--cursor={cursor}'] + [str(m) for m in matches]
            + [f'{k}={v}' for k, v in fields.items()])


def journal(*matches, since, sync=True, **fields):
    """Journal records logged after the cursor since (from journal_cursor()) that
    match all FIELD=value given (as keywords, e.g. journal(QUEUE_ID='4F2A9C1B3D',
    since=cursor), or as strings such as '_SYSTEMD_UNIT=postbus-qmgr.service' or
    '+' for OR), as a list of dicts, oldest first. With sync, journald first stores
    everything sent to it so far, so a record logged before the call is not missed."""
    if sync:
        journal_sync()
    # Not --after-cursor: with matches, the journalctl of Debian 12 (systemd 252) skips
    # two records from the cursor's, which drops the first match when the cursor's own
    # record does not match. --cursor starts at the cursor's record, which has to go.
    out = run('journalctl', '-o', 'json', *_journal_args(matches, fields, since))
    at_cursor = _cursor_key(since)
    records = (json.loads(line) for line in out.splitlines() if line.strip())
    return [r for r in records if _cursor_key(r.get('__CURSOR', '')) != at_cursor]


def journal_messages(*matches, since, **fields):
    """The MESSAGE fields of journal(...)."""
    return [r.get('MESSAGE') for r in journal(*matches, since=since, **fields)]


def journal_explained(*matches, since, **fields):
    """journalctl -x of the records journal(...) returns: their text with the
    explanations from the message catalog ('' if there are none)."""
    records = journal(*matches, since=since, **fields)
    if not records:
        return ''
    return run('journalctl', '-x', *_journal_args(matches, fields, records[0]['__CURSOR']))


# ---- D-Bus ------------------------------------------------------------------------

def _busctl_args(args):
    out = []
    for a in args:
        if isinstance(a, bool):
            out.append('true' if a else 'false')
        elif isinstance(a, (list, tuple)):           # a simple array: count, items
            out += [str(len(a))] + [str(x) for x in a]
        else:
            out.append(str(a))
    return out


def busctl_get(prop, user=None):
    """The value of a property of org.postbus.Queue1, parsed from busctl's JSON."""
    out = run('busctl', '--system', '--json=short', 'get-property',
              QUEUE_BUS_NAME, QUEUE_OBJECT, QUEUE_INTERFACE, prop, user=user)
    return json.loads(out)['data']


def busctl_call(method, signature='', *args, user=None, check=True):
    """Calls a method of org.postbus.Queue1 and returns the reply's 'data' (a list
    of the out arguments; None if the reply has none). List arguments are passed
    as a count followed by the items. With check=False, returns the
    CompletedProcess instead, for tests that expect an error."""
    cmd = ['busctl', '--system', '--json=short', 'call',
           QUEUE_BUS_NAME, QUEUE_OBJECT, QUEUE_INTERFACE, method]
    if signature:
        cmd += [signature] + _busctl_args(args)
    p = run_process(*cmd, user=user, check=check)
    if not check:
        return p
    return json.loads(p.stdout)['data'] if p.stdout.strip() else None


def queue_id_valid(qid):
    """True if qid looks like a queue ID (letters and digits only)."""
    return bool(re.fullmatch(r'[0-9A-Za-z]+', qid or ''))


def have(program):
    """True if program is on PATH (for tests that skip without it)."""
    return shutil.which(program) is not None


# ---- queue files ------------------------------------------------------------------

SPOOL = '/var/spool/postbus'
QUEUES = ('incoming', 'active', 'deferred', 'hold', 'corrupt')


def _queue_file_read(qid):
    for q in QUEUES:
        try:
            with open(os.path.join(SPOOL, q, qid), 'rb') as f:
                return f.read()
        except FileNotFoundError:
            continue
    return None


def queue_file_records(qid, timeout=30):
    """The records of a message's queue file, in whichever queue holds it, as a list
    of (type, bytes) pairs, type one letter ('P', 'T', 'A', 'S', 'R', 'O', 'D', 'M',
    'C', 'E'). Waits for the file to exist; AssertionError if it is malformed (a
    record is one type byte, a 4-byte big-endian length, then the data)."""
    data = wait_until(lambda: _queue_file_read(qid), timeout=timeout, what=f'queue file {qid}')
    records, off = [], 0
    while off < len(data):
        if len(data) - off < 5:
            raise AssertionError(f'{qid}: truncated record header at {off}')
        n = int.from_bytes(data[off + 1:off + 5], 'big')
        if len(data) - off - 5 < n:
            raise AssertionError(f'{qid}: truncated record at {off}')
        records.append((chr(data[off]), data[off + 5:off + 5 + n]))
        off += 5 + n
    if not records or records[-1][0] != 'E':
        raise AssertionError(f'{qid}: no end marker')
    return records


def queue_file_content(qid):
    """The message content stored in a queue file (bytes, LF line ends)."""
    return b''.join(d for t, d in queue_file_records(qid) if t == 'C')


class LocalHeld:
    """Stops and masks the local role while the block runs, so that mail for local
    users stays in the queue (deferred) where its queue file can be read; unmasks
    and starts local's socket again afterwards."""

    def __enter__(self):
        systemctl('stop', 'postbus-local.socket', 'postbus-local.service')
        systemctl('mask', '--runtime', 'postbus-local.socket', 'postbus-local.service')
        return self

    def __exit__(self, *exc):
        systemctl('unmask', '--runtime', 'postbus-local.socket', 'postbus-local.service')
        systemctl('start', 'postbus-local.socket')


def p2p_connect(address):
    """A peer-to-peer D-Bus connection (python3-dbus, libdbus) to a role's socket such as
    'unix:path=/run/postbus/rewrite', ready for calls: the first call, a Ping, must be answered at once
    (the roles process a call that arrives with the end of the handshake without waiting for more)."""
    import dbus
    conn = dbus.connection.Connection(address)
    conn.call_blocking(None, '/', 'org.freedesktop.DBus.Peer', 'Ping', '', (), timeout=10)
    return conn

