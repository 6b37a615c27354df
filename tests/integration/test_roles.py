"""Roles (issue 6) over real TLS clients and the real `lxc` 5.0.2 client.

The model is api/authz.h: auditor < user < operator < admin, bound at one
project, all projects or the whole server; 404 for what the caller cannot
see, 403 for what it may not do, guard rails (403) on root-equivalent keys
below server admin; LXD 5.0's `restricted`/`projects` are a projection of
the bindings, edited as a difference.

Every client here has its own P-384 certificate (test_tls_trust.Client), is
added over the Unix socket (server admin) and then given its roles with
`PUT /1.0/certificates/{fp}/roles`.
"""

import base64
import hashlib
import json
import os
import shutil
import subprocess
import tempfile

import pytest
import yaml

from test_tls_trust import Client, listen

LXC = shutil.which("lxc")
PASSWORD = "corral-roles-pw"
LXC_TIMEOUT = 20

NIC_FILTERED = {
    "type": "nic", "nictype": "bridged", "parent": "br0",
    "security.mac_filtering": "true", "security.ipv4_filtering": "true",
    "security.ipv6_filtering": "true",
}


def auditor(project):
    return {"scope": "project", "project": project, "role": "auditor"}


def binding(scope, role, project=None):
    b = {"scope": scope, "role": role}
    if project is not None:
        b["project"] = project
    return b


class Env:
    """One daemon listening on TLS with projects dev and prod, each with
    its own default profile plus one more profile."""

    def __init__(self, d, tmp_path):
        self.d = d
        self.tmp_path = tmp_path
        self.port = listen(d)
        self.n = 0
        for project in ("dev", "prod"):
            self.ok("POST", "/1.0/projects", {
                "name": project, "config": {"features.profiles": "true"}}, 201)
            self.ok("POST", "/1.0/profiles?project=" + project,
                    {"name": "p" + project, "config": {"user.x": project}}, 201)

    def ok(self, method, path, body=None, status=200):
        """A request over the Unix socket (server admin) that must succeed."""
        st, _, resp = self.d.request(method, path, body=body)
        assert st == status, (method, path, st, resp)
        return resp

    def client(self, roles=None, name=None):
        """A new TLS client, added over the Unix socket, then bound to @roles
        (None: left as added, i.e. unrestricted)."""
        self.n += 1
        name = name or "c%d" % self.n
        c = Client(self.tmp_path, name)
        self.ok("POST", "/1.0/certificates", {
            "type": "client", "name": name, "certificate": c.b64}, 201)
        if roles is not None:
            self.set_roles(c.fp, roles)
        c.port = self.port
        return c

    def set_roles(self, fp, roles):
        self.ok("PUT", "/1.0/certificates/%s/roles" % fp, {"roles": roles})

    def roles(self, fp):
        return self.ok("GET", "/1.0/certificates/%s/roles" % fp)["metadata"]


def call(c, method, path, body=None, conn=None):
    return c.call(c.port, method, path, body=body, conn=conn)


def expect(c, method, path, status, body=None, conn=None):
    st, resp = call(c, method, path, body=body, conn=conn)
    assert st == status, (method, path, st, resp)
    if status >= 400:
        assert resp["type"] == "error" and resp["error_code"] == status, resp
    return resp


def canon(obj):
    return json.dumps(obj, sort_keys=True)


def names(objects):
    return sorted(o["name"] for o in objects)


@pytest.fixture
def env(daemon_factory, tmp_path):
    d = daemon_factory.start(ready_path="/1.0/projects")
    return Env(d, tmp_path)


# --- auditor on one project ---------------------------------------------------------


