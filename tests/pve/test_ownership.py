"""The ownership marker: format, parse, strip (property-tested: it lives in text users also write)."""

from __future__ import annotations

from hypothesis import given, strategies as st

from phoenix.pve.ownership import (is_stub, marker_line, not_owned_message, owner_of, owner_tag, ownership,
                                   strip_marker, with_marker)

LINEAGE = "1a2b3c4d-0000-4000-8000-000000000001"
OTHER = "5e6f7a8b-0000-4000-8000-000000000002"
text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r"), max_size=200)


@given(text, st.integers(100, 999999))
def test_marker_round_trip_keeps_the_users_text(description, vmid):
    marked = with_marker(description, LINEAGE, vmid)
    assert owner_of(marked, vmid) == LINEAGE
    assert strip_marker(marked) == strip_marker(description)
    assert with_marker(marked, LINEAGE, vmid) == marked                    # idempotent
    assert marked.count(marker_line(LINEAGE, vmid)) == 1


def test_a_clone_inherits_its_templates_line_which_does_not_make_it_ours():
    template_description = with_marker("Template built by phoenix from a cloud image.", LINEAGE, 8000)
    assert owner_of(template_description, 8001) is None
    assert ownership({"description": template_description}, LINEAGE, 8001).verdict == "none"
    clone = with_marker(template_description, LINEAGE, 8001)               # what phoenix sends with its clone
    assert owner_of(clone, 8001) == LINEAGE and "vmid=8000" not in clone


def test_verdicts():
    assert ownership({"description": with_marker("", LINEAGE, 5)}, LINEAGE, 5).ours
    other = ownership({"description": with_marker("", OTHER, 5)}, LINEAGE, 5)
    assert other.verdict == "other" and other.owner == OTHER
    assert ownership({"description": "made by hand"}, LINEAGE, 5).verdict == "none"
    assert ownership({"lock": "create"}, LINEAGE, 5).verdict == "stub"
    assert ownership({"lock": "clone", "description": " qmclone temporary file"}, LINEAGE, 5).verdict == "stub"
    assert not is_stub({"lock": "clone", "description": "user text"})
    conflicting = with_marker("", LINEAGE, 5) + with_marker("", OTHER, 5)
    assert owner_of(conflicting, 5) is None


def test_messages_name_the_vm_and_the_way_out():
    none = not_owned_message(8001, "web", "pve", ownership({}, LINEAGE, 8001))
    assert "VM 8001 ('web') on node 'pve'" in none and "phoenix import 8001" in none
    other = not_owned_message(8001, None, None, ownership({"description": with_marker("", OTHER, 8001)}, LINEAGE, 8001))
    assert f"another phoenix state (lineage {OTHER})" in other


def test_owner_tag_is_file_name_safe_and_distinct():
    assert owner_tag(LINEAGE) != owner_tag(OTHER) and owner_tag(LINEAGE).isalnum()
