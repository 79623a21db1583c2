"""An MQTT 3.1.1 session through the device gateway, opened by hand (TLS with a chosen SNI,
then CONNECT), for the tests that must see exactly when the gateway admits, refuses or cuts off
a device."""

from __future__ import annotations

import socket
import ssl


def _recv_exact(s, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return buf


def open_session(port: int, ca_file, cert_file, key_file, server_name: str,
                 client_id: str = "device", timeout: float = 5):
    """TLS with SNI `server_name` to the gateway on 127.0.0.1:`port`, then an MQTT CONNECT.
    Returns the open TLS socket after a CONNACK accepting the session, or None when the device
    was refused (a failed handshake, an alert, or a close before any CONNACK)."""
    ctx = ssl.create_default_context(cafile=str(ca_file))
    ctx.load_cert_chain(str(cert_file), str(key_file))
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s = ctx.wrap_socket(raw, server_hostname=server_name)
        cid = client_id.encode()
        body = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(cid).to_bytes(2, "big") + cid
        s.sendall(bytes([0x10, len(body)]) + body)
        ack = _recv_exact(s, 4)
    except (ssl.SSLError, OSError):
        raw.close()
        return None
    if ack != b"\x20\x02\x00\x00":
        s.close()
        return None
    return s


def closed_within(s, seconds: float) -> bool:
    """Whether the gateway closes this live session within `seconds`."""
    s.settimeout(seconds)
    try:
        return s.recv(1) == b""
    except socket.timeout:
        return False
    except (ssl.SSLError, OSError):
        return True
