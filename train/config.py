"""Configs are small JSON files under configs/, one per model size; this reads and checks them."""
from __future__ import annotations

import json
from dataclasses import MISSING, dataclass, fields
from pathlib import Path

from train.data.arkit import ROM_FRAMES
from train.data.face_synth import StyleConfig

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


class ConfigError(ValueError):
    pass


def config_path(name_or_path: str | Path) -> Path:
    """'quick' -> configs/quick.json; a path is taken as it is."""
    p = Path(name_or_path)
    if p.suffix == ".json" or p.exists():
        return p
    return CONFIG_DIR / f"{name_or_path}.json"


def load_config(name_or_path: str | Path, _seen: tuple = ()) -> dict:
    """A config as a dict. One with "extends": BASE is BASE with this file's sections merged over it, field by
    field (a smaller variant names only what it changes, so it cannot drift from its base)."""
    path = config_path(name_or_path)
    if not path.is_file():
        known = ", ".join(sorted(q.stem for q in CONFIG_DIR.glob("*.json")))
        raise ConfigError(f"config {name_or_path!r} not found at {path}; known configs: {known}")
    try:
        cfg = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: invalid JSON ({e})") from e
    if not isinstance(cfg, dict) or "name" not in cfg:
        raise ConfigError(f"{path}: expected a JSON object with a 'name' field")
    files = []
    if "extends" in cfg:
        base_name = cfg.pop("extends")
        if not isinstance(base_name, str):
            raise ConfigError(f"{path}: extends: expected a config name, got {base_name!r}")
        if path.resolve() in _seen:
            raise ConfigError(f"{path}: extends itself (through {' -> '.join(str(p) for p in _seen)})")
        file_name = base_name if base_name.endswith(".json") else f"{base_name}.json"
        # beside this file first, then among the repository's configs
        base_path = next((p for p in (path.parent / file_name, CONFIG_DIR / file_name) if p.is_file()),
                         path.parent / file_name)
        base = load_config(base_path, (*_seen, path.resolve()))
        files = base.pop("_files")
        base.pop("_path"), base.pop("description", None)
        cfg = merge_sections(base, cfg, str(path))
        cfg["extends"] = base_name
    cfg["_path"] = str(path)
    cfg["_files"] = [str(path), *files]  # this file and every one it extends
    return cfg


def config_mtime(name_or_path: str | Path) -> float:
    """When a config, or any config it extends, last changed."""
    return max(Path(p).stat().st_mtime for p in load_config(name_or_path)["_files"])


# Sections whose fields a config may add to its base's: overrides that name only what differs, checked against
# the settings' own fields where they are read (shape_section).
OPEN_SECTIONS = (("shape", "action_units"), ("shape", "arkit"))


def merge_sections(base: dict, changes: dict, where: str, path: tuple = ()) -> dict:
    """base with changes merged in, object by object; a changed field must exist in the base (a typo would
    otherwise be a silent no-op), except under OPEN_SECTIONS."""
    out = dict(base)
    for key, value in changes.items():
        if key in ("name", "description"):
            out[key] = value
        elif key not in base and any((*path, key)[:len(o)] == o for o in OPEN_SECTIONS):
            out[key] = value
        elif key not in base:
            raise ConfigError(f"{where}: {key}: not in the config it extends (known: {sorted(base)})")
        elif isinstance(value, dict) and isinstance(base[key], dict) and value:
            out[key] = merge_sections(base[key], value, f"{where}: {key}", (*path, key))
        else:
            out[key] = value
    return out


def _section(cls, data: dict, where: str):
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected an object, got {type(data).__name__}")
    names = {f.name: f for f in fields(cls)}
    unknown = set(data) - set(names)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {sorted(unknown)}; known: {sorted(names)}")
    missing = [n for n, f in names.items() if n not in data and f.default is MISSING and f.default_factory is MISSING]
    if missing:
        raise ConfigError(f"{where}: missing field(s) {missing}")
    for n, f in names.items():
        expected = {"int": int, "bool": bool, "list": list, "float": (int, float)}[f.type]
        value = data[n]
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise ConfigError(f"{where}.{n}: expected {f.type}, got {value!r}")
    obj = cls(**data)
    obj.check(where)
    return obj


def split_counts(num_identities: int, fractions) -> tuple[int, int, int]:
    """Identities in (train, val, test): validation and test get at least one each, training the rest."""
    n_val = max(1, int(round(fractions[1] * num_identities)))
    n_test = max(1, int(round(fractions[2] * num_identities)))
    return num_identities - n_val - n_test, n_val, n_test


