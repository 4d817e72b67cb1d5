"""Model bundles: one folder with everything needed to recommend (model, tokenizer, SID map, catalogue,
config, model card), reading it back checked, finding a model by path or Hub id, and pushing to the Hub."""

from llmrec.bundle.io import (
    BUNDLE_FORMAT,
    CARD_FILE,
    CONFIG_FILE,
    DEFAULT_GENERATION,
    ITEMS_FILE,
    SID_MAP_FILE,
    assert_safetensors_only,
    catalogue_fingerprint,
    check_bundle_pairing,
    check_out_dir,
    is_bundle_dir,
    read_bundle,
)
from llmrec.bundle.locate import ModelSource, locate_model, looks_like_repo_id, resolve_bundle
from llmrec.bundle.model import load_model_dir
from llmrec.bundle.push import push_bundle
from llmrec.bundle.run import bundle_from_run, find_run_model, run_metrics
from llmrec.bundle.save import save_bundle

__all__ = [
    "BUNDLE_FORMAT", "CARD_FILE", "CONFIG_FILE", "DEFAULT_GENERATION", "ITEMS_FILE", "SID_MAP_FILE", "ModelSource",
    "assert_safetensors_only", "bundle_from_run", "catalogue_fingerprint", "check_bundle_pairing", "check_out_dir",
    "find_run_model", "is_bundle_dir", "load_model_dir", "locate_model", "looks_like_repo_id", "push_bundle",
    "read_bundle", "resolve_bundle", "run_metrics", "save_bundle",
]
