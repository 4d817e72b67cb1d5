"""Where a model comes from: a bundle folder, a run or model folder (used in place, no bundle written), or
a Hugging Face Hub repo. A string is a Hub id only when it looks like one (USER/NAME), no such local path
exists, and its first part is not a local folder (`runs/nosuch` is a typo of a local path, not a repo);
`hf://USER/NAME` always means the Hub. Which one was used is logged and returned."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmrec.bundle.io import ITEMS_FILE, SID_MAP_FILE, is_bundle_dir, read_bundle
from llmrec.bundle.run import is_model_dir, is_run_dir, run_config, run_parts
from llmrec.io import LlmrecError
from llmrec.sid.sidmap import SidMap

log = logging.getLogger(__name__)

HUB_PREFIX = "hf://"
_REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")


@dataclass
class ModelSource:
    """A located model: the folder holding the weights, its config, SidMap and catalogue, and how it was found
    (kind: 'bundle' | 'run' | 'model' | 'hub'); `name` is safe to publish (no local path)."""

    kind: str
    folder: Path
    name: str
    config: dict[str, Any]
    sid_map: SidMap
    items: dict = field(repr=False)


def looks_like_repo_id(s: str) -> bool:
    return bool(_REPO_RE.match(s)) and ".." not in s and not s.endswith((".", "-"))


def hub_download(repo_id: str, *, revision: str | None = None, token: str | None = None,
                 endpoint: str | None = None) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, revision=revision, token=token, endpoint=endpoint))
    except Exception as e:
        raise LlmrecError(f"could not download {repo_id} from the Hugging Face Hub: {e}. Check the repo id, "
                          "HF_TOKEN (or `hf auth login`) for private repos, and that HF_HUB_OFFLINE is not "
                          "set.") from e


def resolve_bundle(path_or_repo_id: str | Path, *, revision: str | None = None, token: str | None = None,
                   endpoint: str | None = None) -> tuple[Path, str]:
    """(local folder, 'local' | 'hub'): an existing folder, else a Hub repo that looks like one."""
    s = str(path_or_repo_id)
    if s.startswith(HUB_PREFIX):
        rid = s[len(HUB_PREFIX):]
        if not looks_like_repo_id(rid):
            raise LlmrecError(f"{s}: not a Hub repo id (hf://USER/NAME).")
        log.info("loading %s from the Hugging Face Hub", rid)
        return hub_download(rid, revision=revision, token=token, endpoint=endpoint), "hub"
    p = Path(s).expanduser()
    if p.exists():
        if not p.is_dir():
            raise LlmrecError(f"{p}: expected a bundle, run or model folder, got a file.")
        return p, "local"
    head = s.split("/", 1)[0] if "/" in s and not s.startswith(("/", "~", ".")) else ""
    local_head = bool(head) and Path(head).is_dir()
    if not looks_like_repo_id(s) or local_head:
        hint = f" ({head}/ exists here, so this names a local path)" if local_head else ""
        raise LlmrecError(f"{s}: no such folder{hint}. Give a bundle folder (`llmrec bundle --run RUN --out "
                          f"FOLDER` writes one), a run folder, or a Hub repo as USER/NAME or hf://USER/NAME.")
    log.info("no local folder %s: loading it from the Hugging Face Hub", s)
    return hub_download(s, revision=revision, token=token, endpoint=endpoint), "hub"


def locate_model(path_or_repo_id: str | Path, *, revision: str | None = None, token: str | None = None,
                 endpoint: str | None = None) -> ModelSource:
    """Find and read (without loading weights) a bundle, a run, a model folder in a run, or a Hub bundle."""
    folder, where = resolve_bundle(path_or_repo_id, revision=revision, token=token, endpoint=endpoint)
    s = str(path_or_repo_id)
    if where == "hub":
        config, sid_map, items = read_bundle(folder)
        rid = s.removeprefix(HUB_PREFIX)
        return ModelSource("hub", folder, rid, config, sid_map, items)
    if is_bundle_dir(folder) or ((folder / ITEMS_FILE).exists() and (folder / SID_MAP_FILE).exists()):
        config, sid_map, items = read_bundle(folder)
        log.info("loading the bundle in %s", folder)
        return ModelSource("bundle", folder, str(config.get("name") or folder.resolve().name), config, sid_map,
                           items)
    if is_run_dir(folder) or is_model_dir(folder):
        parts = run_parts(folder)
        sid_map = SidMap.load(parts["model_dir"] / SID_MAP_FILE)
        config = run_config(parts, sid_map)
        kind = "run" if is_run_dir(folder) else "model"
        log.info("loading %s (model %s) without a bundle; `llmrec bundle --run %s --out FOLDER` writes one to "
                 "share", folder, parts["model_dir"], parts["run_dir"] or folder)
        return ModelSource(kind, parts["model_dir"], str(parts["name"]), config, sid_map, parts["items"])
    raise LlmrecError(f"{folder}: not a bundle, run or model folder (no {SID_MAP_FILE} + {ITEMS_FILE}, no "
                      "data/manifest.json). Write a bundle with `llmrec bundle --run RUN --out FOLDER`.")
