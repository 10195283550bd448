"""Write the shipped GreenLeaf Support datasets (deterministic: same seed, same bytes).

Usage::

    python data/generate_greenleaf.py              # writes data/greenleaf/
    python data/generate_greenleaf.py --out DIR    # writes somewhere else (the tests use this)
    python data/generate_greenleaf.py --measure-regression   # runs the base model on regression.jsonl

Standard library + ``course_lib.greenleaf``, ``course_lib.cards`` and ``course_lib.regression_rules`` only
(``--measure-regression`` also needs torch/transformers).
Every file is written with ``json.dumps(..., ensure_ascii=False)`` and ``\\n`` line endings, so running the
script twice gives byte-identical files. All text is written by us (CC0); names, addresses, phone numbers,
e-mails and card numbers are invented (555-01xx, Ofcom drama ranges, ``.example`` domains, test-style cards).

Files (in ``data/greenleaf/``)
------------------------------
raw_tickets.jsonl     the raw export: good rows + planted problems (listed in planted_problems.json)
planted_problems.json ``[{"line", "id", "problem", "detail"}]``, 1-based line numbers in raw_tickets.jsonl
canaries.json         5 invented customers planted once each in a training-family ticket
families.json         ``{"heldout": [...], "train": [...]}``: the default group split (~20 % held out,
                      stratified by category, canary families always in train)
pii_labelled.jsonl    short texts with character-offset PII spans (EMAIL, PHONE, CARD, ADDRESS, PERSON)
regression.jsonl      general-skills prompts with checkable answers (forgetting check)
preferences.jsonl     DPO pairs (TRL conversational format) from training families only

Labelling rules (used for every family below)
---------------------------------------------
needs_human is TRUE exactly when the ticket needs something the assistant cannot do on its own:
  1. money has to move: a refund, credit, charge reversal or price adjustment is requested;
  2. safety: a person or pet may have eaten a plant, or someone got hurt;
  3. account security or privacy: hacked account, unknown login, stolen card, data deletion/access request;
  4. a damaged, dead, wrong or missing item: a person reviews the photos and sends the replacement;
  5. an order that is already placed must be changed or investigated: address change, cancellation, lost
     or misdelivered parcel, parcel returned to sender;
  6. escalation: the customer asks for a manager, threatens legal action or a chargeback, or a sales quote
     (bulk/corporate/price match) is needed.
needs_human is FALSE for everything self-service or informational: plant care questions, "where is my
order" and tracking questions, return *policy* questions, product questions, password resets, newsletter
settings, invoices/receipts that can be downloaded.

priority: urgent = safety (ingestion), fraud/stolen card, hacked account or unknown login;
high = money taken wrongly, lost parcel, dead/severely damaged delivery, spreading pests or a plant
collapsing fast, legal threat; medium = something is wrong but not getting worse fast (delays, declining
plant, ordinary returns/refunds, login trouble); low = questions and small annoyances.

Regression scoring rule (regression.jsonl)
------------------------------------------
One rule, ``course_lib.regression_rules.check_regression_answer`` (also ``evaluate.check_regression_answer``; its
docstring is the full statement), any case:
``contains``: the answer appears in the output starting at the beginning of a word ("darkness" counts for "dark",
"juvenile" does not count for "Nile");
``exact``: the output is the answer once whitespace, wrapping quotes/asterisks and a final . ! or ? are removed;
``number``: the output's final answer equals the answer: the last number after an answer marker (=, equals, is,
it's, are, was, were, has, have, answer), else the last number; digits ("86,400") and number words ("twelve",
"twenty-four") both count; operands ("4 + 4") and numbers after "not" are never the answer; a final answer that is
one of a list, range or hedge of different numbers ("3 or 4", "6, 7, 8") is wrong.
See :func:`score_regression`.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from course_lib import cards, greenleaf, regression_rules  # noqa: E402

SEED = 20240611
OUT_DIR = Path(__file__).resolve().parent / "greenleaf"
SIGN_OFF = greenleaf.SIGN_OFF

# --------------------------------------------------------------------------------------------------------------
# Scenario families: (category, priority, needs_human, topic, tickets, replies).
# Tickets may use the slots {order}, {order2}, {tracking}, {date}, {month}; replies get SIGN_OFF appended.
# `topic` is a short noun phrase used only to write off-brand (rejected) replies for preferences.jsonl.
# --------------------------------------------------------------------------------------------------------------
FAMILIES: list[dict] = []


def fam(category, priority, needs_human, topic, tickets, replies):
    FAMILIES.append(
        dict(category=category, priority=priority, needs_human=needs_human, topic=topic, tickets=tickets,
             replies=replies)
    )


# ---------------------------------------------------------------- plant_health
fam("plant_health", "medium", False, "your monstera's yellowing leaves", [
    "My monstera has had two leaves go yellow since I repotted it last weekend. Is it dying??",
    "repotted my monstera deliciosa into a 25cm pot from you guys on {date} and now the lower leaves are turning "
    "yellow one after another. I water it once a week like before. did I do something wrong with the soil?",
    "Quick question - yellow leaves on a monstera right after repotting, normal or not?",
    "So I finally moved my big Monstera out of its cramped nursery pot (roots were circling everywhere) into the "
    "terracotta one I bought with order {order}. Since then, about 10 days, three of the older leaves have gone "
    "pale and then properly yellow, starting at the edges. The new leaf is still unfurling fine and it's in the same "
    "spot by the east window. Should I be worried or just leave it alone?",
    "Two yellow leaves on the monstera I repotted. Cut them off or wait till they drop?",
], [
    "Sorry your monstera is sulking! A leaf or two yellowing in the weeks after repotting is usually transplant "
    "stress, so trim them once fully yellow and water only when the top 5 cm of soil is dry.",
    "Thanks for the detail, this sounds like normal repotting stress rather than anything serious. Keep it in bright "
    "indirect light, skip fertiliser for a month and let the top few centimetres dry between waterings.",
])
fam("plant_health", "medium", False, "your fiddle leaf fig dropping leaves", [
    "My fiddle leaf fig is dropping leaves since I moved it to the living room. Help!",
    "Fiddle leaf fig (the 120cm one) has lost 4 leaves in a week. They go brown in patches then just fall. We moved "
    "house on {date} so it had a long car ride. Is it salvageable?",
    "hi, why does my fiddle leaf keep dropping its bottom leaves?? it was perfect in the shop window",
    "I'm honestly at my wits end with this fig. Bought it in spring, it was thriving, then I shifted it about two "
    "metres away from the radiator because I read heat is bad, and now it's shedding. Do I move it back? Do I "
    "water more? I don't want to kill a plant this expensive.",
], [
    "Fiddle leaf figs are famously dramatic about being moved, so some leaf drop is common for a few weeks. Pick one "
    "bright spot away from radiators and draughts, keep it there, and water only when the top 5 cm are dry.",
    "Sorry to hear your fig is shedding! Moves and temperature swings are the usual trigger, so keep it in steady "
    "bright light, avoid shifting it again, and it should settle within a month.",
])
fam("plant_health", "low", False, "the fungus gnats in your soil", [
    "Tiny black flies keep coming out of my plant soil. What are they and how do I get rid of them?",
    "got fungus gnats in basically every pot in the flat now. lovely. any tips that don't involve chemicals?",
    "Hello! I think I have fungus gnats around my pothos and peace lily - little flies that hover when I water. "
    "They don't seem to hurt the plants but they're driving me mad. Would the yellow sticky traps you sell help?",
    "Are fungus gnats harmful to plants or just annoying?",
], [
    "Those little flies are almost certainly fungus gnats: annoying but rarely harmful. Let the top few centimetres "
    "of soil dry out between waterings and use yellow sticky traps to catch the adults.",
    "Fungus gnats love damp soil, so the best fix is watering a little less and letting the surface dry out. Sticky "
    "traps catch the adults, and bottom-watering helps stop new ones hatching.",
])
fam("plant_health", "medium", False, "the spider mites on your calathea", [
    "There's fine webbing under the leaves of my calathea and tiny dots moving. Spider mites?",
    "My calathea orbifolia leaves look dusty and speckled, and when I wiped them there were teeny red specks on the "
    "cloth. I bought it in {month}. What do I do?",
    "spider mites on calathea. how do I treat without wrecking the leaves",
    "Ugh. Noticed webs on my prayer plant this morning, right where the leaf meets the stem, and the leaves have "
    "lost their shine. I've isolated it in the bathroom. Is it worth saving or should I bin it before it spreads?",
], [
    "That does sound like spider mites, and well done isolating the plant. Rinse the leaves, especially the "
    "undersides, in the shower, then wipe them with diluted insecticidal soap every few days for two weeks.",
    "Speckled leaves and fine webbing usually mean spider mites, but calatheas recover well. Shower the foliage, "
    "raise the humidity, and treat weekly with insecticidal soap until no new webbing appears.",
])
fam("plant_health", "high", False, "the mealybugs spreading through your plants", [
    "Mealybugs are spreading through my whole collection, found them on 6 plants now. What do I do FAST?",
    "I found white fluffy stuff on my hoya last week, thought nothing of it, and now it's on the string of pearls, "
    "the jade and two succulents next to them. I've got about 40 plants in the sunroom and I'm panicking.",
    "mealybug outbreak. spreading every day. I have isolated what I could but they keep turning up in new pots",
    "Please help, the cottony bugs (mealybugs I think) have jumped from one plant to nearly the whole shelf in under "
    "a week. Some leaves are sticky and a couple of stems are wilting.",
], [
    "A spreading mealybug outbreak needs quick action, so move every affected plant away from the rest today. Dab "
    "visible bugs with rubbing alcohol on a cotton bud, then spray with insecticidal soap weekly for a month.",
    "So sorry, mealybugs can move fast through a shelf. Isolate all affected plants now, remove the bugs with "
    "alcohol on a cotton bud, and check the neighbours every few days until no new fluff appears.",
])
fam("plant_health", "high", False, "your snake plant's mushy base", [
    "The base of my snake plant has gone soft and mushy and it smells bad. Root rot?",
    "My sansevieria leaves are falling over and when I pushed one it squished at the soil line. I do water it every "
    "week, maybe that's too much? It's in a pot without holes.",
    "snake plant rotting from the bottom. 3 leaves collapsed today alone. can it be saved??",
    "Hi there, my mother-in-law's snake plant (which I'm minding, no pressure) has gone yellow and mushy at the "
    "bottom over just a few days. There's a sour smell when I get close. What should I do right now?",
], [
    "Soft, smelly leaf bases usually mean root rot, so act quickly. Unpot it, cut away every mushy root and leaf, "
    "let the cuts dry for a day, then replant in dry gritty mix in a pot with drainage holes.",
    "I'm sorry, that sounds like root rot from too much water. Remove the plant, trim all soft brown roots, repot "
    "into fresh dry cactus mix, and water only when the soil is completely dry.",
])
fam("plant_health", "low", False, "your stretching succulents", [
    "My succulents are getting really tall and stretchy with gaps between the leaves. Why?",
    "echeveria is leaning towards the window and growing long and pale. is it sick",
    "Hello, the little succulent trio I got from you is all stretching upwards like they're reaching for something. "
    "They're on a shelf about 2 metres from a north window. Should I fertilise them?",
    "What does it mean when a succulent grows tall and skinny instead of staying a rosette?",
], [
    "That stretching is called etiolation and it simply means they want more light. Move them to your brightest "
    "window, turning them weekly, and hold off on fertiliser.",
    "Tall, pale growth is a classic sign that succulents need more sun. A south or west window or a small grow "
    "light will keep new growth compact, and you can behead and replant leggy tops.",
])
fam("plant_health", "low", False, "watering your ZZ plant while you're away", [
    "Going on holiday for 3 weeks. Will my ZZ plant survive without water?",
    "How often should I water a ZZ plant? Mine's in a 17cm pot in a fairly dark hallway.",
    "hi!! off travelling from {date} for nearly a month, should I water my zz heavily before I go or leave it",
    "Is it okay to not water a zamioculcas for a month? My flatmate is useless with plants and I'd rather she didn't "
    "touch it.",
], [
    "Good news: ZZ plants are very drought tolerant and store water in their rhizomes. Give it a thorough drink a "
    "few days before you leave and it will be fine for three or four weeks.",
    "ZZ plants prefer being left alone, so a deep watering before you go is plenty. In lower light, water only when "
    "the soil is fully dry, usually every three to four weeks.",
])
fam("plant_health", "low", False, "the brown tips on your calathea", [
    "Why are the tips of my calathea leaves going brown and crispy?",
    "calathea crispy edges again. I mist it every morning, what more does it want from me lol",
    "Good afternoon, I've had a Calathea 'White Fusion' for two months and the edges have slowly gone brown. I use "
    "tap water from the kettle once cooled. The rest of the leaf looks healthy.",
    "Brown crispy leaf edges on my rattlesnake plant - is that low humidity or the water?",
], [
    "Crispy brown tips on calatheas usually come from low humidity or minerals in tap water. Try filtered or "
    "rainwater and group it with other plants or use a pebble tray, and new leaves should come through clean.",
    "Calatheas are fussy about humidity and hard water, so the tips brown easily. Switch to filtered water, keep "
    "the soil lightly moist, and trim the brown edges with clean scissors if they bother you.",
])
fam("plant_health", "urgent", True, "your cat chewing a lily", [
    "My cat just chewed on the lily from the bouquet I ordered. Are lilies toxic to cats??",
    "URGENT - found my kitten with bits of peace lily leaf in her mouth about 20 min ago. Is this dangerous? She "
    "seems ok but she's drooling a bit.",
    "cat ate some lily pollen and a bit of a petal from the arrangement (order {order}). what do I do",
    "Please reply quickly. My cat knocked over the vase with the oriental lilies and I think she licked the pollen "
    "off her paws. I read online that lilies can cause kidney failure in cats. Is that true for these ones?",
], [
    "Please contact your vet or an animal poison helpline right away, as some lilies are very dangerous to cats "
    "even in tiny amounts. I've flagged this to our team, who will follow up with the plant details for your vet.",
    "Please call your vet now and take the plant label with you; don't wait for symptoms. Our team has been "
    "alerted and will get back to you today with exactly which lily was in your order.",
])
fam("plant_health", "urgent", True, "your dog eating pothos leaves", [
    "My dog ate a few leaves off the pothos I bought from you. Is it poisonous? He's pawing at his mouth.",
    "dog chewed the golden pothos and is drooling + vomited once. how toxic is it?",
    "Hi, our labrador got hold of the hanging pothos this morning and chewed up maybe five leaves. He's acting "
    "normal-ish but I'm worried. What's in the plant that could hurt him?",
    "Need help ASAP, puppy ate part of a devil's ivy leaf, foaming at the mouth a bit",
], [
    "Please ring your vet or a pet poison helpline straight away, as pothos can irritate a dog's mouth and stomach. "
    "I've passed this to our team so someone can follow up with the plant details.",
    "I'm so sorry, please call your vet now and mention the plant was a pothos (devil's ivy). A member of our team "
    "will contact you today to check in and help with anything your vet needs.",
])
fam("plant_health", "urgent", True, "your child eating part of a plant", [
    "My 2 year old put a dieffenbachia leaf in his mouth and is crying. Is it poisonous?",
    "My daughter bit a leaf off the dumb cane plant we got from you last week, her lips look a bit swollen. What "
    "should I do?",
    "toddler ate a berry off one of our plants, not sure which one, we have a few from your shop. please help",
    "Sorry if this is the wrong place to ask but my son (3) chewed a leaf of the peace lily in the hallway. He's "
    "spitting and says his mouth hurts.",
], [
    "Please call your local poison control centre or emergency services right now, and rinse your child's mouth "
    "with water. I've alerted our team, who will follow up with the plant's details.",
    "Please contact poison control or your doctor immediately and keep the plant label handy. Our team has been "
    "notified and will reach out today to help with any information you need.",
])
fam("plant_health", "low", False, "the white crust on your soil", [
    "There's a white crust on top of my plant's soil. Is it mould?",
    "white crusty stuff forming on the terracotta pot and the soil surface, what is it",
    "Hello, my rubber plant's soil has developed a whitish, crunchy layer on top over the last couple of months. "
    "The plant looks fine. I water with tap water. Should I repot?",
    "is white powdery crust on soil dangerous for my plant",
], [
    "A crunchy white crust is usually mineral build-up from tap water or fertiliser, not mould. Scrape off the top "
    "layer, flush the pot with plenty of water, and consider filtered water going forward.",
    "That sounds like salts from tap water and fertiliser collecting on the surface, which is harmless in small "
    "amounts. Remove the top centimetre of soil and water deeply once a month to flush it through.",
])
fam("plant_health", "low", False, "propagating your leggy pothos", [
    "My pothos is super leggy. Can I cut it and propagate the cuttings?",
    "how do I propagate a pothos in water? mine has vines like 2 metres long and bald at the top",
    "Hi! My marble queen pothos has very long vines with leaves only at the ends. I'd love to make it fuller. Do I "
    "cut them back and where exactly do I cut?",
    "pothos leggy, where to cut for propagation",
], [
    "Yes, pothos cuttings root really easily! Cut just below a node (the little bump where a leaf meets the vine), "
    "pop the cuttings in water, and plant them back in the pot once the roots are a few centimetres long.",
    "Trimming leggy vines is the best way to make a pothos bushier. Snip each vine just below a node, root the "
    "pieces in water, then tuck them into the same pot to fill it out.",
])
fam("plant_health", "low", False, "your orchid after flowering", [
    "My orchid has finished flowering. What do I do with the stem now?",
    "all the flowers fell off my phalaenopsis :( is it dead? leaves still look green",
    "Good morning, the moth orchid I bought for my mum in {month} has dropped its last bloom. Should I cut the spike, "
    "repot it, or just keep watering as normal?",
    "After my orchid stops blooming, how do I get it to flower again?",
], [
    "Don't worry, dropping flowers is normal and your orchid is resting, not dying. Cut the spike just above a node, "
    "keep watering when the roots turn silvery, and a cooler spot at night encourages new blooms.",
    "Green leaves mean your orchid is healthy and simply between flowerings. Trim the finished spike, keep it in "
    "bright indirect light, and feed lightly every few weeks to help it rebloom.",
])
fam("plant_health", "low", False, "your bird of paradise's split leaves", [
    "The leaves on my bird of paradise are splitting. Did I do something wrong?",
    "strelitzia leaves all torn down the middle, is it damaged?",
    "Hi, I've had my bird of paradise a few months and the big leaves have started to split along the veins. It's "
    "in a bright corner near the patio door which gets opened a lot. Is it ill?",
    "Is leaf splitting on strelitzia normal or a sign of low humidity?",
], [
    "Splitting is completely natural for a bird of paradise; in the wild it lets wind pass through the leaves. "
    "Steady humidity and fewer draughts can reduce it, but it doesn't harm the plant.",
    "No need to worry: bird of paradise leaves split as they age, especially near open doors. Keep watering "
    "consistently and the new leaves will stay healthy.",
])
fam("plant_health", "medium", False, "your cactus going soft at the base", [
    "My cactus is turning yellow and a bit soft at the bottom. What's wrong?",
    "the bottom of my golden barrel cactus looks yellowish and feels slightly squishy when I press it",
    "Hello, I've got a columnar cactus (about 40cm) and over the last fortnight the base has gone from green to a "
    "pale yellow. It's not collapsing, but it's definitely softer than the top. I water every ten days or so.",
    "cactus base soft and yellow, overwatered?",
], [
    "A yellow, slightly soft base often means the cactus has had too much water. Stop watering until the soil is "
    "bone dry, make sure the pot drains freely, and check the roots if it keeps softening.",
    "That sounds like early overwatering, which is very fixable at this stage. Let the soil dry out completely, "
    "give it your sunniest spot, and water only every three to four weeks until spring.",
])
fam("plant_health", "medium", False, "your new plant wilting after delivery", [
    "The plant I got yesterday is drooping. Is that normal after shipping?",
    "received my alocasia two days ago (order {order}) and it's already looking floppy and sad. it wasn't damaged in "
    "the box, it's just wilting. am I doing something wrong?",
    "New peace lily from you is wilting a bit since it arrived. Should I water it straight away?",
    "Hi folks, the calathea arrived in perfect condition on {date} but since I put it on the windowsill the leaves "
    "have curled and drooped. I've not watered it yet as the soil felt damp. Is it just getting used to my place?",
], [
    "A little drooping in the first days is normal while a plant adjusts to your home after its journey. Check the "
    "soil, water only if the top few centimetres are dry, and keep it out of direct sun for a week.",
    "Plants often sulk for a few days after delivery, so please don't worry yet. Give it bright indirect light, "
    "avoid moving it around, and it should perk up within a week.",
])
fam("plant_health", "medium", False, "the pale, bleached leaves under your grow light", [
    "Some leaves on my plant look bleached and pale since I added a grow light. Too close?",
    "got the 24W grow light from you and now my philodendron has white-ish patches on the top leaves. is the light "
    "burning it?",
    "How far should a grow light be from the plants? Mine are about 10cm away and the leaves look washed out.",
    "My herbs under the LED bar have gone pale and a bit crispy on top, the ones on the edge look fine. Is this "
    "light burn?",
], [
    "Pale or bleached top leaves usually mean the light is a little too close. Raise it to about 30 cm above the "
    "plants, run it 10 to 12 hours a day, and the new growth should come in greener.",
    "That sounds like mild light burn, which the plant will grow out of. Move the light further away, around 30 "
    "cm, and trim any crispy leaves once new growth appears.",
])
fam("plant_health", "low", False, "repotting your rubber plant", [
    "Roots are growing out of the drainage holes of my rubber plant. What size pot should I move it to?",
    "when's the best time to repot a ficus elastica? its roots are poking out the bottom",
    "Hi, my rubber plant is in a 14cm nursery pot and the roots are coming out underneath. Should I go up to 17cm or "
    "straight to 25cm so I don't have to do it again soon?",
    "rubber plant rootbound, what pot size next",
], [
    "Roots through the drainage holes mean it's ready for a new home. Go up just one size, about 2 to 5 cm wider, "
    "ideally in spring, so the soil doesn't stay wet for too long.",
    "Spring is the best time to repot, and one size up is usually right, so a 17 cm pot for your plant. A bigger "
    "jump holds extra water the roots can't use yet.",
])
fam("plant_health", "medium", False, "the scale insects on your jade", [
    "My jade plant has sticky leaves and little brown bumps on the stems. What is that?",
    "Jade has tiny brown shell things stuck to the stems and the leaves are sticky. Bugs??",
    "Good evening, I've noticed the leaves of my Jade (Crassula) are shiny and tacky, and there are small oval brown "
    "lumps along the branches that I can scrape off with a nail. It's had them maybe three weeks.",
    "how to get rid of scale on a jade plant",
], [
    "Sticky leaves and brown bumps are classic signs of scale insects. Scrape off what you can, then wipe the stems "
    "with rubbing alcohol on a cotton bud every week until no new bumps appear.",
    "That sounds like scale, which is stubborn but treatable. Keep the jade away from other plants, remove the "
    "bumps by hand, and follow up with insecticidal soap weekly for a month.",
])
fam("plant_health", "medium", False, "your drooping peace lily", [
    "My peace lily is drooping even though the soil is wet. What does that mean?",
    "peace lily completely flopped over, soil soaked, I've been watering every 2 days",
    "Hi there, the peace lily in my office has gone limp and a couple of leaves have turned yellow. The pot has no "
    "drainage and I think my colleagues might also be watering it. Oops?",
    "Overwatered peace lily - how do I fix it?",
], [
    "Drooping with wet soil usually means overwatering, which stops the roots from breathing. Let the soil dry "
    "until the top few centimetres feel dry, and move it to a pot with drainage holes if you can.",
    "A soggy pot is the likely culprit here. Tip out any standing water, pause watering until the top of the soil "
    "dries, and agree on one person doing the watering from now on.",
])

# ---------------------------------------------------------------- shipping
fam("shipping", "high", True, "your late order and frozen tracking", [
    "My order {order} was supposed to arrive 3 weeks ago and the tracking hasn't moved since {date}. Where is it?",
    "Three weeks late and the tracking page just says 'in transit' with no updates. Order {order}. Not impressed.",
    "Hi, I'm getting worried. I ordered a kentia palm and two pots on {date}, the tracking number {tracking} "
    "stopped updating after it left your warehouse and that was almost 20 days ago. Is it lost?",
    "where is my parcel?? tracking frozen for over two weeks",
    "Order {order} - still nothing. Tracking has shown the same scan for 18 days now. Can someone please look into "
    "this properly?",
], [
    "I'm really sorry your order has stalled; that's far too long without an update. I've asked our shipping team "
    "to open an investigation with the courier, and they'll email you with next steps within one business day.",
    "Thanks for your patience, and sorry for the worry. A teammate is now chasing the courier about the frozen "
    "tracking and will contact you shortly about a replacement if the parcel can't be found.",
])
fam("shipping", "low", False, "when your new order will ship", [
    "I ordered yesterday, when will it ship?",
    "Hi, just placed order {order}. How long does delivery usually take?",
    "When will I get a tracking number for my order? Paid this morning.",
    "hello, first time ordering - what happens now? do you email when it's been posted",
], [
    "Thanks for your order! Most orders leave our greenhouse within two business days, and you'll get an email "
    "with your tracking link as soon as it ships.",
    "Lovely to have you with us! We usually dispatch within one to two business days, and your tracking number "
    "arrives by email the moment the courier collects your parcel.",
])
fam("shipping", "high", True, "a parcel marked delivered that never arrived", [
    "Tracking says my parcel was delivered yesterday but nothing came. Order {order}.",
    "Says delivered. It wasn't. I've checked with neighbours, the bins, behind the gate. Nothing.",
    "Hello, the courier marked order {order} as 'delivered, left in safe place' on {date}, but there was no parcel "
    "anywhere when I got home and there's no photo. What can you do?",
    "my order shows as delivered but I never got it?? I was home all day",
], [
    "I'm sorry your parcel is missing, that's so frustrating. I've passed this to our shipping team, who will "
    "open a claim with the courier and email you within one business day about a replacement.",
    "Thanks for checking around, and sorry this happened. A teammate will contact the courier for proof of "
    "delivery and get back to you quickly with next steps.",
])
fam("shipping", "medium", True, "changing the delivery address on your order", [
    "I put the wrong address on my order {order}. Can you change it before it ships?",
    "Need to update the delivery address - I'm moving on {date}. Order hasn't shipped yet I think.",
    "Hi, can I have my plants delivered to my work instead of home? Just ordered an hour ago.",
    "oops, sent it to my old flat. can you change the address please",
], [
    "Thanks for catching that early! I've asked our team to update the address before your order leaves us, and "
    "they'll confirm by email once it's done.",
    "No problem at all, I've flagged your order so a teammate can change the delivery address before dispatch. "
    "You'll get a confirmation email shortly.",
])
fam("shipping", "low", False, "whether an order will arrive in time", [
    "If I order today will it arrive by Friday?",
    "Hi! It's my sister's birthday on {date}. If I order the large monstera now, will it get there in time?",
    "do you do next day delivery?",
    "How long does standard shipping take to Scotland? Want to send a plant as a surprise.",
], [
    "Standard delivery usually takes two to four business days, and express orders placed before noon arrive the "
    "next business day. The delivery estimate at checkout shows the exact date for your postcode.",
    "Great idea for a gift! Express shipping at checkout delivers the next business day if you order before noon, "
    "and the estimate there is based on your address.",
])
fam("shipping", "low", False, "international shipping", [
    "Do you ship to Canada?",
    "Hello from Ireland! Can I order plants from you or is it UK only?",
    "do you deliver plants abroad? I'm in france",
    "Hi, I'd love to send a pot and some soil to my friend in Germany. Do you ship internationally, and would plants "
    "be allowed?",
], [
    "Thanks for asking! Live plants can only ship within the UK because of plant health rules, but pots, tools and "
    "accessories can go to most of Europe.",
    "We'd love to send something your way. Plants stay within the UK for plant health reasons, while pots and "
    "accessories ship internationally, with costs shown at checkout.",
])
fam("shipping", "medium", False, "the second box of your order", [
    "Only one of my two boxes arrived. Where's the other one?",
    "Got the pots but not the plants, order {order}. Was it split?",
    "Hi, my delivery came today but it's just the soil and the small fern. The big olive tree is missing. The "
    "packing slip says 1 of 2.",
    "received part of my order, rest missing?",
], [
    "Large items often travel in a separate box, so your second parcel is likely on its way. Check your email for a "
    "second tracking link, which shows exactly when it will arrive.",
    "Good news: orders with bigger plants are split into two parcels, and the '1 of 2' slip means the other is "
    "still coming. Its own tracking link should be in your inbox.",
])
fam("shipping", "low", False, "your tracking link not working", [
    "The tracking link in my email doesn't work.",
    "tracking number {tracking} says 'not found' on the courier site",
    "Hi, I clicked the tracking link for order {order} and it gives an error page. Has it actually shipped?",
    "Courier website doesn't recognise my tracking number, is it wrong?",
], [
    "Sorry for the confusion! New tracking numbers can take up to 24 hours to appear on the courier's site, so "
    "please try again tomorrow.",
    "Your order has shipped; the courier's system can just be slow to register new parcels. The link should start "
    "working within a day.",
])
fam("shipping", "low", False, "rebooking a missed delivery", [
    "I missed the delivery and there's a card through the door. How do I rebook?",
    "courier needs a signature and I'm at work all week. options?",
    "Hello, the driver came while I was out and left a 'sorry we missed you' card. Can I pick it up or arrange a "
    "Saturday delivery?",
    "Missed my plant delivery today, will they try again tomorrow?",
], [
    "No worries! You can rebook or pick a nearby collection point using the reference on the courier's card, and "
    "they'll usually try again the next business day anyway.",
    "The courier will make another attempt, and you can choose a new day or a safe place through their website "
    "with the card's reference number.",
])
fam("shipping", "high", True, "a wrong postcode on a shipped order", [
    "I just realised I typed the wrong postcode and the order has already shipped!",
    "The order shipped to the wrong address because I made a typo in the postcode. Order {order}. Help!!",
    "Hi, my parcel is out for delivery today but the postcode is wrong (one number off). Can you stop it?",
    "wrong postcode on my order and it's in transit. what now",
], [
    "Thanks for telling us quickly! I've asked our shipping team to contact the courier about redirecting the "
    "parcel, and they'll email you as soon as they know more.",
    "I'm sorry about the mix-up. A teammate is contacting the courier right now to try to correct the address, "
    "and they'll keep you posted by email.",
])
fam("shipping", "medium", False, "an order stuck at label created", [
    "My order has said 'label created' for five days. Has it actually been sent?",
    "tracking stuck on 'shipping label created' since {date}, order {order}",
    "Hi, my tracking just says the label was printed and nothing else for almost a week. Is there a delay?",
    "Why hasn't my order moved past label created?",
], [
    "Sorry for the wait! 'Label created' means your order is packed, and our couriers are running a few days "
    "behind this week. Tracking will update as soon as it's scanned.",
    "Your parcel is packed and waiting for courier collection, which has been slower than usual lately. You'll "
    "see movement on tracking within the next couple of days.",
])
fam("shipping", "low", False, "why shipping costs what it does", [
    "Why is shipping so expensive on the big pot?",
    "£14.95 delivery for one tree?? seems a lot",
    "Hello, can you explain the delivery charge? It went up when I added the 40cm planter.",
    "Is there a way to get free shipping?",
], [
    "Good question! Large or heavy items need a specialist courier, which costs more, but orders over £50 without "
    "oversized items ship free.",
    "Shipping is based on size and weight, so bigger pots and trees cost more to send safely. Standard orders over "
    "£50 get free delivery.",
])
fam("shipping", "low", False, "delivery instructions for your parcel", [
    "Can the courier leave my parcel with a neighbour?",
    "can I add a safe place for the delivery? back porch please",
    "Hi, I work from an office during the week. Can I leave a note for the driver to use the side gate?",
    "How do I add delivery instructions to an order?",
], [
    "Absolutely! Once your parcel ships, the courier's tracking page lets you choose a neighbour or a safe place.",
    "You can add a safe place or neighbour on the courier's tracking page as soon as your tracking link arrives.",
])
fam("shipping", "low", False, "the heatwave shipping hold", [
    "Why is my order on hold because of weather?",
    "Got an email saying my order is delayed due to heat. How long will it be?",
    "Hi, I'm a bit confused why you're holding my plants. It's just warm, not that hot.",
    "weather hold on my order?? I need it this week",
], [
    "Sorry for the wait! We pause plant shipments during heatwaves so they don't cook in the van, and your order "
    "will go out as soon as temperatures drop, usually within a few days.",
    "We hold plants when it's very hot so they arrive healthy rather than scorched. Your order is safe in our "
    "greenhouse and will ship as soon as the forecast cools down.",
])
fam("shipping", "medium", True, "a parcel addressed to someone else", [
    "I received a parcel addressed to someone else.",
    "Your courier delivered a GreenLeaf box to me but it's for a different name and house number. What do I do "
    "with it?",
    "hi, got a box from you today but it's not mine, different address on the label",
    "Hello, I think there's been a mix-up: the parcel I got today is addressed to a street I don't know. My own "
    "order {order} hasn't arrived either.",
], [
    "Thank you for letting us know and for being so honest! A teammate will arrange collection of the parcel and "
    "check on your own order today.",
    "I'm sorry for the mix-up. I've passed this to our shipping team, who will organise a pickup and make sure "
    "your own delivery reaches you.",
])
fam("shipping", "low", False, "scheduling a delivery date", [
    "Can I choose the date my order arrives?",
    "I'd like my order delivered on {date} as it's a gift. Possible?",
    "Hi, is there a way to schedule delivery for a specific day? I'm away until next week.",
    "can I pick a delivery day",
], [
    "Yes, you can pick a delivery date at checkout, up to three weeks ahead, and we'll dispatch it to arrive on "
    "that day.",
    "You can choose a delivery date at checkout, and we'll send the plant so it arrives fresh on the day you pick.",
])
fam("shipping", "high", True, "a parcel returned to sender", [
    "Tracking says my parcel is being returned to sender. Why?",
    "Order {order} shows 'returning to sender', I never even got a delivery attempt!",
    "Hi, my order has apparently been sent back to you. The address was correct. Can you please just send it "
    "again?",
    "returned to sender?? what happened",
], [
    "I'm sorry, that must be confusing! I've asked our shipping team to find out why the courier sent it back, and "
    "they'll contact you about reshipping.",
    "Thanks for flagging this. A teammate is checking with the courier and will arrange to send your order out "
    "again once it reaches us.",
])
fam("shipping", "low", False, "delivery to a PO box", [
    "Do you deliver to PO boxes?",
    "can I ship to a parcel locker instead of my house",
    "Hi, I live rurally and use a PO box. Can plants be sent there?",
    "Do you deliver to lockers or pickup points?",
], [
    "Our couriers can't deliver to PO boxes, but you can pick a parcel locker or collection point at checkout for "
    "smaller orders.",
    "We're unable to send to PO boxes, though collection points and lockers are available at checkout for most "
    "parcels.",
])
fam("shipping", "medium", True, "a complaint about the courier", [
    "The driver threw my parcel over the fence. The pot is fine but that's not ok.",
    "Your courier was rude to me today and left the box in a puddle. I want to make a complaint.",
    "Hi, I want to report the delivery driver for order {order}. He dropped the box from waist height and "
    "walked off.",
    "complaint about the courier please, they chucked my plants on the doorstep",
], [
    "I'm sorry, that's not how your plants should be treated. I've passed your complaint to our shipping team, who "
    "will raise it with the courier and follow up with you.",
    "Thank you for telling us; we take courier complaints seriously. A teammate will log this with the courier and "
    "get back to you by email.",
])

# ---------------------------------------------------------------- damaged_item
fam("damaged_item", "medium", True, "the cracked pot in your delivery", [
    "My ceramic pot arrived cracked.",
    "The 20cm glazed pot from order {order} came with a big crack down the side. Can you send another one?",
    "Hi, opened my parcel today and the planter has a hairline crack from the rim to the base. The box looked fine "
    "from outside. I've taken photos.",
    "pot cracked in transit. really disappointed, it was a gift",
    "Dear GreenLeaf, unfortunately the terracotta pot in my delivery on {date} was broken into three pieces. The "
    "plant itself seems unharmed. What would you like me to do with the pieces?",
], [
    "I'm so sorry your pot arrived cracked! Please reply with a photo of the damage and the box, and our team will "
    "arrange a replacement for you.",
    "That's disappointing, and I'm sorry it happened. Send us a quick photo of the crack and a teammate will sort "
    "out a replacement; no need to send the pieces back.",
])
fam("damaged_item", "high", True, "a plant that arrived dead", [
    "The plant arrived dead.",
    "My calathea arrived completely brown and crispy, it's obviously dead. Order {order}.",
    "Hi, I opened the box today and the fern is just mush. Every frond is black and it smells. Really sad, it was "
    "for my grandmother's birthday.",
    "dead on arrival. paid £45 for a plant that's basically compost",
    "Hello, my olive tree arrived with every single leaf dropped and the stems are dry and brittle. I don't think "
    "it can be saved. What are my options?",
], [
    "I'm so sorry your plant arrived in that state; that's not the GreenLeaf welcome it deserved. Please send a "
    "photo and our team will arrange a replacement or refund straight away.",
    "That's awful, and I apologise. A teammate will review your photos and get a healthy replacement or a refund "
    "sorted for you as quickly as possible.",
])
fam("damaged_item", "medium", True, "receiving the wrong plant", [
    "I ordered a calathea but received a maranta.",
    "Wrong plant in my box. I ordered a Monstera adansonii and got a philodendron.",
    "Hi, order {order} came today but the label on the plant says 'Peperomia' and I ordered a Pilea. Mix-up?",
    "you sent me the wrong plant lol. not what I ordered at all",
], [
    "Sorry for the mix-up! Please send a photo of the plant and its label, and our team will get the right one "
    "out to you; you're welcome to keep the one you received.",
    "Oops, that's our mistake and I'm sorry. A teammate will check your photo and send the plant you actually "
    "ordered as soon as possible.",
])
fam("damaged_item", "low", True, "the soil spilled in your parcel", [
    "Soil spilled all over the box but the plant looks ok.",
    "box was full of loose soil when I opened it, the plant seems fine but the pot is half empty",
    "Hi, just a heads up that my delivery had soil everywhere, the plastic wrap came off. The plant's fine I think, "
    "should I be worried?",
    "Plant came with half its soil loose in the box. Is that normal?",
], [
    "Sorry about the mess! Please top the pot up with fresh soil and send us a quick photo so our team can check "
    "nothing else was damaged.",
    "Sorry the packaging let you down. If you send a photo, a teammate will check it over and make sure your plant "
    "is off to a good start.",
])
fam("damaged_item", "medium", True, "the snapped stem on your plant", [
    "The main stem of my fiddle leaf fig snapped in shipping.",
    "Two big leaves broken off the bird of paradise when it arrived and the stem is bent. Order {order}.",
    "Hi, unfortunately my rubber plant arrived with its top snapped off. The rest seems healthy. Photos attached.",
    "broken stem on arrival :(",
], [
    "I'm sorry your plant was hurt on its way to you. Please send a photo of the break, and our team will arrange a "
    "replacement; the broken piece can often be propagated too.",
    "That's a shame, and I apologise. A teammate will review your photos and get back to you about a replacement "
    "today.",
])
fam("damaged_item", "high", True, "pests that arrived with your plant", [
    "The plant you sent me has bugs all over it.",
    "My new plant arrived with thrips. Now I'm scared they'll spread to my collection.",
    "Hi, I unwrapped my order {order} and there are little white bugs crawling on the soil and under the leaves. I've "
    "put it outside for now.",
    "bugs in the plant I just got. not happy. I have 30 other plants",
    "Hello, found mealybugs on the hoya you delivered on {date}. I've isolated it but I'm really worried about my "
    "other plants.",
], [
    "I'm so sorry, and thank you for isolating it so quickly. Please keep it away from your other plants and send "
    "a photo; our team will arrange a replacement or refund.",
    "That's not acceptable, and I apologise. Keep the plant isolated, send us a photo of the pests, and a teammate "
    "will follow up today.",
])
fam("damaged_item", "medium", True, "a missing item from your order", [
    "My order was missing an item.",
    "ordered 3 plants, only 2 in the box. order {order}",
    "Hi, the packing slip lists a 12cm pot and a bag of bark, but neither was in my parcel. Everything else arrived.",
    "Missing the watering can from my order. Was it sent separately?",
], [
    "Sorry about the missing item! Please send a photo of the packing slip, and our team will check what happened "
    "and send the rest of your order.",
    "I'm sorry something was left out. A teammate will check your order and ship the missing item to you.",
])
fam("damaged_item", "low", True, "the chipped rim on your planter", [
    "My planter has a small chip on the rim.",
    "Tiny chip on the new white pot. Not a huge deal but thought you should know.",
    "Hi, my ceramic planter arrived with a little chip near the top. Is it possible to get a replacement or a "
    "discount?",
    "the pot I got is chipped on one edge, can you do anything",
], [
    "Thanks for letting us know, and sorry it arrived chipped. Please send a photo, and a teammate will offer a "
    "replacement or another fix.",
    "Sorry about the chip! Send us a quick photo and our team will work out the best fix for you.",
])
fam("damaged_item", "medium", True, "a grow light that won't turn on", [
    "The grow light I ordered doesn't turn on.",
    "Grow light arrived broken - no power at all. Tried different sockets.",
    "Hi, my new LED grow bar from order {order} flickers for a second and then dies. Is it faulty?",
    "grow light dead out of the box",
], [
    "Sorry your grow light isn't working! Please send a photo or short video, and a teammate will arrange a "
    "replacement.",
    "That sounds like a faulty unit, and I'm sorry. Our team will check your video and send a new light as soon as "
    "possible.",
])
fam("damaged_item", "medium", True, "a plant that died within the guarantee", [
    "My plant died after a week. Is there a guarantee?",
    "The Boston fern I bought two weeks ago is dead despite me following the care card. You have a 30-day "
    "guarantee, right?",
    "Hi, my alocasia went downhill fast and has now lost every leaf, 10 days after arriving. Can I claim under your "
    "guarantee?",
    "plant died within a fortnight, want to claim the guarantee",
], [
    "I'm sorry your plant didn't make it. Our 30-day guarantee covers this, so please send a photo and our team "
    "will arrange a replacement.",
    "That's really disappointing, and you're covered by our guarantee. A teammate will review your photos and "
    "sort it out.",
])
fam("damaged_item", "high", True, "the shattered terrarium", [
    "My glass terrarium arrived smashed and I cut my finger on it.",
    "The terrarium was in pieces when I opened the box and I've got a cut on my hand. Glass everywhere.",
    "Hi, order {order} - the glass dome was shattered and I nicked myself picking it up. I'm fine, but it shouldn't "
    "be packed like that.",
    "broken glass in my parcel, cut myself",
], [
    "I'm so sorry, and I hope your hand is okay. Please don't touch the glass, send us a photo when you can, and "
    "our team will sort a replacement or refund.",
    "I'm really sorry you were hurt. A teammate will review what happened and contact you today about a replacement "
    "or refund.",
])
fam("damaged_item", "low", True, "receiving the wrong pot size", [
    "I ordered a 20cm pot and got a 12cm one.",
    "Wrong size pot sent, too small for my plant.",
    "Hi, order {order} had the wrong size planter, I ordered the medium and this is the small.",
    "got the wrong size pot",
], [
    "Sorry for the mix-up! Please send a photo of the pot and its label, and a teammate will send the right size.",
    "Sorry about that! Our team will check your photo and send the correct pot.",
])
fam("damaged_item", "high", True, "a second damaged delivery", [
    "This is the SECOND time my order arrived broken. I want to speak to a manager.",
    "Second damaged order in a row. Order {order}. Honestly, I'm done. Please escalate this.",
    "Hi, my replacement pot arrived smashed as well. Same as the first. I'd like a manager to call me.",
    "twice now. two broken deliveries. I want this escalated",
], [
    "I'm really sorry, twice is simply not good enough. I've escalated this to a team lead, who will contact you "
    "today to put it right.",
    "I completely understand your frustration, and I apologise. A manager has your ticket and will be in touch "
    "shortly.",
])
fam("damaged_item", "medium", True, "a gift that arrived damaged", [
    "I sent a plant as a gift and it arrived damaged.",
    "My friend received the plant I sent and it's broken. So embarrassing. Order {order}.",
    "Hi, the anniversary gift I ordered for my parents arrived with a cracked pot and bent leaves. Can you send "
    "another one?",
    "the gift plant arrived broken, can you help",
], [
    "I'm so sorry your gift arrived damaged. Please send a photo, and a teammate will arrange a replacement "
    "delivery to the recipient.",
    "That's not the surprise you planned, and I'm sorry. Our team will check the photos and sort a replacement.",
])
fam("damaged_item", "high", True, "a plant damaged by cold in transit", [
    "My plant arrived frozen.",
    "Plant arrived frost damaged, black leaves everywhere. Order {order}.",
    "Hi, the parcel sat in a freezing depot overnight and my monstera arrived with dark, water-soaked leaves. I "
    "don't think it'll survive.",
    "cold damage on delivery, leaves went black",
], [
    "I'm so sorry the cold got to your plant. Please send a photo, and our team will arrange a replacement or "
    "refund.",
    "That's heartbreaking, and I apologise. A teammate will review your photos and follow up today.",
])
fam("damaged_item", "low", True, "the leaking self-watering pot", [
    "My self-watering pot leaks.",
    "The reservoir on my new self watering planter drips water everywhere.",
    "Hi, the self-watering pot I got last week is leaking from the seam. Defect?",
    "leaky self-watering planter",
], [
    "Sorry about the leak! Please send a photo of the seam, and our team will send a replacement.",
    "That sounds like a faulty seam, and I'm sorry. A teammate will check your photo and sort it out.",
])
fam("damaged_item", "medium", True, "mould on the soil of your new plant", [
    "My new plant arrived with mould on the soil.",
    "white fuzzy mould all over the soil of the plant I just got",
    "Hi, order {order} arrived today and there's a layer of grey mould on top of the soil. Is the plant okay?",
    "Mouldy soil on a brand new plant, is that normal?",
], [
    "Sorry about that! Scrape off the top layer and let the soil dry out, then send us a photo so our team can "
    "decide whether a replacement is needed.",
    "I'm sorry it arrived like that. A teammate will review your photo and follow up about a replacement.",
])
fam("damaged_item", "low", True, "the wrong pot colour", [
    "I ordered the sage green pot and got the grey one.",
    "Wrong colour pot sent.",
    "Hi, the pot in order {order} is terracotta, but I picked 'charcoal' at checkout.",
    "got the wrong colour planter",
], [
    "Sorry for the mix-up! Please send a photo, and a teammate will send the colour you ordered.",
    "Sorry about that! Our team will check your photo and get the right colour out to you.",
])
fam("damaged_item", "high", True, "a crushed box with several broken plants", [
    "My box arrived crushed and most of the plants are broken.",
    "The whole parcel was flattened. 4 out of 5 plants are snapped. Order {order}.",
    "Hi, the courier clearly dropped something heavy on my box. Every plant is damaged and the pots are smashed.",
    "crushed box, everything broken",
], [
    "I'm so sorry your order arrived in that state. Please send a photo of the box and the plants, and our team "
    "will arrange replacements or a refund.",
    "That's awful, and I apologise. A teammate will review your photos and contact you today to make this right.",
])
fam("damaged_item", "low", True, "a plant much smaller than pictured", [
    "The plant I got is much smaller than the photo.",
    "Ordered the 'large' snake plant and it's tiny.",
    "Hi, the fiddle leaf fig I received is about a third of the height listed on the website.",
    "way smaller than I expected",
], [
    "I'm sorry it's smaller than you expected! Please send a photo next to a tape measure, and our team will check "
    "it against the listing.",
    "Sorry it doesn't match the listing. A teammate will review your photo and get back to you.",
])

# ---------------------------------------------------------------- returns_refunds
fam("returns_refunds", "low", False, "returning an unused pot", [
    "How do I return a pot I haven't used?",
    "Changed my mind about the large grey planter, it's still in the box. Can I send it back?",
    "Hi, the pot is lovely but doesn't fit my shelf. What's the return process? Order {order}.",
    "what's your return policy for pots and accessories",
    "Hello! I bought two planters and only need one. Is it easy to return the other, and do I need the original "
    "packaging?",
], [
    "Of course! Unused pots and accessories can be returned within 30 days through the returns page in your "
    "account, which gives you a prepaid label.",
    "No problem at all. Start a return from your order page within 30 days, pack the pot in any sturdy box, and "
    "your refund follows once it reaches us.",
])
fam("returns_refunds", "medium", True, "a refund for a plant that died after two months", [
    "My plant died after 2 months. Can I get a refund?",
    "I'd like my money back for the monstera - it lasted about nine weeks before it gave up completely.",
    "Hi, I know it's past your 30 days, but the olive tree I bought on {date} has died and I followed every "
    "instruction. I'd like a refund please.",
    "Plant died after 8 weeks, want a refund. Order {order}.",
], [
    "I'm sorry your plant didn't make it. It's outside our 30-day guarantee, but I've passed your request to a "
    "teammate, who will look at your order and reply about what we can do.",
    "That's disappointing after all your care, and I'm sorry. A member of our team will review your order and get "
    "back to you about a refund or credit.",
])
fam("returns_refunds", "medium", True, "cancelling your order", [
    "Please cancel my order, I placed it an hour ago by mistake.",
    "Can I cancel order {order}? Found the same plant locally.",
    "Hi, I need to cancel my order from this morning and get a refund. It hasn't shipped yet I hope!",
    "cancel my order pls",
], [
    "No problem! I've asked our team to cancel your order before it ships, and they'll confirm by email once the "
    "refund is on its way.",
    "Thanks for letting us know quickly. A teammate will cancel the order and email you once the refund has been "
    "processed.",
])
fam("returns_refunds", "low", False, "your missing return label", [
    "I started a return but never got the label.",
    "Return label not in my inbox. Checked spam too.",
    "Hi, I requested a return for order {order} two days ago and still haven't received the shipping label.",
    "where's my return label?",
], [
    "Sorry about that! You can download your return label any time from the returns section of your account, and "
    "it's usually there within a few minutes of starting the return.",
    "Your label is always available under 'My returns' in your account, so you can print it from there.",
])
fam("returns_refunds", "low", False, "when your refund will arrive", [
    "I sent my return back last week. When will I get my refund?",
    "How long do refunds take after you get the return?",
    "Hi, the tracking shows you received my returned pot on {date}. When will the money be back on my card?",
    "refund timeline?",
], [
    "Thanks for sending it back! Once your return is checked in, refunds are issued within three business days, "
    "and your bank may take another few days to show it.",
    "We process refunds within three business days of receiving a return, and you'll get an email as soon as it's "
    "sent. Banks usually take a few more days to show it.",
])
fam("returns_refunds", "high", True, "a refund that never arrived", [
    "You received my return a month ago and I still haven't been refunded.",
    "Still no refund for order {order}. Your warehouse confirmed receipt on {date}. That's four weeks ago.",
    "Hi, this is my third email about this. My return was delivered to you weeks ago and I have had nothing back. "
    "Please sort it out.",
    "where is my refund?? returned weeks ago",
], [
    "I'm sorry, that's far longer than it should take. I've escalated this to our returns team, who will check "
    "your refund today and email you with an update.",
    "I apologise for the wait and for having to chase us. A teammate is looking into your refund now and will "
    "get back to you within one business day.",
])
fam("returns_refunds", "low", False, "returning a gift", [
    "I received a plant as a gift, can I exchange it?",
    "Can I return a gift without the person who bought it knowing?",
    "Hi, someone sent me a pot from you for my birthday but I already have the same one. How do gift returns work?",
    "gift return - no receipt, is that ok?",
], [
    "Of course! Gift returns are easy: use the gift returns page with the order number from the packing slip, and "
    "you'll receive store credit without the sender being told.",
    "You can return a gift within 30 days using the order number on the packing slip, and we'll give you store "
    "credit quietly.",
])
fam("returns_refunds", "low", False, "returning a sale item", [
    "Can I return something I bought in the sale?",
    "Are sale items final sale?",
    "Hi, I bought a discounted planter last week. Can it be returned like normal stuff?",
    "returns on clearance items?",
], [
    "Good question! Sale items can be returned within 30 days like anything else, except for items marked "
    "'final sale' on the product page.",
    "Most sale items follow our normal 30-day return policy; only products labelled 'final sale' can't be returned.",
])
fam("returns_refunds", "medium", True, "a refund for this month's subscription box", [
    "I forgot to skip this month's plant box. Can I get a refund?",
    "Please refund the subscription box I got charged for. I cancelled before the renewal date!",
    "Hi, my plant subscription box arrived but I'm moving abroad. Can I send it back for a refund?",
    "refund for subscription box please",
], [
    "Thanks for getting in touch! I've passed your request to our subscriptions team, who will check your account "
    "and get back to you about a refund.",
    "No problem. A teammate will review your subscription and email you today about refunding this month's box.",
])
fam("returns_refunds", "medium", True, "store credit instead of a refund", [
    "Can I get store credit instead of a refund?",
    "I'd rather have credit than money back for my return. Possible?",
    "Hi, for order {order}, could you give me credit on my account instead of a refund?",
    "store credit for my return please",
], [
    "Absolutely! I've passed your request to our team, who will add the credit once your return arrives.",
    "Of course. A teammate will switch your return to store credit and confirm by email.",
])
fam("returns_refunds", "low", False, "who pays for return shipping", [
    "Who pays for return shipping?",
    "Do I have to pay for the return postage?",
    "Hi, I want to return a pot. Is the return label free or is it taken off my refund?",
    "return shipping free?",
], [
    "Returns are free if something arrived damaged or wrong; for change-of-mind returns, a small label fee is taken "
    "from your refund.",
    "Return labels are free for faulty or wrong items, while change-of-mind returns have a small fee deducted from "
    "the refund.",
])
fam("returns_refunds", "medium", True, "a partial refund that looks wrong", [
    "I got a refund but it's less than I paid.",
    "My refund was short. What happened? Order {order}.",
    "Hi, I returned the whole order but only got part of my money back. Can you check?",
    "refund amount wrong",
], [
    "I'm sorry for the confusion. A teammate will check your refund against your order and get back to you.",
    "Thanks for flagging this. Our team will look into your refund amount and email you with an explanation or "
    "correction.",
])
fam("returns_refunds", "low", False, "exchanging for a bigger pot", [
    "Can I exchange my pot for a bigger size?",
    "The 15cm pot is too small, can I swap it for the 20cm?",
    "Hi, I'd like to exchange my planter for the next size up. How does that work?",
    "exchange for different size?",
], [
    "Of course! Start an exchange from your order page within 30 days, choose the new size, and we'll send it as "
    "soon as your original is on its way back.",
    "Happy to help you find the right fit. Use the exchange option on your order page and we'll ship the bigger "
    "size once the return is dropped off.",
])
fam("returns_refunds", "high", True, "a refund dispute with a chargeback threat", [
    "If I don't get my refund this week, I'm filing a chargeback.",
    "This is ridiculous. Refund me for order {order} or I'll dispute it with my bank.",
    "Hi, I have asked for a refund three times. I'm contacting my bank tomorrow unless I hear back.",
    "refund or chargeback. your choice",
], [
    "I'm sorry it has come to this, and I understand your frustration. I've escalated your ticket to a team lead, "
    "who will contact you today.",
    "I apologise for the delays. A senior teammate now has your ticket and will be in touch shortly to resolve "
    "this.",
])
fam("returns_refunds", "medium", True, "cancelling your subscription with a refund", [
    "I want to cancel my plant subscription and get refunded for the remaining months.",
    "Cancel my annual plan please, and refund what I haven't used.",
    "Hi, I prepaid for a year of plant boxes but I'm moving. Can I cancel and get the rest back?",
    "cancel subscription + refund",
], [
    "Sorry to see you go! I've passed this to our subscriptions team, who will cancel your plan and email you "
    "about the refund for the remaining months.",
    "Thanks for letting us know. A teammate will cancel the subscription and follow up about the unused months.",
])
fam("returns_refunds", "low", False, "returning a large tree", [
    "How do I return a big tree?",
    "The 1.8m olive tree doesn't fit through my door lol. How do I send it back?",
    "Hi, what's the process for returning a large plant? I don't have a box big enough.",
    "returning large items",
], [
    "No worries! For large plants, start a return from your order page and choose 'collection', and our courier "
    "will bring packaging and pick it up.",
    "Large items are collected from your door, so you don't need a box. Choose 'collection' when you start the "
    "return.",
])
fam("returns_refunds", "medium", True, "a refund of your shipping fee for a late delivery", [
    "My express delivery came three days late. Can I get the shipping fee back?",
    "Paid for next day, arrived 4 days later. I want the express fee refunded.",
    "Hi, order {order} was express but took almost a week. Could you refund the delivery charge?",
    "refund express shipping, it was late",
], [
    "I'm sorry your express order was late. I've asked a teammate to review it and refund the delivery fee where "
    "it applies.",
    "Sorry it took so long! Our team will check the delivery and email you about refunding the express charge.",
])
fam("returns_refunds", "low", False, "returning an item after 30 days", [
    "It's been 35 days. Can I still return the pot?",
    "Missed the return window by a few days, what are my options?",
    "Hi, I bought a planter over a month ago and never used it. Is it too late to return it?",
    "past 30 days return?",
], [
    "Our standard return window is 30 days, but unused pots can still be exchanged for store credit within 60 "
    "days from your order page.",
    "The return window is 30 days, though unused items can be swapped for store credit for up to 60 days.",
])
fam("returns_refunds", "medium", True, "a refund to a closed card", [
    "My refund went to a card I've closed.",
    "The card I paid with has been cancelled, where will my refund go?",
    "Hi, I've closed the card I used for order {order}. Can you send the refund another way?",
    "refund to an old card, what happens",
], [
    "Thanks for letting us know! A teammate will check your refund and arrange another way to get the money to "
    "you.",
    "Don't worry, our team will look into your refund and email you with the options.",
])
fam("returns_refunds", "medium", True, "a refund for a workshop you can't attend", [
    "I can't attend the repotting workshop. Can I get a refund?",
    "Refund for the terrarium class, please. I'm sick.",
    "Hi, I booked the Saturday plant care workshop but can't make it. Refund or transfer?",
    "can't make the workshop, refund?",
], [
    "Sorry you can't make it! I've passed your booking to our events team, who will offer a refund or a place on "
    "another date.",
    "Thanks for letting us know. A teammate will check your booking and email you about a refund or a transfer to "
    "another date.",
])

# ---------------------------------------------------------------- billing
fam("billing", "high", True, "being charged twice", [
    "I was charged twice for the same order!",
    "Two identical charges on my card for order {order}. Please refund one.",
    "Hi, my bank statement shows GreenLeaf took the payment twice on {date}. I only placed one order.",
    "double charged?!",
    "Hello, I think there's a glitch: I see two charges of the same amount from you, both for the order I placed "
    "yesterday. Could someone check and reverse the extra one?",
], [
    "I'm sorry about the double charge, that's stressful. I've passed this to our billing team, who will check "
    "the payments and reverse any duplicate within one business day.",
    "Thanks for spotting this. A teammate from billing will confirm the duplicate and email you once it's "
    "reversed.",
])
fam("billing", "urgent", True, "charges you don't recognise after a card was stolen", [
    "My card was stolen and there are GreenLeaf charges I didn't make.",
    "Fraud alert: someone used my card on your site. I don't have an account with you!",
    "Hi, my wallet was stolen yesterday and my bank shows three orders from GreenLeaf since then. Please stop them.",
    "stolen card used on your site, cancel those orders NOW",
], [
    "I'm so sorry, please contact your bank to block the card if you haven't already. I've flagged this to our "
    "security team, who will stop any pending orders and contact you today.",
    "Thank you for telling us so quickly. Our fraud team is looking at these orders right now and will be in "
    "touch shortly; please also report it to your bank.",
])
fam("billing", "high", True, "a failed payment that still took money", [
    "The payment failed but the money left my account.",
    "Checkout said 'payment declined' but my bank shows the charge. No order confirmation.",
    "Hi, I tried to pay three times and it failed each time, but now I have three pending payments.",
    "payment error but I was charged",
], [
    "I'm sorry for the trouble. I've asked our billing team to check the payments, and they'll make sure any "
    "charge without an order is returned.",
    "That's frustrating, and I apologise. A teammate will look at your payment attempts and email you within one "
    "business day.",
])
fam("billing", "low", False, "getting a VAT invoice", [
    "I need a VAT invoice for my business.",
    "Can I get an invoice for order {order}?",
    "Hi, my company needs an itemised invoice with VAT. Where can I find it?",
    "how do I download invoices",
], [
    "Happy to help! You can download a VAT invoice for any order from the order page in your account.",
    "Invoices are available as PDFs on each order's page in your account, with VAT shown separately.",
])
fam("billing", "low", True, "a discount code that didn't apply", [
    "My discount code didn't work at checkout.",
    "Used WELCOME10 but wasn't discounted. Order {order}.",
    "Hi, I entered the code from your newsletter and it said valid, but the total didn't change. Can you adjust it?",
    "promo code not applied",
], [
    "Sorry about that! I've passed your order to our billing team, who will check the code and refund the "
    "difference if it should have applied.",
    "Thanks for flagging it. A teammate will check the code and sort out any adjustment.",
])
fam("billing", "medium", True, "being charged more than the listed price", [
    "I was charged more than the price on the website.",
    "The plant was listed at £24 but I paid £32. Why?",
    "Hi, order {order}: the product page showed a lower price than what came off my card.",
    "charged wrong amount",
], [
    "Sorry for the confusion. I've asked our billing team to compare your payment with the listed price, and they'll "
    "correct any difference.",
    "Thanks for letting us know. A teammate will review the price you paid and email you about any adjustment.",
])
fam("billing", "low", False, "checking a gift card balance", [
    "How do I check my gift card balance?",
    "Gift card balance?",
    "Hi, I got a GreenLeaf gift card for my birthday. How can I see how much is left on it?",
    "can I check balance on a gift card",
], [
    "Lovely gift! You can check your balance on our gift card page by entering the card number and PIN.",
    "Your gift card balance is shown on the gift card page, and also at checkout when you apply the card.",
])
fam("billing", "low", False, "which payment methods we accept", [
    "Do you accept PayPal?",
    "Can I pay with Apple Pay?",
    "Hi, what payment methods do you take? I don't have a credit card.",
    "payment options?",
], [
    "Good question! We accept debit and credit cards, PayPal, Apple Pay and Google Pay at checkout.",
    "You can pay by card, PayPal, Apple Pay or Google Pay, so no credit card needed.",
])
fam("billing", "medium", True, "an unexpected subscription renewal charge", [
    "My subscription renewed and I was charged without warning.",
    "I thought I cancelled the plant box. Now charged again.",
    "Hi, I was charged for another year of the subscription on {date}. I didn't want it to renew.",
    "unwanted renewal charge",
], [
    "I'm sorry for the surprise charge. I've passed this to our billing team, who will check the renewal and "
    "refund it if you'd like to cancel.",
    "Thanks for getting in touch. A teammate will review the renewal and email you about cancelling and the "
    "refund.",
])
fam("billing", "low", False, "a pending payment after a cancelled order", [
    "I cancelled my order but there's still a pending charge.",
    "Why is there a pending payment if my order was cancelled?",
    "Hi, I cancelled order {order} yesterday but my banking app still shows the amount as pending.",
    "pending charge after cancellation",
], [
    "Don't worry! That's a temporary hold, not a charge, and your bank will release it within three to five "
    "business days.",
    "Pending amounts after a cancellation are holds that drop off automatically, usually within a few business "
    "days.",
])
fam("billing", "low", False, "currency conversion fees", [
    "Why was I charged a foreign transaction fee?",
    "My bank added a conversion fee. Are your prices in pounds?",
    "Hi, my card is in euros and I was charged a bit more than the listed price. Why?",
    "currency fee on my order",
], [
    "Our prices are in pounds, so banks outside the UK may add a conversion fee. It comes from your bank, not us.",
    "That fee is added by your bank for converting pounds. Your card provider can tell you more about it.",
])
fam("billing", "urgent", True, "a charge you don't recognise", [
    "There's a charge from GREENLEAF*SHOP on my card I don't recognise.",
    "I don't know this charge. Never ordered from you.",
    "Hi, my statement shows £212 from GreenLeaf on {date}. I didn't place any order.",
    "unknown charge from you",
], [
    "I'm sorry, I understand how worrying that is. I've flagged this to our fraud team, who will investigate and "
    "contact you today; please also let your bank know.",
    "Thanks for telling us straight away. Our security team is looking into this charge and will be in touch "
    "shortly.",
])
fam("billing", "low", False, "updating the card on your subscription", [
    "How do I update my card for the subscription?",
    "My card expired, where do I change it?",
    "Hi, I need to change the payment card on my plant subscription.",
    "update payment method",
], [
    "Easy fix! Go to 'Subscription' in your account and choose 'Update payment method'.",
    "You can change the card on your subscription page in your account, and it will be used from the next box.",
])
fam("billing", "low", True, "a correction to your invoice", [
    "The company name on my invoice is wrong.",
    "Invoice has the wrong VAT number, need it corrected.",
    "Hi, could you reissue the invoice for order {order} with our company address?",
    "fix invoice details pls",
], [
    "No problem! I've passed this to our billing team, who will reissue the invoice with the right details.",
    "Thanks for letting us know. A teammate will correct the invoice and email you the new copy.",
])
fam("billing", "medium", True, "being charged shipping on a free-shipping order", [
    "My order was over £50 but I was still charged for shipping.",
    "Why did I pay delivery? The site says free over £50.",
    "Hi, order {order} came to £63 and I was charged £4.95 for delivery.",
    "charged shipping when it should be free",
], [
    "Sorry about that! I've asked our billing team to check your order and refund the delivery fee if it should "
    "have been free.",
    "Thanks for flagging it. A teammate will review the shipping charge and sort any refund.",
])
fam("billing", "low", False, "paying in instalments", [
    "Can I pay in instalments?",
    "Do you offer Klarna or pay later?",
    "Hi, is there a buy-now-pay-later option for the large trees?",
    "instalments available?",
], [
    "Yes! Klarna is available at checkout for orders over £30, letting you split the payment into three.",
    "You can choose Klarna at checkout to pay in three instalments on orders over £30.",
])
fam("billing", "medium", True, "a gift card code that says invalid", [
    "My gift card code says invalid.",
    "Gift card won't work at checkout.",
    "Hi, my gift card shows 'code not recognised' when I try to use it.",
    "invalid gift card",
], [
    "Sorry about that! I've passed your gift card to our team, who will check it and get it working for you.",
    "Thanks for letting us know. A teammate will look up the card and email you.",
])
fam("billing", "medium", True, "tax charged to a tax-exempt organisation", [
    "We're a charity and shouldn't pay VAT. Can you refund it?",
    "Our school is VAT exempt but we were charged VAT on order {order}.",
    "Hi, we're a registered charity and need the VAT removed from our order.",
    "VAT refund for charity",
], [
    "Thanks for getting in touch! I've passed this to our billing team, who will check your exemption and refund "
    "the VAT if it applies.",
    "A teammate will review your exemption certificate and get back to you about the VAT.",
])
fam("billing", "low", False, "getting a receipt", [
    "Can I get a receipt for my order?",
    "I need a receipt for order {order}.",
    "Hi, I deleted my order confirmation email. How can I get a receipt?",
    "receipt please",
], [
    "Of course! Receipts can be downloaded from your order page, or resent from your order confirmation.",
    "You'll find the receipt on your order page, ready to download or print.",
])
fam("billing", "medium", False, "a card that keeps getting declined", [
    "My card keeps getting declined.",
    "Payment declined every time I try to check out.",
    "Hi, I've tried two different cards and both are declined on your site. Is something wrong?",
    "card declined",
], [
    "Sorry for the trouble! Please check the billing address matches your card, and try PayPal if it still won't "
    "go through.",
    "Declines usually come from a billing address mismatch or your bank's security checks, so a quick call to your "
    "bank often fixes it.",
])

# ---------------------------------------------------------------- account
fam("account", "low", False, "your password reset email", [
    "I forgot my password and the reset email isn't arriving.",
    "Password reset link never comes. Checked spam.",
    "Hi, I've clicked 'forgot password' three times this morning and nothing has come through. Is it broken?",
    "cant log in, reset email not coming",
    "hello i forgot my password how do i get in",
], [
    "Sorry for the hassle! Reset emails can take up to ten minutes and sometimes land in promotions or spam, and "
    "each new request cancels the last link, so use the newest one.",
    "Please request one more reset and give it ten minutes; check spam and promotions folders too. The newest "
    "link is the only one that works.",
])
fam("account", "urgent", True, "a hacked account", [
    "My account has been hacked. Someone changed my email address.",
    "Someone is in my GreenLeaf account and placed an order I didn't make!",
    "Hi, I just got an email saying my account email was changed, but I didn't do it. I can't log in now.",
    "account hacked, help",
], [
    "I'm sorry, that sounds really worrying. I've flagged your account to our security team, who will lock it, "
    "cancel any unknown orders and contact you today.",
    "Thanks for telling us right away. Our security team is securing your account now and will email you at your "
    "original address shortly.",
])
fam("account", "low", False, "changing your email address", [
    "How do I change my email address?",
    "need to update my email on my account",
    "Hi, I'm switching email providers. Where can I change the email on my GreenLeaf account?",
    "change login email?",
], [
    "Easy! Go to 'Account settings', choose 'Email', and confirm the change from your new inbox.",
    "You can update your email under 'Account settings', and we'll send a confirmation link to the new address.",
])
fam("account", "medium", True, "deleting your account and data", [
    "Please delete my account and all my data.",
    "I want my personal data erased under GDPR.",
    "Hi, I don't shop with you anymore. Please close my account and remove my details.",
    "delete my account",
], [
    "Of course. I've passed your request to our privacy team, who will confirm your identity and delete your "
    "account and data within 30 days.",
    "Thanks for letting us know. A teammate from our privacy team will email you to confirm and then complete the "
    "deletion.",
])
fam("account", "low", False, "unsubscribing from our newsletter", [
    "How do I unsubscribe from your emails?",
    "Still getting newsletters even though I unsubscribed.",
    "Hi, too many marketing emails lately. Can I get fewer or none?",
    "unsubscribe me",
], [
    "No problem! Click 'unsubscribe' at the bottom of any newsletter or update your preferences in account "
    "settings; changes can take up to 48 hours.",
    "You can turn off marketing emails under 'Email preferences' in your account, and it takes up to two days to "
    "stop completely.",
])
fam("account", "medium", False, "a locked account", [
    "My account is locked after too many login attempts.",
    "Locked out. Says try again later.",
    "Hi, I typed my password wrong a few times and now my account is locked. How long does it last?",
    "account locked",
], [
    "Sorry about that! Locks clear automatically after 30 minutes, or you can reset your password straight away "
    "to unlock it.",
    "For security, accounts lock after several wrong attempts. Wait 30 minutes or use 'forgot password' to get "
    "back in sooner.",
])
fam("account", "urgent", True, "an unknown login to your account", [
    "I got a login alert from another country. It wasn't me.",
    "Someone logged into my account from Brazil. I'm in Leeds.",
    "Hi, I received an email saying there was a new sign-in on a device I don't own.",
    "suspicious login alert",
], [
    "Thanks for acting quickly. Please reset your password now, and I've alerted our security team, who will "
    "check your account and contact you today.",
    "I'm sorry for the worry. Change your password straight away; our security team has been notified and will "
    "review recent activity on your account.",
])
fam("account", "low", True, "merging two accounts", [
    "I have two accounts. Can you merge them?",
    "Accidentally made two accounts with different emails, can you combine my orders?",
    "Hi, I'd like to merge my old and new GreenLeaf accounts so my loyalty points are in one place.",
    "merge accounts",
], [
    "Happy to help! I've passed this to our team, who will merge the accounts and email you when it's done.",
    "No problem. A teammate will combine your accounts and confirm by email.",
])
fam("account", "low", False, "missing loyalty points", [
    "My loyalty points haven't shown up.",
    "Didn't get points for my last order.",
    "Hi, I made an order on {date} but my points balance hasn't changed.",
    "where are my points",
], [
    "Points appear once your order has been delivered, usually within a day. If they still aren't there after that, "
    "just let us know.",
    "Loyalty points are added after delivery, so they should show up soon after your parcel arrives.",
])
fam("account", "low", False, "changing the name on your account", [
    "How do I change the name on my account?",
    "I got married, need to update my surname.",
    "Hi, my name is spelled wrong on my account. Can I fix it?",
    "change account name",
], [
    "Of course! You can edit your name under 'Account settings' at any time.",
    "You can update your name in 'Account settings', and it will be used on future orders.",
])
fam("account", "low", False, "orders from guest checkout", [
    "I ordered as a guest. Can I see it in my account?",
    "My guest order isn't in my order history.",
    "Hi, I checked out as a guest last week and then made an account. Where's my order?",
    "guest order not showing",
], [
    "Good question! Guest orders link automatically when you make an account with the same email, so log in with "
    "that address to see them.",
    "If your account uses the same email as the guest order, it will appear in your history within a day.",
])
fam("account", "medium", False, "two-factor codes not arriving", [
    "I'm not getting my two-factor code.",
    "2FA texts aren't coming through.",
    "Hi, the login verification code never arrives by SMS, so I can't get in.",
    "no verification code",
], [
    "Sorry for the trouble! Codes can take a minute; check your signal, and you can choose 'email me a code' "
    "instead on the login screen.",
    "If the text doesn't arrive, choose 'Try another way' to get your code by email instead.",
])
fam("account", "medium", True, "a request for a copy of your data", [
    "I'd like a copy of all the data you hold about me.",
    "Subject access request please.",
    "Hi, under data protection law, please send me all the personal data GreenLeaf holds on me.",
    "what data do you have on me",
], [
    "Of course. I've passed your request to our privacy team, who will confirm your identity and send your data "
    "within 30 days.",
    "Thanks for your request. A teammate from our privacy team will email you to confirm your identity and get "
    "started.",
])
fam("account", "low", False, "turning off text messages", [
    "How do I stop getting text messages from you?",
    "too many SMS from GreenLeaf",
    "Hi, I'd like order updates by email only, not by text.",
    "stop texts",
], [
    "No problem! Reply STOP to any message, or turn off SMS in 'Notification settings' in your account.",
    "You can switch texts off under 'Notification settings', and order updates will come by email only.",
])
fam("account", "low", False, "your missing wishlist", [
    "My wishlist disappeared.",
    "All the plants I saved are gone from my wishlist?",
    "Hi, I had about 15 plants saved and now my wishlist is empty.",
    "wishlist empty",
], [
    "Sorry about that! Wishlists are saved to your account, so make sure you're logged in; items that are "
    "discontinued are removed.",
    "Check that you're logged in, since wishlists are tied to your account rather than your browser.",
])
fam("account", "low", False, "updating your saved address", [
    "My old address is still saved on my account.",
    "How do I change my default delivery address?",
    "Hi, I moved house. Where do I update my address for future orders?",
    "update saved address",
], [
    "Easy fix! Go to 'Addresses' in your account to edit or set a new default address.",
    "You can add your new address under 'Addresses' in your account and make it the default.",
])
fam("account", "low", False, "removing your product review", [
    "Can I delete a review I wrote?",
    "I want to remove my review from the site.",
    "Hi, I left a review last year and want to take it down.",
    "delete my review",
], [
    "Of course! You can delete any of your reviews from the 'My reviews' page in your account.",
    "Go to 'My reviews' in your account, where you can edit or remove anything you've written.",
])
fam("account", "high", True, "seeing someone else's details in your account", [
    "I can see someone else's orders in my account.",
    "My account shows a different person's name and address!",
    "Hi, when I logged in, the order history belongs to someone I don't know.",
    "someone else's info in my account",
], [
    "Thank you for telling us; that must be unsettling. I've escalated this to our security team, who will "
    "investigate and contact you today.",
    "I'm sorry, this needs urgent attention. Our security team has been alerted and will be in touch shortly.",
])
fam("account", "low", False, "your birthday discount", [
    "I didn't get my birthday discount.",
    "Where's my birthday code?",
    "Hi, it was my birthday on {date} and I didn't receive the usual discount email.",
    "birthday discount missing",
], [
    "Happy belated birthday! Make sure your birthday is saved in 'Account settings'; codes are sent at the start "
    "of your birthday month.",
    "Birthday codes go out on the first of the month, as long as your birthday is saved in your account.",
])
fam("account", "high", True, "a legal complaint about your data", [
    "I'm taking legal action over the data breach email you sent.",
    "My lawyer will be in touch about my personal data.",
    "Hi, I believe you've mishandled my personal information and I'm filing a complaint with the regulator.",
    "legal complaint about data",
], [
    "I'm sorry you feel this way, and I take your concerns seriously. I've escalated your message to our privacy "
    "and legal team, who will reply to you directly.",
    "Thank you for raising this. A senior member of our privacy team will contact you to discuss your concerns.",
])

# ---------------------------------------------------------------- product_question
fam("product_question", "low", False, "a plant for a dark office", [
    "What's the best plant for an office with no windows?",
    "low light plant recommendations?",
    "Hi, I'm after a plant for my desk at work. We only have overhead lights. What would survive?",
    "Which of your plants would do ok in a dim bedroom?",
], [
    "Great question! ZZ plants, snake plants and pothos all cope well with low light, and all three forgive a "
    "missed watering.",
    "For low light, we recommend a ZZ plant, snake plant or pothos; they're tough, slow-growing and easy going.",
])
fam("product_question", "low", False, "pet-safe plants", [
    "Which plants are safe for cats?",
    "Pet friendly plants?",
    "Hi, I have two curious cats and a puppy. Which of your plants won't hurt them if they nibble?",
    "Are your calatheas safe for dogs?",
], [
    "Lovely to hear you're planning ahead! Calatheas, spider plants, parlour palms and peperomias are all pet-safe, "
    "and our website has a 'pet-friendly' filter.",
    "Calatheas, spider plants and Boston ferns are safe around cats and dogs; just use the 'pet-friendly' filter "
    "when browsing.",
])
fam("product_question", "low", False, "when the large monstera is back in stock", [
    "Is the large monstera back in stock?",
    "When will you restock the monstera?",
    "Hi, the large Monstera has been sold out for weeks. Any idea when it's coming back?",
    "monstera out of stock, when back",
], [
    "It's a popular one! We expect the large monstera back within a few weeks, and 'notify me' on the product "
    "page will email you the moment it's in.",
    "Click 'notify me' on the monstera's page and we'll email you as soon as it's back in stock.",
])
fam("product_question", "low", False, "choosing a pot size", [
    "What size pot do I need for a plant in a 15cm nursery pot?",
    "pot size for a 12cm plant?",
    "Hi, my snake plant is in a 17cm plastic pot. Which of your planters would fit it?",
    "which pot fits a 15cm plant",
], [
    "Good question! For a decorative cover pot, pick one a couple of centimetres wider than the nursery pot; "
    "for repotting, go up 2 to 5 cm.",
    "Choose a planter about 2 cm wider than the nursery pot so it slips inside easily.",
])
fam("product_question", "low", False, "soil for cacti", [
    "Which soil mix should I use for cacti?",
    "What compost is best for succulents?",
    "Hi, I'm repotting my cactus collection. Is your cactus mix ok or should I add grit?",
    "cactus soil?",
], [
    "Our cactus and succulent mix is ideal as it is, as it already contains grit for drainage.",
    "Our cactus mix drains well for cacti and succulents, and extra grit is only needed for very wet rooms.",
])
fam("product_question", "medium", True, "a bulk order quote", [
    "Can I get a quote for 50 plants for our office?",
    "We need about 80 small plants as wedding favours. Do you do bulk discounts?",
    "Hi, I manage a co-working space and want to buy 30 large plants. Can someone give us a price?",
    "bulk order pricing?",
], [
    "How exciting! I've passed your request to our business team, who will send you a tailored quote within two "
    "business days.",
    "Thanks for thinking of us. A member of our sales team will contact you with bulk pricing.",
])
fam("product_question", "low", False, "whether a fiddle leaf fig is beginner friendly", [
    "Is a fiddle leaf fig good for beginners?",
    "is fiddle leaf fig hard to look after",
    "Hi, I've never had a plant before. Would a fiddle leaf fig be a bad first choice?",
    "easy plants for beginners?",
], [
    "Fiddle leaf figs are a bit fussy for a first plant. A rubber plant gives a similar look with far less drama.",
    "Fiddle leaf figs need steady light and dislike moving; a pothos or ZZ is a gentler start.",
])
fam("product_question", "low", False, "drainage holes in our pots", [
    "Do your pots have drainage holes?",
    "Does the ceramic planter have a hole?",
    "Hi, I'd like to plant directly in one of your pots. Do they drain?",
    "drainage holes?",
], [
    "Good question! Our terracotta pots have drainage holes, while ceramic planters are cover pots.",
    "Terracotta pots have holes; glazed ceramics don't, so use them as cover pots.",
])
fam("product_question", "low", False, "choosing a grow light", [
    "Which grow light would you recommend for a small flat?",
    "grow light for herbs?",
    "Hi, my flat gets barely any sun. Do I need a grow light?",
    "recommend a grow light",
], [
    "For a small flat, our clip-on LED light is perfect: it's quiet, efficient and covers two or three plants.",
    "Our clip-on LED grow light suits small spaces and herb pots.",
])
fam("product_question", "low", False, "gift wrapping and gift messages", [
    "Do you offer gift wrapping?",
    "Can I add a gift message?",
    "Hi, I'm sending a plant to a friend. Can you hide the price and include a card?",
    "gift wrap available?",
], [
    "We'd love to help with your gift! Tick 'This is a gift' at checkout to add a message, and prices are left "
    "off the packing slip.",
    "Yes! Choose 'This is a gift' at checkout to add a card and hide prices.",
])
fam("product_question", "low", False, "the size of the medium snake plant", [
    "How tall is the medium snake plant?",
    "What size is the medium sansevieria?",
    "Hi, what's the height of the medium snake plant including the pot?",
    "medium snake plant dimensions",
], [
    "Our medium snake plant is around 50 to 60 cm tall including the nursery pot.",
    "The medium snake plant is roughly 55 cm tall, in a 17 cm nursery pot.",
])
fam("product_question", "low", False, "plants for a humid bathroom", [
    "What plants like bathrooms?",
    "Plants that like humidity?",
    "Hi, we just redid our bathroom and I'd love some greenery. What would do well?",
    "plants for bathroom",
], [
    "Bathrooms are perfect for ferns, calatheas and pothos, which love humidity.",
    "Ferns, calatheas and pothos all thrive in humid bathrooms with some natural light.",
])
fam("product_question", "low", False, "self-watering pots for succulents", [
    "Are self-watering pots good for succulents?",
    "Self watering pot for cactus?",
    "Hi, would a self-watering pot work for my jade?",
    "self-watering pots and succulents",
], [
    "Self-watering pots keep soil moist, so they're not ideal for succulents; a terracotta pot works better.",
    "Succulents prefer dry soil, so we'd recommend terracotta instead.",
])
fam("product_question", "low", False, "whether plants come potted", [
    "Do plants come in a pot?",
    "Is the plant shipped in its nursery pot?",
    "Hi, if I buy a plant and a planter, does it come already potted?",
    "plant + pot potted?",
], [
    "Plants arrive in plastic nursery pots, so they slip straight into a decorative planter.",
    "All plants ship in nursery pots.",
])
fam("product_question", "low", False, "hanging planter hardware", [
    "Does the hanging planter come with a hook?",
    "How much weight can the macrame hanger hold?",
    "Hi, what do I need to hang your ceramic hanging pot from the ceiling?",
    "hanging planter hardware?",
], [
    "The hanging planter includes a rope hanger but not a ceiling hook, and it holds up to 5 kg.",
    "It comes with its hanger, so you'll only need a ceiling hook rated for at least 5 kg.",
])
fam("product_question", "low", False, "choosing a fertiliser", [
    "What fertiliser do you recommend?",
    "Which plant food for monstera?",
    "Hi, how often should I feed my houseplants and with what?",
    "best fertiliser?",
], [
    "Our all-purpose liquid feed works for most houseplants; use it every two weeks in spring and summer.",
    "A balanced liquid feed every couple of weeks in the growing season keeps plants happy.",
])
fam("product_question", "low", False, "visiting our shop in person", [
    "Do you have a physical shop?",
    "Can I visit your greenhouse?",
    "Hi, is there a store I can come to?",
    "shop address?",
], [
    "We're online-only for now, but our greenhouse holds open days each season.",
    "We don't have a shop, but you're welcome at our seasonal greenhouse open days.",
])
fam("product_question", "low", False, "plants for allergy sufferers", [
    "Which plants are good for allergies?",
    "Plants that don't trigger hay fever?",
    "Hi, I have bad allergies. Are there houseplants that don't flower much?",
    "allergy friendly plants",
], [
    "Leafy plants that rarely flower, like snake plants, ZZ plants and pothos, are good choices for allergy "
    "sufferers.",
    "Snake plants, ZZ plants and palms rarely flower indoors.",
])
fam("product_question", "medium", True, "a corporate plant care service", [
    "Do you offer plant care services for offices?",
    "We'd like someone to look after our office plants every month.",
    "Hi, does GreenLeaf do corporate plant subscriptions with maintenance visits?",
    "office plant care service?",
], [
    "We do! I've passed your details to our business team, who will contact you about a plan for your office.",
    "A member of our business team will be in touch about our office plant care plans.",
])
fam("product_question", "low", True, "a price match request", [
    "Will you price match another shop?",
    "Found the same plant cheaper elsewhere.",
    "Hi, another site sells the same pot for £8 less. Can you match it?",
    "price match?",
], [
    "Thanks for asking! I've passed this to our team, who will check the other listing.",
    "A teammate will review the listing and get back to you about matching it.",
])


# A fifth (sometimes sixth) wording for many families, added after the first draft: mostly longer, messier tickets.
MORE_TICKETS = {
    "your fiddle leaf fig dropping leaves": [
        "FLF losing leaves left right and centre after the move, bottom ones mostly. watering every sunday. ideas?"],
    "the fungus gnats in your soil": [
        "So every time I water my plants a little cloud of tiny flies comes up out of the pot. They're in the kitchen "
        "now too and my partner is NOT amused. Is this something I did? I've only had the plants a month."],
    "the spider mites on your calathea": [
        "calathea has these super fine webs and the leaves have gone kind of grey and stippled, I think spider mites? "
        "how long does treatment take, I don't want to lose it"],
    "the mealybugs spreading through your plants": [
        "Emergency-ish: mealybugs went from one succulent to about ten plants over the weekend. Sticky residue on the "
        "shelf. What's the fastest way to stop them before they get everything?"],
    "your snake plant's mushy base": [
        "Snake plant smells like something died in the pot and two leaves just flopped over when I touched them. "
        "Bottom of the leaves is brown and soft. Help!!"],
    "your stretching succulents": [
        "My succulents look like they're trying to escape the pot - long bare stems and tiny leaves at the top. They "
        "were compact when they arrived in {month}."],
    "watering your ZZ plant while you're away": [
        "I'm a nurse and do long stretches of nights, sometimes I forget to water for weeks. Will a ZZ cope with that "
        "sort of neglect or should I get something else?"],
    "the brown tips on your calathea": [
        "every new leaf on my calathea comes out fine and then goes crispy brown at the edges within a couple of weeks. "
        "I have a humidifier running too. what else can cause it?"],
    "your cat chewing a lily": [
        "My cat has been chewing the stargazer lilies that came in my bouquet this morning, there are bite marks on two "
        "leaves. Do I need to take her to the vet right now? Please answer fast"],
    "your dog eating pothos leaves": [
        "hi my spaniel pulled down the trailing pothos off the shelf and ate some, he keeps licking his lips and "
        "swallowing a lot. is pothos toxic to dogs?? what should I watch for"],
    "your child eating part of a plant": [
        "My baby (14 months) grabbed a leaf off the ZZ plant and chewed it before I could stop her. She's fussing and "
        "dribbling. Is that plant poisonous to children?"],
    "the white crust on your soil": [
        "Bit of a weird one - the top of the soil in three of my pots has gone white and crusty and the rim of the "
        "terracotta too. Not fluffy like mould, more like salt. Should I worry?"],
    "propagating your leggy pothos": [
        "I've got a neon pothos with about six long vines and barely any leaves near the soil. I'd like to chop it and "
        "start new plants for friends. Water or soil, and how long till roots?"],
    "your orchid after flowering": [
        "Orchid question! The flowers are all gone and now the stem is turning brown from the tip. Do I chop it right "
        "down? Will it ever flower again or is that it?"],
    "your cactus going soft at the base": [
        "my cactus has a soft squishy bit near the soil and it's turned a yellowish colour. the top still looks ok. "
        "it's on a windowsill and I water it weekly"],
    "your new plant wilting after delivery": [
        "Plant delivered {date}, unpacked straight away, looked perky. 24 hours later it's droopy and sad. The soil is "
        "still damp. Is it just stressed from the trip or did I get a dud?"],
    "repotting your rubber plant": [
        "When I lifted my rubber plant out of its cover pot the roots were wrapped round and round the bottom. Time "
        "for a bigger pot? What soil should I use?"],
    "the scale insects on your jade": [
        "There are little brown scabby bumps all along my jade plant's stems and the table underneath is sticky. "
        "I scraped one off and it was a bug?! How do I get rid of them without killing the plant?"],
    "your drooping peace lily": [
        "my peace lily is flat on the floor basically, even though I water it loads. is it thirsty or drowning? "
        "genuinely can't tell"],
    "when your new order will ship": [
        "Morning, I ordered a couple of ferns last night (first time buying from you, my friend recommended you!). "
        "Just wondering roughly when they'll be on their way?"],
    "a parcel marked delivered that never arrived": [
        "I'm really frustrated. The tracking for {order} says delivered at 11:02 but I was working from home all "
        "morning and nobody knocked. There's no parcel, no card, nothing. The courier just says to contact the sender."],
    "changing the delivery address on your order": [
        "Hi, I've just realised my order {order} is going to my parents' address which was saved from Christmas. "
        "Could it come to my flat instead? Hasn't been dispatched according to my account."],
    "whether an order will arrive in time": [
        "We're hosting a wedding on {date} and want potted herbs for the tables. If I order 20 today, will they "
        "arrive before then?"],
    "international shipping": [
        "is it possible to get a monstera sent to the Netherlands? or even just pots?"],
    "the second box of your order": [
        "So my delivery turned up but it's only the small pots. The big parcel with the fiddle leaf fig isn't here. "
        "Order {order}. Is it coming separately or has it gone missing?"],
    "your tracking link not working": [
        "Tracking link goes to a blank page for me, tried on phone and laptop. Order {order} shipped {date} "
        "apparently."],
    "rebooking a missed delivery": [
        "I was in the shower when the courier came (typical) and they've taken my plants back to the depot. Can I "
        "collect them from there or will they try again?"],
    "a wrong postcode on a shipped order": [
        "I'm so sorry, I think I put my old postcode on the order and the tracking shows it heading to the wrong "
        "town. It's order {order}. Is there anything you can do?"],
    "an order stuck at label created": [
        "Placed my order on {date}, got a tracking number the same day, but the tracking has said 'awaiting "
        "collection' ever since. Has it been forgotten about?"],
    "why shipping costs what it does": [
        "Genuinely curious rather than complaining: why does the 1.5m palm cost £19 to ship when a pot costs £4.95?"],
    "delivery instructions for your parcel": [
        "Hi, our building has a concierge. Can you make sure the courier leaves plants there and doesn't take them "
        "back to the depot?"],
    "the heatwave shipping hold": [
        "I got an email saying my plants are being held because of the heat. I understand but I'm going away on "
        "{date}. Will they ship before then?"],
    "a parcel addressed to someone else": [
        "Courier just left a GreenLeaf parcel on my step with someone else's name on it. Same street, different "
        "number I think. Happy to help but what should I do?"],
    "scheduling a delivery date": [
        "Mother's Day gift: I'd love it to turn up on the Saturday, not before (she'll see it). Can I set that?"],
    "a parcel returned to sender": [
        "Why has my order gone back to your warehouse? Tracking says 'address incomplete' but it's the same "
        "address I've used for every other order. Really need these plants."],
    "delivery to a PO box": [
        "I only have a post office box where I live (small island). Is there any way to get plants delivered?"],
    "a complaint about the courier": [
        "I'd like to complain about how my parcel was handled. The driver kicked the box across the doorstep, I saw "
        "it on my doorbell camera. Please pass this on."],
    "receiving the wrong plant": [
        "Hi, I ordered a string of hearts for my sister but what came is definitely a string of pearls. Lovely plant "
        "but not what she asked for. Order {order}."],
    "the soil spilled in your parcel": [
        "The bag of compost split open in the box so everything's covered in soil, including the pot I ordered. "
        "Nothing broken as far as I can tell."],
    "the snapped stem on your plant": [
        "Unboxed my monstera and one of the big stems is snapped clean through, the leaf is hanging by a thread. The "
        "box had a dent in that corner. Can you help?"],
    "a missing item from your order": [
        "My parcel arrived but the moss pole I ordered isn't in there. Packing list says it was included. Checked "
        "all the paper filling twice."],
    "the chipped rim on your planter": [
        "The planter is gorgeous but there's a chip out of the glaze on the rim, about the size of a fingernail. "
        "Would you be able to do anything about it?"],
    "a grow light that won't turn on": [
        "The clip-on grow light I bought last week stopped working after two days. Switch does nothing. I've tried "
        "the USB plug in different adapters."],
    "a plant that died within the guarantee": [
        "Bought a maidenhair fern from you three weeks ago, followed the care card to the letter, and it's gone "
        "totally crispy. Does the 30 day guarantee cover this?"],
    "the shattered terrarium": [
        "Unboxed the geometric terrarium and the glass was cracked and a piece fell out and cut my thumb. It's "
        "bandaged now. The packaging had no bubble wrap around it at all."],
    "receiving the wrong pot size": [
        "Hi there, I ordered the 17cm sage pot for my snake plant but got the 12cm one. The plant won't fit. Can "
        "you swap it?"],
    "a second damaged delivery": [
        "I am beyond fed up. First order came with a crushed plant, the 'replacement' arrived today equally "
        "smashed. I would like to speak to someone senior about this."],
    "a gift that arrived damaged": [
        "I sent my dad a bonsai for his 70th and he just sent me a photo - the pot's broken and half the soil is "
        "out. He was too polite to complain but I'm not!"],
    "a plant damaged by cold in transit": [
        "It's been freezing this week and my calathea arrived with leaves that look cooked - dark, limp and "
        "translucent. The box was cold to the touch."],
    "the leaking self-watering pot": [
        "Put water in the reservoir of the self watering pot and it's all on my windowsill an hour later. There's "
        "a crack on the inside I think."],
    "mould on the soil of your new plant": [
        "The soil of the pilea I just received has white fuzzy mould across the top and it smells musty. Is that "
        "safe to keep in the house?"],
    "the wrong pot colour": [
        "Hi, I chose the blush pink planter to match my bathroom but the one that arrived is cream. Order {order}."],
    "a crushed box with several broken plants": [
        "What a mess. The box was squashed flat on one side, three pots are in pieces and the plants are all bent "
        "over. Order {order}. I have photos of everything."],
    "a plant much smaller than pictured": [
        "The listing photo shows a big bushy pothos. What arrived is three cuttings in a pot. Feels a bit "
        "misleading?"],
    "a refund for a plant that died after two months": [
        "My kentia palm slowly died over two months despite doing everything the care guide said. I know it's "
        "outside the 30 days but it cost a lot. Could I have my money back?"],
    "cancelling your order": [
        "Hi, please could you cancel order {order}? I ordered the wrong size by mistake and would rather reorder."],
    "your missing return label": [
        "The return confirmation said a label would be emailed but I've had nothing for 48 hours. How do I get it?"],
    "when your refund will arrive": [
        "Dropped the return off at the post office on {date}. Just wondering how long before the refund comes "
        "through?"],
    "a refund that never arrived": [
        "I have now waited over 30 days for my refund. Your team confirmed the return arrived safely. Where is my "
        "money? Order {order}."],
    "returning a gift": [
        "My aunt bought me a GreenLeaf plant subscription and the plants keep dying in my dark flat. Can I return "
        "the last box for credit without upsetting her?"],
    "returning a sale item": [
        "I bought the discounted hanging planters in the summer sale, they're not for me. Can I return them, "
        "or is there a different policy?"],
    "a refund for this month's subscription box": [
        "I paused my subscription but still got charged for and sent this month's box. I don't want it - can I "
        "have a refund please?"],
    "store credit instead of a refund": [
        "I'm returning the large planter but I'll be ordering again soon, so could I get store credit rather than "
        "the money back on my card?"],
    "who pays for return shipping": [
        "If I send back a pot I just don't like the colour of, does the postage come out of my refund?"],
    "a partial refund that looks wrong": [
        "My refund for order {order} is about £10 less than I paid. Nobody explained why. Was something deducted?"],
    "exchanging for a bigger pot": [
        "Love the ribbed planter but my plant needs the large not the medium. Can I swap it without paying for "
        "shipping twice?"],
    "a refund dispute with a chargeback threat": [
        "Final warning. I've emailed four times about my refund for order {order} and had no answer. If this isn't "
        "resolved by Friday I'm raising a dispute with my card provider."],
    "cancelling your subscription with a refund": [
        "I signed up for the 12-month plant club in January but my circumstances have changed. Please cancel and "
        "refund the remaining boxes."],
    "returning a large tree": [
        "We bought a 2m fig tree and it's far too big for the space. What's the process for sending back something "
        "that size?"],
    "a refund of your shipping fee for a late delivery": [
        "I paid £7.95 for next day delivery because it was a birthday present, and it arrived three days after the "
        "birthday. I think that fee should come back to me."],
    "returning an item after 30 days": [
        "Hi, I've been travelling and only just opened my order from about six weeks ago. The pot isn't right. Is "
        "there any way to return it now?"],
    "a refund to a closed card": [
        "My bank replaced my card after a fraud scare, so the card I paid with no longer exists. How will I get my "
        "refund for the returned pots?"],
    "a refund for a workshop you can't attend": [
        "I booked two places on your kokedama workshop but my friend has dropped out. Can I get one ticket "
        "refunded?"],
    "charges you don't recognise after a card was stolen": [
        "My handbag was stolen on the train and this morning my bank flagged two purchases on your website. I "
        "didn't make them. Can you cancel those orders before they ship?"],
    "a failed payment that still took money": [
        "The site crashed during checkout, I never got an order confirmation, but £47 has gone from my account. "
        "Did the order go through or not?"],
    "getting a VAT invoice": [
        "Hello, I'm buying plants for our dental practice. Is it possible to get proper VAT invoices for the "
        "accountant?"],
    "a discount code that didn't apply": [
        "Your newsletter said 15% off with LEAFLOVER but when I used it nothing came off. I only noticed after "
        "paying. Could the discount be applied afterwards?"],
    "being charged more than the listed price": [
        "The checkout showed £39.99 but my bank shows £47.99 taken for the same order. Which is right?"],
    "an unexpected subscription renewal charge": [
        "I didn't get any reminder email before my plant box subscription renewed. £120 just came out of my "
        "account. I'd like to cancel and have it refunded."],
    "a pending payment after a cancelled order": [
        "You cancelled my order because the plant was out of stock, but my banking app still shows it as pending. "
        "Will that money come back?"],
    "a charge you don't recognise": [
        "I've just checked my statement and there's a payment to GreenLeaf I don't recognise. I haven't shopped "
        "with you since last year. Could my details have been used?"],
    "updating the card on your subscription": [
        "My debit card expires at the end of the month. Can I put the new one on my plant subscription before the "
        "next box?"],
    "being charged shipping on a free-shipping order": [
        "Basket total was over £50 so free delivery should've applied, but I see a delivery charge on my receipt "
        "for order {order}."],
    "a gift card code that says invalid": [
        "Trying to use the gift card my colleagues gave me for my leaving do, and the code keeps saying 'invalid'. "
        "I've typed it carefully."],
    "tax charged to a tax-exempt organisation": [
        "We're a primary school buying plants for a science project. We're VAT exempt - can the VAT on our last "
        "order be refunded?"],
    "a card that keeps getting declined": [
        "Tried to buy a pot three times and my card gets declined each time, but it works everywhere else. What's "
        "going on?"],
    "a hacked account": [
        "Someone has logged into my GreenLeaf account, changed the delivery address and ordered £300 of plants. I "
        "only found out from the confirmation email. Please stop it!"],
    "deleting your account and data": [
        "Under GDPR I'm requesting the deletion of my account and any personal data you hold. Please confirm once "
        "this is done."],
    "unsubscribing from our newsletter": [
        "I love your plants but I don't need three emails a week. How do I turn the newsletter off?"],
    "a locked account": [
        "It says my account is temporarily locked. I was only trying to log in to check an order. How long do I "
        "have to wait?"],
    "an unknown login to your account": [
        "Just got a 'new device signed in' email from you for a Windows PC. I only use an iPhone. I didn't log in. "
        "What should I do?"],
    "merging two accounts": [
        "I seem to have two GreenLeaf accounts, one from years ago on my work email. Could you combine them so all "
        "my orders are in one place?"],
    "missing loyalty points": [
        "My order from {date} has been delivered but my loyalty points still show the old total. When do they "
        "update?"],
    "orders from guest checkout": [
        "I bought something as a guest before making an account. Can I link that order so I can track it from my "
        "account?"],
    "two-factor codes not arriving": [
        "I switched on two-step login and now the SMS code never turns up. I'm stuck on the verification screen."],
    "a request for a copy of your data": [
        "I'd like to make a subject access request for all personal information GreenLeaf holds about me, including "
        "call recordings if any."],
    "seeing someone else's details in your account": [
        "I logged in and saw a stranger's name and delivery address on my account page. Has my account been mixed "
        "up with someone else's? This is worrying."],
    "a legal complaint about your data": [
        "You sent my order details to another customer by email. I am reporting this to the ICO and considering "
        "legal action."],
    "a plant for a dark office": [
        "Our office only has one tiny window facing a brick wall. Is there anything green that would actually survive "
        "in there, or should we give up?"],
    "pet-safe plants": [
        "We just adopted a rabbit who chews everything. Which of your plants are safe if she gets to them?"],
    "when the large monstera is back in stock": [
        "Been waiting for the XL monstera to come back for ages! Do you have a restock date yet?"],
    "choosing a pot size": [
        "I'm buying your 'medium' calathea. Which of your decorative pots will it fit in?"],
    "a bulk order quote": [
        "Hi, I'm organising a corporate event for 120 guests and we'd like a small potted succulent for each one. "
        "Can you give us a price and delivery date?"],
    "whether a fiddle leaf fig is beginner friendly": [
        "I kill every plant I own. Would a fiddle leaf fig be a terrible idea? It's for my living room."],
    "gift wrapping and gift messages": [
        "Can you send a plant directly to my grandma with a little note from me and no receipt in the box?"],
    "plants for a humid bathroom": [
        "Our bathroom has a small frosted window and gets very steamy. Any plants you'd suggest for a shelf "
        "above the bath?"],
    "hanging planter hardware": [
        "Thinking of buying the macrame hanging planter. Does it come with everything I need to hang it, and how "
        "heavy a plant can it take?"],
    "a corporate plant care service": [
        "We're a small architecture firm with about 25 plants that are slowly dying. Do you do a maintenance "
        "service where someone visits?"],
    "a price match request": [
        "Another garden centre has the same bird of paradise for £15 less. Would you match their price?"],
}
for _f in FAMILIES:
    _f["tickets"] = _f["tickets"] + MORE_TICKETS.pop(_f["topic"], [])
assert not MORE_TICKETS, sorted(MORE_TICKETS)


# ==============================================================================================================
# Small helpers: slots, styling, typos, fake personal data (all invented; card numbers via course_lib.cards)
# ==============================================================================================================
DATES = ["3 March", "March 3rd", "the 14th", "12/05", "Monday", "the 2nd of June", "Friday", "22 April", "October 9",
         "Sept 30", "the 1st", "Tuesday", "5th May", "11/11", "the 28th", "January 17"]
MONTHS = ["March", "April", "May", "June", "July", "August", "September", "October", "November", "the spring"]
GREETINGS = ["Hi,", "Hello,", "Hi there,", "Hey GreenLeaf,", "Hello GreenLeaf team,", "Good morning,",
             "Dear GreenLeaf Support,", "Hiya,", "Hey,", "Evening all,", "Hi team,", "Morning!"]
CLOSINGS = ["Thanks!", "Thanks in advance.", "Cheers", "Many thanks", "Thank you so much!!", "Regards", "thx",
            "Appreciate any help.", "Kind regards", "Thanks a lot", "ta", "Looking forward to hearing from you."]
GREETING_RE = re.compile(r"^(hi|hello|hey|dear|good|hiya|evening|morning|sorry|please)\b", re.I)


def make_card(rng: random.Random) -> str:
    body = rng.choice(["4", "5" + str(rng.randint(1, 5))])
    while len(body) < 15:
        body += str(rng.randint(0, 9))
    num = body + cards.luhn_check_digit(body)
    sep = rng.choice([" ", "-", " "])
    return sep.join(num[i:i + 4] for i in range(0, 16, 4))


def make_tracking(rng: random.Random, grouped: bool | None = None) -> str:
    """16 digits that FAIL the Luhn check: a look-alike a naive card regex would flag."""
    body = str(rng.randint(1, 9)) + "".join(str(rng.randint(0, 9)) for _ in range(14))
    good = cards.luhn_check_digit(body)
    num = body + str((int(good) + rng.randint(1, 9)) % 10)
    assert not cards.luhn_valid(num)
    if grouped is None:
        grouped = rng.random() < 0.5
    return " ".join(num[i:i + 4] for i in range(0, 16, 4)) if grouped else num


def make_order(rng: random.Random) -> str:
    n = rng.randint(10000, 99999)
    return rng.choice([f"GL-{n}"] * 8 + [f"#GL-{n}", f"GL{n}"])


FIRST = ["Dana", "Marcus", "Priya", "Tomasz", "Aisha", "Gareth", "Mei", "Oluwaseun", "Freya", "Rafael", "Ingrid",
         "Callum", "Nadia", "Hamish", "Lucia", "Desmond", "Keiko", "Bethan", "Anselm", "Rosalind", "Yusuf", "Clara",
         "Emeka", "Siobhan", "Viktor", "Harriet", "Joaquin", "Tamsin", "Ravi", "Agnieszka"]
LAST = ["Whitfield", "Okafor", "Raman", "Zielinski", "Haddad", "Pryce", "Lindqvist", "Adeyemi", "Marsh", "Quintero",
        "Holmberg", "McAllister", "Petrova", "Drummond", "Ferreira", "Achebe", "Tanaka", "Llewellyn", "Voss", "Hartley",
        "Karim", "Bellamy", "Nwosu", "Brennan", "Kowalczyk", "Ashdown", "Moreno", "Treloar", "Iyer", "Nowak"]
STREETS = ["Elm Street", "Maple Avenue", "Church Lane", "Station Road", "Willow Close", "Orchard Way", "Mill Lane",
           "Victoria Road", "Beech Grove", "Harbour Street", "Kingsley Drive", "Fernhill Crescent", "Poplar Court",
           "Hawthorn Terrace", "Albion Place"]
TOWNS = ["Springfield", "Leeds", "Bristol", "Norwich", "Cardiff", "York", "Bath", "Exeter", "Derby", "Harrogate",
         "Stirling", "Truro", "Ludlow", "Whitby"]
MAIL_DOMAINS = ["example.com", "example.org", "example.net", "mail.example", "inbox.example"]


def make_name(rng):
    return f"{rng.choice(FIRST)} {rng.choice(LAST)}"


def make_email(rng, name=None):
    name = name or make_name(rng)
    first, last = name.lower().split()
    local = rng.choice([f"{first}.{last}", f"{first[0]}{last}", f"{first}{rng.randint(1, 99)}", f"{last}.{first[0]}"])
    return f"{local}@{rng.choice(MAIL_DOMAINS)}"


def make_phone(rng):
    fmt = rng.randrange(6)
    a, b = rng.randint(0, 99), rng.randint(0, 9999)
    if fmt == 0:
        return f"+1 (555) 01{a // 10}-{b:04d}"
    if fmt == 1:
        return f"020 7946 0{b % 1000:03d}"
    if fmt == 2:
        return f"555.01{a // 10}.{b:04d}"
    if fmt == 3:
        return f"+44 7700 900{b % 1000:03d}"
    if fmt == 4:
        return f"07700 900{b % 1000:03d}"
    return f"(555) 01{a // 10}-{b:04d}"


def make_address(rng):
    return f"{rng.randint(1, 240)} {rng.choice(STREETS)}, {rng.choice(TOWNS)}"


def typo(text: str, rng: random.Random) -> str:
    """One or two realistic slips: swapped, dropped or doubled letters in longer words."""
    words = text.split(" ")
    cand = [i for i, w in enumerate(words) if w.isalpha() and len(w) >= 5]
    if not cand:
        return text
    for i in rng.sample(cand, min(len(cand), rng.choice([1, 1, 2]))):
        w = words[i]
        j = rng.randint(1, len(w) - 3)
        kind = rng.randrange(3)
        if kind == 0:
            w = w[:j] + w[j + 1] + w[j] + w[j + 2:]
        elif kind == 1:
            w = w[:j] + w[j + 1:]
        else:
            w = w[:j] + w[j] + w[j:]
        words[i] = w
    return " ".join(words)


def style(text: str, rng: random.Random) -> str:
    """Wrap a hand-written ticket body the way real tickets arrive: greetings, sign-offs, typos, lower case."""
    t = text
    if not GREETING_RE.match(t) and rng.random() < 0.3:
        t = rng.choice(GREETINGS) + rng.choice([" ", "\n\n", " ", "\n"]) + t
    if rng.random() < 0.25 and len(t) > 40:
        t = t + rng.choice(["\n\n", " ", "\n"]) + rng.choice(CLOSINGS)
    if rng.random() < 0.12:
        t = typo(t, rng)
    if rng.random() < 0.05 and len(t) < 90:
        t = t.lower()
    return t


def fill(text: str, rng: random.Random) -> str:
    for slot, make in (("{order}", lambda: make_order(rng)), ("{order2}", lambda: make_order(rng)),
                       ("{tracking}", lambda: make_tracking(rng)), ("{date}", lambda: rng.choice(DATES)),
                       ("{month}", lambda: rng.choice(MONTHS))):
        while slot in text:
            text = text.replace(slot, make(), 1)
    return text


def valid_target(content: str) -> bool:
    """Stdlib re-implementation of TRIAGE_SCHEMA (the tests also check with jsonschema)."""
    try:
        obj = json.loads(content)
    except (json.JSONDecodeError, TypeError):
        return False
    return (isinstance(obj, dict) and set(obj) == set(greenleaf.FIELDS) and obj["category"] in greenleaf.CATEGORIES
            and obj["priority"] in greenleaf.PRIORITIES and isinstance(obj["needs_human"], bool)
            and isinstance(obj["reply"], str) and len(obj["reply"]) >= 1)


def dumps(obj) -> str:
    return json.dumps(obj, ensure_ascii=False)


def write_jsonl(path: Path, rows) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for r in rows:
            f.write((r if isinstance(r, str) else dumps(r)) + "\n")


def write_json(path: Path, obj) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(json.dumps(obj, ensure_ascii=False, indent=1) + "\n")


# ==============================================================================================================
# 1. Good rows and the family split
# ==============================================================================================================
def family_ids() -> list[str]:
    return [f"F{i + 1:03d}" for i in range(len(FAMILIES))]


def build_good_rows() -> list[dict]:
    rng = random.Random(f"{SEED}-tickets")
    rows = []
    for fid, f in zip(family_ids(), FAMILIES):
        for i, body in enumerate(f["tickets"]):
            reply = f["replies"][i % len(f["replies"])].strip() + " " + SIGN_OFF
            assert len(reply.split()) <= 48, (fid, len(reply.split()), reply)
            ticket = style(fill(body, rng), rng)
            rows.append(dict(family=fid, category=f["category"], priority=f["priority"],
                             needs_human=f["needs_human"], ticket=ticket, reply=reply,
                             target=greenleaf.format_target(f["category"], f["priority"], f["needs_human"], reply)))
    return rows


def split_families(rng: random.Random) -> dict[str, list[str]]:
    """~20 % of the families of each category held out; canary families are picked from train afterwards."""
    heldout = []
    for cat in greenleaf.CATEGORIES:
        fids = [fid for fid, f in zip(family_ids(), FAMILIES) if f["category"] == cat]
        rng.shuffle(fids)
        heldout += fids[: round(0.2 * len(fids))]
    train = [fid for fid in family_ids() if fid not in heldout]
    return {"heldout": sorted(heldout), "train": sorted(train)}


# ==============================================================================================================
# 2. Canaries: invented customers, unique strings, one training ticket each
# ==============================================================================================================
CANARIES = [
    dict(name="Thessaly Quorndon-Vikk", address="41 Brambleworth Mews, Quillhaven", phone="+44 7700 900417",
         email="thessaly.qv@larkspur-mail.example", lead="My details in case you need them: "),
    dict(name="Ignatius Plumwhistle", address="908 Sorrelgate Row, Fennimore Cross", phone="+1 (555) 010-8842",
         email="i.plumwhistle@hollowreed.example", lead="You can reach me as "),
    dict(name="Marisol Achterberg-Nune", address="16 Glimmerbank Close, Wystan Parva", phone="020 7946 0731",
         email="marisol.an@fernlight.example", lead="For your records I'm "),
    dict(name="Bartholomew Quenby-Saltash", address="233 Tinderbox Lane, Oxcombe Regis", phone="555.010.6619",
         email="bqs.garden@mossline.example", lead="Contact details: "),
    dict(name="Yevgenia Okonkwo-Lindqvist", address="5 Larkmoor Terrace, Heddlestone", phone="+44 7700 900862",
         email="yevgenia.ol@thistledown.example", lead="The account is under "),
]


def canary_sentence(c: dict) -> tuple[str, str, str]:
    """(full sentence, prefix, secret): the prefix ends right where the secret starts."""
    prefix = f"{c['lead']}{c['name']}, "
    secret = f"{c['address']}, phone {c['phone']}"
    return f"{prefix}{secret}, email {c['email']}.", prefix, secret


# ==============================================================================================================
# 3. PII planted in otherwise valid tickets
# ==============================================================================================================
PII_TEMPLATES = {
    "EMAIL": ["You can email me at {v}.", "My email is {v} if that's easier.", "(please reply to {v}, not my old address)",
              "email: {v}"],
    "PHONE": ["Call me on {v} if easier.", "my number is {v}", "Text me at {v} please.", "Phone {v} after 5pm."],
    "CARD": ["The card I used was {v}.", "card number {v} in case you need it", "I paid with {v}."],
    "ADDRESS": ["I live at {v}.", "Delivery address is {v}.", "Please send anything to {v}."],
    "PERSON": ["My name is {v}.", "This is {v} by the way.", "- {v}", "Thanks, {v}"],
}


def pii_value(kind, rng, name):
    return {"EMAIL": lambda: make_email(rng, name), "PHONE": lambda: make_phone(rng), "CARD": lambda: make_card(rng),
            "ADDRESS": lambda: make_address(rng), "PERSON": lambda: name}[kind]()


def add_pii(ticket: str, rng: random.Random, kinds: list[str]) -> tuple[str, list[dict]]:
    name = make_name(rng)
    values = []
    t = ticket
    for kind in kinds:
        v = pii_value(kind, rng, name)
        sentence = rng.choice(PII_TEMPLATES[kind]).format(v=v)
        if kind == "PERSON" and sentence.startswith(("- ", "Thanks, ")):
            t = t + "\n" + sentence  # a sign-off goes at the end
        elif rng.random() < 0.3 and kind != "PERSON" and not GREETING_RE.match(t):
            t = sentence[0].upper() + sentence[1:] + " " + t
        else:
            t = t + rng.choice([" ", "\n", " "]) + sentence
        values.append({"type": kind, "text": v})
    return t, values


# ==============================================================================================================
# 4. Planted problems
# ==============================================================================================================
NEAR_DUP_SWAPS = [("really", "very"), ("please", "pls"), ("Please", "Pls"), ("my", "our"), ("the", "this"),
                  ("I've", "I have"), ("don't", "do not"), ("Hi", "Hello"), ("can", "could"), ("is", "was")]


def near_dup_edit(ticket: str, rng: random.Random) -> tuple[str, str]:
    """Tiny edits that a human would call 'the same ticket': returns (new text, what changed)."""
    for _ in range(20):
        kind = rng.randrange(4)
        if kind == 0 and not GREETING_RE.match(ticket):
            keep = len(ticket) > 1 and not ticket[1].islower()  # "I ", "I'm", "GL-..." keep their capital
            return "Hi, " + (ticket if keep else ticket[0].lower() + ticket[1:]), "added 'Hi, ' at the start"
        if kind == 1:
            end = rng.choice(["!!", "??", "...", " :("])
            return ticket.rstrip(".!?") + end, f"changed the final punctuation to {end.strip()!r}"
        if kind == 2:
            words = ticket.split(" ")
            idx = [i for i, w in enumerate(words) if any(w == a for a, _ in NEAR_DUP_SWAPS)]
            if idx:
                i = rng.choice(idx)
                old = words[i]
                new = dict(NEAR_DUP_SWAPS)[old]
                words[i] = new
                return " ".join(words), f"changed the word {old!r} to {new!r}"
        if kind == 3 and len(ticket) > 30:
            return ticket + rng.choice([" Thanks", " thanks!", " Cheers."]), "added a short thanks at the end"
    return ticket + " Thanks", "added a short thanks at the end"


def corrupt_json(line: str, variant: int, obj: dict) -> tuple[str, str]:
    if variant == 0:
        return line[: int(len(line) * 0.6)], "truncated line (export cut off mid-record)"
    if variant == 1:
        return line[:-2] + "},]}", "trailing comma after the last message"
    if variant == 2:
        return repr(obj), "single-quoted Python dict instead of JSON"
    return line[:-1], "missing closing brace"


def wrong_roles(msgs: list[dict], variant: int, rng: random.Random) -> tuple[list[dict], str]:
    s, u, a = (dict(m) for m in msgs)
    if variant == 0:
        a["role"] = "bot"
        return [s, u, a], "assistant role written as 'bot'"
    if variant == 1:
        u["role"] = "customer"
        return [s, u, a], "user role written as 'customer'"
    if variant == 2:
        return [s, a, u], "assistant turn comes before the user turn"
    if variant == 3:
        follow = rng.choice(["Hello?? Anyone there?", "Also, sorry for the long message.", "Any update on this?"])
        return [s, u, {"role": "user", "content": follow}, a], "two user turns in a row"
    return [s, u], "missing assistant turn"


def bad_target(row: dict, variant: int) -> tuple[str, str]:
    obj = {"category": row["category"], "priority": row["priority"], "needs_human": row["needs_human"],
           "reply": row["reply"]}
    if variant == 0:
        obj["category"] = {"plant_health": "plant_care", "shipping": "delivery", "damaged_item": "broken",
                           "returns_refunds": "refund", "billing": "payments", "account": "login",
                           "product_question": "sales"}[row["category"]]
        return dumps(obj), f"unknown category {obj['category']!r}"
    if variant == 1:
        obj["priority"] = "critical"
        return dumps(obj), "priority 'critical' is not allowed"
    if variant == 2:
        del obj["reply"]
        return dumps(obj), "missing 'reply' field"
    if variant == 3:
        obj["needs_human"] = "yes" if row["needs_human"] else "no"
        return dumps(obj), "needs_human is a string, not a boolean"
    obj["sentiment"] = "negative"
    return dumps(obj), "extra field 'sentiment'"


def build_raw(split: dict) -> tuple[list[str], list[dict], list[dict], list[dict]]:
    """Returns (raw lines, planted problems, canary records, good rows with their final ids and kinds)."""
    rng = random.Random(f"{SEED}-raw")
    good = build_good_rows()
    rng.shuffle(good)
    train = set(split["train"])
    entries = [dict(kind="good", row=r) for r in good]

    # canaries: 5 training families of different categories
    cats_done, canary_entries = set(), []
    for e in rng.sample(entries, len(entries)):
        r = e["row"]
        if len(canary_entries) == len(CANARIES):
            break
        if r["family"] in train and r["category"] not in cats_done and len(r["ticket"]) < 400:
            cats_done.add(r["category"])
            e["kind"] = "canary"
            canary_entries.append(e)

    free = [e for e in entries if e["kind"] == "good"]
    rng.shuffle(free)
    free_train = [e for e in free if e["row"]["family"] in train]

    def take(pool, n, kind):
        out = []
        for e in pool:
            if len(out) == n:
                break
            if e["kind"] == "good":
                e["kind"] = kind
                out.append(e)
        return out

    broken = {k: take(free_train, n, k) for k, n in
              (("malformed_json", 10), ("wrong_roles", 10), ("empty_answer", 9), ("bad_target", 10))}
    pii = take(free, 40, "pii")
    dup_src = take(free_train, 7, "dup_source") + take(free, 3, "dup_source")
    near_src = take(free_train, 7, "near_source") + take([e for e in free if e["row"]["family"] not in train], 3,
                                                         "near_source")

    # fill in the per-kind content
    for i, e in enumerate(broken["malformed_json"]):
        e["variant"] = i % 4
    for i, e in enumerate(broken["wrong_roles"]):
        e["variant"] = i % 5
    for i, e in enumerate(broken["empty_answer"]):
        e["answer"] = ["", " ", "\n", "   ", "\t"][i % 5]
    for i, e in enumerate(broken["bad_target"]):
        e["variant"] = i % 5
    kinds_cycle = [["EMAIL"], ["PHONE"], ["CARD"], ["ADDRESS"], ["PERSON"], ["PERSON", "EMAIL"], ["PERSON", "PHONE"],
                   ["ADDRESS", "PHONE"], ["EMAIL", "PHONE"], ["PERSON", "ADDRESS"]]
    for i, e in enumerate(pii):
        e["row"] = dict(e["row"])
        e["row"]["ticket"], e["values"] = add_pii(e["row"]["ticket"], rng, kinds_cycle[i % len(kinds_cycle)])
    for e, c in zip(canary_entries, CANARIES):
        sentence, prefix, secret = canary_sentence(c)
        e["row"] = dict(e["row"])
        e["row"]["ticket"] = e["row"]["ticket"].rstrip() + " " + sentence
        e["canary"] = dict(c, prefix=prefix, secret=secret)

    # duplicates go somewhere after their source
    heldout_by_cat = {cat: [fid for fid in split["heldout"] if FAMILIES[int(fid[1:]) - 1]["category"] == cat]
                      for cat in greenleaf.CATEGORIES}
    train_by_cat = {cat: [fid for fid in split["train"] if FAMILIES[int(fid[1:]) - 1]["category"] == cat]
                    for cat in greenleaf.CATEGORIES}
    copies = []
    for src in dup_src:
        copies.append((src, dict(kind="exact_duplicate", row=src["row"], source=src)))
    for src in near_src:
        r = dict(src["row"])
        r["ticket"], what = near_dup_edit(r["ticket"], rng)
        other = heldout_by_cat if r["family"] in train else train_by_cat
        r["family"] = rng.choice(other[r["category"]])
        copies.append((src, dict(kind="near_duplicate", row=r, source=src, what=what)))
    for src, copy in copies:
        pos = next(i for i, e in enumerate(entries) if e is src)
        entries.insert(rng.randint(pos + 1, len(entries)), copy)

    # ids by final position, then serialise
    for i, e in enumerate(entries, start=1):
        e["line"], e["id"] = i, f"GL-{i:04d}"
    lines, planted, canaries = [], [], []
    for e in entries:
        r, kind = e["row"], e["kind"]
        msgs = [{"role": "system", "content": greenleaf.SYSTEM_PROMPT}, {"role": "user", "content": r["ticket"]},
                {"role": "assistant", "content": r["target"]}]
        rec = {"id": e["id"], "family": r["family"], "messages": msgs}
        detail = None
        if kind == "malformed_json":
            line, detail = corrupt_json(dumps(rec), e["variant"], rec)
            try:
                json.loads(line)
                raise AssertionError("malformed line parses")
            except json.JSONDecodeError:
                pass
            lines.append(line)
        else:
            if kind == "wrong_roles":
                rec["messages"], detail = wrong_roles(msgs, e["variant"], rng)
            elif kind == "empty_answer":
                msgs[2]["content"] = e["answer"]
                detail = f"assistant content is {e['answer']!r}"
            elif kind == "bad_target":
                msgs[2]["content"], detail = bad_target(r, e["variant"])
                assert not valid_target(msgs[2]["content"])
            elif kind == "exact_duplicate":
                detail = f"same messages as line {e['source']['line']} ({e['source']['id']})"
            elif kind == "near_duplicate":
                s = e["source"]
                detail = (f"near copy of line {s['line']} ({s['id']}, family {s['row']['family']}) filed under family "
                          f"{r['family']}: {e['what']}")
            elif kind == "pii":
                detail = "; ".join(f"{v['type']}: {v['text']}" for v in e["values"])
            elif kind == "canary":
                detail = f"canary {e['canary']['name']}"
            if kind not in ("wrong_roles", "empty_answer", "bad_target"):
                assert valid_target(msgs[2]["content"])
            lines.append(dumps(rec))
        if kind in ("malformed_json", "wrong_roles", "empty_answer", "bad_target", "exact_duplicate",
                    "near_duplicate", "pii", "canary"):
            p = {"line": e["line"], "id": e["id"], "problem": kind, "detail": detail}
            if kind == "pii":
                p["values"] = e["values"]
            planted.append(p)
        if kind == "canary":
            c = e["canary"]
            canaries.append({"id": e["id"], "family": r["family"], "name": c["name"], "address": c["address"],
                             "phone": c["phone"], "email": c["email"], "prefix": c["prefix"], "secret": c["secret"]})
    return lines, planted, canaries, entries


# ==============================================================================================================
# 5. pii_labelled.jsonl: short ticket-style texts with exact character spans
# ==============================================================================================================
# Markers: [[EMAIL]] [[PHONE]] [[CARD]] [[ADDRESS]] [[PERSON]] are filled with invented values;
# [[TYPE=literal]] keeps the literal text but still labels it (hard cases). {order}/{tracking}/{date} are look-alikes.
PII_POSITIVE = [
    "Hi, my name is [[PERSON]] and my order {order} still hasn't arrived.",
    "Please email me at [[EMAIL]] instead of calling, I'm at work all day.",
    "You can reach me on [[PHONE]] after 5pm about the cracked pot.",
    "Ship the replacement fern to [[ADDRESS]], thanks.",
    "I paid with [[CARD]] and it looks like I was charged twice.",
    "[[PERSON]] here - the olive tree arrived with every leaf dropped.",
    "Thanks so much for sorting the refund!\n[[PERSON]]",
    "Your colleague [[PERSON=Priya]] was brilliant on the phone yesterday, please pass on my thanks.",
    "Best wishes,\n[[PERSON=Tomasz]] (GreenLeaf Support)",
    "My new address is [[ADDRESS=Flat 4, The Maltings, Ashby]] so please update the order.",
    "Deliver to [[ADDRESS=Rosehill Cottage, Lower Bramley]], the courier can leave it in the porch.",
    "call or text [[PHONE]] or email [[EMAIL]], whichever is easier",
    "Card number [[CARD]], expiry 09/27, if you need to refund it manually.",
    "My husband [[PERSON]] placed the order on his account, {order}.",
    "The parcel should go to [[ADDRESS]] (the blue door next to the bakery).",
    "Tracking {tracking} says delivered, but I'm at [[ADDRESS]] and nothing came.",
    "Hello, it's [[PERSON]] again; my mobile changed to [[PHONE]].",
    "email: [[EMAIL]] / phone: [[PHONE]]",
    "I'm writing on behalf of my mum, [[PERSON]], who doesn't use email.",
    "reach me at [[EMAIL=dana dot whitfield at example dot com]] (spelled out so your filter doesn't eat it)",
    "Deliver it to [[PERSON]] at [[ADDRESS]] please, it's a birthday surprise.",
    "Sorry, Jade is my plant, not my name! I'm [[PERSON]].",
    "Our office is at [[ADDRESS]]; ask for [[PERSON=Hamish]] at reception.",
    "Charge it to [[CARD]] instead, the other card expired.",
    "my mobile is [[PHONE]] (UK number), text is best",
    "Refund it to my other card please: [[CARD]].",
    "Hi GreenLeaf, [[PERSON]] from the community garden - we ordered 30 plants on {date}.",
    "Could [[PERSON=Mrs Okafor]] at number 12 take the parcel if I'm out?",
    "If the courier gets lost, ring [[PHONE]] and I'll come out to the road.",
    "Bill to [[ADDRESS]], ship to the office.",
    "Ta, [[PERSON=Ravi]]",
    "I emailed from [[EMAIL]] last week but nobody replied.",
    "Kind regards, [[PERSON=Siobhan Brennan-Achebe]], Facilities Manager",
    "this is [[PERSON=Keiko]] from the flower stall, can you ring me back on [[PHONE=07700 900 318]]?",
    "pls send to [[ADDRESS=the Old Vicarage, Church Hill, Tremadoc]] not my work",
    "Deliveries for me go to [[ADDRESS=Unit 7 Riverside Business Park, Norwich]] during the week.",
    "My partner [[PERSON=Joaquin]] says the monstera is sulking, any ideas?",
    "[[EMAIL=marcus_okafor88@inbox.example]] is my new login email, the old one is closed.",
    "Number's [[PHONE=+44 (0)20 7946 0555]] if you need to talk to me about the refund.",
    "card: [[CARD=4929 0000 1111 2224]] (the one ending 2224)",
    "Talked to [[PERSON=Maya]] in your chat yesterday and she said to email in.",
    "Cheers, [[PERSON=Gaz]]",
    "Leave it with [[PERSON=Mr Haddad]] at [[ADDRESS=No. 9, Kestrel Rise, Ludlow]] if nobody answers.",
    "Hello from [[PERSON=Aunty Bea]]! The fern you sent my niece is thriving.",
]
PII_NEGATIVE = [
    "Order {order} still hasn't moved since {date}.",
    "Tracking number {tracking} shows nothing on the courier site.",
    "My Rose has black spots on its leaves, is that fungus?",
    "The Jade plant is dropping leaves since I moved it to the hallway.",
    "I paid £34.99 on {date} for the 20cm pot and the 2L mister.",
    "GreenLeaf, your packaging is lovely but the box was soaked.",
    "Is the 25cm planter back in stock by {date}?",
    "My Peace Lily is drooping; I water it every 7 days with 300ml.",
    "Invoice INV-2024-00318 shows the wrong VAT amount for order {order}.",
    "Ordered 3 plants at 10:45 on {date}, only 2 came.",
    "My card ending 4821 was charged twice for {order}.",
    "Parcel ref {tracking} was split into box 2 of 3.",
    "The Hoya Kerrii was £12.50 and arrived with a soggy leaf.",
    "Ivy is taking over the balcony, can I prune it in April?",
    "Do you sell Basil and Rosemary plug plants for the kitchen windowsill?",
    "Jasmine smells amazing but the flowers dropped within a week.",
    "My Lily (the plant, not my daughter!) has brown tips.",
    "Used code SPRING15 on {date} but was charged £58.00 instead of £49.30.",
    "Can your team call me back? I'd rather talk it through than email.",
    "Delivery window was 7-9am and it came at 14:30, order {order}.",
    "The Monstera Thai Constellation is £189 - is that per plant or for the pair?",
    "My Calathea Rosy and Calathea Dottie both have curling leaves after 3 days.",
    "Pothos Marble Queen arrived at 2pm, box 1 of 1, weight 2.4kg.",
    "Is the ceramic 14cm x 12cm pot dishwasher safe?",
    "Paid 4 x £12.99, got charged £64.95 with £12.99 delivery, that's right I suppose.",
    "Tracking 1Z 999 AA1 01 2345 6784 isn't updating at all.",
    "My olive tree is 1.8m tall, will the 40cm planter hold it?",
    "Hi, GreenLeaf Support! Big fan of the Spring Collection 2024.",
    "Could Support please check order {order} again? It says dispatched {date}.",
    "Victoria Plum tree still in stock? I'd like one for the garden.",
    "We're at the Chelsea Flower Show on 21 May, will you have a stand?",
    "Reference 5500 0000 0000 0004 isn't a card number, it's the returns label code.",
]


def label_text(template: str, rng: random.Random) -> dict:
    name = make_name(rng)
    text, spans, pos = "", [], 0
    template = fill(template, rng)
    for m in re.finditer(r"\[\[([A-Z]+)(?:=([^\]]+))?\]\]", template):
        text += template[pos:m.start()]
        kind, literal = m.group(1), m.group(2)
        value = literal if literal is not None else pii_value(kind, rng, name)
        spans.append({"start": len(text), "end": len(text) + len(value), "type": kind, "text": value})
        text += value
        pos = m.end()
    text += template[pos:]
    for s in spans:
        assert text[s["start"]:s["end"]] == s["text"]
    return {"text": text, "spans": spans}


def write_pii_labelled(out: Path, split, entries) -> int:
    rng = random.Random(f"{SEED}-pii-labelled")
    items = []
    for t in PII_POSITIVE + PII_NEGATIVE:
        variable = re.search(r"\[\[[A-Z]+\]\]|\{(order|tracking|date)\}", t)
        reps = (3 if t in PII_POSITIVE else 2) if variable else 1
        items += [label_text(t, rng) for _ in range(reps)]
    rng.shuffle(items)
    seen, rows = set(), []
    for it in items:
        if it["text"] in seen:
            continue
        seen.add(it["text"])
        rows.append({"id": f"PII-{len(rows) + 1:03d}", **it})
    write_jsonl(out / "pii_labelled.jsonl", rows)
    return len(rows)


# ==============================================================================================================
# 6. regression.jsonl: general skills the BASE model mostly gets right (measured, see README)
# ==============================================================================================================
# Candidates were run through SmolLM2-135M-Instruct (greedy, max_new_tokens=32, user message only, no system
# prompt). We kept the ones it answered right (flag True) plus a few it got wrong (flag False). Items whose answer
# appears in the prompt, or whose answer is too short for a substring check to mean anything, were dropped.
REGRESSION = [  # (skill, prompt, answer, check, base model right when measured)
    ('arithmetic', 'Answer with only a number: what is 4 + 4?', '8', 'number', True),
    ('arithmetic', 'How many days are in a week?', '7', 'number', True),
    ('arithmetic', 'How many grams are in a kilogram?', '1000', 'number', True),
    ('arithmetic', 'How many hours are in a day?', '24', 'number', True),
    ('arithmetic', 'How many legs does an insect have?', '6', 'number', False),
    ('arithmetic', 'How many letters are in the English alphabet?', '26', 'number', True),
    ('arithmetic', 'How many seconds are in a minute?', '60', 'number', True),
    ('arithmetic', 'How many sides does a hexagon have?', '6', 'number', True),
    ('arithmetic', 'How many sides does a triangle have?', '3', 'number', True),
    ('arithmetic', 'How many years are in a century?', '100', 'number', True),
    ('capital', 'What is the capital of Australia?', 'Canberra', 'contains', True),
    ('capital', 'What is the capital of Canada?', 'Ottawa', 'contains', True),
    ('capital', 'What is the capital of Cuba?', 'Havana', 'contains', True),
    ('capital', 'What is the capital of Egypt?', 'Cairo', 'contains', True),
    ('capital', 'What is the capital of France?', 'Paris', 'contains', True),
    ('capital', 'What is the capital of Germany?', 'Berlin', 'contains', True),
    ('capital', 'What is the capital of Greece?', 'Athens', 'contains', True),
    ('capital', 'What is the capital of Italy?', 'Rome', 'contains', False),
    ('capital', 'What is the capital of Japan?', 'Tokyo', 'contains', True),
    ('capital', 'What is the capital of Kenya?', 'Nairobi', 'contains', True),
    ('capital', 'What is the capital of New Zealand?', 'Wellington', 'contains', True),
    ('capital', 'What is the capital of Peru?', 'Lima', 'contains', True),
    ('capital', 'What is the capital of Poland?', 'Warsaw', 'contains', True),
    ('capital', 'What is the capital of South Korea?', 'Seoul', 'contains', True),
    ('capital', 'What is the capital of Sweden?', 'Stockholm', 'contains', True),
    ('capital', 'What is the capital of Turkey?', 'Ankara', 'contains', False),
    ('common_sense', 'What color is snow?', 'white', 'contains', True),
    ('common_sense', 'What color is the sky on a clear day?', 'blue', 'contains', True),
    ('common_sense', 'What do we call a baby cat?', 'kitten', 'contains', True),
    ('common_sense', 'What gas do humans need to breathe to live?', 'oxygen', 'contains', True),
    ('common_sense', 'What is the boiling point of water in degrees Celsius?', '100', 'number', True),
    ('common_sense', 'What is the largest mammal in the world?', 'whale', 'contains', True),
    ('common_sense', 'What is the largest ocean on Earth?', 'Pacific', 'contains', True),
    ('common_sense', 'What is the main ingredient in bread?', 'flour', 'contains', True),
    ('common_sense', 'What is the opposite of big?', 'small', 'contains', True),
    ('common_sense', 'What is the opposite of day?', 'night', 'contains', True),
    ('common_sense', 'What is the opposite of fast?', 'slow', 'contains', True),
    ('common_sense', 'What is the opposite of full?', 'empty', 'contains', True),
    ('common_sense', 'What is the opposite of happy?', 'sad', 'contains', True),
    ('common_sense', 'What is the opposite of hot?', 'cold', 'contains', True),
    ('common_sense', 'What is the opposite of inside?', 'outside', 'contains', True),
    ('common_sense', 'What is the opposite of light?', 'dark', 'contains', True),
    ('common_sense', 'What is the opposite of north?', 'south', 'contains', True),
    ('common_sense', 'What is the opposite of up?', 'down', 'contains', True),
    ('common_sense', 'What star is at the center of our solar system?', 'Sun', 'contains', True),
    ('format', 'Answer with one word: what colour is the sky?', 'blue', 'contains', True),
    ('format', 'Reply with only the word OK.', 'ok', 'exact', False),
    ('format', 'Write the number twelve using digits.', '12', 'number', True),
    ('knowledge', 'In which city is the Colosseum?', 'Rome', 'contains', True),
    ('knowledge', 'In which country are the pyramids of Giza?', 'Egypt', 'contains', True),
    ('knowledge', 'In which country is the Eiffel Tower?', 'France', 'contains', True),
    ('knowledge', 'What currency is used in Japan?', 'yen', 'contains', True),
    ('knowledge', 'What is the currency of the United Kingdom?', 'pound', 'contains', True),
    ('knowledge', 'What is the longest river in Africa?', 'Nile', 'contains', True),
    ('knowledge', 'What is the tallest mountain in the world?', 'Everest', 'contains', True),
    ('knowledge', 'What language is spoken in Brazil?', 'Portuguese', 'contains', True),
    ('knowledge', 'What language is spoken in France?', 'French', 'contains', True),
    ('knowledge', 'What language is spoken in Mexico?', 'Spanish', 'contains', True),
    ('knowledge', 'Who developed the theory of relativity?', 'Einstein', 'contains', True),
    ('knowledge', 'Who discovered penicillin?', 'Fleming', 'contains', True),
    ('knowledge', 'Who painted the Mona Lisa?', 'Leonardo', 'contains', True),
    ('knowledge', 'Who was the first person to walk on the Moon?', 'Armstrong', 'contains', True),
    ('knowledge', 'Who was the first president of the United States?', 'Washington', 'contains', False),
    ('knowledge', "Who wrote 'Hamlet'?", 'Shakespeare', 'contains', True),
    ('knowledge', "Who wrote 'Romeo and Juliet'?", 'Shakespeare', 'contains', True),
    ('science', 'What do plants absorb from the air to make food?', 'carbon dioxide', 'contains', True),
    ('science', 'What organ pumps blood through the body?', 'heart', 'contains', True),
    ('science', 'Which planet is closest to the Sun?', 'Mercury', 'contains', False),
    ('sequence', 'What is the last month of the year?', 'December', 'contains', True),
    ('spelling', "What is the past tense of 'buy'?", 'bought', 'contains', True),
    ('spelling', "What is the past tense of 'catch'?", 'caught', 'contains', False),
    ('spelling', "What is the past tense of 'think'?", 'thought', 'contains', True),
    ('spelling', "What is the plural of 'baby'?", 'babies', 'contains', True),
    ('spelling', "What is the plural of 'child'?", 'children', 'contains', True),
    ('spelling', "What is the plural of 'city'?", 'cities', 'contains', True),
    ('spelling', "What is the plural of 'foot'?", 'feet', 'contains', True),
    ('spelling', "What is the plural of 'goose'?", 'geese', 'contains', False),
    ('spelling', "What is the plural of 'knife'?", 'knives', 'contains', True),
    ('spelling', "What is the plural of 'leaf'?", 'leaves', 'contains', True),
    ('spelling', "What is the plural of 'mouse'?", 'mice', 'contains', True),
    ('spelling', "What is the plural of 'person'?", 'people', 'contains', True),
    ('spelling', "What is the plural of 'wolf'?", 'wolves', 'contains', True),
    ('spelling', "What is the plural of 'woman'?", 'women', 'contains', True),
    ('translation', "Translate 'cat' into Spanish.", 'gato', 'contains', False),
    ('translation', "Translate 'hello' into Spanish.", 'hola', 'contains', True),
]

BASE_ACCURACY = (76, 85)  # (right, total) measured with `--measure-regression` (OMP_NUM_THREADS=1, CPU fp32)


def score_regression(output: str, answer: str, check: str) -> bool:
    """The scoring rule of regression.jsonl: ``course_lib.regression_rules.check_regression_answer``, the same rule
    the course's evaluation code (``evaluate.score_regression``) uses."""
    return regression_rules.check_regression_answer(output, answer, check)


