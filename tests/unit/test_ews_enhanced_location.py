"""exchangelib 5.6 lacks CalendarItem.EnhancedLocation; sync/sources/ews_fields.py adds it. Pinned here:
that exchangelib still lacks it (drop the module when this fails), that the added field sits where
types.xsd puts it and parses Microsoft's published element, and that the EWS source reads a place picked
there like the Location line."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import exchangelib.items.calendar_item as exchangelib_calendar_item
from exchangelib.items import CalendarItem
from exchangelib.util import TNS
from lxml import etree

from pbxsync.sync.config import parse_config
from pbxsync.sync.sources import ews_fields
from pbxsync.sync.sources.ews import OCCURRENCE_FIELDS, EwsSource

# The element as Microsoft documents it (EnhancedLocationType: DisplayName, Annotation, PostalAddress).
ITEM = f"""<t:CalendarItem xmlns:t="{TNS}"><t:ItemId Id="AAMkAD1" ChangeKey="DwAAAB"/>
<t:Location>Room 4.01</t:Location>
<t:EnhancedLocation><t:DisplayName>PBX AUTOCALL</t:DisplayName><t:Annotation>dial-in</t:Annotation>
<t:PostalAddress><t:Street>1 Main St</t:Street><t:City>Redmond</t:City></t:PostalAddress></t:EnhancedLocation>
</t:CalendarItem>"""


def test_exchangelib_itself_still_has_no_enhanced_location() -> None:
    assert "EnhancedLocation" not in inspect.getsource(exchangelib_calendar_item)
    assert CalendarItem.get_field_by_fieldname(ews_fields.FIELD_NAME).value_cls is ews_fields.EnhancedLocation


def test_the_field_follows_net_show_url_as_in_types_xsd_and_parses_the_published_element() -> None:
    names = [f.name for f in CalendarItem.FIELDS]
    assert names.index(ews_fields.FIELD_NAME) == names.index("net_show_url") + 1
    item = CalendarItem.from_xml(etree.fromstring(ITEM), account=None)
    assert (item.location, item.enhanced_location.display_name) == ("Room 4.01", "PBX AUTOCALL")


def test_the_source_asks_for_it_from_exchange_2013_on_only() -> None:
    def source(version: str) -> EwsSource:
        config = parse_config({"exchange": {"server": "http://127.0.0.1:1/EWS/Exchange.asmx", "username": "svc@x",
                                            "password": "pw", "version": version},
                               "users": [{"extension": "101", "email": "a@b"}]})
        return EwsSource(config.exchange, config.users)

    assert source("Exchange2016").occurrence_fields == (*OCCURRENCE_FIELDS, ews_fields.FIELD_NAME)
    assert source("Exchange2010_SP2").occurrence_fields == OCCURRENCE_FIELDS


def test_a_place_picked_in_the_location_picker_is_read_like_the_location_line() -> None:
    start = datetime(2026, 11, 27, 9, tzinfo=UTC)
    tz = SimpleNamespace(key="UTC", ms_id="UTC")
    item = SimpleNamespace(
        id="1", changekey="ck", uid="u1", subject="s", location="Room 4.01", start=start,
        end=start + timedelta(hours=1), _start_timezone=tz, is_all_day=False, is_cancelled=False, type="Single",
        recurrence_id=None, organizer=None, required_attendees=None, optional_attendees=None, resources=None,
        sensitivity="Private", my_response_type="Tentative",
        enhanced_location=ews_fields.EnhancedLocation(display_name="PBX AUTOCALL; Room 4.01"))
    config = parse_config({"exchange": {"server": "http://127.0.0.1:1/EWS/Exchange.asmx", "username": "svc@x",
                                        "password": "pw"}, "users": [{"extension": "101", "email": "a@b"}]})
    occ = EwsSource(config.exchange, config.users)._occurrence(item, {})
    assert occ is not None and occ.location == "Room 4.01; PBX AUTOCALL"
    assert (occ.sensitivity.value, occ.my_response.value) == ("private", "tentative")
