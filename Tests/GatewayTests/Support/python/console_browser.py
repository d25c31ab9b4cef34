"""Drives the gateway's operator console in a real browser: Debian's Chromium through Playwright.

Usage:
  console_browser.py views --url http://127.0.0.1:PORT --config FILE --broken FILE [--screenshots DIR]
  console_browser.py mtls --url https://127.0.0.1:PORT --cert PEM --key PEM

`views` checks every view against the traffic ConsoleBrowserTests sent (a good client, an expired one, one of
another CA, a revoked one, a plugin's denial), presses the reload button with a broken configuration and then
the original one, and fails on any console error or any request that leaves the admin listener. `mtls` checks
that a browser without the admin client certificate gets no page, and one with it gets the console.
Prints one JSON object; exits 1 with the reason on the first failed check.
"""
import argparse
import json
import os
import shutil
import sys
import time
from urllib.parse import urlparse

from playwright.sync_api import expect, sync_playwright

CHROMIUM = "/usr/bin/chromium"


class CheckFailed(Exception):
    pass


def wait_until(predicate, message, timeout=20.0):
    # Polled from here: the console's Content-Security-Policy forbids evaluating code in the page
    # (wait_for_function), as it should.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise CheckFailed(message)


def check(condition, message):
    if not condition:
        raise CheckFailed(message)


def launch(playwright):
    # As root (CI), Chromium's sandbox cannot start; the page is our own console on loopback.
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    return playwright.chromium.launch(executable_path=CHROMIUM, args=args)


