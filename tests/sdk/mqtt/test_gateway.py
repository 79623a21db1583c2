"""The device gateway end to end: a Mosquitto broker on a free port, certplane serving
`--gateway` in front of it, real MQTT clients (mosquitto_pub / mosquitto_sub, paho-mqtt) with
client certificates, and the OnsMqtt SDK changing certificate status while they are connected."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import time

import boto3
import paho.mqtt.client as paho
import pytest
from botocore.config import Config
from cryptography.hazmat.primitives import serialization

import certplane_server
import sdk_engine
from mqtt_session import closed_within, open_session
from onsmqtt_harness import (ACCOUNT_A, INSTANCE_A, M, OnsMqttServer, make_ca, make_cert,
                             make_session_instances, mqtt_client, pem_of, register_ca, sn_of)

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    certplane_server.require(shutil.which("mosquitto_pub") is not None
                             and shutil.which(MOSQUITTO) is not None,
                             "mosquitto and mosquitto-clients are needed for the gateway tests")
    port = certplane_server.free_port()
    d = tmp_path_factory.mktemp("broker")
    conf = d / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.05)
    yield port
    proc.terminate()
    proc.wait(timeout=10)


class GatewayNode(OnsMqttServer):
    """A --dev server with the gateway on; `shares_with` names the data dir of another node whose
    storage (on PostgreSQL: database) this one uses too."""

    shares_with = None

    def env(self) -> dict:
        return sdk_engine.server_env(self.shares_with or self.data_dir)


def start_gateway(binary, broker: int, data, shares_with=None) -> GatewayNode:
    gport = certplane_server.free_port()
    srv = GatewayNode(binary, data, dev=True, extra_args=[
        "--gateway", f"127.0.0.1:{gport}", "--gateway-upstream", f"127.0.0.1:{broker}",
        "--gateway-tenant", INSTANCE_A])
    srv.shares_with = shares_with
    srv.start()
    srv.gateway_port = gport
    srv.ca_file = str(data / "ca.pem")
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", gport), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.05)
    return srv


@pytest.fixture(scope="module")
def gw(binary, broker, tmp_path_factory):
    srv = start_gateway(binary, broker, tmp_path_factory.mktemp("gateway") / "data")
    make_session_instances(srv)
    yield srv
    srv.stop()


@pytest.fixture
def mq(gw):
    gw.reset()
    return mqtt_client(gw, ACCOUNT_A)


class Device:
    def __init__(self, tmp_path, cert, key, name="dev"):
        self.cert_file = tmp_path / f"{name}.pem"
        self.key_file = tmp_path / f"{name}.key"
        self.cert_file.write_text(pem_of(cert))
        self.key_file.write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        self.sn = sn_of(cert)

    def args(self, gw):
        return ["-h", "127.0.0.1", "-p", str(gw.gateway_port), "--cafile", gw.ca_file,
                "--cert", str(self.cert_file), "--key", str(self.key_file)]

    def publish(self, gw, topic="t", message="hello"):
        return subprocess.run(["mosquitto_pub", *self.args(gw), "-t", topic, "-m", message],
                              capture_output=True, text=True, timeout=15)

    def subscribe(self, gw, topic="t"):
        return subprocess.Popen(["mosquitto_sub", *self.args(gw), "-t", topic, "-v"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_subscribed(gw, dev, sub, topic="t"):
    """Publishes until the subscriber has received one message (it is connected and subscribed)."""
    deadline = time.time() + 10
    while time.time() < deadline:
        assert dev.publish(gw, topic, "ping").returncode == 0
        time.sleep(0.2)
        if sub.poll() is not None:
            pytest.fail(f"subscriber exited: {sub.stderr.read()}")
        import select
        r, _, _ = select.select([sub.stdout], [], [], 0.3)
        if r:
            assert sub.stdout.readline().startswith(f"{topic} ")
            return
    pytest.fail("the subscriber never received a message through the gateway")


def device(mq, tmp_path, cn="device-1", **kw):
    ca = register_ca(mq)
    cert, key = make_cert(ca, cn, **kw)
    return ca, Device(tmp_path, cert, key)


def test_publish_subscribe_round_trip_and_auto_registration(gw, mq, tmp_path):
    ca, dev = device(mq, tmp_path)
    sub = dev.subscribe(gw)
    try:
        wait_subscribed(gw, dev, sub)
    finally:
        sub.kill()
    body = mq.list_device_certificate_by_ca_sn(M.ListDeviceCertificateByCaSnRequest(
        mqtt_instance_id=INSTANCE_A, ca_sn=ca.extra["sn"], page_no="1", page_size="10")).body
    assert body.data.total == 1
    vo = body.data.device_certificate_vos[0]
    assert vo.status == "1" and vo.device_name == "device-1"
    assert vo.device_content.strip() == dev.cert_file.read_text().strip()


def test_paho_mqtt_client_through_the_gateway(gw, mq, tmp_path):
    _, dev = device(mq, tmp_path)
    got = []
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    c.tls_set(ca_certs=gw.ca_file, certfile=str(dev.cert_file), keyfile=str(dev.key_file),
              tls_version=ssl.PROTOCOL_TLS_CLIENT)
    c.on_message = lambda _c, _u, msg: got.append(msg.payload)
    c.connect("127.0.0.1", gw.gateway_port)
    c.loop_start()
    try:
        c.subscribe("p", qos=1)
        deadline = time.time() + 10
        while not got and time.time() < deadline:
            c.publish("p", b"v5", qos=1)
            time.sleep(0.2)
    finally:
        c.loop_stop()
        c.disconnect()
    assert got and got[0] == b"v5"


def inactivate_while_subscribed(api, gw, ca, dev) -> None:
    """`dev` subscribed through `gw`; InactivateDeviceCertificate through `api` (any node): the
    live session ends within a second and a reconnect is refused; then ActiveDeviceCertificate."""
    sub = dev.subscribe(gw)
    try:
        wait_subscribed(gw, dev, sub)
        t0 = time.time()
        api.inactivate_device_certificate(M.InactivateDeviceCertificateRequest(
            mqtt_instance_id=INSTANCE_A, ca_sn=ca.extra["sn"], device_sn=dev.sn))
        sub.wait(timeout=5)
        assert time.time() - t0 < 1.0, "the session outlived the inactivation by a second"
    finally:
        sub.kill()
    assert dev.publish(gw).returncode != 0
    api.active_device_certificate(M.ActiveDeviceCertificateRequest(
        mqtt_instance_id=INSTANCE_A, ca_sn=ca.extra["sn"], device_sn=dev.sn))


def test_inactivate_drops_the_live_session_and_reactivation_lets_it_back(gw, mq, tmp_path):
    ca, dev = device(mq, tmp_path)
    inactivate_while_subscribed(mq, gw, ca, dev)
    assert dev.publish(gw).returncode == 0


def test_inactivating_the_ca_shuts_out_its_devices(gw, mq, tmp_path):
    ca, dev = device(mq, tmp_path)
    sub = dev.subscribe(gw)
    try:
        wait_subscribed(gw, dev, sub)
        mq.inactivate_ca_certificate(M.InactivateCaCertificateRequest(
            mqtt_instance_id=INSTANCE_A, sn=ca.extra["sn"]))
        sub.wait(timeout=5)
    finally:
        sub.kill()
    other_cert, other_key = make_cert(ca, "device-2")
    assert Device(tmp_path, other_cert, other_key, "d2").publish(gw).returncode != 0
    assert dev.publish(gw).returncode != 0


def test_deleting_the_ca_deletes_its_devices(gw, mq, tmp_path):
    ca, dev = device(mq, tmp_path)
    assert dev.publish(gw).returncode == 0
    mq.delete_ca_certificate(M.DeleteCaCertificateRequest(mqtt_instance_id=INSTANCE_A,
                                                          sn=ca.extra["sn"]))
    body = mq.list_device_certificate(M.ListDeviceCertificateRequest(
        mqtt_instance_id=INSTANCE_A, page_no="1", page_size="10")).body
    assert body.data.total == 0
    assert dev.publish(gw).returncode != 0


def test_unknown_ca_expired_and_not_yet_valid_are_refused(gw, mq, tmp_path):
    import datetime as dt
    stranger = make_ca("not registered")
    cert, key = make_cert(stranger, "stranger")
    assert Device(tmp_path, cert, key, "s").publish(gw).returncode != 0
    ca = register_ca(mq)
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=40)
    cert, key = make_cert(ca, "old", not_before=past, days=30)
    assert Device(tmp_path, cert, key, "old").publish(gw).returncode != 0
    future = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=2)
    cert, key = make_cert(ca, "young", not_before=future)
    assert Device(tmp_path, cert, key, "young").publish(gw).returncode != 0
    body = mq.list_device_certificate(M.ListDeviceCertificateRequest(
        mqtt_instance_id=INSTANCE_A, page_no="1", page_size="10")).body
    assert body.data.total == 0


# --------------------------------------------------------------------------------------------
# AWS IoT devices: the SNI route and just-in-time registration

AWS_ACCOUNT = "111111111111"
AWS_REGION = "us-east-1"


def iot_client(srv):
    """boto3 against the --dev server: the 12-digit access key id is the account."""
    return boto3.client("iot", endpoint_url=srv.url, region_name=AWS_REGION,
                        aws_access_key_id=AWS_ACCOUNT, aws_secret_access_key="dev-secret",
                        config=Config(retries={"max_attempts": 1}))


def mqtt_connect(gw, dev: Device, server_name: str, client_id: str = "jitr-device"):
    """An MQTT session of `dev` through the gateway with SNI `server_name`, or None when the
    device was refused (mqtt_session.open_session)."""
    return open_session(gw.gateway_port, gw.ca_file, dev.cert_file, dev.key_file, server_name,
                        client_id)


def register_aws_ca(iot, ca):
    code = iot.get_registration_code()["registrationCode"]
    verification, _ = make_cert(ca, code)
    return iot.register_ca_certificate(
        caCertificate=ca.pem, verificationCertificate=pem_of(verification), setAsActive=True,
        allowAutoRegistration=True)["certificateId"]


def test_aws_device_through_the_sni_route_with_jitr(gw, tmp_path):
    import hashlib
    gw.reset()
    iot = iot_client(gw)
    endpoint = iot.describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"]
    assert endpoint == f"a{AWS_ACCOUNT}-ats.iot.{AWS_REGION}.localhost"
    ca = make_ca("aws jitr CA")
    ca_id = register_aws_ca(iot, ca)
    cert, key = make_cert(ca, "thing-1")
    dev = Device(tmp_path, cert, key, "aws")
    cert_id = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()

    # First contact: registered as PENDING_ACTIVATION under its CA, and refused.
    assert mqtt_connect(gw, dev, endpoint) is None
    described = iot.describe_certificate(certificateId=cert_id)["certificateDescription"]
    assert described["status"] == "PENDING_ACTIVATION"
    assert described["caCertificateId"] == ca_id
    listed = iot.list_certificates_by_ca(caCertificateId=ca_id)["certificates"]
    assert [c["certificateId"] for c in listed] == [cert_id]
    assert mqtt_connect(gw, dev, endpoint) is None, "a pending certificate got a session"

    # Activated (what a JITR Lambda does): the device gets in through the SNI route.
    iot.update_certificate(certificateId=cert_id, newStatus="ACTIVE")
    s = mqtt_connect(gw, dev, endpoint)
    assert s is not None, "the activated device was refused"
    try:
        # The same device under another account's endpoint name is not that account's device.
        assert mqtt_connect(gw, dev, f"a222222222222-ats.iot.{AWS_REGION}.localhost") is None
        iot.update_certificate(certificateId=cert_id, newStatus="INACTIVE")
        assert closed_within(s, 1.0), "the live session outlived UpdateCertificate INACTIVE"
    finally:
        s.close()
    assert mqtt_connect(gw, dev, endpoint) is None


def test_aws_ca_without_auto_registration_refuses_unknown_devices(gw, tmp_path):
    import hashlib
    gw.reset()
    iot = iot_client(gw)
    endpoint = iot.describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"]
    ca = make_ca("aws manual CA")
    ca_id = register_aws_ca(iot, ca)
    iot.update_ca_certificate(certificateId=ca_id, newAutoRegistrationStatus="DISABLE")
    cert, key = make_cert(ca, "thing-2")
    dev = Device(tmp_path, cert, key, "aws2")
    assert mqtt_connect(gw, dev, endpoint) is None
    assert iot.list_certificates_by_ca(caCertificateId=ca_id)["certificates"] == []
    # Registered ahead of time (RegisterCertificate, ACTIVE): let in.
    resp = iot.register_certificate(certificatePem=pem_of(cert), caCertificatePem=ca.pem,
                                    status="ACTIVE")
    assert resp["certificateId"] == hashlib.sha256(
        cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    s = mqtt_connect(gw, dev, endpoint)
    assert s is not None
    s.close()


# Just-in-time provisioning: AWS's documented JITP template shape (a thing named by the
# certificate's CN, the registering certificate by its id, a policy), applied on first contact.
JITP_POLICY_DOC = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["iot:Connect", "iot:Publish"], "Resource": ["*"]}]})
JITP_TEMPLATE = {
    "Parameters": {
        "AWS::IoT::Certificate::CommonName": {"Type": "String"},
        "AWS::IoT::Certificate::SerialNumber": {"Type": "String"},
        "AWS::IoT::Certificate::Id": {"Type": "String"},
        "Site": {"Type": "String", "Default": "plant-7"},
    },
    "Resources": {
        "thing": {
            "Type": "AWS::IoT::Thing",
            "Properties": {
                "ThingName": {"Ref": "AWS::IoT::Certificate::CommonName"},
                "AttributePayload": {"version": "v1", "site": {"Ref": "Site"},
                                     "serial": {"Ref": "AWS::IoT::Certificate::SerialNumber"}},
                "ThingGroups": ["jitp-fleet"],
            },
        },
        "certificate": {
            "Type": "AWS::IoT::Certificate",
            "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"},
                           "Status": "ACTIVE"},
        },
        "policy": {
            "Type": "AWS::IoT::Policy",
            "Properties": {"PolicyName": "jitp-device-policy", "PolicyDocument": JITP_POLICY_DOC},
        },
    },
}


def register_aws_ca_with_template(iot, ca, template):
    code = iot.get_registration_code()["registrationCode"]
    verification, _ = make_cert(ca, code)
    return iot.register_ca_certificate(
        caCertificate=ca.pem, verificationCertificate=pem_of(verification), setAsActive=True,
        allowAutoRegistration=True,
        registrationConfig={"templateBody": json.dumps(template),
                            "roleArn": f"arn:aws:iam::{AWS_ACCOUNT}:role/JITPRole"})["certificateId"]


def test_aws_jitp_template_provisions_thing_policy_and_attachments(gw, tmp_path):
    import hashlib
    gw.reset()
    iot = iot_client(gw)
    endpoint = iot.describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"]
    iot.create_thing_group(thingGroupName="jitp-fleet")
    ca = make_ca("aws jitp CA")
    ca_id = register_aws_ca_with_template(iot, ca, JITP_TEMPLATE)
    cert, key = make_cert(ca, "jitp-thing-1")
    dev = Device(tmp_path, cert, key, "jitp")
    cert_id = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    cert_arn = f"arn:aws:iot:{AWS_REGION}:{AWS_ACCOUNT}:cert/{cert_id}"

    # First contact provisions and is still refused (AWS drops the first connection too).
    assert mqtt_connect(gw, dev, endpoint) is None
    described = iot.describe_certificate(certificateId=cert_id)["certificateDescription"]
    assert described["status"] == "ACTIVE"
    assert described["caCertificateId"] == ca_id
    thing = iot.describe_thing(thingName="jitp-thing-1")
    attrs = thing["attributes"]
    assert int(attrs.pop("serial"), 16) == cert.serial_number
    assert attrs == {"version": "v1", "site": "plant-7"}
    assert iot.list_thing_principals(thingName="jitp-thing-1")["principals"] == [cert_arn]
    assert iot.list_principal_things(principal=cert_arn)["things"] == ["jitp-thing-1"]
    policy = iot.get_policy(policyName="jitp-device-policy")
    assert json.loads(policy["policyDocument"]) == json.loads(JITP_POLICY_DOC)
    attached = iot.list_attached_policies(target=cert_arn)["policies"]
    assert [p["policyName"] for p in attached] == ["jitp-device-policy"]
    assert iot.list_targets_for_policy(policyName="jitp-device-policy")["targets"] == [cert_arn]
    groups = iot.list_thing_groups_for_thing(thingName="jitp-thing-1")["thingGroups"]
    assert [g["groupName"] for g in groups] == ["jitp-fleet"]

    # The reconnect gets a session: the template activated the certificate.
    s = mqtt_connect(gw, dev, endpoint)
    assert s is not None, "the provisioned device was refused on its second connection"
    s.close()

    # A second device of the CA: its own thing, and the same (existing) policy attached.
    cert2, key2 = make_cert(ca, "jitp-thing-2")
    dev2 = Device(tmp_path, cert2, key2, "jitp2")
    cert2_arn = (f"arn:aws:iot:{AWS_REGION}:{AWS_ACCOUNT}:cert/"
                 + hashlib.sha256(cert2.public_bytes(serialization.Encoding.DER)).hexdigest())
    assert mqtt_connect(gw, dev2, endpoint) is None
    assert iot.list_thing_principals(thingName="jitp-thing-2")["principals"] == [cert2_arn]
    assert sorted(iot.list_targets_for_policy(policyName="jitp-device-policy")["targets"]) == \
        sorted([cert_arn, cert2_arn])
    things = iot.list_things_in_thing_group(thingGroupName="jitp-fleet")["things"]
    assert sorted(things) == ["jitp-thing-1", "jitp-thing-2"]
    s = mqtt_connect(gw, dev2, endpoint)
    assert s is not None
    s.close()


def test_aws_jitp_template_that_cannot_apply_leaves_the_certificate_pending(gw, tmp_path):
    import hashlib
    gw.reset()
    iot = iot_client(gw)
    endpoint = iot.describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"]
    # The group the template names does not exist: nothing of the template is created.
    ca = make_ca("aws jitp CA 2")
    register_aws_ca_with_template(iot, ca, JITP_TEMPLATE)
    cert, key = make_cert(ca, "jitp-thing-3")
    dev = Device(tmp_path, cert, key, "jitp3")
    cert_id = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    assert mqtt_connect(gw, dev, endpoint) is None
    described = iot.describe_certificate(certificateId=cert_id)["certificateDescription"]
    assert described["status"] == "PENDING_ACTIVATION"
    assert iot.list_things()["things"] == []
    assert [p["policyName"] for p in iot.list_policies()["policies"]] == []
    assert mqtt_connect(gw, dev, endpoint) is None


def test_aws_jitp_follows_the_template_named_in_registration_config(gw, tmp_path):
    """registrationConfig.templateName: the default version of that JITP provisioning template
    is applied; a template of another type (FLEET_PROVISIONING) is not."""
    import hashlib
    gw.reset()
    iot = iot_client(gw)
    endpoint = iot.describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"]
    iot.create_thing_group(thingGroupName="jitp-fleet")
    role = f"arn:aws:iam::{AWS_ACCOUNT}:role/JITPRole"
    placeholder = {"Resources": {"policy": {"Type": "AWS::IoT::Policy", "Properties": {
        "PolicyName": "placeholder-policy", "PolicyDocument": JITP_POLICY_DOC}}}}
    iot.create_provisioning_template(templateName="jitp-named",
                                     templateBody=json.dumps(placeholder),
                                     provisioningRoleArn=role, enabled=True, type="JITP")
    # The default version is the one applied: the first is a placeholder.
    iot.create_provisioning_template_version(templateName="jitp-named",
                                             templateBody=json.dumps(JITP_TEMPLATE),
                                             setAsDefault=True)
    iot.create_provisioning_template(templateName="fleet-named",
                                     templateBody=json.dumps(JITP_TEMPLATE),
                                     provisioningRoleArn=role, enabled=True)
    results = {}
    for template, cn in (("jitp-named", "named-thing-1"), ("fleet-named", "named-thing-2")):
        ca = make_ca(f"aws jitp CA {template}")
        code = iot.get_registration_code()["registrationCode"]
        verification, _ = make_cert(ca, code)
        iot.register_ca_certificate(
            caCertificate=ca.pem, verificationCertificate=pem_of(verification),
            setAsActive=True, allowAutoRegistration=True,
            registrationConfig={"templateName": template, "roleArn": role})
        cert, key = make_cert(ca, cn)
        dev = Device(tmp_path, cert, key, cn)
        cert_id = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
        assert mqtt_connect(gw, dev, endpoint) is None
        results[template] = iot.describe_certificate(
            certificateId=cert_id)["certificateDescription"]["status"]
        if template == "jitp-named":
            assert iot.describe_thing(thingName=cn)["attributes"]["site"] == "plant-7"
            s = mqtt_connect(gw, dev, endpoint)
            assert s is not None, "the device provisioned by the named template was refused"
            s.close()
    assert results == {"jitp-named": "ACTIVE", "fleet-named": "PENDING_ACTIVATION"}
    assert [p["policyName"] for p in iot.list_policies()["policies"]] == ["jitp-device-policy"]
    assert [t for t in iot.list_things()["things"]
            if t["thingName"] == "named-thing-2"] == []


def subject_cert(ca, attrs):
    """A device certificate of `ca` whose subject holds `attrs` (NameOID, value) pairs."""
    import datetime as dt
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    key = ec.generate_private_key(ec.SECP256R1())
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(o, v) for o, v in attrs]))
            .issuer_name(ca.cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca.key, hashes.SHA256()))
    return cert, key


def test_aws_jitp_gives_the_subject_parameters_and_requires_every_declared_one(gw, tmp_path):
    """AWS's JITP parameters from the certificate's subject (Country, Organization,
    OrganizationalUnit, DistinguishedNameQualifier, StateName, CommonName); "the certificate must
    contain values for all of the parameters in the template body"."""
    import hashlib
    from cryptography.x509.oid import NameOID
    gw.reset()
    iot = iot_client(gw)
    endpoint = iot.describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"]
    fields = ["Country", "Organization", "OrganizationalUnit", "DistinguishedNameQualifier",
              "StateName", "CommonName"]
    template = {
        "Parameters": {f"AWS::IoT::Certificate::{f}": {"Type": "String"} for f in fields},
        "Resources": {
            "thing": {"Type": "AWS::IoT::Thing", "Properties": {
                "ThingName": {"Fn::Join": ["-", [{"Ref": "AWS::IoT::Certificate::Country"},
                                                 {"Ref": "AWS::IoT::Certificate::CommonName"}]]},
                "AttributePayload": {f.lower(): {"Ref": f"AWS::IoT::Certificate::{f}"}
                                     for f in fields[:5]}}},
            "certificate": {"Type": "AWS::IoT::Certificate", "Properties": {
                "CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "ACTIVE"}},
            "policy": {"Type": "AWS::IoT::Policy",
                       "Properties": {"PolicyDocument": JITP_POLICY_DOC}},
        },
    }
    ca = make_ca("aws jitp CA 3")
    register_aws_ca_with_template(iot, ca, template)
    full = [(NameOID.COUNTRY_NAME, "DE"), (NameOID.STATE_OR_PROVINCE_NAME, "Bavaria"),
            (NameOID.ORGANIZATION_NAME, "Acme"), (NameOID.ORGANIZATIONAL_UNIT_NAME, "Lamps"),
            (NameOID.DN_QUALIFIER, "q1"), (NameOID.COMMON_NAME, "lamp-9")]
    cert, key = subject_cert(ca, full)
    dev = Device(tmp_path, cert, key, "jitp-subject")
    cert_id = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    assert mqtt_connect(gw, dev, endpoint) is None
    assert iot.describe_thing(thingName="DE-lamp-9")["attributes"] == {
        "country": "DE", "organization": "Acme", "organizationalunit": "Lamps",
        "distinguishednamequalifier": "q1", "statename": "Bavaria"}
    cert_arn = f"arn:aws:iot:{AWS_REGION}:{AWS_ACCOUNT}:cert/{cert_id}"
    assert iot.list_thing_principals(thingName="DE-lamp-9")["principals"] == [cert_arn]
    # A policy given by document alone is named by the document's hash (COMPATIBILITY.md).
    (policy,) = iot.list_attached_policies(target=cert_arn)["policies"]
    assert len(policy["policyName"]) == 40
    s = mqtt_connect(gw, dev, endpoint)
    assert s is not None
    s.close()

    # No OrganizationalUnit in the subject: the template is not applied.
    cert2, key2 = subject_cert(ca, [a for a in full if a[0] != NameOID.ORGANIZATIONAL_UNIT_NAME])
    dev2 = Device(tmp_path, cert2, key2, "jitp-subject2")
    cert2_id = hashlib.sha256(cert2.public_bytes(serialization.Encoding.DER)).hexdigest()
    assert mqtt_connect(gw, dev2, endpoint) is None
    assert iot.describe_certificate(certificateId=cert2_id)["certificateDescription"][
        "status"] == "PENDING_ACTIVATION"
    assert [t["thingName"] for t in iot.list_things()["things"]] == ["DE-lamp-9"]
    assert mqtt_connect(gw, dev2, endpoint) is None


# --------------------------------------------------------------------------------------------
# Two nodes on one PostgreSQL database


def test_inactivation_through_one_node_drops_the_session_on_the_other(gw, broker, tmp_path):
    if sdk_engine.ENGINE != "postgres":
        pytest.skip("two nodes share a store only on PostgreSQL (this run is on SQLite)")
    gw.reset()
    node2 = start_gateway(gw.binary, broker, tmp_path / "node2", shares_with=gw.data_dir)
    try:
        node1_api = mqtt_client(gw, ACCOUNT_A)
        ca = register_ca(node1_api)
        cert, key = make_cert(ca, "roaming-device")
        dev = Device(tmp_path, cert, key, "roam")
        inactivate_while_subscribed(node1_api, node2, ca, dev)
        deadline = time.time() + 5
        while dev.publish(node2).returncode != 0:
            assert time.time() < deadline, "node 2 never let the reactivated device back"
            time.sleep(0.1)
    finally:
        node2.stop()


def gateway_sessions(gw) -> float:
    status, _, body = certplane_server.http_request(gw.url, "GET", "/metrics")
    assert status == 200
    for line in body.decode().splitlines():
        if line.startswith("certplane_gateway_sessions "):
            return float(line.split()[1])
    pytest.fail("no certplane_gateway_sessions sample in /metrics")


def test_metrics_count_live_gateway_sessions(gw, mq, tmp_path):
    _, dev = device(mq, tmp_path)

    def settles_at(want) -> bool:
        deadline = time.time() + 10
        while time.time() < deadline:
            if gateway_sessions(gw) == want:
                return True
            time.sleep(0.1)
        return False

    assert settles_at(0)
    sub = dev.subscribe(gw)
    try:
        wait_subscribed(gw, dev, sub)
        # The publishers of wait_subscribed have gone; the subscriber's session stays.
        assert settles_at(1), gateway_sessions(gw)
    finally:
        sub.kill()
    assert settles_at(0), gateway_sessions(gw)
