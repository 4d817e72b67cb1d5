"""Download public datasets into the cache (for users with internet), with checksum checks.

Files land in `llmrec.io.cache_dir()/downloads/` only after their checksum matches (streamed to a
temp file, hashed, then renamed); a mismatch is an LlmrecError and the bad bytes are deleted. The
base URL can point at a mirror (argument `base_url` or $LLMREC_DOWNLOAD_BASE): the mirror serves
each file flat under its file name, e.g. `<base>/ml-100k.zip`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from llmrec.io import LlmrecError, atomic_path, cache_dir

ENV_BASE = "LLMREC_DOWNLOAD_BASE"


@dataclass(frozen=True)
class Remote:
    """A downloadable file: canonical URL and what we know about its bytes."""

    url: str
    sha256: str | None = None
    md5: str | None = None
    size: int | None = None

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


# Known checksums: ml-100k.zip md5 is the one GroupLens publishes (ml-100k.zip.md5); its sha256 and
# size are widely recorded for the same archive. Amazon 2018 files have no published checksums.
REGISTRY: dict[str, Remote] = {
    "ml-100k.zip": Remote("https://files.grouplens.org/datasets/movielens/ml-100k.zip",
                          sha256="50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
                          md5="0e33842e24a9c977be4e0107933c0723", size=4_924_029),
}
AMAZON2018_BASE = "https://jmcauley.ucsd.edu/data/amazon_v2"


def downloads_dir() -> Path:
    path = cache_dir() / "downloads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _url_for(remote: Remote, base_url: str | None) -> str:
    base = base_url or os.environ.get(ENV_BASE)
    return f"{base.rstrip('/')}/{remote.filename}" if base else remote.url


def _hashes(path: Path) -> tuple[str, str]:
    s, m = hashlib.sha256(), hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            s.update(block)
            m.update(block)
    return s.hexdigest(), m.hexdigest()


def _mismatch(remote: Remote, sha: str, md5: str, expected_sha: str | None) -> str | None:
    want_sha = expected_sha or remote.sha256
    if want_sha and sha != want_sha.lower():
        return f"sha256 {sha} != expected {want_sha}"
    if not expected_sha and remote.md5 and md5 != remote.md5:
        return f"md5 {md5} != expected {remote.md5}"
    return None


def fetch(remote: Remote, *, base_url: str | None = None, sha256: str | None = None, force: bool = False,
          progress: bool = True, timeout: float = 60.0) -> Path:
    """Download one file into the cache (or return the cached copy when its checksum still matches).

    `sha256` overrides the registry's checksum (for mirrors or new files).
    """
    dest = downloads_dir() / remote.filename
    if dest.exists() and not force:
        if not _mismatch(remote, *_hashes(dest), sha256):
            return dest
        dest.unlink()  # a cached file that no longer matches is not trusted
    url = _url_for(remote, base_url)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{remote.filename}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
                total = int(resp.headers.get("Content-Length") or 0) or remote.size
                bar = None
                if progress:
                    from tqdm.auto import tqdm
                    bar = tqdm(total=total, unit="B", unit_scale=True, desc=remote.filename, leave=False)
                while True:
                    block = resp.read(1 << 16)
                    if not block:
                        break
                    out.write(block)
                    if bar is not None:
                        bar.update(len(block))
                if bar is not None:
                    bar.close()
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise LlmrecError(f"download of {url} failed ({e}); check the network or set {ENV_BASE} / "
                              "--base-url to a mirror.") from e
        sha, md5 = _hashes(tmp)
        bad = _mismatch(remote, sha, md5, sha256)
        if bad:
            raise LlmrecError(f"{url}: checksum mismatch ({bad}); the file was deleted. The download is "
                              "corrupt or the mirror serves a different file: retry, or pass the right "
                              "sha256 if the file changed upstream.")
        if not (sha256 or remote.sha256 or remote.md5):
            (dest.parent / f"{remote.filename}.sha256").write_text(f"{sha}  {remote.filename}\n")
        os.replace(tmp, dest)
        return dest
    finally:
        if tmp.exists():
            tmp.unlink()


def download_movielens_100k(*, base_url: str | None = None, sha256: str | None = None, force: bool = False,
                            progress: bool = True) -> Path:
    """ml-100k.zip -> cache_dir()/datasets/movielens_100k/ (u.data, u.item, ...); returns that folder."""
    archive = fetch(REGISTRY["ml-100k.zip"], base_url=base_url, sha256=sha256, force=force, progress=progress)
    target = cache_dir() / "datasets" / "movielens_100k"
    if (target / "u.data").exists() and not force:
        stamp = target / ".source_sha256"
        if stamp.exists() and stamp.read_text().strip() == _hashes(archive)[0]:
            return target
    with atomic_path(target) as tmp:
        tmp.mkdir(parents=True)
        try:
            with zipfile.ZipFile(archive) as zf:
                for member in zf.infolist():
                    name = Path(member.filename).name
                    if member.is_dir() or not name or name.startswith("."):
                        continue
                    with zf.open(member) as src, open(tmp / name, "wb") as dst:
                        shutil.copyfileobj(src, dst)
        except zipfile.BadZipFile as e:
            archive.unlink(missing_ok=True)
            raise LlmrecError(f"{archive}: not a valid zip ({e}); it was deleted, download again.") from e
        if not (tmp / "u.data").exists():
            raise LlmrecError(f"{archive}: no u.data inside; this is not the MovieLens-100K archive.")
        (tmp / ".source_sha256").write_text(_hashes(archive)[0])
    return target


def amazon2018_remotes(category: str) -> tuple[Remote, Remote]:
    """(5-core reviews, metadata) for an Amazon Reviews 2018 category such as 'Industrial_and_Scientific'."""
    if not category or "/" in category or " " in category:
        raise LlmrecError(f"Amazon 2018 category {category!r}: use the file-name form, e.g. "
                          "'Industrial_and_Scientific', 'Musical_Instruments', 'Video_Games'.")
    return (Remote(f"{AMAZON2018_BASE}/categoryFilesSmall/{category}_5.json.gz"),
            Remote(f"{AMAZON2018_BASE}/metaFiles2/meta_{category}.json.gz"))


def download_amazon2018(category: str, *, base_url: str | None = None, force: bool = False,
                        progress: bool = True, reviews_sha256: str | None = None,
                        meta_sha256: str | None = None) -> Path:
    """Download a category's 5-core reviews + meta into cache_dir()/datasets/amazon2018_<category>/.

    The folder loads with `load_dataset(folder)` (format 'amazon2018': users, ASIN items, ratings,
    timestamps, title/description/brand/categories). No published checksums exist for these files;
    the sha256 of what was fetched is recorded beside it and in the loaded dataset's source.
    """
    reviews, meta = amazon2018_remotes(category)
    target = cache_dir() / "datasets" / f"amazon2018_{category}"
    target.mkdir(parents=True, exist_ok=True)
    for remote, sha in ((reviews, reviews_sha256), (meta, meta_sha256)):
        path = fetch(remote, base_url=base_url, sha256=sha, force=force, progress=progress)
        link = target / remote.filename
        if not link.exists() or force:
            with atomic_path(link) as tmp:
                shutil.copyfile(path, tmp)
    return target
