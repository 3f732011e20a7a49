#!/usr/bin/env bash
# Installs Debian's chromium for the labelling page's browser tests (Playwright drives it through
# executable_path; `playwright install` is never used: it downloads browsers). Skips quietly where
# chromium is already there, and says why where it cannot install (no apt-get, not root): the browser
# tests then skip with that reason.
set -u
if [ -x /usr/bin/chromium ]; then
    echo "chromium: $(/usr/bin/chromium --version 2>/dev/null | head -1)"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "chromium: not installed (no apt-get on this machine); browser tests will be skipped"
    exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
        echo "chromium: not installed (needs root for apt-get); browser tests will be skipped"
        exit 0
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null && $SUDO apt-get install -y -qq chromium >/dev/null \
    && echo "chromium: installed $(/usr/bin/chromium --version 2>/dev/null | head -1)" \
    || echo "chromium: apt-get install failed; browser tests will be skipped"
exit 0
