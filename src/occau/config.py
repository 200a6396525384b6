"""Configs as data: typed dataclasses read from YAML, with ``a.b=value`` overrides and ``base:`` presets.

Every config in occau (a data source, a model, a loss, a training stage, a benchmark) is a dataclass, and this is the
one way a plain mapping becomes one: :func:`from_dict` recurses into nested dataclasses and refuses unknown keys,
naming the key and the allowed ones, so a misspelt ``edge_wieght`` fails before any training instead of silently
training with the default.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

import yaml

BASE_KEY = "base"  # a preset may start from another YAML file (beside it, or packaged) and override some keys
PACKAGED_CONFIGS = Path(__file__).resolve().parent / "configs"  # the presets and stage configs installed with occau


def from_dict(cls: type, values: Any, where: str = "") -> Any:
    """Build dataclass ``cls`` from a plain mapping, recursing into nested dataclasses; unknown keys are errors.

    ``where`` is the dotted path of ``values`` in the file it came from (e.g. ``"stages.student.model."``), so an
    error names the key as the user wrote it.
    """
    if isinstance(values, cls):
        return values
    if not isinstance(values, dict):
        raise ValueError(f"{where.rstrip('.') or cls.__name__}: expected a mapping, got {type(values).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = sorted(set(values) - set(names))
    if unknown:
        keys = ", ".join(f"{where}{k}" for k in unknown)
        raise ValueError(f"unknown key(s) {keys}; allowed here: {', '.join(names)}")
    kwargs = {}
    for key, value in values.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            value = from_dict(hint, value, f"{where}{key}.")
        elif _is_tuple(hint) and isinstance(value, list):
            value = tuple(value)
        elif _accepts(hint, float) and isinstance(value, (str, int)) and not isinstance(value, bool):
            value = _to_float(value, f"{where}{key}")  # YAML reads 1e-4 as a string
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where.rstrip('.')}: {err}" if where else str(err)) from err


def to_dict(config: Any) -> dict[str, Any]:
    """A YAML/JSON-safe dict of a config (tuples become lists)."""
    return yaml.safe_load(yaml.safe_dump(_plain(dataclasses.asdict(config))))


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML mapping, with its ``base:`` chain merged in (the file's own keys win, mapping by mapping)."""
    path = Path(path)
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a mapping at the top level, got {type(values).__name__}")
    base = values.pop(BASE_KEY, None)
    if base is None:
        return values
    return merged(read_yaml(base_path(path, base)), values)


def base_path(path: Path, base: str) -> Path:
    """Where a file's ``base:`` lives: beside the file, else among the packaged configs (``configs/<base>`` or one
    of its folders, e.g. ``bench/synth_base.yaml``), so a preset copied out of the package still finds its base."""
    beside = path.parent / base
    if beside.is_file():
        return beside
    packaged = [PACKAGED_CONFIGS / base, *(folder / base for folder in sorted(PACKAGED_CONFIGS.iterdir())
                                           if folder.is_dir())]
    found = next((p for p in packaged if p.is_file()), None)
    if found is None:
        raise FileNotFoundError(f"{path}: base {base!r} not found beside it ({beside}) nor among the packaged "
                                f"configs ({PACKAGED_CONFIGS})")
    return found


def merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` laid over it: mappings merge key by key, ``null`` removes a key (so its default
    applies, or a preset drops a stage of its base), anything else is replaced."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def apply_overrides(values: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Set each ``a.b=value`` (value parsed as YAML) in ``values``, in place; returns ``values``. ``a.b=null`` removes
    the key, as ``null`` does in a preset laid over its base (:func:`merged`): its default applies, or a stage drops."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r} must look like key.sub=value")
        set_dotted(values, key, yaml.safe_load(raw))
    return values


def set_dotted(values: dict[str, Any], key: str, value: Any) -> None:
    *parents, leaf = key.split(".")
    node = values
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ValueError(f"override {key}: {part} is not a mapping")
    if value is None:
        node.pop(leaf, None)
    else:
        node[leaf] = value


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _accepts(hint: Any, kind: type) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return kind in typing.get_args(hint) and str not in typing.get_args(hint)
    return hint is kind


def _to_float(value: str | int, where: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{where}: expected a number, got {value!r}") from None


def _is_tuple(hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_is_tuple(arg) for arg in typing.get_args(hint))
    return origin is tuple or hint is tuple
