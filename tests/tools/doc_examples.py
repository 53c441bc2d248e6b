#!/usr/bin/env python3
"""Runs the examples in the README and docs/: every fenced code block says what it is, and what
can be run is run (tracker issue 23: the docs must not drift from the code).

    doc_examples.py --src DIR --bin DIR [--api URL --broker URI] [--only KIND,...] FILE.md ...

Each fenced block (```) has a marker on the line right before it:

    <!-- doc-example: KIND [ARGS] -->

KIND is one of:
  run [skip="TEXT"] [prepare=FIXTURE] [output-in-doc] [timeout=S] [until-killed] [background]
        A shell script, run by bash (errexit, pipefail) in a scratch directory that looks like a
        checkout: build/ is the build directory, catalogue/, schemas/, tools/, firmware-config/
        link to the source tree; the built programs are on PATH. A transcript (lines starting
        with "$ ") runs only its "$ " lines. The blocks of one file share the scratch directory,
        in order. Before running, the text is rewritten for this test's servers, and only so:
          http://127.0.0.1:8080    -> the test aggregator's API (--api)
          tcp://127.0.0.1:1883     -> the test broker (--broker)
          mosquitto_sub/_pub       -> get -p <test broker port>
          /etc/postwatch, /etc/mosquitto -> under the scratch directory; "sudo " is dropped
        skip="TEXT": lines containing TEXT are not run (say why in the prose: e.g. a chown to a
        user only the package creates). prepare=FIXTURE provides what the prose says comes from
        elsewhere: ministry-ca (a CA key and certificate, ministry-ca.pem/.key, in the scratch
        directory, and the certificate requests earlier blocks wrote under etc/postwatch copied
        there: "send the request to the CA operator"), broker-certs (the ministry CA and a broker
        certificate and key under /etc/mosquitto/ca and /etc/mosquitto/certs), payload (publishes
        one events batch for bamako/doc-1 to the test broker, again each second until a background
        block has captured it as payload.bin, for up to 10 s). background: started and left running;
        at the end of the file it must have exited 0 (within 10 s). output-in-doc: each line the script prints must appear
        verbatim in the same file (a table the doc says the command produces). until-killed: the
        command runs until stopped (mosquitto_sub): after timeout S (default 3) it is killed and
        must have printed something. Exit status must be 0 otherwise.
  generated FILE
        Lines a file written by an earlier run block contains (FILE under the scratch directory,
        rewritten as for run): each line of the block, without its # comment and with spaces
        squeezed, must be a line of FILE.
  agent-config
        A complete agent config (JSON): `postwatch-agent --check-config` must accept it (with the
        catalogue it names beside it).
  agent-config-fragment [stub-commands]
        JSON members to add to the last agent-config of the same file; the result must pass
        --check-config. stub-commands: the absolute paths of scripts[].command[0] (programs on a
        board) are replaced by a stub executable for the check.
  scenario
        A simulator scenario file: `postwatch-sim --list-scenarios` must load it without an error.
  response SCHEMA
        A JSON answer of the API: validated against #/components/schemas/SCHEMA of the served
        OpenAPI description (openapi_check.py's rules: objects closed, nullable allowed).
  options
        Command lines of our own programs (postwatch-*, tools/*, firmware-config/*): every
        --option on a line must appear in that program's --help (tools/run-demo: its own help and
        the simulator's, which it passes options to). Lines of other programs are not checked.
  diagram | output | format | not-run REASON
        Not run: a picture, sample output, a layout description, or an example that cannot run
        here (not-run needs its REASON: root on a board, a package install, minutes of runtime, ...).

A block without a marker, an unknown KIND, or not-run without a reason is an error.
Output: one line per block (file:line kind: ok|skipped|FAILED ...), then a summary line
"N blocks: R run, S not run, F failed". Exit status: 0 all good, 1 a block failed, 2 usage.
"""

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse

MARKER = re.compile(r"^<!--\s*doc-example:\s*(.*?)\s*-->\s*$")
KINDS = {"run", "generated", "agent-config", "agent-config-fragment", "scenario", "response", "options", "diagram", "output",
         "format", "not-run"}
NOT_RUN = {"diagram", "output", "format", "not-run"}


class Block:
    def __init__(self, path, line, fence, text, marker):
        self.path, self.line, self.fence, self.text, self.marker = path, line, fence, text, marker
        self.kind, self.args = None, {}
        self.words = []
        if marker is not None:
            words = shlex.split(marker)
            self.kind = words[0] if words else ""
            self.words = words[1:]
            for w in self.words:
                k, sep, v = w.partition("=")
                self.args[k] = v if sep else True

    def where(self):
        return f"{self.path}:{self.line}"