def test_auditor_on_dev(env):
    c = env.client([auditor("dev")])
    other = env.client()  # an unrestricted client: its certificate is not c's business
    assert env.roles(c.fp) == [auditor("dev")]

    listed = expect(c, "GET", "/1.0/profiles?project=dev", 200)["metadata"]
    assert len(listed) == 2 and all(u.startswith("/1.0/profiles/") for u in listed), listed
    objs = expect(c, "GET", "/1.0/profiles?project=dev&recursion=1", 200)["metadata"]
    assert names(objs) == ["default", "pdev"]
    shown = expect(c, "GET", "/1.0/profiles/default?project=dev", 200)["metadata"]
    assert shown["name"] == "default"
    assert expect(c, "GET", "/1.0/profiles/pdev?project=dev", 200)["metadata"]["config"] == {
        "user.x": "dev"}
    # Read-only: no create, edit or delete.
    expect(c, "POST", "/1.0/profiles?project=dev", 403, {"name": "new"})
    expect(c, "PATCH", "/1.0/profiles/pdev?project=dev", 403, {"description": "x"})
    expect(c, "DELETE", "/1.0/profiles/pdev?project=dev", 403)
    # Another project is invisible, even the default one.
    expect(c, "GET", "/1.0/profiles?project=prod", 404)
    expect(c, "GET", "/1.0/profiles/pprod?project=prod", 404)
    expect(c, "POST", "/1.0/profiles?project=prod", 404, {"name": "new"})
    expect(c, "GET", "/1.0/profiles", 404)

    # Projects: only dev, as URLs and as objects.
    assert expect(c, "GET", "/1.0/projects", 200)["metadata"] == ["/1.0/projects/dev"]
    objs = expect(c, "GET", "/1.0/projects?recursion=1", 200)["metadata"]
    assert names(objs) == ["dev"]
    assert expect(c, "GET", "/1.0/projects/dev", 200)["metadata"]["name"] == "dev"
    expect(c, "GET", "/1.0/projects/prod", 404)
    expect(c, "GET", "/1.0/projects/default", 404)
    expect(c, "PATCH", "/1.0/projects/dev", 403, {"description": "mine now"})
    expect(c, "POST", "/1.0/projects", 403, {"name": "mine"})

    # Certificates: only its own, with its roles.
    assert expect(c, "GET", "/1.0/certificates", 200)["metadata"] == [
        "/1.0/certificates/" + c.fp]
    objs = expect(c, "GET", "/1.0/certificates?recursion=1", 200)["metadata"]
    assert [o["fingerprint"] for o in objs] == [c.fp]
    assert objs[0]["roles"] == [auditor("dev")] and objs[0]["restricted"] is True
    expect(c, "GET", "/1.0/certificates/" + other.fp, 404)
    expect(c, "PUT", "/1.0/certificates/%s/roles" % c.fp, 403,
           {"roles": [binding("server", "admin")]})

    # The server: no config for a project auditor, no edits.
    expect(c, "PUT", "/1.0", 403, {"config": {}})
    expect(c, "PATCH", "/1.0", 403, {"config": {"core.https_address": ""}})
    server = expect(c, "GET", "/1.0", 200)["metadata"]
    assert server["auth"] == "trusted"
    assert server["config"] == {}, server["config"]

    # Nothing changed behind the refusals.
    assert names(env.ok("GET", "/1.0/profiles?project=dev&recursion=1")["metadata"]) == [
        "default", "pdev"]
    assert env.ok("GET", "/1.0/projects/dev")["metadata"]["description"] == ""


# --- operator on one project -------------------------------------------------------


