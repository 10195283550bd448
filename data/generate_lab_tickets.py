"""Write the dataset lab's messy export and its answer key (deterministic: same seed, same bytes).

Usage::

    python data/generate_lab_tickets.py              # writes the two files below
    python data/generate_lab_tickets.py --out DIR    # writes both into DIR instead (the tests use this)

Files
-----
labs/source/dataset_lab/tickets.jsonl   the export the learner cleans (nbgrader copies it into the release)
data/labs/dataset_lab_planted.json      where each planted problem is: ``[{"line", "id", "problem", "detail"}]``
                                        (+ ``values`` for PII, ``original`` for copies); never released

The tickets are new: 14 GreenLeaf situations ("families", ``L01`` to ``L14``) that the course's own export does not
have, four wordings each, written by us (CC0). Every row is in the course's chat format
``{"id", "family", "messages": [system, user, assistant]}`` with the assistant turn written by
``greenleaf.format_target``, labelled by the rules in ``data/generate_greenleaf.py``. Names, e-mail addresses (in
``.example`` domains), phone numbers (555 and Ofcom drama ranges) and card numbers (Luhn-valid, invented) are
made up.

Planted problems (74 rows on 75 lines: line 38 is blank, as exports sometimes have):

- 11 broken rows: ``malformed_json`` (3: cut short, trailing comma, a Python dict), ``wrong_roles`` (3: role
  ``bot``, assistant before user, the answer pasted as a second user turn), ``empty_answer`` (2), ``bad_target``
  (3: priority ``critical``, no ``reply``, ``needs_human`` as a string);
- 3 ``exact_duplicate`` rows (one differs only in case and spacing), 3 ``near_duplicate`` rows (one or two words
  changed, filed under another family): character 5-shingle Jaccard similarity >= 0.8 with their original;
- 1 ``leak``: a looser rewording of a training-family ticket (char-5 Jaccard between 0.5 and 0.7, so a 0.7
  dedup keeps it) filed under a held-out family; only merging near-duplicate families before the split (at 0.5)
  keeps it off the other side;
- 9 ``pii`` rows (valid) with e-mails, phones, card numbers, a street address and names, and look-alikes that are
  not personal data (an order number, a 16-digit tracking number that fails the Luhn check, a discount code).

Standard library + ``course_lib.greenleaf`` and ``course_lib.cards`` only.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from course_lib import cards, greenleaf  # noqa: E402

SEED = 20260511
TICKETS_PATH = ROOT / "labs" / "source" / "dataset_lab" / "tickets.jsonl"
MANIFEST_PATH = ROOT / "data" / "labs" / "dataset_lab_planted.json"
HELDOUT_FAMILIES = ("L02", "L09", "L13")  # the lab's notebook gives the learner this list
BLANK_LINE = 38


def _card(prefix: str) -> str:
    """A 16-digit number starting with ``prefix`` (15 digits, spaces allowed) whose last digit makes it pass Luhn."""
    for digit in "0123456789":
        if cards.luhn_valid(prefix + digit):
            return prefix + digit
    raise AssertionError("unreachable: one check digit always works")


CARD_1 = _card("4539 1488 0343 646")
CARD_2 = _card("5425-2334-3010-910")
TRACKING = "7302 1185 6649 0217"  # 16 digits that fail the Luhn check: not a card
assert not cards.luhn_valid(TRACKING)

# (family, category, priority, needs_human, reply, tickets). PII sits inside some tickets; PII[...] lists it.
FAMILIES = [
    ("L01", "plant_health", "medium", False,
     "Sorry about the stowaways! Pick off any snails you can see in the evening, when they come out, and check "
     "under the pot rim; they rarely harm an established plant.", [
         "Found two tiny snails in the soil of the calathea that came yesterday. Are they going to eat it?",
         "Hello, there are little snails crawling out of my new pot at night. How do I get rid of them without "
         "chemicals?",
         "snails in the compost of my begonia order, is that normal??",
         "My peperomia arrived healthy but this morning I spotted a slug on the leaves and some holes. What should "
         "I do?",
     ]),
    ("L02", "plant_health", "low", False,
     "A little fog means the terrarium is working: it recycles its own water. If the glass stays misted all day, "
     "lift the lid for an hour and keep it out of direct sun.", [
         "The closed terrarium I bought is all foggy inside every morning. Is something wrong?",
         "Hi! Condensation keeps building up on the glass of my bottle garden. Should I open the lid?",
         "terrarium glass misted over, can't see the plants anymore",
         "Quick question about the moss terrarium: it drips water down the sides after sunny days. Too wet?",
     ]),
    ("L03", "shipping", "low", False,
     "You can add a safe place or a note for the driver from the tracking link in your dispatch email, up to the "
     "morning of delivery. Plants are packed to cope with a few hours in a sheltered spot.", [
         "Can I tell the courier to leave my parcel behind the side gate? I'm at work all day.",
         "How do I add a safe place for deliveries? Last time it went back to the depot.",
         "is there a way to put delivery notes on my order, like 'leave with the neighbour next door'",
         "Hello, I won't be home on Thursday when my order is due. Can the driver leave it at 18 Quarry Lane, "
         "Hexley with my sister instead?",
     ]),
    ("L04", "shipping", "high", True,
     "I'm sorry your parcel hasn't reached you. I've passed this to our delivery team, who will open a trace with "
     "the courier and email you within one working day.", [
         "Tracking says delivered at 2:14pm yesterday but there's nothing here and the neighbours haven't seen it. "
         "You can call me on 0161 496 0732.",
         f"My order shows as delivered (tracking {TRACKING}) but there is no parcel anywhere. I've checked the "
         "porch, the bins and the shed.",
         "delivered?? no it wasn't. order GL-50318 never turned up",
         "Hi, the courier's photo shows a door that isn't mine. My parcel has been left at the wrong house.",
     ]),
    ("L05", "damaged_item", "high", True,
     "I'm so sorry, that sounds like cold damage on the way to you. A teammate will look at your photos and "
     "arrange a replacement or a refund.", [
         "My alocasia arrived after the cold snap and the leaves are black and mushy. I think it froze in the van.",
         "The whole box was ice cold and my string of pearls has gone see-through and soft. Is it dead?",
         "plant froze in transit, leaves are all limp and dark",
         "Hello, my order came during the frost and by the next morning the fiddle leaf fig had dark patches on "
         "every leaf.",
     ]),
    ("L06", "damaged_item", "medium", True,
     "Sorry we sent the wrong pot! A teammate will check your order and send the right one out, and you're "
     "welcome to keep the other.", [
         "I ordered the terracotta pot in sage green but got a white one.",
         "Wrong colour planter in my parcel, ordered charcoal, received cream.",
         "Hi, this is Tomasz Wierzbicki: the ceramic pot that arrived is the 12 cm size, but I paid for the 17 cm "
         "one.",
         "The self-watering pot in my box isn't the one in my order confirmation at all.",
     ]),
    ("L07", "returns_refunds", "low", False,
     "Yes: unused accessories can come back within 30 days in their original packaging. Start the return from "
     "your orders page and we'll email you a label.", [
         "Can I send back a watering can I haven't used? It's still in the box.",
         "What is your return policy for unopened pots?",
         "bought a grow light, changed my mind, never opened it. how long do I have to return it",
         "Hello, is it possible to return a plant stand if I decide it's too big? I bought it last week.",
     ]),
    ("L08", "returns_refunds", "medium", True,
     "Sorry for the wait! A teammate will check your return and chase the refund, and we'll email you once it's "
     "on its way.", [
         "I posted my return three weeks ago and still haven't had my refund.",
         "Your warehouse signed for my returned planter on the 3rd. Where is my money?",
         f"Hi there, it's been 20 days since I returned the hanging basket and there's no refund on my card "
         f"{CARD_2} yet.",
         "refund for my returned kit still missing, how long does it take??",
     ]),
    ("L09", "billing", "medium", True,
     "Sorry the discount didn't come through. A teammate will check the order and refund the difference to your "
     "original payment method.", [
         f"I used the code SPRING15 at checkout but my card {CARD_1} was charged the full price.",
         "My welcome discount didn't come off the total. Can you fix it?",
         "voucher accepted on the basket page but the receipt shows no discount",
         "Hello, I had a 10% newsletter code and it vanished when I paid. I was charged £42 instead of £37.80.",
     ]),
    ("L10", "billing", "low", False,
     "You can download an itemised VAT invoice from your orders page, and add a company name before you print "
     "it.", [
         "Can I get a VAT receipt for my order? It's for the office.",
         "How do I download an invoice with our company name on it?",
         "need a proper invoice for expenses pls",
         "Hi, my accountant needs an itemised invoice for last month's plant order. Where do I find one?",
     ]),
    ("L11", "account", "low", False,
     "Sorry about that! Codes can take a couple of minutes, so tap 'send again' once and check that the phone "
     "number or e-mail in your profile is current.", [
         "The login code email never arrives. I've checked my spam folder.",
         "I'm not getting the 6-digit sign-in code by text.",
         "verification code not coming through, can't log in",
         "Hello, every time I try to sign in it says a code was sent, but nothing comes. Help!\n\nThanks,\n"
         "Ruth Okonjo",
     ]),
    ("L12", "account", "urgent", True,
     "Thank you for telling us straight away. I've locked your account and passed it to our security team, who "
     "will contact you today to secure it and cancel anything you didn't order.", [
         "I got an email about a new login from another country. That wasn't me!",
         "Someone changed my account password and placed an order I didn't make. My email is "
         "priya.nandakumar@mailbox.example.",
         "there are orders in my account I never placed. I think I've been hacked",
         "Hi, I'm Oluwaseun Bakare and I was alerted to a sign-in from a device I don't own. My saved address has "
         "changed too.",
     ]),
    ("L13", "product_question", "low", False,
     "Good question! Calatheas, parlour palms and spider plants are all pet-safe, and each product page has a "
     "'pet friendly' badge so you can check before you buy.", [
         "Is the calathea you sell safe to keep with cats?",
         "Which of your hanging plants are okay for a house with a puppy?",
         "pet safe plants? I have two curious cats",
         "Hi, before I order the parlour palm: is it toxic to dogs?",
     ]),
    ("L14", "product_question", "low", True,
     "Lovely idea! I've passed your request to our sales team, who will email you a quote within two working "
     "days.", [
         "We'd like 60 small succulents as wedding favours. Do you do bulk prices?",
         "Could you quote for 25 desk plants for our new office? Reach me on (555) 014-7720 or "
         "facilities@brightdesk.example.",
         "bulk discount for a school project, about 40 seedlings?",
         "Hello, our café wants to buy a dozen large trailing plants. Is there a trade price?",
     ]),
]

# Personal data planted in valid tickets: (family, ticket index, [(type, text), ...]).
PII = [
    ("L03", 3, [("ADDRESS", "18 Quarry Lane, Hexley")]),
    ("L04", 0, [("PHONE", "0161 496 0732")]),
    ("L06", 2, [("PERSON", "Tomasz Wierzbicki")]),
    ("L08", 2, [("CARD", CARD_2)]),
    ("L09", 0, [("CARD", CARD_1)]),
    ("L11", 3, [("PERSON", "Ruth Okonjo")]),
    ("L12", 1, [("EMAIL", "priya.nandakumar@mailbox.example")]),
    ("L12", 3, [("PERSON", "Oluwaseun Bakare")]),
    ("L14", 1, [("PHONE", "(555) 014-7720"), ("EMAIL", "facilities@brightdesk.example")]),
]
LOOK_ALIKES = ["GL-50318", TRACKING, "SPRING15"]  # must survive redaction: not personal data

# Copies: (problem, family the copy is filed under, (family, ticket index) of the original, new text or None).
COPIES = [
    ("exact_duplicate", "L07", ("L07", 1), None),
    ("exact_duplicate", "L05", ("L05", 0), None),
    ("exact_duplicate", "L10", ("L10", 2), "Need a proper  invoice for expenses PLS"),
    ("near_duplicate", "L06", ("L05", 3),
     "Hello, my order came during the frost and by the next morning the fiddle leaf fig had brown patches on "
     "every leaf."),
    ("near_duplicate", "L02", ("L01", 1),
     "Hello, there are little snails crawling out of my new pot at night. How can I get rid of them without "
     "chemicals?"),
    ("near_duplicate", "L14", ("L13", 1), "Which of your hanging plants are OK for a house with a puppy?"),
    ("leak", "L09", ("L08", 0),
     "Hello, I posted my return about three weeks ago and still haven't had my refund, can you check?"),
]

# Broken rows: (problem, family, ticket, detail). Built from tickets that are not in FAMILIES.
BROKEN = [
    ("malformed_json", "L01", "There are tiny white flies around my new pots. Same pest as snails?",
     "the line is cut short (truncated export)"),
    ("wrong_roles", "L04", "Parcel says 'delivered to reception' but our building has no reception.",
     "assistant role written as 'bot'"),
    ("empty_answer", "L07", "Do you refund the delivery charge if I return a pot?",
     "assistant content is ''"),
    ("bad_target", "L12", "A password reset email I didn't ask for just arrived. Should I worry?",
     "priority 'critical' is not one of the allowed priorities"),
    ("malformed_json", "L10", "Can invoices show my business address?",
     "a trailing comma before the closing brace"),
    ("wrong_roles", "L13", "Are your ferns safe for rabbits?",
     "assistant turn before the user turn"),
    ("bad_target", "L02", "Is it okay that the moss in my terrarium went pale?",
     "the target has no 'reply' key"),
    ("malformed_json", "L14", "Do you deliver plants to offices on Saturdays?",
     "a Python dict with single quotes, not JSON"),
    ("wrong_roles", "L06", "Got a blue pot, ordered a grey one.",
     "the answer was pasted as a second user turn (no assistant turn)"),
    ("empty_answer", "L11", "Sign-in code expired before it arrived.",
     "assistant content is only whitespace"),
    ("bad_target", "L08", "My refund is less than I paid. Why?",
     "needs_human is the string 'yes', not a boolean"),
]


def _row(row_id: str, family: str, ticket: str, answer: str) -> dict:
    messages = [{"role": "system", "content": greenleaf.SYSTEM_PROMPT}, {"role": "user", "content": ticket},
                {"role": "assistant", "content": answer}]
    return {"id": row_id, "family": family, "messages": messages}


def _target(family: str) -> dict:
    _, category, priority, needs_human, reply, _ = next(f for f in FAMILIES if f[0] == family)
    return {"category": category, "priority": priority, "needs_human": needs_human,
            "reply": f"{reply} {greenleaf.SIGN_OFF}"}


def _answer(family: str) -> str:
    return greenleaf.format_target(**_target(family))


def _broken_line(problem: str, detail: str, row_id: str, family: str, ticket: str) -> str:
    """One line of the export holding the planted problem."""
    target = _target(family)
    row = _row(row_id, family, ticket, _answer(family))
    if problem == "malformed_json":
        text = json.dumps(row, ensure_ascii=False)
        if "cut short" in detail:
            return text[: int(len(text) * 0.6)]
        if "trailing comma" in detail:
            return text[:-1] + ", }"
        return repr(row)  # a Python dict: single quotes, True/False
    msgs = row["messages"]
    if problem == "wrong_roles":
        if "'bot'" in detail:
            msgs[2]["role"] = "bot"
        elif "before" in detail:
            msgs[1], msgs[2] = msgs[2], msgs[1]
        else:
            msgs[2]["role"] = "user"
    elif problem == "empty_answer":
        msgs[2]["content"] = "" if "''" in detail else "  \n"
    elif problem == "bad_target":
        if "critical" in detail:
            target["priority"] = "critical"
        elif "'reply'" in detail:
            del target["reply"]
        else:
            target["needs_human"] = "yes"
        msgs[2]["content"] = json.dumps(target, ensure_ascii=False)
    return json.dumps(row, ensure_ascii=False)


def build() -> tuple[list[str], list[dict]]:
    """The export's lines (``""`` for the blank line) and the manifest of planted problems."""
    rng = random.Random(SEED)
    # valid rows in a shuffled order; each entry: (kind, family, ticket text, extra)
    valid = [(fam, i, ticket) for fam, *_, tickets in FAMILIES for i, ticket in enumerate(tickets)]
    rng.shuffle(valid)
    entries = [{"kind": "valid", "family": f, "key": (f, i), "ticket": t} for f, i, t in valid]
    # copies go after their original, at a random distance
    for problem, family, original, text in COPIES:
        at = next(n for n, e in enumerate(entries) if e.get("key") == original)
        orig_text = next(f[5][original[1]] for f in FAMILIES if f[0] == original[0])
        pos = rng.randint(min(at + 3, len(entries)), len(entries))
        entries.insert(pos, {"kind": problem, "family": family, "original": original, "answer_of": original[0],
                             "ticket": text if text is not None else orig_text})
    for problem, family, ticket, detail in BROKEN:
        entries.insert(rng.randint(1, len(entries)), {"kind": problem, "family": family, "ticket": ticket,
                                                      "detail": detail})
    entries.insert(BLANK_LINE - 1, {"kind": "blank"})

    lines, manifest, ids_by_key = [], [], {}
    number = 0
    for line_no, e in enumerate(entries, start=1):
        if e["kind"] == "blank":
            lines.append("")
            continue
        number += 1
        row_id = f"TK-{number:03d}"
        kind = e["kind"]
        if kind == "valid":
            ids_by_key[e["key"]] = (row_id, line_no)
            lines.append(json.dumps(_row(row_id, e["family"], e["ticket"], _answer(e["family"])), ensure_ascii=False))
            pii = next((vals for fam, i, vals in PII if (fam, i) == e["key"]), None)
            if pii:
                manifest.append({"line": line_no, "id": row_id, "problem": "pii",
                                 "detail": "; ".join(f"{t}: {v}" for t, v in pii),
                                 "values": [{"type": t, "text": v} for t, v in pii]})
        elif kind in ("exact_duplicate", "near_duplicate", "leak"):
            orig_id, orig_line = ids_by_key[e["original"]]
            lines.append(json.dumps(_row(row_id, e["family"], e["ticket"], _answer(e["answer_of"])),
                                    ensure_ascii=False))
            where = "the same family" if e["family"] == e["original"][0] else f"family {e['family']}"
            detail = {"exact_duplicate": f"copy of {orig_id} (line {orig_line}), filed under {where}",
                      "near_duplicate": f"{orig_id} (line {orig_line}) with a word or two changed, filed under "
                                        f"{where}",
                      "leak": f"a rewording of {orig_id} (line {orig_line}, family {e['original'][0]}, train) "
                              f"filed under held-out family {e['family']}"}[kind]
            manifest.append({"line": line_no, "id": row_id, "problem": kind, "detail": detail,
                             "original": {"line": orig_line, "id": orig_id}})
        else:
            lines.append(_broken_line(kind, e["detail"], row_id, e["family"], e["ticket"]))
            manifest.append({"line": line_no, "id": row_id, "problem": kind, "detail": e["detail"]})
    manifest.sort(key=lambda p: p["line"])
    return lines, manifest


def write(tickets_path: Path = TICKETS_PATH, manifest_path: Path = MANIFEST_PATH) -> None:
    lines, manifest = build()
    tickets_path.parent.mkdir(parents=True, exist_ok=True)
    manifest_path.parent.mkdir(parents=True, exist_ok=True)
    tickets_path.write_text("\n".join(lines) + "\n", encoding="utf-8", newline="\n")
    doc = {"file": "labs/source/dataset_lab/tickets.jsonl", "heldout_families": list(HELDOUT_FAMILIES),
           "look_alikes": LOOK_ALIKES, "problems": manifest}
    manifest_path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8", newline="\n")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="write tickets.jsonl and dataset_lab_planted.json into this folder")
    args = ap.parse_args(argv)
    if args.out:
        write(args.out / TICKETS_PATH.name, args.out / MANIFEST_PATH.name)
    else:
        write()


if __name__ == "__main__":
    main()
