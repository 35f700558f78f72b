import pytest

from vaultsched.core.frontmatter_edit import set_scalar


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
