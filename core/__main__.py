"""`python -m core generate`: faces from a model outside Blender.

    python -m core generate --model outputs/quick/export/facecam-quick --seed 7 --expression 2_smile \
        --intensity 1.3 --out face.obj                       # face.obj + face.mtl + face.png, in metres
    python -m core generate --model ... --seed 7 --expression smile --sweep 0 0.5 1 1.5 2 --out sweep.obj
                                        # sweep_2_smile@0.00.obj ... sweep_2_smile@2.00.obj, one texture each
    python -m core generate --model ... --seed 7 --expression 2 --out face.glb     # binary glTF (2 = 2_smile)
    python -m core generate --model ... --seed 7 --expression 2_smile --sweep 0.5 1 2 --out sweep.glb
                                        # one mesh at intensity 0 with a morph target per intensity (its texture)
    python -m core generate --model ... --seed 7 --arkit-rig --out face.glb
                                        # the face at rest with its own ARKit rig: 51 morph targets, Apple's names

--model is a model folder, "owner/name@<commit sha>", or a name from weights_manifest.json. Files are in metres
(glTF always; OBJ unless --units says cm or mm, and its header names the unit), with vertex normals.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys

import numpy as np
from pathlib import Path

from .atomic import atomic_path, write_png_atomic, write_text_atomic
from .backends import BACKENDS
from .face_model import Face, FaceModel
from .coordinates import UNIT_TO_METRES, metres_per_unit
from .gltf import write_glb
from .hub import WeightsError
from .names import SEED_MAX, check_seed, intensity_key
from .obj_io import write_obj
from .intensity import INTENSITY_MODES
from .template import PART_COLOURS, PART_OPACITY, vertex_normals

MAX_INTENSITY = 10.0  # the paper's largest level; beyond it meshes are far outside anything trained


def obj_material_name(part: str) -> str:
    return part.replace(" ", "_")  # OBJ names are one word


def material_library(face: Face, texture_png: str | None) -> str:
    """The MTL of a face: one material per part of the head, the skin textured when there is a texture."""
    lines = []
    for part in face.part_names:
        colour = (1.0, 1.0, 1.0) if part == "skin" and texture_png else PART_COLOURS.get(part, (0.5, 0.5, 0.5))
        lines += [f"newmtl {obj_material_name(part)}", "Kd " + " ".join(f"{c:.4f}" for c in colour),
                  f"d {PART_OPACITY.get(part, 1.0):g}"]
        if part == "skin" and texture_png:
            lines.append(f"map_Kd {texture_png}")
        lines.append("")
    return "\n".join(lines)


def write_face_obj(face: Face, path: Path, model_units: str = "cm", units: str = "m") -> list[Path]:
    """face.obj with face.mtl (a material per part of the head) and face.png (the skin's texture, when the face
    has one) beside it; vertices converted from the model's units to `units`, which the header names."""
    mtl = path.with_suffix(".mtl")
    written = [path, mtl]
    png = None
    if face.texture is not None:
        png = path.with_suffix(".png")
        write_png_atomic(png, face.texture)
        written.append(png)
    write_text_atomic(mtl, material_library(face, png.name if png else None))
    header = "\n".join([*(f"{k}: {v}" for k, v in face.metadata.items()), f"units: {units} (y up)"])
    vertices = face.vertices * (metres_per_unit(model_units) / metres_per_unit(units))
    parts = face.polygon_parts if face.polygon_parts is not None else np.zeros(len(face.polygon_sizes), np.int32)
    write_obj(path, vertices, face.polygon_sizes, face.polygon_vertices, face.uvs, face.polygon_uv_indices,
              mtllib=mtl.name, header=header,
              normals=vertex_normals(face.vertices, face.polygon_sizes, face.polygon_vertices),
              polygon_materials=parts, material_names=tuple(obj_material_name(p) for p in face.part_names))
    return written


def _seed(text: str) -> int:
    try:
        return check_seed(int(text), "seed")
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e) if text.strip().lstrip("+-").isdigit() else
                                         f"{text!r}: expected a whole number in 0..{SEED_MAX}") from None


