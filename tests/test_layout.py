"""The package's shape: modules talk to each other through public names only."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "tinct"
# attribute names with a leading underscore that are public API of the standard library
STDLIB_UNDERSCORE_API = {"_replace", "_asdict", "_fields", "_make", "_exit"}
# underscored third-party calls tinct makes on purpose, each behind a check with a fallback:
# PyTorch's fused convolution + activation (what its own compiler emits on the CPU), used by
# inference copies only when tinct.folding.fused_conv_relu6_available() finds that it works
THIRD_PARTY_UNDERSCORE_API = {"_convolution_pointwise"}


def private_crossings(path: Path, root: Path = SRC) -> list[str]:
    """`from .x import _name` and `obj._name(...)` (obj not self/cls) in one module under ``root``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level > 0 or (node.module or "").startswith("tinct")):
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"{path.relative_to(root)}:{node.lineno}: imports {alias.name}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            name, owner = node.func.attr, node.func.value
            if (name.startswith("_") and not name.startswith("__")
                    and name not in STDLIB_UNDERSCORE_API | THIRD_PARTY_UNDERSCORE_API
                    and not (isinstance(owner, ast.Name) and owner.id in ("self", "cls"))
                    and not (isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name) and owner.func.id == "super")):
                found.append(f"{path.relative_to(root)}:{node.lineno}: calls .{name}()")
    return found


def test_no_module_uses_another_module_s_private_names():
    crossings = [c for p in sorted(SRC.rglob("*.py")) for c in private_crossings(p)]
    assert crossings == []


def test_the_check_finds_a_crossing(tmp_path):
    bad = tmp_path / "probe.py"
    bad.write_text("from .pipeline import _secret\n\ndef f(c):\n    return c._colorize(1), self._ok(), t._replace()\n")
    assert private_crossings(bad, tmp_path) == ["probe.py:1: imports _secret", "probe.py:4: calls ._colorize()"]


def test_the_command_line_answers_help_and_lists_models_without_importing_torch():
    import subprocess
    import sys

    code = ("import sys, contextlib, io\n"
            "from tinct.cli import main\n"
            "for argv in (['--help'], ['colorize', '--help'], ['train', '--help'], ['export', '--help'], ['models']):\n"
            "    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
            "        main(argv)\n"
            "print(sorted(m for m in ('torch', 'numpy', 'onnx') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_file_replacement_goes_through_tinct_atomic():
    """os.replace / mkstemp outside tinct/atomic.py would be a second, unreviewed atomic write."""
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if path.name == "atomic.py":
            continue
        text = path.read_text()
        offenders += [f"{path.relative_to(SRC)}: {word}" for word in ("os.replace(", "mkstemp(", ".rename(")
                      if word in text]
    assert offenders == []