def test_operator_on_dev_guard_rails(env):
    c = env.client([binding("project", "operator", "dev")])
    base = "/1.0/profiles?project=dev"

    expect(c, "POST", base, 201, {"name": "net", "devices": {"eth0": NIC_FILTERED}})
    shown = env.ok("GET", "/1.0/profiles/net?project=dev")["metadata"]
    assert shown["devices"]["eth0"] == NIC_FILTERED

    resp = expect(c, "POST", base, 403, {"name": "priv",
                                         "config": {"security.privileged": "true"}})
    assert "security.privileged" in resp["error"], resp
    resp = expect(c, "POST", base, 403, {"name": "raw",
                                         "config": {"raw.lxc": "lxc.apparmor.profile=unconfined"}})
    assert "raw.lxc" in resp["error"], resp
    resp = expect(c, "POST", base, 403, {"name": "etc", "devices": {
        "data": {"type": "disk", "source": "/etc", "path": "/mnt"}}})
    assert "data" in resp["error"], resp
    # The same rails on an edit of an existing profile.
    expect(c, "PATCH", "/1.0/profiles/net?project=dev", 403,
           {"config": {"security.privileged": "true"}})
    expect(c, "PATCH", "/1.0/profiles/net?project=dev", 403,
           {"config": {"security.idmap.isolated": "false"}})
    expect(c, "PATCH", "/1.0/profiles/net?project=dev", 403,
           {"config": {"raw.idmap": "both 1000 1000"}})
    for name in ("priv", "raw", "etc"):
        env.ok("GET", "/1.0/profiles/%s?project=dev" % name, status=404)

    # Isolation is only ever tightened: fine.
    expect(c, "POST", base, 201, {"name": "iso", "config": {"security.idmap.isolated": "true"}})
    expect(c, "PATCH", "/1.0/profiles/iso?project=dev", 200, {"config": {"user.a": "b"}})

    # The project itself is the admin's.
    expect(c, "PATCH", "/1.0/projects/dev", 403, {"description": "x"})
    expect(c, "DELETE", "/1.0/profiles/iso?project=dev", 200)
    # And prod stays invisible.
    expect(c, "POST", "/1.0/profiles?project=prod", 404, {"name": "x"})


def test_operator_round_trips_what_a_server_admin_set(env):
    c = env.client([binding("project", "operator", "dev")])
    env.ok("PATCH", "/1.0/profiles/pdev?project=dev", {"config": {"security.privileged": "true"}})
    env.ok("PATCH", "/1.0/profiles/pdev?project=dev", {"devices": {
        "data": {"type": "disk", "source": "/srv/data", "path": "/data"}}})

    shown = expect(c, "GET", "/1.0/profiles/pdev?project=dev", 200)["metadata"]
    assert shown["config"]["security.privileged"] == "true"
    put = {"description": "edited by the operator", "config": dict(shown["config"]),
           "devices": shown["devices"]}
    put["config"]["user.y"] = "1"
    expect(c, "PUT", "/1.0/profiles/pdev?project=dev", 200, put)
    after = env.ok("GET", "/1.0/profiles/pdev?project=dev")["metadata"]
    assert after["config"]["security.privileged"] == "true"
    assert after["config"]["user.y"] == "1"
    assert after["description"] == "edited by the operator"
    assert after["devices"]["data"]["source"] == "/srv/data"

    # Changing the host-path disk is a change: refused.
    put["devices"] = {"data": {"type": "disk", "source": "/etc", "path": "/data"}}
    expect(c, "PUT", "/1.0/profiles/pdev?project=dev", 403, put)
    # Dropping the root-equivalent key makes things safer: allowed.
    del put["config"]["security.privileged"]
    put["devices"] = after["devices"]
    expect(c, "PUT", "/1.0/profiles/pdev?project=dev", 200, put)
    assert "security.privileged" not in env.ok(
        "GET", "/1.0/profiles/pdev?project=dev")["metadata"]["config"]
    # ...and putting it back is setting it.
    put["config"]["security.privileged"] = "true"
    expect(c, "PUT", "/1.0/profiles/pdev?project=dev", 403, put)


# --- admin of one project ----------------------------------------------------------


