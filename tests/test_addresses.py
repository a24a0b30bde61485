"""Every template's {% url %} remembers the addresses it builds (web/templatetags/addresses.py):
the same address as Django's own tag, for each script prefix and URL configuration."""

from __future__ import annotations

import pytest
from django.template import Context, Template
from django.template.defaulttags import URLNode
from django.test import override_settings
from django.urls import NoReverseMatch, set_script_prefix

from mesoclinic.web.templatetags import addresses


def render(text: str, **context: object) -> str:
    return Template(text).render(Context(context))


def test_every_template_uses_the_remembering_tag() -> None:
    node = Template("{% url 'web:chart' 5 %}").nodelist[0]
    assert isinstance(node, addresses.AddressNode) and isinstance(node, URLNode)


def test_an_address_is_built_once_and_then_remembered() -> None:
    addresses._remembered.cache_clear()
    assert render("{% url 'web:chart' pk %}", pk=5) == "/patients/5/"
    assert render("{% url 'web:chart' patient_id=pk %}", pk=5) == "/patients/5/"
    assert render("{% url 'web:chart' pk %}", pk=5) == "/patients/5/"
    info = addresses._remembered.cache_info()
    assert (info.misses, info.hits) == (2, 1)
    # Another patient is another address.
    assert render("{% url 'web:chart' pk %}", pk=6) == "/patients/6/"


def test_the_script_prefix_is_part_of_the_address() -> None:
    try:
        set_script_prefix("/clinic/")
        assert render("{% url 'web:chart' 5 %}") == "/clinic/patients/5/"
    finally:
        set_script_prefix("/")
    assert render("{% url 'web:chart' 5 %}") == "/patients/5/"


def test_a_new_url_configuration_forgets_what_was_remembered() -> None:
    assert render("{% url 'web:chart' 5 %}") == "/patients/5/"
    with override_settings(ROOT_URLCONF="tests.addresses_urls"):
        assert render("{% url 'web:chart' 5 %}") == "/elsewhere/5/"
    assert render("{% url 'web:chart' 5 %}") == "/patients/5/"


def test_it_fails_as_djangos_does() -> None:
    with pytest.raises(NoReverseMatch):
        render("{% url 'web:chart' 'not-a-number' %}")
    # "as" swallows the failure, as Django's tag does.
    assert render("{% url 'web:chart' 'x' as link %}[{{ link }}]") == "[]"


def test_other_arguments_are_built_each_time() -> None:
    class Key:
        def __str__(self) -> str:
            return "7"

    addresses._remembered.cache_clear()
    assert render("{% url 'web:chart' key %}", key=Key()) == "/patients/7/"
    assert addresses._remembered.cache_info().currsize == 0
