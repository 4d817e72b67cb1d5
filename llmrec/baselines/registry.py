"""The baselines `llmrec eval --baselines ...` can pick by name (or `package.module:attr` pointing
to a `BaselineSpec` for user code).

A spec builds a `Ranker` (see llmrec.eval.runner) for a prepared run; the trained ones are cached in
RUN/baselines/<name>/. `reference=True` marks the baselines other rankers are compared with (the
paired bootstrap in comparison.md).

Light on purpose (no torch at import): the config layer lists and checks the names while parsing
`llmrec eval` flags; each builder imports its model only when it runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from llmrec.baselines.configs import H2RecConfig, SASRecConfig, SASRecSIDConfig
from llmrec.config import load_config
from llmrec.io import LlmrecError
from llmrec.registry import Registry


@dataclass
class BaselineContext:
    """What building a baseline may read: the run folder and its prepared data, plus eval options."""

    run: Path
    prepared: Any  # llmrec.data.store.PreparedData
    exclude_history: bool = False
    seed: int | None = None  # overrides the config's seed when given
    epochs: int | None = None  # overrides the config's max epochs when given
    retrain: bool = False
    progress: bool = True


@dataclass
class BuiltBaseline:
    ranker: Any  # a llmrec.eval.runner.Ranker
    info: dict[str, Any]  # recorded in the ranker's metrics.json (e.g. training summary)
    batch_size: int  # examples per ranking chunk


@dataclass(frozen=True)
class BaselineSpec:
    build: Callable[[BaselineContext, Any], BuiltBaseline]
    config_class: type | None = None
    reference: bool = False
    help: str = ""


BASELINES: Registry[BaselineSpec] = Registry("baseline")


def _seq_config(cfg: Any, ctx: BaselineContext) -> Any:
    changes = {k: v for k, v in (("seed", ctx.seed), ("epochs", ctx.epochs)) if v is not None}
    return replace(cfg, **changes) if changes else cfg


def _sequential(name: str, module: str, cached: str) -> Callable[[BaselineContext, Any], BuiltBaseline]:
    """Builder for a cached sequential model: `llmrec.baselines.<module>.<cached>(run, prepared, ...)`."""

    def build(ctx: BaselineContext, cfg: Any) -> BuiltBaseline:
        import importlib

        from llmrec.baselines.train_loop import SequentialRanker  # torch: imported only when building

        train_or_load = getattr(importlib.import_module(f"llmrec.baselines.{module}"), cached)
        model, info = train_or_load(ctx.run, ctx.prepared, config=_seq_config(cfg, ctx), retrain=ctx.retrain,
                             progress=ctx.progress)
        ranker = SequentialRanker(model, name=name, exclude_history=ctx.exclude_history)
        return BuiltBaseline(ranker, {"train": {k: v for k, v in info.items() if k != "history"}}, 512)

    return build


def _popular(ctx: BaselineContext, cfg: Any) -> BuiltBaseline:
    from llmrec.baselines.popular import MostPopular

    split = ctx.prepared.split
    ranker = MostPopular(split.item_popularity(), list(ctx.prepared.items), exclude_history=ctx.exclude_history)
    return BuiltBaseline(ranker, {}, 4096)


BASELINES.add("popular", BaselineSpec(_popular, None, reference=True,
                                      help="most interacted items in training"))
BASELINES.add("sasrec", BaselineSpec(_sequential("sasrec", "sasrec", "cached_sasrec"), SASRecConfig, reference=True,
                                     help="SASRec over unique item ids (hash IDs)"))
BASELINES.add("sasrec-sid", BaselineSpec(_sequential("sasrec-sid", "sasrec_sid", "cached_sasrec_sid"), SASRecSIDConfig,
                                         help="SASRec whose items are sums of SID code embeddings"))
BASELINES.add("h2rec", BaselineSpec(_sequential("h2rec", "h2rec", "cached_h2rec"), H2RecConfig,
                                    help="H2Rec-style HID + SID dual branch with alignment losses"))


def parse_baselines(text: str | Iterable[str]) -> list[str]:
    """'popular,sasrec' (or a list) -> checked names; '' / 'none' -> []. Unknown names get did-you-mean."""
    parts = text.split(",") if isinstance(text, str) else list(text)
    names = [p.strip().lower() if ":" not in p else p.strip() for p in parts if p.strip()]
    if names in ([], ["none"]):
        return []
    for name in names:
        BASELINES.check(name)
    return list(dict.fromkeys(names))


def get_spec(name: str) -> BaselineSpec:
    spec = BASELINES.get(name)
    if not isinstance(spec, BaselineSpec):
        raise LlmrecError(f"baseline {name!r}: expected a llmrec.baselines.BaselineSpec, got {type(spec).__name__}")
    return spec


def baseline_config(name: str, values: Mapping[str, Any] | None = None,
                    overrides: Iterable[str] | None = None) -> Any:
    """The named baseline's config: defaults, then `key=value` overrides, then `values`; validated."""
    spec = get_spec(name)
    if spec.config_class is None:
        if values or overrides:
            raise LlmrecError(f"baseline {name!r} has no settings (got {dict(values or {})} {list(overrides or [])})")
        return None
    return load_config(spec.config_class, overrides=overrides, values=values)


def build_baseline(name: str, ctx: BaselineContext, config: Any = None) -> BuiltBaseline:
    """Build (train or load from the run's cache) the named baseline's ranker."""
    spec = get_spec(name)
    if config is None:
        config = baseline_config(name)
    return spec.build(ctx, config)
