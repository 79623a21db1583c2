"""Azure callers are OAuth clients. `admin access-key disable|enable|delete --id CLIENT_ID` turns
them off the way Entra refuses a disabled application (AADSTS7000112); a client made with
`--user` acts for a user of its tenant (`admin account create --azure-tenant`) and may do what
the user's policies allow, with ARM's `Microsoft.Billing/...` action names on the billing scope,
else 403 AuthorizationFailed. Real azure-identity and azure-mgmt-billing clients."""

from __future__ import annotations

import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ClientSecretCredential

from azure_harness import ALICE

SCOPE = "https://management.azure.com/.default"


def credential(srv, out):
    return ClientSecretCredential(out["tenant"], out["clientId"], out["clientSecret"],
                                  authority=srv.url, disable_instance_discovery=True)


def test_disabled_client_gets_no_token_until_enabled(srv):
    out = srv.admin_json("oauth-client", "create", "--tenant", "iam-tenant", "--email", ALICE, "--json")
    assert credential(srv, out).get_token(SCOPE).token
    srv.admin("access-key", "disable", "--id", out["clientId"])
    with pytest.raises(ClientAuthenticationError) as ei:
        credential(srv, out).get_token(SCOPE)
    assert "AADSTS7000112" in str(ei.value) and "disabled" in str(ei.value)
    srv.admin("access-key", "enable", "--id", out["clientId"])
    assert credential(srv, out).get_token(SCOPE).token
    srv.admin("access-key", "delete", "--id", out["clientId"])
    with pytest.raises(ClientAuthenticationError) as ei:
        credential(srv, out).get_token(SCOPE)
    assert "AADSTS7000112" not in str(ei.value)


def test_unknown_id_is_an_error(srv):
    res = srv.admin("access-key", "disable", "--id", "no-such-key-or-client", expect_ok=False)
    assert res.returncode != 0 and "no-such-key-or-client" in res.stderr


def test_changes_leave_audit_rows(srv):
    import json

    from azure.mgmt.billing.models import PartnerInitiateTransferRequest

    from azure_harness import BOB, CUSTOMER, MPA_ACCOUNT, MPA_PROFILE, dev_client, new_name

    name = new_name()
    dev_client(srv, ALICE).partner_transfers.initiate(
        MPA_ACCOUNT, MPA_PROFILE, CUSTOMER, name, PartnerInitiateTransferRequest(recipient_email_id=BOB))
    out = srv.admin("audit", "--json", "--account", ALICE).stdout
    rows = [json.loads(x) for x in out.splitlines() if x.strip()]
    mine = [r for r in rows if r["dialect"] == "azure-billing" and r["action"].endswith("/transfers/write")]
    assert mine and mine[-1]["outcome"] == "allowed" and CUSTOMER in mine[-1]["resource"], rows[-3:]


# --- policies, on a server outside --dev ------------------------------------------------------

IAM_TENANT = "iamtenant"
PARTNER_ACCOUNT = "PCN.iam"
PROFILE = "iamprof"


@pytest.fixture(scope="module")
def verified(binary, tmp_path_factory):
    from azure_harness import import_seed, trust
    from certplane_server import CertplaneServer

    s = CertplaneServer(binary, tmp_path_factory.mktemp("azure-iam") / "data", dev=False,
                        extra_args=["--tls"]).start()
    try:
        trust(s)
        import_seed(s, {"billingAccounts": [
            {"name": PARTNER_ACCOUNT, "agreementType": "MicrosoftPartnerAgreement", "owners": [ALICE],
             "billingProfiles": [{"name": PROFILE, "owners": [],
                                  "customers": [{"name": "c1", "owners": []}, {"name": "c2", "owners": []}]}]}]})
        s.admin("account", "create", "--azure-tenant", IAM_TENANT)
        yield s
    finally:
        s.stop()


_names = iter(range(10_000))


