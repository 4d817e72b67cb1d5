"""The one config layer: dataclasses whose fields carry help text and allowed values, loaded from
yaml, then `--set a.b=c` overrides, then ordinary flags; every value is checked (type, choice,
unknown key with did-you-mean) before anything heavy starts.

Written by hand because no library at hand does all of yaml + dotted overrides + argparse flags +
did-you-mean on plain dataclasses (OmegaConf/Hydra would add a second config mechanism beside
TRL's dataclasses, which this mirrors).
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin

import yaml

from llmrec.io import LlmrecError, atomic_path
from llmrec.registry import did_you_mean

T = TypeVar("T")
_MISSING = dataclasses.MISSING
CONFIG_FILE = "config.yaml"


def option(default: Any = _MISSING, *, help: str, choices: Any = None, default_factory: Any = _MISSING,
           must_exist: bool = False) -> Any:
    """A dataclass field with its help text. `choices`: a sequence, a Registry (anything with
    `check(name)`), or a callable returning a sequence. `must_exist`: a path that must exist (paths
    naming `{run}` are checked after substitution by the stage)."""
    meta = {"help": help, "choices": choices, "must_exist": must_exist}
    if default_factory is not _MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def field_help(f: dataclasses.Field) -> str:
    return f.metadata.get("help", "") if f.metadata else ""


def _choices_list(choices: Any) -> list[str] | None:
    if choices is None:
        return None
    if hasattr(choices, "names"):
        return list(choices.names())
    if callable(choices):
        return list(choices())
    return list(choices)


def _check_choice(value: Any, choices: Any, where: str) -> None:
    if choices is None or value is None:
        return
    if isinstance(value, (list, tuple)):
        for v in value:
            _check_choice(v, choices, where)
        return
    if hasattr(choices, "check"):
        try:
            choices.check(value)
        except LlmrecError as e:
            raise LlmrecError(_msg(where, str(e))) from None
        return
    allowed = _choices_list(choices) or []
    if value not in allowed:
        raise LlmrecError(f"{_lead(where)}{value!r} is not one of {', '.join(map(str, allowed))}"
                          f"{did_you_mean(str(value), [str(a) for a in allowed])}")


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _lead(where: str) -> str:
    return f"{where}: " if where else ""


def _msg(where: str, message: str) -> str:
    return f"{_lead(where)}{message}"


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType)


def _type_name(tp: Any) -> str:
    if _is_union(tp):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if tp is type(None):
        return "null"
    origin = get_origin(tp)
    if origin in (list, tuple, Sequence):
        return "a list"
    if origin in (dict, Mapping):
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, where: str, strict: bool) -> Any:
    """Return `value` as type `tp` or raise ValueError. strict=False allows str -> number."""
    if tp is Any:
        return value
    if tp is type(None):
        if value is None:
            return None
        raise ValueError
    if _is_union(tp):
        for strict_pass in (True, False):
            for arg in get_args(tp):
                try:
                    return _convert(value, arg, where, strict_pass)
                except ValueError:
                    continue
        raise ValueError
    origin = get_origin(tp)
    if origin is typing.Literal:
        if value in get_args(tp):
            return value
        raise ValueError
    if origin in (list, tuple, Sequence):
        if not isinstance(value, (list, tuple)):
            raise ValueError
        (item_tp,) = get_args(tp)[:1] or (Any,)
        return [_convert(v, item_tp, f"{where}[{i}]", strict) for i, v in enumerate(value)]
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ValueError
        vt = get_args(tp)[1] if len(get_args(tp)) == 2 else Any
        return {k: _convert(v, vt, _join(where, k), strict) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if isinstance(value, Mapping):
            return _build(tp, value, where)
        raise ValueError
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ValueError
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer() and not strict:
            return int(value)
        if isinstance(value, str) and not strict:
            return int(value)
        raise ValueError
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and not strict:  # yaml reads `1e-4` (no dot) as a string
            return float(value)
        raise ValueError
    if tp is str:
        if isinstance(value, str):
            return value
        raise ValueError
    if isinstance(tp, type):
        if isinstance(value, tp):
            return value
        raise ValueError
    return value


def _build(cls: type[T], data: Mapping[str, Any], where: str) -> T:
    if not isinstance(data, Mapping):
        raise LlmrecError(f"{_lead(where)}expected a mapping of {cls.__name__} fields, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in fields:
            raise LlmrecError(f"{_lead(where)}unknown key {key!r}{did_you_mean(key, list(fields))}; "
                              f"known: {', '.join(sorted(fields))}")
    hints = _hints(cls)
    kwargs = {}
    for name, value in data.items():
        at = _join(where, name)
        try:
            kwargs[name] = _convert(value, hints[name], at, strict=False)
        except (ValueError, TypeError):
            raise LlmrecError(f"{at}: expected {_type_name(hints[name])}, got {value!r}") from None
    try:
        obj = cls(**kwargs)
    except LlmrecError as e:
        raise LlmrecError(_msg(where, str(e))) from None
    validate_config(obj, where)
    return obj


def validate_config(obj: Any, where: str | None = None) -> None:
    """Check every field's choices and existence rules, nested configs included, then `obj.validate()`."""
    where = where or ""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        at = _join(where, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            validate_config(value, at)
            continue
        _check_choice(value, f.metadata.get("choices") if f.metadata else None, at)
        if f.metadata and f.metadata.get("must_exist") and isinstance(value, str) and value \
                and "{" not in value and not Path(value).exists():
            raise LlmrecError(f"{at}: {value} does not exist")
    check = getattr(obj, "validate", None)
    if callable(check):
        try:
            check()
        except LlmrecError as e:
            msg = str(e)
            raise LlmrecError(msg if where and msg.startswith(where) else _msg(where, msg)) from None


def _set_dotted(data: dict, key: str, value: Any, where: str) -> None:
    node = data
    parts = key.split(".")
    for p in parts[:-1]:
        nxt = node.setdefault(p, {})
        if not isinstance(nxt, dict):
            raise LlmrecError(f"{where}: {key!r}: {p!r} is not a section")
        node = nxt
    node[parts[-1]] = value


def read_yaml_config(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise LlmrecError(f"config not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise LlmrecError(f"{path}: invalid yaml ({e})") from None
    if not isinstance(data, dict):
        raise LlmrecError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def load_config(cls: type[T], path: str | Path | None = None, overrides: Iterable[str] | None = None,
                values: Mapping[str, Any] | None = None) -> T:
    """yaml file < `key.sub=value` overrides (values parsed as yaml) < `values` (dotted keys, from flags)."""
    data: dict[str, Any] = read_yaml_config(path) if path else {}
    for ov in overrides or []:
        if "=" not in ov:
            raise LlmrecError(f"--set {ov!r}: expected key.sub=value")
        key, text = ov.split("=", 1)
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text  # e.g. {run}/sft/model: not valid yaml, meant as a string
        _set_dotted(data, key.strip(), value, "--set")
    for key, value in (values or {}).items():
        _set_dotted(data, key, value, "flag")
    return config_from_dict(cls, data, str(path) if path else None)


def config_from_dict(cls: type[T], data: Mapping[str, Any], source: str | None = None) -> T:
    """A config from a plain mapping (e.g. read back from a manifest), checked like a yaml file."""
    try:
        return _build(cls, data, "")
    except LlmrecError as e:
        if not source:
            raise
        raise LlmrecError(f"{source}: {e}") from None


def config_to_dict(obj: Any) -> dict[str, Any]:
    return dataclasses.asdict(obj)


def save_config(obj: Any, path: str | Path) -> Path:
    """Write the resolved config as yaml (a stage's output folder keeps what it was run with)."""
    path = Path(path)
    if path.suffix not in (".yaml", ".yml"):
        path = path / CONFIG_FILE
    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(config_to_dict(obj), sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- command line


def field_at(cls: type, dotted: str) -> tuple[dataclasses.Field, Any]:
    """The dataclass field (and its resolved type) at a dotted path."""
    node: Any = cls
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        fields = {f.name: f for f in dataclasses.fields(node)}
        if part not in fields:
            raise KeyError(f"{cls.__name__} has no field {dotted!r}")
        f, tp = fields[part], _hints(node)[part]
        if i == len(parts) - 1:
            return f, tp
        node = tp


def _admits(tp: Any, kind: type) -> bool:
    args = get_args(tp) if _is_union(tp) else (tp,)
    return any(a is kind or get_origin(a) is kind for a in args)


def parse_flag(text: str, tp: Any) -> Any:
    """A flag's text as the field's value: lists from commas, numbers and booleans from yaml, strings verbatim."""
    if _admits(tp, list) and "," in text:
        return [parse_flag(t.strip(), get_args(tp)[0] if get_origin(tp) is list else Any)
                for t in text.split(",") if t.strip()]
    if _admits(tp, str) and not (_admits(tp, int) or _admits(tp, float) or _admits(tp, bool)):
        return text
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


FlagSpec = str | tuple[str, str]


def add_config_arguments(parser: argparse.ArgumentParser, cls: type, flags: Sequence[FlagSpec] = (),
                         example: str | None = None) -> None:
    """`--config`, repeatable `--set`, and one flag per listed dotted field (help from the field)."""
    hint = f" (e.g. {example})" if example else ""
    parser.add_argument("--config", metavar="YAML", help=f"{cls.__name__} yaml{hint}")
    parser.add_argument("--set", dest="config_overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config value: --set key=value or --set section.key=value (repeatable)")
    specs = []
    for spec in flags:
        dotted, flag = (spec, "--" + spec.split(".")[-1].replace("_", "-")) if isinstance(spec, str) else spec
        f, tp = field_at(cls, dotted)
        helptext = field_help(f)
        choices = _choices_list(f.metadata.get("choices")) if f.metadata else None
        if choices:
            helptext += f" (one of: {', '.join(map(str, choices))})"
        dest = "cfg__" + dotted.replace(".", "__")
        if tp is bool:
            parser.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=helptext)
        elif get_origin(tp) is list:  # repeatable, and each value may be a comma list
            parser.add_argument(flag, dest=dest, action="append", default=None, metavar=f.name.upper(),
                                help=helptext + " (repeat or comma-separate; 'none' for an empty list)")
        else:
            parser.add_argument(flag, dest=dest, default=None, metavar=f.name.upper(), help=helptext)
        specs.append((dotted, dest, tp))
    parser.set_defaults(_config_cls=cls, _config_flags=tuple(specs))


def config_from_args(cls: type[T], args: argparse.Namespace, extra: Mapping[str, Any] | None = None) -> T:
    """The config the command line asks for: --config, then --set, then the flags given, then `extra`."""
    values: dict[str, Any] = {}
    for dotted, dest, tp in getattr(args, "_config_flags", ()):
        raw = getattr(args, dest, None)
        if raw is None:
            continue
        if isinstance(raw, list):  # a repeatable list flag
            parts = [p.strip() for r in raw for p in str(r).split(",") if p.strip()]
            values[dotted] = [] if parts in (["none"], ["[]"]) else [parse_flag(p, get_args(tp)[0]) for p in parts]
        else:
            values[dotted] = raw if isinstance(raw, bool) else parse_flag(str(raw), tp)
    values.update(extra or {})
    return load_config(cls, getattr(args, "config", None), getattr(args, "config_overrides", None), values)


def describe(cls: type, prefix: str = "") -> list[tuple[str, str, Any]]:
    """(dotted key, help, default) for every field, nested configs flattened: for docs and `--help`."""
    rows = []
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(tp):
            rows.extend(describe(tp, key + "."))
            continue
        default = f.default if f.default is not _MISSING else (
            f.default_factory() if f.default_factory is not _MISSING else None)  # type: ignore[misc]
        rows.append((key, field_help(f), default))
    return rows

