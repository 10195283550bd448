"""``course`` command line: thin wrappers over course_lib (prepare-model, env, colab-cells, grade, serve,
multi-gpu)."""

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


def _colab_cells(args: argparse.Namespace) -> int:
    from course_lib import colab

    try:
        changed = colab.stamp_all(args.folder or colab.NOTEBOOKS_DIR, write=not args.check)
    except colab.ColabCellError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.check:
        for name in changed:
            print(f"{name}: badge or setup cell differs from what course_lib.colab generates; run `course colab-cells`",
                  file=sys.stderr)
        return 1 if changed else 0
    print(f"stamped {len(changed)} notebooks: {', '.join(changed) or 'all were up to date'}")
    return 0


def _grade(args: argparse.Namespace) -> int:
    from course_lib import grading

    env = {}
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            print(f"error: --env wants KEY=VALUE, not {item!r}", file=sys.stderr)
            return 2
        env[key] = value
    options = grading.Options(
        cell_timeout=args.cell_timeout, notebook_timeout=args.notebook_timeout, memory_mb=args.memory,
        processes=args.processes, disk_mb=args.disk, output_mb=args.output_mb, output_kill_mb=args.output_kill_mb,
        interrupt_grace=args.interrupt_grace,
        max_notebook_mb=args.max_notebook_mb, jobs=args.jobs, trust=tuple(args.trust), students=tuple(args.student),
        force=args.force, no_sandbox=args.no_sandbox_i_understand, show_hidden_tests=args.show_hidden_tests,
        read_only=tuple(args.read_only), keep_scratch=args.keep_scratch, progress=not args.quiet, env=env)
    command = "course grade " + " ".join(sys.argv[2:] if args.argv is None else args.argv)
    try:
        done = grading.grade_batch(args.submissions, args.course, args.assignment, args.out, options, command)
    except (grading.SandboxUnavailable, grading.GradingSetupError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted: {args.out}/gradebook.csv lists what is graded so far; run the same command again to "
              "resume", file=sys.stderr)
        return 130
    counts = {s: sum(r["status"] == s for r in done["results"]) for s in ("graded", "rejected", "error")}
    print(f"{len(done['results'])} submissions: {counts['graded']} graded, {counts['rejected']} rejected, "
          f"{counts['error']} errors ({done['run']['graded_now']} graded now, {done['run']['reused']} reused) "
          f"-> {args.out}/gradebook.csv, summary.md, feedback/")
    return 1 if counts["error"] else 0


def _serve(args: argparse.Namespace) -> int:
    import os

    import uvicorn

    from course_lib import serve
    from course_lib.paths import cache_dir

    key = args.api_key or os.environ.get("COURSE_API_KEY", "")
    try:
        app = serve.create_app(args.data_dir or cache_dir() / "serve", key, max_upload_mb=args.max_upload_mb,
                               check_target=args.check_triage)
    except serve.ServiceSetupError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"course serve: http://{args.host}:{args.port}/v1 (data in {app.state.service.store.root}); "
          f"clients use OpenAI(base_url='http://{args.host}:{args.port}/v1', api_key=<your key>)")
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def _multi_gpu(args: argparse.Namespace) -> int:
    from pathlib import Path

    from course_lib.train import TrainSetupError, launch

    try:
        commands = launch.measurement_commands(args.gpus, str(Path(args.record).resolve()), steps=args.steps,
                                               python=sys.executable)
    except TrainSetupError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.dry_run:
        print("\n".join(launch.shlex.join(command) for command in commands))
        return 0
    codes = launch.run_measurement(commands)
    print(f"{codes.count(0)} of {len(codes)} runs finished; records in {args.record}")
    return 0 if all(code == 0 for code in codes) else 1


def _multi_gpu_parser(sub) -> None:
    multi = sub.add_parser(
        "multi-gpu", help="measure the training recipe on 1 GPU and on several (DDP), and an 8B model with FSDP",
        description="Run the course's recipe (course_lib.train.launch, the h100 preset, random weights of real "
                    "shapes) with accelerate launch: each shape's LoRA run on 1 GPU and on GPUS GPUs with the same "
                    "effective batch, then an 8B full fine-tune sharded with FSDP over GPUS GPUs. Every run appends "
                    "its record (tokens/s, peak memory per GPU, loss history, versions, command) to RECORD.")
    multi.add_argument("--gpus", type=int, default=2, help="GPUs of the multi-GPU runs (default 2)")
    multi.add_argument("--record", default="benchmarks/results/gpu_multi.json", help="JSON file the runs append to")
    multi.add_argument("--steps", type=int, default=30, help="optimiser steps per run (default 30)")
    multi.add_argument("--dry-run", action="store_true", help="print the commands without running them")
    multi.set_defaults(func=_multi_gpu)


def _serve_parser(sub) -> None:
    serve = sub.add_parser(
        "serve", help="run the local OpenAI-compatible fine-tuning service (files, jobs, models, chat)",
        description="Serve the OpenAI API's fine-tuning workflow locally: upload JSONL files, create fine-tuning "
                    "jobs (trained by course_lib's recipe on this machine), list models, chat with base and tuned "
                    "models. Point the official openai client at http://HOST:PORT/v1 with the same API key.")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--data-dir", default=None,
                       help="folder for the database, uploads and models (default: <course cache>/serve)")
    serve.add_argument("--api-key", default=None, help="the key clients must send (default: $COURSE_API_KEY)")
    serve.add_argument("--max-upload-mb", type=float, default=50.0, help="largest upload in MiB (default 50)")
    serve.add_argument("--check-triage", action="store_true",
                       help="also refuse uploads whose answers are not valid GreenLeaf triage JSON")
    serve.add_argument("--log-level", default="info", help="uvicorn's log level (default info)")
    serve.set_defaults(func=_serve)


