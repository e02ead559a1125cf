"""Drives the admin page (admin/index.html + app.js) in headless Chromium against the live local stack.

Needs the `live_stack` fixture (tests/e2e/conftest.py): base_url, token(staff_id, roles), create_ticket(text, source).
"""

from __future__ import annotations

import os
import re
import time

import pytest

pytestmark = pytest.mark.browser

sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = os.environ.get("KEFU_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = "/tmp/kefu-admin.png"
TIMEOUT_MS = 15_000
# CI runs this beside the rest of the suite on two cores: give every assertion the page timeout,
# not Playwright's 5-second default for `expect`.
sync_api.expect.set_options(timeout=TIMEOUT_MS)

CUSTOMER_TEXT = "你好，我的订单三天了还没发货，请帮我查一下物流。"
REPLY_TEXT = "您好，已为您催促仓库，今天内会发货，请留意物流短信。"


@pytest.fixture
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM}")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser, live_stack, request):
    context = browser.new_context(viewport={"width": 1440, "height": 900}, locale="zh-CN")
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.js_errors = errors  # type: ignore[attr-defined]
    calls: list[str] = []
    started: dict[object, float] = {}
    pg.on("request", lambda r: started.__setitem__(r, time.monotonic()))
    pg.on(
        "requestfinished",
        lambda r: calls.append(f"{r.method} {r.url} {time.monotonic() - started.pop(r, time.monotonic()):.2f}s"),
    )
    pg.on("requestfailed", lambda r: calls.append(f"{r.method} {r.url} FAILED {r.failure}"))
    pg.on("response", lambda r: r.status >= 400 and calls.append(f"{r.request.method} {r.url} -> {r.status}"))
    try:
        yield pg
    finally:
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            action_error = pg.get_by_test_id("action-error").text_content(timeout=1000)
            print("action-error:", action_error)
            print("requests (method url seconds):", *calls[-40:], sep="\n  ")
            print("stack log tail:\n" + live_stack.log_path.read_text(errors="replace")[-4000:])
        context.close()


def _sign_in(page, base_url: str, token: str) -> None:
    page.goto(base_url + "/admin/")
    page.get_by_test_id("token-input").fill(token)
    page.get_by_test_id("signin-button").click()


def _timeline_actions(page) -> list[str]:
    return page.get_by_test_id("timeline-item").evaluate_all("els => els.map(e => e.dataset.action)")


def _wait_for_timeline(page, pattern: str) -> None:
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        if any(re.search(pattern, a or "") for a in _timeline_actions(page)):
            return
        page.wait_for_timeout(150)
    raise AssertionError(f"no timeline entry matching {pattern!r}; have {_timeline_actions(page)}")


def test_bad_token_shows_sign_in_error(live_stack, page):
    _sign_in(page, live_stack.base_url, "not-a-valid-token")
    error = page.get_by_test_id("signin-error")
    sync_api.expect(error).to_be_visible()
    sync_api.expect(error).to_contain_text("令牌无效")
    sync_api.expect(page.get_by_test_id("app-view")).to_be_hidden()
    assert page.evaluate("sessionStorage.length") == 0
    assert not page.js_errors


