"""`corral config`, `corral project` and `corral profile` against a real corrald.

Contract: DESIGN.md section 5 (the verbs follow lxc 5.0.2, arguments and
output) and reference/lxd-client-compat.md section 3 (`lxc project ...`,
`lxc profile ...`: read-modify-write with the GET's ETag in If-Match).
Every CLI result is cross-checked through the API, and every failure case
checks that nothing changed on the server.
"""

import json
import os
import subprocess

import pytest

from helpers import CORRAL_BIN

TABLE_RULE_PROJECTS = (
    "+-------------------+--------+----------+-----------------+----------+"
)


@pytest.fixture
def d(daemon_factory):
    # The state verbs need the database: wait until it answers.
    return daemon_factory.start(ready_path="/1.0/projects")


def corral(d, *args, stdin=None, env=None, timeout=10.0):
    """Run bin/corral against `d`; stdin is /dev/null unless text is given."""
    e = dict(os.environ)
    e.pop("CORRAL_DIR", None)
    e.update(env or {})
    return subprocess.run(
        [CORRAL_BIN, "--socket", d.socket_path] + list(args),
        input=stdin, stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True, text=True, timeout=timeout, env=e)


def ok(d, *args, **kw):
    r = corral(d, *args, **kw)
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    assert r.stderr == "", (args, r.stderr)
    return r.stdout


def fails(d, *args, **kw):
    r = corral(d, *args, **kw)
    assert r.returncode == 1, (args, r.returncode, r.stdout, r.stderr)
    assert r.stderr.startswith("Error: "), (args, r.stderr)
    return r.stderr


def api(d, method, path, body=None, headers=None, status=200):
    """One API call; status "4xx" accepts any client error."""
    st, hdrs, resp = d.request(method, path, body=body, headers=headers)
    if status == "4xx":
        assert 400 <= st < 500, (method, path, st, resp)
    else:
        assert st == status, (method, path, st, resp)
    return hdrs, resp


def server_config(d):
    return api(d, "GET", "/1.0")[1]["metadata"]["config"]


def project(d, name):
    return api(d, "GET", "/1.0/projects/" + name)[1]["metadata"]


def profile(d, name, proj=None):
    q = "?project=" + proj if proj else ""
    return api(d, "GET", "/1.0/profiles/%s%s" % (name, q))[1]["metadata"]


def profile_names(d, proj):
    _, body = api(d, "GET", "/1.0/profiles?recursion=1&project=" + proj)
    return sorted(p["name"] for p in body["metadata"])


# --- config -------------------------------------------------------------------


def test_config_set_get_unset_show(d):
    assert ok(d, "config", "show") == "config: {}\n"
    assert ok(d, "config", "set", "corral.notify_timeout", "1500") == ""
    assert ok(d, "config", "get", "corral.notify_timeout") == "1500\n"
    assert server_config(d)["corral.notify_timeout"] == "1500"

    # lxc 5.0's KEY=VALUE form, several at once.
    ok(d, "config", "set", "corral.stale_bound=4000", "cluster.max_voters=5")
    assert ok(d, "config", "show") == (
        "config:\n"
        "  cluster.max_voters: \"5\"\n"
        "  corral.notify_timeout: \"1500\"\n"
        "  corral.stale_bound: \"4000\"\n")

    assert ok(d, "config", "unset", "corral.notify_timeout") == ""
    assert ok(d, "config", "get", "corral.notify_timeout") == "\n"
    assert "corral.notify_timeout" not in server_config(d)
    assert "corral.notify_timeout" not in ok(d, "config", "show")


def test_config_unknown_key_is_named_and_changes_nothing(d):
    ok(d, "config", "set", "corral.notify_timeout", "1500")
    before = server_config(d)
    err = fails(d, "config", "set", "corral.notify_timeout=1700",
                "corral.no_such_key=1")
    assert "corral.no_such_key" in err
    assert server_config(d) == before
    assert ok(d, "config", "get", "corral.notify_timeout") == "1500\n"

    err = fails(d, "config", "set", "corral.notify_timeout", "soon")
    assert "corral.notify_timeout" in err
    assert server_config(d) == before


def test_config_trust_password_never_shown(d):
    ok(d, "config", "set", "core.trust_password", "hunter2-secret")
    assert ok(d, "config", "get", "core.trust_password") == "true\n"
    shown = ok(d, "config", "show")
    assert "hunter2" not in shown
    assert "core.trust_password: \"true\"" in shown
    _, body = api(d, "GET", "/1.0")
    assert "hunter2" not in json.dumps(body)
    # Setting another key keeps the password (PATCH merges).
    ok(d, "config", "set", "corral.stale_bound=5000")
    assert ok(d, "config", "get", "core.trust_password") == "true\n"


