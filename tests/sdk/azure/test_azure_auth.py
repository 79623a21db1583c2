"""Bearer tokens: azure.identity.ClientSecretCredential against certplane's Entra endpoints
(right and wrong secret, a client made by `admin oauth-client create`), token expiry on the
server clock, and what a server outside --dev accepts."""

from __future__ import annotations

import pytest
from azure.core.exceptions import ClientAuthenticationError, ResourceNotFoundError
from azure.identity import ClientSecretCredential
from azure.mgmt.billing.models import PartnerInitiateTransferRequest

from azure_harness import (
    ALICE, ALICE_CLIENT, BOB, CUSTOMER, MPA_ACCOUNT, MPA_PROFILE, TENANT, DevToken, billing,
    dev_client, import_seed, new_name, raw, secret_credential, start_server,
)

PARTNER = (MPA_ACCOUNT, MPA_PROFILE, CUSTOMER)


def initiate(client, name):
    return client.partner_transfers.initiate(
        *PARTNER, name, PartnerInitiateTransferRequest(recipient_email_id=BOB))


def test_client_secret_credential_gets_a_verified_token(srv):
    cred = secret_credential(srv, ALICE_CLIENT)
    token = cred.get_token("https://management.azure.com/.default")
    assert token.token.count(".") == 2 and token.expires_on > 0
    r = initiate(billing(srv, cred), new_name())
    assert r.initiator_email_id == ALICE


def test_wrong_secret_is_refused_and_changes_nothing(srv):
    cred = ClientSecretCredential(TENANT, ALICE_CLIENT[0], "not-the-secret", authority=srv.url,
                                  disable_instance_discovery=True)
    name = new_name()
    with pytest.raises(ClientAuthenticationError):
        initiate(billing(srv, cred), name)
    unknown = ClientSecretCredential("other-tenant", ALICE_CLIENT[0], ALICE_CLIENT[1],
                                     authority=srv.url, disable_instance_discovery=True)
    with pytest.raises(ClientAuthenticationError):
        initiate(billing(srv, unknown), name)
    with pytest.raises(ResourceNotFoundError):
        dev_client(srv, ALICE).partner_transfers.get(*PARTNER, name)


def test_admin_oauth_client_create(srv):
    out = srv.admin_json("oauth-client", "create", "--tenant", "fabrikam", "--email", ALICE,
                         "--json")
    assert out["tenant"] == "fabrikam" and out["email"] == ALICE and len(out["clientSecret"]) >= 32
    cred = ClientSecretCredential("fabrikam", out["clientId"], out["clientSecret"],
                                  authority=srv.url, disable_instance_discovery=True)
    assert initiate(billing(srv, cred), new_name()).initiator_email_id == ALICE
    # Stored hashed: the secret appears nowhere in an export.
    export = srv.admin("export").stdout
    assert out["clientSecret"] not in export and ALICE_CLIENT[1] not in export


def test_tokens_expire_on_the_server_clock(srv):
    cred = secret_credential(srv, ALICE_CLIENT)
    token = cred.get_token("https://management.azure.com/.default").token
    headers = {"Authorization": f"Bearer {token}"}
    path = "/providers/Microsoft.Billing/transfers?api-version=2024-04-01"
    status, _, _ = raw(srv, "GET", path, headers=headers)
    assert status == 200
    srv.advance(2 * 3600)
    status, h, body = raw(srv, "GET", path, headers=headers)
    assert status == 401 and body["error"]["code"] == "ExpiredAuthenticationToken"
    assert h["www-authenticate"].startswith("Bearer")
    # A tampered token is refused.
    head, claims, sig = secret_credential(srv, ALICE_CLIENT).get_token(
        "https://management.azure.com/.default").token.split(".")
    forged = f"{head}.{DevToken(BOB).token.split('.')[1]}.{sig}"
    status, _, body = raw(srv, "GET", path, headers={"Authorization": f"Bearer {forged}"})
    assert status == 401 and body["error"]["code"] == "InvalidAuthenticationToken"


def test_token_endpoint_refuses_other_scopes_and_grants(srv):
    form = lambda **kw: "&".join(f"{k}={v}" for k, v in kw.items()).encode()  # noqa: E731
    hdr = {"Content-Type": "application/x-www-form-urlencoded"}
    status, _, body = raw(srv, "POST", f"/{TENANT}/oauth2/v2.0/token", form(
        grant_type="client_credentials", client_id=ALICE_CLIENT[0], client_secret=ALICE_CLIENT[1],
        scope="https%3A%2F%2Fgraph.microsoft.com%2F.default"), headers=hdr)
    assert status == 400 and body["error"] == "invalid_scope"
    status, _, body = raw(srv, "POST", f"/{TENANT}/oauth2/v2.0/token", form(
        grant_type="password", client_id=ALICE_CLIENT[0]), headers=hdr)
    assert status == 400 and body["error"] == "unsupported_grant_type"
    status, _, body = raw(srv, "GET", f"/{TENANT}/v2.0/.well-known/openid-configuration")
    assert status == 200 and body["token_endpoint"] == f"{srv.url}/{TENANT}/oauth2/v2.0/token"
    assert body["authorization_endpoint"]


@pytest.mark.slow
def test_outside_dev_only_signed_tokens(binary, tmp_path):
    from certplane_server import CertplaneServer
    from azure_harness import trust
    srv = CertplaneServer(binary, tmp_path / "data", dev=False, extra_args=["--tls"]).start()
    try:
        trust(srv)
        import_seed(srv)
        name = new_name()
        with pytest.raises(ClientAuthenticationError) as e:
            initiate(billing(srv, DevToken(ALICE)), name)
        assert e.value.error.code == "InvalidAuthenticationToken"
        r = initiate(billing(srv, secret_credential(srv, ALICE_CLIENT)), name)
        assert r.name == name
    finally:
        srv.stop()
