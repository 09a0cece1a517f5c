"""Reading the simulator's JSON data file (format in docs/exchange-ews.md) into records.

Every value is checked; an invalid file raises `DataFileError` listing every problem with its JSON path,
not just the first. The result is plain data (`DataFile`): the users and, in file order, where each item
goes; `Organisation.from_data` places them. Relative times are resolved against the given `now`.

Longer than the house's ~400 lines on purpose: one reader checks every key of every kind of record (users,
groups, contacts, odd items, folders, meetings with their calendar details) in one pass, so a file's
problems are all listed together; split, the readers would share all their checking helpers anyway.

Over 400 lines on purpose: one validator per record kind of one file format, each listing every problem with
its JSON path; they share the path bookkeeping.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pbxsync.sync.errors import UserError
from pbxsync.sync.simulator.groups import GROUP_KINDS, GroupRecord
from pbxsync.sync.simulator.ids import make_item_id
from pbxsync.sync.simulator.records import (
    ATTENDEE_KINDS,
    CONTACT_FOLDER_CLASS,
    ODD_ITEM_KINDS,
    PHONE_KINDS,
    RESPONSES,
    SENSITIVITIES,
    WEEKDAYS,
    AttendeeRecord,
    ContactFolderRecord,
    ContactRecord,
    Item,
    MeetingRecord,
    OccurrenceException,
    OddItemRecord,
    Phone,
    Recurrence,
    User,
    copy_holders,
)
from pbxsync.sync.simulator.recurrence import series_occurrence
from pbxsync.sync.simulator.zones import parse_time, resolve_timezone


class DataFileError(UserError):
    """The simulator's data file is invalid; lists every problem with its JSON path."""

    def __init__(self, problems: list[str], source: str = "") -> None:
        self.problems = problems
        where = f"{source}: " if source else ""
        head = problems[0] if len(problems) == 1 else f"{len(problems)} problems:\n  " + "\n  ".join(problems)
        super().__init__(where + head)


@dataclass(frozen=True)
class Placement:
    """An item and the mailbox it goes into; None: a meeting placed as Outlook does (see
    `records.copy_holders`)."""

    record: Item | ContactFolderRecord  # a folder is placed before the items in it
    mailbox: str | None


@dataclass(frozen=True)
class DataFile:
    domain: str
    users: tuple[User, ...]
    placements: tuple[Placement, ...]  # in file order (item ids and change keys depend on it)
    groups: tuple[GroupRecord, ...] = ()


def read_json(path: str | Path) -> object:
    try:
        data: object = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataFileError([f"cannot read: {exc.strerror or exc}"], str(path)) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataFileError([f"not valid JSON: {exc}"], str(path)) from None
    return data


def parse_data(data: object, now: datetime, source: str = "") -> DataFile:
    """The data file's content, checked; DataFileError lists every problem."""
    return _Reader(now).load(data, source)


