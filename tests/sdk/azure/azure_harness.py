"""Helpers for the Azure Billing suite: a `--dev --tls` certplane, its CA trusted through
`REQUESTS_CA_BUNDLE` only, the billing seed imported with `certplane admin billing import`, and
`azure-mgmt-billing` clients authenticated either by `azure.identity.ClientSecretCredential`
against certplane's own token endpoint or (dev mode) by an unsigned JWT naming the caller.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
import time
import uuid
from pathlib import Path

from azure.core.credentials import AccessToken
from azure.identity import ClientSecretCredential
from azure.mgmt.billing import BillingManagementClient

from certplane_server import CertplaneServer, http_request, parse_json_output

SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
TENANT = "contoso"

# The MPA (partner) account and the MCA account of the seed; `MCA_ACCOUNT` has a ':' so it
# travels percent-encoded.
MPA_ACCOUNT = "PCN.partner1"
MPA_PROFILE = "prof1"
CUSTOMER = "cust1"
MCA_ACCOUNT = ("10000000-0000-0000-0000-000000000000:"
               "00000000-0000-0000-0000-000000000000_2019-05-31")
MCA_PROFILE = "bp1"
SECTION = "is1"

ALICE = "alice@partner.example"      # owns the MPA account
CAROL = "carol@mca.example"          # owns the MCA billing profile
BOB = "bob@contoso.example"          # recipient, holds products
EVE = "eve@contoso.example"          # holds nothing, owns nothing

ALICE_CLIENT = ("alice-app", "alice-secret-1234")
BOB_CLIENT = ("bob-app", "bob-secret-1234")
CAROL_CLIENT = ("carol-app", "carol-secret-1234")

SEED = {
    "billingAccounts": [
        {"name": MPA_ACCOUNT, "agreementType": "MicrosoftPartnerAgreement", "owners": [ALICE],
         "billingProfiles": [{"name": MPA_PROFILE, "owners": [],
                              "customers": [{"name": CUSTOMER, "owners": []}]}]},
        {"name": MCA_ACCOUNT, "agreementType": "MicrosoftCustomerAgreement", "owners": [],
         "billingProfiles": [{"name": MCA_PROFILE, "owners": [CAROL],
                              "invoiceSections": [{"name": SECTION, "owners": []}]}]},
    ],
    "products": [],
    "oauthClients": [
        {"tenant": TENANT, "clientId": ALICE_CLIENT[0], "clientSecret": ALICE_CLIENT[1], "email": ALICE},
        {"tenant": TENANT, "clientId": BOB_CLIENT[0], "clientSecret": BOB_CLIENT[1], "email": BOB},
        {"tenant": TENANT, "clientId": CAROL_CLIENT[0], "clientSecret": CAROL_CLIENT[1], "email": CAROL},
    ],
}

_bundle = Path(tempfile.mkdtemp(prefix="certplane-azure-ca-")) / "ca-bundle.pem"


def trust(server: CertplaneServer) -> None:
    """Adds the server's CA to the bundle `REQUESTS_CA_BUNDLE` names (that is the only trust
    the SDK gets; this machine presets the variable to the system store, so it is replaced)."""
    pem = server.ca_pem_path.read_text()
    have = _bundle.read_text() if _bundle.exists() else ""
    if pem not in have:
        _bundle.write_text(have + pem)
    os.environ["REQUESTS_CA_BUNDLE"] = str(_bundle)
    os.environ.pop("CURL_CA_BUNDLE", None)


def start_server(binary, data_dir: Path, extra_args=()) -> CertplaneServer:
    srv = CertplaneServer(binary, data_dir, dev=True, extra_args=["--tls", *extra_args]).start()
    assert srv.url.startswith("https://"), srv.url
    trust(srv)
    return srv


def import_seed(server: CertplaneServer, doc: dict | None = None) -> dict:
    path = server.data_dir.parent / f"import-{uuid.uuid4().hex[:8]}.json"
    path.write_text(json.dumps(doc or SEED))
    return parse_json_output(server.admin("billing", "import", str(path), "--json").stdout)


def add_products(server: CertplaneServer, owner: str, *specs) -> list[str]:
    """Imports products held by `owner`; each spec is (productType[, status[, failure]]).
    Returns their (fresh, unique) ids."""
    ids, products = [], []
    for spec in specs:
        ptype, status, failure = (list(spec) + ["Active", None])[:3]
        pid = f"{ptype[:3].lower()}-{uuid.uuid4().hex[:12]}"
        p = {"id": pid, "productType": ptype, "status": status, "owner": owner}
        if failure:
            p["transferFailure"] = failure
        products.append(p)
        ids.append(pid)
    import_seed(server, {"products": products})
    return ids


def products(server: CertplaneServer) -> dict:
    return {p["id"]: p for p in server.admin_json("billing", "products", "--json")}


class DevToken:
    """The smallest azure-core TokenCredential: an unsigned JWT whose `upn` claim names the
    caller (accepted only by a `--dev` server)."""

    def __init__(self, email: str):
        def enc(d):
            return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()
        self.token = f"{enc({'alg': 'none', 'typ': 'JWT'})}.{enc({'upn': email, 'email': email})}."

    def get_token(self, *scopes, **kwargs):
        return AccessToken(self.token, int(time.time()) + 3600)


def secret_credential(server: CertplaneServer, client) -> ClientSecretCredential:
    client_id, secret = client
    return ClientSecretCredential(TENANT, client_id, secret, authority=server.url,
                                  disable_instance_discovery=True)


def billing(server: CertplaneServer, credential) -> BillingManagementClient:
    return BillingManagementClient(credential, SUBSCRIPTION, base_url=server.url)


def dev_client(server: CertplaneServer, email: str) -> BillingManagementClient:
    return billing(server, DevToken(email))


def new_name() -> str:
    return "t" + uuid.uuid4().hex[:20]


def raw(server: CertplaneServer, method: str, target: str, body=None, email: str | None = None,
        headers: dict | None = None):
    """One HTTPS request outside the SDK (for the legacy routes and wire checks)."""
    h = dict(headers or {})
    if email:
        h["Authorization"] = f"Bearer {DevToken(email).token}"
    if body is not None and not isinstance(body, bytes):
        body = json.dumps(body).encode()
        h.setdefault("Content-Type", "application/json")
    status, hdrs, data = http_request(server.url, method, target, body, h,
                                      ca_file=server.ca_pem_path)
    return status, hdrs, (json.loads(data) if data else None)


def wait_status(get, want: set, timeout: float = 15.0):
    """Polls `get()` until its transfer_status is in `want`."""
    deadline = time.monotonic() + timeout
    while True:
        r = get()
        if r.transfer_status in want:
            return r
        if time.monotonic() > deadline:
            raise AssertionError(f"transfer still {r.transfer_status} after {timeout}s")
        time.sleep(0.25)