def read_blocks(path):
    """The fenced blocks of a Markdown file, each with the marker on the line before it."""
    blocks = []
    lines = open(path, encoding="utf-8").read().split("\n")
    i = 0
    while i < len(lines):
        m = re.match(r"^(```+)(.*)$", lines[i])
        if not m:
            i += 1
            continue
        fence, start = m.group(1), i
        j = i + 1
        while j < len(lines) and not lines[j].startswith(fence):
            j += 1
        marker = MARKER.match(lines[i - 1]) if i > 0 else None
        blocks.append(Block(path, start + 1, m.group(2).strip(), "\n".join(lines[i + 1:j]),
                            marker.group(1) if marker else None))
        i = j + 1
    return blocks


def marker_problem(b):
    if b.marker is None:
        return ("no <!-- doc-example: KIND --> marker on the line before this block; say what it is "
                "(see tests/tools/doc_examples.py)")
    if b.kind not in KINDS:
        return f"unknown kind '{b.kind}' (kinds: {', '.join(sorted(KINDS))})"
    if b.kind == "not-run" and not b.words:
        return "not-run needs a reason"
    if b.kind in ("response", "generated") and not b.words:
        return f"{b.kind} needs its argument (see tests/tools/doc_examples.py)"
    return None


class Context:
    def __init__(self, opts):
        self.opts = opts
        self.src = os.path.abspath(opts.src)
        self.bin = os.path.abspath(opts.bin)
        self.scratch = {}  # doc file -> its scratch directory
        self.last_config = {}  # doc file -> the last agent-config block's JSON
        self.help_cache = {}
        self.background = {}  # doc file -> [(block, Popen, log file, script)]

    def programs(self):
        """Where the built programs are: every directory of the build that holds a postwatch-*."""
        dirs = []
        for root, _, files in os.walk(self.bin):
            if "CMakeFiles" in root or "_deps" in root:
                continue
            if any(f.startswith("postwatch-") and os.access(os.path.join(root, f), os.X_OK) for f in files):
                dirs.append(root)
        return dirs

    def env(self):
        env = dict(os.environ)
        env["PATH"] = ":".join(self.programs() + [env.get("PATH", "/usr/bin:/bin")])
        env.setdefault("TOKEN", "doc-example-token")
        env.setdefault("OPERATOR_TOKEN", "doc-example-token")
        return env

    def scratch_for(self, path):
        if path not in self.scratch:
            d = tempfile.mkdtemp(prefix="doc-example-")
            for name in ("catalogue", "schemas", "tools", "firmware-config", "docs"):
                os.symlink(os.path.join(self.src, name), os.path.join(d, name))
            os.symlink(self.bin, os.path.join(d, "build"))
            os.makedirs(os.path.join(d, "etc", "postwatch"))
            os.makedirs(os.path.join(d, "etc", "mosquitto"))
            self.scratch[path] = d
        return self.scratch[path]

    def cleanup(self):
        for d in self.scratch.values():
            shutil.rmtree(d, ignore_errors=True)


def rewrite(text, ctx, scratch):
    """The example's text aimed at this test's servers and scratch directory (see the module doc)."""
    o = ctx.opts
    if o.api:
        text = text.replace("http://127.0.0.1:8080", o.api.rstrip("/"))
    if o.broker:
        text = text.replace("tcp://127.0.0.1:1883", o.broker)
        port = urllib.parse.urlparse(o.broker).port
        if port:
            text = re.sub(r"\b(mosquitto_(?:sub|pub))\b", rf"\1 -p {port}", text)
    text = re.sub(r"(^|[\s;&|(])sudo\s+", r"\1", text)
    text = re.sub(r"(?<![\w/.])/etc/(postwatch|mosquitto)\b", scratch + r"/etc/\1", text)
    return text


def script_of(b):
    lines = b.text.split("\n")
    if any(l.startswith("$ ") for l in lines):
        # A transcript: the commands and their continuation lines, not the output.
        out, cont = [], False
        for l in lines:
            if l.startswith("$ ") or cont:
                cmd = l[2:] if l.startswith("$ ") else l
                out.append(cmd)
                cont = cmd.rstrip().endswith("\\")
        lines = out
    skip = b.args.get("skip")
    if isinstance(skip, str) and skip:
        lines = [l for l in lines if skip not in l]
    return "\n".join(lines)