def test_agent_acknowledges_replies_and_resolves(live_stack, page):
    expect = sync_api.expect
    ticket_id = live_stack.create_ticket(CUSTOMER_TEXT, source="app")
    token = live_stack.token("agent1", ["agent"])

    _sign_in(page, live_stack.base_url, token)
    expect(page.get_by_test_id("app-view")).to_be_visible()
    expect(page.get_by_test_id("whoami-meta")).to_contain_text("agent1")

    # The new ticket is listed (refresh by hand if intake lands after the first load).
    row = page.locator(f'[data-testid="ticket-row"][data-ticket-id="{ticket_id}"]')
    deadline = time.monotonic() + 30
    while not row.is_visible():
        assert time.monotonic() < deadline, f"ticket {ticket_id} never listed"
        page.wait_for_timeout(1000)
        if not row.is_visible():
            page.get_by_test_id("refresh-list").click()
    expect(row).to_contain_text(ticket_id)

    # Open it: the customer's Chinese message is shown as an inbound message.
    row.click()
    expect(row).to_have_attribute("aria-selected", "true")
    detail = page.get_by_test_id("detail-panel")
    expect(page.get_by_test_id("detail-id")).to_have_text(ticket_id)
    inbound = detail.locator('[data-testid="message"][data-direction="in"]')
    expect(inbound.first).to_contain_text(CUSTOMER_TEXT)

    # 接单 Acknowledge.
    ack = page.get_by_test_id("action-ack")
    expect(ack).to_be_enabled()
    ack.click()
    expect(page.get_by_test_id("action-error")).to_be_hidden()
    _wait_for_timeline(page, r"^ack")

    # 回复 Reply in Chinese: it appears as an outbound message with a delivery state.
    page.get_by_test_id("reply-text").fill(REPLY_TEXT)
    page.get_by_test_id("action-reply").click()
    outbound = detail.locator('[data-testid="message"][data-direction="out"]')
    expect(outbound.filter(has_text=REPLY_TEXT)).to_have_count(1)
    expect(outbound.filter(has_text=REPLY_TEXT).get_by_test_id("message-delivery")).to_be_visible()
    expect(page.get_by_test_id("reply-text")).to_have_value("")
    _wait_for_timeline(page, r"^repl")

    # 解决 Resolve.
    page.get_by_test_id("action-resolve").click()
    status = page.get_by_test_id("detail-status")
    expect(status).to_have_attribute("data-status", "resolved")
    expect(status).to_contain_text("已解决")
    expect(page.get_by_test_id("action-error")).to_be_hidden()
    _wait_for_timeline(page, r"^resol")
    expect(page.get_by_test_id("action-reopen")).to_be_enabled()
    expect(page.get_by_test_id("action-resolve")).to_be_disabled()

    # The list row follows (it is refreshed after each action) and stays selected.
    expect(row).to_have_attribute("data-status", "resolved")
    expect(row).to_have_attribute("aria-selected", "true")

    actions = _timeline_actions(page)
    for pattern in (r"^ack", r"^repl", r"^resol"):
        assert any(re.search(pattern, a or "") for a in actions), (pattern, actions)

    page.screenshot(path=SCREENSHOT, full_page=False)
    assert not page.js_errors, page.js_errors


def test_supervisor_assigns_from_staff_directory(live_stack, page):
    expect = sync_api.expect
    ticket_id = live_stack.create_ticket("请问会员积分什么时候到账？", source="app")
    _sign_in(page, live_stack.base_url, live_stack.token("supervisor1", ["supervisor"]))
    expect(page.get_by_test_id("whoami-meta")).to_contain_text("supervisor1")

    # Deep link by hash: the detail opens without clicking the list.
    page.goto(f"{live_stack.base_url}/admin/#/tickets/{ticket_id}")
    expect(page.get_by_test_id("detail-id")).to_have_text(ticket_id)

    select = page.get_by_test_id("assign-select")
    expect(select.locator('option[value="agent1"]')).to_have_count(1)
    select.select_option("agent1")
    page.get_by_test_id("action-assign").click()
    expect(page.get_by_test_id("meta-assignee")).to_have_text("agent1")
    expect(page.get_by_test_id("action-error")).to_be_hidden()
    _wait_for_timeline(page, r"^assign")

    # An internal note is shown apart from the conversation.
    page.get_by_test_id("tab-note").click()
    page.get_by_test_id("note-text").fill("VIP 客户，优先处理")
    page.get_by_test_id("action-note").click()
    expect(page.get_by_test_id("note").filter(has_text="VIP 客户，优先处理")).to_have_count(1)
    expect(page.get_by_test_id("conversation")).not_to_contain_text("VIP 客户，优先处理")

    # Signing out forgets the token.
    page.get_by_test_id("signout-button").click()
    expect(page.get_by_test_id("signin-view")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0
    assert not page.js_errors, page.js_errors
