"""``course grade``: class-scale nbgrader autograding that survives hostile submissions.

``batch.grade_batch`` is what the CLI calls. Modules, one idea each: ``collect`` (finding and reading submissions),
``template`` (the assignment, prepared once), ``notebook`` (rebuilding a submission in the source's structure),
``scan`` (static tampering checks), ``guard`` (in-kernel tampering checks), ``sandbox`` + ``launcher`` (bubblewrap,
rlimits, seccomp), ``execute`` (nbgrader's Execute with limits), ``run`` (one submission, one process),
``verdict`` (status and reason), ``report`` (CSV, feedback, summary).
"""

from .batch import Options, SandboxUnavailable, grade_batch
from .template import GradingSetupError

__all__ = ["GradingSetupError", "Options", "SandboxUnavailable", "grade_batch"]
