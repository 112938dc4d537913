"""Check that each DVC stage lists, as dependencies, exactly the package modules its command
imports (directly or through other modules, at the top or inside functions), so that a change
to any of them reruns the stage and a change to nothing it uses does not.

    python tools/stage_deps.py            # exit 1 and name the differences, if any
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import yaml

PACKAGE = "pipeline"
COMMAND = re.compile(rf"python -m {PACKAGE} ([a-z][a-z-]*)")
MODULES = {"registry": "registry_cli"}  # as pipeline/cli.py's MODULES


def imported_modules(source: str, package: str = PACKAGE) -> set[str]:
    """Names of the package's modules that `source` imports, in any of the forms
    `import p.x`, `from p.x import y`, `from p import x`, `from . import x`, `from .x import y`.
    """
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[1] for alias in node.names if _inside(alias.name)}
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 0 and not (module == package or module.startswith(f"{package}.")):
                continue
            parts = module.split(".")[1:] if node.level == 0 else module.split(".")
            if parts and parts[0]:
                names.add(parts[0])
            else:  # from pipeline import x, y (or from . import x)
                names |= {alias.name for alias in node.names}
    return names


def _inside(name: str) -> bool:
    return name.startswith(f"{PACKAGE}.")


def modules_used_by(module: str, package_dir: Path) -> set[str]:
    """`module` and every package module it imports, transitively."""
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        path = package_dir / f"{name}.py"
        if name in seen or not path.is_file():
            continue
        seen.add(name)
        todo += imported_modules(path.read_text(encoding="utf-8"))
    return seen


def stage_commands(dvc_yaml: dict) -> Iterator[tuple[str, str, list[str]]]:
    """(stage, command module, listed module deps) for each stage that runs the package's CLI."""
    for name, stage in dvc_yaml["stages"].items():
        body = stage.get("do") or stage
        found = COMMAND.search(
            " ".join(body["cmd"]) if isinstance(body["cmd"], list) else body["cmd"]
        )
        if found:
            listed = [
                dep.removeprefix(f"{PACKAGE}/").removesuffix(".py")
                for dep in body.get("deps", [])
                if dep.startswith(f"{PACKAGE}/")
            ]
            command = found.group(1)
            yield name, MODULES.get(command, command.replace("-", "_")), listed


def differences(root: Path) -> list[str]:
    """One line per stage whose listed module deps differ from what its command imports."""
    dvc_yaml = yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8"))
    problems = []
    for stage, module, listed in stage_commands(dvc_yaml):
        used = modules_used_by(module, root / PACKAGE)
        missing, extra = sorted(used - set(listed)), sorted(set(listed) - used)
        if missing or extra:
            problems.append(
                f"stage {stage}: add {', '.join(f'{PACKAGE}/{m}.py' for m in missing) or '-'}; "
                f"remove {', '.join(f'{PACKAGE}/{m}.py' for m in extra) or '-'}"
            )
    return problems


def main() -> int:
    problems = differences(Path(__file__).resolve().parents[1])
    for line in problems:
        print(line, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
