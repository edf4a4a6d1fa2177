"""Choosing PolyDigits' typefaces from the Google Fonts families that fontsource publishes on npm (maintainers only).

`select_fonts(workdir)` reads fontsource's own catalogue of Google Fonts (the npm package google-font-metadata:
families, subsets, weights, category, licence and copyright), downloads every candidate `@fontsource/*` package
with npm, and keeps each family for each numeral system whose ten digits it draws well: all ten in the cmap,
drawn with RAQM, not blank, ten distinct glyphs, not Latin look-alikes. It returns the font table entries (with
the publisher and design lineage of each family, and which of them are held out) and the packages to pin; the
script scripts/select_fonts.py writes them into fonts.yaml and assets.lock.json. Users never run this: the
generator only reads the table and the lock.

Only families of type google are in the catalogue (the few non-Google families that fontsource hosts are not),
and only OFL-1.1 or Apache-2.0 ones are kept.
"""

from __future__ import annotations

import json
import re
import subprocess
import tarfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
from fontTools.ttLib import TTFont
from PIL import ImageFont

from ..errors import UserError
from .assets import LOCK, NpmPackage, load_lock
from .fonts import NUMERALS, TABLE, render_mask

__all__ = ["METADATA", "Candidate", "assign_holdout", "select_fonts", "table_entries"]

METADATA = "google-font-metadata@6.0.8"

# fontsource's subset (Google Fonts' script slice) that holds each numeral system's digits
SUBSETS: dict[str, tuple[str, ...]] = {
    "latn": ("latin",),
    "arab": ("arabic",),
    "pers": ("arabic",),
    "deva": ("devanagari",),
    "beng": ("bengali",),
    "gujr": ("gujarati",),
    "taml": ("tamil",),
    "telu": ("telugu",),
    "knda": ("kannada",),
    "thai": ("thai",),
    "khmr": ("khmer",),
    "mymr": ("myanmar",),
    "hani": ("chinese-simplified", "chinese-traditional", "chinese-hongkong", "japanese", "korean"),
}
STYLE_OF_CATEGORY = {
    "sans-serif": "sans",
    "serif": "serif",
    "display": "display",
    "handwriting": "handwriting",
    "monospace": "mono",
}
LICENCES = {"SIL Open Font License, 1.1": "OFL-1.1", "Apache License, Version 2.0": "Apache-2.0"}
WEIGHTS = (300, 400, 700)  # the weights taken per family (the nearest ones it has), plus a 400 italic
# Latin-only families sampled per category (the families drawing other systems bring their Latin too)
LATIN_ONLY = {"sans-serif": 14, "serif": 12, "display": 10, "handwriting": 12, "monospace": 6}
HAN_FAMILIES = 26  # the Han packages are large (tens of MB each): the smallest ones, plus two Noto ones
_PACK_BATCH = 30


@dataclass
class Candidate:
    """One fontsource family and what it was verified to draw."""

    id: str
    family: str
    category: str
    licence: str
    copyright: str
    website: str
    package: NpmPackage | None = None
    faces: dict[str, list] = field(default_factory=dict)  # numeral system -> faces (a file, or ten files)

    @property
    def npm_name(self) -> str:
        return f"@fontsource/{self.id}"