def test_project_admin_on_dev(env):
    # authz.h: admin = + EDIT_PROJECT (config, rename, delete) of its
    # projects; never `restricted*`; CREATE_PROJECT needs all_projects admin.
    env.ok("POST", "/1.0/projects", {"name": "scratch"}, 201)
    c = env.client([binding("project", "admin", "dev"), binding("project", "admin", "scratch")])

    expect(c, "PATCH", "/1.0/projects/dev", 200,
           {"description": "dev team", "config": {"user.owner": "team-a"}})
    shown = env.ok("GET", "/1.0/projects/dev")["metadata"]
    assert shown["description"] == "dev team" and shown["config"]["user.owner"] == "team-a"

    for key, value in (("restricted", "true"), ("restricted.containers.privilege", "allow"),
                       ("restricted.devices.nic", "allow"),
                       ("restricted.devices.nic.filtering", "enforce")):
        resp = expect(c, "PATCH", "/1.0/projects/dev", 403, {"config": {key: value}})
        assert key in resp["error"], resp
    assert not any(k.startswith("restricted") for k in
                   env.ok("GET", "/1.0/projects/dev")["metadata"]["config"])

    # What a server admin set survives the project admin's round trip.
    env.ok("PATCH", "/1.0/projects/dev", {"config": {"restricted": "true",
                                                     "restricted.devices.nic": "managed"}})
    shown = expect(c, "GET", "/1.0/projects/dev", 200)["metadata"]
    config = dict(shown["config"])
    config["user.owner"] = "team-b"
    expect(c, "PUT", "/1.0/projects/dev", 200, {"description": "dev team", "config": config})
    after = env.ok("GET", "/1.0/projects/dev")["metadata"]["config"]
    assert after["restricted"] == "true" and after["restricted.devices.nic"] == "managed"
    assert after["user.owner"] == "team-b"
    # Dropping it is a change too.
    del config["restricted"]
    expect(c, "PUT", "/1.0/projects/dev", 403, {"description": "dev team", "config": config})

    # Another project: invisible.
    expect(c, "PATCH", "/1.0/projects/prod", 404, {"description": "x"})
    expect(c, "DELETE", "/1.0/projects/prod", 404)
    # No new projects for a project admin.
    expect(c, "POST", "/1.0/projects", 403, {"name": "more"})
    # Delete an empty project it admins.
    expect(c, "DELETE", "/1.0/projects/scratch", 200)
    env.ok("GET", "/1.0/projects/scratch", status=404)
    assert env.ok("GET", "/1.0/projects/prod")["metadata"]["name"] == "prod"


# --- wider scopes -------------------------------------------------------------------


def test_all_projects_auditor_sees_later_projects(env):
    c = env.client([binding("all_projects", "auditor")])
    assert names(expect(c, "GET", "/1.0/projects?recursion=1", 200)["metadata"]) == [
        "default", "dev", "prod"]
    env.ok("POST", "/1.0/projects", {"name": "later", "config": {"features.profiles": "true"}}, 201)
    urls = expect(c, "GET", "/1.0/projects", 200)["metadata"]
    assert sorted(urls) == ["/1.0/projects/" + p for p in ("default", "dev", "later", "prod")]
    assert names(expect(c, "GET", "/1.0/profiles?project=later&recursion=1", 200)["metadata"]) == [
        "default"]
    expect(c, "POST", "/1.0/profiles?project=later", 403, {"name": "x"})
    expect(c, "PATCH", "/1.0/projects/later", 403, {"description": "x"})
    # all_projects is not a server scope: no server config.
    assert expect(c, "GET", "/1.0", 200)["metadata"]["config"] == {}


