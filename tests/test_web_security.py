"""The dashboard against hostile input and hostile neighbours, without a browser: every answer's
security headers, page data and Evidently's report that a ``</script>`` cannot break out of,
CSRF-protected sign-in and sign-out, sign-out that ends the session on the server, feature pages
for any feature name, a limit on failed sign-ins, and no page that loads from a CDN. (The same
pages in Chromium, hovered, with hostile strings everywhere: tests/test_dashboard.py.)"""

from __future__ import annotations

import html
import json
import re
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from driftwatch.app import create_app
from driftwatch.config import Settings
from tests import factories
from tests.conftest import ADMIN_KEY, sign_in

T0 = factories.T0
SCRIPT = "</script><script>window.__pwned=1</script>"
IMG = "<img src=x onerror=window.__pwned=1>"
SLASHED = "income/month"
FEATURES = [{"name": SCRIPT, "kind": "categorical"}, {"name": IMG, "kind": "numerical"},
            {"name": SLASHED, "kind": "numerical"}]  # fmt: skip


def _values(shift: float) -> Any:
    def features(i: int) -> dict[str, Any]:
        return {SCRIPT: ("CA", SCRIPT, IMG)[i % 3] if shift else ("CA", "NY")[i % 2],
                IMG: i % 40 + shift, SLASHED: (i * 7) % 30 + shift}  # fmt: skip

    return features


@pytest.fixture(scope="module")
def hostile(api: TestClient) -> tuple[str, dict[str, Any]]:
    """A model whose feature names and categorical values are markup, with one run."""
    model = factories.model(api, features=FEATURES)
    model.baseline(factories.baseline_records(60, features=_values(0)))
    model.log(factories.predictions(90, start=T0, step=timedelta(seconds=30),
                                    features=_values(5)))  # fmt: skip
    return model.name, model.run(T0, T0 + timedelta(hours=1))


@pytest.fixture
def browser(settings: Settings, engine: Engine) -> Any:
    """A client of its own app (its own sign-in limiter), not signed in."""
    with TestClient(create_app(settings, engine)) as client:
        yield client


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None, page[:300]
    return found.group(1)


# -- item 1: what traffic sends reaches a page as data; a strict policy on every page ----------


def test_every_answer_has_a_strict_policy_and_cannot_be_framed(
    browser: TestClient, hostile: tuple[str, dict[str, Any]]
) -> None:
    name, _ = hostile
    pages = ["/login"]
    assert sign_in(browser, follow_redirects=False).status_code == 303
    pages += ["/", f"/models/{name}", f"/models/{name}/features/{SLASHED.replace('/', '%2F')}",
              "/alerts", "/deliveries", "/no-such-page", "/api/v1/models", "/healthz"]  # fmt: skip
    for path in pages:
        answer = browser.get(path, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
                             if path.startswith("/api") else {})  # fmt: skip
        policy = answer.headers.get("content-security-policy", "")
        directives = dict(d.strip().split(" ", 1) for d in policy.split(";") if d.strip())
        assert directives.get("script-src") == "'self'", (path, policy)  # no inline script
        assert directives.get("default-src") == "'none'", (path, policy)
        assert directives.get("frame-ancestors") == "'none'", (path, policy)
        assert "http" not in policy, policy  # nothing from another origin
        assert answer.headers.get("x-frame-options") == "DENY", path
        assert answer.headers.get("x-content-type-options") == "nosniff", path


def test_page_data_holding_a_closing_script_tag_stays_data(
    browser: TestClient, hostile: tuple[str, dict[str, Any]]
) -> None:
    name, _ = hostile
    sign_in(browser)
    for path in (f"/models/{name}", f"/models/{name}/features/{SLASHED.replace('/', '%2F')}",
                 "/"):  # fmt: skip
        page = browser.get(path).text
        assert SCRIPT not in page, path
        assert IMG not in page, path
        # one script element of data, closed where the template closes it, that reads back whole
        data = re.search(r'<script type="application/json" id="page-data">(.*?)</script>', page,
                         flags=re.S)  # fmt: skip
        if path != "/":
            assert data is not None
            assert "<" not in data.group(1)
    model = json.loads(re.search(r'id="page-data">(.*?)</script>', browser.get(
        f"/models/{name}").text, flags=re.S).group(1))  # type: ignore[union-attr]  # fmt: skip
    assert model["heatmap"]["features"] == [SCRIPT, IMG, SLASHED]


def test_the_evidently_report_holds_hostile_strings_as_data_in_a_sandbox(
    browser: TestClient, hostile: tuple[str, dict[str, Any]]
) -> None:
    name, run = hostile
    sign_in(browser)
    report = browser.get(f"/models/{name}/evidently", params={"run": run["id"]})
    assert report.status_code == 200, report.text[:500]
    policy = report.headers["content-security-policy"]
    assert "sandbox allow-scripts" in policy
    assert "allow-same-origin" not in policy
    assert "frame-ancestors 'none'" in policy
    assert report.headers["x-frame-options"] == "DENY"
    assert SCRIPT not in report.text
    assert IMG not in report.text
    assert "</script><script>" not in report.text.replace("</script>\n<script>", "")
    # Evidently still shows the real names and values, written as JSON escapes
    escaped = json.dumps(SCRIPT)[1:-1].replace("<", "\\u003c").replace(">", "\\u003e")
    assert escaped in report.text
    assert json.dumps(IMG)[1:-1].replace("<", "\\u003c").replace(">", "\\u003e") in report.text


