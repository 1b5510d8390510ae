#!/usr/bin/env python3
"""Runs every command of README.md as written, in a fresh copy of the project.

A newcomer pastes the README's commands into a shell; this does the same and
fails if one of them fails or prints what the README says it should not.

What it runs: every line of every ```sh block, in order, in one copy of the
project (the files git tracks or would track: what a clone has), with the
block's `cd` carried to its next lines. Comment lines are not run, except two
kinds written right after a command, which say what it must do:

    # exits 1            its exit status (0 when not said)
    # prints: TEXT       a line of its stdout matches TEXT, where "…" stands
                         for any text (both may share a line:
                         "# exits 1 and prints: TEXT")

A command also fails when its stderr has a line that begins with "error:",
"error[" or "warning:", as cargo and rustc write them (a newcomer's first
build must be clean; other tools' capitals, libFuzzer's "WARNING:", are
theirs).

Two kinds of command are special:
- `... -- serve ...` runs in the background, as in a second terminal: the
  next commands start once it printed its first line on stdout (the
  credentials, printed once it listens), and at the end it gets SIGINT (the
  README's Ctrl-C) and must exit 0.
- The test command (`cargo test ...`) is not run here: .ci/run runs it as
  its own step. This checks that .ci/run has that exact line.

Usage: .ci/readme-commands.py [--target-dir DIR] [--keep]
  --target-dir DIR  build there (CARGO_TARGET_DIR) instead of the copy's own
                    target/, to reuse what is built: commands still run as
                    written, only where cargo puts its output changes
  --keep            leave the copy in place (its path is printed)
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The longest a command may take: the first one builds everything.
COMMAND_TIMEOUT_S = 45 * 60
# How long `serve` may take to answer SIGINT (it drains what is in flight).
STOP_TIMEOUT_S = 60
DIRECTIVE = re.compile(r"^#\s*(?:exits\s+(\d+))?(?:\s*(?:and|,)?\s*prints:\s?(.*))?$")
BAD_STDERR = re.compile(r"^(error[:\[]|warning:)", re.MULTILINE)


class Command:
    def __init__(self, text, line):
        self.text = text
        self.line = line
        self.status = 0
        self.prints = []

    def is_serve(self):
        return re.search(r"\s--\s+serve(\s|$)", self.text) is not None

    def is_test_command(self):
        return re.match(r"^cargo (test|nextest)\b", self.text) is not None


def sh_blocks(readme):
    """The ```sh blocks of `readme`, as lists of (line number, text)."""
    blocks, current = [], None
    for number, line in enumerate(readme.splitlines(), 1):
        stripped = line.strip()
        if current is None:
            if stripped == "```sh":
                current = []
        elif stripped.startswith("```"):
            blocks.append(current)
            current = None
        else:
            current.append((number, line))
    if current is not None:
        sys.exit(f"README.md: a ```sh block is never closed")
    return blocks


def commands_of(block):
    """A block's commands, with what the comments after each demand."""
    commands, pending = [], ""
    for number, line in block:
        text = line.strip()
        if not text:
            continue
        if text.startswith("#"):
            directive = DIRECTIVE.match(text)
            if commands and directive and (directive.group(1) or directive.group(2) is not None):
                if directive.group(1):
                    commands[-1].status = int(directive.group(1))
                if directive.group(2) is not None:
                    commands[-1].prints.append(directive.group(2))
            continue
        if text.endswith("\\"):
            pending += text[:-1] + " "
            continue
        commands.append(Command(pending + text, number))
        pending = ""
    return commands


def pattern_of(text):
    parts = [re.escape(part) for part in text.split("…")]
    return re.compile("^" + ".*".join(parts) + "$")


