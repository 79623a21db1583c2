"""Slow, stalled and too many clients on the API listener: request heads have a time limit (also
the idle keep-alive limit), bodies have one (408 in the dialect's format), and connections over
`--max-connections` are refused politely (503, Retry-After) while the others keep being served."""

from __future__ import annotations

import socket
import time

import pytest

from certplane_server import CertplaneServer, http_request


@pytest.fixture(scope="module")
def server(binary, tmp_path_factory):
    srv = CertplaneServer(binary, tmp_path_factory.mktemp("connections") / "data", dev=True,
                          extra_args=["--header-read-timeout", "5", "--request-body-timeout", "2",
                                      "--max-connections", "40"]).start()
    yield srv
    srv.stop()


def addr(srv):
    host, port = srv.url.rsplit("//", 1)[1].split(":")
    return host, int(port)


def half_head(srv) -> socket.socket:
    s = socket.create_connection(addr(srv), timeout=10)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finished
    return s


def closed_by_server(s: socket.socket, within: float) -> bool:
    s.settimeout(within)
    try:
        while True:
            data = s.recv(4096)
            if not data:
                return True
    except socket.timeout:
        return False
    except OSError:
        return True


def wait_until_served(srv, deadline_s: float = 10) -> None:
    deadline = time.time() + deadline_s
    while True:
        try:
            if http_request(srv.url, "GET", "/healthz", timeout=2)[0] == 200:
                return
        except OSError:
            pass
        assert time.time() < deadline, "the server never served again"
        time.sleep(0.1)


def test_a_stalled_request_head_is_cut_off(server):
    s = half_head(server)
    t0 = time.time()
    assert closed_by_server(s, 15), "a half-sent request head held its connection"
    assert 4.0 < time.time() - t0 < 14
    s.close()


def test_an_idle_kept_alive_connection_is_closed(server):
    s = socket.create_connection(addr(server), timeout=10)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    first = s.recv(4096)
    assert first.startswith(b"HTTP/1.1 200")
    assert closed_by_server(s, 15), "an idle kept-alive connection stayed open"
    s.close()


def test_a_slow_body_is_answered_408_in_the_dialect_format(server):
    s = socket.create_connection(addr(server), timeout=10)
    s.sendall(b"POST /things/slow HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: 100\r\n\r\n{\"a\":")
    s.settimeout(10)
    got = b""
    while b"\r\n\r\n" not in got:
        chunk = s.recv(4096)
        if not chunk:
            break
        got += chunk
    s.close()
    head = got.split(b"\r\n\r\n", 1)[0].decode().lower()
    assert head.startswith("http/1.1 408"), got[:300]
    assert "x-amzn-errortype: requesttimeoutexception" in head, head


def test_over_the_cap_is_refused_politely_and_service_recovers(server):
    wait_until_served(server)
    # The probe's own connection may still hold its slot for a moment after the client closed
    # it (the server notices the close asynchronously): let it go before filling the cap.
    time.sleep(1.0)
    held = [half_head(server) for _ in range(40)]
    try:
        time.sleep(0.3)
        # One more: a 503 with Retry-After, not a hang or a reset. If a slot was still freed
        # late (a loaded machine), the first extra connection is served instead and the cap
        # shows on the next one, so try twice (each is read for under the 5 s head timeout).
        for _attempt in range(2):
            extra = socket.create_connection(addr(server), timeout=5)
            held.append(extra)  # kept open: closing a served one would free its slot again
            extra.settimeout(2)
            try:
                answer = extra.recv(4096)
            except socket.timeout:
                answer = b""
            if answer:
                break
        assert answer.startswith(b"HTTP/1.1 503"), answer[:200]
        assert b"retry-after: 1" in answer.lower()
        # The stalled heads time out on their own: service comes back without our help.
        wait_until_served(server, deadline_s=10)
    finally:
        for s in held:
            s.close()


@pytest.mark.slow
def test_ten_thousand_stalled_clients_do_not_stop_service(binary, tmp_path):
    """10,000 half-sent heads against the default cap: every healthy request meanwhile is
    served, and the stalled connections are all closed by the head timeout."""
    import resource
    import select

    import sdk_engine
    if sdk_engine.ENGINE != "sqlite":
        pytest.skip("the listener does not depend on the engine: this runs in the SQLite pass")

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 12000)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    count = min(10000, want - 500)
    srv = CertplaneServer(binary, tmp_path / "data", dev=True,
                          extra_args=["--header-read-timeout", "3"]).start()
    stalled = []
    try:
        for _ in range(count):
            stalled.append(half_head(srv))
        for _ in range(20):
            status, _, _ = http_request(srv.url, "GET", "/healthz", timeout=5)
            assert status == 200
        # Every stalled connection must reach EOF (readable with no data) on its own.
        poller = select.poll()
        by_fd = {s.fileno(): s for s in stalled}
        for fd in by_fd:
            poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        deadline = time.time() + 20
        while by_fd and time.time() < deadline:
            for fd, _ in poller.poll(500):
                s = by_fd.get(fd)
                if s is None:
                    continue
                try:
                    data = s.recv(4096)
                except OSError:
                    data = b""
                if not data:
                    poller.unregister(fd)
                    del by_fd[fd]
        assert not by_fd, f"{len(by_fd)} of {count} stalled connections outlived the head timeout"
        assert count >= 9500, f"only {count} clients fit under this machine's descriptor limit"
    finally:
        for s in stalled:
            s.close()
        srv.stop()


def test_clients_that_hang_up_mid_request_leave_nothing_half_done(server):
    """A hundred clients send a create (signed or not: --dev) and hang up before the answer, or
    in the middle of the body. The server keeps serving, and whatever it made is whole."""
    import boto3
    from botocore.config import Config

    server.reset()
    body = b"{\"setAsActive\": true}"
    for i in range(100):
        s = socket.create_connection(addr(server), timeout=5)
        head = (b"POST /keys-and-certificate?setAsActive=true HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\n"
                b"Authorization: AWS4-HMAC-SHA256 Credential=111111111111/20260101/us-east-1/"
                b"iot/aws4_request, SignedHeaders=host, Signature=00\r\n"
                b"X-Amz-Date: 20260101T000000Z\r\nContent-Length: %d\r\n\r\n" % len(body))
        s.sendall(head + (body if i % 2 == 0 else body[:5]))
        s.close()
    wait_until_served(server)
    iot = boto3.client("iot", endpoint_url=server.url, region_name="us-east-1",
                       aws_access_key_id="111111111111", aws_secret_access_key="x",
                       config=Config(retries={"max_attempts": 1}))
    time.sleep(0.5)
    certs = iot.list_certificates(pageSize=250)["certificates"]
    assert len(certs) <= 50  # only the whole bodies could make one
    print(f"{len(certs)} of 50 cut-off creates landed")
    for c in certs:
        d = iot.describe_certificate(certificateId=c["certificateId"])["certificateDescription"]
        assert d["status"] == "ACTIVE" and d["certificatePem"].startswith("-----BEGIN CERTIFICATE")
    assert iot.create_keys_and_certificate(setAsActive=True)["certificateId"]
