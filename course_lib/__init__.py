"""course_lib: the tested helpers behind every notebook and lab of the fine-tuning course.

One module per idea (see DESIGN.md): ``models``, ``profile``, ``quiz``, ``data``, ``decide``, ``lora``,
``train``, ``evaluate``, ``serve``, ``grading``, ``cli``. Import the module you need, e.g.
``from course_lib import models``.
"""

__version__ = "0.1.0"
