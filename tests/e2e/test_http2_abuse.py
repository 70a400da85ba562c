"""
End to end: HTTP/2 abuse against h2o 2.2.5, which predates the fixes for the
"rapid reset" attack (CVE-2023-44487) and PING/SETTINGS floods (CVE-2019-9512,
CVE-2019-9515). crmgate's frame guard counts those control frames per
connection and closes a connection that sends too many per second with
GOAWAY(ENHANCE_YOUR_CALM); ordinary clients, and other clients during an
attack, are not affected. Frames are written by hand (standard library only).
"""
import os
import socket
import struct
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import EXAMPLE, INTERACTIONS, JSON_CT, check, eq, post  # noqa: E402

suite = h.Suite("http2_abuse")
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
GOAWAY, ENHANCE_YOUR_CALM = 7, 0xB


def frame(ftype, flags, stream_id, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream_id) + payload


def hpack_literal(index, value):
    """A header field as 'literal without indexing, indexed name' (no dynamic table, no Huffman)."""
    value = value.encode()
    return bytes([index]) + bytes([len(value)]) + value  # index < 15 and len < 127 here


def get_headers(stream_id, authority):
    block = b"\x82\x86" + hpack_literal(4, INTERACTIONS) + hpack_literal(1, authority)  # GET, http, :path, :authority
    return frame(1, 0x4 | 0x1, stream_id, block)  # HEADERS, END_HEADERS | END_STREAM


class Conn:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=h.timeout(5))
        self.sock.sendall(PREFACE + frame(4, 0, 0))  # preface, empty SETTINGS
        self.authority = "127.0.0.1:%d" % port

    def send(self, data):
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def goaway_code(self, seconds=5):
        """Reads frames until GOAWAY or close; returns the GOAWAY error code (None if the connection just closed)."""
        buf = b""
        deadline = time.monotonic() + h.timeout(seconds)
        self.sock.settimeout(0.5)
        while time.monotonic() < deadline:
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return None
            if not chunk:
                return None
            buf += chunk
            while len(buf) >= 9:
                length = struct.unpack(">I", b"\0" + buf[:3])[0]
                if len(buf) < 9 + length:
                    break
                if buf[3] == GOAWAY:
                    return struct.unpack(">I", buf[9 + 4:9 + 8])[0]
                buf = buf[9 + length:]
        fail_msg = "no GOAWAY within %.1f s" % h.timeout(seconds)
        h.fail(fail_msg)

    def close(self):
        self.sock.close()


def wait_for_log(gw, text, seconds=5):
    deadline = time.monotonic() + h.timeout(seconds)
    while time.monotonic() < deadline:
        if text in gw.proc.stderr():
            return True
        time.sleep(0.02)
    return False


def rapid_reset(port, streams):
    c = Conn(port)
    sent = 0
    for i in range(streams):
        sid = 1 + 2 * i
        if not c.send(get_headers(sid, c.authority) + frame(3, 0, sid, struct.pack(">I", 8))):  # RST_STREAM(CANCEL)
            break
        sent += 1
    code = c.goaway_code()
    c.close()
    return sent, code


@suite.test
def rapid_reset_is_cut_off_and_other_clients_are_served():
    with suite.stack(args=["--audit", "off"]) as (sim, gw):
        mark = sim.mark()
        results = []
        normal = []

        def other_client():
            for _ in range(20):
                r = post(gw, EXAMPLE, http2=True)
                normal.append(r.status)

        t = threading.Thread(target=other_client)
        t.start()
        t0 = time.monotonic()
        sent, code = rapid_reset(gw.port, 2000)
        elapsed = time.monotonic() - t0
        t.join(h.timeout(30))
        # the GOAWAY may be lost to the reset the kernel sends when it closes a socket with unread data
        check(code in (ENHANCE_YOUR_CALM, None), "GOAWAY error code for 2,000 opened-and-reset streams: %r" % code)
        check(sent < 2000 or code == ENHANCE_YOUR_CALM, "the connection was not closed")
        reached = len(sim.since(mark)) - normal.count(201)
        h.note("rapid reset: %d streams sent before the close, %d reached the CRM, %.2f s" % (sent, reached, elapsed))
        check(reached <= 200, "at most ~100 reset streams per second may reach the CRM, got %d" % reached)
        eq(normal, [201] * 20, "a well-behaved client during the attack")
        check(wait_for_log(gw, "rapid reset attack"), "the close is logged")


