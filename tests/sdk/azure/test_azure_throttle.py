"""Throttling of the Azure Billing dialect with azure-mgmt-billing: ARM counts reads and writes
per principal in separate buckets (`billing:read`, `billing:write`; defaults 12,000 and 1,200
per hour, lowered here with `serve --throttle-rate`). A throttled call is 429 with `Retry-After`
and the ARM error body, and changes nothing. azure-core retries 429 (honouring Retry-After), so
every client here is made with `retry_total=0`."""

from __future__ import annotations

import json
import time

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.identity import ClientSecretCredential
from azure.mgmt.billing import BillingManagementClient
from azure.mgmt.billing.models import PartnerInitiateTransferRequest

from azure_harness import ALICE, BOB, SUBSCRIPTION, import_seed, new_name, trust
from certplane_server import CertplaneServer
from certplane_server import burst as shared_burst

pytestmark = pytest.mark.slow

TENANT = "throttletenant"
ACCOUNT = "PCN.throttle"
PROFILE = "thrprof"
CUSTOMER = "thrcust"


@pytest.fixture(scope="module")
def srv(binary, tmp_path_factory):
    s = CertplaneServer(binary, tmp_path_factory.mktemp("azure-throttle") / "data", dev=False,
                        extra_args=["--tls", "--throttle-rate", "billing:write=1:2",
                                    "--throttle-rate", "billing:read=3:3"]).start()
    try:
        trust(s)
        import_seed(s, {"billingAccounts": [
            {"name": ACCOUNT, "agreementType": "MicrosoftPartnerAgreement", "owners": [ALICE],
             "billingProfiles": [{"name": PROFILE, "owners": [],
                                  "customers": [{"name": CUSTOMER, "owners": []}]}]}]})
        s.admin("account", "create", "--azure-tenant", TENANT)
        yield s
    finally:
        s.stop()


_names = iter(range(10_000))


def client(srv, user=True):
    """A billing client (retries off) whose OAuth client acts for a fresh user allowed
    everything, or for the tenant's root identity."""
    args = ["oauth-client", "create", "--tenant", TENANT, "--email", ALICE, "--json"]
    if user:
        name = f"azthr{next(_names)}"
        srv.admin("user", "create", "--account", TENANT, "--name", name)
        path = srv.data_dir.parent / f"{name}.json"
        path.write_text(json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        srv.admin("policy", "create", "--account", TENANT, "--name", name, "--document", str(path))
        srv.admin("policy", "attach", "--account", TENANT, "--name", name, "--user", name)
        args += ["--user", name]
    out = srv.admin_json(*args)
    cred = ClientSecretCredential(out["tenant"], out["clientId"], out["clientSecret"],
                                  authority=srv.url, disable_instance_discovery=True)
    return BillingManagementClient(cred, SUBSCRIPTION, base_url=srv.url, retry_total=0)


def initiate(c, name=None):
    name = name or new_name()
    c.partner_transfers.initiate(ACCOUNT, PROFILE, CUSTOMER, name,
                                 PartnerInitiateTransferRequest(recipient_email_id=BOB))
    return name


def get(c, name):
    return c.partner_transfers.get(ACCOUNT, PROFILE, CUSTOMER, name)


def assert_throttled(e, kind):
    assert isinstance(e, HttpResponseError), repr(e)
    assert e.status_code == 429, e
    assert e.error.code == "SubscriptionRequestsThrottled", e.error
    assert f"'{kind}'" in e.error.message, e.error.message
    retry_after = e.response.headers.get("Retry-After")
    assert retry_after and int(retry_after) >= 1, e.response.headers
    assert e.response.headers.get("x-ms-request-id")


def burst(fn, n):
    return shared_burst(fn, n, HttpResponseError)


def test_reads_over_the_rate_are_429_with_retry_after(srv):
    c = client(srv)
    name = initiate(c)
    results = burst(lambda: get(c, name), 10)
    assert [r[0] for r in results[:3]] == ["ok"] * 3, results
    errs = [r[1] for r in results if r[0] == "err"]
    assert errs
    for e in errs:
        assert_throttled(e, "read")


def test_reads_under_the_rate_succeed(srv):
    c = client(srv)
    name = initiate(c)
    for _ in range(8):
        get(c, name)
        time.sleep(0.4)


def test_the_limit_is_per_principal(srv):
    alice, other_user, root = client(srv), client(srv), client(srv, user=False)
    name = initiate(root)
    assert any(r[0] == "err" for r in burst(lambda: get(alice, name), 10))
    for c in (other_user, root):
        for _ in range(3):
            get(c, name)


def test_a_throttled_initiate_creates_nothing(srv):
    c = client(srv)
    reader = client(srv)
    first, second = initiate(c), initiate(c)
    third = new_name()
    with pytest.raises(HttpResponseError) as ei:
        initiate(c, third)
    assert_throttled(ei.value, "write")
    # Reads are a bucket of their own, still full.
    assert get(reader, first).name == first and get(reader, second).name == second
    with pytest.raises(ResourceNotFoundError):
        get(reader, third)
    # Writes refill at 1/s: the same initiate goes through a second later.
    time.sleep(1.1)
    initiate(c, third)
    assert get(reader, third).name == third
