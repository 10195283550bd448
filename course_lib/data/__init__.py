"""Data that is safe to train on: formats, validation, quality, PII redaction, dedup, leak-free split, masking.

The steps, in the order notebook 02 walks them, and the module that holds each:

1. ``load_jsonl`` (``loading``): read a JSONL file and report *every* bad row (line, field, reason, how to fix);
   row formats and conversion to chat are in ``formats``.
2. ``quality_report`` / ``plot_quality`` (``quality``): token lengths per role, empty or cut-off answers, balance.
3. ``redact_rows`` (``pii``): replace emails, phones, card numbers, street addresses and names with typed
   placeholders (Microsoft Presidio's recognizers, run offline without a spaCy language model).
4. ``drop_duplicates`` (``dedup``): exact duplicates (hash) and near duplicates (MinHash + LSH on shingles:
   overlapping runs of 3 words by default, of 5 characters for GreenLeaf's short tickets).
5. ``split_by_group`` (``split``): whole ticket families go to train or held-out; near-duplicate families are
   merged first, so no near copy can sit on both sides. ``contamination`` measures what overlap is left, and
   ``cross_overlap`` re-checks the split with a detector other than the one that merged it.
6. ``tokenize_sft`` (``labels``): token ids with labels on the assistant's answer only (everything else is
   ``IGNORE_INDEX``).

``clean_greenleaf`` (``pipeline``) runs steps 1 and 3 to 5 on the GreenLeaf export. Imports point one way:
``formats`` ← ``loading`` ← ``quality``; ``formats`` ← ``pii``, ``dedup`` ← ``split``, ``labels``; ``pipeline``
uses ``loading``, ``pii``, ``dedup`` and ``split``. Everything is re-exported here: ``from course_lib import data``.

Rows are plain dicts. Chat rows look like ``{"messages": [{"role": ..., "content": ...}, ...], ...}``;
other top-level keys (``id``, ``family``, ...) are metadata and travel with the row.
"""

from course_lib.cards import luhn_valid
from course_lib.data.dedup import (NUM_PERM, DedupReport, Removal, drop_duplicates, exact_key, find_duplicates,
                                   jaccard, near_duplicate_pairs, shingles)
from course_lib.data.formats import (FORMATS, ROLES, ROW_SCHEMAS, DataError, Messages, Row, detect_format,
                                     render_chat, to_chat, to_prompt_completion)
from course_lib.data.labels import (IGNORE_INDEX, LOSS_PARTS, SequenceTooLongError, assistant_char_spans, collate,
                                    label_html, label_table, learned_text, loss_by_part, naive_labels, token_parts,
                                    tokenize_sft)
from course_lib.data.loading import (GREENLEAF_DIR, MAX_DEPTH, MAX_LINE_BYTES, LoadResult, RowError,
                                     check_role_order, check_target, load_jsonl, read_json_lines, save_jsonl)
from course_lib.data.pii import (ADDRESS_PATTERNS, PERSON_PATTERNS, PHONE_PATTERNS, PII_TYPES, PiiReport, PiiSpan,
                                 RedactionRecord, detect_pii, pii_analyzer, pii_errors, redact, redact_rows,
                                 score_pii)
from course_lib.data.pipeline import (GREENLEAF_DEDUP_THRESHOLD, GREENLEAF_MERGE_THRESHOLD, GREENLEAF_SHINGLE,
                                      SPLIT_NAMES, CleaningResult, build_greenleaf_splits, canary_families,
                                      clean_greenleaf, heldout_families, load_split)
from course_lib.data.quality import QualityReport, plot_quality, quality_report
from course_lib.data.split import (ContaminationReport, contamination, cross_duplicates, cross_overlap, merged_groups,
                                   ngrams, random_split, split_by_group)

__all__ = [
    # formats
    "Row", "Messages", "FORMATS", "ROLES", "ROW_SCHEMAS", "DataError", "detect_format", "to_chat",
    "to_prompt_completion", "render_chat",
    # loading
    "GREENLEAF_DIR", "MAX_LINE_BYTES", "MAX_DEPTH", "RowError", "LoadResult", "check_role_order", "check_target",
    "load_jsonl", "read_json_lines", "save_jsonl",
    # quality
    "QualityReport", "quality_report", "plot_quality",
    # pii
    "PII_TYPES", "PiiSpan", "luhn_valid", "ADDRESS_PATTERNS", "PHONE_PATTERNS", "PERSON_PATTERNS", "pii_analyzer",
    "detect_pii", "redact", "RedactionRecord", "PiiReport", "redact_rows", "score_pii", "pii_errors",
    # dedup
    "NUM_PERM", "exact_key", "shingles", "jaccard", "near_duplicate_pairs", "Removal", "DedupReport",
    "find_duplicates", "drop_duplicates",
    # split
    "merged_groups", "split_by_group", "random_split", "cross_duplicates", "cross_overlap", "ngrams",
    "ContaminationReport", "contamination",
    # labels
    "IGNORE_INDEX", "SequenceTooLongError", "assistant_char_spans", "tokenize_sft", "naive_labels", "label_table",
    "label_html", "learned_text", "collate", "LOSS_PARTS", "token_parts", "loss_by_part",
    # pipeline
    "SPLIT_NAMES", "CleaningResult", "canary_families", "heldout_families", "GREENLEAF_SHINGLE",
    "GREENLEAF_DEDUP_THRESHOLD", "GREENLEAF_MERGE_THRESHOLD", "clean_greenleaf", "build_greenleaf_splits",
    "load_split",
]
