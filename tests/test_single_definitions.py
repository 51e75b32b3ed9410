"""One definition of each shared concept: the checkout's root, the default model tag, the
body limit, the configuration error and the JSON error body. A second copy would drift."""

from __future__ import annotations

import ast
import inspect
import json
from pathlib import Path

import pytest
import typer

import monitoring.config
import service.config
import service.request_guard
from cli.main import app
from fairgate.artifacts import DEFAULT_MODEL, DEFAULT_MODEL_NAME
from fairgate.config_error import ConfigError
from record import RecordUnavailable
from service.error_response import error_response
from service.launch import REPO
from service.probe_guard import ProbeGuard
from service.recording import unavailable_response
from service.request_guard import RequestGuard

CODE = ("fairgate", "record", "training", "service", "monitoring", "loadtests", "cli", "scripts")


def _modules(*trees: str) -> list[Path]:
    return [path for tree in trees for path in sorted((REPO / tree).rglob("*.py"))]


def _assigned_names(source: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source)):
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


def test_the_repository_root_is_defined_once():
    defining = [
        str(path.relative_to(REPO))
        for path in _modules(*CODE, "tests")
        if "REPO" in _assigned_names(path.read_text())
    ]
    assert defining == ["service/launch.py"]
    assert (REPO / "pyproject.toml").is_file()


def _string_constants(source: str) -> list[tuple[int, str]]:
    """String literals that are not docstrings (documentation may name the default)."""
    tree = ast.parse(source)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        and id(node) not in docstrings
    ]  # fmt: skip


def test_the_default_model_is_spelled_once_in_the_code():
    assert DEFAULT_MODEL == "fairgate-loan:latest"  # as README.md and service/config.py say
    # The CLI spells it in its help and defaults, to show it without importing the model store
    # at start-up; test_the_cli_shows_the_core_s_default_model checks those agree.
    spelled = [
        str(path.relative_to(REPO))
        for path in _modules(*CODE)
        if path.parts[-2] != "cli"
        for _, text in _string_constants(path.read_text())
        if text == DEFAULT_MODEL_NAME or DEFAULT_MODEL in text
    ]
    assert spelled == ["fairgate/artifacts.py"], spelled


def test_the_cli_shows_the_core_s_default_model():
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    (name,) = [p for p in commands["train"].params if p.name == "name"]
    assert name.default == DEFAULT_MODEL_NAME
    (model,) = [p for p in commands["serve"].params if p.name == "model_tag"]
    assert f"else {DEFAULT_MODEL})" in model.help


def test_the_body_limit_is_the_configuration_s():
    default = inspect.signature(RequestGuard.__init__).parameters["max_bytes"].default
    assert default is service.config.DEFAULT_MAX_BODY_BYTES == 2 * 1024 * 1024
    assert service.config.ServiceConfig().max_body_bytes is default
    assert not hasattr(service.request_guard, "DEFAULT_MAX_BYTES")


def test_one_configuration_error_for_the_service_and_the_prober():
    assert service.config.ConfigError is monitoring.config.ConfigError is ConfigError
    with pytest.raises(ConfigError) as service_error:
        service.config.service_config({"FAIRGATE_POLICY": "x", "FAIRGATE_GC": "y"})
    with pytest.raises(ConfigError) as prober_error:
        monitoring.config.config_from_mapping({"pairs": "0", "colour": "red"})
    for raised, first in ((service_error, "invalid configuration:"),
                          (prober_error, "invalid prober configuration:")):  # fmt: skip
        lines = str(raised.value).splitlines()
        assert lines[0] == first
        assert lines[1:] == [f"  - {problem}" for problem in raised.value.problems]
        assert len(raised.value.problems) == 2


def test_the_error_body():
    response = error_response(413, "body", "request body too large", "at most 2 MB",
                              headers={"Retry-After": "1"})  # fmt: skip
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/json"
    assert response.headers["retry-after"] == "1"
    assert json.loads(response.body) == {
        "error": "request body too large",
        "detail": [{"loc": ["body"], "msg": "at most 2 MB", "type": "request_body_too_large"}],
    }


def test_the_record_s_503_is_the_same_error_body():
    response = unavailable_response(RecordUnavailable("database is locked", 0.2))
    expected = error_response(
        503, "record", "decision record unavailable",
        "database is locked; nothing was decided, retry after 1 s", kind="record_unavailable",
    )  # fmt: skip
    assert (response.status_code, response.body) == (503, expected.body)
    assert response.headers["retry-after"] == "1"


async def _sent(app: object, headers: list[tuple[bytes, bytes]]) -> list[dict]:
    messages: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: dict) -> None:
        messages.append(message)

    scope = {"type": "http", "method": "POST", "path": "/decide", "headers": headers}
    await app(scope, receive, send)  # type: ignore[operator]
    return messages


async def _unreachable(scope: dict, receive: object, send: object) -> None:
    raise AssertionError("the guard let the request through")


@pytest.mark.parametrize(
    ("guard", "headers", "status", "loc"),
    [
        (RequestGuard(_unreachable, max_bytes=1024, json_paths=("/decide",)),
         [(b"content-type", b"application/json"), (b"content-length", b"4096")], 413, "body"),
        (RequestGuard(_unreachable, json_paths=("/decide",)),
         [(b"content-type", b"text/plain"), (b"content-length", b"2")], 415, "content-type"),
        (ProbeGuard(_unreachable, token=lambda: None, refused=lambda _: None, paths=("/decide",)),
         [(b"x-fairgate-probe", b"1")], 403, "X-Fairgate-Probe"),
    ],
    ids=["413", "415", "403"],
)  # fmt: skip
def test_the_guards_refuse_with_the_error_body(guard, headers, status, loc):
    import asyncio

    start, body = asyncio.run(_sent(guard, headers))
    assert start["status"] == status
    assert (b"content-type", b"application/json") in start["headers"]
    sent = json.loads(body["body"])
    assert sent["detail"][0]["loc"] == [loc]
    assert body["body"] == error_response(status, loc, sent["error"], sent["detail"][0]["msg"]).body
