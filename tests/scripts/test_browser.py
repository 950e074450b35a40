"""scripts/browser.py without a browser: finding Chromium, and the verdict of a page check."""

import pytest

from tests.scripts import load_script

browser = load_script("browser")
BrowserError, PageCheck = browser.BrowserError, browser.PageCheck
find_chromium, main = browser.find_chromium, browser.main


def test_find_chromium_explicit_or_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CHROMIUM", raising=False)
    with pytest.raises(BrowserError, match="apt-get install -y chromium"):
        find_chromium()
    fake = tmp_path / "my-chromium"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert find_chromium(str(fake)) == str(fake)
    monkeypatch.setenv("CHROMIUM", str(fake))
    assert find_chromium() == str(fake)
    # A browser asked for by name that does not exist is an error, not a silent fall-back to another one.
    (tmp_path / "chromium").write_text("#!/bin/sh\n")
    (tmp_path / "chromium").chmod(0o755)
    with pytest.raises(BrowserError, match="missing-browser"):
        find_chromium(str(tmp_path / "missing-browser"))


def test_page_check_verdict():
    assert PageCheck("file:///r.html", media=[{"src": "a.wav", "ready_state": 1, "error": None}]).ok
    assert not PageCheck("u", media=[{"src": "a.wav", "ready_state": 0, "error": None}]).ok
    assert not PageCheck("u", media=[{"src": "a.wav", "ready_state": 4, "error": "4 MEDIA_ERR_SRC_NOT_SUPPORTED"}]).ok
    assert not PageCheck("u", console_errors=["Failed to load resource"]).ok
    assert not PageCheck("u", broken_images=["x.png"]).ok


def test_cli_names_a_missing_page(tmp_path):
    with pytest.raises(SystemExit, match="page not found"):
        main([str(tmp_path / "nope.html")])