def select_fonts(workdir: Path, *, progress: bool = True) -> list[Candidate]:
    """Download the catalogue and the candidate packages into `workdir`, check each family, return those kept."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    meta = _unpack_all(_npm_pack([METADATA], workdir)[0]["tarball"], workdir / "metadata", fonts_only=False)
    v1 = json.loads((meta / "data/google-fonts-v1.json").read_text(encoding="utf-8"))
    v2 = json.loads((meta / "data/google-fonts-v2.json").read_text(encoding="utf-8"))
    licences = json.loads((meta / "data/licenses.json").read_text(encoding="utf-8"))
    wanted = _candidates(v1, v2)
    packs = _npm_pack([f"@fontsource/{i}" for i in sorted(wanted)], workdir / "tarballs", progress=progress)
    kept = []
    for info in packs:
        fid = info["name"].removeprefix("@fontsource/")
        meta_entry = v1[fid]
        lic = licences.get(fid, {})
        licence = LICENCES.get(lic.get("license", {}).get("type", ""), "")
        folder = _unpack_all(info["tarball"], workdir / "packages" / fid)
        package_json = json.loads((folder / "package.json").read_text(encoding="utf-8"))
        licence = licence or {"OFL-1.1": "OFL-1.1", "Apache-2.0": "Apache-2.0"}.get(package_json.get("license"), "")
        if not licence:
            continue
        cand = Candidate(
            fid,
            meta_entry["family"],
            meta_entry["category"],
            licence,
            lic.get("authors", {}).get("copyright", ""),
            lic.get("authors", {}).get("website", "") or package_json.get("homepage", ""),
            NpmPackage(info["name"], info["version"], info["integrity"], licence, "fonts"),
        )
        for key in wanted[fid]:
            faces = _faces(folder, fid, meta_entry, key, v2[fid])
            if faces and all(_draws_well(folder, face, key, _latin_face(folder, fid, face)) for face in faces):
                cand.faces[key] = faces
        if cand.faces:
            kept.append(cand)
    return kept


# --------------------------------------------------------------------------------------------------
# Candidates and files
# --------------------------------------------------------------------------------------------------


def _candidates(v1: dict, v2: dict) -> dict[str, set[str]]:
    """{family id: numeral systems to check}: every family with a non-Latin subset, a sample of Latin-only ones,
    and the smallest Han packages (with the Noto ones)."""
    wanted: dict[str, set[str]] = defaultdict(set)
    for fid, entry in v1.items():
        subsets = set(entry["subsets"])
        for key, names in SUBSETS.items():
            if key not in ("latn", "hani") and subsets & set(names):
                wanted[fid].add(key)
    han = [fid for fid, e in v1.items() if set(e["subsets"]) & set(SUBSETS["hani"]) and _covers_han(v2[fid])]
    han.sort(key=lambda f: (len(v2[f]["unicodeRange"]) * len(v1[f]["weights"]) * len(v1[f]["styles"]), f))
    noto = [f for f in han if f in ("noto-sans-sc", "noto-serif-jp")]
    han = [f for f in han if f not in noto]
    for fid in han[: HAN_FAMILIES - len(noto)] + noto:
        wanted[fid].add("hani")
    for fid in list(wanted):
        if "latin" in v1[fid]["subsets"]:
            wanted[fid].add("latn")
    for category, count in LATIN_ONLY.items():
        pool = sorted(f for f, e in v1.items() if e["category"] == category and f not in wanted and e["subsets"])
        pool = [f for f in pool if "latin" in v1[f]["subsets"]]
        for fid in pool[:: max(1, len(pool) // count)][:count]:
            wanted[fid].add("latn")
    return dict(wanted)


def _covers_han(v2_entry: dict) -> bool:
    """Google's slices of the family claim all ten Han numerals."""
    ranges = []
    for text in v2_entry.get("unicodeRange", {}).values():
        for part in text.split(","):
            lo, _, hi = part.strip().removeprefix("U+").partition("-")
            ranges.append((int(lo, 16), int(hi or lo, 16)))
    return all(any(lo <= ord(ch) <= hi for lo, hi in ranges) for ch in NUMERALS["hani"])


def _weights(entry: dict) -> list[tuple[int, str]]:
    weights = sorted(entry["weights"])
    chosen = sorted({min(weights, key=lambda w: (abs(w - target), w)) for target in WEIGHTS})
    faces = [(w, "normal") for w in chosen] if "normal" in entry["styles"] else []
    if "italic" in entry["styles"]:
        faces.append((min(weights, key=lambda w: (abs(w - 400), w)), "italic"))
    return faces


def _faces(folder: Path, fid: str, entry: dict, key: str, v2_entry: dict) -> list:
    """The faces of a family for a system: a subset file per weight, or (Han, split into numbered slices) the ten
    files that hold the ten numerals."""
    faces = []
    for weight, style in _weights(entry):
        if key != "hani":
            subset = next((s for s in SUBSETS[key] if s in entry["subsets"]), None)
            path = f"files/{fid}-{subset}-{weight}-{style}.woff2"
            if subset and (folder / path).is_file():
                faces.append(path)
            continue
        # Google's numbered slices first, then any other file of this weight (a named subset such as japanese)
        slices = [f"files/{fid}-{s.strip('[]')}-{weight}-{style}.woff2" for s in v2_entry.get("unicodeRange", {})]
        others = sorted(str(p.relative_to(folder)) for p in folder.glob(f"files/{fid}-*-{weight}-{style}.woff2"))
        candidates = [p for p in dict.fromkeys(slices + others) if (folder / p).is_file()]
        per_digit = [next((p for p in candidates if ord(ch) in _cmap(folder / p)), None) for ch in NUMERALS["hani"]]
        if all(per_digit):
            faces.append(per_digit[0] if len(set(per_digit)) == 1 else per_digit)
    return faces