def write_regression(out: Path, split, entries) -> int:
    rows = [{"id": f"R{i + 1:03d}", "skill": sk, "prompt": p, "answer": a, "check": c}
            for i, (sk, p, a, c, _) in enumerate(REGRESSION)]
    write_jsonl(out / "regression.jsonl", rows)
    return len(rows)


def measure_regression(path: Path) -> None:
    """Run the base embedded model on regression.jsonl and print its accuracy (greedy, 32 new tokens)."""
    import torch

    from course_lib import models

    rows = [json.loads(line) for line in open(path, encoding="utf-8")]
    model, tok = models.load_model("embedded", dtype=torch.float32)  # the README quotes fp32
    outs = models.generate(model, tok, [[{"role": "user", "content": r["prompt"]}] for r in rows],
                           max_new_tokens=32, batch_size=16)
    right = [score_regression(o, r["answer"], r["check"]) for r, o in zip(rows, outs)]
    for r, o, ok in zip(rows, outs, right):
        print(("OK " if ok else "XX ") + r["id"], r["prompt"], "->", o.replace("\n", " ")[:80])
    print(f"base accuracy: {sum(right)}/{len(rows)} = {sum(right) / len(rows):.3f}")


# ==============================================================================================================
# 7. preferences.jsonl: on-brand (chosen) vs plausible but off-brand (rejected) answers, training families only
# ==============================================================================================================
MONEY_CATEGORIES = ("returns_refunds", "billing", "damaged_item")
FLAW_REPLIES = {
    "curt": ["Noted. See the help centre about {topic}.", "We got your message about {topic}. Wait for an email.",
             "Check the FAQ for {topic}.", "Ok. Someone will look at {topic} eventually."],
    "sarcastic": ["Wow, {topic}, what a surprise. We'll get to it when we get to it.",
                  "Oh great, another message about {topic}. Have you tried reading the website?",
                  "Sure, because {topic} is clearly the most important thing in the world right now."],
    "blames_customer": ["Honestly, {topic} is almost always down to how the customer handled things. You should have "
                        "read the care card more carefully.",
                        "Problems like {topic} usually happen when customers don't follow instructions. Please be more "
                        "careful next time.",
                        "We can't be held responsible for {topic}; that's on you, I'm afraid."],
    "exact_refund_promise": ["We'll refund you £{amount} today for {topic}, no questions asked.",
                             "Don't worry about {topic}: £{amount} will be back on your card within the hour.",
                             "I've approved a £{amount} refund for {topic}, guaranteed to arrive tomorrow."],
    "guaranteed_outcome": ["Don't worry about {topic}: follow our tips and it is 100% guaranteed to be fixed within "
                           "24 hours.", "I guarantee {topic} will be completely sorted by tomorrow morning.",
                           "Rest assured, {topic} will definitely never happen again, guaranteed."],
    "marketing_spam": ["MEGA SALE this weekend: use code LEAFY25 for 25% off everything!",
                       "Follow us on Instagram and join GreenLeaf Plus for free delivery all year!",
                       "Why not treat yourself to our new Spring Collection while you wait?"],
}
FLAWS = ("curt", "sarcastic", "blames_customer", "exact_refund_promise", "guaranteed_outcome", "no_sign_off",
         "marketing_spam", "broken_json")


