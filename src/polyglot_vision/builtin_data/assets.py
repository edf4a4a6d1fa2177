"""Pinned npm packages that the built-in datasets draw from (fonts, emoji designs, CLDR names): one lock, one
fetch, one check.

The lock (assets.lock.json, beside this module) names every package by exact version, with npm's integrity
hash (sha512 of the tarball) and its licence. `fetch()` (the command `polyglot-vision fetch`) brings the
tarballs with npm's own client, checks each against its hash, and unpacks it into the cache, recording the
sha256 of every file; from then on the generators run offline. A generator asks for a file with
`asset_file(package, path)`, which checks that file against the record: a package that is missing, or a
file that is missing or altered, is one line that names the command that fixes it.

    fetch()                                           # every locked package, skipping those already there
    asset_file("@fontsource/noto-serif-khmer", "files/noto-serif-khmer-khmer-400-normal.woff2")

The cache is `$POLYGLOT_VISION_CACHE/npm` (default `~/.cache/polyglot-vision/npm`), one folder per
package and version.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable

from tqdm.auto import tqdm

from ..errors import UserError

__all__ = [
    "LOCK",
    "NpmPackage",
    "asset_file",
    "cache_dir",
    "fetch",
    "load_lock",
    "add_to_lock",
    "missing_packages",
    "package_dir",
]

LOCK = Path(__file__).with_name("assets.lock.json")
FETCH_COMMAND = "polyglot-vision fetch"
_RECORD = ".polyglot-vision-files.json"  # sha256 of every unpacked file, written after the tarball was verified
_BATCH = 16  # packages per npm call
_DOWNLOADS = 6  # npm calls at once


@dataclass(frozen=True)
class NpmPackage:
    """One pinned npm package: what the built-in data may use from it, and under which licence."""

    name: str
    version: str
    integrity: str  # npm's "sha512-<base64>" of the tarball
    license: str
    purpose: str  # what reads it: "fonts", "emoji", "names", …

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def folder(self) -> str:
        return self.spec.replace("/", "+")


def load_lock(path: Path | None = None) -> dict[str, NpmPackage]:
    """{package name: NpmPackage} from the lock file; one version per package."""
    path = path or LOCK
    entries = json.loads(Path(path).read_text(encoding="utf-8"))["packages"]
    packages: dict[str, NpmPackage] = {}
    for entry in entries:
        package = NpmPackage(**entry)
        if not package.integrity.startswith("sha512-") or package.name in packages:
            raise ValueError(f"{path}: {package.spec}: a duplicate, or an integrity that is not sha512")
        packages[package.name] = package
    return packages


@lru_cache(maxsize=1)
def _locked() -> dict[str, NpmPackage]:
    return load_lock()


def cache_dir() -> Path:
    root = os.environ.get("POLYGLOT_VISION_CACHE") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "polyglot-vision"
    )
    return Path(root).expanduser() / "npm"


def _locked_package(name: str) -> NpmPackage:
    try:
        return _locked()[name]
    except KeyError:
        raise UserError(f"npm package {name!r} is not in the lock file {LOCK.name}") from None


def package_dir(name: str) -> Path:
    """The unpacked, verified folder of a locked package; one line naming the fix when it is not there."""
    package = _locked_package(name)
    folder = cache_dir() / package.folder
    if not (folder / _RECORD).is_file():
        raise UserError(f"npm package {package.spec} is not in the cache {cache_dir()}; run `{FETCH_COMMAND}`")
    return folder


@lru_cache(maxsize=None)
def _record(folder: Path) -> dict[str, str]:
    return json.loads((folder / _RECORD).read_text(encoding="utf-8"))["files"]


@lru_cache(maxsize=None)
def asset_file(name: str, path: str) -> Path:
    """A file of a locked package, checked against the hash recorded when its tarball was verified."""
    folder = package_dir(name)
    expected = _record(folder).get(path)
    file = folder / path
    spec = _locked_package(name).spec
    if expected is None:
        raise UserError(f"npm package {spec} has no file {path!r}")
    if not file.is_file() or file.is_symlink() or _sha256(file) != expected:
        raise UserError(f"npm package {spec}: file {path} is missing or altered; run `{FETCH_COMMAND}`")
    return file


def missing_packages(packages: Iterable[NpmPackage] | None = None) -> list[NpmPackage]:
    """Locked packages whose folder or record is not in the cache."""
    packages = list(_locked().values() if packages is None else packages)
    return [p for p in packages if not (cache_dir() / p.folder / _RECORD).is_file()]


def fetch(purposes: Iterable[str] | None = None, *, verify: bool = False, progress: bool = True) -> list[NpmPackage]:
    """Bring every locked package (of the given purposes) into the cache; returns those fetched now.

    Packages already there are skipped, unless `verify` re-hashes their files, in which case a package with a
    missing or altered file is fetched again.
    """
    wanted = [p for p in _locked().values() if purposes is None or p.purpose in set(purposes)]
    todo = missing_packages(wanted)
    if verify:
        todo += [p for p in wanted if p not in todo and not _intact(cache_dir() / p.folder)]
    if not todo:
        return []
    if shutil.which("npm") is None:
        raise UserError("npm is not installed: the built-in data's packages come from npm (install Node.js)")
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    batches = [todo[start : start + _BATCH] for start in range(0, len(todo), _BATCH)]
    with (
        tempfile.TemporaryDirectory(prefix=".download-", dir=root) as tmp,
        tqdm(total=len(todo), desc="npm packages", unit="pkg", disable=not progress) as bar,
        ThreadPoolExecutor(_DOWNLOADS) as pool,
    ):
        # npm spends most of a call waiting on the registry: several calls at once, each into its own folder.
        folders = [Path(tempfile.mkdtemp(dir=tmp)) for _ in batches]
        calls = [pool.submit(_npm_pack, [p.spec for p in batch], folder) for batch, folder in zip(batches, folders)]
        for batch, call in zip(batches, calls):
            tarballs = call.result()
            for package in batch:
                tarball = tarballs.get(package.spec)
                if tarball is None:
                    raise UserError(f"npm did not return {package.spec}; is the npm registry reachable?")
                _check_integrity(tarball, package)
                _unpack(tarball, root / package.folder)
                tarball.unlink()
                bar.update()
    _record.cache_clear()
    asset_file.cache_clear()
    return todo


def _npm_pack(specs: list[str], destination: Path) -> dict[str, Path]:
    run = subprocess.run(
        ["npm", "pack", *specs, "--json", "--pack-destination", str(destination), "--ignore-scripts"],
        capture_output=True,
        text=True,
    )
    if run.returncode != 0:
        lines = [line for line in run.stderr.splitlines() if "ERR" in line] or run.stderr.splitlines() or ["?"]
        raise UserError(f"npm pack failed for {specs[0]}…: {lines[0].strip()}")
    return {f"{item['name']}@{item['version']}": destination / item["filename"] for item in json.loads(run.stdout)}


def _check_integrity(tarball: Path, package: NpmPackage) -> None:
    digest = hashlib.sha512(tarball.read_bytes()).digest()
    if "sha512-" + base64.b64encode(digest).decode() != package.integrity:
        raise UserError(f"npm package {package.spec}: the tarball does not match the lock's integrity hash")


def _unpack(tarball: Path, folder: Path) -> None:
    """Unpack `package/…` into `folder` through a temporary sibling, then record every file's hash."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        with tarfile.open(tarball) as archive:
            members = [m for m in archive.getmembers() if m.isfile() and m.name.startswith("package/")]
            for member in members:
                member.name = member.name[len("package/") :]
            archive.extractall(tmp, members=members, filter="data")
        files = {m.name: _sha256(tmp / m.name) for m in members}
        (tmp / _RECORD).write_text(json.dumps({"files": files}, indent=0, sort_keys=True), encoding="utf-8")
        os.chmod(tmp, 0o755)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _intact(folder: Path) -> bool:
    if not (folder / _RECORD).is_file():
        return False
    record = json.loads((folder / _RECORD).read_text(encoding="utf-8"))["files"]
    return all((folder / path).is_file() and _sha256(folder / path) == digest for path, digest in record.items())


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def add_to_lock(specs: Iterable[str], purpose: str, path: Path | None = None) -> list[NpmPackage]:
    """Pin packages (`name` for the newest version, or `name@version`) into the lock, with npm's integrity and
    licence; a package already locked is re-pinned. Maintainers run this; users only `fetch`."""
    specs, path = list(specs), path or LOCK
    entries = {p.name: p for p in load_lock(path).values()} if Path(path).is_file() else {}
    added = []
    for spec in tqdm(specs, desc="npm view", unit="pkg", disable=len(specs) < 10):
        view = _npm_view(spec)
        package = NpmPackage(view["name"], view["version"], view["dist.integrity"], str(view["license"]), purpose)
        entries[package.name] = package
        added.append(package)
    document = {"packages": [vars(p) for p in sorted(entries.values(), key=lambda p: (p.purpose, p.name))]}
    Path(path).write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    _locked.cache_clear()
    return added


def _npm_view(spec: str) -> dict:
    run = subprocess.run(
        ["npm", "view", spec, "name", "version", "dist.integrity", "license", "--json"],
        capture_output=True,
        text=True,
    )
    if run.returncode != 0:
        raise UserError(f"npm view {spec} failed: {(run.stderr.strip().splitlines() or ['?'])[0]}")
    view = json.loads(run.stdout)
    if isinstance(view, list):  # a range matched several versions: the newest
        view = view[-1]
    return view