def check_run(b, ctx):
    scratch = ctx.scratch_for(b.path)
    script = rewrite(script_of(b), ctx, scratch)
    if isinstance(b.args.get("prepare"), str):
        try:
            prepare(b.args["prepare"], scratch, ctx)
        except (ValueError, subprocess.SubprocessError, OSError) as e:
            return f"fixture {b.args['prepare']}: {e}"
    if b.args.get("background"):
        log = open(os.path.join(scratch, f".background-{b.line}.log"), "w+")
        proc = subprocess.Popen(["bash", "-e", "-o", "pipefail", "-c", script], cwd=scratch, env=ctx.env(),
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        ctx.background.setdefault(b.path, []).append((b, proc, log, script))
        return None
    timeout = float(b.args.get("timeout", 3 if b.args.get("until-killed") else 60))
    try:
        p = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=scratch, env=ctx.env(),
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        if b.args.get("until-killed"):
            return None if out.strip() else f"printed nothing in {timeout:g} s"
        return f"did not finish in {timeout:g} s; script:\n{script}"
    if b.args.get("until-killed"):
        return f"ended (exit {p.returncode}) before it was stopped:\n{p.stdout}{p.stderr}"
    if p.returncode != 0:
        return f"exit {p.returncode}; script:\n{script}\noutput:\n{p.stdout}{p.stderr}"
    if b.args.get("output-in-doc"):
        doc = open(b.path, encoding="utf-8").read().split("\n")
        missing = [l for l in p.stdout.split("\n") if l.strip() and l not in doc]
        if missing:
            return (f"{len(missing)} output line(s) not in {b.path} (the doc is stale), first:\n  "
                    + "\n  ".join(missing[:5]))
    return None


def openssl(args, cwd):
    subprocess.run(["openssl"] + args, cwd=cwd, check=True, capture_output=True, timeout=60)


def prepare(name, scratch, ctx):
    """The fixtures of `run prepare=NAME` (see the module doc)."""
    def make_ca(where):
        if not os.path.exists(os.path.join(where, "ministry-ca.pem")):
            openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                     "-keyout", "ministry-ca.key", "-out", "ministry-ca.pem", "-days", "30", "-subj",
                     "/O=Postwatch/CN=doc example CA"], where)
    if name == "ministry-ca":
        make_ca(scratch)
        for root, _, files in os.walk(os.path.join(scratch, "etc")):
            for f in files:
                if f.endswith(".csr"):
                    shutil.copy(os.path.join(root, f), scratch)
    elif name == "broker-certs":
        ca_dir, cert_dir = os.path.join(scratch, "etc", "mosquitto", "ca"), os.path.join(scratch, "etc", "mosquitto",
                                                                                          "certs")
        os.makedirs(ca_dir, exist_ok=True)
        os.makedirs(cert_dir, exist_ok=True)
        make_ca(ca_dir)
        openssl(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
                 os.path.join(cert_dir, "broker.key"), "-out", "broker.csr", "-subj", "/CN=localhost"], ca_dir)
        openssl(["x509", "-req", "-in", "broker.csr", "-CA", "ministry-ca.pem", "-CAkey", "ministry-ca.key",
                 "-CAcreateserial", "-days", "30", "-out", os.path.join(cert_dir, "broker.pem")], ca_dir)
    elif name == "payload":
        batch = {"agent_id": "doc-1", "post_id": "bamako", "sent_at_ms": int(time.time() * 1000),
                 "events": [{"seq": 1, "observed_at_ms": int(time.time() * 1000),
                             "indicator": "terrorism_threat_level", "kind": "Level", "number": 2}]}
        with open(os.path.join(scratch, ".fixture-batch.json"), "w") as f:
            json.dump(batch, f)
        subprocess.run(["flatc", "-b", "-o", ".fixture", "schemas/postwatch_events.fbs", ".fixture-batch.json"],
                       cwd=scratch, check=True, capture_output=True, timeout=30)
        port = str(urllib.parse.urlparse(ctx.opts.broker).port)
        deadline = time.time() + 10
        target = os.path.join(scratch, "payload.bin")
        captured = lambda: os.path.exists(target) and os.path.getsize(target) > 0
        # The background mosquitto_sub may not have subscribed yet (a loaded machine: seen once in
        # four runs), and a message nobody subscribed to is gone: publish again each second until
        # it has one. It exits after the first (-C 1), so the file holds exactly one payload.
        while time.time() < deadline and not captured():
            subprocess.run(["mosquitto_pub", "-p", port, "-q", "1", "-t",
                            "postwatch/v1/sub-saharan-africa/bamako/doc-1/events", "-f",
                            os.path.join(".fixture", ".fixture-batch.pwe")], cwd=scratch, check=True,
                           capture_output=True, timeout=30)
            next_publish = time.time() + 1
            while time.time() < min(deadline, next_publish) and not captured():
                time.sleep(0.1)  # a file another process writes: nothing to wait on but the file itself
        if not os.path.exists(target) or os.path.getsize(target) == 0:
            raise ValueError("payload.bin was not captured within 10 s of publishing a batch")
    else:
        raise ValueError(f"unknown fixture '{name}' (fixtures: ministry-ca, broker-certs, payload)")


