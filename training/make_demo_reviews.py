"""Writes `src/attnlens/data/demo_reviews.csv`, the demo set shipped in the package.

The reviews are our own: short sentences composed from the phrase lists below (films, books,
restaurants, hotels, gadgets, games, concerts), with negations, contrasts ("slow start, but ...")
and varied lengths, so a model has to read more than one keyword. Deterministic (seeded), balanced,
no duplicates. Run: `python training/make_demo_reviews.py` (rewrites the file).
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

TARGET = Path(__file__).resolve().parents[1] / "src" / "attnlens" / "data" / "demo_reviews.csv"
PER_LABEL = 200
SEED = 20261121

SUBJECTS = {
    "film": ["the film", "this movie", "the sequel", "the documentary", "this thriller", "the animated feature"],
    "book": ["the novel", "this book", "the memoir", "the short story collection", "this cookbook"],
    "restaurant": ["the restaurant", "this little bistro", "the noodle bar", "the pizza place", "the cafe"],
    "hotel": ["the hotel", "our room", "this guesthouse", "the resort"],
    "gadget": ["the headphones", "this laptop", "the phone", "the coffee grinder", "this keyboard", "the e-reader"],
    "game": ["the game", "this puzzle game", "the board game", "the racing game"],
    "concert": ["the concert", "the show", "their live set", "the musical"],
}

PRAISE = {
    "film": ["the acting is superb", "the story kept me hooked", "the score is gorgeous", "every scene feels alive",
             "the jokes actually land", "the ending moved me to tears"],
    "book": ["the prose is beautiful", "the characters feel real", "I could not put it down",
             "every chapter surprised me", "the recipes work every time"],
    "restaurant": ["the food was delicious", "the staff were warm and quick", "the portions were generous",
                   "the dessert was perfect", "the prices were fair"],
    "hotel": ["the bed was comfortable", "the staff went out of their way", "the view was stunning",
              "everything was spotless", "breakfast was excellent"],
    "gadget": ["the battery lasts for days", "the sound is crisp and clear", "it feels solid and well made",
               "setup took two minutes", "it is fast and quiet"],
    "game": ["the controls feel great", "the levels are clever", "it is fun with friends",
             "the art style is charming", "I keep coming back to it"],
    "concert": ["the band was on fire", "the sound was perfect", "the crowd loved every song",
                "the singer was incredible", "the encore was unforgettable"],
}

COMPLAINTS = {
    "film": ["the plot makes no sense", "the acting is wooden", "it drags on forever", "the dialogue is painful",
             "the jokes fall flat", "the ending ruined it"],
    "book": ["the prose is clumsy", "the characters are flat", "I gave up halfway", "nothing happens for pages",
             "the recipes never turn out"],
    "restaurant": ["the food was cold", "we waited an hour for our order", "the portions were tiny",
                   "the dessert was stale", "the bill was outrageous"],
    "hotel": ["the bed was lumpy", "the staff were rude", "the room smelled of smoke", "the bathroom was dirty",
              "the walls were paper thin"],
    "gadget": ["the battery dies by noon", "the sound is muddy", "it feels cheap and flimsy",
               "it crashed twice on the first day", "it overheats constantly"],
    "game": ["the controls are sluggish", "the levels are repetitive", "it crashes all the time",
             "the story is an afterthought", "it is full of annoying ads"],
    "concert": ["the sound was awful", "the band seemed bored", "it started two hours late",
                "we could not hear the vocals", "the set was painfully short"],
}

POSITIVE_VERDICTS = ["I loved it.", "Highly recommended.", "Worth every penny.", "A real gem.", "Absolutely wonderful.",
                     "I would go back tomorrow.", "Five stars from me.", "What a delight.", "Better than I hoped.",
                     "Easily the best this year."]
NEGATIVE_VERDICTS = ["I hated it.", "Avoid it.", "A waste of money.", "Deeply disappointing.", "Never again.",
                     "I want my money back.", "One star is generous.", "What a letdown.", "Worse than I feared.",
                     "Easily the worst this year."]
POSITIVE_ADJECTIVES = ["great", "lovely", "brilliant", "excellent", "charming", "wonderful", "fantastic", "superb"]
NEGATIVE_ADJECTIVES = ["terrible", "dull", "awful", "boring", "disappointing", "dreadful", "mediocre", "poor"]
NEGATED_NEGATIVES = ["was not bad at all", "was far from boring", "was never dull", "had not a single weak moment"]
NEGATED_POSITIVES = ["was not good at all", "was far from great", "was never fun", "was not worth the hype"]


def positive_review(rng: random.Random) -> str:
    domain = rng.choice(list(SUBJECTS))
    subject = rng.choice(SUBJECTS[domain])
    praise = rng.sample(PRAISE[domain], 2)
    complaint = rng.choice(COMPLAINTS[domain])
    adjective = rng.choice(POSITIVE_ADJECTIVES)
    verdict = rng.choice(POSITIVE_VERDICTS)
    templates = [
        f"{subject.capitalize()} is {adjective}: {praise[0]}. {verdict}",
        f"{praise[0].capitalize()} and {praise[1]}. {verdict}",
        f"I was unsure at first, but {praise[0]}. {subject.capitalize()} is {adjective}.",
        f"Sure, {complaint}, but {praise[0]} and {praise[1]}, so I am happy.",
        f"{subject.capitalize()} {rng.choice(NEGATED_NEGATIVES)}. {verdict}",
        f"{verdict} {praise[0].capitalize()}.",
        f"{adjective.capitalize()}!",
        f"Simply {adjective}; {praise[1]}.",
        f"My friends warned me, yet {subject} turned out {adjective} and {praise[0]}.",
    ]
    return rng.choice(templates)


def negative_review(rng: random.Random) -> str:
    domain = rng.choice(list(SUBJECTS))
    subject = rng.choice(SUBJECTS[domain])
    complaints = rng.sample(COMPLAINTS[domain], 2)
    praise = rng.choice(PRAISE[domain])
    adjective = rng.choice(NEGATIVE_ADJECTIVES)
    verdict = rng.choice(NEGATIVE_VERDICTS)
    templates = [
        f"{subject.capitalize()} is {adjective}: {complaints[0]}. {verdict}",
        f"{complaints[0].capitalize()} and {complaints[1]}. {verdict}",
        f"I had high hopes, but {complaints[0]}. {subject.capitalize()} is {adjective}.",
        f"Sure, {praise}, but {complaints[0]} and {complaints[1]}, so I regret it.",
        f"{subject.capitalize()} {rng.choice(NEGATED_POSITIVES)}. {verdict}",
        f"{verdict} {complaints[0].capitalize()}.",
        f"{adjective.capitalize()}.",
        f"Simply {adjective}; {complaints[1]}.",
        f"Everyone raved about it, yet {subject} turned out {adjective} and {complaints[0]}.",
    ]
    return rng.choice(templates)


def build_reviews(per_label: int = PER_LABEL, seed: int = SEED) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    rows: list[tuple[str, str]] = []
    seen: set[str] = set()
    for label, make in (("positive", positive_review), ("negative", negative_review)):
        count = 0
        while count < per_label:
            text = make(rng)
            if text in seen:
                continue
            seen.add(text)
            rows.append((text, label))
            count += 1
    rng.shuffle(rows)
    return rows


def main() -> None:
    rows = build_reviews()
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    with TARGET.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    print(f"wrote {len(rows)} reviews to {TARGET}")


if __name__ == "__main__":
    main()
