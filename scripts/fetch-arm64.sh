#!/usr/bin/env bash
# Debian's arm64 busybox-static, coreutils and libc6 for the aarch64 tests: fetch-debian.sh arm64.
exec bash "$(dirname "${BASH_SOURCE[0]}")/fetch-debian.sh" arm64
