"""Reading a notebook's code without running it: the names and attribute chains a test cell uses, the names an
instructor cell defines (for the in-kernel guard, ``guard.py``), and the static scan of what a student wrote.

The scan looks for code that tampers with grading rather than answering the question: patching the test helpers
or the libraries the tests call, rebinding exception classes, reaching into IPython, the kernel or the interpreter
(hooks, frames, builtins, ``sys.modules``), running code built from strings (``exec``, ``eval``, ``__import__``,
pickle), or reading the notebook's input history (where hidden tests land once they ran). ``reject`` findings
stop the submission before it runs; ``review`` findings are graded and listed in the reason for a human to read.
A scan can be evaded by code it does not know; the guard (run inside the kernel) checks the effects as well.
"""

from __future__ import annotations

import ast
import builtins
import re
from dataclasses import dataclass

REJECT, REVIEW = "reject", "review"

DENY_NAMES = {
    "__builtins__": "reaches the interpreter's builtins", "__import__": "imports modules from strings",
    "exec": "runs code built from strings", "eval": "runs code built from strings",
    "compile": "compiles code built from strings", "globals": "can rewrite the notebook's namespace",
    "locals": "can rewrite the notebook's namespace", "vars": "can rewrite a module's or the notebook's namespace",
    "breakpoint": "starts a debugger",
    "_ih": "reads the input history (hidden tests)", "_oh": "reads the output history", "_i": "reads the input history",
    "_ii": "reads the input history", "_iii": "reads the input history", "_dh": "reads the shell's history",
}
HISTORY_NAMES = {"In", "Out"}
DENY_ATTRS = {
    "__builtins__", "__globals__", "__code__", "__closure__", "__subclasses__", "__bases__", "__base__", "__mro__",
    "__setattr__", "__delattr__", "__getattribute__", "__reduce__", "__reduce_ex__", "__instancecheck__",
    "__subclasscheck__", "f_globals", "f_locals", "f_back", "f_builtins", "f_code", "tb_frame", "gi_frame", "cr_frame",
    "ag_frame", "_getframe", "settrace", "setprofile", "addaudithook", "set_custom_exc", "custom_exceptions",
    "showtraceback", "_showtraceback", "showsyntaxerror", "input_transformers_cleanup", "input_transformers_post",
    "input_transformer_manager", "ast_transformers", "display_pub", "displayhook", "excepthook", "run_cell",
    "run_cell_async", "run_code", "run_ast_nodes", "user_ns", "user_global_ns", "register_magic_function",
    "register_magics", "history_manager", "iopub_socket", "CodeType", "FunctionType", "co_code", "methodcaller",
    "get_ipython", "InteractiveShell", "ZMQInteractiveShell", "IPKernelApp", "__dict__", "_current_frames",
    "extract_stack", "walk_stack", "format_stack", "print_stack", "StackSummary", "__array_ufunc__",
    "__array_function__",
}
SENSITIVE_STORES = {"send", "send_multipart", "serialize", "sign", "pack", "publish", "session", "pub_socket",
                    "shell", "kernel", "write", "flush"}
DENY_MODULES = {
    "ctypes": "reads and writes the interpreter's memory", "gc": "finds objects the notebook did not create",
    "builtins": "changes the interpreter's builtins", "__main__": "rewrites the notebook's namespace",
    "ipykernel": "reaches into the kernel", "jupyter_client": "talks to the kernel", "zmq": "talks to the kernel",
    "nbgrader": "reaches the grader", "nbclient": "reaches the grader", "nbconvert": "reaches the grader",
    "traitlets": "reconfigures IPython", "unittest": "mocks code the tests call", "pytest": "monkeypatches",
    "pickle": "runs code hidden in data", "marshal": "loads code objects", "dill": "runs code hidden in data",
    "cloudpickle": "runs code hidden in data", "copyreg": "changes how objects are rebuilt",
    "shelve": "runs code hidden in data", "joblib": "runs code hidden in data",
    "course_lib.grading": "reaches the grader",
    "inspect": "reads frames, closures and the source of cells that ran",
    "linecache": "reads the source of cells that ran (hidden tests)", "trace": "traces the tests as they run",
    "pdb": "debugs the tests as they run", "bdb": "debugs the tests as they run", "cProfile": "hooks every call",
    "profile": "hooks every call",
}
IPYTHON_ALLOWED = ("IPython.display",)
REVIEW_MODULES = {"traceback": "reads the lines of the code that called it", "importlib": "imports modules by name",
                  "signal": "changes signal handling", "operator": "may call attributes by name"}
