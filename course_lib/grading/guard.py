"""The guard: trusted cells the grader adds to a notebook before nbgrader runs it, to catch at run time the tampering
a static scan (``scan.py``) cannot see.

* The prelude (first cell, before any student code) snapshots the builtins and IPython's machinery: input and AST
  transformers, event callbacks, ``run_cell``/``showtraceback``/``set_custom_exc``, the kernel's message path
  (``session.send``), ``sys`` hooks.
* After each instructor code cell (helpers, tests) a guard records the objects it defined (``check_close``, ``np``).
* Before each test cell a guard checks that the names the test uses are still what the instructor defined, that
  the builtins it uses are neither shadowed nor replaced, that the functions it and the instructor's helpers call
  through modules (``math.isclose``, ``np.testing.assert_allclose``) are not notebook code, that the objects it
  compares are not of a notebook class with its own ``==``, and (a "deep" check, also at the end) that no function,
  class member or object of the notebook sits anywhere in an installed module (monkeypatching). Every guard checks
  that no hook was added or replaced, no builtin changed, and no module is loaded from a file the notebook wrote
  (a ``numpy.py`` in the working folder).

The guard inspects the notebook's objects through C-level accessors (``type.__dict__["__mro__"]`` and the like), so
looking at them never runs their code. Each guard publishes a display message of type ``MIME``: its label, its
sequence number and its problems, signed with an HMAC whose key only the prelude's closure holds (computed with a
captured ``hashlib.sha256``, so patching ``hmac`` later reveals nothing). The grader accepts a run only when every
guard cell produced exactly one genuine report, in order, with no problem: a notebook that deletes, suppresses,
replays or fakes the guard (for instance by patching ``session.send`` to drop error messages) is rejected rather
than graded. What still gets through: tampering by a route neither the scan nor the guard knows, and tampering
done *during* a test and undone before the next guard (a timer thread); values a function returns inside a test
are not inspected (an always-equal object is the scan's to catch).
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
    sha256, os_realpath, basename, real = hashlib.sha256, os.path.realpath, os.path.basename, {}

    def realpath(path):  # memoized: a guard asks about the same thousand module files every time
        if path not in real:
            real[path] = os_realpath(path)
        return real[path]

    key = sha256(token.encode()).digest()
    inner, outer = bytes_(b ^ 0x36 for b in key + bytes_(32)), bytes_(b ^ 0x5C for b in key + bytes_(32))
    allowed = tuple_(realpath(p) for p in allowed + [sys.prefix, sys.base_prefix, "/usr"])
    writable = tuple_(realpath(p) for p in (os.getcwd(), "/tmp", "/dev/shm"))
    import pkgutil  # the names a file the notebook writes must not take: the standard library and installed ones
    protected = set(sys.stdlib_module_names) | {m.name for m in pkgutil.iter_modules(
        [p for p in sys.path if p and realpath(p).startswith(allowed)])}
    # ipykernel swaps builtins.input/getpass in and out around every cell: not the notebook's doing
    ignore, missing, defined, counter = {"_", "__", "___", "input", "raw_input", "getpass"}, object_(), {}, [0]
    dunders = ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__bool__", "__len__", "__float__",
               "__int__", "__abs__", "__contains__", "__hash__")

    # C-level accessors: inspecting a notebook's object never runs its code (no __getattr__, no metaclass)
    function_type, method_type, module_type, partial = types.FunctionType, types.MethodType, types.ModuleType, \
        functools.partial
    type_module, type_dict, type_mro = (type_.__dict__["__module__"].__get__, type_.__dict__["__dict__"].__get__,
                                        type_.__dict__["__mro__"].__get__)
    module_dict, code_of, issubclass_ = module_type.__dict__["__dict__"].__get__, \
        function_type.__dict__["__code__"].__get__, issubclass
    library = {}
    cells = os.path.dirname(_course_guard_factory.__code__.co_filename) + "/"

    def mac(text):
        return sha256(outer + sha256(inner + text.encode()).digest()).hexdigest()

    def func(obj):
        return obj.__func__ if type_(obj) is method_type else obj

    def written(path):
        path = realpath(path)
        return path.startswith(writable) and not path.startswith(allowed)

    def notebook_file(path):
        """Code the notebook wrote: a cell (IPython compiles each into this kernel's cell folder) or a file it
        saved and imported. Not "<string>": namedtuple and dataclasses generate library code there."""
        return path.startswith(cells) or (path[:1] == "/" and written(path))

    def module_file(module):
        path = module_dict(module).get("__file__") if type_(module) is module_type else None
        return path if type_(path) is str_ else None

    def from_notebook(obj, depth=0):
        kind = type_(obj)
        if depth > 4:
            return False
        if kind is method_type or kind is staticmethod or kind is classmethod:
            return from_notebook(obj.__func__, depth + 1)
        if kind is partial:
            return from_notebook(obj.func, depth + 1)
        if kind is function_type:
            return notebook_file(code_of(obj).co_filename)
        if kind is property:
            return any_(from_notebook(f, depth + 1) for f in (obj.fget, obj.fset) if f is not None)
        cls = obj if issubclass_(kind, type_) else kind
        module = type_module(cls)
        if module == "__main__":
            return True
        path = module_file(sys.modules.get(module))
        return bool(path) and notebook_file(path)

    def machinery():
        items = {"sys.gettrace": sys.gettrace(), "sys.getprofile": sys.getprofile(),
                 "sys.displayhook": func(sys.displayhook), "sys.excepthook": func(sys.excepthook),
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
            items["sys.stdout.session"] = getattr_(sys.stdout, "session", None)
        return items, {k: tuple_(v) for k, v in hooks.items()}

    base_items, base_hooks = machinery()

    def same(a, b):
        if type_(a) is tuple_ and type_(b) is tuple_:
            return len_(a) == len_(b) and all_(x is y for x, y in zip_(a, b))
        return a is b

    def library_problems():
        """Functions, classes or objects from the notebook sitting in an installed module (monkeypatching)."""
        problems = []
        for name, module in list_(sys.modules.items()):
            key_ = (name, id(module))
            if key_ not in library:
                path = module_file(module)
                library[key_] = bool(path) and realpath(path).startswith(allowed)
            if not library[key_]:
                continue
            for attr, value in list_(module_dict(module).items()):  # noqa: B007
                kind = type_(value)
                if kind is module_type or kind is str_:
                    continue
                if issubclass_(kind, type_) and type_module(value) == name:
                    for member, inner in list_(type_dict(value).items()):
                        if type_(inner) in (function_type, staticmethod, classmethod, property) and \
                                from_notebook(inner):
                            problems.append(f"`{name}.{attr}.{member}` was replaced by code from the notebook")
                elif from_notebook(value):
                    problems.append(f"`{name}.{attr}` was replaced by code from the notebook")
        return problems

    def global_problems(deep):
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
            path = module_file(module)
            if path and written(path) and basename(path) not in shipped and name.split(".")[0] in protected:
                problems.append(f"module `{name}` is loaded from {path}, a file the notebook wrote in place of the "
                                "real one")
        return problems + (library_problems() if deep else [])

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
            elif value is not missing and not issubclass_(type_(value), (type_, function_type, module_type)):
                for klass in type_mro(type_(value)):
                    own = [d for d in dunders if d in type_dict(klass)]
                    if type_module(klass) == "__main__" and own:
                        problems.append(f"`{name}` is an object of the notebook's class `{klass.__name__}` "
                                        f"with its own {', '.join(own)}")
        for chain in chains:
            obj = ns.get(chain[0], original.get(chain[0], missing))
            for i, attr in enumerate(chain[1:], 1):
                if type_(obj) is not module_type:
                    break
                obj, dotted = module_dict(obj).get(attr, missing), ".".join(chain[: i + 1])
                if obj is missing:
                    break
                if from_notebook(obj):
                    problems.append(f"`{dotted}`, which the tests call, was replaced by code from the notebook")
                    break
                if type_(obj) is types.BuiltinFunctionType and getattr_(obj, "__self__", None) is bi \
                        and obj.__name__ != attr:
                    problems.append(f"`{dotted}`, which the tests call, was replaced by the builtin `{obj.__name__}`")
                    break
        return problems

    def guard(label, names=(), chains=(), snap=(), deep=False):
        try:
            problems = name_problems(names, chains) + global_problems(deep)
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

    def call(self, label: str, names: list[str] = (), chains: list[list[str]] = (), snap: list[str] = (),
             deep: bool = False) -> str:
        return f"{self.name}({label!r}, {list(names)!r}, {[list(c) for c in chains]!r}, {list(snap)!r}, {deep!r})"

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
