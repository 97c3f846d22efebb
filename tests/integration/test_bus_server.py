"""The roles' bus server (src/shared/bus-util.c) waits for room to write only while it holds output the
socket did not take. A caller that sends 12,000 calls and reads none of the replies for a while fills the
socket (8 MiB, as sd-bus asks for it); the replies that did not fit wait in the server. Once the caller reads, it gets every one of them,
without calling again: the server finds the waiting replies (a sweep, once a second while calls are in
flight) and sends them as the socket drains. The caller here speaks the D-Bus wire protocol itself, since a
D-Bus library would read the replies as they come."""
import os
import socket
import struct
import time
import unittest

import postbus as pb

CALLS = 12000           # replies of about 700 bytes each in the socket's accounting: more than its 8 MiB hold


class Writer:
    """D-Bus marshalling, little-endian, alignment counted from the start of what is written."""

    def __init__(self):
        self.b = bytearray()

    def align(self, n):
        self.b += b'\0' * (-len(self.b) % n)

    def byte(self, v):
        self.b.append(v)

    def u32(self, v):
        self.align(4)
        self.b += struct.pack('<I', v)

    def string(self, s):
        data = s.encode()
        self.u32(len(data))
        self.b += data + b'\0'

    def signature(self, s):
        self.byte(len(s))
        self.b += s.encode() + b'\0'

    def array(self, element_alignment, write_elements):
        self.u32(0)
        at = len(self.b)
        self.align(element_alignment)
        start = len(self.b)
        write_elements()
        struct.pack_into('<I', self.b, at - 4, len(self.b) - start)


def submit_inline(serial, content, sender, recipients, attributes):
    """A Cleanup1.SubmitInline method call, as bytes."""
    body = Writer()
    body.u32(len(content))
    body.b += content
    body.string(sender)

    def rcpts():
        for r in recipients:
            body.align(8)
            for field in (r, '', ''):
                body.string(field)

    def attrs():
        for k, v in attributes.items():
            body.align(8)
            body.string(k)
            body.string(v)
    body.array(8, rcpts)
    body.array(8, attrs)

    msg = Writer()
    msg.b += b'l' + bytes([1, 0, 1])
    msg.u32(len(body.b))
    msg.u32(serial)

    def fields():
        for code, sig, value in ((1, 'o', '/org/postbus/Cleanup1'), (2, 's', 'org.postbus.Cleanup1'),
                                 (3, 's', 'SubmitInline'), (8, 'g', 'aysa(sss)a{ss}')):
            msg.align(8)
            msg.byte(code)
            msg.signature(sig)
            if sig == 'g':
                msg.signature(value)
            else:
                msg.string(value)
    msg.array(8, fields)
    msg.align(8)
    return bytes(msg.b + body.b)


def read_messages(sock, n, timeout):
    """n whole messages off sock, each as (type, reply_serial or None, body); fails after timeout seconds."""
    buf = bytearray()
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n:
        while len(buf) >= 16:
            body_len, = struct.unpack_from('<I', buf, 4)
            fields_len, = struct.unpack_from('<I', buf, 12)
            header_len = 16 + fields_len + (-(16 + fields_len) % 8)
            if len(buf) < header_len + body_len:
                break
            reply_serial = None
            at = 16
            while at < 16 + fields_len:
                at += -at % 8
                code, sig_len = buf[at], buf[at + 1]
                sig = bytes(buf[at + 2:at + 2 + sig_len])
                at += 3 + sig_len
                if sig in (b's', b'o'):
                    at += -at % 4
                    length, = struct.unpack_from('<I', buf, at)
                    at += 4 + length + 1
                elif sig == b'g':
                    at += 1 + buf[at] + 1
                elif sig == b'u':
                    at += -at % 4
                    if code == 5:
                        reply_serial, = struct.unpack_from('<I', buf, at)
                    at += 4
                else:
                    raise AssertionError(f'unexpected header field type {sig!r}')
            out.append((buf[1], reply_serial, bytes(buf[header_len:header_len + body_len])))
            del buf[:header_len + body_len]
        if len(out) >= n:
            break
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f'{len(out)} of {n} replies came within {timeout} s')
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except socket.timeout:
            continue
        if not data:
            raise AssertionError(f'the connection closed after {len(out)} of {n} replies')
        buf += data
    return out


def hold_count():
    try:
        return len(os.listdir('/var/spool/postbus/hold'))
    except FileNotFoundError:
        return 0


class BusServer(unittest.TestCase):
    def test_replies_wait_for_a_caller_that_does_not_read(self):
        before = hold_count()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect('/run/postbus/cleanup')
        sock.sendall(b'\0AUTH EXTERNAL ' + str(os.getuid()).encode().hex().encode() + b'\r\n')
        reply = b''
        while not reply.endswith(b'\r\n'):
            reply += sock.recv(256)
        self.assertTrue(reply.startswith(b'OK '), reply)
        sock.sendall(b'BEGIN\r\n')

        # every message goes to hold (smtpd's access HOLD): nothing is delivered meanwhile
        calls = b''.join(submit_inline(serial, b'Subject: unread replies\n\nbody\n', 'caller@example.test',
                                       ['bob@localhost'], {'protocol': 'ESMTP', 'smtpd_hold': 'test'})
                         for serial in range(1, CALLS + 1))
        sock.sendall(calls)
        # all are queued, and answered as far as the socket takes the answers; then nothing is in flight
        pb.wait_until(lambda: hold_count() >= before + CALLS, timeout=120, what=f'{CALLS} messages in hold')
        time.sleep(2)

        replies = read_messages(sock, CALLS, timeout=30)
        sock.close()
        self.assertEqual(sorted(serial for _, serial, _ in replies), list(range(1, CALLS + 1)))
        errors = [body for kind, _, body in replies if kind != 2]
        self.assertEqual(errors, [], 'every call succeeded (a method return, not an error)')
        for _, _, body in replies:
            length, = struct.unpack_from('<I', body, 0)
            self.assertTrue(pb.queue_id_valid(body[4:4 + length].decode()))
        # cleanup is the same process, still serving
        self.assertEqual(pb.unit_property('postbus-cleanup.service', 'NRestarts'), '0')
        pb.run('postsuper', '-d', 'ALL', 'hold')


if __name__ == '__main__':
    unittest.main()
