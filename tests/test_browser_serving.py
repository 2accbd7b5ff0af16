"""The lookup page in a real headless browser (Playwright driving Debian's chromium): log in, search, open a
patient, see the tier colour and the trend chart with its thresholds, switch to English."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from risk.serving.api import create_app
from risk.serving.auth import add_user, set_password
from risk.serving.demo import write_demo_run
from risk.serving.publish import publish_run
from risk.serving.store import open_store

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.filterwarnings("ignore:RISK_ID_KEY")]

CHROMIUM = os.environ.get("RISK_BROWSER_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _need_browser() -> None:
    problem = None
    if not Path(CHROMIUM).exists():
        problem = f"{CHROMIUM} not installed (bash .ci/services.sh installs it)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "playwright is not installed"
    if problem:
        if os.environ.get("RISK_REQUIRE_BROWSER") == "1":
            pytest.fail(problem)
        pytest.skip(problem)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[dict]:
    _need_browser()
    import uvicorn

    run = write_demo_run(tmp_path / "run", persons=240, seed=11)
    store = str(tmp_path / "store.db")
    publish_run(run, store)
    engine = open_store(store)
    token = add_user(engine, "doctor-li", "team", team_id="TEAM000")
    set_password(engine, "doctor-li", "li-correct-horse")
    engine.dispose()
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(store), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield {"url": f"http://127.0.0.1:{port}", "token": token, "run": run, "store": store}
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_log_in_search_open_patient_and_see_colour_and_chart(served: dict, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    tiers = pd.read_parquet(served["run"] / "tiers.parquet")
    persons = pd.read_parquet(served["run"] / "canonical" / "persons.parquet")
    team = persons.merge(tiers, on="person_id")
    team = team[team["team_id"] == "TEAM000"]
    # A red patient in the doctor's team, searched by full name (unique within the team).
    unique_names = team.groupby("name").filter(lambda g: len(g) == 1)
    target = unique_names[unique_names["tier"] == "red"].iloc[0]

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 1500})
            page.goto(served["url"] + "/")
            expect(page.locator("h1")).to_have_text("慢病风险分层查询")  # Chinese by default

            page.fill("#username", "doctor-li")
            page.fill("#password", "wrong-password")
            page.click("#login-form button")
            expect(page.locator("#login-error")).to_have_text("用户名或密码不对")

            page.fill("#username", "doctor-li")
            page.fill("#password", "li-correct-horse")
            page.click("#login-form button")
            expect(page.locator("#workspace")).to_be_visible()
            expect(page.locator("#team-list tr.row").first).to_be_visible()
            assert page.locator("#team-list tr.row").count() == len(team)

            page.fill("#search", str(target["name"]))
            page.click("#search-form button")
            result = page.locator(f"#results li[data-person='{target['person_id']}']")
            expect(result).to_be_visible()
            result.click()

            card = page.locator("#patient")
            expect(card).to_be_visible()
            expect(card).to_have_class("card tier-red")
            assert card.evaluate("el => getComputedStyle(el).borderLeftColor") == "rgb(198, 40, 40)"
            expect(card.locator(".reasons li").first).to_be_visible()
            chart = card.locator("svg#trend-chart")
            expect(chart).to_be_visible()
            thresholds = chart.locator("line.threshold")
            assert sorted(thresholds.evaluate_all("ls => ls.map(l => l.dataset.threshold)")) == [
                "dbp",
                "fpg",
                "sbp",
            ]
            assert chart.locator("polyline.series-sbp").count() == 1
            expect(card.locator("#history tr")).to_have_count(2)  # header + one run
            if target["phone"]:
                expect(card.locator("a.tel")).to_have_attribute("href", f"tel:{target['phone']}")
            assert "_" not in card.inner_text()  # no raw codes (model_raised, rule_only, ...) on the card
            page.screenshot(path=str(tmp_path / "patient-zh.png"), full_page=True)

            page.click("#lang-toggle")
            expect(page.locator("h1")).to_have_text("Chronic-disease risk lookup")
            expect(card.locator(".tier-badge")).to_have_text("Red")
            page.screenshot(path=str(tmp_path / "patient-en.png"), full_page=True)
            shots = os.environ.get("RISK_SCREENSHOT_DIR")
            if shots:
                for name in ("patient-zh.png", "patient-en.png"):
                    Path(shots, name).write_bytes((tmp_path / name).read_bytes())
        finally:
            browser.close()


def test_record_call_results_from_a_phone_width_page(served: dict, tmp_path: Path) -> None:
    """Issue 16: a village doctor on a phone dials from the team list and records results there and on the
    patient card (Chinese first); the results land in the store as `web` results and show in the history."""
    from playwright.sync_api import expect, sync_playwright

    from risk.serving.call_results import results_frame

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
            page.goto(served["url"] + "/")
            page.fill("#username", "doctor-li")  # password login; results go with the session's CSRF token
            page.fill("#password", "li-correct-horse")
            page.click("#login-form button")
            first = page.locator("#team-list tr.row").first
            expect(first).to_be_visible()
            person = first.get_attribute("data-person")
            phone = (
                pd.read_parquet(served["run"] / "canonical" / "persons.parquet")
                .set_index("person_id")
                .loc[person, "phone"]
            )
            assert first.locator("a.tel").get_attribute("href") == f"tel:{phone}"
            assert page.evaluate("document.documentElement.scrollWidth") <= 390 + 1  # no sideways scrolling

            first.locator("button.record").click()
            form = page.locator(f"#team-list form.call-form[data-person='{person}']")
            expect(form).to_be_visible()
            expect(form.locator(".field-call_result span")).to_have_text("呼叫结果")
            form.locator("select[name=result]").select_option("agreed_to_visit")
            expect(form.locator(".field-visit_on")).to_be_visible()
            expect(form.locator(".field-sbp")).to_be_hidden()
            form.locator("input[name=visit_on]").fill("2030-01-05")
            form.locator("button[type=submit]").click()
            expect(form.locator(".call-status")).to_have_text("已记录")
            page.screenshot(path=str(tmp_path / "call-form-team.png"), full_page=True)

            first.click()  # the patient card: history shows the result, a second result with readings
            card = page.locator("#patient")
            expect(card.locator("#call-history li")).to_have_count(1)
            expect(card.locator("a.tel")).to_have_attribute("href", f"tel:{phone}")
            card_form = card.locator("form.call-form")
            card_form.locator("select[name=result]").select_option("visited")
            card_form.locator("input[name=sbp]").fill("128")
            card_form.locator("input[name=dbp]").fill("82")
            card_form.locator("button[type=submit]").click()
            expect(card_form.locator(".call-status")).to_have_text("已记录")
            expect(card.locator("#call-history li")).to_have_count(2)
            page.screenshot(path=str(tmp_path / "call-form-card.png"), full_page=True)
            shots = os.environ.get("RISK_SCREENSHOT_DIR")
            if shots:
                for name in ("call-form-team.png", "call-form-card.png"):
                    Path(shots, name).write_bytes((tmp_path / name).read_bytes())
        finally:
            browser.close()
    engine = open_store(served["store"])
    try:
        stored = results_frame(engine, date.today())
    finally:
        engine.dispose()
    assert stored["person_id"].tolist() == [person, person]
    assert sorted(stored["result_type"]) == ["agreed_to_visit", "visited"]
    assert set(stored["source"]) == {"web"} and stored["sbp"].max() == 128.0


def test_password_login_at_phone_width(served: dict, tmp_path: Path) -> None:
    """A village doctor on a phone: logs in with a password, sees the list, opens a patient, records a visit,
    logs out; the session lives in an HttpOnly cookie the page's script cannot read."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(
                viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True, device_scale_factor=2
            )
            page = context.new_page()
            page.goto(served["url"] + "/")
            page.fill("#username", "doctor-li")
            page.fill("#password", "li-correct-horse")
            page.click("#login-form button")
            expect(page.locator("#workspace")).to_be_visible()
            cookie = next(c for c in context.cookies() if c["name"] == "risk_session")
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
            assert page.evaluate("document.cookie") == ""  # not readable by script
            # nothing overflows the phone's width
            assert page.evaluate("document.documentElement.scrollWidth") <= 390 + 1
            page.locator("#team-list tr.row").first.click()
            card = page.locator("#patient")
            expect(card).to_be_visible()
            # record a visit with readings from the phone (a POST carrying the session's CSRF token)
            form = card.locator("form.call-form")
            form.locator("select[name=result]").select_option("visited")
            form.locator("input[name=sbp]").fill("152")
            form.locator("input[name=dbp]").fill("94")
            form.locator("button[type=submit]").click()
            expect(form.locator(".call-status")).to_have_text("已记录")
            # a search is a POST: it works only with the CSRF token the page got at login
            page.fill("#search", "a")
            page.click("#search-form button")
            expect(page.locator("#search-status")).not_to_have_text("出错了")
            page.screenshot(path=str(tmp_path / "phone.png"), full_page=True)
            shots = os.environ.get("RISK_SCREENSHOT_DIR")
            if shots:
                Path(shots, "phone-login.png").write_bytes((tmp_path / "phone.png").read_bytes())
            person = page.locator("#team-list tr.row").first.get_attribute("data-person")
            calls = page.evaluate(f"fetch('/api/patients/{person}/calls').then(r => r.json())")
            assert any("visited" in str(c.values()) for c in calls["calls"]), calls
            page.click("#logout")
            expect(page.locator("#login")).to_be_visible()
            assert not [c for c in context.cookies() if c["name"] == "risk_session"]
        finally:
            browser.close()