def check_generated(b, ctx):
    scratch = ctx.scratch_for(b.path)
    target = rewrite(b.words[0], ctx, scratch)
    path = target if os.path.isabs(target) else os.path.join(scratch, target)
    if not os.path.exists(path):
        return f"{b.words[0]} was not written by the run blocks before this one"
    squeeze = lambda l: " ".join(l.split("#")[0].split())
    have = {squeeze(l) for l in open(path, encoding="utf-8").read().split("\n")}
    missing = [l for l in rewrite(b.text, ctx, scratch).split("\n") if squeeze(l) and squeeze(l) not in have]
    if missing:
        return f"{len(missing)} line(s) not in the generated {b.words[0]}:\n  " + "\n  ".join(missing[:5])
    return None


def run_on_file(name, text, argv, ctx, timeout=30):
    """Writes `text` as `name` in a fresh temporary directory and runs argv(path) there."""
    with tempfile.TemporaryDirectory(prefix="doc-example-") as d:
        path = os.path.join(d, name)
        with open(path, "w") as f:
            f.write(text)
        return subprocess.run(argv(path, d), cwd=d, env=ctx.env(), capture_output=True, text=True, timeout=timeout)


def check_agent_config(b, ctx, config=None):
    if config is None:
        try:
            config = json.loads(b.text)
        except ValueError as e:
            return f"not JSON: {e}"
    catalogue = config.get("catalogue_file", "gbvs.json")

    def argv(path, d):
        if not os.path.isabs(catalogue):
            shutil.copy(os.path.join(ctx.src, "catalogue", "gbvs.json"), os.path.join(d, catalogue))
        return ["postwatch-agent", "--check-config", path]

    p = run_on_file("agent.json", json.dumps(config), argv, ctx)
    if p.returncode != 0:
        return f"postwatch-agent --check-config refused it (exit {p.returncode}): {p.stdout}{p.stderr}"
    return None


def check_agent_config_fragment(b, ctx):
    base = ctx.last_config.get(b.path)
    if base is None:
        return "no agent-config block before this fragment in the same file"
    text = b.text.strip().rstrip(",")
    try:
        fragment = json.loads("{" + text + "}") if not text.startswith("{") else json.loads(text)
    except ValueError as e:
        return f"not JSON members: {e}"
    config = {**base, **fragment}
    stub_dir = None
    if b.args.get("stub-commands"):
        stub_dir = tempfile.mkdtemp(prefix="doc-stub-")
        stub = os.path.join(stub_dir, "stub")
        with open(stub, "w") as f:
            f.write("#!/bin/sh\necho 1\n")
        os.chmod(stub, 0o755)
        for script in config.get("scripts", []):
            if script.get("command") and os.path.isabs(script["command"][0]):
                script["command"][0] = stub
    try:
        return check_agent_config(b, ctx, config)
    finally:
        if stub_dir:
            shutil.rmtree(stub_dir, ignore_errors=True)


def check_scenario(b, ctx):
    p = run_on_file("example.json", b.text, lambda path, d: ["postwatch-sim", "--list-scenarios", "--scenario-dir", d],
                    ctx)
    if p.returncode != 0 or "example.json" in p.stderr:
        return f"postwatch-sim refused it (exit {p.returncode}): {p.stderr.strip()}"
    return None


def python_with_jsonschema():
    # tools/bootstrap installs python3-jsonschema for Debian's interpreter.
    return "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable


def check_response(b, ctx):
    if not ctx.opts.api:
        return "needs --api (the OpenAPI description comes from the running aggregator)"
    checker = os.path.join(os.path.dirname(os.path.abspath(__file__)), "openapi_check.py")
    p = run_on_file("response.json", b.text, lambda path, d: [python_with_jsonschema(), checker, "--base-url",
                                                                ctx.opts.api, "--validate", b.words[0], path],
                    ctx, timeout=60)
    if p.returncode != 0:
        return f"does not match the spec's {b.words[0]}:\n{p.stdout}{p.stderr}"
    return None


