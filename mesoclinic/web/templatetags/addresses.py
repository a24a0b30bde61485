"""`{% url %}` that remembers the addresses it has built.

Every template uses this tag in place of Django's (settings: TEMPLATES' "builtins"); it parses
and behaves exactly like Django's. A list page builds the same few addresses again and again
(a chart's address for each row, a follow-up's close form), and Django works each one out
afresh: about 70 µs each, 90 of them on Today. An address depends only on the view's name, its
arguments, the URL configuration and the script prefix, so once built for whole numbers and
strings it is remembered, in a bounded cache that forgets the least used. The cache is
emptied when the URL configuration changes (as tests do)."""

from __future__ import annotations

import functools
from typing import Any

from django import template
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.template import defaulttags
from django.urls import NoReverseMatch, get_script_prefix, get_urlconf, reverse
from django.utils.html import conditional_escape

register = template.Library()

# The arguments an address is remembered for: what pages pass (primary keys, slugs, dates as
# text). Anything else, such as a model instance, is built afresh each time.
PLAIN = (int, str)


@functools.lru_cache(maxsize=8192)
def _remembered(
    view_name: str,
    args: tuple[Any, ...],
    kwargs: tuple[tuple[str, Any], ...],
    current_app: str | None,
    urlconf: str | None,
    prefix: str,
) -> str:
    # `prefix` is in the key, not the call: reverse() reads the script prefix itself.
    return reverse(
        view_name, args=args, kwargs=dict(kwargs), current_app=current_app, urlconf=urlconf
    )


def address(
    view_name: str, args: list[Any], kwargs: dict[str, Any], current_app: str | None
) -> str:
    """reverse(), remembered when every argument is a whole number or a string."""
    if all(type(a) in PLAIN for a in args) and all(type(v) in PLAIN for v in kwargs.values()):
        return _remembered(
            view_name,
            tuple(args),
            tuple(sorted(kwargs.items())),
            current_app,
            get_urlconf(),
            get_script_prefix(),
        )
    return reverse(view_name, args=args, kwargs=kwargs, current_app=current_app)


@receiver(setting_changed, dispatch_uid="web.addresses.forget")
def _forget(*, setting: str, **_: Any) -> None:
    if setting in ("ROOT_URLCONF", "FORCE_SCRIPT_NAME"):
        _remembered.cache_clear()


class AddressNode(defaulttags.URLNode):
    def render(self, context: template.Context) -> str:
        args = [arg.resolve(context) for arg in self.args]
        kwargs = {k: v.resolve(context) for k, v in self.kwargs.items()}
        view_name = self.view_name.resolve(context)
        request = getattr(context, "request", None)
        current_app = getattr(request, "current_app", None)
        if current_app is None:
            current_app = getattr(getattr(request, "resolver_match", None), "namespace", None)
        url = ""
        try:
            url = address(view_name, args, kwargs, current_app)
        except NoReverseMatch:
            if self.asvar is None:
                raise
        if self.asvar:
            context[self.asvar] = url
            return ""
        return conditional_escape(url) if context.autoescape else url


@register.tag
def url(parser: template.base.Parser, token: template.base.Token) -> AddressNode:
    """Django's {% url %}, parsed by Django, with addresses remembered."""
    node = defaulttags.url(parser, token)
    return AddressNode(node.view_name, node.args, node.kwargs, node.asvar)