ALLOWED_SHELL_CALLS = {"run_line_magic", "run_cell_magic", "system", "getoutput"}
SAFE_MAGICS = {"matplotlib", "time", "timeit", "capture", "pwd", "ls", "who", "whos", "pip", "conda", "precision"}
DENY_MAGICS = {"load_ext", "reload_ext", "run", "config", "autocall", "alias", "macro", "rerun", "recall", "store",
               "reset", "reset_selective", "debug", "pdb", "xmode", "autoawait", "load", "loadpy", "history", "hist",
               "edit", "prun", "killbgscripts", "colors", "doctest_mode", "logstart", "automagic", "sx", "sc"}
COMPARISON_DUNDERS = {"__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__bool__", "__len__", "__contains__",
                      "__float__", "__int__", "__index__", "__abs__", "__round__", "__hash__", "__array__"}
NUMPY_HOOKS = {"__array_ufunc__", "__array_function__", "__array_wrap__", "__array_finalize__", "__array_priority__"}
EXCEPTION_NAMES = {n for n, v in vars(builtins).items() if isinstance(v, type) and issubclass(v, BaseException)}
BUILTIN_NAMES = set(dir(builtins))


@dataclass(frozen=True)
class Finding:
    severity: str  # "reject" or "review"
    cell: str  # the cell as the student knows it: "'add'" or "added cell 5 (after 'add')"
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.cell}, line {self.line}: {self.message}"


def to_python(source: str) -> str:
    """IPython syntax (``%magic``, ``!shell``) turned into the Python the kernel really runs."""
    from IPython.core.inputtransformer2 import TransformerManager

    try:
        return TransformerManager().transform_cell(source)
    except Exception:  # a cell IPython cannot transform fails the same way in the kernel
        return source


def parse(source: str) -> ast.Module | None:
    """The cell's AST as the kernel sees it (IPython syntax transformed, top-level ``await`` allowed, as IPython
    allows it); None when even the kernel could not run it."""
    try:
        return compile(to_python(source), "<cell>", "exec",
                       flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _chain(node: ast.AST) -> list[str] | None:
    """``np.testing.assert_allclose`` -> ["np", "testing", "assert_allclose"]; None when the root is not a name."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return [node.id] + parts[::-1]
    return None


def stored_names(tree: ast.AST) -> set[str]:
    """Names a cell binds at any level: assignments, defs, classes, imports, loop and ``with`` targets."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names if a.name != "*")
    return names


def top_level_names(tree: ast.Module) -> list[str]:
    """Names a cell defines at module level (what the guard snapshots after an instructor cell)."""
    names: list[str] = []
    for node in tree.body:
        found = stored_names(node) if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) \
            else {node.name}
        names += sorted(n for n in found if n not in names)
    return names