def _check_split(split, where: str, num_identities: int) -> None:
    if (not isinstance(split, list) or len(split) != 3 or any(not isinstance(x, (int, float)) or x < 0 for x in split)
            or abs(sum(split) - 1) > 1e-6):
        raise ConfigError(f"{where}.split: expected [train, val, test] fractions adding up to 1, got {split!r}")
    if split_counts(num_identities, split)[0] < 1:
        raise ConfigError(f"{where}: split {split} of {num_identities} identities leaves no training identity "
                          f"(validation and test take at least one each)")


@dataclass(frozen=True)
class FaceScapeSetConfig:
    num_identities: int
    split: list
    texture_resolution: int
    store_textures: bool

    def check(self, where: str) -> None:
        _check_split(self.split, where, self.num_identities)
        if self.texture_resolution not in (16, 32, 64, 128, 256, 512):
            raise ConfigError(f"{where}.texture_resolution: expected a power of two in 16..512, "
                              f"got {self.texture_resolution}")


@dataclass(frozen=True)
class BP4DSetConfig(FaceScapeSetConfig):
    frames_per_task: int

    def check(self, where: str) -> None:
        super().check(where)
        if self.frames_per_task < 1:
            raise ConfigError(f"{where}.frames_per_task: expected >= 1, got {self.frames_per_task}")


@dataclass(frozen=True)
class ARKitSetConfig(FaceScapeSetConfig):
    frames_per_identity: int

    def check(self, where: str) -> None:
        super().check(where)
        if self.frames_per_identity < ROM_FRAMES:
            raise ConfigError(f"{where}.frames_per_identity: expected >= {ROM_FRAMES} (the rest pose and each ARKit "
                              f"key alone, then co-activations), got {self.frames_per_identity}")


@dataclass(frozen=True)
class DataConfig:
    config_name: str
    seed: int
    style: StyleConfig
    facescape: FaceScapeSetConfig
    bp4d: BP4DSetConfig
    arkit: ARKitSetConfig | None = None  # the ARKit-like set; a config without one trains no ARKit rig


def data_config(cfg: dict) -> DataConfig:
    where = f"{cfg.get('_path', cfg['name'])}: data"
    d = cfg.get("data")
    if not isinstance(d, dict):
        raise ConfigError(f"{where}: section missing")
    for key in ("seed", "facescape", "bp4d"):
        if key not in d:
            raise ConfigError(f"{where}.{key}: missing")
    if not isinstance(d["seed"], int) or isinstance(d["seed"], bool) or d["seed"] < 0:
        raise ConfigError(f"{where}.seed: expected an integer >= 0, got {d['seed']!r}")
    try:
        style = StyleConfig.from_dict(d.get("style", {}))
    except ValueError as e:
        raise ConfigError(f"{where}.style: {e}") from None
    return DataConfig(cfg["name"], d["seed"], style,
                      _section(FaceScapeSetConfig, d["facescape"], f"{where}.facescape"),
                      _section(BP4DSetConfig, d["bp4d"], f"{where}.bp4d"),
                      _section(ARKitSetConfig, d["arkit"], f"{where}.arkit") if "arkit" in d else None)


def typed_section(section: dict, cls, where: str):
    """A dataclass from a JSON object whose fields are annotated "int", "float", "str" or "bool"; every field
    required, unknown ones refused, each error naming where."""
    out = {}
    for name, typ in cls.__annotations__.items():
        if name not in section:
            raise ConfigError(f"{where}.{name}: missing")
        value = section[name]
        expected = {"int": int, "float": (int, float), "str": str, "bool": bool}[typ]
        if not isinstance(value, expected) or (isinstance(value, bool) and typ != "bool"):
            raise ConfigError(f"{where}.{name}: expected {typ}, got {value!r}")
        out[name] = value
    unknown = set(section) - set(cls.__annotations__)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {sorted(unknown)}")
    return cls(**out)


def model_section(cfg: dict, key: str, network_fields) -> tuple[dict, dict, str]:
    """(the model section, its `network` part with only known fields, the name errors start with)."""
    where = f"{cfg.get('_path', cfg['name'])}: {key}"
    section = cfg.get(key)
    if not isinstance(section, dict):
        raise ConfigError(f"{where}: section missing")
    network = section.get("network", {})
    unknown = set(network) - set(network_fields)
    if unknown:
        raise ConfigError(f"{where}.network: unknown field(s) {sorted(unknown)}; known: {list(network_fields)}")
    return section, network, where
