"""`rerank-kit install-ragflow PATH [--dry-run] [--uninstall]`: add the rerank-kit factory to RAGFlow.

PATH is a RAGFlow source tree (patched in place) or a docker-compose deployment folder (patched copies of
the image's files are staged under rerank-kit/ and mounted by docker-compose.rerank-kit.yml).
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from pathlib import Path

import httpx

from ragflow_integration import backup, deployment, edits
from rerank_kit.client.urls import normalize_base_url
from rerank_kit.protocol import ModelCard, ModelList


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", type=Path, help="RAGFlow source tree, or its docker-compose deployment folder")
    parser.add_argument("--dry-run", action="store_true", help="show the diff and write nothing")
    parser.add_argument("--uninstall", action="store_true", help="restore every file the installer changed")
    parser.add_argument("--ragflow-source", type=Path, metavar="DIR",
                        help="docker mode: take the original files from this checkout of the image's version")
    parser.add_argument("--image", help="docker mode: read the original files from this image "
                                        "(default: RAGFLOW_IMAGE from PATH/.env)")
    parser.add_argument("--models-from", metavar="URL",
                        help="add every model this running rerank-kit server serves (its /v1/models) to the "
                             "factory, so each is a model to pick in RAGFlow (key: RERANK_API_KEY)")
    parser.add_argument("--server-url", default=deployment.DOCKER_SERVER_URL,
                        help=f"Docker: the rerank server as the container reaches it, used when a model has no "
                             f"base URL (sets {deployment.BASE_URL_ENV}; default %(default)s)")


def run(args: argparse.Namespace) -> int:
    root = args.path.resolve()
    if args.uninstall:
        return _uninstall(root, args.dry_run)
    try:
        served = served_models(args.models_from) if args.models_from else []
        plan = _plan(root, args, served)
    except (deployment.DeploymentError, edits.EditError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    changes = backup.pending_changes(root, plan.files)
    if args.dry_run:
        for change in changes:
            sys.stdout.writelines(_diff(change))
        print(f"dry run: {len(changes)} file(s) would change in {root}; nothing written.")
        return 0
    backup.apply(root, changes)
    for change in changes:
        print(f"{'created' if change.old is None else 'patched'} {change.rel}")
    if not changes:
        print(f"Already installed in {root}: nothing changed.")
    _print_next_steps(plan, served)
    return 0


def served_models(url: str) -> list[ModelCard]:
    """The models a running rerank-kit server lists at /v1/models; OSError saying why when it cannot."""
    listing = f"{normalize_base_url(url)}/v1/models"
    key = os.environ.get("RERANK_API_KEY")
    try:
        response = httpx.get(listing, timeout=10, headers={"Authorization": f"Bearer {key}"} if key else None)
        response.raise_for_status()
        return ModelList.model_validate(response.json()).data
    except (httpx.HTTPError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        raise OSError(f"--models-from: cannot read the served models at {listing}: {exc}") from None


def _plan(root: Path, args: argparse.Namespace, served: list[ModelCard]) -> deployment.Plan:
    if deployment.detect_mode(root) == "source":
        return deployment.source_plan(root, args.server_url, served)
    if args.ragflow_source:
        source = args.ragflow_source.resolve()
        return deployment.docker_plan(root, lambda rel: (source / rel).read_bytes().decode("utf-8"), args.server_url,
                                      served)
    image = args.image or deployment.image_from_env(root)
    return deployment.docker_plan(root, deployment.image_reader(image), args.server_url, served)


def _uninstall(root: Path, dry_run: bool) -> int:
    actions = backup.uninstall(root, dry_run=dry_run)
    if not actions:
        print(f"Nothing to uninstall in {root} (no {backup.BACKUP_DIR}/{backup.MANIFEST}).")
        return 0
    print("\n".join(actions))
    print("dry run: nothing written." if dry_run else "Uninstalled: restart RAGFlow.")
    return 0


def _diff(change: backup.Change) -> list[str]:
    before = [] if change.old is None else change.old.splitlines(keepends=True)
    lines = list(difflib.unified_diff(before, change.new.splitlines(keepends=True),
                                      "/dev/null" if change.old is None else f"a/{change.rel}", f"b/{change.rel}"))
    return [line if line.endswith("\n") else line + "\n" for line in lines]


def _print_next_steps(plan: deployment.Plan, served: list[ModelCard]) -> None:
    factory = edits.factory_entry()["name"]
    example = served[0].id if served else "BAAI/bge-reranker-v2-m3"
    print("\nNext steps:")
    if plan.compose_command:
        print(f"  1. Restart RAGFlow with the override: {plan.compose_command}")
    else:
        print("  1. Restart RAGFlow (the API server and the task executors).")
    print(f"  2. Model providers -> {factory}: base URL of the server ({deployment.DOCKER_SERVER_URL} "
          "from Docker); then pick a model as the Rerank model, or use rerank_id "
          f"'{example}@{factory}' in the API.")
    for note in plan.notes:
        print(f"  - {note}")
