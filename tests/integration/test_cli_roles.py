"""`corral config trust roles|grant|revoke-role` against a real corrald.

Contract: issue 6, "CLI": `roles FP` prints a SCOPE / PROJECT / ROLE table
(`--format json` the `roles` array of GET /1.0/certificates/{fp}/roles);
`grant FP ROLE` and `revoke-role FP ROLE` take exactly one of
`--project P`, `--all-projects`, `--server`; FP may be a unique prefix.
Every CLI result is cross-checked through the API over the Unix socket,
and every failure checks that the server's bindings did not change.
"""

import base64
import datetime
import json
import os
import subprocess

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from helpers import CORRAL_BIN


def new_cert(name):
    """A self-signed P-384 client certificate: (base64 DER, fingerprint)."""
    key = ec.generate_private_key(ec.SECP384R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=30))
            .sign(key, hashes.SHA384()))
    der = cert.public_bytes(serialization.Encoding.DER)
    return (base64.b64encode(der).decode(),
            cert.fingerprint(hashes.SHA256()).hex())


def api(d, method, path, body=None, status=200):
    st, _, resp = d.request(method, path, body=body)
    assert st == status, (method, path, st, resp)
    return resp


def roles_of(d, fp):
    return api(d, "GET", "/1.0/certificates/%s/roles" % fp)["metadata"]


def corral(d, *args):
    e = dict(os.environ)
    e.pop("CORRAL_DIR", None)
    return subprocess.run(
        [CORRAL_BIN, "--socket", d.socket_path] + list(args),
        stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=10, env=e)


def ok(d, *args):
    r = corral(d, *args)
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    assert r.stderr == "", (args, r.stderr)
    return r.stdout


def fails(d, *args):
    r = corral(d, *args)
    assert r.returncode == 1, (args, r.returncode, r.stdout, r.stderr)
    assert r.stderr.startswith("Error: "), (args, r.stderr)
    assert r.stdout == "", (args, r.stdout)
    return r.stderr


def trust(*args):
    return ("config", "trust") + args


def dev_auditor():
    return {"scope": "project", "project": "dev", "role": "auditor"}


@pytest.fixture
def env(daemon_factory):
    """A daemon with projects dev and prod and one certificate added over
    the Unix socket with no roles at all: (daemon, fingerprint)."""
    d = daemon_factory.start(ready_path="/1.0/projects")
    for name in ("dev", "prod"):
        api(d, "POST", "/1.0/projects", {"name": name}, 201)
    b64, fp = new_cert("c1")
    api(d, "POST", "/1.0/certificates", {
        "type": "client", "name": "c1", "certificate": b64,
        "restricted": True, "projects": []}, 201)
    assert roles_of(d, fp) == []
    return d, fp


def test_grant_then_roles_table_and_json(env):
    d, fp = env
    assert ok(d, *trust("grant", fp, "auditor", "--project", "dev")) == ""
    assert roles_of(d, fp) == [dev_auditor()]

    assert ok(d, *trust("roles", fp)) == (
        "+---------+---------+---------+\n"
        "|  SCOPE  | PROJECT |  ROLE   |\n"
        "+---------+---------+---------+\n"
        "| project | dev     | auditor |\n"
        "+---------+---------+---------+\n")

    out = ok(d, *trust("roles", fp, "--format", "json"))
    assert json.loads(out) == roles_of(d, fp) == [dev_auditor()]
    out = ok(d, *trust("roles", fp, "--format", "yaml"))
    assert yaml.safe_load(out) == [dev_auditor()]


def test_roles_table_sorted_scope_project_role(env):
    d, fp = env
    ok(d, *trust("grant", fp, "operator", "--project", "prod"))
    ok(d, *trust("grant", fp, "auditor", "--server"))
    ok(d, *trust("grant", fp, "user", "--project", "dev"))
    ok(d, *trust("grant", fp, "admin", "--all-projects"))
    assert sorted(roles_of(d, fp), key=json.dumps) == sorted([
        {"scope": "project", "project": "prod", "role": "operator"},
        {"scope": "server", "role": "auditor"},
        {"scope": "project", "project": "dev", "role": "user"},
        {"scope": "all_projects", "role": "admin"},
    ], key=json.dumps)
    rows = [line for line in ok(d, *trust("roles", fp)).splitlines()
            if line.startswith("| ")][1:]
    assert [[c.strip() for c in r.strip("|").split("|")] for r in rows] == [
        ["server", "", "auditor"],
        ["all_projects", "", "admin"],
        ["project", "dev", "user"],
        ["project", "prod", "operator"],
    ]
    out = json.loads(ok(d, *trust("roles", fp, "--format", "json")))
    assert out == roles_of(d, fp)


def test_empty_roles(env):
    d, fp = env
    assert ok(d, *trust("roles", fp, "--format", "json")) == "[]\n"
    assert ok(d, *trust("roles", fp)) == (
        "+-------+---------+------+\n"
        "| SCOPE | PROJECT | ROLE |\n"
        "+-------+---------+------+\n")