def help_text(program, ctx):
    """--help of one of our programs, or None when it is not ours."""
    name = os.path.basename(program)
    if program.startswith(("tools/", "firmware-config/")) and "/" in program:
        cmd = [os.path.join(ctx.src, program)]
    elif program.startswith("build/"):
        cmd = [os.path.join(ctx.bin, program[len("build/"):])]
    elif name.startswith("postwatch-"):
        found = [os.path.join(d, name) for d in ctx.programs() if os.path.exists(os.path.join(d, name))]
        cmd = found[:1] or [name]
    else:
        return None
    key = cmd[0]
    if key not in ctx.help_cache:
        if not os.access(cmd[0], os.X_OK):
            ctx.help_cache[key] = f"\0missing: {cmd[0]} is not there or not executable"
        else:
            try:
                p = subprocess.run(cmd + ["--help"], env=ctx.env(), capture_output=True, text=True, timeout=30,
                                   stdin=subprocess.DEVNULL)
                ctx.help_cache[key] = (p.stdout + p.stderr) if p.returncode == 0 else \
                    f"\0{cmd[0]} --help failed (exit {p.returncode}): {p.stderr.strip()[:200]}"
            except subprocess.TimeoutExpired:
                ctx.help_cache[key] = f"\0{cmd[0]} --help did not answer within 30 s (does it know --help?)"
    text = ctx.help_cache[key]
    if name == "run-demo" and not text.startswith("\0"):
        sim = help_text("postwatch-sim", ctx)
        text += sim or ""
    return text


def check_options(b, ctx):
    problems, checked = [], 0
    text = re.sub(r"\\\n", " ", script_of(b) if "$ " in b.text else b.text)
    for line in text.split("\n"):
        words = line.split("#")[0].split()
        words = [w for w in words if w != "sudo"]
        if "|" in words:  # the program after the last pipe
            words = words[len(words) - words[::-1].index("|"):]
        if not words or not any(w.startswith("--") for w in words[1:]):
            continue
        helps = help_text(words[0], ctx)
        if helps is None:
            continue
        if helps.startswith("\0"):
            problems.append(helps[1:])
            continue
        checked += 1
        for w in words[1:]:
            m = re.match(r"^(--[a-z][a-z0-9-]*)", w)
            if m and not re.search(re.escape(m.group(1)) + r"(?![a-z0-9-])", helps):
                problems.append(f"{words[0]}: {m.group(1)} is not in its --help")
    if not checked and not problems:
        return "no line gives an --option to one of our programs (use another kind)"
    return "; ".join(problems) or None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", required=True)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--api")
    ap.add_argument("--broker")
    ap.add_argument("--only", help="comma-separated kinds to check; the markers are checked always")
    ap.add_argument("files", nargs="+")
    opts = ap.parse_args()
    only = set(opts.only.split(",")) if opts.only else None
    ctx = Context(opts)
    total = ran = not_run = failed = 0
    checks = {"run": check_run, "agent-config": check_agent_config,
              "agent-config-fragment": check_agent_config_fragment, "generated": check_generated, "scenario": check_scenario,
              "response": check_response, "options": check_options}
    try:
        for path in opts.files:
            for b in read_blocks(path):
                total += 1
                problem = marker_problem(b)
                if problem:
                    failed += 1
                    print(f"{b.where()}: FAILED: {problem}")
                    continue
                if b.kind == "agent-config":
                    try:
                        ctx.last_config[b.path] = json.loads(b.text)
                    except ValueError:
                        pass
                if b.kind in NOT_RUN or (only and b.kind not in only):
                    not_run += 1
                    print(f"{b.where()} {b.kind}: skipped")
                    continue
                problem = checks[b.kind](b, ctx)
                ran += 1
                if problem:
                    failed += 1
                    print(f"{b.where()} {b.kind}: FAILED: {problem}")
                else:
                    print(f"{b.where()} {b.kind}: ok")
            for b, proc, log, script in ctx.background.pop(path, []):
                try:
                    rc = proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    rc = "killed: still running 10 s after the file's last block"
                log.seek(0)
                out = log.read()
                log.close()
                if rc != 0:
                    failed += 1
                    print(f"{b.where()} run (background): FAILED: exit {rc}; script:\n{script}\noutput:\n{out}")
    finally:
        for jobs in ctx.background.values():
            for _, proc, log, _ in jobs:
                proc.kill()
                log.close()
        ctx.cleanup()
    print(f"{total} blocks: {ran} run, {not_run} not run, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