def test_config_argument_errors(d):
    err = fails(d, "config", "set", "a", "b", "c")
    assert err == "Error: Invalid number of arguments\n"
    err = fails(d, "config", "get", "a", "b")
    assert err == "Error: Invalid number of arguments\n"
    err = fails(d, "config", "set", "corral.stale_bound=1", "oops")
    assert err == "Error: No value found in \"oops\"\n"
    err = fails(d, "config", "frobnicate")
    assert "unknown command \"frobnicate\"" in err
    assert server_config(d) == {}


# --- projects -------------------------------------------------------------------


def test_project_create_list_show_rename_delete(d):
    out = ok(d, "project", "create", "p1", "-c", "features.images=false",
             "--description", "First project")
    assert out == "Project p1 created\n"
    p1 = project(d, "p1")
    assert p1["description"] == "First project"
    assert p1["config"]["features.images"] == "false"

    table = ok(d, "project", "list")
    lines = table.splitlines()
    assert lines[0].startswith(TABLE_RULE_PROJECTS)
    assert lines[1].split("|")[1:-1] == [
        "       NAME        ", " IMAGES ", " PROFILES ", " STORAGE VOLUMES ",
        " NETWORKS ", "      DESCRIPTION       ", " USED BY "]
    rows = [[c.strip() for c in l.split("|")[1:-1]] for l in lines[3::2]]
    assert rows == [
        ["default (current)", "YES", "YES", "YES", "NO",
         "Default corral project", "1"],
        ["p1", "NO", "YES", "YES", "NO", "First project",
         str(len(p1["used_by"]))],
    ]

    listed = json.loads(ok(d, "project", "list", "--format", "json"))
    assert [p["name"] for p in listed] == ["default", "p1"]
    assert listed[1]["config"] == p1["config"]
    assert listed[1]["used_by"] == p1["used_by"]
    assert "name: p1\n" in ok(d, "project", "list", "--format", "yaml")
    assert fails(d, "project", "list", "--format", "csv") == \
        "Error: invalid format \"csv\"\n"

    assert ok(d, "project", "show", "p1") == (
        "config:\n"
        "  features.images: \"false\"\n"
        "  features.networks: \"false\"\n"
        "  features.profiles: \"true\"\n"
        "  features.storage.volumes: \"true\"\n"
        "description: First project\n"
        "name: p1\n"
        "used_by:\n"
        + "".join("- %s\n" % u for u in p1["used_by"]))

    assert ok(d, "project", "rename", "p1", "p2") == \
        "Project p1 renamed to p2\n"
    api(d, "GET", "/1.0/projects/p1", status=404)
    assert project(d, "p2")["description"] == "First project"

    assert ok(d, "project", "delete", "p2") == "Project p2 deleted\n"
    api(d, "GET", "/1.0/projects/p2", status=404)
    err = fails(d, "project", "show", "p2")
    assert "p2" in err and "not found" in err


def test_project_errors_come_from_the_server(d):
    ok(d, "project", "create", "busy")
    ok(d, "profile", "create", "web", "--project", "busy")
    # What the API itself answers, and it must change nothing.
    _, body = api(d, "DELETE", "/1.0/projects/busy", status="4xx")
    err = fails(d, "project", "delete", "busy")
    assert err == "Error: %s\n" % body["error"]
    assert project(d, "busy")["name"] == "busy"

    err = fails(d, "project", "create", "busy")
    assert "already exists" in err
    err = fails(d, "project", "delete", "default")
    assert "default" in err
    assert fails(d, "project", "rename", "busy") == \
        "Error: Invalid number of arguments\n"


# --- profiles -------------------------------------------------------------------


