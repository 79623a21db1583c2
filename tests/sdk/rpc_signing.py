"""Raw Alibaba Cloud RPC requests signed by hand (v1 HMAC-SHA1 parameters, v3 ACS3-HMAC-SHA256
headers), for the tests the SDKs cannot express: replays, skewed clocks, tampered signatures.
Shared by every Alibaba product suite (CAS, OnsMqtt); the API version is a parameter."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import urllib.parse
import uuid

import certplane_server


def enc(s: str) -> str:
    return urllib.parse.quote(str(s), safe="-_.~")


def utc_stamp(offset_seconds: float = 0) -> str:
    t = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=offset_seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


class RawResponse(certplane_server.RawResponse):
    @property
    def code(self):
        try:
            return self.json().get("Code")
        except ValueError:
            return None


def v1_signed_params(version: str, action: str, params: dict, access_key: str, secret: str,
                     timestamp: str | None = None, nonce: str | None = None,
                     method: str = "POST") -> dict:
    p = {
        "Action": action, "Format": "json", "Version": version,
        "Timestamp": timestamp or utc_stamp(), "SignatureNonce": nonce or uuid.uuid4().hex,
        "SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0", "AccessKeyId": access_key,
    }
    p.update({k: str(v) for k, v in params.items()})
    canon = "&".join(f"{enc(k)}={enc(v)}" for k, v in sorted(p.items()))
    sts = f"{method}&{enc('/')}&{enc(canon)}"
    p["Signature"] = base64.b64encode(
        hmac.new((secret + "&").encode(), sts.encode(), hashlib.sha1).digest()).decode()
    return p


def send_v1(url: str, signed: dict) -> RawResponse:
    target = "/?" + "&".join(f"{enc(k)}={enc(v)}" for k, v in signed.items())
    status, headers, body = certplane_server.http_request(url, "POST", target, b"",
                                                          {"Content-Length": "0"})
    return RawResponse(status, headers, body)


def v3_signed(version: str, url: str, action: str, params: dict, access_key: str, secret: str,
              date: str | None = None, nonce: str | None = None) -> tuple[str, dict]:
    host = urllib.parse.urlsplit(url).netloc
    payload_hash = hashlib.sha256(b"").hexdigest()
    headers = {
        "host": host, "x-acs-action": action, "x-acs-version": version,
        "x-acs-date": date or utc_stamp(), "x-acs-signature-nonce": nonce or uuid.uuid4().hex,
        "x-acs-content-sha256": payload_hash, "accept": "application/json",
    }
    query = "&".join(f"{enc(k)}={enc(v)}" for k, v in sorted((k, str(v)) for k, v in params.items()))
    names = sorted(headers)
    canonical_headers = "".join(f"{h}:{headers[h].strip()}\n" for h in names)
    signed_headers = ";".join(names)
    canonical = "\n".join(["POST", "/", query, canonical_headers, signed_headers, payload_hash])
    sts = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
    sig = hmac.new(secret.encode(), sts.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = (f"ACS3-HMAC-SHA256 Credential={access_key},"
                                f"SignedHeaders={signed_headers},Signature={sig}")
    return ("/?" + query) if query else "/", headers


def send_v3(url: str, signed: tuple[str, dict]) -> RawResponse:
    target, headers = signed
    status, hdrs, body = certplane_server.http_request(
        url, "POST", target, b"", dict(headers, **{"Content-Length": "0"}))
    return RawResponse(status, hdrs, body)