@suite.test
def rapid_reset_from_the_h2_library_is_cut_off():
    """The same attack from a real HTTP/2 implementation (python3-h2), which checks every frame it gets back."""
    h2 = h.import_h2()
    if h2 is None:
        raise h.Skip("python3-h2 is not installed (deploy/install-deps.sh installs it)")
    with suite.stack(args=["--audit", "off"]) as (sim, gw):
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        conn.initiate_connection()
        sock = socket.create_connection(("127.0.0.1", gw.port), timeout=h.timeout(5))
        sock.sendall(conn.data_to_send())
        headers = [(":method", "GET"), (":scheme", "http"), (":authority", "127.0.0.1:%d" % gw.port),
                   (":path", INTERACTIONS)]
        terminated, sent = None, 0
        try:
            for i in range(1000):
                sid = conn.get_next_available_stream_id()
                conn.send_headers(sid, headers, end_stream=True)
                conn.reset_stream(sid)
                sock.sendall(conn.data_to_send())
                sent += 1
        except OSError:
            pass  # the gateway closed the connection while we were still resetting
        deadline = time.monotonic() + h.timeout(5)
        sock.settimeout(0.5)
        while terminated is None and time.monotonic() < deadline:
            try:
                data = sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            if not data:
                break
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ConnectionTerminated):
                    terminated = event.error_code
        sock.close()
        h.note("python3-h2: %d streams opened and reset before the close, GOAWAY code %r" % (sent, terminated))
        # the GOAWAY may be lost to the reset the kernel sends when it closes a socket with unread data
        check(terminated in (ENHANCE_YOUR_CALM, None), "GOAWAY error code: %r" % terminated)
        check(terminated == ENHANCE_YOUR_CALM or sent < 1000, "the connection was not closed")
        check(wait_for_log(gw, "rapid reset attack"), "the close is logged")
        eq(post(gw, EXAMPLE, http2=True).status, 201, "the gateway serves on")


@suite.test
def ping_and_settings_floods_are_cut_off():
    with suite.stack(args=["--audit", "off"]) as (sim, gw):
        c = Conn(gw.port)
        for i in range(1000):
            if not c.send(frame(6, 0, 0, struct.pack(">Q", i))):  # PING
                break
        check(c.goaway_code() in (ENHANCE_YOUR_CALM, None), "GOAWAY (or a reset) after a PING flood")
        c.close()
        check(wait_for_log(gw, "a ping flood"), "the PING flood close is logged")
        c = Conn(gw.port)
        for i in range(1000):
            if not c.send(frame(4, 0, 0, struct.pack(">HI", 3, 100))):  # SETTINGS_MAX_CONCURRENT_STREAMS=100
                break
        check(c.goaway_code() in (ENHANCE_YOUR_CALM, None), "GOAWAY (or a reset) after a SETTINGS flood")
        c.close()
        check(wait_for_log(gw, "a settings flood"), "the SETTINGS flood close is logged")
        eq(post(gw, EXAMPLE, http2=True).status, 201, "the gateway serves on")


@suite.test
def a_few_resets_and_pings_are_fine():
    with suite.stack(args=["--audit", "off"]) as (sim, gw):
        c = Conn(gw.port)
        for i in range(20):
            sid = 1 + 2 * i
            c.send(get_headers(sid, c.authority) + frame(3, 0, sid, struct.pack(">I", 8)) + frame(6, 0, 0, b"12345678"))
        c.sock.settimeout(1.0)
        closed = False
        try:
            data = b""
            end = time.monotonic() + 1.0
            while time.monotonic() < end:
                chunk = c.sock.recv(65536)
                if not chunk:
                    closed = True
                    break
                data += chunk
                if bytes([0, 0, 8, GOAWAY]) in data:
                    closed = True
                    break
        except socket.timeout:
            pass
        c.close()
        check(not closed, "a client with 20 resets and 20 pings in a second was disconnected")
        eq(post(gw, EXAMPLE, http2=True).status, 201, "normal requests")


def stays_open(c, seconds=1.0):
    """True when the gateway neither closes nor sends GOAWAY on c for `seconds`."""
    c.sock.settimeout(seconds)
    data = b""
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            chunk = c.sock.recv(65536)
            if not chunk:
                return False
            data += chunk
            if bytes([0, 0, 8, GOAWAY]) in data:
                return False
    except socket.timeout:
        pass
    except OSError:
        return False
    return True


@suite.test
def the_limits_are_configurable():
    config = "limits: {http2-pings-per-second: 5, http2-resets-per-second: 0}\n"
    with suite.stack(config=config, args=["--audit", "off"]) as (sim, gw):
        c = Conn(gw.port)
        for i in range(10):
            c.send(frame(6, 0, 0, struct.pack(">Q", i)))
        check(c.goaway_code() in (ENHANCE_YOUR_CALM, None), "10 PINGs against a limit of 5")
        c.close()
        check(wait_for_log(gw, "more than 5 PING frames"), "the close names the configured limit")
        c = Conn(gw.port)
        for i in range(300):  # three times the default limit, but 0 turns it off
            sid = 1 + 2 * i
            c.send(get_headers(sid, c.authority) + frame(3, 0, sid, struct.pack(">I", 8)))
        check(stays_open(c), "300 resets with http2-resets-per-second: 0 closed the connection")
        c.close()
        eq(post(gw, EXAMPLE, http2=True).status, 201, "the gateway serves on")


if __name__ == "__main__":
    suite.main()