def partner_client(srv, statements):
    """A billing client whose OAuth client acts for a fresh user with `statements` (None: the
    tenant's root identity)."""
    import json

    from azure_harness import billing

    args = ["oauth-client", "create", "--tenant", IAM_TENANT, "--email", ALICE, "--json"]
    if statements is not None:
        name = f"az{next(_names)}"
        srv.admin("user", "create", "--account", IAM_TENANT, "--name", name)
        if statements:
            path = srv.data_dir.parent / f"{name}.json"
            path.write_text(json.dumps({"Version": "2012-10-17", "Statement": statements}))
            srv.admin("policy", "create", "--account", IAM_TENANT, "--name", name, "--document", str(path))
            srv.admin("policy", "attach", "--account", IAM_TENANT, "--name", name, "--user", name)
        args += ["--user", name]
    return billing(srv, credential(srv, srv.admin_json(*args)))


def initiate(client, customer):
    from azure.mgmt.billing.models import PartnerInitiateTransferRequest

    from azure_harness import BOB, new_name

    name = new_name()
    client.partner_transfers.initiate(PARTNER_ACCOUNT, PROFILE, customer, name,
                                      PartnerInitiateTransferRequest(recipient_email_id=BOB))
    return name


def assert_authorization_failed(ei, action):
    assert ei.value.status_code == 403, ei.value
    assert ei.value.error.code == "AuthorizationFailed", ei.value.error
    assert f"does not have authorization to perform action '{action}'" in ei.value.error.message


CANCEL = "Microsoft.Billing/billingAccounts/billingProfiles/customers/transfers/cancel/action"
WRITE = "Microsoft.Billing/billingAccounts/billingProfiles/customers/transfers/write"
READ = "Microsoft.Billing/billingAccounts/billingProfiles/customers/transfers/read"


def test_root_client_may_do_everything(verified):
    c = partner_client(verified, None)
    name = initiate(c, "c1")
    c.partner_transfers.cancel(PARTNER_ACCOUNT, PROFILE, "c1", name)


def test_user_without_policy_is_authorization_failed(verified):
    from azure.core.exceptions import HttpResponseError

    c = partner_client(verified, [])
    with pytest.raises(HttpResponseError) as ei:
        initiate(c, "c1")
    assert_authorization_failed(ei, WRITE)


def test_cancel_transfers_of_some_customers_only(verified):
    """A user who may cancel transfers of customer c1 only (resource-scoped), read all, and
    whose wildcard Allow on writes is overridden by an explicit Deny for c2."""
    from azure.core.exceptions import HttpResponseError

    root = partner_client(verified, None)
    t1, t2 = initiate(root, "c1"), initiate(root, "c2")
    scope = f"/providers/Microsoft.Billing/billingAccounts/{PARTNER_ACCOUNT}/billingProfiles/{PROFILE}/customers"
    c = partner_client(verified, [
        {"Effect": "Allow", "Action": "Microsoft.Billing/*/read", "Resource": "*"},
        {"Effect": "Allow", "Action": CANCEL, "Resource": f"{scope}/c1"},
        {"Effect": "Allow", "Action": "microsoft.billing/*/transfers/write", "Resource": "*"},
        {"Effect": "Deny", "Action": WRITE, "Resource": f"{scope}/c2"},
    ])
    c.partner_transfers.cancel(PARTNER_ACCOUNT, PROFILE, "c1", t1)
    with pytest.raises(HttpResponseError) as ei:
        c.partner_transfers.cancel(PARTNER_ACCOUNT, PROFILE, "c2", t2)
    assert_authorization_failed(ei, CANCEL)
    # The denial changed nothing: the c2 transfer is still pending.
    from azure.mgmt.billing.models import TransferStatus

    assert c.partner_transfers.get(PARTNER_ACCOUNT, PROFILE, "c2", t2).transfer_status == TransferStatus.PENDING
    initiate(c, "c1")
    with pytest.raises(HttpResponseError) as ei:
        initiate(c, "c2")
    assert_authorization_failed(ei, WRITE)


def test_deleting_the_user_refuses_its_tokens(verified):
    from azure.core.exceptions import ClientAuthenticationError

    c = partner_client(verified, [{"Effect": "Allow", "Action": "*", "Resource": "*"}])
    initiate(c, "c1")
    users = verified.admin_json("user", "list", "--account", IAM_TENANT, "--json")
    verified.admin("user", "delete", "--account", IAM_TENANT, "--name", users[-1]["name"])
    with pytest.raises(ClientAuthenticationError):
        initiate(c, "c1")