def test_profile_config_and_devices_in_a_project(d):
    ok(d, "project", "create", "pp")
    assert ok(d, "profile", "create", "web", "--project", "pp") == \
        "Profile web created\n"
    # The profile lives in pp only.
    assert profile_names(d, "pp") == ["default", "web"]
    api(d, "GET", "/1.0/profiles/web", status=404)

    ok(d, "profile", "set", "web", "limits.cpu", "2", "--project", "pp")
    ok(d, "--project", "pp", "profile", "set", "web",
       "security.nesting=true", "user.note=hello world")
    assert ok(d, "profile", "get", "web", "limits.cpu", "--project", "pp") \
        == "2\n"
    ok(d, "profile", "unset", "web", "user.note", "--project", "pp")
    assert profile(d, "web", "pp")["config"] == {
        "limits.cpu": "2", "security.nesting": "true"}

    out = ok(d, "profile", "device", "add", "web", "eth0", "nic",
             "nictype=bridged", "parent=br0", "--project", "pp")
    assert out == "Device eth0 added to web\n"
    err = fails(d, "profile", "device", "add", "web", "eth0", "disk",
                "path=/", "--project", "pp")
    assert err == "Error: The device already exists\n"
    ok(d, "profile", "device", "set", "web", "eth0", "mtu=1400",
       "--project", "pp")
    ok(d, "profile", "device", "add", "web", "data", "disk", "path=/data",
       "source=/srv", "--project", "pp")
    assert profile(d, "web", "pp")["devices"] == {
        "eth0": {"type": "nic", "nictype": "bridged", "parent": "br0",
                 "mtu": "1400"},
        "data": {"type": "disk", "path": "/data", "source": "/srv"},
    }
    assert ok(d, "profile", "device", "list", "web", "--project", "pp") == \
        "data\neth0\n"

    err = fails(d, "profile", "device", "remove", "web", "nope",
                "--project", "pp")
    assert err == "Error: The device doesn't exist\n"
    err = fails(d, "profile", "device", "set", "web", "nope", "mtu=1",
                "--project", "pp")
    assert err == "Error: The device doesn't exist\n"
    assert ok(d, "profile", "device", "remove", "web", "data",
              "--project", "pp") == "Device data removed from web\n"

    assert ok(d, "profile", "show", "web", "--project", "pp") == (
        "config:\n"
        "  limits.cpu: \"2\"\n"
        "  security.nesting: \"true\"\n"
        "description: \"\"\n"
        "devices:\n"
        "  eth0:\n"
        "    mtu: \"1400\"\n"
        "    nictype: bridged\n"
        "    parent: br0\n"
        "    type: nic\n"
        "name: web\n"
        "used_by: []\n")

    table = ok(d, "profile", "list", "--project", "pp")
    assert table.splitlines()[1] == \
        "|  NAME   |      DESCRIPTION       | USED BY |"
    assert "| web     |                        | 0       |" in table
    listed = json.loads(ok(d, "profile", "list", "--project", "pp",
                           "--format", "json"))
    assert [p["name"] for p in listed] == ["default", "web"]
    assert listed[1]["devices"]["eth0"]["mtu"] == "1400"
    # The default project does not see it.
    assert "web" not in ok(d, "profile", "list")

    assert ok(d, "profile", "rename", "web", "site", "--project", "pp") == \
        "Profile web renamed to site\n"
    assert ok(d, "profile", "delete", "site", "--project", "pp") == \
        "Profile site deleted\n"
    assert profile_names(d, "pp") == ["default"]


def test_profile_bad_value_is_named_and_changes_nothing(d):
    ok(d, "profile", "create", "p")
    ok(d, "profile", "set", "p", "security.privileged", "false")
    before = profile(d, "p")
    err = fails(d, "profile", "set", "p", "security.privileged", "maybe")
    assert "security.privileged" in err
    err = fails(d, "profile", "device", "add", "p", "eth0", "nic",
                "nictype=bridged", "security.mac_filtering=sometimes")
    assert "security.mac_filtering" in err
    assert profile(d, "p") == before
    err = fails(d, "profile", "set", "missing", "limits.cpu", "1")
    assert "missing" in err and "not found" in err
    assert fails(d, "profile", "set", "p") == \
        "Error: Invalid number of arguments\n"
    assert fails(d, "profile", "set", "p", "limits.cpu") == \
        "Error: No value found in \"limits.cpu\"\n"


def test_profile_and_project_edit_from_stdin(d):
    ok(d, "profile", "create", "p")
    ok(d, "profile", "set", "p", "user.old", "gone")
    yaml_doc = (
        "config:\n"
        "  limits.cpu: 4          # a number in YAML, a string for LXD\n"
        "  limits.memory: 1GiB\n"
        "description: Edited from stdin\n"
        "devices:\n"
        "  root:\n"
        "    path: /\n"
        "    pool: default\n"
        "    type: disk\n")
    assert ok(d, "profile", "edit", "p", stdin=yaml_doc) == ""
    p = profile(d, "p")
    assert p["config"] == {"limits.cpu": "4", "limits.memory": "1GiB"}
    assert p["description"] == "Edited from stdin"
    assert p["devices"] == {"root": {"path": "/", "pool": "default",
                                     "type": "disk"}}

    ok(d, "project", "create", "q")
    doc = {"description": "from JSON",
           "config": {"features.profiles": "true", "user.team": "blue"}}
    ok(d, "project", "edit", "q", stdin=json.dumps(doc))
    q = project(d, "q")
    assert q["description"] == "from JSON"
    assert q["config"]["user.team"] == "blue"

    # Invalid documents and invalid values change nothing.
    err = fails(d, "profile", "edit", "p", stdin="config: [unclosed\n")
    assert "yaml" in err
    err = fails(d, "profile", "edit", "p", stdin="- just\n- a list\n")
    assert "map" in err
    err = fails(d, "profile", "edit", "p",
                stdin="config:\n  security.privileged: maybe\n")
    assert "security.privileged" in err
    assert profile(d, "p") == p


