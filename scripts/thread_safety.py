#!/usr/bin/env python3
"""Clang's thread-safety analysis over barge's locking code.

barge builds with g++, which ignores ABSL_GUARDED_BY and friends. This runs clang++ -fsyntax-only
-Wthread-safety on every translation unit of a build's compile_commands.json that uses
absl::Mutex (itself or a project header it includes), so a member read without the lock it is guarded by fails
the check. Usage: scripts/thread_safety.py BUILD_DIR  (exit 1 on a finding, 2 on a setup error).
"""
import concurrent.futures
import functools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys


INCLUDE = re.compile(r'^#include "([^"]+)"', re.M)


@functools.lru_cache(maxsize=None)
def text_of(path):
    """The file's text, read once however many sources include it ("" if there is none)."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def uses_mutex(source, src_dir):
    """Whether the file or a project header it includes names absl::Mutex."""
    text = text_of(source)
    return "absl::Mutex" in text or any(
        "absl::Mutex" in text_of(os.path.join(src_dir, h)) for h in INCLUDE.findall(text))


def clang_command(entry, clang):
    args = shlex.split(entry["command"]) if "command" in entry else list(entry["arguments"])
    out, skip = [clang], False
    for a in args[1:]:
        if skip:
            skip = False
        elif a in ("-o", "-MF", "-MT", "-MQ"):
            skip = True
        elif a == "-MD" or re.fullmatch(r"(ccache|c\+\+|g\+\+)(-[0-9.]+)?", os.path.basename(a)):
            continue
        elif a.startswith("-W") or a.startswith("-f") and "lto" in a:
            continue  # g++'s warning set and link-time flags are not clang's business here
        else:
            out.append(a)
    return out + ["-fsyntax-only", "-Wno-everything", "-Wthread-safety", "-Werror=thread-safety",
                  "-ferror-limit=0"]


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    clang = shutil.which("clang++-14") or shutil.which("clang++")
    if clang is None:
        print("thread_safety: clang++ is not installed (Debian package clang-14)", file=sys.stderr)
        return 2
    with open(os.path.join(sys.argv[1], "compile_commands.json"), encoding="utf-8") as f:
        entries = [e for e in json.load(f) if "/src/" in e["file"]]
    if not entries:
        print("thread_safety: no barge sources in the compile database", file=sys.stderr)
        return 2
    src_dir = entries[0]["file"][: entries[0]["file"].rindex("/src/") + len("/src/")]
    entries = [e for e in entries if uses_mutex(e["file"], src_dir)]
    if len(entries) < 10:  # the store, worker, server, engine and objstore lock: a setup error
        print(f"thread_safety: only {len(entries)} files use absl::Mutex", file=sys.stderr)
        return 2

    def check(entry):
        r = subprocess.run(clang_command(entry, clang), cwd=entry["directory"],
                           capture_output=True, text=True)
        return entry["file"], r.returncode, r.stderr

    failed = 0
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        for path, code, err in pool.map(check, entries):
            if code != 0:
                failed += 1
                sys.stderr.write(err)
    print(f"thread_safety: {len(entries)} files with absl::Mutex checked, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
