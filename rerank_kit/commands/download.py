"""`rerank-kit download MODEL [--to DIR]` (or `--config models.yaml`): fetch models before the first start.

A first `rerank-kit serve` would otherwise download several hundred MB with no progress and no way to do it
ahead of time (an image build, a Kubernetes init container, a machine that will be offline). The transfer is
huggingface_hub's own `snapshot_download`: its progress bars, `HF_ENDPOINT` (a mirror) and `HF_TOKEN` (gated
models) honoured, and a re-run keeps every file already complete, so an interrupted download resumes where
it stopped (a file cut in the middle is fetched again; ^C lets the files in flight finish, then exits 130).
Offline (`RERANK_OFFLINE=1`, `HF_HUB_OFFLINE=1`, or the Hub unreachable) it says at once what is missing
and how to copy a folder in.

stdout gets one line per model, the local folder to put in `RERANK_MODEL` (or in the config's `path`);
everything else (progress, hints) goes to stderr, so `RERANK_MODEL=$(rerank-kit download X --to /models)`
works.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import yaml

# Formats the server never loads: fetching them would multiply the download (bge-reranker-base ships the same
# weights as .bin, .safetensors and .onnx, 1.1 GB each). PyTorch .bin files are skipped too when the repository
# also has safetensors (see _ignore_patterns).
_NEVER_LOADED = ["*.onnx", "*.onnx_data", "onnx/*", "openvino/*", "*.msgpack", "*.h5", "*.ot", "*.gguf",
                 "*.tflite", "coreml/*", "flax_model*", "tf_model*", "rust_model*", "*.md", ".gitattributes"]
_DUPLICATE_BIN = ["pytorch_model*.bin", "*.bin.index.json"]
_TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "sentencepiece.bpe.model", "spiece.model", "vocab.json",
                    "tokenizer.model")
_WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
_TRUE = {"1", "true", "yes", "on", "t", "y"}  # what the server's RERANK_OFFLINE accepts (pydantic's bool)


class DownloadError(Exception):
    """A model could not be made available; the message says what is missing and what to do."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("models", nargs="*", metavar="MODEL",
                        help="hub id (e.g. BAAI/bge-reranker-v2-m3) or local folder to check")
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="a models file (models: [{name, path}]): fetch every models[].path "
                             "(default: $RERANK_CONFIG when no MODEL is given)")
    parser.add_argument("--to", type=Path, metavar="DIR",
                        help="put each model in DIR/<name> (e.g. --to /models gives /models/bge-reranker-v2-m3); "
                             "default: the Hugging Face cache, where `rerank-kit serve` finds a hub id by itself")
    parser.add_argument("--revision", help="a branch, tag or commit of the model repository (default: main)")


def offline_requested() -> bool:
    """RERANK_OFFLINE (the server's setting) or huggingface_hub's own HF_HUB_OFFLINE."""
    return any(os.environ.get(name, "").strip().lower() in _TRUE for name in ("RERANK_OFFLINE", "HF_HUB_OFFLINE"))