def _latin_face(folder: Path, fid: str, face) -> str | None:
    if not isinstance(face, str):
        return None
    path = re.sub(
        rf"^files/{re.escape(fid)}-[a-z-]+-(\d+-(normal|italic))\.woff2$", rf"files/{fid}-latin-\1.woff2", face
    )
    return path if (folder / path).is_file() else None


_CMAPS: dict[Path, set[int]] = {}


def _cmap(path: Path) -> set[int]:
    if path not in _CMAPS:
        _CMAPS[path] = set(TTFont(str(path), lazy=True).getBestCmap())
    return _CMAPS[path]


# --------------------------------------------------------------------------------------------------
# The checks (the same as tests/test_polydigits.py makes on the table)
# --------------------------------------------------------------------------------------------------


def _load(path: Path):
    return ImageFont.truetype(str(path), 64, layout_engine=ImageFont.Layout.RAQM)


def _ink(font, ch, size=24):
    img, bbox = render_mask(font, ch)
    return None if bbox is None else np.asarray(img.crop(bbox).resize((size, size))) > 127


def _square_ink(font, ch):  # the ink box padded to a square: a dot and a bar stay apart
    img, bbox = render_mask(font, ch)
    if bbox is None:
        return None
    x0, y0, x1, y1 = bbox
    side = max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    box = (cx - side // 2 - 1, cy - side // 2 - 1, cx + side // 2 + 1, cy + side // 2 + 1)
    return np.asarray(img.crop(box).resize((32, 32))) > 127


def draws_well(fonts: list, key: str, latin=None) -> bool:
    """Ten fonts (one per digit, often the same) draw the ten digits of `key` as ten distinct inked glyphs, and
    (for a non-Latin system) not as the Latin digits of `latin`, the family's Latin font."""
    glyphs = [_square_ink(font, ch) for font, ch in zip(fonts, NUMERALS[key])]
    if any(g is None or g.sum() == 0 for g in glyphs):
        return False
    iou = [[(g & h).sum() / max((g | h).sum(), 1) for h in glyphs] for g in glyphs]
    if any(iou[a][b] >= 0.95 for a in range(10) for b in range(a)):
        return False
    if key in ("latn", "hani") or latin is None:
        return True
    # pixel agreement with the Latin digit: ~0.95 for a Latin look-alike, ~0.65 for real forms
    agree = []
    for font, a, b in zip(fonts, NUMERALS[key], NUMERALS["latn"]):
        x, y = _ink(font, a), _ink(latin, b)
        if y is not None:
            agree.append((x == y).mean())
    return not agree or float(np.mean(agree)) < 0.85


def _draws_well(folder: Path, face, key: str, latin_path: str | None) -> bool:
    paths = [face] * 10 if isinstance(face, str) else list(face)
    try:
        if any(ord(ch) not in _cmap(folder / p) for p, ch in zip(paths, NUMERALS[key])):
            return False
        fonts = [_load(folder / p) for p in paths]
        latin = _load(folder / latin_path) if latin_path else None
        return draws_well(fonts, key, latin)
    except OSError:  # a font FreeType cannot load or whose hinting program fails
        return False


# --------------------------------------------------------------------------------------------------
# Publishers, lineages and the held-out split
# --------------------------------------------------------------------------------------------------

_HOSTS = {"googlefonts", "google", "fonts", "github", "www", "notofonts"}


def publisher(cand: Candidate) -> str:
    """Who made the family: the copyright holder, or the GitHub owner of its sources when the holder is only
    "The X Project Authors"."""
    if cand.id.startswith("noto-") or "Noto Project" in cand.copyright:
        return "Noto (Google)"
    holder = re.sub(r"(?i)copyright|\(c\)|©|\d{4}(\s*[-,–]\s*\d{4})*|all rights reserved", " ", cand.copyright)
    holder = re.split(r"\s+\S+\.(ttf|otf)\b|\(|<|,|\bwith\b|\bfor\b", holder)[0]
    holder = re.sub(r"\S+\.(org|com|net|in|de|co|uk)\S*|https?://\S+", " ", holder)
    holder = re.sub(r"\s+", " ", holder).strip(" .,;")
    if not holder or re.search(r"(?i)project authors|^the authors$", holder):
        owner = re.search(r"github\.com/([A-Za-z0-9_.-]+)/", cand.website or "")
        if owner and owner.group(1).lower() not in _HOSTS:
            return owner.group(1)
        return holder or cand.family
    return holder


def lineage(family: str, families: list[str]) -> str | None:
    """A design lineage shared by several families: the first word of the family name (Noto, Baloo, Hind, Anek,
    Tiro, M PLUS, Zen …) when other kept families start with it too."""
    first = family.split()[0]
    first = {"M": "M PLUS", "BIZ": "BIZ UD", "IBM": "IBM Plex"}.get(first, first)
    sharing = [f for f in families if f.split()[0] == family.split()[0]]
    return first if len(sharing) >= 2 else None


def _units(cands: list[Candidate]) -> dict[str, str]:
    """{family id: hold-out unit}: families joined by a shared publisher or lineage are one unit."""
    parent = {c.id: c.id for c in cands}

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    families = [c.family for c in cands]
    by_key: dict[str, list[str]] = defaultdict(list)
    for c in cands:
        by_key["p:" + publisher(c)].append(c.id)
        if (g := lineage(c.family, families)) is not None:
            by_key["g:" + g].append(c.id)
    for ids in by_key.values():
        for other in ids[1:]:
            parent[find(other)] = find(ids[0])
    return {c.id: find(c.id) for c in cands}


def assign_holdout(cands: list[Candidate]) -> set[str]:
    """The family ids held out: for every system with two units or more, one whole unit (publisher and lineage),
    the one drawing the fewest of the system's faces that leaves every system it touches a training unit; the
    smaller systems choose first."""
    unit = _units(cands)
    faces_of = defaultdict(Counter)  # system -> unit -> faces
    for c in cands:
        for key, faces in c.faces.items():
            faces_of[key][unit[c.id]] += len(faces)
    held: set[str] = set()
    for key in sorted(faces_of, key=lambda k: (len(faces_of[k]), k)):
        units = faces_of[key]
        if len(units) < 2 or held & set(units):
            continue

        def leaves_training(u):
            return all(set(faces_of[k]) - held - {u} for k in faces_of if u in faces_of[k])

        options = [u for u in units if leaves_training(u)]
        # a unit of its own size: not the biggest (training needs it), not a token one (a fair test)
        total = sum(units.values())
        options.sort(key=lambda u: (abs(units[u] - 0.2 * total), u))
        if options:
            held.add(options[0])
    return {c.id for c in cands if unit[c.id] in held}


def style_of(cand: Candidate) -> str:
    name = cand.family.lower()
    for word, style in (("slab", "slab"), ("kufi", "kufi"), ("naskh", "naskh"), ("rounded", "rounded")):
        if word in name:
            return style
    if "mono" in name or "code" in name:
        return "mono"
    return STYLE_OF_CATEGORY.get(cand.category, "sans")


def table_entries(cands: list[Candidate]) -> list[dict]:
    """The font table's entries (fonts.yaml), one per family, in the order of the systems they draw."""
    held = assign_holdout(cands)
    families = [c.family for c in cands]
    order = list(NUMERALS)
    entries = []
    for c in sorted(cands, key=lambda c: (min(order.index(k) for k in c.faces), c.family)):
        entry = {
            "name": c.family,
            "family": c.family,
            "group": lineage(c.family, families),
            "publisher": publisher(c),
            "style": style_of(c),
            "scripts": [k for k in order if k in c.faces],
            "holdout": c.id in held,
            "package": c.npm_name,
            "files": {k: c.faces[k] for k in order if k in c.faces},
            "licence": c.licence,
            "copyright": c.copyright,
        }
        entries.append({k: v for k, v in entry.items() if v is not None})
    return entries


# --------------------------------------------------------------------------------------------------
# npm
# --------------------------------------------------------------------------------------------------


def _npm_pack(specs: list[str], destination: Path, progress: bool = False) -> list[dict]:
    """`npm pack` in batches; [{name, version, integrity, tarball}], reusing tarballs already downloaded."""
    destination.mkdir(parents=True, exist_ok=True)
    index_file = destination / "index.json"
    index = json.loads(index_file.read_text(encoding="utf-8")) if index_file.is_file() else {}
    todo = [s for s in specs if s not in index or (index[s] and not Path(index[s]["tarball"]).is_file())]
    for start in range(0, len(todo), _PACK_BATCH):
        batch = todo[start : start + _PACK_BATCH]
        if progress:
            print(f"npm pack {start + len(batch)}/{len(todo)}", flush=True)
        while True:
            run = subprocess.run(
                ["npm", "pack", *batch, "--json", "--pack-destination", str(destination), "--ignore-scripts"],
                capture_output=True,
                text=True,
            )
            absent = re.search(r"'(@fontsource/[a-z0-9-]+)@\*' could not be found", run.stderr)
            if run.returncode == 0 or not absent:
                break
            # a Google family that fontsource does not publish: left out
            batch.remove(absent.group(1))
            index[absent.group(1)] = None
        if run.returncode != 0:
            raise UserError(f"npm pack failed for {batch[0]}…: {(run.stderr.strip().splitlines() or ['?'])[-1]}")
        by_name = {item["name"]: item for item in json.loads(run.stdout)}
        for spec in batch:
            item = by_name[spec.rsplit("@", 1)[0] if spec.count("@") > spec.startswith("@") else spec]
            index[spec] = {
                "name": item["name"],
                "version": item["version"],
                "integrity": item["integrity"],
                "tarball": str(destination / item["filename"]),
            }
        index_file.write_text(json.dumps(index, indent=0), encoding="utf-8")
    return [index[s] for s in specs if index[s]]


def _unpack_all(tarball: str | Path, folder: Path, fonts_only: bool = True) -> Path:
    if not (folder / "package.json").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tarball) as archive:
            members = [m for m in archive.getmembers() if m.isfile() and m.name.startswith("package/")]
            for m in members:
                m.name = m.name[len("package/") :]
            if fonts_only:
                members = [m for m in members if m.name == "package.json" or m.name.endswith(".woff2")]
            archive.extractall(folder, members=members, filter="data")
    return folder