def test_server_auditor(env):
    env.ok("PATCH", "/1.0", {"config": {"core.trust_password": PASSWORD}})
    c = env.client([binding("server", "auditor")])
    other = env.client([auditor("prod")])
    config = expect(c, "GET", "/1.0", 200)["metadata"]["config"]
    assert config.get("core.https_address") == "127.0.0.1:0", config
    assert config.get("core.trust_password") in (True, "true"), config
    assert PASSWORD not in json.dumps(config)
    expect(c, "PUT", "/1.0", 403, {"config": config})
    expect(c, "PATCH", "/1.0", 403, {"config": {"core.trust_password": ""}})
    # Every project, read-only (auditor at server scope).
    assert names(expect(c, "GET", "/1.0/projects?recursion=1", 200)["metadata"]) == [
        "default", "dev", "prod"]
    expect(c, "GET", "/1.0/profiles/pprod?project=prod", 200)
    expect(c, "POST", "/1.0/profiles?project=dev", 403, {"name": "x"})
    expect(c, "POST", "/1.0/projects", 403, {"name": "x"})
    # The trust store, read-only (authz.h: SERVER_VIEW covers "the
    # certificate list", a named certificate is visible to "server
    # auditor+"; MANAGE of it is server admin: 403, not 404).
    assert expect(c, "GET", "/1.0/certificates/%s/roles" % other.fp, 200)["metadata"] == [
        auditor("prod")]
    expect(c, "PUT", "/1.0/certificates/%s/roles" % other.fp, 403, {"roles": []})
    urls = expect(c, "GET", "/1.0/certificates", 200)["metadata"]
    assert "/1.0/certificates/" + c.fp in urls, urls
    assert sorted(urls) == sorted("/1.0/certificates/" + fp for fp in (c.fp, other.fp)), urls
    shown = expect(c, "GET", "/1.0/certificates/" + other.fp, 200)["metadata"]
    assert shown["roles"] == [auditor("prod")]
    expect(c, "DELETE", "/1.0/certificates/" + other.fp, 403)
    assert env.roles(other.fp) == [auditor("prod")]


def test_user_role_reads_but_does_not_manage(env):
    c = env.client([binding("project", "user", "dev")])
    expect(c, "GET", "/1.0/profiles/pdev?project=dev", 200)
    expect(c, "POST", "/1.0/profiles?project=dev", 403, {"name": "x"})
    expect(c, "PUT", "/1.0/profiles/pdev?project=dev", 403, {"config": {}})
    expect(c, "PATCH", "/1.0/projects/dev", 403, {"description": "x"})
    expect(c, "GET", "/1.0/profiles?project=prod", 404)


def test_all_projects_admin_creates_restricted_projects(env):
    c = env.client([binding("all_projects", "admin")])
    expect(c, "POST", "/1.0/projects", 201, {"name": "team"})
    assert env.ok("GET", "/1.0/projects/team")["metadata"]["config"]["restricted"] == "true"
    expect(c, "POST", "/1.0/projects", 403, {"name": "loose", "config": {"restricted": "false"}})
    env.ok("GET", "/1.0/projects/loose", status=404)
    expect(c, "PATCH", "/1.0/projects/team", 403, {"config": {"restricted": "false"}})
    expect(c, "PATCH", "/1.0/projects/team", 200, {"description": "ours"})
    # Still not a server viewer or admin.
    assert expect(c, "GET", "/1.0", 200)["metadata"]["config"] == {}
    expect(c, "PATCH", "/1.0", 403, {"config": {"core.https_address": ""}})


# --- changes take effect at once -----------------------------------------------------


def test_role_changes_apply_on_open_connection(env):
    c = env.client([auditor("dev")])
    conn = c.connect(env.port)
    try:
        expect(c, "GET", "/1.0/profiles?project=dev", 200, conn=conn)
        sock = conn.sock
        expect(c, "GET", "/1.0/profiles?project=prod", 404, conn=conn)
        expect(c, "POST", "/1.0/profiles?project=dev", 403, {"name": "x"}, conn=conn)

        env.set_roles(c.fp, [auditor("dev"), auditor("prod")])
        expect(c, "GET", "/1.0/profiles?project=prod", 200, conn=conn)
        env.set_roles(c.fp, [binding("project", "operator", "dev")])
        expect(c, "POST", "/1.0/profiles?project=dev", 201, {"name": "x"}, conn=conn)
        expect(c, "GET", "/1.0/profiles?project=prod", 404, conn=conn)
        env.set_roles(c.fp, [auditor("dev")])
        expect(c, "POST", "/1.0/profiles?project=dev", 403, {"name": "y"}, conn=conn)
        env.set_roles(c.fp, [])
        expect(c, "GET", "/1.0/profiles?project=dev", 404, conn=conn)
        assert expect(c, "GET", "/1.0/projects", 200, conn=conn)["metadata"] == []
        # All on the one keep-alive connection.
        assert conn.sock is sock
    finally:
        conn.close()