def names_used(source: str) -> tuple[list[str], list[list[str]]]:
    """The free names a test cell uses and the attribute chains it calls through (``math.isclose``)."""
    tree = parse(source)
    if tree is None:
        return [], []
    local = stored_names(tree)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            local.update(a.arg for a in ast.walk(node.args) if isinstance(a, ast.arg))
    names = sorted({n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)} - local)
    modules = import_aliases([source])  # a chain through a module the cell imports itself is still checked
    chains: list[list[str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
            chain = _chain(node)
            if chain and (chain[0] not in local or chain[0] in modules) and chain not in chains:
                chains.append(chain)
    return names, sorted(chains)


def import_aliases(sources: list[str]) -> set[str]:
    """Names bound by ``import`` anywhere in the notebook (modules, or things taken from them)."""
    names: set[str] = set()
    for source in sources:
        tree = parse(source)
        for node in ast.walk(tree) if tree else []:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names.update((a.asname or a.name).split(".")[0] for a in node.names if a.name != "*")
    return names


def _constant_return(fn: ast.FunctionDef) -> bool:
    body = [n for n in fn.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
    return len(body) == 1 and isinstance(body[0], ast.Return) and isinstance(body[0].value, ast.Constant)


def _magic_findings(node: ast.Call, add) -> None:
    """``get_ipython().run_line_magic('name', ...)``: the magic's name decides."""
    if node.func.attr in ("run_line_magic", "run_cell_magic") and node.args and isinstance(node.args[0], ast.Constant):
        magic = str(node.args[0].value)
        if magic in DENY_MAGICS:
            add(REJECT, node, f"uses the %{magic} magic, which runs code or changes the shell outside the cell")
        elif magic not in SAFE_MAGICS:
            add(REVIEW, node, f"uses the %{magic} magic")


def scan_cell(source: str, label: str, *, imported: set[str], test_attrs: set[str]) -> list[Finding]:
    """Findings for one student-written code cell. ``imported``: names bound by imports in the notebook;
    ``test_attrs``: attribute names the tests call (patching one of those is tampering, not configuration)."""
    tree = parse(source)
    if tree is None:
        return [Finding(REVIEW, label, 0, "could not be read by the scan (a syntax error?)")] if source.strip() else []
    findings: list[Finding] = []
    stored = stored_names(tree)

    def add(severity: str, node: ast.AST, message: str) -> None:
        finding = Finding(severity, label, getattr(node, "lineno", 0), message)
        if finding not in findings:
            findings.append(finding)

    shell_calls: set[int] = set()
    literal_sets = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
                    and n.func.id in ("setattr", "delattr") and len(n.args) >= 2 and
                    isinstance(n.args[1], ast.Constant) and isinstance(n.args[1].value, str)}
    constant_stores: set[int] = set()  # `torch.backends.cudnn.benchmark = True`: configuration, not a patch
    function_stores: set[int] = set()  # `x.check = lambda *a: None`: a function put in place of another
    defined = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if isinstance(node.value, ast.Constant):
                constant_stores.update(id(t) for t in targets)
            elif _is_function(node.value, defined):
                function_stores.update(id(t) for t in targets)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                isinstance(node.func.value, ast.Call) and isinstance(node.func.value.func, ast.Name) and \
                node.func.value.func.id == "get_ipython" and node.func.attr in ALLOWED_SHELL_CALLS:
            shell_calls.add(id(node.func.value.func))
            _magic_findings(node, add)
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            if node.id == "get_ipython" and id(node) not in shell_calls:
                add(REJECT, node, "reaches into IPython (get_ipython)")
            elif node.id in DENY_NAMES and isinstance(node.ctx, ast.Load):
                add(REJECT, node, f"`{node.id}` {DENY_NAMES[node.id]}")
            elif node.id in HISTORY_NAMES and isinstance(node.ctx, ast.Load) and node.id not in stored:
                add(REJECT, node, f"`{node.id}` reads the notebook's history (hidden tests)")
            elif node.id in EXCEPTION_NAMES and isinstance(node.ctx, (ast.Store, ast.Del)):
                add(REJECT, node, f"rebinds the exception class `{node.id}`")
            elif node.id in ("setattr", "delattr") and isinstance(node.ctx, ast.Load) and id(node) not in literal_sets:
                add(REVIEW, node, f"`{node.id}` with an attribute name computed at run time (the guard checks what "
                                  "it replaced)")
        elif isinstance(node, ast.Attribute):
            chain = _chain(node)
            if node.attr in DENY_ATTRS:
                add(REJECT, node, f"`.{node.attr}` reaches into the interpreter, IPython or the kernel")
            elif node.attr == "modules" and chain and chain[0] == "sys":
                add(REJECT, node, "`sys.modules` swaps modules the tests import")
            if isinstance(node.ctx, (ast.Store, ast.Del)):
                _store_findings(node, chain, add, imported=imported, test_attrs=test_attrs,
                                constant=id(node) in constant_stores, function=id(node) in function_stores)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for module in modules:
                root = module.split(".")[0]
                if module.startswith(IPYTHON_ALLOWED) and (isinstance(node, ast.ImportFrom) or
                                                            all(a.asname for a in node.names)):
                    continue
                if root == "IPython":
                    add(REJECT, node, f"imports `{module}`: reaches into IPython")
                elif root in DENY_MODULES or module in DENY_MODULES:
                    add(REJECT, node, f"imports `{module}`: {DENY_MODULES.get(module) or DENY_MODULES[root]}")
                elif root in REVIEW_MODULES:
                    add(REVIEW, node, f"imports `{module}`: {REVIEW_MODULES[root]}")
            if isinstance(node, ast.ImportFrom) and (node.module or "") == "sys" and \
                    any(a.name in ("modules", "settrace", "setprofile", "_getframe") for a in node.names):
                add(REJECT, node, "imports interpreter hooks from `sys`")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in NUMPY_HOOKS:
            add(REJECT, node, f"defines `{node.name}`, which decides how numpy (and its testing) sees the object")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in COMPARISON_DUNDERS:
            if _constant_return(node):
                add(REJECT, node, f"defines `{node.name}` that ignores its argument and always answers the same")
            else:
                add(REVIEW, node, f"defines `{node.name}` (an object that compares as it likes)")
        elif isinstance(node, ast.Call) and id(node.func) in literal_sets:
            target = _chain(node.args[0]) or ["…"]
            fake = ast.Attribute(value=node.args[0], attr=node.args[1].value, ctx=ast.Store(), lineno=node.lineno)
            value = node.args[2] if len(node.args) > 2 else None
            _store_findings(fake, target + [node.args[1].value], add, imported=imported, test_attrs=test_attrs,
                            constant=isinstance(value, ast.Constant), function=_is_function(value, defined))
    return findings


def _is_function(value: ast.AST | None, defined: set[str]) -> bool:
    """A lambda, a function the notebook defines, or a builtin function (``print`` returns None: a silent check)."""
    if isinstance(value, ast.Lambda):
        return True
    return isinstance(value, ast.Name) and (value.id in defined or (value.id in BUILTIN_NAMES and
                                                                    callable(getattr(builtins, value.id, None))))


def _store_findings(node: ast.Attribute, chain: list[str] | None, add, *, imported: set[str], test_attrs: set[str],
                    constant: bool, function: bool) -> None:
    dotted = ".".join(chain) if chain else f"….{node.attr}"
    root = chain[0] if chain else None
    if node.attr in test_attrs or node.attr in SENSITIVE_STORES:
        add(REJECT, node, f"replaces `{dotted}`, which the tests or the kernel rely on")
    elif root in imported and not constant:
        add(REJECT, node, f"patches `{dotted}` of an imported module with code")
    elif function and root not in ("self", "cls"):
        add(REJECT, node, f"puts a function in place of `{dotted}` (monkeypatching)")


_LINE = re.compile(r"\s+")


def summarize(findings: list[Finding], limit: int = 3) -> str:
    """"'mean', line 2: replaces `math.isclose`, which the tests or the kernel rely on; ... (+2 more)"."""
    text = "; ".join(_LINE.sub(" ", str(f)) for f in findings[:limit])
    return text + (f" (+{len(findings) - limit} more)" if len(findings) > limit else "")
