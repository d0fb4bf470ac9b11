"""`replicadesk job create|edit|list|show|delete` against the real lab's inventories.

Jobs made from flags (names resolved to managed object IDs on the live servers) and from YAML
and JSON job files; `show --yaml/--json` read back by `create --file` gives the same job; bad
definitions are refused with the model's key-path errors and leave nothing stored.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from core.errors import InUseError, InvalidSettingError, JobFileError, NotFoundError, UsageError
from core.lab.lab import LabState
from tests.core.cli.conftest import Cli

ODD = ("db #2 & replica", "50% batch", "Zürich fileserver [fs]")


def vm_moref(inv: dict[str, Any], name: str) -> str:
    (moref,) = [v["moref"] for v in inv["vms"] if v["name"] == name]
    return str(moref)


def flags_job(lab: LabState, name: str, *extra: str) -> list[str]:
    return [
        "job", "create", "--name", name,
        "--source-server", lab.production.address,
        "--vm", ODD[0], "--vm", ODD[1], "--container", "folder:Apps/Web",
        "--target-server", lab.dr.address, "--target-cluster", "DR Cluster",
        "--datastore", "dr-ds-01", "--resource-pool", "Replicas",
        "--network-map", "Prod App=DR App", "--network-map", "pg-web=DR Web",
        "--repository", "metadata", *extra,
    ]  # fmt: skip


def test_create_from_flags_show_list_edit_delete(
    lab: LabState,
    infra: Cli,
    prod_inventory: dict[str, Any],
) -> None:
    name = "SQL tier #1 & co (prod)"
    infra.ok(
        *flags_job(lab, name),
        "--vm", ODD[2], "--keep", "5", "--block-size", "wan", "--suffix", "_dr",
        "--target-proxy", "dr-proxy", "--no-cbt", "--daily", "22:00", "--daily", "04:30",
    )  # fmt: skip
    doc = infra.json("job", "show", name)
    assert doc["name"] == name
    assert doc["source"]["server"] == lab.production.address
    objects = doc["source"]["objects"]
    assert [(o["kind"], o["name"]) for o in objects] == [
        ("vm", ODD[0]),
        ("vm", ODD[1]),
        ("folder", "Apps/Web"),
        ("vm", ODD[2]),
    ]
    assert objects[0]["moref"] == vm_moref(prod_inventory, ODD[0])
    assert objects[2]["moref"].startswith("folder-") or objects[2]["moref"].startswith("group-")
    dest = doc["destination"]
    assert dest["server"] == lab.dr.address
    assert (dest["target"]["kind"], dest["target"]["name"]) == ("cluster", "DR Cluster")
    assert dest["datastore"]["name"] == "dr-ds-01"
    assert dest["resource_pool"]["name"] == "Replicas"
    assert doc["network"]["mappings"] == [
        {"source": "Prod App", "target": "DR App"},
        {"source": "pg-web", "target": "DR Web"},
    ]
    s = doc["settings"]
    assert (s["restore_points"], s["block_size"], s["replica_suffix"]) == (5, "wan", "_dr")
    assert (s["use_cbt"], s["enable_cbt"], s["repository"]) == (False, False, "metadata")
    assert doc["transfer"]["target_proxies"] == ["dr-proxy"]
    assert doc["schedule"]["daily"] == {"at": ["22:00", "04:30"]}

    text = infra.ok("job", "show", name)
    assert f'job "{name}"' in text and f'vm "{ODD[2]}"' in text and "every" not in text
    listed = {j["name"]: j for j in infra.json("job", "list")}
    assert listed[name]["schedule"] == "daily at 22:00, 04:30"
    assert listed[name]["objects"] == [ODD[0], ODD[1], "Apps/Web", ODD[2]]
    assert name in infra.ok("job", "list")

    # Edit: only what the flags name changes.
    infra.ok("job", "edit", name, "--keep", "9", "--every", "2h", "--cbt", "--vm", ODD[1])
    edited = infra.json("job", "show", name)
    assert edited["settings"]["restore_points"] == 9
    assert edited["settings"]["use_cbt"] is True
    assert edited["schedule"]["periodic"] == {"every": 2, "unit": "hours", "offset_minutes": 0}
    assert "daily" not in edited["schedule"]
    assert [o["name"] for o in edited["source"]["objects"]] == [ODD[1]]
    assert edited["destination"] == doc["destination"]
    assert infra.json("job", "list")[0]["schedule"] == "every 2 hours"
    infra.ok("job", "edit", name, "--datastore", "dr-ds-02", "--target-host", "esx-d02.dr.lab")
    moved = infra.json("job", "show", name)["destination"]
    assert moved["target"]["kind"] == "host" and moved["datastore"]["name"] == "dr-ds-02"
    assert "resource_pool" not in moved  # the pool belonged to the cluster

    # In use: the servers and the repository cannot be removed under the job.
    line = infra.fails(InUseError.exit_code, "server", "remove", lab.production.address)
    assert f"is still used by job '{name}'" in line
    line = infra.fails(InUseError.exit_code, "repo", "remove", "metadata")
    assert f"job '{name}'" in line

    infra.ok("job", "delete", name)
    assert name not in [j["name"] for j in infra.json("job", "list")]
    line = infra.fails(NotFoundError.exit_code, "job", "show", name)
    assert f"There is no job '{name}'" in line


def test_create_from_yaml_file_and_round_trip(
    lab: LabState, infra: Cli, prod_inventory: dict[str, Any], tmp_path: Path
) -> None:
    dr = infra.json("inventory", "--server", lab.dr.address)[0]
    ds = next(d for d in dr["datastores"] if d["name"] == "dr-ds-02")
    (cluster,) = dr["clusters"]
    written = {
        "name": "Zürich & 50% [yaml]",
        "description": "written by hand\n",
        "source": {
            "server": lab.production.address,
            "objects": [
                {"kind": "vm", "moref": vm_moref(prod_inventory, n), "name": n} for n in ODD
            ],
        },
        "destination": {
            "server": lab.dr.address,
            "target": {"kind": "cluster", "moref": cluster["moref"], "name": cluster["name"]},
            "datastore": {"kind": "datastore", "moref": ds["moref"], "name": ds["name"]},
            "disk_type": "thin",
        },
        "network": {"mappings": [{"source": "pg-db [tier 2]", "target": "DR DB"}]},
        "settings": {"repository": "metadata", "restore_points": 28, "block_size": "lan"},
        "transfer": {"source_proxies": ["prod-proxy"], "target_proxies": "automatic"},
        "schedule": {"periodic": {"every": 30, "unit": "minutes"}, "retry": {"times": 2}},
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(written, allow_unicode=True), encoding="utf-8")
    infra.ok("job", "create", "--file", str(path))
    name = written["name"]
    shown_yaml = infra.ok("job", "show", name, "--yaml")
    shown = yaml.safe_load(shown_yaml)
    assert shown["source"] == written["source"]
    assert shown["destination"]["datastore"]["moref"] == ds["moref"]
    assert shown["settings"]["restore_points"] == 28
    assert shown["schedule"]["retry"] == {"times": 2, "wait_minutes": 10}

    # Round trip: what show prints, create --file reads back into the same job.
    again = tmp_path / "again.yaml"
    again.write_text(shown_yaml, encoding="utf-8")
    infra.ok("job", "delete", name)
    infra.ok("job", "create", "--file", str(again))
    assert infra.ok("job", "show", name, "--yaml") == shown_yaml
    as_json = tmp_path / "job.json"
    as_json.write_text(infra.ok("job", "show", name, "--json"), encoding="utf-8")
    infra.ok("job", "create", "--file", str(as_json), "--name", "copy of it", "--keep", "3")
    copy = infra.json("job", "show", "copy of it")
    original = json.loads(as_json.read_text(encoding="utf-8"))
    assert copy["settings"].pop("restore_points") == 3
    original["settings"].pop("restore_points")
    assert {**copy, "name": name} == original

    # edit --file replaces the definition; the file must name the job being edited.
    changed = {**written, "description": "changed"}
    path.write_text(yaml.safe_dump(changed, allow_unicode=True), encoding="utf-8")
    infra.ok("job", "edit", name, "--file", str(path))
    assert infra.json("job", "show", name)["description"] == "changed"
    line = infra.fails(UsageError.exit_code, "job", "edit", "copy of it", "--file", str(path))
    assert "a job's name is its identity" in line

    # A job that runs after another keeps it from being deleted.
    infra.ok("job", "edit", "copy of it", "--after", name)
    line = infra.fails(InUseError.exit_code, "job", "delete", name)
    assert "job 'copy of it'" in line
    infra.ok("job", "delete", "copy of it")
    infra.ok("job", "delete", name)


def test_bad_jobs_are_refused(lab: LabState, infra: Cli, tmp_path: Path) -> None:
    before = infra.json("job", "list")
    code = InvalidSettingError.exit_code
    line = infra.fails(code, *flags_job(lab, "bad 1"), "--vm", "no such vm")
    assert '--vm: no VM named "no such vm"' in line and "replicadesk inventory" in line
    line = infra.fails(code, *flags_job(lab, "bad 2"), "--vm", "db #2 & replic")
    assert "did you mean 'db #2 & replica'" in line
    line = infra.fails(code, *flags_job(lab, "bad 3", "--keep", "29"))
    assert line.endswith("settings.restore_points: 29 is out of range (1 to 28) (--keep)")
    line = infra.fails(code, *flags_job(lab, "bad 4", "--network-map", "Prod App=DR Nowhere"))
    assert 'target network "DR Nowhere" is not on' in line and "DR App" in line
    line = infra.fails(code, *flags_job(lab, "bad 5", "--daily", "25:00"))
    assert 'schedule.daily.at[0]: "25:00" is not a time' in line
    line = infra.fails(code, *flags_job(lab, "bad 6", "--suffix", "a/b"))
    assert "settings.replica_suffix" in line and "(--suffix)" in line
    line = infra.fails(code, *flags_job(lab, "bad 7", "--datastore", "prod-ds-01"))
    assert '--datastore: no datastore named "prod-ds-01"' in line
    line = infra.fails(UsageError.exit_code, *flags_job(lab, "bad 8", "--every", "7x"))
    assert "--every '7x'" in line
    line = infra.fails(NotFoundError.exit_code, *flags_job(lab, "bad 9"), "--repository", "nope")
    assert "There is no repository 'nope'" in line
    line = infra.fails(UsageError.exit_code, "job", "create", "--name", "bad 10")
    assert "--source-server" in line and "--file" in line

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad file\nsource: {server: a.example, objects: [{kind: vm, moref: vm-1, name: x}]}\n"
        "destination: {server: b.example, target: {kind: host, moref: host-1, name: h},\n"
        "  datastore: {kind: datastore, moref: ds-1, name: d}}\n"
        "settings: {repository: metadata, restore_points: 29, colour: blue}\n",
        encoding="utf-8",
    )
    line = infra.fails(JobFileError.exit_code, "job", "create", "--file", str(bad))
    assert f"Job file {bad}: settings.colour: unknown key" in line
    bad.write_text(bad.read_text().replace(", colour: blue", ""), encoding="utf-8")
    line = infra.fails(JobFileError.exit_code, "job", "create", "--file", str(bad))
    assert "settings.restore_points: 29 is out of range (1 to 28)" in line
    assert infra.json("job", "list") == before