def test_grant_existing_binding_is_a_noop(env):
    d, fp = env
    ok(d, *trust("grant", fp, "auditor", "--project", "dev"))
    assert ok(d, *trust("grant", fp, "auditor", "--project", "dev")) == ""
    assert roles_of(d, fp) == [dev_auditor()]


def test_grant_other_role_in_same_scope_is_refused(env):
    d, fp = env
    ok(d, *trust("grant", fp, "auditor", "--project", "dev"))
    err = fails(d, *trust("grant", fp, "operator", "--project", "dev"))
    assert "already has role auditor on project dev" in err
    assert roles_of(d, fp) == [dev_auditor()]


@pytest.mark.parametrize("flags", [
    ("--project", "dev", "--server"),
    ("--project", "dev", "--all-projects"),
    ("--all-projects", "--server"),
    ("--project", "dev", "--project", "prod"),
])
def test_grant_with_two_scopes_fails(env, flags):
    d, fp = env
    err = fails(d, *trust("grant", fp, "auditor", *flags))
    assert "Only one scope" in err
    assert roles_of(d, fp) == []


def test_global_project_counts_as_a_scope(env):
    d, fp = env
    err = fails(d, "--project", "dev", *trust("grant", fp, "auditor",
                                              "--server"))
    assert "Only one scope" in err
    assert roles_of(d, fp) == []
    ok(d, "--project", "prod", *trust("grant", fp, "user"))
    assert roles_of(d, fp) == [
        {"scope": "project", "project": "prod", "role": "user"}]


@pytest.mark.parametrize("verb", ["grant", "revoke-role"])
def test_no_scope_fails(env, verb):
    d, fp = env
    ok(d, *trust("grant", fp, "auditor", "--project", "dev"))
    err = fails(d, *trust(verb, fp, "auditor"))
    assert "A scope is required" in err
    assert roles_of(d, fp) == [dev_auditor()]


@pytest.mark.parametrize("role", ["root", "Auditor", "", "viewer"])
def test_unknown_role_fails_before_any_request(env, role):
    d, fp = env
    err = fails(d, *trust("grant", fp, role, "--project", "dev"))
    assert err == ('Error: Unknown role "%s" (must be auditor, user, '
                   'operator or admin)\n' % role)
    assert roles_of(d, fp) == []
    # Checked before the certificate is even looked up.
    err = fails(d, *trust("grant", "ffff", role, "--server"))
    assert "Unknown role" in err


def test_revoke_role_removes_only_that_binding(env):
    d, fp = env
    ok(d, *trust("grant", fp, "auditor", "--project", "dev"))
    ok(d, *trust("grant", fp, "operator", "--project", "prod"))
    assert ok(d, *trust("revoke-role", fp, "auditor", "--project", "dev")) == ""
    assert roles_of(d, fp) == [
        {"scope": "project", "project": "prod", "role": "operator"}]
    assert "| dev " not in ok(d, *trust("roles", fp))


@pytest.mark.parametrize("args", [
    ("auditor", "--project", "dev"),     # nothing in that scope
    ("operator", "--project", "prod"),   # another role in that scope
    ("auditor", "--all-projects"),       # another role in that scope
    ("operator", "--project", "dev"),    # that role in another scope
    ("auditor", "--server"),             # nothing in that scope
])
def test_revoke_missing_role_fails(env, args):
    d, fp = env
    ok(d, *trust("grant", fp, "auditor", "--project", "prod"))
    ok(d, *trust("grant", fp, "operator", "--all-projects"))
    before = roles_of(d, fp)
    assert len(before) == 2
    err = fails(d, *trust("revoke-role", fp, *args))
    assert err == "Error: The certificate has no such role\n"
    assert roles_of(d, fp) == before


def test_revoke_existing_all_projects_and_server(env):
    d, fp = env
    ok(d, *trust("grant", fp, "admin", "--server"))
    ok(d, *trust("grant", fp, "user", "--all-projects"))
    ok(d, *trust("revoke-role", fp, "admin", "--server"))
    assert roles_of(d, fp) == [{"scope": "all_projects", "role": "user"}]
    ok(d, *trust("revoke-role", fp, "user", "--all-projects"))
    assert roles_of(d, fp) == []


def test_fingerprint_prefix(env):
    d, fp = env
    prefix = fp[:12]
    ok(d, *trust("grant", prefix, "auditor", "--project", "dev"))
    assert roles_of(d, fp) == [dev_auditor()]
    assert json.loads(ok(d, *trust("roles", prefix, "--format", "json"))) \
        == [dev_auditor()]
    ok(d, *trust("revoke-role", prefix, "auditor", "--project", "dev"))
    assert roles_of(d, fp) == []


def test_unknown_certificate_fails(env):
    d, fp = env
    other = "0" * 64 if not fp.startswith("0") else "1" * 64
    for args in (("roles", other),
                 ("grant", other, "auditor", "--server"),
                 ("revoke-role", other, "auditor", "--server")):
        err = fails(d, *trust(*args))
        assert "not found" in err, err


def test_grant_on_unknown_project_fails_with_servers_message(env):
    d, fp = env
    err = fails(d, *trust("grant", fp, "auditor", "--project", "nosuch"))
    assert err == 'Error: project "nosuch" not found\n'
    assert roles_of(d, fp) == []
