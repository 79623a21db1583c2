"""Azure credentials are OAuth clients: `admin access-key disable|enable|delete --id CLIENT_ID`
turns them off the way Entra refuses a disabled application (AADSTS7000112), with the real
azure-identity ClientSecretCredential. (Policies for Azure callers are not built yet:
COMPATIBILITY.md, "Identity and access".)"""

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
