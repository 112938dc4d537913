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


def imported_modules(
    source: str, package: str = PACKAGE, within: str = "", package_dir: Path | None = None
) -> set[str]:
    """Dotted names, relative to the package, of the package's modules that `source` imports, in
    any of the forms `import p.x`, `import p.x.y`, `from p.x import y`, `from p import x`,
    `from . import x`, `from .x import y`. `within` is the subpackage the source is in (for its
    relative imports); with `package_dir`, a name imported from a subpackage that is itself a
    module of it (`from p.serve import checks`) counts too.
    """
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {_relative(alias.name) for alias in node.names if _inside(alias.name)}
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 0:
                if not (module == package or _inside(module)):
                    continue
                base = _relative(module) if module != package else ""
            else:
                up = within.split(".") if within else []
                up = up[: len(up) - (node.level - 1)] if node.level > 1 else up
                base = ".".join([*up, *filter(None, module.split("."))])
            if base:
                names.add(base)
            for alias in node.names:
                name = f"{base}.{alias.name}" if base else alias.name
                if not base or (package_dir and module_file(name, package_dir)):
                    names.add(name)  # from pipeline import x, y (or from . import x)
    return names


def _inside(name: str) -> bool:
    return name.startswith(f"{PACKAGE}.")


def _relative(name: str) -> str:
    return name.removeprefix(f"{PACKAGE}.")


def module_file(name: str, package_dir: Path) -> Path | None:
    """The file of a dotted module name: `serve.checks` -> serve/checks.py, `serve` ->
    serve/__init__.py when serve is a subpackage; None when there is none."""
    path = package_dir.joinpath(*name.split("."))
    for candidate in (path.with_name(f"{path.name}.py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def module_name(path: str) -> str:
    """The dotted name of a listed dependency: pipeline/serve/checks.py -> serve.checks."""
    name = path.removeprefix(f"{PACKAGE}/").removesuffix(".py").removesuffix("/__init__")
    return name.replace("/", ".")


def dependency_path(name: str, package_dir: Path) -> str:
    found = module_file(name, package_dir)
    relative = found.relative_to(package_dir) if found else Path(f"{name}.py")
    return f"{PACKAGE}/{relative.as_posix()}"


def modules_used_by(module: str, package_dir: Path) -> set[str]:
    """`module` and every package module it imports, transitively (a module of a subpackage
    brings the subpackage's __init__ with it, as importing it runs that)."""
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        path = module_file(name, package_dir)
        if name in seen or path is None:
            continue
        seen.add(name)
        within = name if path.name == "__init__.py" else name.rpartition(".")[0]
        todo += imported_modules(path.read_text(encoding="utf-8"), PACKAGE, within, package_dir)
        todo += [".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)]
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
                module_name(dep) for dep in body.get("deps", []) if dep.startswith(f"{PACKAGE}/")
            ]
            command = found.group(1)
            yield name, MODULES.get(command, command.replace("-", "_")), listed


def differences(root: Path) -> list[str]:
    """One line per stage whose listed module deps differ from what its command imports."""
    dvc_yaml = yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8"))
    problems = []
    package_dir = root / PACKAGE
    for stage, module, listed in stage_commands(dvc_yaml):
        used = modules_used_by(module, package_dir)
        missing, extra = sorted(used - set(listed)), sorted(set(listed) - used)
        if missing or extra:
            add = ", ".join(dependency_path(m, package_dir) for m in missing) or "-"
            remove = ", ".join(dependency_path(m, package_dir) for m in extra) or "-"
            problems.append(f"stage {stage}: add {add}; remove {remove}")
    return problems


def main() -> int:
    problems = differences(Path(__file__).resolve().parents[1])
    for line in problems:
        print(line, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
