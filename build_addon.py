"""Build facecam's installable Blender extension zip: `python build_addon.py [--out dist]`.

The zip holds blender_manifest.toml, the add-on (blender_addon/), core/ bundled beside it, and
weights_manifest.json. The version comes from core.__version__, the one place it is set.
"""
from __future__ import annotations

import argparse
import re
import sys
import zipfile
from pathlib import Path

from core import __version__
from core.atomic import atomic_path

ROOT = Path(__file__).resolve().parent
EXTENSION_ID = "facecam"


def version() -> str:
    if not re.fullmatch(r"[0-9]+\.[0-9]+\.[0-9]+", __version__):
        raise SystemExit(f"core/__init__.py: __version__ {__version__!r} is not X.Y.Z")
    return __version__


def manifest_toml() -> str:
    return f'''schema_version = "1.0.0"
id = "{EXTENSION_ID}"
version = "{version()}"
name = "facecam"
tagline = "Controllable 3D faces: identity, expression and intensity"
maintainer = "facecam developers"
type = "add-on"
blender_version_min = "4.2.0"
license = ["SPDX:MIT"]

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


def build(out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{EXTENSION_ID}-{version()}.zip"
    with atomic_path(target) as tmp:  # a failed build never leaves a half-written zip where a good one was
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("blender_manifest.toml", manifest_toml())
            for source, name in package_files():
                zf.write(source, name)
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "dist"), help="output folder (default: dist/)")
    args = parser.parse_args(argv)
    print(f"extension: {build(Path(args.out))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