def models_of_config(path: Path) -> list[str]:
    """The `models[].path` values of a models file (the server's RERANK_CONFIG), in order."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise DownloadError(f"cannot read the models file {path}: {exc}") from exc
    models = document.get("models") if isinstance(document, dict) else None
    if not isinstance(models, list) or not models:
        raise DownloadError(f"{path} has no `models:` list (expected models: [{{name, path}}, ...])")
    paths = []
    for position, entry in enumerate(models):
        value = entry.get("path") if isinstance(entry, dict) else None
        if not isinstance(value, str) or not value.strip():
            raise DownloadError(f"{path}: models[{position}] has no `path` (a hub id or a local folder)")
        paths.append(value.strip())
    return paths


def missing_files(folder: Path) -> list[str]:
    """What `folder` lacks to be loaded as a model: config.json, the weights, a tokenizer."""
    missing = [] if (folder / "config.json").is_file() else ["config.json"]
    index = next((folder / name for name in _WEIGHT_INDEXES if (folder / name).is_file()), None)
    if index is not None:
        try:
            shards = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
        except (ValueError, KeyError, TypeError):
            shards = {f"a readable {index.name}"}
        missing += sorted(shard for shard in shards if not (folder / shard).is_file())
    elif not any((folder / name).is_file() for name in _WEIGHT_FILES):
        missing.append("the weights (model.safetensors or pytorch_model.bin)")
    if not any((folder / name).is_file() for name in _TOKENIZER_FILES):
        missing.append(f"a tokenizer ({' or '.join(_TOKENIZER_FILES[:3])}, with tokenizer_config.json)")
    return missing


@dataclass(frozen=True)
class Target:
    """One model to make available: a hub id (or a local folder) and where it must end up."""

    model: str
    folder: Path | None  # None: the Hugging Face cache

    @classmethod
    def of(cls, model: str, to: Path | None) -> Target:
        return cls(model, None if to is None else to.expanduser() / model.rstrip("/").rsplit("/", 1)[-1])

    @property
    def is_local(self) -> bool:
        return Path(self.model).expanduser().is_dir() or self.model.startswith(("/", "./", "../", "~"))

    def copy_in_hint(self) -> str:
        """How to bring the folder onto a machine that cannot download it."""
        name = self.model.rstrip("/").rsplit("/", 1)[-1]
        destination = self.folder or Path("/models") / name
        return (f"To copy it in: on a machine with internet run `rerank-kit download {self.model} --to ./models`,\n"
                f"  copy ./models/{name} to {destination} on this machine (scp -r, rsync, a volume),\n"
                f"  then start the server with RERANK_MODEL={destination} RERANK_OFFLINE=1")


def _incomplete(target: Target, folder: Path | None, why: str) -> DownloadError:
    if folder is None:
        from huggingface_hub import constants

        state = f"it is not in the Hugging Face cache ({constants.HF_HUB_CACHE})"
    elif not folder.is_dir():
        state = f"{folder} does not exist"
    else:
        state = f"{folder} lacks {', '.join(missing_files(folder))}"
    return DownloadError(f"{target.model}: {why}; {state}.\n  {target.copy_in_hint()}")


def _ignore_patterns(model: str, revision: str | None) -> list[str]:
    """_NEVER_LOADED, plus the PyTorch .bin weights when safetensors are there (the server prefers those)."""
    from huggingface_hub import HfApi

    try:
        files = [sibling.rfilename for sibling in HfApi().model_info(model, revision=revision).siblings or []]
    except Exception:  # the Hub is unreachable (or refuses): snapshot_download meets the same failure and
        return _NEVER_LOADED + _DUPLICATE_BIN  # reports it; what is on disk is then judged by missing_files
    has_safetensors = any(name.endswith(".safetensors") for name in files)
    return _NEVER_LOADED + (_DUPLICATE_BIN if has_safetensors else [])


def fetch(target: Target, *, revision: str | None, offline: bool) -> Path:
    """Make `target` available on disk and return its folder; DownloadError says what is missing otherwise."""
    if target.is_local:
        folder = Path(target.model).expanduser()
        if not folder.is_dir() or missing_files(folder):
            raise _incomplete(target, folder, "a local folder is never downloaded, and this one is not a "
                                              "complete model")
        return folder.resolve()

    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    options = {"revision": revision, "local_dir": target.folder}
    try:
        if offline:  # missing_files below judges the weights: the listing cannot say which format was chosen
            folder = Path(snapshot_download(target.model, local_files_only=True,
                                            ignore_patterns=_NEVER_LOADED + _DUPLICATE_BIN, **options))
        else:
            folder = Path(snapshot_download(target.model, ignore_patterns=_ignore_patterns(target.model, revision),
                                            **options))
    except (RepositoryNotFoundError, GatedRepoError, RevisionNotFoundError) as exc:
        raise DownloadError(f"{target.model}: not found on the Hub, or gated ({type(exc).__name__}); check the id "
                            f"and revision, and for a gated model set HF_TOKEN to a token that was granted "
                            "access") from exc
    except LocalEntryNotFoundError as exc:  # offline, or the Hub unreachable, and not (completely) on disk
        why = ("offline (RERANK_OFFLINE or HF_HUB_OFFLINE is set) and not downloaded yet" if offline else
               f"the Hub is unreachable ({type(exc.__cause__ or exc).__name__}; HF_ENDPOINT selects a mirror) "
               "and it is not downloaded yet")
        raise _incomplete(target, target.folder, why) from exc
    except HfHubHTTPError as exc:
        raise DownloadError(f"{target.model}: the Hub answered {exc}; run the same command again later, it keeps "
                            "what is already downloaded") from exc
    if missing_files(folder):
        raise _incomplete(target, folder, "the download is incomplete")
    return folder.resolve()


def targets_of(args: argparse.Namespace) -> list[Target]:
    """The models named, then those of --config (or of $RERANK_CONFIG when none is named), each once."""
    models = list(args.models)
    config = args.config or (Path(os.environ["RERANK_CONFIG"]) if not models and os.environ.get("RERANK_CONFIG")
                             else None)
    if config is not None:
        models += models_of_config(config.expanduser())
    if not models:
        raise DownloadError("name a model (e.g. rerank-kit download BAAI/bge-reranker-v2-m3) or a models file "
                            "(--config models.yaml, or RERANK_CONFIG)")
    return [Target.of(model, args.to) for model in dict.fromkeys(models)]


def _say(line: str) -> None:
    print(line, file=sys.stderr)


def _note_interrupts() -> threading.Event:
    """^C still raises KeyboardInterrupt, and is also remembered: a ^C that lands while huggingface_hub waits
    on its download threads may be swallowed there, and must still end the command with 130."""
    interrupted = threading.Event()

    def on_interrupt(signum: int, frame: object) -> None:
        interrupted.set()
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, on_interrupt)
    return interrupted


def run(args: argparse.Namespace) -> int:
    """Exit 0 when every model is ready, 1 when one is not (each said why), 2 for a wrong invocation, 130 on ^C."""
    offline = offline_requested()
    try:
        targets = targets_of(args)
    except DownloadError as exc:
        _say(f"rerank-kit download: {exc}")
        return 2
    failures = 0
    interrupted = _note_interrupts()
    for target in targets:
        try:
            folder = fetch(target, revision=args.revision, offline=offline)
            if interrupted.is_set():  # huggingface_hub's worker pool can swallow the KeyboardInterrupt
                raise KeyboardInterrupt
        except KeyboardInterrupt:
            _say(f"rerank-kit download: interrupted; the same command resumes {target.model}, keeping the files "
                 "already complete")
            return 130
        except DownloadError as exc:
            _say(f"rerank-kit download: {exc}")
            failures += 1
            continue
        _say(f"ready: {target.model} in {folder} (RERANK_MODEL={folder})")
        print(folder)
        sys.stdout.flush()
    return 1 if failures else 0