def watch(page, origin, problems, expected=None):
    # `expected`: console errors the test provokes on purpose (Chromium logs every 4xx answer to fetch).
    def on_console(message):
        if message.type == "error":
            if expected and expected[0] and expected[0] in message.text:
                expected[0] = None
                return
            problems.append(f"console error: {message.text}")

    def on_request(request):
        parsed = urlparse(request.url)
        if f"{parsed.scheme}://{parsed.netloc}" != origin:
            problems.append(f"request leaving the admin listener: {request.url}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("request", on_request)
    page.on("requestfailed", lambda request: problems.append(f"request failed: {request.url} {request.failure}"))


def shot(page, directory, name):
    if directory:
        page.screenshot(path=os.path.join(directory, f"console-{name}.png"), full_page=True)


def views(options):
    origin = options.url.rstrip("/")
    problems = []
    checks = []
    expected = [None]
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        watch(page, origin, problems, expected)
        page.goto(origin + "/")

        # Overview: the listener, its four charts with points, its totals.
        listener = page.locator('section.listener[data-listener="console-mtls"]')
        listener.wait_for(timeout=15000)
        check(listener.locator("svg.chart").count() == 4, "four charts on the overview")
        line = listener.locator("polyline").first
        wait_until(lambda: len((line.get_attribute("points") or "").split()) >= 2, "the request chart has a line")
        refused = int(listener.locator('[data-field="refused"]').inner_text().replace(",", ""))
        check(refused == 3 or (options.varied and refused >= 3), f"three refused handshakes on the overview: {refused}")
        check(int(listener.locator('[data-field="requests"]').inner_text().replace(",", "")) >= 5, "five requests on the overview")
        checks.append("overview")
        shot(page, options.screenshots, "overview")

        # Client identities: both verified clients, the denied one with its plugin; search narrows.
        page.click("#tab-clients")
        rows = page.locator("#clients-table tbody tr")
        expect(rows).to_have_count(2, timeout=10000)
        text = page.locator("#clients-table").inner_text()
        check("CN=valid-client,OU=ops,O=Test,C=US" in text, "valid-client is listed")
        denied = page.locator("#clients-table tbody tr", has_text="intermediate-client")
        check(("authz (" if options.varied else "authz (1×)") in denied.inner_text(), "intermediate-client was denied by authz: " + denied.inner_text())
        check(denied.get_attribute("class") == "warn", "a denied client is highlighted")
        shot(page, options.screenshots, "clients")
        page.fill("#client-search", "spiffe://test")
        expect(rows).to_have_count(1, timeout=10000)
        check("valid-client" in rows.first.inner_text(), "the search finds the client with that SAN")
        page.fill("#client-search", "")
        checks.append("clients")

        # Refusals: each reason, the plugin's name.
        page.click("#tab-refusals")
        page.wait_for_selector("#view-refusals table", timeout=10000)
        text = page.locator("#view-refusals").inner_text()
        for reason in ["certificate_expired", "unknown_ca", "certificate_revoked", "plugin_denied"]:
            check(reason in text, f"refusal reason {reason} is shown")
        latest = page.locator("#view-refusals table").nth(1)
        check("authz" in latest.locator("tbody tr", has_text="plugin_denied").first.inner_text(), "the denial names its plugin")
        check("CN=expired-client" in latest.locator("tbody tr", has_text="certificate_expired").first.inner_text(),
              "the expired refusal names the certificate")
        checks.append("refusals")
        shot(page, options.screenshots, "refusals")

        # Expiry: server certificate, CA, CRL, soonest first; the CRL (7 days) below the 30-day warning.
        page.click("#tab-expiry")
        page.wait_for_selector("#view-expiry tbody tr", timeout=10000)
        expiry_rows = page.locator("#view-expiry tbody tr")
        check(expiry_rows.count() == 3, f"three expiring items, got {expiry_rows.count()}")
        kinds = [expiry_rows.nth(i).locator("td").nth(2).inner_text() for i in range(3)]
        check(sorted(kinds) == ["client_ca", "crl", "server_certificate"], f"kinds {kinds}")
        crl = page.locator("#view-expiry tbody tr", has_text="listeners[0].tls.crl[0]")
        check(crl.get_attribute("class") == "warn", "the CRL due within the warning threshold is highlighted")
        checks.append("expiry")
        shot(page, options.screenshots, "expiry")

        # Plugins and backends.
        page.click("#tab-plugins")
        page.wait_for_selector("#view-plugins table", timeout=10000)
        text = page.locator("#view-plugins").inner_text()
        for name in ["client_cert_headers", "audit", "authz", "app"]:
            check(name in text, f"{name} is shown")
        authz = page.locator("#view-plugins tbody tr", has_text="authz")
        cells = [c for c in authz.locator("td").all_inner_texts()]
        check(cells[5] == "1" or (options.varied and int(cells[5].replace(",", "")) >= 1), f"authz denied one request: {cells}")
        checks.append("plugins")
        shot(page, options.screenshots, "plugins")

        # Reloads: a broken configuration shows its key-path errors; the original reloads.
        page.click("#tab-reloads")
        original = open(options.config).read()
        shutil.copyfile(options.broken, options.config)
        try:
            # POST /reload answers 422 for an invalid configuration, which Chromium logs once.
            expected[0] = "status of 422"
            page.click("#reload-button")
            page.wait_for_selector("#reload-errors li", timeout=20000)
            errors = page.locator("#reload-errors").inner_text()
            check("listeners[0].routes[0].backend" in errors, "the reload error names its key path: " + errors)
            page.wait_for_selector("#reload-history tbody tr", timeout=10000)
            shot(page, options.screenshots, "reloads")
        finally:
            with open(options.config, "w") as restored:
                restored.write(original)
        page.click("#reload-button")
        page.wait_for_selector("#reload-result .good", timeout=20000)
        expect(page.locator("#reload-history tbody tr")).to_have_count(2, timeout=10000)
        check("success" in page.locator("#reload-history tbody tr").first.inner_text(), "the newest reload succeeded")
        checks.append("reloads")
        browser.close()
    check(not problems, "; ".join(problems))
    check(expected[0] is None, "the broken reload's 422 was seen")
    return {"checks": checks}


def mtls(options):
    origin = options.url.rstrip("/")
    result = {}
    with sync_playwright() as playwright:
        browser = launch(playwright)
        refused = browser.new_context(ignore_https_errors=True).new_page()
        try:
            refused.goto(origin + "/", timeout=15000)
            content = refused.content()
            check("mtls-gateway" not in content, "a browser without the admin certificate must not get the console")
            result["without_certificate"] = "a page without the console: " + content[:200]
        except CheckFailed:
            raise
        except Exception as error:  # net::ERR_... : the handshake was refused
            result["without_certificate"] = str(error).splitlines()[0]
        context = browser.new_context(ignore_https_errors=True, client_certificates=[
            {"origin": origin, "certPath": options.cert, "keyPath": options.key}])
        page = context.new_page()
        problems = []
        watch(page, origin, problems)
        page.goto(origin + "/", timeout=15000)
        page.locator("section.listener").first.wait_for(timeout=15000)
        result["with_certificate"] = page.title()
        browser.close()
    check(not problems, "; ".join(problems))
    return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["views", "mtls"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--config")
    parser.add_argument("--broken")
    parser.add_argument("--screenshots")
    parser.add_argument("--varied", action="store_true", help="more traffic than the test's own was sent: counts are at least")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    options = parser.parse_args()
    try:
        result = views(options) if options.mode == "views" else mtls(options)
    except CheckFailed as failure:
        print(json.dumps({"ok": False, "failure": str(failure)}))
        sys.exit(1)
    result["ok"] = True
    print(json.dumps(result))


if __name__ == "__main__":
    main()
