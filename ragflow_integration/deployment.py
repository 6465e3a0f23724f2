"""What the installer writes into a RAGFlow source tree or a docker-compose deployment folder.

A plan maps paths (relative to the folder given) to the text each file must have afterwards; applying
it and backing up what it replaces is `ragflow_integration.backup`'s job.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

import rerank_kit
from ragflow_integration import edits
from rerank_kit.commands import vendor
from rerank_kit.protocol import ModelCard

RERANK_MODEL = "rag/llm/rerank_model.py"
SUBCLASS_MODULE = "rag/llm/rerank_kit_model.py"
LLM_FACTORIES = "conf/llm_factories.json"
WEB_LLM_CONSTANTS = "web/src/constants/llm.ts"
WEB_SETTING_CONSTANTS = "web/src/pages/user-setting/constants.tsx"
SUBCLASS_SOURCE = Path(__file__).with_name("rerank_model.py")  # not imported here: it needs numpy
CLIENT_PACKAGE = vendor.CORE_PACKAGE
COMPOSE_FILE = "docker-compose.yml"
COMPOSE_OVERRIDE = "docker-compose.rerank-kit.yml"
STAGING_DIR = "rerank-kit"
CONTAINER_ROOT = "/ragflow"  # WORKDIR and PYTHONPATH of RAGFlow's image (Dockerfile: ENV PYTHONPATH=/ragflow/)
BASE_URL_ENV = rerank_kit.BASE_URL_ENV  # the class's fallback when RAGFlow passes no base URL
DOCKER_SERVER_URL = rerank_kit.DOCKER_SERVER_URL

ReadOriginal = Callable[[str], str]


class DeploymentError(RuntimeError):
    """The folder is not something this installer can patch; the message says what to do."""


@dataclass
class Plan:
    root: Path
    mode: str  # "source" or "docker"
    files: dict[str, str]
    notes: list[str] = field(default_factory=list)
    compose_command: str | None = None


def runtime_files() -> dict[str, str]:
    """The files RAGFlow's Python needs: the subclass module and the `rerank_kit` modules it imports
    (httpx and pydantic, which RAGFlow's environment already has), by the packager's vendoring rule."""
    subclass = {SUBCLASS_MODULE: SUBCLASS_SOURCE.read_bytes()}
    return {rel: data.decode("utf-8") for rel, data in {**vendor.vendored_core(subclass), **subclass}.items()}


def patched_core(read_original: ReadOriginal, served: Sequence[ModelCard] = ()) -> dict[str, str]:
    """The two RAGFlow files the integration changes (the factory listing `served` models too), plus the
    runtime files."""
    return {
        LLM_FACTORIES: edits.with_factory(read_original(LLM_FACTORIES), edits.factory_entry(served)),
        RERANK_MODEL: edits.with_hook(read_original(RERANK_MODEL)),
        **runtime_files(),
    }


def detect_mode(root: Path) -> str:
    if (root / RERANK_MODEL).is_file():
        return "source"
    if (root / COMPOSE_FILE).is_file():
        return "docker"
    raise DeploymentError(
        f"{root} is neither a RAGFlow source tree (no {RERANK_MODEL}) nor a docker-compose deployment "
        f"folder (no {COMPOSE_FILE}); pass the RAGFlow checkout or its docker/ folder"
    )


def source_plan(root: Path, server_url: str = DOCKER_SERVER_URL, served: Sequence[ModelCard] = ()) -> Plan:
    """Patch the tree in place; if it has docker/, also mount the patched files into the image."""
    plan = Plan(root, "source", patched_core(lambda rel: _read(root / rel), served))
    _add_web_constants(plan)
    docker_dir = root / "docker"
    if (docker_dir / COMPOSE_FILE).is_file():
        mounts = {f"../{rel}": rel for rel in (LLM_FACTORIES, RERANK_MODEL, SUBCLASS_MODULE, CLIENT_PACKAGE)}
        plan.files[f"docker/{COMPOSE_OVERRIDE}"] = compose_override(docker_dir / COMPOSE_FILE, mounts, server_url)
        plan.compose_command = _compose_command("docker/")
        plan.notes.append("Docker: the image must be the same RAGFlow version as this checkout "
                          "(docker/.env RAGFLOW_IMAGE), since the checkout's patched files are mounted into it.")
    return plan


def docker_plan(root: Path, read_original: ReadOriginal, server_url: str = DOCKER_SERVER_URL,
                served: Sequence[ModelCard] = ()) -> Plan:
    """Stage patched copies of the image's files under rerank-kit/ and mount them with a compose override."""
    staged = patched_core(read_original, served)
    files = {f"{STAGING_DIR}/{rel}": text for rel, text in staged.items()}
    mounts = {f"./{STAGING_DIR}/{rel}": rel for rel in (LLM_FACTORIES, RERANK_MODEL, SUBCLASS_MODULE, CLIENT_PACKAGE)}
    files[COMPOSE_OVERRIDE] = compose_override(root / COMPOSE_FILE, mounts, server_url)
    plan = Plan(root, "docker", files, compose_command=_compose_command(""))
    plan.notes.append(
        "The web UI is built into the image: it lists a new factory only after a front-end change "
        f"({WEB_LLM_CONSTANTS}) and an image rebuild. Without that, add the model through the HTTP API "
        "(docs/ragflow.md) or use the zero-code path: the built-in HuggingFace (TEI) or "
        f"OpenAI-API-Compatible factory with base URL {DOCKER_SERVER_URL}."
    )
    return plan


def compose_override(compose_file: Path, mounts: dict[str, str], server_url: str) -> str:
    """A compose file adding read-only bind mounts (host path -> /ragflow/<rel>) to RAGFlow's services,
    and the server URL the class uses when a model was added without a base URL."""
    services = ragflow_services(compose_file)
    volumes = [f"{host}:{CONTAINER_ROOT}/{rel}:ro" for host, rel in mounts.items()]
    spec = {"volumes": volumes, "environment": {BASE_URL_ENV: server_url}}
    body = yaml.safe_dump({"services": {name: {key: value.copy() for key, value in spec.items()} for name in services}},
                          sort_keys=False)
    return (
        "# Written by `rerank-kit install-ragflow`; `rerank-kit install-ragflow --uninstall` removes it.\n"
        f"# Use it with: {_compose_command('')}\n{body}"
    )


def ragflow_services(compose_file: Path) -> list[str]:
    """Services that run RAGFlow's image (`ragflow` up to v0.22, `ragflow-cpu`/`ragflow-gpu` later)."""
    document = yaml.safe_load(_read(compose_file)) or {}
    services = [name for name, spec in (document.get("services") or {}).items()
                if "RAGFLOW_IMAGE" in str((spec or {}).get("image", "")) or name.startswith("ragflow")]
    if not services:
        raise DeploymentError(f"{compose_file} has no service running ${{RAGFLOW_IMAGE}}")
    return services


def image_reader(image: str) -> ReadOriginal:
    """Read /ragflow/<rel> out of RAGFlow's image with the docker CLI."""

    def read(rel: str) -> str:
        command = ["docker", "run", "--rm", "--entrypoint", "cat", image, f"{CONTAINER_ROOT}/{rel}"]
        try:
            done = subprocess.run(command, capture_output=True, check=False, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DeploymentError(f"could not run `{shlex.join(command)}` ({exc}); "
                                  "pass --ragflow-source with a checkout of the image's version") from exc
        if done.returncode != 0:
            raise DeploymentError(f"`{shlex.join(command)}` failed: {done.stderr.decode(errors='replace').strip()}"
                                  "; pass --ragflow-source with a checkout of the image's version")
        return done.stdout.decode()

    return read


def image_from_env(root: Path) -> str:
    """RAGFLOW_IMAGE from the deployment's .env."""
    env_file = root / ".env"
    if env_file.is_file():
        for line in _read(env_file).splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip() == "RAGFLOW_IMAGE" and value.strip():
                return value.split("#")[0].strip().strip("'\"")
    raise DeploymentError(f"no RAGFLOW_IMAGE in {env_file}; pass --image or --ragflow-source")


def _add_web_constants(plan: Plan) -> None:
    llm_ts = plan.root / WEB_LLM_CONSTANTS
    if not llm_ts.is_file():
        plan.notes.append(
            f"No web source ({WEB_LLM_CONSTANTS}): the UI lists the factory only after that front-end "
            "change and a web rebuild. Until then, add the model through the HTTP API (docs/ragflow.md) or "
            "use the built-in HuggingFace (TEI) or OpenAI-API-Compatible factory pointed at the server."
        )
        return
    setting = plan.root / WEB_SETTING_CONSTANTS
    try:
        patched = {WEB_LLM_CONSTANTS: edits.with_web_factory(_read(llm_ts))}
        if setting.is_file():
            patched[WEB_SETTING_CONSTANTS] = edits.with_local_factory(_read(setting))
    except edits.EditError as exc:
        plan.notes.append(f"Web constants left as they are ({exc}); add the factory to them by hand.")
        return
    plan.files.update(patched)
    plan.notes.append("Web constants updated: rebuild the front end (cd web && npm run build) to see the factory.")


def _compose_command(prefix: str) -> str:
    return f"docker compose -f {prefix}{COMPOSE_FILE} -f {prefix}{COMPOSE_OVERRIDE} up -d"


def _read(path: Path) -> str:
    return path.read_bytes().decode("utf-8")
