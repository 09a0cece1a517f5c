"""Graph payloads shaped like Microsoft's published Graph v1.0 examples, for the mapping and the simulator's
JSON tests."""

from __future__ import annotations

from typing import Any

# As in Microsoft's "get an event with multiple locations" example: Pacific time, three locations
# joined by Outlook into location.displayName, attendees who have not answered yet.
EVENT_WITH_LOCATIONS: dict[str, Any] = {
    "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users('cd209b0b')/events/$entity",
    "@odata.etag": 'W/"y53lbKSkBkaMWkpVbfxXRwAAAXY9Mw=="',
    "id": "AAMkADAGAADDdm4NAAA=",
    "createdDateTime": "2017-10-30T17:30:32.1652186Z",
    "lastModifiedDateTime": "2017-10-30T17:32:08.2466081Z",
    "changeKey": "y53lbKSkBkaMWkpVbfxXRwAAAXY9Mw==",
    "categories": [],
    "originalStartTimeZone": "Pacific Standard Time",
    "originalEndTimeZone": "Pacific Standard Time",
    "iCalUId": ("040000008200E00074C5B7101A82E00800000000D02AC02D9F51D301000000000000000010000000"
                "9AB6F6F3B0B8C847A8B5E1FE0C5D9F3D"),
    "reminderMinutesBeforeStart": 15,
    "isReminderOn": True,
    "hasAttachments": False,
    "subject": "Plan summer company picnic",
    "bodyPreview": "Let's kick-start this event planning!",
    "importance": "normal",
    "sensitivity": "normal",
    "isAllDay": False,
    "isCancelled": False,
    "isOrganizer": True,
    "responseRequested": True,
    "seriesMasterId": None,
    "showAs": "busy",
    "type": "singleInstance",
    "webLink": "https://outlook.office365.com/owa/?itemid=AAMkADAGAADDdm4NAAA%3D&exvsurl=1&path=/calendar/item",
    "onlineMeetingUrl": None,
    "responseStatus": {"response": "organizer", "time": "0001-01-01T00:00:00Z"},
    "body": {"contentType": "html", "content": "<html></html>"},
    "start": {"dateTime": "2017-11-02T18:00:00.0000000", "timeZone": "Pacific Standard Time"},
    "end": {"dateTime": "2017-11-02T19:00:00.0000000", "timeZone": "Pacific Standard Time"},
    "location": {"displayName": "Conf Room 3; Fourth Coffee; Home Office", "locationType": "default"},
    "locations": [
        {"displayName": "Conf Room 3", "locationType": "default"},
        {"displayName": "Fourth Coffee", "locationType": "default",
         "address": {"street": "4567 Main St", "city": "Redmond", "state": "WA",
                     "countryOrRegion": "US", "postalCode": "32008"},
         "coordinates": {"latitude": 47.672, "longitude": -102.103}},
        {"displayName": "Home Office", "locationType": "default"},
    ],
    "recurrence": None,
    "attendees": [
        {"type": "required", "status": {"response": "none", "time": "0001-01-01T00:00:00Z"},
         "emailAddress": {"name": "Dana Swope", "address": "DanaS@contoso.onmicrosoft.com"}},
        {"type": "optional", "status": {"response": "tentativelyAccepted", "time": "2017-10-31T08:00:00Z"},
         "emailAddress": {"name": "Alex Wilber", "address": "AlexW@contoso.onmicrosoft.com"}},
        {"type": "resource", "status": {"response": "accepted", "time": "2017-10-31T08:00:00Z"},
         "emailAddress": {"name": "Conf Room 3", "address": "ConfRoom3@contoso.onmicrosoft.com"}},
    ],
    "organizer": {"emailAddress": {"name": "Megan Bowen", "address": "MeganB@contoso.onmicrosoft.com"}},
}

# As in Microsoft's "get contact" example.
CONTACT: dict[str, Any] = {
    "@odata.etag": 'W/"EQAAABYAAACq4BmhGrmrS4ECfSGwAUH4AAAIkx+q"',
    "id": "AAMkAGI2THk0AAA=",
    "createdDateTime": "2017-03-22T08:12:03Z",
    "lastModifiedDateTime": "2017-03-22T08:12:04Z",
    "changeKey": "EQAAABYAAACq4BmhGrmrS4ECfSGwAUH4AAAIkx+q",
    "categories": [],
    "parentFolderId": "AAMkAGI2AAEOAAA=",
    "birthday": None,
    "fileAs": "Bansky, Pavel",
    "displayName": "Pavel Bansky",
    "givenName": "Pavel",
    "surname": "Bansky",
    "title": None,
    "jobTitle": "Web Marketing Manager",
    "companyName": "Contoso",
    "homePhones": ["030 1234567"],
    "mobilePhone": "+49 171 2345678",
    "businessPhones": ["+1 732 555 0102", "  "],
    "emailAddresses": [{"address": "pavelb@contoso.onmicrosoft.com", "name": "Pavel Bansky"}],
    "homeAddress": {}, "businessAddress": {}, "otherAddress": {},
}
