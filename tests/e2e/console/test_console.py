"""The console in a real browser (headless Chromium driven by Playwright) against a real `rerank-kit serve` on the
tiny test models: it loads cleanly and only from its own origin, lists the served models, connects (the printed
values, copied exactly; the Dify plugin's check), reranks as the API does, compares two models, shows the scores
the API returned, keeps document text as text, and works from the keyboard. The key flow: test_console_key.py."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.e2e.console.conftest import Watched
from tests.support.browser import screenshot_to
from tests.support.server_process import running_server, write_models_config
from tests.support.tiny_model import MAX_LENGTH

QUERY = "What is the capital of France?"
DOCUMENTS = ["Cats sleep up to sixteen hours a day.", "Paris is the capital and largest city of France.",
             "The Eiffel Tower is in Paris.", "Berlin is the capital of Germany.",
             "France is a country in Western Europe."]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[tuple[str, str]]:
    """Base URL and start-up output of a server with three models: minilm, minilm-short (a shorter max length:
    other scores) and minilm-b (only the threshold test sends it requests)."""
    folder = tmp_path_factory.mktemp("console")
    config = write_models_config(folder / "models.yaml", [
        {"name": "minilm", "path": str(tiny_model_dir), "backend": "torch", "max_length": MAX_LENGTH},
        {"name": "minilm-short", "path": str(tiny_model_dir), "backend": "torch", "max_length": 32},
        {"name": "minilm-b", "path": str(tiny_model_dir), "backend": "torch", "max_length": MAX_LENGTH}])
    log = folder / "serve.log"
    with running_server(tiny_model_dir, config=str(config), log_file=log) as url:
        yield url, log.read_text()


def ranked_in_page(page: object, column: int = 0) -> list[tuple[int, float]]:
    items = page.locator(".column").nth(column).locator("li.doc")  # type: ignore[attr-defined]
    return [(int(item.get_attribute("data-index")), float(item.get_attribute("data-score")))
            for item in items.all()]


def ranked_by_api(url: str, model: str, documents: list[str] = DOCUMENTS, **extra: object) -> list[tuple[int, float]]:
    body = httpx.post(f"{url}/v1/rerank", json={"model": model, "query": QUERY, "documents": documents, **extra})
    body.raise_for_status()
    return [(r["index"], r["relevance_score"]) for r in body.json()["results"]]


def rerank_in_page(page: object, documents: str, *, model: str = "minilm", threshold: str = "0.5") -> None:
    page.click("#tab-try")  # type: ignore[attr-defined]
    page.fill("#try-query", QUERY)  # type: ignore[attr-defined]
    page.fill("#try-docs", documents)  # type: ignore[attr-defined]
    page.select_option("#a-model", model)  # type: ignore[attr-defined]
    page.fill("#try-threshold", threshold)  # type: ignore[attr-defined]
    page.click("#try-form button[type=submit]")  # type: ignore[attr-defined]
    page.wait_for_selector("#try-results li.doc")  # type: ignore[attr-defined]


def test_the_page_loads_cleanly_from_its_own_origin_only(server: tuple[str, str], open_page) -> None:
    url, _ = server
    watched: Watched = open_page(f"{url}/")
    watched.page.wait_for_selector("#ov-models tbody tr")
    for tab in ("connect", "try", "thresholds", "overview"):
        watched.page.click(f"#tab-{tab}")
        watched.page.wait_for_selector(f"#{tab}:not([hidden])")
    watched.page.wait_for_timeout(2200)  # one poll of /stats
    assert watched.errors == []
    assert watched.requests and all(u.startswith(f"{url}/") for _, u, _ in watched.requests), watched.requests
    policy = httpx.get(f"{url}/").headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy


def test_the_overview_lists_every_served_model(server: tuple[str, str], open_page) -> None:
    url, _ = server
    for _ in range(2):  # some traffic for the live figures; the second answered from the score cache
        ranked_by_api(url, "minilm")
    page = open_page(f"{url}/").page
    page.wait_for_selector("#ov-models tbody tr")
    rows = page.locator("#ov-models tbody tr")
    assert [row.get_attribute("data-model") for row in rows.all()] == ["minilm", "minilm-short", "minilm-b"]
    first = [cell.inner_text() for cell in rows.first.locator("th, td").all()]
    assert first[:7] == ["minilm", "cross-encoder", "torch", "float32", "cpu", str(MAX_LENGTH), "loaded"]
    assert rows.nth(1).locator("td").nth(4).inner_text() == "32"
    page.wait_for_function("Number(document.querySelector('#ov-queue').textContent) >= 0")
    page.wait_for_function("document.querySelector('#ov-cache').textContent.endsWith('%')")
    assert float(page.inner_text("#ov-cache").rstrip("%")) > 0
    assert "entries" in page.inner_text("#ov-cache-size")
    screenshot_to(page, "overview")


def test_connect_copies_the_printed_value_and_checks_as_dify_would(server: tuple[str, str], open_page) -> None:
    url, printed = server
    page = open_page(f"{url}/#connect").page
    page.wait_for_selector("#cn-ways .way table")
    way = page.locator(".way", has_text="on this host, not in Docker")
    for row in way.locator("tbody tr").all():
        cells = [cell.inner_text() for cell in row.locator("td").all()[:4]]
        assert re.search(rf"{cells[0]} {re.escape(cells[1])} +{cells[2]} +{re.escape(cells[3])}\n", printed), cells
    plugin_row = way.locator("tbody tr").first
    plugin_row.locator("button.copy").click()
    assert page.evaluate("navigator.clipboard.readText()") == f"{url}" == plugin_row.locator("code").inner_text()
    assert "API key: leave it empty" in page.inner_text("#cn-key")
    page.fill("#cn-model", "minilm-short")
    page.click("#cn-check button[type=submit]")
    page.wait_for_selector("#cn-verdict .verdict")
    assert page.inner_text("#cn-verdict .verdict").startswith("Dify would accept it. OK: rerank-kit server")
    screenshot_to(page, "connect")
    page.fill("#cn-model", "no-such-model")
    page.click("#cn-check button[type=submit]")
    page.wait_for_selector("#cn-verdict .verdict.fail")
    assert "minilm-short" in page.inner_text("#cn-verdict")  # the plugin's error names the served models
    page.fill("#cn-url", "http://example.com:8086")
    page.click("#cn-check button[type=submit]")
    page.wait_for_selector("#cn-verdict .verdict.fail")
    assert "not an address of this server" in page.inner_text("#cn-verdict")


def test_try_ranks_and_scores_as_the_api_does(server: tuple[str, str], open_page) -> None:
    url, _ = server
    page = open_page(f"{url}/").page
    rerank_in_page(page, "\n".join(DOCUMENTS))
    expected = ranked_by_api(url, "minilm")
    assert ranked_in_page(page) == expected
    moves = [item.inner_text() for item in page.locator("li.doc .move").all()]
    assert moves == [_move(index, rank) for rank, (index, _) in enumerate(expected)]
    above = sum(score >= 0.5 for _, score in expected)
    items = page.locator(".ranked > li").all()
    if 0 < above < len(expected):  # the threshold line sits where Dify's score_threshold cuts
        assert items[above].get_attribute("class") == "threshold"
    screenshot_to(page, "try")
    curls = [block.inner_text() for block in page.locator(".curl pre").all()]
    assert [re.search(r" (http\S+) ", c)[1].removeprefix(url) for c in curls] == [
        "/rerank", "/v1/rerank", "/api/v1/rerank", "/v2/rerank", "/api/rerank"]
    for command in curls:  # each curl, sent as it is written, ranks as the page does
        words = shlex.split(command)
        answer = httpx.post(words[2], content=words[words.index("-d") + 1],
                            headers={"Content-Type": "application/json"}).json()
        ranked = answer if isinstance(answer, list) else answer["results"]
        assert [r["index"] for r in ranked] == [index for index, _ in expected], command


def test_try_reads_knowledge_retrieval_objects(server: tuple[str, str], open_page) -> None:
    url, _ = server
    page = open_page(f"{url}/").page
    objects = [{"content": text, "title": f"doc {i}", "metadata": {"score": 0.1}} for i, text in enumerate(DOCUMENTS)]
    rerank_in_page(page, json.dumps(objects))
    assert ranked_in_page(page) == ranked_by_api(url, "minilm")


def test_compare_shows_both_models_and_their_agreement(server: tuple[str, str], open_page) -> None:
    url, _ = server
    page = open_page(f"{url}/").page
    page.click("#tab-try")
    page.check("#try-compare")
    page.select_option("#b-model", "minilm-short")
    page.fill("#try-k", "2")
    rerank_in_page(page, "\n".join(DOCUMENTS))
    page.wait_for_selector(".column >> nth=1")
    titles = [title.inner_text() for title in page.locator(".column h3").all()]
    assert titles == ["A: minilm", "B: minilm-short"]
    a, b = ranked_by_api(url, "minilm"), ranked_by_api(url, "minilm-short")
    assert ranked_in_page(page, 0) == a and ranked_in_page(page, 1) == b
    overlap = len({i for i, _ in a[:2]} & {i for i, _ in b[:2]})
    assert page.inner_text("[data-metric=overlap]") == f"top-2 overlap: {overlap} of 2"
    rank_b = {index: rank for rank, (index, _) in enumerate(b)}
    d2 = sum((rank - rank_b[index]) ** 2 for rank, (index, _) in enumerate(a))
    assert page.inner_text("[data-metric=spearman]") == f"Spearman ρ {1 - 6 * d2 / (5 * 24):.3f}"
    screenshot_to(page, "compare")


def test_the_threshold_view_shows_the_scores_the_api_returned(server: tuple[str, str], open_page) -> None:
    url, _ = server
    scores = [score for i in range(6) for _, score in ranked_by_api(url, "minilm-b", [f"{d} ({i})" for d in DOCUMENTS])]
    scores += [score for _, score in ranked_by_api(url, "minilm-b", raw_scores=True)]  # logits: not in the sketch
    scores = scores[:-len(DOCUMENTS)]
    page = open_page(f"{url}/#thresholds").page
    page.wait_for_selector("#th-model option[value=minilm-b]", state="attached")
    page.select_option("#th-model", "minilm-b")
    page.fill("#th-x", "0.5")
    page.wait_for_selector("[data-keeps]")
    assert page.inner_text("#th-count").startswith(f"The last {len(scores)} scores minilm-b returned")
    p50 = page.inner_text("[data-percentile=p50]")
    assert p50 == f"{np.percentile(scores, 50):.4f}"
    kept = sum(score >= 0.5 for score in scores)
    assert float(page.get_attribute("[data-keeps]", "data-keeps")) == round(kept / len(scores), 6)
    assert f"({kept} of the last {len(scores)})" in page.inner_text("#th-keeps")
    assert "similarity_threshold applies to the blend" in page.inner_text("#thresholds .note")
    assert "docs/tuning.md" in page.inner_text("#thresholds .note")
    screenshot_to(page, "thresholds")


def test_a_document_with_markup_stays_text(server: tuple[str, str], open_page) -> None:
    url, _ = server
    watched: Watched = open_page(f"{url}/")
    attacks = ['<img src=x onerror="window.pwned=1">', "<script>window.pwned=2</script>", "Paris <b>bold</b>"]
    rerank_in_page(watched.page, "\n".join(attacks))
    texts = {item.inner_text() for item in watched.page.locator("li.doc .text").all()}
    assert texts == set(attacks)
    assert watched.page.evaluate("window.pwned") is None
    assert watched.page.locator("#try-results img, #try-results script, #try-results b").count() == 0
    assert not [u for _, u, _ in watched.requests if u.endswith("/x")]  # the img never loaded


def test_the_tabs_work_from_the_keyboard(server: tuple[str, str], open_page) -> None:
    url, _ = server
    page = open_page(f"{url}/").page
    page.wait_for_selector("#ov-models tbody tr")
    page.focus("#tab-overview")
    page.keyboard.press("ArrowRight")
    assert page.evaluate("document.activeElement.id") == "tab-connect"
    assert page.get_attribute("#tab-connect", "aria-selected") == "true" and page.is_visible("#connect")
    page.keyboard.press("End")
    assert page.is_visible("#thresholds") and not page.is_visible("#connect")
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("Tab")  # into the panel, then to the form
    page.focus("#try-query")
    page.keyboard.press("Enter")  # submits the form
    page.wait_for_selector("#try-results li.doc")


def _move(index: int, rank: int) -> str:
    by = index - rank
    return "=" if by == 0 else f"{'▲' if by > 0 else '▼'}{abs(by)}"
