import pytest

from vaultsched.core.frontmatter_edit import set_scalar, set_scalars


def test_replaces_only_the_value_keeping_comments_and_order() -> None:
    text = (
        "---\n# my task\nschedule: '@daily'  # daily\nenabled: true # on\ncommand: x\n---\nbody\n"
    )
    assert set_scalar(text, "enabled", "false") == text.replace("enabled: true", "enabled: false")


def test_adds_a_line_when_missing_with_crlf() -> None:
    text = "---\r\ncommand: x\r\n---\r\nbody"
    assert (
        set_scalar(text, "enabled", "false") == "---\r\ncommand: x\r\nenabled: false\r\n---\r\nbody"
    )


def test_empty_value() -> None:
    text = "---\ncommand: x\nenabled:\n---\n"
    assert set_scalar(text, "enabled", "false") == "---\ncommand: x\nenabled: false\n---\n"


def test_yaml_11_booleans_and_quotes() -> None:
    text = "---\ncommand: x\nenabled: 'yes'\n---\n"
    assert set_scalar(text, "enabled", "true") == "---\ncommand: x\nenabled: true\n---\n"


def test_unicode_before_the_value() -> None:
    text = "---\ntitle: zażółć 🎉\nenabled: off\ncommand: x\n---\n"
    assert set_scalar(text, "enabled", "true") == text.replace("enabled: off", "enabled: true")


def test_refuses_non_scalar_and_missing_front_matter() -> None:
    with pytest.raises(ValueError, match="single value"):
        set_scalar("---\nenabled: [1]\n---\n", "enabled", "true")
    with pytest.raises(ValueError, match="no front matter"):
        set_scalar("body only", "enabled", "true")


VALUES = {
    "last_run": "2026-12-01T07:30:00",
    "last_status": "success",
    "next_run": "",
    "run_count": "3",
}


def test_properties_are_added_below_everything_the_person_wrote() -> None:
    text = "---\r\n# mine\r\nschedule: '@daily'   # keep\r\ncommand: x\r\n---\r\nbody\r\n"
    done = set_scalars(text, VALUES)
    head = "---\r\n# mine\r\nschedule: '@daily'   # keep\r\ncommand: x\r\n"
    added = "last_run: 2026-12-01T07:30:00\r\nlast_status: success\r\nnext_run:\r\nrun_count: 3\r\n"
    assert done == head + added + "---\r\nbody\r\n"
    assert set_scalars(done, VALUES) == done  # nothing changed: the very same text


def test_only_values_that_changed_are_rewritten_in_place() -> None:
    text = (
        "---\ncommand: x\nlast_run: 2026-11-30T07:30:00  # vaultsched's\nlast_status: failed\n"
        "next_run:\nrun_count: 2\ntags: [a]\n---\n"
    )
    done = set_scalars(text, VALUES)
    assert done == (
        "---\ncommand: x\nlast_run: 2026-12-01T07:30:00  # vaultsched's\nlast_status: success\n"
        "next_run:\nrun_count: 3\ntags: [a]\n---\n"
    )


def test_a_property_the_person_made_a_list_is_refused() -> None:
    with pytest.raises(ValueError, match="edit it by hand"):
        set_scalars("---\ncommand: x\nrun_count: [1, 2]\n---\n", VALUES)
