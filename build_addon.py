"""Build facecam's installable Blender extension zip: `python build_addon.py [--out dist] [--model DIR] [--wheels]`.

The zip holds blender_manifest.toml, the add-on (blender_addon/), core/ bundled beside it, and
weights_manifest.json, and with --model FOLDER an exported model (model/: what generation reads and its model card),
which the add-on then uses by default. The version comes from core.__version__, the one place it is set.

One zip for every platform: generation needs only the numpy every Blender ships. Hub downloads need
huggingface_hub, bundled with what it imports as pure-Python wheels (Blender installs an extension's wheels itself):
pip downloads them once into build/runtime-wheels/ (PyYAML, which PyPI serves only as compiled wheels, is built from its
source without its optional C speed-up; hf_xet, an optional accelerator, is left out). --no-hub leaves them out
(the hub route then says what is missing; bundled and local models still work). threadpoolctl, one pure-Python
file, is always bundled: it lets numpy's texture convolutions use every core.

--wheels is the GPU route: it also bundles torch (with its dependencies, for this platform and Blender's Python
3.11), so the zip is for this platform only; --wheel-dir DIR bundles the wheels already in DIR instead (offline
builds, other platforms).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from core import __version__
from core.atomic import atomic_path

ROOT = Path(__file__).resolve().parent
EXTENSION_ID = "facecam"
GPU_REQUIREMENTS = ["torch==2.13.0"]
HUB_REQUIREMENTS = ["huggingface_hub==2.4.0"]
# lets numpy's texture convolutions use every core (core/numpy_networks.py: blas_one_thread); pure Python
SPEED_REQUIREMENTS = ["threadpoolctl==3.8.0"]
# compiled wheels among huggingface_hub's dependencies: built from source as pure Python, or left out
BUILT_PURE = {"pyyaml": "PYYAML_FORCE_LIBYAML"}  # the C extension is optional: yaml falls back to pure Python
OPTIONAL_AT_RUN_TIME = ("hf-xet",)  # huggingface_hub uses it only where it is installed
WHEEL_CACHE = ROOT / "build" / "runtime-wheels"
PROVIDED_BY_BLENDER = ("numpy",)  # Blender ships its own; a second copy would shadow it
_PLATFORM_TAGS = (("manylinux", "x86_64", "linux-x64"), ("manylinux", "aarch64", "linux-arm64"),
                  ("macosx", "arm64", "macos-arm64"), ("macosx", "x86_64", "macos-x64"),
                  ("win", "amd64", "windows-x64"), ("win", "arm64", "windows-arm64"))


def version() -> str:
    if not re.fullmatch(r"[0-9]+\.[0-9]+\.[0-9]+", __version__):
        raise SystemExit(f"core/__init__.py: __version__ {__version__!r} is not X.Y.Z")
    return __version__


def wheel_platforms(wheels: list[Path]) -> list[str]:
    """Blender platform names the wheels are built for (empty when every wheel is pure Python)."""
    found = set()
    for wheel in wheels:
        tag = wheel.stem.split("-")[-1].lower()
        if tag == "any":
            continue
        matches = {name for os_part, arch, name in _PLATFORM_TAGS if os_part in tag and arch in tag}
        if not matches:
            raise SystemExit(f"{wheel.name}: platform tag {tag!r} is not one Blender extensions support")
        found |= matches
    return sorted(found)


def _pip(*args: str, env: dict | None = None) -> None:
    cmd = [sys.executable, "-m", "pip", *args]
    if subprocess.run(cmd, env=env).returncode != 0:
        raise SystemExit(f"pip failed: {' '.join(cmd)}")


def download_wheels(dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    _pip("download", "--quiet", "--only-binary=:all:", "--python-version", "3.11", "--dest", str(dest),
         *GPU_REQUIREMENTS)
    return collect_wheels(dest)


def _project_name(wheel: Path) -> str:
    return wheel.name.split("-")[0].lower().replace("_", "-")


def pure_wheels(requirements: list[str], cache: Path = WHEEL_CACHE) -> list[Path]:
    """`requirements` and what they import, as pure-Python wheels, from the cache or downloaded into it (a folder
    per requirement set, written whole or not at all)."""
    folder = cache / hashlib.sha256(" ".join(requirements + sorted(BUILT_PURE)).encode()).hexdigest()[:12]
    if not (folder / "COMPLETE").is_file():
        cache.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".runtime-wheels.", dir=cache))
        try:
            _pip("download", "--quiet", "--only-binary=:all:", "--python-version", "3.11", "--dest", str(work),
                 *requirements)
            for wheel in sorted(work.glob("*.whl")):
                if wheel.name.endswith("-none-any.whl"):
                    continue
                name = _project_name(wheel)
                wheel.unlink()
                if name in BUILT_PURE:
                    version = wheel.name.split("-")[1]
                    _pip("wheel", "--quiet", "--no-deps", "--no-binary", name, "--wheel-dir", str(work),
                         f"{name}=={version}", env={**os.environ, BUILT_PURE[name]: "0"})
                elif name not in OPTIONAL_AT_RUN_TIME:
                    raise SystemExit(f"{wheel.name}: {' '.join(requirements)} need(s) this compiled package at run "
                                     f"time; the extension bundles only pure-Python wheels")
            impure = [w.name for w in work.glob("*.whl") if not w.name.endswith("-none-any.whl")]
            if impure:
                raise SystemExit(f"not pure-Python wheels: {', '.join(impure)}")
            (work / "COMPLETE").write_text("\n".join(requirements) + "\n")
            shutil.rmtree(folder, ignore_errors=True)
            work.rename(folder)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return collect_wheels(folder)


def collect_wheels(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise SystemExit(f"--wheel-dir {folder}: not a folder")
    wheels = sorted(p for p in folder.glob("*.whl") if _project_name(p) not in PROVIDED_BY_BLENDER)
    if not wheels:
        raise SystemExit(f"--wheel-dir {folder}: no .whl files in it")
    return wheels


def manifest_toml(wheels: list[Path] = ()) -> str:
    extra = ""
    if wheels:
        extra = "wheels = [\n" + "".join(f'  "./wheels/{w.name}",\n' for w in wheels) + "]\n"
        platforms = wheel_platforms(list(wheels))
        if platforms:
            extra += "platforms = [" + ", ".join(f'"{p}"' for p in platforms) + "]\n"
    return f'''schema_version = "1.0.0"
id = "{EXTENSION_ID}"
version = "{version()}"
name = "facecam"
tagline = "Controllable 3D faces: identity, expression and intensity"
maintainer = "facecam developers"
type = "add-on"
blender_version_min = "4.2.0"
license = ["SPDX:MIT"]
{extra}
[permissions]
network = "Download face model weights from the Hugging Face hub"
files = "Read model weights and write generated meshes and textures"
'''


def package_files() -> list[tuple[Path, str]]:
    """(source file, path inside the zip) for everything the extension ships."""
    files = [(p, p.relative_to(ROOT / "blender_addon").as_posix()) for p in sorted((ROOT / "blender_addon").rglob("*.py"))]
    files += [(p, p.relative_to(ROOT).as_posix()) for p in sorted((ROOT / "core").rglob("*.py"))]
    files.append((ROOT / "weights_manifest.json", "weights_manifest.json"))
    return files


BUNDLED_MODEL_DIR = "model"  # where a bundled model lives inside the extension (blender_addon/model_session.py)


def model_files(folder: Path) -> list[tuple[Path, str]]:
    """(source file, path inside the zip) for a model folder written by `python -m train export`: what generation
    reads, and its model card (what it was trained on, its license)."""
    import json
    from core.face_model import generation_files
    config = folder / "config.json"
    if not config.is_file():
        raise SystemExit(f"--model {folder}: no config.json; expected a folder written by `python -m train export`")
    try:
        names = [*generation_files(json.loads(config.read_text())), "README.md"]
    except ValueError as e:
        raise SystemExit(f"--model {folder}: config.json is not JSON ({e})") from None
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise SystemExit(f"--model {folder}: missing {', '.join(missing)}; export the model again")
    return [(folder / n, f"{BUNDLED_MODEL_DIR}/{n}") for n in names]


def build(out_dir: Path, wheels: list[Path] = (), model: Path | None = None) -> Path:
    bundled_model = model_files(model) if model else []
    by_name = {}
    for wheel in wheels:  # one wheel per project: --wheel-dir and the hub's may both hold one
        by_name.setdefault(_project_name(wheel), wheel)
    wheels = sorted(by_name.values(), key=lambda w: w.name)
    out_dir.mkdir(parents=True, exist_ok=True)
    platforms = wheel_platforms(list(wheels))
    suffix = f"-{platforms[0]}" if len(platforms) == 1 else ""
    target = out_dir / f"{EXTENSION_ID}-{version()}{suffix}.zip"
    with atomic_path(target) as tmp:  # a failed build never leaves a half-written zip where a good one was
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("blender_manifest.toml", manifest_toml(wheels))
            for source, name in package_files():
                zf.write(source, name)
            for source, name in bundled_model:
                zf.write(source, name)
            for wheel in wheels:
                zf.write(wheel, f"wheels/{wheel.name}", compress_type=zipfile.ZIP_STORED)  # already compressed
    return target


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "dist"), help="output folder (default: dist/)")
    wheels = parser.add_mutually_exclusive_group()
    wheels.add_argument("--wheels", action="store_true",
                        help="the GPU route: also bundle torch (and its dependencies) for this platform, downloaded "
                             "with pip; the zip is then for this platform only")
    wheels.add_argument("--wheel-dir", help="also bundle the .whl files in this folder (offline builds, other "
                                            "platforms)")
    parser.add_argument("--no-hub", action="store_true",
                        help="leave out huggingface_hub (bundled and local models still work, hub downloads do not)")
    parser.add_argument("--model", help="bundle this exported model folder (python -m train export): the extension "
                                        "then makes faces on install, with no preference set")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    bundled = []
    if args.wheels:
        bundled = download_wheels(ROOT / "build" / "wheels")
    elif args.wheel_dir:
        bundled = collect_wheels(Path(args.wheel_dir))
    bundled += pure_wheels(SPEED_REQUIREMENTS + ([] if args.no_hub else HUB_REQUIREMENTS))
    target = build(Path(args.out), bundled, Path(args.model) if args.model else None)
    print(f"extension: {target}")
    print(f"size: {target.stat().st_size / 2 ** 20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
