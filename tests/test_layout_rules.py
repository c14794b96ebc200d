"""The layout tells the architecture: core/ never imports train/ or bpy; blender_addon/ holds no model math."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_core_imports_neither_train_nor_bpy():
    offenders = {str(p.relative_to(ROOT)): sorted(imported_modules(p) & {"train", "bpy", "bench", "tests"})
                 for p in (ROOT / "core").rglob("*.py")}
    assert not {k: v for k, v in offenders.items() if v}


def test_blender_addon_has_no_model_math():
    for p in (ROOT / "blender_addon").rglob("*.py"):
        assert not imported_modules(p) & {"torch", "numpy", "train"}, p