# --------------------------------------------------------------------------------------------------
# Writing the table and the lock
# --------------------------------------------------------------------------------------------------

HEADER = """\
# The typefaces PolyDigits renders with: Google Fonts families from fontsource's npm packages (@fontsource/*),
# each pinned by version and integrity hash in assets.lock.json and fetched with `polyglot-vision fetch`;
# never the operating system's fonts. Written by scripts/select_fonts.py (builtin_data/font_selection.py);
# read by builtin_data/fonts.py. The generator draws training images with the entries whose `holdout` is false
# and the held-out set (`generate_polydigits(..., holdout_fonts=True)`) with the others.
#
# name       one entry per type family
# family     the type family
# group      a design lineage shared by several families (Noto, Baloo, Hind, Anek, M PLUS …)
# publisher  who made it: the copyright holder (google-font-metadata's licences), or the owner of its sources
# holdout    held out of training; `holdout` belongs to the family, its group and its publisher together: for
#            every numeral system with two publishers or more, one whole publisher/lineage is held out
# style      sans, serif, slab, naskh, kufi, display, mono, rounded, handwriting (drawn twice as often)
# scripts    the numeral systems (keys of fonts.NUMERALS) the family draws, each verified on every file: all ten
#            digits in the cmap, drawn with RAQM, not blank or .notdef, ten distinct glyphs, not Latin
#            look-alikes (tests/test_polydigits.py checks it again)
# package    the npm package; `files` per system: the fontsource subset file of each weight taken (300/400/700,
#            and a 400 italic), or for Han, whose numerals fontsource splits over numbered slices, the ten
#            files that hold 〇 … 九 (one per digit, in order)
# licence    the family's licence (OFL-1.1 or Apache-2.0); `copyright` its copyright line
"""


def write_selection(cands: list[Candidate], table: Path | None = None, lock: Path | None = None) -> list[str]:
    """Write fonts.yaml and replace the lock's font packages; return one summary line per numeral system."""
    table, lock = Path(table or TABLE), Path(lock or LOCK)
    entries = table_entries(cands)
    text = HEADER + yaml.safe_dump(entries, allow_unicode=True, sort_keys=False, width=120)
    tmp = table.with_name(table.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(table)
    others = [p for p in load_lock(lock).values() if p.purpose != "fonts"]
    used = {e["package"] for e in entries}
    packages = others + [c.package for c in cands if c.npm_name in used]
    document = {"packages": [vars(p) for p in sorted(packages, key=lambda p: (p.purpose, p.name))]}
    tmp = lock.with_name(lock.name + ".tmp")
    tmp.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(lock)
    lines = []
    for key in NUMERALS:
        train = [e["family"] for e in entries if key in e["scripts"] and not e["holdout"]]
        held = [e["family"] for e in entries if key in e["scripts"] and e["holdout"]]
        pubs = {e["publisher"] for e in entries if key in e["scripts"]}
        lines.append(f"{key}: {len(train)} training, {len(held)} held out ({', '.join(held)}); {len(pubs)} publishers")
    return lines