# -- item 13: sign-in and sign-out forms carry a CSRF token; sign-out ends the session -------


def test_sign_in_from_another_sites_form_is_refused(browser: TestClient) -> None:
    # a form posted from elsewhere has no token, or one of its own page, not this browser's
    forged = browser.post("/login", data={"key": ADMIN_KEY, "next": "/"}, follow_redirects=False)
    assert forged.status_code == 403
    assert "driftwatch_session" not in forged.cookies
    assert "sign in again" in forged.text
    with TestClient(browser.app) as attacker:
        token = _csrf(attacker.get("/login").text)
    browser.cookies.clear()
    browser.get("/login")
    forged = browser.post("/login", data={"key": ADMIN_KEY, "csrf": token}, follow_redirects=False)
    assert forged.status_code == 403
    assert sign_in(browser, follow_redirects=False).status_code == 303


def test_sign_out_needs_the_form_token_and_the_old_cookie_is_refused_after(
    browser: TestClient,
) -> None:
    assert sign_in(browser, follow_redirects=False).status_code == 303
    kept = browser.cookies["driftwatch_session"]
    page = browser.get("/")
    assert page.status_code == 200
    # another site's sign-out form: refused, still signed in
    assert browser.post("/logout", follow_redirects=False).status_code == 403
    assert browser.get("/", follow_redirects=False).status_code == 200
    out = browser.post("/logout", data={"csrf": _csrf(page.text)}, follow_redirects=False)
    assert out.status_code == 303
    assert out.headers["location"] == "/login"
    # the cookie, replayed after signing out, no longer signs in
    with TestClient(browser.app, cookies={"driftwatch_session": kept}) as replay:
        answer = replay.get("/", follow_redirects=False)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/login")


# -- item 15: a feature page for any feature name ----------------------------------------------


def test_a_feature_named_with_a_slash_or_markup_has_its_page(
    api: TestClient, browser: TestClient, hostile: tuple[str, dict[str, Any]]
) -> None:
    name, _ = hostile
    dots = factories.model(api, features=[
        {"name": n, "kind": "numerical"} for n in ("..", ".", "a/../b", "/lead")])  # fmt: skip
    sign_in(browser)
    for model, features in ((name, [SCRIPT, IMG, SLASHED]),
                            (dots.name, ["..", ".", "a/../b", "/lead"])):  # fmt: skip
        model_page = browser.get(f"/models/{model}").text
        links = re.findall(r'<a href="(/models/[^"]+/features?[/?][^"]+)">', model_page)
        assert len(links) == len(features)
        for link, feature in zip(links, features, strict=True):
            # as a browser would resolve it: dot segments of the path removed
            resolved = str(httpx.URL("http://h/").join(link.replace("&amp;", "&")))
            page = browser.get(resolved.removeprefix("http://h"))
            assert page.status_code == 200, (link, page.text[:300])
            shown = re.search(r"<h1>(.*?) <span", page.text)
            assert shown is not None
            assert html.unescape(shown.group(1)) == feature


# -- item 16: failed sign-ins are limited; no page loads from another origin -------------------


def test_failed_sign_ins_from_an_address_are_limited(settings: Settings, engine: Engine) -> None:
    limited = settings.model_copy(update={"login_failures_per_minute": 3})
    with TestClient(create_app(limited, engine)) as client:
        for _ in range(3):
            assert sign_in(client, "dw_guess", follow_redirects=False).status_code == 401
        refused = sign_in(client, "dw_guess", follow_redirects=False)
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert "Too many failed sign-ins" in refused.text
        # while limited, the right key is refused too: the answer tells nothing of the key
        assert sign_in(client, ADMIN_KEY, follow_redirects=False).status_code == 429


def test_a_right_key_does_not_count_as_a_failed_sign_in(settings: Settings, engine: Engine) -> None:
    """Every attempt spends its failure before the key is checked (so attempts at the same
    moment cannot all pass the check), and a right key gives it back."""
    limited = settings.model_copy(update={"login_failures_per_minute": 3})
    with TestClient(create_app(limited, engine)) as client:
        for _ in range(2):
            assert sign_in(client, "dw_guess", follow_redirects=False).status_code == 401
        assert sign_in(client, ADMIN_KEY, follow_redirects=False).status_code == 303
        assert sign_in(client, "dw_guess", follow_redirects=False).status_code == 401
        assert sign_in(client, "dw_guess", follow_redirects=False).status_code == 429


def test_no_page_loads_the_api_docs_from_a_cdn(browser: TestClient) -> None:
    for path in ("/docs", "/redoc"):
        assert browser.get(path).status_code == 404
    assert browser.get("/openapi.json").json()["info"]["title"] == "driftwatch"


def test_an_unexpected_failure_answers_the_error_body_with_the_security_headers(
    settings: Settings, engine: Engine
) -> None:
    """A bug that raises (a route added here stands for it) is answered by Starlette's outermost
    layer, outside the headers middleware: the answer still has the policy, no framing, no
    sniffing, and the documented error body."""
    app = create_app(settings, engine)

    @app.get("/api/v1/boom")
    def boom() -> None:
        raise RuntimeError("a bug")

    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.get("/api/v1/boom")
    assert answer.status_code == 500
    assert answer.json() == {"detail": "internal error: the server failed to answer; it is logged"}
    assert "script-src 'self'" in answer.headers["content-security-policy"]
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["x-content-type-options"] == "nosniff"
