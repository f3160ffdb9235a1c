#!/usr/bin/env bash
# playwright-core (npm, pinned), which the web UI's browser test uses to drive Debian's chromium,
# into .deps/playwright.
exec "$(dirname "$0")/npm_pin.sh" playwright-core 1.65.1 .deps/playwright
