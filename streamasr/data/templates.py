"""Sentences about names, places, dates, times, prices and quantities (the ``numbers``
text source of the built-in corpus).

Written text with digits is filled from our templates with Faker's English names,
places, companies and jobs, then written out as words by
:func:`streamasr.data.spoken.spoken_form` (num2words), so the corpus has what the prose
sources lack: numbers, dates, clock times, money and names in everyday phrasing.
Deterministic for a seed (Faker is seeded per call, nothing global).
"""

from __future__ import annotations

import random

from streamasr.data.spoken import spoken_form

_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_THINGS = ("tickets", "apples", "chairs", "books", "boxes", "bottles of water", "eggs", "shirts",
           "pages", "miles", "minutes", "people", "cups of coffee", "houses", "cars", "letters")
_PLACES = ("the station", "the airport", "the library", "the hospital", "the office", "the market",
           "the museum", "the bank", "the hotel", "the school", "the park", "the harbour")

_TEMPLATES = (
    "{first} was born on {month} {dayth}, {year}.",
    "The meeting with {first} {last} is on {weekday} at {clock}.",
    "Can you call {first} before {clock}?",
    "My flight to {city} leaves at {clock} on {weekday}.",
    "The train from {city} arrives at {clock}.",
    "It costs {price}, but {first} only has {price2}.",
    "We need {small} {things} for the party on the {dayth}.",
    "How many {things} did {first} buy?",
    "The total comes to {price}.",
    "Please send {big} dollars to {company} by {month} {dayth}.",
    "{first} {last} works as a {job} in {city}.",
    "Room {room} is on the {floorth} floor.",
    "The population of {city} is about {big} people.",
    "Is the {weekday} meeting still at {clock}?",
    "Turn left after {small} blocks and {place} is on your right.",
    "{company} opened its office in {city} in {year}.",
    "The temperature will drop to {small} degrees on {weekday}.",
    "About {percent} of the {things} were sold by {clock}.",
    "Her phone number is {digits}.",
    "Meet me at {place} at {clock}.",
    "{first} has been a {job} since {year}.",
    "The rent went up by {price} in {month}.",
    "Why did {first} leave {city} in {year}?",
    "We waited {small} minutes for the bus to {city}.",
    "The order of {big} {things} arrived on {weekday} the {dayth}.",
    "{first} and {first2} moved to {city} on {month} {dayth}.",
    "Who told {first} that the shop closes at {clock}?",
    "The {floorth} edition was printed in {year}.",
    "Your appointment with doctor {last} is at {clock}.",
    "I paid {price} for {small} {things} at {place}.",
)


def template_sentences(count: int, seed: int, min_words: int = 1, max_words: int = 1000) -> list[str]:
    """``count`` distinct spoken-form sentences from the templates (fewer only when the
    length limits reject nearly everything)."""
    from faker import Faker

    fake = Faker("en_US")
    fake.seed_instance(seed)
    rng = random.Random(seed)
    sentences: list[str] = []
    seen: set[str] = set()
    attempts = 0
    while len(sentences) < count and attempts < 20 * count + 100:
        attempts += 1
        hour, minute = rng.randint(1, 12), rng.choice((0, 5, 10, 15, 20, 30, 40, 45, 50, 55))
        half = rng.choice(("", "", " a.m.", " p.m."))
        values = dict(
            first=fake.first_name(), first2=fake.first_name(), last=fake.last_name(),
            city=fake.city(), company=fake.company().replace(",", ""), job=fake.job().split(",")[0].lower(),
            month=rng.choice(_MONTHS), weekday=rng.choice(_DAYS),
            dayth=_ordinal(rng.randint(1, 31)),
            year=str(rng.choice((rng.randint(1900, 1999), rng.randint(2000, 2030)))),
            clock=f"{hour}:{minute:02d}{half}",
            price=f"${rng.randint(1, 500)}.{rng.choice((0, 25, 50, 75, 99)):02d}",
            price2=f"${rng.randint(1, 99)}", small=str(rng.randint(2, 20)), big=f"{rng.randint(100, 99999):,}",
            things=rng.choice(_THINGS), place=rng.choice(_PLACES), room=str(rng.randint(100, 999)),
            floorth=_ordinal(rng.randint(1, 40)), percent=f"{rng.randint(2, 98)}%",
            digits=" ".join(str(rng.randint(0, 9)) for _ in range(7)),
        )
        sentence = spoken_form(rng.choice(_TEMPLATES).format(**values), min_words, max_words)
        if sentence and sentence not in seen:
            seen.add(sentence)
            sentences.append(sentence)
    return sentences


def _suffix(number: int) -> str:
    if 10 <= number % 100 <= 20:
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")


def _ordinal(number: int) -> str:
    return f"{number}{_suffix(number)}"
