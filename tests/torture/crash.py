"""Crash cycles: clients create, inactivate, activate, transfer, accept, reject and cancel
certificates through the AWS IoT dialect (boto3), inactivate and activate ApsaraMQ device
certificates through the OnsMqtt dialect (its official SDK), place, describe and cancel
Alibaba CAS orders against a quota package (the official CAS SDK; the nodes run with
`--validation always-valid`, so orders issue without proofs), and initiate, accept, decline,
cancel and read Azure billing transfers (azure-mgmt-billing, with OAuth client tokens from
certplane's own token endpoint; the recipient accepts with products of its pool, whose billing
the nodes then move to the initiator's scope), while a certplane node is killed with SIGKILL at
random moments. After each restart a checker reads everything back through the APIs (the
products' billing through `certplane admin billing products`, which no SDK operation serves):

* lost: an acknowledged write that is not there (a certificate, an order, a transfer, or its
  acknowledged state);
* wrong: a certificate, order or transfer in a state no call could have left it in (e.g. a
  transfer both accepted and cancelled, or declined with products, or a call that failed on a
  non-crash error), more unacknowledged orders than creates were cut off, a package whose used
  count is not the number of orders holding a unit (a unit lost or spent twice across the
  kill), a transfer the initiator and the recipient see differently, or a product not billed
  where its transfers put it (the scope of the last accepted transfer once it has Completed);
* unknown: calls cut off by the kill, whose outcome may be either the old or the new state.

    [CERTPLANE_SDK_ENGINE=postgres] python tests/torture/crash.py --cycles 20 [--clients 8]

On PostgreSQL two nodes share the database and one of them (chosen at random) is killed each
cycle. Prints cycles, operations acknowledged, unknown, lost and wrong (must be 0; order creates
and cancels and transfer initiates, accepts, declines and cancels are among them), the orders
figures (created, cancelled, cut off) and the transfers figures (initiated, accepted, declined,
cancelled, cut off); exits 1 if anything was lost or wrong. `tests/sdk/test_crash_cycles.py`
runs a short version in CI.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "sdk"))
sys.path.insert(0, str(HERE.parent / "sdk" / "mqtt"))
sys.path.insert(0, str(HERE.parent / "sdk" / "aliyun"))
sys.path.insert(0, str(HERE.parent / "sdk" / "azure"))

import boto3  # noqa: E402
import botocore.exceptions  # noqa: E402
from botocore.config import Config  # noqa: E402

import aliyun_harness as cas  # noqa: E402
import azure_harness as az  # noqa: E402
import certplane_server  # noqa: E402
import onsmqtt_harness as mq  # noqa: E402
from alibabacloud_tea_openapi import models as openapi_models  # noqa: E402
from azure.core.credentials import AccessToken  # noqa: E402
from azure.core.exceptions import AzureError, HttpResponseError  # noqa: E402
from azure.core.pipeline.policies import SansIOHTTPPolicy  # noqa: E402
from azure.mgmt.billing import BillingManagementClient  # noqa: E402
from azure.mgmt.billing.models import (  # noqa: E402
    AcceptTransferRequest, InitiateTransferRequest, PartnerInitiateTransferRequest, ProductDetails,
)
from cas_x509 import make_csr, new_key  # noqa: E402
import sdk_engine  # noqa: E402

A, B = "111111111111", "222222222222"
REGION = "us-east-1"
# Errors that mean "no answer": the outcome of the call is unknown.
CUT_OFF = (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectionClosedError,
           botocore.exceptions.ReadTimeoutError, botocore.exceptions.ConnectTimeoutError)


@dataclass
class Cert:
    id: str
    state: tuple  # (owner, status) last acknowledged
    maybe: tuple | None = None  # the state a cut-off call may have left


@dataclass
class Tally:
    acknowledged: int = 0
    unknown: int = 0
    lost: int = 0
    wrong: int = 0
    unknown_creates: int = 0
    # CAS orders: acknowledged creates and cancels, calls cut off, and creates among them (the
    # orders they may have left are accepted up to that many by orders_check).
    orders_created: int = 0
    orders_cancelled: int = 0
    orders_unknown: int = 0
    orders_unknown_creates: int = 0
    # Azure billing transfers: acknowledged initiates, accepts, declines and cancels, calls cut
    # off, and accepted transfers seen Completed (by the worker or the checker).
    transfers_initiated: int = 0
    transfers_accepted: int = 0
    transfers_declined: int = 0
    transfers_cancelled: int = 0
    transfers_unknown: int = 0
    transfers_landed: int = 0  # cut-off transfer calls whose change the read-back shows
    transfers_completed: int = 0
    problems: list = field(default_factory=list)

    def bad(self, kind: str, what: str) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        if len(self.problems) < 20:
            self.problems.append(f"{kind}: {what}")


class Nodes:
    """One node on SQLite; two nodes on one PostgreSQL database."""

    def __init__(self, binary: Path, root: Path, count: int):
        self.servers = []
        first = root / "node0"
        for i in range(count):
            srv = _Node(binary, root / f"node{i}", dev=True)
            srv.shares_with = first
            self.servers.append(srv.start())

    def urls(self) -> list[str]:
        return [s.url for s in self.servers]

    def stop(self) -> None:
        for s in self.servers:
            s.stop()


class _Node(certplane_server.CertplaneServer):
    shares_with = None

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        # Orders issue at once, without DNS or HTTP proofs: the orders worker then sees the
        # whole lifecycle (pending, issued, revoked) within a cycle.
        self.extra_args = [*self.extra_args, "--validation", "always-valid"]

    def env(self) -> dict:
        return sdk_engine.server_env(self.shares_with or self.data_dir)


def client(url: str, account: str):
    return boto3.client("iot", endpoint_url=url, region_name=REGION, aws_access_key_id=account,
                        aws_secret_access_key="crash-test",
                        config=Config(retries={"max_attempts": 1}, connect_timeout=2,
                                      read_timeout=10))


def step(c: Cert, clients: dict, rng: random.Random):
    """One call on `c` chosen from what its acknowledged state allows. Returns the state the call
    leads to and a function making the call."""
    owner, status = c.state
    own = clients[owner]
    if status == "ACTIVE":
        return (owner, "INACTIVE"), lambda: own.update_certificate(
            certificateId=c.id, newStatus="INACTIVE")
    if status == "INACTIVE":
        if owner == A and rng.random() < 0.5:
            return (A, "PENDING_TRANSFER"), lambda: own.transfer_certificate(
                certificateId=c.id, targetAwsAccount=B)
        return (owner, "ACTIVE"), lambda: own.update_certificate(
            certificateId=c.id, newStatus="ACTIVE")
    assert status == "PENDING_TRANSFER"
    r = rng.random()
    if r < 0.4:
        return (B, "ACTIVE"), lambda: clients[B].accept_certificate_transfer(
            certificateId=c.id, setAsActive=True)
    if r < 0.7:
        return (A, "INACTIVE"), lambda: clients[B].reject_certificate_transfer(certificateId=c.id)
    return (A, "INACTIVE"), lambda: own.cancel_certificate_transfer(certificateId=c.id)


def worker(url: str, certs: list, tally: Tally, stop: threading.Event, seed: int,
           lock: threading.Lock) -> None:
    rng = random.Random(seed)
    clients = {A: client(url, A), B: client(url, B)}
    while not stop.is_set():
        if not certs or rng.random() < 0.15:
            try:
                resp = clients[A].create_keys_and_certificate(setAsActive=True)
            except CUT_OFF:
                with lock:
                    tally.unknown += 1
                    tally.unknown_creates += 1
                return
            except botocore.exceptions.ClientError as e:
                if _unavailable(e):
                    with lock:
                        tally.unknown += 1
                        tally.unknown_creates += 1
                    return
                with lock:
                    tally.bad("wrong", f"create failed: {e}")
                continue
            certs.append(Cert(resp["certificateId"], (A, "ACTIVE")))
            with lock:
                tally.acknowledged += 1
            continue
        c = rng.choice(certs)
        to, call = step(c, clients, rng)
        try:
            call()
        except CUT_OFF:
            c.maybe = to
            with lock:
                tally.unknown += 1
            return
        except botocore.exceptions.ClientError as e:
            if _unavailable(e):
                c.maybe = to
                with lock:
                    tally.unknown += 1
                return
            with lock:
                tally.bad("wrong", f"{c.id[:12]} {c.state} -> {to}: {e}")
            continue
        c.state = to
        with lock:
            tally.acknowledged += 1


def _unavailable(e: botocore.exceptions.ClientError) -> bool:
    return e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) >= 500


MQTT_INSTANCE = "post-cn-crashcycles"


def mqtt_setup(node, workdir: Path, count: int = 16):
    """An MQTT instance, a registered CA and `count` active device certificates of it."""
    node.admin("mqtt-instance", "create", "--account", mq.ACCOUNT_A, "--instance-id",
               MQTT_INSTANCE, "--json")
    ca = mq.register_ca(mq.mqtt_client(node.url), instance=MQTT_INSTANCE)
    devices = []
    for i in range(count):
        cert, _ = mq.make_cert(ca, f"crash-device-{i}")
        path = workdir / f"device-{i}.pem"
        path.write_text(mq.pem_of(cert))
        node.admin("mqtt-instance", "register-device", "--instance-id", MQTT_INSTANCE,
                   "--cert", str(path), "--json")
        devices.append(Cert(mq.sn_of(cert), ("mqtt", "1")))
    return ca.extra["sn"], devices


def mqtt_worker(url: str, ca_sn: str, devices: list, tally: Tally, stop: threading.Event,
                seed: int, lock: threading.Lock) -> None:
    rng = random.Random(seed)
    api = mq.mqtt_client(url)
    while not stop.is_set():
        d = rng.choice(devices)
        to = ("mqtt", "0" if d.state[1] == "1" else "1")
        kw = dict(mqtt_instance_id=MQTT_INSTANCE, ca_sn=ca_sn, device_sn=d.id)
        try:
            if to[1] == "0":
                api.inactivate_device_certificate(mq.M.InactivateDeviceCertificateRequest(**kw))
            else:
                api.active_device_certificate(mq.M.ActiveDeviceCertificateRequest(**kw))
        except Exception as e:  # noqa: BLE001 (the SDK wraps connection errors in its own types)
            status = getattr(e, "status_code", None)
            if isinstance(status, int) and status < 500:
                with lock:
                    tally.bad("wrong", f"device {d.id[:12]} {d.state} -> {to}: {e}")
                continue
            d.maybe = to
            with lock:
                tally.unknown += 1
            return
        d.state = to
        with lock:
            tally.acknowledged += 1


def reconcile(tally: Tally, rec: Cert, got, allowed: set, what: str) -> None:
    """One record read back after the restart: lost if it is gone or not in a state its
    acknowledged calls left, wrong if a cut-off call could not have left it so; otherwise what
    was read is its acknowledged state from now on."""
    if got is None:
        tally.bad("lost", f"{what} (acknowledged {rec.state}) is gone")
    elif got not in allowed:
        tally.bad("lost" if rec.maybe is None else "wrong",
                  f"{what} is {got}, allowed {sorted(allowed)}")
    else:
        rec.state = got
    rec.maybe = None


def mqtt_check(url: str, ca_sn: str, devices: list, tally: Tally) -> None:
    api = mq.mqtt_client(url)
    for d in devices:
        allowed = {d.state} | ({d.maybe} if d.maybe else set())
        try:
            got = ("mqtt", mq.get_device(api, ca_sn, d.id, instance=MQTT_INSTANCE).status)
        except Exception as e:  # noqa: BLE001
            tally.bad("lost", f"device {d.id[:12]} (acknowledged {d.state}) unreadable: {e}")
            continue
        reconcile(tally, d, got, allowed, f"device {d.id[:12]}")


# CAS orders, as the SDK shows them: DescribeCertificateState's Type while pending or issued,
# ListUserCertificateOrder's Status in the read-back. "pending" and "issued" hold a package
# unit, "revoked" (CancelCertificateForPackageRequest on an issued order) gave it back.
HOLDS_UNIT = {"pending", "issued"}
LISTED = {"CHECKING": "pending", "ISSUED": "issued", "WILLEXPIRED": "issued", "REVOKED": "revoked"}
DESCRIBED = {"domain_verify": "pending", "process": "pending", "certificate": "issued",
             "unknow": "revoked"}
ORDER_UNITS = 1_000_000


def orders_client(url: str):
    """The official CAS SDK on account A, with short timeouts (a killed node must not hold the
    worker past the cycle)."""
    cfg = openapi_models.Config(
        access_key_id=cas.ACCOUNT_A, access_key_secret="crash-test",
        endpoint=url.split("://", 1)[1], protocol="http", region_id="cn-hangzhou",
        read_timeout=10000, connect_timeout=2000)
    return cas.CasClient(cfg)


def orders_setup(node) -> None:
    # More units than the cycles can spend: a NotRemainCount is then always wrong.
    node.admin("cas", "package", "add", "--account", cas.ACCOUNT_A, "--product-code", cas.FREE,
               "--count", str(ORDER_UNITS))


def _order_allowed(o: Cert) -> set:
    """What the read-back may show: an order acknowledged pending may have been issued since
    (issuance runs on its own), a cut-off cancel may have revoked it."""
    allowed = {o.state, o.maybe} - {None}
    if "pending" in allowed:
        allowed.add("issued")
    return allowed


def orders_worker(url: str, orders: list, tally: Tally, stop: threading.Event, seed: int,
                  lock: threading.Lock) -> None:
    rng = random.Random(seed)
    api = orders_client(url)
    key = new_key("ec")  # one key for every CSR: RSA key generation would be most of the load
    while not stop.is_set():
        issued = [o for o in orders if o.state == "issued"]
        pending = [o for o in orders if o.state == "pending"]
        r = rng.random()
        o, to = None, None
        try:
            if r < 0.4 or not orders:
                csr, _ = make_csr(f"crash-{rng.getrandbits(48):x}.example.com", key=key)
                resp = api.create_certificate_for_package_request(
                    cas.M.CreateCertificateForPackageRequestRequest(
                        product_code=cas.FREE, csr=csr, validate_type="DNS",
                        username="Crash Test", phone="13800000000", email="pki@example.com"))
                orders.append(Cert(str(resp.body.order_id), "pending"))
                with lock:
                    tally.acknowledged += 1
                    tally.orders_created += 1
            elif r < 0.7 and issued:
                o, to = rng.choice(issued), "revoked"
                api.cancel_certificate_for_package_request(
                    cas.M.CancelCertificateForPackageRequestRequest(order_id=int(o.id)))
                o.state = to
                with lock:
                    tally.acknowledged += 1
                    tally.orders_cancelled += 1
            else:
                o = rng.choice(pending or orders)
                body = api.describe_certificate_state(
                    cas.M.DescribeCertificateStateRequest(order_id=int(o.id))).body
                got = DESCRIBED.get(body.type, body.type)
                if got not in _order_allowed(o):
                    with lock:
                        tally.bad("wrong", f"order {o.id} described {body.type}, "
                                  f"acknowledged {o.state}")
                    continue
                # A state the API showed is acknowledged: it must survive the kill.
                o.state = got
        except Exception as e:  # noqa: BLE001 (the SDK wraps connection errors in its own types)
            status = getattr(e, "status_code", None)
            if isinstance(status, int) and status < 500:
                with lock:
                    tally.bad("wrong", f"order {o.id if o else '(create)'} {o.state if o else ''}"
                              f" -> {to}: {getattr(e, 'code', None)} {status}")
                continue
            if o is not None and to is not None:
                o.maybe = to
            with lock:
                tally.unknown += 1
                tally.orders_unknown += 1
                if o is None:
                    tally.orders_unknown_creates += 1
            return


def orders_read_back(url: str) -> dict:
    """order id -> state, every order of account A (ListUserCertificateOrder, paged)."""
    api = orders_client(url)
    seen, page = {}, 1
    while True:
        body = api.list_user_certificate_order(cas.M.ListUserCertificateOrderRequest(
            current_page=page, show_size=50)).body
        items = body.certificate_order_list or []
        for i in items:
            seen[str(i.order_id)] = LISTED.get(i.status, i.status)
        if len(items) < 50:
            return seen
        page += 1


def orders_check(url: str, orders: list, tally: Tally) -> int:
    """Every acknowledged order in an allowed state, at most as many unacknowledged orders as
    creates were cut off, and the package's used count equal to the orders holding a unit (a
    unit neither lost nor spent twice across the kill). Returns the unacknowledged orders
    found."""
    # Issuance runs on its own after the restart (the nodes validate every order at once), so
    # the package can count an issue the order list read a moment before does not show yet:
    # the list is taken between two equal package reads (one issue moves both at once).
    for _ in range(50):
        before = cas.package_state(orders_client(url))
        actual = orders_read_back(url)
        after = cas.package_state(orders_client(url))
        if before == after:
            break
        time.sleep(0.1)
    known = {o.id for o in orders}
    for o in orders:
        got = actual.get(o.id)
        reconcile(tally, o, got, _order_allowed(o), f"order {o.id}")
    extra = [oid for oid in actual if oid not in known]
    if len(extra) > tally.orders_unknown_creates:
        tally.bad("wrong", f"{len(extra)} unacknowledged orders, at most "
                  f"{tally.orders_unknown_creates}")
    for oid in extra:
        if actual[oid] not in HOLDS_UNIT:
            tally.bad("wrong", f"unacknowledged order {oid} is {actual[oid]}")
        orders.append(Cert(oid, actual[oid]))
    total, used, issued = after
    holding = sum(1 for s in actual.values() if s in HOLDS_UNIT)
    ever_issued = sum(1 for s in actual.values() if s in ("issued", "revoked"))
    if (total, used) != (ORDER_UNITS, holding):
        tally.bad("wrong", f"package total {total} used {used}, but {holding} orders hold a "
                  f"unit (of {ORDER_UNITS})")
    if issued != ever_issued:
        tally.bad("wrong", f"package issued {issued}, but {ever_issued} orders were issued")
    return len(extra)


# Azure billing transfers. An initiator (the owner of a partner agreement's customer, or of a
# customer agreement's invoice section) asks the recipient, by email, for products the recipient
# holds; the recipient accepts naming the products (or declines), the initiator may cancel while
# it is Pending. An accepted transfer is InProgress until the nodes' sweep has moved the billing
# of its products to the initiator's scope (one step a second), then Completed. Nothing here
# expires: the nodes keep the default TTL of 15 days, so an Expired transfer is wrong.
SIDES = {
    "partner": (az.ALICE, (az.MPA_ACCOUNT, az.MPA_PROFILE, az.CUSTOMER), "customers"),
    "mca": (az.CAROL, (az.MCA_ACCOUNT, az.MCA_PROFILE, az.SECTION), "invoiceSections"),
}
RECIPIENT = az.BOB
AZURE_PRODUCTS = 16
AZURE_PAUSE = 0.02  # seconds between the worker's calls
# What may follow an acknowledged state with no call of ours: processing of an accept.
FOLLOWS = {"Pending": {"Pending"}, "InProgress": {"InProgress", "Completed"}}


def scope_path(side: str) -> str:
    _, (ba, bp, sec), kind = SIDES[side]
    return f"/providers/Microsoft.Billing/billingAccounts/{ba}/billingProfiles/{bp}/{kind}/{sec}"


@dataclass
class Transfer:
    name: str
    side: str
    state: str | None  # last acknowledged TransferStatus; None while its initiate is cut off
    maybe: str | None = None  # the state a cut-off call may have left
    products: list = field(default_factory=list)  # named by its accept (acknowledged or cut off)


@dataclass
class AzureState:
    creds: dict  # email -> credential
    products: dict  # product id -> names of the transfers that accepted it (or may have), in order
    transfers: dict = field(default_factory=dict)  # name -> Transfer


class TokenCredential:
    """A client-credentials token from certplane's own Entra token endpoint (the request
    azure-identity's ClientSecretCredential makes; that class insists on an https authority, and
    these nodes serve plain http because the CAS and OnsMqtt SDKs above do not take a private
    CA). One token per identity for the whole run: it must keep working across restarts."""

    def __init__(self, url: str, client: dict):
        body = urllib.parse.urlencode({
            "client_id": client["clientId"], "client_secret": client["clientSecret"],
            "grant_type": "client_credentials",
            "scope": "https://management.azure.com/.default"}).encode()
        status, _, data = certplane_server.http_request(
            url, "POST", f"/{az.TENANT}/oauth2/v2.0/token", body,
            {"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 200, f"token endpoint answered {status}: {data[:200]!r}"
        doc = json.loads(data)
        self.token = AccessToken(doc["access_token"], int(time.time()) + int(doc["expires_in"]))

    def get_token(self, *scopes, **kwargs):
        return self.token


class _PlainHttp(SansIOHTTPPolicy):
    """Lifts azure-core's refusal to send a bearer token over http (the spec's §8.1 per-call
    policy); nothing else in the pipeline changes."""

    def on_request(self, request):
        request.context["enforce_https"] = False


def billing_client(url: str, credential) -> BillingManagementClient:
    # One attempt per call, short timeouts, like the other clients: a killed node must cut the
    # call off, not keep the worker retrying past the cycle.
    return BillingManagementClient(credential, az.SUBSCRIPTION, base_url=url,
                                   per_call_policies=[_PlainHttp()], retry_total=0,
                                   connection_timeout=2, read_timeout=10)


def azure_setup(node) -> AzureState:
    """The seed's partner and customer-agreement billing accounts (initiators Alice and Carol),
    a pool of products held by the recipient Bob (`admin billing import`), and an OAuth client
    for each of the three (`admin oauth-client create`)."""
    pool = [f"sub-crash{i:03d}" for i in range(AZURE_PRODUCTS)]
    az.import_seed(node, {
        "billingAccounts": az.SEED["billingAccounts"],
        "products": [{"id": pid, "productType": "AzureSubscription", "status": "Active",
                      "owner": RECIPIENT} for pid in pool]})
    creds = {}
    for email in (az.ALICE, az.CAROL, RECIPIENT):
        client = node.admin_json("oauth-client", "create", "--tenant", az.TENANT, "--email",
                                 email, "--json")
        creds[email] = TokenCredential(node.url, client)
    return AzureState(creds, {pid: [] for pid in pool})


def _initiator_call(api, side: str, op: str, name: str, *body):
    group = api.partner_transfers if side == "partner" else api.transfers
    return getattr(group, op)(*SIDES[side][1], name, *body)


def _free_products(st: AzureState) -> list:
    """Products no transfer is (or may be) moving: never accepted, or their last accept seen
    Completed."""
    return [pid for pid, hist in st.products.items()
            if not hist or (st.transfers[hist[-1]].state == "Completed"
                            and st.transfers[hist[-1]].maybe is None)]


def azure_worker(url: str, st: AzureState, tally: Tally, stop: threading.Event, seed: int,
                 lock: threading.Lock) -> None:
    rng = random.Random(seed)
    apis = {email: billing_client(url, cred) for email, cred in st.creds.items()}
    bob = apis[RECIPIENT]
    # A pause between calls keeps this thread light beside the certificate clients; a cycle
    # still sees tens of transfer calls.
    while not stop.wait(AZURE_PAUSE):
        known = [t for t in st.transfers.values() if t.state is not None and t.maybe is None]
        pending = [t for t in known if t.state == "Pending"]
        moving = [t for t in known if t.state == "InProgress"]
        r = rng.random()
        t, to, counter = None, None, None
        try:
            if r < 0.3 or not pending:
                side = rng.choice(sorted(SIDES))
                t = Transfer("crash" + f"{rng.getrandbits(64):016x}", side, None)
                st.transfers[t.name] = t
                to, counter = "Pending", "transfers_initiated"
                api = apis[SIDES[side][0]]
                body = (PartnerInitiateTransferRequest(recipient_email_id=RECIPIENT)
                        if side == "partner" else InitiateTransferRequest(
                            recipient_email_id=RECIPIENT))
                got = _initiator_call(api, side, "initiate", t.name, body).transfer_status
            elif r < 0.45 and (moving or known):
                # A read: what it shows is acknowledged (it must survive the kill).
                t = rng.choice(moving or known)
                if rng.random() < 0.5:
                    got = _word(bob.recipient_transfers.get(t.name).transfer_status)
                else:
                    got = _word(_initiator_call(apis[SIDES[t.side][0]], t.side, "get",
                                                t.name).transfer_status)
                allowed = FOLLOWS.get(t.state, {t.state})
                if got not in allowed:
                    with lock:
                        tally.bad("wrong", f"transfer {t.name} read {got}, acknowledged "
                                  f"{t.state}")
                    continue
                if got == "Completed" and t.state != "Completed":
                    with lock:
                        tally.transfers_completed += 1
                t.state = got
                continue
            else:
                t = rng.choice(pending)
                free = _free_products(st)
                a = rng.random()
                if a < 0.5 and free:
                    pid = rng.choice(free)
                    t.products = [pid]
                    st.products[pid].append(t.name)
                    to, counter = "InProgress", "transfers_accepted"
                    got = bob.recipient_transfers.accept(t.name, AcceptTransferRequest(
                        product_details=[ProductDetails(product_type="AzureSubscription",
                                                        product_id=pid)])).transfer_status
                elif a < 0.75:
                    to, counter = "Declined", "transfers_declined"
                    got = bob.recipient_transfers.decline(t.name).transfer_status
                else:
                    to, counter = "Canceled", "transfers_cancelled"
                    got = _initiator_call(apis[SIDES[t.side][0]], t.side, "cancel",
                                          t.name).transfer_status
        except (HttpResponseError, AzureError) as e:
            status = getattr(e, "status_code", None)
            if isinstance(e, HttpResponseError) and isinstance(status, int) and status < 500:
                code = getattr(getattr(e, "error", None), "code", None)
                with lock:
                    tally.bad("wrong", f"transfer {t.name if t else ''} {t.state if t else ''}"
                              f" -> {to}: {status} {code}")
                if t is not None and t.state is None:
                    del st.transfers[t.name]  # refused: nothing was made
                elif to == "InProgress":
                    st.products[t.products[0]].pop()
                    t.products = []
                continue
            # No answer (connection refused or cut, or a 5xx while the node goes down): the
            # call may or may not have landed.
            if t is not None and to is not None:
                t.maybe = to
            with lock:
                tally.unknown += 1
                tally.transfers_unknown += 1
            return
        got = _word(got)
        if got != to:
            with lock:
                tally.bad("wrong", f"transfer {t.name} {t.state} -> {to} answered {got}")
        t.state, t.maybe = got, None
        with lock:
            tally.acknowledged += 1
            setattr(tally, counter, getattr(tally, counter) + 1)


def _word(v):
    """An SDK enum member as its wire word ("Completed"), anything else as it is."""
    return getattr(v, "value", v)


def _transfer_view(x) -> tuple:
    """(status, canceledBy, ((product, product status), ...)) of a transfer as listed."""
    return (_word(x.transfer_status), x.canceled_by,
            tuple((d.product_id, _word(d.transfer_status))
                  for d in (x.detailed_transfer_status or [])))


def _azure_read(url: str, node, st: AzureState) -> tuple[dict, dict, dict]:
    """Every transfer as each initiator side lists it, as the recipient lists it, and the
    products (`admin billing products`), read between two equal initiator-side reads (the
    sweep moves accepted transfers on its own; one step changes a transfer and its products at
    once)."""
    apis = {email: billing_client(url, cred) for email, cred in st.creds.items()}

    def initiators():
        seen = {}
        for side, (email, scope, _) in SIDES.items():
            group = apis[email].partner_transfers if side == "partner" else apis[email].transfers
            for x in group.list(*scope):
                if x.name in seen:
                    seen[x.name] = ("listed by both initiator sides", x.name)
                else:
                    seen[x.name] = (side, *_transfer_view(x))
        return seen

    for _ in range(50):
        before = initiators()
        recipient = {x.name: _transfer_view(x) for x in apis[RECIPIENT].recipient_transfers.list()}
        products = {p["id"]: p for p in node.admin_json("billing", "products", "--json")}
        after = initiators()
        if before == after:
            break
        time.sleep(0.1)
    return after, recipient, products


def azure_check(url: str, node, st: AzureState, tally: Tally) -> None:
    """After a restart: every acknowledged transfer in an allowed state (its acknowledged state,
    the state a cut-off call aimed at, or what processing makes of an accepted one), the same in
    the initiator's and the recipient's lists, in a legal shape (no transfer both accepted and
    canceled or declined), no transfer nobody initiated, and each product billed where its
    transfers put it: the scope of the last accepted transfer if that one has Completed, the one
    before while it is InProgress (the product then marked as moving in it)."""
    try:
        listed, recipient, products = _azure_read(url, node, st)
    except Exception as e:  # noqa: BLE001
        tally.bad("lost", f"azure transfers unreadable after the restart: {e!r:.300}")
        return
    for name, view in listed.items():
        if name not in st.transfers:
            tally.bad("wrong", f"transfer {name} listed, but never initiated: {view}")
    for name in recipient:
        if name not in listed:
            tally.bad("wrong", f"transfer {name} offered to the recipient, not listed by its "
                      f"initiator")
    for t in list(st.transfers.values()):
        got = listed.get(t.name)
        if got is not None and got[0] != t.side:
            tally.bad("wrong", f"transfer {t.name} of {t.side} listed as {got}")
            continue
        if got is not None and recipient.get(t.name) != got[1:]:
            tally.bad("wrong", f"transfer {t.name}: initiator sees {got[1:]}, recipient sees "
                      f"{recipient.get(t.name)}")
        status = got[1] if got else None
        if t.state is None:  # a cut-off initiate: it made the transfer Pending, or nothing
            if status is None:
                del st.transfers[t.name]
                continue
            if status != "Pending":
                tally.bad("wrong", f"transfer {t.name} of a cut-off initiate is {status}")
            tally.transfers_landed += 1
            t.state, t.maybe = status, None
        else:
            before = t.state
            allowed = FOLLOWS.get(t.state, {t.state}) | FOLLOWS.get(t.maybe, {t.maybe} - {None})
            if t.maybe and status not in FOLLOWS.get(t.state, {t.state}) and status in allowed:
                tally.transfers_landed += 1
            reconcile(tally, t, status, allowed, f"transfer {t.name}")
            if t.state == "Completed" and before != "Completed":
                tally.transfers_completed += 1
        if got is None:
            continue
        _, canceled_by, moved = got[1:]
        accepted = t.state in ("InProgress", "Completed", "CompletedWithErrors", "Failed")
        want_by = SIDES[t.side][0] if t.state == "Canceled" else None
        if canceled_by != want_by:
            tally.bad("wrong", f"transfer {t.name} is {t.state}, canceledBy {canceled_by}")
        if accepted:
            per = "Completed" if t.state == "Completed" else {"NotStarted", "InProgress"}
            if [p for p, _ in moved] != t.products or any(
                    s != per if isinstance(per, str) else s not in per for _, s in moved):
                tally.bad("wrong", f"transfer {t.name} is {t.state} moving {moved}, accepted "
                          f"{t.products}")
        else:
            if moved:
                tally.bad("wrong", f"transfer {t.name} is {t.state} but names products {moved}")
            if t.products:  # an accept that did not land: its product is free again
                for pid in t.products:
                    if st.products[pid] and st.products[pid][-1] == t.name:
                        st.products[pid].pop()
                t.products = []
    for pid, hist in st.products.items():
        p = products.get(pid)
        if p is None:
            tally.bad("lost", f"product {pid} is gone")
            continue
        naming = sorted(name for name, v in listed.items() if pid in [x for x, _ in v[3]])
        if naming != sorted(hist):
            tally.bad("wrong", f"product {pid} named by transfers {naming}, accepted by {hist}")
        scope, moving = None, None
        for name in hist:
            t = st.transfers[name]
            if t.state == "Completed":
                scope = scope_path(t.side)
            else:
                moving = name
        want = {"owner": RECIPIENT, "scope": scope, "inTransfer": moving, "status": "Active"}
        have = {k: p.get(k) for k in want}
        if have != want:
            tally.bad("wrong", f"product {pid} is {have}, its transfers {hist} make it {want}")


def read_back(url: str) -> dict:
    """certificate id -> (owner, status), through the API of both accounts. A certificate
    pending transfer is listed by both (the target sees what is offered to it): it is the
    source's until accepted."""
    seen = {}
    for account in (A, B):
        c = client(url, account)
        marker = None
        while True:
            kw = {"pageSize": 250, **({"marker": marker} if marker else {})}
            page = c.list_certificates(**kw)
            for cert in page["certificates"]:
                seen.setdefault(cert["certificateId"], (account, cert["status"]))
            marker = page.get("nextMarker")
            if not marker:
                break
    return seen


