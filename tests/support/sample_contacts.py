"""Generated phonebooks for the LDAP tests and benchmarks/bench_ldap.py: deterministic, with non-ASCII
names and numbers written the many ways people type them."""

from __future__ import annotations

import json
import random
import sqlite3
from dataclasses import dataclass, field

from pbxsync.sync.model import PhoneKind
from pbxsync.sync.phones import phone_number

GIVEN = ("Anna", "Jürgen", "Zoë", "Émile", "Mia", "Lukas", "Søren", "Olga", "Ahmet", "Chloé", "Björn", "Ines",
         "Paul", "Marta", "Noah", "Lea", "Ömer", "Hana", "Jakob", "Ella", "Milan", "Sofia", "Tomasz", "Ana")
SURNAMES = ("Müller", "Miller", "Schmidt", "Meyer", "Smith", "Öztürk", "Kowalski", "Dubois", "Jensen", "García",
            "Rossi", "Novák", "Nguyen", "Weiß", "Fischer", "Schäfer", "Millington", "Kamińska", "Hoffmann", "Bauer",
            "Wagner", "Becker", "Lefèvre", "Håkansson", "Petrović", "O'Brien", "Takahashi", "Schulz", "Koch",
            "Richter", "Klein", "Wolf", "Neumann", "Schwarz", "Zimmermann", "Braun", "Krüger", "Hofmann",
            "Hartmann", "Lange", "Schmitt", "Werner", "Krause", "Meier", "Lehmann", "Schmid", "Schulze", "Maier",
            "Köhler", "Herrmann", "König", "Walter", "Mayer", "Huber", "Kaiser", "Fuchs", "Peters", "Lang",
            "Scholz", "Möller", "Weber", "Jung", "Hahn", "Vogel", "Friedrich", "Keller", "Günther", "Frank",
            "Berger", "Winkler", "Roth", "Beck", "Lorenz", "Baumann", "Franke", "Albrecht", "Schuster", "Simon")
COMPANIES = ("ACME GmbH", "Globex AG", "Initech", "Umbrella KG", "Stark Industries", "Wayne Enterprises", "")
TITLES = ("CEO", "Engineer", "Sales", "Support", "Accountant", "")


@dataclass(frozen=True)
class SampleContact:
    mailbox: str
    item_id: str
    display_name: str
    given_name: str
    surname: str
    company: str = ""
    title: str = ""
    emails: tuple[str, ...] = ()
    phones: tuple[tuple[str, str], ...] = field(default=())  # (kind, raw)


def _number(rng: random.Random) -> str:
    area = rng.choice(("30", "40", "89", "221", "69", "711"))
    local = "".join(rng.choice("0123456789") for _ in range(rng.randint(6, 8)))
    style = rng.randrange(4)
    if style == 0:
        return f"+49 {area} {local}"
    if style == 1:
        return f"0{area} {local[:4]} {local[4:]}"
    if style == 2:
        return f"+49 ({area}) {local[:3]}-{local[3:]}"
    return f"0{area}/{local}"


def generate(count: int, seed: int = 1, mailboxes: tuple[str, ...] = ("alice@example.com",)) -> list[SampleContact]:
    rng = random.Random(seed)
    out = []
    for i in range(count):
        given, surname = rng.choice(GIVEN), rng.choice(SURNAMES)
        phones = [("business", _number(rng))]
        if rng.random() < 0.6:
            phones.append(("mobile", f"+49 1{rng.randint(50, 79)} {rng.randint(1000000, 99999999)}"))
        if rng.random() < 0.3:
            phones.append(("home", _number(rng)))
        mail = f"{given}.{surname}.{i}@example.org".lower().replace("'", "")
        out.append(SampleContact(mailboxes[i % len(mailboxes)], f"item-{i}", f"{given} {surname}", given, surname,
                                 rng.choice(COMPANIES), rng.choice(TITLES), (mail,), tuple(phones)))
    return out


def write_contacts(conn: sqlite3.Connection, contacts: list[SampleContact], region: str = "DE",
                   stamp: str = "2026-11-27T00:00:00+00:00") -> None:
    """Insert into a migrated store (plain sqlite3: fast enough for 100k rows)."""
    with conn:
        for c in contacts:
            cur = conn.execute(
                "INSERT INTO contacts (mailbox, item_id, change_key, display_name, given_name, surname, company, "
                "title, emails, updated_at) VALUES (?, ?, 'ck', ?, ?, ?, ?, ?, ?, ?)",
                (c.mailbox, c.item_id, c.display_name, c.given_name, c.surname, c.company, c.title,
                 json.dumps(list(c.emails), ensure_ascii=False), stamp))
            rows = []
            for kind, raw in c.phones:
                number = phone_number(PhoneKind(kind), raw, region)
                rows.append((cur.lastrowid, number.kind.value, number.raw, number.e164, number.digits))
            conn.executemany("INSERT INTO contact_phones (contact_id, kind, raw, e164, digits) VALUES (?, ?, ?, ?, ?)",
                             rows)