def test_project_delete_drops_bindings_at_once(env):
    env.ok("POST", "/1.0/projects", {"name": "gone"}, 201)
    c = env.client([binding("project", "admin", "gone")])
    expect(c, "GET", "/1.0/projects/gone", 200)
    env.ok("DELETE", "/1.0/projects/gone")
    assert env.roles(c.fp) == []
    # A new project of the same name is not the old one: no access to it.
    env.ok("POST", "/1.0/projects", {"name": "gone"}, 201)
    assert expect(c, "GET", "/1.0/projects", 200)["metadata"] == []
    expect(c, "PATCH", "/1.0/projects/gone", 404, {"description": "mine"})


def test_project_rename_moves_bindings_at_once(env):
    env.ok("POST", "/1.0/projects", {"name": "old"}, 201)
    c = env.client([binding("project", "admin", "old")])
    expect(c, "POST", "/1.0/projects/old", 201, {"name": "new"})
    assert env.roles(c.fp) == [binding("project", "admin", "new")]
    assert expect(c, "GET", "/1.0/projects", 200)["metadata"] == ["/1.0/projects/new"]
    expect(c, "PATCH", "/1.0/projects/new", 200, {"description": "renamed"})
    # The old name, reused, is someone else's.
    env.ok("POST", "/1.0/projects", {"name": "old"}, 201)
    expect(c, "PATCH", "/1.0/projects/old", 404, {"description": "mine"})


# --- LXD 5.0's restricted/projects --------------------------------------------------


def cert_put_body(cert, **changes):
    body = {k: cert[k] for k in ("name", "type", "restricted", "projects", "certificate")}
    body.update(changes)
    return body


def test_legacy_fields_map_to_roles(env):
    c = env.client()
    path = "/1.0/certificates/" + c.fp
    cert = env.ok("GET", path)["metadata"]
    assert cert["restricted"] is False and cert["roles"] == [binding("server", "admin")]

    env.ok("PUT", path, cert_put_body(cert, restricted=True, projects=["dev"]))
    assert env.roles(c.fp) == [binding("project", "operator", "dev")]
    cert = env.ok("GET", path)["metadata"]
    assert cert["restricted"] is True and cert["projects"] == ["dev"]
    expect(c, "POST", "/1.0/profiles?project=dev", 201, {"name": "legacy"})
    expect(c, "PATCH", "/1.0/projects/dev", 403, {"description": "x"})
    expect(c, "GET", "/1.0/profiles?project=prod", 404)

    # Refusals change nothing.
    before = env.roles(c.fp)
    resp = env.ok("PUT", path, cert_put_body(cert, restricted=True, projects=["nope"]), status=400)
    assert "nope" in resp["error"], resp
    env.ok("PATCH", path, {"projects": ["dev", "nope"]}, status=400)
    assert env.roles(c.fp) == before

    # Diff semantics: an auditor binding the legacy fields cannot express
    # survives a PATCH that adds a project.
    env.set_roles(c.fp, [binding("project", "operator", "dev"), auditor("prod")])
    cert = env.ok("GET", path)["metadata"]
    assert cert["restricted"] is True
    env.ok("PATCH", path, {"projects": cert["projects"] + ["default"]})
    after = env.roles(c.fp)
    assert sorted(after, key=canon) == sorted([
        binding("project", "operator", "default"), binding("project", "operator", "dev"),
        auditor("prod")], key=canon), after
    # And a whole-object round trip of what GET shows changes nothing.
    cert = env.ok("GET", path)["metadata"]
    env.ok("PUT", path, cert_put_body(cert))
    assert env.roles(c.fp) == after


