"""The web console (GET /console, src/ecsd/console/, docs/console.md): its static files as served,
and the console itself driven in headless Chromium (Debian's, through Playwright) against a real
``ecsd serve``: sign in, create a server, change its OS and watch the job reach SUCCESS, a change OS
to a fault image showing the job's error code, refusals showing the ECS code.

With ``ECSD_CONSOLE_SCREENSHOTS=<dir>`` the browser tests also save the screenshots of docs/console.md
there (scripts/console_screenshots.py).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re

import httpx
import pytest

from tests import support as s
from tests.procs import Client, Proc, read_json

CHROMIUM = "/usr/bin/chromium"
SHOTS = os.environ.get("ECSD_CONSOLE_SCREENSHOTS")
PASSWORD = "Console-Passw0rd!"
TIMEOUT_MS = 15_000
pytestmark = pytest.mark.slow           # a real `ecsd serve`; the browser tests are marked `browser` too
ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDWrvObh9WwKP6AV+Rm5PEGlSuTPZuKIZoUUx/resIRE vector@ecsd"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    data_dir = str(tmp_path_factory.mktemp("webconsole"))
    proc = Proc.serve(data_dir, env={"ECSD_SIM_DELAY": "0.2", "ECSD_FAULT_IMAGES": "1"})
    try:
        yield {"base": proc.base, "creds": read_json(os.path.join(data_dir, "credentials.json"))}
    finally:
        proc.stop()


# --- the static files (no browser) ------------------------------------------------------------------------

def test_the_page_and_its_files_are_served_with_their_types_and_a_strict_policy(cloud):
    http = httpx.Client(base_url=cloud["base"])
    page = http.get("/console")          # no token: the shell holds no data
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    csp = dict(part.strip().split(" ", 1) for part in page.headers["content-security-policy"].split(";"))
    assert csp["default-src"] == "'none'" and csp["connect-src"] == "'self'" and csp["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in page.headers["content-security-policy"]
    assert "unsafe-eval" not in page.headers["content-security-policy"]
    # The one inline script, the import map, is allowed by its hash, and nothing loads from elsewhere.
    importmap = re.search(r'<script type="importmap">(.*?)</script>', page.text, re.DOTALL).group(1)
    digest = base64.b64encode(hashlib.sha256(importmap.encode()).digest()).decode()
    assert csp["script-src"] == f"'self' 'sha256-{digest}'"
    assert re.findall(r'(?:src|href)="(https?:)?//', page.text) == []
    assert page.headers["x-content-type-options"] == "nosniff"
    expected = {"/console/app.mjs": "text/javascript; charset=utf-8",
                "/console/vendor/preact/preact.mjs": "text/javascript; charset=utf-8",
                "/console/vendor/preact/hooks.mjs": "text/javascript; charset=utf-8",
                "/console/vendor/htm/htm.mjs": "text/javascript; charset=utf-8",
                "/console/console.css": "text/css; charset=utf-8",
                "/console/vendor/pico/pico.min.css": "text/css; charset=utf-8",
                "/console/vendor/preact/LICENSE": "text/plain; charset=utf-8",
                "/console/vendor/htm/LICENSE": "text/plain; charset=utf-8",
                "/console/vendor/pico/LICENSE.md": "text/plain; charset=utf-8"}
    for path, media_type in expected.items():
        r = http.get(path)
        assert (r.status_code, r.headers["content-type"]) == (200, media_type), path
        assert r.headers["cache-control"] == "no-cache" and r.headers["etag"].startswith('"')
    # Revalidation: the same ETag is a 304 without a body; a changed one gets the file.
    etag = http.get("/console/app.mjs").headers["etag"]
    again = http.get("/console/app.mjs", headers={"If-None-Match": etag})
    assert (again.status_code, again.content) == (304, b"")
    assert http.get("/console/app.mjs", headers={"If-None-Match": '"other"'}).status_code == 200
    assert http.head("/console").status_code == 200


def test_an_unknown_file_is_the_ecs_404_and_nothing_outside_the_console_is_reachable(cloud):
    http = httpx.Client(base_url=cloud["base"])
    for path in ("/console/nope.js", "/console/../pyproject.toml", "/console/%2e%2e/http/app.py",
                 "/console/vendor/../../__init__.py", "/console/vendor"):
        r = http.get(path)
        assert r.status_code == 404, path
        s.assert_error(r, 404, "Common.0404")
    assert http.get("/console/").status_code == 200        # the page again


# --- the console in a browser ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed (Debian package chromium; .ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, cloud):
    context = browser.new_context(viewport={"width": 1366, "height": 820}, base_url=cloud["base"])
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    elsewhere: list[str] = []
    page.on("request", lambda req: None if req.url.startswith((cloud["base"] + "/", "data:", "blob:"))
            else elsewhere.append(req.url))
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" and "status of 4" not in msg.text
            else None)
    yield page
    context.close()
    assert errors == [], errors          # no script error, no CSP violation
    assert elsewhere == [], elsewhere    # the token and everything else stay on the same origin


def shot(page, name: str, **kw) -> None:
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), **kw)


def sign_in(page, creds: dict, password: str | None = None) -> None:
    """With the keyboard only: type, Tab to the next field, Enter to submit."""
    page.goto("/console")
    page.get_by_label("Domain").focus()
    for value in (creds["domain_name"], creds["user_name"], password or creds["password"]):
        page.keyboard.type(value)
        page.keyboard.press("Tab")
    page.keyboard.type(creds["project_name"])


def api(cloud) -> Client:
    return Client(cloud["base"], cloud["creds"])


def open_server(page, server_id: str):
    page.goto(f"/console#/servers/{server_id}")
    page.locator("#server-name").wait_for()


def job(page, what: str):
    return page.locator("article.job", has_text=what).first


@pytest.mark.browser
def test_sign_in_create_a_server_change_its_os_and_watch_the_job_succeed(page, cloud):
    creds = cloud["creds"]
    sign_in(page, creds)
    shot(page, "login")
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Servers").wait_for()
    assert page.evaluate("Object.keys(sessionStorage)") == ["ecsd.console.session"]

    page.get_by_role("button", name="Create server").click()
    dialog = page.get_by_role("dialog")
    page.get_by_label("Name", exact=True).wait_for()
    page.keyboard.press("Escape")                      # Escape closes a dialog, the focus goes back
    dialog.wait_for(state="detached")
    assert page.evaluate("document.activeElement.id") == "create-server"
    page.get_by_role("button", name="Create server").click()
    page.get_by_label("Name", exact=True).fill("web-1")
    # The network: an existing server's, else the project's default network in a new VPC id.
    assert re.fullmatch(r"[0-9a-f-]{36}", page.get_by_label("VPC ID").input_value())
    assert re.fullmatch(r"[0-9a-f-]{36}", page.get_by_label("Subnet ID").input_value())
    page.get_by_label("Image", exact=True).select_option(s.UBUNTU)
    dialog.get_by_role("button", name="Create").click()
    # One server: its page, where the job shows its steps until the server is ACTIVE.
    page.locator("#server-name").wait_for()
    created = job(page, "Create web-1")
    created.locator("[data-status=SUCCESS]").wait_for()
    assert created.locator("li.step-done").count() >= 3
    page.locator("#server-name [data-status=ACTIVE]").wait_for()
    server_id = page.locator("#server-details").get_attribute("data-id")
    page.locator("#disk-table").wait_for()
    page.locator("#history details").first.wait_for()
    shot(page, "server-details", full_page=True)

    open_server(page, server_id)
    page.get_by_role("button", name="Reinstall").focus()
    page.keyboard.press("Shift+Tab")                   # to "Change OS", by keyboard: its focus is visible
    assert page.evaluate("[document.activeElement.textContent, getComputedStyle(document.activeElement).outlineStyle]") \
        == ["Change OS", "solid"]
    page.keyboard.press("Enter")
    picker = page.get_by_label("Image", exact=True)
    picker.locator("option").first.wait_for(state="attached")
    offered = picker.locator("option").all_inner_texts()
    # Only what this BIOS server with 1 GB can boot: no UEFI image, no 4 GB Windows, no data-disk image.
    assert any(o.startswith("Standard_Debian_12_latest") for o in offered)
    assert not [o for o in offered if "UEFI" in o or "Windows" in o or "Data_Disk" in o or "pending" in o], offered
    picker.select_option(s.image_id("Standard_Debian_12_latest"))
    page.get_by_label("A password").check()
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    assert page.get_by_label("Stop the server first (withStopServer)").is_checked()
    shot(page, "change-os")
    page.get_by_role("dialog").get_by_role("button", name="Change OS").click()
    changing = job(page, "Change OS to Standard_Debian_12_latest")
    changing.locator("progress").wait_for()               # live while it runs
    changing.locator("li.step").first.wait_for()          # its steps, as they happen
    shot(page, "job-progress")
    changing.locator("[data-status=SUCCESS]").wait_for()
    assert changing.locator("li.step-done").count() >= 3 and changing.locator("li.step-failed").count() == 0
    page.locator("#server-name [data-status=ACTIVE]").wait_for()
    assert "Standard_Debian_12_latest" in page.locator("dl.facts").first.inner_text()
    assert api(cloud).get(f"/v1/{{pid}}/cloudservers/{server_id}").json()["server"]["metadata"]["image_name"] \
        == "Standard_Debian_12_latest"

    page.get_by_role("link", name="Jobs").click()
    page.locator("article.job[data-status=SUCCESS]", has_text="Change OS").wait_for()
    assert page.locator("article.job", has_text="Create web-1").count() == 1
    shot(page, "jobs", full_page=True)


@pytest.mark.browser
def test_a_failing_change_os_shows_the_jobs_error_code(page, cloud):
    server_id = api(cloud).create()[0]
    sign_in(page, cloud["creds"])
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Servers").wait_for()
    open_server(page, server_id)
    page.get_by_role("button", name="Change OS").click()
    page.get_by_label("Image", exact=True).select_option(s.FAULTY_BOOT)
    page.get_by_label("A password").check()
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("dialog").get_by_role("button", name="Change OS").click()
    failed = job(page, "Change OS to Test_Faulty_Image_boot")
    failed.locator("[data-status=FAIL]").wait_for()
    assert failed.locator(".error-code").inner_text() == "Ecs.0226"       # docs/testing-with-ecsd.md
    assert failed.locator("li.step-failed").count() == 1
    page.locator("#server-name [data-status=ERROR]").wait_for()
    shot(page, "job-failed")


@pytest.mark.browser
def test_refusals_show_the_ecs_code_and_key_pairs_serve_a_reinstall(page, cloud):
    sign_in(page, cloud["creds"], password="not-the-password")
    page.keyboard.press("Enter")
    assert page.get_by_role("alert").locator(".error-code").inner_text() == "Common.0013"
    page.get_by_label("Password").fill(cloud["creds"]["password"])
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Servers").wait_for()

    # Key pairs: create one (its private key shown once), a taken name refused in the open dialog, import one.
    page.get_by_role("link", name="Key pairs").click()
    for attempt in range(2):
        page.get_by_role("button", name="Create or import").click()
        page.get_by_label("Name").fill("console-key")
        page.get_by_role("dialog").get_by_role("button", name="Create").click()
        if attempt == 0:
            assert "PRIVATE KEY" in page.get_by_label("Private key").input_value()
            page.get_by_role("button", name="Done").click()
    refusal = page.get_by_role("dialog").get_by_role("alert")
    assert refusal.locator(".error-code").inner_text() == "Ecs.0005"
    assert "already exists" in refusal.inner_text()
    page.keyboard.press("Escape")
    page.get_by_role("dialog").wait_for(state="detached")
    page.get_by_role("button", name="Create or import").click()
    page.get_by_label("Name").fill("imported-key")
    page.get_by_label("Public key to import").fill(ED25519)
    page.get_by_role("dialog").get_by_role("button", name="Import").click()
    page.locator("#keypair-table", has_text="imported-key").wait_for()
    assert page.locator("#keypair-table", has_text="console-key").count() == 1

    server_id = api(cloud).create()[0]
    open_server(page, server_id)
    page.locator("#server-name [data-status=ACTIVE]").wait_for()
    # Change OS of a running server without withStopServer: refused, the dialog stays open with the code.
    page.get_by_role("button", name="Change OS").click()
    page.get_by_label("Image", exact=True).select_option(s.image_id("Standard_Debian_12_latest"))
    page.get_by_label("A password").check()
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Stop the server first (withStopServer)").uncheck()
    page.get_by_role("dialog").get_by_role("button", name="Change OS").click()
    alert = page.get_by_role("dialog").get_by_role("alert")
    assert alert.locator(".error-code").inner_text() == "Ecs.0100"
    assert "stop it first" in alert.inner_text()
    page.keyboard.press("Escape")
    page.get_by_role("dialog").wait_for(state="detached")

    # Reinstall with the imported key pair (stopping the server first): the job succeeds.
    page.get_by_role("button", name="Reinstall").click()
    page.get_by_label("A key pair").check()
    page.get_by_label("Key pair", exact=True).select_option("imported-key")
    page.get_by_role("dialog").get_by_role("button", name="Reinstall").click()
    job(page, "Reinstall OS").locator("[data-status=SUCCESS]").wait_for()
    page.locator("#server-name [data-status=ACTIVE]").wait_for()
    assert api(cloud).get(f"/v1/{{pid}}/cloudservers/{server_id}").json()["server"]["key_name"] == "imported-key"

    page.get_by_role("link", name="Servers", exact=True).click()
    page.locator(f"#server-table tr[data-id='{server_id}'] [data-status=ACTIVE]").wait_for()
    shot(page, "servers")

    # A token the API no longer takes (expired, revoked): the tab is signed out, and told why.
    page.evaluate("""() => { const key = "ecsd.console.session";
        sessionStorage.setItem(key, JSON.stringify({...JSON.parse(sessionStorage.getItem(key)), token: "revoked"})); }""")
    page.reload()
    notice = page.get_by_role("status")
    assert re.match(r"^Common\.\d{4}: ", notice.inner_text()), notice.inner_text()
    assert page.evaluate("sessionStorage.getItem('ecsd.console.session')") is None
