"""``course`` command line: thin wrappers over course_lib (prepare-model, env; more commands arrive with labs)."""

from __future__ import annotations

import argparse
import sys
import time


def _prepare_model(args: argparse.Namespace) -> int:
    from course_lib import models

    names = ["embedded", "tiny"] if args.model == "all" else [args.model]
    for name in names:
        start = time.perf_counter()
        prepare = models.prepare_embedded if name == "embedded" else models.prepare_tiny
        try:
            folder = prepare(force=args.force)
        except models.ModelLoadError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        print(f"{name}: ready in {folder} ({time.perf_counter() - start:.1f} s)")
    return 0


def _env(_: argparse.Namespace) -> int:
    from course_lib import models

    models.describe_environment()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="course", description="Fine-tuning course kit helpers.")
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare-model", help="convert the embedded model to the cache (and build the tiny one)")
    prep.add_argument("--model", choices=["embedded", "tiny", "all"], default="embedded")
    prep.add_argument("--force", action="store_true", help="rebuild even if the cache is ready")
    prep.set_defaults(func=_prepare_model)
    sub.add_parser("env", help="print versions, device and GPU capabilities").set_defaults(func=_env)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
