"""course_lib: the tested helpers behind every notebook and lab of the fine-tuning course.

One module per idea; CONTRIBUTING.md ("Architecture") lists them and what depends on what. Import the module you need, e.g.
``from course_lib import models``.
"""

__version__ = "0.1.0"