def build_parser(expression_names: list[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="facecam inference")
    sub = parser.add_subparsers(dest="command", required=True)
    names = (f"This model's expressions: {', '.join(expression_names)}." if expression_names else
             "Give --model with --help to list a model's expression names.")
    gen = sub.add_parser(
        "generate", help="generate a face (or an intensity sweep) as OBJ (+ MTL + PNG) or binary glTF (.glb)",
        description="Generate a face, or an intensity sweep, as OBJ (+ MTL + PNG texture) or binary glTF. " + names)
    gen.add_argument("--model", required=True, help="model folder, owner/name@<commit sha>, or a manifest name")
    gen.add_argument("--seed", type=_seed, default=0, help=f"identity seed, 0..{SEED_MAX}")
    gen.add_argument("--noise-seed", type=_seed, default=0, help=f"noise seed, 0..{SEED_MAX}")
    gen.add_argument("--expression",
                     help="the expression: its name (2_smile), its number (2, as in FaceScape's 1-based names: "
                          "1 = 1_neutral) or its name without the number (smile); required unless --arkit-rig")
    gen.add_argument("--arkit-rig", action="store_true",
                     help="the face at rest with its own learned ARKit rig: in a .glb, one morph target per key named "
                          "as Apple spells them (eyeBlinkLeft, jawOpen, ...); beside an .obj, NAME_arkit.npz (names, "
                          "offsets in the OBJ's units)")
    how_much = gen.add_mutually_exclusive_group()
    how_much.add_argument("--intensity", type=float, default=1.0,
                          help=f"0..{MAX_INTENSITY:g}: the displacement from the neutral face in units of the trained "
                               "expression's (calibrated); past 1 extrapolates")
    how_much.add_argument("--sweep", type=float, nargs="+", metavar="INTENSITY",
                          help="several intensities: one OBJ each (named by intensity, e.g. NAME_2_smile@0.50.obj), "
                               "or one .glb with a morph target each")
    gen.add_argument("--intensity-mode", choices=INTENSITY_MODES, default="calibrated",
                     help="calibrated (default), or the paper's z_exp scaling")
    gen.add_argument("--units", choices=sorted(UNIT_TO_METRES), default="m",
                     help="OBJ vertex units (default m, as Blender's importer expects); glTF is always metres")
    gen.add_argument("--no-texture", action="store_true")
    gen.add_argument("--backend", choices=BACKENDS, default="auto",
                     help="what runs the networks: numpy (always there), torch, or auto (numpy on the CPU, torch on "
                          "a GPU); the same faces either way")
    gen.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 or mps (other than cpu: the torch backend)")
    gen.add_argument("--out", required=True, help="output .obj or .glb path")
    return parser


def _model_names(argv: list[str]) -> list[str] | None:
    """The expression names of --model, for --help; None when it cannot be loaded (help still shows)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--model")
    known, _ = pre.parse_known_args(argv)
    if not known.model:
        return None
    try:
        return FaceModel.from_pretrained(known.model).expression_names
    except Exception:  # noqa: BLE001 - help must show whatever is wrong with the model; generate reports it
        return None


def _write_rig(args, out: Path) -> int:
    """--arkit-rig: the identity's face at rest, with its keys as glTF morph targets or an npz beside the OBJ."""
    if args.expression or args.sweep:
        raise ValueError("--arkit-rig writes the face at rest with its ARKit keys: leave out --expression and --sweep")
    model = FaceModel.from_pretrained(args.model, backend=args.backend, device=args.device)
    if model.backend_note:
        print(f"note: {model.backend_note}", file=sys.stderr)
    units = model.config.get("units", "cm")
    face = model.neutral_face(args.seed, args.noise_seed, texture=not args.no_texture)
    names, keys = model.arkit_keys(face.vertices)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".glb":
        write_glb(out, face, [dataclasses.replace(face, vertices=face.vertices + k) for k in keys], names, units)
        print(out)
    else:
        for written in write_face_obj(face, out, units, args.units):
            print(written)
        rig_path = out.with_name(f"{out.stem}_arkit.npz")
        with atomic_path(rig_path) as tmp:
            np.savez(tmp, names=np.array(names), offsets=keys * np.float32(metres_per_unit(units) /
                                                                             metres_per_unit(args.units)),
                     units=np.array(args.units))
        print(rig_path)
    missing = model.rig.cfg.missing
    if missing:
        print("note: " + "; ".join(f"no {k} key ({why})" for k, why in missing.items()), file=sys.stderr)
    return 0


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    names = _model_names(argv) if {"-h", "--help"} & set(argv) else None
    args = build_parser(names).parse_args(argv)
    try:
        out = Path(args.out)
        if out.suffix.lower() not in (".obj", ".glb"):
            raise ValueError(f"--out {out}: expected a .obj or .glb path")
        if out.suffix.lower() == ".glb" and args.units != "m":
            raise ValueError(f"--units {args.units}: glTF positions are metres by the glTF specification; --units "
                             "applies to OBJ files")
        if args.arkit_rig:
            return _write_rig(args, out)
        if not args.expression:
            raise ValueError("--expression: required (or --arkit-rig for the face at rest with its ARKit keys)")
        intensities = args.sweep or [args.intensity]
        bad = [a for a in intensities if not 0 <= a <= MAX_INTENSITY]
        if bad:
            raise ValueError(f"intensity {bad[0]:g} outside 0..{MAX_INTENSITY:g}")
        model = FaceModel.from_pretrained(args.model, backend=args.backend, device=args.device)
        if model.backend_note:
            print(f"note: {model.backend_note}", file=sys.stderr)
        model.intensity_mode = args.intensity_mode
        label = model.expression_label(args.expression)  # refuses an unknown expression before any work
        out.parent.mkdir(parents=True, exist_ok=True)
        units = model.config.get("units", "cm")
        if out.suffix.lower() == ".glb":
            if args.sweep:  # morph targets over the expression's intensity-0 mesh, in one batch
                base, *faces = model.sweep(args.seed, label, [0.0, *intensities], args.noise_seed,
                                           texture=not args.no_texture)
                write_glb(out, base, faces, [intensity_key(label, a) for a in intensities], units)
            else:
                write_glb(out, model.generate(args.seed, label, intensities[0], args.noise_seed,
                                              texture=not args.no_texture), units=units)
            print(out)
            return 0
        faces = model.sweep(args.seed, label, intensities, args.noise_seed, texture=not args.no_texture)
        paths = [out] if not args.sweep else [out.with_name(f"{out.stem}_{intensity_key(label, a)}.obj")
                                              for a in intensities]
        for face, path in zip(faces, paths):
            for written in write_face_obj(face, path, units, args.units):
                print(written)
    except (WeightsError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
