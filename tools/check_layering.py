#!/usr/bin/env python3
"""Fails when a module includes a module above it (docs/architecture.md has the order).

Every file under src/<module>/ and include/ferry/<module>/ may include headers of its own module
and of modules listed before it, never of one listed after it; the tests are not checked.
"""
import pathlib
import re
import sys

# Bottom to top. Modules on one line are siblings: neither may include the other.
ORDER = [
    ["base"],
    ["buf", "route"],
    ["proto/tunnel", "proto/http1", "proto/grpc"],
    ["proto/ws"],
    ["io"],
    ["discovery"],
    ["loop"],
    ["shard"],
    ["tls"],
    ["transport"],
    ["tunnel"],
    ["role"],
    ["admin"],
    ["config"],
    ["cli"],
]
# Public C headers of an ABI (hooks libraries include them); they include nothing of ferry.
PUBLIC_C_ABI = {"include/ferry/hooks.h"}
RANK = {module: rank for rank, line in enumerate(ORDER) for module in line}
INCLUDE = re.compile(r'^\s*#\s*include\s+"ferry/([a-z_0-9/]+)/[^"/]+"', re.M)


def module_of(path: pathlib.Path, root: pathlib.Path) -> str | None:
    rel = path.relative_to(root).parts
    if rel[0] == "src":
        parts = rel[1:-1]
    elif rel[:2] == ("include", "ferry"):
        parts = rel[2:-1]
    else:
        return None
    for n in (2, 1):
        name = "/".join(parts[:n])
        if name in RANK:
            return name
    return None


def main() -> int:
    root = pathlib.Path(__file__).resolve().parent.parent
    errors = []
    files = [p for d in ("src", "include") for p in (root / d).rglob("*") if p.suffix in (".h", ".cc")]
    for path in sorted(files):
        if path.relative_to(root).as_posix() in PUBLIC_C_ABI:
            continue
        mine = module_of(path, root)
        if mine is None:
            errors.append(f"{path.relative_to(root)}: not in a known module (tools/check_layering.py)")
            continue
        for used in INCLUDE.findall(path.read_text()):
            if used not in RANK:
                # ferry/proto/tunnel/frame.h -> proto/tunnel; ferry/io/x.h -> io
                used = next((m for m in RANK if used.startswith(m + "/") or used == m), used)
            if used not in RANK:
                errors.append(f"{path.relative_to(root)}: includes unknown module '{used}'")
            elif used != mine and RANK[used] >= RANK[mine]:
                errors.append(f"{path.relative_to(root)}: {mine} includes {used}, which is not below it")
    for e in errors:
        print(e, file=sys.stderr)
    if errors:
        print(f"layering: {len(errors)} violation(s)", file=sys.stderr)
        return 1
    print(f"layering: {len(files)} files, every include points down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
