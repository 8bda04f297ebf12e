#!/usr/bin/env bash
# Install what the end-to-end tests need from Debian: the headless browser they drive
# (`chromium` and `chromium-driver`, no browser download by selenium or Playwright), and the tools
# the store app's test checks a shipping label with (`poppler-utils` for pdftotext, `zbar-tools`
# for zbarimg, which decodes the Code 128 barcode). Does nothing when all are already there.
# Needs root or sudo; prints what to do otherwise and exits 0, so the browser test then skips
# with the same advice instead of failing the whole `make test`.
set -euo pipefail
have() { command -v "$1" >/dev/null 2>&1; }
if { have chromium || have chromium-browser; } && { have chromedriver || [[ -x /usr/bin/chromedriver ]]; } \
  && have pdftotext && have zbarimg; then
  exit 0
fi
if ! have apt-get; then
  echo "install-browser: no apt-get here; install chromium, its chromedriver, pdftotext and zbarimg by hand" \
    "(the browser test skips until then)" >&2
  exit 0
fi
SUDO=
if [[ $(id -u) != 0 ]]; then
  if have sudo && sudo -n true 2>/dev/null; then SUDO=sudo; else
    echo "install-browser: run \`sudo apt-get install -y chromium chromium-driver poppler-utils zbar-tools\`" \
      "(the browser test skips until then)" >&2
    exit 0
  fi
fi
echo "install-browser: apt-get install -y chromium chromium-driver poppler-utils zbar-tools ..."
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
  chromium chromium-driver poppler-utils zbar-tools >/dev/null
echo "install-browser: $(chromium --version 2>/dev/null || true), $(chromedriver --version 2>/dev/null | head -1 || true)," \
  "$(pdftotext -v 2>&1 | head -1 || true), $(zbarimg --version 2>/dev/null || true)"