def check(url: str, all_certs: list, tally: Tally, creates_before: int) -> int:
    actual = read_back(url)
    known = {c.id for c in all_certs}
    for c in all_certs:
        got = actual.get(c.id)
        allowed = {c.state} | ({c.maybe} if c.maybe else set())
        reconcile(tally, c, got, allowed, c.id[:12])
    # Certificates made by cut-off creates: at most that many, each whole (ACTIVE in A).
    extra = [cid for cid in actual if cid not in known]
    if len(extra) > creates_before:
        tally.bad("wrong", f"{len(extra)} unacknowledged certificates, at most {creates_before}")
    for cid in extra:
        if actual[cid] != (A, "ACTIVE"):
            tally.bad("wrong", f"unacknowledged {cid[:12]} is {actual[cid]}")
        all_certs.append(Cert(cid, actual[cid]))
    return len(extra)


def run(binary: Path, cycles: int, clients: int, workdir: Path, seed: int = 1,
        log=print) -> Tally:
    rng = random.Random(seed)
    # The Azure worker's seeds come from a stream of their own, so that the cycles' lengths and
    # victims drawn from `rng` stay what they were for a given seed.
    azure_rng = random.Random(f"azure-{seed}")
    node_count = 2 if sdk_engine.ENGINE == "postgres" else 1
    nodes = Nodes(binary, workdir, node_count)
    tally = Tally()
    lock = threading.Lock()
    per_client: list[list] = [[] for _ in range(clients)]
    try:
        ca_sn, devices = mqtt_setup(nodes.servers[0], workdir)
        orders_setup(nodes.servers[0])
        orders: list[Cert] = []
        azure = azure_setup(nodes.servers[0])
        for cycle in range(1, cycles + 1):
            stop = threading.Event()
            urls = nodes.urls()
            threads = [threading.Thread(target=worker, args=(
                urls[i % len(urls)], per_client[i], tally, stop, rng.random(), lock))
                for i in range(clients)]
            threads.append(threading.Thread(target=mqtt_worker, args=(
                urls[-1], ca_sn, devices, tally, stop, rng.random(), lock)))
            # One orders thread: enough to cut calls off mid-flight, light beside the others.
            threads.append(threading.Thread(target=orders_worker, args=(
                urls[cycle % len(urls)], orders, tally, stop, rng.random(), lock)))
            # One Azure transfers thread, as light, on the other node when there are two.
            threads.append(threading.Thread(target=azure_worker, args=(
                urls[(cycle + 1) % len(urls)], azure, tally, stop, azure_rng.random(), lock)))
            for t in threads:
                t.start()
            time.sleep(rng.uniform(1.0, 3.0))
            victim = rng.choice(nodes.servers)
            victim.stop(sig=signal.SIGKILL)
            stop.set()
            for t in threads:
                t.join(60)
            victim.start()
            all_certs = [c for certs in per_client for c in certs]
            before = tally.unknown_creates
            found = check(victim.url, all_certs, tally, tally.unknown_creates)
            mqtt_check(victim.url, ca_sn, devices, tally)
            orders_before = tally.orders_unknown_creates
            orders_found = orders_check(victim.url, orders, tally)
            azure_check(victim.url, nodes.servers[0], azure, tally)
            tally.unknown_creates = 0
            tally.orders_unknown_creates = 0
            # Certificates found from cut-off creates join the first client's set.
            known = {c.id for certs in per_client for c in certs}
            per_client[0].extend(c for c in all_certs if c.id not in known)
            log(f"cycle {cycle}: {sum(len(c) for c in per_client)} certificates, "
                f"{tally.acknowledged} acknowledged, {tally.unknown} unknown "
                f"({found} of {before} cut-off creates landed), {orders_summary(tally, orders)} "
                f"({orders_found} of {orders_before} cut-off creates landed), "
                f"{transfers_summary(tally)}, lost {tally.lost}, wrong {tally.wrong}")
    finally:
        nodes.stop()
    return tally