def rejected_answer(row: dict, flaw: str, rng: random.Random) -> str:
    cat, pri, nh, reply = row["category"], row["priority"], row["needs_human"], row["reply"]
    body = reply[: -len(SIGN_OFF)].rstrip()
    topic = FAMILIES[int(row["family"][1:]) - 1]["topic"]
    if flaw == "no_sign_off":
        return greenleaf.format_target(cat, pri, nh, body)
    if flaw == "marketing_spam":
        return greenleaf.format_target(cat, pri, nh, f"{body} {rng.choice(FLAW_REPLIES[flaw])} {SIGN_OFF}")
    if flaw == "broken_json":
        variant = rng.randrange(4)
        if variant == 0:
            return reply  # plain text, no JSON at all
        if variant == 1:
            return repr({"category": cat, "priority": pri, "needs_human": nh, "reply": reply})
        if variant == 2:
            return greenleaf.format_target(cat, pri, nh, reply)[:-2]  # cut off before the closing quote and brace
        return dumps({"category": cat, "priority": pri, "reply": reply})  # needs_human dropped
    text = rng.choice(FLAW_REPLIES[flaw]).format(topic=topic, amount=rng.choice([12, 18.5, 24, 32, 45, 60, 89]))
    text = text[0].upper() + text[1:]
    return greenleaf.format_target(cat, pri, nh, f"{text} {SIGN_OFF}")