def _grade_parser(sub) -> None:
    grade = sub.add_parser(
        "grade", help="autograde a folder of submissions with nbgrader, each in its own sandbox",
        description="Autograde every submission in SUBMISSIONS (one folder, zip or notebook per student, or nbgrader's "
                    "submitted/<student>/<assignment>/ layout) against COURSE/source/ASSIGNMENT with nbgrader, in "
                    "parallel, each kernel in its own bubblewrap sandbox (no network, no access to the hidden tests, "
                    "the gradebook or other students' files; time, memory, process and output limits). Writes "
                    "OUT/gradebook.csv, OUT/feedback/<student>.html, OUT/summary.md and OUT/summary.png. Re-running "
                    "resumes: unchanged submissions already graded or rejected are not graded again.")
    grade.add_argument("submissions", help="folder of submissions (or the nbgrader course folder holding submitted/)")
    grade.add_argument("--assignment", required=True, help="assignment name, a folder of COURSE/source/")
    grade.add_argument("--course", default="labs", help="nbgrader course folder with source/ (default: labs)")
    grade.add_argument("--out", required=True, help="output folder (results/, feedback/, gradebook.csv, summary.md)")
    grade.add_argument("--jobs", type=int, default=0, help="submissions graded at once (default: 2 per CPU core)")
    grade.add_argument("--cell-timeout", type=float, default=30, metavar="S", help="seconds per cell (default 30)")
    grade.add_argument("--notebook-timeout", type=float, default=300, metavar="S",
                       help="seconds per notebook once its kernel is up (default 300)")
    grade.add_argument("--memory", type=int, default=2048, metavar="MB", help="address space per kernel (default 2048)")
    grade.add_argument("--processes", type=int, default=64, metavar="N",
                       help="processes + threads per kernel (default 64)")
    grade.add_argument("--disk", type=int, default=256, metavar="MB",
                       help="size of the kernel's writable folder and of its /tmp (default 256 each)")
    grade.add_argument("--output-mb", type=float, default=1.0, metavar="MB", help="output kept per cell (default 1)")
    grade.add_argument("--output-kill-mb", type=float, default=64.0, metavar="MB",
                       help="output per notebook after which its kernel is stopped and it is rejected (default 64)")
    grade.add_argument("--interrupt-grace", type=float, default=3.0, metavar="S",
                       help="seconds a timed-out cell has to stop after the interrupt before the kernel is killed")
    grade.add_argument("--max-notebook-mb", type=float, default=20.0, metavar="MB",
                       help="larger submitted notebooks are rejected (default 20)")
    grade.add_argument("--student", action="append", default=[], metavar="ID",
                       help="grade only this student (repeatable); others keep their earlier results")
    grade.add_argument("--force", action="store_true", help="grade again even if a result is up to date")
    grade.add_argument("--trust", action="append", default=[], metavar="ID",
                       help="after review: the static scan's findings for this student become notes, not a "
                            "rejection (the sandbox and the in-kernel checks still apply)")
    grade.add_argument("--read-only", action="append", default=[], metavar="PATH",
                       help="another folder kernels may read (e.g. a dataset); never the course or submissions")
    grade.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                       help="an environment variable for the kernels")
    grade.add_argument("--show-hidden-tests", action="store_true",
                       help="keep hidden tests in the feedback (nbgrader's default; here they are removed)")
    grade.add_argument("--keep-scratch", action="store_true", help="keep the scratch courses (debugging)")
    grade.add_argument("--quiet", action="store_true", help="no progress bar")
    grade.add_argument("--no-sandbox-i-understand", action="store_true",
                       help="grade WITHOUT isolation when bubblewrap is unavailable: notebooks can then read the "
                            "hidden tests, the gradebook and other students' work and use the network")
    grade.set_defaults(func=_grade)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="course", description="Fine-tuning course kit helpers.")
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare-model", help="convert the embedded model to the cache (and build the tiny one)")
    prep.add_argument("--model", choices=["embedded", "tiny", "all"], default="embedded")
    prep.add_argument("--force", action="store_true", help="rebuild even if the cache is ready")
    prep.set_defaults(func=_prepare_model)
    sub.add_parser("env", help="print versions, device and GPU capabilities").set_defaults(func=_env)
    colab = sub.add_parser("colab-cells", help="write the 'Open in Colab' badge and the setup cell into every "
                           "notebook, from [project.urls] Repository in pyproject.toml")
    colab.add_argument("--check", action="store_true", help="change nothing; exit 1 if a notebook differs")
    colab.add_argument("--folder", default=None, help="the notebooks' folder (default: the repository's notebooks/)")
    colab.set_defaults(func=_colab_cells)
    _grade_parser(sub)
    _serve_parser(sub)
    _multi_gpu_parser(sub)
    args = parser.parse_args(argv)
    args.argv = argv
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
