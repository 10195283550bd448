"""The guard: trusted cells the grader adds to a notebook before nbgrader runs it, to catch tampering that a static
scan (``scan.py``) cannot see.

* The prelude (first cell, before any student code) snapshots the builtins and IPython's machinery: input and AST
  transformers, event callbacks, ``run_cell``/``showtraceback``/``set_custom_exc`` and the kernel's message path,
  ``sys`` hooks.
* After each instructor code cell (helpers, tests) a guard records the objects it defined (``check_close``, ``np``).
* Before and after each test cell a guard checks: the names the test uses still are what the instructor defined,
  builtins it uses are not shadowed or replaced, the functions it calls through modules (``math.isclose``,
  ``np.testing.assert_allclose``) were not replaced by notebook code, the objects it compares do not come from a
  notebook class with its own ``==``; and at every guard, that no hook was added or replaced and no module is
  loaded from a file the notebook wrote (a ``numpy.py`` in the working folder).

Each guard publishes a display message of type ``MIME``: its label, its sequence number and its problems, signed
with an HMAC whose key only the prelude's closure holds (captured C functions compute it, so patching ``hmac`` or
``json`` later does not reveal it). The grader accepts a run only when every guard cell produced exactly one
genuine report, in order, with no problem: a notebook that deletes, suppresses, replays or fakes the guard (for
instance by patching the kernel's ``session.send`` to drop error messages) is rejected rather than graded. What still gets through: code the
static scan does not know that tampers *between* a guard and the test and undoes it before the next guard.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field

MIME = "application/x-course-guard+json"

PRELUDE = r'''
def _course_guard_factory(token, allowed, shipped):
    import builtins as bi, functools, hashlib, os, sys, types
    from IPython.display import publish_display_data as publish
    shell = get_ipython()
    kernel = getattr(shell, "kernel", None)
    original = dict(bi.__dict__)
    (getattr_, isinstance_, type_, tuple_, hasattr_, repr_, list_, len_, zip_, all_, any_, bytes_, str_,
     base_exception, object_) = (getattr, isinstance, type, tuple, hasattr, repr, list, len, zip, all, any, bytes,
                                 str, BaseException, object)
    sha256, realpath, basename = hashlib.sha256, os.path.realpath, os.path.basename
    key = sha256(token.encode()).digest()
    inner, outer = bytes_(b ^ 0x36 for b in key + bytes_(32)), bytes_(b ^ 0x5C for b in key + bytes_(32))
    allowed = tuple_(realpath(p) for p in allowed + [sys.prefix, sys.base_prefix, "/usr"])
    writable = tuple_(realpath(p) for p in (os.getcwd(), "/tmp", "/dev/shm", os.path.expanduser("~")))
    ignore, missing, defined, counter = {"_", "__", "___"}, object_(), {}, [0]
    dunders = ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__bool__", "__len__", "__float__",
               "__int__", "__abs__", "__contains__", "__hash__")

    def mac(text):
        return sha256(outer + sha256(inner + text.encode()).digest()).hexdigest()

    def func(obj):
        return getattr_(obj, "__func__", obj)

    def from_notebook(obj, depth=0):
        if depth > 4:
            return False
        if isinstance_(obj, functools.partial):
            return from_notebook(obj.func, depth + 1)
        obj = func(obj)
        code = getattr_(obj, "__code__", None)
        if isinstance_(code, types.CodeType):
            name = code.co_filename
            return not (name.startswith("<frozen") or realpath(name).startswith(allowed))
        if isinstance_(obj, (types.BuiltinFunctionType, types.ModuleType)):
            return False
        cls = obj if isinstance_(obj, type_) else type_(obj)
        module = getattr_(cls, "__module__", None)
        if module == "__main__":
            return True
        path = getattr_(sys.modules.get(module), "__file__", None)
        return bool(path) and not realpath(path).startswith(allowed)

    def machinery():
        items = {"sys.gettrace": sys.gettrace(), "sys.getprofile": sys.getprofile(),
                 "sys.displayhook": sys.displayhook, "sys.excepthook": sys.excepthook,
                 "shell.custom_exceptions": tuple_(shell.custom_exceptions),
                 "shell.input_transformer_manager": shell.input_transformer_manager,
                 "shell.display_pub": shell.display_pub, "shell.displayhook": shell.displayhook,
                 "shell.compile": shell.compile, "shell.events": shell.events}
        hooks = {"input_transformers_cleanup": shell.input_transformers_cleanup,
                 "input_transformers_post": shell.input_transformers_post, "ast_transformers": shell.ast_transformers}
        for event, callbacks in shell.events.callbacks.items():
            hooks["event " + event] = callbacks
        for name in ("run_cell", "run_cell_async", "_run_cell", "run_code", "run_ast_nodes", "showtraceback",
                     "_showtraceback", "showsyntaxerror", "transform_cell", "transform_ast", "should_run_async",
                     "set_custom_exc", "ex", "ev"):
            if hasattr_(shell, name):
                items["shell." + name] = func(getattr_(shell, name))
        if kernel is not None:
            for name in ("do_execute", "execute_request", "send_response", "_publish_status", "dispatch_shell",
                         "process_one"):
                if hasattr_(kernel, name):
                    items["kernel." + name] = func(getattr_(kernel, name))
            items["kernel.session"], items["kernel.iopub_socket"] = kernel.session, kernel.iopub_socket
            for name in ("send", "serialize", "sign", "msg", "pack"):
                items["session." + name] = func(getattr_(kernel.session, name))
            pub = getattr_(sys.stdout, "session", None)
            items["sys.stdout.session"] = pub
        return items, {k: tuple_(v) for k, v in hooks.items()}

    base_items, base_hooks = machinery()

    def same(a, b):
        if isinstance_(a, tuple_) and isinstance_(b, tuple_):
            return len_(a) == len_(b) and all_(x is y for x, y in zip_(a, b))
        return a is b

    def global_problems():
        problems = []
        for key_, value in original.items():
            if key_ not in ignore and bi.__dict__.get(key_, missing) is not value:
                problems.append(f"the builtin `{key_}` was replaced or deleted")
        items, hooks = machinery()
        for key_, value in base_items.items():
            if not same(items.get(key_, missing), value):
                problems.append(f"`{key_}` was replaced")
        for key_, now in hooks.items():
            before = base_hooks.get(key_, ())
            added = [h for h in now if not any_(h is b for b in before)]
            if any_(from_notebook(h) for h in added) or any_(not any_(b is h for h in now) for b in before):
                problems.append(f"the notebook changed IPython's `{key_}` hooks")
        for name, module in list_(sys.modules.items()):
            path = getattr_(module, "__file__", None)
            if isinstance_(path, str_) and realpath(path).startswith(writable) and basename(path) not in shipped:
                problems.append(f"module `{name}` is loaded from {path}, a file the notebook wrote")
        return problems

    def name_problems(names, chains):
        problems, ns = [], shell.user_ns
        for name in names:
            value = ns.get(name, missing)
            if name in defined:
                if value is not defined[name]:
                    problems.append(f"`{name}`, defined by the instructor's cell, was redefined by the notebook")
            elif name in original and name not in ignore:
                if value is not missing:
                    problems.append(f"the notebook rebinds the builtin `{name}`, which the tests use")
            elif value is not missing and not isinstance_(value, (type_, types.FunctionType, types.ModuleType)):
                for klass in type_(value).__mro__:
                    own = [d for d in dunders if d in klass.__dict__]
                    if getattr_(klass, "__module__", None) == "__main__" and own:
                        problems.append(f"`{name}` is an object of the notebook's class `{klass.__name__}` "
                                        f"with its own {', '.join(own)}")
        for chain in chains:
            obj = ns.get(chain[0], original.get(chain[0], missing))
            for i, attr in enumerate(chain[1:], 1):
                if not isinstance_(obj, types.ModuleType):
                    break
                obj, dotted = getattr_(obj, attr, missing), ".".join(chain[: i + 1])
                if obj is missing:
                    break
                if from_notebook(obj):
                    problems.append(f"`{dotted}`, which the tests call, was replaced by code from the notebook")
                    break
                if isinstance_(obj, types.BuiltinFunctionType) and getattr_(obj, "__self__", None) is bi \
                        and obj.__name__ != attr:
                    problems.append(f"`{dotted}`, which the tests call, was replaced by the builtin `{obj.__name__}`")
                    break
        return problems

    def guard(label, names=(), chains=(), snap=()):
        try:
            problems = name_problems(names, chains) + global_problems()
        except base_exception as err:  # a broken guard is a finding, not a crash of the grader
            problems = [f"the guard could not run: {type_(err).__name__}: {err}"]
        for name in snap:
            if name in shell.user_ns:
                defined[name] = shell.user_ns[name]
        seq = counter[0]
        counter[0] = seq + 1
        report = {"label": label, "seq": seq, "problems": problems,
                  "mac": mac(f"{seq}|{label}|{repr_(problems)}")}
        publish({"application/x-course-guard+json": report})

    return guard
'''


@dataclass
class Guard:
    """The secrets and injected cells of one run: ``name`` is the guard's function in the kernel (a notebook can
    find it with ``dir()``); ``token`` is the key of the HMAC that signs each report, kept in the prelude's closure
    (the prelude cell's source, which carries it, runs before any student code and is never shown to it)."""

    name: str = field(default_factory=lambda: "_course_guard_" + secrets.token_hex(8))
    token: str = field(default_factory=lambda: secrets.token_hex(16))

    def prelude(self, ro_roots: list[str], shipped: list[str]) -> str:
        return (PRELUDE + f"\n{self.name} = _course_guard_factory({self.token!r}, {list(ro_roots)!r}, "
                f"{sorted(shipped)!r})\ndel _course_guard_factory\n")

    def call(self, label: str, names: list[str] = (), chains: list[list[str]] = (), snap: list[str] = ()) -> str:
        return f"{self.name}({label!r}, {list(names)!r}, {[list(c) for c in chains]!r}, {list(snap)!r})"

    def is_guard_cell(self, source: str) -> bool:
        return source.startswith(self.name + "(") or source.startswith(PRELUDE[:40])


def guard_payloads(outputs: list[dict]) -> list[dict]:
    return [o.get("data", {}).get(MIME) for o in outputs
            if o.get("output_type") == "display_data" and MIME in o.get("data", {})]


def report_mac(token: str, seq: int, label: str, problems: list[str]) -> str:
    """The kernel's HMAC-SHA256 (written out by hand there, from a captured ``hashlib.sha256``)."""
    key = hashlib.sha256(token.encode()).digest()
    return hmac.new(key, f"{seq}|{label}|{problems!r}".encode(), hashlib.sha256).hexdigest()


def check_guard_cell(guard: Guard, seq: int, label: str, outputs: list[dict]) -> list[str]:
    """Problems of the ``seq``-th executed guard cell (empty list: it ran, reported genuinely, found nothing)."""
    errors = [o for o in outputs if o.get("output_type") == "error"]
    if errors:
        return [f"the grader's check at '{label}' failed to run: {errors[0].get('ename')}: "
                f"{str(errors[0].get('evalue'))[:200]}"]
    payloads = guard_payloads(outputs)
    if len(payloads) != 1 or not isinstance(payloads[0], dict):
        return [f"the grader's check at '{label}' did not report (its output was suppressed or faked)"]
    report = payloads[0]
    problems = report.get("problems")
    if not isinstance(problems, list) or not all(isinstance(p, str) for p in problems) or \
            report.get("seq") != seq or report.get("label") != label or \
            not hmac.compare_digest(str(report.get("mac")), report_mac(guard.token, seq, label, problems)):
        return [f"the grader's check at '{label}' reported a forged or replayed result"]
    return list(problems)
