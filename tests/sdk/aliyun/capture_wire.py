"""Reproduces CAPTURES.md: points the official CAS SDK at a local recording server and prints what
it sends for every order operation (v3 and v1 signing), then how it treats error bodies.

    python tests/sdk/aliyun/capture_wire.py > captures.json
"""
import json, threading, http.server
from alibabacloud_tea_openapi.models import Config
from alibabacloud_cas20200407.client import Client
from alibabacloud_cas20200407 import models as M

LOG = []
RESP = {"status": 200, "body": b'{"RequestId":"X"}', "headers": {}}

class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def _do(self):
        n = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(n) if n else b""
        LOG.append({"method": self.command, "path": self.path, "headers": list(self.headers.items()), "body": body.decode(errors="replace")})
        self.send_response(RESP["status"])
        for k, v in RESP["headers"].items(): self.send_header(k, v)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(RESP["body"])))
        self.end_headers(); self.wfile.write(RESP["body"])
    do_POST = do_GET = do_PUT = _do
    def log_message(self, *a): pass

srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
threading.Thread(target=srv.serve_forever, daemon=True).start()
port = srv.server_address[1]

def client(v1=False):
    cfg = Config(access_key_id="1234567890123456", access_key_secret="secret",
                 endpoint=f"127.0.0.1:{port}", protocol="http", region_id="cn-hangzhou")
    if v1: cfg.signature_algorithm = "v2"
    return Client(cfg)

CSR = "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n"
def tags(cls): return [cls(key="env", value="a b"), cls(key="k2", value="v2")]
CALLS = [
 ("CreateCertificateForPackageRequest", "create_certificate_for_package_request", lambda: M.CreateCertificateForPackageRequestRequest(product_code="digicert-free-1-free", domain="example.com", csr=CSR, validate_type="DNS", username="Ann", phone="13800000000", email="a@example.com", company_name="ACME", tags=tags(M.CreateCertificateForPackageRequestRequestTags))),
 ("CreateCertificateRequest", "create_certificate_request", lambda: M.CreateCertificateRequestRequest(product_code="digicert-free-1-free", domain="example.com", validate_type="FILE", username="Ann", phone="1", email="a@example.com", tags=tags(M.CreateCertificateRequestRequestTags))),
 ("CreateCertificateWithCsrRequest", "create_certificate_with_csr_request", lambda: M.CreateCertificateWithCsrRequestRequest(csr=CSR, product_code="digicert-free-1-free", validate_type="DNS", username="Ann", phone="1", email="a@example.com")),
 ("DescribeCertificateState", "describe_certificate_state", lambda: M.DescribeCertificateStateRequest(order_id=1234567890123)),
 ("DescribePackageState", "describe_package_state", lambda: M.DescribePackageStateRequest(product_code="digicert-free-1-free")),
 ("ListUserCertificateOrder", "list_user_certificate_order", lambda: M.ListUserCertificateOrderRequest(keyword="example", status="ISSUED", order_type="CPACK", current_page=1, show_size=50, resource_group_id="rg-1")),
 ("CancelOrderRequest", "cancel_order_request", lambda: M.CancelOrderRequestRequest(order_id=12345)),
 ("CancelCertificateForPackageRequest", "cancel_certificate_for_package_request", lambda: M.CancelCertificateForPackageRequestRequest(order_id=12345)),
 ("DeleteCertificateRequest", "delete_certificate_request", lambda: M.DeleteCertificateRequestRequest(order_id=12345)),
 ("RenewCertificateOrderForPackageRequest", "renew_certificate_order_for_package_request", lambda: M.RenewCertificateOrderForPackageRequestRequest(order_id=12345, csr=CSR, tags=tags(M.RenewCertificateOrderForPackageRequestRequestTags))),
 ("UploadUserCertificate", "upload_user_certificate", lambda: M.UploadUserCertificateRequest(name="mycert", cert="-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----", key="-----BEGIN PRIVATE KEY-----\nBBBB\n-----END PRIVATE KEY-----", resource_group_id="rg-1", tags=tags(M.UploadUserCertificateRequestTags))),
 ("GetUserCertificateDetail", "get_user_certificate_detail", lambda: M.GetUserCertificateDetailRequest(cert_id=777, cert_filter=False)),
 ("DeleteUserCertificate", "delete_user_certificate", lambda: M.DeleteUserCertificateRequest(cert_id=777)),
]


def probe_errors():
    """Error bodies at several statuses: exception class, e.code, e.status_code, attempts."""
    res = {}
    err = {"Code": "X", "Message": "m", "RequestId": "r"}
    for status, hdrs in ((400, {}), (404, {}), (500, {}), (400, {"x-acs-retry-after": "1000"})):
        RESP.update(status=status, body=json.dumps(err).encode(), headers=hdrs)
        LOG.clear()
        try:
            client().describe_package_state(M.DescribePackageStateRequest(product_code="x"))
            res[f"{status} {hdrs}"] = "no exception"
        except Exception as e:  # noqa: BLE001
            res[f"{status} {hdrs}"] = {"class": type(e).__name__, "code": getattr(e, "code", None),
                                       "status_code": getattr(e, "status_code", None), "attempts": len(LOG)}
    RESP.update(status=200, body=b'{"RequestId":"X"}', headers={})
    return res


def main():
    out = {}
    for v1 in (False, True):
        c = client(v1)
        for action, meth, mk in CALLS:
            LOG.clear()
            r = getattr(c, meth)(mk())
            rec = LOG[0]
            out[f"{'v1' if v1 else 'v3'} {action}"] = rec
    out["errors"] = probe_errors()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