EDITOR_SCRIPT = """#!/bin/sh
%(before)s
sed -i 's/^description: .*/description: %(desc)s/' "$1"
"""


def edit_in_terminal(d, tmp_path, args, desc, before=""):
    """Run `corral ARGS` with a terminal on stdin and an $EDITOR script that
    runs BEFORE (a concurrent change) and then rewrites the description."""
    editor = tmp_path / "editor.sh"
    editor.write_text(EDITOR_SCRIPT % {"before": before, "desc": desc})
    editor.chmod(0o755)
    master, slave = os.openpty()
    try:
        # A pending end-of-file answers lxc's "Press enter to open the
        # editor again" prompt with "abort".
        os.write(master, b"\x04")
        e = dict(os.environ, EDITOR=str(editor))
        e.pop("VISUAL", None)
        e.pop("CORRAL_DIR", None)
        return subprocess.run(
            [CORRAL_BIN, "--socket", d.socket_path] + args, stdin=slave,
            capture_output=True, text=True, timeout=10, env=e)
    finally:
        os.close(slave)
        os.close(master)


def test_edit_in_editor(d, tmp_path):
    ok(d, "profile", "create", "p")
    ok(d, "profile", "set", "p", "limits.cpu=2")
    r = edit_in_terminal(d, tmp_path, ["profile", "edit", "p"], "via editor")
    assert r.returncode == 0, (r.stdout, r.stderr)
    p = profile(d, "p")
    assert p["description"] == "via editor"
    assert p["config"] == {"limits.cpu": "2"}


def test_edit_detects_a_concurrent_change(d, tmp_path):
    """The editor script changes the profile between the CLI's GET and its
    PUT: the PUT carries the old ETag and must be refused, keeping the
    concurrent change and not the edit."""
    ok(d, "profile", "create", "p")
    race = "%s --socket %s profile set p user.race=won" % (
        CORRAL_BIN, d.socket_path)
    r = edit_in_terminal(d, tmp_path, ["profile", "edit", "p"], "lost",
                         before=race)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "ETag doesn't match" in r.stderr
    assert "Press enter to open the editor again" in r.stdout
    p = profile(d, "p")
    assert p["config"] == {"user.race": "won"}
    assert p["description"] != "lost"

    ok(d, "project", "create", "q")
    race = "%s --socket %s project set q user.race=won" % (
        CORRAL_BIN, d.socket_path)
    r = edit_in_terminal(d, tmp_path, ["project", "edit", "q"], "lost",
                         before=race)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "ETag doesn't match" in r.stderr
    assert project(d, "q")["config"]["user.race"] == "won"
    assert project(d, "q")["description"] != "lost"


def test_stale_etag_is_refused_by_the_api(d):
    """What `profile set` and `device add` rely on: a PUT with the ETag of
    an older GET answers 412 and changes nothing."""
    ok(d, "profile", "create", "p")
    hdrs, body = api(d, "GET", "/1.0/profiles/p")
    etag = hdrs["ETag"]
    assert etag
    ok(d, "profile", "set", "p", "user.first=1")
    put = {"config": {"user.second": "2"}, "description": "", "devices": {}}
    _, err = api(d, "PUT", "/1.0/profiles/p", body=put,
                 headers={"If-Match": etag}, status=412)
    assert "ETag" in err["error"]
    assert profile(d, "p")["config"] == {"user.first": "1"}
    # With the current ETag the same PUT goes through.
    hdrs, _ = api(d, "GET", "/1.0/profiles/p")
    api(d, "PUT", "/1.0/profiles/p", body=put,
        headers={"If-Match": hdrs["ETag"]})
    assert profile(d, "p")["config"] == {"user.second": "2"}


def test_unknown_project(d):
    err = fails(d, "profile", "list", "--project", "nope")
    assert "nope" in err
    err = fails(d, "--project", "nope", "profile", "create", "x")
    assert "nope" in err
