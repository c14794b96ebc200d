"""`python -m core generate`: faces from a model outside Blender.

    python -m core generate --model outputs/quick/export/facecam-quick --seed 7 --expression 2_smile \
        --intensity 1.3 --out face.obj                       # face.obj + face.mtl + face.png
    python -m core generate --model ... --seed 7 --expression 2_smile --sweep 0 0.5 1 1.5 2 --out sweep.obj
                                                             # sweep_0.obj ... sweep_4.obj, one texture each
    python -m core generate --model ... --seed 7 --expression 2_smile --out face.glb     # binary glTF
    python -m core generate --model ... --seed 7 --expression 2_smile --sweep 0.5 1 2 --out sweep.glb
                                        # one mesh at intensity 0 with a morph target per intensity (its texture)

--model is a model folder, "owner/name@<commit sha>", or a name from weights_manifest.json.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .atomic import write_png_atomic, write_text_atomic
from .face_model import Face, FaceModel
from .gltf import write_glb
from .hub import WeightsError
from .obj_io import write_obj
from .shape_control import INTENSITY_MODES

MAX_INTENSITY = 10.0  # the paper's largest level; beyond it meshes are far outside anything trained


def write_face_obj(face: Face, path: Path) -> list[Path]:
    """face.obj with face.mtl and face.png beside it (no material files when the face has no texture)."""
    written = [path]
    mtl = None
    if face.texture is not None:
        png, mtl = path.with_suffix(".png"), path.with_suffix(".mtl")
        write_png_atomic(png, face.texture)
        write_text_atomic(mtl, f"newmtl face\nKd 1 1 1\nmap_Kd {png.name}\n")
        written += [mtl, png]
    header = "\n".join(f"{k}: {v}" for k, v in face.metadata.items())
    write_obj(path, face.vertices, face.polygon_sizes, face.polygon_vertices, face.uvs, face.polygon_uv_indices,
              mtllib=mtl.name if mtl else None, material="face" if mtl else None, header=header)
    return written


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="facecam inference")
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="generate a face (or an intensity sweep) as OBJ + MTL + PNG")
    gen.add_argument("--model", required=True, help="model folder, owner/name@<commit sha>, or a manifest name")
    gen.add_argument("--seed", type=int, default=0, help="identity seed")
    gen.add_argument("--noise-seed", type=int, default=0)
    gen.add_argument("--expression", required=True, help="an expression name of the model (or its index)")
    gen.add_argument("--intensity", type=float, default=1.0,
                     help=f"0..{MAX_INTENSITY:g}: the displacement from the neutral face in units of the trained "
                          "expression's (calibrated); past 1 extrapolates")
    gen.add_argument("--intensity-mode", choices=INTENSITY_MODES, default="calibrated",
                     help="calibrated (default), or the paper's z_exp scaling")
    gen.add_argument("--sweep", type=float, nargs="+", help="several intensities: one file each")
    gen.add_argument("--no-texture", action="store_true")
    gen.add_argument("--out", required=True, help="output .obj or .glb path")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        out = Path(args.out)
        if out.suffix.lower() not in (".obj", ".glb"):
            raise ValueError(f"--out {out}: expected a .obj or .glb path")
        intensities = args.sweep or [args.intensity]
        bad = [a for a in intensities if not 0 <= a <= MAX_INTENSITY]
        if bad:
            raise ValueError(f"intensity {bad[0]:g} outside 0..{MAX_INTENSITY:g}")
        model = FaceModel.from_pretrained(args.model)
        model.intensity_mode = args.intensity_mode
        expression = int(args.expression) if args.expression.isdigit() else args.expression
        out.parent.mkdir(parents=True, exist_ok=True)
        units = model.config.get("units", "cm")
        if out.suffix.lower() == ".glb":
            if args.sweep:  # morph targets over the expression's intensity-0 mesh, in one batch
                base, *faces = model.sweep(args.seed, expression, [0.0, *intensities], args.noise_seed,
                                           texture=not args.no_texture)
                names = [f"{args.expression}_{a:g}" for a in intensities]
                write_glb(out, base, faces, names, units)
            else:
                write_glb(out, model.generate(args.seed, expression, intensities[0], args.noise_seed,
                                              texture=not args.no_texture), units=units)
            print(out)
            return 0
        faces = model.sweep(args.seed, expression, intensities, args.noise_seed, texture=not args.no_texture)
        paths = [out] if not args.sweep else [out.with_name(f"{out.stem}_{i}.obj") for i in range(len(faces))]
        for face, path in zip(faces, paths):
            for written in write_face_obj(face, path):
                print(written)
    except (WeightsError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
