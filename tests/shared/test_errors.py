"""The cores' refusals (shared/errors.py) and the one table that gives them HTTP statuses."""
from __future__ import annotations

import pytest

from shared.errors import Conflict, DomainError, InvalidRequest, NotFound, Unavailable
from shared.web import http_status


@pytest.mark.parametrize(("kind", "status"), [(InvalidRequest, 400), (NotFound, 404), (Conflict, 409),
                                              (Unavailable, 503), (DomainError, 500)])
def test_each_kind_of_refusal_has_its_status(kind, status):
    assert http_status(kind("CODE", "a sentence")) == status


def test_a_refusal_carries_code_message_and_extra_fields_but_no_status():
    error = NotFound("UNKNOWN_BOARD", "No board 'x'.", known=["b1"])
    assert error.to_dict() == {"error": "UNKNOWN_BOARD", "message": "No board 'x'.", "known": ["b1"]}
    assert not hasattr(error, "status")


def test_a_subclass_keeps_its_parents_status_and_can_stay_a_key_error():
    class UnknownThing(NotFound, KeyError):
        pass

    error = UnknownThing("UNKNOWN_THING", "No thing 'x'.")
    assert http_status(error) == 404 and isinstance(error, KeyError)
    assert str(error) == "UNKNOWN_THING: No thing 'x'."
