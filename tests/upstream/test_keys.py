from __future__ import annotations

from pathlib import Path

from pooldaemon.pool import Snapshot
from pooldaemon.spec import PoolSpec
from pooldaemon.upstream import resolve_keys


def _snap(*keys: dict[str, object]) -> Snapshot:
    return Snapshot.build(
        PoolSpec.model_validate({"version": 1, "providers": [{"id": "p", "keys": list(keys)}]})
    )


def test_every_source(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "p.key").write_text("from-file\n")
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "p-cred").write_text("from-credential")
    snap = _snap(
        {"env": "P_KEY"},
        {"file": "secrets/p.key"},
        {"credential": "p-cred"},
        {"value": "plain-value"},
        {"env": "DISABLED", "enabled": False},
    )
    secrets, problems = resolve_keys(
        snap, config_dir=tmp_path, env={"P_KEY": " from-env ", "CREDENTIALS_DIRECTORY": str(creds)}
    )
    assert problems == []
    by_index = {k.index: secrets.get(k.key_id) for k in snap.by_id["p"].keys}
    assert by_index == {
        0: "from-env",
        1: "from-file",
        2: "from-credential",
        3: "plain-value",
        4: None,
    }


def test_problems_name_the_field_never_the_value(tmp_path: Path) -> None:
    snap = _snap(
        {"env": "UNSET"},
        {"file": "missing.key"},
        {"credential": "c"},
        {"value": "ENC[v1:abcd:efgh]"},
    )
    secrets, problems = resolve_keys(snap, config_dir=tmp_path, env={})
    assert secrets == {}
    assert [str(p) for p in problems] == [
        "providers.p.keys[0]: environment variable UNSET is empty or unset",
        "providers.p.keys[1]: cannot read the key: No such file or directory",
        "providers.p.keys[2]: cannot read the key: $CREDENTIALS_DIRECTORY is not set "
        "(systemd LoadCredential=)",
        "providers.p.keys[3]: cannot read the key: the sealed value was not opened "
        "(no sealing keys given)",
    ]


def test_sealed_values_come_opened(tmp_path: Path) -> None:
    # Sealed values are opened where their place in the file is known
    # (pooldaemon.secrets.unseal_keys); resolve_keys takes the secrets by place.
    snap = _snap({"env": "P_KEY"}, {"value": "ENC[v1:abcd:efgh]", "label": "sealed"})
    secrets, problems = resolve_keys(
        snap, config_dir=tmp_path, env={"P_KEY": "from-env"}, sealed={("p", 1): "from-seal"}
    )
    assert problems == []
    assert [secrets[k.key_id] for k in snap.by_id["p"].keys] == ["from-env", "from-seal"]