def test_legacy_projects_on_unrestricted_refused(env):
    c = env.client()
    path = "/1.0/certificates/" + c.fp
    cert = env.ok("GET", path)["metadata"]
    resp = env.ok("PUT", path, cert_put_body(cert, restricted=False, projects=["dev"]),
                  status=400)
    assert resp["error"], resp
    env.ok("PATCH", path, {"projects": ["dev"]}, status=400)
    assert env.roles(c.fp) == [binding("server", "admin")]
    # Adding with restricted false and projects: refused as well.
    other = Client(env.tmp_path, "other")
    env.ok("POST", "/1.0/certificates", {"type": "client", "name": "other",
                                         "certificate": other.b64,
                                         "restricted": False, "projects": ["dev"]}, 400)


def test_legacy_unrestrict_with_projects_refused(env):
    # Issue 6: "`projects` with `restricted: false` is refused (400) instead
    # of silently granting admin" -- also when a restricted certificate is
    # flipped to unrestricted while its projects stay listed.
    c = env.client([binding("project", "operator", "dev")])
    path = "/1.0/certificates/" + c.fp
    cert = env.ok("GET", path)["metadata"]
    assert cert["projects"] == ["dev"]
    env.ok("PUT", path, cert_put_body(cert, restricted=False), status=400)
    assert env.roles(c.fp) == [binding("project", "operator", "dev")]
    # With projects emptied it is an explicit grant of server admin.
    env.ok("PUT", path, cert_put_body(cert, restricted=False, projects=[]))
    assert env.roles(c.fp) == [binding("server", "admin")]


def test_token_with_unknown_project_refused(env):
    st, _, resp = env.d.request("POST", "/1.0/certificates", body={
        "name": "t", "type": "client", "token": True, "restricted": True,
        "projects": ["nope"]})
    assert st == 400, (st, resp)
    assert "nope" in resp["error"], resp
    ops = env.ok("GET", "/1.0/operations?recursion=1")["metadata"].get("running") or []
    assert [o for o in ops if o["class"] == "token"] == []


# --- audit trail ---------------------------------------------------------------------


def test_denials_and_role_changes_are_logged(env):
    c = env.client([auditor("dev")])
    expect(c, "POST", "/1.0/profiles?project=dev", 403, {"name": "x"})
    expect(c, "GET", "/1.0/profiles?project=prod", 404)
    lines = [line for line in env.d.log().splitlines()
             if "request denied" in line and c.fp in line]
    assert any("status=403" in line and "method=POST" in line and "protocol=tls" in line
               for line in lines), lines
    assert any("status=404" in line and "path=/1.0/profiles" in line for line in lines), lines
    changed = [line for line in env.d.log().splitlines()
               if "roles changed" in line and c.fp in line]
    assert changed and "protocol=unix" in changed[-1], changed


# --- the real lxc 5.0.2 client ------------------------------------------------------


