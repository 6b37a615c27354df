"""Debian's real pylxd 2.2.10 against corrald over HTTPS.

Contract: reference/lxd-client-compat.md section 5 (pylxd authenticates by
POSTing its certificate as base64 with embedded newlines and the trust
password, then re-reads `GET /1.0`; lists are URL lists).

pylxd runs in a child /usr/bin/python3 with a clean environment: HOME is a
temp dir (so no ~/.config/lxc certificate is picked up) and the
REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE variables, which override requests'
`verify=False`, are left out. The child prints one JSON object.
"""

import datetime
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import textwrap

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

PYTHON = "/usr/bin/python3"
PASSWORD = "pylxd-compat-pw"
TIMEOUT = 60


def have_pylxd():
    try:
        return subprocess.run([PYTHON, "-c", "import pylxd"], stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


pytestmark = pytest.mark.skipif(not have_pylxd(), reason="pylxd not installed")


@pytest.fixture
def workdir():
    path = tempfile.mkdtemp(prefix="corral-pylxd-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
    assert not os.path.exists(path)


def write_client_cert(workdir, cn="pylxd-client"):
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .sign(key, hashes.SHA384()))
    crt = os.path.join(workdir, "client.crt")
    key_path = os.path.join(workdir, "client.key")
    with open(crt, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.TraditionalOpenSSL,
                                  serialization.NoEncryption()))
    fp = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    return crt, key_path, fp


def run_pylxd(workdir, script, **params):
    """Run @script (which sees PARAMS and must print one JSON line)."""
    path = os.path.join(workdir, "script.py")
    with open(path, "w") as f:
        f.write("import json, warnings\nwarnings.simplefilter('ignore')\n")
        f.write("PARAMS = %r\n" % (params,))
        f.write(textwrap.dedent(script))
    env = {"HOME": workdir, "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    r = subprocess.run([PYTHON, path], env=env, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=TIMEOUT, cwd=workdir)
    assert r.returncode == 0, "pylxd script failed:\nstdout=%s\nstderr=%s" % (r.stdout, r.stderr)
    lines = [line for line in r.stdout.splitlines() if line.strip()]
    assert lines, r.stderr
    return json.loads(lines[-1])


@pytest.fixture
def d(daemon_factory):
    return daemon_factory.start(ready_path="/1.0/projects", debug=True)


@pytest.fixture
def endpoint(d):
    status, _, body = d.request("PATCH", "/1.0", body={"config": {
        "core.https_address": "127.0.0.1:0", "core.trust_password": PASSWORD}})
    assert status == 200, body
    addrs = d.get("/1.0")[2]["metadata"]["environment"]["addresses"]
    assert addrs and addrs[0].startswith("127.0.0.1:"), addrs
    return "https://" + addrs[0]


AUTH_SCRIPT = """
import pylxd
from pylxd import exceptions
c = pylxd.Client(endpoint=PARAMS["endpoint"], cert=(PARAMS["crt"], PARAMS["key"]), verify=False)
out = {"before": c.trusted, "auth_before": c.host_info["auth"]}
try:
    c.profiles.all()
    out["untrusted_list"] = "allowed"
except exceptions.LXDAPIException as e:
    out["untrusted_list"] = str(e)
if PARAMS.get("wrong"):
    try:
        c.authenticate(PARAMS["wrong"])
        out["wrong"] = "accepted"
    except exceptions.LXDAPIException as e:
        out["wrong"] = str(e)
c.authenticate(PARAMS["password"])
out["after"] = c.trusted
out["extensions"] = c.host_info["api_extensions"]
out["profiles"] = sorted(p.name for p in c.profiles.all())
created = c.profiles.create("pyprof", config={"user.k": "v"}, devices={})
out["created"] = [created.name, created.config]
out["profiles_after"] = sorted(p.name for p in c.profiles.all())
out["certificates"] = sorted(x.fingerprint for x in c.certificates.all())
cert = c.certificates.get(PARAMS["fp"])
out["cert"] = {"name": cert.name, "type": cert.type, "fingerprint": cert.fingerprint}
# A fresh client with the same certificate is trusted from the start.
again = pylxd.Client(endpoint=PARAMS["endpoint"], cert=(PARAMS["crt"], PARAMS["key"]), verify=False)
out["again"] = again.trusted
print(json.dumps(out))
"""


def test_pylxd_authenticate_profiles_certificates(d, endpoint, workdir):
    crt, key, fp = write_client_cert(workdir)
    out = run_pylxd(workdir, AUTH_SCRIPT, endpoint=endpoint, crt=crt, key=key, fp=fp,
                    password=PASSWORD, wrong="not-the-password")
    assert out["before"] is False and out["auth_before"] == "untrusted"
    assert "not authorized" in out["untrusted_list"], out
    assert "not authorized" in out["wrong"], out
    assert out["after"] is True
    assert "projects" in out["extensions"]
    assert out["profiles"] == ["default"]
    assert out["created"] == ["pyprof", {"user.k": "v"}]
    assert out["profiles_after"] == ["default", "pyprof"]
    assert out["certificates"] == [fp]
    assert out["cert"] == {"name": "pylxd-client", "type": "client", "fingerprint": fp}
    assert out["again"] is True

    # The server side agrees.
    status, _, body = d.get("/1.0/certificates/" + fp)
    assert status == 200 and body["metadata"]["name"] == "pylxd-client", body
    assert d.get("/1.0/profiles/pyprof")[0] == 200
    assert PASSWORD not in d.log()