def orders_summary(tally: Tally, orders: list | None = None) -> str:
    held = f"{sum(1 for o in orders if o.state in HOLDS_UNIT)} holding a unit, " if orders else ""
    return (f"orders {tally.orders_created} created, {tally.orders_cancelled} cancelled, "
            f"{held}{tally.orders_unknown} unknown")


def transfers_summary(tally: Tally) -> str:
    return (f"transfers {tally.transfers_initiated} initiated, {tally.transfers_accepted} "
            f"accepted ({tally.transfers_completed} seen Completed), {tally.transfers_declined} "
            f"declined, {tally.transfers_cancelled} cancelled, {tally.transfers_unknown} unknown "
            f"({tally.transfers_landed} of them landed)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cycles", type=int, default=20)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--binary", default=None)
    args = ap.parse_args()
    binary = Path(args.binary) if args.binary else certplane_server.certplane_binary()
    with tempfile.TemporaryDirectory(prefix="certplane-crash-") as d:
        tally = run(binary, args.cycles, args.clients, Path(d), args.seed)
    print(f"engine {sdk_engine.ENGINE}: cycles {args.cycles}, acknowledged {tally.acknowledged}, "
          f"unknown {tally.unknown}, lost {tally.lost}, wrong {tally.wrong}; "
          f"{orders_summary(tally)}; {transfers_summary(tally)}")
    for p in tally.problems:
        print("  " + p)
    return 1 if tally.lost or tally.wrong else 0


if __name__ == "__main__":
    sys.exit(main())
