"""Uploading a bundle to the Hugging Face Hub (huggingface_hub's HfApi: create_repo + upload_folder)."""

from __future__ import annotations

import os
from pathlib import Path

from llmrec.bundle.io import CARD_FILE, assert_safetensors_only, read_bundle
from llmrec.bundle.locate import looks_like_repo_id
from llmrec.io import LlmrecError

LOGIN_HINT = "Set HF_TOKEN (a token with write access) or run `hf auth login`."


def push_bundle(bundle_dir: str | Path, repo_id: str, *, private: bool = False, token: str | None = None,
                endpoint: str | None = None, commit_message: str | None = None) -> str:
    """Create the repo (exist_ok) and upload the bundle folder; returns the repo URL.

    Token: `token`, else HF_TOKEN, else the one saved by `hf auth login`. Hidden files are not uploaded; the
    card is rewritten so its usage snippet names `repo_id`.
    """
    from huggingface_hub import CommitOperationAdd, HfApi

    from llmrec.bundle.card import model_card

    bundle_dir = Path(bundle_dir)
    if not looks_like_repo_id(repo_id):
        raise LlmrecError(f"--repo-id {repo_id!r}: expected USER/NAME (letters, digits, '-', '_', '.').")
    config, _, _ = read_bundle(bundle_dir)
    assert_safetensors_only(bundle_dir)
    # the card uploaded says how to load *this* repo (its usage snippet names the repo id)
    card = str(model_card(config, repo_id=repo_id)).encode("utf-8") if config else None
    ops = [CommitOperationAdd(path_in_repo=p.relative_to(bundle_dir).as_posix(), path_or_fileobj=str(p))
           for p in sorted(bundle_dir.rglob("*")) if p.is_file()
           and not any(part.startswith(".") for part in p.relative_to(bundle_dir).parts)
           and not (card and p.relative_to(bundle_dir).as_posix() == CARD_FILE)]
    if card:
        ops.append(CommitOperationAdd(path_in_repo=CARD_FILE, path_or_fileobj=card))
    api = HfApi(endpoint=endpoint, token=token or os.environ.get("HF_TOKEN") or None)
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        api.create_commit(repo_id=repo_id, operations=ops, repo_type="model",
                          commit_message=commit_message or f"llmrec bundle {bundle_dir.name}")
    except Exception as e:
        raise LlmrecError(f"push to {repo_id} failed: {e}. {LOGIN_HINT}") from e
    return str(url)
