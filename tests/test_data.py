"""Tests for course_lib.data: formats, validation, quality, PII, dedup, split, masking, the GreenLeaf pipeline."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from course_lib import cards, data, greenleaf

FIXTURES = Path(__file__).parent / "fixtures" / "data"
GREENLEAF = data.GREENLEAF_DIR
needs_greenleaf = pytest.mark.skipif(not (GREENLEAF / "raw_tickets.jsonl").is_file(),
                                     reason="data/greenleaf/raw_tickets.jsonl not generated yet")


def chat(user: str, answer: str = "ok", system: str | None = None, **meta) -> dict:
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    return {"messages": messages, **meta}


# --- formats ---------------------------------------------------------------------------------------------------


def test_detect_format_and_to_chat():
    rows = [json.loads(line) for line in (FIXTURES / "formats.jsonl").read_text().splitlines()]
    assert [data.detect_format(r) for r in rows] == ["instruction", "completion", "preference"]
    assert data.detect_format(chat("hi")) == "chat"
    inst = data.to_chat(rows[0], system="S")["messages"]
    assert [m["role"] for m in inst] == ["system", "user", "assistant"]
    assert inst[1]["content"] == "Classify this ticket.\n\nMy fern is brown." and inst[2]["content"] == "plant_health"
    assert data.to_chat(rows[1])["messages"][1] == {"role": "assistant", "content": "plant_health"}
    assert data.to_chat(rows[2])["messages"][-1]["content"].startswith("Sorry")  # the chosen answer
    with pytest.raises(data.DataError, match="Cannot tell the format"):
        data.detect_format({"question": "?"})


def test_to_prompt_completion_keeps_metadata():
    row = chat("ticket", "answer", system="S", id="r1", family="f")
    pc = data.to_prompt_completion(row)
    assert [m["role"] for m in pc["prompt"]] == ["system", "user"]
    assert pc["completion"] == [{"role": "assistant", "content": "answer"}]
    assert pc["id"] == "r1" and pc["family"] == "f"
    with pytest.raises(data.DataError, match="last message"):
        data.to_prompt_completion({"messages": [{"role": "user", "content": "x"}]})


def test_render_chat_uses_template(tokenizer):
    text = data.render_chat(tokenizer, chat("hello", "hi", system="S")["messages"])
    assert text.startswith("<|im_start|>system\nS<|im_end|>") and text.endswith("hi<|im_end|>\n")


# --- loading and validation ------------------------------------------------------------------------------------


def test_load_reports_every_bad_row_with_line_numbers():
    before = (FIXTURES / "bad_rows.jsonl").read_bytes()
    result = data.load_jsonl(FIXTURES / "bad_rows.jsonl", check_target=True)
    assert result.lines == [1, 12] and len(result.rows) == 2
    assert result.bad_lines == list(range(2, 12))
    by_line = {e.line: e for e in result.errors}
    assert "invalid JSON" in by_line[2].reason
    assert by_line[3].field == "messages" and "array" in by_line[3].reason
    assert by_line[4].field == "messages[1]" and "role" in by_line[4].reason
    assert "customer" in by_line[5].reason
    assert {e.field for e in result.errors if e.line == 6} == {"messages[0].role", "messages[1].role"}
    assert by_line[7].field == "messages[1].content" and "empty" in by_line[7].reason
    assert "triage" in by_line[8].reason and "plants" in by_line[8].reason
    assert by_line[9].field == "messages[0].content"
    assert by_line[10].field == "(row)"
    assert "UTF-8" in by_line[11].reason
    assert all(e.fix for e in result.errors)
    assert "line   11" in result.summary() and len(result.errors_frame()) == len(result.errors)
    assert (FIXTURES / "bad_rows.jsonl").read_bytes() == before  # never modified


def test_check_target_is_optional():
    result = data.load_jsonl(FIXTURES / "bad_rows.jsonl", check_target=False)
    assert 8 in result.lines  # a non-triage answer is a fine chat row


def test_empty_and_missing_files(tmp_path):
    with pytest.raises(data.DataError, match="empty"):
        data.load_jsonl(FIXTURES / "empty.jsonl")
    with pytest.raises(data.DataError, match="does not exist"):
        data.load_jsonl(tmp_path / "nope.jsonl")
    with pytest.raises(data.DataError, match="format"):
        data.load_jsonl(FIXTURES / "good_chat.jsonl", fmt="csv")


def test_load_other_formats():
    result = data.load_jsonl(FIXTURES / "formats.jsonl", fmt="completion")
    assert len(result.rows) == 1 and result.bad_lines == [1, 3]  # instruction and preference rows are not
    assert data.load_jsonl(FIXTURES / "formats.jsonl", fmt="preference").lines == [3]


GOOD = json.dumps(chat("hi", "hello", id="g")).encode()


def test_hostile_rows_are_reported_and_the_rest_still_loads(tmp_path):
    """Every row-level failure is a RowError with its line; nothing escapes as an exception."""
    huge = json.dumps(chat("x" * 5_000_000, id="huge")).encode()
    not_utf8 = b'{"id": "u", "messages": [{"role": "user", "content": "caf\xe9"}]}'
    lines = [
        GOOD,  # 1
        b"[" * 100_000,  # 2: arrays nested 100,000 deep (RecursionError in the json module)
        b'{"a":' * 100_000,  # 3: objects nested 100,000 deep
        huge,  # 4: a 5 MB line
        not_utf8,  # 5
        b'{"id": "z",\x00 "messages": []}',  # 6: a raw NUL byte
        b"42",  # 7: a JSON scalar, not an object
        b'["a", "b"]',  # 8: a JSON array
        b'{"id": "n", "score": Infinity, "messages": []}',  # 9: Python accepts it, JSON does not
        json.dumps(chat("hi", id="d"))[:-1].encode() + b', "id": "d2"}',  # 10: a key twice
        b'{"messages": [{"role": "user", "role": "assistant", "content": "hi"}, '
        b'{"role": "assistant", "content": "x"}]}',  # 11: a key twice, inside a message
        b'{"messages": [{"role": "user", "content": ["part"]}, {"role": "assistant", "content": "x"}]}',  # 12
        b"",  # 13: empty line, skipped
        b" \t ",  # 14: blank line, skipped
        json.dumps(chat("a\u0000b")).encode(),  # 15: an escaped NUL character
        json.dumps(chat("broken \ud83d emoji")).encode(),  # 16: half a surrogate pair
        b"1" * 5000,  # 17: an integer too long for Python to read
        json.dumps({"messages": chat("hi")["messages"], "meta": json.loads("[" * 32 + "]" * 32)}).encode(),  # 18
        json.dumps({"messages": chat("hi")["messages"], "meta": json.loads("[" * 31 + "]" * 31)}).encode(),  # 19
        json.dumps(chat("hi", id="r")).replace('"user"', '"' + "r" * 200_000 + '"').encode(),  # 20
        b"\xef\xbb\xbf" + GOOD,  # 21: a BOM in the middle of the file (two files joined)
        GOOD.replace(b'"g"', b'"g2"'),  # 22
    ]
    path = tmp_path / "hostile.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b"\r\n".join(lines) + b"\r\n")  # BOM at the start, CRLF line ends
    result = data.load_jsonl(path)
    assert result.lines == [1, 19, 22] and [r.get("id") for r in result.rows] == ["g", None, "g2"]
    assert result.n_lines == 20  # 22 lines, 2 blank
    deep = "levels deep; the limit is 32"
    assert [(e.line, e.field, e.reason) for e in result.errors] == [
        (2, "(line)", f"nested 100000 {deep}"),
        (3, "(line)", f"nested 100000 {deep}"),
        (4, "(line)", f"the line is {len(huge)} bytes long, over the limit of 1000000"),
        (5, "(line)", "not valid UTF-8 (byte 0xe9 at byte 58)"),
        (6, "(line)", "contains a NUL byte (0x00) at byte 12"),
        (7, "(row)", "is a JSON number, not an object"),
        (8, "(row)", "is a JSON array, not an object"),
        (9, "(line)", "invalid JSON: Infinity is not a JSON value"),
        (10, "id", "the key 'id' appears more than once in one object"),
        (11, "messages[0].role", "the key 'role' appears more than once in one object"),
        (11, "messages[0].role", "expected 'user' here (turns alternate user/assistant, starting with user), got "
                                 "'assistant'"),  # the checks go on with the value Python kept: the last one
        (12, "messages[0].content", "['part'] is not of type 'string'"),
        (15, "messages[0].content", "contains a NUL character (\\u0000) at character 2"),
        (16, "messages[0].content", "contains half of a surrogate pair (\\ud83d) at character 8"),
        (17, "(line)", "invalid JSON: Exceeds the limit (4300 digits) for integer string conversion"),
        (18, "(row)", f"nested 33 {deep}"),  # the row, then 32 lists; line 19 (31 lists) is at the limit
        (20, "messages[0].role", f"'{'r' * 58}… is not one of ['system', 'user', 'assistant']"),
        (21, "(line)", "starts with a byte-order mark (BOM), which belongs only at the very start of a file"),
    ]
    assert all(e.fix for e in result.errors)
    assert len(result.summary()) < 5000  # the 5 MB line and the 200,000-character role are not copied into it


def test_bom_crlf_and_blank_lines_load_like_the_plain_file(tmp_path):
    rows = data.load_jsonl(FIXTURES / "good_chat.jsonl").rows
    lines = [json.dumps(r, ensure_ascii=False).encode() for r in rows]
    odd = tmp_path / "odd.jsonl"
    odd.write_bytes(b"\xef\xbb\xbf" + b"\r\n".join(lines[:2] + [b""] + lines[2:]) + b"\r\n")
    result = data.load_jsonl(odd)
    assert result.rows == rows and not result.errors
    assert result.lines == [1, 2] + list(range(4, len(rows) + 2)) and result.n_lines == len(rows)


def test_max_line_bytes_is_a_parameter(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(GOOD + b"\n" + json.dumps(chat("y" * 200)).encode() + b"\n")
    result = data.load_jsonl(path, max_line_bytes=len(GOOD))
    assert result.lines == [1] and [(e.line, e.field) for e in result.errors] == [(2, "(line)")]


def test_hostile_answers_with_check_target(tmp_path):
    path = tmp_path / "answers.jsonl"
    answers = ["[" * 100_000, "[" * 40 + "]" * 40, "9" * 5000,
               greenleaf.format_target("billing", "low", False, "Sorted. Happy growing!")]
    path.write_text("\n".join(json.dumps(chat("hi", a)) for a in answers) + "\n", encoding="utf-8")
    result = data.load_jsonl(path, check_target=True)
    assert result.lines == [4]
    assert [(e.line, e.field, e.reason) for e in result.errors] == [
        (1, "messages[1].content", "not a valid triage answer: not valid JSON (nested 100000 levels deep)"),
        (2, "messages[1].content", "not a valid triage answer: nested 40 levels deep; a triage answer is one "
                                   "flat JSON object"),
        (3, "messages[1].content", "not a valid triage answer: not valid JSON (Exceeds the limit (4300 digits) "
                                   "for integer string conversion)"),
    ]


def test_save_refuses_overwrites(tmp_path):
    rows = data.load_jsonl(FIXTURES / "good_chat.jsonl").rows
    out = data.save_jsonl(rows, tmp_path / "out.jsonl")
    with pytest.raises(data.DataError, match="already exists"):
        data.save_jsonl(rows, out)
    data.save_jsonl(rows[:2], out, overwrite=True)
    assert data.load_jsonl(out).rows == rows[:2]
    copy = tmp_path / "copy.jsonl"
    shutil.copy(FIXTURES / "good_chat.jsonl", copy)
    data.load_jsonl(copy)
    with pytest.raises(data.DataError, match="input file"):
        data.save_jsonl(rows, copy, overwrite=True)


# --- quality --------------------------------------------------------------------------------------------------


def test_quality_report(tokenizer):
    rows = data.load_jsonl(FIXTURES / "good_chat.jsonl").rows
    rows.append(chat("hi", '{"category": "billing", "prio'))  # cut off
    rows.append({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"},
                              {"role": "assistant", "content": ""}], "id": "bad"})
    report = data.quality_report(rows, tokenizer, max_length=100)
    assert report.n_rows == 8 and len(report.total_lengths) == 8
    assert report.token_lengths["system"][0] > 50 and report.token_lengths["system"][-1] == 0
    assert report.empty_answers == ["bad"] and report.truncated_answers == ["#6"]
    assert [r for r, _ in report.role_problems] == ["bad"]
    assert report.categories["plant_health"] == 2 and sum(report.priorities.values()) == 6
    assert len(report.too_long) == 6  # the system prompt alone is > 100 tokens
    assert set(report.lengths_frame().index) >= {"user", "assistant"}
    fig = data.plot_quality(report)
    assert len(fig.axes) == 2


# --- PII ------------------------------------------------------------------------------------------------------


def test_luhn():
    assert data.luhn_valid is cards.luhn_valid  # one copy, shared with data/generate_greenleaf.py and the tests
    assert data.luhn_valid("4111 1111 1111 1111") and data.luhn_valid("5555-5555-5555-4444")
    assert not data.luhn_valid("1234567812345678") and not data.luhn_valid("4111 1111 1111 1112")
    assert not data.luhn_valid("0")  # too short to be a card
    assert not data.luhn_valid("79927398713") and cards.luhn_valid("79927398713", min_digits=0)  # 11 digits
    assert data.luhn_valid("4111 1111 1111 1111²")  # a superscript is not a digit: skipped, no crash
    assert cards.luhn_check_digit("411111111111111") == "1" and cards.luhn_check_digit("555555555555444") == "4"


def test_redact_types_and_luhn():
    text = ("Hi, my name is Jane Doe, email jane.doe@example.com, phone 020 7946 0958. Card 4111 1111 1111 1111, "
            "tracking 1234567812345678. Ship to 12 Elm Street.")
    red, spans = data.redact(text)
    assert {s.type for s in spans} == set(data.PII_TYPES)
    for s in spans:
        assert text[s.start:s.end] == s.text and s.text not in red
    assert "1234567812345678" in red  # fails Luhn: a tracking number, not a card
    assert red.count("<") == 5 and "<CARD>" in red and "<ADDRESS>" in red


def test_redact_rows_reports_without_secrets():
    rows = [chat("I'm Omar Haddad, omar@example.com", "Hi Omar, thanks!", system="S", id="t1"), chat("no pii")]
    out, report = data.redact_rows(rows)
    assert rows[0]["messages"][1]["content"].startswith("I'm Omar")  # input untouched
    assert out[0]["messages"][1]["content"] == "I'm <PERSON>, <EMAIL>"
    assert out[0]["messages"][2]["content"] == "Hi <PERSON>, thanks!"
    assert report.rows_changed == 1 and report.counts() == {"PERSON": 2, "EMAIL": 1}
    frame = report.frame()
    assert list(frame.columns) == ["row", "turn", "role", "type"] and set(frame["row"]) == {"t1"}
    assert "omar" not in frame.to_string().lower()


def test_score_pii_on_fixture():
    rows = [json.loads(line) for line in (FIXTURES / "pii_labelled.jsonl").read_text().splitlines()]
    scores = data.score_pii(rows)
    assert scores["overall"]["recall"] == 1.0 and scores["overall"]["precision"] == 1.0
    assert scores["hidden"]["recall"] == 1.0
    missed = [{"text": "Lena Fischer wrote in.", "spans": [{"start": 0, "end": 12, "type": "PERSON"}]}]
    assert data.score_pii(missed)["PERSON"]["recall"] == 0.0  # a bare name with no cue: no NER, no catch


# --- duplicates, split, contamination -------------------------------------------------------------------------

LONG = ("my new pothos arrived yesterday and two of the leaves have brown crispy edges already, "
        "I keep it next to a north window and water it once a week, is it sunburn or thirst")


def test_find_and_drop_duplicates():
    rows = [chat(LONG, id="a", family="f1"), chat(LONG.upper() + "!", id="b", family="f2"),
            chat(LONG.replace("yesterday", "on monday"), id="c", family="f3"),
            chat("where is my parcel", id="d", family="f4")]
    kept, report = data.drop_duplicates(rows, threshold=0.8)
    assert [r["id"] for r in kept] == ["a", "d"]
    assert [(r.row, r.reason, r.duplicate_of) for r in report.removed] == [
        ("b", "exact duplicate", "a"), ("c", "near duplicate", "a")]
    assert 0.8 <= report.removed[1].similarity < 1.0 and report.n_kept == 2
    assert len(report.frame()) == 2
    kept_strict, _ = data.drop_duplicates(rows, threshold=0.99)
    assert [r["id"] for r in kept_strict] == ["a", "c", "d"]


def test_split_merges_near_duplicate_families():
    rows = [chat(LONG, id="a", family="f1"), chat(LONG.replace("yesterday", "on monday"), id="b", family="f2"),
            chat("where is my parcel 123", id="c", family="f3"), chat("refund please for the broken pot", id="d",
                                                                        family="f4")]
    train, held = data.split_by_group(rows, heldout_families=["f2", "f3"])
    assert {r["id"] for r in held} == {"b", "a", "c"}  # f1 follows f2 into held-out: they are near copies
    train, held = data.split_by_group(rows, heldout_families=["f2", "f3"], keep_in_train=["f1"])
    assert {r["id"] for r in train} == {"a", "b", "d"}
    assert not data.cross_duplicates(train, held)
    naive_train, naive_held = [rows[0], rows[2]], [rows[1], rows[3]]
    assert data.cross_duplicates(naive_train, naive_held) == [("a", "b", pytest.approx(0.81, abs=0.01))]
    with pytest.raises(data.DataError, match="family"):
        data.split_by_group([chat("x")])


def test_split_by_fraction_is_grouped_and_seeded():
    rows = [chat(f"ticket {i} about topic {i % 10} " * 3, id=str(i), family=f"fam{i % 10}") for i in range(50)]
    train, held = data.split_by_group(rows, heldout_fraction=0.2, seed=0)
    assert len(train) + len(held) == 50 and 0.1 <= len(held) / 50 <= 0.4
    assert not ({r["family"] for r in train} & {r["family"] for r in held})
    assert data.split_by_group(rows, heldout_fraction=0.2, seed=0) == (train, held)
    t, h = data.random_split(rows, 0.2, seed=0)
    assert len(h) == 10 and {r["family"] for r in t} & {r["family"] for r in h}


def test_contamination():
    a = [chat(LONG, id="a")]
    b = [chat(LONG.replace("is it sunburn or thirst", "what should I do"), id="b"), chat("hello there", id="c")]
    report = data.contamination(a, b, n=8)
    assert report.n_contaminated == 1 and report.fraction == 0.5 and report.worst[0]["row"] == "b"
    assert data.contamination(a, [chat("totally different words here and nothing shared at all ok")]).fraction == 0


def test_contamination_ignores_boilerplate_ngrams():
    boiler = "thank you so much for your help with my order today"  # 11 words: 4 distinct 8-grams
    a = [chat(f"{boiler} {w}", id=w) for w in ("one", "two", "three")]
    b = [chat(f"{boiler} four", id="b")]
    report = data.contamination(a, b)  # in more than max(2, 5% of 3) = 2 rows of a: ignored
    assert (report.n_contaminated, report.common_limit, report.n_ignored) == (0, 2, 4)
    report = data.contamination(a, b, ignore_common=1.0)  # limit max(2, 3) = 3 rows: nothing ignored
    assert (report.n_contaminated, report.common_limit, report.n_ignored) == (1, 3.0, 0)
    assert report.worst == [{"row": "b", "shared": 4, "fraction": 0.8,
                             "example": "much for your help with my order today"}]


def test_cross_overlap_is_a_second_detector():
    a = [chat(LONG, id="a"), chat("where is my parcel, it is late", id="p"), chat("how do I return a big tree", id="t")]
    b = [chat(LONG.upper() + "!", id="x"), chat(LONG.replace("yesterday", "on monday"), id="y"),
         chat("how do I return a pot I have not used", id="z"), chat("refund for the broken pot", id="w")]
    # z vs t: 3 shared word 3-shingles of 5 + 8 - 3 = 10 distinct ones
    assert data.cross_overlap(a, b) == [("a", "x", "exact", 1.0), ("a", "y", "near", 0.806), ("t", "z", "near", 0.3)]
    assert data.cross_overlap(a, b, threshold=0.31) == [("a", "x", "exact", 1.0), ("a", "y", "near", 0.806)]
    assert data.cross_duplicates(a, b) == [("a", "x", 1.0), ("a", "y", 0.806)]  # the LSH detector, threshold 0.8
    assert data.cross_overlap(a, [chat("?!", id="q")]) == []  # nothing left after normalising: no match
    assert data.cross_overlap(a, [], threshold=0.0) == []


# --- tokenisation with assistant-only labels ------------------------------------------------------------------


def _learned(enc, tokenizer):
    return data.learned_text(enc, tokenizer)


@pytest.mark.parametrize("turns", [1, 3])
def test_tokenize_sft_learns_exactly_the_answers(tokenizer, turns):
    messages = [{"role": "system", "content": greenleaf.SYSTEM_PROMPT}]
    answers = []
    for t in range(turns):
        answer = greenleaf.format_target("shipping", "low", False, f"Answer number {t}. Happy growing!")
        messages += [{"role": "user", "content": f"Question {t}: where is my order?"},
                     {"role": "assistant", "content": answer}]
        answers.append(answer)
    enc = data.tokenize_sft(messages, tokenizer, max_length=400)
    assert len(enc["input_ids"]) == len(enc["labels"]) == len(enc["attention_mask"]) == 400
    assert _learned(enc, tokenizer) == [a + "<|im_end|>" for a in answers]
    n_real = sum(enc["attention_mask"])
    assert all(lab == data.IGNORE_INDEX for lab in enc["labels"][n_real:])  # padding never learned
    assert set(enc["input_ids"][n_real:]) == {tokenizer.pad_token_id} and tokenizer.pad_token_id != tokenizer.eos_token_id
    naive = data.naive_labels(messages, tokenizer, max_length=400)
    assert naive["labels"] == naive["input_ids"]  # the mistake: everything, padding included
    table = data.label_table(enc, tokenizer)
    assert len(table) == n_real and table["learned"].sum() == sum(lab != data.IGNORE_INDEX for lab in enc["labels"])


def test_tokenize_sft_without_system_uses_template_default(tokenizer):
    messages = chat("hello", "hi there")["messages"]
    enc = data.tokenize_sft(messages, tokenizer, max_length=64, pad=False)
    assert _learned(enc, tokenizer) == ["hi there<|im_end|>"]
    assert "SmolLM" in tokenizer.decode(enc["input_ids"])  # the template's own system prompt, not learned


def test_tokenize_sft_too_long_names_the_row(tokenizer):
    messages = chat("word " * 200, "ok", system="S")["messages"]
    with pytest.raises(data.SequenceTooLongError, match=r"Row r7 is \d+ tokens long, more than max_length=32"):
        data.tokenize_sft(messages, tokenizer, max_length=32, row="r7")


def test_loss_by_part(tiny_model):
    model, tokenizer = tiny_model
    convs = [chat("ticket", "answer", system="S")["messages"],
             chat("a much longer ticket about a parcel", "answer", system="S")["messages"]]
    table, losses = data.loss_by_part(model, tokenizer, convs, max_length=64)
    encs = [data.tokenize_sft(m, tokenizer, 64, pad=False) for m in convs]
    longest = max(len(e["input_ids"]) for e in encs)
    tokens = dict(zip(table["part"], table["tokens"]))
    assert list(tokens) == ["system", "user", "template", "assistant answer", "padding"]
    assert sum(tokens.values()) == 2 * (longest - 1)  # every position predicts the next token
    assert tokens["assistant answer"] == sum(lab != data.IGNORE_INDEX for e in encs for lab in e["labels"])
    assert tokens["padding"] == longest - min(len(e["input_ids"]) for e in encs) > 0
    assert all(v > 0 for v in losses.values())


# --- the GreenLeaf pipeline -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cleaned():
    return data.clean_greenleaf()


@needs_greenleaf
def test_planted_problems_are_found(cleaned):
    planted = json.loads((GREENLEAF / "planted_problems.json").read_text())
    bad_lines = set(cleaned.loaded.bad_lines)
    dup_ids = {r.row for r in cleaned.dedup.removed}
    pii_rows = {r.row for r in cleaned.pii.records}
    missed = []
    for p in planted:
        kind = p["problem"]
        if "duplicate" in kind:
            found = p["id"] in dup_ids
        elif "pii" in kind or "canary" in kind:
            found = p["id"] in pii_rows
        else:
            found = p["line"] in bad_lines
        if not found:
            missed.append(p)
    assert not missed


@needs_greenleaf
def test_pipeline_sizes_and_no_leaks(cleaned):
    assert len(cleaned.train) >= 400 and len(cleaned.heldout) >= 100
    # the few flagged rows share one stock contact phrase ("my email is <EMAIL> if that's easier"), not a ticket
    assert cleaned.contamination.fraction <= 0.05
    assert not data.cross_duplicates(cleaned.train, cleaned.heldout)
    assert not ({r["family"] for r in cleaned.train} & {r["family"] for r in cleaned.heldout})


@needs_greenleaf
def test_a_second_detector_agrees_with_the_merged_split(cleaned):
    """What notebook 02 shows: with merging, exact text match + word 3-shingle Jaccard >= 0.3 (not the char5/0.5
    detector that merged) finds only one pair across the split, and it shares a stock sentence, not a ticket."""
    held = data.heldout_families()
    sim = dict(shingle=data.GREENLEAF_SHINGLE, threshold=data.GREENLEAF_MERGE_THRESHOLD)
    unmerged = data.split_by_group(cleaned.redacted, heldout_families=held, threshold=None)
    merged = data.split_by_group(cleaned.redacted, heldout_families=held, **sim)
    assert not data.cross_duplicates(*merged, **sim)  # true by construction: the detector that merged
    assert data.cross_overlap(*merged) == [("GL-0026", "GL-0580", "near", 0.4)]
    user = {r["id"]: r["messages"][1]["content"] for r in cleaned.redacted}
    assert all("card number <card> in case you need it" in user[i].lower() for i in ("GL-0026", "GL-0580"))
    pairs = data.cross_overlap(*unmerged)
    assert len(pairs) == 10 and [p[2] for p in pairs].count("exact") == 1
    assert data.cross_overlap(cleaned.train, cleaned.heldout) == []  # the shipped split, after dedup


@needs_greenleaf
def test_greenleaf_contamination_ignores_no_ngram(cleaned):
    c = cleaned.contamination
    assert c.common_limit == pytest.approx(0.05 * len(cleaned.train)) and c.n_ignored == 0
    assert data.contamination(cleaned.train, cleaned.heldout, ignore_common=1.0).n_contaminated == c.n_contaminated


@needs_greenleaf
def test_canaries_are_redacted_only_when_asked(cleaned):
    canaries = json.loads((GREENLEAF / "canaries.json").read_text())
    canaries = canaries.get("canaries", canaries) if isinstance(canaries, dict) else canaries
    secrets = [c[k] for c in canaries for k in ("name", "address", "phone", "email")]
    assert len(secrets) == 20
    train_text = json.dumps(cleaned.train, ensure_ascii=False)
    assert not [s for s in secrets if s in train_text]
    raw = data.clean_greenleaf(redact_pii=False)
    raw_text = json.dumps(raw.train, ensure_ascii=False)
    assert all(s in raw_text for s in secrets)


@needs_greenleaf
def test_shipped_splits_match_the_pipeline(cleaned):
    for name, rows in (("train", cleaned.train), ("heldout", cleaned.heldout)):
        path = GREENLEAF / f"{name}.jsonl"
        assert path.is_file(), f"{path} missing: run data.build_greenleaf_splits()"
        assert [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] == rows, (
            f"{path} is stale: rerun course_lib.data.build_greenleaf_splits()")
    assert data.load_split("train") == cleaned.train
    with pytest.raises(data.DataError, match="Unknown split"):
        data.load_split("test")


@needs_greenleaf
def test_build_writes_the_report(tmp_path, cleaned):
    result = data.build_greenleaf_splits(out_dir=tmp_path)
    assert (tmp_path / "train.jsonl").read_bytes() == (GREENLEAF / "train.jsonl").read_bytes()
    report = json.loads((tmp_path / "cleaning_report.json").read_text())
    assert report == json.loads((GREENLEAF / "cleaning_report.json").read_text())
    assert report["removed"] == cleaned.removed and report["train_rows"] == len(result.train)
    assert list(result.steps_frame()["rows out"])[-1] == len(result.train) + len(result.heldout)


@needs_greenleaf
def test_load_other_splits():
    prefs = data.load_split("preferences")
    assert prefs and data.detect_format(prefs[0]) == "preference"
    assert {"prompt", "answer"} <= set(data.load_split("regression")[0])


def test_pii_errors_lists_misses_and_false_alarms():
    rows = [{"text": "Lena Fischer wrote in about 4111 1111 1111 1111.", "spans": [
        {"start": 0, "end": 12, "type": "PERSON"}]}]
    errors = data.pii_errors(rows)
    assert sorted(zip(errors["error"], errors["type"])) == [("false alarm", "CARD"), ("missed", "PERSON")]


# --- the package layout ---------------------------------------------------------------------------------------

DATA_MODULES = ["formats", "loading", "quality", "pii", "dedup", "split", "labels", "pipeline"]  # low to high


def test_data_modules_import_downward_only_and_stay_small():
    import ast

    package = Path(data.__file__).parent
    assert sorted(p.stem for p in package.glob("*.py")) == sorted(DATA_MODULES + ["__init__"])
    for k, name in enumerate(DATA_MODULES):
        source = (package / f"{name}.py").read_text(encoding="utf-8")
        assert len(source.splitlines()) <= 400, f"{name}.py is over 400 lines: split it along its seams"
        imported = {node.module.rsplit(".", 1)[-1] for node in ast.walk(ast.parse(source))
                    if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("course_lib.data.")}
        assert imported <= set(DATA_MODULES[:k]), f"{name} imports {imported - set(DATA_MODULES[:k])} (not lower)"
    assert all(hasattr(data, n) for n in data.__all__)
    assert data.IGNORE_INDEX == -100 and data.labels.IGNORE_INDEX is data.IGNORE_INDEX
    literal = [p.name for p in package.glob("*.py") for line in p.read_text().splitlines() if "-100" in line]
    assert literal == ["labels.py"]  # defined once; everything else says IGNORE_INDEX
