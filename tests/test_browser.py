"""The example's chat room in a real browser: Debian's headless Chromium, driven by playwright.

Needs the ``chromium`` package (``bash .ci/system-deps``) and pip's
``playwright``; its own browser download (``playwright install``) is never used.
"""

from __future__ import annotations


import pytest

from tests.example_servers import ADMIN, ADMIN_PASSWORD, db_with_admin, gunicorn
from tests.support.needs import needs_module, needs_program
from tests.support.servers import CHROMIUM_FLAGS, WAIT_MS

pytestmark = pytest.mark.slow



@pytest.fixture(scope="module")
def server(tmp_path_factory):
    db = db_with_admin(tmp_path_factory)
    with gunicorn(tmp_path_factory.mktemp("browser-logs"), db) as running:
        yield running


@pytest.fixture
async def browser():
    chromium = needs_program("chromium")
    async_playwright = needs_module("playwright.async_api").async_playwright
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium, args=CHROMIUM_FLAGS, chromium_sandbox=False
        )
        try:
            yield browser
        finally:
            await browser.close()


async def open_page(browser, url: str):
    # One context per page: two separate visitors, no shared cookies.
    context = await browser.new_context()
    page = await context.new_page()
    page.set_default_timeout(WAIT_MS)
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    response = await page.goto(url)
    assert response.status == 200
    return page, errors


async def log_in(page, url: str) -> None:
    """Log in through the admin's login form."""
    await page.goto(url + "/admin/login/?next=/admin/")
    await page.fill("#id_username", ADMIN)
    await page.fill("#id_password", ADMIN_PASSWORD)
    await page.click("input[type=submit]")
    await page.wait_for_url(url + "/admin/")


async def test_message_typed_in_one_page_appears_in_the_other(server, browser, tmp_path):
    room_url = server.url + "/chat/lobby/"
    alice, alice_errors = await open_page(browser, server.url + "/")
    await log_in(alice, server.url)
    await alice.goto(room_url)
    bob, bob_errors = await open_page(browser, room_url)
    home, home_errors = await open_page(browser, server.url + "/")
    try:
        for page in (alice, bob):
            await page.wait_for_selector("#status.connected")
        # Bob is in the room once Alice has seen him join.
        await alice.locator("#log .notice.join", has_text="anonymous joined").wait_for()

        await alice.fill("#message", "Hello from Alice")
        await alice.press("#message", "Enter")

        said = bob.locator("#log .message", has_text="Hello from Alice")
        await said.wait_for()
        # Alice logged in through Django: the chat knows her by her username.
        assert await said.locator(".user").text_content() == ADMIN
        assert await said.locator(".text").text_content() == "Hello from Alice"
        # The sender sees it too, through the same broadcast.
        await alice.locator("#log .message", has_text="Hello from Alice").wait_for()
        # And the home page follows the lobby over server-sent events.
        await home.locator("#feed .message", has_text="Hello from Alice").wait_for()
        assert await alice.input_value("#message") == ""

        await bob.fill("#message", "Hi Alice")
        await bob.press("#message", "Enter")
        answer = alice.locator("#log .message", has_text="Hi Alice")
        await answer.wait_for()
        assert await answer.locator(".user").text_content() == "anonymous"
    except Exception:
        await alice.screenshot(path=str(tmp_path / "alice.png"))
        await bob.screenshot(path=str(tmp_path / "bob.png"))
        raise
    assert alice_errors == bob_errors == home_errors == []


async def test_static_css_is_applied(server, browser):
    page, errors = await open_page(browser, server.url + "/chat/styled/")
    header = await page.eval_on_selector(".site-header", "e => getComputedStyle(e).backgroundColor")
    assert header == "rgb(12, 75, 51)"
    display = await page.eval_on_selector(".send", "e => getComputedStyle(e).display")
    assert display == "flex"
    assert errors == []