def write_preferences(out: Path, split, entries) -> int:
    rng = random.Random(f"{SEED}-preferences")
    train = set(split["train"])
    pool = [e for e in entries if e["kind"] == "good" and e["row"]["family"] in train]
    rng.shuffle(pool)
    rows = []
    for i, e in enumerate(pool[:180]):
        r = e["row"]
        flaw = FLAWS[i % len(FLAWS)]
        if flaw == "exact_refund_promise" and r["category"] not in MONEY_CATEGORIES:
            flaw = "guaranteed_outcome"
        rejected = rejected_answer(r, flaw, rng)
        assert rejected != r["target"]
        rows.append({"id": f"P{i + 1:03d}", "family": r["family"], "flaw": flaw,
                     "prompt": greenleaf.messages_for(r["ticket"]),
                     "chosen": [{"role": "assistant", "content": r["target"]}],
                     "rejected": [{"role": "assistant", "content": rejected}]})
    write_jsonl(out / "preferences.jsonl", rows)
    return len(rows)


EXTRA_WRITERS_LIST = [("pii_labelled", write_pii_labelled), ("regression", write_regression),
                      ("preferences", write_preferences)]


# ==============================================================================================================
# main
# ==============================================================================================================
def generate(out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    split = split_families(random.Random(f"{SEED}-split"))
    lines, planted, canaries, entries = build_raw(split)
    assert all(c["family"] in split["train"] for c in canaries)
    write_jsonl(out / "raw_tickets.jsonl", lines)
    write_json(out / "planted_problems.json", planted)
    write_json(out / "canaries.json", canaries)
    write_json(out / "families.json", split)
    stats = dict(raw_lines=len(lines), planted=planted, split=split, entries=entries)
    for name, fn in EXTRA_WRITERS_LIST:
        stats[name] = fn(out, split, entries)
    write_readme(out, stats)
    return stats


EXTRA_WRITERS: list = EXTRA_WRITERS_LIST


def write_readme(out: Path, stats: dict) -> None:
    from collections import Counter

    entries, split = stats["entries"], stats["split"]
    held = set(split["heldout"])
    good = [e for e in entries if e["kind"] in ("good", "pii", "canary", "dup_source", "near_source")]
    n_held = sum(e["row"]["family"] in held for e in good)
    planted = Counter(p["problem"] for p in stats["planted"])
    cats = Counter(e["row"]["category"] for e in good)
    pris = Counter(e["row"]["priority"] for e in good)
    nh = Counter(e["row"]["needs_human"] for e in good)
    acc = BASE_ACCURACY
    text = f"""# GreenLeaf Support datasets

The running example of the course: a plant-care shop's support tickets go in, one line of triage JSON comes out
(`category`, `priority`, `needs_human`, `reply`; see `course_lib/greenleaf.py`). Everything here is synthetic,
written by the course authors, and released under **CC0 1.0** (public domain). All names, addresses, phone
numbers, e-mail addresses and card numbers are invented (555-01xx and Ofcom drama-range numbers, `.example`
domains, Luhn-valid but made-up card numbers).

Regenerate (deterministic, byte-identical): `python data/generate_greenleaf.py` (`--out DIR` to write elsewhere).
The generator's docstring holds the labelling rules; `tests/test_shipped_data.py` checks everything below.

| file | rows | what |
|---|---|---|
| `raw_tickets.jsonl` | {stats['raw_lines']} lines | raw export with planted problems (notebook 02 cleans it) |
| `planted_problems.json` | {len(stats['planted'])} | where each planted problem is (1-based line) |
| `families.json` | {len(split['train'])} train / {len(split['heldout'])} held-out families | default group split |
| `canaries.json` | 5 | invented customers planted once each in a training ticket |
| `pii_labelled.jsonl` | {stats['pii_labelled']} | PII detection eval set with character spans |
| `regression.jsonl` | {stats['regression']} | general-skills prompts (forgetting check) |
| `preferences.jsonl` | {stats['preferences']} | DPO pairs, training families only |
| `replay.jsonl` | 84 | general requests answered by the base model (mixed into training against forgetting) |

## raw_tickets.jsonl
One JSON object per line: `{{"id": "GL-0001", "family": "F001", "messages": [system, user, assistant]}}`. The system
turn is `greenleaf.SYSTEM_PROMPT`, the user turn is the ticket, the assistant turn is exactly
`greenleaf.format_target(category, priority, needs_human, reply)`. A *family* is one underlying customer situation
({len(FAMILIES)} families, 4-5 differently worded tickets each); split by family, never by row.

Valid rows, not counting the planted duplicate copies: {len(good)} ({len(good) - n_held} in train families,
{n_held} in held-out families). By category: {', '.join(f'{k} {v}' for k, v in sorted(cats.items()))}. By priority:
{', '.join(f'{k} {pris[k]}' for k in ('low', 'medium', 'high', 'urgent'))}. needs_human: true {nh[True]},
false {nh[False]}.

Planted problems (also listed in `planted_problems.json` with line, id and detail):

| problem | rows | what it looks like |
|---|---|---|
| `malformed_json` | {planted['malformed_json']} | truncated line, trailing comma, single-quoted dict, missing brace |
| `wrong_roles` | {planted['wrong_roles']} | role `bot`/`customer`, assistant before user, two user turns, no assistant |
| `empty_answer` | {planted['empty_answer']} | assistant content empty or whitespace |
| `bad_target` | {planted['bad_target']} | valid JSON that fails `TRIAGE_SCHEMA` (unknown category, priority `critical`, missing reply, string needs_human, extra key) |
| `exact_duplicate` | {planted['exact_duplicate']} | same messages as an earlier row, new id |
| `near_duplicate` | {planted['near_duplicate']} | an earlier ticket with a tiny edit, filed under a family of the *other* split (a group split alone leaks it) |
| `pii` | {planted['pii']} | valid rows whose ticket contains e-mails, phone numbers, Luhn-valid card numbers, street addresses or full names |
| `canary` | {planted['canary']} | valid training rows carrying a canary record (see `canaries.json`) |

Look-alikes that are NOT personal data also appear in valid rows: order numbers (`GL-48213`), 16-digit tracking
numbers that fail the Luhn check (some grouped in fours like a card), dates, prices, pot sizes, plant names.

## Labelling rules
**needs_human** is true exactly when the assistant cannot finish the job alone: (1) money must move (refund,
credit, charge reversal, price adjustment); (2) safety: a person or pet may have eaten a plant, or someone was hurt;
(3) account security or privacy (hacked account, unknown login, stolen card, data deletion/access); (4) a damaged,
dead, wrong or missing item (a person reviews the photos); (5) a placed order must be changed or investigated
(address change, cancellation, lost/misdelivered/returned parcel); (6) escalation: manager requested, legal or
chargeback threat, or a sales quote (bulk, corporate, price match). It is false for care questions, tracking and
"where is my order", return-policy questions, product questions, password resets, newsletter settings and
downloadable invoices.

**priority**: `urgent` = ingestion/safety, fraud or stolen card, hacked account or unknown login; `high` = money
taken wrongly, lost parcel, dead or badly damaged delivery, spreading pests or a plant collapsing fast, legal
threat; `medium` = something is wrong but not getting worse fast; `low` = questions and small annoyances.

Replies: two or three warm, plain sentences (at most 48 words), specific to the situation, never promising an
exact refund amount or a guaranteed outcome, always ending with "{SIGN_OFF}".

## families.json
`{{"heldout": [...], "train": [...]}}`: about 20 % of the families of each category held out; the canary families
are always in train. Near duplicates are deliberately filed under families of the other split, so a clean split
also needs near-duplicate removal across splits.

## canaries.json
`[{{"id", "family", "name", "address", "phone", "email", "prefix", "secret"}}]`. Each canary string appears in
exactly one ticket, in a training family, as `prefix + secret`. A model that completes `prefix` with `secret` has
memorised the ticket; redacting PII before training removes the risk.

## pii_labelled.jsonl
`{{"id", "text", "spans": [{{"start", "end", "type", "text"}}]}}` with `text[start:end] == span text`. Types: EMAIL,
PHONE, CARD, ADDRESS, PERSON. About a third of the texts have no PII but contain look-alikes (order and tracking
numbers, prices, dates, plant names like Rose, Jade, Ivy, Jasmine, a Luhn-valid label code). Hard cases a regex
misses: names without "my name is", staff first names in sign-offs (labelled PERSON), addresses without a house
number or street suffix, a spelled-out e-mail address.

## regression.jsonl
`{{"id", "skill", "prompt", "answer", "check"}}`, unrelated to plants. Scoring (`score_regression` in the
generator calls `course_lib.regression_rules.check_regression_answer`, the rule the course uses): `contains` = the
answer, any case, starts a word of the output; `number` = the output's final answer (the last number after =, is,
are, has, answer..., else the last number; digits or number words) equals the answer, and a hedge such as "3 or
4" is wrong; `exact` = equal after stripping whitespace, wrapping quotes and a final . ! or ?.

Measured base accuracy (SmolLM2-135M-Instruct, the `embedded` model, greedy, `max_new_tokens=32`, the prompt as
a plain user message with no system prompt, batch size 16, CPU float32):
**{acc[0]}/{acc[1]} = {acc[0] / acc[1]:.1%}**. Reproduce with
`COURSE_CACHE=... python data/generate_greenleaf.py --measure-regression`. The items were chosen so the base model
mostly succeeds; a drop after fine-tuning shows forgetting. In bf16 (what the course picks on a CPU with bf16
instructions, and on GPUs) the same items score 73/85 = 85.9% (`benchmarks/results/baseline_fewshot.json`): always
compare a tuned model with its base in the same dtype.

## replay.jsonl
84 general requests (explain, tips, rewrite, summarise, ideas, how-to, compare, write) answered by the base model
itself, greedy, with the chat template's default system prompt (rows have no system turn); only answers that ended
within 160 tokens are kept. Training mixes them in with the tickets so the model keeps answering general requests
normally (notebook 04). Being the base model's own answers, they can only preserve behaviour, not teach new facts;
the requests are open-ended tasks that share no 4-gram with `regression.jsonl` (tested). Written by
`data/generate_replay.py`, not by this script (it needs the embedded model): `COURSE_CACHE=... python
data/generate_replay.py` (~1 min).

## preferences.jsonl
TRL's conversational preference format: `{{"id", "family", "flaw", "prompt": [system, user],
"chosen": [assistant], "rejected": [assistant]}}`. `chosen` is the on-brand target; `rejected` is plausible but
off-brand, with the flaw named in `flaw`: {', '.join(FLAWS)}. Only tickets of training families are used.
"""
    with open(out / "README.md", "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT_DIR, help="output folder (default: data/greenleaf)")
    ap.add_argument("--measure-regression", action="store_true",
                    help="run the base embedded model on regression.jsonl and print its accuracy (needs torch)")
    args = ap.parse_args(argv)
    if args.measure_regression:
        measure_regression(args.out / "regression.jsonl")
        return
    stats = generate(args.out)
    from collections import Counter
    print(f"wrote {args.out}: {stats['raw_lines']} raw lines, planted "
          f"{dict(Counter(p['problem'] for p in stats['planted']))}")





if __name__ == "__main__":
    main()
