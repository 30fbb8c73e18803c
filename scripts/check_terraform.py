#!/usr/bin/env python3
"""Checks the Terraform code under terraform/ without a Terraform binary or provider plugins.

Run by scripts/check-terraform.sh (which makes the venvs) and so by scripts/test.sh. Every
directory with .tf files is a module, checked on its own and against the local modules it
calls:

1. Parsing: every .tf file parses with python-hcl2.
2. Declarations:
   - every variable has a non-empty description and a type; every output a description;
   - every `var.X`, `local.X`, `module.X`, `data.T.N` and resource reference `T.N` (for
     resource types of the providers in use) names something declared in that module;
   - every `module` block with a local source (./ or ../) names a directory with .tf files;
     each of its arguments is a variable there, every variable without a default is passed,
     and every `module.X.Y` names an output of that module;
   - every `templatefile("${path.module}/...", {...})` names an existing file, and every
     variable the template uses is passed in the map.
3. Formatting, approximating `terraform fmt` (hclwrite's rules, as far as they can be checked
   line by line): no tabs, no trailing whitespace (also inside heredocs, which fmt leaves
   alone), a final newline, indentation of 2 spaces per open bracket as fmt computes it
   (heredoc bodies excepted), one space after the `=` of an attribute, and the `=` of
   consecutive single-line attributes aligned one space after the longest name. Not checked:
   spacing inside expressions, block label spacing, blank-line rules. When a `terraform`
   binary is on PATH, `terraform fmt -check -recursive` runs as well.
4. checkov skips: every `#checkov:skip=` comment names a check id and gives a reason.
5. checkov (with --checkov PATH): `checkov -d ROOT --framework terraform --quiet --compact
   --skip-download` must report passed checks and no failed ones.

Before all that, unless --no-self-test, it runs itself on the broken fixtures under
scripts/terraform-check/fixtures/ and fails unless each one is rejected with the errors its
expect.txt lists (and, with --checkov, unless checkov rejects fixtures/checkov): a checker that
cannot fail proves nothing.

Exit status: 0 all passed, 1 a check failed, 2 bad usage or environment.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

try:
    import hcl2
except ImportError:  # pragma: no cover - reported to the user
    print(
        "error: python-hcl2 is not installed in this interpreter; run scripts/check-terraform.sh,"
        " which makes a venv with the pinned version",
        file=sys.stderr,
    )
    sys.exit(2)

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "scripts" / "terraform-check" / "fixtures"

# Arguments of a module block that are not input variables.
MODULE_META_ARGUMENTS = {"source", "version", "count", "for_each", "providers", "depends_on"}
# Resource type prefixes whose `T.N` references are checked (other `a_b.c` names may be
# for-expression or dynamic-block iterators).
PROVIDER_PREFIXES = {"aws", "terraform", "random", "tls", "local", "null", "time"}
# Words of the template language that are not variables.
TEMPLATE_KEYWORDS = {"if", "else", "endif", "for", "in", "endfor", "true", "false", "null"}

IDENT = r"[A-Za-z_][A-Za-z0-9_-]*"
INDEX = r"(?:\[[^\]]*\])?"
VAR_REF = re.compile(rf"(?<![\w.])var\.({IDENT})")
LOCAL_REF = re.compile(rf"(?<![\w.])local\.({IDENT})")
MODULE_REF = re.compile(rf"(?<![\w.])module\.({IDENT}){INDEX}(?:\.({IDENT}))?")
DATA_REF = re.compile(rf"(?<![\w.])data\.({IDENT})\.({IDENT})")
RESOURCE_REF = re.compile(rf"(?<![\w.])([a-z][a-z0-9]*_[a-z0-9_]+)\.({IDENT})")
SKIP_COMMENT = re.compile(r"checkov:skip=([^:\s]*)(?::(.*))?")
CHECK_ID = re.compile(r"^CKV2?_[A-Z0-9]+_\d+$")


@dataclass
class Module:
    """What one directory of .tf files declares and references."""

    path: Path
    files: dict[Path, str] = field(default_factory=dict)
    variables: dict[str, dict] = field(default_factory=dict)
    outputs: dict[str, dict] = field(default_factory=dict)
    locals: set[str] = field(default_factory=set)
    modules: dict[str, dict] = field(default_factory=dict)
    resources: set[tuple[str, str]] = field(default_factory=set)
    data: set[tuple[str, str]] = field(default_factory=set)
    # (file, expression text) of every expression in the module.
    expressions: list[tuple[Path, str]] = field(default_factory=list)


class Report:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def error(self, path: Path, line: int | None, message: str) -> None:
        where = shown(path)
        if line is not None:
            where += f":{line}"
        self.errors.append(f"{where}: {message}")


def shown(path: Path) -> str:
    """path relative to the repository when it is inside it."""
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def unquote(label: str) -> str:
    return label[1:-1] if len(label) >= 2 and label[0] == label[-1] == '"' else label


def line_of(text: str, needle: str) -> int | None:
    """1-based line of the first occurrence of needle in text (None when absent)."""
    at = text.find(needle)
    return None if at < 0 else text.count("\n", 0, at) + 1


# ---- parsing ------------------------------------------------------------------------------------


def interpolations(text: str) -> list[str]:
    """The contents of the ${...} and %{...} sequences in a string ($${ is a literal)."""
    found = []
    i = 0
    while i < len(text) - 1:
        if text[i] == "$" and text[i + 1] == "$" and text[i + 2 : i + 3] == "{":
            i += 3
            continue
        if text[i] in "$%" and text[i + 1] == "{":
            depth = 1
            j = i + 2
            quote = False
            while j < len(text) and depth:
                c = text[j]
                if quote:
                    if c == "\\":
                        j += 1
                    elif c == '"':
                        quote = False
                elif c == '"':
                    quote = True
                elif c == "{":
                    depth += 1
                elif c == "}":
                    depth -= 1
                j += 1
            found.append(text[i + 2 : j - 1])
            i = j
        else:
            i += 1
    return found


def without_strings(expression: str) -> str:
    """The expression with each string literal replaced by the interpolations inside it, so
    that text such as "user-data.sh" is not taken for a reference but "${var.x}" still is."""
    out = []
    i = 0
    while i < len(expression):
        if expression[i] != '"':
            out.append(expression[i])
            i += 1
            continue
        j = i + 1
        depth = 0
        while j < len(expression):
            c = expression[j]
            if c == "\\":
                j += 2
                continue
            if c in "$%" and expression[j + 1 : j + 2] == "{":
                depth += 1
                j += 2
                continue
            if c == "}" and depth:
                depth -= 1
            elif c == '"' and not depth:
                break
            j += 1
        literal = expression[i + 1 : j]
        out.append(" " + " ".join(without_strings(x) for x in interpolations(literal)) + " ")
        i = j + 1
    return "".join(out)


def collect_expressions(value, out: list[str]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if key.startswith("__"):  # hcl2's __is_block__, __comments__, ...
                continue
            collect_expressions(key, out)
            collect_expressions(item, out)
    elif isinstance(value, list):
        for item in value:
            collect_expressions(item, out)
    elif isinstance(value, str):
        out.extend(without_strings(x) for x in interpolations(value))


def load_module(directory: Path, report: Report) -> Module:
    module = Module(path=directory)
    for path in sorted(directory.glob("*.tf")):
        text = path.read_text(encoding="utf-8")
        module.files[path] = text
        try:
            parsed = hcl2.loads(text)
        except Exception as err:  # hcl2 raises lark errors of several kinds
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            report.error(path, None, f"does not parse: {first}")
            continue
        for block in parsed.get("variable", []):
            for name, body in block.items():
                module.variables[unquote(name)] = body
        for block in parsed.get("output", []):
            for name, body in block.items():
                module.outputs[unquote(name)] = body
        for block in parsed.get("locals", []):
            module.locals.update(k for k in block if not k.startswith("__"))
        for block in parsed.get("module", []):
            for name, body in block.items():
                module.modules[unquote(name)] = body
        for kind, target in (("resource", module.resources), ("data", module.data)):
            for block in parsed.get(kind, []):
                for rtype, named in block.items():
                    for name in named:
                        target.add((unquote(rtype), unquote(name)))
        expressions: list[str] = []
        collect_expressions(parsed, expressions)
        module.expressions.extend((path, e) for e in expressions)
    return module


def local_source(body: dict) -> str | None:
    source = unquote(str(body.get("source", "")))
    return source if source.startswith(("./", "../")) else None


# ---- declarations -------------------------------------------------------------------------------


def check_declarations(module: Module, modules: dict[Path, Module], report: Report) -> None:
    first_file = next(iter(module.files), module.path)

    def locate(needle: str) -> tuple[Path, int | None]:
        for path, text in module.files.items():
            line = line_of(text, needle)
            if line is not None:
                return path, line
        return first_file, None

    for name, body in module.variables.items():
        path, line = locate(f'variable "{name}"')
        if not str(body.get("description", "")).strip('"').strip():
            report.error(path, line, f'variable "{name}" has no description')
        if "type" not in body:
            report.error(path, line, f'variable "{name}" has no type')
    for name, body in module.outputs.items():
        path, line = locate(f'output "{name}"')
        if not str(body.get("description", "")).strip('"').strip():
            report.error(path, line, f'output "{name}" has no description')

    prefixes = PROVIDER_PREFIXES | {rtype.split("_", 1)[0] for rtype, _ in module.resources}
    seen: set[str] = set()
    for path, expression in module.expressions:
        problems = []
        for m in VAR_REF.finditer(expression):
            if m.group(1) not in module.variables:
                problems.append((m.group(0), f"var.{m.group(1)} is not declared (no variable block)"))
        for m in LOCAL_REF.finditer(expression):
            if m.group(1) not in module.locals:
                problems.append((m.group(0), f"local.{m.group(1)} is not defined in any locals block"))
        for m in MODULE_REF.finditer(expression):
            name, output = m.group(1), m.group(2)
            if name not in module.modules:
                problems.append((m.group(0), f"module.{name} is not declared (no module block)"))
                continue
            source = local_source(module.modules[name])
            called = modules.get((module.path / source).resolve()) if source else None
            if output and called is not None and output not in called.outputs:
                problems.append((m.group(0), f"module.{name}.{output}: {source} has no output {output!r}"))
        for m in DATA_REF.finditer(expression):
            if (m.group(1), m.group(2)) not in module.data:
                problems.append((m.group(0), f"data.{m.group(1)}.{m.group(2)} is not declared"))
        for m in RESOURCE_REF.finditer(expression):
            rtype, name = m.group(1), m.group(2)
            if m.start() >= 5 and expression[m.start() - 5 : m.start()] == "data.":
                continue
            if rtype.split("_", 1)[0] in prefixes and (rtype, name) not in module.resources:
                problems.append((m.group(0), f"{rtype}.{name} is not declared (no resource block)"))
        for needle, message in problems:
            if message in seen:
                continue
            seen.add(message)
            report.error(path, line_of(module.files[path], needle), message)

    for name, body in module.modules.items():
        path, line = locate(f'module "{name}"')
        source = local_source(body)
        if source is None:
            continue  # a registry or git module: its inputs cannot be known here
        called = modules.get((module.path / source).resolve())
        if called is None:
            report.error(path, line, f'module "{name}": source {source} is not a directory with .tf files')
            continue
        arguments = {k for k in body if not k.startswith("__")} - MODULE_META_ARGUMENTS
        for argument in sorted(arguments - called.variables.keys()):
            report.error(path, line, f'module "{name}": {source} has no variable {argument!r}')
        required = {v for v, b in called.variables.items() if "default" not in b}
        for missing in sorted(required - arguments):
            report.error(path, line, f'module "{name}": required variable {missing!r} of {source} is not passed')

    check_templates(module, report)


TEMPLATEFILE = re.compile(r'templatefile\(\s*"\$\{path\.module\}/([^"]+)"\s*,\s*\{')


def check_templates(module: Module, report: Report) -> None:
    """templatefile("${path.module}/FILE", { k = v, ... }): FILE exists, its variables are passed."""
    for path, text in module.files.items():
        for m in TEMPLATEFILE.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            template = module.path / m.group(1)
            # The argument map: from its { to the matching }.
            depth, end = 1, m.end()
            while end < len(text) and depth:
                depth += {"{": 1, "}": -1}.get(text[end], 0)
                end += 1
            body = text[m.end() : end - 1]
            passed = set(re.findall(r"^\s*([A-Za-z_]\w*)\s*=", body, re.MULTILINE))
            if not template.is_file():
                report.error(path, line, f"templatefile: {m.group(1)} does not exist")
                continue
            used: set[str] = set()
            bound: set[str] = set()
            for expression in interpolations(template.read_text(encoding="utf-8")):
                expression = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expression)
                for_loop = re.match(rf"\s*for\s+({IDENT})(?:\s*,\s*({IDENT}))?\s+in\b", expression)
                if for_loop:
                    bound.update(g for g in for_loop.groups() if g)
                    expression = expression[for_loop.end() :]
                used.update(re.findall(r"(?<![\w.])([A-Za-z_]\w*)(?!\w*\s*\()", expression))
            for name in sorted(used - TEMPLATE_KEYWORDS - bound - passed):
                report.error(path, line, f"templatefile: {m.group(1)} uses {name!r}, which is not passed")


# ---- checkov skip comments ----------------------------------------------------------------------


def check_skip_comments(path: Path, text: str, report: Report) -> None:
    for number, line in enumerate(text.splitlines(), 1):
        m = SKIP_COMMENT.search(line)
        if not m:
            continue
        check_id, reason = m.group(1), (m.group(2) or "").strip()
        if not CHECK_ID.match(check_id):
            report.error(path, number, f"checkov skip names no check id (CKV_..._N): {line.strip()}")
        if len(reason.split()) < 4:
            report.error(path, number, f"checkov skip of {check_id or '?'} gives no reason (write why, in a sentence)")


# ---- formatting ---------------------------------------------------------------------------------

OPENERS = {"{": 1, "[": 1, "(": 1, "}": -1, "]": -1, ")": -1}
HEREDOC = re.compile(r"<<(-?)([A-Za-z_][A-Za-z0-9_-]*)\s*$")
ATTRIBUTE = re.compile(r"^(\s*)([A-Za-z_][A-Za-z0-9_-]*|\"(?:[^\"\\]|\\.)*\")(\s*)=(?![=>])(\s*)(.*)$")


def code_of(line: str) -> str:
    """The line without string contents (interpolations included) and comments."""
    out = []
    i = 0
    while i < len(line):
        c = line[i]
        if c == '"':
            j = i + 1
            depth = 0
            while j < len(line):
                if line[j] == "\\":
                    j += 2
                    continue
                if line[j] in "$%" and line[j + 1 : j + 2] == "{":
                    depth += 1
                    j += 2
                    continue
                if line[j] == "}" and depth:
                    depth -= 1
                elif line[j] == '"' and not depth:
                    break
                j += 1
            out.append('""')
            i = j + 1
            continue
        if c == "#" or line.startswith("//", i):
            break
        out.append(c)
        i += 1
    return "".join(out)


def net_brackets(code: str) -> int:
    return sum(OPENERS.get(c, 0) for c in code)


def check_format(path: Path, text: str, report: Report) -> None:
    if "\t" in text:
        report.error(path, line_of(text, "\t"), "tab character (terraform fmt indents with spaces)")
    if text and not text.endswith("\n"):
        report.error(path, text.count("\n") + 1, "no newline at the end of the file")

    indents: list[int] = []  # hclwrite's indent stack: brackets opened per indented line
    heredoc: str | None = None
    chain: list[tuple[int, int, int]] = []  # (line number, name end column, '=' column)

    def close_chain() -> None:
        if len(chain) > 1:
            want = max(end for _, end, _ in chain) + 1
            for number, _, column in chain:
                if column != want:
                    report.error(path, number, f"'=' not aligned with the attributes next to it (column {column + 1}, expected {want + 1})")
        chain.clear()

    block_comment = False
    for number, line in enumerate(text.split("\n"), 1):
        if line != line.rstrip():
            report.error(path, number, "trailing whitespace")
        if heredoc is not None:
            if line.strip() == heredoc:
                heredoc = None
            continue
        if block_comment or line.lstrip().startswith("/*"):
            block_comment = "*/" not in line
            close_chain()
            continue
        if not line.strip():
            close_chain()
            continue
        code = code_of(line)
        opener = HEREDOC.search(code)
        counted = code[: opener.start()] if opener else code
        net = net_brackets(counted)
        if net > 0:
            want = 2 * len(indents)
            indents.append(net)
        elif net < 0:
            closed = -net
            while closed > 0 and indents:
                if closed > indents[-1]:
                    closed -= indents.pop()
                elif closed < indents[-1]:
                    indents[-1] -= closed
                    closed = 0
                else:
                    indents.pop()
                    closed = 0
            want = 2 * len(indents)
        else:
            want = 2 * len(indents)
        have = len(line) - len(line.lstrip(" "))
        if have != want:
            report.error(path, number, f"indented {have} spaces, terraform fmt indents {want}")

        m = ATTRIBUTE.match(line)
        if m and net == 0:
            name_end = len(m.group(1)) + len(m.group(2))
            chain.append((number, name_end, name_end + len(m.group(3))))
            if m.group(5) and m.group(4) != " ":
                report.error(path, number, "one space after '=' (terraform fmt)")
        else:
            close_chain()
        if opener:
            # The heredoc's body and closing marker are part of this line for terraform fmt:
            # an alignment chain goes on after them.
            heredoc = opener.group(2)
    close_chain()


# ---- driver -------------------------------------------------------------------------------------


def module_dirs(root: Path) -> list[Path]:
    dirs = {p.parent for p in root.rglob("*.tf") if ".terraform" not in p.parts}
    return sorted(dirs)


def check_tree(root: Path) -> list[str]:
    """Checks 1-4 on every module under root; returns the errors."""
    report = Report()
    directories = module_dirs(root)
    if not directories:
        report.error(root, None, "no .tf files found")
        return report.errors
    modules = {d.resolve(): load_module(d, report) for d in directories}
    for module in modules.values():
        check_declarations(module, modules, report)
        for path, text in module.files.items():
            check_format(path, text, report)
            check_skip_comments(path, text, report)
    return report.errors


def run_terraform_fmt(root: Path) -> list[str]:
    terraform = shutil.which("terraform")
    if terraform is None:
        return []
    result = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", "-diff", "-no-color", str(root)],
        capture_output=True,
        text=True,
    )
    if result.returncode == 0:
        print(f"    terraform fmt -check ({terraform}): ok")
        return []
    return [f"terraform fmt -check -recursive {shown(root)} failed:\n{result.stdout}{result.stderr}"]


def run_checkov(checkov: str, root: Path) -> tuple[int, str]:
    result = subprocess.run(
        [checkov, "-d", str(root), "--framework", "terraform", "--quiet", "--compact", "--skip-download"],
        capture_output=True,
        text=True,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )
    return result.returncode, result.stdout + result.stderr


def checkov_summary(output: str) -> tuple[int, int, int] | None:
    m = re.search(r"Passed checks: (\d+), Failed checks: (\d+), Skipped checks: (\d+)", output)
    return tuple(int(g) for g in m.groups()) if m else None  # type: ignore[return-value]


def self_test(checkov: str | None) -> list[str]:
    """The checker must reject every fixture with the errors its expect.txt names."""
    failures = []
    cases = sorted(d for d in FIXTURES.iterdir() if (d / "expect.txt").is_file())
    if not cases:
        return [f"no fixtures with expect.txt under {FIXTURES}"]
    for case in cases:
        expected = [
            line.strip()
            for line in (case / "expect.txt").read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("#")
        ]
        errors = check_tree(case)
        text = "\n".join(errors)
        if not errors:
            failures.append(f"fixture {case.name}: accepted, but it is broken on purpose")
        for needle in expected:
            if needle not in text:
                failures.append(
                    f"fixture {case.name}: no error containing {needle!r}; errors were:\n  "
                    + "\n  ".join(errors or ["(none)"])
                )
    if checkov is not None:
        code, output = run_checkov(checkov, FIXTURES / "checkov")
        summary = checkov_summary(output)
        if code == 0 or summary is None or summary[1] == 0:
            failures.append(f"fixture checkov: checkov did not fail on it (exit {code}):\n{output[-2000:]}")
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", nargs="?", type=Path, default=REPO / "terraform", help="directory to check (default: terraform/)")
    parser.add_argument("--checkov", help="checkov executable; without it checkov does not run")
    parser.add_argument("--no-self-test", action="store_true", help="skip the fixture self-test")
    args = parser.parse_args()
    root = args.root.resolve()
    if not root.is_dir():
        print(f"error: {root} is not a directory", file=sys.stderr)
        return 2
    if args.checkov and not (Path(args.checkov).is_file() or shutil.which(args.checkov)):
        print(f"error: checkov executable {args.checkov} not found", file=sys.stderr)
        return 2

    failed = False
    if not args.no_self_test:
        print(f"==> self-test: the checker must reject the fixtures in {shown(FIXTURES)}")
        failures = self_test(args.checkov)
        for failure in failures:
            print(f"error: {failure}", file=sys.stderr)
        if failures:
            print("error: the self-test failed: the checker cannot be trusted to catch these mistakes", file=sys.stderr)
            return 1
        print(f"    ok: {len(list(FIXTURES.glob('*/expect.txt')))} fixtures rejected as expected")

    print(f"==> parse, declarations, formatting, skip reasons: {shown(root)}")
    errors = check_tree(root) + run_terraform_fmt(root)
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    if errors:
        failed = True
    else:
        count = sum(1 for _ in root.rglob("*.tf"))
        print(f"    ok: {count} files in {len(module_dirs(root))} module directories")

    if args.checkov:
        print(f"==> checkov: {shown(root)}")
        code, output = run_checkov(args.checkov, root)
        summary = checkov_summary(output)
        if summary is None:
            print(output, file=sys.stderr)
            print("error: checkov printed no summary (did it scan anything?)", file=sys.stderr)
            failed = True
        elif code != 0 or summary[1] > 0:
            print(output, file=sys.stderr)
            print(f"error: checkov failed (exit {code}): fix the resource, or skip the check in place with a reason", file=sys.stderr)
            failed = True
        else:
            print(f"    ok: {summary[0]} passed, {summary[1]} failed, {summary[2]} skipped in place with a reason")

    if failed:
        print("error: terraform checks failed", file=sys.stderr)
        return 1
    print("==> terraform checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