class _Reader:
    def __init__(self, now: datetime) -> None:
        self.now = now
        self.problems: list[str] = []

    def problem(self, path: str, text: str) -> None:
        self.problems.append(f"{path}: {text}")

    def text(self, obj: Mapping[str, Any], key: str, path: str, default: str | None = None) -> str:
        value = obj.get(key, default)
        if value is None:
            self.problem(f"{path}.{key}", "required")
            return ""
        if not isinstance(value, str):
            self.problem(f"{path}.{key}", f"expected a string, got {type(value).__name__}")
            return ""
        return value

    def boolean(self, obj: Mapping[str, Any], key: str, path: str) -> bool:
        value = obj.get(key, False)
        if not isinstance(value, bool):
            self.problem(f"{path}.{key}", "expected true or false")
            return False
        return value

    def table(self, value: object, path: str) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            self.problem(path, "expected an object")
            return {}
        return value

    def array(self, obj: Mapping[str, Any], key: str, path: str) -> list[Any]:
        value = obj.get(key, [])
        if not isinstance(value, list):
            self.problem(f"{path}.{key}", "expected a list")
            return []
        return value

    def choice(self, obj: Mapping[str, Any], key: str, path: str, choices: tuple[str, ...]) -> str:
        value = self.text(obj, key, path, choices[0])
        if value not in choices:
            self.problem(f"{path}.{key}", f"use one of {', '.join(choices)}")
        return value

    def strings(self, obj: Mapping[str, Any], key: str, path: str) -> list[str]:
        found = []
        for k, value in enumerate(self.array(obj, key, path)):
            if isinstance(value, str):
                found.append(value)
            else:
                self.problem(f"{path}.{key}[{k}]", "expected a string")
        return found

    def known(self, obj: Mapping[str, Any], keys: set[str], path: str) -> None:
        for extra in sorted(set(obj) - keys):
            self.problem(f"{path}.{extra}", "unknown key")

    def load(self, data: object, source: str) -> DataFile:
        root = self.table(data, "$")
        self.known(root, {"domain", "organisation", "users", "groups", "mailboxes", "meetings", "comment"}, "$")
        domain = self.text(root, "domain", "$", "example.com")
        org_name = self.text(root, "organisation", "$", "Example")
        users: list[User] = []
        for i, raw in enumerate(self.array(root, "users", "$")):
            path = f"$.users[{i}]"
            u = self.table(raw, path)
            self.known(u, {"email", "name", "password", "legacy_dn", "can_impersonate"}, path)
            email = self.text(u, "email", path).lower()
            if email and "@" not in email:
                self.problem(f"{path}.email", f"{email!r} is not an e-mail address")
            if any(x.email == email for x in users):
                self.problem(f"{path}.email", f"{email} is listed twice")
            local = email.split("@")[0]
            users.append(User(
                email=email, name=self.text(u, "name", path, local), password=self.text(u, "password", path),
                legacy_dn=self.text(u, "legacy_dn", path,
                                    f"/o={org_name}/ou=Exchange/cn=Recipients/cn={local}"),
                can_impersonate=self.boolean(u, "can_impersonate", path)))
        boxes = {u.email for u in users}  # every user has a mailbox
        placements: list[Placement] = []
        mailboxes = self.table(root.get("mailboxes", {}), "$.mailboxes")
        for box_name, raw_box in mailboxes.items():
            path = f"$.mailboxes[{box_name!r}]"
            box = self.table(raw_box, path)
            self.known(box, {"contacts", "contact_folders", "meetings"}, path)
            if box_name.lower() not in boxes:
                self.problem(path, "no user with this e-mail address")
                continue
            self.contacts_folder(box, path, box_name, "", "", placements)
            for j, raw in enumerate(self.array(box, "meetings", path)):
                meeting = self.meeting(raw, f"{path}.meetings[{j}]", box_name, j)
                if meeting is not None:
                    placements.append(Placement(meeting, box_name))
        groups = self.groups(root, boxes)
        for j, raw in enumerate(self.array(root, "meetings", "$")):
            meeting = self.meeting(raw, f"$.meetings[{j}]", "", j)
            if meeting is not None:
                if not copy_holders(meeting, boxes):
                    self.problem(f"$.meetings[{j}]", "neither organizer nor any attendee is a user")
                    continue
                placements.append(Placement(meeting, None))
                placements += self.forwarded(raw, f"$.meetings[{j}]", meeting, boxes)
        if self.problems:
            raise DataFileError(self.problems, source)
        return DataFile(domain, tuple(users), tuple(placements), tuple(groups))

    def groups(self, root: Mapping[str, Any], boxes: set[str]) -> list[GroupRecord]:
        found: list[GroupRecord] = []
        for i, raw in enumerate(self.array(root, "groups", "$")):
            path = f"$.groups[{i}]"
            g = self.table(raw, path)
            self.known(g, {"email", "name", "kind", "members"}, path)
            email = self.text(g, "email", path).lower()
            if email in boxes or any(x.email == email for x in found):
                self.problem(f"{path}.email", f"{email} is already a user or a group")
            kind = self.text(g, "kind", path, "distribution")
            if kind not in GROUP_KINDS:
                self.problem(f"{path}.kind", f"use one of {', '.join(GROUP_KINDS)}")
            members = []
            for k, member in enumerate(self.array(g, "members", path)):
                if not isinstance(member, str) or "@" not in member:
                    self.problem(f"{path}.members[{k}]", "expected an e-mail address")
                else:
                    members.append(member.lower())
            found.append(GroupRecord(email, self.text(g, "name", path, email.split("@")[0]), kind, tuple(members)))
        return found

    def forwarded(self, raw: object, path: str, meeting: MeetingRecord, boxes: set[str]) -> list[Placement]:
        """A copy in the calendar of each user an invitee forwarded the meeting to, with that user's answer."""
        found: list[Placement] = []
        m = raw if isinstance(raw, dict) else {}
        for k, raw_to in enumerate(self.array(m, "forwarded_to", path)):
            fpath = f"{path}.forwarded_to[{k}]"
            f = self.table(raw_to, fpath)
            self.known(f, {"email", "response"}, fpath)
            email = self.text(f, "email", fpath).lower()
            response = self.text(f, "response", fpath, "noresponse")
            if email not in boxes:
                self.problem(f"{fpath}.email", "a forwarded copy goes to a user's mailbox")
            if response not in RESPONSES:
                self.problem(f"{fpath}.response", f"use one of {', '.join(RESPONSES)}")
            copy = replace(meeting, item_id=make_item_id(email, "forwarded", meeting.uid), my_response=response)
            found.append(Placement(copy, email))
        return found

    def contacts_folder(self, obj: Mapping[str, Any], path: str, box: str, folder_id: str, scope: str,
                        placements: list[Placement]) -> None:
        """The contacts of a folder (the mailbox's Contacts folder, or a sub-folder), then its sub-folders."""
        for j, raw in enumerate(self.array(obj, "contacts", path)):
            item = self.contact(raw, f"{path}.contacts[{j}]", box, j, folder_id, scope)
            if item is not None:
                placements.append(Placement(item, box))
        for j, raw in enumerate(self.array(obj, "contact_folders", path)):
            fpath = f"{path}.contact_folders[{j}]"
            f = self.table(raw, fpath)
            self.known(f, {"id", "name", "class", "contacts", "contact_folders"}, fpath)
            name = self.text(f, "name", fpath)
            sub_scope = f"{scope}/{j}"
            record = ContactFolderRecord(
                self.text(f, "id", fpath, "") or make_item_id(box.lower(), "folder", sub_scope), name, folder_id,
                self.text(f, "class", fpath, CONTACT_FOLDER_CLASS))
            placements.append(Placement(record, box))
            self.contacts_folder(f, fpath, box, record.folder_id, sub_scope, placements)

    def contact(self, raw: object, path: str, box: str, index: int, folder: str = "",
                scope: str = "") -> ContactRecord | OddItemRecord | None:
        c = self.table(raw, path)
        self.known(c, {"id", "display_name", "file_as", "given_name", "surname", "company", "title", "emails",
                       "phones", "item_type", "members"}, path)
        given, surname = self.text(c, "given_name", path, ""), self.text(c, "surname", path, "")
        display = self.text(c, "display_name", path, f"{given} {surname}".strip())
        file_as, company = self.text(c, "file_as", path, ""), self.text(c, "company", path, "")
        # An item id depends on its place in the file; the Contacts folder's keep the ids they always had.
        item_id = self.text(c, "id", path, "") or make_item_id(box.lower(), "contact", scope + str(index), display)
        item_type = self.text(c, "item_type", path, "contact")
        if item_type != "contact":
            if item_type not in ODD_ITEM_KINDS:
                self.problem(f"{path}.item_type", f"use contact or one of {', '.join(ODD_ITEM_KINDS)}")
            members = [m for m in self.array(c, "members", path) if isinstance(m, str)]
            return OddItemRecord(item_id, "", item_type, display, tuple(members), folder)
        if not (display or file_as or given or surname or company or c.get("emails")):
            self.problem(path, "needs a display_name, file_as, given_name/surname, company or e-mail")
        emails = []
        for k, mail in enumerate(self.array(c, "emails", path)):
            if not isinstance(mail, str):
                self.problem(f"{path}.emails[{k}]", "expected a string")
            else:
                emails.append(mail)
        if len(emails) > 3:
            self.problem(f"{path}.emails", "Exchange keeps at most 3 e-mail addresses")
        phones = []
        raw_phones = c.get("phones", {})
        if not isinstance(raw_phones, dict):
            self.problem(f"{path}.phones", "expected an object {kind: number}")
            raw_phones = {}
        for kind, number in raw_phones.items():
            if kind not in PHONE_KINDS:
                self.problem(f"{path}.phones.{kind}", f"unknown kind; use one of {', '.join(PHONE_KINDS)}")
            elif not isinstance(number, str):
                self.problem(f"{path}.phones.{kind}", "expected a string")
            else:
                phones.append(Phone(kind, number))
        return ContactRecord(
            item_id=item_id, change_key="", display_name=display, given_name=given, surname=surname,
            company=company, title=self.text(c, "title", path, ""), emails=tuple(emails), phones=tuple(phones),
            file_as=file_as, folder=folder)

    def time(self, obj: Mapping[str, Any], key: str, path: str, tz: ZoneInfo) -> datetime | None:
        text = self.text(obj, key, path)
        if not text:
            return None
        try:
            return parse_time(text, tz, self.now)
        except ValueError as exc:
            self.problem(f"{path}.{key}", str(exc))
            return None

    def meeting(self, raw: object, path: str, box: str, index: int) -> MeetingRecord | None:
        m = self.table(raw, path)
        self.known(m, {"id", "uid", "subject", "location", "organizer", "attendees", "start", "end",
                       "duration_minutes", "timezone", "all_day", "cancelled", "recurrence", "exceptions",
                       "wire_timezone", "sensitivity", "locations", "online_meeting", "no_uid", "forwarded_to",
                       "show_as", "body", "body_type"},
                   path)
        zone_id = self.text(m, "timezone", path, "UTC")
        try:
            tz = resolve_timezone(zone_id)
        except ValueError as exc:
            self.problem(f"{path}.timezone", str(exc))
            return None
        all_day = self.boolean(m, "all_day", path)
        start = self.time(m, "start", path, tz)
        if start is None:
            return None
        if all_day:
            start = datetime.combine(start.date(), time(0), tz)
        if "end" in m:
            end = self.time(m, "end", path, tz)
            if end is None:
                return None
            if all_day:
                end = datetime.combine(end.date(), time(0), tz)
        else:
            minutes = m.get("duration_minutes", 1440 if all_day else 30)
            if not isinstance(minutes, int) or minutes <= 0:
                self.problem(f"{path}.duration_minutes", "expected a positive integer")
                return None
            end = start + timedelta(minutes=minutes)
        if end <= start:
            self.problem(f"{path}.end", "must be after start")
        organizer = self.table(m.get("organizer", {"email": box} if box else None), f"{path}.organizer")
        attendees = []
        for k, raw_att in enumerate(self.array(m, "attendees", path)):
            apath = f"{path}.attendees[{k}]"
            a = self.table(raw_att, apath)
            self.known(a, {"email", "name", "kind", "response"}, apath)
            kind = self.text(a, "kind", apath, "required")
            response = self.text(a, "response", apath, "noresponse")
            if kind not in ATTENDEE_KINDS:
                self.problem(f"{apath}.kind", f"use one of {', '.join(ATTENDEE_KINDS)}")
            if response not in RESPONSES:
                self.problem(f"{apath}.response", f"use one of {', '.join(RESPONSES)}")
            attendees.append(AttendeeRecord(self.text(a, "email", apath), self.text(a, "name", apath, ""),
                                            kind, response))
        recurrence = None
        if "recurrence" in m:
            recurrence = self.recurrence(m.get("recurrence"), f"{path}.recurrence", tz)
        exceptions = []
        for k, raw_exc in enumerate(self.array(m, "exceptions", path)):
            epath = f"{path}.exceptions[{k}]"
            e = self.table(raw_exc, epath)
            self.known(e, {"original_start", "cancelled", "start", "end", "subject", "location"}, epath)
            original = self.time(e, "original_start", epath, tz)
            if original is None:
                continue
            moved_start = self.time(e, "start", epath, tz) if "start" in e else None
            moved_end = self.time(e, "end", epath, tz) if "end" in e else None
            if moved_start and not moved_end:
                moved_end = moved_start + (end - start)
            exceptions.append(OccurrenceException(
                original, cancelled=self.boolean(e, "cancelled", epath), start=moved_start, end=moved_end,
                subject=e.get("subject") if isinstance(e.get("subject"), str) else None,
                location=e.get("location") if isinstance(e.get("location"), str) else None))
        if exceptions and recurrence is None:
            self.problem(f"{path}.exceptions", "only a recurring meeting has exceptions")
        uid = self.text(m, "uid", path, "") or ("040000008200E00074C5B7101A82E008" +
                                                 hashlib.sha256(f"{path}".encode()).hexdigest()[:32].upper())
        meeting = MeetingRecord(
            item_id=self.text(m, "id", path, "") or make_item_id(box.lower(), "meeting", uid, str(index)),
            change_key="", uid=uid, subject=self.text(m, "subject", path, ""), start=start, end=end,
            timezone_id=zone_id, location=self.text(m, "location", path, ""),
            organizer_email=self.text(organizer, "email", f"{path}.organizer").lower(),
            organizer_name=self.text(organizer, "name", f"{path}.organizer", ""),
            attendees=tuple(attendees), is_all_day=all_day, is_cancelled=self.boolean(m, "cancelled", path),
            recurrence=recurrence, exceptions=tuple(exceptions),
            wire_timezone_id=self.text(m, "wire_timezone", path, ""),
            sensitivity=self.choice(m, "sensitivity", path, SENSITIVITIES),
            locations=tuple(self.strings(m, "locations", path)),
            online_meeting=self.boolean(m, "online_meeting", path), has_uid=not self.boolean(m, "no_uid", path),
            show_as=self.text(m, "show_as", path, "Busy"),
            body=self.text(m, "body", path, ""),
            body_html=self.choice(m, "body_type", path, ("html", "text")) == "html")
        if recurrence is not None:
            for k, change in enumerate(exceptions):
                if change.cancelled:
                    continue
                if series_occurrence(meeting, change.original_start.astimezone(UTC)) is None:
                    self.problem(f"{path}.exceptions[{k}].original_start", "not an occurrence of the series")
        return meeting

    def recurrence(self, raw: object, path: str, tz: ZoneInfo) -> Recurrence | None:
        r = self.table(raw, path)
        self.known(r, {"pattern", "interval", "count", "until", "days"}, path)
        pattern = r.get("pattern")
        if pattern not in ("daily", "weekly"):
            self.problem(f"{path}.pattern", "use daily or weekly")
            return None
        interval = r.get("interval", 1)
        if not isinstance(interval, int) or isinstance(interval, bool) or not 1 <= interval <= 999:
            self.problem(f"{path}.interval", "expected an integer 1..999")
            interval = 1
        count = r.get("count")
        if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
            self.problem(f"{path}.count", "expected a positive integer")
            count = None
        until = None
        if "until" in r:
            until_time = self.time(r, "until", path, tz)
            until = until_time.date() if until_time else None
        days: list[int] = []
        for k, day in enumerate(self.array(r, "days", path)):
            if not isinstance(day, str) or day.lower() not in WEEKDAYS:
                self.problem(f"{path}.days[{k}]", f"use one of {', '.join(WEEKDAYS)}")
            else:
                days.append(WEEKDAYS.index(day.lower()))
        if days and pattern != "weekly":
            self.problem(f"{path}.days", "only for pattern weekly")
        return Recurrence(pattern, interval, count, until, tuple(sorted(set(days))))