class Lxc:
    """One `lxc` with its own LXD_CONF; never reads a terminal."""

    def __init__(self):
        self.conf = tempfile.mkdtemp(prefix="corral-roles-lxc-")

    def run(self, *args, input=None):
        env = {"LXD_CONF": self.conf, "HOME": self.conf,
               "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
        return subprocess.run([LXC] + list(args), env=env, capture_output=True, text=True,
                              timeout=LXC_TIMEOUT,
                              **({"input": input} if input is not None
                                 else {"stdin": subprocess.DEVNULL}))

    def ok(self, *args, input=None):
        r = self.run(*args, input=input)
        assert r.returncode == 0, "lxc %s: rc=%d\nstdout=%s\nstderr=%s" % (
            " ".join(args), r.returncode, r.stdout, r.stderr)
        return r.stdout

    def fails(self, *args):
        r = self.run(*args)
        assert r.returncode != 0, "lxc %s unexpectedly succeeded:\n%s" % (
            " ".join(args), r.stdout)
        return r.stderr

    def fingerprint(self):
        with open(os.path.join(self.conf, "client.crt")) as f:
            pem = f.read()
        der = base64.b64decode("".join(x for x in pem.splitlines() if "-----" not in x))
        return hashlib.sha256(der).hexdigest()


@pytest.fixture
def lxcs():
    made = []

    def make():
        made.append(Lxc())
        return made[-1]

    try:
        yield make
    finally:
        for c in made:
            shutil.rmtree(c.conf, ignore_errors=True)


@pytest.mark.skipif(LXC is None, reason="lxc (lxd-client) not installed")
def test_lxc_restricted_token_and_trust_edit(daemon_factory, lxcs):
    d = daemon_factory.start(ready_path="/1.0/projects")
    st, _, resp = d.request("PATCH", "/1.0", body={"config": {
        "core.https_address": "127.0.0.1:0", "core.trust_password": PASSWORD}})
    assert st == 200, resp
    addr = d.get("/1.0")[2]["metadata"]["environment"]["addresses"][0]

    admin = lxcs()
    admin.ok("remote", "add", "r", "https://" + addr, "--accept-certificate",
             "--password", PASSWORD)
    admin.ok("project", "create", "r:dev")
    admin.ok("project", "create", "r:prod")
    # lxc 5.0.2 reads a lone `r:` argument as a certificate file: switch.
    admin.ok("remote", "switch", "r")
    out = admin.ok("config", "trust", "add", "--name", "c2", "--restricted",
                   "--projects", "dev")
    token = [line for line in out.splitlines() if line.strip()][-1].strip()
    assert json.loads(base64.b64decode(token))["client_name"] == "c2"

    limited = lxcs()
    limited.ok("remote", "add", "r2", token)
    fp = limited.fingerprint()
    st, _, resp = d.get("/1.0/certificates/%s/roles" % fp)
    assert st == 200 and resp["metadata"] == [binding("project", "operator", "dev")], resp

    projects = json.loads(limited.ok("project", "list", "r2:", "--format", "json"))
    assert [p["name"] for p in projects] == ["dev"], projects
    table = limited.ok("project", "list", "r2:")
    assert "dev" in table and "prod" not in table, table
    err = limited.fails("project", "create", "r2:x")
    assert "not authorized" in err, err
    assert d.get("/1.0/projects/x")[0] == 404
    limited.ok("profile", "create", "r2:web", "--project", "dev")
    err = limited.fails("profile", "list", "r2:", "--project", "prod")
    assert "not found" in err.lower(), err

    # An extra binding lxc cannot see survives `lxc config trust edit`.
    st, _, resp = d.request("PUT", "/1.0/certificates/%s/roles" % fp, body={
        "roles": [binding("project", "operator", "dev"), auditor("prod")]})
    assert st == 200, resp
    shown = admin.ok("config", "trust", "show", "r:" + fp)
    assert yaml.safe_load(shown)["restricted"] is True
    admin.ok("config", "trust", "edit", "r:" + fp, input=shown)
    assert d.get("/1.0/certificates/%s/roles" % fp)[2]["metadata"] == [
        binding("project", "operator", "dev"), auditor("prod")]
    # A real edit (rename) through the same path keeps it as well.
    doc = yaml.safe_load(shown)
    doc["name"] = "c2-renamed"
    admin.ok("config", "trust", "edit", "r:" + fp, input=yaml.safe_dump(doc))
    cert = d.get("/1.0/certificates/" + fp)[2]["metadata"]
    assert cert["name"] == "c2-renamed"
    assert cert["roles"] == [binding("project", "operator", "dev"), auditor("prod")]
    # The limited client now reads prod, still cannot write there.
    limited.ok("profile", "list", "r2:", "--project", "prod")
    err = limited.fails("profile", "create", "r2:nope", "--project", "prod")
    assert "not authorized" in err, err
