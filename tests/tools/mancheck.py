#!/usr/bin/env python3
"""Check doc/snapship.8 against the code and against real JSON outputs.

    mancheck.py options MAN MAIN_C CLI_C
        Every option a command takes (agent/main.c's command table, the
        names from agent/cli.c's option table; --help aside) is named in
        that command's entries of the COMMANDS section.

    mancheck.py json MAN OUTDIR
        OUTDIR holds real outputs, CMD.NAME.json (CMD: backup, list, status,
        verify, repair, restore, config, or failed for the JSON of a failed
        run; list--at for a paragraph headed "list \-\-at"). For each paragraph of the JSON OUTPUT section (".TP" then the
        command names in bold, then a body whose bold lower-case words are
        its fields), the fields documented and the keys seen (at any depth,
        over every output of its commands) must be the same sets: every
        documented field shows up, and nothing undocumented does.

Exit 0 when all agree; else one line per disagreement and exit 1.
"""

import json
import os
import re
import sys

BOLD = re.compile(r"\\fB([a-z_]+)\\fR")
CMD = re.compile(r"\\fB([a-z_]+(?: \\-\\-[a-z-]+)?)\\fR")


def section(man, name):
    """The lines of .SH name, up to the next .SH."""
    out, on = [], False
    for line in man.splitlines():
        if line.startswith(".SH "):
            on = line[4:].strip().strip('"') == name
            continue
        if on:
            out.append(line)
    return out


def paragraphs(lines):
    """(first line, body) of each .TP paragraph."""
    paras, cur = [], None
    for line in lines:
        if line.startswith(".TP"):
            cur = []
            paras.append(cur)
        elif cur is not None and not line.startswith((".SH", ".PP")):
            cur.append(line)
    return [(p[0], "\n".join(p[1:])) for p in paras if p]


def check_options(man, main_c, cli_c):
    names = {}
    for opt, name in re.findall(r"\[(OPT_\w+)\]\s*=\s*(?:STRING|FLAG)\(\"([\w-]+)\"", cli_c):
        names[opt] = name
    for opt, name in re.findall(r"\[(OPT_\w+)\]\s*=\s*\{\s*\"([\w-]+)\"", cli_c):
        names[opt] = name
    table = re.findall(r"\{\s*\"([\w-]+)\",\s*cmd_\w+,\s*OPTS\(([^)]*)\)", main_c, re.S)
    if not table:
        return ["no command table found in main.c"]
    entries = {}
    for first, body in paragraphs(section(man, "COMMANDS")):
        m = re.match(r"\\fB([\w-]+)\\fR", first)
        if m:
            entries.setdefault(m.group(1), []).append(first + "\n" + body)
    bad = []
    for cmd, opts in table:
        text = "\n".join(entries.get(cmd, []))
        if not text:
            bad.append("command %s: no entry in COMMANDS" % cmd)
            continue
        for opt in re.findall(r"OPT_\w+", opts):
            if opt == "OPT_HELP":
                continue
            if opt not in names:
                bad.append("%s: %s not in cli.c's table" % (cmd, opt))
                continue
            man_opt = "\\fB" + "\\-\\-" + names[opt].replace("-", "\\-") + "\\fR"
            if man_opt not in text:
                bad.append("command %s takes --%s: not in its COMMANDS entry" % (cmd, names[opt]))
    return bad


def keys(v, out):
    if isinstance(v, dict):
        for k, x in v.items():
            out.add(k)
            keys(x, out)
    elif isinstance(v, list):
        for x in v:
            keys(x, out)
    return out


def check_json(man, outdir):
    doc = {}
    for first, body in paragraphs(section(man, "JSON OUTPUT")):
        # "list \-\-at": an option that changes a command's output is
        # a paragraph of its own, its outputs named list--at.N.json
        cmds = tuple(c.replace(" \\-\\-", "--") for c in CMD.findall(first))
        doc[cmds] = set(BOLD.findall(body))
    seen = {}
    for name in sorted(os.listdir(outdir)):
        if not name.endswith(".json"):
            continue
        cmd = name.split(".")[0]
        with open(os.path.join(outdir, name)) as f:
            try:
                d = json.load(f)
            except ValueError as e:
                return ["%s: not JSON: %s" % (name, e)]
        keys(d, seen.setdefault(cmd, set()))
    bad = []
    for cmds, fields in doc.items():
        got = set()
        for c in cmds:
            if c not in seen:
                bad.append("no output of %s to check (%s.*.json)" % (c, c))
            got |= seen.get(c, set())
        for f in sorted(fields - got):
            bad.append("%s: documented field %s is in no output" % ("/".join(cmds), f))
        for f in sorted(got - fields):
            bad.append("%s: field %s is not documented" % ("/".join(cmds), f))
    for c in seen:
        if not any(c in cmds for cmds in doc):
            bad.append("%s: JSON output not documented in JSON OUTPUT" % c)
    return bad


def main(argv):
    if len(argv) == 5 and argv[1] == "options":
        man, main_c, cli_c = (open(p).read() for p in argv[2:5])
        bad = check_options(man, main_c, cli_c)
    elif len(argv) == 4 and argv[1] == "json":
        bad = check_json(open(argv[2]).read(), argv[3])
    else:
        sys.stderr.write(__doc__)
        return 2
    for b in bad:
        print(b)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