def fresh_copy(destination):
    """The files a clone of this checkout has (tracked, or new and not
    ignored), with their modification times."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, check=True, capture_output=True,
    ).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = os.path.join(ROOT, name)
        if not os.path.isfile(source):
            continue  # deleted in the working tree
        target = os.path.join(destination, name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(source, target)


def show(label, text, lines=40):
    text = text.rstrip()
    if text:
        tail = text.splitlines()[-lines:]
        print(f"  {label} (last {len(tail)} lines):")
        for line in tail:
            print(f"    {line}")


def check_output(command, status, stdout, stderr):
    """What is wrong with a finished command, or None."""
    if status != command.status:
        return f"exit status {status}, the README expects {command.status}"
    bad = BAD_STDERR.search(stderr)
    if bad:
        line = stderr[bad.start():].splitlines()[0]
        return f"stderr has {line!r}"
    lines = stdout.splitlines()
    for expected in command.prints:
        pattern = pattern_of(expected)
        if not any(pattern.match(line) for line in lines):
            return f"no line of stdout matches {expected!r}"
    return None


def first_line(text):
    lines = text.strip().splitlines()
    return lines[0] if lines else "(nothing)"


def run(command, cwd, env):
    started = time.monotonic()
    try:
        done = subprocess.run(
            ["bash", "-o", "pipefail", "-c", command.text],
            cwd=cwd, env=env, capture_output=True, text=True,
            timeout=COMMAND_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as e:
        return None, f"did not end within {COMMAND_TIMEOUT_S} s", e.stdout or "", e.stderr or ""
    return done.returncode, time.monotonic() - started, done.stdout, done.stderr


class Background:
    """A command left running, as in a second terminal."""

    def __init__(self, command, cwd, env, logs):
        self.command = command
        self.stdout_path = os.path.join(logs, f"serve-{command.line}.out")
        self.stderr_path = os.path.join(logs, f"serve-{command.line}.err")
        self.process = subprocess.Popen(
            ["bash", "-c", f"exec {command.text}"],
            cwd=cwd, env=env, start_new_session=True,
            stdout=open(self.stdout_path, "w"), stderr=open(self.stderr_path, "w"),
        )

    def output(self):
        with open(self.stdout_path) as out, open(self.stderr_path) as err:
            return out.read(), err.read()

    def wait_for_first_line(self):
        deadline = time.monotonic() + COMMAND_TIMEOUT_S
        while time.monotonic() < deadline:
            stdout, _ = self.output()
            if "\n" in stdout:
                return None
            if self.process.poll() is not None:
                return f"exited with {self.process.returncode} before printing a line"
            time.sleep(0.2)
        return f"printed no line within {COMMAND_TIMEOUT_S} s"

    def interrupt(self):
        """Ctrl-C, as a terminal sends it: SIGINT to the process group."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
        try:
            status = self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            return None
        return status


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target-dir")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    with open(os.path.join(ROOT, ".ci", "run")) as f:
        ci_lines = {line.strip() for line in f}
    blocks = [commands_of(block) for block in sh_blocks(readme)]
    if not any(blocks):
        sys.exit("README.md has no ```sh commands")

    workdir = tempfile.mkdtemp(prefix="mcp-engine-readme-")
    copy = os.path.join(workdir, "mcp-engine")
    logs = os.path.join(workdir, "logs")
    os.makedirs(logs)
    fresh_copy(copy)
    env = dict(os.environ)
    env.pop("CARGO_TARGET_DIR", None)
    if args.target_dir:
        env["CARGO_TARGET_DIR"] = os.path.abspath(args.target_dir)
    print(f"a fresh copy of the project in {copy}")

    failures, background, report = [], [], []
    try:
        for commands in blocks:
            cwd = copy
            for command in commands:
                label = f"README.md:{command.line}: {command.text}"
                if command.is_test_command():
                    if command.text in ci_lines:
                        report.append((label, "run by .ci/run as its own step"))
                        continue
                    failures.append((label, ".ci/run does not run this test command"))
                    continue
                cd = re.fullmatch(r"cd\s+(\S+)", command.text)
                if cd:
                    cwd = os.path.normpath(os.path.join(cwd, cd.group(1)))
                    if not os.path.isdir(cwd):
                        failures.append((label, f"no directory {cwd}"))
                        break
                    report.append((label, "(changes directory)"))
                    continue
                print(f"\n$ {command.text}", flush=True)
                if command.is_serve():
                    server = Background(command, cwd, env, logs)
                    problem = server.wait_for_first_line()
                    stdout, stderr = server.output()
                    if problem:
                        show("stderr", stderr)
                        failures.append((label, problem))
                        server.interrupt()
                        break
                    background.append(server)
                    report.append((label, "(in the background) " + first_line(stdout)))
                    print(f"  running; printed {first_line(stdout)[:120]}")
                    continue
                status, took, stdout, stderr = run(command, cwd, env)
                problem = took if status is None else check_output(command, status, stdout, stderr)
                if problem:
                    show("stdout", stdout)
                    show("stderr", stderr)
                    failures.append((label, problem))
                    print(f"  FAILED: {problem}")
                    continue
                report.append((label, f"exit {status} in {took:.0f} s; " + first_line(stdout)))
                print(f"  ok, exit {status} in {took:.0f} s: {first_line(stdout)[:120]}")
    finally:
        for server in background:
            label = f"README.md:{server.command.line}: {server.command.text}"
            status = server.interrupt()
            stdout, stderr = server.output()
            if status != 0:
                show("stderr", stderr)
                failures.append((label, f"Ctrl-C: exit status {status}, the README says 0"))
            else:
                report.append((label, "Ctrl-C: exit 0"))
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    print("\nEvery README command, as run:")
    for label, what in report:
        print(f"- {label}\n    {what[:200]}")
    if failures:
        print("\nFailed:")
        for label, problem in failures:
            print(f"- {label}\n    {problem}")
        sys.exit(1)
    print(f"\nall {len(report)} README commands did what the README says")


if __name__ == "__main__":
    main()
