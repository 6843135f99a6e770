"""Sources to local paths: http(s) downloads into the cache, hf:// through huggingface_hub, registry names (a fresh
registry download has its fingerprint recorded: `registry.record_download`)."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from editor.checkpoints import registry
from editor.checkpoints.errors import ModelUnavailableError
from editor.checkpoints.native import CONFIG_FILE, STATE_FILE, atomic_target, publish
from editor.checkpoints.registry import REGISTRY, cache_dir

OFFLINE_ENV = "STYLEGAN2_EDITOR_OFFLINE"


def _offline() -> bool:
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _resolve_host(host: str, port: int, timeout: float) -> None:
    """Resolve `host` within `timeout` seconds (getaddrinfo has no timeout of its own); OSError if it cannot."""
    result: dict[str, Any] = {}

    def target():
        try:
            result["addr"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise OSError(f"could not resolve {host} within {timeout:g} s")
    if "error" in result:
        raise OSError(f"could not resolve {host}: {result['error']}")


def _uses_proxy(url: str) -> bool:
    scheme = urllib.parse.urlsplit(url).scheme
    return bool(urllib.request.getproxies().get(scheme))


def _unavailable(what: str, reason: str, dest: Path) -> ModelUnavailableError:
    return ModelUnavailableError(
        f"could not download {what}: {reason}. On a machine with internet access, download it and put it at "
        f"{dest} (or pass the local file with --model PATH)."
    )


def url_cache_path(url: str) -> Path:
    """Where `url` is cached: cache_dir()/downloads/<url hash>-<file name>."""
    name = os.path.basename(urllib.parse.urlsplit(url).path) or "download"
    digest = hashlib.sha256(url.encode()).hexdigest()[:12]
    return cache_dir() / "downloads" / f"{digest}-{name}"


def download_url(url: str, dest: str | os.PathLike, *, progress: bool = True, timeout: float = 10.0) -> Path:
    """Download `url` to `dest` once (an existing `dest` is returned as is), with a tqdm bar on stderr.

    Data goes to a temporary file beside `dest` that is renamed into place only when complete, so an interrupted
    download leaves nothing at `dest`. Raises ModelUnavailableError (naming the file and where to put it) when
    offline ($STYLEGAN2_EDITOR_OFFLINE=1), unreachable (DNS and connect bounded by `timeout` seconds) or refused.
    """
    dest = Path(dest)
    if dest.is_file():
        return dest
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    if _offline():
        raise _unavailable(url, f"offline mode (${OFFLINE_ENV} is set)", dest)
    try:
        if not _uses_proxy(url):
            _resolve_host(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80), timeout)
        request = urllib.request.Request(url, headers={"User-Agent": "stylegan2-editor"})
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        raise _unavailable(url, f"HTTP {exc.code} {exc.reason}", dest) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise _unavailable(url, f"unreachable ({reason})", dest) from None
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = atomic_target(dest)
    try:
        from tqdm.auto import tqdm

        total = response.headers.get("Content-Length")
        total = int(total) if total and total.isdigit() else None
        received = 0
        with response, open(tmp, "wb") as out, tqdm(
            total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=dest.name,
            disable=True if not progress else None, leave=False,
        ) as bar:
            while True:
                chunk = response.read(1 << 20)
                if not chunk:
                    break
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        if total is not None and received != total:
            raise _unavailable(url, f"connection closed after {received} of {total} bytes", dest)
        publish(tmp, dest)
    except (urllib.error.URLError, OSError) as exc:
        if isinstance(exc, ModelUnavailableError):
            raise
        raise _unavailable(url, f"transfer failed ({exc})", dest) from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return dest


def _parse_hf(source: str) -> tuple[str, str, str | None]:
    """'hf://owner/repo[@revision]/path/to/file' -> (repo_id, filename, revision)."""
    rest = source[len("hf://"):]
    parts = rest.split("/")
    if len(parts) < 3 or not all(parts):
        raise ValueError(f"expected hf://owner/repo/path/to/file, got {source!r}")
    owner, repo, filename = parts[0], parts[1], "/".join(parts[2:])
    revision = None
    if "@" in repo:
        repo, revision = repo.split("@", 1)
    return f"{owner}/{repo}", filename, revision


def _hf_download(source: str, *, timeout: float = 10.0) -> Path:
    """Fetch an hf:// file through huggingface_hub (its cache; $HF_HUB_CACHE honoured at call time)."""
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    repo_id, filename, revision = _parse_hf(source)
    cache = os.environ.get("HF_HUB_CACHE") or None
    kwargs = dict(repo_id=repo_id, filename=filename, revision=revision, cache_dir=cache)
    try:
        return Path(hf_hub_download(**kwargs, local_files_only=True))
    except LocalEntryNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        raise ModelUnavailableError(f"{source}: {exc}") from None
    web = f"{constants.ENDPOINT}/{repo_id}/resolve/{revision or 'main'}/{filename}"
    where = (f"the Hugging Face cache ({cache or constants.HF_HUB_CACHE}; e.g. run `hf download {repo_id} "
             f"{filename}` on a connected machine and copy the cache), or download {web} and pass the local path")
    offline = constants.HF_HUB_OFFLINE or _offline()
    reason = "offline mode (HF_HUB_OFFLINE=1)" if offline else None
    if not offline:
        host = urllib.parse.urlsplit(constants.ENDPOINT).hostname or "huggingface.co"
        try:
            if not _uses_proxy(constants.ENDPOINT):
                _resolve_host(host, 443, timeout)
        except OSError as exc:
            reason = f"unreachable ({exc})"
    if reason is None:
        try:
            return Path(hf_hub_download(**kwargs, etag_timeout=timeout))
        except Exception as exc:  # huggingface_hub raises many HTTP/OS error types; all mean "not available"
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    raise ModelUnavailableError(f"could not fetch {filename} from {repo_id}: {reason}. Put it in {where}.")


def resolve_source(source: str | os.PathLike, *, progress: bool = True, timeout: float = 10.0) -> Path | str:
    """Turn any source into a local path (downloading if needed), or return a 'random:...' string unchanged."""
    text = os.fspath(source)
    if text.startswith("random:"):
        return text
    if text.startswith("hf://"):
        return _hf_download(text, timeout=timeout)
    named = registry.registry_entry_for(text)
    if named is not None and named.url == text:  # a registry URL: cached and fingerprinted like its name
        text = named.name
    elif text.startswith(("https://", "http://")):
        return download_url(text, url_cache_path(text), progress=progress, timeout=timeout)
    path = Path(text).expanduser()
    if path.exists():
        return path
    if text == "demo":
        if not (registry.DEMO_DIR / STATE_FILE).is_file() or not (registry.DEMO_DIR / CONFIG_FILE).is_file():
            raise ModelUnavailableError(
                f"the bundled demo generator is not in this checkout yet (expected {registry.DEMO_DIR}/{STATE_FILE} and "
                f"{CONFIG_FILE}); use --model random:small for random weights, or another source"
            )
        return registry.DEMO_DIR
    if text in REGISTRY:
        info = REGISTRY[text]
        dest = cache_dir() / info.filename
        if dest.is_file():
            return dest  # whatever is there: verified only if its sha256 was recorded at download (verified_name)
        download_url(info.url, dest, progress=progress, timeout=timeout)
        try:
            registry.record_download(info.name, dest)
        except ValueError:
            dest.unlink()  # not the publisher's file
            raise
        return dest
    raise FileNotFoundError(
        f"{text!r} is not an existing path, an http(s):// or hf:// URL, 'random:<config>[:seed]', or a model name "
        f"({', '.join(REGISTRY)})"
    )
